// Sealed-message figures: (a) gas of MessagesFacet.send for sealed payloads of several sizes, on the
// in-process Hardhat chain with Base's rules (a sidecar seals exactly as here: 81-byte header + payload
// in a crypto_box_seal, 48 bytes of overhead); (b) how fast the sidecar stores received messages in its
// durable inbox (SQLite, one synchronous transaction each) and streams them to a subscriber over the
// application API's unix socket, and what a stalled subscriber costs.
//
//   node devnet/bench/messages.ts [--messages 20000]     (from the repository root)
import { randomBytes } from "node:crypto";
import { rmSync } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { parseArgs } from "node:util";
import { memberDomain, memberTypes } from "@attestmesh/shared/contracts/typedData.ts";
import { startAppApi } from "@attestmesh/sidecar/api/app.ts";
import { sealMessage } from "@attestmesh/sidecar/messages/envelope.ts";
import { sodiumReady } from "@attestmesh/sidecar/messages/sealedBox.ts";
import type { ReceivedMessage } from "@attestmesh/sidecar/messages/types.ts";
import { createStatusStore } from "@attestmesh/sidecar/status.ts";
import { openStream } from "@attestmesh/sidecar/testing/api-client.ts";
import { pino } from "pino";
import { bytesToHex, keccak256 } from "viem";
import { admit, setupCluster, simulatedNode } from "../../test/helpers/cluster.ts";

const { values } = parseArgs({ options: { messages: { type: "string", default: "20000" } } });
const N = Number(values.messages);

await sodiumReady();
const fx = await setupCluster();
const alice = simulatedNode(fx.kmsRoot);
const aliceId = await admit(fx, alice);
const bob = simulatedNode(fx.kmsRoot);
const bobId = await admit(fx, bob);

console.log("| payload (bytes) | ciphertext (bytes) | gas used (tx) |");
console.log("| --------------: | -----------------: | ------------: |");
for (const size of [16, 256, 1024, 3903]) {
  const envelopeId = bytesToHex(randomBytes(32));
  const header = {
    chainId: BigInt(fx.chainId),
    cluster: fx.deployed.diamond,
    senderId: aliceId,
    recipientId: bobId,
    envelopeId,
  };
  const ciphertext = bytesToHex(
    sealMessage(
      { header, payload: new Uint8Array(randomBytes(size)) },
      bob.identityKey,
      alice.identitySecret,
    ),
  );
  const signature = await alice.memberAccount.signTypedData({
    domain: memberDomain(fx.chainId, fx.deployed.diamond),
    types: memberTypes,
    primaryType: "Send",
    message: { senderId: aliceId, recipientId: bobId, envelopeId, ciphertextHash: keccak256(ciphertext) },
  });
  const hash = await fx.relayer.write.send([aliceId, bobId, envelopeId, ciphertext, signature]);
  const receipt = await fx.publicClient.waitForTransactionReceipt({ hash });
  console.log(`| ${size} | ${(ciphertext.length - 2) / 2} | ${receipt.gasUsed.toLocaleString("en-US")} |`);
}

const dir = await mkdtemp(join(tmpdir(), "am-bench-"));
// Removed however the run ends, a failed step included.
process.once("exit", () => rmSync(dir, { recursive: true, force: true }));
const logger = pino({ level: "silent" });
const controller = new AbortController();
const api = await startAppApi({
  socketPath: join(dir, "api.sock"),
  socketGroup: undefined,
  queueLength: 256,
  stateDir: join(dir, "state"),
  cluster: fx.deployed.diamond,
  inboxMaxMessages: N,
  status: createStatusStore({ logger }).get,
  signal: controller.signal,
  logger,
});
const message = (i: number): ReceivedMessage => ({
  envelopeId: bytesToHex(randomBytes(32)),
  senderId: 2n,
  senderAppId: undefined,
  recipientId: 1n,
  payload: new Uint8Array(256).fill(0x61),
  blockNumber: BigInt(i),
  txHash: bytesToHex(randomBytes(32)),
  logIndex: 0,
});
const fast = await openStream(join(dir, "api.sock"), "/v1/messages/stream?since=latest");
const stalled = await openStream(join(dir, "api.sock"), "/v1/messages/stream?since=latest");
stalled.pause();
await delay(100);
const rssBefore = process.memoryUsage().rss;
const started = performance.now();
for (let i = 0; i < N; i++) {
  api.deliver(message(i));
  if (i % 100 === 0) await delay(0);
}
let received = 0;
while (received < N) {
  received = fast.lines.reduce(
    (n, l) => n + (l.type === "message" ? 1 : l.type === "lost" ? (l.count as number) : 0),
    0,
  );
  await delay(10);
}
const seconds = (performance.now() - started) / 1000;
const lostFast = fast.lines.reduce((n, l) => n + (l.type === "lost" ? (l.count as number) : 0), 0);
console.log(
  `\n${N} messages (256-byte payloads) streamed to a reading subscriber in ${seconds.toFixed(2)} s: ` +
    `${Math.round(N / seconds).toLocaleString("en-US")}/s (each stored durably first), ${lostFast} lost; ` +
    `meanwhile a stalled subscriber held only its position in the inbox plus the socket buffers ` +
    `(RSS grew ${((process.memoryUsage().rss - rssBefore) / 2 ** 20).toFixed(1)} MiB, including the reading client's ${N} parsed lines).`,
);
fast.close();
stalled.close();
controller.abort();
await api.close();
