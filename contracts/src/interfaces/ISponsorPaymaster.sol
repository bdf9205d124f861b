// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IPaymaster} from "@account-abstraction/contracts/interfaces/IPaymaster.sol";
import {PackedUserOperation} from "@account-abstraction/contracts/interfaces/PackedUserOperation.sol";

/// @title A verifying paymaster for the cluster operator
/// @notice Pays for a UserOperation only when the sponsorship service's signer approved that exact
/// operation: `paymasterAndData` is `paymaster (20) | verificationGasLimit (16) | postOpGasLimit (16) |
/// validUntil (6) | validAfter (6) | signature (65)`, and the signer signs (EIP-191) the digest of
/// `approvalDigest`, which binds the chain id, this paymaster, the validity window and every field of
/// the operation except its own signature. Sponsorship is a policy gate, not a security boundary: the
/// cluster checks member signatures on its own.
interface ISponsorPaymaster is IPaymaster {
    /// @notice A call came from somewhere other than the EntryPoint.
    /// @param caller The caller.
    error NotEntryPoint(address caller);

    /// @notice `paymasterAndData` is not `52 + 12 + 65` bytes long.
    /// @param length Its length.
    error InvalidPaymasterDataLength(uint256 length);

    /// @notice The signer is the zero address.
    error ZeroSigner();

    /// @notice The approval signer changed.
    /// @param previous The old signer.
    /// @param current The new signer.
    event SignerChanged(address indexed previous, address indexed current);

    /// @notice Replace the approval signer (rotation or revocation of the sponsorship service). Owner only.
    /// @param newSigner The sponsorship service's new signing address.
    function setSigner(address newSigner) external;

    /// @notice Deposit the sent value at the EntryPoint for this paymaster.
    function deposit() external payable;

    /// @notice Withdraw `amount` of the deposit to `to`. Owner only.
    function withdrawTo(address payable to, uint256 amount) external;

    /// @notice Stake at the EntryPoint (the sent value) with `unstakeDelaySec`. Owner only.
    function addStake(uint32 unstakeDelaySec) external payable;

    /// @notice Start the unstake delay. Owner only.
    function unlockStake() external;

    /// @notice Withdraw the unlocked stake to `to`. Owner only.
    function withdrawStake(address payable to) external;

    /// @notice The address whose approvals this paymaster honours.
    function signer() external view returns (address);

    /// @notice The EntryPoint this paymaster serves.
    function entryPoint() external view returns (address);

    /// @notice This paymaster's deposit at the EntryPoint.
    function getDeposit() external view returns (uint256);

    /// @notice The digest the signer signs (with the EIP-191 prefix) to approve `userOp` for the window:
    /// keccak256 of the ABI encoding of "attestmesh-sponsor", the chain id, this paymaster, the sender,
    /// nonce, keccak256(initCode), keccak256(callData), accountGasLimits, the paymaster gas limits
    /// (`paymasterAndData[20:52]`), preVerificationGas, gasFees, validUntil and validAfter.
    /// @dev `userOp.paymasterAndData` must carry at least the 52-byte paymaster and gas-limit prefix; the
    /// window and signature after it are ignored here.
    function approvalDigest(PackedUserOperation calldata userOp, uint48 validUntil, uint48 validAfter)
        external
        view
        returns (bytes32);
}
