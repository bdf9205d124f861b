// What the benches share: their options given by defaults, the integer checks of those options, progress
// on stderr, and, for the benches on the devnet, bringing it up and tearing it down after a failure.
import { parseArgs } from "node:util";
import { type DevnetClients, devnetClients } from "../src/orchestration/chain.ts";
import { devnetDown } from "../src/orchestration/down.ts";
import { type DevnetState, readState } from "../src/orchestration/state.ts";
import { devnetUp } from "../src/orchestration/up.ts";

type Values<T> = { [K in keyof T]: T[K] extends boolean ? boolean : string };

/**
 * The command line's options, each named with its default: a string default makes `--name value`, a
 * boolean one a `--name` flag. Unknown options and positionals are refused, as `parseArgs` does.
 */
export function benchOptions<T extends Record<string, string | boolean>>(defaults: T): Values<T> {
  const options = Object.fromEntries(
    Object.entries(defaults).map(([name, value]) => [
      name,
      typeof value === "boolean"
        ? { type: "boolean" as const, default: value }
        : { type: "string" as const, default: value },
    ]),
  );
  return parseArgs({ options }).values as Values<T>;
}

/** `text` (the value of `flag`) as an integer of at least `min`; anything else is refused, naming the flag. */
export function integerOption(flag: string, text: string, min = 1): number {
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < min)
    throw new Error(
      `${flag} must be ${min === 1 ? "a positive integer" : `an integer ≥ ${min}`}, not ${text}`,
    );
  return value;
}

/** One line of progress on stderr (stdout carries the bench's figures). */
export const log = (message: string): void => {
  process.stderr.write(`› ${message}\n`);
};

/** Brings the devnet up (progress on stderr) and returns its state and clients. */
export async function benchDevnet(
  options: Omit<Parameters<typeof devnetUp>[0], "progress">,
): Promise<{ state: DevnetState; clients: DevnetClients }> {
  await devnetUp({ ...options, progress: log });
  const state = (await readState())!;
  return { state, clients: devnetClients(state.rpcUrl, state.chainId) };
}

/** Runs a devnet bench; when it fails, says so, tears the devnet down and exits 1. */
export async function runDevnetBench(name: string, main: () => Promise<void>): Promise<void> {
  await main().catch(async (error) => {
    process.stderr.write(`${name} benchmark failed: ${(error as Error).message}\n`);
    await devnetDown(log).catch(() => {});
    process.exit(1);
  });
}
