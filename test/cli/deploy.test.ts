// `attestmesh deploy` against an empty in-process Hardhat chain: a dry run sends nothing and writes no
// journal; an interrupted deployment resumes from its journal without redeploying anything; a journal
// for other parameters is refused; the deployed cluster answers the other commands.
import assert from "node:assert/strict";
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { createKmsRoot } from "@attestmesh/devnet/dstack-sim/simulator.ts";
import { DEFAULT_ARTIFACTS_DIR } from "@attestmesh/scripts/deploy/artifacts.ts";
import { network } from "hardhat";
import { getAddress } from "viem";
import { OWNER_KEY, runAttestmesh } from "../helpers/cli.ts";
import { randomAppId } from "../helpers/cluster.ts";
import { serveRpc } from "../helpers/rpcServer.ts";

describe("attestmesh deploy", async () => {
  const connection = await network.create();
  const client = await connection.viem.getPublicClient();
  const rpc = await serveRpc(connection.provider);
  after(() => rpc.close());
  const dir = mkdtempSync(join(tmpdir(), "attestmesh-deploy-"));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const journal = join(dir, "journal.json");
  const kmsRoot = createKmsRoot().address;
  const safe = randomAppId(); // stands in for a multisig owner
  const deploy = (extra: string[] = [], env = { ATTESTMESH_OWNER_KEY: OWNER_KEY }) =>
    runAttestmesh(
      [
        "deploy",
        "--rpc",
        rpc.url,
        "--mesh-cidr",
        "10.9.0.0/24",
        "--kms-root",
        kmsRoot,
        "--journal",
        journal,
        "--json",
        ...extra,
      ],
      env,
    );

  it("--dry-run lists every contract, sends nothing, writes no journal", async () => {
    const block = await client.getBlockNumber();
    const run = await deploy(["--dry-run"]);
    assert.equal(run.code, 0, run.stderr);
    const out = run.json<{ mode: string; toDeploy: string[]; resuming: boolean }>();
    assert.equal(out.mode, "dry-run");
    assert.equal(out.toDeploy.length, 13);
    assert.equal(out.resuming, false);
    assert.equal(await client.getBlockNumber(), block);
    assert.ok(!existsSync(journal));
  });

  it("without --yes and without a terminal it refuses", async () => {
    const run = await runAttestmesh(["deploy", "--rpc", rpc.url, "--journal", journal], {
      ATTESTMESH_OWNER_KEY: OWNER_KEY,
    });
    assert.equal(run.code, 1);
    assert.match(run.stderr, /pass --yes/);
  });

  let diamond = "";
  it("an interrupted deployment resumes from its journal", async () => {
    // Interrupt it for real: the Diamond's artifact is missing, so it stops after the twelve others.
    const partial = join(dir, "artifacts");
    cpSync(DEFAULT_ARTIFACTS_DIR, partial, { recursive: true });
    rmSync(join(partial, "contracts/src/Diamond.sol/Diamond.json"));
    const failed = await deploy(["--yes", "--owner", safe, "--artifacts", partial]);
    assert.equal(failed.code, 1);
    assert.equal(failed.json<{ error: { code: string } }>().error.code, "ArtifactMissing");
    const recorded = JSON.parse(readFileSync(journal, "utf8")) as {
      contracts: Record<string, { address?: string }>;
    };
    assert.equal(Object.values(recorded.contracts).filter((c) => c.address).length, 12);

    const block = await client.getBlockNumber();
    const resumed = await deploy(["--yes", "--owner", safe]);
    assert.equal(resumed.code, 0, resumed.stderr);
    const out = resumed.json<{
      diamond: string;
      deployed: string[];
      reused: string[];
      owner: string;
      resuming: boolean;
    }>();
    assert.deepEqual(out.deployed, ["Diamond"]);
    assert.equal(out.reused.length, 12);
    assert.equal(out.resuming, true);
    assert.equal(await client.getBlockNumber(), block + 1n, "one transaction: the diamond");
    diamond = out.diamond;
    assert.equal(out.owner, getAddress(safe));
  });

  it("a re-run after the diamond landed but before its address was journaled deploys nothing", async () => {
    const file = JSON.parse(readFileSync(journal, "utf8")) as {
      contracts: Record<string, Record<string, string>>;
    };
    const entry = file.contracts.Diamond!;
    file.contracts.Diamond = { transactionHash: entry.transactionHash! };
    writeFileSync(journal, JSON.stringify(file));
    const block = await client.getBlockNumber();
    const run = await deploy(["--yes", "--owner", safe]);
    assert.equal(run.code, 0, run.stderr);
    const out = run.json<{ diamond: string; deployed: string[] }>();
    assert.deepEqual(out.deployed, []);
    assert.equal(out.diamond, diamond);
    assert.equal(await client.getBlockNumber(), block);
  });

  it("a journal for other parameters is refused", async () => {
    const run = await runAttestmesh(
      ["deploy", "--rpc", rpc.url, "--mesh-cidr", "10.8.0.0/24", "--journal", journal, "--yes", "--json"],
      { ATTESTMESH_OWNER_KEY: OWNER_KEY },
    );
    assert.equal(run.code, 1);
    assert.equal(run.json<{ error: { code: string } }>().error.code, "JournalMismatch");
  });

  it("the deployed cluster has the parameters given", async () => {
    const show = await runAttestmesh(
      ["policy", "show", "--rpc", rpc.url, "--cluster", diamond, "--json"],
      {},
    );
    assert.equal(show.code, 0, show.stderr);
    const view = show.json<{ owner: string; policy: { kmsRoots: string[] } }>();
    assert.equal(view.owner, getAddress(safe));
    assert.deepEqual(view.policy.kmsRoots, [kmsRoot]);
  });

  it("bad parameters are refused before connecting", async () => {
    for (const [args, message] of [
      [["--mesh-cidr", "10.0.0.0/8"], /prefix|\/16|16/],
      [["--kms-root", "0x1234"], /KMS root/],
      [["--owner", "0xnothex"], /--owner/],
    ] as const) {
      const run = await runAttestmesh(["deploy", "--rpc", "http://127.0.0.1:9", ...args, "--yes"], {
        ATTESTMESH_OWNER_KEY: OWNER_KEY,
      });
      assert.equal(run.code, 1);
      assert.match(run.stderr, message);
      assert.doesNotMatch(run.stderr, /cannot reach/);
    }
  });
});
