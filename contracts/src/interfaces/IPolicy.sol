// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IAppAuth} from "./IAppAuth.sol";
import {IAppAuthBasicManagement} from "./IAppAuthBasicManagement.sol";

/// @title The cluster's policy: who may boot, who may join
/// @notice Owner-managed allowlists (compose hashes, devices, app ids, KMS roots) and a revocation list
/// (app ids, devices). A revocation carries its timestamp, is permanent and beats every allowlist.
/// Every change emits an event, so an auditor can rebuild the whole policy from logs alone.
interface IPolicy is IAppAuth, IAppAuthBasicManagement {
    /// @notice The policy as a flat view, for tools.
    /// @param allowAnyDevice Whether the device allowlist is bypassed (revoked devices stay refused).
    /// @param composeHashes Every allowed compose hash.
    /// @param deviceIds Every allowed device id.
    /// @param appIds Every allowed app id.
    /// @param kmsRoots Every allowed KMS root signer.
    /// @param requireTcbUpToDate Whether a boot needs TCB status "UpToDate".
    struct PolicySnapshot {
        bool allowAnyDevice;
        bytes32[] composeHashes;
        bytes32[] deviceIds;
        address[] appIds;
        address[] kmsRoots;
        bool requireTcbUpToDate;
    }

    /// @notice The app id was revoked; no allowlist entry can bring it back.
    /// @param appId The revoked app id.
    /// @param revokedAt When it was revoked (block timestamp).
    error AppIdRevoked(address appId, uint64 revokedAt);

    /// @notice The device was revoked; no allowlist entry can bring it back.
    /// @param deviceId The revoked device id.
    /// @param revokedAt When it was revoked (block timestamp).
    error DeviceIdRevoked(bytes32 deviceId, uint64 revokedAt);

    /// @notice A zero value was given where an identifier is required.
    error ZeroIdentifier();

    /// @notice Whether any device may host members (revoked devices stay refused).
    /// @param allowAny The new setting.
    event AllowAnyDeviceSet(bool allowAny);

    /// @notice Whether a boot needs the TDX TCB status "UpToDate" (dstack apps' `requireTcbUpToDate`).
    /// @param required The new setting.
    event RequireTcbUpToDateSet(bool required);

    /// @notice An app id may now join (and boot, together with the compose and device checks).
    /// @param appId The app id.
    event AppIdAdded(address indexed appId);

    /// @notice An app id is no longer allowed. Its active member, if any, stays until evicted.
    /// @param appId The app id.
    event AppIdRemoved(address indexed appId);

    /// @notice An app id was revoked for good; its member, if any, is evicted in the same transaction.
    /// @param appId The app id.
    /// @param revokedAt The block timestamp of the revocation.
    /// @param reason The owner's reason code (opaque to the contract).
    event AppIdRevokedAt(address indexed appId, uint64 revokedAt, bytes32 reason);

    /// @notice A device was revoked for good.
    /// @param deviceId The device id.
    /// @param revokedAt The block timestamp of the revocation.
    /// @param reason The owner's reason code (opaque to the contract).
    event DeviceRevokedAt(bytes32 indexed deviceId, uint64 revokedAt, bytes32 reason);

    /// @notice Signatures by this KMS root are now accepted for key chains.
    /// @param kmsRoot The KMS root's signer address.
    event KmsRootAdded(address indexed kmsRoot);

    /// @notice Signatures by this KMS root are no longer accepted for new registrations.
    /// @param kmsRoot The KMS root's signer address.
    event KmsRootRemoved(address indexed kmsRoot);

    /// @notice Bypass or restore the device allowlist. Owner only; emits only when the value changes.
    /// @param allowAny True to let any non-revoked device host members.
    function setAllowAnyDevice(bool allowAny) external;

    /// @notice Refuse, or stop refusing, boots whose `tcbStatus` is not exactly "UpToDate" (dstack's
    /// `DstackApp.requireTcbUpToDate`). Owner only; emits only when the value changes. Joining is not
    /// affected: the TCB status is known to the KMS at boot, not to the chain at registration.
    /// @param required True to refuse out-of-date (or unknown) TCB statuses at boot.
    function setRequireTcbUpToDate(bool required) external;

    /// @notice Allow an app id to join the cluster. Owner only. Reverts if the app id was revoked.
    /// @param appId The dstack app id.
    function addAppId(address appId) external;

    /// @notice Stop allowing an app id. Owner only. An active member stays until evicted.
    /// @param appId The dstack app id.
    function removeAppId(address appId) external;

    /// @notice Revoke an app id for good, evict its latest member (active, or left and not yet
    /// evicted: leaving first does not dodge it; see `IMembership.evict`), and clear the indexer
    /// record if the indexer runs under it. Owner only.
    /// @param appId The dstack app id.
    /// @param reason A reason code for the audit trail.
    function revokeAppId(address appId, bytes32 reason) external;

    /// @notice Revoke a device for good. Owner only.
    /// @param deviceId The TDX device id.
    /// @param reason A reason code for the audit trail.
    function revokeDevice(bytes32 deviceId, bytes32 reason) external;

    /// @notice Accept key chains signed by a KMS root. Owner only.
    /// @param kmsRoot The KMS root's signer address.
    function addKmsRoot(address kmsRoot) external;

    /// @notice Stop accepting a KMS root for new registrations. Owner only.
    /// @param kmsRoot The KMS root's signer address.
    function removeKmsRoot(address kmsRoot) external;

    /// @notice Whether a compose hash is allowed.
    function isComposeHashAllowed(bytes32 composeHash) external view returns (bool);

    /// @notice Whether a device is on the allowlist (ignores `allowAnyDevice` and revocations).
    function isDeviceAllowed(bytes32 deviceId) external view returns (bool);

    /// @notice Whether the device allowlist is bypassed.
    function allowAnyDevice() external view returns (bool);

    /// @notice Whether a boot needs TCB status "UpToDate".
    function requireTcbUpToDate() external view returns (bool);

    /// @notice Whether an app id is allowed and not revoked.
    function isAppIdAllowed(address appId) external view returns (bool);

    /// @notice Whether a KMS root is accepted.
    function isKmsRootAllowed(address kmsRoot) external view returns (bool);

    /// @notice When an app id was revoked, or 0 if it never was.
    function appIdRevokedAt(address appId) external view returns (uint64);

    /// @notice When a device was revoked, or 0 if it never was.
    function deviceRevokedAt(bytes32 deviceId) external view returns (uint64);

    /// @notice The whole allowlist state in one call.
    function policySnapshot() external view returns (PolicySnapshot memory);
}
