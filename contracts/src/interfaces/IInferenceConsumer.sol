// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

/// @title IInferenceConsumer
/// @notice Implemented by contracts that request inferences with a callback.
interface IInferenceConsumer {
    /// @notice Called by the coordinator once a request of this contract has been fulfilled with a valid proof.
    /// @dev Runs with exactly the `callbackGasLimit` of the request. A revert or out-of-gas here is recorded
    /// (`callbackSucceeded = false`) and does not undo the fulfilment: the output stays readable through
    /// `IInferenceCoordinator.getResult`. Implementations must check that `msg.sender` is the coordinator.
    /// While this runs the coordinator is locked: calls back into `requestInference`, `fulfillInference`,
    /// `cancelRequest` or `withdraw` revert with `Reentrancy()`.
    /// @param requestId The id returned by `requestInference`.
    /// @param output The proven output, in the model's fixed-point scale (`2^outputScaleBits`).
    function onInferenceResult(uint256 requestId, int256[] calldata output) external;
}
