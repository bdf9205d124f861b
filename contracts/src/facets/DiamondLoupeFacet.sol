// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IERC165} from "@openzeppelin/contracts/utils/introspection/IERC165.sol";
import {IDiamondLoupe} from "../interfaces/IDiamondLoupe.sol";
import {LibDiamond} from "../libraries/LibDiamond.sol";
import {DiamondStorage} from "../storage/DiamondStorage.sol";

/// @title DiamondLoupeFacet
/// @notice EIP-2535 loupe and ERC-165 for the diamond.
contract DiamondLoupeFacet is IDiamondLoupe, IERC165 {
    /// @inheritdoc IDiamondLoupe
    function facets() external view returns (Facet[] memory facets_) {
        DiamondStorage.Layout storage l = DiamondStorage.load();
        uint256 count = l.facetAddresses.length;
        facets_ = new Facet[](count);
        for (uint256 i; i < count; ++i) {
            address facet = l.facetAddresses[i];
            facets_[i] = Facet({facetAddress: facet, functionSelectors: l.facetSelectors[facet].selectors});
        }
    }

    /// @inheritdoc IDiamondLoupe
    function facetFunctionSelectors(address facet) external view returns (bytes4[] memory facetFunctionSelectors_) {
        return DiamondStorage.load().facetSelectors[facet].selectors;
    }

    /// @inheritdoc IDiamondLoupe
    function facetAddresses() external view returns (address[] memory facetAddresses_) {
        return DiamondStorage.load().facetAddresses;
    }

    /// @inheritdoc IDiamondLoupe
    function facetAddress(bytes4 functionSelector) external view returns (address facetAddress_) {
        return LibDiamond.facetAddress(functionSelector);
    }

    /// @inheritdoc IERC165
    /// @dev ERC-165 itself is always claimed, since this function is routed; everything else comes from the table
    /// the initializers fill.
    function supportsInterface(bytes4 interfaceId) external view returns (bool) {
        if (interfaceId == 0xffffffff) return false;
        return interfaceId == type(IERC165).interfaceId || LibDiamond.isInterfaceSupported(interfaceId);
    }
}
