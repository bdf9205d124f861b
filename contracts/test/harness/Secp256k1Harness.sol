// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {Secp256k1} from "../../src/libraries/Secp256k1.sol";

/// @title Secp256k1Harness
/// @notice Exposes the internal Secp256k1 library externally, with calldata inputs as the facets pass them.
contract Secp256k1Harness {
    function parseCompressed(bytes calldata key) external pure returns (uint8 prefix, uint256 x) {
        return Secp256k1.parseCompressed(key);
    }

    function checkCompressed(uint8 prefix, uint256 x) external pure {
        Secp256k1.checkCompressed(prefix, x);
    }

    function decompress(uint8 prefix, uint256 x) external view returns (uint256 y) {
        return Secp256k1.decompress(prefix, x);
    }

    function compressedToAddress(bytes calldata key) external view returns (address) {
        return Secp256k1.compressedToAddress(key);
    }

    function toAddress(uint256 x, uint256 y) external pure returns (address) {
        return Secp256k1.toAddress(x, y);
    }

    function recover(bytes32 digest, bytes calldata signature) external view returns (address) {
        return Secp256k1.recover(digest, signature);
    }
}
