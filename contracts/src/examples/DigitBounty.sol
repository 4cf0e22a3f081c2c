// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {IInferenceCoordinator} from "../interfaces/IInferenceCoordinator.sol";
import {IInferenceConsumer} from "../interfaces/IInferenceConsumer.sol";

/// @title DigitBounty
/// @notice Example consumer: pays its bounty to the first person whose 8x8 image a proven digit classifier
/// labels as `targetDigit`. The submitter pays the inference fee; the label is the argmax of the model's
/// ten logits, computed here from the proven output.
contract DigitBounty is IInferenceConsumer {
    /// @notice Gas this contract asks for its callback: the argmax and one ETH transfer.
    uint32 public constant CALLBACK_GAS = 100_000;

    IInferenceCoordinator public immutable coordinator;
    bytes32 public immutable modelId;
    uint8 public immutable targetDigit;

    /// @notice The bounty still to be won; zero once paid.
    uint256 public bounty;
    /// @notice Who submitted the image of each request this contract made.
    mapping(uint256 requestId => address) public submitterOf;

    error NotCoordinator(address caller);
    error NotADigitClassifier(uint32 outputLen);
    error InvalidTargetDigit(uint8 digit);
    error BountyAlreadyPaid();
    error NotSubmitter(uint256 requestId, address caller);
    error PayoutFailed(address to, uint256 amount);

    event Submitted(uint256 indexed requestId, address indexed submitter);
    event Classified(uint256 indexed requestId, address indexed submitter, uint256 digit);
    event BountyPaid(uint256 indexed requestId, address indexed winner, uint256 amount);
    event Reclaimed(uint256 indexed requestId, address indexed submitter, uint256 refund);

    /// @param coordinator_ The coordinator the model is registered on.
    /// @param modelId_ A digit classifier: ten outputs, one logit per digit.
    /// @param targetDigit_ The digit that wins, 0 to 9.
    constructor(IInferenceCoordinator coordinator_, bytes32 modelId_, uint8 targetDigit_) payable {
        uint32 outputLen = coordinator_.getModel(modelId_).encoding.outputLen;
        if (outputLen != 10) revert NotADigitClassifier(outputLen);
        if (targetDigit_ > 9) revert InvalidTargetDigit(targetDigit_);
        coordinator = coordinator_;
        modelId = modelId_;
        targetDigit = targetDigit_;
        bounty = msg.value;
    }

    /// @notice Submits an image (the model's quantized input) for classification. Send exactly
    /// `coordinator.quote(modelId, CALLBACK_GAS)`.
    function submit(int256[] calldata pixels) external payable returns (uint256 requestId) {
        if (bounty == 0) revert BountyAlreadyPaid();
        requestId = coordinator.requestInference{value: msg.value}(modelId, pixels, CALLBACK_GAS);
        submitterOf[requestId] = msg.sender;
        emit Submitted(requestId, msg.sender);
    }

    /// @inheritdoc IInferenceConsumer
    function onInferenceResult(uint256 requestId, int256[] calldata output) external {
        if (msg.sender != address(coordinator)) revert NotCoordinator(msg.sender);
        address submitter = submitterOf[requestId];
        uint256 digit = argmax(output);
        emit Classified(requestId, submitter, digit);
        uint256 amount = bounty;
        if (digit != targetDigit || amount == 0) return;
        bounty = 0;
        emit BountyPaid(requestId, submitter, amount);
        // A submitter that refuses ETH only loses its own win: the revert undoes `bounty = 0`.
        (bool sent,) = submitter.call{value: amount}("");
        if (!sent) revert PayoutFailed(submitter, amount);
    }

    /// @notice Cancels the caller's expired, unfulfilled request and returns the fee to the caller.
    function reclaim(uint256 requestId) external {
        if (submitterOf[requestId] != msg.sender) revert NotSubmitter(requestId, msg.sender);
        uint256 refund = coordinator.getRequest(requestId).payment;
        coordinator.cancelRequest(requestId);
        // This contract's coordinator balance only ever holds the refund just credited.
        if (refund != 0) coordinator.withdraw(payable(msg.sender));
        emit Reclaimed(requestId, msg.sender, refund);
    }

    /// @notice Index of the largest logit; the lowest index wins a tie.
    function argmax(int256[] calldata logits) public pure returns (uint256 best) {
        for (uint256 i = 1; i < logits.length; ++i) {
            if (logits[i] > logits[best]) best = i;
        }
    }
}
