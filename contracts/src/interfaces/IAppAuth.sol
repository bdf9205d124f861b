// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @title dstack's app authorization interface (ERC-165 id 0x1e079198)
/// @notice The dstack KMS asks an app's auth contract whether a CVM may boot and receive its keys.
/// The struct layout must match dstack's byte for byte, so the KMS can call the cluster directly.
interface IAppAuth {
    /// @notice What the dstack KMS knows about a booting CVM.
    /// @param appId The dstack app id (the address of the app's auth contract).
    /// @param composeHash sha256 of the app's `app-compose.json`, as dstack computes it.
    /// @param instanceId The CVM instance id.
    /// @param deviceId The TDX device id of the host.
    /// @param mrAggregated Aggregated measurement of the CVM.
    /// @param mrSystem Measurement of the system part of the CVM.
    /// @param osImageHash Hash of the dstack OS image.
    /// @param tcbStatus TDX TCB status reported by the quote verifier.
    /// @param advisoryIds Intel security advisories that apply to the platform.
    struct AppBootInfo {
        address appId;
        bytes32 composeHash;
        address instanceId;
        bytes32 deviceId;
        bytes32 mrAggregated;
        bytes32 mrSystem;
        bytes32 osImageHash;
        string tcbStatus;
        string[] advisoryIds;
    }

    /// @notice Whether a CVM described by `bootInfo` may boot.
    /// @param bootInfo The boot facts the KMS verified.
    /// @return isAllowed True when every policy check passes.
    /// @return reason Empty when allowed, else the first check that refused, for operators to read.
    function isAppAllowed(AppBootInfo calldata bootInfo) external view returns (bool isAllowed, string memory reason);
}
