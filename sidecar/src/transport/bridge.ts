// The UDP↔TLS bridge that carries WireGuard through the dstack gateway: one link per peer (link.ts),
// each with a loopback UDP port that is WireGuard's endpoint for that peer on the gateway path, and
// one ingress (ingress.ts) where peers' streams arrive. dstack CVMs take no inbound UDP, but the
// gateway forwards TLS by SNI (`<app-id>-<port>s.<domain>`, passthrough) to a CVM port.
import { gatewayServerName } from "@attestmesh/shared/gateway/serverName.ts";
import type { BackoffOptions } from "../backoff.ts";
import type { Logger } from "../log.ts";
import type { SocketFactory } from "../meshnet/socketFactory.ts";
import { type Ingress, startIngress } from "./ingress.ts";
import { createLink, type Link, type LinkStatus } from "./link.ts";
import { selfSignedCertificate } from "./tlsCert.ts";

export interface BridgeOptions {
  readonly selfAppId: `0x${string}`;
  readonly factory: SocketFactory;
  readonly logger: Logger;
  /** WireGuard's UDP listen port, on the loopback of the namespace the factory opens sockets in. */
  readonly wgListenPort: number;
  /** The gateway's domain: a peer is reached as `<app-id>-<ingressPort>s.<domain>`. */
  readonly gatewayDomain: string;
  /** host:port to open TCP to instead of `<sni>:443` (the devnet has no DNS). */
  readonly gatewayAddress?: { readonly host: string; readonly port: number };
  /** The ingress's port; peers are assumed to use the same one (it is in their SNI). */
  readonly ingressPort: number;
  readonly ingressHost?: string;
  readonly backoff?: BackoffOptions;
  readonly random?: () => number;
  readonly queueLimit?: number;
  readonly keepaliveMs?: number;
  readonly idleTimeoutMs?: number;
}

export interface Bridge {
  /** Makes the links exactly `appIds`; returns WireGuard's gateway endpoint per app id (lowercase). */
  setPeers(appIds: readonly string[]): Promise<ReadonlyMap<string, string>>;
  /** The link of a peer, if any. */
  status(appId: string): LinkStatus | undefined;
  /** Ingress connections refused, by reason. */
  refused(): Readonly<Record<string, number>>;
  close(): Promise<void>;
}

const LOOPBACK = "127.0.0.1";

export async function startBridge(options: BridgeOptions): Promise<Bridge> {
  const { factory, logger } = options;
  const selfAppId = options.selfAppId.toLowerCase() as `0x${string}`;
  const links = new Map<string, Link>();
  const log = logger.child({ component: "bridge" });
  const { key, cert } = await selfSignedCertificate();
  const ingressHost = options.ingressHost ?? "0.0.0.0";
  const server = await factory.listen(ingressHost, options.ingressPort);
  const ingress: Ingress = startIngress({
    server,
    selfAppId,
    key,
    cert,
    logger: log,
    peer: (appId) => links.get(appId.toLowerCase()),
    ...timings(options),
  });
  log.info(
    {
      ingress: `${ingressHost}:${options.ingressPort}`,
      gatewayDomain: options.gatewayDomain,
      gatewayAddress: options.gatewayAddress
        ? `${options.gatewayAddress.host}:${options.gatewayAddress.port}`
        : null,
    },
    "gateway bridge listening",
  );
  let closed = false;
  // setPeers calls run one at a time, so two reconciles never open two links for one peer.
  let queue: Promise<unknown> = Promise.resolve();

  async function apply(appIds: readonly string[]): Promise<ReadonlyMap<string, string>> {
    const wanted = new Set(appIds.map((a) => a.toLowerCase()));
    for (const [appId, link] of links) {
      if (!wanted.has(appId)) {
        link.close();
        links.delete(appId);
      }
    }
    for (const appId of wanted) {
      if (links.has(appId) || closed) continue;
      const serverName = gatewayServerName(appId, options.ingressPort, options.gatewayDomain);
      const udp = await factory.udp(LOOPBACK, 0);
      if (closed) {
        udp.close();
        break;
      }
      links.set(
        appId,
        createLink({
          appId: appId as `0x${string}`,
          selfAppId,
          udp,
          wgHost: LOOPBACK,
          wgPort: options.wgListenPort,
          target: {
            host: options.gatewayAddress?.host ?? serverName,
            port: options.gatewayAddress?.port ?? 443,
            serverName,
          },
          factory,
          logger: log,
          ...(options.backoff === undefined ? {} : { backoff: options.backoff }),
          ...(options.random === undefined ? {} : { random: options.random }),
          ...(options.queueLimit === undefined ? {} : { queueLimit: options.queueLimit }),
          ...timings(options),
        }),
      );
    }
    return new Map([...links].map(([appId, link]) => [appId, link.localEndpoint]));
  }

  return {
    setPeers(appIds) {
      const result = queue.then(() => apply(appIds));
      queue = result.catch(() => undefined);
      return result;
    },
    status: (appId) => links.get(appId.toLowerCase())?.status(),
    refused: () => ingress.refused(),
    async close() {
      closed = true;
      await queue;
      for (const link of links.values()) link.close();
      links.clear();
      await ingress.close();
      await factory.close();
    },
  };
}

function timings(options: BridgeOptions): { keepaliveMs?: number; idleTimeoutMs?: number } {
  return {
    ...(options.keepaliveMs === undefined ? {} : { keepaliveMs: options.keepaliveMs }),
    ...(options.idleTimeoutMs === undefined ? {} : { idleTimeoutMs: options.idleTimeoutMs }),
  };
}
