// The soak's leak rule (resources.ts): growth within a process lifetime beyond the bounds, judged from
// its working set. A process restarted mid-run gathering its working set is not a leak; a process whose
// memory or descriptors keep growing across its lifetime is, also when it was restarted.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { leaksIn, type Sample } from "../../src/soak/resources.ts";

const BOUNDS = { rssMb: 96, fds: 64, warmupS: 30 };

/** One process's samples every 5 s from `fromS` to `toS`, with fds and RSS as functions of the time. */
function lifetime(
  process: string,
  pid: number,
  fromS: number,
  toS: number,
  fds: (t: number) => number,
  rssMb: (t: number) => number = () => 80,
): Sample[] {
  const samples: Sample[] = [];
  for (let t = fromS; t <= toS; t += 5)
    samples.push({ tS: t, process, pid, fds: fds(t - fromS), rssMb: rssMb(t - fromS) });
  return samples;
}

describe("the soak's leak rule", () => {
  test("a gateway respawned mid-run that gathers its streams over 150 s, then holds, is not a leak", () => {
    // The 1-hour seed-1 run's gateway 22971: 23 descriptors at spawn, 47 at 60 s, 93 at 150 s, 93 after.
    const respawned = lifetime("gateway", 22971, 267, 443, (t) => (t < 60 ? 23 : t < 150 ? 47 : 93));
    assert.deepEqual(leaksIn(respawned, BOUNDS), []);
  });

  test("descriptors that keep growing across a lifetime are a leak, restarted or not", () => {
    // One descriptor every 2 s: from the first half's largest (at 315 s) to the end, 143 more.
    const growing = lifetime("gateway", 1, 0, 600, (t) => 23 + Math.floor(t / 2));
    assert.deepEqual(leaksIn(growing, BOUNDS), ["gateway/1: open fds grew by 143 (bound 64)"]);
    const restarted = lifetime("sidecar:node2", 2, 900, 1500, (t) => 30 + Math.floor(t / 2));
    assert.equal(leaksIn(restarted, BOUNDS).length, 1);
  });

  test("memory that keeps growing is a leak; the chain's own processes are reported, not bounded", () => {
    const rss = (t: number) => 80 + t / 2;
    assert.deepEqual(
      leaksIn(
        lifetime("indexer", 3, 0, 600, () => 30, rss),
        BOUNDS,
      ),
      ["indexer/3: resident memory grew 142.5 MB (bound 96)"],
    );
    assert.deepEqual(
      leaksIn(
        lifetime("hardhat", 4, 0, 600, () => 30, rss),
        BOUNDS,
      ),
      [],
    );
  });

  test("each pid is judged alone: a restart's fresh start is not growth of the old process", () => {
    const before = lifetime("gateway", 5, 0, 300, () => 127);
    const after = lifetime("gateway", 6, 305, 600, () => 23);
    assert.deepEqual(leaksIn([...before, ...after], BOUNDS), []);
  });
});
