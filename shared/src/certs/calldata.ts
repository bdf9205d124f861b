// A member certificate rebuilt from the registration transaction's calldata, at zero extra gas: the
// `register(proof, wireguardKey, identityKey, …, signature)` call is found anywhere in the input —
// called directly, or inside an ERC-4337 `handleOps` → member account `execute` → `register` — by its
// selector, and decoded with the cluster ABI. Any parse is acceptable: the result is verified offline
// (certificate.ts) against the pinned values and the member record, so a wrong or forged input can only
// fail verification, never pass it.

import type { AbiFunction } from "viem";
import { type Address, decodeFunctionData, getAbiItem, getAddress, type Hex, toFunctionSelector } from "viem";
import { clusterAbi } from "../contracts/abi.ts";
import type { GuestApiVersion } from "../dstack/guestV1.ts";
import { type MemberCertificate, registerClaimNames } from "./certificate.ts";

const REGISTER = getAbiItem({ abi: clusterAbi, name: "register" }) as AbiFunction;
const SELECTOR = toFunctionSelector(REGISTER).slice(2).toLowerCase();

/** A decoded `register` call, its arguments flattened one level (tuple components by name). */
export type RegisterCall = Readonly<Record<string, unknown>>;

function flatten(args: readonly unknown[]): RegisterCall {
  const flat: Record<string, unknown> = {};
  REGISTER.inputs.forEach((input, i) => {
    const value = args[i];
    if (input.type === "tuple" && typeof value === "object" && value !== null) {
      for (const [name, v] of Object.entries(value)) flat[name] = v;
    } else if (input.name !== undefined) {
      flat[input.name] = value;
    }
  });
  return flat;
}

/** Every `register` call that decodes somewhere inside `input` (a transaction's calldata). */
export function findRegisterCalls(input: Hex): RegisterCall[] {
  const text = input.slice(2).toLowerCase();
  const calls: RegisterCall[] = [];
  for (let at = text.indexOf(SELECTOR); at !== -1; at = text.indexOf(SELECTOR, at + 1)) {
    if (at % 2 !== 0) continue;
    try {
      const { args } = decodeFunctionData({ abi: [REGISTER], data: `0x${text.slice(at)}` });
      calls.push(flatten(args as readonly unknown[]));
    } catch {
      // Not a register call at this offset (the selector's bytes inside some other value).
    }
  }
  return calls;
}

/** The certificate a decoded register call states, with the member app's salt and the nonce used. */
export function certificateFromCall(call: RegisterCall, salt: Hex, nonce: bigint): MemberCertificate {
  const claims: Record<string, Hex> = {};
  for (const name of registerClaimNames()) claims[name] = String(call[name]) as Hex;
  return {
    appId: getAddress(String(call.appId)) as Address,
    salt,
    memberPubkey: String(call.memberPubkey) as Hex,
    appPubkey: String(call.appPubkey) as Hex,
    appSignature: String(call.appSignature) as Hex,
    kmsSignature: String(call.kmsSignature) as Hex,
    guestApiVersion: Number(call.guestApiVersion) as GuestApiVersion,
    wireguardKey: String(call.wireguardKey) as Hex,
    identityKey: String(call.identityKey) as Hex,
    claims,
    nonce,
    signature: String(call.signature) as Hex,
  };
}
