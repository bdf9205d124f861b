// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IAppAuth} from "../../src/interfaces/IAppAuth.sol";
import {IMembership} from "../../src/interfaces/IMembership.sol";
import {IOwnership} from "../../src/interfaces/IOwnership.sol";
import {IPolicy} from "../../src/interfaces/IPolicy.sol";
import {PolicyFacetHarness} from "../harness/PolicyFacetHarness.sol";
import {Test} from "../utils/Test.sol";

/// @notice Compose hashes scoped by app role: the boot gate never lets one role boot another role's compose.
contract PolicyFacetRolesTest is Test {
    PolicyFacetHarness internal policy;

    address internal constant STRANGER = address(0xBAD);
    bytes32 internal constant DEVICE = keccak256("device");

    function setUp() public {
        policy = new PolicyFacetHarness();
        policy.setAllowAnyDevice(true);
    }

    function _boot(address appId, bytes32 composeHash) internal view returns (bool ok, string memory reason) {
        IAppAuth.AppBootInfo memory info;
        info.appId = appId;
        info.composeHash = composeHash;
        info.deviceId = DEVICE;
        info.tcbStatus = "UpToDate";
        return policy.isAppAllowed(info);
    }

    function _role(bool indexer) internal pure returns (IPolicy.AppRole) {
        return indexer ? IPolicy.AppRole.Indexer : IPolicy.AppRole.Node;
    }

    function testFuzz_isAppAllowed_bootsOnlyTheAppRolesComposeHashes(
        address appId,
        bytes32 composeHash,
        bool indexerApp,
        bool forNode,
        bool forIndexer
    ) public {
        vm.assume(appId != address(0) && composeHash != bytes32(0));
        policy.addAppIdFor(appId, _role(indexerApp));
        if (forNode) policy.addComposeHash(composeHash);
        if (forIndexer) policy.addComposeHashFor(composeHash, IPolicy.AppRole.Indexer);

        (bool ok, string memory reason) = _boot(appId, composeHash);
        bool expected = indexerApp ? forIndexer : forNode;
        assertEq(ok, expected, "a boot is allowed exactly when the compose hash is allowed for the app's role");
        if (!ok) {
            assertEq(
                reason,
                indexerApp
                    ? "Compose hash not allowed for the indexer role"
                    : "Compose hash not allowed for the node role"
            );
        }
    }

    function testFuzz_addAppId_makesAnIndexerAppIdANodeAgain(address appId, bytes32 indexerCompose) public {
        vm.assume(appId != address(0) && indexerCompose != bytes32(0));
        policy.addAppIdFor(appId, IPolicy.AppRole.Indexer);
        policy.addComposeHashFor(indexerCompose, IPolicy.AppRole.Indexer);
        (bool before,) = _boot(appId, indexerCompose);
        assertTrue(before);
        policy.addAppId(appId);
        assertEq(uint8(policy.appRole(appId)), uint8(IPolicy.AppRole.Node));
        (bool afterwards,) = _boot(appId, indexerCompose);
        assertFalse(afterwards, "a node app id cannot boot the indexer's compose");
    }

    function test_removeComposeHash_leavesTheIndexerRole() public {
        bytes32 h = keccak256("both");
        policy.addComposeHash(h);
        policy.addComposeHashFor(h, IPolicy.AppRole.Indexer);
        policy.removeComposeHash(h);
        assertFalse(policy.isComposeHashAllowed(h));
        assertTrue(policy.isComposeHashAllowedFor(h, IPolicy.AppRole.Indexer));
    }

    function test_addComposeHashFor_revertsOnZeroHash() public {
        vm.expectRevert(abi.encodeWithSelector(IPolicy.ZeroIdentifier.selector));
        policy.addComposeHashFor(bytes32(0), IPolicy.AppRole.Indexer);
    }

    function test_addComposeHashFor_revertsWhenCallerNotOwner() public {
        vm.prank(STRANGER);
        vm.expectRevert(abi.encodeWithSelector(IOwnership.NotOwner.selector, STRANGER));
        policy.addComposeHashFor(keccak256("h"), IPolicy.AppRole.Indexer);
    }

    function test_removeComposeHashFor_revertsWhenCallerNotOwner() public {
        policy.addComposeHashFor(keccak256("h"), IPolicy.AppRole.Indexer);
        vm.prank(STRANGER);
        vm.expectRevert(abi.encodeWithSelector(IOwnership.NotOwner.selector, STRANGER));
        policy.removeComposeHashFor(keccak256("h"), IPolicy.AppRole.Indexer);
    }

    function test_addAppIdFor_revertsWhenCallerNotOwner() public {
        vm.prank(STRANGER);
        vm.expectRevert(abi.encodeWithSelector(IOwnership.NotOwner.selector, STRANGER));
        policy.addAppIdFor(address(0xA11), IPolicy.AppRole.Indexer);
    }

    function test_addAppIdFor_revertsOnZeroAppId() public {
        vm.expectRevert(abi.encodeWithSelector(IPolicy.ZeroIdentifier.selector));
        policy.addAppIdFor(address(0), IPolicy.AppRole.Indexer);
    }

    function test_addAppIdFor_revertsWhenRevoked() public {
        address appId = address(0xA11);
        policy.addAppId(appId);
        policy.revokeAppId(appId, bytes32("r"));
        vm.expectRevert(abi.encodeWithSelector(IPolicy.AppIdRevoked.selector, appId, uint64(block.timestamp)));
        policy.addAppIdFor(appId, IPolicy.AppRole.Indexer);
    }

    function test_addAppIdFor_revertsWhenAnActiveMembersAppIdWouldChangeRole() public {
        address appId = address(0xC10E);
        policy.addAppId(appId);
        policy.stageMember(appId, 7, IMembership.MemberStatus.Active);
        vm.expectRevert(abi.encodeWithSelector(IPolicy.AppIdHasActiveMember.selector, appId, uint64(7)));
        policy.addAppIdFor(appId, IPolicy.AppRole.Indexer);
        policy.addAppIdFor(appId, IPolicy.AppRole.Node);
        assertEq(uint8(policy.appRole(appId)), uint8(IPolicy.AppRole.Node));
        // Once the member has left, the owner may give the app id another role.
        policy.stageMember(appId, 7, IMembership.MemberStatus.Left);
        policy.addAppIdFor(appId, IPolicy.AppRole.Indexer);
        assertEq(uint8(policy.appRole(appId)), uint8(IPolicy.AppRole.Indexer));
    }

    function test_addAppId_revertsWhenAnActiveMembersIndexerAppIdWouldBecomeANode() public {
        address appId = address(0xC10F);
        policy.addAppIdFor(appId, IPolicy.AppRole.Indexer);
        policy.stageMember(appId, 8, IMembership.MemberStatus.Active);
        vm.expectRevert(abi.encodeWithSelector(IPolicy.AppIdHasActiveMember.selector, appId, uint64(8)));
        policy.addAppId(appId);
        assertEq(uint8(policy.appRole(appId)), uint8(IPolicy.AppRole.Indexer));
    }
}
