// A lying RPC against real sidecars. A pass-through JSON-RPC proxy in front of Hardhat injects a fake
// "active" member with the attacker's keys into every `members` page and `member(id)` answer — and,
// to go the whole way, forges that member's MemberRegistered log and registration transaction with a
// key chain from the attacker's own (unpinned) KMS root — and forges a MessageSent "from" member A to
// member B that A never sent. The attacker also sends CSK requests and heartbeats as the fake member.
// At every sample (not only at the end): the fake key is never a WireGuard peer, no CSK answer (sealed
// or not) ever reaches the attacker, no heartbeat is attributed to it, and the forged message is never
// delivered; meanwhile the honest mesh forms, and the refusal is visible in logs and metrics.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { createSocket } from "node:dgram";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { simulatedNodeKeysV1 } from "@attestmesh/devnet/dstack-sim/node.ts";
import { startDstackSimulator } from "@attestmesh/devnet/dstack-sim/server.ts";
import { createKmsRoot, createSimulatedCvm } from "@attestmesh/devnet/dstack-sim/simulator.ts";
import { devnetAppCompose } from "@attestmesh/devnet/orchestration/dstackSim.ts";
import { clusterAbi } from "@attestmesh/shared/contracts/abi.ts";
import { memberDomain, memberTypes } from "@attestmesh/shared/contracts/typedData.ts";
import { IDENTITY_KEY } from "@attestmesh/shared/keys/purposes.ts";
import { ipToNumber, numberToIp } from "@attestmesh/shared/mesh/cidr.ts";
import type { PinnedTrust } from "@attestmesh/shared/service/pinned.ts";
import { sha256 } from "@noble/hashes/sha2";
import { Registry } from "prom-client";
import {
  type Address,
  bytesToHex,
  custom,
  decodeFunctionData,
  decodeFunctionResult,
  encodeAbiParameters,
  encodeFunctionData,
  encodeFunctionResult,
  getAbiItem,
  type Hex,
  hexToBytes,
  keccak256,
  pad,
  toEventSelector,
  toFunctionSelector,
  toHex,
} from "viem";
import { createMemberApp, fixtureTrust } from "../../../test/helpers/certs.ts";
import {
  admit,
  type ClusterFixture,
  SIMULATED_CLAIMS,
  type SimulatedNode,
  setupCluster,
  signRegistration,
  simulatedNode,
} from "../../../test/helpers/cluster.ts";
import { serveRpc } from "../../../test/helpers/rpcServer.ts";
import { createMemberCertifier } from "../../src/certs/certifier.ts";
import { createCertifiedFollower, type OwnRecord } from "../../src/certs/follower.ts";
import { type CertificateSource, createChainCertificateSource } from "../../src/certs/source.ts";
import { type ChainContext, connectChain } from "../../src/chain/client.ts";
import { createClusterReader } from "../../src/chain/cluster.ts";
import {
  createMembershipFollower,
  type MembershipSnapshot,
  type RegistrationLocation,
  type RegistrationSeen,
} from "../../src/chain/follower.ts";
import { countingTransport, createRpcTally, type RpcTally } from "../../src/chain/transport.ts";
import { parseConfig } from "../../src/config.ts";
import { encodeRequest } from "../../src/csk/codec.ts";
import { type Sidecar, startSidecar } from "../../src/main.ts";
import { loadSodium, signingKeyFromSeed } from "../../src/meshnet/crypto.ts";
import { loopbackFor } from "../../src/meshnet/socket.ts";
import { sealMessage } from "../../src/messages/envelope.ts";
import type { Member } from "../../src/model/member.ts";
import { createMemoryBackend, type MemoryBackend } from "../../src/wireguard/memory.ts";
import {
  type CapturedLogger,
  captureLogger,
  freePort,
  gossipHeartbeat,
  TEST_SIDECAR_ENV,
} from "../helpers.ts";

const KEYS: readonly Hex[] = [
  "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
  "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
];

const MEMBERS = toFunctionSelector("members(uint64,uint256)");
const MEMBER = toFunctionSelector("member(uint64)");
const MEMBER_REGISTERED = toEventSelector(
  getAbiItem({ abi: clusterAbi, name: "MemberRegistered" }) as Parameters<typeof toEventSelector>[0],
);
const MESSAGE_SENT = toEventSelector(
  getAbiItem({ abi: clusterAbi, name: "MessageSent" }) as Parameters<typeof toEventSelector>[0],
);
const FAKE_TX: Hex = `0x${"de".repeat(32)}`;

interface Node {
  readonly name: string;
  readonly sidecar: Sidecar;
  readonly backend: MemoryBackend;
  readonly log: CapturedLogger;
}

type KmsRoot = ReturnType<typeof createKmsRoot>;

/**
 * A sidecar on a simulated CVM (its KMS root, app id and compose) with an in-memory WireGuard backend,
 * reading the chain at `rpcUrl`; its simulator and its stop are queued on `closers`.
 */
async function startSimulatedNode(options: {
  readonly name: string;
  readonly dir: string;
  readonly kmsRoot: KmsRoot;
  readonly appId: Address;
  readonly appCompose: string;
  readonly rpcUrl: string;
  readonly cluster: Address;
  readonly gasKey: Hex;
  readonly meshPort: number;
  readonly env?: Record<string, string>;
  readonly closers: Array<() => Promise<unknown>>;
}): Promise<Node> {
  const { name, closers } = options;
  const socketPath = join(options.dir, `${name}.sock`);
  const sim = await startDstackSimulator({
    socketPath,
    cvm: createSimulatedCvm({
      kmsRoot: options.kmsRoot,
      appId: hexToBytes(options.appId),
      appCompose: options.appCompose,
    }),
    logger: captureLogger("silent").logger,
  });
  closers.push(() => sim.close());
  const backend = createMemoryBackend();
  const log = captureLogger();
  const sidecar = await startSidecar(
    parseConfig({
      ATTESTMESH_RPC_URL: options.rpcUrl,
      ATTESTMESH_CLUSTER: options.cluster,
      ATTESTMESH_CONFIRMATIONS: "0",
      ATTESTMESH_POLL_INTERVAL_MS: "200",
      ATTESTMESH_GAS_KEY: options.gasKey,
      DSTACK_SIMULATOR_ENDPOINT: socketPath,
      ...TEST_SIDECAR_ENV,
      ATTESTMESH_MESH_PORT: String(options.meshPort),
      ...options.env,
    }),
    { logger: log.logger, backend, initialBackoffMs: 100 },
  );
  closers.push(async () => {
    await sidecar.stop("test over");
    await sidecar.done.catch(() => {});
  });
  return { name, sidecar, backend, log };
}

/** Quick heartbeats, so that liveness settles within the tests' sampling. */
const FAST_HEARTBEATS = { ATTESTMESH_HEARTBEAT_INTERVAL_MS: "250", ATTESTMESH_HEARTBEAT_TIMEOUT_MS: "1500" };

/**
 * What the describes of real sidecars here share, set up by `open` (in `before`) and taken down by
 * `close` (in `after`): a cluster on an in-process chain with the trust values its nodes' compose pins,
 * a folder, a mesh port, one RPC endpoint in front of the chain that answers with `request` (absent:
 * the chain's own answer), and `closers`, run in reverse by `close`.
 */
function sidecarScene(dirPrefix: string, request?: (method: string, params: unknown[]) => Promise<unknown>) {
  const closers: Array<() => Promise<unknown>> = [];
  let fx: ClusterFixture | undefined;
  let trust: PinnedTrust | undefined;
  let dir: string | undefined;
  let meshPort: number | undefined;
  let rpc: Awaited<ReturnType<typeof serveRpc>> | undefined;
  let composeAllowed = false;
  const opened = <T>(value: T | undefined): T => {
    assert.ok(value !== undefined, "the scene is not open");
    return value;
  };
  return {
    closers,
    get fx() {
      return opened(fx);
    },
    get trust() {
      return opened(trust);
    },
    get meshPort() {
      return opened(meshPort);
    },
    async open(): Promise<ClusterFixture> {
      await loadSodium();
      const cluster = await setupCluster();
      fx = cluster;
      trust = await fixtureTrust(cluster);
      dir = await mkdtemp(join(tmpdir(), dirPrefix));
      meshPort = await freePort();
      rpc = await serveRpc({
        request: ({ method, params }) =>
          request === undefined
            ? cluster.connection.provider.request({ method, params: params ?? [] })
            : request(method, params ?? []),
      });
      return cluster;
    },
    async close(): Promise<void> {
      for (const close of closers.reverse()) await close().catch(() => {});
      await rpc?.close();
      if (dir) await rm(dir, { recursive: true, force: true });
    },
    /** The nodes' compose: the trust values and the one RPC provider, the scene's; allowed on chain once. */
    async compose(): Promise<string> {
      const compose = devnetAppCompose("v0", {
        ...opened(trust),
        providers: [new URL(opened(rpc).url).origin],
      });
      if (!composeAllowed) {
        const hash = toHex(sha256(new TextEncoder().encode(compose)));
        await opened(fx).publicClient.waitForTransactionReceipt({
          hash: await opened(fx).owner.write.addComposeHash([hash]),
        });
        composeAllowed = true;
      }
      return compose;
    },
    /**
     * A sidecar named `name` paying gas with `gasKey`, on a simulated CVM of `appId` (absent: a new member
     * app) under `kmsRoot` (absent: the cluster's) with the nodes' compose.
     */
    async startNode(
      name: string,
      gasKey: Hex,
      options: { kmsRoot?: KmsRoot; appId?: Address; env?: Record<string, string> } = {},
    ): Promise<Node> {
      const cluster = opened(fx);
      return startSimulatedNode({
        name,
        dir: opened(dir),
        kmsRoot: options.kmsRoot ?? cluster.kmsRoot,
        appId: options.appId ?? (await createMemberApp(cluster)).appId,
        appCompose: await this.compose(),
        rpcUrl: opened(rpc).url,
        cluster: cluster.deployed.diamond,
        gasKey,
        meshPort: opened(meshPort),
        ...(options.env === undefined ? {} : { env: options.env }),
        closers,
      });
    },
  };
}

const healthy = (n: Node) => n.sidecar.status().phase === "healthy";

/** A node's last warnings and errors, one JSON line each: for a failure message. */
function logTail(node: Node): string {
  return node.log
    .lines()
    .filter((l) => l.level >= 40)
    .slice(-8)
    .map((l) => JSON.stringify(l))
    .join("\n");
}

/** A member the chain lists (or a lying provider makes up) whose keys are the attacker's own. */
interface Impostor {
  readonly memberId: bigint;
  readonly meshIp: string;
  /** Its Ed25519 identity key's seed: it signs CSK requests and heartbeats as the member. */
  readonly identitySeed: Uint8Array;
  readonly wireguardKey: Hex;
}

/** What attackThroughout needs of the test's cluster. */
interface Scene {
  readonly fx: ClusterFixture;
  readonly meshPort: number;
  readonly closers: Array<() => Promise<unknown>>;
}

/**
 * An attack on the honest nodes `a` and `b` by an `impostor` from its own mesh endpoint, checked at every
 * sample, until `settled` and for 30 samples more, attacking the settled mesh; returns the samples.
 *
 * Every 100 ms: `step`, then the attack (a CSK request for epochs 0 and 1 and a gossip heartbeat at
 * `heartbeatEpoch` to each node that has its member id and mesh address), then the check (the impostor
 * is no node's WireGuard peer — `names[0]` in failures — no heartbeat is attributed to it — `names[1]` —
 * no CSK answer reached it, B delivered no message), then a completed handshake with every peer the
 * nodes' chain views made (WireGuard is in memory; the check ran first). Fails after `ms` with
 * `state()` and each node's last warnings. Its socket is closed with the nodes (`closers`).
 */
async function attackThroughout(
  [a, b]: readonly [Node, Node],
  scene: Scene,
  options: {
    readonly settled: () => boolean | Promise<boolean>;
    readonly impostor: Impostor;
    readonly heartbeatEpoch: bigint;
    readonly names: readonly [key: string, member: string];
    readonly step: () => Promise<void>;
    readonly ms: number;
    readonly state: () => string;
  },
): Promise<number> {
  const { impostor } = options;
  const { meshPort } = scene;
  const cluster = { chainId: scene.fx.chainId, cluster: scene.fx.deployed.diamond };
  const socket = createSocket("udp4");
  await new Promise<void>((resolve) => socket.bind(meshPort, loopbackFor(impostor.meshIp), resolve));
  const answers: Buffer[] = [];
  socket.on("message", (m) => answers.push(m));
  const key = signingKeyFromSeed(Uint8Array.from(impostor.identitySeed));
  scene.closers.push(async () => {
    socket.close();
    key.destroy();
  });
  let incarnation = 0n;
  const attack = () => {
    for (const node of [a, b]) {
      const s = node.sidecar.status();
      if (s.memberId === undefined || s.meshIp === undefined) continue;
      const target = loopbackFor(s.meshIp);
      for (const epoch of [0n, 1n]) {
        const request = encodeRequest(
          {
            ...cluster,
            requesterId: impostor.memberId,
            serverId: s.memberId,
            epoch,
            timestampMs: BigInt(Date.now()),
            nonce: new Uint8Array(randomBytes(16)),
          },
          key.sign,
        );
        socket.send(request, meshPort, target);
      }
      incarnation += 1n;
      const heartbeat = gossipHeartbeat(
        {
          ...cluster,
          senderId: impostor.memberId,
          incarnation,
          epoch: options.heartbeatEpoch,
          holdsCsk: false,
        },
        key.sign,
      );
      socket.send(heartbeat, meshPort, target);
    }
  };

  const wireguardKey = Buffer.from(hexToBytes(impostor.wireguardKey)).toString("base64");
  let samples = 0;
  /** Every invariant, checked at every sample. */
  const check = async () => {
    samples += 1;
    for (const node of [a, b]) {
      const peers = node.backend.interface === undefined ? [] : await node.backend.peers();
      assert.ok(
        peers.every((p) => p.publicKey !== wireguardKey),
        `sample ${samples}: ${node.name} has ${options.names[0]} as a WireGuard peer`,
      );
      assert.ok(
        node.sidecar.peers.peers().every((p) => p.memberId !== impostor.memberId),
        `sample ${samples}: ${node.name} attributed a heartbeat to ${options.names[1]}`,
      );
    }
    assert.equal(answers.length, 0, `sample ${samples}: a CSK answer reached the attacker`);
    const delivered = (await b.sidecar.metrics.registry.metrics())
      .split("\n")
      .find((l) => l.startsWith("attestmesh_messages_received_total "));
    assert.equal(
      delivered ?? "attestmesh_messages_received_total 0",
      "attestmesh_messages_received_total 0",
      `sample ${samples}: B delivered a message`,
    );
  };

  const deadline = Date.now() + options.ms;
  while (!(await options.settled())) {
    if (Date.now() >= deadline) assert.fail(`${options.state()}\n${logTail(a)}\n${logTail(b)}`);
    await options.step();
    attack();
    await check();
    for (const node of [a, b]) {
      if (node.backend.interface === undefined) continue;
      for (const peer of await node.backend.peers()) {
        if (peer.latestHandshake === 0)
          node.backend.setHandshake(peer.publicKey, Math.floor(Date.now() / 1000));
      }
    }
    await delay(100);
  }
  for (let i = 0; i < 30; i++) {
    attack();
    await check();
    await delay(100);
  }
  return samples;
}

/** The two honest members are each other's only WireGuard peer. */
async function assertOnlyEachOther(a: Node, b: Node): Promise<void> {
  const keyOf = (n: Node) => n.sidecar.status().wireguardPublicKey;
  assert.deepEqual(
    (await a.backend.peers()).map((p) => p.publicKey),
    [keyOf(b)],
  );
  assert.deepEqual(
    (await b.backend.peers()).map((p) => p.publicKey),
    [keyOf(a)],
  );
}

describe("a lying RPC cannot make a non-TEE key a peer, get it the CSK, or attribute a message", {
  timeout: 240_000,
}, () => {
  // The one RPC provider is a lying proxy in front of the chain.
  const scene = sidecarScene("am-lying-", lie);
  let fx: ClusterFixture;

  // The attacker: its own KMS root (not pinned), a genuine member app of the cluster that no TEE booted,
  // and the keys a CVM under its KMS derives for that app id.
  const rogueKms = createKmsRoot(new Uint8Array(randomBytes(32)));
  const FAKE_ID = 900n;
  const FAKE_MESH_IP = "10.77.200.200";
  let fakeApp: Address;
  let fake: {
    identitySeed: Uint8Array;
    identityKey: Hex;
    wireguardKey: Hex;
    memberKey: Address;
    registerInput: Hex;
  };
  /** The forged MessageSent, once the proxy served it. */
  let forgedServed = false;
  let forgedEnvelope: Hex;
  const members: { a?: bigint; b?: bigint } = {};
  let bIdentityKey: Hex | undefined;

  function fakeView() {
    return {
      memberId: FAKE_ID,
      appId: fakeApp,
      memberKey: fake.memberKey,
      wireguardKey: fake.wireguardKey,
      identityKey: fake.identityKey,
      meshIp: ipToNumber(FAKE_MESH_IP),
      status: 1,
      registeredAt: 1,
      endedAt: 0,
      endReason: 0,
    };
  }

  /** What the lying provider answers: Hardhat's answer, with the attacker's additions. */
  async function lie(method: string, params: unknown[]): Promise<unknown> {
    const provider = fx.connection.provider;
    if (method === "eth_getTransactionByHash" && params[0] === FAKE_TX) {
      const real = (await provider.request({ method: "eth_getBlockByNumber", params: ["latest", true] })) as {
        transactions: Record<string, unknown>[];
      };
      const template = real.transactions[0] ?? {};
      return { ...template, hash: FAKE_TX, input: fake.registerInput };
    }
    const result = await provider.request({ method, params });
    if (method === "eth_call") {
      const call = params[0] as { to?: string; data?: Hex; input?: Hex };
      const data = call.data ?? call.input;
      if (data?.startsWith(MEMBERS)) {
        const [page, nextId] = decodeFunctionResult({
          abi: clusterAbi,
          functionName: "members",
          data: result as Hex,
        });
        return encodeFunctionResult({
          abi: clusterAbi,
          functionName: "members",
          result: [[...page, fakeView()], nextId],
        });
      }
      if (data?.startsWith(MEMBER)) {
        const { args } = decodeFunctionData({ abi: clusterAbi, data });
        if (args?.[0] === FAKE_ID) {
          return encodeFunctionResult({ abi: clusterAbi, functionName: "member", result: fakeView() });
        }
      }
    }
    if (method === "eth_getLogs") {
      const filter = params[0] as { topics?: (Hex | Hex[] | null)[]; fromBlock?: Hex; toBlock?: Hex };
      const topics = filter.topics ?? [];
      const logs = result as Record<string, unknown>[];
      const at =
        typeof filter.toBlock === "string" && filter.toBlock.startsWith("0x") ? filter.toBlock : "0x1";
      // A forged log names a real block (its real hash): the block agreement cannot tell it apart, so
      // what refuses it is the certificate and the sender signature.
      const block = await fx.publicClient.getBlock({ blockNumber: BigInt(at) }).catch(() => undefined);
      const base = {
        address: fx.deployed.diamond.toLowerCase(),
        blockNumber: at,
        blockHash: block?.hash ?? `0x${"ab".repeat(32)}`,
        transactionIndex: "0x0",
        logIndex: "0x63",
        removed: false,
      };
      if (topics[0] === MEMBER_REGISTERED && topics[2] === pad(fakeApp.toLowerCase() as Hex)) {
        return [
          ...logs,
          {
            ...base,
            transactionHash: FAKE_TX,
            topics: [
              MEMBER_REGISTERED,
              pad(toHex(FAKE_ID)),
              pad(fakeApp.toLowerCase() as Hex),
              pad(fake.memberKey.toLowerCase() as Hex),
            ],
            data: encodeAbiParameters(
              [{ type: "bytes32" }, { type: "bytes32" }, { type: "uint32" }, { type: "address" }],
              [fake.wireguardKey, fake.identityKey, ipToNumber(FAKE_MESH_IP), rogueKms.address],
            ),
          },
        ];
      }
      const recipient = members.b === undefined ? undefined : pad(toHex(members.b));
      if (
        topics[0] === MESSAGE_SENT &&
        topics[1] === recipient &&
        members.a !== undefined &&
        members.b !== undefined &&
        bIdentityKey !== undefined &&
        !forgedServed
      ) {
        forgedServed = true;
        forgedEnvelope = bytesToHex(randomBytes(32));
        const ciphertext = sealMessage(
          {
            header: {
              chainId: BigInt(fx.chainId),
              cluster: fx.deployed.diamond,
              senderId: members.a,
              recipientId: members.b,
              envelopeId: forgedEnvelope,
            },
            payload: new TextEncoder().encode("forged: A never sent this"),
          },
          bIdentityKey,
          fake.identitySeed,
        );
        return [
          ...logs,
          {
            ...base,
            transactionHash: `0x${"ef".repeat(32)}`,
            topics: [MESSAGE_SENT, recipient, pad(toHex(members.a)), forgedEnvelope],
            data: encodeAbiParameters([{ type: "bytes" }], [bytesToHex(ciphertext)]),
          },
        ];
      }
    }
    return result;
  }

  before(async () => {
    fx = await scene.open();
    ({ appId: fakeApp } = await createMemberApp(fx));
    const node = simulatedNode(rogueKms, fakeApp);
    const signature = await signRegistration(fx, node);
    fake = {
      identitySeed: node.identitySecret,
      identityKey: node.identityKey,
      wireguardKey: node.wireguardKey,
      memberKey: node.memberAccount.address,
      registerInput: encodeFunctionData({
        abi: clusterAbi,
        functionName: "register",
        args: [node.proof, node.wireguardKey, node.identityKey, SIMULATED_CLAIMS, signature],
      }),
    };
  });

  after(() => scene.close());

  test("the honest mesh forms; the injected member never becomes a peer, gets no CSK answer, is attributed nothing", async () => {
    const apps = [await createMemberApp(fx), await createMemberApp(fx)];
    const a = await scene.startNode("a", KEYS[0]!, { appId: apps[0]!.appId, env: FAST_HEARTBEATS });
    const b = await scene.startNode("b", KEYS[1]!, { appId: apps[1]!.appId, env: FAST_HEARTBEATS });

    // The attacker's own mesh endpoint: it asks for the CSK and sends heartbeats as the fake member.
    // Then it keeps attacking (and checking) for a while with the mesh healthy and the CSK held on both.
    const samples = await attackThroughout([a, b], scene, {
      settled: () => healthy(a) && healthy(b) && forgedServed,
      impostor: { ...fake, memberId: FAKE_ID, meshIp: FAKE_MESH_IP },
      heartbeatEpoch: 1n,
      names: ["the injected key", "the injected member"],
      step: async () => {
        const sa = a.sidecar.status();
        const sb = b.sidecar.status();
        if (sa.memberId !== undefined) members.a = sa.memberId;
        if (sb.memberId !== undefined) members.b = sb.memberId;
        if (bIdentityKey === undefined && members.b !== undefined) {
          bIdentityKey = (await fx.owner.read.member([members.b])).identityKey;
        }
      },
      ms: 60_000,
      state: () =>
        `the honest mesh did not form in time: a ${a.sidecar.status().phase}, b ${b.sidecar.status().phase}, forged message served ${forgedServed}`,
    });

    // The honest members are each other's only peer.
    await assertOnlyEachOther(a, b);
    assert.ok(samples > 10, `sampled ${samples} times`);

    // The refusal is visible: the named reason in a log line and in the metrics, and the CSK requests
    // were refused as not from a member.
    for (const node of [a, b]) {
      const line = node.log
        .lines()
        .find((l) => l.msg.startsWith("member not verified") && l.memberId === FAKE_ID.toString());
      assert.ok(line, `${node.name} logged the refusal`);
      assert.equal(line.reason, "KmsRootNotPinned");
      const text = await node.sidecar.metrics.registry.metrics();
      assert.match(text, /attestmesh_member_certificates_total\{result="KmsRootNotPinned"\} [1-9]/);
      assert.match(text, /attestmesh_unverified_members 1/);
      assert.match(text, /attestmesh_csk_requests_total\{outcome="not-a-member"\} [1-9]/);
      assert.match(text, /attestmesh_member_certificates_total\{result="verified"\} [1-9]/);
    }
    // The forged MessageSent reached B and was dropped: A's certified key did not sign it.
    const dropped = await b.sidecar.metrics.registry.metrics();
    assert.match(dropped, /attestmesh_messages_dropped_total\{reason="SenderSignatureInvalid"\} 1/);
    assert.ok(
      b.log.lines().some((l) => l.envelopeId === forgedEnvelope && l.reason === "SenderSignatureInvalid"),
      "B logged the forged message's refusal",
    );
  });
});

// The certified view over a real membership follower, certifier and chain certificate source: this
// node's own record counts with no certificate fetch, but only its exact record (a record a lying
// quorum made up with this node's keys under another id, or this id with any other key, is certified
// like any other, and refused); a member the follower saw register is certified from where its log was.
describe("the certified view: this node's own record, and the follower's registration hints", () => {
  let fx: ClusterFixture;
  let chain: ChainContext;
  let tally: RpcTally;
  let pinned: PinnedTrust;
  const admitted: { node: SimulatedNode; id: bigint }[] = [];

  const own = (i: number): OwnRecord => {
    const { node, id } = admitted[i]!;
    return {
      memberId: id,
      appId: node.appId,
      memberKey: node.memberAccount.address,
      wireguardKey: node.wireguardKey,
      identityKey: node.identityKey,
    };
  };

  async function admitWithApp(): Promise<{ node: SimulatedNode; id: bigint }> {
    const { appId } = await createMemberApp(fx);
    const node = simulatedNode(fx.kmsRoot, appId);
    return { node, id: await admit(fx, node) };
  }

  /** The sidecar's stack, with every certificate fetch recorded; `lie` rewrites what the quorum read. */
  function view(self: () => OwnRecord | undefined, lie?: (s: MembershipSnapshot) => MembershipSnapshot) {
    const logger = captureLogger().logger;
    const inner = createMembershipFollower({
      reads: chain.reads,
      cluster: chain.cluster,
      reader: createClusterReader(chain.reads, chain.cluster),
      confirmations: 0,
      logger,
    });
    const lying = lie === undefined ? inner : { ...inner, sync: async () => lie(await inner.sync()) };
    const source = createChainCertificateSource({
      client: chain.publicClient,
      reads: chain.reads,
      cluster: chain.cluster,
      logger,
    });
    const fetched: { memberId: bigint; hint: RegistrationLocation | undefined }[] = [];
    const prefetched: RegistrationSeen[] = [];
    const recorded: CertificateSource = (m, hint) => {
      fetched.push({ memberId: m.memberId, hint });
      return source(m, hint);
    };
    recorded.prefetch = (seen) => {
      prefetched.push(seen);
      source.prefetch?.(seen);
    };
    const certifier = createMemberCertifier({ pinned, source: recorded, logger, registry: new Registry() });
    return { follower: createCertifiedFollower(lying, certifier, self), fetched, prefetched, certifier };
  }

  before(async () => {
    fx = await setupCluster();
    pinned = await fixtureTrust(fx);
    tally = createRpcTally();
    chain = await connectChain({
      transport: countingTransport(custom(fx.connection.provider, { retryCount: 0 }), tally.record),
      cluster: fx.deployed.diamond,
      expectedChainId: fx.chainId,
    });
    for (let i = 0; i < 2; i++) admitted.push(await admitWithApp());
  });

  test("this node's own record counts with no certificate fetch; the other member is fetched and verified", async () => {
    const [a, b] = admitted;
    const { follower, fetched } = view(() => own(0));
    const snapshot = await follower.sync();
    assert.deepEqual([...snapshot.members.keys()], [a!.id, b!.id]);
    assert.deepEqual(
      fetched.map((f) => f.memberId),
      [b!.id],
    );
    // Before it registered (no member id yet), its record is certified like any other.
    const before = view(() => undefined);
    assert.deepEqual([...(await before.follower.sync()).members.keys()], [a!.id, b!.id]);
    assert.deepEqual(
      before.fetched.map((f) => f.memberId),
      [a!.id, b!.id],
    );
  });

  test("a made-up record with this node's keys under another id, or this id with any other key: certified, refused", async () => {
    const [a, b] = admitted;
    const A = own(0);
    const B = own(1);
    const FAKE_ID = 900n;
    const forgeries: [string, bigint, (m: Member) => Member][] = [
      ["this node's keys under another id", FAKE_ID, (m) => ({ ...m, memberId: FAKE_ID })],
      ["this id, another WireGuard key", a!.id, (m) => ({ ...m, wireguardKey: B.wireguardKey })],
      ["this id, another identity key", a!.id, (m) => ({ ...m, identityKey: B.identityKey })],
      ["this id, another member key", a!.id, (m) => ({ ...m, memberKey: B.memberKey })],
      ["this id, another app id", a!.id, (m) => ({ ...m, appId: B.appId })],
    ];
    for (const [what, id, forge] of forgeries) {
      const { follower, fetched, certifier } = view(
        () => A,
        (s) => {
          const members = new Map(s.members);
          members.set(id, forge(s.members.get(a!.id)!));
          return { ...s, members };
        },
      );
      const snapshot = await follower.sync();
      assert.equal(snapshot.members.has(id), false, `${what}: not in the view`);
      assert.equal(snapshot.members.has(b!.id), true, `${what}: the honest member still is`);
      assert.ok(
        fetched.some((f) => f.memberId === id),
        `${what}: its certificate was fetched and checked`,
      );
      assert.equal(certifier.unverified(), 1, `${what}: refused`);
    }
  });

  test("a member the follower saw register is certified from where its log was: no header search", async () => {
    const { follower, fetched, prefetched } = view(() => own(0));
    await follower.sync();
    const c = await admitWithApp();
    const [log] = await fx.publicClient.getLogs({
      address: fx.deployed.diamond,
      event: getAbiItem({ abi: clusterAbi, name: "MemberRegistered" }),
      args: { memberId: c.id },
      fromBlock: 0n,
      strict: true,
    });
    tally.reset();
    const snapshot = await follower.sync();
    assert.equal(snapshot.members.get(c.id)?.status, "active", "certified and in the view");
    assert.deepEqual(fetched.at(-1), {
      memberId: c.id,
      hint: { blockNumber: log!.blockNumber, transactionHash: log!.transactionHash },
    });
    const calls = tally.byMethod();
    // The follower's own agreed block is the only header read; the certificate: the transaction, its
    // receipt, isMemberApp, registrationNonce and one span for the salt.
    assert.equal(calls.eth_getBlockByNumber, 1, JSON.stringify(calls));
    assert.equal(calls.eth_getTransactionReceipt, 1, JSON.stringify(calls));
    assert.equal(calls.eth_getLogs, 2, `the follower's read and the salt's: ${JSON.stringify(calls)}`);
    // Those reads started when the follower read the log, before the record (issue 15), and the fetch
    // took them: none of them twice.
    assert.deepEqual(prefetched, [
      {
        memberId: c.id,
        appId: snapshot.members.get(c.id)!.appId,
        location: { blockNumber: log!.blockNumber, transactionHash: log!.transactionHash },
      },
    ]);
    assert.equal(calls.eth_getTransactionByHash, 1, JSON.stringify(calls));
  });

  test("this node's own registration starts no certificate reads; another's does", async () => {
    let self: OwnRecord | undefined;
    const { follower, prefetched } = view(() => self);
    await follower.sync();
    const d = await admitWithApp();
    admitted.push(d);
    self = own(admitted.length - 1);
    await follower.sync();
    assert.equal(prefetched.length, 0, "its own registration");
    const e = await admitWithApp();
    admitted.push(e);
    await follower.sync();
    assert.deepEqual(
      prefetched.map((p) => p.memberId),
      [e.id],
    );
  });
});

// Regression (own-record shortcut): a node whose own certificate every member refuses counted itself
// certified, since its own record passed on the strength of its key chains verified at start, which
// never compare the KMS signer with the compose's pins. The attacker: the operator points node A's CVM
// at a KMS whose root the owner's on-chain allowlist admits (so A registers) but the attested compose
// does not pin. At every sample A never counts itself (no mesh address, no interface, no peer, no CSK)
// and B never peers A; A says why, once, at error level.
describe("a node whose own certificate its peers refuse never counts itself certified", {
  timeout: 120_000,
}, () => {
  const scene = sidecarScene("am-own-");
  let fx: ClusterFixture;
  const rogueKms = createKmsRoot(new Uint8Array(randomBytes(32)));

  before(async () => {
    fx = await scene.open();
    // The owner's allowlist admits the rogue root (A registers), the compose pins only the cluster's.
    await fx.publicClient.waitForTransactionReceipt({
      hash: await fx.owner.write.addKmsRoot([rogueKms.address]),
    });
  });

  after(() => scene.close());

  test("attacker: A's chain is rooted in an unpinned KMS; A registers but is never in its own view", async () => {
    const a = await scene.startNode("a", KEYS[0]!, { kmsRoot: rogueKms });
    const b = await scene.startNode("b", KEYS[1]!);
    const aKey = () => a.sidecar.status().wireguardPublicKey;
    let samples = 0;
    const check = async () => {
      samples += 1;
      const s = a.sidecar.status();
      assert.equal(s.meshIp, undefined, `sample ${samples}: A configured its own mesh address`);
      assert.equal(s.interfaceUp, false, `sample ${samples}: A brought its interface up`);
      assert.equal(s.cskAcquired, false, `sample ${samples}: A holds a CSK`);
      assert.deepEqual(
        a.backend.interface === undefined ? [] : await a.backend.peers(),
        [],
        `sample ${samples}: A has peers`,
      );
      const key = aKey();
      const bPeers = b.backend.interface === undefined ? [] : await b.backend.peers();
      assert.ok(
        key === undefined || bPeers.every((p) => p.publicKey !== key),
        `sample ${samples}: B peered A`,
      );
    };
    const refusedOwn = (node: Node, id: bigint | undefined) =>
      id !== undefined &&
      node.log
        .lines()
        .some(
          (l) =>
            l.msg.startsWith("member not verified") &&
            l.memberId === id.toString() &&
            l.reason === "KmsRootNotPinned",
        );
    const deadline = Date.now() + 60_000;
    for (;;) {
      await check();
      const id = a.sidecar.status().memberId;
      if (refusedOwn(a, id) && refusedOwn(b, id) && b.sidecar.status().phase === "healthy") break;
      if (Date.now() >= deadline) {
        assert.fail(
          `not settled: A ${a.sidecar.status().phase} (member ${id}), B ${b.sidecar.status().phase}\n${logTail(a)}\n${logTail(b)}`,
        );
      }
      await delay(50);
    }
    // A stays out of its own view while its certificate is retried.
    for (let i = 0; i < 30; i++) {
      await check();
      await delay(50);
    }
    assert.ok(samples > 10, `sampled ${samples} times`);
    assert.notEqual(a.sidecar.status().phase, "healthy");
    const errors = a.log
      .lines()
      .filter((l) => l.level >= 50 && l.msg.startsWith("this node's own member certificate"));
    assert.equal(errors.length, 1, "A said why, once, at error level");
    assert.equal(errors[0]?.reason, "KmsRootNotPinned");
    assert.equal(errors[0]?.kmsRoot, rogueKms.address);
    // B, whose own certificate verified offline, never fetched it: the shortcut still spares the join.
    assert.ok(
      b.log.lines().some((l) => l.msg.startsWith("this node's own member certificate verified offline")),
      "B verified its own certificate offline",
    );
    const bCertificates = await b.sidecar.metrics.registry.metrics();
    assert.doesNotMatch(bCertificates, /attestmesh_member_certificates_total\{result="verified"\}/);
    assert.match(bCertificates, /attestmesh_member_certificates_total\{result="KmsRootNotPinned"\} [1-9]/);
  });
});

// Attacker (guest API pin): one CVM of an allowed app holds one app key and derives from it a v0 and a
// v1 member key, both with valid KMS chains from the pinned root; the contract admits either. The
// cluster's composes pin v0. The attacker registers its app's v1 member key on chain (a genuine member
// app, the pinned KMS root, an allowed compose hash: only the guest API is wrong), before the honest
// nodes start, so it holds the lowest member id. It then asks both honest nodes for the CSK and sends
// them heartbeats from its mesh address, and sends B a sealed message on chain signed by its v1 member
// key. At every sample: its key is never a WireGuard peer, no heartbeat is attributed to it, no CSK
// answer reaches it and B delivers nothing; the honest mesh forms, and each node says why, by reason.
describe("a member whose key chain is of the guest API the compose does not pin is never a peer", {
  timeout: 180_000,
}, () => {
  const scene = sidecarScene("am-guestapi-");
  let fx: ClusterFixture;
  let attackerApp: Address;
  let attacker: ReturnType<typeof simulatedNodeKeysV1> & { identitySeed: Uint8Array };
  let attackerId: bigint;
  let attackerMeshIp: string;

  before(async () => {
    fx = await scene.open();
    assert.equal(scene.trust.guestApi, "v0");
    // The attacker's CVM: a genuine member app under the pinned KMS root; its v1 keys, as /v1/GetKey
    // derives them on the same app key as its v0 keys.
    ({ appId: attackerApp } = await createMemberApp(fx));
    const cvm = createSimulatedCvm({ kmsRoot: fx.kmsRoot, appId: hexToBytes(attackerApp) });
    attacker = {
      ...simulatedNodeKeysV1(fx.kmsRoot, attackerApp),
      identitySeed: cvm.getKeyV1(IDENTITY_KEY.purpose, "ed25519").key,
    };
    const v0Member = simulatedNode(fx.kmsRoot, attackerApp).memberAccount.address;
    assert.notEqual(attacker.memberAccount.address, v0Member, "the v1 member key is another key");
    attackerId = await admit(fx, { ...simulatedNode(fx.kmsRoot, attackerApp), ...attacker });
    const record = await fx.owner.read.member([attackerId]);
    assert.equal(record.memberKey, attacker.memberAccount.address, "the chain admitted the v1 key");
    attackerMeshIp = numberToIp(record.meshIp);
  });

  after(() => scene.close());

  test("attacker: its v1 chain is refused (GuestApiNotPinned); no peer, no CSK, no heartbeat, no message, at any sample", async () => {
    const a = await scene.startNode("a", KEYS[0]!, { env: FAST_HEARTBEATS });
    const b = await scene.startNode("b", KEYS[1]!, { env: FAST_HEARTBEATS });

    /** A sealed message to B on chain, signed by the attacker's v1 member key; its envelope id. */
    let sentEnvelope: Hex | undefined;
    const sendToB = async (recipientId: bigint) => {
      const { identityKey } = await fx.owner.read.member([recipientId]);
      const envelopeId = bytesToHex(randomBytes(32));
      const ciphertext = bytesToHex(
        sealMessage(
          {
            header: {
              chainId: BigInt(fx.chainId),
              cluster: fx.deployed.diamond,
              senderId: attackerId,
              recipientId,
              envelopeId,
            },
            payload: new TextEncoder().encode("from a key no sidecar of the pinned compose holds"),
          },
          identityKey,
          attacker.identitySeed,
        ),
      );
      const signature = await attacker.memberAccount.signTypedData({
        domain: memberDomain(fx.chainId, fx.deployed.diamond),
        types: memberTypes,
        primaryType: "Send",
        message: { senderId: attackerId, recipientId, envelopeId, ciphertextHash: keccak256(ciphertext) },
      });
      const hash = await fx.stranger.write.send([attackerId, recipientId, envelopeId, ciphertext, signature]);
      assert.equal((await fx.publicClient.waitForTransactionReceipt({ hash })).status, "success");
      sentEnvelope = envelopeId;
    };

    const dropped = async () =>
      /attestmesh_messages_dropped_total\{reason="SenderNotVerified"\} 1/.test(
        await b.sidecar.metrics.registry.metrics(),
      );
    // Then keep attacking (and checking) with the mesh healthy and the CSK held on both.
    const samples = await attackThroughout([a, b], scene, {
      settled: async () => healthy(a) && healthy(b) && sentEnvelope !== undefined && (await dropped()),
      impostor: { ...attacker, memberId: attackerId, meshIp: attackerMeshIp },
      heartbeatEpoch: 0n,
      names: ["the v1 key", "the v1 member"],
      step: async () => {
        const bId = b.sidecar.status().memberId;
        if (sentEnvelope === undefined && bId !== undefined) await sendToB(bId);
      },
      ms: 90_000,
      state: () =>
        `not settled: a ${a.sidecar.status().phase}, b ${b.sidecar.status().phase}, message sent ${sentEnvelope !== undefined}`,
    });
    assert.ok(samples > 10, `sampled ${samples} times`);

    await assertOnlyEachOther(a, b);
    for (const node of [a, b]) {
      const lines = node.log
        .lines()
        .filter((l) => l.msg.startsWith("member not verified") && l.memberId === attackerId.toString());
      assert.ok(lines.length >= 1 && lines.length <= 2, `${node.name} logged the refusal once a minute`);
      assert.equal(lines[0]?.reason, "GuestApiNotPinned");
      assert.match(String(lines[0]?.detail), /guest API v1.*pins v0/);
      const text = await node.sidecar.metrics.registry.metrics();
      assert.match(text, /attestmesh_member_certificates_total\{result="GuestApiNotPinned"\} [1-9]/);
      assert.match(text, /attestmesh_unverified_members 1/);
      assert.match(text, /attestmesh_csk_requests_total\{outcome="not-a-member"\} [1-9]/);
    }
    assert.ok(
      b.log.lines().some((l) => l.envelopeId === sentEnvelope && l.reason === "SenderNotVerified"),
      "B logged the message's refusal",
    );
  });
});
