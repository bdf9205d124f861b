// What a fault module is: something the schedule can inject into a running devnet and heal again.
// Each module draws every random choice it makes from the run's seeded stream before its first await,
// so one seed gives one schedule whatever the timing.
import type { DevnetClients } from "../orchestration/chain.ts";
import type { DevnetNode, DevnetState } from "../orchestration/state.ts";
import type { Rng } from "../rng.ts";

export const FAULT_KINDS = [
  "sidecar-sigterm",
  "sidecar-sigkill",
  "sidecar-pause",
  "indexer-kill",
  "rpc-down",
  "rpc-lie",
  "gateway-drop",
  "gateway-delay",
  "udp-block",
  "node-add",
  "node-evict",
  "app-revoke",
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/** The devnet as the faults see it: its state (kept on disk too), the owner's clients, the run's rules. */
export interface SoakContext {
  state(): DevnetState;
  setState(next: DevnetState): Promise<void>;
  readonly clients: DevnetClients;
  /** Nodes the schedule never stops, pauses, isolates or evicts: the TCP stream runs between them. */
  readonly anchors: ReadonlySet<string>;
  /** The node count the schedule keeps the mesh around (adds below it, evicts at or above it). */
  readonly targetNodes: number;
  /** The sidecars' heartbeat timeout: a pause lasts longer than this. */
  readonly heartbeatTimeoutMs: number;
  /**
   * A hold time the fault drew, at the run's pace: unchanged at pace 1 (the long runs); a shorter run
   * scales it down, never below two of the sidecars' chain polls, so the fault is still in while they read.
   */
  hold(drawnMs: number): number;
  /** The index of the next node to add (names are never reused within one devnet). */
  nextNodeIndex(): number;
  /**
   * Excuses the nodes a fault is about to disturb from the moment it acts (the schedule sets the
   * budget once it heals).
   */
  excuse(scope: readonly string[] | "all"): void;
  /** Called before an eviction or revocation is sent, with the chain's current CSK epoch. */
  departing(node: DevnetNode, epochAtDeparture: bigint): void;
  progress(message: string): void;
}

export interface Injected {
  /** What exactly was done, for the report (e.g. "SIGKILL node3"). */
  readonly detail: string;
  /**
   * The nodes whose invariants may be off while the fault lasts and for `budgetMs` after it healed,
   * or "all". Empty: the fault must not disturb any invariant at all (e.g. a lying RPC provider).
   */
  readonly scope: readonly string[] | "all";
  /** How long the fault stays in before `heal`. */
  readonly holdMs: number;
  /** The fault's own delay: how long after healing the mesh may take to satisfy every invariant again. */
  readonly budgetMs: number;
  heal(): Promise<void>;
  /** Runs once recovery was measured (e.g. removing an evicted node's processes and namespace). */
  cleanup?(): Promise<void>;
}

export interface Fault {
  readonly kind: FaultKind;
  /** Whether the fault can run on the devnet as it is now. */
  eligible(ctx: SoakContext): boolean;
  inject(ctx: SoakContext, rng: Rng): Promise<Injected>;
}

/** Nodes the schedule may disturb: running, not an anchor. */
export function disruptable(ctx: SoakContext): DevnetNode[] {
  return ctx.state().nodes.filter((n) => !ctx.anchors.has(n.name));
}
