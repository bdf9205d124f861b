// The offline member certificate: a genuine one verifies with no RPC; each forgery an attacker can
// make — another cluster's app id, a KMS root not pinned, a swapped key, a bad or misdirected
// signature, a record that does not match — is refused with its named reason.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { before, describe, test } from "node:test";
import { createKmsRoot, loadDstackAppKeys } from "@attestmesh/devnet/dstack-sim/simulator.ts";
import {
  type MemberCertificate,
  registerClaimNames,
  registrationSigner,
  type VerifiedCertificate,
  verifyMemberCertificate,
} from "@attestmesh/shared/certs/certificate.ts";
import { predictMemberAppId } from "@attestmesh/shared/certs/memberApp.ts";
import { kmsSignAppKey, secp256k1PublicKey } from "@attestmesh/shared/dstack/keychain.ts";
import { verifyDstackKeyChain } from "@attestmesh/shared/dstack/verify.ts";
import { AttestmeshError } from "@attestmesh/shared/errors.ts";
import { MEMBER_KEY } from "@attestmesh/shared/keys/purposes.ts";
import type { GuestApi, PinnedTrust } from "@attestmesh/shared/service/pinned.ts";
import { type Address, bytesToHex, getAddress, type Hex, hexToBytes } from "viem";
import { loadGuestV1Vectors } from "../../../test/fixtures/dstack/fixtures.ts";
import {
  createMemberApp,
  cvmCertificate,
  fixtureTrust,
  simulatedCertificate,
} from "../../../test/helpers/certs.ts";
import { type ClusterFixture, setupCluster } from "../../../test/helpers/cluster.ts";

const randomAddress = (): Address => getAddress(bytesToHex(randomBytes(20)));
const randomSalt = (): Hex => bytesToHex(randomBytes(32));

async function refusal(promise: Promise<unknown>): Promise<AttestmeshError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof AttestmeshError, `expected an AttestmeshError, got ${String(error)}`);
    return error;
  }
  assert.fail("expected the certificate to be refused");
}

describe("member certificate, verified offline", () => {
  const kmsRoot = createKmsRoot(new Uint8Array(randomBytes(32)));
  const pinned: PinnedTrust = {
    chainId: 8453,
    cluster: randomAddress(),
    memberAppImplementation: randomAddress(),
    kmsRoots: [kmsRoot.address],
    guestApi: "v0",
  };
  const salt = randomSalt();
  const appId = predictMemberAppId(pinned.memberAppImplementation, pinned.cluster, salt);
  let genuine: MemberCertificate;
  let memberKey: Address;
  const recordOf = (c: MemberCertificate) => ({
    appId: c.appId,
    memberKey,
    wireguardKey: c.wireguardKey,
    identityKey: c.identityKey,
  });

  before(async () => {
    ({ certificate: genuine, memberKey } = await simulatedCertificate({
      kmsRoot,
      appId,
      salt,
      chainId: pinned.chainId,
      cluster: pinned.cluster,
    }));
  });

  test("a genuine certificate verifies against the pins and its record, and names its KMS root and member key", async () => {
    const verified: VerifiedCertificate = await verifyMemberCertificate(genuine, pinned, recordOf(genuine));
    assert.equal(verified.kmsRoot, kmsRoot.address);
    assert.equal(verified.memberKey, memberKey);
  });

  test("another cluster's member app (an app id the KMS issued for someone else's app): AppIdNotMemberApp", async () => {
    const otherCluster = randomAddress();
    const otherApp = predictMemberAppId(pinned.memberAppImplementation, otherCluster, salt);
    // Everything is genuine for the other cluster, signed even for ours: only the app id gives it away.
    const { certificate } = await simulatedCertificate({
      kmsRoot,
      appId: otherApp,
      salt,
      chainId: pinned.chainId,
      cluster: pinned.cluster,
    });
    const error = await refusal(verifyMemberCertificate(certificate, pinned));
    assert.equal(error.code, "AppIdNotMemberApp");
    // The same with a plain app id (not a clone at all) and with a salt that is not its own.
    const plain = await simulatedCertificate({
      kmsRoot,
      appId: randomAddress(),
      salt,
      chainId: pinned.chainId,
      cluster: pinned.cluster,
    });
    assert.equal(
      (await refusal(verifyMemberCertificate(plain.certificate, pinned))).code,
      "AppIdNotMemberApp",
    );
    assert.equal(
      (await refusal(verifyMemberCertificate({ ...genuine, salt: randomSalt() }, pinned))).code,
      "AppIdNotMemberApp",
    );
  });

  test("a KMS root the compose does not pin (a simulator, another KMS): KmsRootNotPinned", async () => {
    const rogue = createKmsRoot(new Uint8Array(randomBytes(32)));
    const { certificate } = await simulatedCertificate({
      kmsRoot: rogue,
      appId,
      salt,
      chainId: pinned.chainId,
      cluster: pinned.cluster,
    });
    const error = await refusal(verifyMemberCertificate(certificate, pinned));
    assert.equal(error.code, "KmsRootNotPinned");
    assert.equal(error.details.kmsRoot, rogue.address);
  });

  test("a swapped WireGuard or identity key in the certificate: RegistrationSignatureMismatch", async () => {
    for (const swapped of [
      { ...genuine, wireguardKey: bytesToHex(randomBytes(32)) },
      { ...genuine, identityKey: bytesToHex(randomBytes(32)) },
    ]) {
      assert.equal(
        (await refusal(verifyMemberCertificate(swapped, pinned))).code,
        "RegistrationSignatureMismatch",
      );
    }
  });

  test("a record whose keys differ from the certified ones (the RPC swapped a key): named by field", async () => {
    const record = recordOf(genuine);
    const cases: Array<[string, Partial<typeof record>]> = [
      ["WireguardKeyMismatch", { wireguardKey: bytesToHex(randomBytes(32)) }],
      ["IdentityKeyMismatch", { identityKey: bytesToHex(randomBytes(32)) }],
      ["MemberKeyMismatch", { memberKey: randomAddress() }],
      ["AppIdMismatch", { appId: randomAddress() }],
    ];
    for (const [code, change] of cases) {
      assert.equal(
        (await refusal(verifyMemberCertificate(genuine, pinned, { ...record, ...change }))).code,
        code,
      );
    }
  });

  test("a bad registration signature, or one for another chain, cluster or nonce: RegistrationSignatureMismatch", async () => {
    const badBytes = `${genuine.signature.slice(0, 10)}${(
      Number.parseInt(genuine.signature.slice(10, 12), 16) ^ 1
    )
      .toString(16)
      .padStart(2, "0")}${genuine.signature.slice(12)}` as Hex;
    const elsewhere = async (chainId: number, cluster: Address) =>
      (await simulatedCertificate({ kmsRoot, appId, salt, chainId, cluster })).certificate;
    for (const forged of [
      { ...genuine, signature: badBytes },
      { ...genuine, signature: `0x${"11".repeat(65)}` as Hex },
      { ...genuine, nonce: genuine.nonce + 1n },
      await elsewhere(1, pinned.cluster),
      await elsewhere(pinned.chainId, randomAddress()),
    ]) {
      assert.equal(
        (await refusal(verifyMemberCertificate(forged, pinned))).code,
        "RegistrationSignatureMismatch",
      );
    }
  });

  test("a broken key chain: KeyChainInvalid, carrying the key-chain error", async () => {
    const flipped =
      `${genuine.appSignature.slice(0, 20)}${genuine.appSignature.slice(20, 22) === "00" ? "01" : "00"}${genuine.appSignature.slice(22)}` as Hex;
    const error = await refusal(verifyMemberCertificate({ ...genuine, appSignature: flipped }, pinned));
    assert.equal(error.code, "KeyChainInvalid");
    assert.ok(typeof error.details.keyChainError === "string");
  });

  test("a recovered registration signer is reused only for the same digest and signature: a genuine certificate's recovery admits no certificate differing in any one signed field", async () => {
    // Recovered (and kept) for the genuine certificate first, as the certificate source and then the
    // verification recover it in a sidecar.
    for (let i = 0; i < 2; i++) {
      assert.equal(await registrationSigner(genuine, pinned.chainId, pinned.cluster), memberKey);
      await verifyMemberCertificate(genuine, pinned);
    }
    const flip = (hex: Hex): Hex => `${hex.slice(0, -1)}${hex.endsWith("0") ? "1" : "0"}` as Hex;
    const variants: Array<[string, MemberCertificate, number, Address]> = [
      ["appId", { ...genuine, appId: getAddress(flip(genuine.appId)) }, pinned.chainId, pinned.cluster],
      [
        "wireguardKey",
        { ...genuine, wireguardKey: flip(genuine.wireguardKey) },
        pinned.chainId,
        pinned.cluster,
      ],
      ["identityKey", { ...genuine, identityKey: flip(genuine.identityKey) }, pinned.chainId, pinned.cluster],
      ["nonce", { ...genuine, nonce: genuine.nonce + 1n }, pinned.chainId, pinned.cluster],
      ...registerClaimNames().map((name): [string, MemberCertificate, number, Address] => [
        name,
        { ...genuine, claims: { ...genuine.claims, [name]: flip(genuine.claims[name]!) } },
        pinned.chainId,
        pinned.cluster,
      ]),
      ["chainId", genuine, pinned.chainId + 1, pinned.cluster],
      ["cluster", genuine, pinned.chainId, getAddress(flip(pinned.cluster))],
    ];
    assert.equal(variants.length, 8, "every Register field and both domain fields");
    for (const [field, certificate, chainId, cluster] of variants) {
      assert.notEqual(await registrationSigner(certificate, chainId, cluster), memberKey, field);
    }
    // Through the whole verification (no record to catch a swapped key afterwards): each is refused.
    for (const [field, certificate, chainId] of variants) {
      if (field === "appId" || field === "cluster") continue; // refused by CREATE2 before the signature
      const error = await refusal(verifyMemberCertificate(certificate, { ...pinned, chainId }));
      assert.equal(error.code, "RegistrationSignatureMismatch", field);
    }
    // The signature itself: another valid-looking signature over the same digest recovers someone else.
    const other = `${flip(genuine.signature.slice(0, 100) as Hex)}${genuine.signature.slice(100)}` as Hex;
    const error = await refusal(verifyMemberCertificate({ ...genuine, signature: other }, pinned));
    assert.equal(error.code, "RegistrationSignatureMismatch");
  });

  test("malformed fields: MalformedCertificate, naming the field", async () => {
    for (const [field, change] of [
      ["memberPubkey", { memberPubkey: "0x02" as Hex }],
      ["salt", { salt: "0x1234" as Hex }],
      ["signature", { signature: "not hex" as Hex }],
    ] as const) {
      const error = await refusal(verifyMemberCertificate({ ...genuine, ...change }, pinned));
      assert.equal(error.code, "MalformedCertificate");
      assert.equal(error.details.field, field);
    }
  });
});

// One CVM of an allowed app holds one app key, and derives from it a v0 member key (`GetKey`) and a
// different v1 member key (`/v1/GetKey`), each with a valid KMS chain (dstack 0.6 serves both). The app
// key here is the one dstack's guest API v1 spec derives its vectors from, issued by a pinned KMS root
// for a genuine member app: both certificates are genuine in every respect the other checks look at,
// and only the one of the guest API the compose pins counts.
describe("one CVM's v0 and v1 member keys: only the pinned guest API's certificate counts", () => {
  const vectors = loadGuestV1Vectors();
  const kmsRoot = createKmsRoot(new Uint8Array(randomBytes(32)));
  const base = {
    chainId: 8453,
    cluster: randomAddress(),
    memberAppImplementation: randomAddress(),
    kmsRoots: [kmsRoot.address],
  };
  const salt = randomSalt();
  const appId = predictMemberAppId(base.memberAppImplementation, base.cluster, salt);
  const appKey = hexToBytes(`0x${vectors.appRootKey}`);
  const cvm = loadDstackAppKeys(
    {
      k256_key: vectors.appRootKey,
      k256_signature: bytesToHex(
        kmsSignAppKey(kmsRoot.secret, hexToBytes(appId), secp256k1PublicKey(appKey)),
      ).slice(2),
    },
    hexToBytes(appId),
  );
  const certificates = {} as Record<GuestApi, { certificate: MemberCertificate; memberKey: Address }>;

  before(async () => {
    for (const guestApi of ["v0", "v1"] as const) {
      certificates[guestApi] = await cvmCertificate({
        cvm,
        appId,
        salt,
        guestApi,
        chainId: base.chainId,
        cluster: base.cluster,
      });
    }
  });

  test("both member keys have a valid chain from the pinned KMS root, and they are different keys", () => {
    const { v0, v1 } = certificates;
    assert.notEqual(v0.memberKey, v1.memberKey);
    assert.equal(v0.certificate.appPubkey, v1.certificate.appPubkey, "one app key");
    for (const { certificate } of [v0, v1]) {
      const signer = verifyDstackKeyChain({
        appId: hexToBytes(appId),
        purpose: MEMBER_KEY.purpose,
        derivedPubkey: hexToBytes(certificate.memberPubkey),
        appPubkey: hexToBytes(certificate.appPubkey),
        appSignature: hexToBytes(certificate.appSignature),
        kmsSignature: hexToBytes(certificate.kmsSignature),
        guestApiVersion: certificate.guestApiVersion,
      });
      assert.equal(signer, kmsRoot.address);
    }
  });

  for (const pinnedApi of ["v0", "v1"] as const) {
    const other = pinnedApi === "v0" ? "v1" : "v0";
    test(`a compose pinning ${pinnedApi}: the ${pinnedApi} certificate verifies, the ${other} one is refused (GuestApiNotPinned)`, async () => {
      const pinned: PinnedTrust = { ...base, guestApi: pinnedApi };
      const own = certificates[pinnedApi];
      const verified = await verifyMemberCertificate(own.certificate, pinned);
      assert.equal(verified.memberKey, own.memberKey);
      const foreign = certificates[other];
      const error = await refusal(
        verifyMemberCertificate(foreign.certificate, pinned, {
          appId,
          memberKey: foreign.memberKey,
          wireguardKey: foreign.certificate.wireguardKey,
          identityKey: foreign.certificate.identityKey,
        }),
      );
      assert.equal(error.code, "GuestApiNotPinned");
      assert.equal(error.details.pinned, pinnedApi);
      assert.equal(error.details.guestApiVersion, foreign.certificate.guestApiVersion);
      assert.match(error.message, new RegExp(`guest API ${other}.*pins ${pinnedApi}`));
    });
  }

  test("relabelling the other guest API's chain with the pinned version does not pass: its link 0 signs another message", async () => {
    const pinned: PinnedTrust = { ...base, guestApi: "v0" };
    const relabelled = { ...certificates.v1.certificate, guestApiVersion: 0 as const };
    const error = await refusal(verifyMemberCertificate(relabelled, pinned));
    assert.equal(error.code, "KeyChainInvalid");
    assert.equal(error.details.keyChainError, "AppSignatureMismatch");
  });
});

describe("member-app CREATE2 prediction", () => {
  let fx: ClusterFixture;
  before(async () => {
    fx = await setupCluster();
  });

  test("equals the cluster's own predictMemberApp and createMemberApp for any salt", async () => {
    const trust = await fixtureTrust(fx);
    for (let i = 0; i < 3; i++) {
      const salt = randomSalt();
      assert.equal(
        predictMemberAppId(trust.memberAppImplementation, trust.cluster, salt),
        getAddress(await fx.owner.read.predictMemberApp([salt])),
      );
    }
    const created = await createMemberApp(fx);
    assert.equal(
      predictMemberAppId(trust.memberAppImplementation, trust.cluster, created.salt),
      created.appId,
    );
  });
});
