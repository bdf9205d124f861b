// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {ICsk} from "../../src/interfaces/ICsk.sol";
import {IMemberStanding} from "../../src/interfaces/IMemberStanding.sol";
import {IMembership} from "../../src/interfaces/IMembership.sol";
import {IMessages} from "../../src/interfaces/IMessages.sol";
import {ClusterFixture} from "../utils/ClusterFixture.sol";
import {Test} from "../utils/Test.sol";

/// @title ClusterHandler
/// @notice The invariant fuzzer's actor: owner of a cluster and puppeteer of a few apps whose member keys
/// sign whatever keys the fuzzer picks, from small pools so that collisions are the common case (a
/// malicious member copying another's key). Every action is tried and may be refused; each one that
/// succeeds is checked against the rule it must have obeyed, and a breach is counted in `violations`
/// (a revert here would be swallowed by the fuzzer, a counter is not).
contract ClusterHandler is ClusterFixture {
    uint256 internal constant APPS = 5;
    uint256 internal constant KEYS = 3;

    App[] internal apps;
    /// @notice Actions that succeeded although a rule said they must not have (or failed although
    /// they must have succeeded), in total and per action.
    uint256 public violations;
    mapping(bytes32 action => uint256) public violationsOf;
    /// @notice Successful calls, per action, to show the fuzzer reached every path.
    mapping(bytes32 action => uint256) public succeeded;

    constructor() {
        _deployCluster();
        for (uint256 i; i < APPS; ++i) {
            App memory app = _makeApp(i);
            apps.push(app);
            cluster.addAppId(app.appId);
        }
    }

    function diamond() external view returns (address) {
        return address(cluster);
    }

    function appCount() external pure returns (uint256) {
        return APPS;
    }

    function appIdAt(uint256 i) external view returns (address) {
        return apps[i].appId;
    }

    /// @notice What the app of `appId` states at registration.
    function claimsOf(address appId) external view returns (IMemberStanding.RuntimeClaims memory) {
        for (uint256 i; i < APPS; ++i) {
            if (apps[i].appId == appId) return apps[i].claims;
        }
        revert("unknown app");
    }

    function kmsRoot() external pure returns (address) {
        return vm.addr(KMS_KEY);
    }

    // ---- membership ----

    function register(uint256 appSeed, uint256 wireguardSeed, uint256 identitySeed) external {
        App memory app = apps[appSeed % APPS];
        bytes32 wireguardKey = _wireguardKey(wireguardSeed);
        bytes32 identityKey = _identityKey(identitySeed);
        (address wgApp,,) = cluster.wireguardKeyHolder(wireguardKey);
        (address idApp,,) = cluster.identityKeyHolder(identityKey);
        (uint64 before, bool wasActive) = cluster.memberOfApp(app.appId);
        // Revocation beats allowlisting: only claims the policy admits now may join, or stay.
        bool joinable = cluster.deviceRevokedAt(app.claims.deviceId) == 0
            && cluster.isComposeHashAllowed(app.claims.composeHash) && cluster.isKmsRootAllowed(vm.addr(KMS_KEY));
        try this.registerAs(appSeed % APPS, wireguardKey, identityKey) returns (uint64 memberId) {
            if (!joinable) _violated("register stale");
            if (wasActive && memberId == before) return; // the restart no-op
            if (wgApp != address(0) && wgApp != app.appId) _violated("register");
            if (idApp != address(0) && idApp != app.appId) _violated("register");
            ++succeeded["register"];
        } catch {}
    }

    /// @dev External so that `register` can try it; only this contract may call it.
    function registerAs(uint256 index, bytes32 wireguardKey, bytes32 identityKey) external returns (uint64) {
        require(msg.sender == address(this));
        return _register(apps[index], wireguardKey, identityKey);
    }

    function memberLeaves(uint256 appSeed) external {
        App memory app = apps[appSeed % APPS];
        (uint64 memberId, bool active) = cluster.memberOfApp(app.appId);
        if (!active) return;
        _leave(app, memberId);
        ++succeeded["leave"];
    }

    function evict(uint256 appSeed, uint8 reason) external {
        address appId = apps[appSeed % APPS].appId;
        (uint64 memberId,) = cluster.memberOfApp(appId);
        // Sometimes an older record of the app: the one the owner saw before it left and came back.
        if (memberId > 1 && reason % 3 == 0) {
            for (uint64 id = memberId - 1; id > 0; --id) {
                if (cluster.member(id).appId == appId) {
                    memberId = id;
                    break;
                }
            }
        }
        IMembership.MemberStatus status = cluster.member(memberId).status;
        try cluster.evict(memberId, reason) {
            if (status != IMembership.MemberStatus.Active && status != IMembership.MemberStatus.Left) _violated("evict");
            (uint64 latest, bool active) = cluster.memberOfApp(appId);
            if (active || cluster.isAppIdAllowed(appId)) _violated("evict");
            if (cluster.member(latest).status != IMembership.MemberStatus.Evicted) _violated("evict");
            ++succeeded["evict"];
        } catch {
            if (status == IMembership.MemberStatus.Active || status == IMembership.MemberStatus.Left) _violated("evict");
        }
    }

    function revoke(uint256 appSeed) external {
        address appId = apps[appSeed % APPS].appId;
        try cluster.revokeAppId(appId, bytes32("fuzz")) {
            (, bool active) = cluster.memberOfApp(appId);
            if (active) _violated("revoke");
            ++succeeded["revoke"];
        } catch {}
    }

    function allow(uint256 appSeed) external {
        try cluster.addAppId(apps[appSeed % APPS].appId) {} catch {}
    }

    // ---- revocation that reaches running members ----

    function revokeDevice(uint256 appSeed) external {
        try cluster.revokeDevice(apps[appSeed % APPS].claims.deviceId, bytes32("fuzz")) {
            ++succeeded["revokeDevice"];
        } catch {}
    }

    function setComposeAllowed(bool b, bool allowed) external {
        bytes32 composeHash = b ? COMPOSE_B : COMPOSE_A;
        if (allowed) cluster.addComposeHash(composeHash);
        else cluster.removeComposeHash(composeHash);
    }

    function setKmsRootAllowed(bool allowed) external {
        if (allowed) cluster.addKmsRoot(vm.addr(KMS_KEY));
        else cluster.removeKmsRoot(vm.addr(KMS_KEY));
    }

    /// @notice The owner's one action: exactly the stale active members are evicted, the rest stay.
    function evictStale() external {
        (IMembership.MemberView[] memory before,) = cluster.members(1, 1000);
        bool[] memory stale = new bool[](before.length);
        uint256 staleCount;
        for (uint256 i; i < before.length; ++i) {
            stale[i] = cluster.memberStanding(before[i].memberId) > IMemberStanding.Standing.Unrecorded;
            if (stale[i]) ++staleCount;
        }
        (uint256 evicted, uint64 nextId) = cluster.evictStale(1, 1000);
        if (evicted != staleCount || nextId != 0) _violated("evictStale");
        for (uint256 i; i < before.length; ++i) {
            IMembership.MemberView memory m = cluster.member(before[i].memberId);
            if (stale[i]) {
                if (m.status != IMembership.MemberStatus.Evicted || m.endReason != 254) _violated("evictStale");
                if (cluster.isAppIdAllowed(m.appId)) _violated("evictStale");
            } else if (m.status != before[i].status) {
                _violated("evictStale");
            }
        }
        ++succeeded["evictStale"];
    }

    // ---- CSK epochs ----

    function commit(uint256 appSeed, uint256 commitmentSeed) external {
        App memory app = apps[appSeed % APPS];
        (uint64 memberId, bool active) = cluster.memberOfApp(app.appId);
        if (!active) return;
        (uint64 epoch,,,) = cluster.cskRecovery();
        (,, uint64 barred,) = cluster.cskRecovery();
        try this.commitAs(appSeed % APPS, memberId, epoch, keccak256(abi.encode(commitmentSeed))) {
            if (memberId == barred) _violated("commit");
            ++succeeded["commit"];
        } catch {}
    }

    function commitAs(uint256 index, uint64 memberId, uint64 epoch, bytes32 commitment) external {
        require(msg.sender == address(this));
        _commit(apps[index], memberId, epoch, commitment);
    }

    function confirm(uint256 appSeed) external {
        App memory app = apps[appSeed % APPS];
        (uint64 memberId, bool active) = cluster.memberOfApp(app.appId);
        if (!active) return;
        (uint64 epoch, bytes32 commitment, uint64 committer,,) = cluster.currentCsk();
        try this.confirmAs(appSeed % APPS, memberId, epoch, commitment) {
            if (memberId == committer || commitment == bytes32(0)) _violated("confirm");
            ++succeeded["confirm"];
        } catch {}
    }

    function confirmAs(uint256 index, uint64 memberId, uint64 epoch, bytes32 commitment) external {
        require(msg.sender == address(this));
        _confirm(apps[index], memberId, epoch, commitment);
    }

    function reopen(uint256 appSeed, bool anyMember) external {
        (uint64 epoch, bytes32 commitment, uint64 committer,, uint40 committedAt) = cluster.currentCsk();
        // Mostly an active member other than the committer (the interesting case), sometimes anyone.
        uint256 index = appSeed % APPS;
        uint64 memberId;
        for (uint256 k; k < APPS; ++k) {
            uint256 i = (appSeed + k) % APPS;
            (uint64 id, bool active) = cluster.memberOfApp(apps[i].appId);
            if (active && (anyMember || id != committer)) {
                (index, memberId) = (i, id);
                break;
            }
        }
        if (memberId == 0) return;
        (, uint64 confirmer,,) = cluster.cskRecovery();
        try this.reopenAs(index, memberId, epoch) {
            // A member re-opens only a committed, unconfirmed epoch of someone else, after the delay.
            if (commitment == bytes32(0) || confirmer != 0 || memberId == committer) _violated("reopen");
            if (block.timestamp < uint256(committedAt) + cluster.cskReopenDelay()) _violated("reopen");
            (uint64 next,, uint64 barred,) = cluster.cskRecovery();
            if (next != epoch + 1 || barred != committer) _violated("reopen");
            ++succeeded["reopen"];
        } catch {}
    }

    function reopenAs(uint256 index, uint64 memberId, uint64 epoch) external {
        require(msg.sender == address(this));
        _reopen(apps[index], memberId, epoch);
    }

    function ownerOpen() external {
        cluster.openCskEpoch();
        ++succeeded["ownerOpen"];
    }

    function warp(uint256 seconds_) external {
        vm.warp(block.timestamp + bound(seconds_, 1, 2 * uint256(cluster.cskReopenDelay())));
    }

    function _violated(bytes32 action) internal {
        ++violations;
        ++violationsOf[action];
    }

    function _wireguardKey(uint256 seed) internal pure returns (bytes32) {
        return keccak256(abi.encode("wireguard", seed % KEYS));
    }

    function _identityKey(uint256 seed) internal pure returns (bytes32) {
        return keccak256(abi.encode("identity", seed % KEYS));
    }
}

/// @title Invariants of the cluster rules under random register / leave / evict / revoke / re-allow,
/// device revocations, compose hash and KMS root withdrawals, evictStale, and
/// commit / confirm / re-open / owner-open / time sequences (issue 13).
contract ClusterRulesInvariantTest is Test {
    /// @dev The shape Foundry-compatible runners read from `targetSelectors()`.
    struct FuzzSelector {
        address addr;
        bytes4[] selectors;
    }

    ClusterHandler internal handler;
    IMembership internal membership;
    ICsk internal csk;

    function setUp() public {
        handler = new ClusterHandler();
        membership = IMembership(handler.diamond());
        csk = ICsk(handler.diamond());
    }

    function targetContracts() public view returns (address[] memory targets) {
        targets = new address[](1);
        targets[0] = address(handler);
    }

    function targetSelectors() public view returns (FuzzSelector[] memory targets) {
        bytes4[] memory selectors = new bytes4[](14);
        selectors[0] = ClusterHandler.register.selector;
        selectors[1] = ClusterHandler.memberLeaves.selector;
        selectors[2] = ClusterHandler.evict.selector;
        selectors[3] = ClusterHandler.revoke.selector;
        selectors[4] = ClusterHandler.allow.selector;
        selectors[5] = ClusterHandler.commit.selector;
        selectors[6] = ClusterHandler.confirm.selector;
        selectors[7] = ClusterHandler.reopen.selector;
        selectors[8] = ClusterHandler.ownerOpen.selector;
        selectors[9] = ClusterHandler.warp.selector;
        selectors[10] = ClusterHandler.revokeDevice.selector;
        selectors[11] = ClusterHandler.setComposeAllowed.selector;
        selectors[12] = ClusterHandler.setKmsRootAllowed.selector;
        selectors[13] = ClusterHandler.evictStale.selector;
        targets = new FuzzSelector[](1);
        targets[0] = FuzzSelector(address(handler), selectors);
    }

    /// @notice No two active members share a WireGuard key or an identity key, and each active member is
    /// the recorded holder of both of its keys.
    function invariant_noTwoActiveMembersShareAKey() public view {
        (IMembership.MemberView[] memory page,) = membership.members(1, 1000);
        uint256 active;
        for (uint256 i; i < page.length; ++i) {
            IMembership.MemberView memory m = page[i];
            if (m.status != IMembership.MemberStatus.Active) continue;
            ++active;
            for (uint256 j = i + 1; j < page.length; ++j) {
                if (page[j].status != IMembership.MemberStatus.Active) continue;
                assertNotEq(m.wireguardKey, page[j].wireguardKey, "two active members share a WireGuard key");
                assertNotEq(m.identityKey, page[j].identityKey, "two active members share an identity key");
                assertNotEq(m.appId, page[j].appId, "two active members share an app id");
            }
            (address wgApp, uint64 wgMember, bool wgActive) = membership.wireguardKeyHolder(m.wireguardKey);
            assertEq(wgApp, m.appId, "the WireGuard key is bound to the member's app");
            assertEq(wgMember, m.memberId, "the WireGuard key's holder is the member");
            assertTrue(wgActive);
            (address idApp, uint64 idMember, bool idActive) = membership.identityKeyHolder(m.identityKey);
            assertEq(idApp, m.appId, "the identity key is bound to the member's app");
            assertEq(idMember, m.memberId, "the identity key's holder is the member");
            assertTrue(idActive);
        }
        (,,, uint64 activeMembers) = membership.meshConfig();
        assertEq(active, activeMembers, "the active-member counter");
    }

    /// @notice A bound key is always bound to a member that registered it and was not evicted since.
    function invariant_boundKeysBelongToTheirAppsLatestMembers() public view {
        (IMembership.MemberView[] memory page,) = membership.members(1, 1000);
        for (uint256 i; i < page.length; ++i) {
            (address app, uint64 holder,) = membership.wireguardKeyHolder(page[i].wireguardKey);
            if (holder == 0) continue;
            IMembership.MemberView memory h = membership.member(holder);
            assertEq(h.appId, app);
            assertEq(h.wireguardKey, page[i].wireguardKey);
            assertTrue(h.status != IMembership.MemberStatus.Evicted, "an evicted member's key stays bound");
        }
    }

    /// @notice Each active member's recorded claims are what its app stated and the root that admitted it,
    /// and its standing is good exactly while the policy admits those claims (device first, then
    /// compose hash, then KMS root); no registration joined or stayed with claims the policy refused.
    function invariant_standingFollowsThePolicy() public view {
        IMemberStanding standings = IMemberStanding(handler.diamond());
        ClusterHandlerPolicy policy = ClusterHandlerPolicy(handler.diamond());
        (IMembership.MemberView[] memory page,) = membership.members(1, 1000);
        for (uint256 i; i < page.length; ++i) {
            IMembership.MemberView memory m = page[i];
            IMemberStanding.MemberClaimsView memory c = standings.memberClaims(m.memberId);
            IMemberStanding.RuntimeClaims memory stated = handler.claimsOf(m.appId);
            assertEq(c.composeHash, stated.composeHash, "recorded compose hash");
            // The fixture's devices are unnamed (allow-any-device): held by fingerprint, the id left 0.
            assertEq(
                c.deviceFingerprint,
                uint32(uint256(keccak256(abi.encode(stated.deviceId))) >> 225),
                "recorded device fingerprint"
            );
            assertEq(c.deviceId, bytes32(0), "an unnamed device's id is not kept");
            assertEq(c.kmsRoot, handler.kmsRoot(), "recorded KMS root");
            IMemberStanding.Standing expected = IMemberStanding.Standing.NotActive;
            if (m.status == IMembership.MemberStatus.Active) {
                if (policy.deviceRevokedAt(stated.deviceId) != 0) expected = IMemberStanding.Standing.DeviceRevoked;
                else if (!policy.isComposeHashAllowed(c.composeHash)) {
                    expected = IMemberStanding.Standing.ComposeHashNotAllowed;
                } else if (!policy.isKmsRootAllowed(c.kmsRoot)) {
                    expected = IMemberStanding.Standing.KmsRootNotAllowed;
                } else {
                    expected = IMemberStanding.Standing.Good;
                }
            }
            assertEq(uint8(c.standing), uint8(expected), "standing");
            assertEq(uint8(standings.memberStanding(m.memberId)), uint8(expected), "memberStanding");
        }
        assertEq(handler.violationsOf("register stale"), 0, "a member joined or stayed with refused claims");
        assertEq(handler.violationsOf("evictStale"), 0, "evictStale evicted other than exactly the stale members");
    }

    /// @notice The epoch rules: a confirmation comes from someone other than the committer, the barred
    /// member is not the current epoch's committer, and every re-open the handler saw obeyed the rules.
    function invariant_epochRules() public view {
        (uint64 epoch, bytes32 commitment, uint64 committer,,) = csk.currentCsk();
        (uint64 recoveryEpoch, uint64 confirmer, uint64 barred, uint40 reopenableAt) = csk.cskRecovery();
        assertEq(recoveryEpoch, epoch);
        if (commitment == bytes32(0)) {
            assertEq(confirmer, 0, "an uncommitted epoch is unconfirmed");
            assertEq(reopenableAt, 0, "an uncommitted epoch is not re-opened by members");
        } else {
            assertTrue(confirmer != committer, "the committer confirmed itself");
            if (barred != 0) assertTrue(barred != committer, "a barred member committed");
            if (confirmer != 0) assertEq(reopenableAt, 0, "a confirmed epoch is re-openable");
        }
        assertEq(handler.violationsOf("register"), 0, "a registration took a key bound to another app");
        assertEq(handler.violationsOf("evict"), 0, "an eviction left the app in, or was refused");
        assertEq(handler.violationsOf("revoke"), 0, "a revocation left a member active");
        assertEq(handler.violationsOf("commit"), 0, "a barred member committed");
        assertEq(handler.violationsOf("confirm"), 0, "a committer confirmed itself, or an empty epoch");
        assertEq(handler.violationsOf("reopen"), 0, "a re-open broke the rules");
        assertEq(handler.violations(), 0, "an action succeeded against a rule");
    }
}

/// @dev The policy reads the standing invariant checks against.
interface ClusterHandlerPolicy {
    function deviceRevokedAt(bytes32 deviceId) external view returns (uint64);
    function isComposeHashAllowed(bytes32 composeHash) external view returns (bool);
    function isKmsRootAllowed(address kmsRoot) external view returns (bool);
}

/// @title Fuzz tests of the rules one at a time
contract ClusterRulesFuzzTest is ClusterFixture {
    App internal alice;
    App internal bob;
    App internal carol;

    function setUp() public {
        _deployCluster();
        alice = _makeApp(100);
        bob = _makeApp(101);
        carol = _makeApp(102);
        cluster.addAppId(alice.appId);
        cluster.addAppId(bob.appId);
        cluster.addAppId(carol.appId);
    }

    /// @notice Whatever keys another app tries, it never takes one an app holds or left behind.
    function testFuzz_register_refusesAKeyBoundToAnotherApp(bytes32 wireguardKey, bytes32 identityKey, uint8 mode)
        public
    {
        vm.assume(wireguardKey != bytes32(0) && identityKey != bytes32(0));
        uint64 victim = _register(alice, wireguardKey, identityKey);
        if (mode % 2 == 1) _leave(alice, victim);
        bytes32 otherWg = keccak256(abi.encode(wireguardKey));
        bytes32 otherId = keccak256(abi.encode(identityKey));
        bytes32 attackWg = mode % 4 < 2 ? wireguardKey : otherWg;
        bytes32 attackId = mode % 4 < 2 ? otherId : identityKey;
        if (attackWg == wireguardKey) {
            vm.expectRevert(abi.encodeWithSelector(IMembership.WireguardKeyInUse.selector, wireguardKey, alice.appId, victim));
        } else {
            vm.expectRevert(abi.encodeWithSelector(IMembership.IdentityKeyInUse.selector, identityKey, alice.appId, victim));
        }
        this.registerExternally(bob, attackWg, attackId);
        (address app, uint64 holder, bool active) = cluster.wireguardKeyHolder(wireguardKey);
        assertEq(app, alice.appId);
        assertEq(holder, victim);
        assertEq(active, mode % 2 == 0);
        (uint64 bobMember,) = cluster.memberOfApp(bob.appId);
        assertEq(bobMember, 0, "the attacker was not admitted");
    }

    function registerExternally(App memory app, bytes32 wireguardKey, bytes32 identityKey) external returns (uint64) {
        return _register(app, wireguardKey, identityKey);
    }

    /// @notice A member re-opens an epoch only after the delay, only while unconfirmed, never its own.
    function testFuzz_reopenCsk_onlyAfterDelayWhileUnconfirmed(uint32 wait, bool confirmed, bool byCommitter) public {
        uint64 a = _register(alice, keccak256("a wg"), keccak256("a id"));
        uint64 b = _register(bob, keccak256("b wg"), keccak256("b id"));
        uint64 c = _register(carol, keccak256("c wg"), keccak256("c id"));
        (uint64 epoch,,,,) = cluster.currentCsk();
        bytes32 commitment = keccak256(abi.encode(wait));
        _commit(alice, a, epoch, commitment);
        if (confirmed) _confirm(bob, b, epoch, commitment);
        uint40 committedAt = uint40(block.timestamp);
        vm.warp(block.timestamp + wait);
        uint40 reopenableAt = committedAt + cluster.cskReopenDelay();
        (App memory who, uint64 id) = byCommitter ? (alice, a) : (carol, c);
        if (byCommitter) {
            vm.expectRevert(abi.encodeWithSelector(ICsk.CskOwnCommitment.selector, epoch, a));
        } else if (confirmed) {
            vm.expectRevert(abi.encodeWithSelector(ICsk.CskAlreadyConfirmed.selector, epoch, b));
        } else if (block.timestamp < reopenableAt) {
            vm.expectRevert(abi.encodeWithSelector(ICsk.CskReopenTooEarly.selector, epoch, reopenableAt));
        }
        this.reopenExternally(who, id, epoch);
        bool reopened = !byCommitter && !confirmed && block.timestamp >= reopenableAt;
        (uint64 next,,,,) = cluster.currentCsk();
        assertEq(next, reopened ? epoch + 1 : epoch);
        if (reopened) {
            (,, uint64 barred,) = cluster.cskRecovery();
            assertEq(barred, a);
            vm.expectRevert(abi.encodeWithSelector(ICsk.CskCommitterBarred.selector, next, a));
            this.commitExternally(alice, a, next, commitment);
            _commit(bob, b, next, commitment);
        }
    }

    function reopenExternally(App memory app, uint64 memberId, uint64 epoch) external {
        _reopen(app, memberId, epoch);
    }

    function commitExternally(App memory app, uint64 memberId, uint64 epoch, bytes32 commitment) external {
        _commit(app, memberId, epoch, commitment);
    }

    /// @notice However members pick envelope ids, a send collides only with the same sender's own send.
    function testFuzz_send_onlyTheSendersOwnSendsCollide(bytes32 envelopeId, bool attackerFirst) public {
        uint64 a = _register(alice, keccak256("a wg"), keccak256("a id"));
        uint64 b = _register(bob, keccak256("b wg"), keccak256("b id"));
        uint64 c = _register(carol, keccak256("c wg"), keccak256("c id"));
        bytes memory ciphertext = abi.encode(envelopeId);
        if (attackerFirst) _send(carol, c, b, envelopeId, ciphertext);
        assertFalse(cluster.isDelivered(a, b, envelopeId), "another sender's send burnt the id");
        _send(alice, a, b, envelopeId, ciphertext);
        assertTrue(cluster.isDelivered(a, b, envelopeId));
        vm.expectRevert(abi.encodeWithSelector(IMessages.EnvelopeAlreadyDelivered.selector, a, b, envelopeId));
        this.sendExternally(alice, a, b, envelopeId, ciphertext);
        if (!attackerFirst) _send(carol, c, b, envelopeId, ciphertext);
        assertTrue(cluster.isDelivered(c, b, envelopeId));
    }

    function sendExternally(App memory app, uint64 senderId, uint64 recipientId, bytes32 envelopeId, bytes memory data)
        external
    {
        _send(app, senderId, recipientId, envelopeId, data);
    }

    /// @notice The owner's eviction lands whether the member is still there, left, or left and came back.
    function testFuzz_evict_leavingDoesNotDodgeIt(uint8 path, uint8 reason) public {
        uint64 first = _register(alice, keccak256("a wg"), keccak256("a id"));
        if (path % 3 >= 1) _leave(alice, first);
        uint64 second;
        if (path % 3 == 2) second = _register(alice, keccak256("a wg"), keccak256("a id"));
        cluster.evict(first, reason);
        assertEq(uint8(cluster.member(first).status), uint8(IMembership.MemberStatus.Evicted));
        assertEq(cluster.member(first).endReason, reason);
        if (second != 0) assertEq(uint8(cluster.member(second).status), uint8(IMembership.MemberStatus.Evicted));
        (, bool active) = cluster.memberOfApp(alice.appId);
        assertFalse(active);
        assertFalse(cluster.isAppIdAllowed(alice.appId));
        (address app,,) = cluster.wireguardKeyHolder(keccak256("a wg"));
        assertEq(app, address(0), "an eviction releases the keys");
    }
}
