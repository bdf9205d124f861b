// The live source and the health poller: members' own /healthz over real HTTP (an impostor answering on a
// member's port is not that member), a failed chain read keeps the last view beside the error, and
// subscribers hear only real changes.
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { runtimeEvent } from "@attestmesh/devnet/dstack-sim/server.ts";
import { createAttestationChecker, statusOfReport } from "@attestmesh/scripts/dashboard/attestation.ts";
import { fileHealthTargets, pollHealth } from "@attestmesh/scripts/dashboard/health.ts";
import { indexerHealthUrl, pollIndexers } from "@attestmesh/scripts/dashboard/indexers.ts";
import { createLiveSource, type LiveState } from "@attestmesh/scripts/dashboard/live.ts";
import { testTempDir } from "@attestmesh/shared/testing/tempDir.ts";
import { appIdOf, synthetic } from "../helpers/dashboardSynthetic.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await sleep(20);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

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

  it("reads the owner's health-URL file on every poll, and refuses a file that is not app id → http(s) URL", async (t) => {
    const dir = testTempDir(t, "attestmesh-dashboard-");
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
    await until("the failed read to be reported", async () => source.current().error !== undefined);
    assert.equal(source.current().view?.members.length, 3, "the last view stays");
    assert.equal(source.current().error, "HTTP request failed: https://rpc.example/… refused");
    assert.doesNotMatch(JSON.stringify(source.current()), /SECRET/, "an RPC key never reaches the page");

    fail = false;
    members = 4;
    await until("the recovered view", async () => source.current().view?.members.length === 4);
    controller.abort();
    assert.equal(source.current().error, undefined);
    assert.equal(source.current().view?.members.length, 4);
    assert.equal(heard.length, 3);
  });
});

describe("dashboard: indexers wake reads, attestation checks", () => {
  const servers: Server[] = [];
  after(() => {
    for (const s of servers) s.close();
  });

  /** A server answering each path with what `answer` gives (status, body) at the time of the request. */
  async function route(answer: (url: URL) => [number, unknown]): Promise<{ origin: string; server: Server }> {
    const server = createServer((req, res) => {
      const [status, body] = answer(new URL(req.url ?? "/", "http://x"));
      res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    servers.push(server);
    return { origin: `127.0.0.1:${(server.address() as AddressInfo).port}`, server };
  }

  it("an indexer's advance wakes a chain read at once; an impostor on its endpoint wakes nothing", async () => {
    const KEY = `0x${"11".repeat(32)}`;
    const s = synthetic({ members: 2 });
    const cluster = s.facts.cluster.toLowerCase();
    let seq = 1;
    let impostorSeq = 1;
    const indexer = await route(() => [
      200,
      {
        signingKey: KEY,
        subscribers: 2,
        clusters: [{ cluster, head: "9", lastSeq: String(seq), following: true }],
      },
    ]);
    const impostor = await route(() => [
      200,
      {
        signingKey: `0x${"99".repeat(32)}`,
        clusters: [{ cluster, head: "9", lastSeq: String(impostorSeq), following: true }],
      },
    ]);
    assert.equal(indexerHealthUrl(`ws://${indexer.origin}/`), `http://${indexer.origin}/healthz`);
    assert.equal(indexerHealthUrl("https://not-a-websocket/"), undefined);
    let reads = 0;
    let records = [
      { endpoint: `ws://${indexer.origin}/`, signingKey: KEY, appId: appIdOf(90), codeId: "0x" },
    ];
    const source = createLiveSource({
      readChain: async () => {
        reads++;
        return { ...s.facts, indexers: records };
      },
      healthTargets: async () => new Map(),
      intervalMs: 50,
      followIntervalMs: 1_000,
      pollIndexers,
      indexerPollMs: 30,
      now: () => s.nowMs,
    });
    const controller = new AbortController();
    await source.start(controller.signal);
    await until(
      "the indexer to be seen following",
      async () => source.current().view?.indexers[0]?.following === true,
    );
    await until("the view to say it follows the indexer", async () =>
      /following the registered indexers/.test(source.current().view?.sources.updates ?? ""),
    );
    const settled = reads;
    await sleep(300);
    assert.ok(
      reads <= settled + 1,
      `with an indexer following, the chain is not polled every 50 ms (${reads - settled} reads)`,
    );
    const before = reads;
    seq = 2;
    await until("a read woken by the indexer", async () => reads > before, 2_000);
    assert.match(
      source.current().view!.sources.updates,
      /woken by indexer ws:\/\/127\.0\.0\.1:\d+\/ \(envelope 2\)/,
    );

    // The registry names the impostor's endpoint for the same key: its body names another key, so it is no answer.
    records = [{ endpoint: `ws://${impostor.origin}/`, signingKey: KEY, appId: appIdOf(90), codeId: "0x" }];
    await until(
      "the impostor to be judged",
      async () => source.current().view?.indexers[0]?.reachable === false,
      3_000,
    );
    const quiet = reads;
    impostorSeq = 5;
    await sleep(300);
    controller.abort();
    assert.ok(reads - quiet <= 8, "back to polling every 50 ms");
    assert.doesNotMatch(source.current().view!.sources.updates, /envelope 5/, "the impostor woke nothing");
  });

  it("attestation: our nonce and the member id go to the verifier; errors are unreachable or refused, never verified", async () => {
    let served: unknown = { error: "x" };
    let status = 503;
    let asked: URL | undefined;
    const member = await route((url) => {
      asked = url;
      return [status, served];
    });
    const seen: Array<{ memberId: bigint; nonce: Uint8Array }> = [];
    const report = (ok: boolean) => ({
      ok,
      evidence: "SIMULATED" as const,
      verifiedAt: "",
      runs: {} as never,
      onChain: null,
      binding: null,
      checks: ok
        ? [{ name: "quote" as const, ok: true, detail: "fine" }]
        : [
            {
              name: "report-data" as const,
              ok: false,
              reason: "ReportDataMismatch",
              detail: "another nonce",
            },
          ],
    });
    let verdict = true;
    const check = createAttestationChecker({
      verify: async (_evidence, m) => {
        seen.push(m);
        return report(verdict);
      },
    });
    const health = `http://${member.origin}/healthz`;
    const down = await check("7", health);
    assert.equal(down.state, "unreachable");
    assert.match(down.detail ?? "", /503/);
    assert.equal(asked?.pathname, "/attestation");
    assert.match(asked?.searchParams.get("nonce") ?? "", /^0x[0-9a-f]{64}$/);

    status = 200;
    served = { version: 1, claims: {} };
    const garbage = await check("7", health);
    assert.equal(garbage.state, "refused");
    assert.equal(seen.length, 0, "a malformed document never reaches the verifier");

    // A well-formed document (what it proves is the verifier's to judge: owner/attest.ts, tested in cli/attest).
    served = {
      version: 1,
      claims: {
        chainId: 31337,
        cluster: appIdOf(1),
        memberId: "7",
        memberKey: appIdOf(2),
        wireguardKey: `0x${"01".repeat(32)}`,
        identityKey: `0x${"02".repeat(32)}`,
      },
      nonce: `0x${"03".repeat(32)}`,
      guestApi: "v0",
      simulated: true,
      quote: "0x00",
      eventLog: [runtimeEvent("app-id", new Uint8Array(20))],
      appCompose: "{}",
    };
    const ok = await check("7", health);
    assert.equal(ok.state, "verified");
    assert.equal(ok.lastVerifiedAt, ok.checkedAt);
    const nonce = asked!.searchParams.get("nonce")!;
    assert.equal(seen[0]!.memberId, 7n);
    assert.equal(
      `0x${Buffer.from(seen[0]!.nonce).toString("hex")}`,
      nonce,
      "judged against the nonce we sent",
    );
    verdict = false;
    const refused = await check("7", health);
    assert.equal(refused.state, "refused");
    assert.match(refused.detail ?? "", /report-data: ReportDataMismatch/);
    assert.notEqual(`0x${Buffer.from(seen[1]!.nonce).toString("hex")}`, nonce, "a fresh nonce each time");
    assert.deepEqual(statusOfReport(report(true), "t").state, "verified");
  });
});
