// The live source and the health poller: members' own /healthz over real HTTP (an impostor answering on a
// member's port is not that member), a failed chain read keeps the last view beside the error, and
// subscribers hear only real changes.
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { fileHealthTargets, pollHealth } from "@attestmesh/scripts/dashboard/health.ts";
import { createLiveSource, type LiveState } from "@attestmesh/scripts/dashboard/live.ts";
import { appIdOf, synthetic } from "../helpers/dashboardSynthetic.ts";

async function serve(body: unknown): Promise<{ url: string; server: Server }> {
  const server = createServer((_req, res) => {
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(body));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/healthz`, server };
}

describe("dashboard health and live source", () => {
  const servers: Server[] = [];
  after(() => {
    for (const s of servers) s.close();
  });

  it("reads each member's /healthz, and refuses a body that names another app id", async () => {
    const own = await serve({ phase: "healthy", appId: appIdOf(1).toLowerCase(), peers: [] });
    const impostor = await serve({ phase: "healthy", appId: appIdOf(9).toLowerCase(), peers: [] });
    const garbage = await serve([1, 2, 3]);
    servers.push(own.server, impostor.server, garbage.server);
    const polls = await pollHealth(
      new Map([
        [appIdOf(1).toLowerCase(), own.url],
        [appIdOf(2).toLowerCase(), impostor.url],
        [appIdOf(3).toLowerCase(), garbage.url],
        [appIdOf(4).toLowerCase(), "http://127.0.0.1:1/healthz"],
      ]),
      1_000,
    );
    assert.equal(polls.get(appIdOf(1).toLowerCase())?.body?.phase, "healthy");
    assert.equal(
      polls.get(appIdOf(2).toLowerCase())?.body,
      null,
      "another app's report is not this member's",
    );
    assert.equal(polls.get(appIdOf(3).toLowerCase())?.body, null);
    assert.equal(polls.get(appIdOf(4).toLowerCase())?.body, null);
  });

  it("reads the owner's health-URL file on every poll, and refuses a file that is not app id → http(s) URL", async () => {
    const dir = mkdtempSync(join(tmpdir(), "attestmesh-dashboard-"));
    const file = join(dir, "health.json");
    writeFileSync(file, JSON.stringify({ [appIdOf(1)]: "http://10.0.0.1:9100/healthz" }));
    const targets = fileHealthTargets(file);
    assert.deepEqual([...(await targets())], [[appIdOf(1).toLowerCase(), "http://10.0.0.1:9100/healthz"]]);
    writeFileSync(
      file,
      JSON.stringify({ [appIdOf(1)]: "http://a/healthz", [appIdOf(2)]: "http://b/healthz" }),
    );
    assert.equal((await targets()).size, 2, "a node added to the file appears at the next poll");
    for (const bad of ["[]", '{"0xabc": 7}', '{"0xabc": "file:///etc/passwd"}', "not json"]) {
      writeFileSync(file, bad);
      await assert.rejects(targets(), Error, bad);
    }
  });

  it("keeps the last view when a chain read fails, says why, and recovers", async () => {
    const s = synthetic({ members: 3 });
    let fail = false;
    let members = 3;
    const source = createLiveSource({
      readChain: async () => {
        if (fail)
          throw new Error("HTTP request failed: https://rpc.example/v2/SECRETKEY?k=SECRET refused\nstack");
        return synthetic({ members }).facts;
      },
      healthTargets: async () => new Map(),
      intervalMs: 20,
      now: () => s.nowMs,
    });
    const heard: LiveState[] = [];
    source.subscribe((state) => heard.push(state));
    const controller = new AbortController();
    await source.start(controller.signal);
    assert.equal(source.current().view?.members.length, 3);
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(heard.length, 1, "re-reads of an unchanged chain are not news");

    fail = true;
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(source.current().view?.members.length, 3, "the last view stays");
    assert.equal(source.current().error, "HTTP request failed: https://rpc.example/… refused");
    assert.doesNotMatch(JSON.stringify(source.current()), /SECRET/, "an RPC key never reaches the page");

    fail = false;
    members = 4;
    await new Promise((resolve) => setTimeout(resolve, 100));
    controller.abort();
    assert.equal(source.current().error, undefined);
    assert.equal(source.current().view?.members.length, 4);
    assert.equal(heard.length, 3);
  });
});
