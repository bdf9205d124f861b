// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IMembership} from "../interfaces/IMembership.sol";

/// @title Storage of member records and mesh addressing
library MembershipStorage {
    /// @notice One member, in four slots. Registration writes three: while the member is active its
    /// member key and device word live in its keys' index entries (`KeyHolder`), which registration
    /// writes anyway, and move here, beside `endedAt`, when the membership ends.
    struct Member {
        // slot 0
        address appId;
        uint32 meshIp;
        IMembership.MemberStatus status;
        uint40 registeredAt;
        // Fills slot 0's last two bytes: the member's (compose hash, KMS root) in MemberClaimsStorage.
        uint16 buildRef;
        // slot 1, written when the membership ends
        address memberKey;
        uint40 endedAt;
        uint8 endReason;
        // The member's device word (MemberClaimsStorage: a device reference, or a flagged fingerprint),
        // moved here from its KeyHolder like `memberKey`.
        uint32 deviceRef;
        // slot 2
        bytes32 wireguardKey;
        // slot 3
        bytes32 identityKey;
    }

    /// @notice The cluster's mesh parameters and counters, in one slot.
    /// @param meshBase The network address of the mesh CIDR (IPv4, host order).
    /// @param prefixLength The CIDR prefix length.
    /// @param lastMemberId The highest member id issued (ids start at 1).
    /// @param activeMembers How many members are active now.
    struct Mesh {
        uint32 meshBase;
        uint8 prefixLength;
        uint64 lastMemberId;
        uint64 activeMembers;
    }

    /// @notice The index entry of a public key, in one slot. A key is bound to the app id of
    /// `memberId` (every key a dstack app derives is its own) from its first registration until the
    /// owner evicts that app's member or revokes the app id; the entry is deleted then.
    /// @param memberId The latest member that registered the key (active, or left from the bound app).
    /// @param memberKey That member's member key.
    /// @param deviceRef That member's device word: a device reference, or a flagged fingerprint (see
    /// MemberClaimsStorage).
    struct KeyHolder {
        uint64 memberId;
        address memberKey;
        // The member's device word (MemberClaimsStorage), in the slot's last four bytes.
        uint32 deviceRef;
    }

    /// @custom:storage-location erc7201:attestmesh.storage.Membership
    struct Layout {
        Mesh mesh;
        mapping(uint64 memberId => Member) members;
        // Bit i of word w is set while host offset 256 * w + i is in use.
        mapping(uint256 word => uint256 bits) usedOffsets;
        mapping(bytes32 wireguardKey => KeyHolder) wireguardKeys;
        mapping(bytes32 identityKey => KeyHolder) identityKeys;
    }

    /// @dev keccak256(abi.encode(uint256(keccak256("attestmesh.storage.Membership")) - 1)) & ~bytes32(uint256(0xff))
    bytes32 internal constant STORAGE_SLOT = 0xdee9d8c5ae989c32e8a7e59d9356f1fea054e4af75f83154fd8a73fde904d800;

    function load() internal pure returns (Layout storage l) {
        assembly ("memory-safe") {
            l.slot := STORAGE_SLOT
        }
    }
}
