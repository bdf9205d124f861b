// dstack's KMS contract (`DstackKms`, Dstack-TEE/dstack kms/auth-eth/contracts/DstackKms.sol): its KMS
// boots an app only if the app is registered there (`registerApp(address)`, callable by anyone), so a
// member app must be registered before its CVM is deployed. This module resolves `--kms-contract`,
// refuses an address that is not a DstackKms before anything is sent, and plans the registration.

import { AttestmeshError } from "@attestmesh/shared/errors.ts";
import { type Abi, type Address, parseAbi } from "viem";
import { badArgument, parseAddress } from "./args.ts";
import type { ResolvedNetwork } from "./network.ts";
import type { TxPlan } from "./transact.ts";

/**
 * The part of DstackKms the CLI uses, written from the functions of dstack's contract (Dstack-TEE/dstack,
 * kms/auth-eth/contracts/DstackKms.sol): the public `registeredApps` mapping, the public `kmsInfo`
 * struct (read as a tuple of its four fields), `registerApp`, its `AppRegistered` event, and
 * `isAppAllowed` with dstack's AppBootInfo (IAppAuth.sol).
 */
export const dstackKmsAbi = parseAbi([
  "function registerApp(address appId)",
  "function registeredApps(address appId) view returns (bool)",
  "function kmsInfo() view returns (bytes k256Pubkey, bytes caPubkey, bytes quote, bytes eventlog)",
  "function isAppAllowed((address appId, bytes32 composeHash, address instanceId, bytes32 deviceId, bytes32 mrAggregated, bytes32 mrSystem, bytes32 osImageHash, string tcbStatus, string[] advisoryIds) bootInfo) view returns (bool isAllowed, string reason)",
  "event AppRegistered(address appId)",
]) satisfies Abi;

/** Phala's DstackKms on Base (chain 8453), the one `--kms-contract base` names. */
export const BASE_DSTACK_KMS: Address = "0x2f83172A49584C017F2B256F0FB2Dca14126Ba9C";
const BASE_CHAIN_ID = 8453;

/** `--kms-contract <address|base>` → an address; `base` only on Base itself. */
export function parseKmsContract(value: string, chainId: number): Address {
  if (value.toLowerCase() !== "base") return parseAddress(value, "--kms-contract");
  if (chainId !== BASE_CHAIN_ID) {
    throw badArgument(
      `--kms-contract base names Phala's DstackKms on Base (chain ${BASE_CHAIN_ID}), but this is chain ${chainId}; give the KMS contract's address`,
    );
  }
  return BASE_DSTACK_KMS;
}

/** Refuses an address with no code, or whose code does not answer as a DstackKms. */
export async function assertDstackKms(net: ResolvedNetwork, kms: Address): Promise<void> {
  const code = await net.client.getCode({ address: kms });
  if (code === undefined || code === "0x") {
    throw new AttestmeshError(
      `--kms-contract ${kms}: no contract there on chain ${net.chain.id}; give the address of dstack's DstackKms contract (the KMS's auth contract)`,
      { code: "KmsContractNotFound", details: { kmsContract: kms, chainId: net.chain.id } },
    );
  }
  try {
    await Promise.all([
      net.client.readContract({
        address: kms,
        abi: dstackKmsAbi,
        functionName: "registeredApps",
        args: ["0x0000000000000000000000000000000000000000"],
      }),
      net.client.readContract({ address: kms, abi: dstackKmsAbi, functionName: "kmsInfo" }),
    ]);
  } catch (cause) {
    throw new AttestmeshError(
      `--kms-contract ${kms} is not a dstack KMS contract (it does not answer registeredApps(address) and kmsInfo()); give the DstackKms address your KMS uses`,
      { code: "NotDstackKms", details: { kmsContract: kms }, cause },
    );
  }
}

export async function isRegisteredWithKms(
  net: ResolvedNetwork,
  kms: Address,
  appId: Address,
): Promise<boolean> {
  return net.client.readContract({
    address: kms,
    abi: dstackKmsAbi,
    functionName: "registeredApps",
    args: [appId],
  });
}

/** The command that registers `appId`, for messages that say how to fix an unregistered app. */
export function registerCommand(appId: Address, kms: Address): string {
  return `attestmesh member-app register ${appId} --kms-contract ${kms === BASE_DSTACK_KMS ? "base" : kms}`;
}

/** The plan for `registerApp(appId)` on the KMS contract (anyone may send it). */
export function registerAppPlan(kms: Address, appId: Address, registered: boolean): TxPlan {
  return {
    action: "member-app register",
    functionName: "registerApp",
    args: [appId],
    target: { address: kms, abi: dstackKmsAbi },
    changes: {
      "register app id": appId,
      "with KMS contract": kms,
      ...(registered ? { "already registered": "yes (registering again changes nothing)" } : {}),
    },
  };
}
