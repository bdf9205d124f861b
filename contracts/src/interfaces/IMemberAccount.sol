// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IAccount} from "@account-abstraction/contracts/interfaces/IAccount.sol";

/// @title A node's ERC-4337 account
/// @notice The address a node's sponsored operations come from. It is owned by the node's TEE-derived
/// secp256k1 member key and can do exactly one thing: call its cluster, with zero value, from the
/// EntryPoint. It holds no authority of its own: every cluster function still checks the member key's
/// EIP-712 signature, so the account only decides who may spend gas through it.
interface IMemberAccount is IAccount {
    /// @notice A call came from somewhere other than the EntryPoint.
    /// @param caller The caller.
    error NotEntryPoint(address caller);

    /// @notice Paying the EntryPoint the operation's missing prefund failed.
    /// @param amount The amount the EntryPoint asked for.
    error PrefundFailed(uint256 amount);

    /// @notice The operation asked to call a contract other than the cluster.
    /// @param target The contract asked for.
    error TargetNotCluster(address target);

    /// @notice The operation asked to send value; the account never moves funds.
    /// @param value The value asked for.
    error ValueNotZero(uint256 value);

    /// @notice Call the cluster with `data` and zero value; a revert of the cluster is re-thrown as is.
    /// EntryPoint only. The parameters have the common `execute(to, value, data)` shape so wallets and
    /// the sponsorship policy read it as any account call; anything but (cluster, 0) reverts.
    /// @param target Must be the cluster.
    /// @param value Must be zero.
    /// @param data The calldata for the cluster (a member action signed by the member key).
    /// @return result What the cluster returned.
    function execute(address target, uint256 value, bytes calldata data) external returns (bytes memory result);

    /// @notice The member key that signs this account's operations.
    function owner() external view returns (address);

    /// @notice The only contract this account calls.
    function cluster() external view returns (address);

    /// @notice The EntryPoint this account trusts.
    function entryPoint() external view returns (address);
}
