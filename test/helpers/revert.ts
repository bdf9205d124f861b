// Assertions on reverts: await a contract call that must revert and check the custom error it reverted
// with, by name and arguments, as viem decoded it against the ABI the contract instance was built from.
import assert from "node:assert/strict";
import { BaseError, ContractFunctionRevertedError, type Hex, isHex } from "viem";

/** What a reverted call said, as far as viem could decode it. */
export interface Revert {
  /** The custom error's name, or undefined when the ABI does not declare it (or for a bare revert). */
  readonly errorName: string | undefined;
  /** The decoded arguments (empty when undecoded). */
  readonly args: readonly unknown[];
  /** The 4-byte selector of the revert data, when there was any. */
  readonly signature: Hex | undefined;
  /** The raw revert data, when the node returned it. */
  readonly raw: Hex | undefined;
  /** The underlying viem error, for anything else a test wants to look at. */
  readonly error: ContractFunctionRevertedError;
}

/**
 * Hex strings lowercased (so checksummed and plain addresses compare equal) and integers as bigints
 * (viem decodes small uints as numbers and large ones as bigints), recursively.
 */
export function canonical(value: unknown): unknown {
  if (typeof value === "string" && isHex(value)) return value.toLowerCase();
  if (typeof value === "number" && Number.isInteger(value)) return BigInt(value);
  if (Array.isArray(value)) return value.map(canonical);
  if (typeof value === "object" && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([key, inner]) => [key, canonical(inner)]));
  }
  return value;
}

/** Awaits `call`, which must revert; returns what it reverted with. Fails the test if it did not revert. */
export async function catchRevert(call: Promise<unknown>): Promise<Revert> {
  let caught: unknown;
  let settled = false;
  try {
    await call;
    settled = true;
  } catch (error) {
    caught = error;
  }
  assert.ok(!settled, "expected the call to revert, but it succeeded");
  const reverted =
    caught instanceof BaseError
      ? caught.walk((inner) => inner instanceof ContractFunctionRevertedError)
      : null;
  if (!(reverted instanceof ContractFunctionRevertedError)) {
    assert.fail(`expected a contract revert, but the call failed otherwise: ${String(caught)}`);
  }
  return {
    errorName: reverted.data?.errorName,
    args: reverted.data?.args ?? [],
    signature:
      reverted.signature ?? (reverted.raw !== undefined ? (reverted.raw.slice(0, 10) as Hex) : undefined),
    raw: reverted.raw,
    error: reverted,
  };
}

/**
 * Awaits `call`, which must revert with the custom error `errorName`; when `args` is given, the
 * error's arguments must equal it (hex compared case-insensitively, numbers and bigints alike).
 */
export async function expectRevert(
  call: Promise<unknown>,
  errorName: string,
  args?: readonly unknown[],
): Promise<Revert> {
  const revert = await catchRevert(call);
  assert.equal(
    revert.errorName,
    errorName,
    `expected a revert with ${errorName}, got ${revert.errorName ?? `undecoded data ${revert.raw ?? "(none)"}`}`,
  );
  if (args !== undefined) {
    assert.deepEqual(canonical(revert.args), canonical(args), `arguments of ${errorName}`);
  }
  return revert;
}

/** Awaits `call`, which must revert, whatever with (an error outside the ABI, or no data at all). */
export async function expectAnyRevert(call: Promise<unknown>): Promise<Revert> {
  return catchRevert(call);
}
