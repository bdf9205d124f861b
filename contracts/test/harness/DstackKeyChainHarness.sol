// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {DstackKeyChain} from "../../src/libraries/DstackKeyChain.sol";

/// @title DstackKeyChainHarness
/// @notice Exposes the internal DstackKeyChain library externally where no facet passes its arguments through: the
/// Ed25519 word path (the indexer registry's) and the message builders. `DstackKeyChain.verify` is the attestor
/// facet's whole body (the membership facet calls it too): tests call a standalone DstackAttestorFacet for it, so
/// its gas figures are the facet's.
contract DstackKeyChainHarness {
    function verifyEd25519(
        uint8 guestApiVersion,
        address appId,
        bytes memory context,
        bytes32 derivedPubkey,
        bytes calldata appPubkey,
        bytes calldata appSignature,
        bytes calldata kmsSignature
    ) external view returns (address kmsSigner) {
        return DstackKeyChain.verifyEd25519(
            guestApiVersion, appId, context, derivedPubkey, appPubkey, appSignature, kmsSignature
        );
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
