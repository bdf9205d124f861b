// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IDiamondCut} from "../interfaces/IDiamondCut.sol";
import {DiamondStorage} from "../storage/DiamondStorage.sol";

/// @title LibDiamond
/// @notice The diamond's routing logic: EIP-2535 cuts, initialization and the ERC-165 table.
/// @dev Reverts and events use the declarations in `IDiamondCut`. None of these functions checks the caller:
/// owner-only wrappers call `LibOwnership.enforceIsOwner()` first.
library LibDiamond {
    /// @notice Applies every step of a cut, emits `DiamondCut`, then runs the initializer.
    /// @param cuts The cut steps, applied in order.
    /// @param init The contract to delegatecall after the cut, or zero to skip initialization.
    /// @param initCalldata The calldata for `init`; must be empty when `init` is zero.
    function diamondCut(IDiamondCut.FacetCut[] memory cuts, address init, bytes memory initCalldata) internal {
        for (uint256 i; i < cuts.length; ++i) {
            IDiamondCut.FacetCut memory cut = cuts[i];
            if (cut.functionSelectors.length == 0) revert IDiamondCut.NoSelectorsInCut(cut.facetAddress);
            if (cut.action == IDiamondCut.FacetCutAction.Add) {
                addFunctions(cut.facetAddress, cut.functionSelectors);
            } else if (cut.action == IDiamondCut.FacetCutAction.Replace) {
                replaceFunctions(cut.facetAddress, cut.functionSelectors);
            } else {
                // Decoding rejects out-of-range enum values, so this branch is exactly `Remove`.
                removeFunctions(cut.facetAddress, cut.functionSelectors);
            }
        }
        emit IDiamondCut.DiamondCut(cuts, init, initCalldata);
        initializeDiamondCut(init, initCalldata);
    }

    /// @notice Routes selectors that are not routed yet to `facet`.
    /// @param facet The facet; must have code.
    /// @param selectors The selectors.
    function addFunctions(address facet, bytes4[] memory selectors) internal {
        _enforceHasCode(facet, IDiamondCut.FacetCutAction.Add);
        DiamondStorage.Layout storage l = DiamondStorage.load();
        for (uint256 i; i < selectors.length; ++i) {
            bytes4 selector = selectors[i];
            address current = l.selectorToFacet[selector].facetAddress;
            if (current != address(0)) revert IDiamondCut.SelectorAlreadyAdded(selector, current);
            _route(l, facet, selector);
        }
    }

    /// @notice Re-routes routed selectors to `facet`.
    /// @param facet The facet; must have code and differ from each selector's current facet.
    /// @param selectors The selectors.
    function replaceFunctions(address facet, bytes4[] memory selectors) internal {
        _enforceHasCode(facet, IDiamondCut.FacetCutAction.Replace);
        DiamondStorage.Layout storage l = DiamondStorage.load();
        for (uint256 i; i < selectors.length; ++i) {
            bytes4 selector = selectors[i];
            address current = _enforceMutable(l, selector);
            if (current == facet) revert IDiamondCut.ReplaceWithSameFacet(selector, facet);
            _unroute(l, current, selector);
            _route(l, facet, selector);
        }
    }

    /// @notice Removes routed selectors.
    /// @param facet Must be zero: EIP-2535 marks removals that way.
    /// @param selectors The selectors.
    function removeFunctions(address facet, bytes4[] memory selectors) internal {
        if (facet != address(0)) revert IDiamondCut.RemoveFacetAddressNotZero(facet);
        DiamondStorage.Layout storage l = DiamondStorage.load();
        for (uint256 i; i < selectors.length; ++i) {
            bytes4 selector = selectors[i];
            _unroute(l, _enforceMutable(l, selector), selector);
        }
    }

    /// @notice Delegatecalls the initializer of a cut.
    /// @dev The initializer's revert data is bubbled up unchanged so its own custom errors reach the caller.
    /// @param init The initializer, or zero to skip.
    /// @param initCalldata The calldata for `init`; must be empty when `init` is zero.
    function initializeDiamondCut(address init, bytes memory initCalldata) internal {
        if (init == address(0)) {
            if (initCalldata.length != 0) revert IDiamondCut.InitCalldataWithoutInit(initCalldata);
            return;
        }
        // A delegatecall to an address without code succeeds silently, which would hide a wrong address.
        if (init.code.length == 0) revert IDiamondCut.InitHasNoCode(init);
        (bool success, bytes memory returnData) = init.delegatecall(initCalldata);
        if (success) return;
        if (returnData.length == 0) revert IDiamondCut.InitializationFailed(init, initCalldata);
        assembly ("memory-safe") {
            revert(add(returnData, 0x20), mload(returnData))
        }
    }

    /// @notice Sets the ERC-165 answer for `interfaceId`.
    /// @dev `supportsInterface` answers false for `0xffffffff` whatever is stored, as ERC-165 requires.
    /// @param interfaceId The interface id.
    /// @param supported Whether the diamond claims to implement it.
    function setSupportedInterface(bytes4 interfaceId, bool supported) internal {
        DiamondStorage.load().supportedInterfaces[interfaceId] = supported;
    }

    /// @notice The facet a selector is routed to.
    /// @param selector The selector.
    /// @return The facet, or zero if the selector is not routed.
    function facetAddress(bytes4 selector) internal view returns (address) {
        return DiamondStorage.load().selectorToFacet[selector].facetAddress;
    }

    /// @notice The stored ERC-165 answer for `interfaceId`.
    /// @param interfaceId The interface id.
    /// @return Whether `interfaceId` was marked supported.
    function isInterfaceSupported(bytes4 interfaceId) internal view returns (bool) {
        return DiamondStorage.load().supportedInterfaces[interfaceId];
    }

    function _route(DiamondStorage.Layout storage l, address facet, bytes4 selector) private {
        DiamondStorage.FacetSelectors storage fs = l.facetSelectors[facet];
        if (fs.selectors.length == 0) {
            fs.facetAddressPosition = l.facetAddresses.length;
            l.facetAddresses.push(facet);
        }
        l.selectorToFacet[selector] =
            DiamondStorage.SelectorRoute({facetAddress: facet, selectorPosition: uint96(fs.selectors.length)});
        fs.selectors.push(selector);
    }

    /// @dev Swap-and-pop keeps both lists dense, so the loupe never has to skip holes; a facet whose last
    /// selector goes leaves `facetAddresses` the same way.
    function _unroute(DiamondStorage.Layout storage l, address facet, bytes4 selector) private {
        DiamondStorage.FacetSelectors storage fs = l.facetSelectors[facet];
        uint256 position = l.selectorToFacet[selector].selectorPosition;
        uint256 lastPosition = fs.selectors.length - 1;
        if (position != lastPosition) {
            bytes4 moved = fs.selectors[lastPosition];
            fs.selectors[position] = moved;
            l.selectorToFacet[moved].selectorPosition = uint96(position);
        }
        fs.selectors.pop();
        delete l.selectorToFacet[selector];

        if (lastPosition != 0) return;
        uint256 facetPosition = fs.facetAddressPosition;
        uint256 lastFacetPosition = l.facetAddresses.length - 1;
        if (facetPosition != lastFacetPosition) {
            address movedFacet = l.facetAddresses[lastFacetPosition];
            l.facetAddresses[facetPosition] = movedFacet;
            l.facetSelectors[movedFacet].facetAddressPosition = facetPosition;
        }
        l.facetAddresses.pop();
        delete fs.facetAddressPosition;
    }

    /// @dev Selectors routed to the diamond itself are its immutable functions; EIP-2535 forbids changing them.
    function _enforceMutable(DiamondStorage.Layout storage l, bytes4 selector) private view returns (address facet) {
        facet = l.selectorToFacet[selector].facetAddress;
        if (facet == address(0)) revert IDiamondCut.SelectorNotFound(selector);
        if (facet == address(this)) revert IDiamondCut.ImmutableSelector(selector);
    }

    function _enforceHasCode(address facet, IDiamondCut.FacetCutAction action) private view {
        if (facet == address(0)) revert IDiamondCut.FacetAddressIsZero(action);
        if (facet.code.length == 0) revert IDiamondCut.FacetHasNoCode(facet);
    }
}
