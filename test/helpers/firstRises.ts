// When each of several counters first rose above its baseline, as a poll sees it: how the eviction tests
// time every remaining node's first refusal of an evicted member (sidecar/test/main.test.ts in process,
// test/e2e/eviction.test.ts on the devnet).

/** Records, for each counter, the first time (ms after `t0`, a `performance.now()`) it read above `baseline`. */
export function firstRises(baseline: readonly number[], t0: number) {
  const at: Array<number | undefined> = baseline.map(() => undefined);
  return {
    /** Takes one reading of every counter; true once each has risen. */
    see(now: readonly number[]): boolean {
      const t = performance.now() - t0;
      now.forEach((n, i) => {
        if (n > baseline[i]! && at[i] === undefined) at[i] = t;
      });
      return at.every((r) => r !== undefined);
    },
    /** When the last of them rose: the ms after `t0` by which every counter had (once `see` said so). */
    last(): number {
      return Math.max(...(at as number[]));
    },
  };
}
