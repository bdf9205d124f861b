// One reconcile pass: bring the membership view up to the confirmed head, compute the desired peers,
// diff them against what the interface has and apply the difference (stale peers removed last). It
// also notices when this node's own membership ended (evicted, or left) and then takes the interface
// down and hands control back to registration. When the interface goes away by itself (wireguard-go
// died, or someone deleted it) it forgets what it had set there and asks for a pass at once, which
// brings the interface up again and applies everything as a first pass does. A loss that repeats
// before the interface stayed up for a while (a crash loop), or a bring-up that fails (the first one
// too: wireguard-go missing, or dying at start), waits a growing delay first (restarts.ts), logged at
// error once and then as warnings thinned as every repeating warning is (logRepeats.ts).
import { containsIp, type MeshCidr, numberToIp } from "@attestmesh/shared/mesh/cidr.ts";
import { scrubUrls } from "@attestmesh/shared/service/log.ts";
import type { MembershipFollower, MembershipSnapshot } from "../chain/follower.ts";
import { AttestmeshError, isAttestmeshError } from "../errors.ts";
import type { NodeKeys } from "../keys.ts";
import type { Logger } from "../log.ts";
import { createRepeatLog, REPEAT_LOG_NOTE, repeatFields } from "../logRepeats.ts";
import type { SidecarMetrics } from "../metrics.ts";
import { isSameNode, isStale, type Member } from "../model/member.ts";
import type { DroppedRecord } from "../model/peer.ts";
import { type RouteMtus, WG_GATEWAY_MTU } from "../model/wireguard.ts";
import type { PeerReport, StatusStore } from "../status.ts";
import type { PeerTransport } from "../transport/peers.ts";
import type { WireGuardBackend } from "../wireguard/backend.ts";
import { computeDesiredPeers } from "./desired.ts";
import { applyDiff, diffPeers } from "./diff.ts";
import type { EndpointsSource } from "./endpoints.ts";
import { createHandshakeTieBreak } from "./initiator.ts";
import {
  createRestartPacer,
  DEFAULT_RESTART_POLICY,
  type RestartPolicy,
  type RestartSchedule,
} from "./restarts.ts";

export interface ReconcilerOptions {
  readonly follower: MembershipFollower;
  readonly backend: WireGuardBackend;
  readonly endpoints: EndpointsSource;
  readonly status: StatusStore;
  readonly metrics: SidecarMetrics;
  readonly logger: Logger;
  readonly keys: Pick<NodeKeys, "wireguard">;
  readonly mesh: MeshCidr;
  readonly interfaceName: string;
  readonly listenPort: number;
  readonly keepaliveSeconds: number;
  /** This node's member id; undefined while it is not (or no longer) registered. */
  readonly memberId: () => bigint | undefined;
  /** Called once when the chain shows this node's membership ended. */
  readonly onMembershipEnded: (member: Member) => void;
  /** Chooses each peer's endpoint (gateway bridge or direct UDP); absent: the endpoints file as is. */
  readonly transport?: PeerTransport;
  /** Asks for a pass soon (when a first-handshake hold ends, initiator.ts); absent: the next tick. */
  readonly wake?: (reason: string) => void;
  /**
   * The interface came up with `meshIp` (a claimed one too, `included`): the mesh layer guards the mesh
   * port there at once, rather than once the member id is read back.
   */
  readonly onInterfaceUp?: (meshIp: string) => void;
  /** How long the higher-keyed side of a new pair waits for the other's first initiation (initiator.ts). */
  readonly handshakeHoldMs?: number;
  /** How a repeatedly lost interface backs off (restarts.ts); absent fields take the defaults. */
  readonly restartPolicy?: Partial<RestartPolicy>;
}

export interface Reconciler {
  pass(): Promise<void>;
  /**
   * This node's registration is included and its member id is being read back: opens the bridge links
   * to the active members of the current view (their connections too, link.ts; the hello waits for the
   * member id), so that the pass which brings the interface up finds them open. It configures no peer.
   * Nothing while this node is a member (its passes keep the links), or without a view or a bridge.
   */
  prepareLinks(): Promise<void>;
  /**
   * This node's registration is about to be submitted: opens, in the background, the sockets
   * `prepareLinks` will take for the same members (TCP to the gateway, no TLS; transport/ahead.ts), at
   * once, or with no view yet at the first pass that has one. Nothing once this node is a member.
   */
  connectAhead(): void;
  /**
   * This node's registration is included, and `claimed` is its record as the receipt states it
   * (register.ts `claimedRecord`), or undefined: the registration ended otherwise (the member id is
   * known, or the attempt failed). Until then, while this node has no member id, the next pass brings
   * the interface up with the claimed address and adds the peers the current (certified) view names,
   * before it syncs: the receipt decides no peer. A claim the view contradicts (an address or a member
   * id the view already holds, an address outside the mesh) is not used. After the sync, this node's
   * own record in the view (matched by its keys) is what counts, and corrects what the claim set; with
   * no record there yet, the interface stays as it is (no teardown), until the view reaches `block`,
   * where the receipt says the registration was included: a view that has and holds no active record of
   * this node refused it (its certificate did not verify), and what the claim set up goes.
   */
  included(claim: { readonly record: Member; readonly block: bigint } | undefined): void;
  /** The member id of the claim `included` holds (the receipt's word), until it is withdrawn. */
  claimedMemberId(): bigint | undefined;
}

/** Why an interface went away by itself, by the backend's error code (backend.ts `onLost`). */
const LOST = {
  WireGuardDaemonExited: {
    reason: "daemon-exited",
    message: "wireguard-go exited; restarting the interface",
  },
  WireGuardInterfaceGone: {
    reason: "interface-gone",
    message: "the WireGuard interface was deleted; restarting it",
  },
} as const;

function lostBy(error: unknown): (typeof LOST)[keyof typeof LOST] | undefined {
  for (const [code, lost] of Object.entries(LOST)) if (isAttestmeshError(error, code)) return lost;
  return undefined;
}

export function createReconciler(options: ReconcilerOptions): Reconciler {
  const { follower, backend, status, metrics, logger, mesh } = options;
  /** The address the interface was brought up with; undefined while it is down. */
  let interfaceAddress: string | undefined;
  let lastDropped = "";
  let endedMemberId: bigint | undefined;
  /** This node's record as its registration receipt claimed it, until its member id is known. */
  let claimed: Member | undefined;
  /**
   * The block the receipt says included this node's registration: the interface was (or may be)
   * brought up ahead of the view; a view at or past it without this node's active record refused it.
   * Kept when the claim goes (the member id is known), until this node's record counts.
   */
  let includedAt: bigint | undefined;
  const tieBreak = createHandshakeTieBreak({
    selfKey: options.keys.wireguard.publicKeyBase64,
    ...(options.handshakeHoldMs === undefined ? {} : { holdMs: options.handshakeHoldMs }),
  });
  let releaseTimer: NodeJS.Timeout | undefined;
  /** The per-peer route MTUs last set (gateway-path peers); empty while the interface is down. */
  let routeMtus: RouteMtus = new Map();
  /** The interface went away by itself and is not up again yet: the backend still holds what is left. */
  let lost = false;
  const restartPolicy = { ...DEFAULT_RESTART_POLICY, ...options.restartPolicy };
  const pacer = createRestartPacer(restartPolicy);
  /**
   * The interface has not come up since the node became a member (or since it was taken down): its
   * bring-up failed and is retried at the pacer's delays, as a restart is.
   */
  let startFailing = false;
  /** This pass tries to bring a lost (or never started) interface up (the pacer let it). */
  let attempting = false;
  let restartTimer: NodeJS.Timeout | undefined;
  /** The pacer's run of failures as logged: the first, then the 2nd, 4th, 8th… and one every 10 minutes. */
  const repeats = createRepeatLog();

  /** A pass when the pacer allows the next attempt: at once, or after its delay. */
  function wakeForRestart(delayMs: number): void {
    clearTimeout(restartTimer);
    if (options.wake === undefined) return;
    const wake = options.wake;
    if (delayMs <= 0) {
      wake("the WireGuard interface went away");
      return;
    }
    restartTimer = setTimeout(() => wake("WireGuard restart delay over"), delayMs);
    restartTimer.unref();
  }

  /**
   * One failure more of the pacer's run (`schedule`): the first at error level, the repeats as warnings
   * thinned as every repeating warning is (logRepeats.ts), each with the run's count and the delay.
   */
  function logFailure(
    schedule: RestartSchedule,
    fields: { reason: string; err: unknown },
    first: string,
    again: string,
  ): void {
    // The pacer begins a run (after one that ended, or a teardown): so does its log.
    if (schedule.failures === 1) repeats.recovered();
    const verdict = repeats.failed(Date.now());
    if (!verdict.log) return;
    const line = {
      interface: options.interfaceName,
      ...repeatFields(verdict),
      retryInMs: schedule.delayMs,
      ...fields,
    };
    if (verdict.failures === 1) logger.error(line, first);
    else logger.warn(line, `${again} (such repeats are ${REPEAT_LOG_NOTE})`);
  }

  /**
   * An attempt to bring the interface up ended: up (the pacer hears of it), or failed (it backs off).
   * The first failure of a run (a first bring-up: wireguard-go missing or dying at start) is logged at
   * error level; later ones as the restarts' repeats.
   */
  function attemptEnded(error: unknown): void {
    if (!attempting) return;
    attempting = false;
    const now = Date.now();
    if (interfaceAddress !== undefined) {
      pacer.up(now);
      return;
    }
    if (!lost && !startFailing) return;
    const schedule = pacer.failed(now);
    const reason = lost ? "restart-failed" : "start-failed";
    status.update({
      wireguardRestart: { reason, failures: schedule.failures, nextAttemptAt: schedule.notBefore },
    });
    logFailure(
      schedule,
      { reason, err: error },
      "bringing up the WireGuard interface failed; trying again after a delay",
      lost
        ? "bringing the WireGuard interface back failed; trying again after a delay"
        : "bringing up the WireGuard interface failed again; trying again after a delay",
    );
    wakeForRestart(schedule.delayMs);
  }

  /** True when a lost (or never started) interface's next attempt must wait (a pass is asked for then). */
  function restartHeld(): boolean {
    if (!lost && !startFailing) return false;
    const wait = pacer.waitMs(Date.now());
    if (wait > 0) {
      wakeForRestart(wait);
      return true;
    }
    pacer.attempt();
    attempting = true;
    const report = status.get().wireguardRestart;
    if (report?.nextAttemptAt !== undefined) {
      status.update({ wireguardRestart: { ...report, nextAttemptAt: undefined } });
    }
    return false;
  }

  /**
   * The interface went away by itself: forget everything set on it (its address, routes, the peers'
   * paths and handshakes), and ask for the pass that brings it up and applies it all again: at once, or
   * after the pacer's delay when the losses repeat. Once per loss: nothing when the interface was not
   * believed up (already forgotten, or this was its `up` failing).
   */
  function interfaceLost(error: AttestmeshError): void {
    const by = lostBy(error);
    if (by === undefined || interfaceAddress === undefined) return;
    const now = Date.now();
    // The attempt under way brought it up before it went again.
    if (attempting) {
      attempting = false;
      pacer.up(now);
    }
    const schedule = pacer.lost(now);
    interfaceAddress = undefined;
    routeMtus = new Map();
    lost = true;
    options.transport?.forget();
    // Every peer is added anew: the first-handshake tie-break applies as on a join, so two nodes that
    // lost their interfaces together do not cross their first initiations (initiator.ts).
    tieBreak.readding(status.get().peers.map((p) => p.publicKey));
    metrics.wgRestarts.inc({ reason: by.reason });
    metrics.peers.set({ state: "handshaken" }, 0);
    logFailure(
      schedule,
      { reason: by.reason, err: error },
      by.message,
      "the WireGuard interface went away again soon after it came back; restarting it after a delay",
    );
    // No peer is configured until the next pass: /healthz says so (interfaceUp, wg-configuring).
    status.update({
      interfaceUp: false,
      wireguard: "configuring",
      peers: [],
      lastError: { code: error.code, message: error.message.split("\n")[0] ?? "", at: now },
      wireguardRestart: {
        reason: by.reason,
        failures: schedule.failures,
        nextAttemptAt: schedule.delayMs > 0 ? schedule.notBefore : undefined,
      },
    });
    wakeForRestart(schedule.delayMs);
  }

  backend.onLost?.(interfaceLost);

  async function setRouteMtus(routes: RouteMtus): Promise<void> {
    if (backend.setRouteMtus === undefined) return;
    await backend.setRouteMtus(routes);
    routeMtus = routes;
  }

  function wakeAtRelease(): void {
    clearTimeout(releaseTimer);
    const at = tieBreak.nextRelease();
    if (at === undefined || options.wake === undefined) return;
    const wake = options.wake;
    releaseTimer = setTimeout(() => wake("first-handshake hold over"), Math.max(0, at - Date.now()));
    releaseTimer.unref();
  }

  function reportDropped(dropped: readonly DroppedRecord[]): void {
    const text = JSON.stringify(dropped, (_k, v) => (typeof v === "bigint" ? v.toString() : v));
    if (text === lastDropped) return;
    lastDropped = text;
    for (const record of dropped) {
      logger.warn(
        { memberId: record.memberId.toString(), reason: record.reason },
        "member record dropped: not a usable peer",
      );
    }
  }

  async function configure(self: Member, members: Iterable<Member>, block: bigint): Promise<void> {
    const meshIp = numberToIp(self.meshIp);
    const address = `${meshIp}/${mesh.prefixLength}`;
    const desired = computeDesiredPeers({
      members,
      self,
      mesh,
      endpoints: await options.endpoints.read(),
      keepaliveSeconds: options.keepaliveSeconds,
    });
    reportDropped(desired.dropped);
    // An attempt after a failure that went unlogged is no news either (logRepeats.ts).
    const level = (lost || startFailing) && repeats.quiet() ? "debug" : "info";
    if (interfaceAddress !== address) {
      status.update({ wireguard: "configuring" });
      logger[level]({ interface: options.interfaceName, address }, "bringing up the WireGuard interface");
      // The peers' bridge links open meanwhile: on a newcomer they stood between the interface and
      // its first `wg set` (one socket per member from the namespace helper, on the devnet).
      const linksOpened = options.transport?.prepare(desired.peers);
      try {
        await backend.up({
          name: options.interfaceName,
          privateKey: options.keys.wireguard.privateKey.reveal(),
          listenPort: options.listenPort,
          address,
        });
      } catch (error) {
        metrics.wgStartFailures.inc({ reason: lost ? "restart-failed" : "start-failed" });
        // A first bring-up that fails is paced like a restart (restartHeld, attemptEnded): the first
        // retry after 1 s, then 2, 4… 30 s, not one a poll.
        if (interfaceAddress === undefined && !attempting) {
          pacer.attempt();
          attempting = true;
          startFailing = true;
        }
        throw error;
      } finally {
        await linksOpened;
      }
      interfaceAddress = address;
      routeMtus = new Map(); // a new address drops the old one's routes (WireGuardBackend.up)
      status.update({ interfaceUp: true, meshIp });
      options.onInterfaceUp?.(meshIp);
      logger[level](
        { interface: options.interfaceName, address },
        lost ? "WireGuard interface up again; adding its peers" : "WireGuard interface up",
      );
      lost = false;
      startFailing = false;
    }
    const observed = await backend.peers();
    let current = observed;
    let planned = desired.peers;
    let triedFirst: ReadonlySet<string> | undefined;
    /** Peers whose direct test moved their endpoint in place in this pass (transport/selector.ts). */
    let moved: ReadonlySet<string> = new Set();
    /** Gateway-path peers' routes after this pass: larger datagrams where no wire limits them. */
    let gatewayRoutes: RouteMtus | undefined;
    if (options.transport !== undefined) {
      const planStarted = Date.now();
      const plan = await options.transport.plan(desired.peers, observed);
      logger.trace({ ms: Date.now() - planStarted }, "transport planned");
      planned = plan.peers;
      triedFirst = plan.triedFirst;
      moved = plan.moved;
      gatewayRoutes = new Map(
        planned
          .filter((p) => plan.viaGateway.has(p.config.publicKey))
          .flatMap((p) => p.config.allowedIps.map((cidr) => [cidr, WG_GATEWAY_MTU] as const)),
      );
      // Routes shrink before any endpoint changes (a peer leaving the gateway for a direct test or
      // for good must never get a datagram its underlay cannot carry); they grow after (below).
      const next = gatewayRoutes;
      await setRouteMtus(
        new Map(
          [...next]
            .filter(([cidr]) => routeMtus.has(cidr))
            .map(([cidr, mtu]) => [cidr, Math.min(mtu, routeMtus.get(cidr)!)] as const),
        ),
      );
      // Re-added peers handshake at once (a direct-path test proved by a handshake, or a fallback to
      // the gateway). A direct test's start is no re-add: the endpoint changes in place (`moved`),
      // keeping the session, so nothing sent meanwhile (a CSK request, a new connection) is lost.
      for (const key of plan.reset) await backend.removePeer(key);
      tieBreak.readding(plan.reset);
      current = observed.filter((p) => !plan.reset.has(p.publicKey));
    }
    // Our first initiations that crossed the peer's: re-added, so they initiate again at once.
    const crossed = tieBreak.crossed(current);
    if (crossed.size > 0) {
      for (const key of crossed) await backend.removePeer(key);
      tieBreak.readding(crossed);
      current = current.filter((p) => !crossed.has(p.publicKey));
      const ids = planned.filter((p) => crossed.has(p.config.publicKey)).map((p) => p.memberId.toString());
      logger.info(
        { peers: ids },
        "first handshake initiations crossed; re-adding the peer to initiate again",
      );
    }
    // A new peer whose key is lower than ours initiates; we only answer it for a moment, unless it
    // already tried to reach us before we knew it: then we initiate at once (initiator.ts).
    const diff = diffPeers(
      current,
      tieBreak.apply(
        planned.map((p) => p.config),
        current,
        undefined,
        triedFirst,
      ),
    );
    wakeAtRelease();
    const applyStarted = Date.now();
    const operations = await applyDiff(backend, diff);
    logger.trace({ ms: Date.now() - applyStarted, operations }, "WireGuard diff applied");
    if (gatewayRoutes !== undefined) await setRouteMtus(gatewayRoutes);
    // The in-place tests count only traffic that arrives after their endpoint moved.
    if (moved.size > 0) options.transport?.settle(await backend.peers());
    metrics.wgOperations.inc(operations);
    if (operations > 0) {
      // Keys of removed peers are only in the last status; added ones only in the desired set.
      const byKey = new Map(status.get().peers.map((p) => [p.publicKey, p.memberId]));
      for (const p of desired.peers) byKey.set(p.config.publicKey, p.memberId);
      const idsOf = (keys: readonly string[]) => keys.map((k) => byKey.get(k)?.toString() ?? k);
      logger[level](
        {
          block,
          added: idsOf(diff.add.map((p) => p.publicKey)),
          updated: idsOf(diff.update.map((p) => p.publicKey)),
          removed: idsOf(diff.remove),
          operations,
        },
        "WireGuard peers reconciled",
      );
    }
    // Gone again since the last await: the pass its loss asked for reports the interface.
    if (interfaceAddress === undefined) return;
    const handshakes = new Map(observed.map((p) => [p.publicKey, p.latestHandshake]));
    const peers: PeerReport[] = planned.map((p) => {
      const transport = options.transport?.report(p);
      return {
        memberId: p.memberId,
        appId: p.appId,
        meshIp: p.meshIp,
        publicKey: p.config.publicKey,
        endpoint: p.config.endpoint,
        // The transport remembers handshakes across the re-adds of its direct-path tests.
        latestHandshake: Math.max(handshakes.get(p.config.publicKey) ?? 0, transport?.latestHandshake ?? 0),
        ...(transport === undefined ? {} : { transport }),
      };
    });
    const live = peers.filter((p) => p.latestHandshake > 0).length;
    metrics.peers.set({ state: "desired" }, peers.length);
    metrics.peers.set({ state: "handshaken" }, live);
    if (options.transport !== undefined) {
      for (const path of ["gateway", "udp"] as const) {
        metrics.peers.set({ state: `via-${path}` }, peers.filter((p) => p.transport?.path === path).length);
      }
    }
    metrics.droppedRecords.set(desired.dropped.length);
    // The phase follows from these facts (phase.ts): configured, and how many peers handshook.
    status.update({ peers, droppedRecords: desired.dropped, wireguard: "configured" });
  }

  /**
   * The claimed record, if the view does not contradict it: no record under its member id (ids are
   * never reused), no active member at its address, an address of the mesh. Only its id (for the hello)
   * and address are the claim's; its keys are this node's own (register.ts checked them).
   */
  function usableClaim(view: MembershipSnapshot | undefined): Member | undefined {
    if (claimed === undefined || view === undefined || options.memberId() !== undefined) return undefined;
    // Only ahead of the view: once it reached the inclusion, it decides (see `included`).
    if (includedAt === undefined || view.block >= includedAt) return undefined;
    const claim = claimed;
    if (!Number.isInteger(claim.meshIp) || !containsIp(mesh, claim.meshIp)) return undefined;
    if (view.members.has(claim.memberId)) return undefined;
    for (const m of view.members.values()) {
      if (m.status === "active" && m.meshIp === claim.meshIp) return undefined;
    }
    return claim;
  }

  /** While the member id is read back after an inclusion: this node's active record in `view`, by its keys. */
  function ownByKeys(view: MembershipSnapshot): Member | undefined {
    if (claimed === undefined) return undefined;
    const claim = claimed;
    for (const m of view.members.values()) {
      if (m.status === "active" && isSameNode(m, claim)) return m;
    }
    return undefined;
  }

  async function teardown(): Promise<void> {
    const running = interfaceAddress !== undefined || lost;
    // When taking it down fails, everything stays as it was for the next pass to try again.
    if (running) await backend.down();
    // A run of failures (losses, or starts that never came up) ends with the interface.
    if (running || startFailing) {
      lost = false;
      startFailing = false;
      pacer.reset();
      clearTimeout(restartTimer);
      status.update({ wireguardRestart: undefined });
    }
    if (!running) {
      // An `up` that failed leaves "configuring" behind.
      if (status.get().wireguard !== "down") status.update({ wireguard: "down" });
      return;
    }
    interfaceAddress = undefined;
    routeMtus = new Map();
    status.update({ interfaceUp: false, peers: [], meshIp: undefined, wireguard: "down" });
    metrics.peers.set({ state: "desired" }, 0);
    metrics.peers.set({ state: "handshaken" }, 0);
    logger.info({ interface: options.interfaceName }, "WireGuard interface down");
  }

  /**
   * The members this node will peer with once included, from the view it verified while registering:
   * none to prepare once it is a member (its passes make its links), none known until it has a view.
   */
  function ahead():
    | { readonly state: "member" | "no view" }
    | { readonly state: "ready"; readonly members: Member[] } {
    if (options.memberId() !== undefined) return { state: "member" };
    const view = follower.current();
    if (view === undefined) return { state: "no view" };
    const own = `0x${Buffer.from(options.keys.wireguard.publicKeyBase64, "base64").toString("hex")}`;
    const members = [...view.members.values()].filter(
      (m) => m.status === "active" && !isStale(m.standing) && m.wireguardKey.toLowerCase() !== own,
    );
    return { state: "ready", members };
  }

  /** A registration about to be submitted asked for its links' sockets; done once a view names the members. */
  let aheadAsked = false;
  function connectAheadIfAsked(): void {
    if (!aheadAsked) return;
    const peers = ahead();
    if (peers.state === "no view") return;
    aheadAsked = false;
    if (peers.state === "ready") options.transport?.connectAhead(peers.members);
  }

  return {
    included(claim) {
      claimed = claim?.record;
      if (claim !== undefined) includedAt = claim.block;
    },

    claimedMemberId: () => claimed?.memberId,

    connectAhead() {
      aheadAsked = true;
      connectAheadIfAsked();
    },

    async prepareLinks() {
      const peers = ahead();
      if (options.transport === undefined || peers.state !== "ready") return;
      const started = Date.now();
      await options.transport.prepare(peers.members);
      logger.trace(
        { members: peers.members.length, ms: Date.now() - started },
        "bridge links opened ahead of membership",
      );
    },

    async pass() {
      try {
        // Just included, the member id not read back yet: the view this node verified while it
        // registered names its peers now; the sync below corrects what the claim set (issue 15).
        const early =
          interfaceAddress === undefined && !lost && !startFailing
            ? usableClaim(follower.current())
            : undefined;
        if (early !== undefined) {
          const view = follower.current()!;
          logger.debug(
            { memberId: early.memberId.toString(), block: view.block },
            "registration included: configuring the view's members ahead of this node's own record",
          );
          await configure(early, view.members.values(), view.block);
        }
        const snapshot = await follower.sync();
        // A registration submitted before this node's first view: its sockets open now.
        connectAheadIfAsked();
        const memberId = options.memberId();
        const pending = memberId === undefined && claimed !== undefined;
        const self =
          memberId === undefined
            ? pending
              ? ownByKeys(snapshot)
              : undefined
            : snapshot.members.get(memberId);
        // A lost interface's next attempt may have to wait (restarts.ts): the rest of the pass still runs.
        const held = self?.status === "active" && restartHeld();
        if (self?.status === "active") {
          includedAt = undefined;
          if (!held) await configure(self, snapshot.members.values(), snapshot.block);
        } else if (self !== undefined && memberId !== endedMemberId) {
          // Evicted or left: this node is no longer part of the mesh.
          endedMemberId = memberId;
          logger.error(
            { memberId: self.memberId.toString(), status: self.status, block: snapshot.block },
            self.status === "evicted"
              ? "this member was evicted by the cluster owner; leaving the mesh. Its app id is disallowed until the owner allows it again"
              : "this member left the cluster; leaving the mesh",
          );
          // Hand control back first: if taking the interface down fails, the next pass retries it.
          options.onMembershipEnded(self);
          await teardown();
        } else if (memberId === undefined && !pending) {
          await teardown();
        } else if (includedAt !== undefined && snapshot.block >= includedAt) {
          // Configured ahead of the view (`included`), which now holds the inclusion's block and no
          // active record of this node: its record was refused (its certificate did not verify).
          if (interfaceAddress !== undefined || lost) {
            logger.warn(
              { block: snapshot.block, includedAt },
              "this node's registration is not in its own verified view at the block that included it; taking down what the receipt set up ahead",
            );
            await teardown();
          }
        }
        // else: registered, but not confirmed at head − confirmations yet (phase stays waiting-peers).
        attemptEnded(undefined);
        metrics.lastReconcileBlock.set(Number(snapshot.block));
        // Up for a while since the last loss: the run of failures is over.
        const runOver = !lost && !pacer.active(Date.now());
        const run = status.get().wireguardRestart;
        if (runOver && run !== undefined) {
          logger.info(
            { interface: options.interfaceName, reason: run.reason, failures: run.failures },
            "the WireGuard interface stayed up; its run of failures is over",
          );
        }
        status.update({
          lastReconcileBlock: snapshot.block,
          lastReconcileAt: Date.now(),
          // While a restart waits, the loss stays the last error.
          ...(held ? {} : { lastError: undefined }),
          ...(runOver ? { wireguardRestart: undefined } : {}),
        });
      } catch (error) {
        attemptEnded(error);
        // The interface went away during this pass: the next one, asked for now (or after the pacer's
        // delay), brings it back.
        if (error instanceof AttestmeshError) interfaceLost(error);
        status.update({
          lastError: {
            code: error instanceof AttestmeshError ? error.code : "ReconcileFailed",
            message: scrubUrls(error instanceof Error ? (error.message.split("\n")[0] ?? "") : String(error)),
            at: Date.now(),
          },
        });
        throw error;
      }
    },
  };
}
