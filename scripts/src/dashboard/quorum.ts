// Quorum reads for the dashboard, with the rule the sidecar's chain layer follows (sidecar/src/chain/
// quorum.ts): an answer counts only when `quorum` providers (a strict majority by default, `majority()` of
// the shared service kit) returned it byte for byte; the first `quorum` providers are asked, and on a
// failure or a disagreement the rest are asked too; with fewer matching answers the read fails and the
// page keeps its last view beside the error. Every read is taken at one block: the head is the highest
// block a quorum of providers has reached, and "latest" in a call or a log filter is pinned to it, so
// providers a block apart do not disagree about nothing.
//
// It is a viem transport, so the CLI's own readers (members.ts, logs.ts) run over it unchanged. The
// sidecar's agreement module is not imported: it lives in the sidecar package, which the owner's package
// does not depend on; this is the same rule, over JSON-RPC, in the shape a viem client needs.

import { majority } from "@attestmesh/shared/service/rpcProviders.ts";
import { custom, http, type Transport } from "viem";

export class QuorumReadFailed extends Error {
  constructor(method: string, answered: number, quorum: number, disagreed: boolean) {
    super(
      disagreed
        ? `${method}: the RPC providers disagree and no answer has ${quorum} matching providers; not showing it, will retry`
        : `${method}: only ${answered} RPC provider(s) answered, ${quorum} must agree; will retry`,
    );
    this.name = "QuorumReadFailed";
  }
}

type Request = (args: { method: string; params?: unknown }) => Promise<unknown>;

export interface QuorumTransport {
  readonly transport: Transport;
  readonly providers: number;
  readonly quorum: number;
  /** Providers outvoted or failing since the start, by index (for the footer). */
  readonly outvoted: () => ReadonlyMap<number, number>;
}

/** A transport over `requests` (one per provider, in preference order); exported for the tests. */
export function quorumOver(
  requests: readonly Request[],
  quorum = majority(requests.length),
): QuorumTransport {
  const n = requests.length;
  if (!Number.isInteger(quorum) || quorum < 1 || quorum > n) {
    throw new RangeError(`quorum ${quorum} must be between 1 and the ${n} RPC providers`);
  }
  const outvoted = new Map<number, number>();
  const blame = (p: number) => outvoted.set(p, (outvoted.get(p) ?? 0) + 1);
  let head: string | undefined;

  const ask = async (p: number, method: string, params: unknown) => {
    try {
      return { p, ok: true as const, value: await requests[p]!({ method, params }) };
    } catch {
      blame(p);
      return { p, ok: false as const };
    }
  };

  async function blockNumber(): Promise<string> {
    const answers = (await Promise.all(requests.map((_, p) => ask(p, "eth_blockNumber", [])))).filter(
      (a) => a.ok && typeof a.value === "string",
    );
    if (answers.length < quorum) throw new QuorumReadFailed("eth_blockNumber", answers.length, quorum, false);
    // The highest block at least `quorum` providers have reached.
    const heights = answers
      .map((a) => BigInt(a.value as string))
      .sort((x, y) => (x > y ? -1 : x < y ? 1 : 0));
    head = `0x${heights[quorum - 1]!.toString(16)}`;
    return head;
  }

  /** "latest" (or no block) pinned to the agreed head, so every provider answers for the same block. */
  function pin(method: string, params: unknown): unknown {
    if (head === undefined || !Array.isArray(params)) return params;
    if (method === "eth_call" || method === "eth_getCode" || method === "eth_getBalance") {
      const [first, block, ...rest] = params;
      return block === undefined || block === "latest" ? [first, head, ...rest] : params;
    }
    if (method === "eth_getLogs" && typeof params[0] === "object" && params[0] !== null) {
      const filter = params[0] as Record<string, unknown>;
      if (filter.blockHash === undefined && (filter.toBlock === undefined || filter.toBlock === "latest")) {
        return [{ ...filter, toBlock: head }, ...params.slice(1)];
      }
    }
    return params;
  }

  async function agree(method: string, rawParams: unknown): Promise<unknown> {
    const params = pin(method, rawParams);
    const answers: Array<{ p: number; key: string; value: unknown }> = [];
    let next = 0;
    const distinct = () => new Set(answers.map((a) => a.key)).size;
    const collect = async (batch: number[]) => {
      for (const a of await Promise.all(batch.map((p) => ask(p, method, params)))) {
        if (a.ok) answers.push({ p: a.p, key: JSON.stringify(a.value), value: a.value });
      }
    };
    while (answers.length < quorum && next < n && distinct() <= 1) {
      const batch = Array.from({ length: Math.min(quorum - answers.length, n - next) }, (_, i) => next + i);
      next += batch.length;
      await collect(batch);
    }
    const disagreed = distinct() > 1;
    if (disagreed && next < n) {
      await collect(Array.from({ length: n - next }, (_, i) => next + i));
    }
    const votes = new Map<string, number>();
    for (const a of answers) votes.set(a.key, (votes.get(a.key) ?? 0) + 1);
    const winner = [...votes].find(([, count]) => count >= quorum)?.[0];
    for (const a of answers) if (winner !== undefined && a.key !== winner) blame(a.p);
    if (winner === undefined) throw new QuorumReadFailed(method, answers.length, quorum, disagreed);
    return answers.find((a) => a.key === winner)!.value;
  }

  const transport = custom(
    {
      async request({ method, params }: { method: string; params?: unknown }) {
        if (method === "eth_blockNumber") return blockNumber();
        return agree(method, params);
      },
    },
    { key: "quorum", name: `quorum ${quorum} of ${n}`, retryCount: 0 },
  );
  return { transport, providers: n, quorum, outvoted: () => outvoted };
}

/** A quorum transport over HTTP JSON-RPC URLs. */
export function quorumTransport(urls: readonly string[], quorum?: number): QuorumTransport {
  const requests = urls.map((url) => {
    const t = http(url, { retryCount: 1, timeout: 15_000 })({ retryCount: 1 });
    return (args: { method: string; params?: unknown }) => t.request(args as never) as Promise<unknown>;
  });
  return quorumOver(requests, quorum);
}
