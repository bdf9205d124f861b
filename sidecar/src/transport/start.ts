// Builds the transport layer from the configuration: the selector always, the gateway bridge when a
// gateway domain is set and the mode is not udp. Its sockets are opened where WireGuard can reach
// them: in WireGuard's network namespace when there is one (the devnet), else here.
import type { Registry } from "prom-client";
import type { Address, Hex } from "viem";
import type { SidecarConfig } from "../config.ts";
import type { Logger } from "../log.ts";
import { loadSodium, signingKeyFromSeed } from "../meshnet/crypto.ts";
import { createNetnsSocketFactory } from "../meshnet/netnsSockets.ts";
import { createLocalSocketFactory } from "../meshnet/socketFactory.ts";
import type { Secret } from "../secret.ts";
import { type Bridge, startBridge } from "./bridge.ts";
import { createTransportMetrics } from "./metrics.ts";
import { createPeerTransport, type PeerTransport } from "./peers.ts";
import { createTransportSelector } from "./selector.ts";

/** Who this node is on the gateway leg, and whom it accepts there (hello.ts). */
export interface TransportIdentity {
  readonly chainId: number;
  readonly cluster: Address;
  /** The Ed25519 identity key's seed; it signs this node's hellos. */
  readonly identitySecret: Secret<Uint8Array>;
  readonly selfMemberId: () => bigint | undefined;
  /** The identity key a peer's hello must be signed with; undefined for anyone not a current member. */
  readonly identityKey: (memberId: bigint) => Uint8Array | Hex | undefined;
}

export async function startTransport(options: {
  readonly config: SidecarConfig;
  readonly identity: TransportIdentity;
  /** Whether this node tests a new peer's direct path first (selector.ts): the lower WireGuard key does. */
  readonly testsFirst?: (peerKey: string) => boolean;
  readonly registry: Registry;
  readonly logger: Logger;
}): Promise<PeerTransport> {
  const { config, logger, identity } = options;
  let bridge: Bridge | undefined;
  if (config.transport !== "udp" && config.gatewayDomain !== undefined) {
    await loadSodium();
    const seed = Uint8Array.from(identity.identitySecret.reveal());
    const key = signingKeyFromSeed(seed);
    seed.fill(0);
    const factory =
      config.wgNetns === undefined
        ? createLocalSocketFactory()
        : createNetnsSocketFactory({ netns: config.wgNetns });
    try {
      const started = await startBridge({
        signer: {
          chainId: identity.chainId,
          cluster: identity.cluster,
          selfMemberId: identity.selfMemberId,
          sign: (message) => key.sign(message),
        },
        identityKey: identity.identityKey,
        factory,
        logger,
        metrics: createTransportMetrics(options.registry),
        helloTimeoutMs: config.gatewayHelloTimeoutMs,
        wgListenPort: config.wgListenPort,
        gatewayDomain: config.gatewayDomain,
        ...(config.gatewayAddress === undefined ? {} : { gatewayAddress: config.gatewayAddress }),
        ingressPort: config.ingressPort,
      });
      bridge = {
        ...started,
        async close() {
          await started.close();
          key.destroy();
        },
      };
    } catch (error) {
      key.destroy();
      await factory.close();
      throw error;
    }
  } else if (config.transport === "auto") {
    logger.info("no ATTESTMESH_GATEWAY_DOMAIN: peers are reached over direct UDP only");
  }
  return createPeerTransport({
    selector: createTransportSelector({
      mode: config.transport,
      keepaliveSeconds: config.wgKeepaliveSeconds,
      retryBaseMs: config.directRetrySeconds * 1000,
      retryMaxMs: config.directRetryMaxSeconds * 1000,
      ...(options.testsFirst === undefined ? {} : { testsFirst: options.testsFirst }),
    }),
    bridge,
    logger,
  });
}
