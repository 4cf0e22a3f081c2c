// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {IInferenceCoordinator} from "../interfaces/IInferenceCoordinator.sol";
import {IInferenceConsumer} from "../interfaces/IInferenceConsumer.sol";

/// @title InferenceConsumerBase
/// @notice A base for contracts that request inferences from an InferenceCoordinator and take the result in
/// a callback. It accepts the callback from its coordinator only, and has helpers to request with a fee cap,
/// to cancel an expired request and to take refunds out.
///
/// @dev Implement `_onInferenceResult`. It runs with exactly the callback gas limit of the request; if it
/// reverts or runs out of gas the request still counts as fulfilled (the coordinator records
/// `callbackSucceeded = false` and keeps the output readable with `getResult`), so keep it small and do
/// not rely on it for refunds. While it runs the coordinator is locked: do not request, cancel or
/// withdraw from inside it.
///
/// Money. `_requestInference` pays the listing's fee from this contract's balance: forward `msg.value` from
/// the function that calls it, or fund the contract first. Refunds of cancelled requests are credited to
/// this contract's balance in the coordinator; `_withdrawFromCoordinator` sends them on.
abstract contract InferenceConsumerBase is IInferenceConsumer {
    /// @notice The only account whose callbacks are accepted and which requests are sent to.
    IInferenceCoordinator public immutable coordinator;

    /// @notice `onInferenceResult` was called by another account than the coordinator.
    error NotCoordinator(address caller);
    /// @notice The listing's fee is above the most this contract agreed to pay.
    error FeeAboveMax(uint256 listingId, uint256 fee, uint256 maxFee);
    /// @notice This contract holds less than the fee it must pay.
    error InsufficientBalance(uint256 balance, uint256 fee);

    constructor(IInferenceCoordinator coordinator_) {
        coordinator = coordinator_;
    }

    /// @inheritdoc IInferenceConsumer
    /// @dev Reverts with NotCoordinator unless called by `coordinator`; then calls `_onInferenceResult`.
    function onInferenceResult(uint256 requestId, int256[] calldata output) external {
        if (msg.sender != address(coordinator)) revert NotCoordinator(msg.sender);
        _onInferenceResult(requestId, output);
    }

    /// @notice Handles the proven output of one of this contract's requests (see the contract's notes).
    function _onInferenceResult(uint256 requestId, int256[] calldata output) internal virtual;

    /// @notice Requests an inference through `listingId`, paying the listing's current fee, at most `maxFee`,
    /// from this contract's balance.
    /// @dev Check once (in the constructor, say) that `coordinator.getListing(listingId).modelId` is the model
    /// you trust: a listing's model never changes, its fee may. The coordinator checks `maxFee` again
    /// in the same transaction.
    /// @param callbackGasLimit Gas for `_onInferenceResult`, at most `coordinator.MAX_CALLBACK_GAS()`; zero for
    /// no callback (read the output with `coordinator.getResult`).
    /// @return requestId The coordinator's id of the request.
    /// @return fee What was paid.
    function _requestInference(uint256 listingId, int256[] memory input, uint32 callbackGasLimit, uint256 maxFee)
        internal
        returns (uint256 requestId, uint256 fee)
    {
        fee = _affordableFee(listingId, callbackGasLimit, maxFee);
        requestId = coordinator.requestInference{value: fee}(listingId, input, callbackGasLimit, maxFee);
    }

    /// @notice Requests an inference of a committed-input model on a private input through `listingId`,
    /// paying as `_requestInference` does; only `prover` can fulfil it.
    /// @dev Make `commitment` and `ciphertext` off-chain (`prover-node` has a command for it) with this
    /// contract as the requester: the ciphertext is bound to the chain, coordinator, requester, model and
    /// commitment. Encrypt to `coordinator.encryptionKeyOf(prover)` and pass that key as `encryptionKey`:
    /// if the prover rotates its key first, the request reverts (EncryptionKeyMismatch) rather than naming
    /// a prover who cannot read it.
    /// @return requestId The coordinator's id of the request.
    /// @return fee What was paid.
    function _requestPrivateInference(
        uint256 listingId,
        bytes32 commitment,
        address prover,
        bytes32 encryptionKey,
        bytes memory ciphertext,
        uint32 callbackGasLimit,
        uint256 maxFee
    ) internal returns (uint256 requestId, uint256 fee) {
        fee = _affordableFee(listingId, callbackGasLimit, maxFee);
        requestId = coordinator.requestPrivateInference{value: fee}(
            listingId, commitment, prover, encryptionKey, ciphertext, callbackGasLimit, maxFee
        );
    }

    /// @dev The listing's current fee, checked to be at most `maxFee` and within this contract's balance.
    function _affordableFee(uint256 listingId, uint32 callbackGasLimit, uint256 maxFee)
        private
        view
        returns (uint256 fee)
    {
        fee = coordinator.quote(listingId, callbackGasLimit);
        if (fee > maxFee) revert FeeAboveMax(listingId, fee, maxFee);
        if (address(this).balance < fee) revert InsufficientBalance(address(this).balance, fee);
    }

    /// @notice Cancels this contract's pending request after its deadline; the payment is credited to this
    /// contract's balance in the coordinator (take it out with `_withdrawFromCoordinator`).
    /// @dev Reverts as the coordinator does: RequestNotPending, NotRequester or RequestNotExpired.
    /// @return refund The payment credited.
    function _cancelRequest(uint256 requestId) internal returns (uint256 refund) {
        refund = coordinator.getRequest(requestId).payment;
        coordinator.cancelRequest(requestId);
    }

    /// @notice Sends this contract's whole balance in the coordinator (refunds) to `to`; does nothing if
    /// it is zero. `to` may be this contract only if it can receive ETH.
    /// @return amount What was sent.
    function _withdrawFromCoordinator(address payable to) internal returns (uint256 amount) {
        amount = coordinator.withdrawable(address(this));
        if (amount != 0) coordinator.withdraw(to);
    }
}
