// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IOwnership} from "../interfaces/IOwnership.sol";
import {LibOwnership} from "../libraries/LibOwnership.sol";

/// @title OwnershipFacet
/// @notice ERC-173 ownership of the cluster with a two-step transfer.
contract OwnershipFacet is IOwnership {
    /// @inheritdoc IOwnership
    function transferOwnership(address newOwner) external {
        LibOwnership.enforceIsOwner();
        LibOwnership.startTransfer(newOwner);
    }

    /// @inheritdoc IOwnership
    function acceptOwnership() external {
        LibOwnership.acceptTransfer();
    }

    /// @inheritdoc IOwnership
    function owner() external view returns (address owner_) {
        return LibOwnership.owner();
    }

    /// @inheritdoc IOwnership
    function pendingOwner() external view returns (address pendingOwner_) {
        return LibOwnership.pendingOwner();
    }
}
