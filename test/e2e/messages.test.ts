// End to end on the real devnet (hardhat node, sidecar processes, wireguard-go in namespaces): a sealed
// message goes from node1's application API to node2's through the chain, and survives node2's sidecar
// restarting: the missed messages are replayed from its cursor, once each. Needs root and
// /dev/net/tun, like the devnet; run it under the machine-wide devnet lock.
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { REPO_ROOT, spawnDetached, stopProcess } from "@attestmesh/devnet/orchestration/processes.ts";
import { type DevnetState, readState, writeState } from "@attestmesh/devnet/orchestration/state.ts";
import { type NdjsonStream, openStream, postJson } from "@attestmesh/sidecar/testing/api-client.ts";
import { cli, devnetSkip, eventually } from "./helpers/devnet.ts";

const skip = devnetSkip;

interface NodeEntry {
  name: string;
  memberId: string | null;
  phase: string;
  account: string | null;
  sponsoredWei: string;
}

/** What the operator's paymaster has paid for `name`'s operations so far (devnet is sponsored). */
async function sponsoredWei(name: string): Promise<bigint> {
  const status = JSON.parse(await cli(["devnet", "status", "--json"])) as { nodes: NodeEntry[] };
  return BigInt(status.nodes.find((n) => n.name === name)!.sponsoredWei);
}

const messagesIn = (stream: NdjsonStream) => stream.lines.filter((l) => l.type === "message");

describe("sealed messages on the devnet", { skip, timeout: 600_000 }, () => {
  let nodes: NodeEntry[] = [];
  let state: DevnetState;
  const socketOf = (name: string) => join(state.nodes.find((n) => n.name === name)!.logDir, "api.sock");

  before(async () => {
    const status = JSON.parse(await cli(["devnet", "up", "--detach", "--json", "--nodes", "2"])) as {
      nodes: NodeEntry[];
    };
    nodes = status.nodes;
    state = (await readState())!;
  });

  after(async () => {
    await cli(["devnet", "down"]).catch(() => {});
  });

  it("round-trips a message between two nodes' application APIs, attributed to the sender", async () => {
    const [one, two] = nodes as [NodeEntry, NodeEntry];
    const stream = await openStream(socketOf(two.name), "/v1/messages/stream?since=latest");
    const text = `devnet hello ${Date.now()}`;
    const paidBefore = await sponsoredWei(one.name);
    const res = await postJson(socketOf(one.name), "/v1/messages", { to: two.memberId, text });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    // The send was a sponsored UserOperation: the operator paid more for node1, which holds no gas key.
    assert.ok((await sponsoredWei(one.name)) > paidBefore, "the paymaster paid for the send");
    const [got] = await eventually("node2 to receive it", () => {
      const m = messagesIn(stream);
      return m.length > 0 ? m : undefined;
    });
    assert.equal(got!.text, text);
    assert.equal((got!.from as { memberId: string }).memberId, one.memberId);
    // The application acknowledges it: the inbox prunes it, and a restart does not deliver it again.
    const ack = await postJson(socketOf(two.name), "/v1/messages/ack", { seq: got!.seq });
    assert.equal(ack.status, 200, JSON.stringify(ack.body));
    stream.close();
  });

  it("replays, once each, what the recipient missed while its sidecar was down (and nothing acknowledged)", async () => {
    const [one, two] = nodes as [NodeEntry, NodeEntry];
    const entry = state.nodes.find((n) => n.name === two.name)!;
    // The restarted sidecar gets exactly the environment the devnet gave it.
    const environ = await readFile(`/proc/${entry.sidecarPid}/environ`, "utf8");
    const env = Object.fromEntries(
      environ
        .split("\0")
        .filter((kv) => kv.includes("="))
        .map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]),
    );
    await stopProcess(entry.sidecarPid);
    const missed = [`missed one ${Date.now()}`, `missed two ${Date.now()}`];
    for (const text of missed) {
      const res = await postJson(socketOf(one.name), "/v1/messages", { to: two.memberId, text });
      assert.equal(res.status, 200, JSON.stringify(res.body));
    }
    const pid = spawnDetached(process.execPath, [join(REPO_ROOT, "sidecar/src/bin.mjs")], {
      logFile: join(entry.logDir, "sidecar.log"),
      env,
    });
    state = {
      ...state,
      nodes: state.nodes.map((n) => (n.name === two.name ? { ...n, sidecarPid: pid } : n)),
    };
    await writeState(state);
    const stream = await eventually("node2's API to come back", () =>
      openStream(socketOf(two.name), "/v1/messages/stream"),
    );
    await eventually("node2 to replay both", () => (messagesIn(stream).length >= 2 ? true : undefined));
    await sleep(2500);
    assert.deepEqual(
      messagesIn(stream).map((m) => m.text),
      missed,
    );
    stream.close();
  });
});
