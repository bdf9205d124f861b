// The first-handshake tie-break. The first part is the pure rule; the second adds two wireguard-go
// peers to each other at the same moment (root, /dev/net/tun, wireguard-go, wg, ip; two network
// namespaces of this process's own, joined by a veth pair, removed in `after`) and checks the
// handshake completes well inside WireGuard's 5 s retry, the regression it pins: crossing first
// initiations made both sides drop both and joins waited 5–7 s. (With both sides adding the full
// configuration instead, this setup had no handshake within 4 s, at 40 ms and at 200 ms each way.)
import assert from "node:assert/strict";
import { type ChildProcess, execFileSync, spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { rmSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { pino } from "pino";
import type { PeerConfig, PeerStatus } from "../../src/model/wireguard.ts";
import { createHandshakeTieBreak, initiatesFirst } from "../../src/reconcile/initiator.ts";
import { wireguardKeyPair } from "../../src/wireguard/keys.ts";
import { createWgBackend } from "../../src/wireguard/wg.ts";
import { killWireGuardGo, wireguardGoSkipReason } from "../helpers.ts";

const keyPair = () => wireguardKeyPair(randomBytes(32));
/** Two fresh key pairs, the one that initiates first (lower public key) first. */
function ordered() {
  const [a, b] = [keyPair(), keyPair()];
  return initiatesFirst(a.publicKeyBase64, b.publicKeyBase64) ? { low: a, high: b } : { low: b, high: a };
}
const peer = (publicKey: string, host: number): PeerConfig => ({
  publicKey,
  allowedIps: [`10.77.0.${host}/32`],
  endpoint: `198.18.0.${host}:51820`,
  keepaliveSeconds: 25,
});
/**
 * The tie-break (300 ms hold) of the `side` key of a fresh pair, and its plan: the other key its only peer
 * (the lower key's node is host 1, the higher's host 2).
 */
function sideOfPair(side: "low" | "high") {
  const pair = ordered();
  const [self, other, host] = side === "low" ? [pair.low, pair.high, 2] : [pair.high, pair.low, 1];
  const tieBreak = createHandshakeTieBreak({ selfKey: self.publicKeyBase64, holdMs: 300 });
  return { ...pair, tieBreak, planned: [peer(other.publicKeyBase64, host)] };
}
const status = (config: PeerConfig, latestHandshake = 0): PeerStatus => ({
  ...config,
  latestHandshake,
  rxBytes: 0n,
  txBytes: 0n,
});

describe("initiatesFirst", () => {
  it("is a strict order on the key bytes: exactly one side of a pair initiates", () => {
    for (let i = 0; i < 50; i++) {
      const [a, b] = [keyPair().publicKeyBase64, keyPair().publicKeyBase64];
      assert.notEqual(initiatesFirst(a, b), initiatesFirst(b, a));
      assert.equal(initiatesFirst(a, a), false);
    }
    const low = Buffer.alloc(32, 0x01).toString("base64");
    const high = Buffer.alloc(32, 0xfe).toString("base64");
    assert.equal(initiatesFirst(low, high), true);
    assert.equal(initiatesFirst(high, low), false);
  });
});

describe("createHandshakeTieBreak", () => {
  it("the lower key adds a new peer as planned: it initiates at once", () => {
    const { tieBreak, planned } = sideOfPair("low");
    assert.deepEqual(tieBreak.apply(planned, [], 1_000), planned);
    assert.equal(tieBreak.nextRelease(), 1_300, "no hold; a pass when the crossing check is due");
  });

  it("the initiating side re-adds a peer whose first initiations crossed (rx, no handshake), at most twice", () => {
    const { tieBreak, planned } = sideOfPair("low");
    const key = planned[0]!.publicKey;
    const seen = (rxBytes: bigint, latestHandshake = 0): PeerStatus[] => [
      { ...status(planned[0]!, latestHandshake), rxBytes },
    ];
    tieBreak.apply(planned, [], 1_000);
    assert.deepEqual([...tieBreak.crossed(seen(148n), 1_299)], [], "not due yet");
    // The peer's initiation came and there is no handshake: crossed, if that lasts a round trip.
    assert.deepEqual([...tieBreak.crossed(seen(148n), 1_300)], [], "marked");
    assert.equal(tieBreak.nextRelease(), 1_500);
    assert.deepEqual([...tieBreak.crossed(seen(148n), 1_500)], [key], "still marked: crossed");
    // Removed and re-added: not held (this side initiates), checked again 1.2 s later.
    tieBreak.readding([key]);
    assert.deepEqual(tieBreak.apply(planned, [], 1_500), planned);
    assert.equal(tieBreak.nextRelease(), 2_700);
    tieBreak.crossed(seen(148n), 2_700);
    assert.deepEqual([...tieBreak.crossed(seen(148n), 2_900)], [key], "crossed again");
    tieBreak.readding([key]);
    tieBreak.apply(planned, [], 2_900);
    assert.deepEqual(
      [...tieBreak.crossed(seen(148n), 60_000)],
      [],
      "twice at most: WireGuard's retry after that",
    );
    assert.equal(tieBreak.nextRelease(), undefined);
  });

  it("an answered initiation is not a crossing: the mark clears with the handshake a round trip later", () => {
    const { tieBreak, planned } = sideOfPair("low");
    tieBreak.apply(planned, [], 1_000);
    assert.deepEqual([...tieBreak.crossed([{ ...status(planned[0]!), rxBytes: 148n }], 1_300)], []);
    assert.deepEqual(
      [...tieBreak.crossed([{ ...status(planned[0]!, 1_700_000_000), rxBytes: 180n }], 1_500)],
      [],
    );
    assert.equal(tieBreak.nextRelease(), undefined);
  });

  it("no re-add when nothing came back (the peer does not know this node yet) or once handshaken", () => {
    const { low, high } = ordered();
    const planned = [peer(high.publicKeyBase64, 2)];
    const silent = createHandshakeTieBreak({ selfKey: low.publicKeyBase64, holdMs: 300 });
    silent.apply(planned, [], 1_000);
    assert.deepEqual([...silent.crossed([status(planned[0]!)], 1_400)], []);
    assert.deepEqual([...silent.crossed([status(planned[0]!)], 2_200)], []);
    assert.equal(silent.nextRelease(), undefined, "no more checks");
    const handshaken = createHandshakeTieBreak({ selfKey: low.publicKeyBase64, holdMs: 300 });
    handshaken.apply(planned, [], 1_000);
    assert.deepEqual(
      [...handshaken.crossed([{ ...status(planned[0]!, 1_700_000_000), rxBytes: 92n }], 1_400)],
      [],
    );
    assert.equal(handshaken.nextRelease(), undefined);
    // The higher side never re-adds: the lower one does.
    const higher = createHandshakeTieBreak({ selfKey: high.publicKeyBase64, holdMs: 300 });
    const toLow = [peer(low.publicKeyBase64, 1)];
    higher.apply(toLow, [], 1_000);
    assert.deepEqual([...higher.crossed([{ ...status(toLow[0]!), rxBytes: 148n }], 5_000)], []);
  });

  it("the higher key adds a new peer without its keepalive (adding it sends nothing) until the hold ends", () => {
    const { low, tieBreak, planned } = sideOfPair("high");
    // The endpoint stays: an attempt without one would hold back wireguard-go's initiations for 5 s.
    const responder = {
      publicKey: low.publicKeyBase64,
      allowedIps: ["10.77.0.1/32"],
      endpoint: "198.18.0.1:51820",
    };
    assert.deepEqual(tieBreak.apply(planned, [], 1_000), [responder]);
    assert.equal(tieBreak.nextRelease(), 1_300);
    // Still held 299 ms later (the interface has it, no handshake yet).
    assert.deepEqual(tieBreak.apply(planned, [status(responder)], 1_299), [responder]);
    // At the end of the hold the full configuration goes in: its keepalive starts a handshake.
    assert.deepEqual(tieBreak.apply(planned, [status(responder)], 1_300), planned);
    assert.equal(tieBreak.nextRelease(), undefined);
  });

  it("a handshake (the lower side's initiation arrived) ends the hold early", () => {
    const { tieBreak, planned } = sideOfPair("high");
    const [held] = tieBreak.apply(planned, [], 1_000);
    assert.equal(held?.keepaliveSeconds, undefined);
    assert.deepEqual(tieBreak.apply(planned, [status(held!, 1_700_000_000)], 1_050), planned);
    assert.equal(tieBreak.nextRelease(), undefined);
  });

  it("holds a peer again on a re-add (a direct-path test, a fallback), not on a mere pass", () => {
    const { low, high, tieBreak, planned } = sideOfPair("high");
    tieBreak.apply(planned, [], 1_000);
    assert.deepEqual(tieBreak.apply(planned, [], 1_400), planned, "hold over");
    assert.deepEqual(
      tieBreak.apply(planned, [status(planned[0]!)], 30_000),
      planned,
      "configured: as planned",
    );
    // The transport removed the peer to re-add it: held again, as on its first add.
    tieBreak.readding([planned[0]!.publicKey]);
    assert.equal(tieBreak.apply(planned, [], 60_000)[0]?.keepaliveSeconds, undefined);
    assert.equal(tieBreak.nextRelease(), 60_300);
    assert.deepEqual(tieBreak.apply(planned, [], 60_300), planned, "hold over");
    // The lower side re-adds at once.
    const lowSide = createHandshakeTieBreak({ selfKey: low.publicKeyBase64, holdMs: 300 });
    const toHigh = [peer(high.publicKeyBase64, 2)];
    lowSide.apply(toHigh, [], 1_000);
    lowSide.readding([toHigh[0]!.publicKey]);
    assert.deepEqual(lowSide.apply(toHigh, [], 60_000), toHigh);
  });

  it("never holds a peer that tried to reach this node before it knew it: its initiation is gone", () => {
    const { low, high, tieBreak, planned } = sideOfPair("high");
    const triedFirst = new Set([low.publicKeyBase64]);
    assert.deepEqual(tieBreak.apply(planned, [], 1_000, triedFirst), planned, "added in full at once");
    assert.equal(tieBreak.nextRelease(), undefined);
    // A peer already held is released the moment it turns out to have tried first.
    const other = createHandshakeTieBreak({ selfKey: high.publicKeyBase64, holdMs: 300 });
    const [held] = other.apply(planned, [], 1_000);
    assert.equal(held?.keepaliveSeconds, undefined);
    assert.deepEqual(other.apply(planned, [status(held!)], 1_050, triedFirst), planned);
    assert.equal(other.nextRelease(), undefined);
  });

  it("never holds a peer the interface already has (a restart of the sidecar)", () => {
    const { tieBreak, planned } = sideOfPair("high");
    assert.deepEqual(tieBreak.apply(planned, [status(planned[0]!)], 1_000), planned);
  });

  it("holds only new higher-side peers, per peer, and forgets peers no longer planned", () => {
    const self = keyPair().publicKeyBase64;
    const others = Array.from({ length: 8 }, () => keyPair().publicKeyBase64);
    const tieBreak = createHandshakeTieBreak({ selfKey: self, holdMs: 300 });
    const planned = others.map((k, i) => peer(k, i + 2));
    const applied = tieBreak.apply(planned, [], 1_000);
    for (const [i, config] of applied.entries()) {
      const held = !initiatesFirst(self, others[i]!);
      assert.equal(config.endpoint, planned[i]!.endpoint, `peer ${i}: the endpoint always goes in`);
      assert.equal(config.keepaliveSeconds === undefined, held, `peer ${i}`);
      assert.deepEqual(config.allowedIps, planned[i]!.allowedIps, "routes go in either way");
    }
    // A peer dropped from the plan (evicted) and planned again later (re-registered) is new again.
    const lowest = others.findIndex((k) => !initiatesFirst(self, k));
    if (lowest >= 0) {
      const without = planned.filter((_, i) => i !== lowest);
      tieBreak.apply(without, [], 2_000);
      const again = tieBreak.apply(planned, [], 3_000);
      assert.equal(again[lowest]?.keepaliveSeconds, undefined);
    }
  });
});

// ---------------------------------------------------------------------------------------------------
// Real wireguard-go interfaces.

describe("two wireguard-go peers that add each other at the same moment", {
  skip: wireguardGoSkipReason(),
}, () => {
  const tag = `amtb-${process.pid}`;
  const ns = { low: `${tag}-l`, high: `${tag}-h` };
  const ifName = { low: `amtb${process.pid}l`, high: `amtb${process.pid}h` };
  const { low, high } = ordered();
  const logger = pino({ level: "silent" });
  const backend = {
    low: createWgBackend({ netns: ns.low, mode: "userspace", logger }),
    high: createWgBackend({ netns: ns.high, mode: "userspace", logger }),
  };
  const underlay = { low: "198.18.78.1", high: "198.18.78.2" };
  const mesh = { low: "198.19.78.1", high: "198.19.78.2" };
  // Their view of each other, as the reconciler plans it.
  const planned = {
    low: {
      publicKey: high.publicKeyBase64,
      allowedIps: [`${mesh.high}/32`],
      endpoint: "127.0.0.1:51900",
      keepaliveSeconds: 25,
    },
    high: {
      publicKey: low.publicKeyBase64,
      allowedIps: [`${mesh.low}/32`],
      endpoint: `${underlay.low}:51901`,
      keepaliveSeconds: 25,
    },
  } satisfies Record<string, PeerConfig>;
  const HOLD_MS = 300;
  /**
   * A stalled pair waits out WireGuard's 5 s retry (join gives up at 4 s); a working one handshakes well
   * inside a second (0.1 to 0.7 s measured), after a crossing check at 1.2 s at the latest. The bound
   * between leaves a loaded machine's wireguard-go room.
   */
  const WELL_UNDER_RETRY_MS = 3_500;
  // A relay in the low side's namespace delays every datagram by DELAY_MS each way, as the gateway
  // bridge does (TLS, a gateway hop): the low side reaches the high one through it, and the high side
  // knows the low one by the relay's address. On a bare veth pair the two initiations rarely cross.
  const DELAY_MS = 40;
  const RELAY = `
    const dgram = require("node:dgram");
    const inner = dgram.createSocket("udp4"), outer = dgram.createSocket("udp4");
    let wg;
    inner.on("message", (m, r) => { wg = r; setTimeout(() => outer.send(m, 51820, "${underlay.high}"), ${DELAY_MS}); });
    outer.on("message", (m) => setTimeout(() => wg && inner.send(m, wg.port, wg.address), ${DELAY_MS}));
    inner.bind(51900, "127.0.0.1", () => outer.bind(51901, "${underlay.low}", () => process.stdout.write("ready\\n")));
  `;
  let relay: ChildProcess | undefined;

  const run = (...argv: string[]) =>
    execFileSync(argv[0]!, argv.slice(1), { encoding: "utf8", timeout: 10_000 });

  before(async () => {
    for (const side of ["low", "high"] as const) {
      run("ip", "netns", "add", ns[side]);
      run("ip", "-n", ns[side], "link", "set", "lo", "up");
    }
    run(
      "ip",
      "-n",
      ns.low,
      "link",
      "add",
      "amtbveth",
      "type",
      "veth",
      "peer",
      "name",
      "amtbveth",
      "netns",
      ns.high,
    );
    for (const side of ["low", "high"] as const) {
      run("ip", "-n", ns[side], "address", "add", `${underlay[side]}/24`, "dev", "amtbveth");
      run("ip", "-n", ns[side], "link", "set", "amtbveth", "up");
    }
    relay = spawn("ip", ["netns", "exec", ns.low, process.execPath, "-e", RELAY], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    await new Promise<void>((resolve, reject) => {
      relay!.stdout!.once("data", () => resolve());
      relay!.once("exit", (code) => reject(new Error(`the relay exited (${code})`)));
    });
    await Promise.all([
      backend.low.up({
        name: ifName.low,
        privateKey: low.privateKey,
        listenPort: 51820,
        address: `${mesh.low}/24`,
      }),
      backend.high.up({
        name: ifName.high,
        privateKey: high.privateKey,
        listenPort: 51820,
        address: `${mesh.high}/24`,
      }),
    ]);
  });

  after(async () => {
    relay?.kill("SIGKILL");
    for (const b of Object.values(backend)) await b.down().catch(() => undefined);
    killWireGuardGo(Object.values(ifName));
    for (const name of Object.values(ns)) spawnSync("ip", ["netns", "del", name]);
    for (const name of Object.values(ifName)) rmSync(`/var/run/wireguard/${name}.sock`, { force: true });
  });

  /** Both sides' latest handshake with each other, or undefined while either has none. */
  async function handshaken(): Promise<boolean> {
    const [l, h] = await Promise.all([backend.low.peers(), backend.high.peers()]);
    return (l[0]?.latestHandshake ?? 0) > 0 && (h[0]?.latestHandshake ?? 0) > 0;
  }

  type TieBreaks = Record<"low" | "high", ReturnType<typeof createHandshakeTieBreak>>;
  const newTieBreaks = (): TieBreaks => ({
    low: createHandshakeTieBreak({ selfKey: low.publicKeyBase64, holdMs: HOLD_MS }),
    high: createHandshakeTieBreak({ selfKey: high.publicKeyBase64, holdMs: HOLD_MS }),
  });

  /**
   * One join as the reconcilers do it (or, with `reuse`, a re-add of a peer both already know): each side applies its tie-break's configuration (the high side
   * `delayHighMs` after the low one), then passes again when its hold ends. Returns the milliseconds
   * from the later add to a handshake on both sides.
   */
  async function join(delayHighMs: number, reuse?: TieBreaks, highKnowsLowTried = false): Promise<number> {
    for (const side of ["low", "high"] as const) await backend[side].removePeer(planned[side].publicKey);
    const tieBreak = reuse ?? newTieBreaks();
    // A re-add, as the transport makes one: each side's tie-break already knows the peer.
    if (reuse !== undefined)
      for (const side of ["low", "high"] as const) tieBreak[side].readding([planned[side].publicKey]);
    // The high side learns (from its bridge) that the low side's attempt came before it knew it.
    const tried = highKnowsLowTried ? new Set([planned.high.publicKey]) : undefined;
    const pass = async (side: "low" | "high") =>
      backend[side].setPeer(
        tieBreak[side].apply(
          [planned[side]],
          await backend[side].peers(),
          undefined,
          side === "high" ? tried : undefined,
        )[0]!,
      );
    const addLow = pass("low");
    await sleep(delayHighMs);
    await pass("high");
    await addLow;
    const added = Date.now();
    const deadline = added + 4_000;
    let released = false;
    while (Date.now() < deadline) {
      if (await handshaken()) return Date.now() - added;
      // The low side's reconciler looks for a crossing when a check is due (initiator.ts).
      const crossed = tieBreak.low.crossed(await backend.low.peers());
      if (crossed.size > 0) {
        await backend.low.removePeer(planned.low.publicKey);
        tieBreak.low.readding(crossed);
        await pass("low");
      }
      const release = tieBreak.high.nextRelease();
      if (!released && release !== undefined && Date.now() >= release) {
        released = true;
        await pass("high");
      }
      await sleep(20);
    }
    assert.fail(
      "no handshake within 4 s: the first initiations crossed or were lost (WireGuard retries after 5 s)",
    );
  }

  it("both add at once, five times: one initiates, the other answers, a handshake in well under 5 s", async () => {
    const times: number[] = [];
    for (let i = 0; i < 5; i++) times.push(await join(0));
    assert.ok(Math.max(...times) < WELL_UNDER_RETRY_MS, `handshakes after ${times.join(", ")} ms`);
  });

  it("both re-add a handshaken peer at once (a direct-path test, a fallback), five times: a handshake in well under 5 s", async () => {
    const tieBreaks = newTieBreaks();
    await join(0, tieBreaks);
    const times: number[] = [];
    for (let i = 0; i < 5; i++) times.push(await join(0, tieBreaks));
    assert.ok(Math.max(...times) < WELL_UNDER_RETRY_MS, `handshakes after ${times.join(", ")} ms`);
  });

  it("the low side adds first (its initiation is dropped): the high side initiates when its hold ends", async () => {
    const ms = await join(600);
    assert.ok(ms < WELL_UNDER_RETRY_MS, `handshake after ${ms} ms`);
    const [highPeer] = await backend.high.peers();
    assert.equal(highPeer?.endpoint, planned.high.endpoint, "the full configuration went in");
    assert.equal(highPeer?.keepaliveSeconds, 25);
  });

  it("both add at once while the high side already has traffic for the low one: a crossing is undone well before WireGuard's 5 s retry", async (t) => {
    // The hold keeps back only the keepalive: traffic to the peer starts an initiation at once, and on a
    // join there is some (probes, a CSK pull, re-attestation). Without the crossing check, 3 of 5 such
    // adds had no handshake within 4 s in this rig; both sides had received the other's initiation.
    const times: number[] = [];
    for (let i = 0; i < 5; i++) {
      const ping = spawn("ip", ["netns", "exec", ns.high, "ping", "-c", "40", "-i", "0.05", mesh.low], {
        stdio: "ignore",
      });
      try {
        await sleep(30);
        times.push(await join(0));
      } finally {
        ping.kill();
      }
    }
    t.diagnostic(`handshakes after ${times.join(", ")} ms`);
    assert.ok(Math.max(...times) < WELL_UNDER_RETRY_MS, `handshakes after ${times.join(", ")} ms`);
  });

  it("the low side adds first and the high side knows it tried: the high side initiates at once, no hold", async () => {
    const times: number[] = [];
    for (let i = 0; i < 3; i++) times.push(await join(600, undefined, true));
    // A round trip through the 40 ms relay and wg(8)'s own time, well inside the 300 ms hold.
    assert.ok(Math.max(...times) < HOLD_MS, `handshakes after ${times.join(", ")} ms`);
  });
});
