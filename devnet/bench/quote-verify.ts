// Quote verification time: the real dstack TDX quote of test/fixtures/tdx verified with its Intel
// collateral at the fixture's time, collateral cached (read once), including the event-log replay and
// the compose-hash check. Prints the median, p90 and max over --runs after --warmup runs.
//
//   node devnet/bench/quote-verify.ts --runs 50 [--json]
import { parseArgs } from "node:util";
import { fixedCollateral } from "@attestmesh/shared/attestation/collateral.ts";
import { parseEventLog } from "@attestmesh/shared/attestation/eventLog.ts";
import { verifyEvidence } from "@attestmesh/shared/attestation/verify.ts";
import { loadNearMpcAttestation } from "../../test/fixtures/tdx/fixtures.ts";

const { values } = parseArgs({
  options: {
    runs: { type: "string", default: "50" },
    warmup: { type: "string", default: "5" },
    json: { type: "boolean", default: false },
  },
});
const runs = Number(values.runs);
const warmup = Number(values.warmup);

const fixture = loadNearMpcAttestation();
const evidence = {
  quote: Uint8Array.from(fixture.quote),
  eventLog: parseEventLog(fixture.tcb_info.event_log),
  appCompose: fixture.tcb_info.app_compose,
};
const options = {
  at: fixture.verifyAt,
  collateral: fixedCollateral(fixture.collateral, "fixture"),
  allowSimulator: false,
};

const times: number[] = [];
for (let i = 0; i < warmup + runs; i += 1) {
  const start = performance.now();
  const report = await verifyEvidence(evidence, options);
  const elapsed = performance.now() - start;
  if (!report.ok) throw new Error(`the fixture quote did not verify: ${JSON.stringify(report.checks)}`);
  if (i >= warmup) times.push(elapsed);
}
times.sort((a, b) => a - b);
const at = (q: number) => times[Math.min(times.length - 1, Math.floor(q * times.length))]!;
const result = {
  runs,
  medianMs: Number(at(0.5).toFixed(2)),
  p90Ms: Number(at(0.9).toFixed(2)),
  maxMs: Number(times[times.length - 1]!.toFixed(2)),
};
if (values.json) console.log(JSON.stringify(result));
else
  console.log(
    `quote verification (collateral cached): median ${result.medianMs} ms, p90 ${result.p90Ms} ms, max ${result.maxMs} ms over ${runs} runs`,
  );
