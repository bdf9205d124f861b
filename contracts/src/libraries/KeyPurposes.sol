// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @title The dstack key purposes the cluster accepts
/// @notice A key chain proves a key for one purpose; separate purposes keep a member key from ever
/// passing as an indexer key and the other way round. Versioned so a change of key scheme is visible.
library KeyPurposes {
    string internal constant MEMBER = "attestmesh-member-v1";
    string internal constant INDEXER = "attestmesh-indexer-v1";
}
