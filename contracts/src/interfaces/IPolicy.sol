// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IAppAuth} from "./IAppAuth.sol";
import {IAppAuthBasicManagement} from "./IAppAuthBasicManagement.sol";

/// @title The cluster's policy: who may boot, who may join
/// @notice Owner-managed allowlists (compose hashes, devices, app ids, KMS roots) and a revocation list
/// (app ids, devices). A revocation carries its timestamp, is permanent and beats every allowlist.
/// Every change emits an event, so an auditor can rebuild the whole policy from logs alone.
///
/// Compose hashes are scoped by role, as dstack scopes them per app contract: every app id has a
/// role (node unless the owner names it an indexer app id), and a boot is allowed only with a compose
/// hash allowed for that role, so an allowed node app id cannot boot the indexer's compose (or a
/// debug build allowed only for the indexer), nor the reverse. dstack's role-less management calls
/// (`addComposeHash`, `removeComposeHash`, `isComposeHashAllowed`) act on the node role, and dstack's
/// `ComposeHashAdded`/`ComposeHashRemoved` events mirror the node role only; `ComposeHashAllowedFor`
/// and `ComposeHashDeniedFor` record every role, the node role included.
interface IPolicy is IAppAuth, IAppAuthBasicManagement {
    /// @notice What an app id runs, which decides the compose hashes it may boot.
    /// @dev Node is the zero value: an app id the owner never named is a node app id.
    enum AppRole {
        Node,
        Indexer
    }

    /// @notice The policy as a flat view, for tools.
    /// @param allowAnyDevice Whether the device allowlist is bypassed (revoked devices stay refused).
    /// @param composeHashes Every allowed compose hash.
    /// @param deviceIds Every allowed device id.
    /// @param appIds Every allowed app id.
    /// @param kmsRoots Every allowed KMS root signer.
    /// @param requireTcbUpToDate Whether a boot needs TCB status "UpToDate".
    /// @param indexerComposeHashes Every compose hash allowed for the indexer role (`composeHashes` holds
    /// the node role's).
    /// @param indexerAppIds Every app id with the indexer role, allowed or not (the rest are node app ids).
    struct PolicySnapshot {
        bool allowAnyDevice;
        bytes32[] composeHashes;
        bytes32[] deviceIds;
        address[] appIds;
        address[] kmsRoots;
        bool requireTcbUpToDate;
        bytes32[] indexerComposeHashes;
        address[] indexerAppIds;
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

    /// @notice The app id has another role than the call needs.
    /// @param appId The app id.
    /// @param role Its role.
    /// @param required The role the call needs.
    error AppRoleMismatch(address appId, AppRole role, AppRole required);

    /// @notice The app id has an active member, which runs the node's code: it cannot change role until
    /// the member has left or been evicted.
    /// @param appId The app id.
    /// @param memberId Its active member.
    error AppIdHasActiveMember(address appId, uint64 memberId);

    /// @notice The compose hash is not allowed for the role the call needs.
    /// @param composeHash The compose hash.
    /// @param role The role it was checked for.
    error ComposeHashNotAllowedFor(bytes32 composeHash, AppRole role);

    /// @notice Whether any device may host members (revoked devices stay refused).
    /// @param allowAny The new setting.
    event AllowAnyDeviceSet(bool allowAny);

    /// @notice Whether a boot needs the TDX TCB status "UpToDate" (dstack apps' `requireTcbUpToDate`).
    /// @param required The new setting.
    event RequireTcbUpToDateSet(bool required);

    /// @notice A compose hash may now boot app ids of `role`. Emitted for every role; for the node role
    /// dstack's `ComposeHashAdded` is emitted beside it.
    /// @param composeHash The allowed compose hash.
    /// @param role The role it is allowed for.
    event ComposeHashAllowedFor(bytes32 indexed composeHash, AppRole indexed role);

    /// @notice A compose hash may no longer boot app ids of `role`. Emitted for every role; for the node
    /// role dstack's `ComposeHashRemoved` is emitted beside it.
    /// @param composeHash The compose hash.
    /// @param role The role it is no longer allowed for.
    event ComposeHashDeniedFor(bytes32 indexed composeHash, AppRole indexed role);

    /// @notice An app id's role changed (every app id starts as a node app id).
    /// @param appId The app id.
    /// @param role Its new role.
    event AppRoleSet(address indexed appId, AppRole role);

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
    /// @dev Restoring it (false) opens the next CSK epoch (ICsk): members on unlisted devices stop standing.
    /// @param allowAny True to let any non-revoked device host members.
    function setAllowAnyDevice(bool allowAny) external;

    /// @notice Refuse, or stop refusing, boots whose `tcbStatus` is not exactly "UpToDate" (dstack's
    /// `DstackApp.requireTcbUpToDate`). Owner only; emits only when the value changes. Joining is not
    /// affected: the TCB status is known to the KMS at boot, not to the chain at registration.
    /// @param required True to refuse out-of-date (or unknown) TCB statuses at boot.
    function setRequireTcbUpToDate(bool required) external;

    /// @notice Allow an app id to join the cluster, as a node app id. Owner only. Reverts if the app id
    /// was revoked. An indexer app id given here becomes a node app id again (reverts with
    /// `AppIdHasActiveMember` while it has an active member).
    /// @param appId The dstack app id.
    function addAppId(address appId) external;

    /// @notice Allow an app id with a role: it may boot only compose hashes allowed for that role.
    /// Owner only. Reverts if the app id is zero or revoked, or if the role would change while the app id
    /// has an active member. A member app (the factory's clone) may take either role: it forwards the
    /// KMS's question to the cluster, which answers by role.
    /// Emits `AppRoleSet` when the role changes and `AppIdAdded` when the app id was not allowed.
    /// @param appId The dstack app id.
    /// @param role Its role.
    function addAppIdFor(address appId, AppRole role) external;

    /// @notice Allow a compose hash for app ids of one role. Owner only. Reverts on a zero hash;
    /// emits `ComposeHashAllowedFor` (and for the node role `ComposeHashAdded`) only when it was not allowed.
    /// @param composeHash sha256 of an `app-compose.json`.
    /// @param role The role it is allowed for.
    function addComposeHashFor(bytes32 composeHash, AppRole role) external;

    /// @notice Stop allowing a compose hash for one role. Owner only. Emits `ComposeHashDeniedFor` (and
    /// for the node role `ComposeHashRemoved`) only when it was allowed. Running members are not evicted;
    /// for the node role the next CSK epoch opens (ICsk), so the key is made without the members running it.
    /// @param composeHash The compose hash.
    /// @param role The role it is no longer allowed for.
    function removeComposeHashFor(bytes32 composeHash, AppRole role) external;

    /// @notice Stop allowing an app id. Owner only. An active member stays until evicted.
    /// @param appId The dstack app id.
    function removeAppId(address appId) external;

    /// @notice Revoke an app id for good, evict its latest member (active, or left and not yet
    /// evicted: leaving first does not dodge it; see `IMembership.evict`), and clear the indexer
    /// record if the indexer runs under it. Owner only.
    /// @param appId The dstack app id.
    /// @param reason A reason code for the audit trail.
    function revokeAppId(address appId, bytes32 reason) external;

    /// @notice Revoke a device for good. Owner only. Opens the next CSK epoch (ICsk): members on it stop
    /// standing, so the next key is made without them before any eviction.
    /// @param deviceId The TDX device id.
    /// @param reason A reason code for the audit trail.
    function revokeDevice(bytes32 deviceId, bytes32 reason) external;

    /// @notice Accept key chains signed by a KMS root. Owner only.
    /// @param kmsRoot The KMS root's signer address.
    function addKmsRoot(address kmsRoot) external;

    /// @notice Stop accepting a KMS root for new registrations. Owner only. When it was accepted, the next
    /// CSK epoch opens (ICsk): the members it admitted stop standing.
    /// @param kmsRoot The KMS root's signer address.
    function removeKmsRoot(address kmsRoot) external;

    /// @notice Whether a compose hash is allowed for the node role (dstack's role-less question).
    function isComposeHashAllowed(bytes32 composeHash) external view returns (bool);

    /// @notice Whether a compose hash is allowed for app ids of `role`.
    function isComposeHashAllowedFor(bytes32 composeHash, AppRole role) external view returns (bool);

    /// @notice An app id's role (node unless the owner named it an indexer app id).
    function appRole(address appId) external view returns (AppRole);

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
