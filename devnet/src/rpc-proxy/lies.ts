// What a lying RPC provider does to honest answers: the attacks of issue 12, each a rewrite of the
// upstream's answer. A sidecar reading through a quorum must never act on any of them.
//
// - inject-member: a fake active member (the attacker's WireGuard and identity keys) in every
//   `members` page and `member(id)` answer, and a forged MemberRegistered log for it;
// - hide-eviction: evicted members reported active, MemberEvicted logs dropped;
// - forge-message: a MessageSent log the test supplies, added to every MessageSent query;
// - other-chain: another chain's id, other block hashes, empty calls and logs;
// - stale-head / far-head: a head of block 1, or a billion blocks ahead;
// - down / rate-limited: handled by the proxy itself (connection reset, HTTP 429).
import { clusterAbi } from "@attestmesh/shared/contracts/abi.ts";
import {
  type AbiEvent,
  type Address,
  decodeFunctionResult,
  encodeAbiParameters,
  encodeEventTopics,
  encodeFunctionResult,
  getAbiItem,
  type Hex,
  keccak256,
  toEventSelector,
  toFunctionSelector,
  toHex,
} from "viem";
import type { JsonRpcRequest, JsonRpcResponse, ProxySettings } from "./proxy.ts";

export const BEHAVIOURS = [
  "honest",
  "down",
  "rate-limited",
  "inject-member",
  "hide-eviction",
  "forge-message",
  "other-chain",
  "stale-head",
  "far-head",
] as const;
export type Behaviour = (typeof BEHAVIOURS)[number];

/** A log to forge: block number, hash, transaction and index are filled in from the query. */
export interface ForgedLog {
  readonly address: Address;
  readonly topics: readonly Hex[];
  readonly data: Hex;
}

/** The attacker's member, as the lying provider presents it. */
export const FAKE_MEMBER = {
  memberId: 4242n,
  appId: "0xbad0000000000000000000000000000000000bad" as Address,
  memberKey: "0xbad0000000000000000000000000000000001bad" as Address,
  wireguardKey: keccak256(toHex("attestmesh devnet attacker wireguard key")),
  identityKey: keccak256(toHex("attestmesh devnet attacker identity key")),
} as const;

const MEMBERS = toFunctionSelector(getAbiItem({ abi: clusterAbi, name: "members" }));
const MEMBER = toFunctionSelector(getAbiItem({ abi: clusterAbi, name: "member" }));
const REGISTERED = getAbiItem({ abi: clusterAbi, name: "MemberRegistered" }) as AbiEvent;
const EVICTED = toEventSelector(getAbiItem({ abi: clusterAbi, name: "MemberEvicted" }));
const MESSAGE_SENT = toEventSelector(getAbiItem({ abi: clusterAbi, name: "MessageSent" }));
const REGISTERED_TOPIC = toEventSelector(REGISTERED);

type View = {
  memberId: bigint;
  appId: Address;
  memberKey: Address;
  wireguardKey: Hex;
  identityKey: Hex;
  meshIp: number;
  status: number;
  registeredAt: number;
  endedAt: number;
  endReason: number;
};

type RpcLog = Record<string, unknown> & { topics: Hex[]; blockNumber: Hex };
type Filter = { topics?: (Hex | Hex[] | null)[]; fromBlock?: Hex; toBlock?: Hex; blockHash?: Hex };

function fakeView(template: View | undefined): View {
  return {
    memberId: FAKE_MEMBER.memberId,
    appId: FAKE_MEMBER.appId,
    memberKey: FAKE_MEMBER.memberKey,
    wireguardKey: FAKE_MEMBER.wireguardKey,
    identityKey: FAKE_MEMBER.identityKey,
    meshIp: (template?.meshIp ?? 0x0a4d0000) + 200,
    status: 1,
    registeredAt: template?.registeredAt ?? 1,
    endedAt: 0,
    endReason: 0,
  };
}

const selectorOf = (request: JsonRpcRequest): Hex | undefined => {
  const tx = request.params?.[0] as { data?: Hex; input?: Hex } | undefined;
  return (tx?.data ?? tx?.input)?.slice(0, 10) as Hex | undefined;
};

/** Whether a getLogs filter asks for `topic0`. */
function asksFor(filter: Filter, topic0: Hex): boolean {
  const first = filter.topics?.[0];
  if (first === undefined || first === null) return true;
  const wanted = Array.isArray(first) ? first : [first];
  return wanted.some((t) => t.toLowerCase() === topic0.toLowerCase());
}

/** A forged log placed in the query's last block, carrying that block's real hash. */
async function placed(
  log: ForgedLog,
  filter: Filter,
  upstream: (method: string, params: unknown[]) => Promise<unknown>,
): Promise<RpcLog> {
  const block = (await upstream("eth_getBlockByNumber", [filter.toBlock ?? "latest", false])) as {
    number: Hex;
    hash: Hex;
  };
  return {
    address: log.address,
    topics: [...log.topics],
    data: log.data,
    blockNumber: block.number,
    blockHash: block.hash,
    transactionHash: keccak256(toHex(`forged ${block.number} ${log.data.slice(0, 66)}`)),
    transactionIndex: "0x0",
    logIndex: "0x63",
    removed: false,
  };
}

/**
 * The answer a provider behaving as `settings` says gives for `request`, from the honest answer.
 * Returns `honest` itself when it changes nothing.
 */
export async function rewrite(
  settings: ProxySettings,
  request: JsonRpcRequest,
  honest: JsonRpcResponse,
  upstream: (method: string, params: unknown[]) => Promise<unknown>,
): Promise<JsonRpcResponse> {
  const { behaviour } = settings;
  const answer = (result: unknown): JsonRpcResponse => ({ ...honest, result });

  if (behaviour === "stale-head" || behaviour === "far-head") {
    if (request.method !== "eth_blockNumber") return honest;
    return answer(behaviour === "stale-head" ? "0x1" : toHex(1_000_000_000n));
  }

  if (behaviour === "other-chain") {
    if (request.method === "eth_chainId") return answer("0x2105");
    if (request.method === "eth_getBlockByNumber" && honest.result !== null) {
      const block = honest.result as { hash: Hex };
      return answer({ ...block, hash: keccak256(block.hash) });
    }
    if (request.method === "eth_call") return answer(`0x${"00".repeat(64)}`);
    if (request.method === "eth_getLogs") return answer([]);
    return honest;
  }

  if (request.method === "eth_call" && (behaviour === "inject-member" || behaviour === "hide-eviction")) {
    const selector = selectorOf(request);
    const result = honest.result as Hex;
    if (selector === MEMBERS) {
      const [page, nextId] = decodeFunctionResult({
        abi: clusterAbi,
        functionName: "members",
        data: result,
      }) as unknown as [View[], bigint];
      let views = page.map((v) => ({ ...v }));
      if (behaviour === "hide-eviction") views = views.map((v) => (v.status === 3 ? { ...v, status: 1 } : v));
      else if (nextId === 0n) views.push(fakeView(views.at(-1)));
      return answer(
        encodeFunctionResult({ abi: clusterAbi, functionName: "members", result: [views, nextId] as never }),
      );
    }
    if (selector === MEMBER) {
      const view = decodeFunctionResult({
        abi: clusterAbi,
        functionName: "member",
        data: result,
      }) as unknown as View;
      const data = (request.params?.[0] as { data?: Hex } | undefined)?.data ?? "0x";
      const id = BigInt(`0x${data.slice(10, 74) || "0"}`);
      let lie: View | undefined;
      if (behaviour === "inject-member" && id === FAKE_MEMBER.memberId) lie = fakeView(undefined);
      if (behaviour === "hide-eviction" && view.status === 3) lie = { ...view, status: 1 };
      if (lie === undefined) return honest;
      return answer(encodeFunctionResult({ abi: clusterAbi, functionName: "member", result: lie as never }));
    }
    return honest;
  }

  if (request.method === "eth_getLogs") {
    const filter = (request.params?.[0] ?? {}) as Filter;
    const logs = honest.result as RpcLog[];
    if (behaviour === "hide-eviction") {
      const kept = logs.filter((l) => l.topics[0]?.toLowerCase() !== EVICTED.toLowerCase());
      return kept.length === logs.length ? honest : answer(kept);
    }
    if (behaviour === "inject-member" && asksFor(filter, REGISTERED_TOPIC)) {
      const fake = fakeView(undefined);
      const topics = encodeEventTopics({
        abi: [REGISTERED],
        eventName: "MemberRegistered",
        args: { memberId: fake.memberId, appId: fake.appId, memberKey: fake.memberKey },
      } as never) as Hex[];
      const data = encodeAbiParameters(
        [{ type: "bytes32" }, { type: "bytes32" }, { type: "uint32" }, { type: "address" }],
        [fake.wireguardKey, fake.identityKey, fake.meshIp, fake.appId],
      );
      const address =
        (request.params?.[0] as { address?: Address } | undefined)?.address ?? FAKE_MEMBER.appId;
      return answer([...logs, await placed({ address, topics, data }, filter, upstream)]);
    }
    if (behaviour === "forge-message" && settings.forgedLog !== undefined && asksFor(filter, MESSAGE_SENT)) {
      const wantedRecipient = filter.topics?.[1];
      const recipient = settings.forgedLog.topics[1];
      if (
        wantedRecipient !== undefined &&
        wantedRecipient !== null &&
        !(Array.isArray(wantedRecipient) ? wantedRecipient : [wantedRecipient]).some(
          (t) => t.toLowerCase() === recipient?.toLowerCase(),
        )
      ) {
        return honest;
      }
      return answer([...logs, await placed(settings.forgedLog, filter, upstream)]);
    }
  }
  return honest;
}
