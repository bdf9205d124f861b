// Seeded randomness for the devnet's long runs: one xoroshiro128+ stream (pure-rand) per run, so a seed
// names one run (the soak's schedule of faults, the liveness simulator's losses and delays) and the run
// can be repeated exactly.
import { uniformInt } from "pure-rand/distribution/uniformInt";
import { xoroshiro128plus } from "pure-rand/generator/xoroshiro128plus";

export interface Rng {
  /** An integer in [from, to], both included. */
  int(from: number, to: number): number;
  /** A number in [0, 1), in steps of 2^-32. */
  float(): number;
  /** One element of a non-empty list. */
  pick<T>(items: readonly T[]): T;
  /** A new array with the items in a seeded order (Fisher–Yates). */
  shuffle<T>(items: readonly T[]): T[];
}

export function seededRng(seed: number): Rng {
  const generator = xoroshiro128plus(seed);
  const int = (from: number, to: number) => uniformInt(generator, from, to);
  return {
    int,
    float: () => int(0, 0xffff_ffff) / 0x1_0000_0000,
    pick(items) {
      if (items.length === 0) throw new Error("cannot pick from an empty list");
      return items[int(0, items.length - 1)]!;
    },
    shuffle(items) {
      const out = [...items];
      for (let i = out.length - 1; i > 0; i--) {
        const j = int(0, i);
        [out[i], out[j]] = [out[j]!, out[i]!];
      }
      return out;
    },
  };
}
