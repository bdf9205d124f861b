// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {DstackKeyChain} from "../../src/libraries/DstackKeyChain.sol";

/// @title DstackKeyChainHarness
/// @notice Exposes the internal DstackKeyChain library externally. `verify` takes its arguments exactly as
/// DstackAttestorFacet does (calldata string purpose), so gas figures match the facet's; the other overloads are
/// reached the way the membership facet (purpose in memory) and the indexer registry (Ed25519 key as a word) use them.
contract DstackKeyChainHarness {
    function verify(
        address appId,
        string calldata purpose,
        bytes calldata derivedPubkey,
        bytes calldata appPubkey,
        bytes calldata appSignature,
        bytes calldata kmsSignature
    ) external view returns (address kmsSigner) {
        return DstackKeyChain.verify(appId, purpose, derivedPubkey, appPubkey, appSignature, kmsSignature);
    }

    function verifyMemoryPurpose(
        address appId,
        bytes memory purpose,
        bytes calldata derivedPubkey,
        bytes calldata appPubkey,
        bytes calldata appSignature,
        bytes calldata kmsSignature
    ) external view returns (address kmsSigner) {
        return DstackKeyChain.verify(appId, purpose, derivedPubkey, appPubkey, appSignature, kmsSignature);
    }

    function verifyEd25519(
        address appId,
        bytes memory purpose,
        bytes32 derivedPubkey,
        bytes calldata appPubkey,
        bytes calldata appSignature,
        bytes calldata kmsSignature
    ) external view returns (address kmsSigner) {
        return DstackKeyChain.verifyEd25519(appId, purpose, derivedPubkey, appPubkey, appSignature, kmsSignature);
    }

    function verifyV1(
        address appId,
        bytes calldata domain,
        bytes calldata derivedPubkey,
        bytes calldata appPubkey,
        bytes calldata appSignature,
        bytes calldata kmsSignature
    ) external view returns (address kmsSigner) {
        return DstackKeyChain.verifyV1Calldata(appId, domain, derivedPubkey, appPubkey, appSignature, kmsSignature);
    }

    function verifyV1MemoryDomain(
        address appId,
        bytes memory domain,
        bytes calldata derivedPubkey,
        bytes calldata appPubkey,
        bytes calldata appSignature,
        bytes calldata kmsSignature
    ) external view returns (address kmsSigner) {
        return DstackKeyChain.verifyV1(appId, domain, derivedPubkey, appPubkey, appSignature, kmsSignature);
    }

    function verifyV1Ed25519(
        address appId,
        bytes memory domain,
        bytes32 derivedPubkey,
        bytes calldata appPubkey,
        bytes calldata appSignature,
        bytes calldata kmsSignature
    ) external view returns (address kmsSigner) {
        return DstackKeyChain.verifyV1Ed25519(appId, domain, derivedPubkey, appPubkey, appSignature, kmsSignature);
    }

    function keyClaimHash(bytes calldata domain, bytes calldata derivedPubkey) external pure returns (bytes32) {
        return DstackKeyChain.keyClaimHash(domain, derivedPubkey);
    }

    function requireKnownGuestApi(uint8 version) external pure {
        DstackKeyChain.requireKnownGuestApi(version);
    }

    function appMessageHash(bytes calldata purpose, bytes calldata derivedPubkey) external pure returns (bytes32) {
        return DstackKeyChain.appMessageHash(purpose, derivedPubkey);
    }

    function kmsMessageHash(address appId, bytes calldata appPubkey) external pure returns (bytes32) {
        return DstackKeyChain.kmsMessageHash(appId, appPubkey);
    }
}
