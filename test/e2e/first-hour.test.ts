// The README's "First hour" works verbatim: every command between its `first-hour:begin` and
// `first-hour:end` markers is read from README.md and run with bash at the repository root, exactly as
// written, against a 3-node devnet, and what it prints is checked. Editing a command in the README without
// this file fails the test (the commands must equal STEPS'), and a product change that breaks a command
// fails it too. Also checks how `--network devnet` finds the devnet's cluster: said on stderr so --json
// stays clean, and an explicit --cluster or ATTESTMESH_CLUSTER wins. Needs root and /dev/net/tun, like the
// devnet; run it under the machine-wide devnet lock.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { cli, devnetSkip, eventually, execFileAsync, ROOT } from "./helpers/devnet.ts";

const skip = devnetSkip;

/** The commands of the README's first-hour section: each line of its `sh` blocks, trailing comment dropped. */
function firstHourCommands(markdown: string): string[] {
  const begin = markdown.indexOf("<!-- first-hour:begin -->");
  const end = markdown.indexOf("<!-- first-hour:end -->");
  assert.ok(begin >= 0 && end > begin, "README.md has the first-hour markers, begin before end");
  const section = markdown.slice(begin, end);
  const commands: string[] = [];
  for (const block of section.matchAll(/^```sh\n([\s\S]*?)^```$/gm)) {
    for (const line of block[1]!.split("\n")) {
      const command = line.replace(/\s{2,}#.*$/, "").trim();
      if (command !== "" && !command.startsWith("#")) commands.push(command);
    }
  }
  return commands;
}

interface Output {
  readonly stdout: string;
  readonly stderr: string;
}

interface DevnetInfo {
  readonly diamond: string;
  readonly nodes: ReadonlyArray<{ readonly name: string; readonly appId: string }>;
}

interface Step {
  readonly command: string;
  /** Runs in the background, as in a second shell, until the test ends; `watched` reads what it printed. */
  readonly watch?: true;
  /** Follows a change of the devnet: retried until the check holds, as a person looks again. */
  readonly settles?: true;
  readonly check: (output: Output, devnet: DevnetInfo, watched: () => string) => void;
}

/** Rows of a table printed with a dashed rule under its header (`devnet status`), keyed by column. */
function statusRows(text: string): Record<string, string>[] {
  const lines = text.split("\n");
  const rule = lines.findIndex((line) => /^-+( +-+)+ *$/.test(line));
  assert.ok(rule > 0, `a status table:\n${text}`);
  const spans = [...lines[rule]!.matchAll(/-+/g)].map((m) => [m.index, m.index + m[0].length] as const);
  const names = spans.map(([from, to]) => lines[rule - 1]!.slice(from, to).trim());
  return lines
    .slice(rule + 1)
    .filter((line) => line.trim() !== "")
    .map((line) =>
      Object.fromEntries(
        spans.map(([from, to], i) => [
          names[i]!,
          line.slice(from, i === spans.length - 1 ? undefined : to).trim(),
        ]),
      ),
    );
}

const node = (rows: Record<string, string>[], name: string) => {
  const row = rows.find((r) => r.node === name);
  assert.ok(row, `a row for ${name}`);
  return row;
};

const OWNER_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

const STEPS: readonly Step[] = [
  {
    command: "npx attestmesh devnet status",
    check({ stdout }) {
      const rows = statusRows(stdout);
      assert.equal(rows.length, 3);
      for (const i of [1, 2, 3]) {
        const row = node(rows, `node${i}`);
        assert.equal(row.phase, "healthy");
        // What the README says: node I is member I, with mesh IP 10.77.0.I.
        assert.equal(row.member, String(i));
        assert.equal(row["mesh ip"], `10.77.0.${i}`);
        assert.equal(row["peers handshaken"], "2/2");
        assert.equal(row["csk epoch"], "0");
      }
    },
  },
  {
    command: "npx attestmesh members --network devnet",
    check({ stdout, stderr }, devnet) {
      assert.match(
        stderr,
        /^using the devnet's cluster (0x[0-9a-fA-F]{40}) \(from .*\/\.devnet\/state\.json\)$/m,
      );
      assert.equal(
        /cluster (0x[0-9a-fA-F]{40})/.exec(stderr)![1]!.toLowerCase(),
        devnet.diamond.toLowerCase(),
      );
      for (const [i, entry] of devnet.nodes.entries()) {
        const row = new RegExp(`│ ${i + 1} +│ ${entry.appId} │ 10\\.77\\.0\\.${i + 1} +│ active +│`);
        assert.match(stdout, row, `member ${i + 1} is ${entry.name}, active`);
      }
    },
  },
  {
    command: "ip netns exec amdev-node1 ping -c 3 10.77.0.2",
    check({ stdout }) {
      assert.match(stdout, /3 packets transmitted, 3 received, 0% packet loss/);
    },
  },
  {
    command: "curl -s --unix-socket .devnet/node1/api.sock http://sidecar/v1/peers",
    check({ stdout }) {
      const { peers } = JSON.parse(stdout) as {
        peers: { memberId: string; meshIp: string; live: boolean }[];
      };
      assert.deepEqual(
        peers.map((p) => [p.memberId, p.meshIp, p.live]),
        [
          ["2", "10.77.0.2", true],
          ["3", "10.77.0.3", true],
        ],
      );
    },
  },
  {
    command: "curl -sN --unix-socket .devnet/node2/api.sock 'http://sidecar/v1/messages/stream?since=latest'",
    watch: true,
    check(_output, _devnet, watched) {
      assert.match(watched(), /^\{"type":"hello","stream":"messages"/);
    },
  },
  {
    command: `curl -s --unix-socket .devnet/node1/api.sock -H 'content-type: application/json' -d '{"to":"2","text":"hello from node 1"}' http://sidecar/v1/messages`,
    check({ stdout }, devnet, watched) {
      const sent = JSON.parse(stdout) as { from: string; to: string; txHash: string };
      assert.equal(sent.from, "1");
      assert.equal(sent.to, "2");
      assert.match(sent.txHash, /^0x[0-9a-f]{64}$/);
      // It arrives in the inbox watched in the other shell, attributed to node 1.
      const line = watched()
        .split("\n")
        .filter((l) => l.startsWith("{"))
        .map(
          (l) => JSON.parse(l) as { type: string; text?: string; from?: { memberId: string; appId: string } },
        )
        .find((m) => m.type === "message");
      assert.ok(line, `a message line in node 2's inbox:\n${watched()}`);
      assert.equal(line.text, "hello from node 1");
      assert.deepEqual(line.from, { memberId: "1", appId: devnet.nodes[0]!.appId });
    },
  },
  {
    command: `ATTESTMESH_OWNER_KEY=${OWNER_KEY} npx attestmesh evict 3 --network devnet --yes`,
    check({ stdout, stderr }, devnet) {
      assert.match(stderr, /using the devnet's cluster/);
      const appId = devnet.nodes[2]!.appId;
      assert.match(stdout, new RegExp(`AppIdRemoved\\(appId: ${appId}\\)`));
      assert.match(stdout, new RegExp(`MemberEvicted\\(memberId: 3, appId: ${appId}, reason: 1\\)`));
      assert.match(stdout, /CskEpochOpened\(epoch: 1, causeMemberId: 3\)/);
    },
  },
  {
    command: "npx attestmesh devnet status",
    settles: true,
    check({ stdout }) {
      const rows = statusRows(stdout);
      for (const name of ["node1", "node2"]) {
        const row = node(rows, name);
        assert.equal(row.phase, "healthy", `${name} is healthy`);
        assert.equal(row["peers handshaken"], "1/1", `${name} has one peer left`);
        assert.equal(row["csk epoch"], "1", `${name} holds the new CSK epoch`);
      }
      const evicted = node(rows, "node3");
      assert.notEqual(evicted.phase, "healthy");
      assert.equal(evicted.member, "-", "node 3 has no member id any more");
    },
  },
  {
    command: "ip netns exec amdev-node1 wg show attestmesh1 allowed-ips",
    settles: true,
    check({ stdout }) {
      const peers = stdout.trim().split("\n");
      assert.equal(peers.length, 1, `one WireGuard peer left:\n${stdout}`);
      assert.match(peers[0]!, /\t10\.77\.0\.2\/32$/);
    },
  },
  {
    command: "npx attestmesh policy history --network devnet",
    check({ stdout }, devnet) {
      const events = stdout.split("\n").filter((line) => line.startsWith("block "));
      assert.match(events[0]!, /KmsRootAdded/);
      assert.match(events.at(-1)!, new RegExp(`AppIdRemoved\\(appId: ${devnet.nodes[2]!.appId}\\)`));
      assert.match(stdout, /rebuilt from these events alone/);
    },
  },
];

/** The environment of a newcomer's shell: none of the variables that would name the chain or cluster. */
function newcomerEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const name of ["ATTESTMESH_CLUSTER", "ATTESTMESH_RPC_URL", "ATTESTMESH_OWNER_KEY"]) delete env[name];
  return env;
}

async function bash(command: string, env: NodeJS.ProcessEnv = newcomerEnv()): Promise<Output> {
  try {
    const { stdout, stderr } = await execFileAsync("bash", ["-o", "pipefail", "-c", command], {
      cwd: ROOT,
      env,
      timeout: 180_000,
      maxBuffer: 16 * 1024 * 1024,
    });
    return { stdout, stderr };
  } catch (error) {
    const { stdout, stderr } = error as { stdout?: string; stderr?: string };
    throw new Error(`\`${command}\` failed: ${(error as Error).message}\n${stdout ?? ""}${stderr ?? ""}`);
  }
}

describe("the README's first hour, verbatim, on the devnet", { skip, timeout: 900_000 }, () => {
  let devnet: DevnetInfo;
  const watchers: ChildProcess[] = [];

  before(async () => {
    const status = JSON.parse(
      await cli(["devnet", "up", "--detach", "--json", "--nodes", "3"]),
    ) as DevnetInfo;
    devnet = {
      diamond: status.diamond,
      nodes: [...status.nodes].sort((a, b) => a.name.localeCompare(b.name)),
    };
  });

  after(async () => {
    for (const watcher of watchers) watcher.kill();
    await cli(["devnet", "down"]).catch(() => {});
  });

  it("runs every command of the section and each prints what the README promises", async () => {
    const commands = firstHourCommands(readFileSync(join(ROOT, "README.md"), "utf8"));
    assert.deepEqual(
      commands,
      STEPS.map((step) => step.command),
      "README.md's first-hour commands are STEPS'",
    );
    let watched = "";
    for (const step of STEPS) {
      if (step.watch) {
        const child = spawn("bash", ["-c", step.command], { cwd: ROOT, env: newcomerEnv() });
        watchers.push(child);
        child.stdout.on("data", (chunk: Buffer) => {
          watched += chunk.toString();
        });
        await eventually(`\`${step.command}\` to print`, () => {
          step.check({ stdout: "", stderr: "" }, devnet, () => watched);
          return true;
        });
        continue;
      }
      if (step.settles) {
        await eventually(
          `\`${step.command}\` to show the change`,
          async () => {
            step.check(await bash(step.command), devnet, () => watched);
            return true;
          },
          120_000,
          2_000,
        );
        continue;
      }
      const output = await bash(step.command);
      // What arrives elsewhere (a message in the watched inbox) may take a moment.
      await eventually(`\`${step.command}\` to check out`, () => {
        step.check(output, devnet, () => watched);
        return true;
      });
    }
  });

  it("--network devnet --json: one JSON document on stdout, which cluster on stderr", async () => {
    const { stdout, stderr } = await bash("npx attestmesh members --network devnet --json");
    const parsed = JSON.parse(stdout) as { cluster: string; members: unknown[] };
    assert.equal(parsed.cluster.toLowerCase(), devnet.diamond.toLowerCase());
    assert.equal(parsed.members.length, 3);
    assert.match(stderr, /using the devnet's cluster/);
  });

  it("an explicit ATTESTMESH_CLUSTER or --cluster wins over the devnet's state file", async () => {
    const fromEnv = await bash("npx attestmesh policy show --network devnet --json", {
      ...newcomerEnv(),
      ATTESTMESH_CLUSTER: devnet.diamond,
    });
    assert.equal(
      (JSON.parse(fromEnv.stdout) as { cluster: string }).cluster.toLowerCase(),
      devnet.diamond.toLowerCase(),
    );
    assert.doesNotMatch(fromEnv.stderr, /using the devnet's cluster/);
    // An address without code is refused, not silently replaced by the devnet's cluster.
    const empty = "0x000000000000000000000000000000000000dEaD";
    const run = await execFileAsync(
      "bash",
      ["-c", `npx attestmesh members --network devnet --cluster ${empty} --json; echo "exit $?"`],
      { cwd: ROOT, env: newcomerEnv() },
    );
    assert.match(run.stdout, /"code": "ClusterNotFound"/);
    assert.match(run.stdout, /exit 1$/m);
  });
});
