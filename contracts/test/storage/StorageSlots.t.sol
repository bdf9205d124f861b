// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {AppsStorage} from "../../src/storage/AppsStorage.sol";
import {CskStorage} from "../../src/storage/CskStorage.sol";
import {DiamondStorage} from "../../src/storage/DiamondStorage.sol";
import {IndexerRegistryStorage} from "../../src/storage/IndexerRegistryStorage.sol";
import {MemberAppsStorage} from "../../src/storage/MemberAppsStorage.sol";
import {MemberClaimsStorage} from "../../src/storage/MemberClaimsStorage.sol";
import {MembershipStorage} from "../../src/storage/MembershipStorage.sol";
import {MessagesStorage} from "../../src/storage/MessagesStorage.sol";
import {OwnershipStorage} from "../../src/storage/OwnershipStorage.sol";
import {PolicyStorage} from "../../src/storage/PolicyStorage.sol";
import {Test} from "../utils/Test.sol";

/// @notice Pins every storage library's slot to ERC-7201 of the namespace in its `@custom:storage-location` tag.
/// The namespaces are written out here on purpose: a renamed namespace or a mistyped constant fails this test.
contract StorageSlotsTest is Test {
    struct Domain {
        string namespace;
        bytes32 slot;
    }

    function test_storageSlots_matchErc7201() public pure {
        Domain[10] memory domains = _domains();
        for (uint256 i; i < domains.length; ++i) {
            assertEq(domains[i].slot, _erc7201(domains[i].namespace), domains[i].namespace);
        }
    }

    /// @dev Each layout spans far fewer than 256 slots from its base, and mappings hash away from it, so distinct
    /// 256-aligned bases cannot overlap.
    function test_storageSlots_areDistinct() public pure {
        Domain[10] memory domains = _domains();
        for (uint256 i; i < domains.length; ++i) {
            assertEq(uint256(domains[i].slot) & 0xff, 0, "slot is not 256-aligned");
            for (uint256 j = i + 1; j < domains.length; ++j) {
                assertNotEq(domains[i].slot, domains[j].slot, "two domains share a slot");
            }
        }
    }

    function test_erc7201_matchesEipExample() public pure {
        // The worked example of EIP-7201 itself.
        assertEq(_erc7201("example.main"), 0x183a6125c38840424c4a85fa12bab2ab606c4b6d0e7cc73c0c06ba5300eab500);
    }

    /// @notice Every storage library's slot beside the namespace its `@custom:storage-location` tag names.
    function _domains() internal pure returns (Domain[10] memory) {
        return [
            Domain("attestmesh.storage.Apps", AppsStorage.STORAGE_SLOT),
            Domain("attestmesh.storage.Csk", CskStorage.STORAGE_SLOT),
            Domain("attestmesh.storage.Diamond", DiamondStorage.STORAGE_SLOT),
            Domain("attestmesh.storage.IndexerRegistry", IndexerRegistryStorage.STORAGE_SLOT),
            Domain("attestmesh.storage.MemberApps", MemberAppsStorage.STORAGE_SLOT),
            Domain("attestmesh.storage.MemberClaims", MemberClaimsStorage.STORAGE_SLOT),
            Domain("attestmesh.storage.Membership", MembershipStorage.STORAGE_SLOT),
            Domain("attestmesh.storage.Messages", MessagesStorage.STORAGE_SLOT),
            Domain("attestmesh.storage.Ownership", OwnershipStorage.STORAGE_SLOT),
            Domain("attestmesh.storage.Policy", PolicyStorage.STORAGE_SLOT)
        ];
    }

    function _erc7201(string memory namespace) internal pure returns (bytes32) {
        return keccak256(abi.encode(uint256(keccak256(bytes(namespace))) - 1)) & ~bytes32(uint256(0xff));
    }
}
