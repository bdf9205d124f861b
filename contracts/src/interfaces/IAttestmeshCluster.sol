// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IERC165} from "@openzeppelin/contracts/utils/introspection/IERC165.sol";
import {ICsk} from "./ICsk.sol";
import {IDiamond} from "./IDiamond.sol";
import {IDiamondCut} from "./IDiamondCut.sol";
import {IDiamondLoupe} from "./IDiamondLoupe.sol";
import {IDstackAttestor} from "./IDstackAttestor.sol";
import {IIndexerRegistry} from "./IIndexerRegistry.sol";
import {IMemberApps} from "./IMemberApps.sol";
import {IMembership} from "./IMembership.sol";
import {IMessages} from "./IMessages.sol";
import {IOwnership} from "./IOwnership.sol";
import {IPolicy} from "./IPolicy.sol";

/// @title The whole cluster diamond as one interface
/// @notice Every function, event and error the diamond serves, so off-chain code uses one ABI.
interface IAttestmeshCluster is
    IERC165,
    IDiamond,
    IDiamondCut,
    IDiamondLoupe,
    IOwnership,
    IPolicy,
    IDstackAttestor,
    IMembership,
    ICsk,
    IMessages,
    IIndexerRegistry,
    IMemberApps
{}
