// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {_packValidationData} from "@account-abstraction/contracts/core/Helpers.sol";
import {IEntryPoint} from "@account-abstraction/contracts/interfaces/IEntryPoint.sol";
import {PackedUserOperation} from "@account-abstraction/contracts/interfaces/PackedUserOperation.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {MessageHashUtils} from "@openzeppelin/contracts/utils/cryptography/MessageHashUtils.sol";
import {ISponsorPaymaster} from "../interfaces/ISponsorPaymaster.sol";

/// @title The cluster operator's verifying paymaster
contract SponsorPaymaster is ISponsorPaymaster, Ownable2Step {
    /// @dev paymaster (20) | verificationGasLimit (16) | postOpGasLimit (16)
    uint256 private constant STATIC_FIELDS = 52;
    /// @dev validUntil (6) | validAfter (6) | signature (65)
    uint256 private constant DATA_LENGTH = 12 + 65;
    bytes32 private constant TAG = keccak256("attestmesh-sponsor");

    IEntryPoint private immutable _ENTRY_POINT;
    address private _signer;

    constructor(IEntryPoint entryPoint_, address signer_, address owner_) Ownable(owner_) {
        if (signer_ == address(0)) revert ZeroSigner();
        _ENTRY_POINT = entryPoint_;
        _signer = signer_;
        emit SignerChanged(address(0), signer_);
    }

    function _requireFromEntryPoint() private view {
        if (msg.sender != address(_ENTRY_POINT)) revert NotEntryPoint(msg.sender);
    }

    function _digest(PackedUserOperation calldata userOp, uint48 validUntil, uint48 validAfter)
        private
        view
        returns (bytes32)
    {
        // Hashed in two halves only to stay within the stack limit; every field is bound.
        bytes32 opHash = keccak256(
            abi.encode(
                userOp.sender,
                userOp.nonce,
                keccak256(userOp.initCode),
                keccak256(userOp.callData),
                userOp.accountGasLimits,
                bytes32(userOp.paymasterAndData[20:STATIC_FIELDS]),
                userOp.preVerificationGas,
                userOp.gasFees
            )
        );
        return keccak256(abi.encode(TAG, block.chainid, address(this), opHash, validUntil, validAfter));
    }

    /// @inheritdoc ISponsorPaymaster
    function approvalDigest(PackedUserOperation calldata userOp, uint48 validUntil, uint48 validAfter)
        external
        view
        returns (bytes32)
    {
        uint256 length = userOp.paymasterAndData.length;
        if (length < STATIC_FIELDS) revert InvalidPaymasterDataLength(length);
        return _digest(userOp, validUntil, validAfter);
    }

    /// @notice Sponsors the operation if the signer approved exactly it for a window that includes now.
    /// @dev A wrong signature returns a failed validation (the EntryPoint refuses with AA34) rather than
    /// reverting, as ERC-4337 asks; the EntryPoint enforces the window (AA32). No context: no postOp.
    function validatePaymasterUserOp(PackedUserOperation calldata userOp, bytes32, uint256)
        external
        view
        returns (bytes memory context, uint256 validationData)
    {
        _requireFromEntryPoint();
        bytes calldata data = userOp.paymasterAndData;
        if (data.length != STATIC_FIELDS + DATA_LENGTH) revert InvalidPaymasterDataLength(data.length);
        uint48 validUntil = uint48(bytes6(data[STATIC_FIELDS:STATIC_FIELDS + 6]));
        uint48 validAfter = uint48(bytes6(data[STATIC_FIELDS + 6:STATIC_FIELDS + 12]));
        bytes calldata signature = data[STATIC_FIELDS + 12:];
        (address recovered, ECDSA.RecoverError recoverError,) = ECDSA.tryRecover(
            MessageHashUtils.toEthSignedMessageHash(_digest(userOp, validUntil, validAfter)), signature
        );
        bool failed = recoverError != ECDSA.RecoverError.NoError || recovered != _signer;
        return ("", _packValidationData(failed, validUntil, validAfter));
    }

    /// @inheritdoc ISponsorPaymaster
    function setSigner(address newSigner) external onlyOwner {
        if (newSigner == address(0)) revert ZeroSigner();
        emit SignerChanged(_signer, newSigner);
        _signer = newSigner;
    }

    /// @notice Never called: validation returns no context. Present because IPaymaster requires it.
    function postOp(PostOpMode, bytes calldata, uint256, uint256) external view {
        _requireFromEntryPoint();
    }

    /// @inheritdoc ISponsorPaymaster
    function deposit() external payable {
        _ENTRY_POINT.depositTo{value: msg.value}(address(this));
    }

    /// @inheritdoc ISponsorPaymaster
    function withdrawTo(address payable to, uint256 amount) external onlyOwner {
        _ENTRY_POINT.withdrawTo(to, amount);
    }

    /// @inheritdoc ISponsorPaymaster
    function addStake(uint32 unstakeDelaySec) external payable onlyOwner {
        _ENTRY_POINT.addStake{value: msg.value}(unstakeDelaySec);
    }

    /// @inheritdoc ISponsorPaymaster
    function unlockStake() external onlyOwner {
        _ENTRY_POINT.unlockStake();
    }

    /// @inheritdoc ISponsorPaymaster
    function withdrawStake(address payable to) external onlyOwner {
        _ENTRY_POINT.withdrawStake(to);
    }

    /// @inheritdoc ISponsorPaymaster
    function signer() external view returns (address) {
        return _signer;
    }

    /// @inheritdoc ISponsorPaymaster
    function entryPoint() external view returns (address) {
        return address(_ENTRY_POINT);
    }

    /// @inheritdoc ISponsorPaymaster
    function getDeposit() external view returns (uint256) {
        return _ENTRY_POINT.balanceOf(address(this));
    }
}
