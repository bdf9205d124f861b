// What the TypeScript contract tests share: member statuses, mined transactions with their decoded
// events, and the boot info dstack's KMS asks the cluster about.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { clusterAbi } from "@attestmesh/shared/contracts/abi.ts";
import { memberDomain, memberTypes } from "@attestmesh/shared/contracts/typedData.ts";
import type { KeyChainInput } from "@attestmesh/shared/dstack/verify.ts";
import {
  type Address,
  bytesToHex,
  type ContractEventName,
  getAddress,
  getContract,
  type Hash,
  type Hex,
  type Log,
  parseEventLogs,
  recoverTypedDataAddress,
  stringToHex,
  type TypedDataDefinition,
} from "viem";
import {
  type ClusterFixture,
  randomAppId,
  type SimulatedNode,
  signRegistration,
} from "../../../test/helpers/cluster.ts";
import { canonical, catchRevert } from "../../../test/helpers/revert.ts";

/** `IMembership.MemberStatus`. */
export const Status = { None: 0, Active: 1, Left: 2, Evicted: 3 } as const;

/** A member key that signs the typed data of member calls. */
export type Signer = SimulatedNode["memberAccount"];

export const randomHash = (): Hex => bytesToHex(randomBytes(32));

/** Waits for `hash`, requires success; returns the receipt and its block's timestamp. */
export async function mined(fx: ClusterFixture, hash: Hash) {
  const receipt = await fx.publicClient.waitForTransactionReceipt({ hash });
  assert.equal(receipt.status, "success");
  const block = await fx.publicClient.getBlock({ blockNumber: receipt.blockNumber });
  return { receipt, timestamp: Number(block.timestamp) };
}

/** The cluster's `eventName` events among `logs`. */
export function eventsOf<const N extends ContractEventName<typeof clusterAbi>>(logs: Log[], eventName: N) {
  return parseEventLogs({ abi: clusterAbi, logs, eventName });
}

/** Sends, requires success and that every log decodes with the cluster ABI; returns the decoded logs. */
export async function sendDecoded(fx: ClusterFixture, write: Promise<Hex>) {
  const { receipt, timestamp } = await mined(fx, await write);
  const decoded = parseEventLogs({ abi: clusterAbi, logs: receipt.logs });
  assert.equal(decoded.length, receipt.logs.length, "every log decodes with the cluster ABI");
  return { decoded, timestamp };
}

/** Sends a transaction to the cluster, requires success and that every log is the cluster's; returns its
 * decoded events (hex in lower case) and its block's timestamp (as the chain's `uint256`). */
export async function send(fx: ClusterFixture, write: Promise<Hex>) {
  const { decoded, timestamp } = await sendDecoded(fx, write);
  for (const log of decoded) assert.equal(getAddress(log.address), getAddress(fx.deployed.diamond));
  return {
    events: decoded.map((e) => ({ name: e.eventName, args: canonical(e.args) })),
    timestamp: BigInt(timestamp),
  };
}

/** The boot info dstack's KMS passes to `isAppAllowed`: random measurements, no advisories unless given. */
export function bootInfo(appId: Address, composeHash: Hex, deviceId: Hex = randomHash()) {
  return {
    appId,
    composeHash,
    instanceId: randomAppId(),
    deviceId,
    mrAggregated: randomHash(),
    mrSystem: randomHash(),
    osImageHash: randomHash(),
    tcbStatus: "UpToDate",
    advisoryIds: [] as string[],
  };
}

/** A call a member key signs. */
export type MemberCall = keyof typeof memberTypes;
type MemberMessage<P extends MemberCall> = TypedDataDefinition<typeof memberTypes, P>["message"];

/** `signer`'s signature over a `primaryType` call of this cluster. */
export function signMember<const P extends MemberCall>(
  fx: ClusterFixture,
  signer: Signer,
  primaryType: P,
  message: MemberMessage<P>,
): Promise<Hex> {
  const domain = memberDomain(fx.chainId, fx.deployed.diamond);
  return signer.signTypedData({ domain, types: memberTypes, primaryType, message } as never);
}

/** The address `signature` recovers to under the digest the contract builds for a `primaryType` call. */
export function memberCallSigner<const P extends MemberCall>(
  fx: ClusterFixture,
  primaryType: P,
  message: MemberMessage<P>,
  signature: Hex,
): Promise<Address> {
  const domain = memberDomain(fx.chainId, fx.deployed.diamond);
  return recoverTypedDataAddress({ domain, types: memberTypes, primaryType, message, signature } as never);
}

export function signLeave(fx: ClusterFixture, signer: Signer, memberId: bigint): Promise<Hex> {
  return signMember(fx, signer, "Leave", { memberId });
}

export function signCommit(
  fx: ClusterFixture,
  signer: Signer,
  memberId: bigint,
  epoch: bigint,
  commitment: Hex,
) {
  return signMember(fx, signer, "CommitCsk", { memberId, epoch, commitment });
}

/** The address a registration signature recovers to under the digest the contract builds for `nonce`. */
export function registrationSigner(fx: ClusterFixture, node: SimulatedNode, nonce: bigint, signature: Hex) {
  const { appId, wireguardKey, identityKey, claims } = node;
  return memberCallSigner(fx, "Register", { appId, wireguardKey, identityKey, ...claims, nonce }, signature);
}

/** `register`'s arguments for `node` with its own keys, signed for the app's current nonce. */
export async function registerArgs(fx: ClusterFixture, node: SimulatedNode) {
  const nonce = await fx.owner.read.registrationNonce([node.appId]);
  const signature = await signRegistration(fx, node, { nonce });
  return [node.proof, node.wireguardKey, node.identityKey, node.claims, signature] as const;
}

/** The relayer's `register` of `node`'s keys and claims with `proof` (its own unless given) and `signature`
 * (unless given, its own over them for nonce 0, a new app's); returns the transaction hash, not awaited. */
export async function registerWith(
  fx: ClusterFixture,
  node: SimulatedNode,
  proof: SimulatedNode["proof"] = node.proof,
  signature?: Hex,
): Promise<Hex> {
  const signed = signature ?? (await signRegistration(fx, node));
  return fx.relayer.write.register([proof, node.wireguardKey, node.identityKey, node.claims, signed]);
}

/** Registers `node` with its own keys, signed for `nonce`, and requires success; returns the signature. */
export async function registerSigned(fx: ClusterFixture, node: SimulatedNode, nonce: bigint): Promise<Hex> {
  const signature = await signRegistration(fx, node, { nonce });
  await mined(fx, await registerWith(fx, node, node.proof, signature));
  return signature;
}

/** The key-chain verifier as the diamond routes it and as the standalone facet: both must give one answer. */
export function attestorTargets(fx: ClusterFixture) {
  const facet = getContract({
    address: fx.deployed.facets.DstackAttestorFacet,
    abi: clusterAbi,
    client: fx.publicClient,
  });
  return [
    { name: "diamond", contract: fx.owner },
    { name: "standalone facet", contract: facet },
  ] as const;
}

/** What `target` answers for a key chain: the KMS signer, or the custom error and its arguments. */
export async function verifyOnChain(
  target: ReturnType<typeof attestorTargets>[number],
  input: KeyChainInput,
): Promise<{ readonly signer: Address } | { readonly error: string; readonly args: unknown[] }> {
  const appId = getAddress(bytesToHex(input.appId));
  const rest = [
    bytesToHex(input.derivedPubkey),
    bytesToHex(input.appPubkey),
    bytesToHex(input.appSignature),
    bytesToHex(input.kmsSignature),
  ] as const;
  const call =
    (input.guestApiVersion ?? 0) === 0
      ? target.contract.read.verifyDstackKeyChain([appId, input.purpose, ...rest])
      : target.contract.read.verifyDstackKeyChainV1([appId, stringToHex(input.purpose), ...rest]);
  try {
    return { signer: await call };
  } catch (error) {
    const revert = await catchRevert(Promise.reject(error));
    return { error: revert.errorName ?? `undecoded ${revert.raw}`, args: [...revert.args] };
  }
}
