// The --json output is an interface for tools: every command's keys and value types are pinned here, so
// a change to them is deliberate (update this file and docs/cli.md together).
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, it } from "node:test";
import { bytesToHex } from "viem";
import { cliCluster } from "../helpers/cli.ts";
import { admit, randomAppId, simulatedNode } from "../helpers/cluster.ts";

type Type =
  | "string"
  | "number"
  | "boolean"
  | "null"
  | "address"
  | "hex"
  | "decimal"
  | "iso-date"
  | "array"
  | "object";
type Schema = { readonly [key: string]: Type | `${Type}|${string}` | Schema | readonly [Schema | Type] };

function checkType(value: unknown, type: Type): boolean {
  switch (type) {
    case "null":
      return value === null;
    case "address":
      return typeof value === "string" && /^0x[0-9a-fA-F]{40}$/.test(value);
    case "hex":
      return typeof value === "string" && /^0x[0-9a-fA-F]*$/.test(value);
    case "decimal":
      return typeof value === "string" && /^\d+$/.test(value);
    case "iso-date":
      return typeof value === "string" && !Number.isNaN(Date.parse(value)) && value.endsWith("Z");
    case "array":
      return Array.isArray(value);
    case "object":
      return typeof value === "object" && value !== null && !Array.isArray(value);
    default:
      return typeof value === type;
  }
}

/** `value` has exactly the keys of `schema`, each of its type. */
function assertSchema(
  value: unknown,
  schema: Schema | Type | string | readonly [Schema | Type],
  path = "$",
): void {
  if (typeof schema === "string") {
    const types = schema.split("|") as Type[];
    assert.ok(
      types.some((t) => checkType(value, t)),
      `${path}: expected ${schema}, got ${JSON.stringify(value)}`,
    );
    return;
  }
  if (Array.isArray(schema)) {
    assert.ok(Array.isArray(value), `${path}: expected an array`);
    for (const [i, item] of (value as unknown[]).entries()) assertSchema(item, schema[0], `${path}[${i}]`);
    return;
  }
  assert.ok(checkType(value, "object"), `${path}: expected an object`);
  assert.deepEqual(Object.keys(value as object).sort(), Object.keys(schema).sort(), `${path}: keys`);
  for (const [key, inner] of Object.entries(schema)) {
    assertSchema((value as Record<string, unknown>)[key], inner as Schema, `${path}.${key}`);
  }
}

/** Every command that reads or writes a cluster names it and its chain. */
const ON_CLUSTER = { cluster: "address", chainId: "number" } as const satisfies Schema;
const EVENT: Schema = { name: "string", args: "object" };
const TX_OUTCOME: Schema = {
  action: "string",
  mode: "string",
  ...ON_CLUSTER,
  from: "address|null",
  to: "address",
  value: "decimal",
  data: "hex",
  function: "string",
  changes: "object",
  gas: "decimal|null",
  result: "string|number|boolean|null|object|array",
  transactionHash: "hex|null",
  blockNumber: "decimal|null",
  gasUsed: "decimal|null",
  events: [EVENT],
};
const POLICY: Schema = {
  allowAnyDevice: "boolean",
  requireTcbUpToDate: "boolean",
  composeHashes: ["hex"],
  indexerComposeHashes: ["hex"],
  deviceIds: ["hex"],
  appIds: ["address"],
  indexerAppIds: ["address"],
  kmsRoots: ["address"],
  appIdRevocations: [{ appId: "address", revokedAt: "decimal", reason: "hex" }],
  deviceRevocations: [{ deviceId: "hex", revokedAt: "decimal", reason: "hex" }],
};
const MEMBER: Schema = {
  memberId: "decimal",
  appId: "address",
  meshIp: "string",
  status: "string",
  registeredAt: "iso-date",
  endedAt: "iso-date|null",
  endReason: "number|null",
  memberKey: "address",
  wireguardKey: "hex",
  identityKey: "hex",
  composeHash: "hex|null",
  deviceId: "hex|null",
  deviceFingerprint: "hex|null",
  kmsRoot: "address|null",
  standing: "string",
};

describe("--json output schemas", async () => {
  const fx = await cliCluster();
  const json = async (args: string[], expectedCode = 0) => {
    const run = await fx.cli([...args, "--json"]);
    assert.equal(run.code, expectedCode, run.stderr);
    return run.json();
  };

  it("a sent transaction, a dry run and calldata share one shape", async () => {
    const hash = bytesToHex(randomBytes(32));
    const sent = await json(["allow", "compose", hash, "--yes"]);
    assertSchema(sent, TX_OUTCOME);
    assert.equal(sent.mode, "sent");
    const dry = await json(["deny", "compose", hash, "--dry-run"]);
    assertSchema(dry, TX_OUTCOME);
    assert.equal(dry.mode, "dry-run");
    const calldata = await json(["deny", "compose", hash, "--calldata"]);
    assertSchema(calldata, TX_OUTCOME);
    assert.equal(calldata.mode, "calldata");
    assert.deepEqual(Object.keys(sent), Object.keys(dry), "same key order too");
  });

  it("members, evict", async () => {
    const node = simulatedNode(fx.kmsRoot);
    await admit(fx, node);
    assertSchema(await json(["members"]), { ...ON_CLUSTER, members: [MEMBER] });
    const evicted = await json(["evict", node.appId, "--yes"]);
    assertSchema(evicted, TX_OUTCOME);
    const ended = (await json(["members"])) as { members: Record<string, unknown>[] };
    assertSchema(ended, { ...ON_CLUSTER, members: [MEMBER] });
    assert.ok(ended.members.some((m) => m.status === "evicted" && m.endedAt !== null && m.endReason === 1));
  });

  it("policy show and policy history", async () => {
    await json(["revoke", "app", randomAppId(), "--yes"]);
    await json(["revoke", "device", bytesToHex(randomBytes(32)), "--yes"]);
    const show = await json(["policy", "show"]);
    assertSchema(show, {
      ...ON_CLUSTER,
      block: "decimal",
      owner: "address",
      policy: POLICY,
      members: [MEMBER],
    });
    const history = await json(["policy", "history"]);
    assertSchema(history, {
      ...ON_CLUSTER,
      fromBlock: "decimal",
      toBlock: "decimal",
      events: [
        { block: "decimal", logIndex: "number", transactionHash: "hex", name: "string", args: "object" },
      ],
      policy: POLICY,
    });
  });

  it("indexer show, empty and set", async () => {
    const schema: Schema = {
      ...ON_CLUSTER,
      set: "boolean",
      endpoint: "string|null",
      codeId: "hex|null",
      signingKey: "hex|null",
      appId: "address|null",
      kmsRoot: "address|null",
      updatedAt: "iso-date|null",
    };
    assertSchema(await json(["indexer", "show"]), schema);
  });

  it("check, allowed and not", async () => {
    const schema: Schema = {
      appId: "address",
      memberApp: "boolean",
      role: "string",
      appAllowed: "boolean",
      revokedAt: "decimal|null",
      member: "object|null",
      boot: "object|null",
      join: { allowed: "boolean", reasons: ["string"] },
      kms: "object|null",
      allowed: "boolean",
    };
    const appId = randomAppId();
    assertSchema(await json(["check", appId], 2), schema);
    await json(["allow", "app", appId, "--yes"]);
    const yes = await json(["check", appId, "--compose", bytesToHex(randomBytes(32))], 2);
    assertSchema(yes, schema);
    assertSchema(yes.boot, {
      allowed: "boolean",
      composeHash: "hex",
      reason: "string",
      composeRoles: ["string"],
    });
  });

  it("compose-hash and errors", async () => {
    const hash = await fx.cli(
      ["compose-hash", new URL("../../deploy/node/app-compose.json", import.meta.url).pathname, "--json"],
      { target: false },
    );
    assertSchema(hash.json(), {
      file: "string",
      composeHash: "hex",
      normalised: "boolean",
      normalisedComposeHash: "hex",
      differences: ["string"],
    });
    const error = await fx.cli(["allow", "app", "0x12", "--yes", "--json"]);
    assert.equal(error.code, 1);
    assertSchema(error.json(), { error: { code: "string", message: "string", details: "object" } });
  });
});
