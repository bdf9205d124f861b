// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {Diamond} from "../../src/Diamond.sol";
import {CskFacet} from "../../src/facets/CskFacet.sol";
import {MembershipFacet} from "../../src/facets/MembershipFacet.sol";
import {MessagesFacet} from "../../src/facets/MessagesFacet.sol";
import {PolicyFacet} from "../../src/facets/PolicyFacet.sol";
import {ClusterInit} from "../../src/init/ClusterInit.sol";
import {IAttestmeshCluster} from "../../src/interfaces/IAttestmeshCluster.sol";
import {ICsk} from "../../src/interfaces/ICsk.sol";
import {IDiamondCut} from "../../src/interfaces/IDiamondCut.sol";
import {IAppAuthBasicManagement} from "../../src/interfaces/IAppAuthBasicManagement.sol";
import {IMemberStanding} from "../../src/interfaces/IMemberStanding.sol";
import {IMembership} from "../../src/interfaces/IMembership.sol";
import {IMessages} from "../../src/interfaces/IMessages.sol";
import {IPolicy} from "../../src/interfaces/IPolicy.sol";
import {KeyPurposes} from "../../src/libraries/KeyPurposes.sol";
import {MemberTypedData} from "../../src/libraries/MemberTypedData.sol";
import {KeyTest} from "../harness/KeyTest.sol";

/// @title ClusterFixture
/// @notice A cluster diamond with the membership, CSK, messages and policy facets, owned by the contract
/// that deploys it, and simulated dstack apps whose key chains it verifies: every KMS, app and member key
/// is a real secp256k1 key signed with `vm.sign`, so registration runs its full path.
abstract contract ClusterFixture is KeyTest {
    /// @notice One simulated dstack app and its member key chain.
    struct App {
        address appId;
        uint256 memberKey;
        address memberAddress;
        IMembership.DstackProof proof;
        /// @notice What it states at registration: one of the fixture's two compose hashes, its own device.
        IMemberStanding.RuntimeClaims claims;
    }

    uint256 internal constant KMS_KEY = uint256(keccak256("cluster fixture kms root"));
    /// @notice The two node compose hashes the fixture allows; app `i` runs `i % 2`.
    bytes32 internal constant COMPOSE_A = keccak256("cluster fixture compose a");
    bytes32 internal constant COMPOSE_B = keccak256("cluster fixture compose b");

    IAttestmeshCluster internal cluster;

    /// @notice Deploys the cluster with this contract as its owner and the fixture's KMS root accepted.
    function _deployCluster() internal {
        IDiamondCut.FacetCut[] memory cuts = new IDiamondCut.FacetCut[](4);
        bytes4[] memory membership = new bytes4[](9);
        membership[0] = IMembership.register.selector;
        membership[1] = IMembership.leaveCluster.selector;
        membership[2] = IMembership.evict.selector;
        membership[3] = IMembership.member.selector;
        membership[4] = IMembership.members.selector;
        membership[5] = IMembership.memberOfApp.selector;
        membership[6] = IMembership.meshConfig.selector;
        membership[7] = IMembership.wireguardKeyHolder.selector;
        membership[8] = IMembership.identityKeyHolder.selector;
        bytes4[] memory membershipMore = new bytes4[](6);
        membershipMore[0] = IMembership.registrationNonce.selector;
        membershipMore[1] = IMembership.memberDomainSeparator.selector;
        membershipMore[2] = IMemberStanding.memberClaims.selector;
        membershipMore[3] = IMemberStanding.memberStanding.selector;
        membershipMore[4] = IMemberStanding.memberStandings.selector;
        membershipMore[5] = IMemberStanding.evictStale.selector;
        cuts[0] = IDiamondCut.FacetCut(
            address(new MembershipFacet()), IDiamondCut.FacetCutAction.Add, _concat(membership, membershipMore)
        );
        bytes4[] memory csk = new bytes4[](8);
        csk[0] = ICsk.commitCsk.selector;
        csk[1] = ICsk.confirmCsk.selector;
        csk[2] = ICsk.reopenCsk.selector;
        csk[3] = ICsk.openCskEpoch.selector;
        csk[4] = ICsk.cskReopenDelay.selector;
        csk[5] = ICsk.cskRecovery.selector;
        csk[6] = ICsk.currentCsk.selector;
        csk[7] = ICsk.cskEpoch.selector;
        cuts[1] = IDiamondCut.FacetCut(address(new CskFacet()), IDiamondCut.FacetCutAction.Add, csk);
        bytes4[] memory policy = new bytes4[](16);
        policy[0] = IPolicy.addAppId.selector;
        policy[1] = IPolicy.revokeAppId.selector;
        policy[2] = IPolicy.isAppIdAllowed.selector;
        policy[3] = IPolicy.appIdRevokedAt.selector;
        policy[4] = IAppAuthBasicManagement.addComposeHash.selector;
        policy[5] = IAppAuthBasicManagement.removeComposeHash.selector;
        policy[6] = IAppAuthBasicManagement.addDevice.selector;
        policy[7] = IAppAuthBasicManagement.removeDevice.selector;
        policy[8] = IPolicy.revokeDevice.selector;
        policy[9] = IPolicy.setAllowAnyDevice.selector;
        policy[10] = IPolicy.addKmsRoot.selector;
        policy[11] = IPolicy.removeKmsRoot.selector;
        policy[12] = IPolicy.isComposeHashAllowed.selector;
        policy[13] = IPolicy.isDeviceAllowed.selector;
        policy[14] = IPolicy.isKmsRootAllowed.selector;
        policy[15] = IPolicy.deviceRevokedAt.selector;
        cuts[2] = IDiamondCut.FacetCut(address(new PolicyFacet()), IDiamondCut.FacetCutAction.Add, policy);
        bytes4[] memory messages = new bytes4[](2);
        messages[0] = IMessages.send.selector;
        messages[1] = IMessages.isDelivered.selector;
        cuts[3] = IDiamondCut.FacetCut(address(new MessagesFacet()), IDiamondCut.FacetCutAction.Add, messages);

        address[] memory roots = new address[](1);
        roots[0] = vm.addr(KMS_KEY);
        ClusterInit init = new ClusterInit();
        // Any contract with code stands in for the member-app implementation (not exercised here).
        ClusterInit.Params memory params = ClusterInit.Params({
            meshBase: 0x0a4d0000, prefixLength: 24, kmsRoots: roots, memberAppImplementation: address(init)
        });
        cluster = IAttestmeshCluster(
            address(new Diamond(address(this), cuts, address(init), abi.encodeCall(ClusterInit.init, (params))))
        );
        // What the fixture's apps state: both compose hashes allowed, any device (none revoked yet).
        cluster.addComposeHash(COMPOSE_A);
        cluster.addComposeHash(COMPOSE_B);
        cluster.setAllowAnyDevice(true);
    }

    /// @notice A simulated app `index`: its app key and member key are derived from the index, its KMS
    /// signature from the fixture's root. Costs two reference scalar multiplications.
    function _makeApp(uint256 index) internal pure returns (App memory app) {
        app.appId = address(uint160(uint256(keccak256(abi.encode("cluster fixture app", index)))));
        uint256 appKey = _key(uint256(keccak256(abi.encode("cluster fixture app key", index))));
        app.memberKey = _key(uint256(keccak256(abi.encode("cluster fixture member key", index))));
        app.memberAddress = vm.addr(app.memberKey);
        bytes memory appPubkey = _compressed(appKey);
        bytes memory memberPubkey = _compressed(app.memberKey);
        app.proof = IMembership.DstackProof({
            appId: app.appId,
            memberPubkey: memberPubkey,
            appPubkey: appPubkey,
            appSignature: _signRaw(appKey, _appDigest(bytes(KeyPurposes.MEMBER), memberPubkey)),
            kmsSignature: _signRaw(KMS_KEY, _kmsDigest(app.appId, appPubkey)),
            guestApiVersion: 0
        });
        app.claims = IMemberStanding.RuntimeClaims({
            composeHash: index % 2 == 0 ? COMPOSE_A : COMPOSE_B,
            deviceId: keccak256(abi.encode("cluster fixture device", index))
        });
    }

    /// @notice The EIP-712 digest of `structHash` under the cluster's domain. The struct hashes here use the
    /// library's type hashes: the TypeScript contract tests sign every member call with viem from the shared typed
    /// data (`shared/src/contracts/typedData.ts`), which pins each type hash independently of the library.
    function _typed(bytes32 structHash) internal view returns (bytes32) {
        return keccak256(abi.encodePacked("\x19\x01", cluster.memberDomainSeparator(), structHash));
    }

    function _register(App memory app, bytes32 wireguardKey, bytes32 identityKey) internal returns (uint64) {
        uint64 nonce = cluster.registrationNonce(app.appId);
        bytes memory signature = _sign(
            app.memberKey,
            _typed(
                keccak256(
                    abi.encode(
                        MemberTypedData.REGISTER_TYPEHASH,
                        app.appId,
                        wireguardKey,
                        identityKey,
                        app.claims.composeHash,
                        app.claims.deviceId,
                        nonce
                    )
                )
            )
        );
        return cluster.register(app.proof, wireguardKey, identityKey, app.claims, signature);
    }

    function _leave(App memory app, uint64 memberId) internal {
        bytes32 digest = _typed(keccak256(abi.encode(MemberTypedData.LEAVE_TYPEHASH, memberId)));
        cluster.leaveCluster(memberId, _sign(app.memberKey, digest));
    }

    function _commit(App memory app, uint64 memberId, uint64 epoch, bytes32 commitment) internal {
        bytes32 digest =
            _typed(keccak256(abi.encode(MemberTypedData.COMMIT_CSK_TYPEHASH, memberId, epoch, commitment)));
        cluster.commitCsk(memberId, epoch, commitment, _sign(app.memberKey, digest));
    }

    function _confirm(App memory app, uint64 memberId, uint64 epoch, bytes32 commitment) internal {
        bytes32 digest =
            _typed(keccak256(abi.encode(MemberTypedData.CONFIRM_CSK_TYPEHASH, memberId, epoch, commitment)));
        cluster.confirmCsk(memberId, epoch, commitment, _sign(app.memberKey, digest));
    }

    function _reopen(App memory app, uint64 memberId, uint64 epoch) internal {
        bytes32 digest = _typed(keccak256(abi.encode(MemberTypedData.REOPEN_CSK_TYPEHASH, memberId, epoch)));
        cluster.reopenCsk(memberId, epoch, _sign(app.memberKey, digest));
    }

    function _send(App memory app, uint64 senderId, uint64 recipientId, bytes32 envelopeId, bytes memory ciphertext)
        internal
    {
        bytes32 digest = _typed(
            keccak256(
                abi.encode(MemberTypedData.SEND_TYPEHASH, senderId, recipientId, envelopeId, keccak256(ciphertext))
            )
        );
        cluster.send(senderId, recipientId, envelopeId, ciphertext, _sign(app.memberKey, digest));
    }

    function _concat(bytes4[] memory a, bytes4[] memory b) private pure returns (bytes4[] memory out) {
        out = new bytes4[](a.length + b.length);
        for (uint256 i; i < a.length; ++i) {
            out[i] = a[i];
        }
        for (uint256 i; i < b.length; ++i) {
            out[a.length + i] = b[i];
        }
    }
}
