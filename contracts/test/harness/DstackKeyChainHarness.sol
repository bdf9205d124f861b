// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {DstackKeyChain} from "../../src/libraries/DstackKeyChain.sol";
import {KeyChainTest} from "./KeyChainTest.sol";

/// @title DstackKeyChainHarness
/// @notice Exposes the internal DstackKeyChain library externally where no facet passes its arguments through: the
/// Ed25519 word path (the indexer registry's) and the message builders. `DstackKeyChain.verify` is the attestor
/// facet's whole body (the membership facet calls it too): tests call a standalone DstackAttestorFacet for it, so
/// its gas figures are the facet's.
contract DstackKeyChainHarness {
    /// @notice `DstackKeyChain.verifyEd25519` of the test's chain `c`, whose derived key is 32 bytes.
    function verifyEd25519(uint8 guestApiVersion, KeyChainTest.Chain calldata c) external view returns (address) {
        return DstackKeyChain.verifyEd25519(
            guestApiVersion, c.appId, c.context, bytes32(c.derivedPubkey), c.appPubkey, c.appSignature, c.kmsSignature
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
