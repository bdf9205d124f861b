// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IMemberStanding} from "./IMemberStanding.sol";

/// @title Cluster Shared Key commitments
/// @notice One keccak256 commitment per CSK epoch. Epoch 0 opens with the cluster; every member that
/// leaves or is evicted opens the next one, and so does every owner revocation that can leave running
/// members non-standing (a node compose hash, a device or a KMS root withdrawn, devices restricted):
/// such a member may neither commit nor confirm, and sidecars refuse it the key, so the next key is
/// made without it before any eviction. Any active member may commit the current epoch while it
/// is uncommitted, and the first commitment is final: sidecars pick the committer deterministically
/// and let another take over after a timeout, so no epoch is left uncommitted while a member lives.
///
/// A commitment nobody can open (a member that commits out of turn to a hash of nothing it will
/// serve) must not stall the cluster, and the way out must not trust the committer:
/// - Every member other than the committer that pulled the key and checked it against the commitment
///   confirms the epoch (`confirmCsk`). A confirmed epoch is held by at least two members.
/// - Once an epoch has been committed for `CSK_REOPEN_DELAY` without a confirmation, any active member
///   other than its committer may re-open it (`reopenCsk`): the next epoch opens, and the abandoned
///   epoch's committer may not commit that next one, so an honest member does.
/// - The owner may open a new epoch at any time (`openCskEpoch`), e.g. when two colluding members
///   confirm each other's unopenable commitments.
/// Why this cannot be used to churn epochs: a member can re-open only an epoch that nobody but its
/// committer confirmed within the delay. While a second honest member lives it pulls and confirms
/// every honest epoch well inside the delay, so a malicious member cannot re-open honest epochs; and it
/// cannot re-open its own. A malicious committer stalls the cluster for at most one delay per epoch
/// that others open (by leaving or eviction), since after a re-open it is barred from the next epoch.
/// In a two-member cluster where the other member is malicious nobody can confirm; the worst case
/// there is one re-keying per delay, never a lock-out, and the owner evicts the culprit.
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

    /// @notice The member committed the epoch that members re-opened last, so it may not commit this one.
    /// @param epoch The current epoch.
    /// @param memberId The barred member.
    error CskCommitterBarred(uint64 epoch, uint64 memberId);

    /// @notice The epoch has no commitment yet (nothing to confirm or re-open).
    /// @param epoch The epoch.
    error CskNotCommitted(uint64 epoch);

    /// @notice A confirmation named another commitment than the epoch's.
    /// @param epoch The epoch.
    /// @param commitment The epoch's commitment.
    /// @param given The commitment the member confirmed.
    error CskCommitmentMismatch(uint64 epoch, bytes32 commitment, bytes32 given);

    /// @notice The committer confirmed or re-opened its own epoch; only other members may.
    /// @param epoch The epoch.
    /// @param memberId The committer.
    error CskOwnCommitment(uint64 epoch, uint64 memberId);

    /// @notice A member other than the committer already confirmed holding the epoch's key.
    /// @param epoch The epoch.
    /// @param confirmer The member that confirmed it.
    error CskAlreadyConfirmed(uint64 epoch, uint64 confirmer);

    /// @notice The member is active but no longer standing (IMemberStanding): the owner revoked its
    /// device or withdrew its compose hash or KMS root, so it may neither commit nor confirm a key.
    /// @param memberId The member.
    /// @param standing Why it is not standing.
    error CskMemberNotStanding(uint64 memberId, IMemberStanding.Standing standing);

    /// @notice The epoch may not be re-opened by a member yet.
    /// @param epoch The epoch.
    /// @param reopenableAt When it may be (its commitment time plus `CSK_REOPEN_DELAY`).
    error CskReopenTooEarly(uint64 epoch, uint40 reopenableAt);

    /// @notice A new epoch opened; its CSK must be generated afresh.
    /// @param epoch The new epoch.
    /// @param causeMemberId The member whose departure opened it, the committer of the epoch members
    /// re-opened, or 0 (the first epoch, or one the owner opened).
    event CskEpochOpened(uint64 indexed epoch, uint64 indexed causeMemberId);

    /// @notice A member other than the committer confirmed holding an epoch's key (the first one only).
    /// @param epoch The epoch.
    /// @param memberId The confirming member.
    event CskConfirmed(uint64 indexed epoch, uint64 indexed memberId);

    /// @notice An epoch was abandoned for a new one (a `CskEpochOpened` for the next epoch follows).
    /// @param epoch The abandoned epoch.
    /// @param reopenedBy The member that re-opened it, or 0 when the owner opened a new epoch.
    /// @param committer The abandoned epoch's committer (0 if it was uncommitted); when a member
    /// re-opened it, this member may not commit the next epoch.
    event CskEpochReopened(uint64 indexed epoch, uint64 indexed reopenedBy, uint64 committer);

    /// @notice An epoch's CSK was committed.
    /// @param epoch The epoch.
    /// @param memberId The member that committed.
    /// @param commitment keccak256 of the 32-byte CSK.
    event CskCommitted(uint64 indexed epoch, uint64 indexed memberId, bytes32 commitment);

    /// @notice Commit the current epoch's CSK; the member key signs `CommitCsk(memberId, epoch, commitment)`.
    /// @dev Reverts `CskCommitterBarred` for the committer of the epoch members re-opened just before.
    /// @param memberId The committing member (must be active).
    /// @param epoch The current epoch.
    /// @param commitment keccak256 of the CSK.
    /// @param signature The member key's EIP-712 signature.
    function commitCsk(uint64 memberId, uint64 epoch, bytes32 commitment, bytes calldata signature) external;

    /// @notice Confirm holding the current epoch's key, pulled and checked against `commitment`; the
    /// member key signs `ConfirmCsk(memberId, epoch, commitment)`. Only the first confirmation is
    /// recorded; later valid ones change nothing.
    /// @param memberId The confirming member (active, not the committer).
    /// @param epoch The current epoch.
    /// @param commitment The epoch's commitment.
    /// @param signature The member key's EIP-712 signature.
    function confirmCsk(uint64 memberId, uint64 epoch, bytes32 commitment, bytes calldata signature) external;

    /// @notice Abandon the current epoch, committed at least `CSK_REOPEN_DELAY` ago and confirmed by
    /// nobody, for a new one its committer may not commit; the member key signs `ReopenCsk(memberId, epoch)`.
    /// @param memberId The re-opening member (active, not the committer).
    /// @param epoch The current epoch.
    /// @param signature The member key's EIP-712 signature.
    function reopenCsk(uint64 memberId, uint64 epoch, bytes calldata signature) external;

    /// @notice Abandon the current epoch for a new one, committed or not. Owner only.
    function openCskEpoch() external;

    /// @notice How long after its commitment an unconfirmed epoch may be re-opened by a member.
    function cskReopenDelay() external pure returns (uint40);

    /// @notice The current epoch's recovery state.
    /// @return epoch The current epoch.
    /// @return confirmer The member that confirmed it, 0 if none.
    /// @return barredCommitter The member barred from committing it, 0 if none.
    /// @return reopenableAt When a member may re-open it; 0 while uncommitted or once confirmed.
    function cskRecovery()
        external
        view
        returns (uint64 epoch, uint64 confirmer, uint64 barredCommitter, uint40 reopenableAt);

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
