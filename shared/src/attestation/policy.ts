/**
 * The parts of a cluster's on-chain policy that decide how evidence is judged: whether the owner
 * allowed the simulator (by allowlisting one of the simulator KMS roots, as the devnet does) and the
 * cluster's TCB rule. Read at the time of each verification, so a change reaches running verifiers.
 */
import type { Address, Chain, PublicClient, Transport } from "viem";
import { clusterAbi } from "../contracts/abi.ts";
import { SIMULATOR_KMS_ROOTS } from "./simulated.ts";

export interface AttestationPolicy {
  /** True when one of `SIMULATOR_KMS_ROOTS` is an allowed KMS root of the cluster. */
  readonly allowSimulator: boolean;
  /** The cluster's TCB rule (`IPolicy.requireTcbUpToDate`). */
  readonly requireTcbUpToDate: boolean;
}

/** The rule from the cluster's `policySnapshot()`, read wherever the caller agreed on it. */
export function attestationPolicyOf(snapshot: {
  readonly kmsRoots: readonly string[];
  readonly requireTcbUpToDate: boolean;
}): AttestationPolicy {
  const roots = new Set(snapshot.kmsRoots.map((r) => r.toLowerCase()));
  return {
    allowSimulator: SIMULATOR_KMS_ROOTS.some((r) => roots.has(r.toLowerCase())),
    requireTcbUpToDate: snapshot.requireTcbUpToDate,
  };
}

export async function readAttestationPolicy(
  client: PublicClient<Transport, Chain | undefined>,
  cluster: Address,
): Promise<AttestationPolicy> {
  const [requireTcbUpToDate, ...simulators] = await Promise.all([
    client.readContract({ address: cluster, abi: clusterAbi, functionName: "requireTcbUpToDate" }),
    ...SIMULATOR_KMS_ROOTS.map((root) =>
      client.readContract({
        address: cluster,
        abi: clusterAbi,
        functionName: "isKmsRootAllowed",
        args: [root],
      }),
    ),
  ]);
  return { allowSimulator: simulators.some(Boolean), requireTcbUpToDate: Boolean(requireTcbUpToDate) };
}
