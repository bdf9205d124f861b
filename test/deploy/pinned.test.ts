// The deploy templates pin the guest API in the attested compose, and the service kit reads exactly
// what they pin from the rendered app-compose.json (the document a CVM's guest agent returns).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { readPinnedSettings, requireTrustPins } from "@attestmesh/shared/service/pinned.ts";

for (const target of ["node", "indexer"]) {
  test(`deploy/${target}/app-compose.json pins guest_api v0 in its x-attestmesh block`, () => {
    const file = fileURLToPath(new URL(`../../deploy/${target}/app-compose.json`, import.meta.url));
    const text = readFileSync(file, "utf8");
    const settings = readPinnedSettings(text);
    assert.equal(settings.guestApi, "v0");
    if (target === "node") {
      // The node verifies member certificates: its compose pins every trust value (placeholders here).
      const trust = requireTrustPins(settings);
      assert.equal(trust.chainId, 84532);
      assert.deepEqual(trust.rpcHosts, ["sepolia.base.org"]);
    } else {
      assert.deepEqual(settings, { guestApi: "v0" });
    }
    assert.match(JSON.parse(text).docker_compose_file as string, /^x-attestmesh:\n {2}guest_api: v0$/m);
  });
}
