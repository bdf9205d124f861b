// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {Clones} from "@openzeppelin/contracts/proxy/Clones.sol";
import {IMemberAccountFactory} from "../interfaces/IMemberAccountFactory.sol";
import {MemberAccount} from "./MemberAccount.sol";

/// @title Factory of per-node ERC-4337 accounts for one cluster
contract MemberAccountFactory is IMemberAccountFactory {
    address private immutable _IMPLEMENTATION;

    constructor(address entryPoint, address cluster) {
        _IMPLEMENTATION = address(new MemberAccount(entryPoint, cluster));
    }

    /// @inheritdoc IMemberAccountFactory
    /// @dev Idempotent, as ERC-4337 factories must be: an operation whose initCode races another that
    /// already deployed the account still gets its address.
    function createAccount(address owner) external returns (address account) {
        if (owner == address(0)) revert ZeroOwner();
        account = accountOf(owner);
        if (account.code.length != 0) return account;
        Clones.cloneDeterministicWithImmutableArgs(_IMPLEMENTATION, abi.encodePacked(owner), bytes32(0));
        emit MemberAccountCreated(account, owner);
    }

    /// @inheritdoc IMemberAccountFactory
    function accountOf(address owner) public view returns (address) {
        return Clones.predictDeterministicAddressWithImmutableArgs(
            _IMPLEMENTATION, abi.encodePacked(owner), bytes32(0)
        );
    }

    /// @inheritdoc IMemberAccountFactory
    function accountImplementation() external view returns (address) {
        return _IMPLEMENTATION;
    }
}
