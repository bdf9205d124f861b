// Test support for the transport tests on loopback: the devnet's SNI gateway with the fake WireGuards of
// two nodes, A and B; a TLS stream into a node's ingress as anyone on the internet can open one; a signed
// hello for such a stream; and a TCP proxy that delays a connection as a busy gateway or a slow peer would.
import { createServer, connect as netConnect } from "node:net";
import { type TLSSocket, connect as tlsConnect } from "node:tls";
import { type SniGateway, startSniGateway } from "@attestmesh/devnet/orchestration/gateway.ts";
import { gatewayServerName } from "@attestmesh/shared/gateway/serverName.ts";
import type { Logger } from "pino";
import type { SigningKey } from "../../src/meshnet/crypto.ts";
import { encodeHello, type Hello } from "../../src/transport/hello.ts";
import { type FakeWireGuard, fakeWireGuard, freePort, TEST_CLUSTER } from "../helpers.ts";

export interface LoopbackNet {
  readonly gateway: SniGateway;
  /** The port every node's ingress listens on, each node on its own loopback address. */
  readonly ingressPort: number;
  readonly wgA: FakeWireGuard;
  readonly wgB: FakeWireGuard;
  /**
   * A TLS session to `appId`'s ingress through the gateway; rejects if the gateway closes it during the
   * handshake. `closed` settles when the session closes.
   */
  stream(appId: string): Promise<{ tls: TLSSocket; closed: Promise<void> }>;
  /** Closes the gateway and both WireGuards (close the bridges first). */
  close(): Promise<void>;
}

/** The gateway on 127.0.0.1 for `domain`, routing each app id to the host `route` names. */
export async function startLoopbackNet(options: {
  readonly domain: string;
  readonly route: (appId: string) => string | undefined;
  readonly logger: Logger;
}): Promise<LoopbackNet> {
  const { domain } = options;
  const gateway = await startSniGateway({ host: "127.0.0.1", port: 0, ...options });
  const ingressPort = await freePort();
  const wgA = await fakeWireGuard();
  const wgB = await fakeWireGuard();
  return {
    gateway,
    ingressPort,
    wgA,
    wgB,
    async stream(appId) {
      const tls = tlsConnect({
        host: "127.0.0.1",
        port: gateway.port,
        servername: gatewayServerName(appId, ingressPort, domain),
        rejectUnauthorized: false,
      });
      tls.on("error", () => {});
      const closed = new Promise<void>((resolve) => tls.once("close", () => resolve()));
      await new Promise<void>((resolve, reject) => {
        tls.once("secureConnect", () => resolve());
        void closed.then(() => reject(new Error(`${appId}'s ingress: closed during the TLS handshake`)));
      });
      return { tls, closed };
    },
    async close() {
      wgA.socket.close();
      wgB.socket.close();
      await gateway.close();
    },
  };
}

/**
 * A hello of the test cluster on the session whose keying material is `ekm`, stamped now with a fresh
 * nonce and signed by `key`; `fields` names the members and may change any other field.
 */
export function signedHello(
  key: SigningKey,
  ekm: Uint8Array,
  fields: Pick<Hello, "from" | "to"> & Partial<Hello>,
): Buffer {
  return encodeHello(
    {
      ...TEST_CLUSTER,
      timestampMs: BigInt(Date.now()),
      nonce: crypto.getRandomValues(new Uint8Array(16)),
      ...fields,
    },
    ekm,
    key.sign,
  );
}

/**
 * A TCP proxy on 127.0.0.1 to `port`: it connects upstream `connectMs` after a client does, and delays
 * every chunk back, and the close after them, by `downMs`.
 */
export async function startDelayingProxy(
  port: number,
  delays: { readonly connectMs: number; readonly downMs: number },
): Promise<{ port: number; close(): void }> {
  const server = createServer((client) => {
    client.pause();
    client.on("error", () => undefined);
    const timer = setTimeout(() => {
      const upstream = netConnect(port, "127.0.0.1");
      upstream.on("error", () => client.destroy());
      client.on("close", () => upstream.destroy());
      client.pipe(upstream);
      upstream.on("data", (chunk) => setTimeout(() => client.write(chunk), delays.downMs));
      upstream.on("close", () => setTimeout(() => client.destroy(), delays.downMs));
      client.resume();
    }, delays.connectMs);
    client.on("close", () => clearTimeout(timer));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  return {
    port: typeof address === "object" && address !== null ? address.port : 0,
    close: () => server.close(),
  };
}
