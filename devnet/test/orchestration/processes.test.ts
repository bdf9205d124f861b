// Stopping devnet processes: a detached process that exited is stopped even while nobody has reaped it
// (the devnet's processes outlive the CLI that started them, and init may take seconds to reap them).
// Regression: `devnet down` waited the whole 5 s grace on every such zombie, one process after another.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { readFile } from "node:fs/promises";
import { describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { isAlive, stopProcess } from "../../src/orchestration/processes.ts";

/**
 * A zombie: bash starts a child in the background, prints its pid, then becomes a `sleep` that never reaps
 * it. The child exits only once its parent is that `sleep`: a child that exited first was sometimes reaped
 * by bash before the exec, and never became a zombie (1 run in 3 of the unit files two at a time failed).
 * Returns the zombie's pid and a function that ends its parent (which lets it be reaped).
 */
async function zombie(): Promise<{ pid: number; end: () => void }> {
  const child = 'c=; until [ "$c" = sleep ]; do read -r c < /proc/$$/comm; done';
  const parent = spawn("bash", ["-c", `(${child}) & echo $!; exec sleep 30`], {
    stdio: ["ignore", "pipe", "ignore"],
  });
  const [line] = (await once(parent.stdout, "data")) as [Buffer];
  const pid = Number(line.toString().trim());
  const end = () => parent.kill("SIGKILL");
  // Waited for, not counted: a loaded machine may take a while to run the exec and the child's exit.
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (/\) Z/.test(await readStat(pid))) return { pid, end };
    await sleep(10);
  }
  end();
  throw new Error(`process ${pid} did not become a zombie`);
}

async function readStat(pid: number): Promise<string> {
  return readFile(`/proc/${pid}/stat`, "utf8").catch(() => "");
}

describe("devnet processes", { skip: process.platform !== "linux" && "reads /proc (Linux only)" }, () => {
  it("counts an exited, unreaped process as not alive", async () => {
    const { pid, end } = await zombie();
    try {
      assert.equal(isAlive(pid), false);
    } finally {
      end();
    }
  });

  it("counts a running process as alive", async () => {
    const child = spawn("sleep", ["30"], { stdio: "ignore" });
    try {
      assert.equal(isAlive(child.pid!), true);
    } finally {
      child.kill("SIGKILL");
    }
  });

  it("stops a process that exits on SIGTERM without waiting out the grace period for its reaping", async () => {
    // The running child of a parent that never reaps it: once it exits on SIGTERM it stays a zombie.
    const parent = spawn("bash", ["-c", "sleep 30 & echo $!; exec sleep 30"], {
      stdio: ["ignore", "pipe", "ignore"],
    });
    try {
      const [line] = (await once(parent.stdout, "data")) as [Buffer];
      const pid = Number(line.toString().trim());
      assert.equal(isAlive(pid), true);
      const started = Date.now();
      // A long grace and a bound at half of it: waiting out the grace fails, a loaded machine does not.
      await stopProcess(pid, 10_000);
      const took = Date.now() - started;
      assert.ok(took < 5_000, `stopProcess took ${took} ms`);
      assert.match(await readStat(pid), /\) Z/);
    } finally {
      parent.kill("SIGKILL");
    }
  });
});
