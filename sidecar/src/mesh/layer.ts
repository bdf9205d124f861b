// The mesh layer as main.ts sees it: one per sidecar, living across memberships. It owns the CSK
// custody and a stable peer table (both handed to the application API), runs one `MeshRuntime` per
// membership once the WireGuard interface is up with the address the view gives this member, and keeps
// the status facts (CSK held, convergence, mesh socket open) and metrics current; the phase follows
// from them (phase.ts).
//
// What does not need the member id is done before it is read back, so the runtime (and the server
// peers judging a newcomer wait for) opens the moment it is: the membership's socket factory starts
// while the registration is on its way (`prepare`), and the mesh port is guarded as soon as the
// interface has an address (`interfaceUp`), a claimed one too. The guard follows the interface's
// address, except that it stays on the address a runtime binds until that runtime's sockets closed.
import type { CollateralSource } from "@attestmesh/shared/attestation/collateral.ts";
import { numberToIp } from "@attestmesh/shared/mesh/cidr.ts";
import type { AttestationHandler } from "../attestation.ts";
import type { ChainContext } from "../chain/client.ts";
import type { ClusterReader } from "../chain/cluster.ts";
import type { MembershipFollower } from "../chain/follower.ts";
import type { SidecarConfig } from "../config.ts";
import { type CskCustody, type CskHolder, createCskCustody } from "../csk/holder.ts";
import type { CskServePolicy } from "../csk/server.ts";
import type { HeartbeatEvent, PeerTable } from "../heartbeat/service.ts";
import type { KeySource, NodeKeys } from "../keys.ts";
import type { Logger } from "../log.ts";
import { loadSodium } from "../meshnet/crypto.ts";
import type { SocketFactory } from "../meshnet/socketFactory.ts";
import type { Member } from "../model/member.ts";
import type { AttestedFollower } from "../reattest/follower.ts";
import { meshSocketFactory } from "../reattest/mesh.ts";
import type { ReattestMetrics } from "../reattest/metrics.ts";
import type { Reattestation } from "../reattest/scheduler.ts";
import { type PollCadence, sleep } from "../sleep.ts";
import type { StatusStore } from "../status.ts";
import { hexToWgBase64 } from "../wireguard/keys.ts";
import type { MeshMetrics } from "./metrics.ts";
import { type MeshRuntime, meshSocketMode, startMeshRuntime } from "./runtime.ts";

export interface MeshLayer {
  readonly csk: CskHolder;
  readonly peers: PeerTable;
  /** Runs the mesh for one membership until `signal` aborts. */
  runMembership(membership: {
    readonly memberId: bigint;
    readonly chain: ChainContext;
    readonly reader: ClusterReader;
    readonly follower: MembershipFollower;
    /** A record read outside the view, if its certificate verified (else undefined). */
    readonly certified: (record: Member | undefined) => Promise<Member | undefined>;
    readonly keys: NodeKeys;
    readonly signal: AbortSignal;
    /** The view with refused peers taken out (reattest/follower.ts); needed to re-attest peers. */
    readonly attested?: AttestedFollower;
    /** A peer was refused or admitted again: reconcile WireGuard now. */
    readonly onRefusal?: () => void;
  }): Promise<void>;
  /** The membership ended: zero the CSK. */
  ended(): void;
  /**
   * This node's registration is about to be submitted: start the next membership's socket factory now
   * (in the devnet a helper process in the node's namespace, a few hundred ms to start).
   */
  prepare(): void;
  /** The WireGuard interface came up with `meshIp` (a claimed one too): guard the mesh port there now. */
  interfaceUp(meshIp: string): void;
  /** Shutdown: closes a socket factory `prepare` started that no membership took. */
  close(): Promise<void>;
  /** Peer re-attestation of the running membership, if any. */
  reattestation(): Reattestation | undefined;
  /** Runs a CSK tick now (a verified push may name a CSK event). */
  wake(): void;
}

export function createMeshLayer(options: {
  readonly config: SidecarConfig;
  readonly keySource: KeySource;
  readonly status: StatusStore;
  readonly metrics: MeshMetrics;
  readonly logger: Logger;
  readonly servePolicy?: CskServePolicy;
  /** The pollers' cadence (the CSK tick's interval at rest). */
  readonly cadence?: PollCadence;
  /**
   * Keeps the mesh port to the WireGuard interface (the backend's `guardPort`, which replaces the guard
   * of any other address); before the socket opens.
   */
  readonly guardPort?: (meshIp: string, port: number) => Promise<void>;
  /** Makes a membership's socket factory; default the one the config's mode calls for (reattest/mesh.ts). */
  readonly socketFactory?: () => SocketFactory;
  /** Peer re-attestation: this member's GET /attestation for the mesh, the collateral, the metrics. */
  readonly reattest?: {
    readonly handler: AttestationHandler;
    readonly collateral: CollateralSource;
    readonly metrics: ReattestMetrics;
  };
}): MeshLayer {
  const { config, status, metrics, logger } = options;
  const socketFactory =
    options.socketFactory ?? (() => meshSocketFactory(meshSocketMode(config), config.wgNetns));
  const custody: CskCustody = createCskCustody();
  const listeners = new Set<(event: HeartbeatEvent) => void>();
  let runtime: MeshRuntime | undefined;
  /** The next membership's socket factory, started ahead of it (`prepare`); no membership's yet. */
  let next: SocketFactory | undefined;
  /** The last guard asked for: the address, and whether it is in place. */
  let guard: { readonly meshIp: string; readonly applied: Promise<void> } | undefined;
  /** The address a runtime binds or holds, from before its guard is checked until its sockets closed. */
  let bound: string | undefined;

  /** Guards the mesh port at `meshIp` (in place of any other address). */
  function applyGuard(meshIp: string): Promise<void> {
    const applied = options.guardPort?.(meshIp, config.meshPort) ?? Promise.resolve();
    guard = { meshIp, applied };
    // Whoever binds `meshIp` awaits it, and applies it again if it failed.
    applied.catch(() => {});
    return applied;
  }

  /** Resolves once the mesh port at `meshIp` is guarded: by the last guard, if it is for `meshIp` and held. */
  async function guarded(meshIp: string): Promise<void> {
    const last = guard;
    const held =
      last?.meshIp === meshIp &&
      (await last.applied.then(
        () => true,
        () => false,
      ));
    if (!held) await applyGuard(meshIp);
  }

  /** Hands a heartbeat event to the layer's listeners (the application API). */
  function forward(event: HeartbeatEvent): void {
    for (const listener of listeners) {
      try {
        listener(event);
      } catch {
        // A listener's failure is its own.
      }
    }
  }

  /** Copies the CSK and heartbeat state into the status and metrics. */
  function publish(): void {
    const held = custody.current();
    const rt = runtime;
    const acquired = rt?.manager.acquired() ?? false;
    const peers = rt?.heartbeat.peers() ?? [];
    const converged = rt?.heartbeat.converged() ?? false;
    status.update({
      cskEpoch: held?.epoch,
      cskCommitment: held?.commitment,
      cskAcquired: acquired,
      chainCskEpoch: rt?.manager.chainState()?.epoch,
      meshPeers: peers.map((p) => ({
        memberId: p.memberId,
        live: p.live,
        lastHeartbeat: p.lastHeartbeatMs,
        ...(p.counter === undefined || p.sentAtMs === undefined || p.epoch === undefined
          ? {}
          : {
              heartbeat: {
                epoch: p.epoch,
                holdsCsk: p.holdsCsk,
                counter: p.counter,
                sentAtMs: p.sentAtMs,
                heard: p.heard,
              },
            }),
      })),
      converged,
      meshRunning: rt !== undefined,
      peerAttestations: rt?.reattestation?.report() ?? [],
    });
    metrics.cskEpoch.set(held === undefined ? -1 : Number(held.epoch));
    metrics.cskAcquired.set(acquired ? 1 : 0);
    metrics.livePeers.set(peers.filter((p) => p.live).length);
    metrics.converged.set(converged ? 1 : 0);
  }

  return {
    csk: custody,
    peers: {
      peers: () => runtime?.heartbeat.peers() ?? [],
      live: () => runtime?.heartbeat.live() ?? [],
      converged: () => runtime?.heartbeat.converged() ?? false,
      onEvent(listener) {
        listeners.add(listener);
        return () => listeners.delete(listener);
      },
    },
    async runMembership(m) {
      const { signal } = m;
      await loadSodium();
      // One socket factory for this membership's mesh, closed when it ends, so no socket this membership
      // asked for opens after it. Usually `prepare` started it while the registration was on its way
      // (in the devnet a helper process takes a few hundred ms to start); else it starts now. The socket
      // and the attestation server bind the moment the address is confirmed, and peers judging this
      // newcomer wait for the latter.
      const sockets = next ?? socketFactory();
      next = undefined;
      sockets.warm?.();
      // The mesh socket binds the mesh IP, which exists once the reconciler brought the interface up.
      // The interface may carry the address the registration receipt claims (reconciler.ts `included`):
      // the runtime binds and serves only on the one this member's record in the view holds.
      let attempt = 0;
      while (!signal.aborted && runtime === undefined) {
        const s = status.get();
        const own = m.follower.current()?.members.get(m.memberId);
        const confirmed = own?.status === "active" && s.meshIp === numberToIp(own.meshIp);
        if (s.interfaceUp && s.meshIp !== undefined && s.memberId === m.memberId && confirmed) {
          // Held from before the guard is checked: `interfaceUp` must not move the guard off this address
          // while the runtime's sockets open or stay open on it.
          bound = s.meshIp;
          try {
            await guarded(s.meshIp);
            runtime = await startMeshRuntime({
              config,
              chain: m.chain,
              reader: m.reader,
              follower: m.follower,
              certified: m.certified,
              keys: m.keys,
              keySource: options.keySource,
              memberId: m.memberId,
              meshIp: s.meshIp,
              sockets,
              custody,
              metrics,
              logger,
              signal,
              ...(options.servePolicy === undefined ? {} : { servePolicy: options.servePolicy }),
              ...(options.cadence === undefined ? {} : { cadence: options.cadence }),
              onChange: publish,
              onEvent: forward,
              ...(options.reattest === undefined || m.attested === undefined
                ? {}
                : {
                    reattest: {
                      ...options.reattest,
                      follower: m.attested,
                      onRefusal: m.onRefusal ?? (() => {}),
                      // The reconciler's last pass: the peers it gave WireGuard, by member id and key.
                      peered: (member) => {
                        const key = hexToWgBase64(member.wireguardKey);
                        return status
                          .get()
                          .peers.some((p) => p.memberId === member.memberId && p.publicKey === key);
                      },
                    },
                  }),
            });
          } catch (err) {
            // Nothing of it stayed open (startMeshRuntime closes what it opened when it fails).
            bound = undefined;
            attempt += 1;
            if (attempt % 10 === 1)
              logger.warn({ err, attempt }, "mesh port guard or socket not available yet; retrying");
          }
        }
        // Waiting for the interface and the view's record: look again soon (the newcomer's CSK and its
        // peers' checks of it wait on this runtime); after a failed start, less often.
        if (runtime === undefined) await sleep(attempt === 0 ? 25 : 200, signal);
      }
      const rt = runtime;
      if (rt === undefined) {
        await sockets.close();
        return;
      }
      publish();
      try {
        await rt.stopped;
      } catch (err) {
        // Only once its CSK loop ended: a publish in the loop threw, or its socket or re-attestation failed
        // to stop.
        logger.error({ err }, "mesh runtime ended with an error; releasing this membership's sockets");
      } finally {
        // Let go of the runtime first: a factory that fails to close must not keep the next membership's
        // runtime from starting. Its sockets closed when it stopped: the guard may follow the interface.
        runtime = undefined;
        bound = undefined;
        await sockets.close();
        publish();
      }
    },
    ended() {
      custody.clear();
      publish();
    },
    prepare() {
      if (next !== undefined) return;
      next = socketFactory();
      next.warm?.();
    },
    interfaceUp(meshIp) {
      // A runtime's sockets are on another address: the guard stays there; the next runtime to start
      // guards its own address first.
      if (bound !== undefined && bound !== meshIp) return;
      applyGuard(meshIp).catch((err: unknown) =>
        logger.warn(
          { err, meshIp },
          "cannot guard the mesh port yet; it is guarded again before the mesh socket opens",
        ),
      );
    },
    async close() {
      const unused = next;
      next = undefined;
      await unused?.close();
    },
    reattestation: () => runtime?.reattestation,
    wake: () => runtime?.wake(),
  };
}
