// Allowed IPs as wg(8) spells them, so desired and reported peers compare equal (reconcile/diff.ts)
// and the in-memory backend stores what the real one would report.

/**
 * The spelling WireGuard reports an allowed IP in: IPv4 host bits masked off, a bare address as a host
 * route. IPv6 is only lower-cased; give it in canonical form.
 */
export function canonicalCidr(cidr: string): string {
  const [address = "", prefixText] = cidr.trim().toLowerCase().split("/");
  const octets = address.split(".");
  if (octets.length !== 4) return prefixText === undefined ? `${address}/128` : `${address}/${prefixText}`;
  const prefix = prefixText === undefined ? 32 : Number(prefixText);
  const value = octets.reduce((acc, octet) => acc * 256 + Number(octet), 0);
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > 32 || Number.isNaN(value)) return cidr;
  const size = 2 ** (32 - prefix);
  const network = Math.floor(value / size) * size;
  const masked = [24, 16, 8, 0].map((shift) => Math.floor(network / 2 ** shift) % 256).join(".");
  return `${masked}/${prefix}`;
}
