// The per-peer path decision, driven through the states with a fake clock and the observations
// WireGuard would report: fixed modes, the auto upgrade by direct traffic after an in-place move or by
// a direct handshake after a re-add, a failed test that ends in place (the peer's traffic came through
// the gateway, or a busy peer fell silent) without a re-add, the fallback when
// handshakes or traffic stop, following the peer's own decision, and a growing pause between tests.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createTransportSelector, type SelectorObservation } from "../../src/transport/selector.ts";

const KEY = "k1=";
const DIRECT = "198.18.0.12:51820";
const BRIDGE = "127.0.0.1:40000";
const peer = { publicKey: KEY, directEndpoint: DIRECT, gatewayEndpoint: BRIDGE };

function harness(mode: "gateway" | "udp" | "auto", keepaliveSeconds = 15, random = () => 0.5) {
  let t = 1_000_000_000_000;
  // random 0.5: every retry pause exactly its nominal length.
  const selector = createTransportSelector({
    mode,
    keepaliveSeconds,
    retryBaseMs: 30_000,
    now: () => t,
    random,
  });
  const step = (seen: Partial<SelectorObservation> | undefined, ms = 1000) => {
    t += ms;
    const observed = new Map<string, SelectorObservation>();
    if (seen !== undefined) observed.set(KEY, { latestHandshake: 0, rxBytes: 0n, ...seen });
    return selector.decide([peer], observed);
  };
  return {
    selector,
    step,
    now: () => t,
    nowSeconds: () => Math.floor(t / 1000),
    advance: (ms: number) => (t += ms),
  };
}

describe("transport selector", () => {
  it("fixed modes always use their own path and never re-add", () => {
    const gw = harness("gateway");
    const udp = harness("udp");
    for (let i = 0; i < 5; i++) {
      const a = gw.step({ latestHandshake: gw.nowSeconds(), endpoint: DIRECT });
      assert.equal(a.endpoints.get(KEY), BRIDGE);
      assert.equal(a.reset.size, 0);
      const b = udp.step({ latestHandshake: 0, endpoint: BRIDGE });
      assert.equal(b.endpoints.get(KEY), DIRECT);
    }
    assert.equal(gw.selector.report(KEY)?.path, "gateway");
    assert.equal(udp.selector.report(KEY)?.path, "udp");
  });

  it("auto with only one path known uses that one", () => {
    const h = harness("auto");
    const onlyGateway = h.selector.decide([{ ...peer, directEndpoint: undefined }], new Map());
    assert.equal(onlyGateway.endpoints.get(KEY), BRIDGE);
    const onlyDirect = h.selector.decide([{ ...peer, gatewayEndpoint: undefined }], new Map());
    assert.equal(onlyDirect.endpoints.get(KEY), DIRECT);
  });

  /** Auto, through the first gateway handshake to the start of the in-place direct test. */
  function testing(random?: () => number) {
    const h = harness("auto", 15, random);
    let d = h.step(undefined);
    assert.equal(d.endpoints.get(KEY), BRIDGE, "no handshake yet: the gateway");
    assert.equal(d.reset.size, 0);
    assert.equal(d.moved.size, 0);
    const gatewayHandshake = h.nowSeconds();
    d = h.step({ latestHandshake: gatewayHandshake, endpoint: BRIDGE, rxBytes: 100n });
    assert.equal(d.endpoints.get(KEY), DIRECT, "the gateway handshook: test direct");
    assert.equal(d.reset.size, 0, "no re-add: the endpoint moves in place, the session stays");
    assert.deepEqual([...d.moved], [KEY]);
    assert.equal(h.selector.report(KEY)?.testing, true);
    /** What WireGuard reports right after the move was applied: the direct endpoint, `rxBytes` so far. */
    const settle = (rxBytes: bigint) =>
      h.selector.settle(new Map([[KEY, { latestHandshake: gatewayHandshake, endpoint: DIRECT, rxBytes }]]));
    return { ...h, gatewayHandshake, settle };
  }

  it("auto: gateway first; after its handshake an in-place direct test; direct traffic both ways upgrades", () => {
    const h = testing();
    // WireGuard right after the move: what arrived before it is no proof.
    h.settle(120n);
    let d = h.step({ latestHandshake: h.gatewayHandshake, endpoint: DIRECT, rxBytes: 120n }, 200);
    assert.equal(h.selector.report(KEY)?.path, "gateway", "nothing received since the move: still testing");
    assert.equal(h.selector.report(KEY)?.testing, true);
    assert.equal(d.endpoints.get(KEY), DIRECT);
    assert.equal(d.reset.size, 0);
    d = h.step({ latestHandshake: h.gatewayHandshake, endpoint: DIRECT, rxBytes: 180n }, 200);
    assert.deepEqual(
      d.changes.map((c) => [c.from, c.to, c.why]),
      [["gateway", "udp", "direct traffic both ways"]],
    );
    assert.equal(d.reset.size, 0);
    assert.equal(d.endpoints.get(KEY), DIRECT);
    assert.equal(h.selector.report(KEY)?.path, "udp");
    assert.equal(h.selector.report(KEY)?.testing, false);
  });

  it("auto: without settle, the first look at the applied endpoint sets the bar; traffic counted before is no proof", () => {
    const h = testing();
    h.step({ latestHandshake: h.gatewayHandshake, endpoint: DIRECT, rxBytes: 150n }, 200);
    assert.equal(h.selector.report(KEY)?.path, "gateway", "150 bytes may have come through the gateway");
    h.step({ latestHandshake: h.gatewayHandshake, endpoint: DIRECT, rxBytes: 150n }, 200);
    assert.equal(h.selector.report(KEY)?.testing, true);
    h.step({ latestHandshake: h.gatewayHandshake, endpoint: DIRECT, rxBytes: 151n }, 200);
    assert.equal(h.selector.report(KEY)?.path, "udp");
  });

  it("auto: the peer's traffic still through the gateway moves the endpoint again; only traffic after that counts", () => {
    const h = testing();
    const { gatewayHandshake } = h;
    h.settle(100n);
    let d = h.step({ latestHandshake: gatewayHandshake, endpoint: BRIDGE, rxBytes: 150n }, 200);
    assert.equal(d.endpoints.get(KEY), DIRECT, "still testing the direct endpoint");
    assert.equal(d.reset.size, 0, "in place again");
    assert.deepEqual([...d.moved], [KEY]);
    assert.equal(h.selector.report(KEY)?.testing, true);
    // No settle this time: the first look at the moved endpoint sets the bar, so the 150 bytes that
    // came through the gateway are no proof.
    d = h.step({ latestHandshake: gatewayHandshake, endpoint: DIRECT, rxBytes: 150n }, 200);
    assert.equal(h.selector.report(KEY)?.path, "gateway");
    assert.equal(d.moved.size, 0);
    d = h.step({ latestHandshake: gatewayHandshake, endpoint: DIRECT, rxBytes: 210n }, 200);
    assert.equal(h.selector.report(KEY)?.path, "udp");
    assert.equal(d.changes[0]?.why, "direct traffic both ways");
  });

  it("auto: nothing from the peer within 3 s turns the test into a handshake test; a direct handshake upgrades", () => {
    const h = testing();
    const { gatewayHandshake } = h;
    h.settle(100n);
    let d = h.step({ latestHandshake: gatewayHandshake, endpoint: DIRECT, rxBytes: 100n }, 1_000);
    assert.equal(d.moved.size, 0);
    assert.equal(
      h.selector.report(KEY)?.testing,
      true,
      "a quiet peer's silence is no evidence: still testing",
    );
    d = h.step({ latestHandshake: gatewayHandshake, endpoint: DIRECT, rxBytes: 100n }, 2_500);
    assert.equal(d.endpoints.get(KEY), DIRECT, "still testing the direct endpoint");
    assert.deepEqual([...d.reset], [KEY], "re-added so WireGuard handshakes at once");
    assert.equal(d.moved.size, 0);
    assert.equal(h.selector.report(KEY)?.testing, true);
    assert.equal(h.selector.report(KEY)?.path, "gateway");
    d = h.step({ latestHandshake: 0, endpoint: DIRECT }, 500);
    assert.equal(d.endpoints.get(KEY), DIRECT, "still testing");
    assert.equal(
      h.selector.report(KEY)?.latestHandshake,
      gatewayHandshake,
      "the re-add reset WireGuard's counter, not the peer's liveness",
    );
    d = h.step({ latestHandshake: h.nowSeconds(), endpoint: DIRECT, rxBytes: 200n }, 200);
    assert.equal(d.endpoints.get(KEY), DIRECT);
    assert.deepEqual(
      d.changes.map((c) => [c.from, c.to]),
      [["gateway", "udp"]],
    );
    assert.equal(h.selector.report(KEY)?.path, "udp");
  });

  // Regression: with UDP blocked, every test re-added the peer for a handshake test after its in-place
  // window, and the gateway path the peer's traffic was using carried nothing for seconds each time.
  it("auto: the peer's traffic through the gateway after the move ends the test in place, with no re-add", () => {
    const h = testing();
    const { gatewayHandshake } = h;
    h.settle(100n);
    let d = h.step({ latestHandshake: gatewayHandshake, endpoint: BRIDGE, rxBytes: 150n }, 1_000);
    assert.deepEqual([...d.moved], [KEY], "roamed back: moved again while the window lasts");
    h.settle(150n);
    d = h.step({ latestHandshake: gatewayHandshake, endpoint: BRIDGE, rxBytes: 190n }, 1_000);
    assert.deepEqual([...d.moved], [KEY]);
    // The last look before the window ends finds the endpoint applied, nothing since: still no handshake test.
    h.settle(190n);
    d = h.step({ latestHandshake: gatewayHandshake, endpoint: DIRECT, rxBytes: 190n }, 1_500);
    assert.equal(d.endpoints.get(KEY), BRIDGE, "back to the gateway");
    assert.equal(d.reset.size, 0, "no re-add: the session through the gateway stays");
    assert.equal(d.moved.size, 0);
    assert.deepEqual(
      d.changes.map((c) => [c.from, c.to, c.why]),
      [["gateway", "gateway", "no direct traffic within 3000 ms while the peer's came through the gateway"]],
    );
    assert.equal(h.selector.report(KEY)?.testing, false);
    assert.equal(h.selector.report(KEY)?.directFailures, 1);
    assert.ok(h.selector.report(KEY)!.nextTestAt! >= h.nowSeconds() * 1000 + 29_000, "the next test waits");
  });

  it("auto: retry pauses are spread by ±25 %, so two sides that failed together do not test together again", () => {
    /** The pause before the next test after a test that the peer's gateway traffic ended. */
    const pauseAfterFailure = (random: () => number) => {
      const h = testing(random);
      h.settle(100n);
      h.step({ latestHandshake: h.gatewayHandshake, endpoint: BRIDGE, rxBytes: 150n }, 1_000);
      h.settle(150n);
      h.step({ latestHandshake: h.gatewayHandshake, endpoint: BRIDGE, rxBytes: 190n }, 2_500);
      assert.equal(h.selector.report(KEY)?.directFailures, 1);
      return h.selector.report(KEY)!.nextTestAt! - h.now();
    };
    assert.equal(
      pauseAfterFailure(() => 0),
      22_500,
    );
    assert.equal(
      pauseAfterFailure(() => 0.5),
      30_000,
    );
    assert.equal(
      pauseAfterFailure(() => 0.999_999),
      37_500,
    );
  });

  it("auto: a roam-back before the move was seen applied is no evidence; nothing after it leads to a handshake test", () => {
    const h = testing();
    const { gatewayHandshake } = h;
    // The peer's datagrams in flight through the gateway roam the endpoint back before `settle` looks.
    h.selector.settle(
      new Map([[KEY, { latestHandshake: gatewayHandshake, endpoint: BRIDGE, rxBytes: 120n }]]),
    );
    let d = h.step({ latestHandshake: gatewayHandshake, endpoint: BRIDGE, rxBytes: 120n }, 1_000);
    assert.deepEqual([...d.moved], [KEY]);
    h.settle(120n);
    d = h.step({ latestHandshake: gatewayHandshake, endpoint: DIRECT, rxBytes: 120n }, 2_500);
    assert.deepEqual([...d.reset], [KEY], "an idle link: re-added for a handshake test");
    assert.equal(h.selector.report(KEY)?.testing, true);
  });

  it("auto: a working direct path is still taken after the peer's traffic roamed the endpoint back once", () => {
    const h = testing();
    const { gatewayHandshake } = h;
    h.settle(100n);
    // What the peer sent before ours reached it came through the gateway.
    let d = h.step({ latestHandshake: gatewayHandshake, endpoint: BRIDGE, rxBytes: 150n }, 1_000);
    assert.deepEqual([...d.moved], [KEY]);
    h.settle(150n);
    d = h.step({ latestHandshake: gatewayHandshake, endpoint: DIRECT, rxBytes: 230n }, 1_000);
    assert.deepEqual(
      d.changes.map((c) => [c.from, c.to, c.why]),
      [["gateway", "udp", "direct traffic both ways"]],
    );
    assert.equal(d.reset.size, 0);
    assert.equal(h.selector.report(KEY)?.directFailures, 0);
  });

  /** Auto, with the peer's traffic arriving at every decision, to the start of the in-place test. */
  function testingBusy() {
    const h = harness("auto");
    h.step({ latestHandshake: 0, endpoint: BRIDGE, rxBytes: 10n });
    h.step({ latestHandshake: 0, endpoint: BRIDGE, rxBytes: 20n });
    const gatewayHandshake = h.nowSeconds();
    const d = h.step({ latestHandshake: gatewayHandshake, endpoint: BRIDGE, rxBytes: 30n });
    assert.deepEqual([...d.moved], [KEY]);
    const settle = (rxBytes: bigint) =>
      h.selector.settle(new Map([[KEY, { latestHandshake: gatewayHandshake, endpoint: DIRECT, rxBytes }]]));
    return { ...h, gatewayHandshake, settle };
  }

  // Regression: when both sides tested at the same moment with UDP blocked, each one's datagrams went
  // direct and were lost, no roam-back came, and both went on to handshake tests: seconds of nothing.
  it("auto: a busy peer that falls silent once the endpoint moved ends the test in place at the next decision", () => {
    const h = testingBusy();
    h.settle(30n);
    let d = h.step({ latestHandshake: h.gatewayHandshake, endpoint: DIRECT, rxBytes: 30n }, 200);
    assert.equal(h.selector.report(KEY)?.testing, true, "a pass 200 ms after the move is too soon to tell");
    d = h.step({ latestHandshake: h.gatewayHandshake, endpoint: DIRECT, rxBytes: 30n }, 800);
    assert.deepEqual(
      d.changes.map((c) => [c.from, c.to, c.why]),
      [["gateway", "gateway", "the peer's traffic stopped when the endpoint moved"]],
    );
    assert.equal(d.endpoints.get(KEY), BRIDGE);
    assert.equal(d.reset.size, 0, "no re-add: the session through the gateway stays");
    assert.equal(h.selector.report(KEY)?.testing, false);
    assert.equal(h.selector.report(KEY)?.directFailures, 1);
  });

  it("auto: a busy peer whose traffic arrives directly after the move upgrades", () => {
    const h = testingBusy();
    h.settle(30n);
    const d = h.step({ latestHandshake: h.gatewayHandshake, endpoint: DIRECT, rxBytes: 95n }, 1_000);
    assert.equal(d.changes[0]?.why, "direct traffic both ways");
    assert.equal(h.selector.report(KEY)?.path, "udp");
  });

  it("auto: a one-way path still fails: ours reaches the peer, its answers never arrive", () => {
    const h = testing();
    const { gatewayHandshake } = h;
    h.settle(100n);
    // The peer roamed to our direct endpoint and answers there; none of it arrives, nor anything else.
    let d = h.step({ latestHandshake: gatewayHandshake, endpoint: DIRECT, rxBytes: 100n }, 1_000);
    d = h.step({ latestHandshake: gatewayHandshake, endpoint: DIRECT, rxBytes: 100n }, 2_500);
    assert.deepEqual([...d.reset], [KEY], "a handshake test");
    d = h.step({ latestHandshake: 0, endpoint: DIRECT }, 3_500);
    assert.equal(d.endpoints.get(KEY), BRIDGE);
    assert.equal(h.selector.report(KEY)?.path, "gateway");
    assert.equal(h.selector.report(KEY)?.directFailures, 1);
  });

  it("auto: a direct test with neither traffic nor a handshake goes back to the gateway, re-added, and waits longer each time", () => {
    const h = harness("auto");
    h.step(undefined);
    const pauses: number[] = [];
    for (let round = 0; round < 3; round++) {
      let d = h.step({ latestHandshake: h.nowSeconds(), endpoint: BRIDGE }, 0);
      // Wait for the next test, as the reconcile loop would.
      let waited = 0;
      while (!h.selector.report(KEY)?.testing) {
        d = h.step({ latestHandshake: h.nowSeconds(), endpoint: BRIDGE }, 1000);
        waited += 1000;
        assert.ok(waited < 10 * 60_000, "a test starts eventually");
      }
      pauses.push(waited);
      assert.equal(d.reset.size, 0, "in place first");
      // Nothing arrives on the moved endpoint within the test window: a handshake test follows.
      const moved = h.nowSeconds();
      d = h.step({ latestHandshake: moved, endpoint: DIRECT, rxBytes: 7n }, 1_000);
      assert.equal(d.reset.size, 0);
      d = h.step({ latestHandshake: moved, endpoint: DIRECT, rxBytes: 7n }, 2_500);
      assert.deepEqual([...d.reset], [KEY], "no traffic within 3 s: re-added for a handshake");
      assert.equal(d.endpoints.get(KEY), DIRECT);
      assert.equal(h.selector.report(KEY)?.testing, true);
      d = h.step({ latestHandshake: 0, endpoint: DIRECT }, 3_500);
      assert.equal(d.endpoints.get(KEY), BRIDGE, "back to the gateway");
      assert.deepEqual([...d.reset], [KEY], "re-added so it handshakes over the gateway at once");
      assert.equal(h.selector.report(KEY)?.path, "gateway");
      assert.equal(h.selector.report(KEY)?.directFailures, round + 1);
    }
    assert.equal(pauses[0], 0, "the first test follows the first gateway handshake");
    assert.ok(pauses[1]! >= 29_000 && pauses[2]! >= 59_000, `pauses grow: ${pauses}`);
  });

  it("auto: a handshake that came through the gateway during the test is not proof", () => {
    const h = harness("auto");
    h.step(undefined);
    h.step({ latestHandshake: h.nowSeconds(), endpoint: BRIDGE });
    let d = h.step({ latestHandshake: h.nowSeconds(), endpoint: BRIDGE }, 500);
    assert.equal(d.reset.size, 0, "the peer's traffic came through the gateway: moved again");
    d = h.step({ latestHandshake: h.nowSeconds(), endpoint: BRIDGE }, 3_000);
    assert.deepEqual([...d.reset], [KEY], "no proof by traffic: a handshake test");
    assert.equal(h.selector.report(KEY)?.testing, true);
    d = h.step({ latestHandshake: h.nowSeconds(), endpoint: BRIDGE }, 500);
    assert.equal(h.selector.report(KEY)?.testing, false);
    assert.equal(h.selector.report(KEY)?.path, "gateway");
    assert.equal(d.endpoints.get(KEY), BRIDGE);
    assert.equal(h.selector.report(KEY)?.directFailures, 1);
  });

  function upgraded() {
    const h = harness("auto");
    h.step(undefined);
    h.step({ latestHandshake: h.nowSeconds(), endpoint: BRIDGE });
    h.selector.settle(new Map([[KEY, { latestHandshake: h.nowSeconds(), endpoint: DIRECT, rxBytes: 0n }]]));
    h.step({ latestHandshake: h.nowSeconds(), endpoint: DIRECT, rxBytes: 1n }, 100);
    assert.equal(h.selector.report(KEY)?.path, "udp");
    return h;
  }

  it("auto: a direct peer that receives nothing for three keepalives falls back", () => {
    const h = upgraded();
    const since = h.nowSeconds();
    let d = h.step({ latestHandshake: since, endpoint: DIRECT, rxBytes: 1n }, 40_000);
    assert.equal(h.selector.report(KEY)?.path, "udp", "40 s of silence is within 3 x 15 s + 5 s");
    d = h.step({ latestHandshake: since, endpoint: DIRECT, rxBytes: 1n }, 11_000);
    assert.equal(h.selector.report(KEY)?.path, "gateway");
    assert.equal(d.endpoints.get(KEY), BRIDGE);
    assert.deepEqual([...d.reset], [KEY]);
    assert.match(d.changes[0]!.why, /nothing received/);
  });

  it("auto: a direct peer whose handshakes stop falls back even while bytes trickle in", () => {
    const h = upgraded();
    const since = h.nowSeconds();
    let rx = 1n;
    let d = h.step({ latestHandshake: since, endpoint: DIRECT, rxBytes: rx });
    for (let i = 0; i < 20 && h.selector.report(KEY)?.path === "udp"; i++) {
      rx += 32n;
      d = h.step({ latestHandshake: since, endpoint: DIRECT, rxBytes: rx }, 10_000);
    }
    assert.equal(h.selector.report(KEY)?.path, "gateway");
    assert.match(d.changes[0]!.why, /no handshake for 18\d s/);
  });

  it("auto: follows the peer to the gateway when WireGuard roams to the bridge", () => {
    const h = upgraded();
    const d = h.step({ latestHandshake: h.nowSeconds(), endpoint: BRIDGE, rxBytes: 5n });
    assert.equal(h.selector.report(KEY)?.path, "gateway");
    assert.equal(d.endpoints.get(KEY), BRIDGE);
    assert.equal(d.reset.size, 0, "the peer already handshakes over the gateway");
  });

  it("auto: takes the direct path when the peer's own test moved WireGuard to it", () => {
    const h = harness("auto");
    h.step(undefined);
    h.step({ latestHandshake: h.nowSeconds(), endpoint: BRIDGE });
    // Our own test: no traffic in place, then no handshake either.
    assert.deepEqual([...h.step({ latestHandshake: h.nowSeconds(), endpoint: DIRECT }, 4_000).reset], [KEY]);
    h.step({ latestHandshake: 0, endpoint: DIRECT }, 4_000);
    assert.equal(h.selector.report(KEY)?.testing, false);
    assert.equal(h.selector.report(KEY)?.path, "gateway");
    const d = h.step({ latestHandshake: h.nowSeconds(), endpoint: DIRECT, rxBytes: 9n });
    assert.equal(h.selector.report(KEY)?.path, "udp");
    assert.equal(d.endpoints.get(KEY), DIRECT);
    assert.equal(h.selector.report(KEY)?.directFailures, 0);
  });

  it("auto: of a new pair only the lower key tests at once; the other follows its success without a re-add", () => {
    let t = 1_000_000_000_000;
    const make = (first: boolean) =>
      createTransportSelector({
        mode: "auto",
        keepaliveSeconds: 15,
        testsFirst: () => first,
        firstTestDelayMs: 5_000,
        now: () => t,
      });
    const observe = (seen: Partial<SelectorObservation>) =>
      new Map([[KEY, { latestHandshake: 0, rxBytes: 0n, ...seen }]]);
    const low = make(true);
    const high = make(false);
    for (const s of [low, high]) s.decide([peer], new Map());
    t += 500;
    const handshake = Math.floor(t / 1000);
    const gatewaySeen = observe({ latestHandshake: handshake, endpoint: BRIDGE, rxBytes: 10n });
    const started = low.decide([peer], gatewaySeen);
    assert.deepEqual([...started.moved], [KEY], "the lower key tests at once, in place");
    assert.equal(started.reset.size, 0);
    const held = high.decide([peer], gatewaySeen);
    assert.equal(held.reset.size, 0, "the higher key waits");
    assert.equal(held.moved.size, 0);
    assert.equal(held.endpoints.get(KEY), BRIDGE);
    assert.equal(high.report(KEY)?.nextTestAt, t + 5_000);
    // The lower side's test handshakes directly, and the higher side's WireGuard follows it there.
    t += 1_000;
    const directSeen = observe({ latestHandshake: Math.floor(t / 1000), endpoint: DIRECT, rxBytes: 20n });
    const followed = high.decide([peer], directSeen);
    assert.equal(followed.reset.size, 0, "no test of its own");
    assert.equal(followed.moved.size, 0);
    assert.equal(followed.endpoints.get(KEY), DIRECT);
    assert.equal(high.report(KEY)?.path, "udp");
  });

  it("auto: the higher key still tests, later, when the peer's test never comes", () => {
    let t = 1_000_000_000_000;
    const high = createTransportSelector({
      mode: "auto",
      keepaliveSeconds: 15,
      testsFirst: () => false,
      firstTestDelayMs: 5_000,
      now: () => t,
    });
    const seen = () =>
      new Map([[KEY, { latestHandshake: Math.floor(t / 1000), rxBytes: BigInt(t), endpoint: BRIDGE }]]);
    high.decide([peer], new Map());
    const testsNow = () => {
      const d = high.decide([peer], seen());
      assert.equal(d.reset.size, 0, "a test starts in place");
      return d.moved.size > 0;
    };
    t += 1_000;
    assert.equal(testsNow(), false);
    t += 4_000;
    assert.equal(testsNow(), false, "4 s after its first handshake: waiting");
    t += 1_000;
    assert.equal(testsNow(), true, "5 s after: its own test");
    assert.equal(high.report(KEY)?.testing, true);
  });

  it("forgets peers that are no longer desired", () => {
    const h = upgraded();
    h.selector.decide([], new Map());
    assert.equal(h.selector.report(KEY), undefined);
  });
});
