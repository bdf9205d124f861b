// The CSK rotation scenario behind devnet/bench/csk-scale.ts: N members running the sidecar's real
// liveness (liveness.ts) and real CSK custody (csk.ts) over the simulated network; the cluster comes up
// from a running cluster's state, then `rotations` epochs open one after another, each committed by the
// rank-0 member and pulled by all others. Reports, per rotation, the time from the commitment landing
// until every member held the key.

import type { Address } from "viem";
import { type CskOptions, type CskRotation, createCskSim } from "./csk.ts";
import { type HardhatChainCounters, type HardhatChainOptions, hardhatChain } from "./hardhatChain.ts";
import { CHAIN_ID, CLUSTER, createLivenessSim, median, type RosterEntry } from "./liveness.ts";
import type { OnchainRoster } from "./onchain.ts";

export interface CskScaleOptions {
  readonly members: number;
  readonly seed?: number;
  readonly rotations?: number;
  /** Packet loss during the rotations (liveness and CSK datagrams alike). */
  readonly loss?: number;
  /** Simulated ms between one rotation completing and the next epoch opening. */
  readonly gapMs?: number;
  readonly chain?: Omit<CskOptions, "chainId" | "cluster" | "chain">;
  /** Members registered on a real chain (onchain.ts), and that chain's id and cluster. */
  readonly onchain?: {
    readonly roster: readonly RosterEntry[];
    readonly chainId: number;
    readonly cluster: Address;
    readonly hardhat?: OnchainRoster["hardhat"];
  };
  /**
   * Run the CSK chain side on that Hardhat node (hardhatChain.ts: the contract and the sidecar's chain
   * code, blocks on the simulated clock) instead of the modelled chain. Needs `onchain.hardhat`.
   */
  readonly realChain?: HardhatChainOptions;
  readonly progress?: (line: string) => void;
}

export interface CskScaleResult {
  readonly members: number;
  readonly rotations: readonly CskRotation[];
  /** Median and worst of commitToAllMs over the rotations. */
  readonly medianMs: number;
  readonly maxMs: number;
  readonly wallMs: number;
  /** The real chain's counters over the whole run (with `realChain`). */
  readonly chain?: HardhatChainCounters;
}

export async function runCskScale(options: CskScaleOptions): Promise<CskScaleResult> {
  const started = performance.now();
  const n = options.members;
  const progress = options.progress ?? (() => {});
  const sim = await createLivenessSim({
    members: n,
    seed: options.seed ?? 1,
    ...(options.onchain === undefined ? {} : { roster: options.onchain.roster }),
  });
  // Signatures are checked once per process (the verdicts are the same; only the wall time differs).
  sim.memoize(true);
  for (let i = 0; i < n; i++) sim.start(i);
  sim.warmStart();
  const upAt = sim.run(120_000, () => sim.allLive(), 100);
  if (!sim.allLive()) throw new Error(`N=${n}: the cluster did not come up within ${upAt} ms`);
  let real: ReturnType<typeof hardhatChain> | undefined;
  if (options.realChain !== undefined) {
    if (options.onchain?.hardhat === undefined)
      throw new Error("a real chain needs the members registered on a Hardhat node (onchain.hardhat)");
    real = hardhatChain(options.onchain.hardhat, { seed: options.seed ?? 1, ...options.realChain });
  }
  const csk = await createCskSim(sim, {
    chainId: options.onchain?.chainId ?? CHAIN_ID,
    cluster: options.onchain?.cluster ?? CLUSTER,
    ...options.chain,
    ...(real === undefined ? {} : { chain: real }),
  });
  await sim.runAsync(3_000);
  sim.setLoss(options.loss ?? 0);
  const rotations: CskRotation[] = [];
  for (let k = 0; k < (options.rotations ?? 3); k++) {
    const r = await csk.rotate();
    if (r.holders !== n)
      throw new Error(`N=${n}: epoch ${r.epoch} was held by ${r.holders} of ${n} within 60 s`);
    rotations.push(r);
    progress(
      `N=${n}: epoch ${r.epoch} committed by member ${r.committer} ${Math.round(r.openToCommitMs)} ms after it opened, held by all ${Math.round(r.commitToAllMs)} ms after the commitment (${r.requests} requests, ${r.served} served, ${r.notHeld} not held, at most ${r.maxAnsweredByOne} answered by one member)`,
    );
    await sim.runAsync(options.gapMs ?? 5_000);
  }
  await csk.stop();
  for (const x of sim.nodes) x.controller?.abort();
  const times = rotations.map((r) => r.commitToAllMs);
  return {
    members: n,
    rotations,
    medianMs: median(times),
    maxMs: Math.max(...times),
    wallMs: performance.now() - started,
    ...(real === undefined ? {} : { chain: real.counters() }),
  };
}
