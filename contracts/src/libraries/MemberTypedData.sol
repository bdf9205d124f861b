// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {MessageHashUtils} from "@openzeppelin/contracts/utils/cryptography/MessageHashUtils.sol";

/// @title EIP-712 typed data signed by a member key
/// @notice Every member action is authorized by the member key's signature, not by msg.sender, so any
/// relayer (or a sponsored account) can pay the gas. The domain binds each signature to one chain
/// and one cluster diamond.
library MemberTypedData {
    string internal constant NAME = "attestmesh";
    string internal constant VERSION = "1";

    bytes32 internal constant DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
    bytes32 internal constant REGISTER_TYPEHASH =
        keccak256(
        "Register(address appId,bytes32 wireguardKey,bytes32 identityKey,bytes32 composeHash,bytes32 deviceId,uint64 nonce)"
    );
    bytes32 internal constant LEAVE_TYPEHASH = keccak256("Leave(uint64 memberId)");
    bytes32 internal constant COMMIT_CSK_TYPEHASH =
        keccak256("CommitCsk(uint64 memberId,uint64 epoch,bytes32 commitment)");
    bytes32 internal constant CONFIRM_CSK_TYPEHASH =
        keccak256("ConfirmCsk(uint64 memberId,uint64 epoch,bytes32 commitment)");
    bytes32 internal constant REOPEN_CSK_TYPEHASH = keccak256("ReopenCsk(uint64 memberId,uint64 epoch)");
    bytes32 internal constant SEND_TYPEHASH =
        keccak256("Send(uint64 senderId,uint64 recipientId,bytes32 envelopeId,bytes32 ciphertextHash)");

    /// @notice The domain separator of this diamond on this chain. Computed per call: a facet runs by
    /// delegatecall, so only `address(this)` at run time is the diamond.
    function domainSeparator() internal view returns (bytes32) {
        return keccak256(
            abi.encode(DOMAIN_TYPEHASH, keccak256(bytes(NAME)), keccak256(bytes(VERSION)), block.chainid, address(this))
        );
    }

    function registerDigest(
        address appId,
        bytes32 wireguardKey,
        bytes32 identityKey,
        bytes32 composeHash,
        bytes32 deviceId,
        uint64 nonce
    ) internal view returns (bytes32) {
        return _digest(
            keccak256(abi.encode(REGISTER_TYPEHASH, appId, wireguardKey, identityKey, composeHash, deviceId, nonce))
        );
    }

    function leaveDigest(uint64 memberId) internal view returns (bytes32) {
        return _digest(keccak256(abi.encode(LEAVE_TYPEHASH, memberId)));
    }

    function commitCskDigest(uint64 memberId, uint64 epoch, bytes32 commitment) internal view returns (bytes32) {
        return _digest(keccak256(abi.encode(COMMIT_CSK_TYPEHASH, memberId, epoch, commitment)));
    }

    function confirmCskDigest(uint64 memberId, uint64 epoch, bytes32 commitment) internal view returns (bytes32) {
        return _digest(keccak256(abi.encode(CONFIRM_CSK_TYPEHASH, memberId, epoch, commitment)));
    }

    function reopenCskDigest(uint64 memberId, uint64 epoch) internal view returns (bytes32) {
        return _digest(keccak256(abi.encode(REOPEN_CSK_TYPEHASH, memberId, epoch)));
    }

    function sendDigest(uint64 senderId, uint64 recipientId, bytes32 envelopeId, bytes32 ciphertextHash)
        internal
        view
        returns (bytes32)
    {
        return _digest(keccak256(abi.encode(SEND_TYPEHASH, senderId, recipientId, envelopeId, ciphertextHash)));
    }

    function _digest(bytes32 structHash) private view returns (bytes32) {
        return MessageHashUtils.toTypedDataHash(domainSeparator(), structHash);
    }
}
