// Rebuilds a cluster's policy from its event logs alone, as an auditor would: the allowlists, the
// allow-any-device and require-TCB-up-to-date switches and every revocation with its timestamp and reason. Pure: decoded logs in,
// plain data out, so the CLI can reuse it over any log source.
//
// Compose hashes are scoped by app role (node, indexer). The replay reads the role events
// (`ComposeHashAllowedFor`, `ComposeHashDeniedFor`, `AppRoleSet`); dstack's `ComposeHashAdded` and
// `ComposeHashRemoved` only mirror the node role's changes for dstack's tooling: they are listed with
// the policy events, so the audit trail shows every event, but the replay takes nothing from them.
import { type Address, getAddress, type Hex } from "viem";
import { appRoleName } from "./appRole.ts";

/** A decoded log, as viem's `parseEventLogs` or `getLogs` with an ABI returns it. */
export interface DecodedLog {
  readonly eventName: string;
  readonly args: unknown;
  readonly blockNumber?: bigint | null;
  readonly logIndex?: number | null;
}

export interface AppIdRevocation {
  readonly appId: Address;
  readonly revokedAt: bigint;
  readonly reason: Hex;
}

export interface DeviceRevocation {
  readonly deviceId: Hex;
  readonly revokedAt: bigint;
  readonly reason: Hex;
}

/** The policy the logs describe; lists are sorted (addresses checksummed, hashes lowercase). */
export interface PolicyHistory {
  readonly allowAnyDevice: boolean;
  /** Boots need TCB status "UpToDate" (dstack apps' `requireTcbUpToDate`). */
  readonly requireTcbUpToDate: boolean;
  /** The node role's compose hashes (what dstack's role-less calls manage). */
  readonly composeHashes: readonly Hex[];
  /** The indexer role's compose hashes: only indexer app ids may boot them. */
  readonly indexerComposeHashes: readonly Hex[];
  readonly deviceIds: readonly Hex[];
  readonly appIds: readonly Address[];
  /** App ids with the indexer role, allowed or not; every other app id is a node app id. */
  readonly indexerAppIds: readonly Address[];
  readonly kmsRoots: readonly Address[];
  readonly appIdRevocations: readonly AppIdRevocation[];
  readonly deviceRevocations: readonly DeviceRevocation[];
}

/** The policy events, as a tagged union over the fields the replay reads. */
type PolicyEvent =
  | { eventName: "ComposeHashAdded" | "ComposeHashRemoved"; args: { composeHash: Hex } }
  | { eventName: "ComposeHashAllowedFor" | "ComposeHashDeniedFor"; args: { composeHash: Hex; role: number } }
  | { eventName: "AppRoleSet"; args: { appId: Address; role: number } }
  | { eventName: "DeviceAdded" | "DeviceRemoved"; args: { deviceId: Hex } }
  | { eventName: "AppIdAdded" | "AppIdRemoved"; args: { appId: Address } }
  | { eventName: "KmsRootAdded" | "KmsRootRemoved"; args: { kmsRoot: Address } }
  | { eventName: "AllowAnyDeviceSet"; args: { allowAny: boolean } }
  | { eventName: "RequireTcbUpToDateSet"; args: { required: boolean } }
  | { eventName: "AppIdRevokedAt"; args: { appId: Address; revokedAt: bigint; reason: Hex } }
  | { eventName: "DeviceRevokedAt"; args: { deviceId: Hex; revokedAt: bigint; reason: Hex } };

/** The names of the events that change the policy (the ones `rebuildPolicy` replays). */
export const POLICY_EVENT_NAMES: ReadonlySet<string> = new Set<PolicyEvent["eventName"]>([
  "ComposeHashAdded",
  "ComposeHashRemoved",
  "ComposeHashAllowedFor",
  "ComposeHashDeniedFor",
  "AppRoleSet",
  "DeviceAdded",
  "DeviceRemoved",
  "AppIdAdded",
  "AppIdRemoved",
  "KmsRootAdded",
  "KmsRootRemoved",
  "AllowAnyDeviceSet",
  "RequireTcbUpToDateSet",
  "AppIdRevokedAt",
  "DeviceRevokedAt",
]);

type AllowlistName = "deviceIds" | "appIds" | "kmsRoots";

/** The allowlist each add or remove event changes, and the event argument that names the entry. */
const LIST_EVENTS: Readonly<
  Partial<Record<string, { readonly list: AllowlistName; readonly add: boolean; readonly arg: string }>>
> = {
  DeviceAdded: { list: "deviceIds", add: true, arg: "deviceId" },
  DeviceRemoved: { list: "deviceIds", add: false, arg: "deviceId" },
  AppIdAdded: { list: "appIds", add: true, arg: "appId" },
  AppIdRemoved: { list: "appIds", add: false, arg: "appId" },
  KmsRootAdded: { list: "kmsRoots", add: true, arg: "kmsRoot" },
  KmsRootRemoved: { list: "kmsRoots", add: false, arg: "kmsRoot" },
};

function isPolicyEvent(log: DecodedLog): log is DecodedLog & PolicyEvent {
  return POLICY_EVENT_NAMES.has(log.eventName) && typeof log.args === "object" && log.args !== null;
}

/** Logs in chain order: by block, then log index, where both are known; otherwise as given. */
function chainOrder(logs: readonly DecodedLog[]): readonly DecodedLog[] {
  const positioned = logs.every(
    (log) => typeof log.blockNumber === "bigint" && typeof log.logIndex === "number",
  );
  if (!positioned) return logs;
  return [...logs].sort((a, b) => {
    const byBlock = (a.blockNumber as bigint) - (b.blockNumber as bigint);
    if (byBlock !== 0n) return byBlock < 0n ? -1 : 1;
    return (a.logIndex as number) - (b.logIndex as number);
  });
}

/** A revocation takes the id off its allowlist for good; the first one, with its time and reason, is kept. */
function revoke<R>(list: Set<string>, revocations: Map<string, R>, key: string, revocation: R): void {
  list.delete(key);
  if (!revocations.has(key)) revocations.set(key, revocation);
}

/** When and why, from a revocation event's arguments. */
const when = (args: { readonly revokedAt: bigint; readonly reason: Hex }) => ({
  revokedAt: args.revokedAt,
  reason: args.reason.toLowerCase() as Hex,
});

const byKey = ([a]: [string, unknown], [b]: [string, unknown]): number => (a < b ? -1 : a > b ? 1 : 0);
const sortedHex = (values: Iterable<string>): Hex[] => [...values].sort() as Hex[];
const sortedAddresses = (values: Iterable<string>): Address[] => [...values].sort().map((a) => getAddress(a));

/**
 * Replays the policy events among `decodedLogs` (others are ignored) from an empty policy. Pass every
 * log the diamond emitted since its deployment block, the initializer's `KmsRootAdded` included.
 * A revocation removes the id from its allowlist and is kept for good, with its timestamp and reason.
 */
export function rebuildPolicy(decodedLogs: readonly DecodedLog[]): PolicyHistory {
  let allowAnyDevice = false;
  let requireTcbUpToDate = false;
  // Keys lowercased, so a replay never depends on checksum casing.
  const lists: Record<AllowlistName, Set<string>> = {
    deviceIds: new Set(),
    appIds: new Set(),
    kmsRoots: new Set(),
  };
  const { deviceIds, appIds } = lists;
  const composeHashes = { node: new Set<string>(), indexer: new Set<string>() };
  const indexerAppIds = new Set<string>();
  const appIdRevocations = new Map<string, AppIdRevocation>();
  const deviceRevocations = new Map<string, DeviceRevocation>();

  for (const log of chainOrder(decodedLogs)) {
    if (!isPolicyEvent(log)) continue;
    const listed = LIST_EVENTS[log.eventName];
    if (listed !== undefined) {
      const id = String((log.args as Record<string, unknown>)[listed.arg]).toLowerCase();
      if (listed.add) lists[listed.list].add(id);
      else lists[listed.list].delete(id);
      continue;
    }
    switch (log.eventName) {
      case "ComposeHashAdded":
      case "ComposeHashRemoved":
        // dstack's mirror of the node role's change; its ComposeHashAllowedFor/DeniedFor follows.
        break;
      case "ComposeHashAllowedFor":
        composeHashes[appRoleName(log.args.role)].add(log.args.composeHash.toLowerCase());
        break;
      case "ComposeHashDeniedFor":
        composeHashes[appRoleName(log.args.role)].delete(log.args.composeHash.toLowerCase());
        break;
      case "AppRoleSet":
        if (appRoleName(log.args.role) === "indexer") indexerAppIds.add(log.args.appId.toLowerCase());
        else indexerAppIds.delete(log.args.appId.toLowerCase());
        break;
      case "AllowAnyDeviceSet":
        allowAnyDevice = log.args.allowAny;
        break;
      case "RequireTcbUpToDateSet":
        requireTcbUpToDate = log.args.required;
        break;
      case "AppIdRevokedAt": {
        const key = log.args.appId.toLowerCase();
        revoke(appIds, appIdRevocations, key, { appId: getAddress(key), ...when(log.args) });
        break;
      }
      case "DeviceRevokedAt": {
        const key = log.args.deviceId.toLowerCase();
        revoke(deviceIds, deviceRevocations, key, { deviceId: key as Hex, ...when(log.args) });
        break;
      }
    }
  }

  return {
    allowAnyDevice,
    requireTcbUpToDate,
    composeHashes: sortedHex(composeHashes.node),
    indexerComposeHashes: sortedHex(composeHashes.indexer),
    deviceIds: sortedHex(deviceIds),
    appIds: sortedAddresses(appIds),
    indexerAppIds: sortedAddresses(indexerAppIds),
    kmsRoots: sortedAddresses(lists.kmsRoots),
    appIdRevocations: [...appIdRevocations.entries()].sort(byKey).map(([, revocation]) => revocation),
    deviceRevocations: [...deviceRevocations.entries()].sort(byKey).map(([, revocation]) => revocation),
  };
}
