import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { memberAppAbi } from "@attestmesh/shared/contracts/abi.ts";
import { type Address, getAddress, getContract, type Hex, toFunctionSelector, toHex } from "viem";
import {
  admit,
  type ClusterFixture,
  randomAppId,
  setupCluster,
  simulatedNode,
} from "../../../test/helpers/cluster.ts";
import { canonical, expectAnyRevert, expectRevert } from "../../../test/helpers/revert.ts";
import { bootInfo, randomHash, sendDecoded } from "../utils/chain.ts";

const APP_AUTH_ID = "0x1e079198";
const ERC165_ID = toFunctionSelector("supportsInterface(bytes4)");
// OpenZeppelin's Errors.FailedDeployment(), which Clones reverts with when CREATE2 fails.
const FAILED_DEPLOYMENT = toFunctionSelector("FailedDeployment()");

/** Sends; the events of every contract that logged, decoded with the cluster ABI and where they came from. */
async function send(fx: ClusterFixture, write: Promise<Hex>) {
  const { decoded } = await sendDecoded(fx, write);
  return decoded.map((e) => ({ name: e.eventName, args: canonical(e.args), address: getAddress(e.address) }));
}

function memberApp(fx: ClusterFixture, address: Address) {
  return getContract({ address, abi: memberAppAbi, client: { public: fx.publicClient } });
}

/** What a salt's factory state looks like: the prediction, the code there, and the policy's view of it. */
async function saltState(fx: ClusterFixture, salt: Hex) {
  const app = await fx.owner.read.predictMemberApp([salt]);
  return {
    app,
    code: (await fx.publicClient.getCode({ address: app })) ?? "0x",
    isMemberApp: await fx.owner.read.isMemberApp([app]),
    appIdAllowed: await fx.owner.read.isAppIdAllowed([app]),
    appIds: (await fx.owner.read.policySnapshot()).appIds.map((a) => a.toLowerCase()).sort(),
  };
}

describe("MemberAppsFacet", async () => {
  const fx = await setupCluster();
  const owner = fx.owner;

  /** Creates a member app for a fresh salt and returns its address. */
  /** A clone whose compose hash the owner allowed, on any device; the boot info it would be asked about. */
  async function bootableClone() {
    const address = await createApp();
    const composeHash = randomHash();
    await send(fx, owner.write.addComposeHash([composeHash]));
    await send(fx, owner.write.setAllowAnyDevice([true]));
    return { address, app: memberApp(fx, address), composeHash, info: bootInfo(address, composeHash) };
  }

  async function createApp(): Promise<Address> {
    const salt = randomHash();
    const app = await owner.read.predictMemberApp([salt]);
    await send(fx, owner.write.createMemberApp([salt]));
    return app;
  }

  it("createMemberApp deploys at predictMemberApp(salt), allows the app id and emits both events", async () => {
    const salt = randomHash();
    const predicted = await owner.read.predictMemberApp([salt]);
    assert.equal(await fx.publicClient.getCode({ address: predicted }), undefined, "nothing there yet");
    assert.equal(await owner.read.isMemberApp([predicted]), false);
    assert.equal(await owner.read.isAppIdAllowed([predicted]), false);

    const { result } = await owner.simulate.createMemberApp([salt]);
    assert.equal(getAddress(result), getAddress(predicted), "returns the predicted address");

    const events = await send(fx, owner.write.createMemberApp([salt]));
    const diamond = getAddress(fx.deployed.diamond);
    assert.deepEqual(events, [
      { name: "MemberAppCreated", args: canonical({ app: predicted, salt }), address: diamond },
      { name: "AppIdAdded", args: canonical({ appId: predicted }), address: diamond },
    ]);
    const code = await fx.publicClient.getCode({ address: predicted });
    assert.ok(code !== undefined && code.length > 2, "the clone has code");
    assert.equal(await owner.read.isMemberApp([predicted]), true);
    assert.equal(await owner.read.isAppIdAllowed([predicted]), true);
    assert.ok((await owner.read.policySnapshot()).appIds.map(getAddress).includes(getAddress(predicted)));
  });

  it("predicts a different address for each salt, none of them the implementation", async () => {
    const [a, b] = [
      await owner.read.predictMemberApp([randomHash()]),
      await owner.read.predictMemberApp([randomHash()]),
    ];
    assert.notEqual(getAddress(a), getAddress(b));
    const implementation = await owner.read.memberAppImplementation();
    assert.equal(getAddress(implementation), getAddress(fx.deployed.memberAppImplementation));
    assert.notEqual(getAddress(a), getAddress(implementation));
  });

  it("refuses the same salt twice (CREATE2 collision) and changes nothing", async () => {
    const salt = randomHash();
    await send(fx, owner.write.createMemberApp([salt]));
    const whileAllowed = await saltState(fx, salt);
    const first = await expectAnyRevert(owner.write.createMemberApp([salt]));
    assert.equal(first.signature, FAILED_DEPLOYMENT);
    assert.deepEqual(await saltState(fx, salt), whileAllowed);
    // Again with the app id disallowed, so a second creation would have something to change.
    await send(fx, owner.write.removeAppId([await owner.read.predictMemberApp([salt])]));
    const before = await saltState(fx, salt);
    const blockBefore = await fx.publicClient.getBlockNumber();
    const revert = await expectAnyRevert(owner.write.createMemberApp([salt]));
    assert.equal(revert.signature, FAILED_DEPLOYMENT, "OpenZeppelin Clones' FailedDeployment()");
    assert.equal(await fx.publicClient.getBlockNumber(), blockBefore, "a refused call mines nothing");
    assert.deepEqual(await saltState(fx, salt), before);
    assert.equal(before.appIdAllowed, false);
  });

  it("refuses a stranger with NotOwner and deploys nothing", async () => {
    const salt = randomHash();
    const before = await saltState(fx, salt);
    await expectRevert(fx.stranger.write.createMemberApp([salt]), "NotOwner", [fx.strangerAddress]);
    assert.deepEqual(await saltState(fx, salt), before);
    assert.equal(before.code, "0x");
    assert.equal(before.isMemberApp, false);
  });

  it("refuses a salt whose app id was revoked before creation with AppIdRevoked and deploys nothing", async () => {
    const salt = randomHash();
    const predicted = await owner.read.predictMemberApp([salt]);
    await send(fx, owner.write.revokeAppId([predicted, toHex("pre-emptive", { size: 32 })]));
    const revokedAt = await owner.read.appIdRevokedAt([predicted]);
    assert.ok(revokedAt > 0n);
    const before = await saltState(fx, salt);
    await expectRevert(owner.write.createMemberApp([salt]), "AppIdRevoked", [predicted, revokedAt]);
    assert.deepEqual(await saltState(fx, salt), before);
    assert.equal(before.code, "0x");
  });

  it("reports only the factory's own clones as member apps", async () => {
    assert.equal(await owner.read.isMemberApp([randomAppId()]), false);
    assert.equal(await owner.read.isMemberApp([fx.deployed.memberAppImplementation]), false);
    const allowedElsewhere = randomAppId();
    await send(fx, owner.write.addAppId([allowedElsewhere]));
    assert.equal(await owner.read.isMemberApp([allowedElsewhere]), false);
  });

  it("the clone's cluster() is the diamond", async () => {
    const app = memberApp(fx, await createApp());
    assert.equal(getAddress(await app.read.cluster()), getAddress(fx.deployed.diamond));
  });

  it("the clone allows a boot when its compose hash is allowed and any device may host", async () => {
    const { app, info } = await bootableClone();
    assert.deepEqual([...(await app.read.isAppAllowed([info]))], [true, ""]);
    assert.deepEqual(
      [...(await app.read.isAppAllowed([info]))],
      [...(await owner.read.isAppAllowed([info]))],
    );
  });

  it("the clone refuses with the cluster's reason when the cluster policy refuses", async () => {
    const address = await createApp();
    const app = memberApp(fx, address);
    const composeHash = randomHash();
    await send(fx, owner.write.setAllowAnyDevice([false]));

    const unknownCompose = bootInfo(address, randomHash());
    assert.deepEqual(
      [...(await app.read.isAppAllowed([unknownCompose]))],
      [false, "Compose hash not allowed for the node role"],
    );
    assert.deepEqual(
      [...(await app.read.isAppAllowed([unknownCompose]))],
      [...(await owner.read.isAppAllowed([unknownCompose]))],
    );

    await send(fx, owner.write.addComposeHash([composeHash]));
    const unknownDevice = bootInfo(address, composeHash);
    assert.deepEqual([...(await app.read.isAppAllowed([unknownDevice]))], [false, "Device not allowed"]);

    const device = randomHash();
    await send(fx, owner.write.addDevice([device]));
    assert.deepEqual(
      [...(await app.read.isAppAllowed([bootInfo(address, composeHash, device)]))],
      [true, ""],
    );

    await send(fx, owner.write.removeAppId([address]));
    assert.deepEqual(
      [...(await app.read.isAppAllowed([bootInfo(address, composeHash, device)]))],
      [false, "App id not allowed"],
    );
  });

  it("the clone refuses a boot for another app id, even one the cluster allows", async () => {
    const address = await createApp();
    const app = memberApp(fx, address);
    const other = await createApp();
    const composeHash = randomHash();
    await send(fx, owner.write.addComposeHash([composeHash]));
    await send(fx, owner.write.setAllowAnyDevice([true]));
    const forOther = bootInfo(other, composeHash);
    assert.deepEqual([...(await owner.read.isAppAllowed([forOther]))], [true, ""], "the cluster allows it");
    assert.deepEqual(
      [...(await app.read.isAppAllowed([forOther]))],
      [false, "App id is not this member app"],
    );
    assert.deepEqual([...(await memberApp(fx, other).read.isAppAllowed([forOther]))], [true, ""]);
  });

  it("the clone refuses once its app id is revoked in the cluster", async () => {
    const { address, app, info } = await bootableClone();
    assert.deepEqual([...(await app.read.isAppAllowed([info]))], [true, ""]);
    await send(fx, owner.write.revokeAppId([address, toHex("revoked", { size: 32 })]));
    assert.deepEqual([...(await app.read.isAppAllowed([info]))], [false, "App id revoked"]);
    assert.equal(await owner.read.isMemberApp([address]), true, "still one of the factory's apps");
  });

  it("the clone supports IAppAuth and IERC165 and nothing else", async () => {
    const app = memberApp(fx, await createApp());
    assert.equal(ERC165_ID, "0x01ffc9a7");
    assert.equal(await app.read.supportsInterface([APP_AUTH_ID]), true);
    assert.equal(await app.read.supportsInterface([ERC165_ID]), true);
    assert.equal(await app.read.supportsInterface(["0xdeadbeef"]), false);
    assert.equal(await app.read.supportsInterface(["0xffffffff"]), false);
    assert.equal(await app.read.supportsInterface(["0x8fd37527"]), false, "it has no management functions");
  });

  it("a node whose dstack app id is a member app registers as a member", async () => {
    const address = await createApp();
    const node = simulatedNode(fx.kmsRoot, address);
    const memberId = await admit(fx, node);
    assert.equal(await owner.read.isMember([address]), true);
    const m = await owner.read.member([memberId]);
    assert.equal(getAddress(m.appId), getAddress(address));
    assert.equal(getAddress(m.memberKey), getAddress(node.memberAccount.address));
  });
});
