// Registering member apps with dstack's KMS contract, through the CLI, against the in-process chain:
// dstack's KMS boots no app that is not registered with its DstackKms contract. `DstackKmsForwarder`
// (contracts/test/mocks) does what DstackKms does on that path, so `member-app create --kms-contract`
// and `member-app register` are checked against it, and `check --kms-contract` reports an unregistered
// app as the reason its boot would fail.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, it } from "node:test";
import { dstackKmsAbi } from "@attestmesh/scripts/owner/dstackKms.ts";
import {
  type Abi,
  type AbiFunction,
  type Address,
  bytesToHex,
  getAddress,
  getContract,
  type Hex,
  toFunctionSelector,
} from "viem";
import { cliCluster, STRANGER_KEY } from "../helpers/cli.ts";
import { randomAppId } from "../helpers/cluster.ts";

const randomHash = (): Hex => bytesToHex(randomBytes(32));

interface Outcome {
  mode: string;
  to: Address;
  data: Hex;
  changes: Record<string, string>;
  events: { name: string; args: Record<string, unknown> }[];
  kmsRegistration?: Outcome | null;
}

interface Check {
  allowed: boolean;
  kms: {
    contract: Address;
    registered: boolean;
    fix: string | null;
    boot: { allowed: boolean; reason: string } | null;
  } | null;
}

describe("attestmesh and dstack's KMS contract", async () => {
  const fx = await cliCluster();
  const { cli, owner, publicClient } = fx;
  const deployed = await fx.viem.deployContract("DstackKmsForwarder");
  const kmsAddress = getAddress(deployed.address);
  const kms = getContract({ address: kmsAddress, abi: dstackKmsAbi, client: publicClient });
  const osImageHash = randomHash();
  const [ownerWallet] = await fx.viem.getWalletClients();
  await publicClient.waitForTransactionReceipt({
    hash: await ownerWallet!.writeContract({
      address: kmsAddress,
      abi: deployed.abi as Abi,
      functionName: "addOsImageHash",
      args: [osImageHash],
    }),
  });

  async function ok(args: readonly string[]): Promise<Outcome> {
    const run = await cli([...args, "--json"]);
    assert.equal(run.code, 0, `attestmesh ${args.join(" ")} failed: ${run.stderr}`);
    return run.json<Outcome>();
  }

  /** The command must fail with `code`, mining nothing. */
  async function refused(args: readonly string[], code: string): Promise<string> {
    const block = await publicClient.getBlockNumber();
    const run = await cli([...args, "--json"]);
    assert.equal(run.code, 1, `expected failure, got ${run.code}: ${run.stdout}`);
    const { error } = run.json<{ error: { code: string; message: string } }>();
    assert.equal(error.code, code, error.message);
    assert.equal(await publicClient.getBlockNumber(), block, "nothing was mined");
    return error.message;
  }

  async function check(args: readonly string[]): Promise<{ code: number; result: Check }> {
    const run = await cli(["check", ...args, "--json"]);
    assert.ok(run.code === 0 || run.code === 2, `check failed: ${run.stderr}`);
    return { code: run.code, result: run.json<Check>() };
  }

  it("the CLI's DstackKms ABI is dstack's, and the forwarder mock answers every function of it", () => {
    const mock = deployed.abi as Abi;
    for (const fn of (dstackKmsAbi as Abi).filter((item): item is AbiFunction => item.type === "function")) {
      const twin = mock.find(
        (item): item is AbiFunction => item.type === "function" && item.name === fn.name,
      );
      assert.ok(twin, `the mock has ${fn.name}`);
      assert.equal(toFunctionSelector(twin), toFunctionSelector(fn), `${fn.name} has dstack's signature`);
      assert.deepEqual(
        twin.outputs.map((o) => o.type),
        fn.outputs.map((o) => o.type),
        `${fn.name} returns what dstack's does`,
      );
      assert.equal(twin.stateMutability === "pure" ? "view" : twin.stateMutability, fn.stateMutability);
    }
  });

  it("member-app create --kms-contract creates the app and registers it with the KMS contract", async () => {
    const created = await ok([
      "member-app",
      "create",
      "--label",
      "kms-node-1",
      "--kms-contract",
      kmsAddress,
      "--yes",
    ]);
    const appId = created.changes["new app id"] as Address;
    assert.equal(created.mode, "sent");
    assert.deepEqual(
      created.events.map((e) => e.name),
      ["MemberAppCreated", "AppIdAdded"],
    );
    const registration = created.kmsRegistration;
    assert.ok(registration, "a second transaction registered it");
    assert.equal(registration.mode, "sent");
    assert.equal(registration.to, kmsAddress);
    assert.deepEqual(registration.events, [{ name: "AppRegistered", args: { appId } }]);
    assert.equal(await kms.read.registeredApps([appId]), true);
    assert.equal(await owner.read.isMemberApp([appId]), true);

    // The text output says so, and dstack's KMS now reaches the app's own answer.
    const text = await cli([
      "member-app",
      "create",
      "--label",
      "kms-node-2",
      "--kms-contract",
      kmsAddress,
      "--yes",
    ]);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /member-app register — done/);
    assert.match(text.stdout, /AppRegistered\(appId: 0x[0-9a-fA-F]{40}\)/);
    assert.doesNotMatch(text.stdout, /register it with your KMS/);
    const [allowed, reason] = await kms.read.isAppAllowed([
      {
        appId,
        composeHash: randomHash(),
        instanceId: randomAppId(),
        deviceId: randomHash(),
        mrAggregated: randomHash(),
        mrSystem: randomHash(),
        osImageHash,
        tcbStatus: "UpToDate",
        advisoryIds: [],
      },
    ]);
    assert.equal(allowed, false);
    assert.notEqual(reason, "App not registered", "the KMS asked the app itself");
  });

  it("member-app create without --kms-contract says the app still needs registering", async () => {
    const run = await cli(["member-app", "create", "--yes"]);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /register it with your KMS's DstackKms before deploying/);
    const json = await ok(["member-app", "create", "--yes"]);
    assert.equal(json.kmsRegistration, null);
  });

  it("check reports an unregistered app as the reason its boot would fail, with the command that fixes it", async () => {
    const created = await ok(["member-app", "create", "--yes"]);
    const appId = created.changes["new app id"] as Address;
    const composeHash = randomHash();
    await ok(["allow", "compose", composeHash, "--yes"]);
    await ok(["allow-any-device", "on", "--yes"]);

    // Without --kms-contract the cluster alone says yes.
    const plain = await check([appId, "--compose", composeHash]);
    assert.equal(plain.code, 0);
    assert.equal(plain.result.kms, null);

    /** `check` of the app and compose hash through the KMS contract, with `extra` flags. */
    const kmsCheck = (...extra: string[]) =>
      check([appId, "--compose", composeHash, "--kms-contract", kmsAddress, ...extra]);
    const before = await kmsCheck();
    assert.equal(before.code, 2, "an unregistered app is refused");
    assert.equal(before.result.allowed, false);
    assert.equal(before.result.kms?.registered, false);
    const fix = before.result.kms?.fix;
    assert.equal(fix, `attestmesh member-app register ${appId} --kms-contract ${kmsAddress}`);
    const text = await cli(["check", appId, "--kms-contract", kmsAddress]);
    assert.equal(text.code, 2);
    assert.match(text.stdout, /kms: no — not registered with dstack's KMS contract/);
    assert.ok(text.stdout.includes(fix), "the text names the fix");
    assert.match(text.stdout, /NOT allowed/);

    // The fix, as printed (less the program name), registers it; check then passes.
    const registered = await ok([...fix.split(" ").slice(1), "--yes"]);
    assert.deepEqual(registered.events, [{ name: "AppRegistered", args: { appId } }]);
    const after = await kmsCheck();
    assert.equal(after.code, 0, JSON.stringify(after.result));
    assert.deepEqual(after.result.kms, { contract: kmsAddress, registered: true, fix: null, boot: null });
    const textAfter = await cli(["check", appId, "--kms-contract", kmsAddress]);
    assert.match(textAfter.stdout, /kms: registered with/);

    // With the OS image, the KMS contract's own isAppAllowed answers: through it, to the member app.
    const full = await kmsCheck("--os-image", osImageHash);
    assert.equal(full.code, 0);
    assert.deepEqual(full.result.kms?.boot, { allowed: true, osImageHash, reason: "" });
    const badImage = await kmsCheck("--os-image", randomHash());
    assert.equal(badImage.code, 2);
    assert.equal(badImage.result.kms?.boot?.reason, "OS image is not allowed");
    await ok(["allow-any-device", "off", "--yes"]);
  });

  it("member-app register needs no owner key: anyone may register an app with DstackKms", async () => {
    const appId = randomAppId();
    const run = await cli(
      ["member-app", "register", appId, "--kms-contract", kmsAddress, "--yes", "--json"],
      {
        env: { ATTESTMESH_OWNER_KEY: STRANGER_KEY },
      },
    );
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(run.json<Outcome>().events, [{ name: "AppRegistered", args: { appId } }]);
    assert.equal(await kms.read.registeredApps([appId]), true);
    // Registering again changes nothing, and the plan says so.
    const again = await ok(["member-app", "register", appId, "--kms-contract", kmsAddress, "--dry-run"]);
    assert.match(again.changes["already registered"] ?? "", /^yes/);
  });

  it("--dry-run and --calldata register nothing", async () => {
    const salt = randomHash();
    const predicted = await owner.read.predictMemberApp([salt]);
    const block = await publicClient.getBlockNumber();
    const dry = await ok(["member-app", "create", "--salt", salt, "--kms-contract", kmsAddress, "--dry-run"]);
    assert.equal(dry.mode, "dry-run");
    assert.equal(dry.kmsRegistration?.mode, "dry-run");
    assert.equal(dry.kmsRegistration?.to, kmsAddress);
    const calldata = await ok([
      "member-app",
      "create",
      "--salt",
      salt,
      "--kms-contract",
      kmsAddress,
      "--calldata",
    ]);
    assert.equal(calldata.mode, "calldata");
    assert.equal(calldata.kmsRegistration?.mode, "calldata");
    assert.equal(calldata.kmsRegistration?.to, kmsAddress);
    assert.match(calldata.kmsRegistration?.data ?? "", new RegExp(predicted.slice(2).toLowerCase()));
    const appId = randomAppId();
    const dryRegister = await ok([
      "member-app",
      "register",
      appId,
      "--kms-contract",
      kmsAddress,
      "--dry-run",
    ]);
    assert.equal(dryRegister.mode, "dry-run");
    assert.equal(await publicClient.getBlockNumber(), block, "nothing was mined");
    assert.equal(await kms.read.registeredApps([predicted]), false);
    assert.equal(await kms.read.registeredApps([appId]), false);
    assert.equal(await owner.read.isMemberApp([predicted]), false);
  });

  it("a --kms-contract that is no contract, or not a DstackKms, is refused before anything is sent", async () => {
    const salt = randomHash();
    const predicted = await owner.read.predictMemberApp([salt]);
    const noCode = randomAppId();
    const cluster = fx.deployed.diamond;
    for (const [kmsArg, code] of [
      [noCode, "KmsContractNotFound"],
      [cluster, "NotDstackKms"],
    ] as const) {
      await refused(["member-app", "create", "--salt", salt, "--kms-contract", kmsArg, "--yes"], code);
      await refused(["member-app", "register", randomAppId(), "--kms-contract", kmsArg, "--yes"], code);
      await refused(["check", randomAppId(), "--kms-contract", kmsArg], code);
    }
    const message = await refused(
      ["member-app", "create", "--salt", salt, "--kms-contract", "base", "--yes"],
      "BadArgument",
    );
    assert.match(message, /Base \(chain 8453\)/);
    await refused(["member-app", "create", "--salt", salt, "--kms-contract", "0x12", "--yes"], "BadArgument");
    await refused(["check", randomAppId(), "--os-image", randomHash()], "BadArgument");
    await refused(
      ["member-app", "register", `0x${"00".repeat(20)}`, "--kms-contract", kmsAddress, "--yes"],
      "BadArgument",
    );
    assert.equal(await owner.read.isMemberApp([predicted]), false, "no app was created");
  });
});
