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
    function commit(DigitBounty bounty, int256[] calldata pixels) external {
        bounty.commit(bounty.commitmentOf(address(this), pixels, 0));
    }

    function reveal(DigitBounty bounty, int256[] calldata pixels) external payable returns (uint256) {
        return bounty.reveal{value: msg.value}(pixels, 0);
    }
}

contract DigitBountyTest is Test {
    uint96 internal constant FEE = 0.001 ether;
    uint8 internal constant TARGET = 7;
    uint64 internal constant COMMIT_SECONDS = 1 days;
    uint64 internal constant REVEAL_SECONDS = 1 days;
    uint64 internal constant DEADLINE_SECONDS = 1 hours;

    InferenceCoordinator internal coordinator;
    ProofBook internal book;
    bytes32 internal modelId;
    uint256 internal listingId;
    DigitBounty internal bounty;

    address internal sponsor = makeAddr("sponsor");
    address internal listingOwner = makeAddr("listingOwner");
    address internal alice = makeAddr("alice");
    address internal bob = makeAddr("bob");
    address internal node = makeAddr("node");

    function setUp() public {
        coordinator = new InferenceCoordinator();
        book = new ProofBook();
        // The 8x8 digits: 64 pixels in 0..16, ten logits.
        modelId = _registerMock(IInferenceCoordinator.ModelEncoding(64, 10, 4, 7, 16, 0, 16, -32768, 32767, false));
        vm.prank(listingOwner);
        listingId = coordinator.createListing(modelId, FEE, DEADLINE_SECONDS);
        vm.deal(sponsor, 1 ether);
        vm.prank(sponsor);
        bounty = new DigitBounty{value: 1 ether}(coordinator, listingId, TARGET, COMMIT_SECONDS, REVEAL_SECONDS);
        vm.deal(alice, 1 ether);
        vm.deal(bob, 1 ether);
    }

    function _registerMock(IInferenceCoordinator.ModelEncoding memory encoding) internal returns (bytes32) {
        MockVerifier verifier = new MockVerifier(book, coordinator.computeEncodingHash(encoding));
        book.accept("sample");
        return coordinator.registerModel(address(verifier), encoding, "sample");
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
        book.accept(InstanceEncoding.verifierCalldata(16, address(coordinator), requestId, node, pixels, logits, proof));
    }

    function _fulfil(uint256 requestId, int256[] memory pixels, int256[] memory logits) internal {
        bytes memory proof = _prove(requestId, pixels, logits);
        vm.prank(node);
        coordinator.fulfillInference(requestId, pixels, logits, proof);
    }

    function _salt(address who) internal pure returns (bytes32) {
        return keccak256(abi.encode("salt", who));
    }

    function _commit(address who, int256[] memory pixels) internal {
        vm.prank(who);
        bounty.commit(bounty.commitmentOf(who, pixels, _salt(who)));
    }

    function _revealPhase() internal {
        vm.warp(uint256(bounty.commitDeadline()) + 1);
    }

    function _reveal(address who, int256[] memory pixels) internal returns (uint256) {
        vm.prank(who);
        return bounty.reveal{value: FEE}(pixels, _salt(who));
    }

    /// Commits during the commit phase, then reveals in the reveal phase.
    function _submit(address who, int256[] memory pixels) internal returns (uint256) {
        if (block.timestamp <= bounty.commitDeadline()) {
            _commit(who, pixels);
            _revealPhase();
        }
        return _reveal(who, pixels);
    }

    function test_constructor_storesConfigAndBounty() public view {
        assertEq(address(bounty.coordinator()), address(coordinator));
        assertEq(bounty.listingId(), listingId);
        assertEq(bounty.targetDigit(), TARGET);
        assertEq(bounty.sponsor(), sponsor);
        assertEq(bounty.commitDeadline(), block.timestamp + COMMIT_SECONDS);
        assertEq(bounty.revealDeadline(), block.timestamp + COMMIT_SECONDS + REVEAL_SECONDS);
        assertEq(bounty.exitTime(), bounty.revealDeadline() + DEADLINE_SECONDS + 1);
        assertEq(bounty.bounty(), 1 ether);
        assertEq(address(bounty).balance, 1 ether);
    }

    function test_constructor_revertsForModelWithoutTenOutputs() public {
        bytes32 other = _registerMock(IInferenceCoordinator.ModelEncoding(64, 3, 4, 7, 16, 0, 16, -32768, 32767, false));
        uint256 otherListing = coordinator.createListing(other, FEE, DEADLINE_SECONDS);
        vm.expectRevert(abi.encodeWithSelector(DigitBounty.NotADigitClassifier.selector, 3));
        new DigitBounty(coordinator, otherListing, TARGET, COMMIT_SECONDS, REVEAL_SECONDS);
        vm.expectRevert(abi.encodeWithSelector(DigitBounty.NotADigitClassifier.selector, 0));
        new DigitBounty(coordinator, 999, TARGET, COMMIT_SECONDS, REVEAL_SECONDS);
    }

    function test_constructor_revertsForTargetAboveNineOrEmptyPhases() public {
        vm.expectRevert(abi.encodeWithSelector(DigitBounty.InvalidTargetDigit.selector, 10));
        new DigitBounty(coordinator, listingId, 10, COMMIT_SECONDS, REVEAL_SECONDS);
        vm.expectRevert(abi.encodeWithSelector(DigitBounty.InvalidPhases.selector, 0, REVEAL_SECONDS));
        new DigitBounty(coordinator, listingId, TARGET, 0, REVEAL_SECONDS);
        vm.expectRevert(abi.encodeWithSelector(DigitBounty.InvalidPhases.selector, COMMIT_SECONDS, 0));
        new DigitBounty(coordinator, listingId, TARGET, COMMIT_SECONDS, 0);
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

    /// Two honest finders of the same image (both committed blind): the first proven wins.
    function test_onInferenceResult_paysOnlyTheFirstWinner() public {
        int256[] memory pixels = _pixels(5);
        _commit(alice, pixels);
        _commit(bob, pixels);
        _revealPhase();
        uint256 first = _reveal(alice, pixels);
        uint256 second = _reveal(bob, pixels);
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
        refuser.commit(bounty, pixels);
        _commit(alice, pixels);
        _revealPhase();
        uint256 id = refuser.reveal{value: FEE}(bounty, pixels);
        _fulfil(id, pixels, _logits(TARGET));
        (IInferenceCoordinator.RequestStatus status,, bool callbackSucceeded) = coordinator.getResult(id);
        assertEq(uint8(status), uint8(IInferenceCoordinator.RequestStatus.Fulfilled));
        assertFalse(callbackSucceeded);
        // The bounty is still there for someone who can take it.
        assertEq(bounty.bounty(), 1 ether);
        uint256 next = _reveal(alice, pixels);
        _fulfil(next, pixels, _logits(TARGET));
        assertEq(bounty.bounty(), 0);
    }

    function test_reveal_revertsOnceBountyPaid() public {
        int256[] memory pixels = _pixels(4);
        _commit(alice, pixels);
        _commit(bob, pixels);
        _revealPhase();
        _fulfil(_reveal(alice, pixels), pixels, _logits(TARGET));
        vm.expectRevert(DigitBounty.BountyAlreadyPaid.selector);
        vm.prank(bob);
        bounty.reveal{value: FEE}(pixels, _salt(bob));
    }

    function test_reveal_forwardsCoordinatorErrors() public {
        _commit(alice, _pixels(0));
        _commit(alice, _pixels(17));
        _revealPhase();
        // The value sent is also the most the request may charge.
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.FeeAboveMax.selector, listingId, FEE, 0));
        vm.prank(alice);
        bounty.reveal(_pixels(0), _salt(alice));
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.InputOutOfRange.selector, 0, 17));
        vm.prank(alice);
        bounty.reveal{value: FEE}(_pixels(17), _salt(alice));
    }

    function test_reveal_cannotBeOverchargedByARaisedFee() public {
        _commit(alice, _pixels(3));
        _revealPhase();
        vm.prank(listingOwner);
        coordinator.setListingFee(listingId, 1 ether);
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.FeeAboveMax.selector, listingId, 1 ether, FEE));
        _reveal(alice, _pixels(3));
        assertEq(alice.balance, 1 ether);
    }

    function test_commit_revertsAfterCommitPhase() public {
        _revealPhase();
        bytes32 c = bounty.commitmentOf(alice, _pixels(1), _salt(alice));
        vm.expectRevert(abi.encodeWithSelector(DigitBounty.CommitPhaseOver.selector, bounty.commitDeadline()));
        vm.prank(alice);
        bounty.commit(c);
    }

    function test_reveal_revertsOutsideRevealPhase() public {
        _commit(alice, _pixels(1));
        uint64 opens = bounty.commitDeadline();
        uint64 closes = bounty.revealDeadline();
        vm.expectRevert(abi.encodeWithSelector(DigitBounty.NotInRevealPhase.selector, opens, closes));
        _reveal(alice, _pixels(1));
        vm.warp(uint256(closes) + 1);
        vm.expectRevert(abi.encodeWithSelector(DigitBounty.NotInRevealPhase.selector, opens, closes));
        _reveal(alice, _pixels(1));
        vm.warp(closes);
        _reveal(alice, _pixels(1));
    }

    /// A commitment names its submitter and opens once.
    function test_reveal_revertsForACommitmentNotMadeByTheCaller() public {
        int256[] memory pixels = _pixels(6);
        _commit(alice, pixels);
        _revealPhase();
        bytes32 bobs = bounty.commitmentOf(bob, pixels, _salt(alice));
        vm.expectRevert(abi.encodeWithSelector(DigitBounty.UnknownCommitment.selector, bobs));
        vm.prank(bob);
        bounty.reveal{value: FEE}(pixels, _salt(alice));
        _reveal(alice, pixels);
        bytes32 alices = bounty.commitmentOf(alice, pixels, _salt(alice));
        vm.expectRevert(abi.encodeWithSelector(DigitBounty.UnknownCommitment.selector, alices));
        _reveal(alice, pixels);
    }

    function test_withdrawBounty_returnsAnUnpaidBountyToTheSponsorAfterExitTime() public {
        uint64 exitTime = bounty.exitTime();
        vm.warp(uint256(exitTime) - 1);
        vm.expectRevert(abi.encodeWithSelector(DigitBounty.BountyStillOpen.selector, exitTime));
        vm.prank(sponsor);
        bounty.withdrawBounty();
        vm.warp(exitTime);
        vm.expectRevert(abi.encodeWithSelector(DigitBounty.NotSponsor.selector, alice));
        vm.prank(alice);
        bounty.withdrawBounty();
        vm.expectEmit(address(bounty));
        emit DigitBounty.BountyWithdrawn(sponsor, 1 ether);
        vm.prank(sponsor);
        bounty.withdrawBounty();
        assertEq(sponsor.balance, 1 ether);
        assertEq(bounty.bounty(), 0);
        vm.expectRevert(DigitBounty.BountyAlreadyPaid.selector);
        vm.prank(sponsor);
        bounty.withdrawBounty();
    }

    /// The sponsor's exit waits out every request revealed in time: the last one can still win.
    function test_withdrawBounty_waitsForTheLastRevealedRequest() public {
        int256[] memory pixels = _pixels(8);
        _commit(alice, pixels);
        vm.warp(bounty.revealDeadline());
        uint256 id = _reveal(alice, pixels);
        vm.warp(coordinator.getRequest(id).deadline);
        vm.expectRevert(abi.encodeWithSelector(DigitBounty.BountyStillOpen.selector, bounty.exitTime()));
        vm.prank(sponsor);
        bounty.withdrawBounty();
        _fulfil(id, pixels, _logits(TARGET));
        assertEq(alice.balance, 1 ether - FEE + 1 ether);
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
