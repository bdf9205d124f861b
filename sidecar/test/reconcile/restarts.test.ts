// The restart pacer's arithmetic, then a reconcile loop over the in-memory backend whose interface goes
// away right after every `up` (a crash loop): the first restart runs at once, repeats back off, /healthz
// says until when, logging thins out, every loss is counted, and the mesh comes back once it can.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { ipToNumber, parseMeshCidr } from "@attestmesh/shared/mesh/cidr.ts";
import { bytesToHex, getAddress } from "viem";
import type { MembershipFollower } from "../../src/chain/follower.ts";
import { healthReport } from "../../src/health.ts";
import { createMetrics } from "../../src/metrics.ts";
import type { Member } from "../../src/model/member.ts";
import { createReconcileLoop } from "../../src/reconcile/loop.ts";
import { createReconciler } from "../../src/reconcile/reconciler.ts";
import { createRestartPacer } from "../../src/reconcile/restarts.ts";
import { secret } from "../../src/secret.ts";
import { createStatusStore } from "../../src/status.ts";
import { wireguardKeyPair } from "../../src/wireguard/keys.ts";
import { createMemoryBackend } from "../../src/wireguard/memory.ts";
import { captureLogger } from "../helpers.ts";

describe("restart pacer", () => {
  const policy = { firstDelayMs: 1_000, maxDelayMs: 8_000, stableMs: 60_000 };

  test("the first loss is answered at once; repeats wait 1, 2, 4, 8, 8 s; failed attempts count", () => {
    const pacer = createRestartPacer(policy);
    let now = 1_000_000;
    const delays: number[] = [];
    let schedule = pacer.lost(now);
    for (let i = 0; i < 6; i++) {
      delays.push(schedule.delayMs);
      assert.equal(pacer.waitMs(now), schedule.delayMs);
      now = schedule.notBefore;
      assert.equal(pacer.waitMs(now), 0);
      pacer.attempt();
      now += 300;
      // Every other attempt fails at start-up; the others come up and go again.
      if (i % 2 === 0) {
        pacer.up(now);
        now += 200;
        schedule = pacer.lost(now);
      } else {
        schedule = pacer.failed(now);
      }
    }
    assert.deepEqual(delays, [0, 1_000, 2_000, 4_000, 8_000, 8_000]);
    assert.equal(schedule.failures, 7);
    assert.equal(pacer.active(now), true);
  });

  test("an interface that stayed up for stableMs ends the run: its loss is answered at once again", () => {
    const pacer = createRestartPacer(policy);
    pacer.lost(0);
    pacer.attempt();
    pacer.up(0);
    assert.equal(pacer.lost(1_000).delayMs, 1_000);
    pacer.attempt();
    const now = 2_000;
    pacer.up(now);
    assert.equal(pacer.active(now + 59_999), true);
    assert.equal(pacer.active(now + 60_000), false);
    const again = pacer.lost(now + 60_000);
    assert.deepEqual([again.delayMs, again.failures], [0, 1]);
    pacer.reset();
    assert.equal(pacer.active(now + 60_000), false);
    assert.equal(pacer.lost(now + 60_001).delayMs, 0);
  });
});

const mesh = parseMeshCidr("10.77.0.0/16");

function member(id: number): Member {
  return {
    memberId: BigInt(id),
    appId: getAddress(`0x${id.toString(16).padStart(40, "0")}`),
    memberKey: getAddress(`0x${(id + 1000).toString(16).padStart(40, "0")}`),
    wireguardKey: bytesToHex(wireguardKeyPair(new Uint8Array(32).fill(id)).publicKey),
    identityKey: `0x${"ab".repeat(32)}`,
    meshIp: ipToNumber(`10.77.0.${id}`),
    status: "active",
    registeredAt: 1,
  };
}

describe("reconciler: a crash-looping interface", () => {
  // Regression: a wireguard-go that died every time it came up was restarted at full speed, each
  // death logged at error level and answered by another pass at once: a CPU burn and a log flood.
  test("repeats back off to the cap, /healthz says until when, logs thin out, the mesh comes back", async () => {
    const { logger, lines } = captureLogger("info");
    const backend = createMemoryBackend();
    const status = createStatusStore({ logger });
    status.update({ booted: true, memberId: 1n, meshRunning: true, cskAcquired: true, converged: true });
    const metrics = createMetrics();
    const members = new Map([1, 2].map((id) => [BigInt(id), member(id)]));
    const follower: MembershipFollower = {
      sync: async () => ({
        block: 1n,
        blockHash: `0x${"00".repeat(32)}`,
        members,
        changed: [],
        kind: "full",
      }),
      current: () => undefined,
      invalidate: () => {},
    };
    // The interface goes away 20 ms after every `up` while `crashing`.
    let crashing = false;
    const ups: number[] = [];
    const up = backend.up.bind(backend);
    backend.up = async (config) => {
      await up(config);
      ups.push(Date.now());
      if (crashing) setTimeout(() => backend.crash(), 20);
    };
    const abort = new AbortController();
    let wake: (reason?: string) => Promise<void> = async () => {};
    const reconciler = createReconciler({
      follower,
      backend,
      endpoints: { read: async () => new Map([[member(2).appId.toLowerCase(), "10.0.0.2:51820"]]) },
      status,
      metrics,
      logger,
      keys: {
        wireguard: {
          privateKey: secret(wireguardKeyPair(new Uint8Array(32).fill(1)).privateKey),
          publicKey: "0x",
          publicKeyBase64: wireguardKeyPair(new Uint8Array(32).fill(1)).publicKeyBase64,
        },
      },
      mesh,
      interfaceName: "attestmesh0",
      listenPort: 51820,
      keepaliveSeconds: 15,
      handshakeHoldMs: 0,
      restartPolicy: { firstDelayMs: 100, maxDelayMs: 400, stableMs: 1_000 },
      memberId: () => 1n,
      onMembershipEnded: () => {},
      wake: (reason) => void wake(reason),
    });
    // The loop's own timer never fires within the test: only the reconciler's wake-ups run passes.
    const loop = createReconcileLoop({
      pass: reconciler.pass,
      intervalMs: 600_000,
      signal: abort.signal,
      logger,
    });
    wake = loop.wake;
    try {
      loop.start();
      await loop.wake();
      assert.equal(status.get().interfaceUp, true);
      assert.equal(ups.length, 1);

      // A single loss is answered at once, as before.
      const lostAt = Date.now();
      backend.crash();
      await sleep(50);
      assert.equal(ups.length, 2, "restarted at once");
      assert.ok(ups[1]! - lostAt < 50);
      assert.equal(healthReport(status.get()).wireguardRestart?.backingOff, false);

      // From now on it goes away 20 ms after every start, for 2 s.
      crashing = true;
      const from = ups.length;
      backend.crash();
      let sawBackoff: ReturnType<typeof healthReport>["wireguardRestart"] = null;
      const windowEnd = Date.now() + 2_000;
      while (Date.now() < windowEnd) {
        const report = healthReport(status.get());
        if (report.wireguardRestart?.backingOff) sawBackoff ??= report.wireguardRestart;
        assert.equal(report.healthy, false);
        await sleep(10);
      }
      crashing = false;
      const attempts = ups.length - from;
      // Delays 100, 200, 400, 400, … ms: at most 7 attempts in 2 s (without the pacer: one every ~20 ms).
      assert.ok(attempts >= 4 && attempts <= 7, `${attempts} attempts in 2 s`);
      assert.ok(sawBackoff !== null, "/healthz said it was backing off");
      assert.equal(sawBackoff.reason, "daemon-exited");
      assert.ok(sawBackoff.failures >= 2);
      assert.ok(Date.parse(sawBackoff.nextAttemptAt ?? "") > windowEnd - 2_000);

      // Once the interface stays up, the mesh comes back within the capped delay.
      const deadline = Date.now() + 1_000;
      while (!status.get().interfaceUp && Date.now() < deadline) await sleep(10);
      assert.equal(status.get().interfaceUp, true);
      assert.deepEqual(
        (await backend.peers()).map((p) => p.allowedIps),
        [["10.77.0.2/32"]],
      );
      const restarts = await metrics.registry.metrics();
      // The single loss, the one that began the loop, and one after each attempt in it.
      assert.match(
        restarts,
        new RegExp(`attestmesh_wireguard_restarts_total\\{reason="daemon-exited"\\} ${attempts + 2}\\n`),
      );
      // One error for the run (the single loss began it: the loop came before the interface had
      // stayed up for stableMs); the repeats as warnings while the delay grows (100, 200 ms), once at
      // the cap, then none for 10 minutes.
      const errors = lines().filter((l) => l.level >= 50);
      assert.deepEqual(
        errors.map((l) => l.msg),
        ["wireguard-go exited; restarting the interface"],
      );
      const repeats = lines().filter((l) => l.level === 40 && /went away again/.test(l.msg));
      assert.equal(repeats.length, 3, repeats.map((l) => l.msg).join("\n"));
      assert.match(repeats[2]!.msg, /logged once every 10 minutes/);
      // Up for stableMs: the run is over and /healthz no longer reports it.
      await sleep(1_100);
      await loop.wake();
      assert.equal(healthReport(status.get()).wireguardRestart, null);
      // Gone again after that: at once again.
      const before = ups.length;
      backend.crash();
      await sleep(50);
      assert.equal(ups.length, before + 1);
    } finally {
      abort.abort();
      await loop.stopped;
    }
  });
});
