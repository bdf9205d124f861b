// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IDiamondCut} from "../interfaces/IDiamondCut.sol";
import {LibDiamond} from "../libraries/LibDiamond.sol";
import {LibOwnership} from "../libraries/LibOwnership.sol";

/// @title DiamondCutFacet
/// @notice Lets the cluster owner change which facets the diamond routes to.
contract DiamondCutFacet is IDiamondCut {
    /// @inheritdoc IDiamondCut
    function diamondCut(FacetCut[] calldata cuts, address init, bytes calldata initCalldata) external {
        LibOwnership.enforceIsOwner();
        LibDiamond.diamondCut(cuts, init, initCalldata);
    }
}
