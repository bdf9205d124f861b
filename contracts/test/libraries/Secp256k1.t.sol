// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IDstackAttestor} from "../../src/interfaces/IDstackAttestor.sol";
import {Secp256k1} from "../../src/libraries/Secp256k1.sol";
import {KeyTest} from "../harness/KeyTest.sol";
import {Secp256k1Harness} from "../harness/Secp256k1Harness.sol";

contract Secp256k1Test is KeyTest {
    Secp256k1Harness internal h;

    function setUp() public {
        h = new Secp256k1Harness();
    }

    // Constants.

    function test_constants_matchCurveParameters() public pure {
        assertEq(Secp256k1.P, P);
        assertEq(Secp256k1.N, N);
        assertEq(Secp256k1.HALF_N, N / 2);
        assertEq(_curveRhs(GX), mulmod(GY, GY, P), "G is on the curve");
    }

    // decompress: known answers.

    function test_decompress_generatorEvenPrefix() public view {
        assertEq(h.decompress(2, GX), GY);
    }

    function test_decompress_generatorOddPrefix() public view {
        assertEq(h.decompress(3, GX), P - GY);
    }

    function test_compressedToAddress_generatorIsKeyOne() public view {
        bytes memory g = abi.encodePacked(uint8(2), GX);
        assertEq(h.compressedToAddress(g), vm.addr(1));
        assertEq(h.compressedToAddress(g), 0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf);
        // -G belongs to n - 1.
        assertEq(h.compressedToAddress(abi.encodePacked(uint8(3), GX)), vm.addr(N - 1));
    }

    function test_toAddress_generator() public view {
        assertEq(h.toAddress(GX, GY), vm.addr(1));
    }

    // decompress: properties.

    function test_mulG_referenceMatchesKnownPoints() public pure {
        (uint256 x, uint256 y) = _mulG(1);
        assertEq(x, GX);
        assertEq(y, GY);
        (x, y) = _mulG(N - 1);
        assertEq(x, GX);
        assertEq(y, P - GY);
        (x, y) = _mulG(2);
        assertEq(x, 0xC6047F9441ED7D6D3045406E95C07CD85C778E4B8CEF3CA7ABAC09B95C709EE5);
        assertEq(y, 0x1AE168FEA63DC339A3C58419466CEAEEF7F632653266D0E1236431A950CFE52A);
    }

    /// @dev The point comes from the test's own scalar multiplication, itself checked against vm.addr(k).
    function testFuzz_decompress_onCurve(uint256 seed) public view {
        uint256 k = _key(seed);
        (uint256 px, uint256 py) = _publicKey(k);
        assertEq(_curveRhs(px), mulmod(py, py, P), "reference point is on the curve");
        bytes memory key = _compress(px, py);

        uint256 y = h.decompress(uint8(key[0]), px);
        assertEq(y, py);
        assertEq(mulmod(y, y, P), _curveRhs(px));
        (uint8 prefix, uint256 x) = h.parseCompressed(key);
        assertEq(prefix, uint8(key[0]));
        assertEq(x, px);
        assertEq(h.compressedToAddress(key), vm.addr(k));
        assertEq(h.toAddress(px, py), vm.addr(k));
        // The other prefix is the negated key, n - k.
        assertEq(h.compressedToAddress(_flipByte(key, 0, 1)), vm.addr(N - k));
    }

    function testFuzz_decompress_prefixSelectsParity(uint256 seed) public view {
        uint256 x = seed % P;
        while (!_isOnCurveX(x)) x = addmod(x, 1, P);
        uint256 even = h.decompress(2, x);
        uint256 odd = h.decompress(3, x);
        assertLt(even, P);
        assertLt(odd, P);
        assertEq(even & 1, 0, "prefix 02 gives an even y");
        assertEq(odd & 1, 1, "prefix 03 gives an odd y");
        assertEq(even + odd, P, "the two roots are negatives of each other");
        assertEq(mulmod(even, even, P), _curveRhs(x));
    }

    function testFuzz_decompress_rejectsOffCurve(uint256 seed) public {
        uint256 x = _nextOffCurveX(seed);
        vm.expectRevert(abi.encodeWithSelector(IDstackAttestor.PublicKeyNotOnCurve.selector, x));
        h.decompress(2, x);
        vm.expectRevert(abi.encodeWithSelector(IDstackAttestor.PublicKeyNotOnCurve.selector, x));
        h.decompress(3, x);
        vm.expectRevert(abi.encodeWithSelector(IDstackAttestor.PublicKeyNotOnCurve.selector, x));
        h.compressedToAddress(abi.encodePacked(uint8(2 + (seed & 1)), x));
    }

    /// @dev Euler's criterion is an independent oracle: decompress succeeds exactly for the x of curve points.
    function testFuzz_decompress_succeedsIffOnCurve(uint256 x, bool odd) public {
        x = bound(x, 0, P - 1);
        uint8 prefix = odd ? 3 : 2;
        if (_isOnCurveX(x)) {
            uint256 y = h.decompress(prefix, x);
            assertEq(mulmod(y, y, P), _curveRhs(x));
        } else {
            vm.expectRevert(abi.encodeWithSelector(IDstackAttestor.PublicKeyNotOnCurve.selector, x));
            h.decompress(prefix, x);
        }
    }

    function test_decompress_rejectsZeroX() public {
        // 7 is not a square mod p, so x = 0 is not on the curve.
        assertFalse(_isOnCurveX(0));
        vm.expectRevert(abi.encodeWithSelector(IDstackAttestor.PublicKeyNotOnCurve.selector, 0));
        h.compressedToAddress(abi.encodePacked(uint8(2), uint256(0)));
    }

    // parseCompressed / checkCompressed.

    function testFuzz_parseCompressed_acceptsAnyXBelowP(uint256 x, bool odd) public view {
        x = bound(x, 0, P - 1);
        uint8 want = odd ? 3 : 2;
        (uint8 prefix, uint256 got) = h.parseCompressed(abi.encodePacked(want, x));
        assertEq(prefix, want);
        assertEq(got, x);
    }

    function testFuzz_parseCompressed_rejectsBadLength(uint256 length, uint256 seed) public {
        length = bound(length, 0, 200);
        if (length == 33) length = 32 + (seed & 1) * 2;
        bytes memory key = _randomBytes(seed, length);
        if (length > 0) key[0] = 0x02;
        vm.expectRevert(abi.encodeWithSelector(IDstackAttestor.InvalidPublicKeyLength.selector, length));
        h.parseCompressed(key);
        vm.expectRevert(abi.encodeWithSelector(IDstackAttestor.InvalidPublicKeyLength.selector, length));
        h.compressedToAddress(key);
    }

    function test_parseCompressed_rejectsUncompressedKey() public {
        bytes memory uncompressed = abi.encodePacked(uint8(4), GX, GY);
        vm.expectRevert(abi.encodeWithSelector(IDstackAttestor.InvalidPublicKeyLength.selector, 65));
        h.parseCompressed(uncompressed);
    }

    function testFuzz_parseCompressed_rejectsBadPrefix(uint8 prefix, uint256 x) public {
        if (prefix == 2 || prefix == 3) prefix ^= 0x80;
        // The prefix is checked before the range of x, so any x gives this error.
        _expectEveryReaderReverts(
            prefix, x, abi.encodeWithSelector(IDstackAttestor.InvalidPublicKeyPrefix.selector, prefix)
        );
    }

    function testFuzz_parseCompressed_rejectsXAtLeastP(uint256 x, bool odd) public {
        x = bound(x, P, type(uint256).max);
        uint8 prefix = odd ? 3 : 2;
        _expectEveryReaderReverts(prefix, x, abi.encodeWithSelector(IDstackAttestor.PublicKeyNotOnCurve.selector, x));
    }

    /// @dev The key `(prefix, x)` is refused with `err` by each reader: parse, to-address and the check.
    function _expectEveryReaderReverts(uint8 prefix, uint256 x, bytes memory err) internal {
        vm.expectRevert(err);
        h.parseCompressed(abi.encodePacked(prefix, x));
        vm.expectRevert(err);
        h.compressedToAddress(abi.encodePacked(prefix, x));
        vm.expectRevert(err);
        h.checkCompressed(prefix, x);
    }

    function test_parseCompressed_rejectsXEqualP() public {
        // x = p is x = 0 in the field; a parser that reduced mod p would accept an alias of a key.
        vm.expectRevert(abi.encodeWithSelector(IDstackAttestor.PublicKeyNotOnCurve.selector, P));
        h.parseCompressed(abi.encodePacked(uint8(2), P));
    }

    function test_checkCompressed_acceptsLargestX() public view {
        h.checkCompressed(2, P - 1);
        h.checkCompressed(3, P - 1);
    }

    // recover.

    function testFuzz_recover_matchesSigner(uint256 seed, bytes32 digest) public view {
        uint256 k = _key(seed);
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(k, digest);
        assertLe(uint256(s), HALF_N, "the runner signs low-s");
        address signer = vm.addr(k);
        assertEq(h.recover(digest, abi.encodePacked(r, s, v)), signer, "v in {27,28}");
        assertEq(h.recover(digest, abi.encodePacked(r, s, v - 27)), signer, "v in {0,1}");
    }

    function testFuzz_recover_rejectsHighS(uint256 seed, bytes32 digest) public view {
        uint256 k = _key(seed);
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(k, digest);
        uint256 highS = N - uint256(s);
        uint8 flipped = v == 27 ? 28 : 27;
        // The twin is a valid signature to the bare precompile: that is the malleability being refused.
        assertEq(ecrecover(digest, flipped, r, bytes32(highS)), vm.addr(k));
        _expectRecoverRevert(
            digest,
            abi.encodePacked(r, highS, flipped),
            abi.encodeWithSelector(IDstackAttestor.SignatureMalleable.selector, highS)
        );
        _expectRecoverRevert(
            digest,
            abi.encodePacked(r, highS, flipped - 27),
            abi.encodeWithSelector(IDstackAttestor.SignatureMalleable.selector, highS)
        );
    }

    function testFuzz_recover_rejectsSAboveHalfN(uint256 s) public {
        s = bound(s, HALF_N + 1, type(uint256).max);
        vm.expectRevert(abi.encodeWithSelector(IDstackAttestor.SignatureMalleable.selector, s));
        h.recover(keccak256("m"), _sig(GX, s, 27));
    }

    function test_recover_acceptsSEqualHalfN() public view {
        // The boundary belongs to the low half; r = Gx is the x of a point, so recovery yields some key.
        address signer = h.recover(keccak256("m"), _sig(GX, HALF_N, 27));
        assertNotEq(signer, address(0));
        assertEq(signer, ecrecover(keccak256("m"), 27, bytes32(GX), bytes32(HALF_N)));
    }

    function testFuzz_recover_rejectsBadV(uint256 seed, bytes32 digest, uint8 v) public {
        if (v <= 1 || v == 27 || v == 28) v = 29;
        (, bytes32 r, bytes32 s) = vm.sign(_key(seed), digest);
        vm.expectRevert(abi.encodeWithSelector(IDstackAttestor.InvalidSignatureV.selector, v));
        h.recover(digest, abi.encodePacked(r, s, v));
    }

    function test_recover_rejectsEachNeighbourOfValidV() public {
        uint8[6] memory bad = [uint8(2), 26, 29, 30, 127, 255];
        for (uint256 i; i < bad.length; ++i) {
            vm.expectRevert(abi.encodeWithSelector(IDstackAttestor.InvalidSignatureV.selector, bad[i]));
            h.recover(keccak256("m"), _sig(GX, 1, bad[i]));
        }
    }

    function test_recover_rejectsZeroR() public {
        vm.expectRevert(abi.encodeWithSelector(IDstackAttestor.InvalidSignatureR.selector, 0));
        h.recover(keccak256("m"), _sig(0, 1, 27));
    }

    function testFuzz_recover_rejectsRAtLeastN(uint256 r, uint256 s, uint8 v) public {
        r = bound(r, N, type(uint256).max);
        v = v & 1 == 0 ? 27 : 0;
        vm.expectRevert(abi.encodeWithSelector(IDstackAttestor.InvalidSignatureR.selector, r));
        h.recover(keccak256("m"), _sig(r, s, v));
    }

    function test_recover_rejectsZeroS() public {
        vm.expectRevert(abi.encodeWithSelector(IDstackAttestor.InvalidSignatureS.selector, 0));
        h.recover(keccak256("m"), _sig(GX, 0, 28));
    }

    function testFuzz_recover_failsWhenRIsNotAnX(uint256 seed, uint256 s, bytes32 digest) public {
        uint256 r = _nextOffCurveX(bound(seed, 1, N - 1));
        vm.assume(r != 0 && r < N);
        s = bound(s, 1, HALF_N);
        vm.expectRevert(abi.encodeWithSelector(IDstackAttestor.SignatureRecoveryFailed.selector));
        h.recover(digest, _sig(r, s, 27));
    }

    function testFuzz_recover_rejectsBadLength(uint256 length, uint256 seed) public {
        length = bound(length, 0, 200);
        if (length == 65) length = 64 + (seed & 1) * 2;
        vm.expectRevert(abi.encodeWithSelector(IDstackAttestor.InvalidSignatureLength.selector, length));
        h.recover(keccak256("m"), _randomBytes(seed, length));
    }

    function testFuzz_recover_rejectsSignatureWithTrailingByte(uint256 seed, bytes32 digest) public {
        bytes memory signature = bytes.concat(_sign(_key(seed), digest), bytes1(0));
        vm.expectRevert(abi.encodeWithSelector(IDstackAttestor.InvalidSignatureLength.selector, 66));
        h.recover(digest, signature);
    }

    function test_recover_checksVBeforeRBeforeS() public {
        vm.expectRevert(abi.encodeWithSelector(IDstackAttestor.InvalidSignatureV.selector, 5));
        h.recover(keccak256("m"), _sig(0, 0, 5));
        vm.expectRevert(abi.encodeWithSelector(IDstackAttestor.InvalidSignatureR.selector, 0));
        h.recover(keccak256("m"), _sig(0, 0, 27));
        vm.expectRevert(abi.encodeWithSelector(IDstackAttestor.InvalidSignatureS.selector, 0));
        h.recover(keccak256("m"), _sig(GX, 0, 27));
    }

    function testFuzz_recover_wrongDigestGivesOtherSigner(uint256 seed, bytes32 digest, bytes32 other) public view {
        vm.assume(digest != other);
        uint256 k = _key(seed);
        address got = h.recover(other, _sign(k, digest));
        assertNotEq(got, vm.addr(k));
    }

    function _expectRecoverRevert(bytes32 digest, bytes memory signature, bytes memory revertData) internal view {
        try h.recover(digest, signature) returns (address signer) {
            signer;
            fail("recover did not revert");
        } catch (bytes memory reason) {
            assertEq(reason, revertData);
        }
    }
}
