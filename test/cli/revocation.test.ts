// The owner's revocation, end to end through the CLI: `members` shows which member runs which compose
// on which device under which KMS root; `deny compose` warns with the members that still run it;
// `deny kms-root` says how many members the root admitted; `evict --stale` evicts exactly the members
// the revocations reached and reports success only once none remains; `policy show` lists the claims.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, it } from "node:test";
import { createKmsRoot } from "@attestmesh/devnet/dstack-sim/simulator.ts";
import { fingerprintHex } from "@attestmesh/scripts/owner/members.ts";
import { getAddress, type Hex, hexToBytes, toHex } from "viem";
import { cliCluster } from "../helpers/cli.ts";
import { admit, randomAppId, SIMULATED_COMPOSE_HASH, simulatedNode } from "../helpers/cluster.ts";

interface Row {
  memberId: string;
  appId: string;
  status: string;
  standing: string;
  composeHash: string | null;
  deviceId: string | null;
  deviceFingerprint: string | null;
  kmsRoot: string | null;
}

const randomHash = (): Hex => toHex(randomBytes(32));

describe("attestmesh revocation reaches running members", async () => {
  const fx = await cliCluster();
  const { cli, owner } = fx;
  const oldCompose = randomHash();
  const oldRoot = createKmsRoot(randomBytes(32));
  await fx.publicClient.waitForTransactionReceipt({ hash: await owner.write.addComposeHash([oldCompose]) });
  await fx.publicClient.waitForTransactionReceipt({ hash: await owner.write.addKmsRoot([oldRoot.address]) });

  const node = (compose: Hex = SIMULATED_COMPOSE_HASH, root = fx.kmsRoot) =>
    simulatedNode(root, randomAppId(), {
      composeHash: hexToBytes(compose),
      deviceId: hexToBytes(randomHash()),
    });
  const good = node();
  const onBadDevice = node();
  const onOldCompose = node(oldCompose);
  const underOldRoot = node(SIMULATED_COMPOSE_HASH, oldRoot);
  const ids = new Map<string, string>();
  for (const [name, n] of Object.entries({ good, onBadDevice, onOldCompose, underOldRoot })) {
    ids.set(name, (await admit(fx, n)).toString());
  }

  async function members(args: readonly string[] = []): Promise<Row[]> {
    const run = await cli(["members", ...args, "--json"]);
    assert.equal(run.code, 0, run.stderr);
    return run.json<{ members: Row[] }>().members;
  }

  it("members shows each member's compose hash, device, KMS root and standing, and filters by them", async () => {
    const rows = await members(["--active"]);
    const row = rows.find((r) => r.memberId === ids.get("underOldRoot"));
    // Its device no owner call named (allow-any-device): the chain keeps the fingerprint, the CLI
    // finds the id in the member's MemberDeviceStated log.
    assert.equal(row?.deviceFingerprint, fingerprintHex(underOldRoot.claims.deviceId));
    assert.deepEqual(row && [row.composeHash, row.deviceId, row.kmsRoot, row.standing], [
      SIMULATED_COMPOSE_HASH,
      underOldRoot.claims.deviceId,
      getAddress(oldRoot.address),
      "good",
    ]);
    const running = await members(["--compose", oldCompose]);
    assert.deepEqual(
      running.map((r) => r.memberId),
      [ids.get("onOldCompose")],
    );
    const table = await cli(["members", "--active"]);
    assert.match(table.stdout, /compose hash/);
    assert.match(table.stdout, /KMS root/);
    assert.ok(table.stdout.includes(getAddress(oldRoot.address)));
    const none = await cli(["members", "--stale"]);
    assert.equal(
      none.stdout,
      "no active, stale (revoked device, withdrawn compose hash or KMS root) members\n",
    );
  });

  it("deny compose warns with the members that still run it; deny kms-root says how many it admitted", async () => {
    const denied = await cli(["deny", "compose", oldCompose, "--yes", "--json"]);
    assert.equal(denied.code, 0, denied.stderr);
    assert.match(denied.stderr, /warning: 1 active members still run compose hash/);
    assert.ok(denied.stderr.includes(onOldCompose.appId));
    assert.equal(
      denied.json<{ changes: Record<string, string> }>().changes["active members running it"],
      ids.get("onOldCompose"),
    );

    const root = await cli(["deny", "kms-root", oldRoot.address, "--yes", "--json"]);
    assert.equal(root.code, 0, root.stderr);
    assert.match(root.stderr, /admitted 1 active members/);
    assert.equal(
      root.json<{ changes: Record<string, string> }>().changes["members it admitted"],
      `1 (1 active: ${ids.get("underOldRoot")})`,
    );

    const revoked = await cli(["revoke", "device", onBadDevice.claims.deviceId, "--yes", "--json"]);
    assert.equal(revoked.code, 0, revoked.stderr);
    const onDevice = await members(["--device", onBadDevice.claims.deviceId]);
    assert.deepEqual(
      onDevice.map((r) => [r.memberId, r.deviceId, r.standing]),
      [[ids.get("onBadDevice"), onBadDevice.claims.deviceId, "device-revoked"]],
    );

    const stale = await members(["--stale"]);
    assert.deepEqual(
      stale.map((r) => [r.memberId, r.standing]),
      [
        [ids.get("onBadDevice"), "device-revoked"],
        [ids.get("onOldCompose"), "compose-hash-not-allowed"],
        [ids.get("underOldRoot"), "kms-root-not-allowed"],
      ],
    );
    const policy = await cli(["policy", "show"]);
    assert.equal(policy.code, 0, policy.stderr);
    assert.match(policy.stdout, /active members \(compose hash, device, KMS root, standing\) \(4\)/);
    assert.ok(policy.stdout.includes(`compose ${oldCompose}`));
  });

  it("evict --stale evicts exactly the stale members and proves none remains; a second run has nothing to do", async () => {
    const dry = await cli(["evict", "--stale", "--dry-run", "--json"]);
    assert.equal(dry.code, 0, dry.stderr);
    assert.equal((await members(["--stale"])).length, 3, "a dry run changes nothing");

    const run = await cli(["evict", "--stale", "--yes"]);
    assert.equal(run.code, 0, run.stderr);
    const staleIds = [ids.get("onBadDevice"), ids.get("onOldCompose"), ids.get("underOldRoot")];
    assert.match(
      run.stdout,
      new RegExp(`evicted 3 stale members \\(${staleIds.join(", ")}\\); none remains\\n$`),
    );
    for (const [name, id] of ids) {
      const record = await owner.read.member([BigInt(id)]);
      assert.equal(record.status, name === "good" ? 1 : 3, `${name} (member ${id})`);
      if (name !== "good") assert.equal(record.endReason, 254);
    }
    assert.equal((await members(["--stale"])).length, 0);
    const again = await cli(["evict", "--stale", "--yes"]);
    assert.equal(again.stdout, "no stale members: every active member still meets the policy\n");
    const proof = await cli(["members", "--active", "--compose", oldCompose]);
    assert.equal(proof.stdout, `no active, running compose hash ${oldCompose} members\n`);
  });

  it("evict --stale with a member id, or evict with neither, is refused", async () => {
    const both = await cli(["evict", "--stale", "3", "--yes"]);
    assert.equal(both.code, 1);
    assert.match(both.stderr, /evict --stale takes no member id or app id/);
    const neither = await cli(["evict", "--yes"]);
    assert.equal(neither.code, 1);
    assert.match(neither.stderr, /evict needs a member id or an app id, or --stale/);
  });
});
