// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IAppAuth} from "../../src/interfaces/IAppAuth.sol";
import {Test} from "../utils/Test.sol";
import {DstackKmsForwarder, IDstackKmsForwarder} from "./DstackKmsForwarder.sol";

/// @dev Answers like an app contract but writes storage while answering: only a non-static call succeeds.
contract WritingAppAuth {
    uint256 public asked;

    function isAppAllowed(IAppAuth.AppBootInfo calldata) external returns (bool, string memory) {
        ++asked;
        return (true, "");
    }
}

/// @dev Echoes the boot info it was given, to check the forwarder passes it through unchanged.
contract EchoAppAuth is IAppAuth {
    function isAppAllowed(AppBootInfo calldata bootInfo) external pure returns (bool, string memory) {
        return (bootInfo.advisoryIds.length == 2, bootInfo.tcbStatus);
    }
}

contract DstackKmsForwarderTest is Test {
    bytes32 internal constant OS_IMAGE = keccak256("os image");
    DstackKmsForwarder internal kms;

    function setUp() public {
        kms = new DstackKmsForwarder();
        kms.addOsImageHash(OS_IMAGE);
    }

    function test_registerApp_anyoneMayRegisterAndItEmits() public {
        address app = address(new EchoAppAuth());
        vm.expectEmit(address(kms));
        emit IDstackKmsForwarder.AppRegistered(app);
        vm.prank(makeAddr("stranger"));
        kms.registerApp(app);
        assertTrue(kms.registeredApps(app));
    }

    function test_registerApp_revertsOnZeroAddress() public {
        vm.expectRevert(IDstackKmsForwarder.InvalidAppId.selector);
        kms.registerApp(address(0));
    }

    function test_addOsImageHash_revertsForNonOwner() public {
        address stranger = makeAddr("stranger");
        vm.expectRevert(abi.encodeWithSelector(IDstackKmsForwarder.NotOwner.selector, stranger));
        vm.prank(stranger);
        kms.addOsImageHash(keccak256("other image"));
        assertFalse(kms.allowedOsImages(keccak256("other image")));
    }

    function test_addOsImageHash_emits() public {
        bytes32 image = keccak256("another image");
        vm.expectEmit(address(kms));
        emit IDstackKmsForwarder.OsImageHashAdded(image);
        kms.addOsImageHash(image);
        assertTrue(kms.allowedOsImages(image));
    }

    function test_isAppAllowed_refusesInDstackOrder() public {
        address app = address(new EchoAppAuth());
        IAppAuth.AppBootInfo memory info = _boot(app);
        _assertAnswer(info, false, "App not registered");
        kms.registerApp(app);
        info.osImageHash = keccak256("unknown image");
        _assertAnswer(info, false, "OS image is not allowed");
        info = _boot(makeAddr("no code"));
        kms.registerApp(info.appId);
        _assertAnswer(info, false, "App not deployed or invalid address");
    }

    function test_isAppAllowed_passesTheBootInfoThrough() public {
        address app = address(new EchoAppAuth());
        kms.registerApp(app);
        _assertAnswer(_boot(app), true, "UpToDate");
    }

    function test_isAppAllowed_callsTheAppStatically() public {
        WritingAppAuth app = new WritingAppAuth();
        kms.registerApp(address(app));
        // A state write inside a static call aborts the call; the forwarder surfaces no answer.
        vm.expectRevert();
        kms.isAppAllowed(_boot(address(app)));
        assertEq(app.asked(), 0);
    }

    function _assertAnswer(IAppAuth.AppBootInfo memory info, bool allowed, string memory reason) internal view {
        (bool isAllowed, string memory why) = kms.isAppAllowed(info);
        assertEq(isAllowed, allowed);
        assertEq(why, reason);
    }

    function _boot(address app) internal pure returns (IAppAuth.AppBootInfo memory info) {
        string[] memory advisories = new string[](2);
        advisories[0] = "INTEL-SA-00837";
        advisories[1] = "INTEL-SA-00960";
        info = IAppAuth.AppBootInfo({
            appId: app,
            composeHash: keccak256("compose"),
            instanceId: address(0x1),
            deviceId: keccak256("device"),
            mrAggregated: keccak256("mr aggregated"),
            mrSystem: keccak256("mr system"),
            osImageHash: OS_IMAGE,
            tcbStatus: "UpToDate",
            advisoryIds: advisories
        });
    }
}
