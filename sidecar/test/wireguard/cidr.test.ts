// Allowed IPs as wg(8) reports them, so desired and reported peers compare equal.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { canonicalCidr } from "../../src/wireguard/cidr.ts";

describe("canonicalCidr", () => {
  it("spells allowed IPs the way WireGuard reports them", () => {
    assert.equal(canonicalCidr("10.77.0.2"), "10.77.0.2/32");
    assert.equal(canonicalCidr("10.77.3.2/16"), "10.77.0.0/16");
    assert.equal(canonicalCidr("255.255.255.255/0"), "0.0.0.0/0");
    assert.equal(canonicalCidr("FD00::1/128"), "fd00::1/128");
  });
});
