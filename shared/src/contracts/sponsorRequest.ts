// The member's request for sponsorship: its member key signs the operation's identity (chain,
// EntryPoint, account, nonce, initCode, callData) and sends the signature as the ERC-7677 `context`
// (`{ memberSignature }`). The account's own signature over the userOpHash cannot serve: in EntryPoint
// v0.7 that hash covers paymasterAndData, which the sponsor has not produced yet when it is asked. A
// stranger replaying a member's public calldata has no member key, so gets no approval charged to it;
// a replayed request names one (account, nonce), of which at most one operation is ever paid.
import { type Address, concat, encodeAbiParameters, type Hex, keccak256, toHex } from "viem";

const TAG = keccak256(toHex("attestmesh-sponsor-request"));

export interface SponsorRequestFields {
  readonly chainId: number;
  readonly entryPoint: Address;
  readonly sender: Address;
  readonly nonce: bigint;
  readonly factory?: Address | undefined;
  readonly factoryData?: Hex | undefined;
  readonly callData: Hex;
}

/** The digest the member key signs (EIP-191, `signMessage({ message: { raw } })`). */
export function sponsorRequestDigest(fields: SponsorRequestFields): Hex {
  const initCode = fields.factory === undefined ? "0x" : concat([fields.factory, fields.factoryData ?? "0x"]);
  return keccak256(
    encodeAbiParameters(
      [
        { type: "bytes32" },
        { type: "uint256" },
        { type: "address" },
        { type: "address" },
        { type: "uint256" },
        { type: "bytes32" },
        { type: "bytes32" },
      ],
      [
        TAG,
        BigInt(fields.chainId),
        fields.entryPoint,
        fields.sender,
        fields.nonce,
        keccak256(initCode),
        keccak256(fields.callData),
      ],
    ),
  );
}
