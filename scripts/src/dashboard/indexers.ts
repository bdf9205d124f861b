// Polls the registered indexers' public GET /healthz (the WebSocket endpoint's origin, over http(s)). The
// push stream itself answers only members (a subscription is signed by an active member key, and the
// dashboard holds no key), so the dashboard reads what each indexer says of itself: that it follows the
// cluster, its head and its last envelope's sequence number. A body signed by no key proves nothing:
// it is shown as the indexer's own claim, and only ever wakes a chain read (live.ts). A body naming a
// signing key other than the registered one is another process on that port and counts as no answer.

import type { IndexerFact, IndexerPoll } from "./buildView.ts";

/** The /healthz URL of an indexer's WebSocket endpoint (ws → http, wss → https); undefined if unusable. */
export function indexerHealthUrl(endpoint: string): string | undefined {
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    return undefined;
  }
  const scheme = url.protocol === "wss:" ? "https:" : url.protocol === "ws:" ? "http:" : undefined;
  if (scheme === undefined) return undefined;
  return `${scheme}//${url.host}/healthz`;
}

export async function pollIndexers(
  records: readonly IndexerFact[],
  timeoutMs = 1_000,
): Promise<Map<string, IndexerPoll>> {
  const polls = new Map<string, IndexerPoll>();
  await Promise.all(
    records.map(async (r) => {
      const key = r.signingKey.toLowerCase();
      const url = indexerHealthUrl(r.endpoint);
      let body: IndexerPoll["body"] = null;
      if (url !== undefined) {
        try {
          // The indexer answers 503 with the same body while it is not following: read it whatever the status.
          const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs), redirect: "error" });
          const parsed = (await response.json()) as unknown;
          const isObject = typeof parsed === "object" && parsed !== null && !Array.isArray(parsed);
          const candidate = isObject ? (parsed as NonNullable<IndexerPoll["body"]>) : null;
          body =
            candidate !== null &&
            typeof candidate.signingKey === "string" &&
            candidate.signingKey.toLowerCase() === key
              ? candidate
              : null;
        } catch {
          body = null;
        }
      }
      polls.set(key, { body, checkedAtMs: Date.now() });
    }),
  );
  return polls;
}
