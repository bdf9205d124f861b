// Re-attestation for one membership, while the mesh runs: GET /attestation served on this member's
// mesh IP, and every peer of the certified view fetched from there and judged on the schedule of
// scheduler.ts. Refusals go to the attested follower, which takes the peer out of the view, then the
// caller's `onRefusal` reconciles at once (WireGuard) and publishes the status.
import type { CollateralSource } from "@attestmesh/shared/attestation/collateral.ts";
import { numberToIp } from "@attestmesh/shared/mesh/cidr.ts";
import type { AttestationHandler } from "../attestation.ts";
import type { ChainContext } from "../chain/client.ts";
import type { Logger } from "../log.ts";
import type { MeshSocketMode } from "../meshnet/socket.ts";
import type { SocketFactory } from "../meshnet/socketFactory.ts";
import type { Member } from "../model/member.ts";
import type { AttestedFollower } from "./follower.ts";
import { fetchMeshAttestation, meshSocketFactory, startMeshAttestationServer } from "./mesh.ts";
import type { ReattestMetrics } from "./metrics.ts";
import { createDeviceRevokedReader, createPeerPolicyReader } from "./policy.ts";
import { createReattestation, type Reattestation } from "./scheduler.ts";
import { judgeAttestation, judgePolicy, type PeerPolicy } from "./verdict.ts";

/** How long a peer has to answer GET /attestation over the mesh. */
export const ATTESTATION_FETCH_TIMEOUT_MS = 10_000;
/**
 * How long the connection to a never-judged peer may take to open, at first. A newcomer's first
 * connection often leaves before its WireGuard peering or its server is up; TCP would retransmit that
 * SYN only after 1 s, so the check gives up and is retried (every 250 ms) instead. It doubles every 8
 * failed tries (up to the fetch timeout), so a peer far away (a slow path through the gateway) is still
 * reached; a judged peer keeps the whole fetch timeout.
 */
export const FIRST_CONTACT_CONNECT_TIMEOUT_MS = 400;

/** The connect timeout for a never-judged peer after `failures` failed tries. */
export function firstContactConnectMs(failures: number): number {
  return Math.min(
    FIRST_CONTACT_CONNECT_TIMEOUT_MS * 2 ** Math.floor(failures / 8),
    ATTESTATION_FETCH_TIMEOUT_MS,
  );
}

/** A peer's attestation document, and the chain policy read started when its connection opened. */
interface FetchedAttestation {
  readonly document: unknown;
  readonly policy: Promise<PeerPolicy>;
}

export interface ReattestService {
  readonly reattestation: Reattestation;
  /** Resolves when the server closed and the loop ended. */
  readonly stopped: Promise<void>;
}

export async function startReattestService(options: {
  readonly chain: Pick<ChainContext, "reads" | "cluster" | "chainId">;
  readonly follower: AttestedFollower;
  readonly self: bigint;
  readonly meshIp: string;
  readonly port: number;
  readonly mode: MeshSocketMode;
  readonly netns: string | undefined;
  readonly periodMs: number;
  readonly collateral: CollateralSource;
  /** GET /attestation as this member answers it (served over the mesh). */
  readonly handler: AttestationHandler;
  readonly metrics: ReattestMetrics;
  readonly logger: Logger;
  readonly signal: AbortSignal;
  readonly onRefusal: () => void;
  readonly onChange: () => void;
  /** A verification of a peer passed (its CSK gate now admits it). */
  readonly onPassed?: (member: Member) => void;
  /** Whether a member is a WireGuard peer yet (scheduler.ts `peered`). */
  readonly peered?: (member: Member) => boolean;
  /** The caller's socket factory for the mesh (it closes it); without it one is made and closed here. */
  readonly factory?: SocketFactory;
  readonly now?: () => number;
}): Promise<ReattestService> {
  const { chain, follower, logger, metrics, mode } = options;
  const log = logger.child({ component: "reattest" });
  const factory = options.factory ?? meshSocketFactory(mode, options.netns);
  const served: AttestationHandler = async (url) => {
    const answer = await options.handler(url);
    metrics.bytes.inc({ direction: "sent" }, Buffer.byteLength(answer.body));
    return answer;
  };
  const server = await startMeshAttestationServer({
    factory,
    mode,
    meshIp: options.meshIp,
    port: options.port,
    handler: served,
    logger: log,
  });
  const policy = createPeerPolicyReader(chain.reads, chain.cluster);
  const deviceRevoked = createDeviceRevokedReader(chain.reads, chain.cluster);
  const now = options.now ?? Date.now;
  const reattestation = createReattestation<FetchedAttestation>({
    peers: () => follower.certifiedMembers().filter((m) => m.memberId !== options.self),
    fetch: async (member, nonce, firstContact) => {
      // The policy read starts the moment the connection opens, so the chain reads run while the peer
      // makes its quote rather than after it (a newcomer's CSK waits on this verdict). The head's policy
      // is then read up to one fetch earlier; a policy change after it reaches the verdict through the
      // re-judgement every new chain view brings, and the CSK server's head standing check.
      let policyRead: Promise<PeerPolicy> | undefined;
      const document = await fetchMeshAttestation({
        factory,
        mode,
        meshIp: numberToIp(member.meshIp),
        port: options.port,
        nonce,
        timeoutMs: ATTESTATION_FETCH_TIMEOUT_MS,
        ...(firstContact === undefined
          ? {}
          : { connectTimeoutMs: firstContactConnectMs(firstContact.failures) }),
        onConnected: () => {
          policyRead = policy(member.memberId);
          // Awaited (and its error thrown) by judge; never an unhandled rejection meanwhile.
          policyRead.catch(() => {});
        },
        onBytes: (bytes) => metrics.bytes.inc({ direction: "received" }, bytes),
      });
      return { document, policy: policyRead ?? policy(member.memberId) };
    },
    judge: async (member, nonce, fetched) =>
      judgeAttestation({
        member,
        chainId: chain.chainId,
        cluster: chain.cluster,
        nonce,
        document: fetched.document,
        policy: await fetched.policy,
        deviceRevoked,
        collateral: options.collateral,
        at: Math.floor(now() / 1000),
      }),
    rejudge: async (member, verified) =>
      judgePolicy(verified, await policy(member.memberId, verified.deviceId)),
    head: async () => (await chain.reads.agreedBlock(0)).number,
    periodMs: options.periodMs,
    logger: log,
    now,
    observe: (outcome, ms) => {
      metrics.observe(outcome, ms);
      options.onChange();
    },
    onRefusalChange: () => {
      follower.refusalsChanged();
      options.onRefusal();
    },
    ...(options.onPassed === undefined ? {} : { onPassed: options.onPassed }),
    ...(options.peered === undefined ? {} : { peered: options.peered }),
  });
  const stopped = reattestation.run(options.signal).finally(async () => {
    await server.close();
    if (options.factory === undefined) await factory.close();
  });
  return { reattestation, stopped };
}
