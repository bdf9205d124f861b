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
  type PublicClient,
  type Transport,
} from "viem";
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

/** Fetches the certificate a member registered with; throws `CertificateUnavailable` when it cannot. */
export type CertificateSource = (member: Member) => Promise<MemberCertificate>;

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
  readonly logger?: Logger;
}): CertificateSource {
  const { client, reads, cluster, logger } = options;
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

  async function saltOf(member: Member, registered: bigint, head: bigint): Promise<Hex> {
    const appId = getAddress(member.appId);
    const known = salts.get(appId);
    if (known !== undefined) return known;
    const memberApp = await client.readContract({
      address: cluster,
      abi: clusterAbi,
      functionName: "isMemberApp",
      args: [appId],
    });
    // Not worth a search (its certificate would be refused: AppIdNotMemberApp).
    if (!memberApp) throw unavailable(member, "its app id is not one of the cluster's member apps");
    const read = appCreatedIn(appId);
    // Usually created shortly before it registered: a few spans back from the registration block.
    let found = await scanner.backward(fromBlock, registered, read, nearCalls);
    if (found === undefined || found.length === 0) {
      // Far below, or even above (an app id allowed before its app was created): bisect its creation.
      const created = await creationBlock(appId, head);
      const there = created === undefined ? [] : [...(await read(created, created))];
      // Still nothing (no archive state, or a lie): read on down to the floor.
      if (there.length > 0) found = there;
      else if (found === undefined) found = (await scanner.backward(fromBlock, registered, read)) ?? [];
    }
    const salt = found[0];
    if (salt === undefined)
      throw unavailable(member, "its app id has no MemberAppCreated log (not a member app)");
    salts.set(appId, salt);
    return salt;
  }

  /** The certificate under the nonce its signature was made with (the contract's, not stated). */
  async function withNonce(member: Member, call: RegisterCall, salt: Hex): Promise<MemberCertificate> {
    const admissions = BigInt(
      await client.readContract({
        address: cluster,
        abi: clusterAbi,
        functionName: "registrationNonce",
        args: [member.appId],
      }),
    );
    const chainId = client.chain.id;
    const lowest = admissions > MAX_NONCES ? admissions - MAX_NONCES : 0n;
    // The latest admissions first: the member on record is most often the app id's last one.
    for (let nonce = admissions - 1n; nonce >= lowest; nonce--) {
      const certificate = certificateFromCall(call, salt, nonce);
      try {
        if (
          getAddress(await registrationSigner(certificate, chainId, cluster)) === getAddress(member.memberKey)
        ) {
          return certificate;
        }
      } catch {
        break; // Not a signature at all: no nonce makes it one.
      }
    }
    // Under none of them: the certificate goes to verification anyway, which names what is wrong.
    return certificateFromCall(call, salt, admissions > 0n ? admissions - 1n : 0n);
  }

  return async (member) => {
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
    const call = findRegisterCalls(tx.input).find(
      (c) =>
        typeof c.appId === "string" &&
        getAddress(c.appId) === getAddress(member.appId) &&
        String(c.wireguardKey).toLowerCase() === member.wireguardKey &&
        String(c.identityKey).toLowerCase() === member.identityKey,
    );
    if (call === undefined)
      throw unavailable(member, "its registration transaction holds no matching register call");
    return withNonce(member, call, await saltOf(member, registration.blockNumber, head));
  };
}
