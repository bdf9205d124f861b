// The dstack gateway's TLS-passthrough names: `<app-id>-<port>s.<gateway-domain>` routes a TLS
// connection, by its SNI and without terminating it, to port <port> of the CVM running app <app-id>.
// The app id is written as dstack writes it: 40 lowercase hex digits, no 0x. The sidecar builds these
// names for its peers; the devnet's gateway parses them.

/** The SNI that reaches `port` of app `appId` (0x-prefixed or bare hex) through the gateway at `domain`. */
export function gatewayServerName(appId: string, port: number, domain: string): string {
  const hex = appId.toLowerCase().replace(/^0x/, "");
  if (!/^[0-9a-f]{40}$/.test(hex))
    throw new RangeError(`app id ${JSON.stringify(appId)} is not 20 bytes of hex`);
  if (!Number.isInteger(port) || port < 1 || port > 65_535)
    throw new RangeError(`port ${port} is not 1-65535`);
  return `${hex}-${port}s.${normalizeDomain(domain)}`;
}

/** A passthrough target named by an SNI: the app id (0x + 40 lowercase hex) and the CVM port. */
export interface PassthroughTarget {
  readonly appId: `0x${string}`;
  readonly port: number;
}

/**
 * Reads a passthrough SNI under `domain`; undefined when the name is not one (another domain, no `s`
 * suffix, a malformed app id or port). Host names compare case-insensitively, a trailing dot ignored.
 */
export function parseGatewayServerName(serverName: string, domain: string): PassthroughTarget | undefined {
  const name = serverName.toLowerCase().replace(/\.$/, "");
  const suffix = `.${normalizeDomain(domain)}`;
  if (!name.endsWith(suffix)) return undefined;
  const match = /^([0-9a-f]{40})-([1-9]\d{0,4})s$/.exec(name.slice(0, -suffix.length));
  if (match === null) return undefined;
  const port = Number(match[2]);
  if (port > 65_535) return undefined;
  return { appId: `0x${match[1]}`, port };
}

/** A gateway domain as it is compared: lowercase, no leading or trailing dot. */
export function normalizeDomain(domain: string): string {
  const normalized = domain
    .trim()
    .toLowerCase()
    .replace(/^\.+|\.+$/g, "");
  if (!/^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*$/.test(normalized)) {
    throw new RangeError(`gateway domain ${JSON.stringify(domain)} is not a DNS name`);
  }
  return normalized;
}
