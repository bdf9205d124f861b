// `npm test`: the system packages the tests use (installed as root, see orchestration/systemPackages.ts),
// lint, type-check, build, then every Solidity and node:test suite. Prints each step's
// output as it runs and ends with one line `N passed, N failed` (checks + tests) for CI.
import { spawn } from "node:child_process";
import { nodeTestCommands, selectTestFiles } from "./test-files.ts";

interface Counts {
  passed: number;
  failed: number;
  skipped: number;
}

interface Step {
  readonly name: string;
  readonly command: readonly string[];
  /** Reads test counts from the output; steps without one count as a single check. */
  readonly count?: (output: string) => Counts | undefined;
}

const NODE_TEST = nodeTestCommands(selectTestFiles(process.cwd()));

const STEPS: readonly Step[] = [
  // First, so the WireGuard and end-to-end tests find their tools on a fresh machine instead of skipping.
  {
    name: "system packages (apt-get, as root)",
    command: ["node", "devnet/src/orchestration/systemPackages.ts"],
  },
  { name: "lint and format (biome)", command: ["biome", "ci", "."] },
  { name: "type-check (tsc)", command: ["tsc", "-p", "tsconfig.json"] },
  {
    name: "type-check the dashboard page (tsc)",
    command: ["tsc", "-p", "scripts/src/dashboard/web/tsconfig.json"],
  },
  { name: "dashboard bundle is built and current", command: ["node", "scripts/src/dashboard/bundle.ts"] },
  { name: "compile contracts (hardhat build)", command: ["hardhat", "build", "--quiet"] },
  { name: "generated ABI is current", command: ["node", "devnet/src/build/export-abi.ts", "--check"] },
  { name: "gas snapshot is current", command: ["node", "devnet/src/build/gas-snapshot.ts", "--check"] },
  {
    name: "Solidity tests (Base rules: OP chain type)",
    command: ["hardhat", "test", "solidity", "--chain-type", "op"],
    count: countSolidity,
  },
  // Unit files, two at a time (each in its own process); devnet/src/build/test-files.ts says which they are.
  { name: "node:test unit suites", command: NODE_TEST.unit, count: countNodeTest },
  // The end-to-end files share one machine-wide devnet, and the WireGuard files build network namespaces:
  // one file at a time on any machine.
  { name: "node:test end-to-end and WireGuard suites", command: NODE_TEST.machine, count: countNodeTest },
];

function countNodeTest(output: string): Counts | undefined {
  const pass = /^ℹ pass (\d+)$/m.exec(output);
  const fail = /^ℹ fail (\d+)$/m.exec(output);
  const cancelled = /^ℹ cancelled (\d+)$/m.exec(output);
  const skipped = /^ℹ skipped (\d+)$/m.exec(output);
  if (!pass || !fail) return undefined;
  return {
    passed: Number(pass[1]),
    failed: Number(fail[1]) + Number(cancelled?.[1] ?? 0),
    skipped: Number(skipped?.[1] ?? 0),
  };
}

function countSolidity(output: string): Counts | undefined {
  const passing = /(\d+) passing/.exec(output);
  if (!passing) return undefined;
  const failing = /(\d+) failing/.exec(output);
  const skipped = /(\d+) (?:skipped|pending)/.exec(output);
  return {
    passed: Number(passing[1]),
    failed: Number(failing?.[1] ?? 0),
    skipped: Number(skipped?.[1] ?? 0),
  };
}

function run(step: Step): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    const [cmd, ...args] = step.command;
    const child = spawn(cmd!, args, {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, FORCE_COLOR: "0" },
    });
    let output = "";
    const collect = (chunk: Buffer, sink: NodeJS.WriteStream) => {
      output += chunk.toString();
      sink.write(chunk);
    };
    child.stdout.on("data", (chunk: Buffer) => collect(chunk, process.stdout));
    child.stderr.on("data", (chunk: Buffer) => collect(chunk, process.stderr));
    child.on("error", (error) => resolve({ code: 127, output: `${output}\n${error.message}` }));
    child.on("close", (code) => resolve({ code: code ?? 1, output }));
  });
}

const total: Counts = { passed: 0, failed: 0, skipped: 0 };
const failures: string[] = [];
for (const step of STEPS) {
  process.stdout.write(`\n=== ${step.name}: ${step.command.join(" ")}\n`);
  const started = Date.now();
  const { code, output } = await run(step);
  const counts = step.count?.(output);
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  if (counts) {
    total.passed += counts.passed;
    total.failed += counts.failed;
    total.skipped += counts.skipped;
    // A runner that crashed after counting still failed.
    if (code !== 0 && counts.failed === 0) {
      total.failed += 1;
      failures.push(`${step.name} (exit ${code})`);
    } else if (counts.failed > 0) failures.push(`${step.name} (${counts.failed} failed)`);
    process.stdout.write(
      `=== ${step.name}: ${counts.passed} passed, ${counts.failed} failed, ${counts.skipped} skipped in ${seconds}s\n`,
    );
  } else if (code === 0 && !step.count) {
    total.passed += 1;
    process.stdout.write(`=== ${step.name}: ok in ${seconds}s\n`);
  } else {
    total.failed += 1;
    failures.push(`${step.name} (exit ${code})`);
    process.stdout.write(`=== ${step.name}: FAILED (exit ${code}) in ${seconds}s\n`);
  }
}

if (failures.length > 0) process.stdout.write(`\nfailed: ${failures.join("; ")}\n`);
process.stdout.write(`\n${total.passed} passed, ${total.failed} failed, ${total.skipped} skipped\n`);
process.exit(total.failed === 0 ? 0 : 1);
