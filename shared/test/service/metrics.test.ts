// The metric factories make exactly the metric they are told (name, help, labels, buckets) on the
// registry they are bound to, and on none when there is none.
import assert from "node:assert/strict";
import { test } from "node:test";
import { metricsOn, SECONDS_BUCKETS } from "@attestmesh/shared/service/metrics.ts";
import { Registry } from "prom-client";

test("a counter, gauge and histogram are registered with their name, help, labels and buckets", async () => {
  const registry = new Registry();
  const { counter, gauge, histogram } = metricsOn(registry);
  const sent = counter("am_test_sent_total", "Things sent, by outcome.", ["outcome"]);
  const ticks = counter("am_test_ticks_total", "Ticks.");
  const depth = gauge("am_test_depth", "Queue depth, by queue and kind.", ["queue", "kind"]);
  const seconds = histogram("am_test_seconds", "Time of one pass.", [0.1, 1, 10], ["outcome"]);
  const unlabelled = histogram("am_test_pass_seconds", "Time of one pass.", SECONDS_BUCKETS);
  sent.inc({ outcome: "ok" });
  ticks.inc();
  depth.set({ queue: "in", kind: "a" }, 3);
  seconds.observe({ outcome: "ok" }, 0.5);
  unlabelled.observe(0.02);
  // @ts-expect-error a label the counter was not declared with
  assert.throws(() => sent.inc({ reason: "x" }));

  assert.deepEqual(
    registry.getMetricsAsArray().map((m) => m.name),
    ["am_test_sent_total", "am_test_ticks_total", "am_test_depth", "am_test_seconds", "am_test_pass_seconds"],
  );
  assert.deepEqual(
    (await registry.getMetricsAsJSON()).map(({ name, help, type }) => ({ name, help, type })),
    [
      { name: "am_test_sent_total", help: "Things sent, by outcome.", type: "counter" },
      { name: "am_test_ticks_total", help: "Ticks.", type: "counter" },
      { name: "am_test_depth", help: "Queue depth, by queue and kind.", type: "gauge" },
      { name: "am_test_seconds", help: "Time of one pass.", type: "histogram" },
      { name: "am_test_pass_seconds", help: "Time of one pass.", type: "histogram" },
    ],
  );
  const text = await registry.metrics();
  assert.match(text, /^am_test_sent_total\{outcome="ok"\} 1$/m);
  assert.match(text, /^am_test_ticks_total 1$/m);
  assert.match(text, /^am_test_depth\{queue="in",kind="a"\} 3$/m);
  assert.match(text, /^am_test_seconds_bucket\{le="0.1",outcome="ok"\} 0$/m);
  assert.match(text, /^am_test_seconds_bucket\{le="1",outcome="ok"\} 1$/m);
  assert.match(text, /^am_test_seconds_bucket\{le="\+Inf",outcome="ok"\} 1$/m);
  assert.doesNotMatch(text, /am_test_seconds_bucket\{le="0.005"/);
  const bounds = [...text.matchAll(/^am_test_pass_seconds_bucket\{le="([^"]+)"\}/gm)].map((m) => m[1]);
  assert.deepEqual(bounds, [...SECONDS_BUCKETS.map(String), "+Inf"]);
});

test("SECONDS_BUCKETS are 5 ms to 10 s, and a histogram keeps its own copy of the buckets", async () => {
  assert.deepEqual(SECONDS_BUCKETS, [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]);
  const registry = new Registry();
  const buckets = [1, 2];
  metricsOn(registry).histogram("am_test_copy_seconds", "Copied buckets.", buckets).observe(1.5);
  buckets.push(3);
  const text = await registry.metrics();
  const bounds = [...text.matchAll(/^am_test_copy_seconds_bucket\{le="([^"]+)"\} (\d+)$/gm)].map((m) => [
    m[1],
    m[2],
  ]);
  assert.deepEqual(bounds, [
    ["1", "0"],
    ["2", "1"],
    ["+Inf", "1"],
  ]);
});

test("without a registry, metrics count but are registered nowhere", async () => {
  const global = (await import("prom-client")).register;
  const before = global.getMetricsAsArray().length;
  const loose = metricsOn(undefined).counter("am_test_loose_total", "Counted, not exported.", ["k"]);
  loose.inc({ k: "v" }, 2);
  assert.equal((await loose.get()).values[0]?.value, 2);
  assert.equal(global.getMetricsAsArray().length, before);
  assert.equal(global.getSingleMetric("am_test_loose_total"), undefined);
  // Two registries can each hold a metric of the same name (several daemons in one test process).
  const a = new Registry();
  const b = new Registry();
  metricsOn(a).gauge("am_test_same", "Same name.");
  metricsOn(b).gauge("am_test_same", "Same name.");
  assert.ok(a.getSingleMetric("am_test_same") !== b.getSingleMetric("am_test_same"));
});
