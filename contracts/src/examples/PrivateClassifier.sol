// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {IInferenceCoordinator} from "../interfaces/IInferenceCoordinator.sol";
import {InferenceConsumerBase} from "../consumer/InferenceConsumerBase.sol";

/// @title PrivateClassifier
/// @notice A consumer of a committed-input classifier: anyone submits a private request (the commitment and
/// the envelope made off-chain for this contract as the requester), and the verified class is recorded
/// per request. The input never reaches the chain; what does is listed in IInferenceCoordinator's
/// "Private requests".
/// @dev The envelope's associated data names the requester, so it must be sealed for this contract's
/// address (`prover-node seal-input --requester <this>`): a ciphertext taken from someone else's request
/// does not open for the prover.
contract PrivateClassifier is InferenceConsumerBase {
    /// @notice Gas this contract asks for its callback: an argmax over the logits and two stores.
    uint32 public constant CALLBACK_GAS = 100_000;

    /// @notice The listing every request goes through (its model is committed-input).
    uint256 public immutable listingId;

    /// @notice Who submitted each request.
    mapping(uint256 requestId => address submitter) public submitterOf;
    /// @notice The verified class of each fulfilled request, plus one (zero: not yet classified).
    mapping(uint256 requestId => uint256 classPlusOne) public classPlusOneOf;

    /// @notice `classOf` was asked for a request that is not fulfilled yet.
    error NotClassified(uint256 requestId);

    event Submitted(uint256 indexed requestId, address indexed submitter, bytes32 commitment);
    event Classified(uint256 indexed requestId, uint256 predictedClass);

    constructor(IInferenceCoordinator coordinator_, uint256 listingId_) InferenceConsumerBase(coordinator_) {
        listingId = listingId_;
    }

    /// @notice Requests a private inference on the input behind `commitment`, paying the listing's fee
    /// (send it as msg.value; at most `maxFee`).
    /// @param prover The prover whose encryption key sealed `ciphertext` (only it can fulfil).
    /// @param encryptionKey That prover's registered key, as read when sealing.
    function submit(
        bytes32 commitment,
        address prover,
        bytes32 encryptionKey,
        bytes calldata ciphertext,
        uint256 maxFee
    ) external payable returns (uint256 requestId) {
        (requestId,) = _requestPrivateInference(
            listingId, commitment, prover, encryptionKey, ciphertext, CALLBACK_GAS, maxFee
        );
        submitterOf[requestId] = msg.sender;
        emit Submitted(requestId, msg.sender, commitment);
    }

    /// @notice The verified class of `requestId`; reverts if it is not classified yet.
    function classOf(uint256 requestId) external view returns (uint256) {
        uint256 c = classPlusOneOf[requestId];
        if (c == 0) revert NotClassified(requestId);
        return c - 1;
    }

    function _onInferenceResult(uint256 requestId, int256[] calldata output) internal override {
        uint256 best;
        for (uint256 i = 1; i < output.length; ++i) {
            if (output[i] > output[best]) best = i;
        }
        classPlusOneOf[requestId] = best + 1;
        emit Classified(requestId, best);
    }
}
