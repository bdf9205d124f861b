// Pulling the CSK from peers: ask up to `fanout` peers at once, each with its own deadline, moving on
// to the next peer as each one answers "not held" or "not attested yet", times out or is rejected; the first answer whose
// key hashes to the on-chain commitment wins. An answer is rejected (and reported with the peer's id)
// when it is not signed by the asked peer's on-chain key, names another epoch, does not open with this
// node's key, or holds a key whose keccak256 is not the commitment: a bogus CSK.
//
// "Not attested yet" moves on to the next peer too, but that request stays open for a second answer
// from the same peer for `requestTimeoutMs`: the server sends the key the moment its verdict on this node
// passes (server.ts). That answer is checked like any other. A fetch in which peers said "not attested
// yet" ends at the first key, or once every such request's wait is over.
import { keccak256 } from "viem";
import { randomBytes } from "../meshnet/crypto.ts";
import type { MeshEndpoint } from "../meshnet/endpoint.ts";
import type { Remote } from "../meshnet/socket.ts";
import { WireError } from "../meshnet/wire.ts";
import { CSK_BYTES, decodeResponse, encodeRequest, ResponseStatus, verifySigned } from "./codec.ts";

export const REJECT_REASONS = [
  "bad-signature",
  "wrong-epoch",
  "unsealable",
  "wrong-length",
  "hash-mismatch",
] as const;
export type CskRejectReason = (typeof REJECT_REASONS)[number];

/**
 * not-attested-yet: the peer holds no passing verdict on this node's attestation yet (it was peered
 * moments ago); not evidence against the peer: ask again soon, or ask another.
 */
export type AttemptOutcome = "ok" | "not-held" | "not-attested-yet" | "timeout" | CskRejectReason;

export interface FetchResult {
  /** The verified key (the caller owns it), or undefined when no peer delivered. */
  readonly key: Uint8Array | undefined;
  readonly from: bigint | undefined;
  readonly attempts: ReadonlyArray<{ readonly peer: bigint; readonly outcome: AttemptOutcome }>;
}

export interface CskClientOptions extends MeshEndpoint {
  readonly requestTimeoutMs: number;
  readonly fanout: number;
  readonly now?: () => number;
  /** Where the per-request deadlines run (the process's timers unless a simulator supplies its own). */
  readonly timers?: {
    setTimeout(fn: () => void, ms: number): unknown;
    clearTimeout(handle: unknown): void;
  };
  /** Called for every rejected answer, with the peer that sent it. */
  readonly onRejected?: (peer: bigint, reason: CskRejectReason, epoch: bigint) => void;
}

interface Pending {
  readonly peer: bigint;
  readonly epoch: bigint;
  readonly commitment: `0x${string}`;
  /** Settles the request's first answer, or (once parked) its second. */
  readonly settle: (outcome: AttemptOutcome, key?: Uint8Array) => void;
  /** True once the peer said "not attested yet": only a key may follow. */
  parked: boolean;
}

interface AttemptResult {
  readonly outcome: AttemptOutcome;
  readonly key?: Uint8Array;
  /** After "not attested yet": the peer's second answer (a key, or a rejection), or timeout. */
  readonly late?: Promise<AttemptResult>;
}

export interface CskClient {
  /** Handles a CSK response datagram from the mesh socket. */
  handle(datagram: Uint8Array, from: Remote): void;
  fetch(request: {
    epoch: bigint;
    commitment: `0x${string}`;
    peers: readonly bigint[];
  }): Promise<FetchResult>;
}

export function createCskClient(options: CskClientOptions): CskClient {
  const { self, cluster, key, directory } = options;
  const now = options.now ?? Date.now;
  const timers = options.timers ?? {
    setTimeout: (fn: () => void, ms: number) => setTimeout(fn, ms),
    clearTimeout: (handle: unknown) => clearTimeout(handle as ReturnType<typeof setTimeout>),
  };
  const pending = new Map<string, Pending>();

  function attempt(peer: bigint, epoch: bigint, commitment: `0x${string}`): Promise<AttemptResult> {
    const member = directory.get(peer);
    if (member === undefined) return Promise.resolve({ outcome: "timeout" });
    const nonce = randomBytes(16);
    const nonceHex = Buffer.from(nonce).toString("hex");
    return new Promise((resolve) => {
      let timer = timers.setTimeout(() => first("timeout"), options.requestTimeoutMs);
      const result = (outcome: AttemptOutcome, k?: Uint8Array): AttemptResult =>
        k === undefined ? { outcome } : { outcome, key: k };
      const entry: Pending = { peer, epoch, commitment, settle: first, parked: false };
      function first(outcome: AttemptOutcome, k?: Uint8Array) {
        timers.clearTimeout(timer);
        if (outcome !== "not-attested-yet") {
          pending.delete(nonceHex);
          resolve(result(outcome, k));
          return;
        }
        // Parked: the same request may still get the key, once, within requestTimeoutMs.
        const late = new Promise<AttemptResult>((settleLate) => {
          const done = (o: AttemptOutcome, lateKey?: Uint8Array) => {
            timers.clearTimeout(timer);
            pending.delete(nonceHex);
            settleLate(result(o, lateKey));
          };
          timer = timers.setTimeout(() => done("timeout"), options.requestTimeoutMs);
          pending.set(nonceHex, { ...entry, settle: done, parked: true });
        });
        resolve({ outcome, late });
      }
      pending.set(nonceHex, entry);
      const datagram = encodeRequest(
        {
          chainId: cluster.chainId,
          cluster: cluster.cluster,
          requesterId: self,
          serverId: peer,
          epoch,
          timestampMs: BigInt(now()),
          nonce,
        },
        key.sign,
      );
      options.send(datagram, member.meshIp, options.port);
    });
  }

  function reject(p: Pending, reason: CskRejectReason): void {
    options.onRejected?.(p.peer, reason, p.epoch);
    p.settle(reason);
  }

  return {
    handle(datagram) {
      let decoded: ReturnType<typeof decodeResponse>;
      try {
        decoded = decodeResponse(datagram);
      } catch (error) {
        if (error instanceof WireError) return;
        throw error;
      }
      const res = decoded.message;
      if (res.chainId !== cluster.chainId || res.cluster !== cluster.cluster || res.requesterId !== self)
        return;
      const p = pending.get(Buffer.from(res.nonce).toString("hex"));
      // An answer to no open request, or from someone other than the asked peer: not ours to judge.
      if (p === undefined || res.serverId !== p.peer) return;
      const server = directory.get(p.peer);
      if (server === undefined || !verifySigned(decoded, server.identityKey))
        return reject(p, "bad-signature");
      if (res.epoch !== p.epoch) return reject(p, "wrong-epoch");
      // A parked request gets a key or nothing: another "not attested yet" or "not held" changes nothing.
      if (p.parked && res.status !== ResponseStatus.Ok) return;
      if (res.status === ResponseStatus.NotHeld) return p.settle("not-held");
      if (res.status === ResponseStatus.NotAttestedYet) return p.settle("not-attested-yet");
      const opened = key.openSealed(res.sealed);
      if (opened === undefined) return reject(p, "unsealable");
      if (opened.length !== CSK_BYTES) {
        opened.fill(0);
        return reject(p, "wrong-length");
      }
      if (keccak256(opened) !== p.commitment) {
        opened.fill(0);
        return reject(p, "hash-mismatch");
      }
      p.settle("ok", opened);
    },
    fetch({ epoch, commitment, peers }) {
      const queue = peers.filter((p) => p !== self);
      const attempts: Array<{ peer: bigint; outcome: AttemptOutcome }> = [];
      /** Second answers still awaited from peers that said "not attested yet". */
      const lates: Array<Promise<void>> = [];
      let done = false;
      return new Promise<FetchResult>((resolve) => {
        const finish = (key: Uint8Array | undefined, from: bigint | undefined) => {
          done = true;
          resolve({ key, from, attempts: [...attempts] });
        };
        const take = (peer: bigint, result: AttemptResult, second = false) => {
          // A second answer that never came is no news: the first ("not attested yet") stands.
          if (!(second && result.outcome === "timeout")) attempts.push({ peer, outcome: result.outcome });
          if (result.late !== undefined) lates.push(result.late.then((answer) => take(peer, answer, true)));
          if (result.key === undefined) return;
          // A second good answer that arrives after the first is not needed: zero it.
          if (done) result.key.fill(0);
          else finish(result.key, peer);
        };
        const worker = async () => {
          for (let peer = queue.shift(); peer !== undefined && !done; peer = queue.shift())
            take(peer, await attempt(peer, epoch, commitment));
        };
        void Promise.all(Array.from({ length: Math.max(1, options.fanout) }, worker))
          .then(async () => {
            // Promises pushed while waiting (none: a second answer has no `late`) are awaited too.
            for (let i = 0; i < lates.length && !done; i++) await lates[i];
          })
          .then(() => {
            if (!done) finish(undefined, undefined);
          });
      });
    },
  };
}
