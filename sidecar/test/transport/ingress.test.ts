// Attacks on the ingress, with real TLS through the devnet's SNI gateway on loopback (the gateway splices
// bytes, like dstack's passthrough, so both sidecars hold one TLS session). Node A is the victim: its
// own stream to B cannot open, so its WireGuard's datagrams to B ride the stream B opened to A's
// ingress — the position in which the security review's impostor took 113 of 143 of A's datagrams.
// Every attacker tries while A's WireGuard keeps sending to B, and each is checked at every moment, not
// only at the end: B receives every datagram, no attacker receives one, A's link to B never holds any
// stream but B's, nothing an attacker sends reaches A's WireGuard, and every refusal is counted by
// reason, logged, and survived.
import assert from "node:assert/strict";
import type { Socket as UdpSocket } from "node:dgram";
import { once } from "node:events";
import { after, before, describe, it } from "node:test";
import { createServer as createTlsServer, type TLSSocket, type Server as TlsServer } from "node:tls";
import { Registry } from "prom-client";
import { loadSodium, type SigningKey, signingKeyFromSeed } from "../../src/meshnet/crypto.ts";
import { createLocalSocketFactory } from "../../src/meshnet/socketFactory.ts";
import { type Bridge, type BridgeOptions, startBridge } from "../../src/transport/bridge.ts";
import { createFrameDecoder, encodeFrame } from "../../src/transport/frame.ts";
import {
  decodeHello,
  HELLO_MAGIC,
  type Hello,
  helloKeyingMaterial,
  verifyHelloSignature,
} from "../../src/transport/hello.ts";
import { createTransportMetrics, type TransportMetrics } from "../../src/transport/metrics.ts";
import { selfSignedCertificate } from "../../src/transport/tlsCert.ts";
import { captureLogger, fakeWireGuard, freePort, TEST_CLUSTER, waitFor } from "../helpers.ts";
import { type LoopbackNet, signedHello, startLoopbackNet } from "./loopback.ts";

const DOMAIN = "ingress.test";
const A = "0xaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const B = "0xbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const ID_A = 1n;
const ID_B = 2n;
const HOST_A = "127.0.0.2";
const HOST_B = "127.0.0.3";
/** B's twin whose gateway is the attacker's TLS-terminating relay (to capture a genuine hello). */
const HOST_B_RELAYED = "127.0.0.5";
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

let keyA: SigningKey;
let keyB: SigningKey;
let mallory: SigningKey;

function sendTo(socket: UdpSocket, payload: string, endpoint: string): void {
  const [host, port] = endpoint.split(":");
  socket.send(Buffer.from(payload), Number(port), host);
}

describe("ingress under attack", () => {
  let net: LoopbackNet;
  let bridgeA: Bridge;
  let bridgeB: Bridge;
  let endpointAtoB: string;
  let metricsA: TransportMetrics;
  let registryA: Registry;
  const logA = captureLogger("info");
  /** Everything any attacker's stream received after its hello: must stay empty. */
  const stolen: Array<{ attacker: string; bytes: number; at: number }> = [];

  const bridge = (self: "A" | "B", wgPort: number, extra: Partial<BridgeOptions> = {}): Promise<Bridge> => {
    const [memberId, key] = self === "A" ? [ID_A, keyA] : [ID_B, keyB];
    return startBridge({
      signer: { ...TEST_CLUSTER, selfMemberId: () => memberId, sign: key.sign },
      identityKey: (id) => (id === ID_A ? keyA.publicKey : id === ID_B ? keyB.publicKey : undefined),
      factory: createLocalSocketFactory(),
      logger: captureLogger("silent").logger,
      wgListenPort: wgPort,
      gatewayDomain: DOMAIN,
      gatewayAddress: { host: "127.0.0.1", port: net.gateway.port },
      ingressHost: self === "A" ? HOST_A : HOST_B,
      ingressPort: net.ingressPort,
      backoff: { initialMs: 50, maxMs: 200 },
      ...extra,
    });
  };

  /** B's bridge, connected to A: B's stream is the one A's datagrams to B ride. */
  async function connectB(): Promise<void> {
    bridgeB = await bridge("B", net.wgB.port);
    const endpointBtoA = (await bridgeB.setPeers([{ memberId: ID_A, appId: A }])).get(ID_A)!;
    const before = net.wgA.received.length;
    await waitFor(
      "B's stream into A's ingress",
      () => {
        sendTo(net.wgB.socket, "B opens its stream", endpointBtoA);
        return net.wgA.received.length > before;
      },
      10_000,
      100,
    );
    await waitFor("A's link to adopt B's stream", () => bridgeA.status(ID_B)?.inbound === 1);
  }

  before(async () => {
    await loadSodium();
    keyA = signingKeyFromSeed(new Uint8Array(32).fill(0xa1));
    keyB = signingKeyFromSeed(new Uint8Array(32).fill(0xb2));
    mallory = signingKeyFromSeed(new Uint8Array(32).fill(0x66));
    net = await startLoopbackNet({
      domain: DOMAIN,
      route: (appId) => (appId === A ? HOST_A : appId === B ? HOST_B : undefined),
      logger: captureLogger("silent").logger,
    });
    registryA = new Registry();
    metricsA = createTransportMetrics(registryA);
    const closedPort = await freePort();
    bridgeA = await startBridge({
      signer: { ...TEST_CLUSTER, selfMemberId: () => ID_A, sign: keyA.sign },
      identityKey: (id) => (id === ID_B ? keyB.publicKey : undefined),
      factory: createLocalSocketFactory(),
      logger: logA.logger,
      metrics: metricsA,
      wgListenPort: net.wgA.port,
      gatewayDomain: DOMAIN,
      // A cannot reach B: its replies must ride B's stream, the stream an impostor would want.
      gatewayAddress: { host: "127.0.0.1", port: closedPort },
      ingressHost: HOST_A,
      ingressPort: net.ingressPort,
      backoff: { initialMs: 50, maxMs: 200 },
      helloTimeoutMs: 4_000,
      pendingGraceMs: 300,
    });
    endpointAtoB = (await bridgeA.setPeers([{ memberId: ID_B, appId: B }])).get(ID_B)!;
    await connectB();
  });

  after(async () => {
    await bridgeA.close();
    await bridgeB.close();
    await net.close();
  });

  /** A TLS session to A's ingress through the gateway, as anyone on the internet can open one. */
  async function openToA(
    name: string,
  ): Promise<{ tls: TLSSocket; ekm: Uint8Array; closed: Promise<unknown> }> {
    const { tls, closed } = await net.stream(A);
    const decoder = createFrameDecoder();
    tls.on("data", (chunk: Buffer) => {
      try {
        for (const frame of decoder.push(chunk))
          if (frame.length > 0) stolen.push({ attacker: name, bytes: frame.length, at: Date.now() });
      } catch {
        stolen.push({ attacker: name, bytes: -1, at: Date.now() });
      }
    });
    return { tls, ekm: helloKeyingMaterial(tls), closed };
  }

  /** Sends `first` then forged datagrams, and waits until A closes the stream (it must). */
  async function attack(name: string, first: (ekm: Uint8Array) => Buffer): Promise<void> {
    const { tls, ekm, closed } = await openToA(name);
    tls.write(first(ekm));
    for (let i = 0; i < 5; i++) tls.write(encodeFrame(Buffer.from(`FORGED ${name} ${i}`)));
    await Promise.race([closed, sleep(3_000).then(() => assert.fail(`A kept the stream of ${name} open`))]);
  }

  /** A hello from B to A, signed by `key`, with `overrides`. */
  const helloFrom = (key: SigningKey, ekm: Uint8Array, overrides: Partial<Hello> = {}): Buffer =>
    signedHello(key, ekm, { from: ID_B, to: ID_A, ...overrides });

  /**
   * Runs `attacks` while A's WireGuard sends a numbered datagram to B every 5 ms, sampling A's link to
   * B meanwhile; then checks that nothing was delivered or taken at any moment.
   */
  async function underAttack(attacks: () => Promise<void>): Promise<void> {
    const refusedBefore = Object.values(bridgeA.refused()).reduce((a, b) => a + b, 0);
    const fromB = net.wgB.received.length;
    const toA = net.wgA.received.length;
    const inboundSamples: number[] = [];
    let sent = 0;
    let pumping = true;
    const pump = (async () => {
      while (pumping) {
        sendTo(net.wgA.socket, `A->B ${sent++}`, endpointAtoB);
        inboundSamples.push(bridgeA.status(ID_B)?.inbound ?? -1);
        await sleep(5);
      }
    })();
    const pumped = (n: number) => waitFor(`${n} datagrams pumped`, () => sent >= n, 5_000, 5);
    try {
      // Traffic flows before, during and after the attacks.
      await pumped(10);
      await attacks();
      await pumped(sent + 10);
    } finally {
      pumping = false;
      await pump;
    }
    await waitFor(`all ${sent} datagrams from A at B`, () => net.wgB.received.length - fromB >= sent, 10_000);
    assert.deepEqual(
      net.wgB.received.slice(fromB).map((r) => r.payload.toString()),
      Array.from({ length: sent }, (_, i) => `A->B ${i}`),
      "B received every datagram A sent, in order, and nothing else",
    );
    assert.ok(sent >= 20, `the pump ran during the attacks (${sent} datagrams)`);
    assert.deepEqual(stolen, [], "no attacker received a datagram, at any moment");
    assert.deepEqual(
      [...new Set(inboundSamples)],
      [1],
      "A's link to B held B's stream and only B's stream at every sample",
    );
    assert.deepEqual(
      net.wgA.received.slice(toA).filter((r) => r.payload.toString().startsWith("FORGED")),
      [],
      "nothing an attacker sent reached A's WireGuard",
    );
    assert.ok(Object.values(bridgeA.refused()).reduce((a, b) => a + b, 0) > refusedBefore);
  }

  const refusedDelta = async (reason: string, fn: () => Promise<void>): Promise<number> => {
    const before = bridgeA.refused()[reason] ?? 0;
    await fn();
    return (bridgeA.refused()[reason] ?? 0) - before;
  };

  it("an impostor claiming B (valid framing, wrong or no signature) delivers nothing and takes nothing", async () => {
    let badSignature = 0;
    let badHello = 0;
    await underAttack(async () => {
      for (let round = 0; round < 4; round++) {
        badSignature += await refusedDelta("bad-signature", async () => {
          // Signed, but by the attacker's own key.
          await attack(`mallory-${round}`, (ekm) => helloFrom(mallory, ekm));
          // B's ids, a zero signature.
          await attack(`unsigned-${round}`, (ekm) => {
            const frame = helloFrom(mallory, ekm);
            frame.fill(0, frame.length - 64);
            return frame;
          });
        });
        badHello += await refusedDelta("bad-hello", async () => {
          // The review's attack: the old unsigned hello naming B's app id.
          await attack(`legacy-${round}`, () =>
            encodeFrame(
              Buffer.concat([
                HELLO_MAGIC,
                Buffer.of(1),
                Buffer.from(B.slice(2), "hex"),
                Buffer.from(A.slice(2), "hex"),
              ]),
            ),
          );
          // No hello at all: datagrams straight away.
          await attack(`no-hello-${round}`, () => encodeFrame(Buffer.from("FORGED datagram first")));
        });
      }
    });
    assert.equal(badSignature, 8);
    assert.equal(badHello, 8);
    const counted = await registryA.getSingleMetricAsString("attestmesh_gateway_ingress_refused_total");
    assert.match(counted, /reason="bad-signature"} [1-9]/);
    assert.match(counted, /reason="bad-hello"} [1-9]/);
    const logged = logA.lines().filter((l) => l.msg === "gateway stream refused");
    assert.ok(logged.some((l) => l.reason === "bad-signature" && l.from === "2" && l.to === "1"));
  });

  it("a genuine hello captured by a TLS-terminating relay is refused on any other session", async () => {
    // The attacker sits where the gateway is for B's twin: B's real link code talks to it, signs a
    // valid hello for the relay's session, and the relay replays that hello into A's ingress.
    const { key, cert } = await selfSignedCertificate();
    const captured: Array<{ hello: Buffer; ekm: Uint8Array }> = [];
    const relay: TlsServer = createTlsServer({ key, cert }, (socket) => {
      socket.on("error", () => {});
      const decoder = createFrameDecoder();
      socket.on("data", (chunk: Buffer) => {
        const [first] = decoder.push(chunk);
        if (first !== undefined && captured.length === 0)
          captured.push({ hello: first, ekm: helloKeyingMaterial(socket) });
      });
    });
    relay.listen(0, "127.0.0.1");
    await once(relay, "listening");
    const relayPort = (relay.address() as { port: number }).port;
    const wgTwin = await fakeWireGuard();
    const twin = await bridge("B", wgTwin.port, {
      gatewayAddress: { host: "127.0.0.1", port: relayPort },
      ingressHost: HOST_B_RELAYED,
    });
    try {
      const endpoint = (await twin.setPeers([{ memberId: ID_A, appId: A }])).get(ID_A)!;
      await waitFor("B's genuine hello at the relay", () => {
        sendTo(wgTwin.socket, "FORGED via the relay", endpoint);
        return captured.length > 0;
      });
      const { hello, ekm } = captured[0]!;
      const decoded = decodeHello(hello);
      assert.equal(decoded.from, ID_B);
      assert.ok(
        verifyHelloSignature(decoded, ekm, keyB.publicKey),
        "the captured hello is genuine on its own session",
      );
      let refused = 0;
      await underAttack(async () => {
        refused = await refusedDelta("bad-signature", async () => {
          for (let i = 0; i < 3; i++) await attack(`replay-${i}`, () => encodeFrame(hello));
        });
      });
      assert.equal(refused, 3, "the exporter value of each new session does not match the captured one");
    } finally {
      await twin.close();
      wgTwin.socket.close();
      relay.close();
    }
  });

  it("a stale hello, or one from the future, is refused even when signed by B's own key", async () => {
    let stale = 0;
    await underAttack(async () => {
      stale = await refusedDelta("stale-hello", async () => {
        await attack("stale", (ekm) =>
          helloFrom(keyB, ekm, { timestampMs: BigInt(Date.now() - 5 * 60_000) }),
        );
        await attack("future", (ekm) =>
          helloFrom(keyB, ekm, { timestampMs: BigInt(Date.now() + 5 * 60_000) }),
        );
      });
    });
    assert.equal(stale, 2);
  });

  it("a hello for another chain, cluster or node is refused even when signed by B's own key", async () => {
    const counts: number[] = [];
    await underAttack(async () => {
      counts.push(
        await refusedDelta("wrong-chain", () =>
          attack("chain", (ekm) => helloFrom(keyB, ekm, { chainId: 8453 })),
        ),
      );
      counts.push(
        await refusedDelta("wrong-cluster", () =>
          attack("cluster", (ekm) =>
            helloFrom(keyB, ekm, { cluster: "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512" }),
          ),
        ),
      );
      counts.push(
        await refusedDelta("not-for-this-node", () =>
          attack("node", (ekm) => helloFrom(keyB, ekm, { to: 7n })),
        ),
      );
      // A member id that is not A's peer, with a key of its own.
      counts.push(
        await refusedDelta("unknown-peer", () =>
          attack("stranger", (ekm) => helloFrom(mallory, ekm, { from: 9n })),
        ),
      );
    });
    assert.deepEqual(counts, [1, 1, 1, 1]);
  });

  it("64 idle connections do not lock a real peer out: B reconnects and gets through while they sit there", async () => {
    await bridgeB.close();
    await waitFor("B's old stream gone at A", () => bridgeA.status(ID_B)?.inbound === 0);
    const timedOutBefore = bridgeA.refused()["no-hello-in-time"] ?? 0;
    const idle = await Promise.all(
      Array.from({ length: 64 }, async (_, i) => {
        const { tls, closed } = await openToA(`idle-${i}`);
        let open = true;
        void closed.then(() => {
          open = false;
        });
        return { tls, isOpen: () => open };
      }),
    );
    await waitFor("64 connections waiting at A's ingress", () => bridgeA.pending() === 64);
    // Past their grace: from now on they hold slots only until someone needs one.
    await sleep(400);
    const stillOpen = () => idle.filter((c) => c.isOpen()).length;
    assert.equal(stillOpen(), 64);

    const arrivedBefore = net.wgA.received.length;
    await connectB();
    const openWhenBGotThrough = stillOpen();
    assert.ok(
      openWhenBGotThrough >= 60,
      `B got through while ${openWhenBGotThrough} of the 64 idle connections were still open`,
    );
    assert.ok(
      net.wgA.received.slice(arrivedBefore).some((r) => r.payload.toString() === "B opens its stream"),
    );
    assert.equal(bridgeA.refused()["too-many-pending"] ?? 0, 0, "nobody was turned away at the door");

    // The idle ones go at their hello timeout; the daemon keeps serving B meanwhile.
    await waitFor("the idle connections timed out", () => stillOpen() === 0, 8_000);
    assert.ok((bridgeA.refused()["no-hello-in-time"] ?? 0) - timedOutBefore >= 60);
    assert.equal(bridgeA.pending(), 0);
    await underAttack(async () => {
      await attack("after-the-flood", (ekm) => helloFrom(mallory, ekm));
    });
  });

  it("a flood of more idle connections than slots still cannot keep B out", async () => {
    await bridgeB.close();
    await waitFor("B's old stream gone at A", () => bridgeA.status(ID_B)?.inbound === 0);
    const flood = await Promise.allSettled(
      Array.from({ length: 100 }, (_, i) => openToA(`flood-${i}`).then((c) => c.tls)),
    );
    await waitFor("the waiting room full", () => bridgeA.pending() >= 64);
    await sleep(400);
    await connectB();
    assert.ok(bridgeA.pending() >= 60, `${bridgeA.pending()} flood connections still waiting when B got in`);
    for (const result of flood) if (result.status === "fulfilled") result.value.destroy();
    await underAttack(async () => {
      await attack("after-the-second-flood", (ekm) => helloFrom(mallory, ekm));
    });
  });
});
