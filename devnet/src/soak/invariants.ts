// The invariants the soak checks from outside, every second: each node's WireGuard peer set (its
// /healthz, which reports the peers it configured) against the chain's active set, and the CSK epoch each
// node holds against the chain's current one. A mismatch on a node inside a fault's scope is expected
// until the fault's budget after healing ends; anywhere else it may last at most one poll interval plus
// a small settling slack. Two things have no grace at all: a peer that is no devnet member (what a lying
// provider would try to inject), and an evicted node holding an epoch opened by its departure.
import { clusterAbi } from "@attestmesh/shared/contracts/abi.ts";
import type { DevnetClients } from "../orchestration/chain.ts";
import { getJson, type SidecarHealth } from "../orchestration/health.ts";
import type { DevnetNode, DevnetState } from "../orchestration/state.ts";

export type InvariantName =
  | "peer-set"
  | "evicted-peer"
  | "stranger-peer"
  | "csk-epoch"
  | "evicted-holds-new-epoch"
  | "unresponsive"
  | "no-recovery"
  | "message-lost"
  | "message-duplicated"
  | "tcp-stream"
  | "resource-leak"
  | "secret-in-log";

export interface Violation {
  /** Seconds since the soak started. */
  readonly atS: number;
  readonly invariant: InvariantName;
  readonly node: string | null;
  readonly detail: string;
}

interface Problem {
  readonly invariant: InvariantName;
  readonly node: string;
  readonly detail: string;
}

export interface NodeView {
  readonly node: DevnetNode;
  readonly health: SidecarHealth | undefined;
  /** The node's member on chain, if it has one, and whether it is active. */
  readonly memberId: bigint | null;
  readonly active: boolean;
}

export interface TickResult {
  /** Every mismatch this tick, excused or not. */
  readonly problems: readonly Problem[];
  readonly views: readonly NodeView[];
  readonly chainEpoch: bigint;
}

export interface Checker {
  /** Marks nodes (or all) as expected to be off until `untilMs` (Infinity while a fault lasts). */
  excuse(scope: readonly string[] | "all", untilMs: number): void;
  /** Whether the node is leaving (evicted or revoked, not yet removed). */
  leaving(name: string): boolean;
  /** Records that `node` is leaving; from the chain's `epoch` on it must never hold a newer one. */
  departing(node: DevnetNode, epoch: bigint): void;
  tick(): Promise<TickResult>;
  record(violation: Omit<Violation, "atS">): void;
  readonly violations: readonly Violation[];
}

export function createChecker(options: {
  readonly state: () => DevnetState;
  readonly clients: DevnetClients;
  readonly startedAt: number;
  /** A mismatch outside any fault's scope may last this long (poll interval plus settling slack). */
  readonly graceMs: number;
}): Checker {
  const violations: Violation[] = [];
  const excused = new Map<string, number>();
  let excuseAll = 0;
  const departed = new Map<string, { node: DevnetNode; epoch: bigint }>();
  /** Member ids any devnet node ever had: a peer outside this set is a stranger. */
  const knownMembers = new Set<string>();
  /** Open mismatches: when first seen, and whether already recorded. */
  const open = new Map<string, { since: number; recorded: boolean }>();

  const record = (v: Omit<Violation, "atS">) =>
    violations.push({ atS: Math.round((Date.now() - options.startedAt) / 100) / 10, ...v });
  const isExcused = (node: string, now: number) => Math.max(excuseAll, excused.get(node) ?? 0) > now;

  async function view(node: DevnetNode): Promise<NodeView> {
    const [chain, health] = await Promise.all([
      options.clients.client.readContract({
        address: options.state().diamond,
        abi: clusterAbi,
        functionName: "memberOfApp",
        args: [node.appId],
      }),
      getJson(node.healthUrl, 1_500).then(
        (r) => {
          const h = r.body as SidecarHealth;
          const appId = typeof h.appId === "string" ? h.appId.toLowerCase() : undefined;
          return appId === undefined || appId === node.appId.toLowerCase() ? h : undefined;
        },
        () => undefined,
      ),
    ]);
    const [memberId, active] = chain;
    return { node, health, memberId: memberId === 0n ? null : memberId, active };
  }

  /**
   * Whether `id` is a member record on the chain (any status): a newcomer registered between this
   * tick's reads is; a member a lying provider invented is not.
   */
  async function onChain(id: string): Promise<boolean> {
    if (!/^\d{1,19}$/.test(id)) return false;
    try {
      const m = await options.clients.client.readContract({
        address: options.state().diamond,
        abi: clusterAbi,
        functionName: "member",
        args: [BigInt(id)],
      });
      if (m.status === 0) return false;
      knownMembers.add(id);
      return true;
    } catch {
      return false;
    }
  }

  return {
    excuse(scope, untilMs) {
      // Faults run one at a time: each excuse replaces the last one for its scope.
      if (scope === "all") excuseAll = untilMs;
      else for (const name of scope) excused.set(name, untilMs);
    },
    leaving: (name) => departed.has(name),
    departing(node, epoch) {
      departed.set(node.name, { node, epoch });
    },
    async tick() {
      const state = options.state();
      const [epochs, ...views] = await Promise.all([
        options.clients.client.readContract({
          address: state.diamond,
          abi: clusterAbi,
          functionName: "currentCsk",
        }),
        ...state.nodes.map(view),
      ]);
      const chainEpoch = epochs[0];
      for (const v of views) if (v.memberId !== null) knownMembers.add(v.memberId.toString());
      const active = views.filter((v) => v.active && !departed.has(v.node.name));
      const activeIds = new Set(active.map((v) => v.memberId!.toString()));
      const problems: Problem[] = [];
      const now = Date.now();

      for (const v of views) {
        const name = v.node.name;
        const leaving = departed.get(name);
        const heldEpoch = v.health?.cskEpoch == null ? null : BigInt(v.health.cskEpoch);
        if (leaving !== undefined) {
          if (heldEpoch !== null && heldEpoch > leaving.epoch) {
            record({
              invariant: "evicted-holds-new-epoch",
              node: name,
              detail: `holds epoch ${heldEpoch}, opened after its departure at epoch ${leaving.epoch}`,
            });
          }
          continue;
        }
        if (!v.active) continue; // not registered yet: its join is inside a node-add's scope
        if (v.health === undefined) {
          problems.push({ invariant: "unresponsive", node: name, detail: "no /healthz answer" });
          continue;
        }
        const peers = new Set(
          (v.health.peers ?? []).map((p) => String((p as { memberId?: unknown }).memberId)),
        );
        const self = v.memberId!.toString();
        for (const id of peers) {
          if (!knownMembers.has(id) && !(await onChain(id))) {
            record({
              invariant: "stranger-peer",
              node: name,
              detail: `peer member ${id} is no member on chain`,
            });
          } else if (!activeIds.has(id)) {
            problems.push({
              invariant: "evicted-peer",
              node: name,
              detail: `still peers with departed member ${id}`,
            });
          }
        }
        const missing = [...activeIds].filter((id) => id !== self && !peers.has(id));
        if (missing.length > 0)
          problems.push({
            invariant: "peer-set",
            node: name,
            detail: `lacks active member(s) ${missing.join(", ")}`,
          });
        if (heldEpoch !== chainEpoch || v.health.cskAcquired !== true)
          problems.push({
            invariant: "csk-epoch",
            node: name,
            detail: `holds epoch ${heldEpoch ?? "none"}${v.health.cskAcquired ? "" : " (not acquired)"}, chain is at ${chainEpoch}`,
          });
      }

      const seen = new Set<string>();
      for (const p of problems) {
        const key = `${p.invariant}/${p.node}`;
        seen.add(key);
        if (isExcused(p.node, now)) {
          open.delete(key);
          continue;
        }
        const entry = open.get(key) ?? { since: now, recorded: false };
        open.set(key, entry);
        if (!entry.recorded && now - entry.since > options.graceMs) {
          entry.recorded = true;
          record({ invariant: p.invariant, node: p.node, detail: `${p.detail} for ${now - entry.since} ms` });
        }
      }
      for (const key of [...open.keys()]) if (!seen.has(key)) open.delete(key);
      for (const name of [...departed.keys()])
        if (!state.nodes.some((n) => n.name === name)) departed.delete(name);
      return { problems, views, chainEpoch };
    },
    record,
    get violations() {
      return violations;
    },
  };
}
