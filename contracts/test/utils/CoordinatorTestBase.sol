// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {Test} from "forge-std/Test.sol";
import {InferenceCoordinator} from "../../src/InferenceCoordinator.sol";
import {IInferenceCoordinator} from "../../src/interfaces/IInferenceCoordinator.sol";
import {MockVerifier, ProofBook} from "../mocks/MockVerifier.sol";
import {InstanceEncoding} from "./InstanceEncoding.sol";

/// @notice A coordinator with one registered model served by a MockVerifier and one listing of it, and
/// helpers that build the verifier calldata independently of the coordinator's own encoder.
abstract contract CoordinatorTestBase is Test {
    uint256 internal constant R = InstanceEncoding.R;

    uint32 internal constant INPUT_LEN = 4;
    uint32 internal constant OUTPUT_LEN = 3;
    uint8 internal constant INPUT_SCALE_BITS = 4;
    uint8 internal constant OUTPUT_SCALE_BITS = 8;
    uint8 internal constant VALUE_BITS = 16;
    int64 internal constant INPUT_MIN = -8;
    int64 internal constant INPUT_MAX = 8;
    int64 internal constant OUTPUT_MIN = -1000;
    int64 internal constant OUTPUT_MAX = 1000;
    uint96 internal constant FEE = 0.01 ether;
    uint64 internal constant DEADLINE_SECONDS = 1 hours;
    /// @dev The calldata every mock verifier is shown at registration (MockVerifier accepts it once booked).
    bytes internal constant SAMPLE = "sample proof";

    InferenceCoordinator internal coordinator;
    ProofBook internal book;
    MockVerifier internal verifier;
    bytes32 internal modelId;
    uint256 internal listingId;

    address internal listingOwner = makeAddr("listingOwner");
    address internal requester = makeAddr("requester");
    address internal fulfiller = makeAddr("fulfiller");
    address internal stranger = makeAddr("stranger");

    function setUp() public virtual {
        coordinator = new InferenceCoordinator();
        book = new ProofBook();
        book.accept(SAMPLE);
        verifier = _mockVerifier(_defaultEncoding());
        modelId = _register(address(verifier), _defaultEncoding());
        listingId = _list(modelId);
        vm.deal(requester, 100 ether);
    }

    /// A mock verifier generated for `encoding`.
    function _mockVerifier(IInferenceCoordinator.ModelEncoding memory encoding) internal returns (MockVerifier) {
        return new MockVerifier(book, coordinator.computeEncodingHash(encoding));
    }

    function _register(address verifier_, IInferenceCoordinator.ModelEncoding memory encoding)
        internal
        returns (bytes32)
    {
        return coordinator.registerModel(verifier_, encoding, SAMPLE);
    }

    /// A mock verifier for `encoding`, registered.
    function _registerNew(IInferenceCoordinator.ModelEncoding memory encoding) internal returns (bytes32) {
        return _register(address(_mockVerifier(encoding)), encoding);
    }

    /// Lists `modelId_` as listingOwner with the default fee and window.
    function _list(bytes32 modelId_) internal returns (uint256) {
        vm.prank(listingOwner);
        return coordinator.createListing(modelId_, FEE, DEADLINE_SECONDS);
    }

    /// The encoding every default test model is registered with.
    function _defaultEncoding() internal pure returns (IInferenceCoordinator.ModelEncoding memory) {
        return IInferenceCoordinator.ModelEncoding(
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
        );
    }

    /// The default encoding with the input committed (a model that takes private requests only).
    function _committedEncoding() internal pure returns (IInferenceCoordinator.ModelEncoding memory encoding) {
        encoding = _defaultEncoding();
        encoding.inputCommitted = true;
    }

    function _input() internal pure returns (int256[] memory input) {
        input = new int256[](INPUT_LEN);
        input[0] = 3;
        input[1] = -8;
        input[2] = 0;
        input[3] = 8;
    }

    function _output() internal pure returns (int256[] memory output) {
        output = new int256[](OUTPUT_LEN);
        output[0] = -1000;
        output[1] = 7;
        output[2] = 1000;
    }

    function _request() internal returns (uint256) {
        return _requestAs(requester, _input(), 0);
    }

    function _requestAs(address who, int256[] memory input, uint32 callbackGasLimit) internal returns (uint256) {
        vm.prank(who);
        return coordinator.requestInference{value: FEE}(listingId, input, callbackGasLimit, FEE);
    }

    function _expectedInstances(uint256 requestId, address who, int256[] memory input, int256[] memory output)
        internal
        view
        returns (uint256[] memory)
    {
        return InstanceEncoding.instances(VALUE_BITS, address(coordinator), requestId, who, input, output);
    }

    /// @dev A "proof" the mock verifier accepts for exactly this request, fulfiller, input and output.
    function _prove(uint256 requestId, address who, int256[] memory input, int256[] memory output)
        internal
        returns (bytes memory proof)
    {
        proof = abi.encodePacked("proof", requestId, who);
        book.accept(
            InstanceEncoding.verifierCalldata(VALUE_BITS, address(coordinator), requestId, who, input, output, proof)
        );
    }

    function _fulfil(uint256 requestId, address who, int256[] memory input, int256[] memory output) internal {
        bytes memory proof = _prove(requestId, who, input, output);
        vm.prank(who);
        coordinator.fulfillInference(requestId, input, output, proof);
    }

    function _status(uint256 requestId) internal view returns (IInferenceCoordinator.RequestStatus) {
        return coordinator.getRequest(requestId).status;
    }
}
