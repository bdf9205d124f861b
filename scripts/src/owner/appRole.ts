// App roles (IPolicy.AppRole): which compose hashes an app id may boot. Node is the contract's zero
// value, so an app id the owner never named an indexer is a node app id, and dstack's role-less calls
// (addComposeHash, removeComposeHash) act on the node role.
import { badArgument } from "./args.ts";

export const APP_ROLES = ["node", "indexer"] as const;
export type AppRoleName = (typeof APP_ROLES)[number];

/** The contract's enum value of each role. */
export const APP_ROLE_VALUE: Readonly<Record<AppRoleName, 0 | 1>> = { node: 0, indexer: 1 };

export const ROLE_OPTION = "the role it is for: node (the default; dstack's own calls) or indexer";

/** Parses `--role`; absent means node. */
export function parseAppRole(value: string | undefined): AppRoleName {
  if (value === undefined) return "node";
  const role = APP_ROLES.find((r) => r === value.toLowerCase());
  if (role === undefined) throw badArgument(`--role takes "node" or "indexer", got "${value}"`);
  return role;
}

/** The role's name for the contract's enum value. */
export function appRoleName(value: number): AppRoleName {
  const role = APP_ROLES[value];
  if (role === undefined) throw new RangeError(`unknown app role ${value}`);
  return role;
}
