// An attacker's signatures in a member certificate, each refused with the code it had when noble (and
// viem, for the registration) did the recoveries: a flipped v, r = 0 or n, s = 0, a signature by another
// key, chains spliced from two real ones. One refusal is new with libsecp256k1 (issue 15): the high-s
// twin of the registration signature, which viem's recovery accepted and the register call refuses
// (SignatureMalleable), is refused as the chain's signatures always were.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { before, describe, test } from "node:test";
import { createKmsRoot } from "@attestmesh/devnet/dstack-sim/simulator.ts";
import { type MemberCertificate, verifyMemberCertificate } from "@attestmesh/shared/certs/certificate.ts";
import { predictMemberAppId } from "@attestmesh/shared/certs/memberApp.ts";
import { kmsSignAppKey } from "@attestmesh/shared/dstack/keychain.ts";
import { SECP256K1_N, verifyDstackKeyChain } from "@attestmesh/shared/dstack/verify.ts";
import { AttestmeshError } from "@attestmesh/shared/errors.ts";
import type { PinnedTrust } from "@attestmesh/shared/service/pinned.ts";
import { secp256k1 } from "@noble/curves/secp256k1";
import { type Address, bytesToHex, getAddress, type Hex, hashTypedData, hexToBytes } from "viem";
import { keyChainInputOf, loadKmsChains } from "../../../test/fixtures/dstack/fixtures.ts";
import { simulatedCertificate } from "../../../test/helpers/certs.ts";
import { registerMessageOf } from "../../src/certs/certificate.ts";
import { memberDomain, memberTypes } from "../../src/contracts/typedData.ts";

const randomAddress = (): Address => getAddress(bytesToHex(randomBytes(20)));

/** The signature with r, s or v replaced (r and s as numbers, v as its byte). */
function edit(signature: Hex, change: { r?: bigint; s?: bigint; v?: number }): Hex {
  const bytes = hexToBytes(signature);
  if (change.r !== undefined) bytes.set(hexToBytes(`0x${change.r.toString(16).padStart(64, "0")}`), 0);
  if (change.s !== undefined) bytes.set(hexToBytes(`0x${change.s.toString(16).padStart(64, "0")}`), 32);
  if (change.v !== undefined) bytes[64] = change.v;
  return bytesToHex(bytes);
}

const sOf = (signature: Hex) => BigInt(`0x${signature.slice(66, 130)}`);
const vOf = (signature: Hex) => hexToBytes(signature)[64]!;
/** The other recovery id, written as the signature wrote it (0/1 or 27/28). */
const flippedV = (signature: Hex) => (vOf(signature) >= 27 ? 55 - vOf(signature) : vOf(signature) ^ 1);
/** The malleable twin: n − s with the other recovery id, which recovers the same key. */
const twin = (signature: Hex) => edit(signature, { s: SECP256K1_N - sOf(signature), v: flippedV(signature) });

async function refusal(certificate: MemberCertificate, pinned: PinnedTrust): Promise<AttestmeshError> {
  try {
    await verifyMemberCertificate(certificate, pinned);
  } catch (error) {
    assert.ok(error instanceof AttestmeshError, `expected an AttestmeshError, got ${String(error)}`);
    return error;
  }
  assert.fail("expected the certificate to be refused");
}

/** `code`, or `KeyChainInvalid (keyChainError)` for a broken chain. */
async function codeOf(certificate: MemberCertificate, pinned: PinnedTrust): Promise<string> {
  const error = await refusal(certificate, pinned);
  return error.code === "KeyChainInvalid"
    ? `KeyChainInvalid (${String(error.details.keyChainError)})`
    : error.code!;
}

describe("forged signatures in a member certificate", () => {
  const kmsRoot = createKmsRoot(new Uint8Array(randomBytes(32)));
  const pinned: PinnedTrust = {
    chainId: 8453,
    cluster: randomAddress(),
    memberAppImplementation: randomAddress(),
    kmsRoots: [kmsRoot.address],
    guestApi: "v0",
  };
  const certificateFor = async (salt: Hex) =>
    (
      await simulatedCertificate({
        kmsRoot,
        appId: predictMemberAppId(pinned.memberAppImplementation, pinned.cluster, salt),
        salt,
        chainId: pinned.chainId,
        cluster: pinned.cluster,
      })
    ).certificate;
  let genuine: MemberCertificate;
  let other: MemberCertificate;

  before(async () => {
    genuine = await certificateFor(bytesToHex(randomBytes(32)));
    other = await certificateFor(bytesToHex(randomBytes(32)));
    // Both verify as they are, so each refusal below is the forgery's.
    await verifyMemberCertificate(genuine, pinned);
    await verifyMemberCertificate(other, pinned);
  });

  test("the registration signature: flipped v, v = 29, r = 0, r = n, s = 0, another key's: RegistrationSignatureMismatch", async () => {
    const digest = hashTypedData({
      domain: memberDomain(pinned.chainId, pinned.cluster),
      types: memberTypes,
      primaryType: "Register",
      // biome-ignore lint/suspicious/noExplicitAny: the message is built from memberTypes.Register itself
      message: registerMessageOf(genuine) as any,
    });
    const byAnother = secp256k1.sign(hexToBytes(digest), secp256k1.utils.randomSecretKey(), {
      lowS: true,
      prehash: false,
    });
    const anotherKeys = bytesToHex(
      Uint8Array.from([...byAnother.toBytes("compact"), 27 + (byAnother.recovery as number)]),
    );
    for (const [what, signature] of [
      ["flipped v", edit(genuine.signature, { v: flippedV(genuine.signature) })],
      ["v = 29", edit(genuine.signature, { v: 29 })],
      ["r = 0", edit(genuine.signature, { r: 0n })],
      ["r = n", edit(genuine.signature, { r: SECP256K1_N })],
      ["s = 0", edit(genuine.signature, { s: 0n })],
      ["another key's signature over the same message", anotherKeys],
    ] as const) {
      assert.equal(await codeOf({ ...genuine, signature }, pinned), "RegistrationSignatureMismatch", what);
    }
  });

  test("the registration signature's high-s twin (it recovers the member key): RegistrationSignatureMismatch, as the register call refuses it", async () => {
    assert.equal(
      await codeOf({ ...genuine, signature: twin(genuine.signature) }, pinned),
      "RegistrationSignatureMismatch",
    );
    // v written as 0/1 instead of 27/28 is the same signature to the contract, and accepted.
    const v = vOf(genuine.signature);
    await verifyMemberCertificate(
      { ...genuine, signature: edit(genuine.signature, { v: v >= 27 ? v - 27 : v + 27 }) },
      pinned,
    );
  });

  test("the key chain: flipped v, high s, r = 0, r = n, a rogue KMS's signature, halves of two chains: refused by the chain or the KMS pin", async () => {
    const rogue = createKmsRoot(new Uint8Array(randomBytes(32)));
    const rogueSignature = bytesToHex(
      kmsSignAppKey(rogue.secret, hexToBytes(genuine.appId), hexToBytes(genuine.appPubkey)),
    );
    for (const [what, change, code] of [
      [
        "app signature, flipped v",
        { appSignature: edit(genuine.appSignature, { v: flippedV(genuine.appSignature) }) },
        "KeyChainInvalid (AppSignatureMismatch)",
      ],
      [
        "app signature, high s",
        { appSignature: twin(genuine.appSignature) },
        "KeyChainInvalid (SignatureMalleable)",
      ],
      [
        "app signature, r = 0",
        { appSignature: edit(genuine.appSignature, { r: 0n }) },
        "KeyChainInvalid (InvalidSignatureR)",
      ],
      [
        "KMS signature, flipped v",
        { kmsSignature: edit(genuine.kmsSignature, { v: flippedV(genuine.kmsSignature) }) },
        "KmsRootNotPinned",
      ],
      [
        "KMS signature, high s",
        { kmsSignature: twin(genuine.kmsSignature) },
        "KeyChainInvalid (SignatureMalleable)",
      ],
      [
        "KMS signature, r = n",
        { kmsSignature: edit(genuine.kmsSignature, { r: SECP256K1_N }) },
        "KeyChainInvalid (InvalidSignatureR)",
      ],
      ["KMS signature by a rogue root", { kmsSignature: rogueSignature }, "KmsRootNotPinned"],
      ["another member's KMS signature", { kmsSignature: other.kmsSignature }, "KmsRootNotPinned"],
      [
        "another member's app key and app signature",
        { appPubkey: other.appPubkey, appSignature: other.appSignature },
        "KeyChainInvalid (AppSignatureMismatch)",
      ],
    ] as const) {
      assert.equal(await codeOf({ ...genuine, ...change }, pinned), code, what);
    }
  });
});

describe("production KMS chains spliced together", () => {
  const { chains } = loadKmsChains();

  test("one chain's app key under another's KMS signature verifies to no production root", () => {
    const roots = new Set(chains.map((chain) => getAddress(chain.kmsRootAddress)));
    let pairs = 0;
    for (const a of chains) {
      for (const b of chains) {
        if (a === b) continue;
        pairs++;
        let signer: Address | undefined;
        // Chains of one app key carry one KMS signature (over the app id and app key): nothing to splice.
        const sameAppKey = a.appId === b.appId && a.appPubkey === b.appPubkey;
        try {
          signer = verifyDstackKeyChain({
            ...keyChainInputOf(a),
            kmsSignature: keyChainInputOf(b).kmsSignature,
          });
        } catch (error) {
          assert.ok(error instanceof AttestmeshError, String(error));
          assert.equal(error.code, "SignatureRecoveryFailed", `${a.name} under ${b.name}'s KMS signature`);
        }
        if (sameAppKey) assert.equal(signer, getAddress(b.kmsRootAddress));
        else
          assert.ok(signer === undefined || !roots.has(signer), `${a.name} under ${b.name}'s KMS signature`);
        // And one chain's derived key under another's app signature: link 0 fails.
        assert.throws(
          () =>
            verifyDstackKeyChain({ ...keyChainInputOf(a), appSignature: keyChainInputOf(b).appSignature }),
          (error: unknown) =>
            error instanceof AttestmeshError &&
            (error.code === "AppSignatureMismatch" || error.code === "SignatureRecoveryFailed"),
          `${a.name} with ${b.name}'s app signature`,
        );
      }
    }
    assert.ok(pairs >= 20);
  });
});
