// Every fault module the soak schedule picks from, by kind.
import type { Fault, FaultKind } from "../fault.ts";
import { appRevoke, nodeAdd, nodeEvict } from "./membership.ts";
import { gatewayDelay, gatewayDrop, rpcDown, rpcLie, udpBlock } from "./network.ts";
import { indexerKill, sidecarPause, sidecarSigkill, sidecarSigterm } from "./process.ts";

export const FAULTS: Readonly<Record<FaultKind, Fault>> = {
  "sidecar-sigterm": sidecarSigterm,
  "sidecar-sigkill": sidecarSigkill,
  "sidecar-pause": sidecarPause,
  "indexer-kill": indexerKill,
  "rpc-down": rpcDown,
  "rpc-lie": rpcLie,
  "gateway-drop": gatewayDrop,
  "gateway-delay": gatewayDelay,
  "udp-block": udpBlock,
  "node-add": nodeAdd,
  "node-evict": nodeEvict,
  "app-revoke": appRevoke,
};
