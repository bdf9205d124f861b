// Where a member's certificate comes from, at zero gas: the registration transaction's calldata, found
// without ever asking a provider for more blocks than it serves (on Base, tens of millions of blocks;
// providers cap eth_getLogs at 10,000 blocks or fewer). Per member, once:
//
//   1. the registration block: the first block whose timestamp reaches the record's `registeredAt`
//      (the block timestamp `register` stored), by interpolation search on block headers (a few
//      eth_getBlockByNumber calls on a chain of steady block time, log2(blocks) at worst);
//   2. the MemberRegistered log naming the member id, app id and member key in that block (and the few
//      after it that may share its timestamp), by a quorum read (chain/reads.ts): it names the
//      transaction, and its `register` call (direct, or inside handleOps → execute) is the certificate;
//   3. the app's CREATE2 salt (if isMemberApp says it has one), from its MemberAppCreated log: read backwards from the registration
//      block in spans of `maxLogBlocks` (an app is usually created shortly before it registers); past
//      `nearCalls` spans (or with none found, as when the app id was allowed before its app was
//      created), its creation block is bisected on eth_getCode (an archive read) and read alone, and
//      only if that fails does the backward read go on, never below `fromBlock`. A span a
//      provider refuses is halved (shared/chain/logRange.ts). Salts are kept per app id;
//   4. the nonce the signature used: the contract counts one per admission of the app id, so the one
//      of 0..registrationNonce(appId)-1 under which the Register message recovers to the member key
//      (under none: the last one, and verification names what else is wrong).
//
// Steps 3 and 4 need only the registration block and the app id: they run side by side.
//
// A caller that already read the member's MemberRegistered log (the membership follower, whose
// incremental sync just did, by a quorum read) hands its block and transaction as a hint: steps 1 and 2
// are skipped, and the transaction, its receipt, the salt and the nonce bound are read side by side.
// That follower reads the log before the member's record: it hands the log on at once (`prefetch`),
// so those reads run beside the record's, and the fetch that follows takes them as they stand.
// The hint is followed only if it leads to this member: the transaction mined in the hinted block, its
// receipt carries the cluster's MemberRegistered log naming this member id, app id and member key, and
// its input holds a register call carrying the record's keys. Otherwise the full search runs in the
// same call, so a wrong or lying hint costs time, never a certificate.
//
// Nothing here is trusted: the certificate is verified offline afterwards (certificate.ts) — the salt
// by CREATE2, the keys by the signatures — so a lying RPC can only make a member unverifiable (the
// certifier retries it after a backoff), never verify one.
import {
  certificateFromCall,
  findRegisterCalls,
  type RegisterCall,
} from "@attestmesh/shared/certs/calldata.ts";
import { type MemberCertificate, registrationSigner } from "@attestmesh/shared/certs/certificate.ts";
import { createLogScanner, type LogRangeRead } from "@attestmesh/shared/chain/logRange.ts";
import { clusterAbi } from "@attestmesh/shared/contracts/abi.ts";
import {
  type Address,
  type Chain,
  getAbiItem,
  getAddress,
  type Hex,
  type Log,
  type PublicClient,
  parseEventLogs,
  type Transaction,
  type TransactionReceipt,
  type Transport,
} from "viem";
import type { RegistrationLocation, RegistrationSeen } from "../chain/follower.ts";
import type { ChainReads } from "../chain/reads.ts";
import { AttestmeshError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { Member } from "../model/member.ts";

const MEMBER_REGISTERED = getAbiItem({ abi: clusterAbi, name: "MemberRegistered" });
const MEMBER_APP_CREATED = getAbiItem({ abi: clusterAbi, name: "MemberAppCreated" });

/** Blocks read from the first one at `registeredAt`: chains whose blocks may share a timestamp. */
const SAME_TIME_BLOCKS = 16n;

/** Backward spans read for the salt before bisecting the app's creation block. */
const DEFAULT_NEAR_CALLS = 8;

/** Most nonces tried for one registration signature (each a local signature recovery). */
const MAX_NONCES = 4096n;

/**
 * Fetches the certificate a member registered with, starting at `hint` (where its MemberRegistered log
 * was, if the caller read it) and searching where that leads nowhere; throws `CertificateUnavailable`
 * when it cannot.
 */
export interface CertificateSource {
  (member: Member, hint?: RegistrationLocation): Promise<MemberCertificate>;
  /**
   * A member was just seen registering there (its MemberRegistered log, read by a quorum): start
   * reading what a hinted fetch of it reads, so the fetch that follows its record finds it under way.
   */
  prefetch?(seen: RegistrationSeen): void;
}

/** Reads started by `prefetch` kept at most this long, and this many, unused. */
const PREFETCH_KEPT_MS = 60_000;
const PREFETCH_KEPT = 32;

function unavailable(member: Member, problem: string): AttestmeshError {
  return new AttestmeshError(`member ${member.memberId}'s certificate is unavailable: ${problem}`, {
    code: "CertificateUnavailable",
    retryable: true,
    details: { memberId: member.memberId.toString(), appId: member.appId },
  });
}

interface Header {
  readonly number: bigint;
  readonly timestamp: bigint;
}

/**
 * The CREATE2 salt of a member app of the cluster (step 3): `{ salt }`, or `{ problem }` where the chain
 * says it has none (not a member app, no MemberAppCreated log); throws where a provider could not be
 * read. `near` is where the search starts going back from (the registration block, or the head);
 * `head` is read only if the app's creation block must be bisected. Salts are kept per app id, and
 * none is trusted: a certificate's salt is checked by CREATE2 (certificate.ts).
 */
export type MemberAppSalts = (
  appId: Address,
  near: bigint,
  head: () => Promise<bigint>,
) => Promise<{ readonly salt: Hex } | { readonly problem: string }>;

export function createMemberAppSalts(options: {
  /** Any provider (failover). */
  readonly client: PublicClient<Transport, Chain>;
  readonly cluster: Address;
  /** The lowest block searched (the cluster's deployment, or below it); default 0. */
  readonly fromBlock?: bigint;
  /** The widest eth_getLogs span; default 10,000 blocks. */
  readonly maxLogBlocks?: bigint;
  /** Backward spans read for the salt before bisecting the app's creation block; default 8. */
  readonly nearCalls?: number;
  readonly logger?: Logger;
}): MemberAppSalts {
  const { client, cluster, logger } = options;
  const fromBlock = options.fromBlock ?? 0n;
  const nearCalls = options.nearCalls ?? DEFAULT_NEAR_CALLS;
  const scanner = createLogScanner({
    ...(options.maxLogBlocks === undefined ? {} : { maxBlocks: options.maxLogBlocks }),
    onShrink: (blocks, err) =>
      logger?.info(
        { blocks: Number(blocks), err },
        "an RPC provider refused an eth_getLogs range; narrowing it",
      ),
  });
  const salts = new Map<Address, Hex>();

  const appCreatedIn =
    (appId: Address): LogRangeRead<Hex> =>
    async (from, to) =>
      (
        await client.getLogs({
          address: cluster,
          event: MEMBER_APP_CREATED,
          args: { app: appId },
          fromBlock: from,
          toBlock: to,
          strict: true,
        })
      ).map((log) => log.args.salt);

  /** The first block at which `appId` has code (log2 eth_getCode calls); undefined where unreadable. */
  async function creationBlock(appId: Address, head: bigint): Promise<bigint | undefined> {
    let low = fromBlock;
    let high = head;
    try {
      while (low < high) {
        const mid = (low + high) / 2n;
        const code = await client.getCode({ address: appId, blockNumber: mid });
        if (code !== undefined && code !== "0x") high = mid;
        else low = mid + 1n;
      }
    } catch (err) {
      logger?.debug({ appId, err }, "cannot bisect the member app's creation block (no archive state?)");
      return undefined;
    }
    return low;
  }

  return async (app, near, head) => {
    const appId = getAddress(app);
    const known = salts.get(appId);
    if (known !== undefined) return { salt: known };
    const read = appCreatedIn(appId);
    // Usually created shortly before it registered: a few spans back from the registration block, read
    // beside isMemberApp (one round trip, not two). For an app id that is no member app (its
    // certificate would be refused: AppIdNotMemberApp) those spans are wasted: at most `nearCalls`
    // reads, once per certifier backoff.
    const nearby = scanner.backward(fromBlock, near, read, nearCalls);
    nearby.catch(() => {});
    const memberApp = await client.readContract({
      address: cluster,
      abi: clusterAbi,
      functionName: "isMemberApp",
      args: [appId],
    });
    if (!memberApp) return { problem: "its app id is not one of the cluster's member apps" };
    let found = await nearby;
    if (found === undefined || found.length === 0) {
      // Far below, or even above (an app id allowed before its app was created): bisect its creation.
      const created = await creationBlock(appId, await head());
      const there = created === undefined ? [] : [...(await read(created, created))];
      // Still nothing (no archive state, or a lie): read on down to the floor.
      if (there.length > 0) found = there;
      else if (found === undefined) found = (await scanner.backward(fromBlock, near, read)) ?? [];
    }
    const salt = found[0];
    if (salt === undefined) return { problem: "its app id has no MemberAppCreated log (not a member app)" };
    salts.set(appId, salt);
    return { salt };
  };
}

export function createChainCertificateSource(options: {
  /** Locating reads, any provider (failover): headers, the salt, the transaction, the nonce bound. */
  readonly client: PublicClient<Transport, Chain>;
  /** The quorum reads: the registration log. */
  readonly reads: ChainReads;
  readonly cluster: Address;
  /** The lowest block searched (the cluster's deployment, or below it); default 0. */
  readonly fromBlock?: bigint;
  /** The widest eth_getLogs span; default 10,000 blocks. */
  readonly maxLogBlocks?: bigint;
  /** Backward spans read for the salt before bisecting the app's creation block; default 8. */
  readonly nearCalls?: number;
  /** Where salts come from (shared with this node's own certificate check); default one of its own. */
  readonly salts?: MemberAppSalts;
  readonly logger?: Logger;
}): CertificateSource {
  const { client, reads, cluster, logger } = options;
  const fromBlock = options.fromBlock ?? 0n;
  const salts =
    options.salts ??
    createMemberAppSalts({
      client,
      cluster,
      fromBlock,
      ...(options.maxLogBlocks === undefined ? {} : { maxLogBlocks: options.maxLogBlocks }),
      ...(options.nearCalls === undefined ? {} : { nearCalls: options.nearCalls }),
      ...(logger === undefined ? {} : { logger }),
    });
  let floor: Header | undefined;

  async function header(number: bigint | "latest"): Promise<Header> {
    const block =
      number === "latest"
        ? await client.getBlock({ blockTag: "latest" })
        : await client.getBlock({ blockNumber: number });
    if (block.number === null) throw new Error("the provider returned a pending block");
    return { number: block.number, timestamp: block.timestamp };
  }

  /**
   * The first block of `low`..`high` whose timestamp is at least `time`, `low` below it and `high` at
   * or above it. Interpolating on timestamps finds it in a few headers when blocks come at a steady
   * pace; every other step bisects, so a chain that does not still costs only 2·log2(blocks).
   */
  async function firstBlockAt(time: bigint, low: Header, high: Header): Promise<bigint> {
    let lo = low;
    let hi = high;
    for (let step = 0; hi.number - lo.number > 1n; step++) {
      const span = hi.number - lo.number;
      let mid =
        step % 2 === 0 && hi.timestamp > lo.timestamp
          ? lo.number + ((time - lo.timestamp) * span) / (hi.timestamp - lo.timestamp)
          : lo.number + span / 2n;
      if (mid <= lo.number) mid = lo.number + 1n;
      if (mid >= hi.number) mid = hi.number - 1n;
      const at = await header(mid);
      if (at.timestamp >= time) hi = at;
      else lo = at;
    }
    return hi.number;
  }

  async function registrationBlock(member: Member): Promise<{ first: bigint; head: bigint }> {
    const time = BigInt(member.registeredAt);
    floor ??= await header(fromBlock);
    const head = await header("latest");
    if (time > head.timestamp) throw unavailable(member, "its registration time is past the provider's head");
    if (floor.timestamp >= time) return { first: floor.number, head: head.number };
    return { first: await firstBlockAt(time, floor, head), head: head.number };
  }

  /** The app's CREATE2 salt; `head` is read only if the app's creation block must be bisected. */
  async function saltOf(member: Member, registered: bigint, head: () => Promise<bigint>): Promise<Hex> {
    const found = await salts(member.appId, registered, head);
    if ("problem" in found) throw unavailable(member, found.problem);
    return found.salt;
  }

  /** How many times the app id was admitted: its registration signatures used nonces below that. */
  async function admissionsOf(appId: Address): Promise<bigint> {
    return BigInt(
      await client.readContract({
        address: cluster,
        abi: clusterAbi,
        functionName: "registrationNonce",
        args: [appId],
      }),
    );
  }

  /** What a hinted fetch reads, started by `prefetch`, by transaction hash (lowercase). */
  interface Prefetched {
    readonly appId: Address;
    readonly blockNumber: bigint;
    readonly tx: Promise<Transaction>;
    readonly receipt: Promise<TransactionReceipt>;
    readonly salt: ReturnType<MemberAppSalts>;
    readonly admissions: Promise<bigint>;
    readonly at: number;
  }
  const prefetched = new Map<string, Prefetched>();

  /** The reads of a hinted fetch of a member of `appId` registered at `hint`. */
  function hintedReads(appId: Address, hint: RegistrationLocation): Omit<Prefetched, "at"> {
    const latest = async () => (await header("latest")).number;
    return {
      appId: getAddress(appId),
      blockNumber: hint.blockNumber,
      tx: client.getTransaction({ hash: hint.transactionHash }),
      receipt: client.getTransactionReceipt({ hash: hint.transactionHash }),
      salt: salts(appId, hint.blockNumber, latest),
      admissions: admissionsOf(appId),
    };
  }

  /** The reads `prefetch` started for exactly this app id and location, taken (used once), if any. */
  function takePrefetched(appId: Address, hint: RegistrationLocation): Omit<Prefetched, "at"> | undefined {
    const key = hint.transactionHash.toLowerCase();
    const early = prefetched.get(key);
    if (early === undefined) return undefined;
    prefetched.delete(key);
    if (early.appId !== getAddress(appId) || early.blockNumber !== hint.blockNumber) return undefined;
    return early;
  }

  /** The register call in a transaction's input that carries the record's app id and keys. */
  function registerCallOf(member: Member, input: Hex): RegisterCall | undefined {
    return findRegisterCalls(input).find(
      (c) =>
        typeof c.appId === "string" &&
        getAddress(c.appId) === getAddress(member.appId) &&
        String(c.wireguardKey).toLowerCase() === member.wireguardKey &&
        String(c.identityKey).toLowerCase() === member.identityKey,
    );
  }

  /** The certificate under the nonce its signature was made with (the contract's, not stated). */
  async function nonceOf(
    member: Member,
    call: RegisterCall,
    salt: Hex,
    admissions: bigint,
  ): Promise<MemberCertificate> {
    const chainId = client.chain.id;
    const lowest = admissions > MAX_NONCES ? admissions - MAX_NONCES : 0n;
    // The latest admissions first: the member on record is most often the app id's last one.
    for (let nonce = admissions - 1n; nonce >= lowest; nonce--) {
      const certificate = certificateFromCall(call, salt, nonce);
      try {
        if (getAddress(registrationSigner(certificate, chainId, cluster)) === getAddress(member.memberKey)) {
          return certificate;
        }
      } catch {
        break; // Not a signature at all: no nonce makes it one.
      }
    }
    // Under none of them: the certificate goes to verification anyway, which names what is wrong.
    return certificateFromCall(call, salt, admissions > 0n ? admissions - 1n : 0n);
  }

  /** Steps 1-4: the registration located from the record's `registeredAt`. */
  async function search(member: Member): Promise<MemberCertificate> {
    const { first, head } = await registrationBlock(member);
    const last = first + SAME_TIME_BLOCKS - 1n < head ? first + SAME_TIME_BLOCKS - 1n : head;
    const logs = await reads.getLogs({
      address: cluster,
      events: [MEMBER_REGISTERED],
      args: { memberId: member.memberId, appId: member.appId, memberKey: member.memberKey },
      fromBlock: first,
      to: await reads.blockAt(last),
    });
    const registration = logs.find((log) => log.args.memberId === member.memberId);
    if (registration === undefined) {
      throw unavailable(
        member,
        `no MemberRegistered log names it in blocks ${first}-${last} (its registration time)`,
      );
    }
    const tx = await client.getTransaction({ hash: registration.transactionHash });
    const call = registerCallOf(member, tx.input);
    if (call === undefined)
      throw unavailable(member, "its registration transaction holds no matching register call");
    const [salt, admissions] = await Promise.all([
      saltOf(member, registration.blockNumber, async () => head),
      admissionsOf(member.appId),
    ]);
    return nonceOf(member, call, salt, admissions);
  }

  /** Whether a receipt carries the cluster's MemberRegistered log naming this member and its keys. */
  function registers(member: Member, logs: readonly Log[]): boolean {
    return parseEventLogs({
      abi: clusterAbi,
      eventName: "MemberRegistered",
      logs: [...logs],
      strict: true,
    }).some(
      (log) =>
        getAddress(log.address) === getAddress(cluster) &&
        log.args.memberId === member.memberId &&
        getAddress(log.args.appId) === getAddress(member.appId) &&
        getAddress(log.args.memberKey) === getAddress(member.memberKey),
    );
  }

  /** The certificate where `hint` says the member registered; undefined where that leads nowhere. */
  async function fromHint(
    member: Member,
    hint: RegistrationLocation,
  ): Promise<MemberCertificate | undefined> {
    // Under way since the follower read the registration log (prefetch), or started now.
    const reads = takePrefetched(member.appId, hint) ?? hintedReads(member.appId, hint);
    const salt = reads.salt.then((found) => {
      if ("problem" in found) throw unavailable(member, found.problem);
      return found.salt;
    });
    const admissions = reads.admissions;
    // Settled before any return: the full search after a wrong hint must not race them.
    const settled = Promise.allSettled([salt, admissions]);
    let problem: string | undefined;
    let call: RegisterCall | undefined;
    try {
      const [tx, receipt] = await Promise.all([reads.tx, reads.receipt]);
      call = registerCallOf(member, tx.input);
      if (tx.blockNumber !== hint.blockNumber || receipt.blockNumber !== hint.blockNumber)
        problem = `the transaction is in block ${tx.blockNumber}, not ${hint.blockNumber}`;
      else if (receipt.status !== "success" || !registers(member, receipt.logs))
        problem = "the transaction registered no member by this id and keys";
      else if (call === undefined) problem = "the transaction holds no register call with these keys";
    } catch (err) {
      problem = `cannot read the transaction (${err instanceof Error ? err.message.split("\n")[0] : String(err)})`;
    }
    if (problem !== undefined || call === undefined) {
      await settled;
      logger?.debug(
        {
          memberId: member.memberId.toString(),
          block: hint.blockNumber.toString(),
          txHash: hint.transactionHash,
          problem,
        },
        "the registration hint leads nowhere; searching for the registration",
      );
      return undefined;
    }
    // The hinted registration is the member's: what fails from here would fail the search too.
    return nonceOf(member, call, await salt, await admissions);
  }

  const source: CertificateSource = async (member, hint) =>
    (hint === undefined ? undefined : await fromHint(member, hint)) ?? search(member);
  source.prefetch = ({ appId, location }) => {
    const now = Date.now();
    for (const [key, early] of prefetched) {
      if (now - early.at > PREFETCH_KEPT_MS || prefetched.size >= PREFETCH_KEPT) prefetched.delete(key);
    }
    const key = location.transactionHash.toLowerCase();
    if (prefetched.has(key)) return;
    const early = { ...hintedReads(appId, location), at: now };
    // Nobody may ever take them (the record turned out cached, or refused): their failures are the
    // taker's to see, never unhandled.
    for (const read of [early.tx, early.receipt, early.salt, early.admissions]) read.catch(() => {});
    prefetched.set(key, early);
  };
  return source;
}
