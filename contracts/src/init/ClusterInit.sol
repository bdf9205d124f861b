// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IERC165} from "@openzeppelin/contracts/utils/introspection/IERC165.sol";
import {EnumerableSet} from "@openzeppelin/contracts/utils/structs/EnumerableSet.sol";
import {IAppAuth} from "../interfaces/IAppAuth.sol";
import {IDiamondCut} from "../interfaces/IDiamondCut.sol";
import {IDiamondLoupe} from "../interfaces/IDiamondLoupe.sol";
import {IPolicy} from "../interfaces/IPolicy.sol";
import {LibCsk} from "../libraries/LibCsk.sol";
import {LibDiamond} from "../libraries/LibDiamond.sol";
import {MeshAddress} from "../libraries/MeshAddress.sol";
import {MemberAppsStorage} from "../storage/MemberAppsStorage.sol";
import {MembershipStorage} from "../storage/MembershipStorage.sol";
import {PolicyStorage} from "../storage/PolicyStorage.sol";

/// @title One-time initializer of a cluster diamond
/// @notice Called by delegatecall from the Diamond constructor. Fixes the mesh CIDR for the cluster's
/// life, accepts the initial KMS roots, records the member-app implementation and declares the
/// ERC-165 interfaces the diamond serves.
contract ClusterInit {
    using EnumerableSet for EnumerableSet.AddressSet;

    /// @notice The cluster was already initialized.
    error AlreadyInitialized();

    /// @notice The member-app implementation has no code.
    /// @param implementation The address given.
    error InvalidMemberAppImplementation(address implementation);

    /// @notice Cluster parameters.
    /// @param meshBase The network address of the mesh CIDR (IPv4, host order).
    /// @param prefixLength The CIDR prefix length (16 to 28).
    /// @param kmsRoots KMS roots accepted from the start.
    /// @param memberAppImplementation The MemberApp contract the factory clones.
    struct Params {
        uint32 meshBase;
        uint8 prefixLength;
        address[] kmsRoots;
        address memberAppImplementation;
    }

    // ERC-165 ids of dstack's interfaces (their own constants, checked by a test).
    bytes4 internal constant APP_AUTH_INTERFACE_ID = 0x1e079198;
    bytes4 internal constant APP_AUTH_BASIC_MANAGEMENT_INTERFACE_ID = 0x8fd37527;
    // ERC-173 ownership.
    bytes4 internal constant ERC173_INTERFACE_ID = 0x7f5828d0;

    function init(Params calldata params) external {
        MembershipStorage.Layout storage m = MembershipStorage.load();
        if (m.mesh.prefixLength != 0) revert AlreadyInitialized();
        MeshAddress.validateCidr(params.meshBase, params.prefixLength);
        m.mesh.meshBase = params.meshBase;
        m.mesh.prefixLength = params.prefixLength;
        // The network address (offset 0) is never a host. Marking it used also makes bitmap word 0
        // non-zero, so the first registrations write a warm slot instead of creating one.
        m.usedOffsets[0] = 1;

        if (params.memberAppImplementation.code.length == 0) {
            revert InvalidMemberAppImplementation(params.memberAppImplementation);
        }
        MemberAppsStorage.load().implementation = params.memberAppImplementation;

        PolicyStorage.Layout storage p = PolicyStorage.load();
        for (uint256 i = 0; i < params.kmsRoots.length; ++i) {
            address root = params.kmsRoots[i];
            if (root == address(0)) revert IPolicy.ZeroIdentifier();
            if (p.kmsRoots.add(root)) emit IPolicy.KmsRootAdded(root);
        }

        LibCsk.openFirstEpoch();

        LibDiamond.setSupportedInterface(type(IERC165).interfaceId, true);
        LibDiamond.setSupportedInterface(type(IDiamondCut).interfaceId, true);
        LibDiamond.setSupportedInterface(type(IDiamondLoupe).interfaceId, true);
        LibDiamond.setSupportedInterface(ERC173_INTERFACE_ID, true);
        LibDiamond.setSupportedInterface(APP_AUTH_INTERFACE_ID, true);
        LibDiamond.setSupportedInterface(APP_AUTH_BASIC_MANAGEMENT_INTERFACE_ID, true);
    }
}
