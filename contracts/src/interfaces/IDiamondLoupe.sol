// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @title IDiamondLoupe
/// @notice EIP-2535 introspection: which facets a diamond routes to and which selectors each one serves.
/// @dev Selector order within a facet and facet order are unspecified and change as selectors are removed.
interface IDiamondLoupe {
    /// @notice A facet and the selectors routed to it.
    /// @param facetAddress The facet.
    /// @param functionSelectors The selectors routed to the facet.
    struct Facet {
        address facetAddress;
        bytes4[] functionSelectors;
    }

    /// @notice Lists every facet with the selectors routed to it.
    /// @return facets_ One entry per facet that has at least one selector.
    function facets() external view returns (Facet[] memory facets_);

    /// @notice Lists the selectors routed to a facet.
    /// @param facet The facet.
    /// @return facetFunctionSelectors_ The selectors; empty if the facet serves none.
    function facetFunctionSelectors(address facet) external view returns (bytes4[] memory facetFunctionSelectors_);

    /// @notice Lists every facet that has at least one selector.
    /// @return facetAddresses_ The facets.
    function facetAddresses() external view returns (address[] memory facetAddresses_);

    /// @notice Finds the facet a selector is routed to.
    /// @param functionSelector The selector.
    /// @return facetAddress_ The facet, or zero if the selector is not routed.
    function facetAddress(bytes4 functionSelector) external view returns (address facetAddress_);
}
