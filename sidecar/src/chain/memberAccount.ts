// The node's ERC-4337 account as a viem smart account: a MemberAccount clone owned by the member key,
// at the address the cluster's factory computes from that key. Its first operation carries the
// factory call, so the account is created by the same operation that registers the node.
import { memberAccountAbi, memberAccountFactoryAbi } from "@attestmesh/shared/contracts/abi.ts";
import {
  type Address,
  type Chain,
  encodeFunctionData,
  type Hex,
  type LocalAccount,
  type PublicClient,
  type Transport,
} from "viem";
import {
  entryPoint07Abi,
  getUserOperationHash,
  type SmartAccount,
  type SmartAccountImplementation,
  toSmartAccount,
} from "viem/account-abstraction";
import { readContract } from "viem/actions";
import { fatalError } from "../errors.ts";

/**
 * A signature of the right shape that recovers to no owner: estimation runs validation with it, and
 * the account answers "signature failed" instead of reverting.
 */
export const STUB_SIGNATURE: Hex =
  "0xfffffffffffffffffffffffffffffff0000000000000000000000000000000007aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa1c";

export type MemberSmartAccount = SmartAccount<SmartAccountImplementation<typeof entryPoint07Abi, "0.7">>;

export async function toMemberAccount(options: {
  readonly client: PublicClient<Transport, Chain>;
  readonly owner: LocalAccount;
  readonly entryPoint: Address;
  readonly factory: Address;
  /** The account address; `accountOf(owner)` is read from the factory when not given. */
  readonly address?: Address;
}): Promise<MemberSmartAccount> {
  const { client, owner, factory } = options;
  const entryPoint = { abi: entryPoint07Abi, address: options.entryPoint, version: "0.7" } as const;
  const account =
    options.address ??
    (await readContract(client, {
      address: factory,
      abi: memberAccountFactoryAbi,
      functionName: "accountOf",
      args: [owner.address],
    }));
  const refuseToSign = async (): Promise<Hex> => {
    throw fatalError(
      "MemberAccountSignsOnlyOperations",
      "a member account signs only its own UserOperations; it has no ERC-1271 message signatures",
    );
  };
  return toSmartAccount({
    client,
    entryPoint,
    async getAddress() {
      return account;
    },
    async encodeCalls(calls) {
      const [call] = calls;
      if (call === undefined || calls.length !== 1) {
        throw fatalError(
          "OneCallPerOperation",
          "a member account executes exactly one cluster call per operation",
        );
      }
      return encodeFunctionData({
        abi: memberAccountAbi,
        functionName: "execute",
        args: [call.to, call.value ?? 0n, call.data ?? "0x"],
      });
    },
    async getFactoryArgs() {
      return {
        factory,
        factoryData: encodeFunctionData({
          abi: memberAccountFactoryAbi,
          functionName: "createAccount",
          args: [owner.address],
        }),
      };
    },
    async getStubSignature() {
      return STUB_SIGNATURE;
    },
    signMessage: refuseToSign,
    signTypedData: refuseToSign,
    async signUserOperation(parameters) {
      const { chainId = client.chain?.id, ...userOperation } = parameters;
      if (chainId === undefined) {
        throw fatalError("ChainUnknown", "signing a UserOperation needs the chain id");
      }
      const hash = getUserOperationHash({
        chainId,
        entryPointAddress: entryPoint.address,
        entryPointVersion: "0.7",
        userOperation: { ...userOperation, sender: account },
      });
      // EIP-191, as MemberAccount checks: keeps operation signatures apart from EIP-712 member actions.
      return owner.signMessage({ message: { raw: hash } });
    },
  });
}
