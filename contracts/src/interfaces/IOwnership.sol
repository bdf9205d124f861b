// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @title IOwnership
/// @notice ERC-173 ownership with a two-step transfer: the current owner proposes, the proposed owner accepts.
/// @dev There is deliberately no renounce: a cluster without an owner could never evict a member or revoke an
/// allowlist entry again. The ERC-173 interface id is `0x7f5828d0` (`owner()` ^ `transferOwnership(address)`);
/// `type(IOwnership).interfaceId` also covers `pendingOwner()` and `acceptOwnership()`.
interface IOwnership {
    /// @notice The caller is not the owner.
    /// @param caller The caller.
    error NotOwner(address caller);

    /// @notice The caller is not the pending owner, or no transfer is pending.
    /// @param caller The caller.
    error NotPendingOwner(address caller);

    /// @notice Emitted when the owner proposes a new owner, or cancels a proposal.
    /// @param previousOwner The owner making the proposal; stays owner until the proposal is accepted.
    /// @param newOwner The proposed owner, or zero when a pending proposal was cancelled.
    event OwnershipTransferStarted(address indexed previousOwner, address indexed newOwner);

    /// @notice ERC-173: emitted whenever the owner changes, including at deployment.
    /// @param previousOwner The former owner, zero at deployment.
    /// @param newOwner The owner from now on.
    event OwnershipTransferred(address indexed previousOwner, address indexed newOwner);

    /// @notice Proposes a new owner, replacing any pending proposal; the owner does not change until it accepts.
    /// @dev Owner only. Proposing the zero address cancels a pending proposal.
    /// @param newOwner The proposed owner, or zero to cancel.
    function transferOwnership(address newOwner) external;

    /// @notice Accepts a pending proposal and becomes the owner.
    /// @dev Callable only by the pending owner.
    function acceptOwnership() external;

    /// @notice ERC-173: the owner.
    /// @return owner_ The owner; never zero.
    function owner() external view returns (address owner_);

    /// @notice The proposed owner of a pending transfer.
    /// @return pendingOwner_ The proposed owner, or zero when no transfer is pending.
    function pendingOwner() external view returns (address pendingOwner_);
}
