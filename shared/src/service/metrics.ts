// Prometheus metrics, declared one per call: `metricsOn(registry)` gives counter, gauge and histogram
// factories that register what they make on that registry (or on none, for a component started
// without one), so a daemon's metrics module lists only what each metric is: its name, help text,
// label names and buckets. Each daemon keeps a registry of its own (tests run several in one process).
import { Counter, Gauge, Histogram, type Registry } from "prom-client";

/** Upper bounds, in seconds, for the duration of one pass or check: 5 ms to 10 s. */
export const SECONDS_BUCKETS: readonly number[] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export interface MetricFactories {
  counter<L extends string = string>(name: string, help: string, labelNames?: readonly L[]): Counter<L>;
  gauge<L extends string = string>(name: string, help: string, labelNames?: readonly L[]): Gauge<L>;
  histogram<L extends string = string>(
    name: string,
    help: string,
    buckets: readonly number[],
    labelNames?: readonly L[],
  ): Histogram<L>;
}

/** Factories of metrics registered on `registry`; undefined: registered nowhere (still counted). */
export function metricsOn(registry: Registry | undefined): MetricFactories {
  const registers = registry === undefined ? [] : [registry];
  return {
    counter: (name, help, labelNames = []) => new Counter({ name, help, labelNames, registers }),
    gauge: (name, help, labelNames = []) => new Gauge({ name, help, labelNames, registers }),
    histogram: (name, help, buckets, labelNames = []) =>
      new Histogram({ name, help, labelNames, buckets: [...buckets], registers }),
  };
}
