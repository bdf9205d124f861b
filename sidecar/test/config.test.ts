import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { inspect } from "node:util";
import { isAttestmeshError } from "@attestmesh/shared/errors.ts";
import {
  CONFIG_DOCS,
  type ConfigProblem,
  configDocsMarkdown,
  describeConfig,
  parseConfig,
} from "../src/config.ts";

const CLUSTER = "0x5FbDB2315678afecb367f032d93F642f64180aa3";
const GAS_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
const BASE = { ATTESTMESH_RPC_URL: "http://127.0.0.1:8545", ATTESTMESH_CLUSTER: CLUSTER };

function problemsOf(env: Record<string, string>): ConfigProblem[] {
  try {
    parseConfig(env);
  } catch (error) {
    assert.ok(isAttestmeshError(error, "InvalidConfig"), `expected InvalidConfig, got ${String(error)}`);
    assert.equal(error.retryable, false);
    return error.details.problems as ConfigProblem[];
  }
  assert.fail("expected the configuration to be refused");
}

function problemOf(variable: string, value: string): ConfigProblem {
  const problems = problemsOf({ ...BASE, [variable]: value });
  assert.equal(problems.length, 1, `one problem expected, got ${JSON.stringify(problems)}`);
  assert.equal(problems[0]!.variable, variable);
  return problems[0]!;
}

describe("parseConfig", () => {
  test("defaults", () => {
    const config = parseConfig(BASE);
    assert.deepEqual(
      { ...config },
      {
        rpcUrl: "http://127.0.0.1:8545",
        rpcUrls: undefined,
        rpcQuorum: undefined,
        cluster: CLUSTER,
        chainId: undefined,
        confirmations: 2,
        pollIntervalMs: 2000,
        gasKey: undefined,
        bundlerUrl: undefined,
        paymasterUrl: undefined,
        entryPoint: "0x0000000071727De22E5E9d8BAf0edAc6f37da032",
        accountFactory: undefined,
        dstackEndpoint: undefined,
        wgInterface: "attestmesh0",
        wgListenPort: 51820,
        wgMode: "auto",
        wgNetns: undefined,
        wgKeepaliveSeconds: 15,
        endpointsFile: undefined,
        transport: "auto",
        gatewayDomain: undefined,
        gatewayAddress: undefined,
        ingressPort: 51822,
        gatewayHelloTimeoutMs: 2000,
        directRetrySeconds: 30,
        directRetryMaxSeconds: 900,
        healthHost: "0.0.0.0",
        healthPort: 9090,
        logLevel: "info",
        logsMaxBlocks: 10000,
        registerMaxBackoffMs: 30000,
        indexerPush: true,
        indexerReproPercent: 10,
        indexerLagMs: 30000,
        pccsUrl: "https://pccs.phala.network",
        indexerSubscriptions: 2,
        stateDir: undefined,
        apiSocket: undefined,
        apiSocketGroup: undefined,
        apiQueueLength: 256,
        inboxMaxMessages: 10000,
        messagesStartBlock: undefined,
        meshPort: 51821,
        heartbeatIntervalMs: 1000,
        heartbeatTimeoutMs: 4000,
        cskTakeoverMs: 10000,
        reattestIntervalS: 600,
      },
    );
  });

  test("gateway transport settings", () => {
    const config = parseConfig({
      ...BASE,
      ATTESTMESH_TRANSPORT: "gateway",
      ATTESTMESH_GATEWAY_DOMAIN: "Dstack-Prod5.phala.network",
      ATTESTMESH_GATEWAY_ADDRESS: "198.18.0.1:443",
      ATTESTMESH_INGRESS_PORT: "8443",
      ATTESTMESH_GATEWAY_HELLO_TIMEOUT_MS: "500",
      ATTESTMESH_DIRECT_RETRY_SECONDS: "5",
      ATTESTMESH_DIRECT_RETRY_MAX_SECONDS: "60",
    });
    assert.equal(config.gatewayHelloTimeoutMs, 500);
    assert.equal(config.transport, "gateway");
    assert.equal(config.gatewayDomain, "dstack-prod5.phala.network");
    assert.deepEqual(config.gatewayAddress, { host: "198.18.0.1", port: 443 });
    assert.equal(config.ingressPort, 8443);
    assert.equal(config.directRetrySeconds, 5);
    assert.equal(config.directRetryMaxSeconds, 60);
    assert.deepEqual(parseConfig({ ...BASE, ATTESTMESH_GATEWAY_ADDRESS: "[fd00::1]:8443" }).gatewayAddress, {
      host: "fd00::1",
      port: 8443,
    });
  });

  test("transport gateway without a gateway domain is refused", () => {
    const problems = problemsOf({ ...BASE, ATTESTMESH_TRANSPORT: "gateway" });
    assert.equal(problems.length, 1);
    assert.equal(problems[0]!.variable, "ATTESTMESH_GATEWAY_DOMAIN");
    assert.match(problems[0]!.fix, /gateway's domain/);
  });

  test("every variable set", () => {
    const config = parseConfig({
      ...BASE,
      ATTESTMESH_CLUSTER: CLUSTER.toLowerCase(),
      ATTESTMESH_CHAIN_ID: "31337",
      ATTESTMESH_CONFIRMATIONS: "0",
      ATTESTMESH_POLL_INTERVAL_MS: "250",
      ATTESTMESH_GAS_KEY: GAS_KEY,
      DSTACK_SIMULATOR_ENDPOINT: "/tmp/dstack.sock",
      ATTESTMESH_WG_INTERFACE: "wg-test0",
      ATTESTMESH_WG_LISTEN_PORT: "51999",
      ATTESTMESH_WG_MODE: "memory",
      ATTESTMESH_WG_NETNS: "node-1",
      ATTESTMESH_WG_KEEPALIVE_SECONDS: "0",
      ATTESTMESH_ENDPOINTS_FILE: "/run/attestmesh/endpoints.json",
      ATTESTMESH_HEALTH_HOST: "127.0.0.1",
      ATTESTMESH_HEALTH_PORT: "0",
      ATTESTMESH_LOG_LEVEL: "debug",
      ATTESTMESH_REGISTER_MAX_BACKOFF_MS: "500",
      ATTESTMESH_INDEXER: "off",
      ATTESTMESH_INDEXER_REPRO_PERCENT: "100",
      ATTESTMESH_INDEXER_LAG_MS: "5000",
      ATTESTMESH_INDEXER_SUBSCRIPTIONS: "3",
      ATTESTMESH_STATE_DIR: "/var/lib/attestmesh",
      ATTESTMESH_API_SOCKET: "/run/attestmesh/api.sock",
      ATTESTMESH_API_SOCKET_GROUP: "app",
      ATTESTMESH_API_QUEUE_LENGTH: "16",
      ATTESTMESH_INBOX_MAX_MESSAGES: "50",
      ATTESTMESH_MESSAGES_START_BLOCK: "0",
    });
    assert.equal(config.cluster, CLUSTER, "addresses are checksummed");
    assert.equal(config.chainId, 31337);
    assert.equal(config.confirmations, 0);
    assert.equal(config.pollIntervalMs, 250);
    assert.equal(config.gasKey?.reveal(), GAS_KEY);
    assert.equal(config.dstackEndpoint, "/tmp/dstack.sock");
    assert.equal(config.wgInterface, "wg-test0");
    assert.equal(config.wgListenPort, 51999);
    assert.equal(config.wgMode, "memory");
    assert.equal(config.wgNetns, "node-1");
    assert.equal(config.wgKeepaliveSeconds, 0);
    assert.equal(config.endpointsFile, "/run/attestmesh/endpoints.json");
    assert.equal(config.healthHost, "127.0.0.1");
    assert.equal(config.healthPort, 0);
    assert.equal(config.logLevel, "debug");
    assert.equal(config.registerMaxBackoffMs, 500);
    assert.equal(config.indexerPush, false);
    assert.equal(config.indexerReproPercent, 100);
    assert.equal(config.indexerLagMs, 5000);
    assert.equal(config.indexerSubscriptions, 3);
    assert.equal(config.stateDir, "/var/lib/attestmesh");
    assert.equal(config.apiSocket, "/run/attestmesh/api.sock");
    assert.equal(config.apiSocketGroup, "app");
    assert.equal(config.apiQueueLength, 16);
    assert.equal(config.inboxMaxMessages, 50);
    assert.equal(config.messagesStartBlock, 0);
  });

  test("an empty value counts as unset; surrounding whitespace is ignored", () => {
    const config = parseConfig({ ...BASE, ATTESTMESH_CONFIRMATIONS: "", ATTESTMESH_WG_MODE: " kernel " });
    assert.equal(config.confirmations, 2);
    assert.equal(config.wgMode, "kernel");
  });

  test("required variables missing: named, with the fix (RPC providers come from the attested compose)", () => {
    const problems = problemsOf({});
    assert.deepEqual(
      problems.map((p) => p.variable),
      ["ATTESTMESH_CLUSTER"],
    );
    for (const p of problems) {
      assert.equal(p.problem, "is not set");
      assert.match(p.fix, /^set it: /);
    }
  });

  test("the error message names every problem on its own line", () => {
    try {
      parseConfig({ ATTESTMESH_CLUSTER: "nope", ATTESTMESH_CONFIRMATIONS: "-1" });
      assert.fail("expected a refusal");
    } catch (error) {
      assert.ok(error instanceof Error);
      const lines = error.message.split("\n");
      assert.equal(lines.length, 3);
      assert.match(error.message, /ATTESTMESH_CLUSTER: "nope" is not a 20-byte hex address/);
      assert.match(error.message, /ATTESTMESH_CONFIRMATIONS: "-1" is not a whole number/);
    }
  });

  const BAD_VALUES: ReadonlyArray<readonly [string, string, RegExp]> = [
    ["ATTESTMESH_RPC_URL", "localhost:8545", /scheme|not a URL/],
    ["ATTESTMESH_RPC_URL", "not a url", /not a URL/],
    ["ATTESTMESH_RPC_URL", "ws://127.0.0.1:8546", /scheme ws: is not supported/],
    ["ATTESTMESH_RPC_URLS", "https://a.example/key,localhost:8545", /scheme|not a URL/],
    ["ATTESTMESH_RPC_URLS", "https://a.example/key,ws://b.example", /scheme ws: is not supported/],
    ["ATTESTMESH_RPC_QUORUM", "0", /outside 1..16/],
    ["ATTESTMESH_RPC_QUORUM", "17", /outside 1..16/],
    ["ATTESTMESH_CLUSTER", "0x1234", /not a 20-byte hex address/],
    ["ATTESTMESH_CLUSTER", "5FbDB2315678afecb367f032d93F642f64180aa3", /not a 20-byte hex address/],
    ["ATTESTMESH_CLUSTER", "0x5FbDB2315678afecb367f032d93F642f64180aA3", /EIP-55 checksum/],
    ["ATTESTMESH_CHAIN_ID", "0", /outside 1\.\./],
    ["ATTESTMESH_CHAIN_ID", "base", /not a whole number/],
    ["ATTESTMESH_CHAIN_ID", "99999999999999999999", /outside/],
    ["ATTESTMESH_CONFIRMATIONS", "1001", /outside 0\.\.1000/],
    ["ATTESTMESH_CONFIRMATIONS", "1.5", /not a whole number/],
    ["ATTESTMESH_POLL_INTERVAL_MS", "50", /outside 100\.\./],
    ["ATTESTMESH_POLL_INTERVAL_MS", "2s", /not a whole number/],
    ["ATTESTMESH_GAS_KEY", "0x1234", /not 0x followed by 64 hex digits/],
    ["ATTESTMESH_GAS_KEY", `0x${"0".repeat(64)}`, /not a valid secp256k1 private key/],
    ["ATTESTMESH_GAS_KEY", `0x${"f".repeat(64)}`, /not a valid secp256k1 private key/],
    ["ATTESTMESH_BUNDLER_URL", "ws://127.0.0.1:4337", /scheme ws: is not supported/],
    ["ATTESTMESH_PAYMASTER_URL", "sponsor.local", /not a URL/],
    ["ATTESTMESH_ENTRY_POINT", "0x1234", /not a 20-byte hex address/],
    ["ATTESTMESH_ACCOUNT_FACTORY", "factory", /not a 20-byte hex address/],
    ["DSTACK_SIMULATOR_ENDPOINT", "dstack.sock", /neither an absolute socket path nor an http\(s\) URL/],
    ["ATTESTMESH_WG_INTERFACE", "this-name-is-far-too-long", /not a valid interface name/],
    ["ATTESTMESH_WG_INTERFACE", "wg/0", /not a valid interface name/],
    ["ATTESTMESH_WG_INTERFACE", "-wg0", /not a valid interface name/],
    ["ATTESTMESH_WG_LISTEN_PORT", "0", /outside 1\.\.65535/],
    ["ATTESTMESH_WG_LISTEN_PORT", "70000", /outside 1\.\.65535/],
    ["ATTESTMESH_WG_MODE", "fast", /not one of auto, kernel, userspace, memory/],
    ["ATTESTMESH_WG_NETNS", "../etc", /not a valid network namespace name/],
    ["ATTESTMESH_WG_KEEPALIVE_SECONDS", "-5", /not a whole number/],
    ["ATTESTMESH_WG_KEEPALIVE_SECONDS", "65536", /outside 0\.\.65535/],
    ["ATTESTMESH_ENDPOINTS_FILE", "a\0b", /NUL byte/],
    ["ATTESTMESH_TRANSPORT", "tcp", /not one of gateway, udp, auto/],
    ["ATTESTMESH_GATEWAY_DOMAIN", "localhost", /not a DNS domain/],
    ["ATTESTMESH_GATEWAY_DOMAIN", "-bad.example", /not a DNS domain/],
    ["ATTESTMESH_GATEWAY_ADDRESS", "198.18.0.1", /not host:port/],
    ["ATTESTMESH_GATEWAY_ADDRESS", "198.18.0.1:0", /not host:port/],
    ["ATTESTMESH_INGRESS_PORT", "0", /outside 1\.\.65535/],
    ["ATTESTMESH_GATEWAY_HELLO_TIMEOUT_MS", "100", /outside 200\.\.60000/],
    ["ATTESTMESH_DIRECT_RETRY_SECONDS", "0", /outside 1\.\./],
    ["ATTESTMESH_DIRECT_RETRY_MAX_SECONDS", "1.5", /not a whole number/],
    ["ATTESTMESH_HEALTH_HOST", "0.0.0.0 9090", /whitespace/],
    ["ATTESTMESH_HEALTH_PORT", "65536", /outside 0\.\.65535/],
    ["ATTESTMESH_HEALTH_PORT", "http", /not a whole number/],
    ["ATTESTMESH_LOG_LEVEL", "verbose", /not one of trace, debug, info, warn, error, fatal, silent/],
    ["ATTESTMESH_REGISTER_MAX_BACKOFF_MS", "10", /outside 100\.\./],
    ["ATTESTMESH_INDEXER", "yes", /neither on nor off/],
    ["ATTESTMESH_INDEXER_REPRO_PERCENT", "101", /outside 0\.\.100/],
    ["ATTESTMESH_INDEXER_LAG_MS", "5", /outside 100\.\./],
    ["ATTESTMESH_PCCS_URL", "pccs.example", /not a URL/],
    ["ATTESTMESH_INDEXER_SUBSCRIPTIONS", "0", /outside 1\.\.8/],
    ["ATTESTMESH_INDEXER_SUBSCRIPTIONS", "9", /outside 1\.\.8/],
    ["ATTESTMESH_STATE_DIR", "state", /not an absolute path/],
    ["ATTESTMESH_API_SOCKET", "api.sock", /not an absolute path/],
    ["ATTESTMESH_API_SOCKET_GROUP", "app group", /neither a group name nor a gid/],
    ["ATTESTMESH_API_QUEUE_LENGTH", "0", /outside 1\.\./],
    ["ATTESTMESH_INBOX_MAX_MESSAGES", "0", /outside 1\.\./],
    ["ATTESTMESH_INBOX_MAX_MESSAGES", "many", /not a whole number/],
    ["ATTESTMESH_MESSAGES_START_BLOCK", "latest", /not a whole number/],
    ["ATTESTMESH_LOGS_MAX_BLOCKS", "0", /outside 1\.\./],
    ["ATTESTMESH_LOGS_MAX_BLOCKS", "10k", /not a whole number/],
    ["ATTESTMESH_MESH_PORT", "0", /outside 1\.\.65535/],
    ["ATTESTMESH_MESH_PORT", "udp", /not a whole number/],
    ["ATTESTMESH_HEARTBEAT_INTERVAL_MS", "50", /outside 100\.\./],
    ["ATTESTMESH_HEARTBEAT_INTERVAL_MS", "2s", /not a whole number/],
    ["ATTESTMESH_HEARTBEAT_TIMEOUT_MS", "100", /outside 200\.\./],
    ["ATTESTMESH_HEARTBEAT_TIMEOUT_MS", "900", /not above the heartbeat interval/],
    ["ATTESTMESH_CSK_TAKEOVER_MS", "99", /outside 100\.\./],
    ["ATTESTMESH_REATTEST_INTERVAL_S", "9", /outside 10\.\./],
  ];

  for (const [variable, value, expected] of BAD_VALUES) {
    test(`refuses ${variable}=${JSON.stringify(value)}`, () => {
      const problem = problemOf(variable, value);
      assert.match(problem.problem, expected);
      assert.ok(problem.fix.length > 0, "a fix is given");
    });
  }

  test("a bundler without the paymaster service and the account factory names both", () => {
    const problems = problemsOf({ ...BASE, ATTESTMESH_BUNDLER_URL: "http://127.0.0.1:4337" });
    assert.deepEqual(
      problems.map((p) => p.variable),
      ["ATTESTMESH_PAYMASTER_URL", "ATTESTMESH_ACCOUNT_FACTORY"],
    );
    for (const p of problems) assert.match(p.problem, /ATTESTMESH_BUNDLER_URL is/);
  });

  test("sponsored configuration", () => {
    const config = parseConfig({
      ...BASE,
      ATTESTMESH_BUNDLER_URL: "http://127.0.0.1:4337",
      ATTESTMESH_PAYMASTER_URL: "http://127.0.0.1:4338",
      ATTESTMESH_ACCOUNT_FACTORY: CLUSTER.toLowerCase(),
    });
    assert.equal(config.bundlerUrl, "http://127.0.0.1:4337");
    assert.equal(config.paymasterUrl, "http://127.0.0.1:4338");
    assert.equal(config.accountFactory, CLUSTER);
  });

  test("every documented variable has at least one bad-value test", () => {
    const tested = new Set(BAD_VALUES.map(([variable]) => variable));
    for (const doc of CONFIG_DOCS) assert.ok(tested.has(doc.name), `${doc.name} has no bad-value test`);
  });

  test("a refused gas key is never echoed", () => {
    const nearMiss = `${GAS_KEY}00`;
    try {
      parseConfig({ ...BASE, ATTESTMESH_GAS_KEY: nearMiss });
      assert.fail("expected a refusal");
    } catch (error) {
      assert.ok(error instanceof Error);
      assert.ok(
        !JSON.stringify({
          message: error.message,
          details: (error as { details?: unknown }).details,
        }).includes(GAS_KEY.slice(2)),
      );
    }
  });
});

describe("config output", () => {
  test("the gas key prints as a placeholder everywhere", () => {
    const config = parseConfig({ ...BASE, ATTESTMESH_GAS_KEY: GAS_KEY });
    const secretHex = GAS_KEY.slice(2);
    assert.ok(!JSON.stringify(config).includes(secretHex));
    assert.ok(!inspect(config, { depth: 5 }).includes(secretHex));
    assert.ok(!String(config.gasKey).includes(secretHex));
    assert.equal(describeConfig(config).gasKey, "set");
    assert.equal(describeConfig(parseConfig(BASE)).gasKey, "unset");
  });

  test("CONFIG_DOCS documents every variable once, with defaults that parse", () => {
    const names = CONFIG_DOCS.map((d) => d.name);
    assert.equal(new Set(names).size, names.length);
    assert.equal(names.length, 47);
    const env: Record<string, string> = { ...BASE };
    for (const doc of CONFIG_DOCS) if (doc.default !== undefined) env[doc.name] = doc.default;
    assert.doesNotThrow(() => parseConfig(env));
    const table = configDocsMarkdown();
    for (const name of names) assert.ok(table.includes(`\`${name}\``));
  });
});
