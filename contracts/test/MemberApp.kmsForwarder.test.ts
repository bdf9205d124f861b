// The dstack KMS's own path to a member app. dstack's KMS never calls an app contract directly: its
// `DstackKms.isAppAllowed(bootInfo)` checks that the app is registered with it and its OS image allowed,
// that code exists at the app id, then calls `IAppAuth(appId).isAppAllowed(bootInfo)` from inside a view
// (a static call). `DstackKmsForwarder` (contracts/test/mocks) does exactly that; every member app must
// answer through it as the cluster policy says, with dstack's AppBootInfo layout.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, it } from "node:test";
import { clusterAbi, memberAppAbi } from "@attestmesh/shared/contracts/abi.ts";
import {
  type Abi,
  type AbiFunction,
  type Address,
  bytesToHex,
  getAddress,
  getContract,
  type Hex,
  parseAbi,
  parseEventLogs,
  toFunctionSelector,
} from "viem";
import { type ClusterFixture, randomAppId, setupCluster } from "../../test/helpers/cluster.ts";
import { canonical, expectRevert } from "../../test/helpers/revert.ts";

const randomHash = (): Hex => bytesToHex(randomBytes(32));

// dstack's IAppAuth.AppBootInfo (kms/auth-eth/contracts/IAppAuth.sol), field by field, and the
// ERC-165 id dstack's contracts answer for IAppAuth.
const DSTACK_APP_BOOT_INFO = [
  ["appId", "address"],
  ["composeHash", "bytes32"],
  ["instanceId", "address"],
  ["deviceId", "bytes32"],
  ["mrAggregated", "bytes32"],
  ["mrSystem", "bytes32"],
  ["osImageHash", "bytes32"],
  ["tcbStatus", "string"],
  ["advisoryIds", "string[]"],
] as const;
const APP_AUTH_INTERFACE_ID = "0x1e079198";

const FORWARDER_ABI = parseAbi([
  "function registerApp(address appId)",
  "function addOsImageHash(bytes32 osImageHash)",
  "function isAppAllowed((address appId, bytes32 composeHash, address instanceId, bytes32 deviceId, bytes32 mrAggregated, bytes32 mrSystem, bytes32 osImageHash, string tcbStatus, string[] advisoryIds) bootInfo) view returns (bool isAllowed, string reason)",
]);

function isAppAllowedOf(abi: Abi): AbiFunction {
  const fn = abi.find(
    (item): item is AbiFunction => item.type === "function" && item.name === "isAppAllowed",
  );
  assert.ok(fn, "the ABI has isAppAllowed");
  return fn;
}

async function send(fx: ClusterFixture, write: Promise<Hex>) {
  const receipt = await fx.publicClient.waitForTransactionReceipt({ hash: await write });
  assert.equal(receipt.status, "success");
  return parseEventLogs({ abi: clusterAbi, logs: receipt.logs }).map((e) => ({
    name: e.eventName,
    args: canonical(e.args),
  }));
}

describe("dstack's KMS path to a member app", async () => {
  const fx = await setupCluster({ openPolicy: false });
  const owner = fx.owner;
  const [ownerWallet, , strangerWallet] = await fx.viem.getWalletClients();
  const deployedKms = await fx.viem.deployContract("DstackKmsForwarder");
  // Test contracts get no generated types: the calls go through this ABI, and the artifact's own ABI
  // is what the layout test below checks.
  const forwarder = (wallet: typeof ownerWallet) =>
    getContract({
      address: deployedKms.address,
      abi: FORWARDER_ABI,
      client: { public: fx.publicClient, wallet: wallet! },
    });
  const kms = forwarder(ownerWallet);
  const osImageHash = randomHash();
  await fx.publicClient.waitForTransactionReceipt({ hash: await kms.write.addOsImageHash([osImageHash]) });
  const composeHash = randomHash();
  const deviceId = randomHash();
  await send(fx, owner.write.addComposeHash([composeHash]));
  await send(fx, owner.write.addDevice([deviceId]));

  const boot = (appId: Address, overrides: Partial<Record<string, unknown>> = {}) => ({
    appId,
    composeHash,
    instanceId: randomAppId(),
    deviceId,
    mrAggregated: randomHash(),
    mrSystem: randomHash(),
    osImageHash,
    tcbStatus: "UpToDate",
    advisoryIds: ["INTEL-SA-00837"],
    ...overrides,
  });
  type Boot = ReturnType<typeof boot>;
  const ask = async (info: Boot) => {
    const [allowed, reason] = await kms.read.isAppAllowed([info as never]);
    return { allowed, reason };
  };

  /** A member app created by the cluster and registered with the KMS contract, as the runbook says. */
  async function registeredMemberApp(): Promise<Address> {
    const salt = randomHash();
    const app = await owner.read.predictMemberApp([salt]);
    await send(fx, owner.write.createMemberApp([salt]));
    await fx.publicClient.waitForTransactionReceipt({ hash: await kms.write.registerApp([app]) });
    return app;
  }

  it("uses dstack's AppBootInfo field order and types, so its ERC-165 id is dstack's", () => {
    for (const abi of [clusterAbi as Abi, memberAppAbi as Abi, deployedKms.abi as Abi]) {
      const fn = isAppAllowedOf(abi);
      const tuple = fn.inputs[0] as { type: string; components: readonly { name: string; type: string }[] };
      assert.equal(tuple.type, "tuple");
      assert.deepEqual(
        tuple.components.map((c) => [c.name, c.type]),
        DSTACK_APP_BOOT_INFO.map(([name, type]) => [name, type]),
      );
      // IAppAuth has one function, so its interface id is that function's selector.
      assert.equal(toFunctionSelector(fn), APP_AUTH_INTERFACE_ID);
      assert.deepEqual(
        fn.outputs.map((o) => o.type),
        ["bool", "string"],
      );
      assert.equal(fn.stateMutability, "view", "dstack calls it from a view: a static call");
    }
  });

  it("allows a member app's boot through the KMS when the cluster policy allows it", async () => {
    const app = await registeredMemberApp();
    assert.deepEqual(await ask(boot(app)), { allowed: true, reason: "" });
    // The KMS asks with whatever advisories the quote carried; they do not change the answer.
    assert.deepEqual(await ask(boot(app, { advisoryIds: [] })), { allowed: true, reason: "" });
  });

  it("refuses an app that is not registered with the KMS contract, before asking the app", async () => {
    const salt = randomHash();
    const app = await owner.read.predictMemberApp([salt]);
    await send(fx, owner.write.createMemberApp([salt]));
    assert.deepEqual(await ask(boot(app)), { allowed: false, reason: "App not registered" });
    assert.deepEqual(
      await owner.read.isAppAllowed([boot(app) as never]),
      [true, ""],
      "the cluster would allow it",
    );
    const asStranger = forwarder(strangerWallet);
    await fx.publicClient.waitForTransactionReceipt({ hash: await asStranger.write.registerApp([app]) });
    assert.deepEqual(await ask(boot(app)), { allowed: true, reason: "" }, "anyone may register it");
  });

  it("refuses an OS image the KMS does not allow, and an app id without code", async () => {
    const app = await registeredMemberApp();
    assert.deepEqual(await ask(boot(app, { osImageHash: randomHash() })), {
      allowed: false,
      reason: "OS image is not allowed",
    });
    const empty = randomAppId();
    await fx.publicClient.waitForTransactionReceipt({ hash: await kms.write.registerApp([empty]) });
    await send(fx, owner.write.addAppId([empty]));
    assert.deepEqual(await ask(boot(empty)), {
      allowed: false,
      reason: "App not deployed or invalid address",
    });
  });

  it("answers each refusal of the cluster policy through the KMS, with the cluster's reason", async () => {
    const cases: { name: string; reason: string; setup: (app: Address) => Promise<Boot> }[] = [
      {
        name: "compose hash not allowed",
        reason: "Compose hash not allowed for the node role",
        setup: async (app) => boot(app, { composeHash: randomHash() }),
      },
      {
        name: "device not allowed",
        reason: "Device not allowed",
        setup: async (app) => boot(app, { deviceId: randomHash() }),
      },
      {
        name: "device revoked",
        reason: "Device revoked",
        setup: async (app) => {
          const revoked = randomHash();
          await send(fx, owner.write.addDevice([revoked]));
          await send(fx, owner.write.revokeDevice([revoked, randomHash()]));
          return boot(app, { deviceId: revoked });
        },
      },
      {
        name: "app id removed from the allowlist",
        reason: "App id not allowed",
        setup: async (app) => {
          await send(fx, owner.write.removeAppId([app]));
          return boot(app);
        },
      },
      {
        name: "app id revoked",
        reason: "App id revoked",
        setup: async (app) => {
          await send(fx, owner.write.revokeAppId([app, randomHash()]));
          return boot(app);
        },
      },
    ];
    for (const c of cases) {
      const app = await registeredMemberApp();
      const info = await c.setup(app);
      assert.deepEqual(await ask(info), { allowed: false, reason: c.reason }, c.name);
      assert.deepEqual(
        await owner.read.isAppAllowed([info as never]),
        [false, c.reason],
        `${c.name} (direct)`,
      );
    }
  });

  it("requireTcbUpToDate refuses every TCB status but UpToDate through the KMS, and only while set", async () => {
    const app = await registeredMemberApp();
    const statuses = [
      "OutOfDate",
      "SWHardeningNeeded",
      "ConfigurationNeeded",
      "Revoked",
      "",
      "uptodate",
      "UpToDate ",
    ];
    for (const tcbStatus of statuses) {
      assert.deepEqual(
        await ask(boot(app, { tcbStatus })),
        { allowed: true, reason: "" },
        `off: ${tcbStatus}`,
      );
    }
    assert.deepEqual(await send(fx, owner.write.setRequireTcbUpToDate([true])), [
      { name: "RequireTcbUpToDateSet", args: canonical({ required: true }) },
    ]);
    assert.equal(await owner.read.requireTcbUpToDate(), true);
    assert.equal((await owner.read.policySnapshot()).requireTcbUpToDate, true);
    for (const tcbStatus of statuses) {
      assert.deepEqual(
        await ask(boot(app, { tcbStatus })),
        { allowed: false, reason: "TCB status is not up to date" },
        `on: ${JSON.stringify(tcbStatus)}`,
      );
    }
    assert.deepEqual(await ask(boot(app)), { allowed: true, reason: "" }, "UpToDate still boots");
    // Revocations still come first: a revoked app reads as revoked, not as out of date.
    const revoked = await registeredMemberApp();
    await send(fx, owner.write.revokeAppId([revoked, randomHash()]));
    assert.deepEqual(await ask(boot(revoked, { tcbStatus: "OutOfDate" })), {
      allowed: false,
      reason: "App id revoked",
    });
    assert.deepEqual(
      await send(fx, owner.write.setRequireTcbUpToDate([true])),
      [],
      "no event without a change",
    );
    assert.deepEqual(await send(fx, owner.write.setRequireTcbUpToDate([false])), [
      { name: "RequireTcbUpToDateSet", args: canonical({ required: false }) },
    ]);
    assert.deepEqual(await ask(boot(app, { tcbStatus: "OutOfDate" })), { allowed: true, reason: "" });
    assert.equal((await owner.read.policySnapshot()).requireTcbUpToDate, false);
  });

  it("refuses setRequireTcbUpToDate from a stranger with NotOwner and changes nothing", async () => {
    const before = await owner.read.requireTcbUpToDate();
    await expectRevert(fx.stranger.write.setRequireTcbUpToDate([!before]), "NotOwner", [fx.strangerAddress]);
    assert.equal(await owner.read.requireTcbUpToDate(), before);
  });

  it("a member app never vouches for another app id, even when the KMS asks it", async () => {
    const app = await registeredMemberApp();
    const other = await registeredMemberApp();
    // The forwarder asks bootInfo.appId, so a mismatch can only reach the app directly.
    const [allowed, reason] = await fx.publicClient.readContract({
      address: app,
      abi: memberAppAbi,
      functionName: "isAppAllowed",
      args: [boot(other) as never],
    });
    assert.deepEqual([allowed, reason], [false, "App id is not this member app"]);
    assert.equal(getAddress(app) !== getAddress(other), true);
  });
});
