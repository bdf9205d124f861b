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
    function test_AppsStorage_slotMatchesErc7201() public pure {
        assertEq(AppsStorage.STORAGE_SLOT, _erc7201("attestmesh.storage.Apps"));
    }

    function test_CskStorage_slotMatchesErc7201() public pure {
        assertEq(CskStorage.STORAGE_SLOT, _erc7201("attestmesh.storage.Csk"));
    }

    function test_DiamondStorage_slotMatchesErc7201() public pure {
        assertEq(DiamondStorage.STORAGE_SLOT, _erc7201("attestmesh.storage.Diamond"));
    }

    function test_IndexerRegistryStorage_slotMatchesErc7201() public pure {
        assertEq(IndexerRegistryStorage.STORAGE_SLOT, _erc7201("attestmesh.storage.IndexerRegistry"));
    }

    function test_MemberAppsStorage_slotMatchesErc7201() public pure {
        assertEq(MemberAppsStorage.STORAGE_SLOT, _erc7201("attestmesh.storage.MemberApps"));
    }

    function test_MemberClaimsStorage_slotMatchesErc7201() public pure {
        assertEq(MemberClaimsStorage.STORAGE_SLOT, _erc7201("attestmesh.storage.MemberClaims"));
    }

    function test_MembershipStorage_slotMatchesErc7201() public pure {
        assertEq(MembershipStorage.STORAGE_SLOT, _erc7201("attestmesh.storage.Membership"));
    }

    function test_MessagesStorage_slotMatchesErc7201() public pure {
        assertEq(MessagesStorage.STORAGE_SLOT, _erc7201("attestmesh.storage.Messages"));
    }

    function test_OwnershipStorage_slotMatchesErc7201() public pure {
        assertEq(OwnershipStorage.STORAGE_SLOT, _erc7201("attestmesh.storage.Ownership"));
    }

    function test_PolicyStorage_slotMatchesErc7201() public pure {
        assertEq(PolicyStorage.STORAGE_SLOT, _erc7201("attestmesh.storage.Policy"));
    }

    /// @dev Each layout spans far fewer than 256 slots from its base, and mappings hash away from it, so distinct
    /// 256-aligned bases cannot overlap.
    function test_storageSlots_areDistinct() public pure {
        bytes32[10] memory slots = [
            AppsStorage.STORAGE_SLOT,
            CskStorage.STORAGE_SLOT,
            DiamondStorage.STORAGE_SLOT,
            IndexerRegistryStorage.STORAGE_SLOT,
            MemberAppsStorage.STORAGE_SLOT,
            MemberClaimsStorage.STORAGE_SLOT,
            MembershipStorage.STORAGE_SLOT,
            MessagesStorage.STORAGE_SLOT,
            OwnershipStorage.STORAGE_SLOT,
            PolicyStorage.STORAGE_SLOT
        ];
        for (uint256 i; i < slots.length; ++i) {
            assertEq(uint256(slots[i]) & 0xff, 0, "slot is not 256-aligned");
            for (uint256 j = i + 1; j < slots.length; ++j) {
                assertNotEq(slots[i], slots[j], "two domains share a slot");
            }
        }
    }

    function test_erc7201_matchesEipExample() public pure {
        // The worked example of EIP-7201 itself.
        assertEq(_erc7201("example.main"), 0x183a6125c38840424c4a85fa12bab2ab606c4b6d0e7cc73c0c06ba5300eab500);
    }

    function _erc7201(string memory namespace) internal pure returns (bytes32) {
        return keccak256(abi.encode(uint256(keccak256(bytes(namespace))) - 1)) & ~bytes32(uint256(0xff));
    }
}
