// The registration keys of a simulated node are the ones the sidecar derives from the same guest agent,
// under guest API v0 and v1. Regression: they used to register the Ed25519 public key of the WireGuard
// secret where WireGuard's X25519 key belongs, so a test member's on-chain WireGuard key was one no
// wg(8) interface could ever have.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { derivedPublicKey } from "@attestmesh/shared/dstack/keychain.ts";
import { WIREGUARD_KEY } from "@attestmesh/shared/keys/purposes.ts";
import { createDstackKeySource, deriveNodeKeys } from "@attestmesh/sidecar/keys.ts";
import { hexToWgBase64 } from "@attestmesh/sidecar/wireguard/keys.ts";
import { bytesToHex, getAddress, hexToBytes } from "viem";
import { simulatedNodeKeys, simulatedNodeKeysV1 } from "../../src/dstack-sim/node.ts";
import type { DstackSimulator } from "../../src/dstack-sim/server.ts";
import { createKmsRoot, createSimulatedCvm } from "../../src/dstack-sim/simulator.ts";
import { serving } from "./fixtures.ts";

const kmsRoot = createKmsRoot();
const APP_ID = getAddress("0x00000000000000000000000000000000000b0b0b");
/** A compose pinning guest API v1 (the default compose pins none: v0). */
const V1_COMPOSE = '{"docker_compose_file":"x-attestmesh:\\n  guest_api: v1\\nservices: {}\\n"}';

for (const guestApi of ["v0", "v1"] as const) {
  describe(`simulated node keys, guest API ${guestApi}`, () => {
    const cvm = createSimulatedCvm({
      kmsRoot,
      appId: hexToBytes(APP_ID),
      ...(guestApi === "v1" ? { appCompose: V1_COMPOSE } : {}),
    });
    const node = guestApi === "v0" ? simulatedNodeKeys(APP_ID, cvm) : simulatedNodeKeysV1(kmsRoot, APP_ID);
    let sim: DstackSimulator;
    serving({ cvm }, (served) => {
      sim = served;
    });

    test("are the keys the sidecar derives through the guest agent: WireGuard X25519, identity Ed25519, member proof", async () => {
      const keys = await deriveNodeKeys(createDstackKeySource(sim.socketPath));
      assert.equal(node.wireguardKey, keys.wireguard.publicKey, "the WireGuard key wg(8) shows");
      assert.equal(hexToWgBase64(node.wireguardKey), keys.wireguard.publicKeyBase64);
      assert.equal(node.identityKey, keys.identity.publicKey);
      assert.equal(node.memberAccount.address, keys.member.address);
      assert.deepEqual(node.proof, keys.member.proof);
    });

    test("the WireGuard key is not the Ed25519 public key of the WireGuard secret (the bug)", () => {
      const secret =
        guestApi === "v0"
          ? cvm.getKey(WIREGUARD_KEY.path, WIREGUARD_KEY.purpose, WIREGUARD_KEY.algorithm).key
          : cvm.getKeyV1(WIREGUARD_KEY.purpose, WIREGUARD_KEY.algorithm).key;
      assert.notEqual(node.wireguardKey, bytesToHex(derivedPublicKey(secret, "ed25519")));
    });
  });
}
