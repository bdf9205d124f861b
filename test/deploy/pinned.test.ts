// The deploy templates pin the guest API in the attested compose, and the service kit reads exactly
// what they pin from the rendered app-compose.json (the document a CVM's guest agent returns).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { readPinnedSettings, requireTrustPins } from "@attestmesh/shared/service/pinned.ts";

for (const target of ["node", "indexer"]) {
  test(`deploy/${target}/app-compose.json pins guest_api v0 (and, for a node, its chain and RPC providers) in its x-attestmesh block`, () => {
    const file = fileURLToPath(new URL(`../../deploy/${target}/app-compose.json`, import.meta.url));
    const text = readFileSync(file, "utf8");
    const settings = readPinnedSettings(text);
    assert.equal(settings.guestApi, "v0");
    if (target === "node") {
      // The sidecar's chain and RPC providers are pinned (issue 12 B): https hosts only; and every trust
      // value a member certificate is verified against (placeholders here).
      const trust = requireTrustPins(settings);
      assert.equal(trust.chainId, 84532);
      assert.ok((settings.rpcProviders ?? []).length >= 3);
      assert.ok((settings.rpcProviders ?? []).every((origin) => /^https:\/\/[^/]+$/.test(origin)));
    }
    assert.match(JSON.parse(text).docker_compose_file as string, /^x-attestmesh:\n {2}guest_api: v0$/m);
  });
}
