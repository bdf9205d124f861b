// Every owner command of `attestmesh`, run in-process against a cluster on an in-process Hardhat network
// (served over HTTP, so the CLI talks JSON-RPC as to a real node): the happy path changes exactly what it
// says, --dry-run and --calldata change nothing, a non-owner key is refused with the decoded custom error,
// and bad arguments are refused before any connection is made.
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { simulatedIndexerKeys } from "@attestmesh/devnet/dstack-sim/node.ts";
import { clusterAbi } from "@attestmesh/shared/contracts/abi.ts";
import { fileTempDir } from "@attestmesh/shared/testing/tempDir.ts";
import { secp256k1 } from "@noble/curves/secp256k1";
import { getComposeHash } from "@phala/dstack-sdk/get-compose-hash";
import { type Address, bytesToHex, encodeFunctionData, getAddress, type Hex, stringToHex } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { cliCluster, OWNER_KEY, runAttestmesh, STRANGER_KEY } from "../helpers/cli.ts";
import { admit, leave, randomAppId, signRegistration, simulatedNode } from "../helpers/cluster.ts";

const NODE_COMPOSE = new URL("../../deploy/node/app-compose.json", import.meta.url).pathname;
const REAL_PAIRS = (
  JSON.parse(readFileSync(new URL("../fixtures/compose-hash/real-pairs.json", import.meta.url), "utf8")) as {
    pairs: { name: string; measuredComposeHash: string; appCompose: string }[];
  }
).pairs;
const randomHash = (): Hex => bytesToHex(randomBytes(32));
const tmp = fileTempDir("attestmesh-cli-");

interface Outcome {
  mode: string;
  events: { name: string; args: Record<string, unknown> }[];
  changes: Record<string, string>;
  data: Hex;
  to: Address;
  value: string;
  from: Address | null;
  gas: string | null;
  transactionHash: Hex | null;
}

describe("attestmesh owner commands", async () => {
  const fx = await cliCluster();
  const { cli, owner, publicClient } = fx;

  /** Runs a command that must succeed with --json and returns its output. */
  async function ok(args: readonly string[], options?: Parameters<typeof cli>[1]): Promise<Outcome> {
    const run = await cli([...args, "--json"], options);
    assert.equal(run.code, 0, `attestmesh ${args.join(" ")} failed: ${run.stderr}`);
    return run.json<Outcome>();
  }

  /** The command must fail with error code `code`, leaving the chain exactly as it was. */
  async function refused(args: readonly string[], code: string, options?: Parameters<typeof cli>[1]) {
    const block = await publicClient.getBlockNumber();
    const policy = await owner.read.policySnapshot();
    const run = await cli([...args, "--json"], options);
    assert.equal(run.code, 1, `expected failure, got ${run.code}: ${run.stdout}`);
    const { error } = run.json<{ error: { code: string; message: string } }>();
    assert.equal(error.code, code, error.message);
    assert.match(run.stderr, /^attestmesh: .+\n$/, "one-line reason on stderr");
    assert.equal(await publicClient.getBlockNumber(), block, "nothing was mined");
    assert.deepEqual(await owner.read.policySnapshot(), policy, "the policy is unchanged");
    return error;
  }

  const eventNames = (o: Outcome) => o.events.map((e) => e.name);

  it("allow compose <hash> adds it, deny compose removes it, each with its event", async () => {
    const hash = randomHash();
    const added = await ok(["allow", "compose", hash, "--yes"]);
    assert.equal(added.mode, "sent");
    // dstack's event for dstack's tooling, then the role event: the role-less call is the node role's.
    assert.deepEqual(eventNames(added), ["ComposeHashAdded", "ComposeHashAllowedFor"]);
    assert.equal(added.events[0]?.args.composeHash, hash);
    assert.equal(added.events[1]?.args.role, 0);
    assert.match(added.transactionHash ?? "", /^0x[0-9a-f]{64}$/);
    assert.equal(await owner.read.isComposeHashAllowed([hash]), true);
    const removed = await ok(["deny", "compose", hash, "--yes"]);
    // Withdrawing a node compose hash also opens the next CSK epoch, so running members on it get no key.
    assert.deepEqual(eventNames(removed), [
      "ComposeHashRemoved",
      "ComposeHashDeniedFor",
      "CskEpochReopened",
      "CskEpochOpened",
    ]);
    assert.equal(await owner.read.isComposeHashAllowed([hash]), false);
  });

  it("allow|deny compose --role indexer scopes the hash to the indexer's app ids; check and policy show say so", async () => {
    const hash = randomHash();
    const added = await ok(["allow", "compose", hash, "--role", "indexer", "--yes"]);
    assert.equal(added.changes.role, "indexer");
    assert.deepEqual(eventNames(added), ["ComposeHashAllowedFor"], "no dstack event: not the node role's");
    assert.equal(added.events[0]?.args.role, 1);
    assert.equal(await owner.read.isComposeHashAllowedFor([hash, 1]), true);
    assert.equal(await owner.read.isComposeHashAllowed([hash]), false, "not a node compose hash");

    const indexerApp = randomAppId();
    const allowedApp = await ok(["allow", "app", indexerApp, "--role", "indexer", "--yes"]);
    assert.deepEqual(eventNames(allowedApp), ["AppIdAdded", "AppRoleSet"]);
    const nodeApp = randomAppId();
    await ok(["allow", "app", nodeApp, "--yes"]);
    await ok(["allow-any-device", "on", "--yes"]);

    // Attacker: an allowed node app id asks to boot the indexer's compose.
    const asNode = await cli(["check", nodeApp, "--compose", hash, "--json"]);
    assert.equal(asNode.code, 2, asNode.stdout + asNode.stderr);
    const nodeResult = asNode.json<{
      role: string;
      boot: { allowed: boolean; reason: string; composeRoles: string[] };
    }>();
    assert.equal(nodeResult.role, "node");
    assert.deepEqual(nodeResult.boot, {
      ...nodeResult.boot,
      allowed: false,
      reason: "Compose hash not allowed for the node role",
      composeRoles: ["indexer"],
    });
    const nodeText = await cli(["check", nodeApp, "--compose", hash]);
    assert.match(nodeText.stdout, /allowed for the indexer role, this app id is a node app id/);
    const asIndexer = await cli(["check", indexerApp, "--compose", hash, "--json"]);
    assert.equal(asIndexer.json<{ role: string; boot: { allowed: boolean } }>().boot.allowed, true);

    const shown = await cli(["policy", "show", "--json"]);
    const policy = shown.json<{ policy: { indexerComposeHashes: string[]; indexerAppIds: string[] } }>()
      .policy;
    assert.ok(policy.indexerComposeHashes.includes(hash.toLowerCase()));
    assert.ok(policy.indexerAppIds.map((a) => a.toLowerCase()).includes(indexerApp.toLowerCase()));
    const text = (await cli(["policy", "show"])).stdout;
    assert.match(text, /compose hashes, indexer role \(\d+\)/);
    assert.ok(text.includes(`${getAddress(indexerApp)}  indexer`), text);
    assert.ok(text.includes(`${getAddress(nodeApp)}  node`), text);

    // Denying it for the node role changes nothing for the indexer role.
    assert.deepEqual(eventNames(await ok(["deny", "compose", hash, "--yes"])), []);
    const denied = await ok(["deny", "compose", hash, "--role", "indexer", "--yes"]);
    assert.deepEqual(eventNames(denied), ["ComposeHashDeniedFor"]);
    assert.equal(await owner.read.isComposeHashAllowedFor([hash, 1]), false);
    await ok(["allow-any-device", "off", "--yes"]);
  });

  it("refuses an unknown --role with BadArgument and changes nothing", async () => {
    await refused(["allow", "compose", randomHash(), "--role", "admin", "--yes"], "BadArgument");
    await refused(["deny", "compose", randomHash(), "--role", "debug", "--yes"], "BadArgument");
    await refused(["allow", "app", randomAppId(), "--role", "indexers", "--yes"], "BadArgument");
  });

  it("allow compose <app-compose.json> allows sha256 of the file's bytes, the hash its CVM measured", async () => {
    // A real deployment's app-compose.json (4-space indented, as dstack's vmm-cli.py writes it) and the
    // compose hash its CVM measured: the one the KMS asks the cluster about.
    const pair = REAL_PAIRS[0]!;
    const file = join(tmp, "real-app-compose.json");
    writeFileSync(file, pair.appCompose);
    const measured = `0x${pair.measuredComposeHash}` as Hex;
    const normalised = `0x${getComposeHash(JSON.parse(pair.appCompose))}` as Hex;
    assert.notEqual(normalised, measured);

    const added = await ok(["allow", "compose", file, "--yes"]);
    assert.equal(added.changes["allow compose hash"], measured);
    assert.match(added.changes["compose file"]!, /sha256 of its bytes/);
    assert.match(added.changes["compose file form"]!, /not in dstack's normalised form/);
    assert.ok(added.changes["compose file form"]!.includes(normalised), "offers the normalised hash");
    assert.deepEqual(eventNames(added), ["ComposeHashAdded", "ComposeHashAllowedFor"]);
    assert.equal(added.events[0]?.args.composeHash, measured);
    assert.equal(await owner.read.isComposeHashAllowed([measured]), true);
    assert.equal(await owner.read.isComposeHashAllowed([normalised]), false, "not the re-serialised hash");

    // The boot gate, asked with the file, answers for the measured hash.
    const appId = randomAppId();
    await ok(["allow", "app", appId, "--yes"]);
    await ok(["allow-any-device", "on", "--yes"]);
    const checked = await cli(["check", appId, "--compose", file, "--json"]);
    assert.equal(checked.code, 0, checked.stdout + checked.stderr);
    const result = checked.json<{ boot: { composeHash: Hex }; composeFile: { normalised: boolean } }>();
    assert.equal(result.boot.composeHash, measured);
    assert.equal(result.composeFile.normalised, false);
    const text = await cli(["check", appId, "--compose", file]);
    assert.equal(text.code, 0);
    assert.match(text.stderr, /is not in dstack's normalised form/);

    // --normalised, for a tool that rewrites the file in normalised form: the other hash, said as such.
    const both = await ok(["allow", "compose", file, "--normalised", "--yes"]);
    assert.equal(both.changes["allow compose hash"], normalised);
    assert.match(both.changes["compose file"]!, /hash of its normalised form/);
    assert.equal(await owner.read.isComposeHashAllowed([normalised]), true);
    await refused(["allow", "compose", randomHash(), "--normalised", "--yes"], "BadArgument");

    assert.deepEqual(eventNames(await ok(["deny", "compose", file, "--yes"])), [
      "ComposeHashRemoved",
      "ComposeHashDeniedFor",
      "CskEpochReopened",
      "CskEpochOpened",
    ]);
    assert.equal(await owner.read.isComposeHashAllowed([measured]), false);
    await ok(["deny", "compose", file, "--normalised", "--yes"]);
    assert.equal(await owner.read.isComposeHashAllowed([normalised]), false);
    await ok(["allow-any-device", "off", "--yes"]);
  });

  it("allow compose with this repository's normalised app-compose.json: one hash, no note", async () => {
    const bytes = readFileSync(NODE_COMPOSE);
    const expected = `0x${createHash("sha256").update(bytes).digest("hex")}` as Hex;
    assert.equal(expected, `0x${getComposeHash(JSON.parse(bytes.toString("utf8")))}`);
    const added = await ok(["allow", "compose", NODE_COMPOSE, "--yes"]);
    assert.equal(added.changes["allow compose hash"], expected);
    assert.equal(added.changes["compose file form"], undefined);
    assert.equal(await owner.read.isComposeHashAllowed([expected]), true);
  });

  it("allow app / deny app", async () => {
    const appId = randomAppId();
    assert.deepEqual(eventNames(await ok(["allow", "app", appId, "--yes"])), ["AppIdAdded"]);
    assert.equal(await owner.read.isAppIdAllowed([appId]), true);
    assert.deepEqual(eventNames(await ok(["deny", "app", appId.toLowerCase(), "--yes"])), ["AppIdRemoved"]);
    assert.equal(await owner.read.isAppIdAllowed([appId]), false);
  });

  it("allow kms-root takes an address, a compressed or an uncompressed public key; deny removes it", async () => {
    for (const form of ["address", "compressed", "uncompressed"] as const) {
      const secret = secp256k1.utils.randomPrivateKey();
      const address = privateKeyToAccount(bytesToHex(secret)).address;
      const arg =
        form === "address" ? address : bytesToHex(secp256k1.getPublicKey(secret, form === "compressed"));
      const added = await ok(["allow", "kms-root", arg, "--yes"]);
      assert.equal(added.events[0]?.args.kmsRoot, address, `${form}: the root's address`);
      assert.equal(await owner.read.isKmsRootAllowed([address]), true);
      await ok(["deny", "kms-root", arg, "--yes"]);
      assert.equal(await owner.read.isKmsRootAllowed([address]), false);
    }
  });

  it("allow device, revoke device with a reason; a revoked device cannot be allowed again", async () => {
    const device = randomHash();
    await ok(["allow", "device", device, "--yes"]);
    assert.equal(await owner.read.isDeviceAllowed([device]), true);
    const revoked = await ok(["revoke", "device", device, "--reason", "firmware CVE", "--yes"]);
    // The revocation opens the next CSK epoch too, so members on the device get no new key.
    assert.deepEqual(eventNames(revoked).slice(-3), [
      "DeviceRevokedAt",
      "CskEpochReopened",
      "CskEpochOpened",
    ]);
    assert.equal(
      revoked.events.find((e) => e.name === "DeviceRevokedAt")?.args.reason,
      stringToHex("firmware CVE", { size: 32 }),
    );
    assert.ok((await owner.read.deviceRevokedAt([device])) > 0n);
    const error = await refused(["allow", "device", device, "--yes"], "DeviceIdRevoked");
    assert.match(error.message, new RegExp(`DeviceIdRevoked\\(deviceId: ${device}, revokedAt: \\d+\\)`));
  });

  it("policy require-tcb-up-to-date on|off, shown by policy show", async () => {
    assert.deepEqual((await ok(["policy", "require-tcb-up-to-date", "on", "--yes"])).events, [
      { name: "RequireTcbUpToDateSet", args: { required: true } },
    ]);
    assert.equal(await owner.read.requireTcbUpToDate(), true);
    const shown = await cli(["policy", "show"]);
    assert.match(shown.stdout, /require TCB up to date: on/);
    await ok(["policy", "require-tcb-up-to-date", "off", "--yes"]);
    assert.equal(await owner.read.requireTcbUpToDate(), false);
    assert.match((await cli(["policy", "show"])).stdout, /require TCB up to date: off/);
  });

  it("allow-any-device on|off", async () => {
    assert.deepEqual((await ok(["allow-any-device", "on", "--yes"])).events, [
      { name: "AllowAnyDeviceSet", args: { allowAny: true } },
    ]);
    assert.equal(await owner.read.allowAnyDevice(), true);
    await ok(["allow-any-device", "off", "--yes"]);
    assert.equal(await owner.read.allowAnyDevice(), false);
  });

  it("member-app create makes an allowed member app at the predicted address and prints its app id", async () => {
    const run = await cli(["member-app", "create", "--label", "node-7", "--yes"]);
    assert.equal(run.code, 0, run.stderr);
    const appId = /app id: (0x[0-9a-fA-F]{40})/.exec(run.stdout)?.[1] as Address | undefined;
    assert.ok(appId, run.stdout);
    assert.equal(await owner.read.isMemberApp([appId]), true);
    assert.equal(await owner.read.isAppIdAllowed([appId]), true);
    const again = await ok(["member-app", "create", "--yes"]);
    assert.deepEqual(eventNames(again), ["MemberAppCreated", "AppIdAdded"]);
    assert.equal(again.events[0]?.args.app, again.changes["new app id"]);
  });

  it("members lists id, app id, mesh IP, status and registration time; evict by app id and by member id", async () => {
    const a = simulatedNode(fx.kmsRoot);
    const b = simulatedNode(fx.kmsRoot);
    const idA = await admit(fx, a);
    const idB = await admit(fx, b);
    const listed = (await ok(["members"])) as unknown as { members: Record<string, unknown>[] };
    const rowA = listed.members.find((m) => m.memberId === idA.toString());
    assert.ok(rowA);
    assert.equal(rowA.appId, getAddress(a.appId));
    assert.equal(rowA.status, "active");
    assert.match(String(rowA.meshIp), /^10\.77\.\d+\.\d+$/);
    assert.ok(!Number.isNaN(Date.parse(String(rowA.registeredAt))));
    const table = await cli(["members"]);
    assert.match(table.stdout, /registered at/);
    assert.ok(table.stdout.includes(getAddress(a.appId)));

    const byApp = await ok(["evict", a.appId, "--reason", "7", "--yes"]);
    const evicted = byApp.events.find((e) => e.name === "MemberEvicted");
    assert.deepEqual(evicted?.args, { memberId: idA.toString(), appId: getAddress(a.appId), reason: 7 });
    assert.equal(await owner.read.isAppIdAllowed([a.appId]), false, "eviction disallows the app id");
    await ok(["evict", idB.toString(), "--yes"]);
    const after = (await ok(["members", "--active"])) as unknown as { members: { memberId: string }[] };
    assert.ok(!after.members.some((m) => m.memberId === idA.toString() || m.memberId === idB.toString()));
    await refused(["evict", idA.toString(), "--yes"], "MemberAlreadyEvicted");
    await refused(["evict", a.appId, "--yes"], "NoActiveMember");
    await refused(["evict", "999999", "--yes"], "MemberUnknown");
  });

  it("evict has no window: a member that left (and came back) before the eviction lands is evicted (issue 13)", async () => {
    const node = simulatedNode(fx.kmsRoot);
    const first = await admit(fx, node);
    // The owner looked up member `first`; it leaves and registers again before the eviction lands.
    await leave(fx, node, first);
    const nonce = await owner.read.registrationNonce([node.appId]);
    await fx.publicClient.waitForTransactionReceipt({
      hash: await fx.relayer.write.register([
        node.proof,
        node.wireguardKey,
        node.identityKey,
        node.claims,
        await signRegistration(fx, node, { nonce }),
      ]),
    });
    const [second, active] = await owner.read.memberOfApp([node.appId]);
    assert.equal(active, true);
    const run = await ok(["evict", first.toString(), "--reason", "5", "--yes"]);
    assert.deepEqual(
      run.events.filter((e) => e.name === "MemberEvicted").map((e) => e.args.memberId),
      [second.toString(), first.toString()],
    );
    assert.deepEqual(await owner.read.memberOfApp([node.appId]), [second, false]);
    assert.equal(await owner.read.isAppIdAllowed([node.appId]), false);
    // By app id, a member that left is evicted too (its app id is disallowed so it cannot rejoin).
    const other = simulatedNode(fx.kmsRoot);
    const otherId = await admit(fx, other);
    await leave(fx, other, otherId);
    await ok(["evict", other.appId, "--yes"]);
    assert.equal((await owner.read.member([otherId])).status, 3);
    assert.equal(await owner.read.isAppIdAllowed([other.appId]), false);
  });

  it("revoke app --reason revokes for good; check says why it may not join", async () => {
    const appId = randomAppId();
    await ok(["allow", "app", appId, "--yes"]);
    const revoked = await ok(["revoke", "app", appId, "--reason", "key leaked", "--yes"]);
    assert.ok(eventNames(revoked).includes("AppIdRevokedAt"));
    const error = await refused(["allow", "app", appId, "--yes"], "AppIdRevoked");
    assert.match(error.message, /AppIdRevoked\(appId: 0x[0-9a-fA-F]{40}, revokedAt: \d+\)/);
    const check = await cli(["check", appId, "--json"]);
    assert.equal(check.code, 2);
    const result = check.json<{ allowed: boolean; join: { reasons: string[] }; revokedAt: string | null }>();
    assert.equal(result.allowed, false);
    assert.ok(result.revokedAt !== null);
    assert.match(result.join.reasons.join(), /revoked/);
    const shown = await cli(["policy", "show"]);
    assert.match(shown.stdout, /key leaked/);
  });

  it("check: yes for an allowed app and compose hash, no (exit 2) with the boot gate's reason otherwise", async () => {
    const appId = randomAppId();
    const hash = randomHash();
    await ok(["allow", "app", appId, "--yes"]);
    await ok(["allow-any-device", "on", "--yes"]);
    const before = await cli(["check", appId, "--compose", hash, "--json"]);
    assert.equal(before.code, 2);
    const refusedBoot = before.json<{
      boot: { allowed: boolean; reason: string };
      join: { allowed: boolean };
    }>();
    assert.equal(refusedBoot.boot.allowed, false);
    assert.notEqual(refusedBoot.boot.reason, "");
    assert.equal(refusedBoot.join.allowed, true);
    await ok(["allow", "compose", hash, "--yes"]);
    const yes = await cli(["check", appId, "--compose", hash]);
    assert.equal(yes.code, 0, yes.stdout + yes.stderr);
    assert.match(yes.stdout, /boot: yes/);
    assert.match(yes.stdout, /join: yes/);
    assert.equal((await cli(["check", randomAppId()])).code, 2);
    await ok(["allow-any-device", "off", "--yes"]);
  });

  /** A fresh indexer app and code id, allowed for the indexer role, and its key proof written to a file. */
  async function indexerProofFile() {
    const appId = randomAppId();
    await ok(["allow", "app", appId, "--role", "indexer", "--yes"]);
    const codeId = randomHash();
    await ok(["allow", "compose", codeId, "--role", "indexer", "--yes"]);
    // The file leaves guestApiVersion out: the CLI defaults it to 0, the API the key came from.
    const {
      signingKey,
      proof: { guestApiVersion: _, ...chain },
    } = simulatedIndexerKeys(fx.kmsRoot, appId);
    const proof = { ...chain, signingKey, codeId };
    const file = join(tmp, `proof-${appId}.json`);
    writeFileSync(file, JSON.stringify(proof));
    return { proof, file };
  }

  it("indexer set --proof, indexer show, rotate to a new indexer, clear", async () => {
    const setFrom = async (endpoint: string) => {
      const { proof, file } = await indexerProofFile();
      const set = await ok(["indexer", "set", endpoint, "--proof", file, "--yes"]);
      assert.deepEqual(eventNames(set), ["IndexerSet"]);
      return proof;
    };
    const first = await setFrom("wss://indexer-1.example/ws");
    const shown = (await ok(["indexer", "show"])) as unknown as Record<string, unknown>;
    assert.equal(shown.set, true);
    assert.equal(shown.endpoint, "wss://indexer-1.example/ws");
    assert.equal(shown.signingKey, first.signingKey);
    assert.equal(shown.codeId, first.codeId);
    assert.equal(shown.appId, first.appId);
    assert.equal(shown.kmsRoot, fx.kmsRoot.address);
    const second = await setFrom("wss://indexer-2.example/ws");
    const rotated = (await ok(["indexer", "show"])) as unknown as Record<string, unknown>;
    assert.equal(rotated.signingKey, second.signingKey);
    assert.equal(rotated.endpoint, "wss://indexer-2.example/ws");
    assert.deepEqual(eventNames(await ok(["indexer", "clear", "--yes"])), ["IndexerCleared"]);
    assert.equal(((await ok(["indexer", "show"])) as unknown as { set: boolean }).set, false);
    assert.match((await cli(["indexer", "show"])).stdout, /no indexer set/);
  });

  it("indexer add a second, list both, remove the first without a gap, remove an unknown key refused", async () => {
    const one = await indexerProofFile();
    const two = await indexerProofFile();
    assert.deepEqual(
      eventNames(await ok(["indexer", "set", "wss://one.example/ws", "--proof", one.file, "--yes"])),
      ["IndexerSet"],
    );
    assert.deepEqual(
      eventNames(await ok(["indexer", "add", "wss://two.example/ws", "--proof", two.file, "--yes"])),
      ["IndexerAdded"],
    );
    const listed = (await ok(["indexer", "list"])) as unknown as {
      indexers: Array<{ endpoint: string; signingKey: string; appId: string }>;
    };
    assert.deepEqual(
      listed.indexers.map((i) => [i.endpoint, i.signingKey, i.appId]),
      [
        ["wss://one.example/ws", one.proof.signingKey, one.proof.appId],
        ["wss://two.example/ws", two.proof.signingKey, two.proof.appId],
      ],
    );
    const human = await cli(["indexer", "list"]);
    assert.equal(human.code, 0);
    assert.ok(human.stdout.includes("wss://one.example/ws") && human.stdout.includes("wss://two.example/ws"));
    assert.deepEqual(eventNames(await ok(["indexer", "remove", one.proof.signingKey, "--yes"])), [
      "IndexerRemoved",
    ]);
    const after = (await ok(["indexer", "list"])) as unknown as { indexers: Array<{ signingKey: string }> };
    assert.deepEqual(
      after.indexers.map((i) => i.signingKey),
      [two.proof.signingKey],
    );
    await refused(["indexer", "remove", one.proof.signingKey, "--yes"], "IndexerNotRegistered");
    const malformed = await refused(["indexer", "remove", "0x1234", "--yes"], "BadArgument");
    assert.match(malformed.message, /32 bytes of 0x-hex/);
    assert.equal(((await ok(["indexer", "list"])) as unknown as { indexers: unknown[] }).indexers.length, 1);
    await ok(["indexer", "clear", "--yes"]);
    assert.match((await cli(["indexer", "list"])).stdout, /no indexer registered/);
  });

  it("indexer set refuses a proof whose key chain does not verify, with the decoded error", async () => {
    const appId = randomAppId();
    await ok(["allow", "app", appId, "--yes"]);
    const { proof } = simulatedIndexerKeys(fx.kmsRoot, appId);
    const file = join(tmp, "forged-proof.json");
    writeFileSync(
      file,
      JSON.stringify({
        ...proof,
        signingKey: randomHash(), // an attacker's key, not the one the chain signed
        codeId: randomHash(),
      }),
    );
    await refused(
      ["indexer", "set", "wss://evil.example/ws", "--proof", file, "--yes"],
      "AppSignatureMismatch",
    );
  });

  describe("--dry-run simulates and changes nothing", () => {
    for (const [name, args] of [
      ["allow compose", () => ["allow", "compose", randomHash()]],
      ["revoke app", () => ["revoke", "app", randomAppId(), "--reason", "test"]],
      ["member-app create", () => ["member-app", "create"]],
      ["allow-any-device", () => ["allow-any-device", "on"]],
      ["policy require-tcb-up-to-date", () => ["policy", "require-tcb-up-to-date", "on"]],
    ] as const) {
      it(name, async () => {
        const block = await publicClient.getBlockNumber();
        const policy = await owner.read.policySnapshot();
        const out = await ok([...args(), "--dry-run"]);
        assert.equal(out.mode, "dry-run");
        assert.ok(BigInt(out.gas ?? "0") > 21_000n, "a gas estimate");
        assert.equal(out.transactionHash, null);
        assert.equal(await publicClient.getBlockNumber(), block);
        assert.deepEqual(await owner.read.policySnapshot(), policy);
      });
    }

    it("a dry run of a refused call reports the refusal", async () => {
      await refused(["allow", "compose", `0x${"00".repeat(32)}`, "--dry-run"], "ZeroIdentifier");
    });
  });

  describe("--calldata prints the transaction for a multisig and needs no key", () => {
    it("to, value and data that encode the call, with nothing sent", async () => {
      const hash = randomHash();
      const block = await publicClient.getBlockNumber();
      const out = await ok(["allow", "compose", hash, "--calldata"], { env: {} });
      assert.equal(out.mode, "calldata");
      assert.equal(out.to, getAddress(fx.deployed.diamond));
      assert.equal(out.value, "0");
      assert.equal(
        out.data,
        encodeFunctionData({ abi: clusterAbi, functionName: "addComposeHash", args: [hash] }),
      );
      assert.equal(out.from, getAddress(fx.ownerAddress), "checked from the owner's address");
      assert.equal(await publicClient.getBlockNumber(), block);
      const text = await cli(["allow", "compose", hash, "--calldata"], { env: {} });
      assert.match(text.stdout, /^to: +0x[0-9a-fA-F]{40}$/m);
      assert.match(text.stdout, /^data: +0x[0-9a-f]+$/m);
    });

    it("a call the owner could not make is refused before it is printed", async () => {
      await refused(["allow", "compose", `0x${"00".repeat(32)}`, "--calldata"], "ZeroIdentifier", {
        env: {},
      });
    });
  });

  describe("a non-owner key is refused with the decoded custom error", () => {
    const stranger = { env: { ATTESTMESH_OWNER_KEY: STRANGER_KEY } };
    for (const [name, args] of [
      ["allow compose", () => ["allow", "compose", randomHash(), "--yes"]],
      ["allow app", () => ["allow", "app", randomAppId(), "--yes"]],
      ["allow-any-device", () => ["allow-any-device", "on", "--yes"]],
      ["policy require-tcb-up-to-date", () => ["policy", "require-tcb-up-to-date", "on", "--yes"]],
      ["member-app create", () => ["member-app", "create", "--yes"]],
      ["revoke device", () => ["revoke", "device", randomHash(), "--yes"]],
      ["indexer clear", () => ["indexer", "clear", "--yes"]],
    ] as const) {
      it(name, async () => {
        const error = await refused(args(), "NotOwner", stranger);
        const strangerAddress = privateKeyToAccount(STRANGER_KEY).address;
        assert.ok(error.message.includes(`NotOwner(caller: ${strangerAddress})`), error.message);
      });
    }

    it("even with --dry-run", async () => {
      await refused(["allow", "compose", randomHash(), "--dry-run"], "NotOwner", stranger);
    });
  });

  describe("sending needs a confirmation and a key", () => {
    it("without --yes and without a terminal it refuses and sends nothing", async () => {
      const error = await refused(["allow", "compose", randomHash()], "ConfirmationRequired");
      assert.match(error.message, /--yes/);
    });

    it("without a key it says where a key comes from, and never echoes one", async () => {
      const error = await refused(["allow", "compose", randomHash(), "--yes"], "OwnerKeyMissing", {
        env: {},
      });
      assert.match(error.message, /ATTESTMESH_OWNER_KEY/);
      assert.match(error.message, /--calldata/);
      const bad = `${OWNER_KEY.slice(0, -2)}zz`;
      const malformed = await refused(["allow", "compose", randomHash(), "--yes"], "OwnerKeyMalformed", {
        env: { ATTESTMESH_OWNER_KEY: bad },
      });
      assert.ok(!malformed.message.includes(bad.slice(2, 20)), "the key is not echoed");
    });
  });

  describe("bad arguments get a clear message before anything is sent", () => {
    // A closed port: any attempt to reach the chain would fail with RpcUnreachable instead.
    const offline = [
      "--rpc",
      "http://127.0.0.1:9",
      "--cluster",
      "0x0000000000000000000000000000000000000001",
    ];
    const cases: [string, string[], RegExp][] = [
      ["malformed address", ["allow", "app", "0x1234"], /app id must be a 0x-prefixed 20-byte hex address/],
      ["bad checksum", ["allow", "app", "0xABaBaBaBABabABabAbAbABAbABabababaBaBABaC"], /checksum/],
      ["hash too short", ["allow", "compose", `0x${"ab".repeat(31)}`], /32 bytes \(64 hex digits\), got 62/],
      ["hash too long", ["deny", "compose", `0x${"ab".repeat(33)}`], /32 bytes \(64 hex digits\), got 66/],
      ["unknown compose file", ["allow", "compose", "/nonexistent/app-compose.json"], /does not exist/],
      ["device id not hex", ["allow", "device", "not-hex"], /device id must be hex/],
      ["kms root of 21 bytes", ["allow", "kms-root", `0x${"11".repeat(21)}`], /got 21 bytes/],
      [
        "kms root not on the curve",
        ["allow", "kms-root", `0x02${"ff".repeat(32)}`],
        /not a point on secp256k1/,
      ],
      ["reason too long", ["revoke", "app", randomAppId(), "--reason", "x".repeat(33)], /1 to 32 bytes/],
      ["evict reason out of range", ["evict", "3", "--reason", "300"], /from 0 to 253/],
      ["evict by neither id", ["evict", "node1"], /member id \(a number\) or an app id/],
      ["allow-any-device maybe", ["allow-any-device", "maybe"], /"on" or "off"/],
      [
        "require-tcb-up-to-date yes",
        ["policy", "require-tcb-up-to-date", "yes"],
        /require-tcb-up-to-date takes "on" or "off"/,
      ],
      [
        "indexer endpoint not ws",
        ["indexer", "set", "https://x.example", "--proof", "p.json"],
        /ws:\/\/ or wss:\/\//,
      ],
      [
        "unknown proof file",
        ["indexer", "set", "wss://x.example", "--proof", "/nonexistent.json"],
        /does not exist/,
      ],
      ["check a malformed app id", ["check", "0xzz"], /app id must be/],
      ["member-app salt", ["member-app", "create", "--salt", "0x12"], /--salt must be 32 bytes/],
    ];
    for (const [name, args, message] of cases) {
      it(name, async () => {
        const yes = args[0] === "check" ? [] : ["--yes"];
        const run = await runAttestmesh([...args, ...offline, ...yes, "--json"], {
          ATTESTMESH_OWNER_KEY: OWNER_KEY,
        });
        assert.equal(run.code, 1);
        const { error } = run.json<{ error: { code: string; message: string } }>();
        assert.equal(error.code, "BadArgument", error.message);
        assert.match(error.message, message);
        assert.match(run.stderr, message);
      });
    }

    it("an RPC URL is never echoed: its path or query often holds an API key", async () => {
      const secret = "k3y-0f-the-rpc-provider";
      for (const rpc of [
        `http://127.0.0.1:9/v2/${secret}`,
        `ftp://rpc.example/${secret}`,
        `not a url ${secret}`,
      ]) {
        const run = await runAttestmesh(
          ["indexer", "show", "--rpc", rpc, "--cluster", randomAppId(), "--json"],
          {},
        );
        assert.equal(run.code, 1);
        assert.ok(!run.stderr.includes(secret) && !run.stdout.includes(secret), run.stderr);
      }
    });

    it("an unreachable RPC is reported as such, retryable", async () => {
      const run = await runAttestmesh(["allow", "compose", randomHash(), ...offline, "--yes", "--json"], {});
      assert.equal(run.json<{ error: { code: string } }>().error.code, "RpcUnreachable");
    });

    it("no contract at --cluster", async () => {
      const wrong = await runAttestmesh(
        ["policy", "show", "--rpc", fx.rpcUrl, "--cluster", randomAppId(), "--json"],
        {},
      );
      assert.equal(wrong.json<{ error: { code: string } }>().error.code, "ClusterNotFound");
    });
  });
});
