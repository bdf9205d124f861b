// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {SIG_VALIDATION_FAILED, SIG_VALIDATION_SUCCESS} from "@account-abstraction/contracts/core/Helpers.sol";
import {PackedUserOperation} from "@account-abstraction/contracts/interfaces/PackedUserOperation.sol";
import {Clones} from "@openzeppelin/contracts/proxy/Clones.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {MessageHashUtils} from "@openzeppelin/contracts/utils/cryptography/MessageHashUtils.sol";
import {IMemberAccount} from "../interfaces/IMemberAccount.sol";

/// @title A node's ERC-4337 account (the implementation every clone runs)
/// @notice Deployed by `MemberAccountFactory` as a minimal clone whose immutable argument is the member
/// key, so it has no storage and no initializer to front-run. The EntryPoint and the cluster are this
/// implementation's immutables: one implementation per cluster.
contract MemberAccount is IMemberAccount {
    address private immutable _ENTRY_POINT;
    address private immutable _CLUSTER;

    constructor(address entryPoint_, address cluster_) {
        _ENTRY_POINT = entryPoint_;
        _CLUSTER = cluster_;
    }

    function _requireFromEntryPoint() private view {
        if (msg.sender != _ENTRY_POINT) revert NotEntryPoint(msg.sender);
    }

    /// @inheritdoc IMemberAccount
    function execute(address target, uint256 value, bytes calldata data) external returns (bytes memory result) {
        _requireFromEntryPoint();
        if (target != _CLUSTER) revert TargetNotCluster(target);
        if (value != 0) revert ValueNotZero(value);
        bool ok;
        (ok, result) = _CLUSTER.call(data);
        if (!ok) {
            // Re-throw the cluster's custom error unchanged so the sidecar can decode it.
            assembly ("memory-safe") {
                revert(add(result, 0x20), mload(result))
            }
        }
    }

    /// @notice Checks the member key signed the operation hash (EIP-191, so no operation signature can
    /// double as a signature over the member key's EIP-712 cluster messages), then pays any prefund the
    /// EntryPoint asks for (zero when a paymaster sponsors the operation).
    /// @dev A wrong signature returns SIG_VALIDATION_FAILED rather than reverting, as ERC-4337 asks, so
    /// gas estimation with a stub signature works.
    function validateUserOp(PackedUserOperation calldata userOp, bytes32 userOpHash, uint256 missingAccountFunds)
        external
        returns (uint256 validationData)
    {
        _requireFromEntryPoint();
        (address signer, ECDSA.RecoverError recoverError,) =
            ECDSA.tryRecover(MessageHashUtils.toEthSignedMessageHash(userOpHash), userOp.signature);
        validationData =
            recoverError == ECDSA.RecoverError.NoError && signer == owner() ? SIG_VALIDATION_SUCCESS : SIG_VALIDATION_FAILED;
        if (missingAccountFunds != 0) {
            (bool paid,) = payable(msg.sender).call{value: missingAccountFunds}("");
            if (!paid) revert PrefundFailed(missingAccountFunds);
        }
    }

    /// @inheritdoc IMemberAccount
    function owner() public view returns (address) {
        return address(bytes20(Clones.fetchCloneArgs(address(this))));
    }

    /// @inheritdoc IMemberAccount
    function cluster() external view returns (address) {
        return _CLUSTER;
    }

    /// @inheritdoc IMemberAccount
    function entryPoint() external view returns (address) {
        return _ENTRY_POINT;
    }
}
