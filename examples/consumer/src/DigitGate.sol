// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {IInferenceCoordinator} from "@zkinfer/contracts/interfaces/IInferenceCoordinator.sol";
import {InferenceConsumerBase} from "@zkinfer/contracts/consumer/InferenceConsumerBase.sol";

/// Lets in whoever shows an 8x8 image that the digits model labels 7.
contract DigitGate is InferenceConsumerBase {
    uint32 public constant CALLBACK_GAS = 60_000;
    uint256 public immutable listingId;
    mapping(uint256 requestId => address) public asker;
    mapping(address => bool) public allowed;

    error NotADigitClassifier();
    error WrongPayment(uint256 fee, uint256 sent);

    /// `listingId_`: a listing of the digits model (check its model id against the model card you trust).
    constructor(IInferenceCoordinator coordinator_, uint256 listingId_) InferenceConsumerBase(coordinator_) {
        bytes32 modelId = coordinator_.getListing(listingId_).modelId;
        if (coordinator_.getModel(modelId).encoding.outputLen != 10) revert NotADigitClassifier();
        listingId = listingId_;
    }

    /// pixels: 64 values 0..16 (the model's input scale is 2^4: pixel/16 in fixed point). Send the fee,
    /// `coordinator.quote(listingId, CALLBACK_GAS)`; msg.value is also the most this request may cost.
    function ask(int256[] calldata pixels) external payable returns (uint256 requestId) {
        uint256 fee;
        (requestId, fee) = _requestInference(listingId, pixels, CALLBACK_GAS, msg.value);
        if (fee != msg.value) revert WrongPayment(fee, msg.value);
        asker[requestId] = msg.sender;
    }

    /// The asker takes the fee back if no node fulfilled the request by its deadline.
    function reclaim(uint256 requestId) external {
        require(asker[requestId] == msg.sender, "not your request");
        _cancelRequest(requestId);
        // The refund just credited is all this contract's coordinator balance ever holds.
        _withdrawFromCoordinator(payable(msg.sender));
    }

    /// Runs only for the coordinator, after the proof verified, with exactly CALLBACK_GAS.
    function _onInferenceResult(uint256 requestId, int256[] calldata logits) internal override {
        uint256 best;
        for (uint256 i = 1; i < logits.length; ++i) {
            if (logits[i] > logits[best]) best = i;
        }
        if (best == 7) allowed[asker[requestId]] = true;
    }
}
