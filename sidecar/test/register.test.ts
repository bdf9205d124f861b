// Registration against the cluster on an in-process Hardhat chain: the first registration, the
// restart no-op, and every refusal with its retry decision and the log line an operator sees.
import assert from "node:assert/strict";
import { before, describe, test } from "node:test";
import { createKmsRoot, createSimulatedCvm } from "@attestmesh/devnet/dstack-sim/simulator.ts";
import { clusterAbi } from "@attestmesh/shared/contracts/abi.ts";
import { isAttestmeshError } from "@attestmesh/shared/errors.ts";
import {
  custom,
  encodeAbiParameters,
  encodeEventTopics,
  getAbiItem,
  type Hex,
  hexToBytes,
  keccak256,
  parseEventLogs,
  toHex,
} from "viem";
import { generatePrivateKey } from "viem/accounts";
import {
  type ClusterFixture,
  randomAppId,
  SIMULATED_CLAIMS,
  setupCluster,
  signRegistration,
  simulatedNode,
} from "../../test/helpers/cluster.ts";
import { type ChainContext, connectChain } from "../src/chain/client.ts";
import { createDirectWriter } from "../src/chain/directWriter.ts";
import { countingTransport, createRpcTally } from "../src/chain/transport.ts";
import type { ClusterWriter, ReceiptLog } from "../src/chain/writer.ts";
import { deriveNodeKeys, type NodeKeys } from "../src/keys.ts";
import type { Member } from "../src/model/member.ts";
import {
  claimedRecord,
  classifyRegistrationError,
  ensureRegistered,
  type RegisterOptions,
  readRuntimeClaims,
  registerOnce,
} from "../src/register.ts";
import { secret } from "../src/secret.ts";
import { captureLogger, simulatorKeySource, testRegisterOptions, waitFor } from "./helpers.ts";

/** Hardhat's well-known account #1 (a relayer that pays gas). */
const GAS_KEY: Hex = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";

async function nodeKeys(fx: ClusterFixture, appId = randomAppId()): Promise<NodeKeys> {
  return deriveNodeKeys(
    simulatorKeySource(createSimulatedCvm({ kmsRoot: fx.kmsRoot, appId: hexToBytes(appId) })),
  );
}

describe("registration", () => {
  let fx: ClusterFixture;
  let chain: ChainContext;
  const tally = createRpcTally();

  function writerFor(c: ChainContext): ClusterWriter | undefined {
    return c.wallet === undefined
      ? undefined
      : createDirectWriter({ chain: c, wallet: c.wallet, logger: captureLogger().logger });
  }

  function options(keys: NodeKeys, overrides: Partial<RegisterOptions> = {}): RegisterOptions {
    return {
      ...testRegisterOptions({
        chain,
        writer: writerFor(overrides.chain ?? chain),
        keys,
        claims: SIMULATED_CLAIMS,
      }),
      ...overrides,
    };
  }

  async function registeredEvents(appId: Hex) {
    const logs = await fx.publicClient.getLogs({ address: fx.deployed.diamond, fromBlock: 0n });
    return parseEventLogs({ abi: clusterAbi, logs, eventName: "MemberRegistered" }).filter(
      (log) => log.args.appId.toLowerCase() === appId.toLowerCase(),
    );
  }

  before(async () => {
    fx = await setupCluster();
    chain = await connectChain({
      transport: countingTransport(custom(fx.connection.provider, { retryCount: 0 }), tally.record),
      cluster: fx.deployed.diamond,
      gasKey: secret(GAS_KEY),
    });
  });

  test("registers once; a restart finds the record and sends nothing", async () => {
    const keys = await nodeKeys(fx);
    await fx.owner.write.addAppId([keys.appId]);
    // The reconciler is woken the moment the record is on chain, before the member id is read back.
    const calls = () => tally.byMethod().eth_call ?? 0;
    const included: number[] = [];
    const claimed: (Member | undefined)[] = [];
    tally.reset();
    const first = await registerOnce(
      options(keys, {
        onIncluded: (record) => {
          included.push(calls());
          claimed.push(record);
        },
      }),
    );
    assert.equal(first.submitted, true);
    assert.equal(included.length, 1, "onIncluded is called once the registration succeeded");
    assert.ok(calls() > included[0]!, "the member id is read after onIncluded");
    // The receipt's MemberRegistered log, as the direct writer's RPC returned it: the claim agrees with
    // the chain's record.
    const record0 = await fx.owner.read.member([first.memberId]);
    assert.equal(claimed[0]?.memberId, first.memberId);
    assert.equal(claimed[0]?.meshIp, record0.meshIp);
    assert.equal(claimed[0]?.wireguardKey, keys.wireguard.publicKey);
    assert.ok(first.txHash);
    const record = await fx.owner.read.member([first.memberId]);
    assert.equal(record.memberKey, keys.member.address);
    assert.equal(record.wireguardKey, keys.wireguard.publicKey);
    assert.equal(record.identityKey, keys.identity.publicKey);
    assert.equal(record.status, 1);

    tally.reset();
    const again = await registerOnce(options(keys, { onIncluded: () => included.push(calls()) }));
    assert.deepEqual(again, { memberId: first.memberId, submitted: false });
    assert.equal(included.length, 1, "nothing was included on restart: onIncluded is not called");
    assert.equal(tally.byMethod().eth_sendRawTransaction, undefined, "no transaction on restart");
    assert.equal((await registeredEvents(keys.appId)).length, 1);
  });

  test("a node on guest API v1 registers with its v1 chain; the contract records its v1 keys", async () => {
    const appId = randomAppId();
    const cvm = createSimulatedCvm({ kmsRoot: fx.kmsRoot, appId: hexToBytes(appId) });
    const keys = await deriveNodeKeys({
      appId: async () => appId,
      getKey: async (_path, purpose, algorithm) => ({
        ...cvm.getKeyV1(purpose, algorithm),
        guestApiVersion: 1,
      }),
    });
    assert.equal(keys.member.proof.guestApiVersion, 1);
    await fx.owner.write.addAppId([keys.appId]);
    const registration = await registerOnce(options(keys));
    assert.equal(registration.submitted, true);
    const record = await fx.owner.read.member([registration.memberId]);
    assert.equal(record.memberKey, keys.member.address);
    assert.equal(record.identityKey, toHex(cvm.getKeyV1("attestmesh-identity-v1", "ed25519").publicKey));
  });

  test("AppIdNotAllowed: logged with the fix, retried with backoff, joins once the owner allows it", async () => {
    const keys = await nodeKeys(fx);
    const { logger, lines } = captureLogger();
    const outcomes: string[] = [];
    const pending = ensureRegistered(options(keys, { logger, onAttempt: (o) => outcomes.push(o) }));
    // Two refused attempts, however long a loaded machine takes over them (a fixed 2 s of polling let
    // the owner allow the app id after one, and the test then failed counting refusals).
    await waitFor("two refused attempts", () => outcomes.length >= 2);
    const refusal = lines().find((l) => l.refusal === "AppIdNotAllowed");
    assert.ok(refusal, "the refusal is logged by name");
    assert.equal(refusal.level, 40);
    assert.match(
      refusal.msg,
      /^registration refused: AppIdNotAllowed; the cluster owner must allow app id 0x[0-9a-fA-F]{40}/,
    );
    assert.ok(String(refusal.fix).includes(keys.appId));
    assert.ok(typeof refusal.retryInMs === "number" && refusal.retryInMs <= 50);

    await fx.owner.write.addAppId([keys.appId]);
    const registration = await pending;
    assert.ok(registration?.submitted);
    assert.ok(outcomes.filter((o) => o === "AppIdNotAllowed").length >= 2);
    assert.equal(outcomes.at(-1), "registered");
  });

  test("AppIdRevoked is fatal, with the way out", async () => {
    const keys = await nodeKeys(fx);
    await fx.owner.write.revokeAppId([keys.appId, keccak256(toHex("test"))]);
    const { logger, lines } = captureLogger();
    await assert.rejects(ensureRegistered(options(keys, { logger })), (error: unknown) => {
      assert.ok(isAttestmeshError(error, "AppIdRevoked"));
      assert.equal(error.retryable, false);
      assert.match(error.message, /revoked at .*permanent.*new app id/);
      return true;
    });
    assert.ok(lines().some((l) => l.refusal === "AppIdRevoked" && l.level === 50));
  });

  test("AppIdHasMember: the app id's active member has other keys; fatal, nothing sent", async () => {
    const appId = randomAppId();
    // Same app id, so the same member key, but another WireGuard key than this node derives.
    const other = simulatedNode(fx.kmsRoot, appId);
    const otherWireguardKey = keccak256(toHex("another WireGuard key"));
    await fx.owner.write.addAppId([appId]);
    const nonce = await fx.owner.read.registrationNonce([appId]);
    const signature = await signRegistration(fx, other, { nonce, wireguardKey: otherWireguardKey });
    await fx.relayer.write.register([
      other.proof,
      otherWireguardKey,
      other.identityKey,
      other.claims,
      signature,
    ]);
    const keys = await nodeKeys(fx, appId);
    tally.reset();
    await assert.rejects(ensureRegistered(options(keys)), { code: "AppIdHasMember", retryable: false });
    assert.equal(tally.byMethod().eth_sendRawTransaction, undefined);
  });

  test("no gas key and not a member: fatal GasKeyMissing naming the variable", async () => {
    const keys = await nodeKeys(fx);
    await fx.owner.write.addAppId([keys.appId]);
    const withoutGas = { ...chain, wallet: undefined };
    await assert.rejects(ensureRegistered(options(keys, { chain: withoutGas })), (error: unknown) => {
      assert.ok(isAttestmeshError(error, "GasKeyMissing"));
      assert.match(error.message, /ATTESTMESH_GAS_KEY/);
      return true;
    });
  });

  test("an unfunded gas key is a retryable GasKeyUnfunded naming the account; nothing is sent", async () => {
    const keys = await nodeKeys(fx);
    await fx.owner.write.addAppId([keys.appId]);
    const unfunded = await connectChain({
      transport: custom(fx.connection.provider, { retryCount: 0 }),
      cluster: fx.deployed.diamond,
      gasKey: secret(generatePrivateKey()),
    });
    const blockBefore = await fx.publicClient.getBlockNumber();
    await assert.rejects(registerOnce(options(keys, { chain: unfunded })), (error: unknown) => {
      assert.ok(isAttestmeshError(error, "GasKeyUnfunded"));
      assert.equal(error.retryable, true);
      assert.ok(error.message.includes(unfunded.wallet!.account.address));
      return true;
    });
    assert.equal(await fx.publicClient.getBlockNumber(), blockBefore);
  });

  test("shutdown during the backoff wait resolves undefined", async () => {
    const keys = await nodeKeys(fx);
    const controller = new AbortController();
    const pending = ensureRegistered(
      options(keys, { signal: controller.signal, backoff: { initialMs: 60_000, maxMs: 60_000 } }),
    );
    setTimeout(() => controller.abort(), 100);
    assert.equal(await pending, undefined);
  });

  test("an unreachable chain is a retryable RpcError", () => {
    const refusal = classifyRegistrationError(new TypeError("fetch failed"), {
      keys: {} as NodeKeys,
      chain,
    });
    assert.equal(refusal.code, "RpcError");
    assert.equal(refusal.retryable, true);
  });

  test("a receipt claims this node's record only with the cluster's MemberRegistered log carrying all of its keys", async () => {
    // A lying RPC (or bundler) answers the receipt: its log is used ahead of the membership view only
    // when it is the cluster's and names exactly this node's app id, member key, WireGuard and identity
    // keys; another node's record, or one carrying another key, is no claim of this node's.
    const keys = await nodeKeys(fx);
    const other = await nodeKeys(fx);
    const logOf = (args: {
      memberId: bigint;
      appId: Hex;
      memberKey: Hex;
      wireguardKey: Hex;
      identityKey: Hex;
      meshIp: number;
    }): ReceiptLog => {
      const event = getAbiItem({ abi: clusterAbi, name: "MemberRegistered" });
      return {
        address: fx.deployed.diamond,
        topics: encodeEventTopics({
          abi: clusterAbi,
          eventName: "MemberRegistered",
          args: { memberId: args.memberId, appId: args.appId, memberKey: args.memberKey },
        }) as Hex[],
        data: encodeAbiParameters(
          event.inputs.filter((input) => !input.indexed),
          [args.wireguardKey, args.identityKey, args.meshIp, keys.kmsSigner],
        ),
      };
    };
    const own = {
      memberId: 41n,
      appId: keys.appId,
      memberKey: keys.member.address,
      wireguardKey: keys.wireguard.publicKey,
      identityKey: keys.identity.publicKey,
      meshIp: 0x0a4d0029,
    };
    const claim = claimedRecord([logOf(own)], fx.deployed.diamond, keys);
    assert.equal(claim?.memberId, 41n);
    assert.equal(claim?.meshIp, 0x0a4d0029);
    assert.equal(claim?.status, "active");
    const refused: [string, ReceiptLog][] = [
      ["another contract's log", { ...logOf(own), address: keys.member.address }],
      ["another node's record", logOf({ ...own, appId: other.appId, memberKey: other.member.address })],
      ["this app id with another member key", logOf({ ...own, memberKey: other.member.address })],
      [
        "this node's keys but another WireGuard key",
        logOf({ ...own, wireguardKey: other.wireguard.publicKey }),
      ],
      ["this node's keys but another identity key", logOf({ ...own, identityKey: other.identity.publicKey })],
      ["not a MemberRegistered log", { ...logOf(own), topics: [`0x${"11".repeat(32)}`] }],
    ];
    for (const [what, log] of refused) {
      assert.equal(claimedRecord([log], fx.deployed.diamond, keys), undefined, what);
    }
    assert.equal(
      claimedRecord([], fx.deployed.diamond, keys),
      undefined,
      "a receipt without logs claims nothing",
    );
    // Among others, its own log is found.
    assert.equal(claimedRecord([refused[1]![1], logOf(own)], fx.deployed.diamond, keys)?.memberId, 41n);
  });
});

describe("registration on a cluster that does not accept the KMS root", () => {
  test("KmsRootNotAllowed is retryable and names the root and the owner's fix", async () => {
    const fx = await setupCluster({ kmsRoots: ["0x000000000000000000000000000000000000dEaD"] });
    const chain = await connectChain({
      transport: custom(fx.connection.provider, { retryCount: 0 }),
      cluster: fx.deployed.diamond,
      gasKey: secret(GAS_KEY),
    });
    const keys = await nodeKeys(fx);
    await fx.owner.write.addAppId([keys.appId]);
    const error = await registerOnce(
      testRegisterOptions({
        chain,
        writer: createDirectWriter({ chain, wallet: chain.wallet!, logger: captureLogger().logger }),
        keys,
        claims: SIMULATED_CLAIMS,
      }),
    ).then(
      () => assert.fail("expected a refusal"),
      (e: unknown) => e,
    );
    const refusal = classifyRegistrationError(error, { keys, chain });
    assert.equal(refusal.code, "KmsRootNotAllowed");
    assert.equal(refusal.retryable, true);
    assert.ok(refusal.fix.includes(fx.kmsRoot.address));
    assert.match(refusal.fix, /must allow KMS root/);
  });
});

describe("runtime claims", () => {
  test("read from the guest agent's Info: the compose hash and device id the CVM reports", async () => {
    const deviceId = new Uint8Array(32).fill(7);
    const cvm = createSimulatedCvm({
      kmsRoot: createKmsRoot(),
      appId: hexToBytes(randomAppId()),
      deviceId,
    });
    assert.deepEqual(await readRuntimeClaims(simulatorKeySource(cvm)), {
      composeHash: SIMULATED_CLAIMS.composeHash,
      deviceId: toHex(deviceId),
    });
  });

  test("a key source that cannot read Info is a fatal, named error", async () => {
    const { info: _info, ...keysOnly } = simulatorKeySource(
      createSimulatedCvm({ kmsRoot: createKmsRoot(), appId: hexToBytes(randomAppId()) }),
    );
    await assert.rejects(readRuntimeClaims(keysOnly), { code: "InfoUnavailable", retryable: false });
  });
});
