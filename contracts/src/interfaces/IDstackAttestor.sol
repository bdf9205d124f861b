// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @title Verification of dstack KMS signature chains
/// @notice A dstack key chain proves that a key was derived inside a CVM of a given app id, under a
/// KMS root: the KMS root signs the app key, the app key signs the derived key. Verification returns
/// the KMS signer and checks no allowlist; callers decide whether that signer is trusted.
interface IDstackAttestor {
    /// @notice A public key has the wrong length.
    /// @param length The length given.
    error InvalidPublicKeyLength(uint256 length);

    /// @notice A compressed secp256k1 key does not start with 0x02 or 0x03.
    /// @param prefix The first byte given.
    error InvalidPublicKeyPrefix(uint8 prefix);

    /// @notice A compressed secp256k1 key's x is not the x of a curve point (or is not below p).
    /// @param x The x coordinate given.
    error PublicKeyNotOnCurve(uint256 x);

    /// @notice A signature is not 65 bytes.
    /// @param length The length given.
    error InvalidSignatureLength(uint256 length);

    /// @notice A signature's recovery id is not 0, 1, 27 or 28.
    /// @param v The recovery id given.
    error InvalidSignatureV(uint8 v);

    /// @notice A signature's r is 0 or not below the curve order.
    /// @param r The r given.
    error InvalidSignatureR(uint256 r);

    /// @notice A signature's s is 0.
    /// @param s The s given.
    error InvalidSignatureS(uint256 s);

    /// @notice A signature's s is in the upper half of the curve order: the malleable twin of a valid
    /// signature, refused so every signature has exactly one encoding.
    /// @param s The s given.
    error SignatureMalleable(uint256 s);

    /// @notice No signer could be recovered from a well-formed signature.
    error SignatureRecoveryFailed();

    /// @notice The app signature was not made by the app key presented.
    /// @param appKeyAddress The address of the app key presented.
    /// @param recovered The address that did sign.
    error AppSignatureMismatch(address appKeyAddress, address recovered);

    /// @notice A key chain names a guest API this contract does not know.
    /// @param version The version given (0 and 1 are known).
    error UnsupportedGuestApiVersion(uint8 version);

    /// @notice Verify a dstack key chain and return its KMS signer.
    /// @dev The app signature is over `keccak256(purpose || ":" || lowercasehex(derivedPubkey))`, the KMS
    /// signature over `keccak256("dstack-kms-issued:" || appId || appPubkey)`. A 33-byte derived key is
    /// checked for prefix and range; curve membership is checked where it is used as a key.
    /// @param appId The 20-byte dstack app id.
    /// @param purpose The purpose string the key was requested with.
    /// @param derivedPubkey The derived key: 33-byte compressed secp256k1 or 32-byte Ed25519.
    /// @param appPubkey The 33-byte compressed secp256k1 app key.
    /// @param appSignature The app key's signature, 65 bytes r||s||v, v in {0,1,27,28}.
    /// @param kmsSignature The KMS root's signature, 65 bytes r||s||v, v in {0,1,27,28}.
    /// @return kmsSigner The address that signed as KMS root.
    function verifyDstackKeyChain(
        address appId,
        string calldata purpose,
        bytes calldata derivedPubkey,
        bytes calldata appPubkey,
        bytes calldata appSignature,
        bytes calldata kmsSignature
    ) external view returns (address kmsSigner);

    /// @notice Verify a dstack guest API v1 key chain (dstack 0.6, `/v1/GetKey`) and return its KMS signer.
    /// @dev The app signature is over `keccak256(LP("dstack-guest-v1-key-claim") || LP(algorithm) ||
    /// LP(domain) || LP(derivedPubkey))`, with `LP(x) = uint32_be(len(x)) || x` and `algorithm` "secp256k1"
    /// for a 33-byte key, "ed25519" for a 32-byte one; the KMS signature is as in `verifyDstackKeyChain`.
    /// Same checks, same order and same errors as `verifyDstackKeyChain`. A v0 chain never verifies
    /// here and a v1 chain never verifies there: the two signed messages cannot be equal.
    /// @param appId The 20-byte dstack app id.
    /// @param domain The domain the key was requested with (any bytes, possibly empty).
    /// @param derivedPubkey The derived key: 33-byte compressed secp256k1 or 32-byte Ed25519.
    /// @param appPubkey The 33-byte compressed secp256k1 app key.
    /// @param appSignature The app key's signature, 65 bytes r||s||v, v in {0,1,27,28}.
    /// @param kmsSignature The KMS root's signature, 65 bytes r||s||v, v in {0,1,27,28}.
    /// @return kmsSigner The address that signed as KMS root.
    function verifyDstackKeyChainV1(
        address appId,
        bytes calldata domain,
        bytes calldata derivedPubkey,
        bytes calldata appPubkey,
        bytes calldata appSignature,
        bytes calldata kmsSignature
    ) external view returns (address kmsSigner);
}
