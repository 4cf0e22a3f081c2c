// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {CoordinatorTestBase} from "./utils/CoordinatorTestBase.sol";
import {IInferenceCoordinator} from "../src/interfaces/IInferenceCoordinator.sol";
import {AcceptAllVerifier, MockVerifier} from "./mocks/MockVerifier.sol";
import {InstanceEncoding} from "./utils/InstanceEncoding.sol";

/// @notice Every path of the registry, requests, fulfilment, cancellation and withdrawal with a mock
/// verifier. Tests with a real generated verifier live in RealVerifier tests (see contracts/test/fixtures).
contract InferenceCoordinatorTest is CoordinatorTestBase {
    // ------------------------------------------------------------------------------------------------
    // Encoding
    // ------------------------------------------------------------------------------------------------

    function test_fieldModulus_isBn254ScalarOrder() public view {
        assertEq(coordinator.FIELD_MODULUS(), R);
        assertEq(R, 0x30644e72e131a029b85045b68181585d2833e84879b9709143e1f593f0000001);
    }

    /// Known answers, shared with the Rust encoder's tests: keccak256(abi.encode(id, fulfiller)) is above r
    /// for both, so the reduction matters.
    function test_bindingOf_matchesKnownAnswers() public view {
        assertEq(
            coordinator.bindingOf(42, 0x1111111111111111111111111111111111111111),
            262725158738547459071893023349405639869810989645572421803803493788765979162
        );
        assertEq(
            coordinator.bindingOf(1, address(1)),
            4905309787131494400818314146123823043974179693537294767177002183932535929131
        );
    }

    function testFuzz_bindingOf_isKeccakModR(uint256 requestId, address who) public view {
        uint256 binding = coordinator.bindingOf(requestId, who);
        assertLt(binding, R);
        assertEq(binding, uint256(keccak256(abi.encode(requestId, who))) % R);
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

    /// The instances of the proofs the Rust prover made for the zoo models (contracts/test/fixtures).
    function test_publicInstances_matchRustProverFixtures() public view {
        string[2] memory models = ["digits_mlp", "digits_cnn"];
        for (uint256 i; i < models.length; ++i) {
            string memory json = vm.readFile(string.concat("contracts/test/fixtures/", models[i], ".json"));
            uint256[] memory instances = coordinator.publicInstances(
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
        assertEq(instances, InstanceEncoding.instances(bits, requestId, who, input, output));
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
                OUTPUT_MAX
            )
        );
        assertEq(modelId, expected);
        IInferenceCoordinator.Model memory m = coordinator.getModel(modelId);
        assertEq(m.verifier, address(verifier));
        assertEq(m.encoding.inputLen, INPUT_LEN);
        assertEq(m.encoding.outputLen, OUTPUT_LEN);
        assertEq(m.encoding.inputScaleBits, INPUT_SCALE_BITS);
        assertEq(m.encoding.outputScaleBits, OUTPUT_SCALE_BITS);
        assertTrue(m.active);
        assertEq(m.owner, modelOwner);
        assertEq(m.fee, FEE);
        assertEq(m.encoding.inputMin, INPUT_MIN);
        assertEq(m.encoding.inputMax, INPUT_MAX);
        assertEq(m.encoding.outputMin, OUTPUT_MIN);
        assertEq(m.encoding.outputMax, OUTPUT_MAX);
        assertEq(m.deadlineSeconds, DEADLINE_SECONDS);
    }

    function test_registerModel_emitsModelRegistered() public {
        AcceptAllVerifier other = new AcceptAllVerifier();
        bytes32 expectedId = coordinator.computeModelId(address(other).codehash, _defaultEncoding());
        vm.expectEmit(address(coordinator));
        emit IInferenceCoordinator.ModelRegistered(expectedId, modelOwner, address(other), FEE, DEADLINE_SECONDS);
        assertEq(_registerDefault(address(other)), expectedId);
    }

    function test_registerModel_revertsForSameCodeAndEncodingAtAnotherAddress() public {
        MockVerifier twin = new MockVerifier(book);
        assertEq(address(twin).codehash, address(verifier).codehash);
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.ModelAlreadyRegistered.selector, modelId));
        _registerDefault(address(twin));
    }

    function test_registerModel_givesOtherCodeOrEncodingAnotherId() public {
        bytes32 otherCode = _registerDefault(address(new AcceptAllVerifier()));
        vm.prank(stranger);
        bytes32 otherScale = coordinator.registerModel(
            address(verifier),
            IInferenceCoordinator.ModelEncoding(
                INPUT_LEN,
                OUTPUT_LEN,
                INPUT_SCALE_BITS,
                OUTPUT_SCALE_BITS + 1,
                VALUE_BITS,
                INPUT_MIN,
                INPUT_MAX,
                OUTPUT_MIN,
                OUTPUT_MAX
            ),
            FEE,
            DEADLINE_SECONDS
        );
        assertTrue(otherCode != modelId && otherScale != modelId && otherCode != otherScale);
        assertEq(coordinator.getModel(otherScale).owner, stranger);
    }

    function test_registerModel_revertsWhenVerifierHasNoCode() public {
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.VerifierHasNoCode.selector, stranger));
        coordinator.registerModel(
            stranger, IInferenceCoordinator.ModelEncoding(1, 1, 0, 0, 16, 0, 1, 0, 1), FEE, DEADLINE_SECONDS
        );
    }

    function test_registerModel_revertsOnZeroLength() public {
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.InvalidModelShape.selector, 0, 1));
        coordinator.registerModel(
            address(verifier), IInferenceCoordinator.ModelEncoding(0, 1, 0, 0, 16, 0, 1, 0, 1), FEE, DEADLINE_SECONDS
        );
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.InvalidModelShape.selector, 1, 0));
        coordinator.registerModel(
            address(verifier), IInferenceCoordinator.ModelEncoding(1, 0, 0, 0, 16, 0, 1, 0, 1), FEE, DEADLINE_SECONDS
        );
    }

    function test_registerModel_revertsWhenMinAboveMax() public {
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.InvalidBounds.selector, 2, 1));
        coordinator.registerModel(
            address(verifier), IInferenceCoordinator.ModelEncoding(1, 1, 0, 0, 16, 2, 1, 0, 1), FEE, DEADLINE_SECONDS
        );
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.InvalidBounds.selector, 0, -1));
        coordinator.registerModel(
            address(verifier), IInferenceCoordinator.ModelEncoding(1, 1, 0, 0, 16, 0, 1, 0, -1), FEE, DEADLINE_SECONDS
        );
    }

    function _encoding(uint8 bits, int64 inputMin, int64 inputMax, int64 outputMin, int64 outputMax)
        internal
        pure
        returns (IInferenceCoordinator.ModelEncoding memory)
    {
        return IInferenceCoordinator.ModelEncoding(1, 1, 0, 0, bits, inputMin, inputMax, outputMin, outputMax);
    }

    function test_registerModel_revertsOnInvalidValueBits() public {
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.InvalidValueBits.selector, 0));
        coordinator.registerModel(address(verifier), _encoding(0, 0, 0, 0, 0), FEE, DEADLINE_SECONDS);
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.InvalidValueBits.selector, 65));
        coordinator.registerModel(address(verifier), _encoding(65, 0, 0, 0, 0), FEE, DEADLINE_SECONDS);
    }

    /// Packing is injective only for values of valueBits bits: wider bounds would let two outputs share
    /// instance words.
    function test_registerModel_revertsWhenBoundsExceedValueBits() public {
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.BoundsExceedValueBits.selector, 0, 32768, 16));
        coordinator.registerModel(address(verifier), _encoding(16, 0, 32768, 0, 0), FEE, DEADLINE_SECONDS);
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.BoundsExceedValueBits.selector, -32769, 0, 16));
        coordinator.registerModel(address(verifier), _encoding(16, 0, 0, -32769, 0), FEE, DEADLINE_SECONDS);
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.BoundsExceedValueBits.selector, 0, 1, 1));
        coordinator.registerModel(address(verifier), _encoding(1, 0, 0, 0, 1), FEE, DEADLINE_SECONDS);
    }

    function test_registerModel_acceptsBoundsAtValueBitsLimits() public {
        bytes32 id16 = coordinator.registerModel(
            address(verifier), _encoding(16, -32768, 32767, -32768, 32767), FEE, DEADLINE_SECONDS
        );
        assertEq(coordinator.getModel(id16).encoding.inputMin, -32768);
        bytes32 id64 = coordinator.registerModel(
            address(verifier),
            _encoding(64, type(int64).min, type(int64).max, type(int64).min, type(int64).max),
            FEE,
            DEADLINE_SECONDS
        );
        assertEq(coordinator.getModel(id64).encoding.outputMax, type(int64).max);
        bytes32 id1 = coordinator.registerModel(address(verifier), _encoding(1, -1, 0, -1, -1), FEE, DEADLINE_SECONDS);
        assertEq(coordinator.getModel(id1).encoding.valueBits, 1);
    }

    function test_registerModel_acceptsSingleValueRanges() public {
        bytes32 id = coordinator.registerModel(
            address(verifier), IInferenceCoordinator.ModelEncoding(1, 1, 0, 0, 16, 5, 5, -3, -3), FEE, DEADLINE_SECONDS
        );
        assertEq(coordinator.getModel(id).encoding.inputMin, 5);
        assertEq(coordinator.getModel(id).encoding.outputMax, -3);
    }

    function test_registerModel_revertsOnZeroOrTooLongDeadline() public {
        uint64 max = coordinator.MAX_DEADLINE_SECONDS();
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.InvalidDeadline.selector, 0, max));
        coordinator.registerModel(
            address(verifier), IInferenceCoordinator.ModelEncoding(1, 1, 0, 0, 16, 0, 1, 0, 1), FEE, 0
        );
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.InvalidDeadline.selector, max + 1, max));
        coordinator.registerModel(
            address(verifier), IInferenceCoordinator.ModelEncoding(1, 1, 0, 0, 16, 0, 1, 0, 1), FEE, max + 1
        );
        bytes32 id = coordinator.registerModel(
            address(verifier), IInferenceCoordinator.ModelEncoding(1, 1, 0, 0, 16, 0, 1, 0, 1), FEE, max
        );
        assertEq(coordinator.getModel(id).deadlineSeconds, max);
    }

    function test_getModel_returnsZeroForUnknownId() public view {
        IInferenceCoordinator.Model memory m = coordinator.getModel(bytes32(uint256(1)));
        assertEq(m.owner, address(0));
        assertEq(m.verifier, address(0));
    }

    function test_setFee_appliesToNewRequestsOnly() public {
        uint256 first = _request();
        vm.expectEmit(address(coordinator));
        emit IInferenceCoordinator.ModelFeeSet(modelId, 1 ether);
        vm.prank(modelOwner);
        coordinator.setFee(modelId, 1 ether);
        assertEq(coordinator.quote(modelId, 0), 1 ether);
        assertEq(coordinator.getRequest(first).payment, FEE);

        vm.prank(requester);
        uint256 second = coordinator.requestInference{value: 1 ether}(modelId, _input(), 0);
        assertEq(coordinator.getRequest(second).payment, 1 ether);
    }

    function test_setFee_revertsForNonOwner() public {
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.NotModelOwner.selector, modelId, stranger));
        vm.prank(stranger);
        coordinator.setFee(modelId, 0);
    }

    function test_setFee_revertsForUnknownModel() public {
        bytes32 unknown = keccak256("unknown");
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.ModelNotFound.selector, unknown));
        coordinator.setFee(unknown, 0);
    }

    function test_deactivateModel_blocksNewRequestsButNotFulfilment() public {
        uint256 id = _request();
        vm.expectEmit(address(coordinator));
        emit IInferenceCoordinator.ModelActiveSet(modelId, false);
        vm.prank(modelOwner);
        coordinator.deactivateModel(modelId);
        assertFalse(coordinator.getModel(modelId).active);

        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.ModelInactive.selector, modelId));
        vm.prank(requester);
        coordinator.requestInference{value: FEE}(modelId, _input(), 0);
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.ModelInactive.selector, modelId));
        coordinator.quote(modelId, 0);

        _fulfil(id, fulfiller, _input(), _output());
        assertEq(uint8(_status(id)), uint8(IInferenceCoordinator.RequestStatus.Fulfilled));
    }

    function test_activateModel_acceptsRequestsAgain() public {
        vm.startPrank(modelOwner);
        coordinator.deactivateModel(modelId);
        vm.expectEmit(address(coordinator));
        emit IInferenceCoordinator.ModelActiveSet(modelId, true);
        coordinator.activateModel(modelId);
        vm.stopPrank();
        assertEq(_request(), 1);
    }

    function test_deactivateModel_revertsForNonOwner() public {
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.NotModelOwner.selector, modelId, stranger));
        vm.prank(stranger);
        coordinator.deactivateModel(modelId);
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.NotModelOwner.selector, modelId, stranger));
        vm.prank(stranger);
        coordinator.activateModel(modelId);
    }

    // ------------------------------------------------------------------------------------------------
    // Requests
    // ------------------------------------------------------------------------------------------------

    function test_requestInference_storesRequestAndEmits() public {
        int256[] memory input = _input();
        uint64 deadline = uint64(block.timestamp + DEADLINE_SECONDS);
        vm.expectEmit(address(coordinator));
        emit IInferenceCoordinator.InferenceRequested(1, modelId, requester, input, 50_000, FEE, deadline);
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
            1, modelId, requester, input, callbackGasLimit, FEE, uint64(timestamp + DEADLINE_SECONDS)
        );
        _requestAs(requester, input, callbackGasLimit);
    }

    function test_requestInference_numbersRequestsSequentially() public {
        assertEq(_request(), 1);
        assertEq(_request(), 2);
        assertEq(_request(), 3);
    }

    function test_requestInference_revertsForUnknownModel() public {
        bytes32 unknown = keccak256("unknown");
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.ModelNotFound.selector, unknown));
        vm.prank(requester);
        coordinator.requestInference{value: FEE}(unknown, _input(), 0);
    }

    function test_requestInference_revertsOnWrongPayment() public {
        vm.startPrank(requester);
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.IncorrectPayment.selector, FEE, FEE - 1));
        coordinator.requestInference{value: FEE - 1}(modelId, _input(), 0);
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.IncorrectPayment.selector, FEE, FEE + 1));
        coordinator.requestInference{value: FEE + 1}(modelId, _input(), 0);
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

    function test_requestInference_acceptsFreeModel() public {
        vm.prank(modelOwner);
        coordinator.setFee(modelId, 0);
        vm.prank(requester);
        uint256 id = coordinator.requestInference(modelId, _input(), 0);
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
        vm.prank(modelOwner);
        coordinator.setFee(modelId, fee);
        value = bound(value, 0, uint256(fee) * 2 + 1);
        vm.deal(requester, value);
        if (value != fee) {
            vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.IncorrectPayment.selector, fee, value));
        }
        vm.prank(requester);
        coordinator.requestInference{value: value}(modelId, _input(), 0);
        assertEq(address(coordinator).balance, value == fee ? value : 0);
    }

    function testFuzz_requestInference_boundsCallbackGas(uint32 callbackGasLimit) public {
        uint32 max = coordinator.MAX_CALLBACK_GAS();
        if (callbackGasLimit > max) {
            vm.expectRevert(
                abi.encodeWithSelector(IInferenceCoordinator.CallbackGasLimitTooHigh.selector, callbackGasLimit, max)
            );
            coordinator.quote(modelId, callbackGasLimit);
        } else {
            assertEq(coordinator.quote(modelId, callbackGasLimit), FEE);
        }
    }

    function test_quote_revertsForUnknownModel() public {
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.ModelNotFound.selector, bytes32(0)));
        coordinator.quote(bytes32(0), 0);
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
            address(verifier), InstanceEncoding.verifierCalldata(VALUE_BITS, id, fulfiller, _input(), _output(), proof)
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
        vm.etch(address(verifier), address(new AcceptAllVerifier()).code);
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
        vm.prank(modelOwner);
        bytes32 wide = coordinator.registerModel(
            address(verifier),
            IInferenceCoordinator.ModelEncoding(1, 9, 0, 0, 64, 0, 0, type(int64).min, type(int64).max),
            0,
            DEADLINE_SECONDS
        );
        int256[] memory input = new int256[](1);
        vm.prank(requester);
        uint256 id = coordinator.requestInference(wide, input, 0);
        int256[] memory output = new int256[](9);
        for (uint256 i; i < 9; ++i) {
            output[i] = i % 2 == 0 ? int256(type(int64).min) + int256(i) : int256(type(int64).max) - int256(i);
        }
        output[4] = -1;
        output[8] = 0;
        bytes memory proof = "wide";
        book.accept(InstanceEncoding.verifierCalldata(64, id, fulfiller, input, output, proof));
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
        address rejecting = address(new AcceptAllVerifier()); // no receive(), non-payable fallback
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
