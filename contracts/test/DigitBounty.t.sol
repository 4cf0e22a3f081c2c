// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {Test} from "forge-std/Test.sol";
import {InferenceCoordinator} from "../src/InferenceCoordinator.sol";
import {IInferenceCoordinator} from "../src/interfaces/IInferenceCoordinator.sol";
import {DigitBounty} from "../src/examples/DigitBounty.sol";
import {MockVerifier, ProofBook} from "./mocks/MockVerifier.sol";
import {InstanceEncoding} from "./utils/InstanceEncoding.sol";

/// @notice Takes the bounty as a winner, then refuses the ETH.
contract RefusingSubmitter {
    function submit(DigitBounty bounty, int256[] calldata pixels) external payable returns (uint256) {
        return bounty.submit{value: msg.value}(pixels);
    }
}

contract DigitBountyTest is Test {
    uint96 internal constant FEE = 0.001 ether;
    uint8 internal constant TARGET = 7;

    InferenceCoordinator internal coordinator;
    ProofBook internal book;
    bytes32 internal modelId;
    DigitBounty internal bounty;

    address internal alice = makeAddr("alice");
    address internal bob = makeAddr("bob");
    address internal node = makeAddr("node");

    function setUp() public {
        coordinator = new InferenceCoordinator();
        book = new ProofBook();
        MockVerifier verifier = new MockVerifier(book);
        // The 8x8 digits: 64 pixels in 0..16, ten logits.
        modelId = coordinator.registerModel(
            address(verifier), IInferenceCoordinator.ModelEncoding(64, 10, 4, 7, 16, 0, 16, -32768, 32767), FEE, 1 hours
        );
        bounty = new DigitBounty{value: 1 ether}(coordinator, modelId, TARGET);
        vm.deal(alice, 1 ether);
        vm.deal(bob, 1 ether);
    }

    function _pixels(int256 shade) internal pure returns (int256[] memory pixels) {
        pixels = new int256[](64);
        for (uint256 i; i < 64; ++i) {
            pixels[i] = shade;
        }
    }

    function _logits(uint256 winner) internal pure returns (int256[] memory logits) {
        logits = new int256[](10);
        for (uint256 i; i < 10; ++i) {
            logits[i] = -int256(i) * 100;
        }
        logits[winner] = 5_000;
    }

    function _prove(uint256 requestId, int256[] memory pixels, int256[] memory logits)
        internal
        returns (bytes memory proof)
    {
        proof = abi.encodePacked("digit proof", requestId);
        book.accept(InstanceEncoding.verifierCalldata(16, requestId, node, pixels, logits, proof));
    }

    function _fulfil(uint256 requestId, int256[] memory pixels, int256[] memory logits) internal {
        bytes memory proof = _prove(requestId, pixels, logits);
        vm.prank(node);
        coordinator.fulfillInference(requestId, pixels, logits, proof);
    }

    function _submit(address who, int256[] memory pixels) internal returns (uint256) {
        vm.prank(who);
        return bounty.submit{value: FEE}(pixels);
    }

    function test_constructor_storesConfigAndBounty() public view {
        assertEq(address(bounty.coordinator()), address(coordinator));
        assertEq(bounty.modelId(), modelId);
        assertEq(bounty.targetDigit(), TARGET);
        assertEq(bounty.bounty(), 1 ether);
        assertEq(address(bounty).balance, 1 ether);
    }

    function test_constructor_revertsForModelWithoutTenOutputs() public {
        bytes32 other = coordinator.registerModel(
            address(new MockVerifier(new ProofBook())),
            IInferenceCoordinator.ModelEncoding(64, 3, 4, 7, 16, 0, 16, -32768, 32767),
            FEE,
            1 hours
        );
        vm.expectRevert(abi.encodeWithSelector(DigitBounty.NotADigitClassifier.selector, 3));
        new DigitBounty(coordinator, other, TARGET);
        vm.expectRevert(abi.encodeWithSelector(DigitBounty.NotADigitClassifier.selector, 0));
        new DigitBounty(coordinator, keccak256("nothing"), TARGET);
    }

    function test_constructor_revertsForTargetAboveNine() public {
        vm.expectRevert(abi.encodeWithSelector(DigitBounty.InvalidTargetDigit.selector, 10));
        new DigitBounty(coordinator, modelId, 10);
    }

    function test_onInferenceResult_paysBountyForTargetDigit() public {
        int256[] memory pixels = _pixels(9);
        uint256 id = _submit(alice, pixels);
        assertEq(bounty.submitterOf(id), alice);
        bytes memory proof = _prove(id, pixels, _logits(TARGET));
        vm.expectEmit(address(bounty));
        emit DigitBounty.Classified(id, alice, TARGET);
        vm.expectEmit(address(bounty));
        emit DigitBounty.BountyPaid(id, alice, 1 ether);
        vm.prank(node);
        coordinator.fulfillInference(id, pixels, _logits(TARGET), proof);

        assertEq(alice.balance, 1 ether - FEE + 1 ether);
        assertEq(bounty.bounty(), 0);
        (,, bool callbackSucceeded) = coordinator.getResult(id);
        assertTrue(callbackSucceeded);
        assertEq(coordinator.withdrawable(node), FEE);
    }

    function test_onInferenceResult_keepsBountyForOtherDigit() public {
        int256[] memory pixels = _pixels(3);
        uint256 id = _submit(alice, pixels);
        bytes memory proof = _prove(id, pixels, _logits(2));
        vm.expectEmit(address(bounty));
        emit DigitBounty.Classified(id, alice, 2);
        vm.prank(node);
        coordinator.fulfillInference(id, pixels, _logits(2), proof);
        assertEq(bounty.bounty(), 1 ether);
        assertEq(alice.balance, 1 ether - FEE);
        (,, bool callbackSucceeded) = coordinator.getResult(id);
        assertTrue(callbackSucceeded);
    }

    function test_onInferenceResult_paysOnlyTheFirstWinner() public {
        int256[] memory pixels = _pixels(5);
        uint256 first = _submit(alice, pixels);
        uint256 second = _submit(bob, pixels);
        _fulfil(second, pixels, _logits(TARGET));
        _fulfil(first, pixels, _logits(TARGET));
        assertEq(bob.balance, 1 ether - FEE + 1 ether);
        assertEq(alice.balance, 1 ether - FEE);
        assertEq(address(bounty).balance, 0);
    }

    function test_onInferenceResult_revertsForNonCoordinator() public {
        vm.expectRevert(abi.encodeWithSelector(DigitBounty.NotCoordinator.selector, alice));
        vm.prank(alice);
        bounty.onInferenceResult(1, _logits(TARGET));
    }

    function test_onInferenceResult_failsCallbackWhenWinnerRefusesEther() public {
        RefusingSubmitter refuser = new RefusingSubmitter();
        vm.deal(address(refuser), 1 ether);
        int256[] memory pixels = _pixels(1);
        uint256 id = refuser.submit{value: FEE}(bounty, pixels);
        _fulfil(id, pixels, _logits(TARGET));
        (IInferenceCoordinator.RequestStatus status,, bool callbackSucceeded) = coordinator.getResult(id);
        assertEq(uint8(status), uint8(IInferenceCoordinator.RequestStatus.Fulfilled));
        assertFalse(callbackSucceeded);
        // The bounty is still there for someone who can take it.
        assertEq(bounty.bounty(), 1 ether);
        uint256 next = _submit(alice, pixels);
        _fulfil(next, pixels, _logits(TARGET));
        assertEq(bounty.bounty(), 0);
    }

    function test_submit_revertsOnceBountyPaid() public {
        int256[] memory pixels = _pixels(4);
        _fulfil(_submit(alice, pixels), pixels, _logits(TARGET));
        vm.expectRevert(DigitBounty.BountyAlreadyPaid.selector);
        vm.prank(bob);
        bounty.submit{value: FEE}(pixels);
    }

    function test_submit_forwardsCoordinatorErrors() public {
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.IncorrectPayment.selector, FEE, 0));
        vm.prank(alice);
        bounty.submit(_pixels(0));
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.InputOutOfRange.selector, 0, 17));
        vm.prank(alice);
        bounty.submit{value: FEE}(_pixels(17));
    }

    function test_reclaim_returnsFeeToSubmitterAfterDeadline() public {
        uint256 id = _submit(alice, _pixels(2));
        vm.warp(coordinator.getRequest(id).deadline + 1);
        vm.expectEmit(address(bounty));
        emit DigitBounty.Reclaimed(id, alice, FEE);
        vm.prank(alice);
        bounty.reclaim(id);
        assertEq(alice.balance, 1 ether);
        assertEq(uint8(coordinator.getRequest(id).status), uint8(IInferenceCoordinator.RequestStatus.Cancelled));
        assertEq(coordinator.withdrawable(address(bounty)), 0);
    }

    function test_reclaim_revertsForOthers() public {
        uint256 id = _submit(alice, _pixels(2));
        vm.warp(coordinator.getRequest(id).deadline + 1);
        vm.expectRevert(abi.encodeWithSelector(DigitBounty.NotSubmitter.selector, id, bob));
        vm.prank(bob);
        bounty.reclaim(id);
    }

    function test_reclaim_revertsBeforeDeadline() public {
        uint256 id = _submit(alice, _pixels(2));
        uint64 deadline = coordinator.getRequest(id).deadline;
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.RequestNotExpired.selector, id, deadline));
        vm.prank(alice);
        bounty.reclaim(id);
    }

    function testFuzz_argmax_returnsFirstLargest(int64[10] memory raw) public view {
        int256[] memory logits = new int256[](10);
        for (uint256 i; i < 10; ++i) {
            logits[i] = raw[i];
        }
        uint256 best = bounty.argmax(logits);
        for (uint256 i; i < 10; ++i) {
            if (i < best) assertLt(logits[i], logits[best]);
            else assertLe(logits[i], logits[best]);
        }
    }
}
