// The watch for an interface's deletion with stand-in monitors (shell scripts in place of `ip`; no root):
// it acts on the deletion of its own interface only, and a monitor that keeps ending is started again
// with its warnings thinned.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { deletedLink, watchLinkDeletion } from "../../src/wireguard/linkWatch.ts";
import { captureLogger, scriptFolder } from "../helpers.ts";

const { dir, script, remove } = scriptFolder("am-linkwatch-");
after(remove);

describe("link watch", () => {
  test("a deletion line names the interface, with or without its peer link", () => {
    assert.equal(deletedLink("Deleted 7: amtest0: <POINTOPOINT,NOARP> mtu 1420"), "amtest0");
    assert.equal(deletedLink("Deleted 8: veth0@if9: <BROADCAST> mtu 1500"), "veth0");
    assert.equal(deletedLink("7: amtest0: <POINTOPOINT,UP> mtu 1420"), undefined);
  });

  test("only its own interface's deletion is acted on, once", async () => {
    const monitor = script("deletes", [
      "echo 'Deleted 7: other0: <POINTOPOINT,NOARP> mtu 1420'",
      "echo 'Deleted 8: amtest0: <POINTOPOINT,NOARP> mtu 1420'",
      "echo 'Deleted 8: amtest0: <POINTOPOINT,NOARP> mtu 1420'",
      "exec sleep 30",
    ]);
    const { logger } = captureLogger("info");
    let deleted = 0;
    const watch = watchLinkDeletion({
      command: [monitor],
      name: "amtest0",
      logger,
      onDeleted: () => deleted++,
    });
    try {
      for (let i = 0; i < 100 && deleted === 0; i++) await sleep(20);
      await sleep(100);
      assert.equal(deleted, 1);
    } finally {
      watch.stop();
    }
  });

  // Regression: a monitor that could not run (the namespace gone, `ip` missing) logged a warning at
  // every restart, one a second.
  test("a monitor that keeps ending is started again, its ends logged at the 1st, 2nd, 4th and 8th", async () => {
    const starts = join(dir, "starts");
    const monitor = script("ends", [`echo start >> ${starts}`, "exit 1"]);
    const { logger, lines } = captureLogger("info");
    const watch = watchLinkDeletion({
      command: [monitor],
      name: "amtest0",
      logger,
      onDeleted: () => {},
      respawnMs: 10,
    });
    const count = () => readFileSync(starts, { encoding: "utf8", flag: "a+" }).split("\n").length - 1;
    try {
      for (let i = 0; i < 500 && count() < 10; i++) await sleep(10);
    } finally {
      watch.stop();
    }
    assert.ok(count() >= 10, `${count()} starts`);
    const warned = lines().filter((l) => /^the watch on the WireGuard interface ended/.test(l.msg));
    assert.deepEqual(warned.map((l) => `${l.failures}/${l.unlogged ?? 0}`).slice(0, 4), [
      "1/0",
      "2/0",
      "4/1",
      "8/3",
    ]);
    assert.ok(warned.length <= 5, `${warned.length} warnings`);
    assert.match(warned[1]!.msg, /logged at the 2nd, 4th, 8th… and once every 10 minutes/);
  });
});
