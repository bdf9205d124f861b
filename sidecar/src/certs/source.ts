// Where a member's certificate comes from, at zero gas: the registration transaction's calldata. The
// MemberRegistered logs of the member's app id give the transaction (and, by their order, the nonce
// its signature used: the contract counts one nonce per admission of an app id); the transaction's
// input holds the `register` call (directly, or inside handleOps → execute); the MemberAppCreated log
// of the app id gives the CREATE2 salt. Three RPC calls per member, once: nothing here is trusted,
// the certificate is verified offline afterwards (certificate.ts), so a lying RPC can only make a
// member unverifiable, never verify one.
import { certificateFromCall, findRegisterCalls } from "@attestmesh/shared/certs/calldata.ts";
import type { MemberCertificate } from "@attestmesh/shared/certs/certificate.ts";
import { clusterAbi } from "@attestmesh/shared/contracts/abi.ts";
import { type Address, type Chain, getAbiItem, getAddress, type PublicClient, type Transport } from "viem";
import { AttestmeshError } from "../errors.ts";
import type { Member } from "../model/member.ts";

const MEMBER_REGISTERED = getAbiItem({ abi: clusterAbi, name: "MemberRegistered" });
const MEMBER_APP_CREATED = getAbiItem({ abi: clusterAbi, name: "MemberAppCreated" });

/** Fetches the certificate a member registered with; throws `CertificateUnavailable` when it cannot. */
export type CertificateSource = (member: Member) => Promise<MemberCertificate>;

function unavailable(member: Member, problem: string): AttestmeshError {
  return new AttestmeshError(`member ${member.memberId}'s certificate is unavailable: ${problem}`, {
    code: "CertificateUnavailable",
    retryable: true,
    details: { memberId: member.memberId.toString(), appId: member.appId },
  });
}

export function createChainCertificateSource(options: {
  readonly client: PublicClient<Transport, Chain>;
  readonly cluster: Address;
  /** The first block to search for registrations (the cluster's deployment); default 0. */
  readonly fromBlock?: bigint;
}): CertificateSource {
  const { client, cluster } = options;
  const fromBlock = options.fromBlock ?? 0n;
  return async (member) => {
    const [registrations, created] = await Promise.all([
      client.getLogs({
        address: cluster,
        event: MEMBER_REGISTERED,
        args: { appId: member.appId },
        fromBlock,
        toBlock: "latest",
        strict: true,
      }),
      client.getLogs({
        address: cluster,
        event: MEMBER_APP_CREATED,
        args: { app: member.appId },
        fromBlock,
        toBlock: "latest",
        strict: true,
      }),
    ]);
    registrations.sort((a, b) =>
      a.blockNumber === b.blockNumber
        ? (a.logIndex ?? 0) - (b.logIndex ?? 0)
        : (a.blockNumber ?? 0n) < (b.blockNumber ?? 0n)
          ? -1
          : 1,
    );
    const index = registrations.findIndex((log) => log.args.memberId === member.memberId);
    const registration = registrations[index];
    if (registration === undefined || registration.transactionHash === null) {
      throw unavailable(member, "no MemberRegistered log names it");
    }
    const salt = created[0]?.args.salt;
    if (salt === undefined)
      throw unavailable(member, "its app id has no MemberAppCreated log (not a member app)");
    const tx = await client.getTransaction({ hash: registration.transactionHash });
    const call = findRegisterCalls(tx.input).find(
      (c) =>
        typeof c.appId === "string" &&
        getAddress(c.appId) === getAddress(member.appId) &&
        String(c.wireguardKey).toLowerCase() === member.wireguardKey &&
        String(c.identityKey).toLowerCase() === member.identityKey,
    );
    if (call === undefined)
      throw unavailable(member, "its registration transaction holds no matching register call");
    return certificateFromCall(call, salt, BigInt(index));
  };
}
