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

    function appMessageHash(bytes calldata purpose, bytes calldata derivedPubkey) external pure returns (bytes32) {
        return DstackKeyChain.appMessageHash(purpose, derivedPubkey);
    }

    function kmsMessageHash(address appId, bytes calldata appPubkey) external pure returns (bytes32) {
        return DstackKeyChain.kmsMessageHash(appId, appPubkey);
    }
}
