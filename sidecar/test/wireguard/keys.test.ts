// WireGuard keys: Curve25519 against RFC 7748 and against wg(8) itself, and the chain's hex spelling.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { describe, it } from "node:test";
import { isAttestmeshError } from "@attestmesh/shared/errors.ts";
import { hexToWgBase64, isWgBase64Key, wgBase64ToHex, wireguardKeyPair } from "../../src/wireguard/keys.ts";

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex");
const wgMissing = spawnSync("wg", ["--version"]).error === undefined ? undefined : "wg(8) is not installed";

describe("wireguardKeyPair", () => {
  it("derives the RFC 7748 section 6.1 public keys", () => {
    const alice = wireguardKeyPair(
      Buffer.from("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a", "hex"),
    );
    const bob = wireguardKeyPair(
      Buffer.from("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb", "hex"),
    );
    assert.equal(hex(alice.publicKey), "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
    assert.equal(hex(bob.publicKey), "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
  });

  it("clamps a copy of the secret and encodes both keys as wg(8) does", () => {
    const secret = new Uint8Array(32).fill(0xff);
    const pair = wireguardKeyPair(secret);
    assert.equal(pair.privateKey[0], 0xf8);
    assert.equal(pair.privateKey[31], 0x7f);
    assert.deepEqual(secret, new Uint8Array(32).fill(0xff), "the caller's secret is untouched");
    assert.equal(pair.privateKeyBase64, Buffer.from(pair.privateKey).toString("base64"));
    assert.equal(pair.publicKeyBase64, Buffer.from(pair.publicKey).toString("base64"));
    assert.ok(isWgBase64Key(pair.privateKeyBase64) && isWgBase64Key(pair.publicKeyBase64));
    assert.deepEqual(wireguardKeyPair(pair.privateKey), pair, "clamping is idempotent");
  });

  it("rejects a secret that is not 32 bytes", () => {
    for (const length of [0, 31, 33, 64]) {
      assert.throws(
        () => wireguardKeyPair(new Uint8Array(length)),
        (error) => isAttestmeshError(error, "InvalidWireGuardKey"),
      );
    }
  });

  it("matches `wg pubkey` for random secrets, clamped or not", { skip: wgMissing }, () => {
    for (let i = 0; i < 8; i++) {
      const secret = randomBytes(32);
      const pair = wireguardKeyPair(secret);
      for (const input of [pair.privateKeyBase64, secret.toString("base64")]) {
        const wg = spawnSync("wg", ["pubkey"], { input: `${input}\n`, encoding: "utf8" });
        assert.equal(wg.status, 0, wg.stderr);
        assert.equal(wg.stdout.trim(), pair.publicKeyBase64);
      }
    }
  });
});

describe("hex and base64 spellings", () => {
  it("round-trips chain bytes32 and wg base64", () => {
    const pair = wireguardKeyPair(randomBytes(32));
    const chain = `0x${hex(pair.publicKey)}` as const;
    assert.equal(hexToWgBase64(chain), pair.publicKeyBase64);
    assert.equal(hexToWgBase64(chain.toUpperCase().replace("0X", "0x")), pair.publicKeyBase64);
    assert.equal(wgBase64ToHex(pair.publicKeyBase64), chain);
  });

  it("rejects anything that is not exactly 32 bytes in canonical form", () => {
    const bad = [
      "",
      "0x",
      `0x${"ab".repeat(31)}`,
      `0x${"ab".repeat(33)}`,
      "ab".repeat(32),
      `0x${"zz".repeat(32)}`,
    ];
    for (const value of bad) {
      assert.throws(
        () => hexToWgBase64(value),
        (error) => isAttestmeshError(error, "InvalidWireGuardKey"),
        value,
      );
    }
    const good = wireguardKeyPair(randomBytes(32)).publicKeyBase64;
    const badBase64 = [
      "",
      good.slice(0, -1),
      `${good.slice(0, 42)}B=`, // low bits of the last character must be zero
      `${good.slice(0, 43)}`,
      `${good}A`,
      good.replace(/.$/, "A"),
      Buffer.alloc(33).toString("base64"),
    ];
    for (const value of badBase64) {
      assert.equal(isWgBase64Key(value), false, value);
      assert.throws(
        () => wgBase64ToHex(value),
        (error) => isAttestmeshError(error, "InvalidWireGuardKey"),
      );
    }
  });
});
