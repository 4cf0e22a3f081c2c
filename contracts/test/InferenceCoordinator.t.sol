// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {CoordinatorTestBase} from "./utils/CoordinatorTestBase.sol";
import {IInferenceCoordinator} from "../src/interfaces/IInferenceCoordinator.sol";
import {AcceptAllVerifier, CostlyVerifier, MockVerifier} from "./mocks/MockVerifier.sol";
import {InstanceEncoding} from "./utils/InstanceEncoding.sol";

/// @notice Every path of the registry, listings, requests, fulfilment, cancellation and withdrawal with a
/// mock verifier. Tests with a real generated verifier live in RealVerifier tests (see
/// contracts/test/fixtures); attacks in Attacks.t.sol.
contract InferenceCoordinatorTest is CoordinatorTestBase {
    // ------------------------------------------------------------------------------------------------
    // Encoding
    // ------------------------------------------------------------------------------------------------

    function test_fieldModulus_isBn254ScalarOrder() public view {
        assertEq(coordinator.FIELD_MODULUS(), R);
        assertEq(R, 0x30644e72e131a029b85045b68181585d2833e84879b9709143e1f593f0000001);
    }

    /// Known answers, shared with the Rust encoder's tests (prover-node/src/proof.rs): keccak256 of the
    /// four words is above r for both, so the reduction matters.
    function test_bindingOf_matchesKnownAnswers() public {
        address at = 0xC0Dec0dec0DeC0Dec0dEc0DEC0DEC0DEC0DEC0dE;
        vm.etch(at, address(coordinator).code);
        vm.chainId(31337);
        assertEq(
            InferenceCoordinatorViews(at).bindingOf(42, 0x1111111111111111111111111111111111111111),
            0x210e035329c70e3413764f5958a0d9eb4bf18087deb0cfe32208dc792368b1f9
        );
        vm.chainId(1);
        assertEq(
            InferenceCoordinatorViews(at).bindingOf(1, address(1)),
            0x214ae625e73d7eeaf11b827ad55a73bfdb2cd671c705cb372816de67aae3d0d
        );
    }

    function testFuzz_bindingOf_isKeccakOfChainCoordinatorRequestFulfillerModR(
        uint64 chainId,
        uint256 requestId,
        address who
    ) public {
        vm.chainId(chainId);
        uint256 binding = coordinator.bindingOf(requestId, who);
        assertLt(binding, R);
        assertEq(binding, uint256(keccak256(abi.encode(chainId, address(coordinator), requestId, who))) % R);
    }

    /// Offset values, least significant first: [-1, 0, 5] at 16 bits is
    /// (2^15 - 1) + 2^15 * 2^16 + (2^15 + 5) * 2^32.
    function test_publicInstances_packsOffsetValuesLeastSignificantFirst() public view {
        int256[] memory input = new int256[](3);
        input[0] = -1;
        input[1] = 0;
        input[2] = 5;
        int256[] memory output = new int256[](1);
        output[0] = -32768;
        uint256[] memory instances = coordinator.publicInstances(16, 7, fulfiller, input, output);
        assertEq(instances.length, 3);
        assertEq(instances[0], coordinator.bindingOf(7, fulfiller));
        assertEq(instances[1], 0x800580007fff);
        assertEq(instances[2], 0);
    }

    /// 248 / 16 = 15 values fill a word; the 16th starts the next one.
    function test_publicInstances_startsNewWordAfterFifteen16BitValues() public view {
        int256[] memory input = new int256[](16);
        for (uint256 i; i < 16; ++i) {
            input[i] = 32767;
        }
        uint256[] memory instances = coordinator.publicInstances(16, 1, fulfiller, input, new int256[](0));
        assertEq(instances.length, 3);
        assertEq(instances[1], 2 ** 240 - 1);
        assertEq(instances[2], 0xffff);
    }

    function test_publicInstances_revertsOutsideValueBits() public {
        int256[2] memory bad = [int256(32768), -32769];
        for (uint256 i; i < bad.length; ++i) {
            int256[] memory values = new int256[](1);
            values[0] = bad[i];
            vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.ValueOutOfRange.selector, bad[i], 16));
            coordinator.publicInstances(16, 1, fulfiller, new int256[](0), values);
        }
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.InvalidValueBits.selector, 0));
        coordinator.publicInstances(0, 1, fulfiller, new int256[](0), new int256[](0));
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.InvalidValueBits.selector, 65));
        coordinator.publicInstances(65, 1, fulfiller, new int256[](0), new int256[](0));
    }

    /// The instances of the proofs the Rust prover made for the zoo models (contracts/test/fixtures), on
    /// the chain and at the coordinator address the fixtures were made for.
    function test_publicInstances_matchRustProverFixtures() public {
        string[2] memory models = ["digits_mlp", "digits_cnn"];
        for (uint256 i; i < models.length; ++i) {
            string memory json = vm.readFile(string.concat("contracts/test/fixtures/", models[i], ".json"));
            vm.chainId(vm.parseJsonUint(json, ".chainId"));
            address at = vm.parseJsonAddress(json, ".coordinator");
            vm.etch(at, address(coordinator).code);
            uint256[] memory instances = InferenceCoordinatorViews(at)
                .publicInstances(
                    uint8(vm.parseJsonUint(json, ".valueBits")),
                    vm.parseJsonUint(json, ".requestId"),
                    vm.parseJsonAddress(json, ".fulfiller"),
                    vm.parseJsonIntArray(json, ".input"),
                    vm.parseJsonIntArray(json, ".output")
                );
            assertEq(instances, vm.parseJsonUintArray(json, ".instances"), models[i]);
        }
    }

    function testFuzz_publicInstances_matchesIndependentEncoding(
        uint8 bits,
        uint256 requestId,
        address who,
        int256[] memory input,
        int256[] memory output
    ) public view {
        bits = uint8(bound(bits, 1, 64));
        int256 half = int256(2 ** (bits - 1));
        for (uint256 i; i < input.length; ++i) {
            input[i] = bound(input[i], -half, half - 1);
        }
        for (uint256 i; i < output.length; ++i) {
            output[i] = bound(output[i], -half, half - 1);
        }
        uint256[] memory instances = coordinator.publicInstances(bits, requestId, who, input, output);
        assertEq(instances, InstanceEncoding.instances(bits, address(coordinator), requestId, who, input, output));
        for (uint256 i; i < instances.length; ++i) {
            assertLt(instances[i], R);
        }
    }

    // ------------------------------------------------------------------------------------------------
    // Registry
    // ------------------------------------------------------------------------------------------------

    function test_registerModel_storesModelUnderCodeBoundId() public view {
        bytes32 expected = keccak256(
            abi.encode(
                address(verifier).codehash,
                INPUT_LEN,
                OUTPUT_LEN,
                INPUT_SCALE_BITS,
                OUTPUT_SCALE_BITS,
                VALUE_BITS,
                INPUT_MIN,
                INPUT_MAX,
                OUTPUT_MIN,
                OUTPUT_MAX,
                false
            )
        );
        assertEq(modelId, expected);
        IInferenceCoordinator.Model memory m = coordinator.getModel(modelId);
        assertEq(m.verifier, address(verifier));
        assertEq(m.encoding.inputLen, INPUT_LEN);
        assertEq(m.encoding.outputLen, OUTPUT_LEN);
        assertEq(m.encoding.inputScaleBits, INPUT_SCALE_BITS);
        assertEq(m.encoding.outputScaleBits, OUTPUT_SCALE_BITS);
        assertEq(m.encoding.inputMin, INPUT_MIN);
        assertEq(m.encoding.inputMax, INPUT_MAX);
        assertEq(m.encoding.outputMin, OUTPUT_MIN);
        assertEq(m.encoding.outputMax, OUTPUT_MAX);
        assertFalse(m.encoding.inputCommitted);
        assertGt(m.verifyGas, 0);
    }

    /// The hash a verifier must report is the ten encoding words, without the code hash.
    function test_computeEncodingHash_isKeccakOfTheTenWords() public view {
        assertEq(
            coordinator.computeEncodingHash(_defaultEncoding()),
            keccak256(
                abi.encode(
                    INPUT_LEN,
                    OUTPUT_LEN,
                    INPUT_SCALE_BITS,
                    OUTPUT_SCALE_BITS,
                    VALUE_BITS,
                    INPUT_MIN,
                    INPUT_MAX,
                    OUTPUT_MIN,
                    OUTPUT_MAX,
                    false
                )
            )
        );
        IInferenceCoordinator.ModelEncoding memory committed = _defaultEncoding();
        committed.inputCommitted = true;
        assertEq(
            coordinator.computeEncodingHash(committed),
            keccak256(
                abi.encode(
                    INPUT_LEN,
                    OUTPUT_LEN,
                    INPUT_SCALE_BITS,
                    OUTPUT_SCALE_BITS,
                    VALUE_BITS,
                    INPUT_MIN,
                    INPUT_MAX,
                    OUTPUT_MIN,
                    OUTPUT_MAX,
                    true
                )
            )
        );
    }

    function test_registerModel_emitsModelRegistered() public {
        AcceptAllVerifier other = new AcceptAllVerifier(coordinator.computeEncodingHash(_defaultEncoding()));
        bytes32 expectedId = coordinator.computeModelId(address(other).codehash, _defaultEncoding());
        vm.expectEmit(true, true, true, false, address(coordinator));
        emit IInferenceCoordinator.ModelRegistered(expectedId, address(other), stranger, 0);
        vm.prank(stranger);
        assertEq(_register(address(other), _defaultEncoding()), expectedId);
    }

    function test_registerModel_revertsForSameCodeAndEncodingAtAnotherAddress() public {
        MockVerifier twin = _mockVerifier(_defaultEncoding());
        assertEq(address(twin).codehash, address(verifier).codehash);
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.ModelAlreadyRegistered.selector, modelId));
        _register(address(twin), _defaultEncoding());
    }

    function test_registerModel_givesOtherCodeOrEncodingAnotherId() public {
        IInferenceCoordinator.ModelEncoding memory otherScale = _defaultEncoding();
        otherScale.outputScaleBits += 1;
        bytes32 otherCode = _register(
            address(new AcceptAllVerifier(coordinator.computeEncodingHash(_defaultEncoding()))), _defaultEncoding()
        );
        bytes32 otherScaleId = _registerNew(otherScale);
        assertTrue(otherCode != modelId && otherScaleId != modelId && otherCode != otherScaleId);
        // A verifier for another encoding is other code: it never shares an id with this model's verifier.
        assertEq(coordinator.getModel(otherScaleId).encoding.outputScaleBits, OUTPUT_SCALE_BITS + 1);
        assertTrue(coordinator.getModel(otherScaleId).verifier != address(verifier));
    }

    function test_registerModel_revertsWhenVerifierHasNoCode() public {
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.VerifierHasNoCode.selector, stranger));
        coordinator.registerModel(
            stranger, IInferenceCoordinator.ModelEncoding(1, 1, 0, 0, 16, 0, 1, 0, 1, false), SAMPLE
        );
    }

    function test_registerModel_revertsOnZeroLength() public {
        IInferenceCoordinator.ModelEncoding memory e =
            IInferenceCoordinator.ModelEncoding(0, 1, 0, 0, 16, 0, 1, 0, 1, false);
        address v = address(_mockVerifier(e));
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.InvalidModelShape.selector, 0, 1));
        _register(v, e);
        e = IInferenceCoordinator.ModelEncoding(1, 0, 0, 0, 16, 0, 1, 0, 1, false);
        v = address(_mockVerifier(e));
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.InvalidModelShape.selector, 1, 0));
        _register(v, e);
    }

    function test_registerModel_revertsWhenMinAboveMax() public {
        IInferenceCoordinator.ModelEncoding memory e =
            IInferenceCoordinator.ModelEncoding(1, 1, 0, 0, 16, 2, 1, 0, 1, false);
        address v = address(_mockVerifier(e));
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.InvalidBounds.selector, 2, 1));
        _register(v, e);
        e = IInferenceCoordinator.ModelEncoding(1, 1, 0, 0, 16, 0, 1, 0, -1, false);
        v = address(_mockVerifier(e));
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.InvalidBounds.selector, 0, -1));
        _register(v, e);
    }

    function _encoding(uint8 bits, int64 inputMin, int64 inputMax, int64 outputMin, int64 outputMax)
        internal
        pure
        returns (IInferenceCoordinator.ModelEncoding memory)
    {
        return IInferenceCoordinator.ModelEncoding(1, 1, 0, 0, bits, inputMin, inputMax, outputMin, outputMax, false);
    }

    /// Registers a fresh mock verifier for the encoding, expecting `err`.
    function _expectRegisterRevert(IInferenceCoordinator.ModelEncoding memory e, bytes memory err) internal {
        address v = address(_mockVerifier(e));
        vm.expectRevert(err);
        _register(v, e);
    }

    function test_registerModel_revertsOnInvalidValueBits() public {
        _expectRegisterRevert(
            _encoding(0, 0, 0, 0, 0), abi.encodeWithSelector(IInferenceCoordinator.InvalidValueBits.selector, 0)
        );
        _expectRegisterRevert(
            _encoding(65, 0, 0, 0, 0), abi.encodeWithSelector(IInferenceCoordinator.InvalidValueBits.selector, 65)
        );
    }

    /// Packing is injective only for values of valueBits bits: wider bounds would let two outputs share
    /// instance words.
    function test_registerModel_revertsWhenBoundsExceedValueBits() public {
        _expectRegisterRevert(
            _encoding(16, 0, 32768, 0, 0),
            abi.encodeWithSelector(IInferenceCoordinator.BoundsExceedValueBits.selector, 0, 32768, 16)
        );
        _expectRegisterRevert(
            _encoding(16, 0, 0, -32769, 0),
            abi.encodeWithSelector(IInferenceCoordinator.BoundsExceedValueBits.selector, -32769, 0, 16)
        );
        _expectRegisterRevert(
            _encoding(1, 0, 0, 0, 1),
            abi.encodeWithSelector(IInferenceCoordinator.BoundsExceedValueBits.selector, 0, 1, 1)
        );
    }

    function test_registerModel_acceptsBoundsAtValueBitsLimits() public {
        bytes32 id16 = _registerNew(_encoding(16, -32768, 32767, -32768, 32767));
        assertEq(coordinator.getModel(id16).encoding.inputMin, -32768);
        bytes32 id64 = _registerNew(_encoding(64, type(int64).min, type(int64).max, type(int64).min, type(int64).max));
        assertEq(coordinator.getModel(id64).encoding.outputMax, type(int64).max);
        bytes32 id1 = _registerNew(_encoding(1, -1, 0, -1, -1));
        assertEq(coordinator.getModel(id1).encoding.valueBits, 1);
    }

    function test_registerModel_acceptsSingleValueRanges() public {
        bytes32 id = _registerNew(IInferenceCoordinator.ModelEncoding(1, 1, 0, 0, 16, 5, 5, -3, -3, false));
        assertEq(coordinator.getModel(id).encoding.inputMin, 5);
        assertEq(coordinator.getModel(id).encoding.outputMax, -3);
    }

    function test_getModel_returnsZeroForUnknownId() public view {
        IInferenceCoordinator.Model memory m = coordinator.getModel(bytes32(uint256(1)));
        assertEq(m.verifier, address(0));
        assertEq(m.verifyGas, 0);
    }

    /// verifyGas is what the verifier used on the sample, plus a quarter and 20k of slack.
    function test_registerModel_setsVerifyGasFromTheMeasuredSample() public {
        uint32 verifyGas = coordinator.getModel(modelId).verifyGas;
        // The mock spends a few thousand gas: an external call to its book, a keccak and an SLOAD.
        assertGt(verifyGas, 20_000);
        assertLt(verifyGas, 40_000);
    }

    function test_remeasureVerifyGas_raisesButNeverLowers() public {
        IInferenceCoordinator.ModelEncoding memory e = _defaultEncoding();
        CostlyVerifier costly = new CostlyVerifier(coordinator.computeEncodingHash(e));
        bytes32 id = _register(address(costly), e);
        uint32 registered = coordinator.getModel(id).verifyGas;

        // Cheaper now (warm): unchanged.
        assertEq(coordinator.remeasureVerifyGas(id, SAMPLE), registered);
        // Dearer (as after a precompile repricing): raised, by anyone.
        costly.setExtraGas(200_000);
        vm.expectEmit(true, false, false, false, address(coordinator));
        emit IInferenceCoordinator.VerifyGasRaised(id, 0);
        vm.prank(stranger);
        uint32 raised = coordinator.remeasureVerifyGas(id, SAMPLE);
        assertGt(raised, registered + 200_000);
        assertEq(coordinator.getModel(id).verifyGas, raised);
        // Back to cheap: still the raised figure.
        costly.setExtraGas(0);
        assertEq(coordinator.remeasureVerifyGas(id, SAMPLE), raised);
        assertEq(coordinator.getModel(id).verifyGas, raised);
    }

    function test_remeasureVerifyGas_revertsOnRejectedSampleOrUnknownModel() public {
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.SampleProofRejected.selector, address(verifier)));
        coordinator.remeasureVerifyGas(modelId, hex"baad");
        bytes32 unknown = keccak256("unknown");
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.ModelNotFound.selector, unknown));
        coordinator.remeasureVerifyGas(unknown, SAMPLE);
    }

    // ------------------------------------------------------------------------------------------------
    // Listings
    // ------------------------------------------------------------------------------------------------

    function test_createListing_storesTermsAndEmits() public {
        vm.expectEmit(address(coordinator));
        emit IInferenceCoordinator.ListingCreated(2, modelId, stranger, 3 ether, 2 hours);
        vm.prank(stranger);
        uint256 id = coordinator.createListing(modelId, 3 ether, 2 hours);
        assertEq(id, 2);
        IInferenceCoordinator.Listing memory l = coordinator.getListing(id);
        assertEq(l.modelId, modelId);
        assertEq(l.owner, stranger);
        assertEq(l.fee, 3 ether);
        assertEq(l.deadlineSeconds, 2 hours);
        assertTrue(l.active);
        assertEq(l.pendingOwner, address(0));
    }

    function test_createListing_revertsForUnknownModel() public {
        bytes32 unknown = keccak256("unknown");
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.ModelNotFound.selector, unknown));
        coordinator.createListing(unknown, FEE, DEADLINE_SECONDS);
    }

    function test_createListing_revertsOnTooShortOrTooLongDeadline() public {
        uint64 min = coordinator.MIN_DEADLINE_SECONDS();
        uint64 max = coordinator.MAX_DEADLINE_SECONDS();
        assertEq(min, 10 minutes);
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.InvalidDeadline.selector, 0, min, max));
        coordinator.createListing(modelId, FEE, 0);
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.InvalidDeadline.selector, 1, min, max));
        coordinator.createListing(modelId, FEE, 1);
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.InvalidDeadline.selector, min - 1, min, max));
        coordinator.createListing(modelId, FEE, min - 1);
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.InvalidDeadline.selector, max + 1, min, max));
        coordinator.createListing(modelId, FEE, max + 1);
        assertEq(coordinator.getListing(coordinator.createListing(modelId, FEE, min)).deadlineSeconds, min);
        assertEq(coordinator.getListing(coordinator.createListing(modelId, FEE, max)).deadlineSeconds, max);
    }

    function test_getListing_returnsZeroForUnknownId() public view {
        IInferenceCoordinator.Listing memory l = coordinator.getListing(99);
        assertEq(l.owner, address(0));
        assertEq(l.modelId, bytes32(0));
    }

    function test_setListingFee_appliesToNewRequestsOnly() public {
        uint256 first = _request();
        vm.expectEmit(address(coordinator));
        emit IInferenceCoordinator.ListingFeeSet(listingId, 1 ether);
        vm.prank(listingOwner);
        coordinator.setListingFee(listingId, 1 ether);
        assertEq(coordinator.quote(listingId, 0), 1 ether);
        assertEq(coordinator.getRequest(first).payment, FEE);

        vm.prank(requester);
        uint256 second = coordinator.requestInference{value: 1 ether}(listingId, _input(), 0, 1 ether);
        assertEq(coordinator.getRequest(second).payment, 1 ether);
    }

    function test_setListingFee_revertsForNonOwner() public {
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.NotListingOwner.selector, listingId, stranger));
        vm.prank(stranger);
        coordinator.setListingFee(listingId, 0);
    }

    function test_setListingFee_revertsForUnknownListing() public {
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.ListingNotFound.selector, 77));
        coordinator.setListingFee(77, 0);
    }

    function test_deactivateListing_blocksNewRequestsButNotFulfilment() public {
        uint256 id = _request();
        vm.expectEmit(address(coordinator));
        emit IInferenceCoordinator.ListingActiveSet(listingId, false);
        vm.prank(listingOwner);
        coordinator.deactivateListing(listingId);
        assertFalse(coordinator.getListing(listingId).active);

        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.ListingInactive.selector, listingId));
        vm.prank(requester);
        coordinator.requestInference{value: FEE}(listingId, _input(), 0, FEE);
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.ListingInactive.selector, listingId));
        coordinator.quote(listingId, 0);

        _fulfil(id, fulfiller, _input(), _output());
        assertEq(uint8(_status(id)), uint8(IInferenceCoordinator.RequestStatus.Fulfilled));
    }

    function test_activateListing_acceptsRequestsAgain() public {
        vm.startPrank(listingOwner);
        coordinator.deactivateListing(listingId);
        vm.expectEmit(address(coordinator));
        emit IInferenceCoordinator.ListingActiveSet(listingId, true);
        coordinator.activateListing(listingId);
        vm.stopPrank();
        assertEq(_request(), 1);
    }

    function test_deactivateListing_revertsForNonOwner() public {
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.NotListingOwner.selector, listingId, stranger));
        vm.prank(stranger);
        coordinator.deactivateListing(listingId);
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.NotListingOwner.selector, listingId, stranger));
        vm.prank(stranger);
        coordinator.activateListing(listingId);
    }

    function test_offerListing_thenAcceptListing_transfersOwnership() public {
        vm.expectEmit(address(coordinator));
        emit IInferenceCoordinator.ListingTransferOffered(listingId, listingOwner, stranger);
        vm.prank(listingOwner);
        coordinator.offerListing(listingId, stranger);
        assertEq(coordinator.getListing(listingId).pendingOwner, stranger);
        // Still the old owner's until accepted.
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.NotListingOwner.selector, listingId, stranger));
        vm.prank(stranger);
        coordinator.setListingFee(listingId, 0);

        vm.expectEmit(address(coordinator));
        emit IInferenceCoordinator.ListingTransferred(listingId, listingOwner, stranger);
        vm.prank(stranger);
        coordinator.acceptListing(listingId);
        IInferenceCoordinator.Listing memory l = coordinator.getListing(listingId);
        assertEq(l.owner, stranger);
        assertEq(l.pendingOwner, address(0));
        vm.prank(stranger);
        coordinator.setListingFee(listingId, 0);
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.NotListingOwner.selector, listingId, listingOwner));
        vm.prank(listingOwner);
        coordinator.setListingFee(listingId, 1);
    }

    function test_acceptListing_revertsForAnyoneButThePendingOwner() public {
        vm.expectRevert(
            abi.encodeWithSelector(IInferenceCoordinator.NotPendingListingOwner.selector, listingId, stranger)
        );
        vm.prank(stranger);
        coordinator.acceptListing(listingId);
        vm.prank(listingOwner);
        coordinator.offerListing(listingId, stranger);
        vm.expectRevert(
            abi.encodeWithSelector(IInferenceCoordinator.NotPendingListingOwner.selector, listingId, requester)
        );
        vm.prank(requester);
        coordinator.acceptListing(listingId);
        // Withdrawing the offer.
        vm.prank(listingOwner);
        coordinator.offerListing(listingId, address(0));
        vm.expectRevert(
            abi.encodeWithSelector(IInferenceCoordinator.NotPendingListingOwner.selector, listingId, stranger)
        );
        vm.prank(stranger);
        coordinator.acceptListing(listingId);
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.ListingNotFound.selector, 9));
        coordinator.acceptListing(9);
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.NotListingOwner.selector, listingId, stranger));
        vm.prank(stranger);
        coordinator.offerListing(listingId, stranger);
    }

    /// Several owners list one model on their own terms; a request runs the model whichever listing it used.
    function test_createListing_letsSeveralOwnersListOneModel() public {
        vm.prank(stranger);
        uint256 cheap = coordinator.createListing(modelId, 0, 2 hours);
        vm.prank(requester);
        uint256 id = coordinator.requestInference(cheap, _input(), 0, 0);
        IInferenceCoordinator.Request memory r = coordinator.getRequest(id);
        assertEq(r.modelId, modelId);
        assertEq(r.payment, 0);
        assertEq(r.deadline, block.timestamp + 2 hours);
        _fulfil(id, fulfiller, _input(), _output());
        assertEq(uint8(_status(id)), uint8(IInferenceCoordinator.RequestStatus.Fulfilled));
    }

    // ------------------------------------------------------------------------------------------------
    // Requests
    // ------------------------------------------------------------------------------------------------

    function test_requestInference_storesRequestAndEmits() public {
        int256[] memory input = _input();
        uint64 deadline = uint64(block.timestamp + DEADLINE_SECONDS);
        vm.expectEmit(address(coordinator));
        emit IInferenceCoordinator.InferenceRequested(1, modelId, requester, listingId, input, 50_000, FEE, deadline);
        uint256 id = _requestAs(requester, input, 50_000);
        assertEq(id, 1);

        IInferenceCoordinator.Request memory r = coordinator.getRequest(id);
        assertEq(r.requester, requester);
        assertEq(r.deadline, deadline);
        assertEq(r.callbackGasLimit, 50_000);
        assertEq(uint8(r.status), uint8(IInferenceCoordinator.RequestStatus.Pending));
        assertFalse(r.callbackSucceeded);
        assertEq(r.modelId, modelId);
        assertEq(r.inputHash, keccak256(abi.encodePacked(input)));
        assertEq(r.fulfiller, address(0));
        assertEq(r.payment, FEE);
        assertEq(address(coordinator).balance, FEE);
    }

    /// The event is ABI-encoded by hand (see `_emitInferenceRequested`): compare with the compiler's
    /// encoding over the whole range of each field.
    function testFuzz_requestInference_emitsAbiEncodedEvent(
        uint256 timestamp,
        uint32 callbackGasLimit,
        int256[4] memory raw
    ) public {
        timestamp = bound(timestamp, 1, type(uint48).max - DEADLINE_SECONDS);
        callbackGasLimit = uint32(bound(callbackGasLimit, 0, coordinator.MAX_CALLBACK_GAS()));
        int256[] memory input = new int256[](INPUT_LEN);
        for (uint256 i; i < INPUT_LEN; ++i) {
            input[i] = bound(raw[i], INPUT_MIN, INPUT_MAX);
        }
        vm.warp(timestamp);
        vm.expectEmit(address(coordinator));
        emit IInferenceCoordinator.InferenceRequested(
            1, modelId, requester, listingId, input, callbackGasLimit, FEE, uint64(timestamp + DEADLINE_SECONDS)
        );
        _requestAs(requester, input, callbackGasLimit);
    }

    function test_requestInference_numbersRequestsSequentially() public {
        assertEq(_request(), 1);
        assertEq(_request(), 2);
        assertEq(_request(), 3);
    }

    function test_requestInference_revertsForUnknownListing() public {
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.ListingNotFound.selector, 5));
        vm.prank(requester);
        coordinator.requestInference{value: FEE}(5, _input(), 0, FEE);
    }

    /// A fee raised after the requester looked cannot charge more than it agreed to.
    function test_requestInference_revertsWhenFeeAboveMaxFee() public {
        vm.prank(listingOwner);
        coordinator.setListingFee(listingId, FEE + 1);
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.FeeAboveMax.selector, listingId, FEE + 1, FEE));
        vm.prank(requester);
        coordinator.requestInference{value: FEE + 1}(listingId, _input(), 0, FEE);
    }

    function test_requestInference_revertsOnWrongPayment() public {
        vm.startPrank(requester);
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.IncorrectPayment.selector, FEE, FEE - 1));
        coordinator.requestInference{value: FEE - 1}(listingId, _input(), 0, FEE);
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.IncorrectPayment.selector, FEE, FEE + 1));
        coordinator.requestInference{value: FEE + 1}(listingId, _input(), 0, FEE + 1);
        vm.stopPrank();
    }

    function test_requestInference_revertsOnWrongInputLength() public {
        int256[] memory shortInput = new int256[](INPUT_LEN - 1);
        vm.expectRevert(
            abi.encodeWithSelector(IInferenceCoordinator.InvalidInputLength.selector, INPUT_LEN, INPUT_LEN - 1)
        );
        _requestAs(requester, shortInput, 0);
        int256[] memory longInput = new int256[](INPUT_LEN + 1);
        vm.expectRevert(
            abi.encodeWithSelector(IInferenceCoordinator.InvalidInputLength.selector, INPUT_LEN, INPUT_LEN + 1)
        );
        _requestAs(requester, longInput, 0);
    }

    function test_requestInference_revertsWhenInputOutOfRange() public {
        int256[] memory input = _input();
        input[2] = INPUT_MAX + 1;
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.InputOutOfRange.selector, 2, INPUT_MAX + 1));
        _requestAs(requester, input, 0);

        input = _input();
        input[3] = int256(R) - 1; // -1 in the field, but not the canonical way to say it
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.InputOutOfRange.selector, 3, int256(R) - 1));
        _requestAs(requester, input, 0);

        input = _input();
        input[0] = type(int256).min;
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.InputOutOfRange.selector, 0, type(int256).min));
        _requestAs(requester, input, 0);
    }

    function test_requestInference_revertsWhenCallbackGasLimitTooHigh() public {
        uint32 max = coordinator.MAX_CALLBACK_GAS();
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.CallbackGasLimitTooHigh.selector, max + 1, max));
        _requestAs(requester, _input(), max + 1);
        assertEq(coordinator.getRequest(_requestAs(requester, _input(), max)).callbackGasLimit, max);
    }

    function test_requestInference_acceptsFreeListing() public {
        vm.prank(listingOwner);
        coordinator.setListingFee(listingId, 0);
        vm.prank(requester);
        uint256 id = coordinator.requestInference(listingId, _input(), 0, 0);
        _fulfil(id, fulfiller, _input(), _output());
        assertEq(coordinator.withdrawable(fulfiller), 0);
        assertEq(address(coordinator).balance, 0);
    }

    function testFuzz_requestInference_acceptsExactlyInRangeInputs(int256[4] memory raw) public {
        int256[] memory input = new int256[](INPUT_LEN);
        uint256 firstBad = type(uint256).max;
        for (uint256 i; i < INPUT_LEN; ++i) {
            input[i] = bound(raw[i], INPUT_MIN - 3, INPUT_MAX + 3);
            if (firstBad == type(uint256).max && (input[i] < INPUT_MIN || input[i] > INPUT_MAX)) firstBad = i;
        }
        if (firstBad != type(uint256).max) {
            vm.expectRevert(
                abi.encodeWithSelector(IInferenceCoordinator.InputOutOfRange.selector, firstBad, input[firstBad])
            );
        }
        uint256 id = _requestAs(requester, input, 0);
        if (firstBad == type(uint256).max) {
            assertEq(coordinator.getRequest(id).inputHash, keccak256(abi.encodePacked(input)));
        }
    }

    function testFuzz_requestInference_requiresExactPayment(uint96 fee, uint256 value) public {
        vm.prank(listingOwner);
        coordinator.setListingFee(listingId, fee);
        value = bound(value, 0, uint256(fee) * 2 + 1);
        vm.deal(requester, value);
        if (value != fee) {
            vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.IncorrectPayment.selector, fee, value));
        }
        vm.prank(requester);
        coordinator.requestInference{value: value}(listingId, _input(), 0, type(uint256).max);
        assertEq(address(coordinator).balance, value == fee ? value : 0);
    }

    function testFuzz_requestInference_boundsCallbackGas(uint32 callbackGasLimit) public {
        uint32 max = coordinator.MAX_CALLBACK_GAS();
        if (callbackGasLimit > max) {
            vm.expectRevert(
                abi.encodeWithSelector(IInferenceCoordinator.CallbackGasLimitTooHigh.selector, callbackGasLimit, max)
            );
            coordinator.quote(listingId, callbackGasLimit);
        } else {
            assertEq(coordinator.quote(listingId, callbackGasLimit), FEE);
        }
    }

    function test_quote_revertsForUnknownListing() public {
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.ListingNotFound.selector, 0));
        coordinator.quote(0, 0);
    }

    // ------------------------------------------------------------------------------------------------
    // Fulfilment
    // ------------------------------------------------------------------------------------------------

    function test_fulfillInference_storesOutputAndCreditsFulfiller() public {
        uint256 id = _request();
        int256[] memory output = _output();
        bytes memory proof = _prove(id, fulfiller, _input(), output);
        vm.expectEmit(address(coordinator));
        emit IInferenceCoordinator.InferenceFulfilled(id, fulfiller, output);
        vm.recordLogs();
        vm.prank(fulfiller);
        coordinator.fulfillInference(id, _input(), output, proof);
        assertEq(vm.getRecordedLogs().length, 1, "no CallbackResult without a callback");

        IInferenceCoordinator.Request memory r = coordinator.getRequest(id);
        assertEq(uint8(r.status), uint8(IInferenceCoordinator.RequestStatus.Fulfilled));
        assertEq(r.fulfiller, fulfiller);
        assertFalse(r.callbackSucceeded);
        (IInferenceCoordinator.RequestStatus status, int256[] memory stored, bool callbackSucceeded) =
            coordinator.getResult(id);
        assertEq(uint8(status), uint8(IInferenceCoordinator.RequestStatus.Fulfilled));
        assertEq(stored, output);
        assertFalse(callbackSucceeded);
        assertEq(coordinator.withdrawable(fulfiller), FEE);
        assertEq(address(coordinator).balance, FEE);
    }

    function test_fulfillInference_callsVerifierWithInstancesThenProof() public {
        uint256 id = _request();
        bytes memory proof = _prove(id, fulfiller, _input(), _output());
        vm.expectCall(
            address(verifier),
            InstanceEncoding.verifierCalldata(
                VALUE_BITS, address(coordinator), id, fulfiller, _input(), _output(), proof
            )
        );
        vm.prank(fulfiller);
        coordinator.fulfillInference(id, _input(), _output(), proof);
    }

    function test_getResult_isEmptyUntilFulfilled() public {
        uint256 id = _request();
        (IInferenceCoordinator.RequestStatus status, int256[] memory output, bool callbackSucceeded) =
            coordinator.getResult(id);
        assertEq(uint8(status), uint8(IInferenceCoordinator.RequestStatus.Pending));
        assertEq(output.length, 0);
        assertFalse(callbackSucceeded);
        (status, output,) = coordinator.getResult(999);
        assertEq(uint8(status), uint8(IInferenceCoordinator.RequestStatus.None));
        assertEq(output.length, 0);
    }

    function test_fulfillInference_revertsForUnknownRequest() public {
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.RequestNotPending.selector, 5));
        coordinator.fulfillInference(5, _input(), _output(), hex"");
    }

    function test_fulfillInference_revertsWhenAlreadyFulfilled() public {
        uint256 id = _request();
        _fulfil(id, fulfiller, _input(), _output());
        bytes memory proof = _prove(id, stranger, _input(), _output());
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.RequestNotPending.selector, id));
        vm.prank(stranger);
        coordinator.fulfillInference(id, _input(), _output(), proof);
    }

    function test_fulfillInference_revertsWhenCancelled() public {
        uint256 id = _request();
        vm.warp(block.timestamp + DEADLINE_SECONDS + 1);
        vm.prank(requester);
        coordinator.cancelRequest(id);
        bytes memory proof = _prove(id, fulfiller, _input(), _output());
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.RequestNotPending.selector, id));
        vm.prank(fulfiller);
        coordinator.fulfillInference(id, _input(), _output(), proof);
    }

    function test_fulfillInference_acceptsAtDeadlineAndRevertsAfter() public {
        uint256 early = _request();
        uint256 late = _request();
        uint256 deadline = coordinator.getRequest(early).deadline;
        vm.warp(deadline);
        _fulfil(early, fulfiller, _input(), _output());

        vm.warp(deadline + 1);
        bytes memory proof = _prove(late, fulfiller, _input(), _output());
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.RequestExpired.selector, late));
        vm.prank(fulfiller);
        coordinator.fulfillInference(late, _input(), _output(), proof);
    }

    function test_fulfillInference_revertsOnInputMismatch() public {
        uint256 id = _request();
        int256[] memory other = _input();
        other[1] = -7;
        bytes memory proof = _prove(id, fulfiller, other, _output());
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.InputMismatch.selector, id));
        vm.prank(fulfiller);
        coordinator.fulfillInference(id, other, _output(), proof);

        int256[] memory truncated = new int256[](INPUT_LEN - 1);
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.InputMismatch.selector, id));
        vm.prank(fulfiller);
        coordinator.fulfillInference(id, truncated, _output(), proof);
    }

    function test_fulfillInference_revertsOnWrongOutputLength() public {
        uint256 id = _request();
        int256[] memory output = new int256[](OUTPUT_LEN + 1);
        vm.expectRevert(
            abi.encodeWithSelector(IInferenceCoordinator.InvalidOutputLength.selector, OUTPUT_LEN, OUTPUT_LEN + 1)
        );
        vm.prank(fulfiller);
        coordinator.fulfillInference(id, _input(), output, hex"");
    }

    function test_fulfillInference_revertsWhenOutputOutOfRange() public {
        uint256 id = _request();
        int256[] memory output = _output();
        output[1] = OUTPUT_MIN - 1;
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.OutputOutOfRange.selector, 1, OUTPUT_MIN - 1));
        vm.prank(fulfiller);
        coordinator.fulfillInference(id, _input(), output, hex"");

        // y + r is the same field element as y: only the canonical y is accepted.
        output = _output();
        output[2] = output[2] + int256(R);
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.OutputOutOfRange.selector, 2, output[2]));
        vm.prank(fulfiller);
        coordinator.fulfillInference(id, _input(), output, hex"");
    }

    function test_fulfillInference_revertsOnUnacceptedProof() public {
        uint256 id = _request();
        vm.expectRevert(IInferenceCoordinator.InvalidProof.selector);
        vm.prank(fulfiller);
        coordinator.fulfillInference(id, _input(), _output(), hex"deadbeef");
    }

    function test_fulfillInference_revertsOnFlippedProofByte() public {
        uint256 id = _request();
        bytes memory proof = _prove(id, fulfiller, _input(), _output());
        proof[proof.length - 1] ^= 0x01;
        vm.expectRevert(IInferenceCoordinator.InvalidProof.selector);
        vm.prank(fulfiller);
        coordinator.fulfillInference(id, _input(), _output(), proof);
    }

    function test_fulfillInference_revertsForFrontRunnerWithCopiedProof() public {
        uint256 id = _request();
        bytes memory proof = _prove(id, fulfiller, _input(), _output());
        vm.expectRevert(IInferenceCoordinator.InvalidProof.selector);
        vm.prank(stranger);
        coordinator.fulfillInference(id, _input(), _output(), proof);
        // The honest fulfiller still can.
        vm.prank(fulfiller);
        coordinator.fulfillInference(id, _input(), _output(), proof);
        assertEq(coordinator.withdrawable(fulfiller), FEE);
    }

    function test_fulfillInference_revertsForProofOfAnotherRequest() public {
        uint256 first = _request();
        uint256 second = _request();
        bytes memory proof = _prove(first, fulfiller, _input(), _output());
        vm.expectRevert(IInferenceCoordinator.InvalidProof.selector);
        vm.prank(fulfiller);
        coordinator.fulfillInference(second, _input(), _output(), proof);
    }

    function test_fulfillInference_revertsForOutputTheProofIsNotFor() public {
        uint256 id = _request();
        bytes memory proof = _prove(id, fulfiller, _input(), _output());
        int256[] memory claimed = _output();
        claimed[0] = -999;
        vm.expectRevert(IInferenceCoordinator.InvalidProof.selector);
        vm.prank(fulfiller);
        coordinator.fulfillInference(id, _input(), claimed, proof);
    }

    function test_fulfillInference_revertsWhenVerifierLostCode() public {
        uint256 id = _request();
        bytes memory proof = _prove(id, fulfiller, _input(), _output());
        vm.etch(address(verifier), hex"");
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.VerifierHasNoCode.selector, address(verifier)));
        vm.prank(fulfiller);
        coordinator.fulfillInference(id, _input(), _output(), proof);
    }

    function test_fulfillInference_revertsWhenVerifierCodeChanged() public {
        uint256 id = _request();
        vm.etch(
            address(verifier), address(new AcceptAllVerifier(coordinator.computeEncodingHash(_defaultEncoding()))).code
        );
        vm.expectRevert(
            abi.encodeWithSelector(IInferenceCoordinator.VerifierCodeChanged.selector, modelId, address(verifier))
        );
        vm.prank(fulfiller);
        coordinator.fulfillInference(id, _input(), _output(), hex"");
    }

    function testFuzz_fulfillInference_storesAnyInRangeOutput(int256[3] memory raw, address who) public {
        vm.assume(who != address(0));
        int256[] memory output = new int256[](OUTPUT_LEN);
        for (uint256 i; i < OUTPUT_LEN; ++i) {
            output[i] = bound(raw[i], OUTPUT_MIN, OUTPUT_MAX);
        }
        uint256 id = _request();
        _fulfil(id, who, _input(), output);
        (, int256[] memory stored,) = coordinator.getResult(id);
        assertEq(stored, output);
        assertEq(coordinator.getRequest(id).fulfiller, who);
        assertEq(coordinator.withdrawable(who), FEE);
    }

    function testFuzz_fulfillInference_rejectsAnyOtherOutput(int256[3] memory raw, uint256 index, int256 delta) public {
        int256[] memory proven = new int256[](OUTPUT_LEN);
        for (uint256 i; i < OUTPUT_LEN; ++i) {
            proven[i] = bound(raw[i], OUTPUT_MIN, OUTPUT_MAX);
        }
        int256[] memory claimed = new int256[](OUTPUT_LEN);
        for (uint256 i; i < OUTPUT_LEN; ++i) {
            claimed[i] = proven[i];
        }
        index = bound(index, 0, OUTPUT_LEN - 1);
        claimed[index] = bound(delta, OUTPUT_MIN, OUTPUT_MAX);
        vm.assume(claimed[index] != proven[index]);

        uint256 id = _request();
        bytes memory proof = _prove(id, fulfiller, _input(), proven);
        vm.expectRevert(IInferenceCoordinator.InvalidProof.selector);
        vm.prank(fulfiller);
        coordinator.fulfillInference(id, _input(), claimed, proof);
    }

    /// A model with more outputs than fit one storage word, at the extremes of int64.
    function test_getResult_unpacksOutputsAcrossWords() public {
        bytes32 wide = _registerNew(
            IInferenceCoordinator.ModelEncoding(1, 9, 0, 0, 64, 0, 0, type(int64).min, type(int64).max, false)
        );
        vm.prank(listingOwner);
        uint256 wideListing = coordinator.createListing(wide, 0, DEADLINE_SECONDS);
        int256[] memory input = new int256[](1);
        vm.prank(requester);
        uint256 id = coordinator.requestInference(wideListing, input, 0, 0);
        int256[] memory output = new int256[](9);
        for (uint256 i; i < 9; ++i) {
            output[i] = i % 2 == 0 ? int256(type(int64).min) + int256(i) : int256(type(int64).max) - int256(i);
        }
        output[4] = -1;
        output[8] = 0;
        bytes memory proof = "wide";
        book.accept(InstanceEncoding.verifierCalldata(64, address(coordinator), id, fulfiller, input, output, proof));
        vm.prank(fulfiller);
        coordinator.fulfillInference(id, input, output, proof);
        (, int256[] memory stored,) = coordinator.getResult(id);
        assertEq(stored, output);
    }

    // ------------------------------------------------------------------------------------------------
    // Cancellation and withdrawal
    // ------------------------------------------------------------------------------------------------

    function test_cancelRequest_refundsRequesterAfterDeadline() public {
        uint256 id = _request();
        vm.warp(coordinator.getRequest(id).deadline + 1);
        vm.expectEmit(address(coordinator));
        emit IInferenceCoordinator.RequestCancelled(id, requester, FEE);
        vm.prank(requester);
        coordinator.cancelRequest(id);
        assertEq(uint8(_status(id)), uint8(IInferenceCoordinator.RequestStatus.Cancelled));
        assertEq(coordinator.withdrawable(requester), FEE);
    }

    function test_cancelRequest_revertsUntilDeadlinePassed() public {
        uint256 id = _request();
        uint64 deadline = coordinator.getRequest(id).deadline;
        vm.startPrank(requester);
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.RequestNotExpired.selector, id, deadline));
        coordinator.cancelRequest(id);
        vm.warp(deadline);
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.RequestNotExpired.selector, id, deadline));
        coordinator.cancelRequest(id);
        vm.stopPrank();
    }

    function test_cancelRequest_revertsForNonRequester() public {
        uint256 id = _request();
        vm.warp(block.timestamp + DEADLINE_SECONDS + 1);
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.NotRequester.selector, id, stranger));
        vm.prank(stranger);
        coordinator.cancelRequest(id);
        assertEq(coordinator.withdrawable(stranger), 0);
    }

    function test_cancelRequest_revertsWhenNotPending() public {
        uint256 fulfilled = _request();
        _fulfil(fulfilled, fulfiller, _input(), _output());
        uint256 cancelled = _request();
        vm.warp(block.timestamp + DEADLINE_SECONDS + 1);
        vm.startPrank(requester);
        coordinator.cancelRequest(cancelled);
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.RequestNotPending.selector, cancelled));
        coordinator.cancelRequest(cancelled);
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.RequestNotPending.selector, fulfilled));
        coordinator.cancelRequest(fulfilled);
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.RequestNotPending.selector, 77));
        coordinator.cancelRequest(77);
        vm.stopPrank();
        assertEq(coordinator.withdrawable(requester), FEE);
    }

    function test_withdraw_paysWholeBalanceToRecipient() public {
        _fulfil(_request(), fulfiller, _input(), _output());
        _fulfil(_request(), fulfiller, _input(), _output());
        address payable to = payable(makeAddr("treasury"));
        vm.expectEmit(address(coordinator));
        emit IInferenceCoordinator.Withdrawn(fulfiller, to, 2 * FEE);
        vm.prank(fulfiller);
        coordinator.withdraw(to);
        assertEq(to.balance, 2 * FEE);
        assertEq(coordinator.withdrawable(fulfiller), 0);
        assertEq(address(coordinator).balance, 0);
    }

    function test_withdraw_revertsWithNothingToWithdraw() public {
        vm.expectRevert(IInferenceCoordinator.NothingToWithdraw.selector);
        vm.prank(stranger);
        coordinator.withdraw(payable(stranger));
    }

    function test_withdraw_revertsWhenRecipientRejectsEther() public {
        _fulfil(_request(), fulfiller, _input(), _output());
        address rejecting = address(new AcceptAllVerifier(0)); // no receive(), non-payable fallback
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.WithdrawFailed.selector, rejecting, FEE));
        vm.prank(fulfiller);
        coordinator.withdraw(payable(rejecting));
        assertEq(coordinator.withdrawable(fulfiller), FEE);
    }

    function test_coordinator_rejectsPlainEther() public {
        vm.prank(requester);
        (bool ok,) = address(coordinator).call{value: 1 ether}("");
        assertFalse(ok);
        assertEq(address(coordinator).balance, 0);
    }
}

/// @notice The views of the coordinator, to call its code etched at another address.
interface InferenceCoordinatorViews {
    function bindingOf(uint256 requestId, address fulfiller) external view returns (uint256);
    function publicInstances(
        uint8 valueBits,
        uint256 requestId,
        address fulfiller,
        int256[] calldata input,
        int256[] calldata output
    ) external view returns (uint256[] memory);
}
