// Two-step ownership through the CLI: the owner starts a transfer, only the pending owner can accept it
// (with its key, or as calldata for a Safe), and the old key is refused afterwards.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { clusterAbi } from "@attestmesh/shared/contracts/abi.ts";
import { encodeFunctionData, getAddress } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { cliCluster, OWNER_KEY, STRANGER_KEY } from "../helpers/cli.ts";

describe("attestmesh ownership", async () => {
  const fx = await cliCluster();
  const newOwner = privateKeyToAccount(STRANGER_KEY).address;
  const as = (key: string) => ({ env: { ATTESTMESH_OWNER_KEY: key } });

  it("transfer, accept as calldata and with the key, then the old key is refused", async () => {
    const shown = await fx.cli(["ownership", "show", "--json"]);
    assert.deepEqual(shown.json(), {
      cluster: getAddress(fx.deployed.diamond),
      chainId: fx.chainId,
      owner: getAddress(fx.ownerAddress),
      pendingOwner: null,
    });
    assert.equal((await fx.cli(["ownership", "transfer", newOwner, "--yes", "--json"])).code, 0);
    assert.equal(await fx.owner.read.pendingOwner(), newOwner);

    const calldata = await fx.cli(["ownership", "accept", "--calldata", "--json"], { env: {} });
    assert.equal(calldata.code, 0, calldata.stderr);
    const printed = calldata.json<{ from: string; data: string }>();
    assert.equal(printed.from, newOwner, "checked from the pending owner");
    assert.equal(printed.data, encodeFunctionData({ abi: clusterAbi, functionName: "acceptOwnership" }));

    const refused = await fx.cli(["ownership", "accept", "--yes", "--json"], as(OWNER_KEY));
    assert.equal(refused.code, 1);
    assert.equal(refused.json<{ error: { code: string } }>().error.code, "NotPendingOwner");

    const accepted = await fx.cli(["ownership", "accept", "--yes", "--json"], as(STRANGER_KEY));
    assert.equal(accepted.code, 0, accepted.stderr);
    assert.ok(
      accepted.json<{ events: { name: string }[] }>().events.some((e) => e.name === "OwnershipTransferred"),
    );
    assert.equal(await fx.owner.read.owner(), newOwner);

    const old = await fx.cli(["allow-any-device", "on", "--yes", "--json"], as(OWNER_KEY));
    assert.equal(old.json<{ error: { code: string } }>().error.code, "NotOwner");
    assert.equal((await fx.cli(["allow-any-device", "on", "--yes"], as(STRANGER_KEY))).code, 0);
  });
});
