// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {EntryPoint} from "@account-abstraction/contracts/core/EntryPoint.sol";
import {IEntryPoint} from "@account-abstraction/contracts/interfaces/IEntryPoint.sol";
import {PackedUserOperation} from "@account-abstraction/contracts/interfaces/PackedUserOperation.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {MessageHashUtils} from "@openzeppelin/contracts/utils/cryptography/MessageHashUtils.sol";
import {IMemberAccount} from "../../src/interfaces/IMemberAccount.sol";
import {IMemberAccountFactory} from "../../src/interfaces/IMemberAccountFactory.sol";
import {ISponsorPaymaster} from "../../src/interfaces/ISponsorPaymaster.sol";
import {MemberAccountFactory} from "../../src/sponsorship/MemberAccountFactory.sol";
import {SponsorPaymaster} from "../../src/sponsorship/SponsorPaymaster.sol";
import {Test} from "../utils/Test.sol";

/// @dev Stands in for the cluster: records the last call and reverts on demand with a custom error.
contract ClusterStandIn {
    error Refused(uint256 code);

    address public lastCaller;
    bytes public lastData;

    fallback() external {
        if (msg.data.length >= 4 && bytes4(msg.data[:4]) == bytes4(0xdeadbeef)) revert Refused(7);
        lastCaller = msg.sender;
        lastData = msg.data;
    }
}

contract SponsorshipTest is Test {
    uint256 internal constant MEMBER_KEY = 0xA11CE;
    uint256 internal constant SPONSOR_KEY = 0x5B0;
    uint256 internal constant STRANGER_KEY = 0xBAD;

    EntryPoint internal entryPoint;
    ClusterStandIn internal cluster;
    MemberAccountFactory internal factory;
    SponsorPaymaster internal paymaster;
    address internal member;
    address payable internal beneficiary;

    function setUp() public {
        entryPoint = new EntryPoint();
        cluster = new ClusterStandIn();
        factory = new MemberAccountFactory(address(entryPoint), address(cluster));
        paymaster = new SponsorPaymaster(entryPoint, vm.addr(SPONSOR_KEY), address(this));
        vm.deal(address(this), 100 ether);
        paymaster.deposit{value: 10 ether}();
        member = vm.addr(MEMBER_KEY);
        beneficiary = payable(makeAddr("bundler"));
    }

    function _sign(uint256 key, bytes32 digest) internal pure returns (bytes memory) {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, MessageHashUtils.toEthSignedMessageHash(digest));
        return abi.encodePacked(r, s, v);
    }

    function _op(bytes memory clusterCall) internal view returns (PackedUserOperation memory op) {
        op.sender = factory.accountOf(member);
        op.nonce = 0;
        op.initCode = abi.encodePacked(address(factory), abi.encodeCall(IMemberAccountFactory.createAccount, (member)));
        op.callData = abi.encodeCall(IMemberAccount.execute, (address(cluster), 0, clusterCall));
        op.accountGasLimits = bytes32((uint256(500_000) << 128) | 200_000);
        op.preVerificationGas = 60_000;
        op.gasFees = bytes32((uint256(1 gwei) << 128) | 2 gwei);
        op.paymasterAndData = abi.encodePacked(address(paymaster), uint128(60_000), uint128(0));
    }

    /// @dev Adds the sponsor's approval for `op` as it stands, then the member's signature.
    function _approveAndSign(PackedUserOperation memory op, uint256 sponsorKey, uint256 memberKey)
        internal
        view
        returns (PackedUserOperation memory)
    {
        uint48 validUntil = uint48(block.timestamp + 300);
        uint48 validAfter = 0;
        bytes32 digest = paymaster.approvalDigest(op, validUntil, validAfter);
        op.paymasterAndData = abi.encodePacked(op.paymasterAndData, validUntil, validAfter, _sign(sponsorKey, digest));
        op.signature = _sign(memberKey, entryPoint.getUserOpHash(op));
        return op;
    }

    function _handle(PackedUserOperation memory op) internal {
        PackedUserOperation[] memory ops = new PackedUserOperation[](1);
        ops[0] = op;
        entryPoint.handleOps(ops, beneficiary);
    }

    function test_createAccount_deploysAtAccountOfAndIsIdempotent() public {
        address predicted = factory.accountOf(member);
        assertEq(predicted.code.length, 0);
        address account = factory.createAccount(member);
        assertEq(account, predicted);
        assertEq(factory.createAccount(member), account);
        assertEq(IMemberAccount(account).owner(), member);
        assertEq(IMemberAccount(account).cluster(), address(cluster));
        assertEq(IMemberAccount(account).entryPoint(), address(entryPoint));
    }

    function test_createAccount_revertsOnZeroOwner() public {
        vm.expectRevert(IMemberAccountFactory.ZeroOwner.selector);
        factory.createAccount(address(0));
    }

    function test_execute_revertsFromAnyoneButTheEntryPoint() public {
        IMemberAccount account = IMemberAccount(factory.createAccount(member));
        vm.prank(member);
        vm.expectRevert(abi.encodeWithSelector(IMemberAccount.NotEntryPoint.selector, member));
        account.execute(address(cluster), 0, "");
    }

    function test_execute_revertsForAnotherTarget() public {
        IMemberAccount account = IMemberAccount(factory.createAccount(member));
        vm.prank(address(entryPoint));
        vm.expectRevert(abi.encodeWithSelector(IMemberAccount.TargetNotCluster.selector, address(paymaster)));
        account.execute(address(paymaster), 0, "");
    }

    function test_execute_revertsWithValue() public {
        IMemberAccount account = IMemberAccount(factory.createAccount(member));
        vm.prank(address(entryPoint));
        vm.expectRevert(abi.encodeWithSelector(IMemberAccount.ValueNotZero.selector, 1));
        account.execute(address(cluster), 1, "");
    }

    function test_execute_rethrowsTheClusterError() public {
        IMemberAccount account = IMemberAccount(factory.createAccount(member));
        vm.prank(address(entryPoint));
        vm.expectRevert(abi.encodeWithSelector(ClusterStandIn.Refused.selector, 7));
        account.execute(address(cluster), 0, hex"deadbeef");
    }

    function test_validateUserOp_failsForAnotherSigner() public {
        IMemberAccount account = IMemberAccount(factory.createAccount(member));
        PackedUserOperation memory op = _op(hex"01");
        bytes32 hash = keccak256("op");
        op.signature = _sign(STRANGER_KEY, hash);
        vm.prank(address(entryPoint));
        assertEq(account.validateUserOp(op, hash, 0), 1);
        op.signature = _sign(MEMBER_KEY, hash);
        vm.prank(address(entryPoint));
        assertEq(account.validateUserOp(op, hash, 0), 0);
    }

    function test_handleOps_sponsoredFirstOperationCreatesTheAccountAndCallsTheCluster() public {
        PackedUserOperation memory op = _approveAndSign(_op(hex"c0ffee"), SPONSOR_KEY, MEMBER_KEY);
        uint256 depositBefore = paymaster.getDeposit();
        _handle(op);
        assertEq(cluster.lastCaller(), op.sender);
        assertEq(cluster.lastData(), hex"c0ffee");
        assertEq(op.sender.balance, 0, "the account paid nothing");
        assertTrue(paymaster.getDeposit() < depositBefore, "the paymaster paid");
    }

    function test_handleOps_tamperedCallDataIsRejected() public {
        PackedUserOperation memory op = _approveAndSign(_op(hex"c0ffee"), SPONSOR_KEY, MEMBER_KEY);
        op.callData = abi.encodeCall(IMemberAccount.execute, (address(cluster), 0, hex"bad0"));
        // The sponsor re-approves its own tampering; the member's signature still does not cover it.
        uint48 validUntil = uint48(block.timestamp + 300);
        op.paymasterAndData = abi.encodePacked(address(paymaster), uint128(60_000), uint128(0));
        bytes32 digest = paymaster.approvalDigest(op, validUntil, 0);
        op.paymasterAndData = abi.encodePacked(op.paymasterAndData, validUntil, uint48(0), _sign(SPONSOR_KEY, digest));
        vm.expectRevert(abi.encodeWithSelector(IEntryPoint.FailedOp.selector, 0, "AA24 signature error"));
        _handle(op);
        assertEq(cluster.lastCaller(), address(0));
    }

    function test_handleOps_approvalFromAnotherSignerIsRejected() public {
        PackedUserOperation memory op = _approveAndSign(_op(hex"c0ffee"), STRANGER_KEY, MEMBER_KEY);
        vm.expectRevert(abi.encodeWithSelector(IEntryPoint.FailedOp.selector, 0, "AA34 signature error"));
        _handle(op);
    }

    function test_handleOps_approvalOnAnotherChainIsRejected() public {
        PackedUserOperation memory op = _op(hex"c0ffee");
        uint48 validUntil = uint48(block.timestamp + 300);
        uint256 chainId = block.chainid;
        vm.chainId(chainId + 1);
        bytes32 foreign = paymaster.approvalDigest(op, validUntil, 0);
        vm.chainId(chainId);
        op.paymasterAndData = abi.encodePacked(op.paymasterAndData, validUntil, uint48(0), _sign(SPONSOR_KEY, foreign));
        op.signature = _sign(MEMBER_KEY, entryPoint.getUserOpHash(op));
        vm.expectRevert(abi.encodeWithSelector(IEntryPoint.FailedOp.selector, 0, "AA34 signature error"));
        _handle(op);
    }

    function test_validatePaymasterUserOp_revertsFromAnyoneButTheEntryPoint() public {
        PackedUserOperation memory op = _op(hex"01");
        vm.expectRevert(abi.encodeWithSelector(ISponsorPaymaster.NotEntryPoint.selector, address(this)));
        paymaster.validatePaymasterUserOp(op, bytes32(0), 0);
    }

    function test_validatePaymasterUserOp_revertsOnShortData() public {
        PackedUserOperation memory op = _op(hex"01");
        vm.prank(address(entryPoint));
        vm.expectRevert(abi.encodeWithSelector(ISponsorPaymaster.InvalidPaymasterDataLength.selector, 52));
        paymaster.validatePaymasterUserOp(op, bytes32(0), 0);
    }

    function test_setSigner_ownerOnly() public {
        address stranger = vm.addr(STRANGER_KEY);
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, stranger));
        paymaster.setSigner(stranger);
        paymaster.setSigner(stranger);
        assertEq(paymaster.signer(), stranger);
        vm.expectRevert(ISponsorPaymaster.ZeroSigner.selector);
        paymaster.setSigner(address(0));
    }

    function testFuzz_approvalDigest_bindsEveryField(bytes calldata clusterCall, uint256 nonce, uint48 validUntil)
        public
        view
    {
        PackedUserOperation memory op = _op(clusterCall);
        bytes32 base = paymaster.approvalDigest(op, validUntil, 0);
        op.nonce = nonce == 0 ? 1 : nonce;
        assertTrue(paymaster.approvalDigest(op, validUntil, 0) != base, "nonce");
        op = _op(clusterCall);
        op.callData = abi.encodePacked(op.callData, hex"00");
        assertTrue(paymaster.approvalDigest(op, validUntil, 0) != base, "callData");
        op = _op(clusterCall);
        op.gasFees = bytes32(uint256(op.gasFees) + 1);
        assertTrue(paymaster.approvalDigest(op, validUntil, 0) != base, "gasFees");
        op = _op(clusterCall);
        op.paymasterAndData = abi.encodePacked(address(paymaster), uint128(60_001), uint128(0));
        assertTrue(paymaster.approvalDigest(op, validUntil, 0) != base, "paymaster gas");
        op = _op(clusterCall);
        assertTrue(paymaster.approvalDigest(op, validUntil ^ 1, 0) != base, "validUntil");
        assertTrue(paymaster.approvalDigest(op, validUntil, 1) != base, "validAfter");
    }
}
