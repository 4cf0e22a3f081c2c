// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {Test} from "forge-std/Test.sol";
import {InferenceCoordinator} from "../../src/InferenceCoordinator.sol";
import {IInferenceCoordinator} from "../../src/interfaces/IInferenceCoordinator.sol";
import {MockVerifier, ProofBook} from "../mocks/MockVerifier.sol";
import {InstanceEncoding} from "./InstanceEncoding.sol";

/// @notice A coordinator with one registered model served by a MockVerifier, and helpers that build the
/// verifier calldata independently of the coordinator's own encoder.
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

    InferenceCoordinator internal coordinator;
    ProofBook internal book;
    MockVerifier internal verifier;
    bytes32 internal modelId;

    address internal modelOwner = makeAddr("modelOwner");
    address internal requester = makeAddr("requester");
    address internal fulfiller = makeAddr("fulfiller");
    address internal stranger = makeAddr("stranger");

    function setUp() public virtual {
        coordinator = new InferenceCoordinator();
        book = new ProofBook();
        verifier = new MockVerifier(book);
        modelId = _registerDefault(address(verifier));
        vm.deal(requester, 100 ether);
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
            OUTPUT_MAX
        );
    }

    function _registerDefault(address verifier_) internal returns (bytes32) {
        vm.prank(modelOwner);
        return coordinator.registerModel(verifier_, _defaultEncoding(), FEE, DEADLINE_SECONDS);
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
        return coordinator.requestInference{value: FEE}(modelId, input, callbackGasLimit);
    }

    function _expectedInstances(uint256 requestId, address who, int256[] memory input, int256[] memory output)
        internal
        pure
        returns (uint256[] memory)
    {
        return InstanceEncoding.instances(VALUE_BITS, requestId, who, input, output);
    }

    /// @dev A "proof" the mock verifier accepts for exactly this request, fulfiller, input and output.
    function _prove(uint256 requestId, address who, int256[] memory input, int256[] memory output)
        internal
        returns (bytes memory proof)
    {
        proof = abi.encodePacked("proof", requestId, who);
        book.accept(InstanceEncoding.verifierCalldata(VALUE_BITS, requestId, who, input, output, proof));
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
