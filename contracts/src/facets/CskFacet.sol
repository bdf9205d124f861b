// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {ICsk} from "../interfaces/ICsk.sol";
import {LibMembership} from "../libraries/LibMembership.sol";
import {MemberTypedData} from "../libraries/MemberTypedData.sol";
import {CskStorage} from "../storage/CskStorage.sol";

/// @title CSK facet: one commitment per epoch
contract CskFacet is ICsk {
    /// @inheritdoc ICsk
    function commitCsk(uint64 memberId, uint64 epoch, bytes32 commitment, bytes calldata signature) external {
        CskStorage.Layout storage l = CskStorage.load();
        uint64 current = l.currentEpoch;
        if (epoch != current) revert CskEpochMismatch(current, epoch);
        if (commitment == bytes32(0)) revert CskCommitmentZero();
        CskStorage.Epoch storage e = l.epochs[epoch];
        if (e.commitment != bytes32(0)) revert CskAlreadyCommitted(epoch, e.commitment);
        LibMembership.authorize(memberId, MemberTypedData.commitCskDigest(memberId, epoch, commitment), signature);
        e.commitment = commitment;
        e.committer = memberId;
        e.committedAt = uint40(block.timestamp);
        emit CskCommitted(epoch, memberId, commitment);
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
}
