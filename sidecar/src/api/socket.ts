// The API's unix socket: the service kit's `listenUnix` (private from the first moment, stale sockets
// replaced, live ones refused) with the API's variable and error codes, and the group lookup.
import { readFileSync } from "node:fs";
import type { Server } from "node:net";
import { listenUnix as listenServiceUnix, type UnixListener } from "@attestmesh/shared/service/listen.ts";
import { fatalError } from "../errors.ts";

export type { UnixListener } from "@attestmesh/shared/service/listen.ts";

/** A group name (looked up in /etc/group) or a numeric gid, as a gid. */
export function resolveGroup(group: string, groupFile = "/etc/group"): number {
  if (/^\d+$/.test(group)) return Number(group);
  let text = "";
  try {
    text = readFileSync(groupFile, "utf8");
  } catch {
    // Fall through to "unknown group".
  }
  for (const line of text.split("\n")) {
    const [name, , gid] = line.split(":");
    if (name === group && gid !== undefined && /^\d+$/.test(gid)) return Number(gid);
  }
  throw fatalError(
    "UnknownGroup",
    `ATTESTMESH_API_SOCKET_GROUP names group ${JSON.stringify(group)}, which ${groupFile} does not list; use a gid or an existing group`,
    { details: { group } },
  );
}

/** Listens on the API socket (see the service kit's `listenUnix`). */
export function listenUnix(
  server: Server,
  path: string,
  options: { readonly gid?: number | undefined } = {},
): Promise<UnixListener> {
  return listenServiceUnix(server, path, {
    ...options,
    variable: "ATTESTMESH_API_SOCKET",
    codePrefix: "Api",
  });
}
