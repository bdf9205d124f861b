// The app id of a cluster's member app, computed offline: the CREATE2 address of the clone the
// cluster's factory (MemberAppsFacet.createMemberApp) deploys for a salt. The clone is OpenZeppelin's
// `Clones.cloneDeterministicWithImmutableArgs(implementation, abi.encodePacked(cluster), salt)`, whose
// init code is (OpenZeppelin Contracts 5.x, `_cloneCodeWithImmutableArgs`):
//
//   0x61 || uint16(len(args) + 0x2d) || 3d81600a3d39f3363d3d373d3d3d363d73 || implementation
//        || 5af43d82803e903d91602b57fd5bf3 || args
//
// and the deployer is the cluster diamond itself (the facet runs by delegatecall). An app id the KMS
// issued for any other app (another cluster's member app, a plain allowlisted app) is not this address
// for any salt.
import { type Address, concatHex, getContractAddress, type Hex, keccak256, numberToHex } from "viem";

const CLONE_PREFIX: Hex = "0x3d81600a3d39f3363d3d373d3d3d363d73";
const CLONE_SUFFIX: Hex = "0x5af43d82803e903d91602b57fd5bf3";

/** The init code of the member-app clone of `implementation` for `cluster` (its immutable arg). */
export function memberAppInitCode(implementation: Address, cluster: Address): Hex {
  const args = cluster.toLowerCase() as Hex; // abi.encodePacked(address): 20 bytes
  return concatHex([
    "0x61",
    numberToHex(20 + 0x2d, { size: 2 }),
    CLONE_PREFIX,
    implementation,
    CLONE_SUFFIX,
    args,
  ]);
}

/** The app id `createMemberApp(salt)` gives on the cluster `cluster` with member-app implementation `implementation`. */
export function predictMemberAppId(implementation: Address, cluster: Address, salt: Hex): Address {
  return getContractAddress({
    opcode: "CREATE2",
    from: cluster,
    salt,
    bytecodeHash: keccak256(memberAppInitCode(implementation, cluster)),
  });
}
