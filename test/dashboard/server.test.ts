// The dashboard server: loopback only unless told, read-only (every write method is 405 and changes
// nothing), deaf to requests addressed to another host (DNS rebinding), and live over server-sent events.
import assert from "node:assert/strict";
import { request } from "node:http";
import { after, describe, it } from "node:test";
import { runCli } from "@attestmesh/scripts/cli/main.ts";
import { buildView } from "@attestmesh/scripts/dashboard/buildView.ts";
import { staticSource } from "@attestmesh/scripts/dashboard/live.ts";
import { checkBindAddress, isLoopback, startDashboardServer } from "@attestmesh/scripts/dashboard/server.ts";
import { synthetic } from "../helpers/dashboardSynthetic.ts";

const bundle = { html: Buffer.from("<!doctype html><p>page"), js: Buffer.from("1"), css: Buffer.from("a{}") };

function viewOf(members: number, evicted: number[] = []) {
  const s = synthetic({ members, evicted });
  return buildView(s.facts, s.health, s.nowMs);
}

/** One raw HTTP request, so the Host header and the method are exactly what an attacker would send. */
function raw(
  url: string,
  options: { method?: string; host?: string; body?: string },
): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  const target = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: target.hostname,
        port: target.port,
        path: target.pathname,
        method: options.method ?? "GET",
        headers: { host: options.host ?? target.host, connection: "close" },
        agent: false,
      },
      (res) => {
        let body = "";
        res.on("data", (c: Buffer) => {
          body += c.toString();
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.on("error", reject);
    req.end(options.body);
  });
}

describe("dashboard server", () => {
  const source = staticSource(viewOf(3));
  let url = "";
  let close: () => Promise<void> = async () => {};
  after(() => close());

  it("starts on loopback and serves the page, its bundle and the view", async () => {
    const server = await startDashboardServer({ source, bundle, port: 0 });
    url = server.url;
    close = () => server.close();
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/$/);
    const page = await raw(url, {});
    assert.equal(page.status, 200);
    assert.match(String(page.headers["content-security-policy"]), /default-src 'none'; script-src 'self'/);
    assert.equal((await raw(`${url}assets/app.js`, {})).body, "1");
    const api = JSON.parse((await raw(`${url}api/view`, {})).body);
    assert.equal(api.view.members.length, 3);
    assert.equal(api.error, null);
  });

  it("answers every write method with 405 and changes nothing", async () => {
    const before = (await raw(`${url}api/view`, {})).body;
    for (const method of ["POST", "PUT", "DELETE", "PATCH"]) {
      for (const path of ["api/view", "api/events", "", "api/evict"]) {
        const res = await raw(`${url}${path}`, { method, body: '{"memberId":"1"}' });
        assert.equal(res.status, 405, `${method} /${path}`);
        assert.equal(res.headers.allow, "GET, HEAD");
      }
    }
    assert.equal((await raw(`${url}api/view`, {})).body, before);
  });

  it("refuses requests addressed to another host: a rebound DNS name cannot read the cluster", async () => {
    const res = await raw(`${url}api/view`, { host: `evil.example:${new URL(url).port}` });
    assert.equal(res.status, 421);
    assert.doesNotMatch(res.body, /members/);
    const localhost = await raw(`${url}api/view`, { host: `localhost:${new URL(url).port}` });
    assert.equal(localhost.status, 200);
  });

  it("pushes a new view over server-sent events: a join appears, an eviction disappears", async () => {
    const controller = new AbortController();
    const response = await fetch(`${url}api/events`, { signal: controller.signal });
    assert.equal(response.headers.get("content-type"), "text/event-stream");
    const reader = response.body!.getReader();
    const frames: string[] = [];
    const next = async () => {
      let text = "";
      while (!text.includes("\n\n")) {
        const { value } = await reader.read();
        text += Buffer.from(value!).toString();
      }
      frames.push(text);
      return JSON.parse(text.split("data: ")[1]!.split("\n")[0]!) as {
        view: { members: { status: string }[] };
      };
    };
    assert.equal((await next()).view.members.length, 3, "the current view first");
    source.set(viewOf(4));
    assert.equal((await next()).view.members.length, 4);
    source.set(viewOf(4, [2]));
    const evicted = await next();
    assert.equal(evicted.view.members.filter((m) => m.status === "active").length, 3);
    controller.abort();
  });

  it("refuses a non-loopback address unless told, before listening", async () => {
    for (const host of ["0.0.0.0", "192.0.2.10", "::", "example.com"]) {
      assert.throws(() => checkBindAddress(host, false), /not a loopback address.*--listen-any/, host);
      await assert.rejects(startDashboardServer({ source, bundle, host, port: 0 }), {
        code: "NonLoopbackBind",
      });
    }
    for (const host of ["127.0.0.1", "127.0.0.2", "::1", "localhost"]) assert.ok(isLoopback(host), host);
    const any = await startDashboardServer({ source, bundle, host: "0.0.0.0", port: 0, listenAny: true });
    assert.match(any.url, /^http:\/\/0\.0\.0\.0:/);
    await any.close();
  });

  it("`attestmesh dashboard` refuses a paymaster without its EntryPoint, and a bad port, before any connection", async () => {
    const run = async (args: string[]) => {
      let err = "";
      const code = await runCli(["node", "attestmesh", "dashboard", ...args, "--rpc", "http://127.0.0.1:1"], {
        stdout: { write: () => true },
        stderr: { write: (t: string) => (err += t) },
        interactive: false,
        env: {},
      });
      return { code, err };
    };
    const lonely = await run(["--paymaster", "0x0000000000000000000000000000000000000001"]);
    assert.equal(lonely.code, 1);
    assert.match(lonely.err, /give --entry-point and --paymaster together/);
    const port = await run(["--port", "70000"]);
    assert.equal(port.code, 1);
    assert.match(port.err, /--port/);
  });

  it("`attestmesh dashboard --host 0.0.0.0` fails with the reason before touching any chain", async () => {
    let out = "";
    let err = "";
    const code = await runCli(
      [
        "node",
        "attestmesh",
        "dashboard",
        "--host",
        "0.0.0.0",
        "--rpc",
        "http://127.0.0.1:1",
        "--cluster",
        "0x0000000000000000000000000000000000000001",
      ],
      {
        stdout: { write: (t: string) => (out += t) },
        stderr: { write: (t: string) => (err += t) },
        interactive: false,
        env: {},
      },
    );
    assert.equal(code, 1);
    assert.match(err, /refusing to serve the dashboard on 0\.0\.0\.0.*--listen-any/);
    assert.equal(out, "");
  });
});
