// The env table: defaults, every problem named at once with its fix, secrets never echoed, the docs table.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { inspect } from "node:util";
import { isAttestmeshError } from "@attestmesh/shared/errors.ts";
import {
  address,
  addressList,
  bigInteger,
  configDocs,
  configDocsMarkdown,
  dstackEndpointVariable,
  type EnvTable,
  integer,
  logLevel,
  logLevelVariable,
  parseEnv,
  privateKey,
} from "@attestmesh/shared/service/env.ts";
import type { Secret } from "@attestmesh/shared/service/secret.ts";
import type { Address, Hex } from "viem";

interface Config {
  readonly cluster: Address;
  readonly port: number;
  readonly start: bigint | undefined;
  readonly key: Secret<Hex> | undefined;
  readonly level: string;
  readonly peers: readonly Address[];
}

const TABLE: EnvTable<Config> = {
  cluster: { name: "T_CLUSTER", required: true, description: "The cluster.", parse: address() },
  port: { name: "T_PORT", default: "8080", description: "Port | listen.", parse: integer(0, 65535) },
  start: { name: "T_START", description: "First block.", parse: bigInteger("blocks") },
  key: { name: "T_KEY", description: "A key.", parse: privateKey("use a key") },
  level: { name: "T_LEVEL", default: "info", description: "Log level.", parse: logLevel },
  peers: {
    name: "T_PEERS",
    default: "0x5fbdb2315678afecb367f032d93f642f64180aa3",
    description: "Peers.",
    parse: addressList({ checksum: false }),
  },
};

const CLUSTER = "0x5FbDB2315678afecb367f032d93F642f64180aa3";
const KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

function problemsOf(env: Record<string, string>): Array<{ variable: string; problem: string; fix: string }> {
  try {
    parseEnv(TABLE, env);
  } catch (error) {
    assert.ok(isAttestmeshError(error, "InvalidConfig"));
    assert.equal(error.retryable, false);
    return error.details.problems as Array<{ variable: string; problem: string; fix: string }>;
  }
  assert.fail("expected InvalidConfig");
}

describe("env table", () => {
  test("defaults apply, empty values count as unset, the result is frozen", () => {
    const config = parseEnv(TABLE, { T_CLUSTER: CLUSTER, T_PORT: "  ", T_START: "" });
    assert.equal(config.port, 8080);
    assert.equal(config.start, undefined);
    assert.equal(config.key, undefined);
    assert.equal(config.level, "info");
    assert.deepEqual(config.peers, [CLUSTER]);
    assert.ok(Object.isFrozen(config));
  });

  test("every problem is named at once, each with what is wrong and how to fix it", () => {
    const problems = problemsOf({ T_PORT: "65536", T_START: "-1", T_LEVEL: "loud", T_PEERS: " , " });
    assert.deepEqual(
      problems.map((p) => p.variable),
      ["T_CLUSTER", "T_PORT", "T_START", "T_LEVEL", "T_PEERS"],
    );
    for (const p of problems) {
      assert.ok(p.problem.length > 0 && p.fix.length > 0, p.variable);
    }
    assert.equal(problems[0]!.problem, "is not set");
  });

  test("a checksummed address with a typo is refused; any case is accepted when checksums are off", () => {
    const typo = `${CLUSTER.slice(0, -1)}A`;
    assert.equal(problemsOf({ T_CLUSTER: typo })[0]!.variable, "T_CLUSTER");
    const peers = parseEnv(TABLE, {
      T_CLUSTER: CLUSTER,
      T_PEERS: `${typo.toLowerCase()},${typo.toLowerCase()}`,
    }).peers;
    assert.equal(peers.length, 1);
  });

  test("a private key is boxed, and a malformed one is never echoed", () => {
    const config = parseEnv(TABLE, { T_CLUSTER: CLUSTER, T_KEY: KEY });
    assert.equal(config.key?.reveal(), KEY);
    assert.ok(!inspect(config, { depth: 5 }).includes(KEY.slice(2)));
    assert.ok(!JSON.stringify({ ...config, start: null }).includes(KEY.slice(2)));
    const near = `${KEY}0`;
    try {
      parseEnv(TABLE, { T_CLUSTER: CLUSTER, T_KEY: near });
      assert.fail("expected InvalidConfig");
    } catch (error) {
      assert.ok(isAttestmeshError(error, "InvalidConfig"));
      assert.ok(!error.message.includes(KEY.slice(4, 40)));
      assert.ok(!JSON.stringify(error.details).includes(KEY.slice(4, 40)));
    }
  });

  test("a cross-variable check adds its problems to the same error", () => {
    assert.throws(
      () =>
        parseEnv(
          TABLE,
          { T_CLUSTER: CLUSTER },
          {
            check: (values) =>
              values.port === 8080
                ? [{ variable: "T_PORT", problem: "is the default", fix: "pick one" }]
                : [],
          },
        ),
      /T_PORT: is the default; pick one\./,
    );
  });

  test("the docs table lists every variable in order, escaping pipes, padded like the formatter", () => {
    const docs = configDocs(TABLE);
    assert.deepEqual(
      docs.map((d) => d.name),
      ["T_CLUSTER", "T_PORT", "T_START", "T_KEY", "T_LEVEL", "T_PEERS"],
    );
    const lines = configDocsMarkdown(docs).split("\n");
    assert.equal(lines.length, 2 + docs.length);
    assert.ok(lines.every((line) => line.length === lines[0]!.length));
    assert.match(lines[1]!, /^\| -+ \| -+ \| -+ \| -+ \|$/);
    assert.match(lines[3]!, /Port \\\| listen\./);
    assert.match(lines[2]!, /^\| `T_CLUSTER` +\| yes +\| +\| The cluster\./);
  });

  test("the shared entries: a daemon's log level, and the dstack endpoint the SDK reads", () => {
    const table: EnvTable<{ level: string; dstack: string | undefined }> = {
      level: logLevelVariable("T_LOG_LEVEL"),
      dstack: dstackEndpointVariable,
    };
    assert.deepEqual(configDocs(table), [
      {
        name: "T_LOG_LEVEL",
        required: false,
        default: "info",
        description: "Log level: trace, debug, info, warn, error, fatal, silent.",
      },
      {
        name: "DSTACK_SIMULATOR_ENDPOINT",
        required: false,
        default: undefined,
        description:
          "dstack guest agent endpoint (socket path or http URL), as the dstack SDK reads it; unset means /var/run/dstack.sock.",
      },
    ]);
    assert.deepEqual(parseEnv(table, {}), { level: "info", dstack: undefined });
    assert.deepEqual(parseEnv(table, { T_LOG_LEVEL: "debug", DSTACK_SIMULATOR_ENDPOINT: "/tmp/d.sock" }), {
      level: "debug",
      dstack: "/tmp/d.sock",
    });
    for (const [variable, value] of [
      ["T_LOG_LEVEL", "verbose"],
      ["DSTACK_SIMULATOR_ENDPOINT", "dstack.sock"],
    ] as const) {
      assert.throws(
        () => parseEnv(table, { [variable]: value }),
        (error) =>
          isAttestmeshError(error, "InvalidConfig") && (error.details.problems as unknown[]).length === 1,
      );
    }
  });
});
