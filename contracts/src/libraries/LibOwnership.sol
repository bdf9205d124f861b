// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IOwnership} from "../interfaces/IOwnership.sol";
import {OwnershipStorage} from "../storage/OwnershipStorage.sol";

/// @title LibOwnership
/// @notice Ownership logic shared by every facet; facets guard owner-only functions with `enforceIsOwner()`.
/// @dev Reverts and events use the declarations in `IOwnership` so callers decode them with one ABI.
library LibOwnership {
    /// @notice Makes `newOwner` the owner at once and drops any pending proposal.
    /// @dev For the diamond's constructor; later changes go through `startTransfer` and `acceptTransfer` so a
    /// mistyped address can never take the cluster over. Does not check the caller.
    /// @param newOwner The new owner.
    function setOwner(address newOwner) internal {
        OwnershipStorage.Layout storage l = OwnershipStorage.load();
        address previousOwner = l.owner;
        l.owner = newOwner;
        delete l.pendingOwner;
        emit IOwnership.OwnershipTransferred(previousOwner, newOwner);
    }

    /// @notice Proposes `newOwner`, replacing any pending proposal; zero cancels.
    /// @dev Does not check the caller: call `enforceIsOwner()` first.
    /// @param newOwner The proposed owner, or zero to cancel.
    function startTransfer(address newOwner) internal {
        OwnershipStorage.Layout storage l = OwnershipStorage.load();
        l.pendingOwner = newOwner;
        emit IOwnership.OwnershipTransferStarted(l.owner, newOwner);
    }

    /// @notice Completes a pending transfer to the caller.
    /// @dev Reverts `IOwnership.NotPendingOwner(msg.sender)` unless the caller is the pending owner. With no
    /// transfer pending the pending owner is zero, which no caller can be, so no separate check is needed.
    function acceptTransfer() internal {
        if (msg.sender != OwnershipStorage.load().pendingOwner) revert IOwnership.NotPendingOwner(msg.sender);
        setOwner(msg.sender);
    }

    /// @notice Reverts `IOwnership.NotOwner(msg.sender)` unless the caller is the owner.
    function enforceIsOwner() internal view {
        if (msg.sender != OwnershipStorage.load().owner) revert IOwnership.NotOwner(msg.sender);
    }

    /// @notice The owner.
    /// @return The owner; never zero once the diamond is constructed.
    function owner() internal view returns (address) {
        return OwnershipStorage.load().owner;
    }

    /// @notice The proposed owner of a pending transfer.
    /// @return The proposed owner, or zero when no transfer is pending.
    function pendingOwner() internal view returns (address) {
        return OwnershipStorage.load().pendingOwner;
    }
}
