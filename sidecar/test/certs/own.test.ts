// This node's own certificate, verified offline with the certifier's verifier and pins (certs/own.ts).
// The attacker: an operator who points the node's CVM at a KMS the compose does not pin (its key
// chains verify at start, and an owner's on-chain allowlist may admit that root) or runs it under an
// app id that is no member app of the cluster; or keys of the guest API the compose does not pin (a
// key source that is not the compose's, which the sidecar's own never is: defence in depth). Every member refuses that node's certificate; the node
// must never count its own record either — not before the check settled, not after.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, test } from "node:test";
import { createKmsRoot, createSimulatedCvm, type KmsRoot } from "@attestmesh/devnet/dstack-sim/simulator.ts";
import { predictMemberAppId } from "@attestmesh/shared/certs/memberApp.ts";
import type { GuestApi, PinnedTrust } from "@attestmesh/shared/service/pinned.ts";
import { type Address, bytesToHex, getAddress, type Hex, hexToBytes } from "viem";
import { checkOwnCertificate } from "../../src/certs/own.ts";
import { deriveNodeKeys, type KeySource, type NodeKeys } from "../../src/keys.ts";
import { readRuntimeClaims } from "../../src/register.ts";
import { captureLogger, simulatorKeySource } from "../helpers.ts";

const randomAddress = (): Address => getAddress(bytesToHex(randomBytes(20)));

/**
 * A cluster's pins (guest API `pinnedApi`), and a node of one of its member apps whose CVM runs under
 * `kmsRoot` and whose keys come from guest API `keysApi`.
 */
async function node(
  kmsRoot: KmsRoot,
  pinnedRoot: KmsRoot = kmsRoot,
  apis: { readonly pinnedApi?: GuestApi; readonly keysApi?: GuestApi } = {},
) {
  const pinned: PinnedTrust = {
    chainId: 31337,
    cluster: randomAddress(),
    memberAppImplementation: randomAddress(),
    kmsRoots: [pinnedRoot.address],
    guestApi: apis.pinnedApi ?? "v0",
  };
  const salt = bytesToHex(randomBytes(32));
  const appId = predictMemberAppId(pinned.memberAppImplementation, pinned.cluster, salt);
  const cvm = createSimulatedCvm({ kmsRoot, appId: hexToBytes(appId) });
  const v0 = simulatorKeySource(cvm);
  const source: KeySource =
    apis.keysApi === "v1"
      ? {
          ...v0,
          getKey: async (_path, purpose, algorithm) => ({
            ...cvm.getKeyV1(purpose, algorithm),
            guestApiVersion: 1,
          }),
        }
      : v0;
  const keys = await deriveNodeKeys(source);
  return { pinned, salt, keys, claims: await readRuntimeClaims(source) };
}

type SaltAnswer = { readonly salt: Hex } | { readonly problem: string };

/** The check, with the salt read held until `release` (so the pending state can be observed). */
function check(n: Awaited<ReturnType<typeof node>>, answer: () => Promise<SaltAnswer>) {
  const log = captureLogger();
  let release!: () => void;
  const held = new Promise<void>((resolve) => {
    release = resolve;
  });
  const own = checkOwnCertificate({
    pinned: n.pinned,
    keys: n.keys,
    claims: n.claims,
    salt: async () => {
      await held;
      return answer();
    },
    logger: log.logger,
  });
  return { own, log, release };
}

/** No log line carries a secret this node holds. */
function assertNoSecrets(text: string, keys: NodeKeys) {
  const secrets = [
    keys.member.secret.reveal(),
    bytesToHex(keys.identity.secret.reveal()),
    bytesToHex(keys.wireguard.privateKey.reveal()),
  ];
  for (const s of secrets)
    assert.ok(!text.toLowerCase().includes(s.slice(2).toLowerCase()), "a secret logged");
}

describe("this node's own certificate", () => {
  test("verifies for a member app under a pinned KMS root: the own record counts, but only once verified", async () => {
    const n = await node(createKmsRoot(new Uint8Array(randomBytes(32))));
    const { own, release, log } = check(n, async () => ({ salt: n.salt }));
    assert.equal(own.record(7n), undefined, "not before the check settled");
    release();
    assert.deepEqual(await own.settled, { state: "verified" });
    assert.deepEqual(own.record(7n), {
      memberId: 7n,
      appId: n.keys.appId,
      memberKey: n.keys.member.address,
      wireguardKey: n.keys.wireguard.publicKey,
      identityKey: n.keys.identity.publicKey,
    });
    assert.equal(own.record(undefined), undefined, "no member id, no record");
    assert.equal(log.lines().filter((l) => l.level >= 50).length, 0);
  });

  test("attacker: its chain is rooted in a KMS the compose does not pin: refused (KmsRootNotPinned), never counted, logged once", async () => {
    const pinnedRoot = createKmsRoot(new Uint8Array(randomBytes(32)));
    const rogue = createKmsRoot(new Uint8Array(randomBytes(32)));
    const n = await node(rogue, pinnedRoot);
    const { own, release, log } = check(n, async () => ({ salt: n.salt }));
    assert.equal(own.record(7n), undefined, "not before the check settled");
    release();
    const verdict = await own.settled;
    assert.equal(verdict.state, "refused");
    assert.equal(verdict.state === "refused" && verdict.reason, "KmsRootNotPinned");
    for (let i = 0; i < 3; i++) assert.equal(own.record(7n), undefined, "never after");
    const errors = log.lines().filter((l) => l.level >= 50);
    assert.equal(errors.length, 1, "logged once, at error level");
    assert.equal(errors[0]?.reason, "KmsRootNotPinned");
    assert.equal(errors[0]?.kmsRoot, rogue.address);
    assert.match(String(errors[0]?.detail), new RegExp(rogue.address));
    assertNoSecrets(log.text(), n.keys);
  });

  test("its keys from guest API v1 under a pinned v1: verified; the own record counts", async () => {
    const root = createKmsRoot(new Uint8Array(randomBytes(32)));
    const n = await node(root, root, { pinnedApi: "v1", keysApi: "v1" });
    assert.equal(n.keys.member.proof.guestApiVersion, 1);
    const { own, release } = check(n, async () => ({ salt: n.salt }));
    release();
    assert.deepEqual(await own.settled, { state: "verified" });
    assert.equal(own.record(7n)?.memberKey, n.keys.member.address);
  });

  for (const [keysApi, pinnedApi] of [
    ["v1", "v0"],
    ["v0", "v1"],
  ] as const) {
    test(`attacker: its keys come from guest API ${keysApi}, the compose pins ${pinnedApi}: refused (GuestApiNotPinned), never counted, logged once`, async () => {
      const root = createKmsRoot(new Uint8Array(randomBytes(32)));
      const n = await node(root, root, { pinnedApi, keysApi });
      const { own, release, log } = check(n, async () => ({ salt: n.salt }));
      assert.equal(own.record(7n), undefined, "not before the check settled");
      release();
      const verdict = await own.settled;
      assert.equal(verdict.state === "refused" && verdict.reason, "GuestApiNotPinned");
      for (let i = 0; i < 3; i++) assert.equal(own.record(7n), undefined, "never after");
      const errors = log.lines().filter((l) => l.level >= 50);
      assert.equal(errors.length, 1, "logged once, at error level");
      assert.equal(errors[0]?.reason, "GuestApiNotPinned");
      assert.match(String(errors[0]?.detail), new RegExp(`pins ${pinnedApi}`));
      assertNoSecrets(log.text(), n.keys);
    });
  }

  test("attacker: an unpinned KMS root is refused even when the salt cannot be read", async () => {
    const n = await node(
      createKmsRoot(new Uint8Array(randomBytes(32))),
      createKmsRoot(new Uint8Array(randomBytes(32))),
    );
    const { own, release } = check(n, async () => {
      throw new Error("provider down");
    });
    release();
    const verdict = await own.settled;
    assert.equal(verdict.state === "refused" && verdict.reason, "KmsRootNotPinned");
    assert.equal(own.record(7n), undefined);
  });

  test("attacker: an app id that is no member app of the cluster: refused (AppIdNotMemberApp), never counted", async () => {
    const n = await node(createKmsRoot(new Uint8Array(randomBytes(32))));
    for (const answer of [
      { problem: "its app id is not one of the cluster's member apps" },
      { salt: bytesToHex(randomBytes(32)) },
    ] as const) {
      const { own, release, log } = check(n, async () => answer);
      release();
      const verdict = await own.settled;
      assert.equal(
        verdict.state === "refused" && verdict.reason,
        "AppIdNotMemberApp",
        JSON.stringify(answer),
      );
      assert.equal(own.record(7n), undefined);
      assert.equal(log.lines().filter((l) => l.level >= 50 && l.reason === "AppIdNotMemberApp").length, 1);
      assertNoSecrets(log.text(), n.keys);
    }
  });

  test("a salt that cannot be read leaves the check undone: no shortcut (the own record is certified like any other)", async () => {
    const n = await node(createKmsRoot(new Uint8Array(randomBytes(32))));
    const { own, release, log } = check(n, async () => {
      throw new Error("provider down");
    });
    release();
    assert.equal((await own.settled).state, "unchecked");
    assert.equal(own.record(7n), undefined);
    assert.equal(log.lines().filter((l) => l.level >= 50).length, 0, "no error: nothing was refused");
    assert.equal(log.lines().filter((l) => l.level === 40).length, 1, "a warning");
  });
});
