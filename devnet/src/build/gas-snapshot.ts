// Gas snapshot of the cluster's hot paths, measured on an in-process Hardhat network with fixed
// inputs, so every figure is exact and repeatable. `--write` records snapshots/gas.json and the table
// of docs/performance.md and prints it; `--check` fails when the contracts' gas changed without a new
// snapshot, or the docs' table is not the snapshot's.
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { deployCluster } from "@attestmesh/scripts/deploy/cluster.ts";
import { clusterAbi } from "@attestmesh/shared/contracts/abi.ts";
import { memberDomain, memberTypes } from "@attestmesh/shared/contracts/typedData.ts";
import { MEMBER_KEY } from "@attestmesh/shared/keys/purposes.ts";
import { network } from "hardhat";
import { markdownTable } from "markdown-table";
import {
  type Address,
  bytesToHex,
  encodeFunctionData,
  getAddress,
  type Hex,
  hexToBytes,
  keccak256,
  toHex,
} from "viem";
import { simulatedIndexerKeys, simulatedNodeKeys, simulatedNodeKeysV1 } from "../dstack-sim/node.ts";
import { createKmsRoot, createSimulatedCvm } from "../dstack-sim/simulator.ts";

const ROOT = new URL("../../..", import.meta.url).pathname;
const SNAPSHOT = join(ROOT, "snapshots/gas.json");
/** The page whose "Contract gas" table is this snapshot, laid out as the repository's formatter does. */
const DOCS = join(ROOT, "docs/performance.md");

/** Gas of a transaction's calldata (EIP-2028), to separate execution gas from the intrinsic cost. */
function calldataGas(data: Hex): number {
  let gas = 0;
  for (const byte of hexToBytes(data)) gas += byte === 0 ? 4 : 16;
  return gas;
}

/** The compose hash every measured member states (a placeholder release). */
const COMPOSE_HASH = keccak256(toHex("gas snapshot compose"));

async function measure(): Promise<Record<string, { total: number; execution: number }>> {
  const { viem } = await network.create();
  const client = await viem.getPublicClient();
  const [owner, relayer] = await viem.getWalletClients();
  const kmsRoot = createKmsRoot();
  const deployed = await deployCluster({
    wallet: owner!,
    client,
    params: { owner: owner!.account.address, meshCidr: "10.77.0.0/16", kmsRoots: [kmsRoot.address] },
  });
  const chainId = await client.getChainId();
  const results: Record<string, { total: number; execution: number }> = {};

  const send = async (name: string, from: typeof owner, to: Address, data: Hex) => {
    const hash = await from!.sendTransaction({ to, data, account: from!.account, chain: from!.chain });
    const receipt = await client.waitForTransactionReceipt({ hash });
    if (receipt.status !== "success") throw new Error(`${name} reverted`);
    const total = Number(receipt.gasUsed);
    results[name] = { total, execution: total - 21_000 - calldataGas(data) };
  };
  const call = (functionName: string, args: readonly unknown[]) =>
    encodeFunctionData({ abi: clusterAbi, functionName, args } as Parameters<typeof encodeFunctionData>[0]);

  const nodes = [1, 2, 3].map((i) => {
    const appId = getAddress(
      bytesToHex(hexToBytes(keccak256(toHex(`gas snapshot app ${i}`))).subarray(0, 20)),
    );
    const cvm = createSimulatedCvm({ kmsRoot, appId: hexToBytes(appId) });
    return {
      appId,
      ...simulatedNodeKeys(appId, cvm),
      // One release on its own machine each: the device id is per member, the compose hash shared.
      claims: { composeHash: COMPOSE_HASH, deviceId: keccak256(toHex(`gas snapshot device ${i}`)) },
    };
  });
  const domain = memberDomain(chainId, deployed.diamond);

  const first = nodes[0]!;
  await send(
    "verifyDstackKeyChain",
    relayer,
    deployed.facets.DstackAttestorFacet,
    call("verifyDstackKeyChain", [
      first.appId,
      MEMBER_KEY.purpose,
      first.proof.memberPubkey,
      first.proof.appPubkey,
      first.proof.appSignature,
      first.proof.kmsSignature,
    ]),
  );

  // The same call for a guest API v1 chain (dstack 0.6): link 0 signs the raw key, no hex encoding.
  const v1 = (() => {
    const appId = getAddress(bytesToHex(hexToBytes(keccak256(toHex("gas snapshot app v1"))).subarray(0, 20)));
    return {
      appId,
      ...simulatedNodeKeysV1(kmsRoot, appId),
      claims: { composeHash: COMPOSE_HASH, deviceId: keccak256(toHex("gas snapshot device v1")) },
    };
  })();
  // The policy the members' claims must meet: the release's compose hash and an allowlist of devices
  // (the dearer check, beside `setAllowAnyDevice`).
  await send("addComposeHash", owner, deployed.diamond, call("addComposeHash", [COMPOSE_HASH]));
  for (const node of [...nodes, v1]) {
    await send("addDevice", owner, deployed.diamond, call("addDevice", [node.claims.deviceId]));
  }
  await send(
    "verifyDstackKeyChainV1",
    relayer,
    deployed.facets.DstackAttestorFacet,
    call("verifyDstackKeyChainV1", [
      v1.appId,
      toHex(MEMBER_KEY.purpose),
      v1.proof.memberPubkey,
      v1.proof.appPubkey,
      v1.proof.appSignature,
      v1.proof.kmsSignature,
    ]),
  );

  // Compose hashes are scoped by role: dstack's role-less call (node role) emits dstack's event and the
  // role event; the indexer role's call emits the role event alone.
  await send(
    "addComposeHash (node role)",
    owner,
    deployed.diamond,
    call("addComposeHash", [keccak256(toHex("gas snapshot node compose"))]),
  );
  await send(
    "addComposeHashFor (indexer role)",
    owner,
    deployed.diamond,
    call("addComposeHashFor", [keccak256(toHex("gas snapshot indexer compose")), 1]),
  );
  for (const [i, node] of nodes.entries()) {
    await send(
      i === 0 ? "addAppId" : "addAppId (again)",
      owner,
      deployed.diamond,
      call("addAppId", [node.appId]),
    );
    const signature = await node.memberAccount.signTypedData({
      domain,
      types: memberTypes,
      primaryType: "Register",
      message: {
        appId: node.appId,
        wireguardKey: node.wireguardKey,
        identityKey: node.identityKey,
        ...node.claims,
        nonce: 0n,
      },
    });
    const data = call("register", [node.proof, node.wireguardKey, node.identityKey, node.claims, signature]);
    await send(i === 0 ? "register (first member)" : "register", relayer, deployed.diamond, data);
    if (i === 2) await send("register (restart no-op)", relayer, deployed.diamond, data);
  }

  // The first member commits the epoch-0 CSK, the second confirms it.
  const commitment = keccak256(toHex("gas snapshot csk"));
  for (const [node, memberId, primaryType, functionName] of [
    [first, 1n, "CommitCsk", "commitCsk"],
    [nodes[1]!, 2n, "ConfirmCsk", "confirmCsk"],
  ] as const) {
    const signature = await node.memberAccount.signTypedData({
      domain,
      types: memberTypes,
      primaryType,
      message: { memberId, epoch: 0n, commitment },
    });
    await send(
      functionName,
      relayer,
      deployed.diamond,
      call(functionName, [memberId, 0n, commitment, signature]),
    );
  }

  const ciphertext = toHex(new Uint8Array(256).fill(0xab));
  const envelopeId = keccak256(toHex("gas snapshot envelope"));
  const sendSignature = await first.memberAccount.signTypedData({
    domain,
    types: memberTypes,
    primaryType: "Send",
    message: { senderId: 1n, recipientId: 2n, envelopeId, ciphertextHash: keccak256(ciphertext) },
  });
  await send(
    "send (256-byte ciphertext)",
    relayer,
    deployed.diamond,
    call("send", [1n, 2n, envelopeId, ciphertext, sendSignature]),
  );

  await send("evict", owner, deployed.diamond, call("evict", [3n, 1]));
  const leaveSignature = await nodes[1]!.memberAccount.signTypedData({
    domain,
    types: memberTypes,
    primaryType: "Leave",
    message: { memberId: 2n },
  });
  await send("leaveCluster", relayer, deployed.diamond, call("leaveCluster", [2n, leaveSignature]));

  await send("addAppId (guest API v1)", owner, deployed.diamond, call("addAppId", [v1.appId]));
  const v1Signature = await v1.memberAccount.signTypedData({
    domain,
    types: memberTypes,
    primaryType: "Register",
    message: {
      appId: v1.appId,
      wireguardKey: v1.wireguardKey,
      identityKey: v1.identityKey,
      ...v1.claims,
      nonce: 0n,
    },
  });
  await send(
    "register (guest API v1)",
    relayer,
    deployed.diamond,
    call("register", [v1.proof, v1.wireguardKey, v1.identityKey, v1.claims, v1Signature]),
  );

  // Revocation reaching a running member: its device is revoked, and the owner evicts what went stale
  // (members 1 to 4: one active and standing, one left, one evicted, one on the revoked device).
  await send(
    "revokeDevice",
    owner,
    deployed.diamond,
    call("revokeDevice", [v1.claims.deviceId, keccak256(toHex("gas snapshot revocation"))]),
  );
  await send("evictStale (4 members, 1 stale)", owner, deployed.diamond, call("evictStale", [1n, 10n]));

  // Under allow-any-device no owner call recorded the device: the member keeps its fingerprint in the
  // word it writes anyway, and the id goes to a log (MemberDeviceStated), so the first member on a
  // machine writes no slot more than a member on a listed device.
  await send("setAllowAnyDevice", owner, deployed.diamond, call("setAllowAnyDevice", [true]));
  const third = nodes[2]!;
  await send("addAppId (evicted app, again)", owner, deployed.diamond, call("addAppId", [third.appId]));
  const newDevice = { composeHash: COMPOSE_HASH, deviceId: keccak256(toHex("gas snapshot unlisted device")) };
  const anyDeviceSignature = await third.memberAccount.signTypedData({
    domain,
    types: memberTypes,
    primaryType: "Register",
    message: {
      appId: third.appId,
      wireguardKey: third.wireguardKey,
      identityKey: third.identityKey,
      ...newDevice,
      nonce: 1n,
    },
  });
  await send(
    "register (allow-any-device, first member on an unlisted device)",
    relayer,
    deployed.diamond,
    call("register", [third.proof, third.wireguardKey, third.identityKey, newDevice, anyDeviceSignature]),
  );

  // Indexers: one set, a second added beside it, the first removed (a rotation without a gap).
  const indexerCodeId = keccak256(toHex("gas snapshot indexer compose"));
  const indexerRecord = (label: string) => {
    const appId = getAddress(bytesToHex(hexToBytes(keccak256(toHex(label))).subarray(0, 20)));
    return { appId, ...simulatedIndexerKeys(kmsRoot, appId) };
  };
  const indexerOne = indexerRecord("gas snapshot indexer 1");
  const indexerTwo = indexerRecord("gas snapshot indexer 2");
  for (const [i, indexer] of [indexerOne, indexerTwo].entries()) {
    await send(
      i === 0 ? "addAppIdFor (indexer role)" : "addAppIdFor (indexer role, again)",
      owner,
      deployed.diamond,
      call("addAppIdFor", [indexer.appId, 1]),
    );
  }
  await send(
    "setIndexer",
    owner,
    deployed.diamond,
    call("setIndexer", [
      "wss://indexer-1.example/ws",
      indexerCodeId,
      indexerOne.signingKey,
      indexerOne.proof,
    ]),
  );
  await send(
    "addIndexer (a second)",
    owner,
    deployed.diamond,
    call("addIndexer", [
      "wss://indexer-2.example/ws",
      indexerCodeId,
      indexerTwo.signingKey,
      indexerTwo.proof,
    ]),
  );
  await send(
    "removeIndexer (the first)",
    owner,
    deployed.diamond,
    call("removeIndexer", [indexerOne.signingKey]),
  );
  return results;
}

function table(results: Record<string, { total: number; execution: number }>): string {
  const rows = Object.entries(results).map(([name, { total, execution }]) => [
    `\`${name}\``,
    total.toLocaleString("en"),
    execution.toLocaleString("en"),
  ]);
  return markdownTable([["call", "gas used (tx)", "execution gas"], ...rows], { align: ["", "r", "r"] });
}

/** `docs` with the table under "## Contract gas" replaced by `rendered`; undefined when it has none. */
function withDocsTable(docs: string, rendered: string): string | undefined {
  const section = docs.indexOf("\n## Contract gas\n");
  const start = section < 0 ? -1 : docs.indexOf("\n| call ", section);
  if (start < 0) return undefined;
  const lines = docs.slice(start + 1).split("\n");
  const length = lines.findIndex((line) => !line.startsWith("|"));
  const end = start + 1 + lines.slice(0, length).join("\n").length;
  return `${docs.slice(0, start + 1)}${rendered}${docs.slice(end)}`;
}

/** Budgets the snapshot must stay within (issue 13): every registration path, claims included. */
const REGISTER_BUDGET = 200_000;
const BUDGETS: ReadonlyArray<[name: string, field: "total" | "execution", max: number]> = [
  ["verifyDstackKeyChain", "execution", 15_000],
];

const results = await measure();
const registerRows = Object.keys(results).filter((name) => name.startsWith("register"));
if (registerRows.length < 5) {
  process.stderr.write(`gas snapshot: expected every register path, measured ${registerRows.join(", ")}\n`);
  process.exit(1);
}
for (const [name, field, max] of [
  ...BUDGETS,
  ...registerRows.map((name): [string, "total", number] => [name, "total", REGISTER_BUDGET]),
]) {
  const used = results[name]?.[field];
  if (used === undefined || used > max) {
    process.stderr.write(
      `gas budget exceeded: ${name} ${field} gas ${used ?? "missing"} > ${max}\n${JSON.stringify(results, null, 2)}\n`,
    );
    process.exit(1);
  }
}
const rendered = `${JSON.stringify(results, null, 2)}\n`;
const docs = await readFile(DOCS, "utf8");
const docsNow = withDocsTable(docs, table(results));
if (docsNow === undefined) {
  process.stderr.write(`gas snapshot: docs/performance.md has no table under "## Contract gas"\n`);
  process.exit(1);
}
if (process.argv.includes("--check")) {
  const committed = await readFile(SNAPSHOT, "utf8").catch(() => "");
  if (committed !== rendered) {
    process.stderr.write(`gas changed; run \`npm run gas:snapshot\` and commit snapshots/gas.json\n`);
    process.stderr.write(`committed:\n${committed}\nmeasured:\n${rendered}`);
    process.exit(1);
  }
  if (docsNow !== docs) {
    process.stderr.write(
      "docs/performance.md's gas table is not the snapshot's; run `npm run gas:snapshot`\n",
    );
    process.exit(1);
  }
  process.stdout.write(`${table(results)}\n`);
} else if (process.argv.includes("--write")) {
  await writeFile(SNAPSHOT, rendered);
  await writeFile(DOCS, docsNow);
  process.stdout.write(`${table(results)}\n`);
} else {
  process.stdout.write(`${table(results)}\n`);
}
