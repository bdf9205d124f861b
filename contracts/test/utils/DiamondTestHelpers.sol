// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {LibDiamond} from "../../src/libraries/LibDiamond.sol";

/// @title EchoFacet
/// @notice Test facet that serves any selector and answers `abi.encode(tag, msg.sig)`, so a test can see which
/// facet a call was routed to.
/// @dev The tag is an immutable because a facet runs on the diamond's storage, where its own would not be found.
contract EchoFacet {
    uint256 private immutable TAG;

    constructor(uint256 tag) {
        TAG = tag;
    }

    fallback(bytes calldata) external returns (bytes memory) {
        return abi.encode(TAG, msg.sig);
    }
}

/// @title TestDiamondInit
/// @notice Test-only cut initializer; the cluster's real initializer lives in `contracts/src/init`.
contract TestDiamondInit {
    /// @notice Raised on purpose to check that a cut bubbles up its initializer's revert data unchanged.
    /// @param code A value the test chooses.
    error InitRejected(uint256 code);

    /// @notice Sets the ERC-165 answer for each of `interfaceIds`.
    function setSupportedInterfaces(bytes4[] calldata interfaceIds, bool supported) external {
        for (uint256 i; i < interfaceIds.length; ++i) {
            LibDiamond.setSupportedInterface(interfaceIds[i], supported);
        }
    }

    /// @notice Reverts `InitRejected(code)`.
    function rejectWith(uint256 code) external pure {
        revert InitRejected(code);
    }

    /// @notice Reverts with no data.
    function rejectSilently() external pure {
        revert();
    }
}
