// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {Test} from "forge-std/Test.sol";
import {InferenceCoordinator} from "@zkinfer/contracts/InferenceCoordinator.sol";
import {IInferenceCoordinator} from "@zkinfer/contracts/interfaces/IInferenceCoordinator.sol";
import {InferenceConsumerBase} from "@zkinfer/contracts/consumer/InferenceConsumerBase.sol";
import {DigitGate} from "../src/DigitGate.sol";

/// A stand-in for a generated verifier, for tests only: reports its encoding as a generated verifier does
/// and accepts every proof, so a test can fulfil requests without a prover.
contract AcceptAllVerifier {
    bytes32 private immutable encodingHash;

    constructor(bytes32 encodingHash_) {
        encodingHash = encodingHash_;
    }

    fallback() external {
        bytes32 hash = encodingHash;
        if (msg.data.length == 4 && bytes4(msg.data) == bytes4(keccak256("encodingHash()"))) {
            assembly ("memory-safe") {
                mstore(0, hash)
                return(0, 32)
            }
        }
    }
}

/// DigitGate against the real coordinator, with a verifier that accepts every proof.
contract DigitGateTest is Test {
    uint96 internal constant FEE = 0.001 ether;

    InferenceCoordinator internal coordinator;
    DigitGate internal gate;
    uint256 internal listingId;
    address internal alice = makeAddr("alice");
    address internal node = makeAddr("node");

    function setUp() public {
        coordinator = new InferenceCoordinator();
        // The digits models' encoding: 64 pixels 0..16 at scale 2^4, ten logits.
        IInferenceCoordinator.ModelEncoding memory encoding = IInferenceCoordinator.ModelEncoding({
            inputLen: 64,
            outputLen: 10,
            inputScaleBits: 4,
            outputScaleBits: 11,
            valueBits: 18,
            inputMin: 0,
            inputMax: 16,
            outputMin: -100_000,
            outputMax: 100_000,
            inputCommitted: false
        });
        AcceptAllVerifier verifier = new AcceptAllVerifier(coordinator.computeEncodingHash(encoding));
        bytes32 modelId = coordinator.registerModel(address(verifier), encoding, "any sample");
        listingId = coordinator.createListing(modelId, FEE, 1 hours);
        gate = new DigitGate(coordinator, listingId);
        vm.deal(alice, 1 ether);
    }

    function _pixels() internal pure returns (int256[] memory pixels) {
        pixels = new int256[](64);
        int256 value;
        for (uint256 i; i < 64; ++i) {
            pixels[i] = value;
            value = (value + 1) % 17;
        }
    }

    function _logits(uint256 best) internal pure returns (int256[] memory logits) {
        logits = new int256[](10);
        logits[best] = 5000;
    }

    function test_sevenGetsIn() public {
        vm.prank(alice);
        uint256 requestId = gate.ask{value: FEE}(_pixels());
        vm.prank(node);
        coordinator.fulfillInference(requestId, _pixels(), _logits(7), hex"00");
        assertTrue(gate.allowed(alice));
        (,, bool callbackSucceeded) = coordinator.getResult(requestId);
        assertTrue(callbackSucceeded);
        assertEq(coordinator.withdrawable(node), FEE);
    }

    function test_otherDigitStaysOut() public {
        vm.prank(alice);
        uint256 requestId = gate.ask{value: FEE}(_pixels());
        vm.prank(node);
        coordinator.fulfillInference(requestId, _pixels(), _logits(3), hex"00");
        assertFalse(gate.allowed(alice));
    }

    function test_onlyTheCoordinatorCallsBack() public {
        vm.prank(alice);
        uint256 requestId = gate.ask{value: FEE}(_pixels());
        vm.expectRevert(abi.encodeWithSelector(InferenceConsumerBase.NotCoordinator.selector, alice));
        vm.prank(alice);
        gate.onInferenceResult(requestId, _logits(7));
    }

    function test_raisedFeeIsRefused() public {
        coordinator.setListingFee(listingId, 2 * FEE);
        vm.expectRevert(abi.encodeWithSelector(InferenceConsumerBase.FeeAboveMax.selector, listingId, 2 * FEE, FEE));
        vm.prank(alice);
        gate.ask{value: FEE}(_pixels());
    }

    function test_reclaimAfterDeadline() public {
        vm.prank(alice);
        uint256 requestId = gate.ask{value: FEE}(_pixels());
        vm.warp(block.timestamp + 1 hours + 1);
        uint256 before = alice.balance;
        vm.prank(alice);
        gate.reclaim(requestId);
        assertEq(alice.balance, before + FEE);
    }
}
