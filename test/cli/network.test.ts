// Named networks come from hardhat.config.ts, their URLs from Hardhat's configuration variables (the
// environment or its keystore), and the chain id the RPC serves is checked against the network's.
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { cliCluster } from "../helpers/cli.ts";

describe("--network", async () => {
  const fx = await cliCluster();
  const saved = process.env.BASE_SEPOLIA_RPC_URL;
  after(() => {
    if (saved === undefined) delete process.env.BASE_SEPOLIA_RPC_URL;
    else process.env.BASE_SEPOLIA_RPC_URL = saved;
  });
  const show = (network: string) =>
    fx.cli(["indexer", "show", "--network", network, "--cluster", fx.deployed.diamond, "--json"], {
      target: false,
    });

  it("an unknown network name lists the known ones", async () => {
    const run = await show("mainnet");
    assert.equal(run.code, 1);
    assert.match(
      run.json<{ error: { message: string } }>().error.message,
      /known: .*devnet.*baseSepolia.*base/,
    );
  });

  it("a network whose RPC URL is not configured says which variable to set", async () => {
    delete process.env.BASE_SEPOLIA_RPC_URL;
    const run = await show("baseSepolia");
    assert.equal(run.code, 1);
    const { error } = run.json<{ error: { code: string; message: string } }>();
    assert.equal(error.code, "RpcUrlMissing");
    assert.match(error.message, /BASE_SEPOLIA_RPC_URL/);
  });

  it("an RPC that serves another chain than the network's is refused before any call", async () => {
    // The local chain (31337) behind Base Sepolia's name (84532): a mis-pointed URL.
    process.env.BASE_SEPOLIA_RPC_URL = fx.rpcUrl;
    const run = await show("base-sepolia");
    assert.equal(run.code, 1);
    const { error } = run.json<{ error: { code: string; message: string } }>();
    assert.equal(error.code, "ChainIdMismatch");
    assert.match(error.message, /expects chain 84532 but its RPC serves chain 31337/);
  });

  it("--rpc and --network together are ambiguous", async () => {
    const run = await fx.cli(["indexer", "show", "--network", "devnet", "--json"]);
    assert.equal(run.code, 1);
    assert.match(run.stderr, /either --rpc or --network/);
  });

  it("ATTESTMESH_RPC_URL and ATTESTMESH_CLUSTER stand in for --rpc and --cluster", async () => {
    const run = await fx.cli(["indexer", "show", "--json"], {
      target: false,
      env: { ATTESTMESH_RPC_URL: fx.rpcUrl, ATTESTMESH_CLUSTER: fx.deployed.diamond },
    });
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.json<{ set: boolean }>().set, false);
  });
});
