// Member certificates in tests: member apps created by the cluster's factory, the trust values a
// node's compose would pin for a fixture cluster, and certificates built straight from a simulated
// node (what the sidecar rebuilds from the registration calldata).
import { randomBytes } from "node:crypto";
import { createKmsRoot, type KmsRoot } from "@attestmesh/devnet/dstack-sim/simulator.ts";
import type { MemberCertificate } from "@attestmesh/shared/certs/certificate.ts";
import { predictMemberAppId } from "@attestmesh/shared/certs/memberApp.ts";
import { clusterAbi } from "@attestmesh/shared/contracts/abi.ts";
import type { PinnedTrust } from "@attestmesh/shared/service/pinned.ts";
import { type Address, bytesToHex, getAddress, type Hex, parseEventLogs } from "viem";
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
