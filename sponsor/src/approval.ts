// The paymaster approval: what the sponsorship service signs and how it rides in `paymasterData`.
// Mirrors SponsorPaymaster._digest exactly (a test pins the two against each other on chain).
import {
  type Address,
  concat,
  encodeAbiParameters,
  type Hex,
  keccak256,
  type LocalAccount,
  numberToHex,
  pad,
  size,
  slice,
  toHex,
} from "viem";
import type { UserOperation } from "viem/account-abstraction";

const TAG = keccak256(toHex("attestmesh-sponsor"));
const SIGNATURE_BYTES = 65;

/** A 65-byte signature that recovers to nobody: gas estimation runs with it before the real approval. */
export const STUB_APPROVAL_SIGNATURE: Hex = `0x${"ff".repeat(32)}${"00".repeat(32)}1b`;

export interface ApprovalWindow {
  /** Unix seconds; the EntryPoint refuses the operation after it. */
  readonly validUntil: number;
  /** Unix seconds; the EntryPoint refuses the operation before it. */
  readonly validAfter: number;
}

export type ApprovedOperation = Pick<
  UserOperation<"0.7">,
  | "sender"
  | "nonce"
  | "factory"
  | "factoryData"
  | "callData"
  | "callGasLimit"
  | "verificationGasLimit"
  | "preVerificationGas"
  | "maxFeePerGas"
  | "maxPriorityFeePerGas"
  | "paymasterVerificationGasLimit"
  | "paymasterPostOpGasLimit"
>;

function pack128(high: bigint, low: bigint): Hex {
  return concat([pad(numberToHex(high), { size: 16 }), pad(numberToHex(low), { size: 16 })]);
}

export function approvalDigest(
  op: ApprovedOperation,
  chainId: number,
  paymaster: Address,
  window: ApprovalWindow,
): Hex {
  const initCode = op.factory === undefined ? "0x" : concat([op.factory, op.factoryData ?? "0x"]);
  const opHash = keccak256(
    encodeAbiParameters(
      [
        { type: "address" },
        { type: "uint256" },
        { type: "bytes32" },
        { type: "bytes32" },
        { type: "bytes32" },
        { type: "bytes32" },
        { type: "uint256" },
        { type: "bytes32" },
      ],
      [
        op.sender,
        op.nonce,
        keccak256(initCode),
        keccak256(op.callData),
        pack128(op.verificationGasLimit, op.callGasLimit),
        pack128(op.paymasterVerificationGasLimit ?? 0n, op.paymasterPostOpGasLimit ?? 0n),
        op.preVerificationGas,
        pack128(op.maxPriorityFeePerGas, op.maxFeePerGas),
      ],
    ),
  );
  return keccak256(
    encodeAbiParameters(
      [
        { type: "bytes32" },
        { type: "uint256" },
        { type: "address" },
        { type: "bytes32" },
        { type: "uint48" },
        { type: "uint48" },
      ],
      [TAG, BigInt(chainId), paymaster, opHash, window.validUntil, window.validAfter],
    ),
  );
}

/** `validUntil (6) | validAfter (6) | signature (65)`: the part of paymasterAndData after the gas limits. */
export function encodePaymasterData(window: ApprovalWindow, signature: Hex): Hex {
  if (size(signature) !== SIGNATURE_BYTES) throw new RangeError("an approval signature is 65 bytes");
  return concat([
    pad(numberToHex(window.validUntil), { size: 6 }),
    pad(numberToHex(window.validAfter), { size: 6 }),
    signature,
  ]);
}

export function decodePaymasterData(data: Hex): ApprovalWindow & { signature: Hex } {
  return {
    validUntil: Number(BigInt(slice(data, 0, 6))),
    validAfter: Number(BigInt(slice(data, 6, 12))),
    signature: slice(data, 12),
  };
}

/** Signs the approval (EIP-191 over the digest, as the paymaster recovers it). */
export async function signApproval(
  signer: LocalAccount,
  op: ApprovedOperation,
  chainId: number,
  paymaster: Address,
  window: ApprovalWindow,
): Promise<Hex> {
  const digest = approvalDigest(op, chainId, paymaster, window);
  return encodePaymasterData(window, await signer.signMessage({ message: { raw: digest } }));
}
