// Signature chains issued by real dstack KMSes (test/fixtures/dstack/production/kms-chains.json):
// Phala's KMS on Base, Phala Cloud's KMS, and the app keys of dstack's current and older simulators.
// The on-chain `verifyDstackKeyChain` (diamond and standalone facet) and the off-chain verifier must
// return exactly the stated roots, refuse every corrupted variant (an error, or a signer that is not
// the root), and never verify the production negative to a production root.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  appSignDerivedKey,
  kmsIssuedDigest,
  secp256k1PublicKey,
} from "@attestmesh/shared/dstack/keychain.ts";
import {
  compressedToAddress,
  type KeyChainInput,
  recoverSignerAddress,
  verifyDstackKeyChain,
} from "@attestmesh/shared/dstack/verify.ts";
import { AttestmeshError } from "@attestmesh/shared/errors.ts";
import { corruptChainInput } from "@attestmesh/shared/testing/dstack/corrupt.ts";
import { hexToBytes } from "@noble/hashes/utils";
import { type Address, bytesToHex, getAddress } from "viem";
import { keyChainInputOf, loadKmsChains } from "../../../test/fixtures/dstack/fixtures.ts";
import { setupCluster } from "../../../test/helpers/cluster.ts";
import { attestorTargets, verifyOnChain } from "../utils/chain.ts";

/** The roots the issue names; the fixture's entries must match them exactly. */
const PHALA_BASE_KMS = getAddress("0x52d3CF51c8A37A2CCfC79bBb98c7810d7Dd4CE51");
const PHALA_CLOUD_KMS = getAddress("0xd5BDeB037F237Baac161EA37999B6aA37f7f4C77");
const DSTACK_OLD_SIMULATOR = getAddress("0x8f2cF602C9695b23130367ed78d8F557554de7C5");
const DSTACK_SIMULATOR = getAddress("0xa7f6043c29f9cc1d9d6acf554c53e0c6792aaeaf");
const PRODUCTION_ROOTS = new Set([PHALA_BASE_KMS, PHALA_CLOUD_KMS]);

const fixture = loadKmsChains();

type Table = { readonly name: string; readonly input: KeyChainInput; readonly root: Address };

/** The production chains as issued, and one chain per simulator app key (its app key signs a fresh key). */
function validTable(): Table[] {
  const rows: Table[] = fixture.chains.map((chain) => ({
    name: chain.name,
    input: keyChainInputOf(chain),
    root: getAddress(chain.kmsRootAddress),
  }));
  for (const sim of fixture.simulatorAppKeys) {
    const appKey = hexToBytes(sim.k256_key);
    const appPubkey = secp256k1PublicKey(appKey);
    assert.equal(bytesToHex(appPubkey), sim.appPubkey, `${sim.name}: k256_key is the app key`);
    const derivedPubkey = secp256k1PublicKey(hexToBytes("42".repeat(32)));
    rows.push({
      name: sim.name,
      input: {
        appId: hexToBytes(sim.appId.slice(2)),
        purpose: "attestmesh-member-v1",
        derivedPubkey,
        appPubkey,
        appSignature: appSignDerivedKey(appKey, "attestmesh-member-v1", derivedPubkey),
        kmsSignature: hexToBytes(sim.k256_signature),
      },
      root: getAddress(sim.kmsRootAddress),
    });
  }
  return rows;
}

type Outcome = { readonly signer: Address } | { readonly error: string };

function offChain(input: KeyChainInput): Outcome {
  try {
    return { signer: verifyDstackKeyChain(input) };
  } catch (error) {
    assert.ok(error instanceof AttestmeshError, String(error));
    return { error: error.code };
  }
}

describe("real dstack KMS chains, on chain and off", async () => {
  const fx = await setupCluster();
  const targets = attestorTargets(fx);

  async function onChain(target: (typeof targets)[number], input: KeyChainInput): Promise<Outcome> {
    const outcome = await verifyOnChain(target, input);
    return "error" in outcome ? { error: outcome.error } : outcome;
  }

  const table = validTable();

  it("the fixture states the roots the project documents, each from its public key", () => {
    const roots = new Set(table.map((row) => row.root));
    for (const root of [PHALA_BASE_KMS, PHALA_CLOUD_KMS, DSTACK_OLD_SIMULATOR, DSTACK_SIMULATOR]) {
      assert.ok(roots.has(root), `${root} is in the table`);
    }
    for (const entry of [...fixture.chains, ...fixture.simulatorAppKeys, ...fixture.negative]) {
      assert.equal(
        compressedToAddress(hexToBytes(entry.kmsRootPubkey.slice(2))),
        getAddress(entry.kmsRootAddress),
        entry.name,
      );
    }
    assert.equal(table.length, 7);
    const vs = new Set(table.map((row) => row.input.kmsSignature[64]));
    assert.deepEqual([...vs].sort(), [0, 1], "KMS signatures with v = 0 and v = 1");
  });

  it("the older simulator's KMS signature has v = 1 and recovers its root", () => {
    const old = fixture.simulatorAppKeys.find((s) => getAddress(s.kmsRootAddress) === DSTACK_OLD_SIMULATOR);
    assert.ok(old);
    const signature = hexToBytes(old.k256_signature);
    assert.equal(signature[64], 1);
    const digest = kmsIssuedDigest(hexToBytes(old.appId.slice(2)), hexToBytes(old.appPubkey.slice(2)));
    assert.equal(recoverSignerAddress(digest, signature), DSTACK_OLD_SIMULATOR);
  });

  for (const row of table) {
    it(`${row.name}: both verifiers return exactly ${row.root}`, async () => {
      assert.deepEqual(offChain(row.input), { signer: row.root }, "off-chain");
      for (const target of targets) {
        assert.deepEqual(await onChain(target, row.input), { signer: row.root }, target.name);
      }
    });

    it(`${row.name}: every corrupted variant is refused, on chain as off chain`, async () => {
      const variants = [
        ...corruptChainInput(row.input, 7).map((v) => ({ ...v, expected: v.expectedCode as string })),
        // Corruptions that still recover some signer: it must not be the root.
        {
          name: "appId: last byte flipped",
          input: { ...row.input, appId: flip(row.input.appId, 19) },
          expected: "",
        },
        {
          name: "kmsSignature: v flipped",
          input: { ...row.input, kmsSignature: flip(row.input.kmsSignature, 64, 1) },
          expected: "",
        },
        {
          name: "kmsSignature: another chain's",
          input: { ...row.input, kmsSignature: otherKmsSignature(row) },
          expected: "",
        },
      ];
      const failures: string[] = [];
      for (const variant of variants) {
        const off = offChain(variant.input);
        if ("signer" in off && off.signer === row.root) failures.push(`off-chain accepted ${variant.name}`);
        if (variant.expected !== "" && !("error" in off && off.error === variant.expected)) {
          failures.push(`off-chain ${variant.name}: ${JSON.stringify(off)}, expected ${variant.expected}`);
        }
        if (variant.expected === "InvalidAppId" || variant.expected === "UnsupportedGuestApiVersion")
          continue;
        for (const target of targets) {
          const on = await onChain(target, variant.input);
          if ("signer" in on && on.signer === row.root)
            failures.push(`${target.name} accepted ${variant.name}`);
          if (JSON.stringify(on) !== JSON.stringify(off)) {
            failures.push(
              `${target.name} ${variant.name}: ${JSON.stringify(on)}, off-chain ${JSON.stringify(off)}`,
            );
          }
        }
      }
      assert.deepEqual(failures, []);
      assert.ok(variants.length > 60, `only ${variants.length} variants`);
    });
  }

  for (const negative of fixture.negative) {
    it(`${negative.name}: an "Ed25519" key whose chain signs a secp256k1 key never verifies to a production root`, async () => {
      const input = keyChainInputOf(negative);
      assert.equal(input.derivedPubkey.length, 32, "presented as an Ed25519 key");
      const off = offChain(input);
      assert.deepEqual(
        off,
        { signer: getAddress(negative.kmsRootAddress) },
        "a garbage signer, as the note says",
      );
      assert.ok("signer" in off && !PRODUCTION_ROOTS.has(off.signer));
      for (const target of targets) assert.deepEqual(await onChain(target, input), off, target.name);
      // Its app key is not the production app's: link 0 was never made by that app over this key.
      const production = fixture.chains.find((c) => c.appId === negative.appId);
      assert.ok(production);
      const asProduction = { ...input, appPubkey: hexToBytes(production.appPubkey.slice(2)) };
      assert.equal((offChain(asProduction) as { error?: string }).error, "AppSignatureMismatch");
      assert.deepEqual(await onChain(targets[0], asProduction), { error: "AppSignatureMismatch" });
    });
  }

  function otherKmsSignature(row: Table): Uint8Array {
    const other = table.find((t) => bytesToHex(t.input.kmsSignature) !== bytesToHex(row.input.kmsSignature));
    assert.ok(other);
    return other.input.kmsSignature;
  }
});

function flip(bytes: Uint8Array, index: number, mask = 0x01): Uint8Array {
  const out = bytes.slice();
  out[index] = out[index]! ^ mask;
  return out;
}
