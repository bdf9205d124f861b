// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IDstackAttestor} from "../interfaces/IDstackAttestor.sol";
import {Secp256k1} from "./Secp256k1.sol";

/// @title dstack KMS signature chains
/// @notice The messages dstack signs, rebuilt byte for byte, and the chain check on top of them, for
/// both guest APIs: v0 (link 0 signs `purpose:hex(key)`) and v1 (link 0 signs a length-prefixed claim
/// over the raw key). Link 1, the KMS signature over the app key, is the same in both.
library DstackKeyChain {
    /// @notice The guest API of dstack up to 0.5 (and the frozen `/` and `/v0` surface of 0.6).
    uint8 internal constant GUEST_API_V0 = 0;
    /// @notice dstack 0.6's versioned guest API (`/v1/GetKey`).
    uint8 internal constant GUEST_API_V1 = 1;

    /// @notice Revert `UnsupportedGuestApiVersion` unless `guestApiVersion` is 0 or 1.
    function requireKnownGuestApi(uint8 guestApiVersion) internal pure {
        if (guestApiVersion > GUEST_API_V1) revert IDstackAttestor.UnsupportedGuestApiVersion(guestApiVersion);
    }

    /// @notice Verify a chain under the guest API `guestApiVersion` names, with its context (the v0
    /// purpose or the v1 domain); see IDstackAttestor.verifyDstackKeyChain and verifyDstackKeyChainV1
    /// for the exact semantics.
    /// @dev Checks run in a fixed order so the off-chain verifier reports the same error for the same
    /// input: guest API, lengths, app key, derived key encoding, app signature, KMS signature.
    function verify(
        uint8 guestApiVersion,
        address appId,
        bytes memory context,
        bytes calldata derivedPubkey,
        bytes calldata appPubkey,
        bytes calldata appSignature,
        bytes calldata kmsSignature
    ) internal view returns (address kmsSigner) {
        address appKeyAddress =
            _checkedAppKey(guestApiVersion, derivedPubkey.length, appPubkey, appSignature, kmsSignature);
        bytes32 digest = _checkedHash(guestApiVersion, context, derivedPubkey);
        return _verifySignatures(appId, digest, appKeyAddress, appPubkey, appSignature, kmsSignature);
    }

    /// @notice `verify` for a 32-byte (Ed25519) derived key held as a word.
    function verifyEd25519(
        uint8 guestApiVersion,
        address appId,
        bytes memory context,
        bytes32 derivedPubkey,
        bytes calldata appPubkey,
        bytes calldata appSignature,
        bytes calldata kmsSignature
    ) internal view returns (address kmsSigner) {
        address appKeyAddress = _checkedAppKey(guestApiVersion, 32, appPubkey, appSignature, kmsSignature);
        bytes32 digest = guestApiVersion == GUEST_API_V0
            ? _appMessageHash(context, uint256(derivedPubkey), false, 0)
            : _keyClaimHash(context, uint256(derivedPubkey), false, 0);
        return _verifySignatures(appId, digest, appKeyAddress, appPubkey, appSignature, kmsSignature);
    }

    /// @notice keccak256(LP("dstack-guest-v1-key-claim") || LP(algorithm) || LP(domain) || LP(key)), the
    /// message an app key signs in guest API v1; LP(x) = uint32_be(len(x)) || x, and the algorithm is
    /// "secp256k1" for a 33-byte key, "ed25519" for a 32-byte one.
    /// @dev Expects a 32- or 33-byte key.
    function keyClaimHash(bytes memory domain, bytes calldata derivedPubkey) internal pure returns (bytes32) {
        (uint256 head, uint256 tail) = _words(derivedPubkey);
        return _keyClaimHash(domain, head, derivedPubkey.length == 33, tail);
    }

    /// @notice keccak256(purpose || ":" || lowercasehex(derivedPubkey)), the message an app key signs.
    /// @dev Expects a 32- or 33-byte key.
    function appMessageHash(bytes memory purpose, bytes calldata derivedPubkey) internal pure returns (bytes32) {
        (uint256 head, uint256 tail) = _words(derivedPubkey);
        return _appMessageHash(purpose, head, derivedPubkey.length == 33, tail);
    }

    /// @notice keccak256("dstack-kms-issued:" || appId || appPubkey), the message a KMS root signs.
    function kmsMessageHash(address appId, bytes calldata appPubkey) internal pure returns (bytes32 h) {
        assembly ("memory-safe") {
            let m := mload(0x40)
            mstore(m, "dstack-kms-issued:")
            mstore(add(m, 18), shl(96, appId))
            calldatacopy(add(m, 38), appPubkey.offset, 33)
            h := keccak256(m, 71)
        }
    }

    /// @dev The guest API, the lengths (a secp256k1 or Ed25519 derived key; a 33-byte app key; 65-byte
    /// signatures), then the app key's address: every check that comes before the derived key's encoding.
    function _checkedAppKey(
        uint8 guestApiVersion,
        uint256 derivedLength,
        bytes calldata appPubkey,
        bytes calldata appSignature,
        bytes calldata kmsSignature
    ) private view returns (address) {
        requireKnownGuestApi(guestApiVersion);
        if (derivedLength != 33 && derivedLength != 32) revert IDstackAttestor.InvalidPublicKeyLength(derivedLength);
        if (appPubkey.length != 33) revert IDstackAttestor.InvalidPublicKeyLength(appPubkey.length);
        if (appSignature.length != 65) revert IDstackAttestor.InvalidSignatureLength(appSignature.length);
        if (kmsSignature.length != 65) revert IDstackAttestor.InvalidSignatureLength(kmsSignature.length);
        return Secp256k1.compressedToAddress(appPubkey);
    }

    /// @dev The message link 0 signs under the guest API, after checking a 33-byte key's prefix and range.
    function _checkedHash(uint8 guestApiVersion, bytes memory context, bytes calldata derivedPubkey)
        private
        pure
        returns (bytes32)
    {
        (uint256 head, uint256 tail) = _words(derivedPubkey);
        bool compressed = derivedPubkey.length == 33;
        if (compressed) Secp256k1.checkCompressed(uint8(head >> 248), (head << 8) | tail);
        if (guestApiVersion == GUEST_API_V0) {
            return _appMessageHash(context, head, compressed, tail);
        }
        return _keyClaimHash(context, head, compressed, tail);
    }

    /// @dev The v1 claim, written straight into free memory. Every field is length-prefixed, so the
    /// claim parses one way only; and its last 36 or 37 bytes hold the key's length prefix (three zero
    /// bytes), which a v0 message (whose last 64 or 66 bytes are lowercase hex) can never contain.
    function _keyClaimHash(bytes memory domain, uint256 head, bool secp256k1Key, uint256 tail)
        private
        pure
        returns (bytes32 h)
    {
        // The domain's length prefix is 4 bytes: no memory in any block's gas reaches 2^32.
        assembly ("memory-safe") {
            let domainLength := mload(domain)
            let m := mload(0x40)
            // LP("dstack-guest-v1-key-claim"): 25 = 0x19.
            mstore(m, shl(224, 0x19))
            mstore(add(m, 4), "dstack-guest-v1-key-claim")
            let o := add(m, 29)
            switch secp256k1Key
            case 0 {
                mstore(o, shl(224, 7))
                mstore(add(o, 4), "ed25519")
                o := add(o, 11)
            }
            default {
                mstore(o, shl(224, 9))
                mstore(add(o, 4), "secp256k1")
                o := add(o, 13)
            }
            mstore(o, shl(224, domainLength))
            o := add(o, 4)
            mcopy(o, add(domain, 0x20), domainLength)
            o := add(o, domainLength)
            mstore(o, shl(224, add(32, secp256k1Key)))
            mstore(add(o, 4), head)
            o := add(o, 36)
            if secp256k1Key {
                mstore8(o, tail)
                o := add(o, 1)
            }
            h := keccak256(m, sub(o, m))
        }
    }

    function _verifySignatures(
        address appId,
        bytes32 appDigest,
        address appKeyAddress,
        bytes calldata appPubkey,
        bytes calldata appSignature,
        bytes calldata kmsSignature
    ) private view returns (address kmsSigner) {
        address appSigner = Secp256k1.recover(appDigest, appSignature);
        if (appSigner != appKeyAddress) revert IDstackAttestor.AppSignatureMismatch(appKeyAddress, appSigner);
        kmsSigner = Secp256k1.recover(kmsMessageHash(appId, appPubkey), kmsSignature);
    }

    /// @dev The key's first 32 bytes, and its 33rd byte (meaningful only for a 33-byte key; calldata
    /// past the end reads as zero, never out of bounds).
    function _words(bytes calldata key) private pure returns (uint256 head, uint256 tail) {
        assembly ("memory-safe") {
            head := calldataload(key.offset)
            tail := byte(0, calldataload(add(key.offset, 0x20)))
        }
    }

    /// @dev The purpose is copied straight into the message buffer. `head` is the key's first 32 bytes;
    /// a 33-byte key's last byte is `tail`.
    function _appMessageHash(bytes memory purpose, uint256 head, bool hasTail, uint256 tail)
        private
        pure
        returns (bytes32 h)
    {
        assembly ("memory-safe") {
            // Lowercase hex of 16 bytes as one word, with no loop: spread each byte into a 16-bit
            // lane, split lanes into nibbles, then map 0-9 and a-f to ASCII in parallel. No lane can
            // carry into the next, so plain EVM arithmetic is exact.
            function hex16(x) -> r {
                x := and(or(x, shl(64, x)), 0x0000000000000000ffffffffffffffff0000000000000000ffffffffffffffff)
                x := and(or(x, shl(32, x)), 0x00000000ffffffff00000000ffffffff00000000ffffffff00000000ffffffff)
                x := and(or(x, shl(16, x)), 0x0000ffff0000ffff0000ffff0000ffff0000ffff0000ffff0000ffff0000ffff)
                x := and(or(x, shl(8, x)), 0x00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff)
                x := and(or(shl(4, x), x), 0x0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f)
                // Nibbles >= 10 gain bit 4 when 6 is added; those need 0x27 more to land on 'a'.
                let letters := and(
                    shr(4, add(x, 0x0606060606060606060606060606060606060606060606060606060606060606)),
                    0x0101010101010101010101010101010101010101010101010101010101010101
                )
                r := add(add(x, 0x3030303030303030303030303030303030303030303030303030303030303030), mul(letters, 0x27))
            }
            let purposeLength := mload(purpose)
            let m := mload(0x40)
            mcopy(m, add(purpose, 0x20), purposeLength)
            let o := add(m, purposeLength)
            mstore8(o, 0x3a) // ":"
            mstore(add(o, 0x01), hex16(shr(128, head)))
            mstore(add(o, 0x21), hex16(and(head, 0xffffffffffffffffffffffffffffffff)))
            let length := add(purposeLength, 0x41)
            if hasTail {
                // The 33rd byte as two hex digits: table lookup in scratch space.
                mstore(0x0f, 0x30313233343536373839616263646566)
                mstore8(add(o, 0x41), mload(shr(4, tail)))
                mstore8(add(o, 0x42), mload(and(tail, 0x0f)))
                length := add(length, 2)
            }
            h := keccak256(m, length)
        }
    }
}
