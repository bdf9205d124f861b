// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @title DiamondStorage
/// @notice ERC-7201 namespaced storage for the diamond's routing table and its ERC-165 answers.
library DiamondStorage {
    /// @notice Where a selector is routed and where it sits in its facet's selector list.
    /// @dev Packed into one slot so the fallback's lookup costs a single SLOAD.
    struct SelectorRoute {
        address facetAddress;
        uint96 selectorPosition;
    }

    /// @notice The selectors routed to one facet and where the facet sits in `facetAddresses`.
    struct FacetSelectors {
        bytes4[] selectors;
        uint256 facetAddressPosition;
    }

    /// @custom:storage-location erc7201:attestmesh.storage.Diamond
    struct Layout {
        mapping(bytes4 selector => SelectorRoute) selectorToFacet;
        mapping(address facet => FacetSelectors) facetSelectors;
        address[] facetAddresses;
        mapping(bytes4 interfaceId => bool) supportedInterfaces;
    }

    /// @dev keccak256(abi.encode(uint256(keccak256("attestmesh.storage.Diamond")) - 1)) & ~bytes32(uint256(0xff))
    bytes32 internal constant STORAGE_SLOT = 0x7885fd47cb615b4cf484cff093fe090dcd08af42df05770921074bffafbb1400;

    function load() internal pure returns (Layout storage l) {
        assembly ("memory-safe") {
            l.slot := STORAGE_SLOT
        }
    }
}
