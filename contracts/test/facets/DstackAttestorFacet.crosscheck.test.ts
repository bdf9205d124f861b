// The off-chain dstack key-chain verifier (shared/src/dstack/verify.ts) against the on-chain one
// (DstackAttestorFacet.verifyDstackKeyChain for guest API v0 and verifyDstackKeyChainV1 for v1, on the
// diamond and deployed alone): the same KMS signer for valid chains, the same custom error with the
// same values for every corrupted variant.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { KEY_ALGORITHMS } from "@attestmesh/shared/dstack/keychain.ts";
import { type KeyChainInput, verifyDstackKeyChain } from "@attestmesh/shared/dstack/verify.ts";
import { AttestmeshError } from "@attestmesh/shared/errors.ts";
import {
  corruptChainInput,
  equivalentChainInputs,
  randomValidChainInput,
} from "@attestmesh/shared/testing/dstack/corrupt.ts";
import type { Address } from "viem";
import { setupCluster } from "../../../test/helpers/cluster.ts";
import { canonical } from "../../../test/helpers/revert.ts";
import { attestorTargets, verifyOnChain } from "../utils/chain.ts";

const SEEDS = [1, 2, 3];

/**
 * Codes only the TypeScript verifier can report here: an ABI `address` is always 20 bytes, so a chain
 * with a 19- or 21-byte app id cannot even be put into a call; and the attestor takes the guest API as
 * the function called, so an unknown version has no call (registration refuses it: membership tests).
 */
const OFF_CHAIN_ONLY: ReadonlySet<string> = new Set(["InvalidAppId", "UnsupportedGuestApiVersion"]);

/**
 * Variants on which the on-chain verifier is known to report another error than the off-chain one,
 * keyed by variant name. Empty: both check a derived key's encoding only (prefix, x < p), so every
 * variant must agree; the mechanism stays so that a deliberate divergence has to be listed here.
 */
const ON_CHAIN_DIFFERS: ReadonlyMap<string, string> = new Map([]);

type Outcome = { readonly signer: Address } | { readonly error: string; readonly args: unknown[] };

/** The values the off-chain error carries, in the order of the Solidity error's arguments. */
function offChainArgs(error: AttestmeshError): unknown[] {
  const d = error.details as Record<string, unknown>;
  const big = (value: unknown) => BigInt(value as string);
  switch (error.code) {
    case "InvalidPublicKeyLength":
    case "InvalidSignatureLength":
      return [d.length];
    case "InvalidPublicKeyPrefix":
      return [d.prefix];
    case "InvalidSignatureV":
      return [d.v];
    case "PublicKeyNotOnCurve":
      return [big(d.x)];
    case "InvalidSignatureR":
      return [big(d.r)];
    case "InvalidSignatureS":
    case "SignatureMalleable":
      return [big(d.s)];
    case "AppSignatureMismatch":
      return [d.expected, d.recovered];
    case "UnsupportedGuestApiVersion":
      return [d.version];
    case "SignatureRecoveryFailed":
    case "InvalidAppId":
      return [];
    default:
      throw new Error(`no argument mapping for ${error.code}`);
  }
}

function offChain(input: KeyChainInput): Outcome {
  try {
    return { signer: verifyDstackKeyChain(input) };
  } catch (error) {
    assert.ok(error instanceof AttestmeshError, `the off-chain verifier threw ${String(error)}`);
    return { error: error.code, args: offChainArgs(error) };
  }
}

describe("off-chain and on-chain dstack key-chain verifiers", async () => {
  const fx = await setupCluster();
  const targets = attestorTargets(fx);

  async function onChain(target: (typeof targets)[number], input: KeyChainInput): Promise<Outcome> {
    return verifyOnChain(target, input);
  }

  for (const guestApiVersion of [0, 1] as const)
    for (const algorithm of KEY_ALGORITHMS) {
      for (const seed of SEEDS) {
        const valid = randomValidChainInput(seed, algorithm, guestApiVersion);
        const label = `guest API v${guestApiVersion} ${algorithm}`;

        it(`agree on the KMS signer of a valid ${label} chain (seed ${seed}), v as 0/1 and as 27/28`, async () => {
          const inputs = [{ name: "as issued", input: valid.input }, ...equivalentChainInputs(valid.input)];
          for (const { name, input } of inputs) {
            const expected = { signer: valid.kmsRootAddress };
            assert.deepEqual(offChain(input), expected, `off-chain, ${name}`);
            for (const target of targets) {
              assert.deepEqual(await onChain(target, input), expected, `${target.name}, ${name}`);
            }
          }
        });

        it(`agree on the error and its values for every corrupted variant of a ${label} chain (seed ${seed})`, async () => {
          const variants = corruptChainInput(valid.input, seed);
          const mismatches: string[] = [];
          const differencesSeen = new Set<string>();
          for (const variant of variants) {
            const off = offChain(variant.input);
            assert.ok("error" in off, `${variant.name}: the off-chain verifier accepted a corrupted chain`);
            assert.equal(off.error, variant.expectedCode, `${variant.name}: off-chain code`);
            if (OFF_CHAIN_ONLY.has(variant.expectedCode)) continue;
            const expectedOnChain = ON_CHAIN_DIFFERS.get(variant.name);
            if (expectedOnChain !== undefined) differencesSeen.add(variant.name);
            for (const target of targets) {
              const on = await onChain(target, variant.input);
              if (!("error" in on)) {
                mismatches.push(`${target.name}, ${variant.name}: accepted, signer ${on.signer}`);
              } else if (expectedOnChain !== undefined) {
                if (on.error !== expectedOnChain) {
                  mismatches.push(
                    `${target.name}, ${variant.name}: ${on.error}, listed as ${expectedOnChain}`,
                  );
                }
              } else if (on.error !== off.error) {
                mismatches.push(
                  `${target.name}, ${variant.name}: on-chain ${on.error}, off-chain ${off.error}`,
                );
              } else {
                try {
                  assert.deepEqual(canonical(on.args), canonical(off.args));
                } catch {
                  mismatches.push(
                    `${target.name}, ${variant.name}: ${on.error} values ${String(canonical(on.args))} on-chain, ` +
                      `${String(canonical(off.args))} off-chain`,
                  );
                }
              }
            }
          }
          assert.deepEqual(mismatches, []);
          // The listed differences must still exist, or the list is stale.
          const applicable = algorithm === "secp256k1" ? [...ON_CHAIN_DIFFERS.keys()] : [];
          assert.deepEqual([...differencesSeen].sort(), applicable.sort());
          assert.ok(variants.length > 60, `only ${variants.length} variants`);
        });
      }
    }
});
