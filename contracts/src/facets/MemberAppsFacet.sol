// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {Clones} from "@openzeppelin/contracts/proxy/Clones.sol";
import {IMemberApps} from "../interfaces/IMemberApps.sol";
import {LibOwnership} from "../libraries/LibOwnership.sol";
import {LibPolicy} from "../libraries/LibPolicy.sol";
import {MemberAppsStorage} from "../storage/MemberAppsStorage.sol";

/// @title Member-app factory facet
contract MemberAppsFacet is IMemberApps {
    /// @inheritdoc IMemberApps
    function createMemberApp(bytes32 salt) external returns (address app) {
        LibOwnership.enforceIsOwner();
        MemberAppsStorage.Layout storage l = MemberAppsStorage.load();
        app = Clones.cloneDeterministicWithImmutableArgs(l.implementation, abi.encodePacked(address(this)), salt);
        l.created[app] = true;
        emit MemberAppCreated(app, salt);
        LibPolicy.setAppAllowed(app, true);
    }

    /// @inheritdoc IMemberApps
    function predictMemberApp(bytes32 salt) external view returns (address) {
        return Clones.predictDeterministicAddressWithImmutableArgs(
            MemberAppsStorage.load().implementation, abi.encodePacked(address(this)), salt
        );
    }

    /// @inheritdoc IMemberApps
    function isMemberApp(address app) external view returns (bool) {
        return MemberAppsStorage.load().created[app];
    }

    /// @inheritdoc IMemberApps
    function memberAppImplementation() external view returns (address) {
        return MemberAppsStorage.load().implementation;
    }
}
