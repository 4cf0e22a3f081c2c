// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {CoordinatorTestBase} from "./utils/CoordinatorTestBase.sol";
import {InferenceCoordinator} from "../src/InferenceCoordinator.sol";
import {IInferenceCoordinator} from "../src/interfaces/IInferenceCoordinator.sol";
import {GasBurningVerifier, MockVerifier, SilentVerifier} from "./mocks/MockVerifier.sol";
import {InstanceEncoding} from "./utils/InstanceEncoding.sol";

/// @notice The attacks of issue 11 on the coordinator, each failing with a named error. (Forged proofs
/// under a dev SRS and the verifier's own malleability belong to the verifier; DigitBounty's copycat is in
/// DigitBounty.t.sol; real-proof replays on another coordinator or chain are in RealVerifier.t.sol.)
contract AttacksTest is CoordinatorTestBase {
    address internal attacker = makeAddr("attacker");

    /// Squatting: registering a model first gives no rights over it, and the attacker's own listing (fee
    /// 2^96-1, deactivated) does not touch anyone else's.
    function test_attack_squattingAModelGivesNoControl() public {
        IInferenceCoordinator.ModelEncoding memory e = _defaultEncoding();
        e.outputMax = 999;
        MockVerifier genuine = _mockVerifier(e);
        vm.prank(attacker);
        bytes32 id = _register(address(genuine), e);
        vm.startPrank(attacker);
        uint256 squat = coordinator.createListing(id, type(uint96).max, 1 hours);
        coordinator.deactivateListing(squat);
        vm.stopPrank();
        // The genuine owner lists the same model and serves it on its own terms.
        vm.prank(listingOwner);
        uint256 honest = coordinator.createListing(id, FEE, 1 hours);
        vm.prank(requester);
        uint256 requestId = coordinator.requestInference{value: FEE}(honest, _input(), 0, FEE);
        assertEq(coordinator.getRequest(requestId).modelId, id);
        // None of the attacker's levers reach the honest listing.
        vm.startPrank(attacker);
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.NotListingOwner.selector, honest, attacker));
        coordinator.setListingFee(honest, type(uint96).max);
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.NotListingOwner.selector, honest, attacker));
        coordinator.deactivateListing(honest);
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.NotListingOwner.selector, honest, attacker));
        coordinator.offerListing(honest, attacker);
        vm.stopPrank();
    }

    /// A listing whose every request expires at once (deadline 1 s) cannot be made.
    function test_attack_expireEveryRequestWithATinyDeadline() public {
        uint64 min = coordinator.MIN_DEADLINE_SECONDS();
        uint64 max = coordinator.MAX_DEADLINE_SECONDS();
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.InvalidDeadline.selector, 1, min, max));
        vm.prank(attacker);
        coordinator.createListing(modelId, FEE, 1);
    }

    /// A listing owner raising the fee in front of a request cannot charge more than the requester's maxFee.
    function test_attack_feeRaisedAheadOfARequest() public {
        vm.prank(listingOwner);
        coordinator.setListingFee(listingId, 1 ether);
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.FeeAboveMax.selector, listingId, 1 ether, FEE));
        vm.prank(requester);
        coordinator.requestInference{value: 1 ether}(listingId, _input(), 0, FEE);
    }

    /// A genuine verifier registered with another encoding (60 inputs and 4 outputs instead of 64 and 10).
    function test_attack_registerAGenuineVerifierWithAWrongEncoding() public {
        IInferenceCoordinator.ModelEncoding memory real =
            IInferenceCoordinator.ModelEncoding(64, 10, 4, 7, 16, 0, 16, -32768, 32767, false);
        IInferenceCoordinator.ModelEncoding memory wrong =
            IInferenceCoordinator.ModelEncoding(60, 4, 4, 7, 16, 0, 16, -32768, 32767, false);
        MockVerifier genuine = _mockVerifier(real);
        vm.expectRevert(
            abi.encodeWithSelector(
                IInferenceCoordinator.EncodingMismatch.selector,
                address(genuine),
                coordinator.computeEncodingHash(wrong),
                coordinator.computeEncodingHash(real)
            )
        );
        vm.prank(attacker);
        _register(address(genuine), wrong);
    }

    /// A contract that does not report its encoding is no zkinfer verifier.
    function test_attack_registerAVerifierThatReportsNoEncoding() public {
        address silent = address(new SilentVerifier());
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.VerifierEncodingUnavailable.selector, silent));
        _register(silent, _defaultEncoding());
    }

    /// A fulfilment replayed on a second coordinator (same chain, same request id, same fulfiller).
    function test_attack_replayOnASecondCoordinator() public {
        uint256 id = _request();
        bytes memory proof = _prove(id, fulfiller, _input(), _output());
        InferenceCoordinator second = new InferenceCoordinator();
        bytes32 secondModel = second.registerModel(address(verifier), _defaultEncoding(), SAMPLE);
        uint256 secondListing = second.createListing(secondModel, FEE, DEADLINE_SECONDS);
        vm.prank(requester);
        uint256 sameId = second.requestInference{value: FEE}(secondListing, _input(), 0, FEE);
        assertEq(sameId, id);
        vm.expectRevert(IInferenceCoordinator.InvalidProof.selector);
        vm.prank(fulfiller);
        second.fulfillInference(id, _input(), _output(), proof);
    }

    /// A fulfilment replayed on another chain where the coordinator has the same address.
    function test_attack_replayOnAnotherChain() public {
        uint256 id = _request();
        bytes memory proof = _prove(id, fulfiller, _input(), _output());
        vm.chainId(block.chainid + 1);
        vm.expectRevert(IInferenceCoordinator.InvalidProof.selector);
        vm.prank(fulfiller);
        coordinator.fulfillInference(id, _input(), _output(), proof);
    }

    /// An EIP-7702 delegated account as the verifier: its owner could re-delegate at will.
    function test_attack_delegatedAccountAsVerifier() public {
        (address eoa, uint256 key) = makeAddrAndKey("delegator");
        vm.signAndAttachDelegation(address(verifier), key);
        assertEq(bytes3(eoa.code), bytes3(0xef0100));
        vm.expectRevert(
            abi.encodeWithSelector(IInferenceCoordinator.VerifierIsDelegated.selector, eoa, address(verifier))
        );
        _register(eoa, _defaultEncoding());
    }

    /// A delegation to a precompile passes a no-code check (its designator is code): refused too.
    function test_attack_delegationToAPrecompileAsVerifier() public {
        address eoa = makeAddr("delegates to ecrecover");
        vm.etch(eoa, abi.encodePacked(hex"ef0100", address(1)));
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.VerifierIsDelegated.selector, eoa, address(1)));
        _register(eoa, _defaultEncoding());
    }

    function test_attack_precompilesAsVerifier() public {
        for (uint160 a = 1; a <= 0x11; ++a) {
            vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.VerifierIsPrecompile.selector, address(a)));
            _register(address(a), _defaultEncoding());
        }
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.VerifierIsPrecompile.selector, address(0x100)));
        _register(address(0x100), _defaultEncoding());
    }

    /// A malformed proof on which the verifier burns all its gas costs the fulfiller verifyGas, not the
    /// transaction's whole gas limit.
    function test_attack_badProofBurnsOnlyVerifyGas() public {
        IInferenceCoordinator.ModelEncoding memory e = _defaultEncoding();
        e.outputScaleBits = 9;
        GasBurningVerifier burner = new GasBurningVerifier(coordinator.computeEncodingHash(e), SAMPLE);
        bytes32 id = _register(address(burner), e);
        uint256 verifyGas = coordinator.getModel(id).verifyGas;
        vm.prank(listingOwner);
        uint256 listing = coordinator.createListing(id, 0, DEADLINE_SECONDS);
        vm.prank(requester);
        uint256 requestId = coordinator.requestInference(listing, _input(), 0, 0);
        vm.prank(fulfiller);
        uint256 before = gasleft();
        try coordinator.fulfillInference{gas: 10_000_000}(requestId, _input(), _output(), hex"0badf00d") {
            fail();
        } catch (bytes memory err) {
            assertEq(err, abi.encodeWithSelector(IInferenceCoordinator.InvalidProof.selector));
        }
        assertLt(before - gasleft(), verifyGas + 100_000);
    }

    /// Sending too little gas for the verifier is reported as such (or runs out before the verifier), never
    /// as an invalid proof: at no gas limit does a valid proof fail verification.
    function test_attack_starveTheVerifierToFailAValidProof() public {
        uint256 id = _request();
        bytes memory proof = _prove(id, fulfiller, _input(), _output());
        bool sawNamedError;
        for (uint256 gas = 30_000; gas < 400_000; gas += 1_000) {
            vm.prank(fulfiller);
            try coordinator.fulfillInference{gas: gas}(id, _input(), _output(), proof) {
                break;
            } catch (bytes memory err) {
                assertTrue(bytes4(err) != IInferenceCoordinator.InvalidProof.selector, "starved into InvalidProof");
                if (bytes4(err) == IInferenceCoordinator.InsufficientGasForVerifier.selector) sawNamedError = true;
            }
        }
        assertTrue(sawNamedError);
        assertEq(uint8(_status(id)), uint8(IInferenceCoordinator.RequestStatus.Fulfilled));
    }

    /// A proof copied from the mempool by a front-runner.
    function test_attack_frontRunWithACopiedProof() public {
        uint256 id = _request();
        bytes memory proof = _prove(id, fulfiller, _input(), _output());
        vm.expectRevert(IInferenceCoordinator.InvalidProof.selector);
        vm.prank(attacker);
        coordinator.fulfillInference(id, _input(), _output(), proof);
        assertEq(InstanceEncoding.binding(address(coordinator), id, fulfiller), coordinator.bindingOf(id, fulfiller));
    }
}
