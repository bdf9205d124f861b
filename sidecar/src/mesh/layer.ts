// The mesh layer as main.ts sees it: one per sidecar, living across memberships. It owns the CSK
// custody and a stable peer table (both handed to the application API), runs one `MeshRuntime` per
// membership once the WireGuard interface is up, and keeps the status facts (CSK held, convergence,
// mesh socket open) and metrics current; the phase follows from them (phase.ts).
import type { CollateralSource } from "@attestmesh/shared/attestation/collateral.ts";
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
  /** Keeps the mesh port to the WireGuard interface (the backend's `guardPort`); before the socket opens. */
  readonly guardPort?: (meshIp: string, port: number) => Promise<void>;
  /** Peer re-attestation: this member's GET /attestation for the mesh, the collateral, the metrics. */
  readonly reattest?: {
    readonly handler: AttestationHandler;
    readonly collateral: CollateralSource;
    readonly metrics: ReattestMetrics;
  };
}): MeshLayer {
  const { config, status, metrics, logger } = options;
  const custody: CskCustody = createCskCustody();
  const listeners = new Set<(event: HeartbeatEvent) => void>();
  let runtime: MeshRuntime | undefined;

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
      // One socket factory for this membership's mesh, started now (in the devnet a helper process in the
      // node's namespace takes a few hundred ms to start): the socket and the attestation server bind the
      // moment the interface is up, and peers judging this newcomer wait for the latter.
      const sockets = meshSocketFactory(meshSocketMode(config), config.wgNetns);
      sockets.warm?.();
      // The mesh socket binds the mesh IP, which exists once the reconciler brought the interface up.
      let attempt = 0;
      while (!signal.aborted && runtime === undefined) {
        const s = status.get();
        if (s.interfaceUp && s.meshIp !== undefined && s.memberId === m.memberId) {
          try {
            await options.guardPort?.(s.meshIp, config.meshPort);
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
            attempt += 1;
            if (attempt % 10 === 1)
              logger.warn({ err, attempt }, "mesh port guard or socket not available yet; retrying");
          }
        }
        // Waiting for the interface: look again soon (the newcomer's CSK and its peers' checks of it wait
        // on this runtime); after a failed start, less often.
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
        // runtime from starting.
        runtime = undefined;
        await sockets.close();
        publish();
      }
    },
    ended() {
      custody.clear();
      publish();
    },
    reattestation: () => runtime?.reattestation,
    wake: () => runtime?.wake(),
  };
}
