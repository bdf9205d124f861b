// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {Test} from "../utils/Test.sol";

/// @title KeyTest
/// @notice Base for tests that sign and compress secp256k1 keys. Everything here is deliberately naive (loops,
/// byte-at-a-time hex, square-and-multiply, Jacobian double-and-add) so that it is an independent reference for the
/// optimized library code. Hardhat's runner does not serve `createWallet`, so public keys are computed here and
/// every one is checked against `vm.addr` before use.
abstract contract KeyTest is Test {
    uint256 internal constant P = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFFC2F;
    uint256 internal constant N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141;
    uint256 internal constant HALF_N = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0;
    uint256 internal constant GX = 0x79BE667EF9DCBBAC55A06295CE870B07029BFCDB2DCE28D959F2815B16F81798;
    uint256 internal constant GY = 0x483ADA7726A3C4655DA4FBFC0E1108A8FD17B448A68554199C47D08FFB10D4B8;

    /// @notice A valid private key from any fuzz input.
    function _key(uint256 seed) internal pure returns (uint256) {
        return bound(seed, 1, N - 1);
    }

    /// @notice The public point of `privateKey`, checked against the runner's address for that key.
    function _publicKey(uint256 privateKey) internal pure returns (uint256 x, uint256 y) {
        (x, y) = _mulG(privateKey);
        address derived = address(uint160(uint256(keccak256(abi.encode(x, y)))));
        vm.assertEq(derived, vm.addr(privateKey), "reference scalar multiplication disagrees with vm.addr");
    }

    /// @notice The 33-byte SEC1 compressed public key of `privateKey`.
    function _compressed(uint256 privateKey) internal pure returns (bytes memory) {
        (uint256 x, uint256 y) = _publicKey(privateKey);
        return _compress(x, y);
    }

    function _compress(uint256 x, uint256 y) internal pure returns (bytes memory) {
        return abi.encodePacked(uint8(2 + (y & 1)), x);
    }

    /// @notice A 65-byte r||s||v signature with Ethereum's v (27/28).
    function _sign(uint256 privateKey, bytes32 digest) internal pure returns (bytes memory) {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(privateKey, digest);
        return abi.encodePacked(r, s, v);
    }

    /// @notice A 65-byte r||s||v signature with dstack's raw recovery id (0/1).
    function _signRaw(uint256 privateKey, bytes32 digest) internal pure returns (bytes memory) {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(privateKey, digest);
        return abi.encodePacked(r, s, v - 27);
    }

    function _sig(uint256 r, uint256 s, uint8 v) internal pure returns (bytes memory) {
        return abi.encodePacked(r, s, v);
    }

    /// @notice Lowercase hex without a 0x prefix, one byte at a time.
    function _hex(bytes memory data) internal pure returns (string memory) {
        bytes memory digits = "0123456789abcdef";
        bytes memory out = new bytes(data.length * 2);
        for (uint256 i; i < data.length; ++i) {
            uint8 b = uint8(data[i]);
            out[2 * i] = digits[b >> 4];
            out[2 * i + 1] = digits[b & 0x0f];
        }
        return string(out);
    }

    /// @notice The message an app key signs, straight from DESIGN.md: keccak256(purpose || ":" || lowercasehex(P)).
    function _appDigest(bytes memory purpose, bytes memory derivedPubkey) internal pure returns (bytes32) {
        return keccak256(abi.encodePacked(purpose, ":", _hex(derivedPubkey)));
    }

    /// @notice The message a KMS root signs: keccak256("dstack-kms-issued:" || appId || appPubkey).
    function _kmsDigest(address appId, bytes memory appPubkey) internal pure returns (bytes32) {
        return keccak256(abi.encodePacked("dstack-kms-issued:", appId, appPubkey));
    }

    /// @notice base^e mod m by square-and-multiply, without the modexp precompile.
    function _powMod(uint256 base, uint256 e, uint256 m) internal pure returns (uint256 result) {
        result = 1;
        base %= m;
        while (e != 0) {
            if (e & 1 == 1) result = mulmod(result, base, m);
            base = mulmod(base, base, m);
            e >>= 1;
        }
    }

    function _curveRhs(uint256 x) internal pure returns (uint256) {
        return addmod(mulmod(mulmod(x, x, P), x, P), 7, P);
    }

    /// @notice Whether x (< p) is the x of a curve point, by Euler's criterion on x^3 + 7.
    function _isOnCurveX(uint256 x) internal pure returns (bool) {
        uint256 rhs = _curveRhs(x);
        return rhs == 0 || _powMod(rhs, (P - 1) / 2, P) == 1;
    }

    /// @notice The first x >= start (mod p) that is not the x of any curve point.
    function _nextOffCurveX(uint256 start) internal pure returns (uint256 x) {
        x = start % P;
        while (_isOnCurveX(x)) x = addmod(x, 1, P);
    }

    /// @notice k·G in affine coordinates, by left-to-right double-and-add in Jacobian coordinates.
    function _mulG(uint256 k) internal pure returns (uint256 x, uint256 y) {
        vm.assertTrue(k != 0 && k < N, "scalar out of range");
        uint256 X;
        uint256 Y;
        uint256 Z; // Z == 0 is the point at infinity.
        for (uint256 i = 256; i > 0; --i) {
            if (Z != 0) (X, Y, Z) = _jDouble(X, Y, Z);
            if ((k >> (i - 1)) & 1 == 1) {
                if (Z == 0) (X, Y, Z) = (GX, GY, 1);
                else (X, Y, Z) = _jAddG(X, Y, Z);
            }
        }
        vm.assertTrue(Z != 0, "kG is the point at infinity");
        uint256 zInv = _powMod(Z, P - 2, P);
        uint256 zInv2 = mulmod(zInv, zInv, P);
        x = mulmod(X, zInv2, P);
        y = mulmod(Y, mulmod(zInv2, zInv, P), P);
    }

    function _sub(uint256 a, uint256 b) private pure returns (uint256) {
        return addmod(a, P - b, P);
    }

    /// @dev dbl-2009-l (a = 0), with locals reused to stay within the stack.
    function _jDouble(uint256 X, uint256 Y, uint256 Z) private pure returns (uint256 x3, uint256 y3, uint256 z3) {
        z3 = mulmod(2, mulmod(Y, Z, P), P);
        uint256 a = mulmod(X, X, P);
        uint256 c = mulmod(Y, Y, P); // B
        uint256 d = addmod(X, c, P);
        c = mulmod(c, c, P); // C = B^2
        d = mulmod(2, _sub(_sub(mulmod(d, d, P), a), c), P);
        a = mulmod(3, a, P); // E
        x3 = _sub(mulmod(a, a, P), mulmod(2, d, P));
        y3 = _sub(mulmod(a, _sub(d, x3), P), mulmod(8, c, P));
    }

    /// @dev madd-2007-bl: (X, Y, Z) + G with G affine; falls back to doubling when the points coincide.
    function _jAddG(uint256 X, uint256 Y, uint256 Z) private pure returns (uint256 x3, uint256 y3, uint256 z3) {
        uint256 t = mulmod(Z, Z, P); // Z1Z1
        uint256 h = _sub(mulmod(GX, t, P), X);
        uint256 r = mulmod(2, _sub(mulmod(GY, mulmod(Z, t, P), P), Y), P);
        if (h == 0) {
            if (r == 0) return _jDouble(X, Y, Z);
            return (0, 0, 0);
        }
        uint256 u = mulmod(h, h, P); // HH
        z3 = _sub(_sub(mulmod(addmod(Z, h, P), addmod(Z, h, P), P), t), u);
        u = mulmod(4, u, P); // I
        t = mulmod(X, u, P); // V
        u = mulmod(h, u, P); // J
        x3 = _sub(_sub(mulmod(r, r, P), u), mulmod(2, t, P));
        y3 = _sub(mulmod(r, _sub(t, x3), P), mulmod(2, mulmod(Y, u, P), P));
    }

    /// @notice `data` with byte `index` xor-ed with a non-zero `mask`.
    function _flipByte(bytes memory data, uint256 index, uint8 mask) internal pure returns (bytes memory out) {
        out = bytes.concat(data);
        out[index] = bytes1(uint8(out[index]) ^ mask);
    }

    /// @notice `length` pseudo-random bytes from `seed`.
    function _randomBytes(uint256 seed, uint256 length) internal pure returns (bytes memory out) {
        out = new bytes(length);
        for (uint256 i; i < length; i += 32) {
            bytes32 chunk = keccak256(abi.encode(seed, i));
            for (uint256 j; j < 32 && i + j < length; ++j) {
                out[i + j] = chunk[j];
            }
        }
    }
}
