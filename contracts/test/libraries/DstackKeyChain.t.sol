// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {console} from "hardhat/console.sol";
import {DstackAttestorFacet} from "../../src/facets/DstackAttestorFacet.sol";
import {IDstackAttestor} from "../../src/interfaces/IDstackAttestor.sol";
import {KeyChainTest} from "../harness/KeyChainTest.sol";

/// @notice dstack guest API v0 chains: link 0 signs keccak256(purpose || ":" || lowercasehex(key)).
contract DstackKeyChainTest is KeyChainTest {
    /// @notice The fields whose length `verify` checks, in the order it checks them.
    enum Field {
        DerivedPubkey,
        AppPubkey,
        AppSignature,
        KmsSignature
    }

    // dstack's sdk/simulator/appkeys.json: `k256_key` is the app key, `k256_signature` the KMS signature.
    uint256 internal constant FIXTURE_APP_KEY = 0xd6e88992cdeeee35fe70b5db61ab66cdb191fb9b6ec9313757ef162dd7214d5d;
    address internal constant FIXTURE_APP_ID = 0x5bb4FF9A3837357F19dC176407a5709c62eB6C56;
    bytes internal constant FIXTURE_APP_PUBKEY = hex"02818494263695e8839122dbd88e281d7380622999df4e60a14befa0f2d096fc7c";
    bytes internal constant FIXTURE_KMS_SIGNATURE =
        hex"9e618603e72d01fedb82deff6daf2d62a572becf0059eec3f89c1ab40e1f2e594d2a283f843f34e8f39e4cc49a612496ce67223a12ac923f8efe330346dfc6c500";
    address internal constant FIXTURE_KMS_ROOT = 0xA7F6043C29f9cc1d9D6aCF554c53E0c6792AaEAf;

    // The dstack simulator fixture.

    function test_kmsMessageHash_fixtureRecoversKmsRoot() public view {
        bytes32 digest = h.kmsMessageHash(FIXTURE_APP_ID, FIXTURE_APP_PUBKEY);
        assertEq(digest, keccak256(abi.encodePacked("dstack-kms-issued:", FIXTURE_APP_ID, FIXTURE_APP_PUBKEY)));
        bytes memory sig = FIXTURE_KMS_SIGNATURE;
        assertEq(uint8(sig[64]), 0, "dstack signs with a raw recovery id");
        assertEq(ecrecover(digest, 27, _word(sig, 0), _word(sig, 32)), FIXTURE_KMS_ROOT);
    }

    function test_verify_simulatorFixture() public view {
        assertEq(_compressed(FIXTURE_APP_KEY), FIXTURE_APP_PUBKEY, "k256_key is the fixture's app key");
        Chain memory c = _fixtureChain();
        assertEq(_verify(c), FIXTURE_KMS_ROOT);
    }

    function test_verifyDstackKeyChain_simulatorFixtureOnStandaloneFacet() public {
        DstackAttestorFacet facet = new DstackAttestorFacet();
        Chain memory c = _fixtureChain();
        address signer = facet.verifyDstackKeyChain(
            c.appId, string(c.context), c.derivedPubkey, c.appPubkey, c.appSignature, c.kmsSignature
        );
        assertEq(signer, FIXTURE_KMS_ROOT);
    }

    function test_verify_rejectsFixtureSignatureForAnotherAppId() public view {
        Chain memory c = _fixtureChain();
        c.appId = address(uint160(FIXTURE_APP_ID) ^ 1);
        address signer = _verify(c);
        assertNotEq(signer, FIXTURE_KMS_ROOT);
        assertEq(signer, _ecrecover(_kmsDigest(c.appId, c.appPubkey), c.kmsSignature));
    }

    // Message hashes.

    function test_appMessageHash_knownAnswer() public view {
        // Every nibble value appears, and the 33rd byte (handled apart from the first 32) is a letter pair.
        bytes memory key = hex"02000102030405060708090a0b0c0d0e0f1f2f3f4f5f6f7f8f9fafbfcfdfeffffe";
        string memory text = "abc:02000102030405060708090a0b0c0d0e0f1f2f3f4f5f6f7f8f9fafbfcfdfeffffe";
        assertEq(_hex(key), "02000102030405060708090a0b0c0d0e0f1f2f3f4f5f6f7f8f9fafbfcfdfeffffe");
        assertEq(h.appMessageHash("abc", key), keccak256(bytes(text)));
        bytes memory ed = hex"ff0123456789abcdeffedcba9876543210a0b1c2d3e4f5061728394a5b6c7d8e";
        bytes memory edText = ":ff0123456789abcdeffedcba9876543210a0b1c2d3e4f5061728394a5b6c7d8e";
        assertEq(h.appMessageHash("", ed), keccak256(edText));
    }

    function testFuzz_appMessageHash_matchesNaiveHex33(bytes32 x, uint8 prefix) public view {
        bytes memory key = abi.encodePacked(prefix, x);
        assertEq(h.appMessageHash("abc", key), keccak256(abi.encodePacked("abc:", _hex(key))));
    }

    function testFuzz_appMessageHash_matchesNaiveHex(bytes memory purpose, bytes32 head, uint8 last, bool ed25519)
        public
        view
    {
        bytes memory key = ed25519 ? abi.encodePacked(head) : abi.encodePacked(head, last);
        assertEq(h.appMessageHash(purpose, key), keccak256(abi.encodePacked(purpose, ":", _hex(key))));
        assertEq(h.appMessageHash(purpose, key), _appDigest(purpose, key));
    }

    function testFuzz_kmsMessageHash_matchesPacked(address appId, bytes32 x, uint8 prefix) public view {
        bytes memory appPubkey = abi.encodePacked(prefix, x);
        assertEq(
            h.kmsMessageHash(appId, appPubkey), keccak256(abi.encodePacked("dstack-kms-issued:", appId, appPubkey))
        );
    }

    // verify: valid chains.

    function testFuzz_verify_returnsKmsSigner(
        uint256 appSeed,
        uint256 kmsSeed,
        uint256 derivedSeed,
        address appId,
        string memory purpose,
        bool ed25519,
        uint8 vMode
    ) public view {
        Chain memory c = _chain(appSeed, kmsSeed, derivedSeed, appId, bytes(purpose), ed25519, vMode);
        assertEq(_verify(c), c.kmsSigner);
        assertEq(c.kmsSigner, vm.addr(_key(kmsSeed)));
    }

    function test_verify_acceptsEmptyPurpose() public view {
        Chain memory c = _chain(1, 2, 3, address(0xA11CE), "", false, 0);
        assertEq(_verify(c), vm.addr(2));
    }

    function test_verify_acceptsLongPurpose() public view {
        string memory purpose = "a purpose string that is much longer than one 32-byte memory word, twice over";
        Chain memory c = _chain(11, 12, 13, address(0xA11CE), bytes(purpose), false, 3);
        assertEq(_verify(c), vm.addr(12));
    }

    /// @dev Curve membership of a 33-byte derived key is checked where it is used as a key, not here.
    function test_verify_acceptsOffCurveDerivedKeyWithValidEncoding() public view {
        uint256 x = _nextOffCurveX(uint256(keccak256("derived")));
        Chain memory c = _chain(21, 22, 23, address(0xB0B), "wireguard", false, 0);
        _resignDerived(c, 21, abi.encodePacked(uint8(3), x));
        assertEq(_verify(c), vm.addr(22));
    }

    // verify: wrong or tampered inputs.

    function testFuzz_verify_rejectsWrongAppKey(uint256 appSeed, uint256 otherSeed, uint256 kmsSeed, bool ed25519)
        public
    {
        uint256 appKey = _key(appSeed);
        uint256 otherKey = _key(otherSeed);
        vm.assume(appKey != otherKey);
        Chain memory c = _chain(appSeed, kmsSeed, appSeed ^ kmsSeed, address(0xCAFE), "wireguard", ed25519, 0);
        // The KMS even signed the substitute key: the app signature still gives it away.
        c.appPubkey = _compressed(otherKey);
        c.kmsSignature = _signRaw(_key(kmsSeed), _kmsDigest(c.appId, c.appPubkey));
        _expectRevert(
            c, abi.encodeWithSelector(IDstackAttestor.AppSignatureMismatch.selector, vm.addr(otherKey), vm.addr(appKey))
        );
    }

    /// @dev A tampered purpose changes the app digest, so the app signature recovers some other address:
    /// AppSignatureMismatch(appKeyAddress, that address).
    function testFuzz_verify_rejectsTamperedPurpose(uint256 seed, string memory purpose, string memory other) public {
        vm.assume(keccak256(bytes(purpose)) != keccak256(bytes(other)));
        Chain memory c = _chain(seed, ~seed, seed >> 1, address(0xCAFE), bytes(purpose), seed & 1 == 0, uint8(seed >> 8));
        c.context = bytes(other);
        address recovered = _ecrecover(_appDigest(bytes(other), c.derivedPubkey), c.appSignature);
        _expectRevert(
            c, abi.encodeWithSelector(IDstackAttestor.AppSignatureMismatch.selector, c.appKeyAddress, recovered)
        );
    }

    /// @dev The app id is only in the KMS message, so a tampered app id does not revert: it yields a different KMS
    /// signer, which the caller's allowlist then refuses.
    function testFuzz_verify_rejectsTamperedAppId(uint256 seed, address appId, address other) public view {
        vm.assume(appId != other);
        Chain memory c = _chain(seed, ~seed, seed >> 1, appId, "wireguard", seed & 1 == 0, uint8(seed >> 8));
        c.appId = other;
        address signer = _verify(c);
        assertNotEq(signer, c.kmsSigner);
        assertEq(signer, _ecrecover(_kmsDigest(other, c.appPubkey), c.kmsSignature));
    }

    /// @dev A tampered derived key reverts with AppSignatureMismatch, unless the tampering broke its encoding
    /// (prefix not 02/03, or x >= p), which is reported first.
    function testFuzz_verify_rejectsTamperedDerivedKey(uint256 seed, uint256 index, uint8 mask, bool ed25519) public {
        Chain memory c = _chain(seed, ~seed, seed >> 1, address(0xCAFE), "wireguard", ed25519, uint8(seed >> 8));
        if (mask == 0) mask = 1;
        index = bound(index, 0, c.derivedPubkey.length - 1);
        c.derivedPubkey = _flipByte(c.derivedPubkey, index, mask);
        bytes memory expected;
        uint8 prefix = uint8(c.derivedPubkey[0]);
        uint256 x = uint256(_word(c.derivedPubkey, 1));
        if (!ed25519 && prefix != 2 && prefix != 3) {
            expected = abi.encodeWithSelector(IDstackAttestor.InvalidPublicKeyPrefix.selector, prefix);
        } else if (!ed25519 && x >= P) {
            expected = abi.encodeWithSelector(IDstackAttestor.PublicKeyNotOnCurve.selector, x);
        } else {
            address recovered = _ecrecover(_appDigest(c.context, c.derivedPubkey), c.appSignature);
            expected = abi.encodeWithSelector(IDstackAttestor.AppSignatureMismatch.selector, c.appKeyAddress, recovered);
        }
        _expectRevert(c, expected);
    }

    /// @dev Swapping 02 and 03 names the negated key, a different key with the same x.
    function testFuzz_verify_rejectsDerivedKeyWithFlippedParity(uint256 seed) public {
        Chain memory c = _chain(seed, ~seed, seed >> 1, address(0xCAFE), "wireguard", false, 0);
        c.derivedPubkey = _flipByte(c.derivedPubkey, 0, 1);
        address recovered = _ecrecover(_appDigest(c.context, c.derivedPubkey), c.appSignature);
        _expectRevert(
            c, abi.encodeWithSelector(IDstackAttestor.AppSignatureMismatch.selector, c.appKeyAddress, recovered)
        );
    }

    /// @dev The app key is in the KMS message too, but it is checked against the app signature first.
    function testFuzz_verify_rejectsTamperedAppPubkey(uint256 seed, uint256 index, uint8 mask) public {
        Chain memory c = _chain(seed, ~seed, seed >> 1, address(0xCAFE), "wireguard", false, 0);
        if (mask == 0) mask = 1;
        index = bound(index, 0, 32);
        c.appPubkey = _flipByte(c.appPubkey, index, mask);
        uint8 prefix = uint8(c.appPubkey[0]);
        uint256 x = uint256(_word(c.appPubkey, 1));
        bytes memory expected;
        if (prefix != 2 && prefix != 3) {
            expected = abi.encodeWithSelector(IDstackAttestor.InvalidPublicKeyPrefix.selector, prefix);
        } else if (x >= P || !_isOnCurveX(x)) {
            expected = abi.encodeWithSelector(IDstackAttestor.PublicKeyNotOnCurve.selector, x);
        } else {
            address presented = _compressedAddress(c.appPubkey);
            expected = abi.encodeWithSelector(IDstackAttestor.AppSignatureMismatch.selector, presented, c.appKeyAddress);
        }
        _expectRevert(c, expected);
    }

    function testFuzz_verify_rejectsHighSAppSignature(uint256 seed) public {
        Chain memory c = _chain(seed, ~seed, seed >> 1, address(0xCAFE), "wireguard", false, 0);
        uint256 highS;
        (c.appSignature, highS) = _malleate(c.appSignature);
        _expectRevert(c, abi.encodeWithSelector(IDstackAttestor.SignatureMalleable.selector, highS));
    }

    function testFuzz_verify_rejectsHighSKmsSignature(uint256 seed) public {
        Chain memory c = _chain(seed, ~seed, seed >> 1, address(0xCAFE), "wireguard", true, 3);
        uint256 highS;
        (c.kmsSignature, highS) = _malleate(c.kmsSignature);
        _expectRevert(c, abi.encodeWithSelector(IDstackAttestor.SignatureMalleable.selector, highS));
    }

    function testFuzz_verify_rejectsBadSignatureV(uint8 v, bool kms) public {
        if (v <= 1 || v == 27 || v == 28) v = 29;
        Chain memory c = _fixtureChain();
        if (kms) c.kmsSignature[64] = bytes1(v);
        else c.appSignature[64] = bytes1(v);
        _expectRevert(c, abi.encodeWithSelector(IDstackAttestor.InvalidSignatureV.selector, v));
    }

    function test_verify_rejectsOffCurveAppPubkey() public {
        uint256 x = _nextOffCurveX(uint256(keccak256("app")));
        Chain memory c = _fixtureChain();
        c.appPubkey = abi.encodePacked(uint8(2), x);
        _expectRevert(c, abi.encodeWithSelector(IDstackAttestor.PublicKeyNotOnCurve.selector, x));
    }

    function test_verify_rejectsDerivedKeyWithBadPrefix() public {
        Chain memory c = _fixtureChain();
        c.derivedPubkey[0] = 0x04;
        _expectRevert(c, abi.encodeWithSelector(IDstackAttestor.InvalidPublicKeyPrefix.selector, 4));
    }

    function testFuzz_verify_rejectsDerivedKeyXAtLeastP(uint256 x) public {
        x = bound(x, P, type(uint256).max);
        Chain memory c = _fixtureChain();
        c.derivedPubkey = abi.encodePacked(uint8(2), x);
        _expectRevert(c, abi.encodeWithSelector(IDstackAttestor.PublicKeyNotOnCurve.selector, x));
    }

    // verify: lengths, one field at a time, in the documented order.

    function testFuzz_verify_rejectsBadDerivedKeyLength(uint256 length, uint256 seed) public {
        _rejectsBadLength(Field.DerivedPubkey, length, seed);
    }

    function testFuzz_verify_rejectsBadAppPubkeyLength(uint256 length, uint256 seed) public {
        _rejectsBadLength(Field.AppPubkey, length, seed);
    }

    function testFuzz_verify_rejectsBadAppSignatureLength(uint256 length, uint256 seed) public {
        _rejectsBadLength(Field.AppSignature, length, seed);
    }

    function testFuzz_verify_rejectsBadKmsSignatureLength(uint256 length, uint256 seed) public {
        _rejectsBadLength(Field.KmsSignature, length, seed);
    }

    function test_verify_rejectsUncompressedAppPubkey() public {
        Chain memory c = _fixtureChain();
        (uint256 x, uint256 y) = _publicKey(FIXTURE_APP_KEY);
        c.appPubkey = abi.encodePacked(uint8(4), x, y);
        _expectRevert(c, abi.encodeWithSelector(IDstackAttestor.InvalidPublicKeyLength.selector, 65));
    }

    function test_verify_checksInDocumentedOrder() public {
        Chain memory c = _fixtureChain();
        _expectLengthsThenKeyEncodingsInOrder(c);
        // A well-formed derived key: the (zeroed) app signature is next.
        c.derivedPubkey = abi.encodePacked(uint8(2), GX);
        _expectRevert(c, abi.encodeWithSelector(IDstackAttestor.InvalidSignatureR.selector, 0));
    }

    // Gas.

    /// @dev Measured around a pre-encoded staticcall to an already-touched standalone attestor facet, as on the
    /// diamond (the transaction's target is warm). The first, cold call is logged for reference only. The figure
    /// depends on the runner's gas schedule: the modexp that decompresses the app key costs 1,349 before Osaka and
    /// 4,048 under EIP-7883 (Osaka), which Hardhat's default l1 chain type uses (`--chain-type op` still prices it
    /// at 1,349).
    function test_verify_gas() public view {
        Chain memory c = _fixtureChain();
        bytes memory call = _attestorCall(c);
        uint256 cold = _measure(call, FIXTURE_KMS_ROOT);
        uint256 warm = _measure(call, FIXTURE_KMS_ROOT);
        console.log("DstackKeyChain.verify gas (cold facet, warm facet):", cold, warm);
        assertLe(warm, VERIFY_GAS_BUDGET, "verify gas over budget");
    }

    // Helpers.

    function _guestApi() internal pure override returns (uint8) {
        return 0;
    }

    function _linkDigest(bytes memory purpose, bytes memory derivedPubkey) internal pure override returns (bytes32) {
        return _appDigest(purpose, derivedPubkey);
    }

    /// @notice A chain under dstack's own simulator app key and KMS signature, for a fixed derived key.
    function _fixtureChain() internal pure returns (Chain memory c) {
        c.appId = FIXTURE_APP_ID;
        c.context = "wireguard";
        c.derivedPubkey = _compressed(uint256(keccak256("attestmesh fixture derived key")));
        c.appPubkey = FIXTURE_APP_PUBKEY;
        c.appSignature = _signRaw(FIXTURE_APP_KEY, _appDigest(c.context, c.derivedPubkey));
        c.kmsSignature = FIXTURE_KMS_SIGNATURE;
        c.appKeyAddress = vm.addr(FIXTURE_APP_KEY);
        c.kmsSigner = FIXTURE_KMS_ROOT;
    }

    /// @dev The fixture chain with `field` replaced by random bytes of a fuzzed length it refuses, refused with
    /// that length.
    function _rejectsBadLength(Field field, uint256 length, uint256 seed) internal {
        uint256 wrong = _wrongLength(field, length, seed);
        Chain memory c = _fixtureChain();
        bytes memory value = _randomBytes(seed, wrong);
        if (field == Field.DerivedPubkey) c.derivedPubkey = value;
        else if (field == Field.AppPubkey) c.appPubkey = value;
        else if (field == Field.AppSignature) c.appSignature = value;
        else c.kmsSignature = value;
        bytes4 refusal = field <= Field.AppPubkey
            ? IDstackAttestor.InvalidPublicKeyLength.selector
            : IDstackAttestor.InvalidSignatureLength.selector;
        _expectRevert(c, abi.encodeWithSelector(refusal, wrong));
    }

    /// @notice `length` mapped to a length `field` refuses: up to 100 bytes for a key, which takes 33 (a derived
    /// key 32 too, Ed25519), up to 150 for a signature, which takes 65; a valid draw becomes a wrong length beside it.
    function _wrongLength(Field field, uint256 length, uint256 seed) internal pure returns (uint256) {
        if (field == Field.DerivedPubkey) {
            length = bound(length, 0, 100);
            return length == 32 || length == 33 ? 34 + (seed & 1) * 30 : length;
        }
        if (field == Field.AppPubkey) {
            length = bound(length, 0, 100);
            return length == 33 ? 32 + (seed & 1) * 33 : length;
        }
        length = bound(length, 0, 150);
        return length == 65 ? 64 + (seed & 1) * 2 : length;
    }

    function _resignDerived(Chain memory c, uint256 appSeed, bytes memory derivedPubkey) internal pure {
        c.derivedPubkey = derivedPubkey;
        c.appSignature = _signRaw(_key(appSeed), _appDigest(c.context, derivedPubkey));
    }

    /// @notice The high-s twin of a signature (s -> n - s, recovery id flipped) and its s.
    function _malleate(bytes memory signature) internal pure returns (bytes memory twin, uint256 highS) {
        uint256 r = uint256(_word(signature, 0));
        highS = N - uint256(_word(signature, 32));
        uint8 v = uint8(signature[64]);
        uint8 flipped = v < 27 ? v ^ 1 : (v == 27 ? 28 : 27);
        twin = abi.encodePacked(r, highS, flipped);
    }

    function _compressedAddress(bytes memory key) internal pure returns (address) {
        uint256 x = uint256(_word(key, 1));
        uint256 y = _powMod(_curveRhs(x), (P + 1) / 4, P);
        if (y & 1 != uint8(key[0]) & 1) y = P - y;
        return address(uint160(uint256(keccak256(abi.encode(x, y)))));
    }
}
