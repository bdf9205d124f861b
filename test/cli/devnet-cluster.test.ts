// `--network devnet` without --cluster finds the running devnet's cluster in the state file `npm run devnet`
// writes (owner/context.ts); a state file left behind by a restarted or stopped chain is refused with a
// clear error, never followed to a contract that is not there. The end-to-end path (the real devnet, the
// "using the devnet's cluster" line on stderr) is checked by test/e2e/first-hour.test.ts.
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { clusterContext, devnetCluster, readDevnetCluster } from "@attestmesh/scripts/owner/context.ts";
import type { CliIo } from "@attestmesh/scripts/owner/io.ts";
import { resolveNetwork } from "@attestmesh/scripts/owner/network.ts";
import { fileTempDir } from "@attestmesh/shared/testing/tempDir.ts";
import { getAddress } from "viem";
import { cliCluster } from "../helpers/cli.ts";
import { randomAppId } from "../helpers/cluster.ts";

const dir = fileTempDir("attestmesh-devnet-state-");
let files = 0;
function stateFile(content: unknown): string {
  const file = join(dir, `state-${++files}.json`);
  writeFileSync(file, typeof content === "string" ? content : JSON.stringify(content));
  return file;
}

function captureIo(env: Record<string, string> = {}): CliIo & { err: () => string } {
  let err = "";
  return {
    stdout: { write: () => true },
    stderr: {
      write: (text: string) => {
        err += text;
        return true;
      },
    },
    interactive: false,
    env,
    err: () => err,
  };
}

describe("the devnet's cluster from .devnet/state.json", async () => {
  const fx = await cliCluster();
  const net = await resolveNetwork({ rpc: fx.rpcUrl }, {});
  const diamond = getAddress(fx.deployed.diamond);

  it("is the diamond the state file names, checksummed, when that chain has code there", async () => {
    const file = stateFile({ rpcUrl: fx.rpcUrl, chainId: fx.chainId, diamond: diamond.toLowerCase() });
    assert.equal(await devnetCluster(net, file), diamond);
  });

  it("a missing state file says no devnet is running and what to do", async () => {
    await assert.rejects(readDevnetCluster(join(dir, "absent.json")), (error: Error & { code: string }) => {
      assert.equal(error.code, "DevnetNotRunning");
      assert.match(error.message, /no devnet is running here .*`npm run devnet`.*--cluster/);
      return true;
    });
  });

  it("a state file without JSON, an address or a chain id is refused", async () => {
    for (const content of [
      "{not json",
      { chainId: fx.chainId },
      { chainId: "31337", diamond },
      { diamond: "0x12" },
    ]) {
      await assert.rejects(devnetCluster(net, stateFile(content)), { code: "DevnetStateInvalid" });
    }
  });

  it("a stale state file (the chain restarted: no code at the address) is refused, naming the address", async () => {
    const gone = randomAppId();
    const file = stateFile({ chainId: fx.chainId, diamond: gone });
    await assert.rejects(devnetCluster(net, file), (error: Error & { code: string }) => {
      assert.equal(error.code, "DevnetStale");
      assert.match(error.message, new RegExp(`${gone}.*no contract there.*npm run devnet`));
      return true;
    });
  });

  it("a state file of another chain is refused", async () => {
    const file = stateFile({ chainId: 84532, diamond });
    await assert.rejects(devnetCluster(net, file), (error: Error & { code: string }) => {
      assert.equal(error.code, "DevnetStale");
      assert.match(error.message, /records chain 84532, but the devnet's RPC serves chain 31337/);
      return true;
    });
  });

  it("an explicit --cluster or ATTESTMESH_CLUSTER wins: the state file is not read, nothing is said", async () => {
    const broken = stateFile("{not json");
    const io = captureIo();
    const ctx = await clusterContext(io, { rpc: fx.rpcUrl, cluster: diamond }, broken);
    assert.equal(ctx.cluster, diamond);
    const fromEnv = captureIo({ ATTESTMESH_CLUSTER: diamond });
    assert.equal((await clusterContext(fromEnv, { rpc: fx.rpcUrl }, broken)).cluster, diamond);
    assert.equal(io.err() + fromEnv.err(), "");
  });

  it("without --cluster on another network, asks which cluster and mentions --network devnet", async () => {
    const file = stateFile({ chainId: fx.chainId, diamond });
    await assert.rejects(
      clusterContext(captureIo(), { rpc: fx.rpcUrl }, file),
      (error: Error & { code: string }) => {
        assert.equal(error.code, "BadArgument");
        assert.match(error.message, /which cluster\? pass --cluster .*--network devnet/);
        return true;
      },
    );
  });
});
