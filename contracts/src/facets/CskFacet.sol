// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {ICsk} from "../interfaces/ICsk.sol";
import {IMemberStanding} from "../interfaces/IMemberStanding.sol";
import {LibCsk} from "../libraries/LibCsk.sol";
import {LibMemberClaims} from "../libraries/LibMemberClaims.sol";
import {LibMembership} from "../libraries/LibMembership.sol";
import {LibOwnership} from "../libraries/LibOwnership.sol";
import {MemberTypedData} from "../libraries/MemberTypedData.sol";
import {CskStorage} from "../storage/CskStorage.sol";
import {MembershipStorage} from "../storage/MembershipStorage.sol";

/// @title CSK facet: one commitment per epoch, and the way out of a commitment nobody can open
contract CskFacet is ICsk {
    // Long enough for every live member to pull, check and confirm an honest key (seconds, normally);
    // short enough that a member committing to nothing stalls the cluster for minutes, not hours.
    uint40 internal constant CSK_REOPEN_DELAY = 5 minutes;

    /// @inheritdoc ICsk
    function commitCsk(uint64 memberId, uint64 epoch, bytes32 commitment, bytes calldata signature) external {
        CskStorage.Layout storage l = CskStorage.load();
        uint64 current = l.currentEpoch;
        if (epoch != current) revert CskEpochMismatch(current, epoch);
        if (commitment == bytes32(0)) revert CskCommitmentZero();
        CskStorage.Epoch storage e = l.epochs[epoch];
        if (e.commitment != bytes32(0)) revert CskAlreadyCommitted(epoch, e.commitment);
        uint64 barred = l.barredCommitter;
        if (barred != 0 && memberId == barred) revert CskCommitterBarred(epoch, memberId);
        _enforceStanding(
            memberId,
            LibMembership.authorize(memberId, MemberTypedData.commitCskDigest(memberId, epoch, commitment), signature)
        );
        e.commitment = commitment;
        e.committer = memberId;
        e.committedAt = uint40(block.timestamp);
        emit CskCommitted(epoch, memberId, commitment);
    }

    /// @inheritdoc ICsk
    function confirmCsk(uint64 memberId, uint64 epoch, bytes32 commitment, bytes calldata signature) external {
        CskStorage.Epoch storage e = _committedCurrent(epoch, memberId);
        if (commitment != e.commitment) revert CskCommitmentMismatch(epoch, e.commitment, commitment);
        _enforceStanding(
            memberId,
            LibMembership.authorize(memberId, MemberTypedData.confirmCskDigest(memberId, epoch, commitment), signature)
        );
        if (e.confirmer != 0) return;
        e.confirmer = memberId;
        emit CskConfirmed(epoch, memberId);
    }

    /// @inheritdoc ICsk
    function reopenCsk(uint64 memberId, uint64 epoch, bytes calldata signature) external {
        CskStorage.Epoch storage e = _committedCurrent(epoch, memberId);
        uint64 confirmer = e.confirmer;
        if (confirmer != 0) revert CskAlreadyConfirmed(epoch, confirmer);
        uint40 reopenableAt = e.committedAt + CSK_REOPEN_DELAY;
        if (block.timestamp < reopenableAt) revert CskReopenTooEarly(epoch, reopenableAt);
        LibMembership.authorize(memberId, MemberTypedData.reopenCskDigest(memberId, epoch), signature);
        uint64 committer = e.committer;
        emit CskEpochReopened(epoch, memberId, committer);
        LibCsk.openEpoch(committer, committer);
    }

    /// @inheritdoc ICsk
    function openCskEpoch() external {
        LibOwnership.enforceIsOwner();
        LibCsk.ownerReopen();
    }

    /// @inheritdoc ICsk
    function cskReopenDelay() external pure returns (uint40) {
        return CSK_REOPEN_DELAY;
    }

    /// @inheritdoc ICsk
    function cskRecovery()
        external
        view
        returns (uint64 epoch, uint64 confirmer, uint64 barredCommitter, uint40 reopenableAt)
    {
        CskStorage.Layout storage l = CskStorage.load();
        epoch = l.currentEpoch;
        barredCommitter = l.barredCommitter;
        CskStorage.Epoch storage e = l.epochs[epoch];
        confirmer = e.confirmer;
        if (e.commitment != bytes32(0) && confirmer == 0) reopenableAt = e.committedAt + CSK_REOPEN_DELAY;
    }

    /// @inheritdoc ICsk
    function currentCsk()
        external
        view
        returns (uint64 epoch, bytes32 commitment, uint64 committer, uint40 openedAt, uint40 committedAt)
    {
        CskStorage.Layout storage l = CskStorage.load();
        epoch = l.currentEpoch;
        CskStorage.Epoch storage e = l.epochs[epoch];
        return (epoch, e.commitment, e.committer, e.openedAt, e.committedAt);
    }

    /// @inheritdoc ICsk
    function cskEpoch(uint64 epoch)
        external
        view
        returns (bytes32 commitment, uint64 committer, uint40 openedAt, uint40 committedAt)
    {
        CskStorage.Epoch storage e = CskStorage.load().epochs[epoch];
        return (e.commitment, e.committer, e.openedAt, e.committedAt);
    }

    /// @dev A member the owner's revocation reached (device revoked, compose hash or KMS root withdrawn)
    /// may neither make nor vouch for the key of an epoch that revocation opened.
    function _enforceStanding(uint64 memberId, MembershipStorage.Member storage m) private view {
        IMemberStanding.Standing standing = LibMemberClaims.standing(m);
        if (uint8(standing) > uint8(IMemberStanding.Standing.Unrecorded)) revert CskMemberNotStanding(memberId, standing);
    }

    /// @dev The current epoch `epoch`, committed, by someone other than `memberId`.
    function _committedCurrent(uint64 epoch, uint64 memberId) private view returns (CskStorage.Epoch storage e) {
        CskStorage.Layout storage l = CskStorage.load();
        uint64 current = l.currentEpoch;
        if (epoch != current) revert CskEpochMismatch(current, epoch);
        e = l.epochs[epoch];
        if (e.commitment == bytes32(0)) revert CskNotCommitted(epoch);
        if (e.committer == memberId) revert CskOwnCommitment(epoch, memberId);
    }
}
