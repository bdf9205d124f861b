// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IDstackAttestor} from "../interfaces/IDstackAttestor.sol";
import {DstackKeyChain} from "../libraries/DstackKeyChain.sol";

/// @title dstack attestor facet
/// @notice Stateless, so it works on the diamond and deployed alone (no constructor arguments).
contract DstackAttestorFacet is IDstackAttestor {
    /// @inheritdoc IDstackAttestor
    function verifyDstackKeyChain(
        address appId,
        string calldata purpose,
        bytes calldata derivedPubkey,
        bytes calldata appPubkey,
        bytes calldata appSignature,
        bytes calldata kmsSignature
    ) external view returns (address kmsSigner) {
        return DstackKeyChain.verify(
            DstackKeyChain.GUEST_API_V0, appId, bytes(purpose), derivedPubkey, appPubkey, appSignature, kmsSignature
        );
    }

    /// @inheritdoc IDstackAttestor
    function verifyDstackKeyChainV1(
        address appId,
        bytes calldata domain,
        bytes calldata derivedPubkey,
        bytes calldata appPubkey,
        bytes calldata appSignature,
        bytes calldata kmsSignature
    ) external view returns (address kmsSigner) {
        return DstackKeyChain.verify(
            DstackKeyChain.GUEST_API_V1, appId, domain, derivedPubkey, appPubkey, appSignature, kmsSignature
        );
    }
}
