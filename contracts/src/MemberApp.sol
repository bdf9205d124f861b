// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IERC165} from "@openzeppelin/contracts/utils/introspection/IERC165.sol";
import {Clones} from "@openzeppelin/contracts/proxy/Clones.sol";
import {IAppAuth} from "./interfaces/IAppAuth.sol";

/// @title A node's dstack app contract
/// @notice Deployed as a minimal clone whose immutable argument is the cluster diamond. Its address is
/// the node's dstack app id; it answers dstack's KMS by asking the cluster's policy, so the cluster
/// owner governs every node's boot policy in one place. It holds no state and has no owner.
contract MemberApp is IAppAuth, IERC165 {
    bytes4 private constant APP_AUTH_INTERFACE_ID = 0x1e079198;

    /// @notice The cluster this app defers to.
    function cluster() public view returns (address) {
        return address(bytes20(Clones.fetchCloneArgs(address(this))));
    }

    /// @inheritdoc IAppAuth
    /// @dev A boot request for another app id is refused here, so a member app can never vouch for
    /// an app id other than its own.
    /// The cluster answers by this app id's role: a node's member app boots only the node role's
    /// compose hashes (never the indexer's), an indexer's only the indexer role's.
    function isAppAllowed(AppBootInfo calldata bootInfo) external view returns (bool isAllowed, string memory reason) {
        if (bootInfo.appId != address(this)) return (false, "App id is not this member app");
        return IAppAuth(cluster()).isAppAllowed(bootInfo);
    }

    /// @inheritdoc IERC165
    function supportsInterface(bytes4 interfaceId) external pure returns (bool) {
        return interfaceId == APP_AUTH_INTERFACE_ID || interfaceId == type(IERC165).interfaceId;
    }
}
