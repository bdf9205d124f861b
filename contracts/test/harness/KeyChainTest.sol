// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {DstackAttestorFacet} from "../../src/facets/DstackAttestorFacet.sol";
import {IDstackAttestor} from "../../src/interfaces/IDstackAttestor.sol";
import {DstackKeyChainHarness} from "./DstackKeyChainHarness.sol";
import {KeyTest} from "./KeyTest.sol";

/// @notice What the v0 and v1 key-chain tests share: a chain under one guest API, built and verified through
/// every entry point that takes it (the standalone attestor facet, whose body is the library's `verify`, and, for a
/// 32-byte key, the Ed25519 word path), which must agree.
abstract contract KeyChainTest is KeyTest {
    /// @notice One key chain, as the facet receives it, plus what the test knows about it. `context` is the v0
    /// purpose or the v1 domain.
    struct Chain {
        address appId;
        bytes context;
        bytes derivedPubkey;
        bytes appPubkey;
        bytes appSignature;
        bytes kmsSignature;
        address appKeyAddress;
        address kmsSigner;
    }

    uint256 internal constant VERIFY_GAS_BUDGET = 15_000;

    DstackKeyChainHarness internal h;
    DstackAttestorFacet internal attestor;

    function setUp() public {
        h = new DstackKeyChainHarness();
        attestor = new DstackAttestorFacet();
    }

    /// @notice The guest API the suite tests (0 or 1).
    function _guestApi() internal pure virtual returns (uint8);

    /// @notice The message link 0 signs under the suite's guest API, written out independently of the library.
    function _linkDigest(bytes memory context, bytes memory derivedPubkey) internal pure virtual returns (bytes32);

    /// @notice A valid chain. `vMode` bit 0 picks v 0/1 vs 27/28 for the app signature, bit 1 for the KMS's.
    function _chain(
        uint256 appSeed,
        uint256 kmsSeed,
        uint256 derivedSeed,
        address appId,
        bytes memory context,
        bool ed25519,
        uint8 vMode
    ) internal pure returns (Chain memory c) {
        uint256 appKey = _key(appSeed);
        uint256 kmsKey = _key(kmsSeed);
        c.appId = appId;
        c.context = context;
        c.derivedPubkey =
            ed25519 ? abi.encodePacked(keccak256(abi.encode("ed25519", derivedSeed))) : _compressed(_key(derivedSeed));
        c.appPubkey = _compressed(appKey);
        c.appKeyAddress = vm.addr(appKey);
        c.kmsSigner = vm.addr(kmsKey);
        bytes32 appDigest = _linkDigest(context, c.derivedPubkey);
        bytes32 kmsDigest = _kmsDigest(appId, c.appPubkey);
        c.appSignature = vMode & 1 == 0 ? _signRaw(appKey, appDigest) : _sign(appKey, appDigest);
        c.kmsSignature = vMode & 2 == 0 ? _signRaw(kmsKey, kmsDigest) : _sign(kmsKey, kmsDigest);
    }

    /// @notice The attestor facet's call for the chain under the suite's guest API.
    function _attestorCall(Chain memory c) internal pure returns (bytes memory) {
        if (_guestApi() == 0) {
            return abi.encodeCall(
                IDstackAttestor.verifyDstackKeyChain,
                (c.appId, string(c.context), c.derivedPubkey, c.appPubkey, c.appSignature, c.kmsSignature)
            );
        }
        return abi.encodeCall(
            IDstackAttestor.verifyDstackKeyChainV1,
            (c.appId, c.context, c.derivedPubkey, c.appPubkey, c.appSignature, c.kmsSignature)
        );
    }

    /// @dev Verifies through every entry point that can take this chain and checks they agree.
    function _verify(Chain memory c) internal view returns (address signer) {
        (bool ok, bytes memory ret) = address(attestor).staticcall(_attestorCall(c));
        if (!ok) {
            assembly ("memory-safe") {
                revert(add(ret, 0x20), mload(ret))
            }
        }
        signer = abi.decode(ret, (address));
        if (c.derivedPubkey.length == 32) {
            assertEq(h.verifyEd25519(_guestApi(), c), signer, "Ed25519 path disagrees");
        }
    }

    /// @dev Expects every entry point that can take this chain to revert with `revertData`.
    function _expectRevert(Chain memory c, bytes memory revertData) internal {
        (bool ok, bytes memory ret) = address(attestor).call(_attestorCall(c));
        assertFalse(ok, "attestor facet accepted the chain");
        assertEq(ret, revertData, "attestor facet reverted otherwise");
        if (c.derivedPubkey.length == 32) {
            vm.expectRevert(revertData);
            h.verifyEd25519(_guestApi(), c);
        }
    }

    /// @dev Breaks every field of the valid chain `c`, then mends one at a time, expecting each check's error in
    /// the documented order: lengths (derived key, app key, app signature, KMS signature), then the app key's
    /// encoding before the derived key's. Leaves `c` with the right lengths, its own app key, zeroed signatures and
    /// a derived key with prefix 9, for the caller's steps after these.
    function _expectLengthsThenKeyEncodingsInOrder(Chain memory c) internal {
        bytes memory appPubkey = c.appPubkey;
        c.derivedPubkey = new bytes(31);
        c.appPubkey = new bytes(34);
        c.appSignature = new bytes(64);
        c.kmsSignature = new bytes(66);
        _expectRevert(c, abi.encodeWithSelector(IDstackAttestor.InvalidPublicKeyLength.selector, 31));
        c.derivedPubkey = abi.encodePacked(uint8(9), GX);
        _expectRevert(c, abi.encodeWithSelector(IDstackAttestor.InvalidPublicKeyLength.selector, 34));
        c.appPubkey = abi.encodePacked(uint8(7), GX);
        _expectRevert(c, abi.encodeWithSelector(IDstackAttestor.InvalidSignatureLength.selector, 64));
        c.appSignature = new bytes(65);
        _expectRevert(c, abi.encodeWithSelector(IDstackAttestor.InvalidSignatureLength.selector, 66));
        c.kmsSignature = new bytes(65);
        _expectRevert(c, abi.encodeWithSelector(IDstackAttestor.InvalidPublicKeyPrefix.selector, 7));
        c.appPubkey = appPubkey;
        _expectRevert(c, abi.encodeWithSelector(IDstackAttestor.InvalidPublicKeyPrefix.selector, 9));
    }

    /// @dev The gas of a pre-encoded staticcall to the standalone attestor facet, which must return `expected`.
    function _measure(bytes memory call, address expected) internal view returns (uint256 used) {
        address target = address(attestor);
        uint256 before = gasleft();
        (bool ok, bytes memory ret) = target.staticcall(call);
        used = before - gasleft();
        assertTrue(ok, "verify reverted");
        assertEq(abi.decode(ret, (address)), expected);
    }

    function _ecrecover(bytes32 digest, bytes memory signature) internal pure returns (address) {
        uint8 v = uint8(signature[64]);
        return ecrecover(digest, v < 27 ? v + 27 : v, _word(signature, 0), _word(signature, 32));
    }

    function _word(bytes memory data, uint256 offset) internal pure returns (bytes32 w) {
        assembly ("memory-safe") {
            w := mload(add(add(data, 0x20), offset))
        }
    }
}
