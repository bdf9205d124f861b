// The service's configuration: every problem named at once; the signer key never echoed; the README
// documents every variable.
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { test } from "node:test";
import { inspect } from "node:util";
import { isAttestmeshError } from "@attestmesh/shared/errors.ts";
import { configDocsMarkdown } from "@attestmesh/shared/service/env.ts";
import { parseSponsorConfig, SPONSOR_VARIABLES } from "../src/config.ts";

const KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
const ADDRESS = "0x5FbDB2315678afecb367f032d93F642f64180aa3";
const ENV = {
  SPONSOR_RPC_URL: "http://127.0.0.1:8545",
  SPONSOR_CHAIN_ID: "31337",
  SPONSOR_CLUSTER: ADDRESS,
  SPONSOR_ACCOUNT_FACTORY: ADDRESS,
  SPONSOR_PAYMASTER: ADDRESS,
  SPONSOR_SIGNER_KEY: KEY,
};

test("defaults apply and the signer key does not print with the config", () => {
  const config = parseSponsorConfig(ENV);
  assert.equal(config.entryPoint, "0x0000000071727De22E5E9d8BAf0edAc6f37da032");
  assert.equal(config.maxOpsPerDay, 500);
  assert.equal(config.maxWeiPerDay, 50_000_000_000_000_000n);
  assert.equal(config.port, 4338);
  assert.equal(config.signerKey.reveal(), KEY);
  assert.ok(!inspect(config, { depth: 5 }).includes(KEY.slice(2)));
  assert.ok(!JSON.stringify({ ...config, maxWeiPerDay: "", maxCostWei: "" }).includes(KEY.slice(2)));
  assert.equal(config.stateDb, "attestmesh-sponsor.sqlite");
  assert.equal(config.confirmations, 10);
  assert.equal(config.maxCostWei, 10_000_000_000_000_000n);
  assert.deepEqual(
    [config.maxCallGas, config.maxVerificationGas, config.maxPreVerificationGas],
    [2_000_000, 1_000_000, 5_000_000],
  );
});

test("every bad variable is named in one error; a bad key is not echoed", () => {
  const badKey = `${KEY}00`;
  try {
    parseSponsorConfig({
      ...ENV,
      SPONSOR_CHAIN_ID: "base",
      SPONSOR_PAYMASTER: "0x1234",
      SPONSOR_SIGNER_KEY: badKey,
      SPONSOR_RPC_URL: "",
    });
    assert.fail("expected a refusal");
  } catch (error) {
    assert.ok(isAttestmeshError(error, "InvalidConfig"));
    for (const name of ["SPONSOR_CHAIN_ID", "SPONSOR_PAYMASTER", "SPONSOR_SIGNER_KEY", "SPONSOR_RPC_URL"]) {
      assert.match(error.message, new RegExp(name));
    }
    assert.ok(!error.message.includes(KEY.slice(2)));
  }
});

test("the sponsor table of docs/configuration.md is exactly what the env table documents", async () => {
  const docs = await readFile(new URL("../../docs/configuration.md", import.meta.url), "utf8");
  assert.ok(
    docs.includes(configDocsMarkdown(SPONSOR_VARIABLES)),
    "docs/configuration.md is out of date: paste configDocsMarkdown(SPONSOR_VARIABLES) under 'Sponsorship service'",
  );
});
