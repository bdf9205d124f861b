// This node's own member certificate, verified offline once at start with the verifier and the pins
// every other member's is verified with (certifier.ts, shared/certs/certificate.ts), so that the
// own-record shortcut (follower.ts) never makes this node count itself a member when its peers refuse
// it. The key chains verified at start (keys.ts) prove only that dstack issued the keys: not that the
// KMS signer is a root the attested compose pins (KmsRootNotPinned), nor that the app id is a member
// app of this cluster (AppIdNotMemberApp). The operator chooses the KMS a CVM is pointed at and the
// owner's on-chain allowlists may admit more than the compose pins, so either can fail for this node.
//
// The certificate is built from what this node holds: its member key's dstack chain, its WireGuard
// and identity keys, its compose hash and device id, and a Register message it signs itself for the
// pinned chain id and cluster under a nonce the cluster never reaches (so the signature can never
// register anything). That is the certificate its registration carries, but for the nonce and its
// signature, which the contract checked against the same chain id and cluster. Only the app's CREATE2
// salt is not held locally: it is read once (isMemberApp, its MemberAppCreated log) while the node
// registers, off the join's critical path, and it is checked by CREATE2 like any salt.
//
// Verified: the shortcut applies. Refused: logged once at error level with the refusal reason, and this
// node's own record is certified like any other member's (fetched and refused, as its peers refuse it).
// Not checkable (the salt unreadable): logged at warn, and the own record is certified like any other.
import {
  type CertificateRefusal,
  type MemberCertificate,
  registerMessageOf,
  verifyMemberCertificate,
} from "@attestmesh/shared/certs/certificate.ts";
import { memberDomain, memberTypes, type RegisterMessage } from "@attestmesh/shared/contracts/typedData.ts";
import type { PinnedTrust } from "@attestmesh/shared/service/pinned.ts";
import type { Hex } from "viem";
import { signTypedData } from "viem/accounts";
import { AttestmeshError } from "../errors.ts";
import type { NodeKeys } from "../keys.ts";
import type { Logger } from "../log.ts";
import type { OwnRecord } from "./follower.ts";

/** The largest uint64, a registration nonce no app id reaches: the local signature registers nothing. */
const UNREACHABLE_NONCE = 2n ** 64n - 1n;

/** The salt when the chain gave none: no member app has it unless the owner created one with it. */
const NO_SALT: Hex = `0x${"00".repeat(32)}`;

/** The first line of what `error` says, for a verdict's detail. */
function firstLineOf(error: unknown): string {
  return error instanceof Error ? (error.message.split("\n")[0] ?? "") : String(error);
}

export type OwnVerdict =
  | { readonly state: "pending" }
  | { readonly state: "verified" }
  | { readonly state: "refused"; readonly reason: CertificateRefusal; readonly detail: string }
  | { readonly state: "unchecked"; readonly detail: string };

export interface OwnCertificate {
  /** This node's own record under `memberId`, only once its own certificate verified; else undefined. */
  record(memberId: bigint | undefined): OwnRecord | undefined;
  /** Resolves with the final verdict (never rejects). */
  readonly settled: Promise<OwnVerdict>;
}

export function checkOwnCertificate(options: {
  readonly pinned: PinnedTrust;
  readonly keys: NodeKeys;
  /** The compose hash and device id its guest agent reports (what its registration states). */
  readonly claims: Pick<RegisterMessage, "composeHash" | "deviceId">;
  /** This node's member-app salt (`{ problem }` where the chain says it has none); may throw. */
  readonly salt: () => Promise<{ readonly salt: Hex } | { readonly problem: string }>;
  readonly logger: Logger;
}): OwnCertificate {
  const { pinned, keys, claims, logger } = options;
  const own = {
    appId: keys.appId,
    memberKey: keys.member.address,
    wireguardKey: keys.wireguard.publicKey,
    identityKey: keys.identity.publicKey,
  };
  let verdict: OwnVerdict = { state: "pending" };

  async function certificateWith(salt: Hex): Promise<MemberCertificate> {
    const { appId, memberPubkey, appPubkey, appSignature, kmsSignature, guestApiVersion } = keys.member.proof;
    const unsigned: MemberCertificate = {
      appId,
      salt,
      memberPubkey,
      appPubkey,
      appSignature,
      kmsSignature,
      guestApiVersion,
      wireguardKey: keys.wireguard.publicKey,
      identityKey: keys.identity.publicKey,
      claims: { composeHash: claims.composeHash, deviceId: claims.deviceId },
      nonce: UNREACHABLE_NONCE,
      signature: "0x",
    };
    const signature = await signTypedData({
      privateKey: keys.member.secret.reveal(),
      domain: memberDomain(pinned.chainId, pinned.cluster),
      types: memberTypes,
      primaryType: "Register",
      // biome-ignore lint/suspicious/noExplicitAny: the message is built from memberTypes.Register itself
      message: registerMessageOf(unsigned) as any,
    });
    return { ...unsigned, signature };
  }

  async function check(): Promise<OwnVerdict> {
    let found: { readonly salt: Hex } | { readonly problem: string } | undefined;
    let unreadable: string | undefined;
    try {
      found = await options.salt();
    } catch (error) {
      unreadable = `its member app's salt could not be read (${firstLineOf(error)})`;
    }
    const salt = found !== undefined && "salt" in found ? found.salt : undefined;
    // Every check before the member-app one needs no salt: a refusal there stands whatever the salt.
    const result = await verify(salt ?? NO_SALT);
    if (result.state !== "refused" || result.reason !== "AppIdNotMemberApp" || salt !== undefined)
      return result;
    if (found !== undefined && "problem" in found) {
      return { ...result, detail: `app id ${keys.appId}: ${found.problem}` };
    }
    return { state: "unchecked", detail: unreadable ?? "its member app's salt could not be read" };
  }

  async function verify(salt: Hex): Promise<OwnVerdict> {
    try {
      await verifyMemberCertificate(await certificateWith(salt), pinned, own);
      return { state: "verified" };
    } catch (error) {
      if (!(error instanceof AttestmeshError)) throw error;
      return { state: "refused", reason: error.code as CertificateRefusal, detail: error.message };
    }
  }

  const settled = check()
    .catch(
      (error: unknown): OwnVerdict => ({
        state: "unchecked",
        detail: firstLineOf(error),
      }),
    )
    .then((result) => {
      verdict = result;
      if (result.state === "verified") {
        logger.info(
          { appId: keys.appId, kmsRoot: keys.kmsSigner },
          "this node's own member certificate verified offline: its own record needs no fetch",
        );
      } else if (result.state === "refused") {
        logger.error(
          { appId: keys.appId, kmsRoot: keys.kmsSigner, reason: result.reason, detail: result.detail },
          `this node's own member certificate is refused (${result.reason}): every member refuses it, so it does not count itself a member either (not a peer, no CSK)`,
        );
      } else if (result.state === "unchecked") {
        logger.warn(
          { appId: keys.appId, detail: result.detail },
          "cannot verify this node's own member certificate offline; its own record is certified like any other member's",
        );
      }
      return result;
    });

  return {
    record: (memberId) =>
      memberId === undefined || verdict.state !== "verified" ? undefined : { memberId, ...own },
    settled,
  };
}
