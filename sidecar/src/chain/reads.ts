// The sidecar's one read interface to the chain. Every read that decides something — membership,
// epochs and commitments, the indexer record, message logs — goes through `ChainReads`: it happens at
// one block hash that `quorum` of the pinned providers agree on (EIP-1898: `eth_call` with
// `{ blockHash }`; `eth_getLogs` over a bounded range whose last block is the agreed one), and its
// result counts only when `quorum` providers return the same bytes (quorum.ts). A disagreement is
// logged as adversarial (rate-limited), counted in `attestmesh_rpc_disagreements_total`, and the read
// fails retryable unless an honest quorum still agrees: a lie is never acted on. Reads that decide
// nothing (gas, receipts, balances, the indexer's repro check) use `failover`, which tries the
// providers in turn.
//
// At rest the same reads repeat every poll at the same block, so two things are remembered (issue 16's
// idle cost): the block hashes a quorum agreed for the last few numbers (the head and head −
// confirmations), each reused for at most HASH_REUSE_MS and all forgotten when any agreed read fails (a
// block replaced at the same height shows as failed reads at the old hash), and the agreed answer of
// each `eth_call`, `eth_getCode` and `eth_getLogs` at one block hash, which cannot change. The head
// itself is asked of the providers for every `agreedBlock` call, by a request sent after the call: no
// caller decides on a head read that went out before it asked (a wake-up after a transaction must see
// it). Calls that arrive within HEAD_GATHER_MS of each other share that one request (the pollers tick on
// one beat, sleep.ts), so a resting sidecar asks for the head once per beat, not once per poller.
//
// A light client (verifying Base state against the sequencer's signed blocks or L1 output roots)
// would slot in behind this same interface: `agreedBlock` from verified headers, `readContract` and
// `getLogs` checked with eth_getProof / receipt proofs against that header's roots (docs/sidecar.md).
import {
  type Abi,
  type AbiEvent,
  type Address,
  type Chain,
  type ContractFunctionArgs,
  type ContractFunctionName,
  createPublicClient,
  decodeEventLog,
  decodeFunctionResult,
  type EncodeFunctionDataParameters,
  encodeEventTopics,
  encodeFunctionData,
  fallback,
  type Hex,
  type PublicClient,
  type ReadContractReturnType,
  type Transport,
  toEventSelector,
  toHex,
} from "viem";
import { retryableError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { type Agreement, createAgreement, type Disagreement, QuorumNotReached } from "./quorum.ts";

/** A block `quorum` providers agree on: its number and hash. */
export interface AgreedBlock {
  readonly number: bigint;
  readonly hash: Hex;
}

/** One pinned provider: its origin (safe to log) and its transport (the URL may carry an API key). */
export interface RpcEndpoint {
  readonly origin: string;
  readonly transport: Transport;
}

/** A decoded log, as the chain layer hands it on. */
export interface DecodedLog {
  readonly eventName: string;
  readonly args: Readonly<Record<string, unknown>>;
  readonly address: Address;
  readonly blockNumber: bigint;
  readonly blockHash: Hex;
  readonly transactionHash: Hex;
  readonly logIndex: number;
}

export interface ReadContractAt<
  abi extends Abi,
  functionName extends ContractFunctionName<abi, "view" | "pure">,
  args extends ContractFunctionArgs<abi, "view" | "pure", functionName>,
> {
  readonly address: Address;
  readonly abi: abi;
  readonly functionName: functionName;
  readonly args?: args;
  /** The agreed block the call runs at. */
  readonly at: AgreedBlock;
}

export interface ChainReads {
  /** The providers' origins, in pinned order. */
  readonly origins: readonly string[];
  readonly quorum: number;
  /** The chain id `quorum` providers serve. */
  chainId(): Promise<number>;
  /**
   * The block `confirmations` behind the head, by hash, as `quorum` providers see it. The head is the
   * `quorum`-th highest any provider reports, so fewer than `quorum` liars can neither push it past
   * the honest head nor hold it back.
   */
  agreedBlock(confirmations: number): Promise<AgreedBlock>;
  /** Block `number` (at or below an agreed head), by the hash `quorum` providers agree on. */
  blockAt(number: bigint): Promise<AgreedBlock>;
  /** A view call at `at`, its return bytes compared across `quorum` providers. */
  readContract<
    const abi extends Abi,
    functionName extends ContractFunctionName<abi, "view" | "pure">,
    const args extends ContractFunctionArgs<abi, "view" | "pure", functionName>,
  >(
    parameters: ReadContractAt<abi, functionName, args>,
  ): Promise<ReadContractReturnType<abi, functionName, args>>;
  /** Contract code at `at`, compared across `quorum` providers. */
  getCode(address: Address, at: AgreedBlock): Promise<Hex>;
  /**
   * Logs of `address` for `events` from `fromBlock` to the agreed block `to` (inclusive), compared
   * across `quorum` providers; a log in block `to` must carry `to`'s agreed hash. Keep ranges bounded.
   */
  getLogs(parameters: {
    readonly address: Address;
    readonly events: readonly AbiEvent[];
    /** Indexed arguments to filter on (one event only). */
    readonly args?: Readonly<Record<string, unknown>>;
    readonly fromBlock: bigint;
    readonly to: AgreedBlock;
  }): Promise<DecodedLog[]>;
  /** Providers in turn, for reads that decide nothing (gas, receipts, balances). */
  readonly failover: PublicClient<Transport, Chain | undefined>;
  /** A failover transport over every provider, for wallet and bundler clients. */
  readonly failoverTransport: Transport;
}

export interface ReadsTimers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

const nodeTimers: ReadsTimers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

export interface ReadsObserver {
  /** A disagreement between providers (adversarial). */
  disagreement?(read: string): void;
  /** A provider that failed to answer (down, timeout, rate-limited). */
  providerFailure?(origin: string): void;
}

/** How long the slower providers get to report their head once a quorum has. */
const HEAD_GRACE_MS = 250;

/** How long a block hash agreed for a number is reused. */
const HASH_REUSE_MS = 15_000;

/** Block hashes kept by number (the head and head − confirmations of the last few blocks). */
const HASHES_KEPT = 8;

/**
 * How long the first `agreedBlock` caller waits for others before the head request goes out; everyone
 * who asked by then shares it. Short against a poll (≥ 100 ms) and a block (Base: 2 s).
 */
export const HEAD_GATHER_MS = 15;

/** Agreed answers kept (by block hash and request); the least recently used goes first. */
const ANSWERS_KEPT = 128;

/** An agreed answer larger than this (about its characters of JSON-RPC hex) is not kept. */
const ANSWER_KEPT_MAX_CHARS = 256 * 1024;

/** How often the same read's disagreement is logged at most; the rest are counted and summed up. */
const DISAGREEMENT_LOG_INTERVAL_MS = 30_000;

type RpcLog = {
  address: Hex;
  topics: Hex[];
  data: Hex;
  blockNumber: Hex;
  blockHash: Hex;
  transactionHash: Hex;
  logIndex: Hex;
  removed?: boolean;
};

export function createChainReads(options: {
  readonly endpoints: readonly RpcEndpoint[];
  readonly quorum: number;
  readonly chain?: Chain | undefined;
  readonly logger: Logger;
  readonly observer?: ReadsObserver;
  readonly cooldownMs?: number;
  readonly now?: () => number;
  /** The head gather and grace timers; the simulator's clock in devnet/src/sim (default: Node's). */
  readonly timers?: ReadsTimers;
}): ChainReads {
  const { endpoints, logger, observer } = options;
  const origins = endpoints.map((e) => e.origin);
  const now = options.now ?? Date.now;
  const timers = options.timers ?? nodeTimers;
  const clients = endpoints.map((e) => createPublicClient({ transport: e.transport, cacheTime: 0 }));
  const lastLogged = new Map<string, { at: number; suppressed: number }>();

  function onDisagreement(d: Disagreement): void {
    observer?.disagreement?.(d.read);
    const seen = lastLogged.get(d.read);
    const t = now();
    if (seen !== undefined && t - seen.at < DISAGREEMENT_LOG_INTERVAL_MS) {
      seen.suppressed += 1;
      return;
    }
    lastLogged.set(d.read, { at: t, suppressed: 0 });
    logger.warn(
      {
        adversarial: true,
        read: d.read,
        answers: d.answers.map((a) => ({ provider: origins[a.provider], digest: a.digest })),
        outvoted: d.outvoted.map((p) => origins[p]),
        resolved: d.resolved,
        suppressedSinceLastLog: seen?.suppressed ?? 0,
      },
      d.resolved
        ? "RPC providers disagree (adversarial): the outvoted answer is ignored, the quorum's is used"
        : "RPC providers disagree (adversarial) and no answer reaches the quorum: not acting on it, retrying",
    );
  }

  const agreement: Agreement = createAgreement({
    providers: endpoints.length,
    quorum: options.quorum,
    onDisagreement,
    onFailure(provider, read, error) {
      observer?.providerFailure?.(origins[provider] ?? String(provider));
      logger.debug({ provider: origins[provider], read, err: error }, "an RPC provider did not answer");
    },
    ...(options.cooldownMs === undefined ? {} : { cooldownMs: options.cooldownMs }),
    now,
  });

  const request = (provider: number, method: string, params: unknown[]) =>
    clients[provider]!.request({ method, params } as never) as Promise<unknown>;

  /**
   * Block hashes a quorum agreed (or is agreeing: the pending promise, so concurrent reads of one number
   * share one agreement), by number, with when (`now()`); a failed one is not kept.
   */
  const hashes = new Map<bigint, { readonly block: Promise<AgreedBlock>; readonly at: number }>();

  /** Runs an agreement; a failed one becomes the sidecar's retryable RpcError. */
  async function agree<T>(
    read: string,
    ask: (provider: number) => Promise<T | undefined>,
    key: (value: T) => string,
  ): Promise<T> {
    try {
      return (await agreement.agree({ read, ask, key })).value;
    } catch (error) {
      // A block replaced at the same height fails the reads at its old hash: agree on the hashes again.
      hashes.clear();
      if (!(error instanceof QuorumNotReached)) throw error;
      throw retryableError("RpcError", error.message, {
        cause: error,
        details: { read, disagreed: error.disagreed, quorum: options.quorum },
      });
    }
  }

  /**
   * Agreed answers at one block hash, by `hash request`: such an answer never changes. Holds the
   * pending promise, so concurrent identical reads share one agreement; a failed one is not kept.
   */
  const answers = new Map<string, Promise<unknown>>();

  function agreeAt<T>(
    blockHash: Hex,
    request: string,
    run: () => Promise<T>,
    size: (value: T) => number,
  ): Promise<T> {
    const memo = `${blockHash.toLowerCase()} ${request}`;
    const kept = answers.get(memo) as Promise<T> | undefined;
    if (kept !== undefined) {
      answers.delete(memo);
      answers.set(memo, kept);
      return kept;
    }
    const pending = run();
    answers.set(memo, pending);
    if (answers.size > ANSWERS_KEPT) answers.delete(answers.keys().next().value!);
    const forget = () => {
      if (answers.get(memo) === pending) answers.delete(memo);
    };
    pending.then((value) => {
      if (size(value) > ANSWER_KEPT_MAX_CHARS) forget();
    }, forget);
    return pending;
  }

  /** The last head a quorum vouched for: it moves back only when a quorum reports a lower one. */
  let headFloor = 0n;

  /**
   * Every provider's head, without waiting on a slow one: once `quorum` answered, the rest get
   * HEAD_GRACE_MS more. Providers that just failed are skipped while enough others are healthy.
   */
  async function heads(): Promise<bigint[]> {
    const healthy = agreement.order().filter((p) => !agreement.cooling(p));
    const asked = healthy.length >= options.quorum ? healthy : endpoints.map((_, i) => i);
    const answers: bigint[] = [];
    let settled = 0;
    return new Promise((resolve) => {
      let timer: unknown;
      const finish = () => {
        if (timer !== undefined) timers.clearTimeout(timer);
        resolve([...answers]);
      };
      for (const i of asked) {
        request(i, "eth_blockNumber", [])
          .then((h) => {
            answers.push(BigInt(h as string));
          })
          .catch((error: unknown) => {
            agreement.failed(i);
            observer?.providerFailure?.(origins[i]!);
            logger.debug({ provider: origins[i], err: error }, "an RPC provider did not report its head");
          })
          .finally(() => {
            settled += 1;
            if (settled === asked.length) finish();
            else if (answers.length >= options.quorum && timer === undefined) {
              timer = timers.setTimeout(finish, HEAD_GRACE_MS);
            }
          });
      }
    });
  }

  /** The head request callers may still join: it has not gone out yet. */
  let gathering: Promise<bigint[]> | undefined;

  /** Every provider's head, asked after this call; calls within HEAD_GATHER_MS share the request. */
  function gatheredHeads(): Promise<bigint[]> {
    if (gathering !== undefined) return gathering;
    const pending = new Promise<void>((resolve) => timers.setTimeout(resolve, HEAD_GATHER_MS)).then(() => {
      gathering = undefined;
      return heads();
    });
    gathering = pending;
    return pending;
  }

  async function agreedBlock(confirmations: number): Promise<AgreedBlock> {
    // The quorum-th highest head is one an honest provider reached (fewer than `quorum` liars can
    // neither push it above every honest head nor, with the floor, drag it back).
    const known = [...(await gatheredHeads())].sort((a, b) => (a > b ? -1 : a < b ? 1 : 0));
    const reported = known[options.quorum - 1];
    if (reported === undefined) {
      throw retryableError(
        "RpcUnavailable",
        `only ${known.length} of ${endpoints.length} RPC providers report a head, ${options.quorum} must; will retry`,
        { details: { answered: known.length, quorum: options.quorum } },
      );
    }
    // Below the floor only when a quorum says so (a real reorg to a shorter chain): a stale liar alone,
    // even with honest providers down, only holds the view where it was.
    const below = known.filter((h) => h < headFloor).length;
    const head = reported >= headFloor || below >= options.quorum ? reported : headFloor;
    const c = BigInt(confirmations);
    const agreed = await blockAt(head > c ? head - c : 0n);
    headFloor = head;
    return agreed;
  }

  function blockAt(number: bigint): Promise<AgreedBlock> {
    const known = hashes.get(number);
    if (known !== undefined && now() - known.at < HASH_REUSE_MS) return known.block;
    const block = agreeBlock(number);
    const entry = { block, at: now() };
    hashes.delete(number);
    hashes.set(number, entry);
    if (hashes.size > HASHES_KEPT) hashes.delete(hashes.keys().next().value!);
    block.catch(() => {
      if (hashes.get(number) === entry) hashes.delete(number);
    });
    return block;
  }

  async function agreeBlock(number: bigint): Promise<AgreedBlock> {
    const hash = await agree(
      "block hash",
      async (i) => {
        const block = (await request(i, "eth_getBlockByNumber", [toHex(number), false])) as {
          hash?: Hex;
          number?: Hex;
        } | null;
        if (block === null || block.hash === undefined) return undefined; // not there yet: no answer
        if (block.number !== undefined && BigInt(block.number) !== number)
          return `wrong:${block.number}` as Hex;
        return block.hash;
      },
      (h) => h.toLowerCase(),
    );
    return { number, hash };
  }

  const atHash = (at: AgreedBlock) => ({ blockHash: at.hash, requireCanonical: true });

  const failoverTransport = fallback(
    endpoints.map((e) => e.transport),
    { rank: false, retryCount: 1 },
  );
  const failover = createPublicClient({
    ...(options.chain === undefined ? {} : { chain: options.chain }),
    transport: failoverTransport,
    cacheTime: 0,
  }) as PublicClient<Transport, Chain | undefined>;

  return {
    origins,
    quorum: options.quorum,
    failover,
    failoverTransport,
    async chainId() {
      const id = await agree(
        "eth_chainId",
        async (i) => Number(BigInt((await request(i, "eth_chainId", [])) as string)),
        (n) => String(n),
      );
      return id;
    },
    agreedBlock,
    blockAt,
    async readContract(parameters) {
      const { address, abi, functionName, at } = parameters;
      const data = encodeFunctionData({
        abi,
        functionName,
        args: parameters.args,
      } as unknown as EncodeFunctionDataParameters);
      const result = await agreeAt(
        at.hash,
        `eth_call ${address.toLowerCase()} ${data}`,
        () =>
          agree(
            `eth_call ${functionName}`,
            async (i) => (await request(i, "eth_call", [{ to: address, data }, atHash(at)])) as Hex,
            (hex) => hex.toLowerCase(),
          ),
        (hex) => hex.length,
      );
      return decodeFunctionResult({ abi, functionName, data: result } as never) as never;
    },
    async getCode(address, at) {
      return agreeAt(
        at.hash,
        `eth_getCode ${address.toLowerCase()}`,
        () =>
          agree(
            "eth_getCode",
            async (i) => (await request(i, "eth_getCode", [address, atHash(at)])) as Hex,
            (hex) => hex.toLowerCase(),
          ),
        (hex) => hex.length,
      );
    },
    async getLogs({ address, events, args, fromBlock, to }) {
      if (fromBlock > to.number) return [];
      let topics: (Hex | Hex[] | null)[];
      if (events.length === 1 && args !== undefined) {
        const event = events[0]!;
        topics = encodeEventTopics({ abi: [event], eventName: event.name, args } as never) as (
          | Hex
          | Hex[]
          | null
        )[];
      } else {
        topics = [events.map((event) => toEventSelector(event))];
      }
      const filter = { address, topics, fromBlock: toHex(fromBlock), toBlock: toHex(to.number) };
      const logs = await agreeAt(
        to.hash,
        `eth_getLogs ${JSON.stringify(filter).toLowerCase()}`,
        () =>
          agree(
            "eth_getLogs",
            async (i) => {
              const raw = (await request(i, "eth_getLogs", [filter])) as RpcLog[];
              return raw.filter((log) => log.removed !== true);
            },
            canonicalLogs,
          ),
        (logs) => logs.reduce((n, log) => n + log.data.length + 70 * (log.topics.length + 4), 0),
      );
      const decoded: DecodedLog[] = [];
      for (const log of logs) {
        const blockNumber = BigInt(log.blockNumber);
        // The agreed answer must be about the agreed chain and range; if a quorum said otherwise, refuse.
        if (
          log.address.toLowerCase() !== address.toLowerCase() ||
          blockNumber < fromBlock ||
          blockNumber > to.number ||
          (blockNumber === to.number && log.blockHash.toLowerCase() !== to.hash.toLowerCase())
        ) {
          throw retryableError(
            "RpcError",
            "eth_getLogs: the agreed logs do not match the agreed block range or hash; will retry",
            { details: { block: blockNumber.toString() } },
          );
        }
        let event: { eventName: string; args: unknown };
        try {
          event = decodeEventLog({
            abi: events as readonly AbiEvent[],
            data: log.data,
            topics: log.topics as never,
            strict: false,
          }) as never;
        } catch {
          logger.warn(
            { block: blockNumber, txHash: log.transactionHash },
            "a log that does not decode; ignored",
          );
          continue;
        }
        decoded.push({
          eventName: event.eventName,
          args: (event.args ?? {}) as Record<string, unknown>,
          address: log.address,
          blockNumber,
          blockHash: log.blockHash,
          transactionHash: log.transactionHash,
          logIndex: Number(BigInt(log.logIndex)),
        });
      }
      decoded.sort((a, b) =>
        a.blockNumber === b.blockNumber ? a.logIndex - b.logIndex : a.blockNumber < b.blockNumber ? -1 : 1,
      );
      return decoded;
    },
  };
}

/** Logs as comparable text: every field that matters, lowercase, in chain order. */
function canonicalLogs(logs: readonly RpcLog[]): string {
  return JSON.stringify(
    logs
      .map((l) => [
        BigInt(l.blockNumber).toString(),
        Number(BigInt(l.logIndex)),
        l.blockHash.toLowerCase(),
        l.transactionHash.toLowerCase(),
        l.address.toLowerCase(),
        l.topics.map((t) => t.toLowerCase()),
        l.data.toLowerCase(),
      ])
      .sort((a, b) => {
        const [na, ia] = a as [string, number];
        const [nb, ib] = b as [string, number];
        return na === nb ? ia - ib : BigInt(na) < BigInt(nb) ? -1 : 1;
      }),
  );
}
