// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IDiamond} from "./interfaces/IDiamond.sol";
import {IDiamondCut} from "./interfaces/IDiamondCut.sol";
import {LibDiamond} from "./libraries/LibDiamond.sol";
import {LibOwnership} from "./libraries/LibOwnership.sol";
import {DiamondStorage} from "./storage/DiamondStorage.sol";

/// @title Diamond
/// @notice The cluster contract: an EIP-2535 diamond that routes every call to the facet registered for its
/// selector.
/// @dev The cluster takes no ETH. There is no `receive`, and any call carrying value is refused before routing, so
/// no facet function can take ETH, even one declared payable.
contract Diamond is IDiamond {

    /// @notice Sets the owner, applies the initial cut and runs its initializer.
    /// @dev Emits `IOwnership.OwnershipTransferred(address(0), owner)` and `IDiamondCut.DiamondCut`, even for an
    /// empty cut, so indexers see the diamond's whole history from its first block.
    /// @param owner The cluster owner; must not be zero.
    /// @param cuts The initial cut steps, typically adding the cut, loupe and ownership facets.
    /// @param init The initializer to delegatecall after the cut, or zero for none.
    /// @param initCalldata The calldata for `init`.
    constructor(address owner, IDiamondCut.FacetCut[] memory cuts, address init, bytes memory initCalldata) {
        if (owner == address(0)) revert OwnerIsZero();
        LibOwnership.setOwner(owner);
        LibDiamond.diamondCut(cuts, init, initCalldata);
    }

    /// @notice Delegatecalls the facet registered for `msg.sig` and returns or reverts with its result unchanged.
    /// @dev Payable only so that sending ETH fails with `EtherNotAccepted` rather than an empty revert.
    fallback() external payable {
        if (msg.value != 0) revert EtherNotAccepted(msg.value);
        address facet = DiamondStorage.load().selectorToFacet[msg.sig].facetAddress;
        if (facet == address(0)) revert FunctionNotFound(msg.sig);
        // Not memory-safe on purpose: the call's data owns all memory because this frame never returns to Solidity.
        assembly {
            calldatacopy(0, 0, calldatasize())
            let success := delegatecall(gas(), facet, 0, calldatasize(), 0, 0)
            returndatacopy(0, 0, returndatasize())
            if iszero(success) { revert(0, returndatasize()) }
            return(0, returndatasize())
        }
    }
}
