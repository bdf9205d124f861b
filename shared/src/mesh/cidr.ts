// IPv4 mesh addressing: the cluster CIDR and member addresses as the contracts store them
// (unsigned 32-bit integers in host order).
import { AttestmeshError } from "../errors.ts";

export interface MeshCidr {
  readonly base: number;
  readonly prefixLength: number;
}

/** Prefix lengths the cluster contract accepts (see MeshAddress.sol). */
export const MIN_MESH_PREFIX = 16;
export const MAX_MESH_PREFIX = 28;

export function ipToNumber(ip: string): number {
  const parts = ip.split(".");
  if (parts.length !== 4) throw invalid(`"${ip}" is not a dotted IPv4 address`);
  let value = 0;
  for (const part of parts) {
    if (!/^(0|[1-9]\d{0,2})$/.test(part) || Number(part) > 255) {
      throw invalid(`"${ip}" is not a dotted IPv4 address`);
    }
    value = value * 256 + Number(part);
  }
  return value;
}

export function numberToIp(value: number): string {
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff)
    throw invalid(`${value} is not an IPv4 address`);
  return [value >>> 24, (value >>> 16) & 0xff, (value >>> 8) & 0xff, value & 0xff].join(".");
}

/** Parse `a.b.c.d/n`; the address must be the network address and n within what the contract accepts. */
export function parseMeshCidr(text: string): MeshCidr {
  const match = /^([^/]+)\/(\d{1,2})$/.exec(text.trim());
  if (!match) throw invalid(`"${text}" is not a CIDR like 10.77.0.0/16`);
  const base = ipToNumber(match[1]!);
  const prefixLength = Number(match[2]);
  if (prefixLength < MIN_MESH_PREFIX || prefixLength > MAX_MESH_PREFIX) {
    throw invalid(`mesh prefix /${prefixLength} is outside /${MIN_MESH_PREFIX}../${MAX_MESH_PREFIX}`);
  }
  const hostBits = 32 - prefixLength;
  if (base % 2 ** hostBits !== 0) {
    throw invalid(
      `"${text}" has host bits set; use ${numberToIp(base - (base % 2 ** hostBits))}/${prefixLength}`,
    );
  }
  return { base, prefixLength };
}

export function formatMeshCidr(cidr: MeshCidr): string {
  return `${numberToIp(cidr.base)}/${cidr.prefixLength}`;
}

export function containsIp(cidr: MeshCidr, ip: number): boolean {
  const size = 2 ** (32 - cidr.prefixLength);
  return ip > cidr.base && ip < cidr.base + size - 1;
}

function invalid(message: string): AttestmeshError {
  return new AttestmeshError(message, { code: "InvalidMeshAddress" });
}
