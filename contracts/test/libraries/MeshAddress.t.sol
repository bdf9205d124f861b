// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IMembership} from "../../src/interfaces/IMembership.sol";
import {MeshAddress} from "../../src/libraries/MeshAddress.sol";
import {MeshAddressHarness} from "../harness/MeshAddressHarness.sol";
import {Test} from "../utils/Test.sol";

contract MeshAddressTest is Test {
    /// @notice A reference model of the used-offset set: one bit per host offset, searched naively.
    struct Model {
        uint32 base;
        uint8 prefix;
        uint256 hosts;
        uint256[] words;
        uint256 used;
        uint32[] ips; // the allocated addresses, first `ipCount` entries
        uint256 ipCount;
        uint64 nextId;
    }

    uint32 internal constant BASE_28 = 0x0A2A0010; // 10.42.0.16/28
    uint32 internal constant BASE_24 = 0x0A2A0100; // 10.42.1.0/24
    uint32 internal constant BASE_16 = 0x0A2B0000; // 10.43.0.0/16
    uint256 internal constant STEPS = 100;

    MeshAddressHarness internal h;

    function setUp() public {
        h = new MeshAddressHarness();
    }

    // validateCidr.

    function test_validateCidr_acceptsEverySupportedPrefix() public view {
        for (uint8 prefix = 16; prefix <= 28; ++prefix) {
            h.validateCidr(0x0A000000, prefix);
            h.validateCidr(0x64400000, prefix); // 100.64.0.0
        }
        assertEq(MeshAddress.MIN_PREFIX, 16);
        assertEq(MeshAddress.MAX_PREFIX, 28);
    }

    function testFuzz_validateCidr_acceptsAligned(uint32 base, uint8 prefix) public view {
        prefix = uint8(bound(prefix, 16, 28));
        base &= ~uint32((uint256(1) << (32 - prefix)) - 1);
        h.validateCidr(base, prefix);
    }

    function testFuzz_validateCidr_rejectsUnaligned(uint32 base, uint8 prefix, uint32 hostBits) public {
        prefix = uint8(bound(prefix, 16, 28));
        uint32 hostMask = uint32((uint256(1) << (32 - prefix)) - 1);
        hostBits &= hostMask;
        if (hostBits == 0) hostBits = 1;
        base = (base & ~hostMask) | hostBits;
        vm.expectRevert(abi.encodeWithSelector(MeshAddress.InvalidMeshCidr.selector, base, prefix));
        h.validateCidr(base, prefix);
    }

    function testFuzz_validateCidr_rejectsPrefixOutOfRange(uint32 base, uint8 prefix) public {
        if (prefix >= 16 && prefix <= 28) prefix = prefix < 22 ? 15 : 29;
        vm.expectRevert(abi.encodeWithSelector(MeshAddress.InvalidMeshCidr.selector, base, prefix));
        h.validateCidr(base, prefix);
    }

    function test_validateCidr_rejectsNeighboursOfRange() public {
        uint8[5] memory bad = [uint8(0), 8, 15, 29, 32];
        for (uint256 i; i < bad.length; ++i) {
            vm.expectRevert(abi.encodeWithSelector(MeshAddress.InvalidMeshCidr.selector, uint32(0), bad[i]));
            h.validateCidr(0, bad[i]);
        }
    }

    function test_validateCidr_rejectsHostBitsOfSlash28() public {
        vm.expectRevert(abi.encodeWithSelector(MeshAddress.InvalidMeshCidr.selector, BASE_28 + 8, uint8(28)));
        h.validateCidr(BASE_28 + 8, 28);
    }

    // allocate: first choice.

    function test_allocate_firstMemberGetsFirstHost() public {
        assertEq(h.allocate(BASE_24, 24, 1), BASE_24 + 1);
        assertEq(h.allocate(BASE_24, 24, 2), BASE_24 + 2);
        assertEq(h.allocate(BASE_24, 24, 254), BASE_24 + 254);
    }

    function test_allocate_idOffsetWrapsModuloHosts() public {
        // A /28 has 14 hosts: id 15 prefers offset 1 again.
        assertEq(h.allocate(BASE_28, 28, 15), BASE_28 + 1);
        assertEq(h.allocate(BASE_28, 28, 14), BASE_28 + 14);
    }

    function testFuzz_allocate_firstChoiceIsIdOffset(uint8 prefix, uint64 memberId) public {
        prefix = uint8(bound(prefix, 16, 28));
        memberId = uint64(bound(memberId, 1, type(uint64).max));
        uint32 base = BASE_16 & ~uint32((uint256(1) << (32 - prefix)) - 1);
        uint256 hosts = (uint256(1) << (32 - prefix)) - 2;
        uint32 ip = h.allocate(base, prefix, memberId);
        assertEq(ip, base + uint32(((uint256(memberId) - 1) % hosts) + 1));
    }

    function test_allocate_takesNextFreeOnCollision() public {
        assertEq(h.allocate(BASE_24, 24, 5), BASE_24 + 5);
        assertEq(h.allocate(BASE_24, 24, 6), BASE_24 + 6);
        // Id 259 prefers offset 5 ((259 - 1) % 254 + 1): taken, and so is 6.
        assertEq(h.allocate(BASE_24, 24, 259), BASE_24 + 7);
    }

    function test_allocate_crossesBitmapWordBoundary() public {
        // /23: 510 hosts over two bitmap words. Fill 250..255 and ask for 250.
        for (uint64 id = 250; id <= 255; ++id) {
            h.allocate(0x0A2C0000, 23, id);
        }
        assertEq(h.allocate(0x0A2C0000, 23, 250 + 510), 0x0A2C0000 + 256);
    }

    function test_allocate_wrapsAroundOnSlash16() public {
        // Offsets 65530..65534 used; id 65530 must wrap to offset 1.
        uint256 hosts = 65534;
        h.setUsedWord(255, ((uint256(1) << 255) - 1) & ~((uint256(1) << 250) - 1));
        uint32 ip = h.allocate(BASE_16, 16, uint64(hosts - 4));
        assertEq(ip, BASE_16 + 1);
    }

    /// @dev Regression for "allocate never wraps on /25../28": the scan once counted its skip to the end of the
    /// 256-bit word (offset 256) as if every offset up to there had been examined, so on CIDRs with fewer than 254
    /// hosts it reverted MeshFull before wrapping to offsets below the member's first choice. Here offset 6 is
    /// free, but id 21 prefers 7 and 7..14 are taken.
    function test_allocate_wrapsAroundOnSmallCidr() public {
        for (uint64 id = 1; id <= 14; ++id) {
            h.allocate(BASE_28, 28, id);
        }
        h.release(BASE_28, BASE_28 + 6);
        assertFalse(h.isUsed(6));
        assertEq(h.allocate(BASE_28, 28, 21), BASE_28 + 6, "free offset 6 below the preferred offset 7");
    }

    function testFuzz_allocate_findsTheOnlyFreeOffset(uint8 prefix, uint256 free, uint64 memberId) public {
        prefix = uint8(bound(prefix, 16, 28));
        uint256 hosts = (uint256(1) << (32 - prefix)) - 2;
        free = bound(free, 1, hosts);
        memberId = uint64(bound(memberId, 1, type(uint64).max - 1));
        uint32 base = BASE_16 & ~uint32((uint256(1) << (32 - prefix)) - 1);
        _fillAllBut(hosts, free);
        assertEq(h.allocate(base, prefix, memberId), base + uint32(free));
        assertTrue(h.isUsed(free));
        vm.expectRevert(IMembership.MeshFull.selector);
        h.allocate(base, prefix, memberId + 1);
    }

    function testFuzz_allocate_revertsMeshFullWhenAllUsed(uint8 prefix, uint64 memberId) public {
        prefix = uint8(bound(prefix, 16, 28));
        uint256 hosts = (uint256(1) << (32 - prefix)) - 2;
        memberId = uint64(bound(memberId, 1, type(uint64).max));
        _fillAllBut(hosts, 0);
        vm.expectRevert(IMembership.MeshFull.selector);
        h.allocate(BASE_16, prefix, memberId);
    }

    function test_allocate_fillsSlash28ThenRevertsMeshFull() public {
        for (uint64 id = 1; id <= 14; ++id) {
            assertEq(h.allocate(BASE_28, 28, id), BASE_28 + uint32(id));
        }
        assertFalse(h.isUsed(0), "network address never used");
        assertFalse(h.isUsed(15), "broadcast address never used");
        vm.expectRevert(IMembership.MeshFull.selector);
        h.allocate(BASE_28, 28, 15);
    }

    // allocate / release sequences against the model.

    function testFuzz_allocate_uniqueInsideCidr(uint256 seed) public {
        _runSequence(seed, BASE_28, 28);
        h = new MeshAddressHarness();
        _runSequence(seed, BASE_24, 24);
    }

    function testFuzz_allocate_uniqueInsideAnyPrefix(uint256 seed, uint8 prefix) public {
        prefix = uint8(bound(prefix, 16, 28));
        _runSequence(seed, BASE_16 & ~uint32((uint256(1) << (32 - prefix)) - 1), prefix);
    }

    // release.

    function testFuzz_release_freesOnlyThatAddress(uint256 seed) public {
        for (uint64 id = 1; id <= 14; ++id) {
            h.allocate(BASE_28, 28, id);
        }
        uint256 offset = bound(seed, 1, 14);
        h.release(BASE_28, BASE_28 + uint32(offset));
        for (uint256 o = 1; o <= 14; ++o) {
            assertEq(h.isUsed(o), o != offset);
        }
        // Released addresses are reused: the next member preferring it gets it back.
        assertEq(h.allocate(BASE_28, 28, uint64(offset + 14)), BASE_28 + uint32(offset));
    }

    function test_release_isIdempotent() public {
        uint32 ip = h.allocate(BASE_24, 24, 7);
        h.release(BASE_24, ip);
        h.release(BASE_24, ip);
        assertEq(h.usedWord(0), 0);
    }

    // Helpers.

    /// @dev Runs STEPS random allocations and releases, starting from a random occupancy and member id, checking
    /// after each step that the contract agrees with the model: every address unique and inside the CIDR (network
    /// and broadcast excluded), the id's own offset taken when free, otherwise the next free offset cyclically, and
    /// MeshFull exactly when every host is used.
    function _runSequence(uint256 seed, uint32 base, uint8 prefix) internal {
        Model memory m = _newModel(base, prefix, seed);
        _stageRandomOccupancy(m, seed);
        for (uint256 step; step < STEPS; ++step) {
            uint256 r = uint256(keccak256(abi.encode(seed, "step", step)));
            uint256 touched = m.ipCount == 0 || r % 8 < 5 ? _stepAllocate(m) : _stepRelease(m, r >> 8);
            _assertBitmapMatches(m, touched);
        }
    }

    /// @return touched The offset allocated, 0 if none.
    function _stepAllocate(Model memory m) internal returns (uint256 touched) {
        uint64 id = m.nextId;
        uint256 preferred = ((uint256(id) - 1) % m.hosts) + 1;
        (bool found, uint256 expected) = _modelFirstFree(m, preferred);
        try h.allocate(m.base, m.prefix, id) returns (uint32 ip) {
            assertTrue(found, "allocated although every host is used");
            assertGt(ip, m.base, "at or below the network address");
            assertLt(ip, m.base + uint32(m.hosts + 1), "at or above the broadcast address");
            uint256 offset = ip - m.base;
            assertFalse(_modelUsed(m, offset), "address handed out twice");
            if (!_modelUsed(m, preferred)) assertEq(offset, preferred, "free first choice not taken");
            assertEq(offset, expected, "not the next free offset after the first choice");
            _modelSet(m, offset, true);
            m.used += 1;
            m.ips[m.ipCount++] = ip;
            m.nextId = id + 1;
            touched = offset;
        } catch (bytes memory reason) {
            assertEq(reason, abi.encodeWithSelector(IMembership.MeshFull.selector));
            assertEq(m.used, m.hosts, "MeshFull while a host is free");
            assertFalse(found);
        }
    }

    /// @return touched The offset released.
    function _stepRelease(Model memory m, uint256 r) internal returns (uint256 touched) {
        uint256 index = r % m.ipCount;
        uint32 ip = m.ips[index];
        h.release(m.base, ip);
        _modelSet(m, ip - m.base, false);
        m.used -= 1;
        m.ips[index] = m.ips[--m.ipCount];
        touched = ip - m.base;
    }

    function _newModel(uint32 base, uint8 prefix, uint256 seed) internal pure returns (Model memory m) {
        m.base = base;
        m.prefix = prefix;
        m.hosts = (uint256(1) << (32 - prefix)) - 2;
        m.words = new uint256[]((m.hosts + 2 + 255) / 256);
        m.ips = new uint32[](254 + STEPS);
        m.nextId = uint64(bound(uint256(keccak256(abi.encode(seed, "id"))), 1, type(uint40).max));
    }

    /// @dev Small CIDRs start anywhere from empty to full; large ones get a sparse start so the model stays cheap.
    function _stageRandomOccupancy(Model memory m, uint256 seed) internal {
        uint256 density = uint256(keccak256(abi.encode(seed, "density"))) % 9; // out of 8
        uint256 limit = m.hosts <= 254 ? m.hosts : 254;
        for (uint256 offset = 1; offset <= limit; ++offset) {
            if (uint256(keccak256(abi.encode(seed, "occupied", offset))) % 8 < density) {
                _modelSet(m, offset, true);
                m.used += 1;
                m.ips[m.ipCount++] = m.base + uint32(offset);
            }
        }
        h.setUsedWord(0, m.words[0]);
    }

    /// @dev Word 0 and the word just written must equal the model's (the other words are untouched by the step).
    function _assertBitmapMatches(Model memory m, uint256 touched) internal view {
        assertEq(h.usedWord(0), m.words[0], "bitmap word 0 differs from the model");
        assertEq(h.usedWord(touched >> 8), m.words[touched >> 8], "bitmap word differs from the model");
        assertFalse(h.isUsed(0), "network address marked used");
        assertFalse(h.isUsed(m.hosts + 1), "broadcast address marked used");
    }

    /// @dev The first free offset scanning preferred, preferred + 1, ..., hosts, 1, ..., preferred - 1.
    function _modelFirstFree(Model memory m, uint256 preferred) internal pure returns (bool, uint256) {
        uint256 offset = preferred;
        for (uint256 i; i < m.hosts; ++i) {
            if (!_modelUsed(m, offset)) return (true, offset);
            offset = offset == m.hosts ? 1 : offset + 1;
        }
        return (false, 0);
    }

    function _modelUsed(Model memory m, uint256 offset) internal pure returns (bool) {
        return (m.words[offset >> 8] >> (offset & 0xff)) & 1 == 1;
    }

    function _modelSet(Model memory m, uint256 offset, bool used) internal pure {
        if (used) m.words[offset >> 8] |= uint256(1) << (offset & 0xff);
        else m.words[offset >> 8] &= ~(uint256(1) << (offset & 0xff));
    }

    /// @dev Marks every host offset 1..hosts used except `free` (0 for none), as a full mesh would.
    function _fillAllBut(uint256 hosts, uint256 free) internal {
        uint256 lastWord = hosts >> 8;
        for (uint256 w; w <= lastWord; ++w) {
            uint256 bits = type(uint256).max;
            if (w == 0) bits &= ~uint256(1);
            if (w == lastWord) {
                uint256 top = (hosts & 0xff) + 1; // bits 0..hosts within this word
                bits &= top == 256 ? type(uint256).max : (uint256(1) << top) - 1;
            }
            if (free != 0 && free >> 8 == w) bits &= ~(uint256(1) << (free & 0xff));
            h.setUsedWord(w, bits);
        }
    }
}
