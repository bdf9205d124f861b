// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IDstackAttestor} from "../interfaces/IDstackAttestor.sol";

/// @title secp256k1 helpers: key decompression and strict signature recovery
/// @notice Everything that parses key or signature bytes reverts with the custom errors of
/// IDstackAttestor, so callers see one vocabulary for malformed input.
library Secp256k1 {
    uint256 internal constant P = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFFC2F;
    uint256 internal constant N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141;
    uint256 internal constant HALF_N = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0;
    // p ≡ 3 (mod 4), so a square root of a is a^((p+1)/4) when one exists.
    uint256 private constant SQRT_EXPONENT = (P + 1) / 4;

    /// @notice Split a 33-byte compressed key into prefix and x, checking length, prefix and range.
    function parseCompressed(bytes calldata key) internal pure returns (uint8 prefix, uint256 x) {
        if (key.length != 33) revert IDstackAttestor.InvalidPublicKeyLength(key.length);
        assembly ("memory-safe") {
            let head := calldataload(key.offset)
            prefix := byte(0, head)
            x := or(shl(8, head), byte(0, calldataload(add(key.offset, 0x20))))
        }
        checkCompressed(prefix, x);
    }

    /// @notice Check the prefix and range of a compressed key (not its curve membership).
    function checkCompressed(uint8 prefix, uint256 x) internal pure {
        if (prefix != 2 && prefix != 3) revert IDstackAttestor.InvalidPublicKeyPrefix(prefix);
        if (x >= P) revert IDstackAttestor.PublicKeyNotOnCurve(x);
    }

    /// @notice The y coordinate of the curve point with this x and y-parity prefix.
    /// @dev One modexp: the candidate root is squared back to prove x is on the curve.
    function decompress(uint8 prefix, uint256 x) internal view returns (uint256 y) {
        uint256 rhs = addmod(mulmod(mulmod(x, x, P), x, P), 7, P);
        y = _modexp(rhs, SQRT_EXPONENT, P);
        if (mulmod(y, y, P) != rhs) revert IDstackAttestor.PublicKeyNotOnCurve(x);
        if (y & 1 != prefix & 1) y = P - y;
    }

    /// @notice The Ethereum address of a 33-byte compressed key.
    function compressedToAddress(bytes calldata key) internal view returns (address) {
        (uint8 prefix, uint256 x) = parseCompressed(key);
        return toAddress(x, decompress(prefix, x));
    }

    /// @notice The Ethereum address of the point (x, y).
    function toAddress(uint256 x, uint256 y) internal pure returns (address a) {
        assembly ("memory-safe") {
            mstore(0x00, x)
            mstore(0x20, y)
            a := and(keccak256(0x00, 0x40), 0xffffffffffffffffffffffffffffffffffffffff)
        }
    }

    /// @notice Recover the signer of `digest` from a 65-byte r||s||v signature.
    /// @dev v may be 0/1 (dstack, raw secp256k1) or 27/28 (Ethereum). High-s is refused so that a
    /// signature has exactly one encoding.
    function recover(bytes32 digest, bytes calldata signature) internal view returns (address signer) {
        if (signature.length != 65) revert IDstackAttestor.InvalidSignatureLength(signature.length);
        uint256 r;
        uint256 s;
        uint8 v;
        assembly ("memory-safe") {
            r := calldataload(signature.offset)
            s := calldataload(add(signature.offset, 0x20))
            v := byte(0, calldataload(add(signature.offset, 0x40)))
        }
        // v in {0, 1, 27, 28} maps to 27 or 28; anything else to a value that fails the check below.
        uint256 ethV;
        unchecked {
            ethV = v < 27 ? uint256(v) + 27 : v;
            if (ethV - 27 > 1) revert IDstackAttestor.InvalidSignatureV(v);
            // r - 1 wraps for r == 0, so one comparison refuses both r == 0 and r >= n.
            if (r - 1 >= N - 1) revert IDstackAttestor.InvalidSignatureR(r);
        }
        if (s == 0) revert IDstackAttestor.InvalidSignatureS(s);
        if (s > HALF_N) revert IDstackAttestor.SignatureMalleable(s);
        // The precompile directly: the `ecrecover` builtin allocates memory per call.
        assembly ("memory-safe") {
            let m := mload(0x40)
            mstore(m, digest)
            mstore(add(m, 0x20), ethV)
            mstore(add(m, 0x40), r)
            mstore(add(m, 0x60), s)
            mstore(0x00, 0)
            pop(staticcall(gas(), 0x01, m, 0x80, 0x00, 0x20))
            signer := mload(0x00)
        }
        if (signer == address(0)) revert IDstackAttestor.SignatureRecoveryFailed();
    }

    function _modexp(uint256 base, uint256 exponent, uint256 modulus) private view returns (uint256 result) {
        assembly ("memory-safe") {
            let m := mload(0x40)
            mstore(m, 0x20)
            mstore(add(m, 0x20), 0x20)
            mstore(add(m, 0x40), 0x20)
            mstore(add(m, 0x60), base)
            mstore(add(m, 0x80), exponent)
            mstore(add(m, 0xa0), modulus)
            // The precompile fails only when out of gas; propagate that as the out-of-gas it is.
            if iszero(staticcall(gas(), 0x05, m, 0xc0, m, 0x20)) { invalid() }
            result := mload(m)
        }
    }
}
