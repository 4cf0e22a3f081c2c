// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {Vm} from "forge-std/Vm.sol";
import {IInferenceCoordinator} from "../src/interfaces/IInferenceCoordinator.sol";
import {InferenceConsumerBase} from "../src/consumer/InferenceConsumerBase.sol";
import {MockVerifier} from "./mocks/MockVerifier.sol";
import {RecordingConsumer} from "./mocks/Consumers.sol";
import {CoordinatorTestBase} from "./utils/CoordinatorTestBase.sol";
import {InstanceEncoding} from "./utils/InstanceEncoding.sol";

/// @notice A consumer on InferenceConsumerBase that makes private requests.
contract PrivateConsumer is InferenceConsumerBase {
    int256[] internal _lastOutput;

    constructor(IInferenceCoordinator coordinator_) InferenceConsumerBase(coordinator_) {}

    function ask(uint256 listingId, bytes32 commitment, address prover, bytes calldata ciphertext, uint256 maxFee)
        external
        payable
        returns (uint256 requestId)
    {
        (requestId,) = _requestPrivateInference(
            listingId, commitment, prover, coordinator.encryptionKeyOf(prover), ciphertext, 100_000, maxFee
        );
    }

    function lastOutput() external view returns (int256[] memory) {
        return _lastOutput;
    }

    function _onInferenceResult(uint256, int256[] calldata output) internal override {
        _lastOutput = output;
    }
}

/// @notice Private requests (issue 13, /work/spec/private-inputs.md): a committed-input model takes the
/// commitment C and a ciphertext instead of the input, only the named prover fulfils, and the proof is
/// checked against [binding, C, pack(output)]. The mock verifier accepts exactly the calldata booked with
/// InstanceEncoding's independent encoding, so a proof for another commitment, output, fulfiller or request
/// is rejected as a real verifier would reject it.
contract PrivateRequestsTest is CoordinatorTestBase {
    /// Version 1 envelope: 1 + 32 (ephemeral key) + 32 (salt) + 16 (tag) bytes beyond 8 per value.
    uint256 internal constant OVERHEAD = 81;
    uint256 internal constant CIPHERTEXT_LEN = OVERHEAD + 8 * INPUT_LEN;

    MockVerifier internal privateVerifier;
    bytes32 internal privateModelId;
    uint256 internal privateListingId;

    address internal prover = makeAddr("prover");
    bytes32 internal proverKey = keccak256("prover's X25519 public key");
    bytes32 internal commitment = bytes32(uint256(keccak256("C = Poseidon(pack(input) || salt)")) % R);

    function setUp() public override {
        super.setUp();
        privateVerifier = _mockVerifier(_committedEncoding());
        privateModelId = _register(address(privateVerifier), _committedEncoding());
        privateListingId = _list(privateModelId);
        vm.prank(prover);
        coordinator.setEncryptionKey(proverKey);
    }

    /// Stands for a version-1 envelope: only its length matters to the coordinator.
    function _ciphertext() internal pure returns (bytes memory ciphertext) {
        ciphertext = new bytes(CIPHERTEXT_LEN);
        ciphertext[0] = 0x01;
        for (uint256 i = 1; i < CIPHERTEXT_LEN; ++i) {
            ciphertext[i] = bytes1(uint8(uint256(keccak256(abi.encode(i)))));
        }
    }

    function _requestPrivate(address who, bytes32 c, uint32 callbackGasLimit) internal returns (uint256) {
        vm.prank(who);
        return coordinator.requestPrivateInference{value: FEE}(
            privateListingId, c, prover, proverKey, _ciphertext(), callbackGasLimit, FEE
        );
    }

    function _requestPrivate() internal returns (uint256) {
        return _requestPrivate(requester, commitment, 0);
    }

    /// @dev A "proof" the mock verifier accepts for exactly this request, fulfiller, commitment and output.
    function _provePrivate(uint256 requestId, address who, bytes32 c, int256[] memory output)
        internal
        returns (bytes memory proof)
    {
        proof = abi.encodePacked("private proof", requestId, who, c);
        book.accept(
            InstanceEncoding.privateVerifierCalldata(VALUE_BITS, address(coordinator), requestId, who, c, output, proof)
        );
    }

    function _fulfilPrivate(uint256 requestId, int256[] memory output) internal {
        bytes memory proof = _provePrivate(requestId, prover, commitment, output);
        vm.prank(prover);
        coordinator.fulfillPrivateInference(requestId, output, proof);
    }

    function _expectRevertRequest(bytes memory err, bytes32 c, address who, bytes32 key, bytes memory ciphertext)
        internal
    {
        vm.expectRevert(err);
        vm.prank(requester);
        coordinator.requestPrivateInference{value: FEE}(privateListingId, c, who, key, ciphertext, 0, FEE);
    }

    /// The non-indexed fields of PrivateInferenceRequested.
    struct PrivateRequestedData {
        address requester;
        uint256 listingId;
        bytes32 commitment;
        bytes32 encryptionKey;
        bytes ciphertext;
        uint32 callbackGasLimit;
        uint256 payment;
        uint48 deadline;
    }

    /// The compiler's ABI encoding of the fields.
    function _encode(PrivateRequestedData memory d) internal pure returns (bytes memory) {
        return abi.encode(
            d.requester,
            d.listingId,
            d.commitment,
            d.encryptionKey,
            d.ciphertext,
            d.callbackGasLimit,
            d.payment,
            d.deadline
        );
    }

    function _decode(bytes memory logData) internal pure returns (PrivateRequestedData memory d) {
        (d.requester, d.listingId, d.commitment, d.encryptionKey, d.ciphertext) =
            abi.decode(logData, (address, uint256, bytes32, bytes32, bytes));
        (,,,,, d.callbackGasLimit, d.payment, d.deadline) =
            abi.decode(logData, (uint256, uint256, uint256, uint256, uint256, uint32, uint256, uint48));
    }

    // ------------------------------------------------------------------------------------------------
    // Models
    // ------------------------------------------------------------------------------------------------

    /// The flag is the tenth word of the id: the same verifier code and numbers without it is another model.
    function test_registerModel_registersACommittedInputModelUnderItsOwnId() public view {
        IInferenceCoordinator.ModelEncoding memory e = _committedEncoding();
        bytes32 expected = keccak256(
            abi.encode(
                address(privateVerifier).codehash,
                e.inputLen,
                e.outputLen,
                e.inputScaleBits,
                e.outputScaleBits,
                e.valueBits,
                e.inputMin,
                e.inputMax,
                e.outputMin,
                e.outputMax,
                true
            )
        );
        assertEq(privateModelId, expected);
        assertTrue(coordinator.getModel(privateModelId).encoding.inputCommitted);
        assertNotEq(coordinator.computeModelId(address(privateVerifier).codehash, _defaultEncoding()), privateModelId);
    }

    /// A verifier generated for the public encoding cannot be registered as committed-input (nor back).
    function test_registerModel_revertsWhenTheVerifierReportsTheOtherMode() public {
        MockVerifier publicVerifier = _mockVerifier(_defaultEncoding());
        vm.expectRevert(
            abi.encodeWithSelector(
                IInferenceCoordinator.EncodingMismatch.selector,
                address(publicVerifier),
                coordinator.computeEncodingHash(_committedEncoding()),
                coordinator.computeEncodingHash(_defaultEncoding())
            )
        );
        coordinator.registerModel(address(publicVerifier), _committedEncoding(), SAMPLE);
    }

    // ------------------------------------------------------------------------------------------------
    // Encryption keys
    // ------------------------------------------------------------------------------------------------

    function test_setEncryptionKey_setsRotatesAndRemoves() public {
        assertEq(coordinator.encryptionKeyOf(stranger), bytes32(0));
        bytes32 first = keccak256("first");
        bytes32 second = keccak256("second");

        vm.expectEmit(address(coordinator));
        emit IInferenceCoordinator.EncryptionKeySet(stranger, first);
        vm.prank(stranger);
        coordinator.setEncryptionKey(first);
        assertEq(coordinator.encryptionKeyOf(stranger), first);

        vm.expectEmit(address(coordinator));
        emit IInferenceCoordinator.EncryptionKeySet(stranger, second);
        vm.prank(stranger);
        coordinator.setEncryptionKey(second);
        assertEq(coordinator.encryptionKeyOf(stranger), second);

        vm.expectEmit(address(coordinator));
        emit IInferenceCoordinator.EncryptionKeySet(stranger, bytes32(0));
        vm.prank(stranger);
        coordinator.setEncryptionKey(bytes32(0));
        assertEq(coordinator.encryptionKeyOf(stranger), bytes32(0));

        // Each account sets its own key only.
        assertEq(coordinator.encryptionKeyOf(prover), proverKey);
    }

    // ------------------------------------------------------------------------------------------------
    // Requests
    // ------------------------------------------------------------------------------------------------

    /// The event carries the commitment, the key and the ciphertext, and nothing else of the input; the
    /// public InferenceRequested is not emitted.
    function test_requestPrivateInference_storesRequestAndEmits() public {
        uint48 deadline = uint48(block.timestamp + DEADLINE_SECONDS);
        vm.recordLogs();
        uint256 id = _requestPrivate(requester, commitment, 50_000);
        Vm.Log[] memory logs = vm.getRecordedLogs();

        assertEq(id, 1);
        assertEq(logs.length, 1);
        Vm.Log memory log = logs[0];
        assertEq(log.emitter, address(coordinator));
        assertEq(log.topics.length, 4);
        assertEq(log.topics[0], IInferenceCoordinator.PrivateInferenceRequested.selector);
        assertEq(log.topics[1], bytes32(id));
        assertEq(log.topics[2], privateModelId);
        assertEq(log.topics[3], bytes32(uint256(uint160(prover))));
        PrivateRequestedData memory data = _decode(log.data);
        assertEq(data.requester, requester);
        assertEq(data.listingId, privateListingId);
        assertEq(data.commitment, commitment);
        assertEq(data.encryptionKey, proverKey);
        assertEq(data.ciphertext, _ciphertext());
        assertEq(data.callbackGasLimit, 50_000);
        assertEq(data.payment, FEE);
        assertEq(data.deadline, deadline);
        // Exactly these fields, canonically encoded (zero padding included): no room for anything else.
        assertEq(log.data, _encode(data));

        IInferenceCoordinator.Request memory r = coordinator.getRequest(id);
        assertEq(r.requester, requester);
        assertEq(r.deadline, deadline);
        assertEq(r.callbackGasLimit, 50_000);
        assertEq(uint8(r.status), uint8(IInferenceCoordinator.RequestStatus.Pending));
        assertEq(r.modelId, privateModelId);
        assertEq(r.inputHash, commitment);
        assertEq(r.fulfiller, address(0));
        assertEq(r.payment, FEE);
        assertEq(r.prover, prover);
        assertEq(address(coordinator).balance, FEE);
    }

    /// Public and private requests share one counter; a public request names no prover.
    function test_requestPrivateInference_sharesTheRequestCounter() public {
        assertEq(_request(), 1);
        assertEq(_requestPrivate(), 2);
        assertEq(_request(), 3);
        assertEq(coordinator.getRequest(1).prover, address(0));
        assertEq(coordinator.getRequest(2).prover, prover);
    }

    /// The event is ABI-encoded by hand (see `_emitPrivateInferenceRequested`): compare with the compiler's
    /// encoding for every ciphertext padding (81 + 8n is 17, 25, 1 or 9 mod 32) and any field values.
    function testFuzz_requestPrivateInference_emitsAbiEncodedEvent(
        uint32 inputLen,
        uint256 timestamp,
        uint32 callbackGasLimit,
        uint256 c,
        uint256 seed
    ) public {
        PrivateRequestedData memory d;
        d.requester = requester;
        d.payment = FEE;
        timestamp = bound(timestamp, 1, type(uint48).max - DEADLINE_SECONDS);
        d.deadline = uint48(timestamp + DEADLINE_SECONDS);
        d.callbackGasLimit = uint32(bound(callbackGasLimit, 0, coordinator.MAX_CALLBACK_GAS()));
        d.commitment = bytes32(bound(c, 0, R - 1));
        (d.listingId, d.ciphertext) = _committedListingAndCiphertext(inputLen, seed);
        d.encryptionKey = keccak256(abi.encode("key", seed));
        vm.prank(stranger);
        coordinator.setEncryptionKey(d.encryptionKey);
        vm.warp(timestamp);

        vm.recordLogs();
        vm.prank(requester);
        coordinator.requestPrivateInference{value: FEE}(
            d.listingId, d.commitment, stranger, d.encryptionKey, d.ciphertext, d.callbackGasLimit, FEE
        );
        Vm.Log[] memory logs = vm.getRecordedLogs();
        assertEq(logs.length, 1);
        assertEq(logs[0].topics[0], IInferenceCoordinator.PrivateInferenceRequested.selector);
        assertEq(logs[0].topics[1], bytes32(uint256(1)));
        assertEq(logs[0].topics[2], coordinator.getListing(d.listingId).modelId);
        assertEq(logs[0].topics[3], bytes32(uint256(uint160(stranger))));
        assertEq(logs[0].data, _encode(d));
    }

    /// A listing of a committed-input model with 1 to 40 input values, and a ciphertext of its length.
    function _committedListingAndCiphertext(uint32 inputLen, uint256 seed)
        internal
        returns (uint256 listing, bytes memory ciphertext)
    {
        IInferenceCoordinator.ModelEncoding memory e = _committedEncoding();
        e.inputLen = uint32(bound(inputLen, 1, 40));
        listing = e.inputLen == INPUT_LEN ? privateListingId : _list(_registerNew(e));
        ciphertext = new bytes(OVERHEAD + 8 * uint256(e.inputLen));
        for (uint256 i; i < ciphertext.length; ++i) {
            ciphertext[i] = bytes1(uint8(uint256(keccak256(abi.encode(seed, i)))));
        }
    }

    function test_requestPrivateInference_revertsForAPublicInputModel() public {
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.InputNotCommitted.selector, modelId));
        vm.prank(requester);
        coordinator.requestPrivateInference{value: FEE}(
            listingId, commitment, prover, proverKey, new bytes(CIPHERTEXT_LEN), 0, FEE
        );
    }

    function test_requestInference_revertsForACommittedInputModel() public {
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.InputCommitted.selector, privateModelId));
        vm.prank(requester);
        coordinator.requestInference{value: FEE}(privateListingId, _input(), 0, FEE);
    }

    /// C must be a canonical field element: r and above have none, r - 1 is fine.
    function test_requestPrivateInference_revertsWhenCommitmentNotInField() public {
        bytes32 r = bytes32(R);
        _expectRevertRequest(
            abi.encodeWithSelector(IInferenceCoordinator.CommitmentNotInField.selector, r),
            r,
            prover,
            proverKey,
            _ciphertext()
        );
        bytes32 max = bytes32(type(uint256).max);
        _expectRevertRequest(
            abi.encodeWithSelector(IInferenceCoordinator.CommitmentNotInField.selector, max),
            max,
            prover,
            proverKey,
            _ciphertext()
        );
        _requestPrivate(requester, bytes32(R - 1), 0);
        _requestPrivate(requester, bytes32(0), 0);
    }

    function test_requestPrivateInference_revertsWhenProverHasNoKey() public {
        _expectRevertRequest(
            abi.encodeWithSelector(IInferenceCoordinator.NoEncryptionKey.selector, stranger),
            commitment,
            stranger,
            proverKey,
            _ciphertext()
        );
        // A removed key too.
        vm.prank(prover);
        coordinator.setEncryptionKey(bytes32(0));
        _expectRevertRequest(
            abi.encodeWithSelector(IInferenceCoordinator.NoEncryptionKey.selector, prover),
            commitment,
            prover,
            bytes32(0),
            _ciphertext()
        );
    }

    function test_requestPrivateInference_revertsOnEncryptionKeyMismatch() public {
        bytes32 other = keccak256("another key");
        _expectRevertRequest(
            abi.encodeWithSelector(IInferenceCoordinator.EncryptionKeyMismatch.selector, prover, proverKey, other),
            commitment,
            prover,
            other,
            _ciphertext()
        );
    }

    /// A ciphertext made for the key the prover had before it rotated no longer lands.
    function test_requestPrivateInference_revertsOnTheKeyBeforeARotation() public {
        uint256 before = _requestPrivate();
        bytes32 rotated = keccak256("rotated key");
        vm.prank(prover);
        coordinator.setEncryptionKey(rotated);
        _expectRevertRequest(
            abi.encodeWithSelector(IInferenceCoordinator.EncryptionKeyMismatch.selector, prover, rotated, proverKey),
            commitment,
            prover,
            proverKey,
            _ciphertext()
        );
        // The request made before the rotation is still the prover's to fulfil.
        _fulfilPrivate(before, _output());
        assertEq(uint8(_status(before)), uint8(IInferenceCoordinator.RequestStatus.Fulfilled));
    }

    function test_requestPrivateInference_revertsOnWrongCiphertextLength() public {
        uint256[3] memory lengths = [CIPHERTEXT_LEN - 1, CIPHERTEXT_LEN + 1, 0];
        for (uint256 i; i < lengths.length; ++i) {
            _expectRevertRequest(
                abi.encodeWithSelector(
                    IInferenceCoordinator.InvalidCiphertextLength.selector, CIPHERTEXT_LEN, lengths[i]
                ),
                commitment,
                prover,
                proverKey,
                new bytes(lengths[i])
            );
        }
        assertEq(coordinator.CIPHERTEXT_OVERHEAD(), OVERHEAD);
    }

    /// The listing, fee and payment checks come first, as for public requests.
    function test_requestPrivateInference_checksFeeAndPaymentFirst() public {
        vm.prank(listingOwner);
        coordinator.setListingFee(privateListingId, FEE + 1);
        vm.expectRevert(
            abi.encodeWithSelector(IInferenceCoordinator.FeeAboveMax.selector, privateListingId, FEE + 1, FEE)
        );
        vm.prank(requester);
        coordinator.requestPrivateInference{value: FEE + 1}(
            privateListingId, bytes32(R), stranger, bytes32(0), hex"", 0, FEE
        );

        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.IncorrectPayment.selector, FEE + 1, FEE));
        vm.prank(requester);
        coordinator.requestPrivateInference{value: FEE}(
            privateListingId, commitment, prover, proverKey, _ciphertext(), 0, FEE + 1
        );

        vm.prank(listingOwner);
        coordinator.deactivateListing(privateListingId);
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.ListingInactive.selector, privateListingId));
        _requestPrivate();
    }

    /// InferenceConsumerBase's helper pays the fee from the consumer's balance and names the prover.
    function test_requestPrivateInference_fromInferenceConsumerBase() public {
        PrivateConsumer consumer = new PrivateConsumer(coordinator);
        vm.deal(address(consumer), FEE);
        uint256 id = consumer.ask(privateListingId, commitment, prover, _ciphertext(), FEE);
        assertEq(coordinator.getRequest(id).requester, address(consumer));
        assertEq(coordinator.getRequest(id).prover, prover);
        assertEq(address(consumer).balance, 0);
        _fulfilPrivate(id, _output());
        assertEq(consumer.lastOutput(), _output());

        vm.expectRevert(
            abi.encodeWithSelector(InferenceConsumerBase.FeeAboveMax.selector, privateListingId, FEE, FEE - 1)
        );
        consumer.ask(privateListingId, commitment, prover, _ciphertext(), FEE - 1);
    }

    // ------------------------------------------------------------------------------------------------
    // Fulfilment
    // ------------------------------------------------------------------------------------------------

    /// The verifier is called with exactly [binding(id, prover), C, pack(output)] then the proof; the
    /// fulfilment then does what a public one does.
    function test_fulfillPrivateInference_verifiesBindingCommitmentOutputAndPays() public {
        uint256 id = _requestPrivate();
        int256[] memory output = _output();
        bytes memory proof = _provePrivate(id, prover, commitment, output);
        uint256[] memory instances =
            InstanceEncoding.privateInstances(VALUE_BITS, address(coordinator), id, prover, commitment, output);
        assertEq(instances.length, 3);
        assertEq(instances[0], InstanceEncoding.binding(address(coordinator), id, prover));
        assertEq(instances[1], uint256(commitment));
        assertEq(instances[2], InstanceEncoding.pack(VALUE_BITS, output)[0]);
        vm.expectCall(address(privateVerifier), InstanceEncoding.concat(instances, proof));
        vm.expectEmit(address(coordinator));
        emit IInferenceCoordinator.InferenceFulfilled(id, prover, output);
        vm.prank(prover);
        coordinator.fulfillPrivateInference(id, output, proof);

        IInferenceCoordinator.Request memory r = coordinator.getRequest(id);
        assertEq(uint8(r.status), uint8(IInferenceCoordinator.RequestStatus.Fulfilled));
        assertEq(r.fulfiller, prover);
        (, int256[] memory stored,) = coordinator.getResult(id);
        assertEq(stored, output);
        assertEq(coordinator.withdrawable(prover), FEE);
        assertEq(address(coordinator).balance, FEE);
    }

    function test_privateInstances_isTheIndependentEncoding() public view {
        assertEq(
            coordinator.privateInstances(VALUE_BITS, 7, prover, commitment, _output()),
            InstanceEncoding.privateInstances(VALUE_BITS, address(coordinator), 7, prover, commitment, _output())
        );
    }

    function testFuzz_privateInstances_matchesIndependentEncoding(
        uint8 bits,
        uint256 requestId,
        address who,
        uint256 c,
        int256[] memory output
    ) public view {
        bits = uint8(bound(bits, 1, 64));
        c = bound(c, 0, R - 1);
        int256 half = int256(2 ** (bits - 1));
        for (uint256 i; i < output.length; ++i) {
            output[i] = bound(output[i], -half, half - 1);
        }
        uint256[] memory instances = coordinator.privateInstances(bits, requestId, who, bytes32(c), output);
        assertEq(
            instances, InstanceEncoding.privateInstances(bits, address(coordinator), requestId, who, bytes32(c), output)
        );
        for (uint256 i; i < instances.length; ++i) {
            assertLt(instances[i], R);
        }
    }

    function test_privateInstances_revertsWithoutACanonicalEncoding() public {
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.InvalidValueBits.selector, 0));
        coordinator.privateInstances(0, 1, prover, commitment, _output());
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.CommitmentNotInField.selector, bytes32(R)));
        coordinator.privateInstances(VALUE_BITS, 1, prover, bytes32(R), _output());
        int256[] memory output = _output();
        output[1] = 1 << 15;
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.ValueOutOfRange.selector, output[1], VALUE_BITS));
        coordinator.privateInstances(VALUE_BITS, 1, prover, commitment, output);
    }

    /// A proof for another commitment (another input or salt) does not open this request's C.
    function test_fulfillPrivateInference_revertsForAProofOfAnotherCommitment() public {
        uint256 id = _requestPrivate();
        bytes32 other = bytes32(uint256(commitment) + 1);
        bytes memory proof = _provePrivate(id, prover, other, _output());
        vm.expectRevert(IInferenceCoordinator.InvalidProof.selector);
        vm.prank(prover);
        coordinator.fulfillPrivateInference(id, _output(), proof);
    }

    function test_fulfillPrivateInference_revertsForAnOutputTheProofIsNotFor() public {
        uint256 id = _requestPrivate();
        bytes memory proof = _provePrivate(id, prover, commitment, _output());
        int256[] memory other = _output();
        other[1] += 1;
        vm.expectRevert(IInferenceCoordinator.InvalidProof.selector);
        vm.prank(prover);
        coordinator.fulfillPrivateInference(id, other, proof);
    }

    /// A proof bound to another fulfiller does not verify for the named prover.
    function test_fulfillPrivateInference_revertsForAProofBoundToAnotherFulfiller() public {
        uint256 id = _requestPrivate();
        bytes memory proof = _provePrivate(id, stranger, commitment, _output());
        vm.expectRevert(IInferenceCoordinator.InvalidProof.selector);
        vm.prank(prover);
        coordinator.fulfillPrivateInference(id, _output(), proof);
    }

    /// Only the named prover fulfils, even with a proof bound to the caller.
    function test_fulfillPrivateInference_revertsForAnyoneButTheNamedProver() public {
        uint256 id = _requestPrivate();
        bytes memory proof = _provePrivate(id, stranger, commitment, _output());
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.NotNamedProver.selector, id, stranger));
        vm.prank(stranger);
        coordinator.fulfillPrivateInference(id, _output(), proof);
        bytes memory proverProof = _provePrivate(id, prover, commitment, _output());
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.NotNamedProver.selector, id, fulfiller));
        vm.prank(fulfiller);
        coordinator.fulfillPrivateInference(id, _output(), proverProof);
    }

    function test_fulfillPrivateInference_revertsForAPublicRequest() public {
        uint256 id = _request();
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.NotPrivateRequest.selector, id));
        vm.prank(prover);
        coordinator.fulfillPrivateInference(id, _output(), hex"");
    }

    /// The public path cannot fulfil a private request, whatever input it is given.
    function test_fulfillInference_revertsForAPrivateRequest() public {
        uint256 id = _requestPrivate();
        bytes memory proof = _prove(id, prover, _input(), _output());
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.PrivateRequest.selector, id));
        vm.prank(prover);
        coordinator.fulfillInference(id, _input(), _output(), proof);
    }

    function test_fulfillPrivateInference_revertsOnReplay() public {
        uint256 id = _requestPrivate();
        bytes memory proof = _provePrivate(id, prover, commitment, _output());
        vm.prank(prover);
        coordinator.fulfillPrivateInference(id, _output(), proof);
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.RequestNotPending.selector, id));
        vm.prank(prover);
        coordinator.fulfillPrivateInference(id, _output(), proof);
        assertEq(coordinator.withdrawable(prover), FEE);
    }

    /// Two requests with the same commitment (the same input and salt sent twice): the binding ties a
    /// proof to its request.
    function test_fulfillPrivateInference_revertsForTheProofOfAnotherRequestWithTheSameCommitment() public {
        uint256 first = _requestPrivate();
        uint256 second = _requestPrivate();
        bytes memory proof = _provePrivate(first, prover, commitment, _output());
        vm.expectRevert(IInferenceCoordinator.InvalidProof.selector);
        vm.prank(prover);
        coordinator.fulfillPrivateInference(second, _output(), proof);
        vm.prank(prover);
        coordinator.fulfillPrivateInference(first, _output(), proof);
    }

    function test_fulfillPrivateInference_revertsForUnknownRequest() public {
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.RequestNotPending.selector, 9));
        vm.prank(prover);
        coordinator.fulfillPrivateInference(9, _output(), hex"");
    }

    function test_fulfillPrivateInference_checksTheOutput() public {
        uint256 id = _requestPrivate();
        int256[] memory output = _output();
        output[2] = OUTPUT_MAX + 1;
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.OutputOutOfRange.selector, 2, OUTPUT_MAX + 1));
        vm.prank(prover);
        coordinator.fulfillPrivateInference(id, output, hex"");
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.InvalidOutputLength.selector, OUTPUT_LEN, 1));
        vm.prank(prover);
        coordinator.fulfillPrivateInference(id, new int256[](1), hex"");
    }

    /// A ciphertext the prover cannot open leaves the request unfulfilled: after the deadline it can no
    /// longer be fulfilled, and the requester is refunded in full.
    function test_cancelRequest_refundsAnExpiredPrivateRequest() public {
        uint256 id = _requestPrivate();
        uint48 deadline = coordinator.getRequest(id).deadline;
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.RequestNotExpired.selector, id, deadline));
        vm.prank(requester);
        coordinator.cancelRequest(id);

        vm.warp(uint256(deadline) + 1);
        bytes memory proof = _provePrivate(id, prover, commitment, _output());
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.RequestExpired.selector, id));
        vm.prank(prover);
        coordinator.fulfillPrivateInference(id, _output(), proof);

        vm.expectEmit(address(coordinator));
        emit IInferenceCoordinator.RequestCancelled(id, requester, FEE);
        vm.prank(requester);
        coordinator.cancelRequest(id);
        assertEq(coordinator.withdrawable(requester), FEE);
        vm.expectRevert(abi.encodeWithSelector(IInferenceCoordinator.RequestNotPending.selector, id));
        vm.prank(prover);
        coordinator.fulfillPrivateInference(id, _output(), proof);
    }

    function test_fulfillPrivateInference_callsTheRequesterBack() public {
        RecordingConsumer consumer = new RecordingConsumer(coordinator);
        vm.deal(address(consumer), FEE);
        vm.prank(address(consumer));
        uint256 id = coordinator.requestPrivateInference{value: FEE}(
            privateListingId, commitment, prover, proverKey, _ciphertext(), 200_000, FEE
        );
        bytes memory proof = _provePrivate(id, prover, commitment, _output());
        vm.expectEmit(address(coordinator));
        emit IInferenceCoordinator.CallbackResult(id, true);
        vm.prank(prover);
        coordinator.fulfillPrivateInference(id, _output(), proof);
        assertEq(consumer.calls(), 1);
        assertEq(consumer.lastRequestId(), id);
        assertEq(consumer.lastOutput(), _output());
        assertTrue(coordinator.getRequest(id).callbackSucceeded);
    }
}
