// Polls the members' own GET /healthz. Where the URLs come from is pluggable: a JSON file the owner
// keeps (app id → URL), or the devnet's state file (dashboard/devnet.ts). A body whose appId is not the member's is another
// process on that port, so it counts as no answer.

import { readFile } from "node:fs/promises";
import type { HealthBody, HealthPoll } from "./buildView.ts";

/** App id (lowercase) → its /healthz URL. */
export type HealthTargets = () => Promise<ReadonlyMap<string, string>>;

export const noHealthTargets: HealthTargets = async () => new Map();

/** A JSON file `{ "<app id>": "http://…/healthz" }`, re-read on every poll. */
export function fileHealthTargets(path: string): HealthTargets {
  return async () => {
    const parsed = JSON.parse(await readFile(path, "utf8")) as unknown;
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
      throw new Error(`${path} must be a JSON object of app id → /healthz URL`);
    }
    const targets = new Map<string, string>();
    for (const [appId, url] of Object.entries(parsed)) {
      if (typeof url !== "string" || !/^https?:\/\//.test(url)) {
        throw new Error(`${path}: the URL for ${appId} must be an http(s) URL`);
      }
      targets.set(appId.toLowerCase(), url);
    }
    return targets;
  };
}

export async function pollHealth(
  targets: ReadonlyMap<string, string>,
  timeoutMs = 2_000,
): Promise<Map<string, HealthPoll>> {
  const polls = new Map<string, HealthPoll>();
  await Promise.all(
    [...targets].map(async ([appId, url]) => {
      let body: HealthBody | null = null;
      try {
        // A sidecar answers 503 with the same body while not healthy: read it whatever the status.
        const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs), redirect: "error" });
        const candidate = (await response.json()) as HealthBody | null;
        const isObject = typeof candidate === "object" && candidate !== null && !Array.isArray(candidate);
        const own =
          isObject && (typeof candidate.appId !== "string" || candidate.appId.toLowerCase() === appId);
        body = own ? candidate : null;
      } catch {
        body = null;
      }
      polls.set(appId, { body, checkedAtMs: Date.now() });
    }),
  );
  return polls;
}
