// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {PolicyFacet} from "../../src/facets/PolicyFacet.sol";
import {LibOwnership} from "../../src/libraries/LibOwnership.sol";
import {IMembership} from "../../src/interfaces/IMembership.sol";
import {AppsStorage} from "../../src/storage/AppsStorage.sol";
import {MembershipStorage} from "../../src/storage/MembershipStorage.sol";

/// @title PolicyFacetHarness
/// @notice The real PolicyFacet on storage of its own, owned by its deployer, plus a way to stage a member of
/// an app id without a key chain.
contract PolicyFacetHarness is PolicyFacet {
    constructor() {
        LibOwnership.setOwner(msg.sender);
    }

    /// @notice Records member `memberId` of `appId` with `status`, as registration and its end would.
    function stageMember(address appId, uint64 memberId, IMembership.MemberStatus status) external {
        AppsStorage.load().apps[appId].memberId = memberId;
        MembershipStorage.load().members[memberId].appId = appId;
        MembershipStorage.load().members[memberId].status = status;
    }
}
