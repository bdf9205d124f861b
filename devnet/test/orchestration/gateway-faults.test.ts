// The devnet gateway process's `--faults` file (the soak's gateway-delay fault): with
// {"connectDelayMs": n} every new connection waits n ms before it is routed; the file is re-read when it
// changes, and without a delay connections are routed at once. Runs gateway-main.ts as the devnet does,
// on loopback.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { connect as tlsConnect } from "node:tls";
import { gatewayServerName } from "@attestmesh/shared/gateway/serverName.ts";

const DOMAIN = "gateway.test.attestmesh";
const APP_ID = `0x${"ab".repeat(20)}`;
const MAIN = new URL("../../src/orchestration/gateway-main.ts", import.meta.url).pathname;

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe("devnet gateway --faults", () => {
  let dir: string;
  let gateway: ChildProcess;
  let target: Server;
  let targetPort: number;
  let gatewayPort: number;
  let faults: string;
  const arrivals: number[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "gateway-faults-"));
    target = createServer((socket) => {
      socket.once("data", () => arrivals.push(Date.now()));
      socket.on("error", () => {});
    });
    await new Promise<void>((resolve) => target.listen(0, "127.0.0.1", resolve));
    targetPort = (target.address() as { port: number }).port;
    const routes = join(dir, "routes.json");
    faults = join(dir, "faults.json");
    await writeFile(routes, JSON.stringify({ [APP_ID]: "127.0.0.1" }));
    gatewayPort = await freePort();
    gateway = spawn(
      process.execPath,
      [
        MAIN,
        "--listen",
        `127.0.0.1:${gatewayPort}`,
        "--domain",
        DOMAIN,
        "--routes",
        routes,
        "--faults",
        faults,
      ],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    await new Promise<void>((resolve) => gateway.stdout!.once("data", () => resolve()));
  });

  after(async () => {
    gateway.kill("SIGKILL");
    target.close();
    await rm(dir, { recursive: true, force: true });
  });

  /** Ms from opening a TLS connection through the gateway until the node's port receives its ClientHello. */
  async function routedAfterMs(): Promise<number> {
    const before = arrivals.length;
    const started = Date.now();
    const socket = tlsConnect({
      host: "127.0.0.1",
      port: gatewayPort,
      servername: gatewayServerName(APP_ID, targetPort, DOMAIN),
      rejectUnauthorized: false,
    });
    socket.on("error", () => {});
    while (arrivals.length === before && Date.now() - started < 10_000) await sleep(10);
    socket.destroy();
    assert.ok(arrivals.length > before, "the connection was routed");
    return arrivals.at(-1)! - started;
  }

  // "At once" is anything well short of the delay a fault adds: the bound leaves a loaded machine room
  // for a TLS connection through a child process, and the delay is long enough to stay apart from it.
  it("routes at once without a faults file", async () => {
    assert.ok((await routedAfterMs()) < 1_500);
  });

  it("delays each new connection by connectDelayMs, and stops when the delay is cleared", async () => {
    await writeFile(faults, JSON.stringify({ connectDelayMs: 2_500 }));
    assert.ok((await routedAfterMs()) >= 2_500);
    await sleep(20); // a new mtime
    await writeFile(faults, JSON.stringify({ connectDelayMs: 0 }));
    assert.ok((await routedAfterMs()) < 1_500);
  });
});
