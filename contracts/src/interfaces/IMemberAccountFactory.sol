// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @title Factory of per-node ERC-4337 accounts for one cluster
/// @notice Each member key gets one account per cluster at an address computed from the key alone, so
/// a node knows its account before it exists and its first UserOperation (`initCode` =
/// `createAccount(memberKey)`) deploys it and registers in one go, with no prior funding and no owner
/// action. Anyone may create an account for anyone: it only ever obeys its member key.
interface IMemberAccountFactory {
    /// @notice An account was deployed.
    /// @param account The account address.
    /// @param owner The member key that controls it.
    event MemberAccountCreated(address indexed account, address indexed owner);

    /// @notice The account owner is the zero address.
    error ZeroOwner();

    /// @notice Deploy the account of `owner` (a minimal clone), or return it if it exists.
    /// @param owner The member key's address.
    /// @return account The account address, equal to `accountOf(owner)`.
    function createAccount(address owner) external returns (address account);

    /// @notice Where the account of `owner` lives (deployed or not).
    function accountOf(address owner) external view returns (address);

    /// @notice The implementation every account clones.
    function accountImplementation() external view returns (address);
}
