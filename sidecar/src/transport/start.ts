// Builds the transport layer from the configuration: the selector always, the gateway bridge when a
// gateway domain is set and the mode is not udp. Its sockets are opened where WireGuard can reach
// them: in WireGuard's network namespace when there is one (the devnet), else here.
import type { SidecarConfig } from "../config.ts";
import type { Logger } from "../log.ts";
import { createNetnsSocketFactory } from "../meshnet/netnsSockets.ts";
import { createLocalSocketFactory } from "../meshnet/socketFactory.ts";
import { type Bridge, startBridge } from "./bridge.ts";
import { createPeerTransport, type PeerTransport } from "./peers.ts";
import { createTransportSelector } from "./selector.ts";

export async function startTransport(options: {
  readonly config: SidecarConfig;
  readonly selfAppId: string;
  readonly logger: Logger;
}): Promise<PeerTransport> {
  const { config, logger } = options;
  let bridge: Bridge | undefined;
  if (config.transport !== "udp" && config.gatewayDomain !== undefined) {
    const factory =
      config.wgNetns === undefined
        ? createLocalSocketFactory()
        : createNetnsSocketFactory({ netns: config.wgNetns });
    try {
      bridge = await startBridge({
        selfAppId: options.selfAppId as `0x${string}`,
        factory,
        logger,
        wgListenPort: config.wgListenPort,
        gatewayDomain: config.gatewayDomain,
        ...(config.gatewayAddress === undefined ? {} : { gatewayAddress: config.gatewayAddress }),
        ingressPort: config.ingressPort,
      });
    } catch (error) {
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
    }),
    bridge,
    logger,
  });
}
