// The cluster's custom error names, read from the generated ABI: the one list every package keys its
// refusal rules and hints by, so a renamed or removed error breaks the build instead of a hint.
import { clusterAbi } from "./abi.ts";

type ClusterAbiItem = (typeof clusterAbi)[number];

/** The name of one of the cluster diamond's custom errors. */
export type ClusterErrorName = Extract<ClusterAbiItem, { readonly type: "error" }>["name"];

/** Every custom error name of the cluster diamond, in ABI order. */
export const CLUSTER_ERROR_NAMES: readonly ClusterErrorName[] = clusterAbi.flatMap((item) =>
  item.type === "error" ? [item.name] : [],
);

/** Whether `name` is one of the cluster's custom errors. */
export function isClusterErrorName(name: string): name is ClusterErrorName {
  return (CLUSTER_ERROR_NAMES as readonly string[]).includes(name);
}
