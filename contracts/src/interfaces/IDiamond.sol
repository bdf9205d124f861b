// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @title What the diamond itself can revert with, before any facet runs
interface IDiamond {
    /// @notice The constructor was given the zero address as owner.
    error OwnerIsZero();

    /// @notice No facet is registered for the called selector.
    /// @param selector The selector of the call, zero-padded when the calldata is shorter than four bytes.
    error FunctionNotFound(bytes4 selector);

    /// @notice The call carried ETH.
    /// @param value The wei sent.
    error EtherNotAccepted(uint256 value);
}
