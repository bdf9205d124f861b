// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @title Cluster Shared Key commitments
/// @notice One keccak256 commitment per CSK epoch. Epoch 0 opens with the cluster; every member that
/// leaves or is evicted opens the next one. Any active member may commit the current epoch while it
/// is uncommitted, and the first commitment is final: sidecars pick the committer deterministically
/// and let another take over after a timeout, so no epoch is left uncommitted while a member lives.
interface ICsk {
    /// @notice The commitment was for another epoch than the current one.
    /// @param currentEpoch The current epoch.
    /// @param epoch The epoch given.
    error CskEpochMismatch(uint64 currentEpoch, uint64 epoch);

    /// @notice The epoch already has a commitment.
    /// @param epoch The epoch.
    /// @param commitment Its commitment.
    error CskAlreadyCommitted(uint64 epoch, bytes32 commitment);

    /// @notice A zero commitment was given.
    error CskCommitmentZero();

    /// @notice A new epoch opened; its CSK must be generated afresh.
    /// @param epoch The new epoch.
    /// @param causeMemberId The member whose departure opened it (0 for the first epoch).
    event CskEpochOpened(uint64 indexed epoch, uint64 indexed causeMemberId);

    /// @notice An epoch's CSK was committed.
    /// @param epoch The epoch.
    /// @param memberId The member that committed.
    /// @param commitment keccak256 of the 32-byte CSK.
    event CskCommitted(uint64 indexed epoch, uint64 indexed memberId, bytes32 commitment);

    /// @notice Commit the current epoch's CSK; the member key signs `CommitCsk(memberId, epoch, commitment)`.
    /// @param memberId The committing member (must be active).
    /// @param epoch The current epoch.
    /// @param commitment keccak256 of the CSK.
    /// @param signature The member key's EIP-712 signature.
    function commitCsk(uint64 memberId, uint64 epoch, bytes32 commitment, bytes calldata signature) external;

    /// @notice The current epoch and its state.
    /// @return epoch The current epoch.
    /// @return commitment Its commitment, zero while uncommitted.
    /// @return committer The member that committed it, 0 while uncommitted.
    /// @return openedAt When it opened.
    /// @return committedAt When it was committed, 0 while uncommitted.
    function currentCsk()
        external
        view
        returns (uint64 epoch, bytes32 commitment, uint64 committer, uint40 openedAt, uint40 committedAt);

    /// @notice The state of any epoch (zeroes for one not yet opened).
    function cskEpoch(uint64 epoch)
        external
        view
        returns (bytes32 commitment, uint64 committer, uint40 openedAt, uint40 committedAt);
}
