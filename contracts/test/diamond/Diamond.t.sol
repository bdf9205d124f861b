// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IERC165} from "@openzeppelin/contracts/utils/introspection/IERC165.sol";
import {Diamond} from "../../src/Diamond.sol";
import {IDiamond} from "../../src/interfaces/IDiamond.sol";
import {DiamondCutFacet} from "../../src/facets/DiamondCutFacet.sol";
import {DiamondLoupeFacet} from "../../src/facets/DiamondLoupeFacet.sol";
import {OwnershipFacet} from "../../src/facets/OwnershipFacet.sol";
import {IDiamondCut} from "../../src/interfaces/IDiamondCut.sol";
import {IDiamondLoupe} from "../../src/interfaces/IDiamondLoupe.sol";
import {IOwnership} from "../../src/interfaces/IOwnership.sol";
import {DiamondStorage} from "../../src/storage/DiamondStorage.sol";
import {OwnershipStorage} from "../../src/storage/OwnershipStorage.sol";
import {EchoFacet, TestDiamondInit} from "../utils/DiamondTestHelpers.sol";
import {Test} from "../utils/Test.sol";

contract DiamondTest is Test {
    uint256 internal constant POOL_SIZE = 16;
    uint256 internal constant FUZZ_STEPS = 24;
    uint256 internal constant BASE_SELECTOR_COUNT = 10;

    address internal owner;
    address internal stranger;
    address internal nextOwner;

    DiamondCutFacet internal cutFacet;
    DiamondLoupeFacet internal loupeFacet;
    OwnershipFacet internal ownershipFacet;
    TestDiamondInit internal testInit;
    EchoFacet[3] internal echoes;

    Diamond internal diamond;
    IDiamondCut internal cut;
    IDiamondLoupe internal loupe;
    IOwnership internal ownership;

    function setUp() public {
        owner = makeAddr("owner");
        stranger = makeAddr("stranger");
        nextOwner = makeAddr("nextOwner");
        cutFacet = new DiamondCutFacet();
        loupeFacet = new DiamondLoupeFacet();
        ownershipFacet = new OwnershipFacet();
        testInit = new TestDiamondInit();
        for (uint256 i; i < echoes.length; ++i) {
            echoes[i] = new EchoFacet(i + 1);
        }
        diamond = new Diamond(owner, _baseCuts(), address(0), "");
        cut = IDiamondCut(address(diamond));
        loupe = IDiamondLoupe(address(diamond));
        ownership = IOwnership(address(diamond));
    }

    // Storage slots.

    function test_DiamondStorage_slotMatchesErc7201() public pure {
        assertEq(DiamondStorage.STORAGE_SLOT, _erc7201("attestmesh.storage.Diamond"));
    }

    function test_OwnershipStorage_slotMatchesErc7201() public view {
        assertEq(OwnershipStorage.STORAGE_SLOT, _erc7201("attestmesh.storage.Ownership"));
        // The owner is the first field of the layout, so it must sit exactly at the slot.
        assertEq(vm.load(address(diamond), OwnershipStorage.STORAGE_SLOT), bytes32(uint256(uint160(owner))));
    }

    // Constructor.

    function test_constructor_setsOwnerAndRoutesBaseFacets() public view {
        assertEq(ownership.owner(), owner);
        assertEq(ownership.pendingOwner(), address(0));
        IDiamondLoupe.Facet[] memory facets = loupe.facets();
        assertEq(facets.length, 3);
        assertEq(facets[0].facetAddress, address(cutFacet));
        assertEq(facets[1].facetAddress, address(loupeFacet));
        assertEq(facets[2].facetAddress, address(ownershipFacet));
        IDiamondCut.FacetCut[] memory base = _baseCuts();
        for (uint256 i; i < base.length; ++i) {
            _assertSameSelectors(facets[i].functionSelectors, base[i].functionSelectors);
        }
        _assertLoupeConsistent();
    }

    function test_constructor_emitsOwnershipTransferredAndDiamondCut() public {
        IDiamondCut.FacetCut[] memory base = _baseCuts();
        vm.expectEmit();
        emit IOwnership.OwnershipTransferred(address(0), owner);
        vm.expectEmit();
        emit IDiamondCut.DiamondCut(base, address(0), "");
        new Diamond(owner, base, address(0), "");
    }

    function test_constructor_revertsOnZeroOwner() public {
        IDiamondCut.FacetCut[] memory base = _baseCuts();
        vm.expectRevert(IDiamond.OwnerIsZero.selector);
        new Diamond(address(0), base, address(0), "");
    }

    function test_constructor_runsInit() public {
        bytes4[] memory ids = new bytes4[](1);
        ids[0] = type(IDiamondLoupe).interfaceId;
        Diamond initialized = new Diamond(
            owner, _baseCuts(), address(testInit), abi.encodeCall(TestDiamondInit.setSupportedInterfaces, (ids, true))
        );
        assertTrue(IERC165(address(initialized)).supportsInterface(type(IDiamondLoupe).interfaceId));
    }

    function test_constructor_revertsWhenInitReverts() public {
        IDiamondCut.FacetCut[] memory base = _baseCuts();
        vm.expectRevert(abi.encodeWithSelector(TestDiamondInit.InitRejected.selector, 7));
        new Diamond(owner, base, address(testInit), abi.encodeCall(TestDiamondInit.rejectWith, (7)));
    }

    // diamondCut: access and shape.

    function test_diamondCut_revertsWhenCallerNotOwner() public {
        IDiamondCut.FacetCut[] memory cuts = _single(address(echoes[0]), IDiamondCut.FacetCutAction.Add, _pool(0, 1));
        vm.expectRevert(abi.encodeWithSelector(IOwnership.NotOwner.selector, stranger));
        vm.prank(stranger);
        cut.diamondCut(cuts, address(0), "");
    }

    function test_diamondCut_revertsWhenFacetCalledDirectlyByOwner() public {
        // The facet alone has no owner in its own storage; only the diamond's owner counts.
        IDiamondCut.FacetCut[] memory cuts = _single(address(echoes[0]), IDiamondCut.FacetCutAction.Add, _pool(0, 1));
        vm.expectRevert(abi.encodeWithSelector(IOwnership.NotOwner.selector, owner));
        vm.prank(owner);
        cutFacet.diamondCut(cuts, address(0), "");
    }

    function test_diamondCut_revertsOnEmptySelectors() public {
        IDiamondCut.FacetCut[] memory cuts =
            _single(address(echoes[0]), IDiamondCut.FacetCutAction.Add, new bytes4[](0));
        _expectCutRevert(cuts, abi.encodeWithSelector(IDiamondCut.NoSelectorsInCut.selector, address(echoes[0])));
    }

    function test_diamondCut_emptyCutOnlyEmits() public {
        IDiamondCut.FacetCut[] memory cuts = new IDiamondCut.FacetCut[](0);
        vm.expectEmit(address(diamond));
        emit IDiamondCut.DiamondCut(cuts, address(0), "");
        vm.prank(owner);
        cut.diamondCut(cuts, address(0), "");
        assertEq(loupe.facetAddresses().length, 3);
    }

    // diamondCut: Add.

    function test_diamondCut_addRoutesSelectorsAndEmits() public {
        bytes4[] memory selectors = _pool(0, 2);
        IDiamondCut.FacetCut[] memory cuts = _single(address(echoes[0]), IDiamondCut.FacetCutAction.Add, selectors);
        vm.expectEmit(address(diamond));
        emit IDiamondCut.DiamondCut(cuts, address(0), "");
        _cut(cuts);

        assertEq(loupe.facetAddress(selectors[0]), address(echoes[0]));
        assertEq(loupe.facetAddress(selectors[1]), address(echoes[0]));
        _assertSameSelectors(loupe.facetFunctionSelectors(address(echoes[0])), selectors);
        assertEq(loupe.facetAddresses()[3], address(echoes[0]));
        _assertRoutedTo(selectors[0], 1);
        _assertRoutedTo(selectors[1], 1);
        _assertLoupeConsistent();
    }

    function test_diamondCut_revertsOnAddZeroFacet() public {
        _expectCutRevert(
            _single(address(0), IDiamondCut.FacetCutAction.Add, _pool(0, 1)),
            abi.encodeWithSelector(IDiamondCut.FacetAddressIsZero.selector, IDiamondCut.FacetCutAction.Add)
        );
    }

    function test_diamondCut_revertsOnAddFacetWithoutCode() public {
        _expectCutRevert(
            _single(stranger, IDiamondCut.FacetCutAction.Add, _pool(0, 1)),
            abi.encodeWithSelector(IDiamondCut.FacetHasNoCode.selector, stranger)
        );
    }

    function test_diamondCut_revertsOnAddExistingSelector() public {
        _expectCutRevert(
            _single(address(echoes[0]), IDiamondCut.FacetCutAction.Add, _one(IOwnership.owner.selector)),
            abi.encodeWithSelector(
                IDiamondCut.SelectorAlreadyAdded.selector, IOwnership.owner.selector, address(ownershipFacet)
            )
        );
    }

    function test_diamondCut_revertsOnAddExistingSelectorOfSameFacet() public {
        _cut(_single(address(echoes[0]), IDiamondCut.FacetCutAction.Add, _pool(0, 1)));
        _expectCutRevert(
            _single(address(echoes[0]), IDiamondCut.FacetCutAction.Add, _pool(0, 1)),
            abi.encodeWithSelector(IDiamondCut.SelectorAlreadyAdded.selector, _poolSelector(0), address(echoes[0]))
        );
    }

    function test_diamondCut_revertsOnDuplicateSelectorInOneAdd() public {
        bytes4[] memory selectors = new bytes4[](2);
        selectors[0] = _poolSelector(3);
        selectors[1] = _poolSelector(3);
        _expectCutRevert(
            _single(address(echoes[0]), IDiamondCut.FacetCutAction.Add, selectors),
            abi.encodeWithSelector(IDiamondCut.SelectorAlreadyAdded.selector, _poolSelector(3), address(echoes[0]))
        );
    }

    // diamondCut: Replace.

    function test_diamondCut_replaceReroutesSelector() public {
        _cut(_single(address(echoes[0]), IDiamondCut.FacetCutAction.Add, _pool(0, 3)));
        _cut(_single(address(echoes[1]), IDiamondCut.FacetCutAction.Replace, _one(_poolSelector(0))));

        assertEq(loupe.facetAddress(_poolSelector(0)), address(echoes[1]));
        assertEq(loupe.facetFunctionSelectors(address(echoes[0])).length, 2);
        _assertSameSelectors(loupe.facetFunctionSelectors(address(echoes[1])), _one(_poolSelector(0)));
        _assertRoutedTo(_poolSelector(0), 2);
        _assertRoutedTo(_poolSelector(1), 1);
        _assertLoupeConsistent();
    }

    function test_diamondCut_replaceOfLastSelectorDropsOldFacet() public {
        _cut(_single(address(echoes[0]), IDiamondCut.FacetCutAction.Add, _pool(0, 2)));
        _cut(_single(address(echoes[1]), IDiamondCut.FacetCutAction.Replace, _pool(0, 2)));

        assertEq(loupe.facetFunctionSelectors(address(echoes[0])).length, 0);
        address[] memory addresses = loupe.facetAddresses();
        assertEq(addresses.length, 4);
        for (uint256 i; i < addresses.length; ++i) {
            assertNotEq(addresses[i], address(echoes[0]));
        }
        _assertLoupeConsistent();
    }

    function test_diamondCut_replaceUpgradesBaseFacet() public {
        DiamondLoupeFacet upgraded = new DiamondLoupeFacet();
        _cut(_single(address(upgraded), IDiamondCut.FacetCutAction.Replace, _loupeSelectors()));
        assertEq(loupe.facetAddress(IDiamondLoupe.facets.selector), address(upgraded));
        assertEq(loupe.facetFunctionSelectors(address(loupeFacet)).length, 0);
        _assertLoupeConsistent();
    }

    function test_diamondCut_revertsOnReplaceZeroFacet() public {
        _expectCutRevert(
            _single(address(0), IDiamondCut.FacetCutAction.Replace, _one(IOwnership.owner.selector)),
            abi.encodeWithSelector(IDiamondCut.FacetAddressIsZero.selector, IDiamondCut.FacetCutAction.Replace)
        );
    }

    function test_diamondCut_revertsOnReplaceFacetWithoutCode() public {
        _expectCutRevert(
            _single(stranger, IDiamondCut.FacetCutAction.Replace, _one(IOwnership.owner.selector)),
            abi.encodeWithSelector(IDiamondCut.FacetHasNoCode.selector, stranger)
        );
    }

    function test_diamondCut_revertsOnReplaceWithSameFacet() public {
        _expectCutRevert(
            _single(address(ownershipFacet), IDiamondCut.FacetCutAction.Replace, _one(IOwnership.owner.selector)),
            abi.encodeWithSelector(
                IDiamondCut.ReplaceWithSameFacet.selector, IOwnership.owner.selector, address(ownershipFacet)
            )
        );
    }

    function test_diamondCut_revertsOnReplaceUnknownSelector() public {
        _expectCutRevert(
            _single(address(echoes[0]), IDiamondCut.FacetCutAction.Replace, _pool(5, 1)),
            abi.encodeWithSelector(IDiamondCut.SelectorNotFound.selector, _poolSelector(5))
        );
    }

    function test_diamondCut_revertsOnReplaceImmutableSelector() public {
        _addImmutable(_poolSelector(9));
        _expectCutRevert(
            _single(address(echoes[0]), IDiamondCut.FacetCutAction.Replace, _pool(9, 1)),
            abi.encodeWithSelector(IDiamondCut.ImmutableSelector.selector, _poolSelector(9))
        );
    }

    // diamondCut: Remove.

    function test_diamondCut_removeUnroutesSelector() public {
        _cut(_single(address(echoes[0]), IDiamondCut.FacetCutAction.Add, _pool(0, 3)));
        _cut(_single(address(0), IDiamondCut.FacetCutAction.Remove, _one(_poolSelector(0))));

        assertEq(loupe.facetAddress(_poolSelector(0)), address(0));
        assertEq(loupe.facetFunctionSelectors(address(echoes[0])).length, 2);
        _assertRoutedTo(_poolSelector(2), 1);
        (bool success, bytes memory returnData) = address(diamond).call(abi.encodePacked(_poolSelector(0)));
        assertFalse(success);
        assertEq(returnData, abi.encodeWithSelector(IDiamond.FunctionNotFound.selector, _poolSelector(0)));
        _assertLoupeConsistent();
    }

    function test_diamondCut_removeOfLastSelectorDropsFacet() public {
        _cut(_single(address(echoes[0]), IDiamondCut.FacetCutAction.Add, _pool(0, 2)));
        _cut(_single(address(echoes[1]), IDiamondCut.FacetCutAction.Add, _pool(2, 2)));
        _cut(_single(address(0), IDiamondCut.FacetCutAction.Remove, _pool(0, 2)));

        address[] memory addresses = loupe.facetAddresses();
        assertEq(addresses.length, 4);
        // The last facet moved into the removed facet's position.
        assertEq(addresses[3], address(echoes[1]));
        assertEq(loupe.facetFunctionSelectors(address(echoes[0])).length, 0);
        _assertLoupeConsistent();
    }

    function test_diamondCut_removeOfBaseFacetDropsIt() public {
        _cut(_single(address(0), IDiamondCut.FacetCutAction.Remove, _loupeSelectors()));
        assertEq(ownership.owner(), owner);
        (bool success, bytes memory returnData) = address(diamond).call(abi.encodeCall(IDiamondLoupe.facets, ()));
        assertFalse(success);
        assertEq(returnData, abi.encodeWithSelector(IDiamond.FunctionNotFound.selector, IDiamondLoupe.facets.selector));
    }

    function test_diamondCut_removeOfDiamondCutFreezesRouting() public {
        _cut(_single(address(0), IDiamondCut.FacetCutAction.Remove, _one(IDiamondCut.diamondCut.selector)));
        IDiamondCut.FacetCut[] memory cuts = _single(address(echoes[0]), IDiamondCut.FacetCutAction.Add, _pool(0, 1));
        vm.expectRevert(abi.encodeWithSelector(IDiamond.FunctionNotFound.selector, IDiamondCut.diamondCut.selector));
        vm.prank(owner);
        cut.diamondCut(cuts, address(0), "");
    }

    function test_diamondCut_revertsOnRemoveWithFacetAddress() public {
        _expectCutRevert(
            _single(address(ownershipFacet), IDiamondCut.FacetCutAction.Remove, _one(IOwnership.owner.selector)),
            abi.encodeWithSelector(IDiamondCut.RemoveFacetAddressNotZero.selector, address(ownershipFacet))
        );
    }

    function test_diamondCut_revertsOnRemoveUnknownSelector() public {
        _expectCutRevert(
            _single(address(0), IDiamondCut.FacetCutAction.Remove, _pool(4, 1)),
            abi.encodeWithSelector(IDiamondCut.SelectorNotFound.selector, _poolSelector(4))
        );
    }

    function test_diamondCut_revertsOnRemoveSameSelectorTwice() public {
        _cut(_single(address(echoes[0]), IDiamondCut.FacetCutAction.Add, _pool(0, 1)));
        bytes4[] memory twice = new bytes4[](2);
        twice[0] = _poolSelector(0);
        twice[1] = _poolSelector(0);
        _expectCutRevert(
            _single(address(0), IDiamondCut.FacetCutAction.Remove, twice),
            abi.encodeWithSelector(IDiamondCut.SelectorNotFound.selector, _poolSelector(0))
        );
    }

    function test_diamondCut_revertsOnRemoveImmutableSelector() public {
        _addImmutable(_poolSelector(9));
        _expectCutRevert(
            _single(address(0), IDiamondCut.FacetCutAction.Remove, _pool(9, 1)),
            abi.encodeWithSelector(IDiamondCut.ImmutableSelector.selector, _poolSelector(9))
        );
    }

    // diamondCut: several steps.

    function test_diamondCut_appliesStepsInOrder() public {
        IDiamondCut.FacetCut[] memory cuts = new IDiamondCut.FacetCut[](3);
        cuts[0] = IDiamondCut.FacetCut(address(echoes[0]), IDiamondCut.FacetCutAction.Add, _pool(0, 3));
        cuts[1] = IDiamondCut.FacetCut(address(echoes[1]), IDiamondCut.FacetCutAction.Replace, _pool(1, 1));
        cuts[2] = IDiamondCut.FacetCut(address(0), IDiamondCut.FacetCutAction.Remove, _pool(0, 1));
        _cut(cuts);

        assertEq(loupe.facetAddress(_poolSelector(0)), address(0));
        assertEq(loupe.facetAddress(_poolSelector(1)), address(echoes[1]));
        assertEq(loupe.facetAddress(_poolSelector(2)), address(echoes[0]));
        _assertLoupeConsistent();
    }

    function test_diamondCut_revertsWholeCutWhenOneStepFails() public {
        IDiamondCut.FacetCut[] memory cuts = new IDiamondCut.FacetCut[](2);
        cuts[0] = IDiamondCut.FacetCut(address(echoes[0]), IDiamondCut.FacetCutAction.Add, _pool(0, 2));
        cuts[1] = IDiamondCut.FacetCut(address(0), IDiamondCut.FacetCutAction.Remove, _pool(7, 1));
        _expectCutRevert(cuts, abi.encodeWithSelector(IDiamondCut.SelectorNotFound.selector, _poolSelector(7)));

        assertEq(loupe.facetAddress(_poolSelector(0)), address(0));
        assertEq(loupe.facetAddresses().length, 3);
    }

    // diamondCut: initialization.

    function test_diamondCut_runsInitInDiamondStorage() public {
        bytes4[] memory ids = new bytes4[](2);
        ids[0] = type(IDiamondLoupe).interfaceId;
        ids[1] = type(IDiamondCut).interfaceId;
        bytes memory initCalldata = abi.encodeCall(TestDiamondInit.setSupportedInterfaces, (ids, true));
        IDiamondCut.FacetCut[] memory cuts = _single(address(echoes[0]), IDiamondCut.FacetCutAction.Add, _pool(0, 1));

        vm.expectEmit(address(diamond));
        emit IDiamondCut.DiamondCut(cuts, address(testInit), initCalldata);
        vm.prank(owner);
        cut.diamondCut(cuts, address(testInit), initCalldata);

        IERC165 erc165 = IERC165(address(diamond));
        assertTrue(erc165.supportsInterface(type(IDiamondLoupe).interfaceId));
        assertTrue(erc165.supportsInterface(type(IDiamondCut).interfaceId));
    }

    function test_diamondCut_initWithoutStepsOnlyInitializes() public {
        bytes4[] memory ids = _one(type(IOwnership).interfaceId);
        vm.prank(owner);
        _cutInitOnly(ids, true);
        assertTrue(IERC165(address(diamond)).supportsInterface(type(IOwnership).interfaceId));
    }

    function test_diamondCut_bubblesUpInitRevertData() public {
        IDiamondCut.FacetCut[] memory cuts = _single(address(echoes[0]), IDiamondCut.FacetCutAction.Add, _pool(0, 1));
        vm.expectRevert(abi.encodeWithSelector(TestDiamondInit.InitRejected.selector, 42));
        vm.prank(owner);
        cut.diamondCut(cuts, address(testInit), abi.encodeCall(TestDiamondInit.rejectWith, (42)));
        assertEq(loupe.facetAddress(_poolSelector(0)), address(0));
    }

    function test_diamondCut_revertsInitializationFailedWhenInitRevertsEmpty() public {
        bytes memory initCalldata = abi.encodeCall(TestDiamondInit.rejectSilently, ());
        vm.expectRevert(
            abi.encodeWithSelector(IDiamondCut.InitializationFailed.selector, address(testInit), initCalldata)
        );
        vm.prank(owner);
        cut.diamondCut(new IDiamondCut.FacetCut[](0), address(testInit), initCalldata);
    }

    function test_diamondCut_revertsOnInitWithoutCode() public {
        vm.expectRevert(abi.encodeWithSelector(IDiamondCut.InitHasNoCode.selector, stranger));
        vm.prank(owner);
        cut.diamondCut(new IDiamondCut.FacetCut[](0), stranger, hex"01");
    }

    function test_diamondCut_revertsOnCalldataWithoutInit() public {
        vm.expectRevert(abi.encodeWithSelector(IDiamondCut.InitCalldataWithoutInit.selector, hex"abcd"));
        vm.prank(owner);
        cut.diamondCut(new IDiamondCut.FacetCut[](0), address(0), hex"abcd");
    }

    // Fallback.

    function test_fallback_revertsOnUnknownSelector() public {
        (bool success, bytes memory returnData) = address(diamond).call(hex"deadbeef00");
        assertFalse(success);
        assertEq(returnData, abi.encodeWithSelector(IDiamond.FunctionNotFound.selector, bytes4(0xdeadbeef)));
    }

    function test_fallback_revertsOnShortCalldata() public {
        (bool success, bytes memory returnData) = address(diamond).call(hex"1234");
        assertFalse(success);
        assertEq(returnData, abi.encodeWithSelector(IDiamond.FunctionNotFound.selector, bytes4(0x12340000)));
    }

    function test_fallback_refusesEther() public {
        vm.deal(address(this), 2 ether);
        (bool success, bytes memory returnData) = address(diamond).call{value: 1 ether}("");
        assertFalse(success);
        assertEq(returnData, abi.encodeWithSelector(IDiamond.EtherNotAccepted.selector, 1 ether));

        (success, returnData) = address(diamond).call{value: 1}(abi.encodeCall(IOwnership.owner, ()));
        assertFalse(success);
        assertEq(returnData, abi.encodeWithSelector(IDiamond.EtherNotAccepted.selector, 1));
        assertEq(address(diamond).balance, 0);
    }

    function test_fallback_returnsFacetData() public {
        _cut(_single(address(echoes[2]), IDiamondCut.FacetCutAction.Add, _pool(0, 1)));
        _assertRoutedTo(_poolSelector(0), 3);
    }

    function testFuzz_fallback_revertsOnUnroutedSelector(bytes4 selector) public {
        vm.assume(loupe.facetAddress(selector) == address(0));
        (bool success, bytes memory returnData) = address(diamond).call(abi.encodePacked(selector, uint256(1)));
        assertFalse(success);
        assertEq(returnData, abi.encodeWithSelector(IDiamond.FunctionNotFound.selector, selector));
    }

    // Loupe and ERC-165.

    function test_facetFunctionSelectors_isEmptyForUnknownFacet() public view {
        assertEq(loupe.facetFunctionSelectors(stranger).length, 0);
    }

    function test_facetAddress_isZeroForUnknownSelector() public view {
        assertEq(loupe.facetAddress(0x00000000), address(0));
        assertEq(loupe.facetAddress(_poolSelector(0)), address(0));
    }

    function test_supportsInterface_claimsErc165() public view {
        assertTrue(IERC165(address(diamond)).supportsInterface(type(IERC165).interfaceId));
        assertFalse(IERC165(address(diamond)).supportsInterface(type(IDiamondLoupe).interfaceId));
    }

    function test_supportsInterface_neverClaimsInvalidId() public {
        vm.prank(owner);
        _cutInitOnly(_one(0xffffffff), true);
        assertFalse(IERC165(address(diamond)).supportsInterface(0xffffffff));
    }

    function test_supportsInterface_followsSupportedInterfaces() public {
        bytes4[] memory ids = _one(type(IDiamondLoupe).interfaceId);
        vm.startPrank(owner);
        _cutInitOnly(ids, true);
        assertTrue(IERC165(address(diamond)).supportsInterface(type(IDiamondLoupe).interfaceId));
        _cutInitOnly(ids, false);
        vm.stopPrank();
        assertFalse(IERC165(address(diamond)).supportsInterface(type(IDiamondLoupe).interfaceId));
    }

    function testFuzz_diamondCut_keepsLoupeConsistent(uint256 seed) public {
        address[POOL_SIZE] memory model;
        for (uint256 step; step < FUZZ_STEPS; ++step) {
            uint256 r = uint256(keccak256(abi.encode(seed, step)));
            IDiamondCut.FacetCutAction action = IDiamondCut.FacetCutAction(r % 3);
            address facet = address(echoes[(r >> 8) % 3]);
            bytes4[] memory selectors = _eligible(model, action, facet, r >> 16);
            if (selectors.length == 0) continue;

            _cut(_single(action == IDiamondCut.FacetCutAction.Remove ? address(0) : facet, action, selectors));
            for (uint256 i; i < selectors.length; ++i) {
                model[_poolIndex(selectors[i])] = action == IDiamondCut.FacetCutAction.Remove ? address(0) : facet;
            }
            _assertMatchesModel(model);
        }
    }

    // Ownership.

    function test_transferOwnership_startsTransfer() public {
        vm.expectEmit(address(diamond));
        emit IOwnership.OwnershipTransferStarted(owner, nextOwner);
        vm.prank(owner);
        ownership.transferOwnership(nextOwner);

        assertEq(ownership.owner(), owner);
        assertEq(ownership.pendingOwner(), nextOwner);
    }

    function test_transferOwnership_revertsWhenCallerNotOwner() public {
        vm.expectRevert(abi.encodeWithSelector(IOwnership.NotOwner.selector, stranger));
        vm.prank(stranger);
        ownership.transferOwnership(stranger);
    }

    function test_transferOwnership_revertsWhenPendingOwnerCalls() public {
        vm.prank(owner);
        ownership.transferOwnership(nextOwner);
        vm.expectRevert(abi.encodeWithSelector(IOwnership.NotOwner.selector, nextOwner));
        vm.prank(nextOwner);
        ownership.transferOwnership(stranger);
    }

    function test_transferOwnership_toZeroCancelsPending() public {
        vm.startPrank(owner);
        ownership.transferOwnership(nextOwner);
        vm.expectEmit(address(diamond));
        emit IOwnership.OwnershipTransferStarted(owner, address(0));
        ownership.transferOwnership(address(0));
        vm.stopPrank();
        assertEq(ownership.pendingOwner(), address(0));

        vm.expectRevert(abi.encodeWithSelector(IOwnership.NotPendingOwner.selector, nextOwner));
        vm.prank(nextOwner);
        ownership.acceptOwnership();
    }

    function test_transferOwnership_replacesPending() public {
        vm.startPrank(owner);
        ownership.transferOwnership(stranger);
        ownership.transferOwnership(nextOwner);
        vm.stopPrank();
        assertEq(ownership.pendingOwner(), nextOwner);

        vm.expectRevert(abi.encodeWithSelector(IOwnership.NotPendingOwner.selector, stranger));
        vm.prank(stranger);
        ownership.acceptOwnership();
    }

    function test_acceptOwnership_completesTransfer() public {
        vm.prank(owner);
        ownership.transferOwnership(nextOwner);

        vm.expectEmit(address(diamond));
        emit IOwnership.OwnershipTransferred(owner, nextOwner);
        vm.prank(nextOwner);
        ownership.acceptOwnership();

        assertEq(ownership.owner(), nextOwner);
        assertEq(ownership.pendingOwner(), address(0));

        IDiamondCut.FacetCut[] memory cuts = _single(address(echoes[0]), IDiamondCut.FacetCutAction.Add, _pool(0, 1));
        vm.expectRevert(abi.encodeWithSelector(IOwnership.NotOwner.selector, owner));
        vm.prank(owner);
        cut.diamondCut(cuts, address(0), "");
        vm.prank(nextOwner);
        cut.diamondCut(cuts, address(0), "");
        assertEq(loupe.facetAddress(_poolSelector(0)), address(echoes[0]));
    }

    function test_acceptOwnership_revertsWhenCallerNotPending() public {
        vm.prank(owner);
        ownership.transferOwnership(nextOwner);
        vm.expectRevert(abi.encodeWithSelector(IOwnership.NotPendingOwner.selector, stranger));
        vm.prank(stranger);
        ownership.acceptOwnership();
    }

    function test_acceptOwnership_revertsWithoutPendingTransfer() public {
        vm.expectRevert(abi.encodeWithSelector(IOwnership.NotPendingOwner.selector, owner));
        vm.prank(owner);
        ownership.acceptOwnership();
    }

    function test_acceptOwnership_cannotBeReplayed() public {
        vm.prank(owner);
        ownership.transferOwnership(nextOwner);
        vm.startPrank(nextOwner);
        ownership.acceptOwnership();
        vm.expectRevert(abi.encodeWithSelector(IOwnership.NotPendingOwner.selector, nextOwner));
        ownership.acceptOwnership();
        vm.stopPrank();
    }

    function test_renounceOwnership_isNotRouted() public {
        (bool success, bytes memory returnData) = address(diamond).call(abi.encodeWithSignature("renounceOwnership()"));
        assertFalse(success);
        assertEq(
            returnData,
            abi.encodeWithSelector(IDiamond.FunctionNotFound.selector, bytes4(keccak256("renounceOwnership()")))
        );
    }

    function testFuzz_transferOwnership_onlyOwner(address caller, address proposed) public {
        vm.assume(caller != owner);
        vm.expectRevert(abi.encodeWithSelector(IOwnership.NotOwner.selector, caller));
        vm.prank(caller);
        ownership.transferOwnership(proposed);
    }

    function testFuzz_acceptOwnership_onlyPendingOwner(address caller) public {
        vm.assume(caller != nextOwner);
        vm.prank(owner);
        ownership.transferOwnership(nextOwner);
        vm.expectRevert(abi.encodeWithSelector(IOwnership.NotPendingOwner.selector, caller));
        vm.prank(caller);
        ownership.acceptOwnership();
        assertEq(ownership.owner(), owner);
    }

    // Helpers.

    function _baseCuts() internal view returns (IDiamondCut.FacetCut[] memory cuts) {
        cuts = new IDiamondCut.FacetCut[](3);
        cuts[0] = IDiamondCut.FacetCut(
            address(cutFacet), IDiamondCut.FacetCutAction.Add, _one(IDiamondCut.diamondCut.selector)
        );
        cuts[1] = IDiamondCut.FacetCut(address(loupeFacet), IDiamondCut.FacetCutAction.Add, _loupeSelectors());
        bytes4[] memory ownershipSelectors = new bytes4[](4);
        ownershipSelectors[0] = IOwnership.transferOwnership.selector;
        ownershipSelectors[1] = IOwnership.acceptOwnership.selector;
        ownershipSelectors[2] = IOwnership.owner.selector;
        ownershipSelectors[3] = IOwnership.pendingOwner.selector;
        cuts[2] = IDiamondCut.FacetCut(address(ownershipFacet), IDiamondCut.FacetCutAction.Add, ownershipSelectors);
    }

    function _loupeSelectors() internal pure returns (bytes4[] memory selectors) {
        selectors = new bytes4[](5);
        selectors[0] = IDiamondLoupe.facets.selector;
        selectors[1] = IDiamondLoupe.facetFunctionSelectors.selector;
        selectors[2] = IDiamondLoupe.facetAddresses.selector;
        selectors[3] = IDiamondLoupe.facetAddress.selector;
        selectors[4] = IERC165.supportsInterface.selector;
    }

    function _erc7201(string memory namespace) internal pure returns (bytes32) {
        return keccak256(abi.encode(uint256(keccak256(bytes(namespace))) - 1)) & ~bytes32(uint256(0xff));
    }

    function _cut(IDiamondCut.FacetCut[] memory cuts) internal {
        vm.prank(owner);
        cut.diamondCut(cuts, address(0), "");
    }

    function _expectCutRevert(IDiamondCut.FacetCut[] memory cuts, bytes memory revertData) internal {
        vm.expectRevert(revertData);
        vm.prank(owner);
        cut.diamondCut(cuts, address(0), "");
    }

    /// @dev Routing a selector to the diamond itself is how EIP-2535 records a function the diamond implements
    /// directly; this diamond has none of its own, so the tests create one to exercise the rule.
    function _addImmutable(bytes4 selector) internal {
        _cut(_single(address(diamond), IDiamondCut.FacetCutAction.Add, _one(selector)));
        assertEq(loupe.facetAddress(selector), address(diamond));
    }

    function _single(address facet, IDiamondCut.FacetCutAction action, bytes4[] memory selectors)
        internal
        pure
        returns (IDiamondCut.FacetCut[] memory cuts)
    {
        cuts = new IDiamondCut.FacetCut[](1);
        cuts[0] = IDiamondCut.FacetCut(facet, action, selectors);
    }

    /// @dev A cut with no steps that only runs the test initializer, marking `ids` supported or not.
    function _cutInitOnly(bytes4[] memory ids, bool supported) internal {
        cut.diamondCut(
            new IDiamondCut.FacetCut[](0),
            address(testInit),
            abi.encodeCall(TestDiamondInit.setSupportedInterfaces, (ids, supported))
        );
    }

    function _one(bytes4 selector) internal pure returns (bytes4[] memory selectors) {
        selectors = new bytes4[](1);
        selectors[0] = selector;
    }

    /// @dev Pool selectors are hashes so they cannot collide with the base facets' selectors.
    function _poolSelector(uint256 index) internal pure returns (bytes4) {
        return bytes4(keccak256(abi.encode("attestmesh.test.pool", index)));
    }

    function _pool(uint256 first, uint256 count) internal pure returns (bytes4[] memory selectors) {
        selectors = new bytes4[](count);
        for (uint256 i; i < count; ++i) {
            selectors[i] = _poolSelector(first + i);
        }
    }

    function _poolIndex(bytes4 selector) internal pure returns (uint256) {
        for (uint256 i; i < POOL_SIZE; ++i) {
            if (_poolSelector(i) == selector) return i;
        }
        fail("selector outside the pool");
        return type(uint256).max;
    }

    /// @dev Picks, from the pool slots set in `mask`, the selectors the action may legally apply to.
    function _eligible(
        address[POOL_SIZE] memory model,
        IDiamondCut.FacetCutAction action,
        address facet,
        uint256 mask
    ) internal pure returns (bytes4[] memory selectors) {
        selectors = new bytes4[](POOL_SIZE);
        uint256 count;
        for (uint256 i; i < POOL_SIZE; ++i) {
            if ((mask >> i) & 1 == 0) continue;
            bool routed = model[i] != address(0);
            bool eligible = action == IDiamondCut.FacetCutAction.Add
                ? !routed
                : action == IDiamondCut.FacetCutAction.Replace ? routed && model[i] != facet : routed;
            if (eligible) selectors[count++] = _poolSelector(i);
        }
        assembly ("memory-safe") {
            mstore(selectors, count)
        }
    }

    function _assertMatchesModel(address[POOL_SIZE] memory model) internal {
        uint256 routed;
        for (uint256 i; i < POOL_SIZE; ++i) {
            assertEq(loupe.facetAddress(_poolSelector(i)), model[i], "facetAddress disagrees with the model");
            if (model[i] == address(0)) continue;
            ++routed;
            _assertRoutedTo(_poolSelector(i), _tagOf(model[i]));
        }
        for (uint256 e; e < echoes.length; ++e) {
            uint256 expected;
            for (uint256 i; i < POOL_SIZE; ++i) {
                if (model[i] == address(echoes[e])) ++expected;
            }
            assertEq(loupe.facetFunctionSelectors(address(echoes[e])).length, expected, "facet selector count");
            assertEq(_contains(loupe.facetAddresses(), address(echoes[e])), expected != 0, "facet listed iff used");
        }
        assertEq(_assertLoupeConsistent(), BASE_SELECTOR_COUNT + routed, "total selector count");
    }

    /// @dev Checks the loupe views against each other and the selector mapping; returns the selector total.
    function _assertLoupeConsistent() internal view returns (uint256 total) {
        IDiamondLoupe.Facet[] memory facets = loupe.facets();
        address[] memory addresses = loupe.facetAddresses();
        assertEq(facets.length, addresses.length, "facets and facetAddresses differ in length");
        for (uint256 f; f < facets.length; ++f) {
            address facet = facets[f].facetAddress;
            bytes4[] memory selectors = facets[f].functionSelectors;
            assertEq(facet, addresses[f], "facets and facetAddresses differ in order");
            assertTrue(selectors.length != 0, "facet listed without selectors");
            for (uint256 g; g < f; ++g) {
                assertNotEq(facets[g].facetAddress, facet, "facet listed twice");
            }
            _assertSameSelectors(loupe.facetFunctionSelectors(facet), selectors);
            for (uint256 s; s < selectors.length; ++s) {
                assertEq(loupe.facetAddress(selectors[s]), facet, "selector routed elsewhere than listed");
                for (uint256 t; t < s; ++t) {
                    assertNotEq(selectors[t], selectors[s], "selector listed twice");
                }
            }
            total += selectors.length;
        }
    }

    function _assertSameSelectors(bytes4[] memory actual, bytes4[] memory expected) internal pure {
        assertEq(actual.length, expected.length, "selector count");
        for (uint256 i; i < expected.length; ++i) {
            bool found;
            for (uint256 j; j < actual.length; ++j) {
                if (actual[j] == expected[i]) found = true;
            }
            assertTrue(found, "selector missing");
        }
    }

    function _assertRoutedTo(bytes4 selector, uint256 tag) internal {
        (bool success, bytes memory returnData) = address(diamond).call(abi.encodePacked(selector));
        assertTrue(success, "routed call failed");
        assertEq(returnData, abi.encode(tag, selector), "routed to the wrong facet");
    }

    function _tagOf(address facet) internal view returns (uint256) {
        for (uint256 e; e < echoes.length; ++e) {
            if (address(echoes[e]) == facet) return e + 1;
        }
        return 0;
    }

    function _contains(address[] memory list, address item) internal pure returns (bool) {
        for (uint256 i; i < list.length; ++i) {
            if (list[i] == item) return true;
        }
        return false;
    }
}
