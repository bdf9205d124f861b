// The phase is one pure function of the facts: a table of facts and the phase each must give, then the
// status store that recomputes it on every update and logs each transition once. Replaces the readiness
// gate's test: a reconciler "healthy" that the mesh did not confirm, and an ended membership that a
// later mesh change must not turn back into `healthy`, are rows here.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { PHASES, type Phase, type PhaseFacts, phaseOf } from "../src/phase.ts";
import { createStatusStore } from "../src/status.ts";
import { captureLogger } from "./helpers.ts";

const HEALTHY: PhaseFacts = {
  booted: true,
  registered: true,
  wireguard: "configured",
  peers: 2,
  handshaken: 2,
  meshRunning: true,
  cskHeld: true,
  chainCskEpoch: 3n,
  converged: true,
};

const TABLE: ReadonlyArray<readonly [string, Partial<PhaseFacts>, Phase, string | RegExp]> = [
  ["nothing known yet", { booted: false, registered: false, wireguard: "down" }, "booting", /deriving keys/],
  ["booting wins over every later fact", { booted: false }, "booting", /deriving keys/],
  ["booted, no member id", { registered: false }, "registering", "not an active member yet"],
  [
    "membership ended while the mesh still reports CSK and convergence",
    { registered: false, wireguard: "configured" },
    "registering",
    "not an active member yet",
  ],
  ["registered, not confirmed", { wireguard: "down" }, "waiting-peers", /confirmed membership/],
  ["interface coming up", { wireguard: "configuring" }, "wg-configuring", /bringing up/],
  [
    "one of two peers handshook",
    { handshaken: 1 },
    "wg-configuring",
    "1 of 2 peers have not completed a handshake",
  ],
  ["no handshake yet", { handshaken: 0 }, "wg-configuring", "2 of 2 peers have not completed a handshake"],
  ["handshakes, mesh socket not open", { meshRunning: false }, "pulling-csk", "mesh socket not open yet"],
  [
    "handshakes, no CSK, epoch unknown",
    { cskHeld: false, chainCskEpoch: undefined },
    "pulling-csk",
    "reading the CSK epoch",
  ],
  ["handshakes, no CSK of epoch 3", { cskHeld: false }, "pulling-csk", "waiting for the CSK of epoch 3"],
  ["CSK held, not converged", { converged: false }, "heartbeating", /do not agree/],
  ["every fact holds", {}, "healthy", /every peer handshook/],
  ["a lone member", { peers: 0, handshaken: 0 }, "healthy", "no other members: a lone member is healthy"],
  ["a lone member without the CSK", { peers: 0, handshaken: 0, cskHeld: false }, "pulling-csk", /epoch 3/],
];

describe("phaseOf", () => {
  for (const [name, facts, phase, reason] of TABLE) {
    test(`${name}: ${phase}`, () => {
      const verdict = phaseOf({ ...HEALTHY, ...facts });
      assert.equal(verdict.phase, phase);
      if (typeof reason === "string") assert.equal(verdict.reason, reason);
      else assert.match(verdict.reason, reason);
    });
  }
});

describe("status store", () => {
  test("the phase follows the facts on every update, one log line per transition", () => {
    const log = captureLogger();
    const seen: Phase[] = [];
    let clock = 1000;
    const status = createStatusStore({ logger: log.logger, onPhase: (p) => seen.push(p), now: () => clock });
    assert.equal(status.get().phase, "booting");
    clock = 2000;
    status.update({ booted: true });
    assert.equal(status.get().phase, "registering");
    assert.equal(status.get().phaseSince, 2000);
    status.update({ memberId: 4n });
    status.update({ wireguard: "configuring", interfaceUp: true });
    status.update({ wireguard: "configured" });
    status.update({ meshRunning: true, chainCskEpoch: 1n });
    status.update({ meshRunning: true });
    status.update({ cskAcquired: true });
    status.update({ converged: true });
    assert.equal(status.get().phase, "healthy");
    clock = 3000;
    status.update({ memberId: undefined });
    assert.equal(status.get().phase, "registering", "an ended membership is not healthy");
    status.update({ converged: true, cskAcquired: true });
    assert.equal(status.get().phase, "registering", "a later mesh change cannot bring back healthy");
    assert.equal(status.get().phaseSince, 3000);
    // Every phase once, in order, then back to registering.
    const expected: Phase[] = [...PHASES, "registering"];
    assert.deepEqual(seen, expected);
    const transitions = log.lines().filter((l) => l.msg.startsWith("phase "));
    assert.deepEqual(
      transitions.map((l) => l.to),
      expected.slice(1),
      "each transition is logged once",
    );
    assert.equal(transitions.at(-1)?.reason, "not an active member yet");
  });
});
