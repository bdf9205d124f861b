// Listening: TCP on a free port; a unix socket that is private from the first moment, replaces a stale
// socket, and refuses a live one or a path that is not a socket (an attacker's file stays untouched).
import assert from "node:assert/strict";
import { lstat, readFile, writeFile } from "node:fs/promises";
import { createServer, request } from "node:http";
import { createServer as createNetServer } from "node:net";
import { describe, test } from "node:test";
import { isAttestmeshError } from "@attestmesh/shared/errors.ts";
import { listenHttp, listenUnix } from "@attestmesh/shared/service/listen.ts";
import { suiteTempDir } from "@attestmesh/shared/testing/tempDir.ts";

describe("listenHttp", () => {
  test("port 0 picks a free port that answers; close frees it", async () => {
    const server = createServer((_req, res) => res.end("ok"));
    const listener = await listenHttp(server, "127.0.0.1", 0);
    assert.ok(listener.port > 0);
    assert.equal(listener.host, "127.0.0.1");
    const body = await new Promise<string>((resolve, reject) => {
      request({ host: "127.0.0.1", port: listener.port }, (res) => {
        let text = "";
        res.on("data", (c: Buffer) => {
          text += c.toString();
        });
        res.on("end", () => resolve(text));
      })
        .on("error", reject)
        .end();
    });
    assert.equal(body, "ok");
    await listener.close();
    assert.equal(server.listening, false);
  });

  test("a port in use is refused with the listen error", async () => {
    const first = await listenHttp(createServer(), "127.0.0.1", 0);
    await assert.rejects(listenHttp(createServer(), "127.0.0.1", first.port), /EADDRINUSE/);
    await first.close();
  });
});

describe("listenUnix", () => {
  const inTempDir = suiteTempDir("kit-listen-");

  test("the socket is mode 0600 and removed on close", async () => {
    const path = inTempDir("a.sock");
    const listener = await listenUnix(createNetServer(), path);
    assert.equal((await lstat(path)).mode & 0o777, 0o600);
    await listener.close();
    await assert.rejects(lstat(path), /ENOENT/);
  });

  test("a stale socket is replaced; a live one is refused with the prefixed code", async () => {
    const path = inTempDir("b.sock");
    // Simulate a crash: the server stops listening without removing the file (it was renamed into place).
    const stale = createNetServer();
    await listenUnix(stale, path);
    await new Promise<void>((resolve) => stale.close(() => resolve()));
    assert.ok((await lstat(path)).isSocket(), "the stale socket file is left behind");
    const live = await listenUnix(createNetServer(), path, { codePrefix: "Api", variable: "X_SOCKET" });
    await assert.rejects(
      listenUnix(createNetServer(), path, { codePrefix: "Api", variable: "X_SOCKET" }),
      (e: unknown) => isAttestmeshError(e, "ApiSocketInUse") && /X_SOCKET/.test(e.message),
    );
    await live.close();
  });

  test("a path that is not a socket is refused and left as it was", async () => {
    const path = inTempDir("not-a-socket");
    await writeFile(path, "precious");
    await assert.rejects(listenUnix(createNetServer(), path), (e: unknown) =>
      isAttestmeshError(e, "SocketPathTaken"),
    );
    assert.equal(await readFile(path, "utf8"), "precious");
  });

  test("a path too long for sun_path is refused", async () => {
    await assert.rejects(listenUnix(createNetServer(), inTempDir("x".repeat(120))), (e: unknown) =>
      isAttestmeshError(e, "SocketPathTooLong"),
    );
  });
});
