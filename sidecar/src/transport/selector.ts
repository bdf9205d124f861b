// Which path each peer's WireGuard traffic takes, decided per peer from what WireGuard reports.
//
//   gateway  always the bridge's loopback endpoint (through the dstack gateway)
//   udp      always the peer's direct endpoint (the endpoints file), as before the bridge existed
//   auto     the gateway first; direct UDP as an upgrade. Once the gateway path has handshaken, the
//            direct test begins in place: the peer's endpoint changes to its direct one, the session
//            stays (no packet in flight is lost, nothing waits for a handshake). WireGuard takes every
//            authenticated packet's source as the peer's endpoint, so traffic received after the move
//            while the endpoint still reads direct came directly: the path from the peer works (and the
//            path to it too, unless the peer is testing at the same moment; a one-way path fails the
//            peer's own test, it falls back to the gateway, and this side's endpoint roams back, which
//            sends this side back as well). When the peer's traffic still arrives through the gateway (its
//            WireGuard roamed ours back), the endpoint moves again.
//            A test that cannot succeed must not stop the gateway path for long (direct UDP blocked is
//            the common case on dstack), so it fails in place, the endpoint back on the gateway and the
//            session kept, on either piece of evidence: the peer's traffic came through the gateway after
//            the move was seen applied and none directly within the test window (ours did not reach it,
//            or it would have roamed to us and answered there); or a peer heard at each of the last two
//            decisions sends nothing at all once the endpoint moved (its datagrams go astray: it tests at
//            the same moment, both sides' go direct and no roam-back comes, or its answers cannot reach
//            us). Only a peer quiet throughout (an idle link: nothing to interrupt) gets a handshake test
//            after the window: it is re-added on its direct endpoint, which makes WireGuard handshake at
//            once (its response goes to where the initiation came from, so no crossing traffic can spoil
//            it); a handshake within the window proves the path and the peer stays there. Otherwise it
//            goes back to the gateway (re-added again, so it handshakes at once). Each failure makes the
//            next test wait longer. (When every test ended in a handshake test, it removed the session
//            the peer's traffic rode for its whole window: with UDP blocked and a test every few seconds,
//            a steady stream lost 40–46 % of its datagrams in gaps of 4–6 s; now under 1 %, and at most
//            0.2 s: devnet/bench/gateway-gaps.ts.) A direct peer falls back when its handshakes
//            stop (latest handshake older than ~3 min) or nothing arrives for three keepalives, or when
//            WireGuard roams it to the bridge (the peer fell back first). A gateway peer whose
//            WireGuard roamed to the direct endpoint with a fresh handshake is taken as direct (the
//            peer's own test succeeded).
//
// Both sides of a pair run this schedule. Of a new pair, only the side with the lower WireGuard key
// tests at once (`testsFirst`); the other's first test waits `firstTestDelayMs` after its first
// handshake. The first side's success moves the other's WireGuard to the direct path as well, which
// the other then takes without a test of its own: one re-add per pair instead of two at about the same
// moment, whose initiations could cross (reconcile/initiator.ts) and which left the pair without a
// handshake meanwhile. Where the first side cannot test (it knows no direct endpoint) the other still
// does, later.
//
// Pure logic over plain data and an injected clock; the caller applies the endpoints and re-adds.
import type { TransportMode } from "../model/transport.ts";

export type PeerPath = "gateway" | "udp";

export interface SelectorPeer {
  readonly publicKey: string;
  /** The peer's direct UDP endpoint, when known. */
  readonly directEndpoint: string | undefined;
  /** The bridge's loopback endpoint for the peer, when the bridge runs. */
  readonly gatewayEndpoint: string | undefined;
}

/** What WireGuard reports about a peer (PeerStatus fits). */
export interface SelectorObservation {
  readonly endpoint?: string;
  /** Unix seconds, 0 if none. */
  readonly latestHandshake: number;
  readonly rxBytes: bigint;
}

export interface PathReport {
  readonly path: PeerPath;
  /** ms since the epoch when the peer took this path. */
  readonly since: number;
  /** A direct-path handshake test is running. */
  readonly testing: boolean;
  readonly directEndpoint: string | undefined;
  /** Failed direct tests and fallbacks in a row. */
  readonly directFailures: number;
  /** When the next direct test may start (auto), ms since the epoch. */
  readonly nextTestAt: number | undefined;
  /**
   * The latest handshake seen with this peer, in unix seconds (0: none). Survives the re-adds of a
   * test or a fallback, which reset WireGuard's own counter, so health does not flap while testing.
   */
  readonly latestHandshake: number;
}

export interface SelectorDecision {
  /** Endpoint per public key (undefined: leave it to WireGuard). */
  readonly endpoints: ReadonlyMap<string, string | undefined>;
  /** Peers to remove and re-add, so WireGuard handshakes with them at once. */
  readonly reset: ReadonlySet<string>;
  /**
   * Peers whose direct test moved their endpoint in place in this decision (it began, or WireGuard had
   * roamed the endpoint back): once it is applied, hand what WireGuard reports to `settle`, so that only
   * traffic after the move counts as proof.
   */
  readonly moved: ReadonlySet<string>;
  /** Path changes made by this decision, for the log. */
  readonly changes: ReadonlyArray<{ publicKey: string; from: PeerPath; to: PeerPath; why: string }>;
}

export interface SelectorOptions {
  readonly mode: TransportMode;
  /** Persistent keepalive in seconds (0: off, staleness then relies on handshakes alone). */
  readonly keepaliveSeconds: number;
  /**
   * First pause before testing direct UDP again after a failure; doubles up to `retryMaxMs`. Each pause
   * is spread by ±25 % (`random`): both sides of a pair fail a test at about the same moment (each sees
   * the other's traffic stop or come through the gateway), and equal pauses would keep their tests
   * together from then on. Tests that overlap cost the gateway path most: each side's datagrams go
   * direct and are lost, and no roam-back ends either test early.
   */
  readonly retryBaseMs?: number;
  readonly retryMaxMs?: number;
  /** How long a direct handshake may take; default 3 s. */
  readonly testTimeoutMs?: number;
  /** A direct peer whose latest handshake is older than this falls back; default 180 s. */
  readonly staleHandshakeMs?: number;
  /**
   * True when this node tests a new peer's direct path at once (its WireGuard key is the lower one);
   * default: always.
   */
  readonly testsFirst?: (publicKey: string) => boolean;
  /** How long a peer that does not test first waits after its first handshake; default 5 s. */
  readonly firstTestDelayMs?: number;
  readonly now?: () => number;
  /** Uniform in [0, 1); spreads the retry pauses. Default Math.random. */
  readonly random?: () => number;
}

interface PeerState {
  path: PeerPath;
  since: number;
  testStartedAt: number | undefined;
  /** The running test: in place, proved by traffic, or after a re-add, proved by a handshake. */
  testBy: "traffic" | "handshake";
  /** In-place test: the bytes received when the direct endpoint was first seen applied. */
  testRx: bigint | undefined;
  /** In-place test: WireGuard roamed the endpoint back to the gateway after the move was seen applied. */
  roamedBack: boolean;
  /** In-place test: the peer's traffic had arrived at each of the last two decisions before it began. */
  busy: boolean;
  failures: number;
  nextTestAt: number;
  lastRx: bigint;
  lastRxAt: number;
  /** Decisions in a row at which more had arrived from the peer than at the one before. */
  rxRun: number;
  directEndpoint: string | undefined;
  latestHandshake: number;
  /** The first test was put off for the peer's own (testsFirst); set once per state. */
  deferred: boolean;
}

/** A peer's state on `path` from `t` on: no test, no failure, nothing received yet. */
function newState(path: PeerPath, peer: SelectorPeer, t: number): PeerState {
  return {
    path,
    since: t,
    testStartedAt: undefined,
    testBy: "traffic",
    testRx: undefined,
    roamedBack: false,
    busy: false,
    failures: 0,
    nextTestAt: t,
    lastRx: 0n,
    lastRxAt: t,
    rxRun: 0,
    directEndpoint: peer.directEndpoint,
    latestHandshake: 0,
    deferred: false,
  };
}

export interface TransportSelector {
  decide(
    peers: readonly SelectorPeer[],
    observed: ReadonlyMap<string, SelectorObservation>,
  ): SelectorDecision;
  report(publicKey: string): PathReport | undefined;
  /** What WireGuard reports right after the endpoints of `moved` were applied (see SelectorDecision). */
  settle(observed: ReadonlyMap<string, SelectorObservation>): void;
  /**
   * The interface was created anew (its daemon died): no session, handshake or test of the old one
   * counts. Every peer starts over as a new one on the next decision.
   */
  forget(): void;
}

export function createTransportSelector(options: SelectorOptions): TransportSelector {
  const now = options.now ?? Date.now;
  const random = options.random ?? Math.random;
  const retryBaseMs = options.retryBaseMs ?? 30_000;
  const retryMaxMs = options.retryMaxMs ?? 15 * 60_000;
  const testTimeoutMs = options.testTimeoutMs ?? 3_000;
  const staleHandshakeMs = options.staleHandshakeMs ?? 180_000;
  const testsFirst = options.testsFirst ?? (() => true);
  const firstTestDelayMs = options.firstTestDelayMs ?? 5_000;
  const silenceMs = options.keepaliveSeconds > 0 ? 3 * options.keepaliveSeconds * 1000 + 5_000 : undefined;
  const states = new Map<string, PeerState>();

  function retryDelay(failures: number): number {
    const pause = Math.min(retryMaxMs, retryBaseMs * 2 ** Math.max(0, Math.min(30, failures - 1)));
    return Math.round(pause * (0.75 + 0.5 * random()));
  }

  function fixed(
    peer: SelectorPeer,
    path: PeerPath,
    t: number,
  ): { path: PeerPath; endpoint: string | undefined } {
    const state = states.get(peer.publicKey);
    if (state === undefined || state.path !== path) {
      states.set(peer.publicKey, newState(path, peer, t));
    } else state.directEndpoint = peer.directEndpoint;
    return { path, endpoint: path === "udp" ? peer.directEndpoint : peer.gatewayEndpoint };
  }

  return {
    decide(peers, observed) {
      const t = now();
      const endpoints = new Map<string, string | undefined>();
      const reset = new Set<string>();
      const moved = new Set<string>();
      const changes: Array<{ publicKey: string; from: PeerPath; to: PeerPath; why: string }> = [];
      const wanted = new Set(peers.map((p) => p.publicKey));
      for (const key of states.keys()) if (!wanted.has(key)) states.delete(key);

      for (const peer of peers) {
        const key = peer.publicKey;
        // Fixed modes, and auto where only one path exists.
        const only: PeerPath | undefined =
          options.mode === "udp" || peer.gatewayEndpoint === undefined
            ? "udp"
            : options.mode === "gateway" || peer.directEndpoint === undefined
              ? "gateway"
              : undefined;
        const seenHandshake = observed.get(key)?.latestHandshake ?? 0;
        if (only !== undefined) {
          endpoints.set(key, fixed(peer, only, t).endpoint);
          const fixedState = states.get(key)!;
          fixedState.latestHandshake = Math.max(fixedState.latestHandshake, seenHandshake);
          continue;
        }
        let state = states.get(key);
        if (state === undefined) {
          state = newState("gateway", peer, t);
          states.set(key, state);
        }
        state.directEndpoint = peer.directEndpoint;
        state.latestHandshake = Math.max(state.latestHandshake, seenHandshake);
        const seen = observed.get(key);
        const handshakeMs = (seen?.latestHandshake ?? 0) * 1000;
        if (seen !== undefined && seen.rxBytes !== state.lastRx) {
          state.lastRx = seen.rxBytes;
          state.lastRxAt = t;
          state.rxRun += 1;
        } else state.rxRun = 0;
        const move = (to: PeerPath, why: string) => {
          changes.push({ publicKey: key, from: state.path, to, why });
          state.path = to;
          state.since = t;
          state.testStartedAt = undefined;
          state.lastRxAt = t;
        };
        const fail = (why: string) => {
          state.failures += 1;
          state.nextTestAt = t + retryDelay(state.failures);
          move("gateway", why);
        };

        if (state.testStartedAt !== undefined && state.testBy === "traffic") {
          const direct = seen !== undefined && seen.endpoint === peer.directEndpoint;
          if (direct && state.testRx !== undefined && seen.rxBytes > state.testRx) {
            state.failures = 0;
            move("udp", "direct traffic both ways");
          } else if (
            direct &&
            state.busy &&
            state.testRx !== undefined &&
            seen.rxBytes === state.testRx &&
            t - state.testStartedAt >= testTimeoutMs / 3
          ) {
            // A peer that sent at every decision before stopped the moment the endpoint moved (a pass
            // woken moments after the move is too soon to tell): its traffic goes astray now. Either it
            // is testing at the same moment (both sides' datagrams go direct, neither's arrives, and no
            // roam-back ends it) or it roamed to us and its answers cannot reach us. Neither would end
            // within the window, and a handshake test after it would remove the session as well: back
            // to the gateway now, in place.
            fail("the peer's traffic stopped when the endpoint moved");
            endpoints.set(key, peer.gatewayEndpoint);
            continue;
          } else if (
            t - state.testStartedAt > testTimeoutMs &&
            (state.roamedBack || (!direct && state.testRx !== undefined))
          ) {
            // The peer's traffic arrived through the gateway after the move had taken effect, and none
            // directly: ours did not reach it directly (it would have roamed there and answered there).
            // A handshake test would remove the session that traffic rides on for a whole window, so
            // the test ends here and the endpoint goes back in place, the session kept.
            fail(`no direct traffic within ${testTimeoutMs} ms while the peer's came through the gateway`);
            endpoints.set(key, peer.gatewayEndpoint);
            continue;
          } else if (t - state.testStartedAt > testTimeoutMs) {
            // Nothing from the peer within the window (an idle link): prove it by a handshake, which
            // WireGuard answers at once, and which interrupts nobody's traffic.
            state.testBy = "handshake";
            state.testStartedAt = t;
            reset.add(key);
          } else if (!direct) {
            // The peer's traffic still came through the gateway (it sent before ours reached it, or ours
            // cannot): WireGuard roamed the endpoint back. Move it again; only traffic after counts.
            // Once the move was seen applied (`testRx`), that traffic is the peer's, sent after it.
            if (state.testRx !== undefined) state.roamedBack = true;
            state.testRx = undefined;
            moved.add(key);
          } else if (state.testRx === undefined) {
            // No `settle` since the move: this is the first look at the applied endpoint.
            state.testRx = seen.rxBytes;
          }
          endpoints.set(key, peer.directEndpoint);
          continue;
        }

        if (state.testStartedAt !== undefined) {
          // WireGuard reports whole seconds; a handshake in the test's own second counts.
          const handshook = handshakeMs > 0 && handshakeMs >= Math.floor(state.testStartedAt / 1000) * 1000;
          if (handshook && seen?.endpoint === peer.directEndpoint) {
            state.failures = 0;
            move("udp", "direct handshake completed");
          } else if (handshook) {
            // The peer handshook through the gateway meanwhile: no proof of the direct path.
            fail("the handshake came through the gateway, not directly");
          } else if (t - state.testStartedAt > testTimeoutMs) {
            fail(`no direct handshake within ${testTimeoutMs} ms`);
            reset.add(key);
          }
          endpoints.set(
            key,
            state.testStartedAt === undefined && state.path === "gateway"
              ? peer.gatewayEndpoint
              : peer.directEndpoint,
          );
          continue;
        }

        if (state.path === "udp") {
          if (seen?.endpoint !== undefined && seen.endpoint === peer.gatewayEndpoint) {
            fail("the peer's traffic arrives through the gateway (it fell back)");
          } else if (handshakeMs > 0 && t - handshakeMs > staleHandshakeMs) {
            fail(`no handshake for ${Math.round((t - handshakeMs) / 1000)} s`);
            reset.add(key);
          } else if (silenceMs !== undefined && t - state.lastRxAt > silenceMs) {
            fail(`nothing received for ${Math.round((t - state.lastRxAt) / 1000)} s`);
            reset.add(key);
          }
        } else if (
          seen?.endpoint !== undefined &&
          seen.endpoint === peer.directEndpoint &&
          handshakeMs > 0 &&
          t - handshakeMs <= staleHandshakeMs
        ) {
          state.failures = 0;
          move("udp", "the peer reached us directly (its direct test succeeded)");
        } else if (handshakeMs > 0 && t >= state.nextTestAt && !state.deferred && !testsFirst(key)) {
          // The peer tests first; its success brings this side along (the branch above).
          state.deferred = true;
          state.nextTestAt = t + firstTestDelayMs;
        } else if (handshakeMs > 0 && t >= state.nextTestAt) {
          state.testStartedAt = t;
          state.testBy = "traffic";
          state.testRx = undefined;
          state.roamedBack = false;
          state.busy = state.rxRun >= 2;
          moved.add(key);
          endpoints.set(key, peer.directEndpoint);
          continue;
        }
        endpoints.set(key, state.path === "udp" ? peer.directEndpoint : peer.gatewayEndpoint);
      }
      return { endpoints, reset, moved, changes };
    },

    settle(observed) {
      for (const [key, state] of states) {
        const seen = observed.get(key);
        if (state.testStartedAt === undefined || state.testBy !== "traffic" || state.testRx !== undefined)
          continue;
        // Not yet direct: the peer's traffic roamed it back already; the next decision sees that.
        if (seen !== undefined && seen.endpoint === state.directEndpoint) state.testRx = seen.rxBytes;
      }
    },

    forget() {
      states.clear();
    },

    report(publicKey) {
      const state = states.get(publicKey);
      if (state === undefined) return undefined;
      return {
        path: state.path,
        since: state.since,
        testing: state.testStartedAt !== undefined,
        directEndpoint: state.directEndpoint,
        directFailures: state.failures,
        nextTestAt: options.mode === "auto" && state.path === "gateway" ? state.nextTestAt : undefined,
        latestHandshake: state.latestHandshake,
      };
    },
  };
}
