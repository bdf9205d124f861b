// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {MeshAddress} from "../../src/libraries/MeshAddress.sol";
import {MembershipStorage} from "../../src/storage/MembershipStorage.sol";

/// @title MeshAddressHarness
/// @notice Exposes MeshAddress over a MembershipStorage layout of its own (a plain state variable, not the
/// diamond's namespaced slot), plus raw access to the used-offset bitmap so tests can stage any occupancy.
contract MeshAddressHarness {
    MembershipStorage.Layout internal _l;

    function validateCidr(uint32 meshBase, uint8 prefixLength) external pure {
        MeshAddress.validateCidr(meshBase, prefixLength);
    }

    function allocate(uint32 meshBase, uint8 prefixLength, uint64 memberId) external returns (uint32 ip) {
        return MeshAddress.allocate(_l, meshBase, prefixLength, memberId);
    }

    function release(uint32 meshBase, uint32 ip) external {
        MeshAddress.release(_l, meshBase, ip);
    }

    function usedWord(uint256 word) external view returns (uint256) {
        return _l.usedOffsets[word];
    }

    function isUsed(uint256 offset) external view returns (bool) {
        return (_l.usedOffsets[offset >> 8] >> (offset & 0xff)) & 1 == 1;
    }

    function setUsedWord(uint256 word, uint256 bits) external {
        _l.usedOffsets[word] = bits;
    }
}
