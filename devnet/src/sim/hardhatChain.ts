// The CSK simulator's chain side on a real Hardhat node holding the N registered members (onchain.ts):
// every member reads and writes through the sidecar's own chain code, built as mesh/runtime.ts builds it
// (csk/chain.ts: `currentCsk` + `cskRecovery` at a quorum-agreed block, EIP-712 `CommitCsk` /
// `ConfirmCsk` signed by the member key and submitted by the gas-key writer, chain/directWriter.ts,
// which simulates, sends and waits for the receipt; the head standing check and `stillActive` over
// chain/reads.ts and chain/cluster.ts), each member with its own reads (its own caches), against the
// deployed diamond, whose own checks (the member's signature, its standing, the epoch rules) decide.
//
// Time. The simulation's clock is not the wall clock (1,000 members run slower than real time on two
// cores), so the chain runs on the simulated clock: automine is off and a block is mined every
// `blockMs` of simulated time (interval mining, as Base's 2 s blocks), stamped `blockMs` apart. Each
// JSON-RPC request runs on the node at once while simulated time waits (sim.hold), and its answer
// reaches the member `rpcMs` of simulated time later (one round trip to a provider). The reads' head
// gather (15 ms) runs on the simulated clock. The writer's receipt wait polls in real time (viem); the
// block that includes a member's transaction holds simulated time until that poll has found the
// receipt, which reaches the writer `rpcMs` plus a uniform share of `pollMs` (the sidecar's receipt
// poll, 1 s) after the block.

import { clusterAbi } from "@attestmesh/shared/contracts/abi.ts";
import { memberDomain, memberTypes } from "@attestmesh/shared/contracts/typedData.ts";
import type { ChainContext } from "@attestmesh/sidecar/chain/client.ts";
import { createClusterReader } from "@attestmesh/sidecar/chain/cluster.ts";
import { createChainReads } from "@attestmesh/sidecar/chain/reads.ts";
import { type CskEpochState, createCskChain, headReadsOf } from "@attestmesh/sidecar/csk/chain.ts";
import { createStandingCheck } from "@attestmesh/sidecar/csk/standing.ts";
import { createLogger } from "@attestmesh/sidecar/log.ts";
import { isStale } from "@attestmesh/sidecar/model/member.ts";
import { secret } from "@attestmesh/sidecar/secret.ts";
import {
  type Address,
  createPublicClient,
  createWalletClient,
  custom,
  decodeFunctionResult,
  defineChain,
  encodeFunctionData,
  type Hex,
  keccak256,
  toBytes,
  toHex,
  zeroHash,
} from "viem";
import { privateKeyToAccount, signTypedData } from "viem/accounts";
import { seededRng } from "../rng.ts";
import type { MemberChain, SimChain } from "./csk.ts";
import type { LivenessSim } from "./liveness.ts";

export interface Eip1193 {
  request(args: { method: string; params?: unknown }): Promise<unknown>;
}

/** A Hardhat node with the cluster deployed and the members registered (onchain.ts). */
export interface HardhatCluster {
  readonly provider: Eip1193;
  readonly chainId: number;
  readonly cluster: Address;
  /** Unlocked accounts on the node: the cluster owner, and one that relays (pays for) set-up calls. */
  readonly owner: Address;
  readonly relayer: Address;
  /** Member i+1's member key (secp256k1, derived by its CVM): signs its CSK actions. */
  readonly memberKeys: readonly Hex[];
}

export interface HardhatChainOptions {
  /** Simulated ms between blocks (Base: 2,000). */
  readonly blockMs?: number;
  /** Simulated ms from a JSON-RPC request to its answer. */
  readonly rpcMs?: number;
  /** The sidecar's receipt poll: the receipt reaches the writer within this much after the block. */
  readonly pollMs?: number;
  readonly seed?: number;
}

export interface HardhatChainCounters {
  /** JSON-RPC requests the members made (reads and writes; not the writer's real-time receipt polls). */
  readonly requests: number;
  readonly blocks: number;
  /** Transactions the members sent. */
  readonly transactions: number;
}

/** How often (real ms) viem's receipt wait polls; the simulated delay is modelled apart (pollMs). */
const REAL_POLL_MS = 5;
/** Real ms a block waits for a writer's poll to find its receipt before giving up (a stuck writer). */
const RECEIPT_WAIT_REAL_MS = 30_000;
const GAS_BALANCE = toHex(10n ** 21n);

const silent = createLogger({ level: "silent" });

/**
 * The requests of viem's receipt wait (waitForTransactionReceipt): the head, the receipt, the
 * transaction and its block with transactions (the replacement check). The writer's other requests
 * (balance, simulation, nonce, fees, estimate, send) ask for the latest block without transactions.
 */
const receiptWait = (method: string, params: unknown) =>
  method === "eth_blockNumber" ||
  method === "eth_getTransactionReceipt" ||
  method === "eth_getTransactionByHash" ||
  (method === "eth_getBlockByNumber" && Array.isArray(params) && params[1] === true);

/** Member i's gas key (the direct writer's), from its index alone. */
const gasKeyOf = (i: number): Hex => keccak256(toBytes(`attestmesh sim gas key ${i + 1}`));

export function hardhatChain(
  node: HardhatCluster,
  options: HardhatChainOptions = {},
): ((sim: LivenessSim) => SimChain) & { counters(): HardhatChainCounters } {
  const blockMs = options.blockMs ?? 2000;
  const rpcMs = options.rpcMs ?? 50;
  const pollMs = options.pollMs ?? 1000;
  const pollRng = seededRng((options.seed ?? 1) + 7919);
  const { provider, cluster, chainId } = node;
  const chain = defineChain({
    id: chainId,
    name: `chain-${chainId}`,
    nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
    rpcUrls: { default: { http: [] } },
  });
  let requests = 0;
  let blocks = 0;
  /** Transactions members sent and whose receipt their writer has not found yet: hash → member. */
  const sent = new Map<string, number>();
  let transactions = 0;
  /** Included transactions whose receipt the writer has not found yet: hash → release of the hold. */
  const waiting = new Map<string, () => void>();

  const factory = (sim: LivenessSim): SimChain => {
    let state: CskEpochState = { epoch: 0n, commitment: undefined, committer: 0n, confirmer: 0n, barred: 0n };
    const opened = new Map<bigint, number>();
    const commits = new Map<bigint, { at: number; by: bigint }>();
    let stopped = false;
    let timestamp = 0n;
    const failures: unknown[] = [];
    const callData = async (functionName: "currentCsk" | "cskRecovery") =>
      (await provider.request({
        method: "eth_call",
        params: [{ to: cluster, data: encodeFunctionData({ abi: clusterAbi, functionName }) }, "latest"],
      })) as Hex;
    const currentCsk = async () =>
      decodeFunctionResult({
        abi: clusterAbi,
        functionName: "currentCsk",
        data: await callData("currentCsk"),
      });
    const cskRecovery = async () =>
      decodeFunctionResult({
        abi: clusterAbi,
        functionName: "cskRecovery",
        data: await callData("cskRecovery"),
      });
    /** The chain's CSK state after a block: when each epoch opened and was committed (simulated time). */
    const refresh = async () => {
      const [[epoch, commitment, committer], [, confirmer, barred]] = await Promise.all([
        currentCsk(),
        cskRecovery(),
      ]);
      state = {
        epoch,
        commitment: commitment === zeroHash ? undefined : commitment,
        committer,
        confirmer,
        barred,
      };
      if (!opened.has(epoch)) opened.set(epoch, sim.now());
      if (state.commitment !== undefined && !commits.has(epoch))
        commits.set(epoch, { at: sim.now(), by: committer });
    };

    /** A member's JSON-RPC transport: the node answers at once, the member hears it rpcMs later. */
    const transportOf = (i: number, writer: boolean) =>
      custom(
        {
          async request({ method, params }: { method: string; params?: unknown }) {
            // The writer's receipt wait polls on real timers: its requests are answered at once and do not
            // hold the simulation, except the one that finds a member's receipt.
            if (writer && receiptWait(method, params)) {
              const result = await provider.request({ method, params });
              const hash =
                method === "eth_getTransactionReceipt" ? (params as Hex[])[0]?.toLowerCase() : undefined;
              if (result === null || hash === undefined || !sent.has(hash)) return result;
              sent.delete(hash);
              const later = sim.later(i, rpcMs + pollRng.float() * pollMs, () => undefined);
              waiting.get(hash)?.();
              waiting.delete(hash);
              await later;
              return result;
            }
            const release = sim.hold();
            requests += 1;
            let result: unknown;
            let failure: unknown;
            let failed = false;
            try {
              result = await provider.request({ method, params });
            } catch (error) {
              failure = error;
              failed = true;
            }
            if (method === "eth_sendRawTransaction" && typeof result === "string") {
              sent.set(result.toLowerCase(), i);
              transactions += 1;
            }
            const later = sim.later(i, rpcMs, () => undefined);
            release();
            await later;
            if (failed) throw failure;
            return result;
          },
        },
        { retryCount: 0 },
      );

    /** A block every blockMs of simulated time; its transactions' writers find their receipts. */
    const mine = () => {
      if (stopped) return;
      const release = sim.hold();
      blocks += 1;
      timestamp += BigInt(Math.max(1, Math.round(blockMs / 1000)));
      void (async () => {
        await provider.request({ method: "evm_mine", params: [Number(timestamp)] });
        const block = (await provider.request({
          method: "eth_getBlockByNumber",
          params: ["latest", false],
        })) as { transactions: Hex[] };
        for (const tx of block.transactions) {
          const hash = tx.toLowerCase();
          // Not sent by a member, or its writer already found the receipt (while this block was read).
          if (!sent.has(hash)) continue;
          const hold = sim.hold();
          const stuck = setTimeout(() => {
            failures.push(
              new Error(`no writer found the receipt of ${hash} within ${RECEIPT_WAIT_REAL_MS} ms`),
            );
            waiting.delete(hash);
            hold();
          }, RECEIPT_WAIT_REAL_MS);
          waiting.set(hash, () => {
            clearTimeout(stuck);
            hold();
          });
        }
        await refresh();
      })()
        .catch((error: unknown) => failures.push(error))
        .finally(release);
      sim.timers(0).setTimeout(mine, blockMs);
    };

    return {
      member(i): MemberChain {
        const simTimers = sim.asyncTimers(i);
        const reads = createChainReads({
          endpoints: [{ origin: "hardhat", transport: transportOf(i, false) }],
          quorum: 1,
          chain,
          logger: silent,
          now: sim.clock.monoMs,
          timers: simTimers,
        });
        const writerTransport = transportOf(i, true);
        const context: ChainContext = {
          chainId,
          chain,
          cluster,
          reads,
          publicClient: createPublicClient({
            chain,
            transport: writerTransport,
            cacheTime: 0,
            pollingInterval: REAL_POLL_MS,
          }),
          wallet: createWalletClient({
            account: privateKeyToAccount(gasKeyOf(i)),
            chain,
            transport: writerTransport,
            pollingInterval: REAL_POLL_MS,
          }),
        };
        const headReads = headReadsOf(context, createClusterReader(reads, cluster));
        const memberKey = node.memberKeys[i];
        if (memberKey === undefined) throw new Error(`no member key for member ${i + 1}`);
        return {
          csk: createCskChain(context, secret(memberKey), silent),
          standing: createStandingCheck(headReads),
          // As mesh/runtime.ts: ranked ahead only while active and not stale at the head.
          async stillActive(id) {
            const at = await headReads.head();
            const [record, standing] = await Promise.all([
              headReads.member(id, at),
              headReads.standing?.(id, at),
            ]);
            return record?.status === "active" && !isStale(standing);
          },
        };
      },
      async seed(commitment) {
        // Set-up, before the simulation's clock runs: automine is still on.
        const memberKey = node.memberKeys[0]!;
        const epoch = (await currentCsk())[0];
        const signature = await signTypedData({
          privateKey: memberKey,
          domain: memberDomain(chainId, cluster),
          types: memberTypes,
          primaryType: "CommitCsk",
          message: { memberId: 1n, epoch, commitment },
        });
        await provider.request({
          method: "eth_sendTransaction",
          params: [
            {
              from: node.relayer,
              to: cluster,
              data: encodeFunctionData({
                abi: clusterAbi,
                functionName: "commitCsk",
                args: [1n, epoch, commitment, signature],
              }),
            },
          ],
        });
        for (let i = 0; i < sim.nodes.length; i++) {
          await provider.request({
            method: "hardhat_setBalance",
            params: [privateKeyToAccount(gasKeyOf(i)).address, GAS_BALANCE],
          });
        }
        await refresh();
        if (state.commitment !== commitment)
          throw new Error(`the seed commitment for epoch ${epoch} did not land`);
        const latest = (await provider.request({
          method: "eth_getBlockByNumber",
          params: ["latest", false],
        })) as {
          timestamp: Hex;
        };
        timestamp = BigInt(latest.timestamp);
        await provider.request({ method: "evm_setAutomine", params: [false] });
        sim.timers(0).setTimeout(mine, blockMs);
      },
      async open() {
        // The owner's transaction; the next block includes it.
        await provider.request({
          method: "eth_sendTransaction",
          params: [
            {
              from: node.owner,
              to: cluster,
              data: encodeFunctionData({ abi: clusterAbi, functionName: "openCskEpoch" }),
            },
          ],
        });
        return state.epoch + 1n;
      },
      state: () => state,
      openedAt: (epoch) => opened.get(epoch),
      committed: (epoch) => commits.get(epoch),
      async stop() {
        stopped = true;
        for (const release of waiting.values()) release();
        waiting.clear();
        if (failures.length > 0) throw new AggregateError(failures, "the simulated chain failed");
        await provider.request({ method: "evm_setAutomine", params: [true] });
      },
    };
  };
  return Object.assign(factory, {
    counters: () => ({ requests, blocks, transactions }),
  });
}
