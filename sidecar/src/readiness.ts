// `healthy` needs more than WireGuard: the reconciler reports "healthy" when every peer handshook, and
// this gate turns that into the first later phase whose condition is unmet (pulling-csk until the
// current epoch's CSK is held, heartbeating until the mesh converged). The mesh runtime calls
// `recheck()` whenever the CSK or the live set changes.
import type { Phase, StatusStore } from "./status.ts";

export type Gate = () => { readonly phase: Phase; readonly reason: string } | undefined;

export interface GatedStatus extends StatusStore {
  recheck(): void;
}

export function gateHealthy(inner: StatusStore, gate: Gate): GatedStatus {
  /** The reason the mesh layer last reported for being healthy; undefined while it is not. */
  let meshHealthy: string | undefined;
  const apply = () => {
    if (meshHealthy === undefined) return;
    const pending = gate();
    if (pending === undefined) inner.setPhase("healthy", meshHealthy);
    else inner.setPhase(pending.phase, pending.reason);
  };
  return {
    get: inner.get,
    update: inner.update,
    setPhase(phase, reason) {
      if (phase === "healthy") {
        meshHealthy = reason;
        apply();
        return;
      }
      meshHealthy = undefined;
      inner.setPhase(phase, reason);
    },
    recheck: apply,
  };
}
