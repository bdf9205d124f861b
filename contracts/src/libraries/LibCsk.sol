// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {ICsk} from "../interfaces/ICsk.sol";
import {CskStorage} from "../storage/CskStorage.sol";

/// @title CSK epoch logic shared by the facets
library LibCsk {
    /// @notice Open epoch 0; called once by the cluster initializer.
    function openFirstEpoch() internal {
        CskStorage.load().epochs[0].openedAt = uint40(block.timestamp);
        emit ICsk.CskEpochOpened(0, 0);
    }

    /// @notice Abandon the current epoch for a new one on the owner's authority: `openCskEpoch`, or a
    /// revocation that can leave running members non-standing (a node compose hash, a device or a KMS
    /// root withdrawn), so the next key is made without them before any eviction.
    function ownerReopen() internal {
        CskStorage.Layout storage l = CskStorage.load();
        uint64 epoch = l.currentEpoch;
        emit ICsk.CskEpochReopened(epoch, 0, l.epochs[epoch].committer);
        openEpoch(0);
    }

    /// @notice Open the next epoch because `causeMemberId` left or was evicted.
    function openEpoch(uint64 causeMemberId) internal {
        openEpoch(causeMemberId, 0);
    }

    /// @notice Open the next epoch, barring `barredCommitter` (0 for nobody) from committing it.
    function openEpoch(uint64 causeMemberId, uint64 barredCommitter) internal {
        CskStorage.Layout storage l = CskStorage.load();
        uint64 epoch = l.currentEpoch + 1;
        l.currentEpoch = epoch;
        l.barredCommitter = barredCommitter;
        l.epochs[epoch].openedAt = uint40(block.timestamp);
        emit ICsk.CskEpochOpened(epoch, causeMemberId);
    }
}
