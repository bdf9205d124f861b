// wireguard-go's supervision with stand-in daemons (shell scripts; no root, no TUN): a crash loop's exit
// warnings thin out, and stopping a wrapper that forked does not wait on the pipes its child holds.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { createRepeatLog } from "../../src/logRepeats.ts";
import { type Daemon, startWireguardGo, stopWireguardGo } from "../../src/wireguard/wireguardGo.ts";
import { captureLogger } from "../helpers.ts";

const dir = mkdtempSync(join(tmpdir(), "am-wggo-"));
after(() => rmSync(dir, { recursive: true, force: true }));

/** An executable shell script in the test's folder. */
function script(name: string, lines: readonly string[]): string {
  const path = join(dir, name);
  writeFileSync(path, ["#!/bin/sh", ...lines, ""].join("\n"), { mode: 0o755 });
  return path;
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
    isWireGuard: async () => true,
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
  // shutdown, until that child ended.
  test("stopping a wrapper that forked returns within 2 s although its child holds the output pipes", async () => {
    const pidFile = join(dir, "child.pid");
    const forks = script("forks", [`sleep 30 & echo $! > ${pidFile}`, "exec sleep 30"]);
    const { logger } = captureLogger("info");
    const daemon = await start(forks, logger);
    let child: number | undefined;
    for (let i = 0; i < 100 && child === undefined; i++) {
      child = Number(readFileSync(pidFile, { encoding: "utf8", flag: "a+" }).trim()) || undefined;
      if (child === undefined) await sleep(20);
    }
    assert.ok(child !== undefined, "the wrapper forked");
    try {
      const stopAt = Date.now();
      await stopWireguardGo(daemon, logger);
      const took = Date.now() - stopAt;
      assert.ok(took < 2_000, `stop took ${took} ms`);
      assert.equal(daemon.exit?.signal, "SIGTERM");
      // The forked child still runs (it is no process of ours to stop), holding the pipes.
      assert.doesNotThrow(() => process.kill(child, 0));
    } finally {
      process.kill(child, "SIGKILL");
    }
  });
});
