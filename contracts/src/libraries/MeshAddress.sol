// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IMembership} from "../interfaces/IMembership.sol";
import {MembershipStorage} from "../storage/MembershipStorage.sol";

/// @title Mesh IP allocation inside the cluster CIDR
/// @notice Host offsets 1 .. size-2 (network and broadcast excluded) are tracked in a bitmap. The
/// first choice is deterministic — the member id's own offset — so consecutive members share bitmap
/// words (cheap writes) and a freed address is not handed out again until the ids wrap around; on a
/// collision the next free offset is taken, wrapping once.
library MeshAddress {
    /// @notice The mesh CIDR is outside what the cluster supports (/16 to /28, aligned).
    /// @param meshBase The network address given (host order).
    /// @param prefixLength The prefix length given.
    error InvalidMeshCidr(uint32 meshBase, uint8 prefixLength);

    uint8 internal constant MIN_PREFIX = 16;
    uint8 internal constant MAX_PREFIX = 28;

    function validateCidr(uint32 meshBase, uint8 prefixLength) internal pure {
        if (prefixLength < MIN_PREFIX || prefixLength > MAX_PREFIX) revert InvalidMeshCidr(meshBase, prefixLength);
        uint32 hostMask = uint32((uint256(1) << (32 - prefixLength)) - 1);
        if (meshBase & hostMask != 0) revert InvalidMeshCidr(meshBase, prefixLength);
    }

    /// @notice Take a free address for `memberId` and mark it used.
    function allocate(MembershipStorage.Layout storage l, uint32 meshBase, uint8 prefixLength, uint64 memberId)
        internal
        returns (uint32 ip)
    {
        uint256 hosts = (uint256(1) << (32 - prefixLength)) - 2;
        uint256 offset = ((uint256(memberId) - 1) % hosts) + 1;
        // Examine every host offset once, a bitmap word at a time, from the first choice up to the
        // last host and then from offset 1: at most hosts / 256 + 2 words (258 for a /16).
        uint256 remaining = hosts;
        while (true) {
            uint256 word = offset >> 8;
            uint256 end = (word + 1) << 8;
            if (end > hosts + 1) end = hosts + 1;
            uint256 span = end - offset;
            if (span > remaining) span = remaining;
            uint256 bits = l.usedOffsets[word];
            uint256 free = ~bits >> (offset & 0xff);
            if (span < 256) free &= (uint256(1) << span) - 1;
            if (free != 0) {
                uint256 taken = offset + _lowestBit(free);
                l.usedOffsets[word] = bits | (uint256(1) << (taken & 0xff));
                return meshBase + uint32(taken);
            }
            remaining -= span;
            if (remaining == 0) revert IMembership.MeshFull();
            offset = end > hosts ? 1 : end;
        }
    }

    /// @notice Mark a member's address free again.
    function release(MembershipStorage.Layout storage l, uint32 meshBase, uint32 ip) internal {
        uint256 offset = ip - meshBase;
        l.usedOffsets[offset >> 8] &= ~(uint256(1) << (offset & 0xff));
    }

    function _lowestBit(uint256 x) private pure returns (uint256 n) {
        // x != 0; binary search for the index of its lowest set bit.
        if (x & type(uint128).max == 0) { n += 128; x >>= 128; }
        if (x & type(uint64).max == 0) { n += 64; x >>= 64; }
        if (x & type(uint32).max == 0) { n += 32; x >>= 32; }
        if (x & type(uint16).max == 0) { n += 16; x >>= 16; }
        if (x & type(uint8).max == 0) { n += 8; x >>= 8; }
        if (x & 0xf == 0) { n += 4; x >>= 4; }
        if (x & 0x3 == 0) { n += 2; x >>= 2; }
        if (x & 0x1 == 0) { n += 1; }
    }
}
