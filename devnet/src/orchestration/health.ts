// Reads a sidecar's /healthz and turns a devnet into the rows `status` prints.

import { get } from "node:http";
import { formatEther } from "viem";
import { devnetClients } from "./chain.ts";
import { isAlive } from "./processes.ts";
import { sponsoredSpend } from "./sponsorship.ts";
import type { DevnetNode, DevnetState } from "./state.ts";

export interface SidecarHealth {
  readonly phase: string;
  readonly memberId?: string | number | null;
  readonly meshIp?: string | null;
  readonly account?: string | null;
  readonly wireguardPublicKey?: string | null;
  readonly peers?: ReadonlyArray<{ readonly latestHandshake?: number; readonly transport?: string }>;
  readonly cskEpoch?: string | null;
  readonly cskAcquired?: boolean;
  readonly cskCommitment?: string | null;
  readonly livePeers?: number;
  readonly converged?: boolean;
  readonly [key: string]: unknown;
}

export async function readHealth(node: DevnetNode): Promise<{ ok: boolean; health?: SidecarHealth }> {
  try {
    const response = await getJson(node.healthUrl, 2_000);
    const health = response.body as SidecarHealth;
    // Another process on this node's health port (a sidecar that could not bind exits) is not this node.
    const appId = typeof health.appId === "string" ? health.appId.toLowerCase() : undefined;
    if (appId !== undefined && appId !== node.appId.toLowerCase()) return { ok: false };
    return { ok: response.status === 200, health };
  } catch {
    return { ok: false };
  }
}

/**
 * GET a JSON document on a fresh connection. Not fetch: undici keeps idle keep-alive sockets unref'd
 * and its abort timer is unref'd too, so a request that lands on a socket the server is closing can
 * stay pending with nothing keeping the process alive, and a polling CLI then exits mid-wait (code 13,
 * "unsettled top-level await"). Here the socket is ref'd until the answer or the timeout.
 */
export function getJson(url: string, timeoutMs: number): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const request = get(url, { agent: false, headers: { connection: "close" } }, (response) => {
      const chunks: Buffer[] = [];
      response.on("data", (chunk: Buffer) => chunks.push(chunk));
      response.on("end", () => {
        clearTimeout(timer);
        try {
          resolve({
            status: response.statusCode ?? 0,
            body: JSON.parse(Buffer.concat(chunks).toString("utf8")),
          });
        } catch (error) {
          reject(error);
        }
      });
      response.on("error", reject);
    });
    const timer = setTimeout(
      () => request.destroy(new Error(`no answer from ${url} within ${timeoutMs} ms`)),
      timeoutMs,
    );
    request.on("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

export interface NodeStatus {
  readonly name: string;
  readonly netns: string;
  readonly wgInterface: string;
  readonly appId: string;
  readonly memberId: string | null;
  readonly meshIp: string | null;
  readonly wgPublicKey: string | null;
  readonly healthUrl: string;
  readonly phase: string;
  readonly peers: number;
  readonly peersWithHandshake: number;
  /** The address the node's writes come from (its member account when sponsored). */
  readonly account: string | null;
  /** Wei the operator's paymaster spent on this node's operations (decimal string). */
  readonly sponsoredWei: string;
  /** Epoch of the CSK the node holds, null if none. */
  readonly cskEpoch: string | null;
  readonly cskAcquired: boolean;
  /** keccak256 of the CSK it holds (equals the chain's commitment when acquired). */
  readonly cskCommitment: string | null;
  /** Peers whose signed heartbeats count. */
  readonly livePeers: number;
  readonly converged: boolean;
  /** Peers by the path their traffic takes ("gateway", "udp"), as the sidecar reports it. */
  readonly transports: Readonly<Record<string, number>>;
}

export async function nodeStatus(
  node: DevnetNode,
  spend: ReadonlyMap<string, bigint> = new Map(),
): Promise<NodeStatus> {
  const { health } = await readHealth(node);
  const peers = health?.peers ?? [];
  const alive = isAlive(node.sidecarPid);
  return {
    name: node.name,
    netns: node.netns,
    wgInterface: node.wgInterface,
    appId: node.appId,
    memberId: health?.memberId == null ? null : String(health.memberId),
    meshIp: health?.meshIp ?? null,
    wgPublicKey: health?.wireguardPublicKey ?? null,
    healthUrl: node.healthUrl,
    phase: health?.phase ?? (alive ? "unreachable" : "stopped"),
    peers: peers.length,
    peersWithHandshake: peers.filter((p) => (p.latestHandshake ?? 0) > 0).length,
    account: health?.account ?? null,
    sponsoredWei: (spend.get(health?.account?.toLowerCase() ?? "") ?? 0n).toString(),
    cskEpoch: health?.cskEpoch ?? null,
    cskAcquired: health?.cskAcquired ?? false,
    cskCommitment: health?.cskCommitment ?? null,
    livePeers: health?.livePeers ?? 0,
    converged: health?.converged ?? false,
    transports: countBy(peers.map((p) => p.transport ?? "udp")),
  };
}

function countBy(values: readonly string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const value of values) counts[value] = (counts[value] ?? 0) + 1;
  return counts;
}

export async function devnetStatus(state: DevnetState) {
  const spend =
    state.sponsorship === undefined
      ? new Map<string, bigint>()
      : await sponsoredSpend(
          devnetClients(state.rpcUrl, state.chainId),
          state.sponsorship,
          BigInt(state.deployBlock),
        ).catch(() => new Map<string, bigint>());
  return {
    rpcUrl: state.rpcUrl,
    chainId: state.chainId,
    diamond: state.diamond,
    composeHash: state.composeHash,
    kmsRoot: state.kmsRoot,
    indexer: state.indexer
      ? {
          url: state.indexer.url,
          pid: state.indexer.pid,
          ...(state.indexer.suppressedAppIds === undefined
            ? {}
            : { testOnlySuppressedAppIds: state.indexer.suppressedAppIds }),
        }
      : null,
    moreIndexers: (state.moreIndexers ?? []).map((i) => ({ url: i.url, pid: i.pid })),
    sponsorship:
      state.sponsorship === undefined
        ? null
        : {
            entryPoint: state.sponsorship.entryPoint,
            accountFactory: state.sponsorship.accountFactory,
            paymaster: state.sponsorship.paymaster,
            bundlerUrl: state.sponsorship.bundlerUrl,
            paymasterUrl: state.sponsorship.paymasterUrl,
          },
    nodes: await Promise.all(state.nodes.map((node) => nodeStatus(node, spend))),
  };
}

export function renderTable(status: Awaited<ReturnType<typeof devnetStatus>>): string {
  const header = [
    "node",
    "netns",
    "app id",
    "member",
    "mesh ip",
    "phase",
    "peers handshaken",
    "sponsor spend",
    "live",
    "csk epoch",
    "converged",
    "transport",
  ];
  const rows = status.nodes.map((n) => [
    n.name,
    n.netns,
    n.appId,
    n.memberId ?? "-",
    n.meshIp ?? "-",
    n.phase,
    `${n.peersWithHandshake}/${n.peers}`,
    status.sponsorship === null ? "(funded key)" : `${formatEther(BigInt(n.sponsoredWei))} ETH`,
    `${n.livePeers}/${n.peers}`,
    n.cskEpoch === null ? "-" : `${n.cskEpoch}${n.cskAcquired ? "" : " (stale)"}`,
    n.converged ? "yes" : "no",
    Object.entries(n.transports)
      .map(([path, count]) => `${path} ${count}`)
      .join(", ") || "-",
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join("  ");
  return [
    `chain ${status.rpcUrl} (id ${status.chainId}), cluster ${status.diamond}`,
    line(header),
    line(widths.map((w) => "-".repeat(w))),
    ...rows.map(line),
  ].join("\n");
}
