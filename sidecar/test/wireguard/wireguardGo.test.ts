// wireguard-go's supervision with stand-in daemons (shell scripts and the processes they start; no root,
// no TUN): a crash loop's exit warnings thin out, and stopping a wrapper that forked stops what it
// started too, without waiting on the pipes its child holds.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { createRepeatLog } from "../../src/logRepeats.ts";
import { type Daemon, startWireguardGo, stopWireguardGo } from "../../src/wireguard/wireguardGo.ts";
import { captureLogger, scriptFolder } from "../helpers.ts";

const { dir, script, remove } = scriptFolder("am-wggo-");
after(remove);

/** Whether `pid` runs: a zombie (waiting for whoever took it over to reap it) does not. */
function runs(pid: number): boolean {
  const stat = readFileSync(`/proc/${pid}/stat`, { encoding: "utf8", flag: "a+" });
  return stat !== "" && !/^[ZX]$/.test(stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3));
}

/** The pid a stand-in wrote to `file` once it has (within 2 s). */
async function pidIn(file: string): Promise<number> {
  for (let i = 0; i < 100; i++) {
    const pid = Number(readFileSync(file, { encoding: "utf8", flag: "a+" }).trim());
    if (pid > 0) return pid;
    await sleep(20);
  }
  assert.fail(`no pid in ${file}`);
}

/** Starts `command` as wireguard-go for `name`; the stand-in "creates" its interface at once. */
function start(
  command: string,
  logger: ReturnType<typeof captureLogger>["logger"],
  extra = {},
): Promise<Daemon> {
  return startWireguardGo({
    name: "amtest0",
    command: [command],
    netns: undefined,
    startTimeoutMs: 2_000,
    logger,
    answers: async () => true,
    onUnexpectedExit: () => {},
    ...extra,
  });
}

describe("wireguard-go supervision", () => {
  // Regression: each death of a crash-looping wireguard-go logged its own warning, one per restart.
  test("a run of deaths logs the 1st, 2nd, 4th and 8th exit, with the count and how many went unlogged", async () => {
    const dies = script("dies", ["echo 'ERROR: simulated crash' >&2", "sleep 0.1", "exit 1"]);
    const { logger, lines } = captureLogger("info");
    const exits = createRepeatLog();
    let lost = 0;
    for (let i = 0; i < 9; i++) {
      const daemon = await start(dies, logger, { exits, onUnexpectedExit: () => lost++ });
      await daemon.exited;
    }
    assert.equal(lost, 9, "every death is reported to the backend");
    const warned = lines().filter((l) => /^wireguard-go exited unexpectedly/.test(l.msg));
    // Each as failures/unlogged.
    assert.deepEqual(
      warned.map((l) => `${l.failures}/${l.unlogged ?? 0}`),
      ["1/0", "2/0", "4/1", "8/3"],
    );
    assert.match(warned[0]!.msg, /^wireguard-go exited unexpectedly$/);
    assert.match(warned[1]!.msg, /logged at the 2nd, 4th, 8th/);
    // The daemon's own output still comes with what is logged.
    assert.deepEqual(warned[3]!.output, ["ERROR: simulated crash"]);
  });

  // Regression: stopping waited for wireguard-go's stdout and stderr to close, so a wrapper whose
  // background child kept them (here a `sleep 30`) held up the interface's teardown, and the sidecar's
  // shutdown, until that child ended. Then the child outlived the stop: with the real wireguard-go as a
  // wrapper's child, its interface stayed.
  test("stopping a wrapper that forked stops its child too, within 2 s, although it holds the output pipes", async () => {
    const pidFile = join(dir, "child.pid");
    const forks = script("forks", [`sleep 30 & echo $! > ${pidFile}`, "exec sleep 30"]);
    const { logger } = captureLogger("info");
    const daemon = await start(forks, logger);
    const child = await pidIn(pidFile);
    try {
      assert.ok(runs(child));
      const stopAt = Date.now();
      await stopWireguardGo(daemon, logger);
      const took = Date.now() - stopAt;
      assert.ok(took < 2_000, `stop took ${took} ms`);
      assert.equal(daemon.exit?.signal, "SIGTERM");
      assert.equal(runs(child), false, "the wrapper's child still runs");
    } finally {
      if (runs(child)) process.kill(child, "SIGKILL");
    }
  });

  // A wrapper (or a wireguard-go without WG_PROCESS_FOREGROUND) that starts the daemon in a session of
  // its own and exits: its parent gone, no process group, only the environment it inherited tells.
  test("a start that fails because the wrapper exited leaves none of what it started running", async () => {
    const pidFile = join(dir, "away.pid");
    const away = script("away", [`setsid sleep 30 & echo $! > ${pidFile}`, "sleep 0.1", "exit 1"]);
    const { logger } = captureLogger("info");
    let child: number | undefined;
    const started = start(away, logger, {
      answers: async () => {
        child ??= Number(readFileSync(pidFile, { encoding: "utf8", flag: "a+" }).trim()) || undefined;
        return false;
      },
    });
    try {
      await assert.rejects(started, /exited during start-up/);
      child ??= await pidIn(pidFile);
      assert.equal(runs(child), false, "what the wrapper started still runs");
    } finally {
      if (child !== undefined && runs(child)) process.kill(child, "SIGKILL");
    }
  });

  test("what ignores SIGTERM is killed after 5 s, the wrapper's children too", async () => {
    const pidFile = join(dir, "stubborn.pid");
    const stubborn = script("stubborn", [
      `sh -c 'trap "" TERM; echo $$ > ${pidFile}; while :; do sleep 1; done' &`,
      "exec sleep 30",
    ]);
    const { logger, lines } = captureLogger("info");
    const daemon = await start(stubborn, logger);
    const child = await pidIn(pidFile);
    try {
      await stopWireguardGo(daemon, logger);
      assert.equal(runs(child), false, "the child that ignored SIGTERM still runs");
      assert.ok(lines().some((l) => /ignored SIGTERM, killing them/.test(l.msg)));
    } finally {
      if (runs(child)) process.kill(child, "SIGKILL");
    }
  });
});
