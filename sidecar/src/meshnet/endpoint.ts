// What every mesh protocol of a member (liveness, CSK exchange) is given: who this member is, its
// cluster and signing key, who the other members are, and how to send them a datagram.
import type { SigningKey } from "./crypto.ts";
import type { MemberDirectory } from "./directory.ts";
import type { ClusterId } from "./wire.ts";

export interface MeshEndpoint {
  readonly self: bigint;
  readonly cluster: ClusterId;
  /** This member's certified Ed25519 identity key: signs what it sends. */
  readonly key: SigningKey;
  readonly directory: MemberDirectory;
  /** Sends one datagram to a member's mesh IP and port (through WireGuard). */
  readonly send: (datagram: Uint8Array, meshIp: string, port: number) => void;
  /** The mesh UDP port, the same on every member of a cluster. */
  readonly port: number;
}
