// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @title IDiamondCut
/// @notice EIP-2535 function for adding, replacing and removing the functions a diamond routes to its facets.
/// @dev The errors are declared here so that every facet and library that changes routing reports the same ones.
interface IDiamondCut {
    /// @notice What a cut does with its selectors.
    enum FacetCutAction {
        Add,
        Replace,
        Remove
    }

    /// @notice One step of a diamond cut.
    /// @param facetAddress The facet the selectors are routed to; must be zero for `Remove`.
    /// @param action Whether the selectors are added, re-routed or removed.
    /// @param functionSelectors The selectors the step applies to; must not be empty.
    struct FacetCut {
        address facetAddress;
        FacetCutAction action;
        bytes4[] functionSelectors;
    }

    /// @notice A cut step carried no selectors.
    /// @param facetAddress The facet address of the empty step.
    error NoSelectorsInCut(address facetAddress);

    /// @notice An `Add` or `Replace` step named the zero address as its facet.
    /// @param action The action of the offending step.
    error FacetAddressIsZero(FacetCutAction action);

    /// @notice An `Add` or `Replace` step named a facet that has no code.
    /// @param facetAddress The facet without code.
    error FacetHasNoCode(address facetAddress);

    /// @notice A `Remove` step named a facet; removal must use the zero address.
    /// @param facetAddress The non-zero facet address given.
    error RemoveFacetAddressNotZero(address facetAddress);

    /// @notice An `Add` step named a selector that is already routed.
    /// @param selector The selector.
    /// @param currentFacet The facet the selector is routed to now.
    error SelectorAlreadyAdded(bytes4 selector, address currentFacet);

    /// @notice A `Replace` or `Remove` step named a selector that is not routed.
    /// @param selector The selector.
    error SelectorNotFound(bytes4 selector);

    /// @notice A `Replace` step would route a selector to the facet it is already routed to.
    /// @param selector The selector.
    /// @param facetAddress The facet it is routed to now and in the step.
    error ReplaceWithSameFacet(bytes4 selector, address facetAddress);

    /// @notice A `Replace` or `Remove` step named a selector implemented by the diamond itself, which can never change.
    /// @param selector The immutable selector.
    error ImmutableSelector(bytes4 selector);

    /// @notice Initialization calldata was given without an initializer to run it.
    /// @param initCalldata The calldata that would have been ignored.
    error InitCalldataWithoutInit(bytes initCalldata);

    /// @notice The initializer address has no code.
    /// @param init The initializer address.
    error InitHasNoCode(address init);

    /// @notice The initializer reverted without revert data; a reverting initializer that returns data has its
    /// revert data bubbled up unchanged instead.
    /// @param init The initializer address.
    /// @param data The calldata the initializer was delegatecalled with.
    error InitializationFailed(address init, bytes data);

    /// @notice Emitted once per successful cut, after the routing changed and before the initializer runs.
    /// @param diamondCut The cut steps, exactly as given.
    /// @param init The initializer delegatecalled after the cut, or zero for none.
    /// @param initCalldata The calldata the initializer was delegatecalled with.
    event DiamondCut(FacetCut[] diamondCut, address init, bytes initCalldata);

    /// @notice Adds, replaces or removes functions, then optionally delegatecalls an initializer.
    /// @dev Owner only. Every step is applied in order; any invalid step reverts the whole cut.
    /// @param cuts The cut steps.
    /// @param init The contract to delegatecall after the cut, or zero to skip initialization.
    /// @param initCalldata The calldata for `init`; must be empty when `init` is zero.
    function diamondCut(FacetCut[] calldata cuts, address init, bytes calldata initCalldata) external;
}
