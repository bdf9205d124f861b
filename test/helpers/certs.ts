// Member certificates in tests: member apps created by the cluster's factory, the trust values a
// node's compose would pin for a fixture cluster, and certificates built straight from a simulated
// node (what the sidecar rebuilds from the registration calldata).
import { randomBytes } from "node:crypto";
import { createKmsRoot, type KmsRoot, type SimulatedCvm } from "@attestmesh/devnet/dstack-sim/simulator.ts";
import type { MemberCertificate } from "@attestmesh/shared/certs/certificate.ts";
import { predictMemberAppId } from "@attestmesh/shared/certs/memberApp.ts";
import { clusterAbi } from "@attestmesh/shared/contracts/abi.ts";
import { derivedPublicKey } from "@attestmesh/shared/dstack/keychain.ts";
import { IDENTITY_KEY, MEMBER_KEY, WIREGUARD_KEY } from "@attestmesh/shared/keys/purposes.ts";
import type { GuestApi, PinnedTrust } from "@attestmesh/shared/service/pinned.ts";
import { wireguardKeyPair } from "@attestmesh/sidecar/wireguard/keys.ts";
import { type Address, bytesToHex, getAddress, type Hex, parseEventLogs } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { type ClusterFixture, SIMULATED_CLAIMS, signRegistration, simulatedNode } from "./cluster.ts";

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
  guestApi: GuestApi = "v0",
): Promise<PinnedTrust> {
  return {
    chainId: fx.chainId,
    cluster: getAddress(fx.deployed.diamond),
    memberAppImplementation: getAddress(await fx.owner.read.memberAppImplementation()),
    kmsRoots,
    guestApi,
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
  const node = simulatedNode(options.kmsRoot, options.appId);
  const nonce = options.nonce ?? 0n;
  const signature = await signRegistration(
    { chainId: options.chainId, deployed: { diamond: options.cluster } },
    node,
    {
      nonce,
    },
  );
  return {
    memberKey: node.memberAccount.address,
    certificate: {
      ...node.proof,
      guestApiVersion: 0,
      salt: options.salt,
      wireguardKey: node.wireguardKey,
      identityKey: node.identityKey,
      claims: { ...SIMULATED_CLAIMS },
      nonce,
      signature,
    },
  };
}

/**
 * The certificate of a member whose keys `cvm` derives under `guestApi` (as the sidecar derives them:
 * `GetKey` on v0, `/v1/GetKey` with the purpose as domain on v1), signed for `chainId` and `cluster`.
 * One CVM yields a genuine certificate under either guest API: the member key differs, the app key and
 * its KMS signature do not.
 */
export async function cvmCertificate(options: {
  readonly cvm: SimulatedCvm;
  readonly appId: Address;
  readonly salt: Hex;
  readonly guestApi: GuestApi;
  readonly chainId: number;
  readonly cluster: Address;
  readonly nonce?: bigint;
}): Promise<{ certificate: MemberCertificate; memberKey: Address }> {
  const { cvm, guestApi } = options;
  const key = (purpose: { path: string; purpose: string }, algorithm: "secp256k1" | "ed25519") =>
    guestApi === "v1"
      ? cvm.getKeyV1(purpose.purpose, algorithm)
      : cvm.getKey(purpose.path, purpose.purpose, algorithm);
  const member = key(MEMBER_KEY, "secp256k1");
  const identityKey = bytesToHex(derivedPublicKey(key(IDENTITY_KEY, "ed25519").key, "ed25519"));
  const wireguardKey = bytesToHex(wireguardKeyPair(key(WIREGUARD_KEY, "ed25519").key).publicKey);
  const memberAccount = privateKeyToAccount(bytesToHex(member.key));
  const nonce = options.nonce ?? 0n;
  const signature = await signRegistration(
    { chainId: options.chainId, deployed: { diamond: options.cluster } },
    { memberAccount, appId: options.appId, wireguardKey, identityKey, claims: SIMULATED_CLAIMS },
    { nonce },
  );
  return {
    memberKey: memberAccount.address,
    certificate: {
      appId: options.appId,
      salt: options.salt,
      memberPubkey: bytesToHex(derivedPublicKey(member.key, "secp256k1")),
      appPubkey: bytesToHex(cvm.appPublicKey),
      appSignature: bytesToHex(member.signatureChain[0]!),
      kmsSignature: bytesToHex(member.signatureChain[1]!),
      guestApiVersion: guestApi === "v1" ? 1 : 0,
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
    guestApi: "v0",
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
