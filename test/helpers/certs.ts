// Member certificates in tests: member apps created by the cluster's factory, the trust values a
// node's compose would pin for a fixture cluster, and certificates built straight from a simulated
// node (what the sidecar rebuilds from the registration calldata).
import { randomBytes } from "node:crypto";
import { createKmsRoot, createSimulatedCvm, type KmsRoot } from "@attestmesh/devnet/dstack-sim/simulator.ts";
import type { MemberCertificate } from "@attestmesh/shared/certs/certificate.ts";
import { predictMemberAppId } from "@attestmesh/shared/certs/memberApp.ts";
import { clusterAbi } from "@attestmesh/shared/contracts/abi.ts";
import { memberDomain, memberTypes } from "@attestmesh/shared/contracts/typedData.ts";
import { derivedPublicKey } from "@attestmesh/shared/dstack/keychain.ts";
import { IDENTITY_KEY, MEMBER_KEY, WIREGUARD_KEY } from "@attestmesh/shared/keys/purposes.ts";
import type { PinnedTrust } from "@attestmesh/shared/service/pinned.ts";
import { ed25519 } from "@noble/curves/ed25519";
import { type Address, bytesToHex, getAddress, type Hex, hexToBytes, parseEventLogs } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { type ClusterFixture, SIMULATED_CLAIMS } from "./cluster.ts";

/** Creates a member app on the fixture's cluster (as its owner); returns its app id and salt. */
export async function createMemberApp(fx: ClusterFixture): Promise<{ appId: Address; salt: Hex }> {
  const salt = bytesToHex(randomBytes(32));
  const hash = await fx.owner.write.createMemberApp([salt]);
  const receipt = await fx.publicClient.waitForTransactionReceipt({ hash });
  const [created] = parseEventLogs({ abi: clusterAbi, logs: receipt.logs, eventName: "MemberAppCreated" });
  if (created === undefined) throw new Error("createMemberApp emitted no MemberAppCreated");
  return { appId: getAddress(created.args.app), salt };
}

/** The trust values a node of the fixture's cluster pins in its compose. */
export async function fixtureTrust(
  fx: ClusterFixture,
  kmsRoots: readonly Address[] = [fx.kmsRoot.address],
): Promise<PinnedTrust> {
  return {
    chainId: fx.chainId,
    cluster: getAddress(fx.deployed.diamond),
    memberAppImplementation: getAddress(await fx.owner.read.memberAppImplementation()),
    kmsRoots,
  };
}

/** A certificate for a simulated node of app `appId` (salt `salt`), signed for `chainId` and `cluster`. */
export async function simulatedCertificate(options: {
  readonly kmsRoot: KmsRoot;
  readonly appId: Address;
  readonly salt: Hex;
  readonly chainId: number;
  readonly cluster: Address;
  readonly nonce?: bigint;
}): Promise<{ certificate: MemberCertificate; memberKey: Address }> {
  const cvm = createSimulatedCvm({ kmsRoot: options.kmsRoot, appId: hexToBytes(options.appId) });
  const member = cvm.getKey(MEMBER_KEY.path, MEMBER_KEY.purpose, "secp256k1");
  const identity = cvm.getKey(IDENTITY_KEY.path, IDENTITY_KEY.purpose, "ed25519");
  const wireguard = cvm.getKey(WIREGUARD_KEY.path, WIREGUARD_KEY.purpose, "ed25519");
  const account = privateKeyToAccount(bytesToHex(member.key));
  const identityKey = bytesToHex(ed25519.getPublicKey(identity.key));
  const wireguardKey = bytesToHex(derivedPublicKey(wireguard.key, "ed25519"));
  const nonce = options.nonce ?? 0n;
  const signature = await account.signTypedData({
    domain: memberDomain(options.chainId, options.cluster),
    types: memberTypes,
    primaryType: "Register",
    message: { appId: options.appId, wireguardKey, identityKey, ...SIMULATED_CLAIMS, nonce },
  });
  return {
    memberKey: account.address,
    certificate: {
      appId: options.appId,
      salt: options.salt,
      memberPubkey: bytesToHex(derivedPublicKey(member.key, "secp256k1")),
      appPubkey: bytesToHex(cvm.appPublicKey),
      appSignature: bytesToHex(member.signatureChain[0]!),
      kmsSignature: bytesToHex(member.signatureChain[1]!),
      guestApiVersion: 0,
      wireguardKey,
      identityKey,
      claims: { ...SIMULATED_CLAIMS },
      nonce,
      signature,
    },
  };
}

/**
 * A certificate with no chain behind it: a random KMS root, cluster and member-app implementation
 * pinned, and a simulated node of the clone for a random salt (tests of the offline checks).
 */
export async function offlineCertificate(options: { readonly chainId: number; readonly nonce?: bigint }) {
  const randomAddress = (): Address => getAddress(bytesToHex(randomBytes(20)));
  const kmsRoot = createKmsRoot(new Uint8Array(randomBytes(32)));
  const pinned: PinnedTrust = {
    chainId: options.chainId,
    cluster: randomAddress(),
    memberAppImplementation: randomAddress(),
    kmsRoots: [kmsRoot.address],
  };
  const salt = bytesToHex(randomBytes(32));
  const appId = predictMemberAppId(pinned.memberAppImplementation, pinned.cluster, salt);
  const signed = await simulatedCertificate({
    kmsRoot,
    appId,
    salt,
    chainId: pinned.chainId,
    cluster: pinned.cluster,
    ...(options.nonce === undefined ? {} : { nonce: options.nonce }),
  });
  return { kmsRoot, pinned, salt, appId, ...signed };
}
