// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {console} from "hardhat/console.sol";
import {DstackAttestorFacet} from "../../src/facets/DstackAttestorFacet.sol";
import {IDstackAttestor} from "../../src/interfaces/IDstackAttestor.sol";
import {KeyChainTest} from "../harness/KeyChainTest.sol";

/// @notice dstack guest API v1 chains (dstack 0.6): link 0 signs
/// keccak256(LP("dstack-guest-v1-key-claim") || LP(algorithm) || LP(domain) || LP(raw key)).
contract DstackKeyChainV1Test is KeyChainTest {
    // dstack docs/guest-api-v1.md @147e39c8, test vectors (test/fixtures/dstack/guest-v1/vectors.json).
    uint256 internal constant SPEC_APP_ROOT_KEY = 0x1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b;
    bytes internal constant SPEC_LINK0_PUBKEY = hex"03d962450a41748021c8b02787ac36ce642ff0ae25f4c55019eb527e1112cfd764";
    bytes internal constant SPEC_LINK0_SIGNATURE =
        hex"5b6193729ce7976ec67863f21692d4b98c69832698aae8e001a7d33a6f818b6e46ca950725b6e90e8ca9bcf394abd03ce264bf9b7eec1e91693247f9dd53c26901";

    // The spec's vector.

    function test_keyClaimHash_specLink0RecoversAppRootKey() public view {
        bytes32 digest = h.keyClaimHash("storage-encryption", SPEC_LINK0_PUBKEY);
        assertEq(_ecrecover(digest, SPEC_LINK0_SIGNATURE), vm.addr(SPEC_APP_ROOT_KEY));
    }

    function test_verifyV1_specLink0UnderAKmsSignature() public {
        uint256 kmsKey = _key(uint256(keccak256("a KMS root")));
        Chain memory c;
        c.appId = address(0x1234);
        c.context = "storage-encryption";
        c.derivedPubkey = SPEC_LINK0_PUBKEY;
        c.appPubkey = _compressed(SPEC_APP_ROOT_KEY);
        c.appSignature = SPEC_LINK0_SIGNATURE;
        c.kmsSignature = _signRaw(kmsKey, _kmsDigest(c.appId, c.appPubkey));
        assertEq(_verify(c), vm.addr(kmsKey));
        // The same link 0 read as a v0 chain is refused: its message is another byte string.
        vm.expectPartialRevert(IDstackAttestor.AppSignatureMismatch.selector);
        attestor.verifyDstackKeyChain(c.appId, string(c.context), c.derivedPubkey, c.appPubkey, c.appSignature, c.kmsSignature);
    }

    function test_verifyDstackKeyChainV1_onStandaloneFacet() public {
        DstackAttestorFacet facet = new DstackAttestorFacet();
        Chain memory c = _chain(1, 2, 3, address(0xabc), "attestmesh-member-v1", false, 0);
        assertEq(
            facet.verifyDstackKeyChainV1(c.appId, c.context, c.derivedPubkey, c.appPubkey, c.appSignature, c.kmsSignature),
            c.kmsSigner
        );
    }

    // The claim's bytes.

    function test_keyClaimHash_knownLayout() public view {
        bytes memory ed = hex"a3dc149fd5b765eab2eb7d3174fa939e39386898f10b15b7b146f6f1358ecf2a";
        bytes memory claim = abi.encodePacked(
            hex"00000019", "dstack-guest-v1-key-claim", hex"00000007", "ed25519", hex"00000000", hex"00000020", ed
        );
        assertEq(h.keyClaimHash("", ed), keccak256(claim));
        bytes memory domain = hex"6b003a6579";
        claim = abi.encodePacked(
            hex"00000019",
            "dstack-guest-v1-key-claim",
            hex"00000009",
            "secp256k1",
            hex"00000005",
            domain,
            hex"00000021",
            SPEC_LINK0_PUBKEY
        );
        assertEq(h.keyClaimHash(domain, SPEC_LINK0_PUBKEY), keccak256(claim));
    }

    function testFuzz_keyClaimHash_matchesPacked(bytes memory domain, bytes32 head, uint8 last, bool ed25519)
        public
        view
    {
        bytes memory key = ed25519 ? abi.encodePacked(head) : abi.encodePacked(head, last);
        assertEq(h.keyClaimHash(domain, key), keccak256(_claim(domain, key)));
    }

    /// @notice The property that keeps the two guest APIs apart: no v0 message is a v1 claim. A v0 message
    /// ends in 64 or 66 lowercase hex characters; a v1 claim's key length prefix puts a zero byte inside its
    /// last 37 bytes. So the digests differ for every purpose, domain and pair of keys.
    function testFuzz_v0AndV1Messages_neverEqual(
        bytes memory purpose,
        bytes memory domain,
        bytes32 head0,
        uint8 last0,
        bool ed0,
        bytes32 head1,
        uint8 last1,
        bool ed1
    ) public view {
        bytes memory key0 = ed0 ? abi.encodePacked(head0) : abi.encodePacked(head0, last0);
        bytes memory key1 = ed1 ? abi.encodePacked(head1) : abi.encodePacked(head1, last1);
        bytes memory v0 = abi.encodePacked(purpose, ":", _hex(key0));
        bytes memory v1 = _claim(domain, key1);
        assertFalse(keccak256(v0) == keccak256(v1), "a v0 message equals a v1 claim");
        // The structural reason, checked on the bytes themselves.
        assertEq(uint8(v1[v1.length - key1.length - 4]), 0, "v1: the key length prefix starts with a zero byte");
        for (uint256 i = v0.length - key0.length * 2; i < v0.length; ++i) {
            bytes1 c = v0[i];
            assertTrue((c >= "0" && c <= "9") || (c >= "a" && c <= "f"), "v0: the tail is lowercase hex");
        }
        assertEq(h.keyClaimHash(domain, key1), keccak256(v1));
        assertEq(h.appMessageHash(purpose, key0), keccak256(v0));
    }

    function testFuzz_verifyV1_refusesV0Chain(uint256 seed, string memory purpose, bool ed25519) public {
        Chain memory c = _chain(seed, seed ^ 1, seed ^ 2, address(uint160(seed)), bytes(purpose), ed25519, 0);
        // Re-sign link 0 the v0 way, over the same purpose and key.
        c.appSignature = _signRaw(_key(seed), _appDigest(bytes(purpose), c.derivedPubkey));
        assertEq(
            attestor.verifyDstackKeyChain(c.appId, purpose, c.derivedPubkey, c.appPubkey, c.appSignature, c.kmsSignature),
            c.kmsSigner,
            "a valid v0 chain"
        );
        address recovered = _ecrecover(_claimDigest(c.context, c.derivedPubkey), c.appSignature);
        _expectRevert(
            c, abi.encodeWithSelector(IDstackAttestor.AppSignatureMismatch.selector, c.appKeyAddress, recovered)
        );
    }

    function testFuzz_verify_refusesV1Chain(uint256 seed, string memory domain, bool ed25519) public {
        Chain memory c = _chain(seed, seed ^ 1, seed ^ 2, address(uint160(seed)), bytes(domain), ed25519, 0);
        assertEq(_verify(c), c.kmsSigner, "a valid v1 chain");
        address recovered = _ecrecover(_appDigest(bytes(domain), c.derivedPubkey), c.appSignature);
        vm.expectRevert(
            abi.encodeWithSelector(IDstackAttestor.AppSignatureMismatch.selector, c.appKeyAddress, recovered)
        );
        attestor.verifyDstackKeyChain(c.appId, domain, c.derivedPubkey, c.appPubkey, c.appSignature, c.kmsSignature);
    }

    // Valid chains.

    function testFuzz_verifyV1_returnsKmsSigner(
        uint256 appSeed,
        uint256 kmsSeed,
        uint256 derivedSeed,
        address appId,
        bytes memory domain,
        bool ed25519,
        uint8 vMode
    ) public view {
        Chain memory c = _chain(appSeed, kmsSeed, derivedSeed, appId, domain, ed25519, vMode);
        assertEq(_verify(c), c.kmsSigner);
    }

    // Tampering.

    function testFuzz_verifyV1_refusesTamperedDomain(uint256 seed, bytes memory domain, bytes memory other) public {
        vm.assume(keccak256(domain) != keccak256(other));
        Chain memory c = _chain(seed, seed ^ 1, seed ^ 2, address(0xd0), domain, seed & 1 == 0, 0);
        c.context = other;
        _expectRevert(
            c,
            abi.encodeWithSelector(
                IDstackAttestor.AppSignatureMismatch.selector,
                c.appKeyAddress,
                _ecrecover(_claimDigest(other, c.derivedPubkey), c.appSignature)
            )
        );
    }

    function testFuzz_verifyV1_refusesTamperedDerivedKey(uint256 seed, uint256 index, uint8 mask, bool ed25519)
        public
    {
        mask = uint8(bound(mask, 1, 255));
        Chain memory c = _chain(seed, seed ^ 1, seed ^ 2, address(0xd1), "d", ed25519, 0);
        // Keep a compressed key's prefix valid so the signature check is what refuses it.
        index = ed25519 ? bound(index, 0, 31) : bound(index, 1, 32);
        c.derivedPubkey = _flipByte(c.derivedPubkey, index, mask);
        if (!ed25519 && uint256(_word(c.derivedPubkey, 1)) >= P) return;
        _expectRevert(
            c,
            abi.encodeWithSelector(
                IDstackAttestor.AppSignatureMismatch.selector,
                c.appKeyAddress,
                _ecrecover(_claimDigest(c.context, c.derivedPubkey), c.appSignature)
            )
        );
    }

    function testFuzz_verifyV1_tamperedAppIdChangesKmsSigner(uint256 seed, address other) public view {
        Chain memory c = _chain(seed, seed ^ 1, seed ^ 2, address(0xd2), "d", false, 0);
        vm.assume(other != c.appId);
        c.appId = other;
        assertNotEq(_verify(c), c.kmsSigner);
    }

    function testFuzz_verifyV1_refusesHighS(uint256 seed, bool kms) public {
        Chain memory c = _chain(seed, seed ^ 1, seed ^ 2, address(0xd3), "d", false, 0);
        bytes memory sig = kms ? c.kmsSignature : c.appSignature;
        uint256 highS = N - uint256(_word(sig, 32));
        bytes memory twin = abi.encodePacked(_word(sig, 0), highS, uint8(sig[64]) ^ 1);
        if (kms) c.kmsSignature = twin;
        else c.appSignature = twin;
        _expectRevert(c, abi.encodeWithSelector(IDstackAttestor.SignatureMalleable.selector, highS));
    }

    // Malformed input: the same errors, in the same order, as v0.

    function test_verifyV1_checksInDocumentedOrder() public {
        Chain memory c = _chain(7, 8, 9, address(0xd4), "d", false, 0);
        Chain memory good = _chain(7, 8, 9, address(0xd4), "d", false, 0);
        _expectLengthsThenKeyEncodingsInOrder(c);
        c.derivedPubkey = abi.encodePacked(uint8(2), P);
        _expectRevert(c, abi.encodeWithSelector(IDstackAttestor.PublicKeyNotOnCurve.selector, P));
        c.derivedPubkey = good.derivedPubkey;
        _expectRevert(c, abi.encodeWithSelector(IDstackAttestor.InvalidSignatureR.selector, 0));
        c.appSignature = good.appSignature;
        _expectRevert(c, abi.encodeWithSelector(IDstackAttestor.InvalidSignatureR.selector, 0));
    }

    function testFuzz_requireKnownGuestApi_refusesUnknownVersions(uint8 version) public {
        if (version <= 1) {
            h.requireKnownGuestApi(version);
            return;
        }
        vm.expectRevert(abi.encodeWithSelector(IDstackAttestor.UnsupportedGuestApiVersion.selector, version));
        h.requireKnownGuestApi(version);
    }

    // Gas: v1 hashes the raw key, v0 hex-encodes it first.

    function test_verifyV1_gasBelowV0() public view {
        Chain memory c = _chain(11, 12, 13, address(0xd5), "attestmesh-member-v1", false, 0);
        bytes memory v1Call = abi.encodeCall(
            IDstackAttestor.verifyDstackKeyChainV1,
            (c.appId, c.context, c.derivedPubkey, c.appPubkey, c.appSignature, c.kmsSignature)
        );
        bytes memory v0Signature = _signRaw(_key(11), _appDigest(c.context, c.derivedPubkey));
        bytes memory v0Call = abi.encodeCall(
            IDstackAttestor.verifyDstackKeyChain,
            (c.appId, string(c.context), c.derivedPubkey, c.appPubkey, v0Signature, c.kmsSignature)
        );
        _measure(v1Call, c.kmsSigner);
        _measure(v0Call, c.kmsSigner);
        uint256 v1 = _measure(v1Call, c.kmsSigner);
        uint256 v0 = _measure(v0Call, c.kmsSigner);
        console.log("DstackKeyChain verify gas, warm (v0, v1):", v0, v1);
        assertLe(v0, VERIFY_GAS_BUDGET, "v0 verify gas over budget");
        assertLt(v1, v0, "v1 costs less than v0");
    }

    // Helpers.

    function _guestApi() internal pure override returns (uint8) {
        return 1;
    }

    function _linkDigest(bytes memory domain, bytes memory derivedPubkey) internal pure override returns (bytes32) {
        return _claimDigest(domain, derivedPubkey);
    }

    function _claim(bytes memory domain, bytes memory key) internal pure returns (bytes memory) {
        return abi.encodePacked(
            uint32(25),
            "dstack-guest-v1-key-claim",
            key.length == 33 ? abi.encodePacked(uint32(9), "secp256k1") : abi.encodePacked(uint32(7), "ed25519"),
            uint32(domain.length),
            domain,
            uint32(key.length),
            key
        );
    }

    function _claimDigest(bytes memory domain, bytes memory key) internal pure returns (bytes32) {
        return keccak256(_claim(domain, key));
    }
}
