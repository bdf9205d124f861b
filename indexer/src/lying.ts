// TEST ONLY: a lying indexer. With ATTESTMESH_INDEXER_TEST_SUPPRESS_APP_IDS set (and the explicit
// test-only switch beside it) the indexer silently drops every log that names one of those app ids in a
// topic (MemberAppCreated, AppIdAdded, MemberRegistered, MemberLeft, MemberEvicted, …) and pushes
// everything else, correctly signed: a lie by omission no signature check can catch. The end-to-end
// tests use it to show the sidecars' polling makes such an indexer cost latency only. Never production.
import { type Address, getAddress, type Hex, isAddress, pad } from "viem";
import type { Env } from "./config.ts";
import { fatalError } from "./errors.ts";
import type { FollowerEvent } from "./follower.ts";

export const SUPPRESS_VAR = "ATTESTMESH_INDEXER_TEST_SUPPRESS_APP_IDS";
export const SWITCH_VAR = "ATTESTMESH_INDEXER_TEST_ONLY";
/** The switch's one accepted value: nobody sets it by accident. */
export const SWITCH_VALUE = "i-know-this-indexer-lies";

export interface LyingMode {
  readonly suppressAppIds: readonly Address[];
}

/** The test-only lying mode from `env`: undefined when off; refused unless the switch is set exactly. */
export function parseLyingMode(env: Env): LyingMode | undefined {
  const text = env[SUPPRESS_VAR]?.trim() ?? "";
  const switched = env[SWITCH_VAR]?.trim() ?? "";
  if (text === "") {
    if (switched !== "") {
      throw fatalError("InvalidConfig", `${SWITCH_VAR} is set but ${SUPPRESS_VAR} is not; unset both.`);
    }
    return undefined;
  }
  if (switched !== SWITCH_VALUE) {
    throw fatalError(
      "InvalidConfig",
      `${SUPPRESS_VAR} makes the indexer lie (drop events) and is for tests only; it is refused unless ` +
        `${SWITCH_VAR}=${SWITCH_VALUE} is set too.`,
    );
  }
  const ids = text
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
  const bad = ids.filter((s) => !isAddress(s, { strict: false }) || !/^0x[0-9a-fA-F]{40}$/.test(s));
  if (ids.length === 0 || bad.length > 0) {
    throw fatalError(
      "InvalidConfig",
      `${SUPPRESS_VAR}: ${bad.length > 0 ? `${JSON.stringify(bad)} are not 20-byte 0x addresses` : "names no app id"}`,
    );
  }
  return { suppressAppIds: [...new Set(ids.map((s) => getAddress(s)))] };
}

/** Keeps the events that name none of the suppressed app ids in any topic. */
export function createSuppressor(mode: LyingMode): (events: readonly FollowerEvent[]) => FollowerEvent[] {
  const topics = new Set<string>(mode.suppressAppIds.map((a) => pad(a.toLowerCase() as Hex, { size: 32 })));
  return (events) => events.filter((e) => !e.log.topics.some((t) => topics.has(t.toLowerCase())));
}
