// Who may subscribe: an active member of a served cluster, proven by its on-chain member key's
// EIP-712 signature over this connection's challenge, the indexer's signing key and the cursor.
import { clusterAbi } from "@attestmesh/shared/contracts/abi.ts";
import { isHex } from "@attestmesh/shared/indexer/envelope.ts";
import { subscribeTypedData } from "@attestmesh/shared/indexer/protocol.ts";
import {
  type Address,
  type Chain,
  getAddress,
  type Hex,
  type PublicClient,
  recoverTypedDataAddress,
  type Transport,
} from "viem";

export type AuthResult =
  | {
      readonly ok: true;
      readonly cluster: Address;
      readonly memberId: bigint;
      readonly cursor: string | undefined;
    }
  | { readonly ok: false; readonly reason: string };

export interface Authenticator {
  authenticate(message: Record<string, unknown>, challenge: Hex): Promise<AuthResult>;
}

const ACTIVE = 1;

export function createAuthenticator(options: {
  readonly client: PublicClient<Transport, Chain | undefined>;
  readonly chainId: number;
  readonly clusters: readonly Address[];
  readonly signingKey: Hex;
}): Authenticator {
  const served = new Map(options.clusters.map((c) => [c.toLowerCase(), getAddress(c)]));
  return {
    async authenticate(message, challenge) {
      const { cluster: rawCluster, memberId: rawMember, cursor, signature } = message;
      if (typeof rawCluster !== "string" || !served.has(rawCluster.toLowerCase())) {
        return { ok: false, reason: "ClusterNotServed" };
      }
      if (typeof rawMember !== "string" || !/^[1-9][0-9]{0,19}$/.test(rawMember)) {
        return { ok: false, reason: "InvalidMemberId" };
      }
      if (cursor !== undefined && (typeof cursor !== "string" || cursor.length > 200)) {
        return { ok: false, reason: "InvalidCursor" };
      }
      if (!isHex(signature, 65)) return { ok: false, reason: "InvalidSignature" };
      const cluster = served.get(rawCluster.toLowerCase())!;
      const memberId = BigInt(rawMember);
      if (memberId >= 2n ** 64n) return { ok: false, reason: "InvalidMemberId" };
      let signer: Address;
      try {
        signer = await recoverTypedDataAddress({
          ...subscribeTypedData({
            chainId: options.chainId,
            cluster,
            memberId,
            challenge,
            signingKey: options.signingKey,
            cursor: cursor ?? "",
          }),
          signature: signature as Hex,
        });
      } catch {
        return { ok: false, reason: "InvalidSignature" };
      }
      const member = await options.client.readContract({
        address: cluster,
        abi: clusterAbi,
        functionName: "member",
        args: [memberId],
      });
      if (member.status !== ACTIVE) return { ok: false, reason: "MemberNotActive" };
      if (member.memberKey.toLowerCase() !== signer.toLowerCase()) {
        return { ok: false, reason: "NotSignedByMemberKey" };
      }
      return { ok: true, cluster, memberId, cursor: cursor ?? undefined };
    },
  };
}
