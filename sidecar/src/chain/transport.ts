// A viem transport wrapper that reports every JSON-RPC call by method, so the sidecar can count its
// RPC load in metrics and tests can pin how many calls one change on chain costs.
import type { EIP1193RequestFn, Transport } from "viem";

export function countingTransport(inner: Transport, onRequest: (method: string) => void): Transport {
  return ((params) => {
    const transport = inner(params);
    const request = ((args, options) => {
      onRequest(args.method);
      return transport.request(args, options);
    }) as EIP1193RequestFn;
    return { ...transport, request };
  }) as Transport;
}

/** A tally of RPC calls by method. */
export interface RpcTally {
  readonly record: (method: string) => void;
  readonly total: () => number;
  readonly byMethod: () => Readonly<Record<string, number>>;
  readonly reset: () => void;
}

export function createRpcTally(): RpcTally {
  let counts = new Map<string, number>();
  return {
    record: (method) => counts.set(method, (counts.get(method) ?? 0) + 1),
    total: () => [...counts.values()].reduce((a, b) => a + b, 0),
    byMethod: () => Object.fromEntries(counts),
    reset: () => {
      counts = new Map();
    },
  };
}
