// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {PolicyFacet} from "../../src/facets/PolicyFacet.sol";
import {LibOwnership} from "../../src/libraries/LibOwnership.sol";
import {MemberAppsStorage} from "../../src/storage/MemberAppsStorage.sol";

/// @title PolicyFacetHarness
/// @notice The real PolicyFacet on storage of its own, owned by its deployer, plus a way to mark an address as
/// a factory-made member app without deploying the factory.
contract PolicyFacetHarness is PolicyFacet {
    constructor() {
        LibOwnership.setOwner(msg.sender);
    }

    /// @notice Records `app` as created by the member-app factory, as `createMemberApp` does.
    function markMemberApp(address app) external {
        MemberAppsStorage.load().created[app] = true;
    }
}
