// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {CoordinatorTestBase} from "./utils/CoordinatorTestBase.sol";
import {IInferenceCoordinator} from "../src/interfaces/IInferenceCoordinator.sol";
import {
    ConsumerBase,
    GasBurningConsumer,
    GasMeteringConsumer,
    RecordingConsumer,
    ReentrantConsumer,
    ReturnBombConsumer,
    RevertingConsumer
} from "./mocks/Consumers.sol";

/// @notice Withdraws to itself and, when paid, tries to withdraw again from inside the transfer.
contract ReentrantRecipient {
    IInferenceCoordinator public immutable coordinator;
    bytes public reentryError;
    uint256 public received;

    constructor(IInferenceCoordinator coordinator_) {
        coordinator = coordinator_;
    }

    function withdraw() external {
        coordinator.withdraw(payable(address(this)));
    }

    receive() external payable {
        received += msg.value;
        try coordinator.withdraw(payable(address(this))) {}
        catch (bytes memory err) {
            reentryError = err;
        }
    }
}

/// @notice Measures, from inside a contract (so never as a top-level call, which `forge test --gas-report`
/// runs as a transaction of its own), the gas a consumer sees on entry when called with exactly `limit`.
contract EntryGasProbe {
    function gasAtEntry(IInferenceCoordinator coordinator, uint256 limit, uint256 requestId, int256[] calldata output)
        external
        returns (uint256)
    {
        GasMeteringConsumer consumer = new GasMeteringConsumer(coordinator);
        consumer.onInferenceResult{gas: limit}(requestId, output);
        return consumer.gasAtEntry();
    }
}

/// @notice Callbacks: delivery, exact gas, and consumers that revert, burn gas, return-bomb or re-enter.
contract CallbacksTest is CoordinatorTestBase {
    uint32 internal constant CALLBACK_GAS = 200_000;

    function _requestFrom(ConsumerBase consumer, uint32 callbackGasLimit) internal returns (uint256) {
        vm.prank(requester);
        return consumer.request{value: FEE}(listingId, _input(), callbackGasLimit);
    }

    function _assertFulfilledAndPaid(uint256 id, bool callbackSucceeded) internal view {
        IInferenceCoordinator.Request memory r = coordinator.getRequest(id);
        assertEq(uint8(r.status), uint8(IInferenceCoordinator.RequestStatus.Fulfilled));
        assertEq(r.fulfiller, fulfiller);
        assertEq(r.callbackSucceeded, callbackSucceeded);
        (, int256[] memory output, bool succeeded) = coordinator.getResult(id);
        assertEq(output, _output());
        assertEq(succeeded, callbackSucceeded);
        assertEq(coordinator.withdrawable(fulfiller), FEE);
    }

    function test_fulfillInference_deliversOutputToConsumer() public {
        RecordingConsumer consumer = new RecordingConsumer(coordinator);
        uint256 id = _requestFrom(consumer, CALLBACK_GAS);
        bytes memory proof = _prove(id, fulfiller, _input(), _output());
        vm.expectEmit(address(coordinator));
        emit IInferenceCoordinator.InferenceFulfilled(id, fulfiller, _output());
        vm.expectEmit(address(coordinator));
        emit IInferenceCoordinator.CallbackResult(id, true);
        vm.prank(fulfiller);
        coordinator.fulfillInference(id, _input(), _output(), proof);

        assertEq(consumer.calls(), 1);
        assertEq(consumer.lastRequestId(), id);
        assertEq(consumer.lastOutput(), _output());
        _assertFulfilledAndPaid(id, true);
    }

    function test_fulfillInference_skipsCallbackWhenLimitIsZero() public {
        RecordingConsumer consumer = new RecordingConsumer(coordinator);
        uint256 id = _requestFrom(consumer, 0);
        _fulfil(id, fulfiller, _input(), _output());
        assertEq(consumer.calls(), 0);
        _assertFulfilledAndPaid(id, false);
    }

    /// An account without code cannot take a callback: it is reported failed, and needs no gas budget.
    function test_fulfillInference_reportsFailedCallbackForAccountWithoutCode() public {
        uint256 id = _requestAs(requester, _input(), coordinator.MAX_CALLBACK_GAS());
        bytes memory proof = _prove(id, fulfiller, _input(), _output());
        vm.expectEmit(address(coordinator));
        emit IInferenceCoordinator.CallbackResult(id, false);
        vm.prank(fulfiller);
        coordinator.fulfillInference{gas: 300_000}(id, _input(), _output(), proof);
        _assertFulfilledAndPaid(id, false);
    }

    function test_fulfillInference_keepsFulfilmentWhenCallbackReverts() public {
        RevertingConsumer consumer = new RevertingConsumer(coordinator);
        uint256 id = _requestFrom(consumer, CALLBACK_GAS);
        bytes memory proof = _prove(id, fulfiller, _input(), _output());
        vm.expectEmit(address(coordinator));
        emit IInferenceCoordinator.CallbackResult(id, false);
        vm.prank(fulfiller);
        coordinator.fulfillInference(id, _input(), _output(), proof);
        _assertFulfilledAndPaid(id, false);
    }

    function test_fulfillInference_keepsFulfilmentWhenCallbackBurnsAllGas() public {
        uint32 limit = coordinator.MAX_CALLBACK_GAS();
        GasBurningConsumer consumer = new GasBurningConsumer(coordinator);
        uint256 id = _requestFrom(consumer, limit);
        bytes memory proof = _prove(id, fulfiller, _input(), _output());
        vm.prank(fulfiller);
        uint256 before = gasleft();
        coordinator.fulfillInference(id, _input(), _output(), proof);
        uint256 used = before - gasleft();
        _assertFulfilledAndPaid(id, false);
        // The consumer took its limit and no more.
        assertGe(used, limit);
        assertLt(used, uint256(limit) + 150_000);
    }

    /// A consumer reverting with ~600 KB costs the fulfiller nothing extra: the coordinator copies no
    /// return data (copying it would cost ~700k gas of memory expansion).
    function test_fulfillInference_ignoresReturnDataBomb() public {
        uint32 limit = coordinator.MAX_CALLBACK_GAS();
        RevertingConsumer plain = new RevertingConsumer(coordinator);
        ReturnBombConsumer bomb = new ReturnBombConsumer(coordinator, 600_000);
        uint256 plainId = _requestFrom(plain, limit);
        uint256 bombId = _requestFrom(bomb, limit);
        bytes memory plainProof = _prove(plainId, fulfiller, _input(), _output());
        bytes memory bombProof = _prove(bombId, fulfiller, _input(), _output());

        vm.prank(fulfiller);
        uint256 before = gasleft();
        coordinator.fulfillInference(plainId, _input(), _output(), plainProof);
        uint256 plainUsed = before - gasleft();

        vm.prank(fulfiller);
        before = gasleft();
        coordinator.fulfillInference(bombId, _input(), _output(), bombProof);
        uint256 bombUsed = before - gasleft();

        (,, bool succeeded) = coordinator.getResult(bombId);
        assertFalse(succeeded);
        // The bomb pays for its own memory out of its callback gas; copying its 600 KB would cost the
        // coordinator another ~740k.
        assertLt(bombUsed, plainUsed + limit);
        assertLt(bombUsed, uint256(limit) + 150_000);
    }

    function test_fulfillInference_blocksReentryFromCallback() public {
        ReentrantConsumer consumer = new ReentrantConsumer(coordinator);
        // Without the lock, cancelling `other` (expired) and withdrawing (funded) would both succeed.
        uint256 other = _requestFrom(consumer, 0);
        vm.warp(coordinator.getRequest(other).deadline + 1);
        _fulfil(_requestFrom(consumer, 0), address(consumer), _input(), _output());
        uint256 id = _requestFrom(consumer, 500_000);
        consumer.arm(listingId, _input(), other);

        _fulfil(id, fulfiller, _input(), _output());

        bytes memory reentrancy = abi.encodeWithSelector(IInferenceCoordinator.Reentrancy.selector);
        assertTrue(consumer.called());
        assertEq(consumer.fulfillError(), reentrancy);
        assertEq(consumer.cancelError(), reentrancy);
        assertEq(consumer.withdrawError(), reentrancy);
        assertEq(consumer.requestError(), reentrancy);
        assertEq(consumer.privateFulfillError(), reentrancy);
        assertEq(consumer.privateRequestError(), reentrancy);
        _assertFulfilledAndPaid(id, true);
        assertEq(uint8(_status(other)), uint8(IInferenceCoordinator.RequestStatus.Pending));
        assertEq(coordinator.withdrawable(address(consumer)), FEE);
    }

    function test_withdraw_blocksReentryFromRecipient() public {
        ReentrantRecipient recipient = new ReentrantRecipient(coordinator);
        _fulfil(_request(), address(recipient), _input(), _output());
        recipient.withdraw();
        assertEq(recipient.received(), FEE);
        assertEq(recipient.reentryError(), abi.encodeWithSelector(IInferenceCoordinator.Reentrancy.selector));
        assertEq(coordinator.withdrawable(address(recipient)), 0);
        assertEq(address(coordinator).balance, 0);
    }

    function test_cancelRequest_refundsConsumerContract() public {
        RecordingConsumer consumer = new RecordingConsumer(coordinator);
        uint256 id = _requestFrom(consumer, CALLBACK_GAS);
        vm.warp(coordinator.getRequest(id).deadline + 1);
        consumer.cancel(id);
        assertEq(coordinator.withdrawable(address(consumer)), FEE);
        assertEq(consumer.calls(), 0);
    }

    // ------------------------------------------------------------------------------------------------
    // The 63/64 rule
    // ------------------------------------------------------------------------------------------------

    /// The gas a consumer sees on entry when called with exactly `limit` gas.
    function _gasAtEntryWith(uint256 limit, uint256 id) internal returns (uint256) {
        return new EntryGasProbe().gasAtEntry(coordinator, limit, id, _output());
    }

    function test_fulfillInference_givesCallbackExactlyItsGasLimit() public {
        GasMeteringConsumer consumer = new GasMeteringConsumer(coordinator);
        uint256 id = _requestFrom(consumer, CALLBACK_GAS);
        _fulfil(id, fulfiller, _input(), _output());
        assertEq(consumer.gasAtEntry(), _gasAtEntryWith(CALLBACK_GAS, id));
        assertGt(consumer.gasAtEntry(), CALLBACK_GAS - 2_000);
    }

    function test_fulfillInference_revertsWhenGasCannotCoverCallback() public {
        uint32 limit = coordinator.MAX_CALLBACK_GAS();
        GasMeteringConsumer consumer = new GasMeteringConsumer(coordinator);
        uint256 id = _requestFrom(consumer, limit);
        bytes memory proof = _prove(id, fulfiller, _input(), _output());

        vm.expectPartialRevert(IInferenceCoordinator.InsufficientGasForCallback.selector);
        vm.prank(fulfiller);
        coordinator.fulfillInference{gas: limit}(id, _input(), _output(), proof);
        assertEq(uint8(_status(id)), uint8(IInferenceCoordinator.RequestStatus.Pending));

        vm.prank(fulfiller);
        coordinator.fulfillInference{gas: limit + 200_000}(id, _input(), _output(), proof);
        assertEq(consumer.gasAtEntry(), _gasAtEntryWith(limit, id));
        _assertFulfilledAndPaid(id, true);
    }

    /// For any gas a fulfiller sends, either the fulfilment reverts or the callback got its whole limit.
    function testFuzz_fulfillInference_neverStarvesCallback(uint256 txGas, uint32 limit) public {
        limit = uint32(bound(limit, 30_000, coordinator.MAX_CALLBACK_GAS()));
        txGas = bound(txGas, 100_000, uint256(limit) + 300_000);
        GasMeteringConsumer consumer = new GasMeteringConsumer(coordinator);
        uint256 id = _requestFrom(consumer, limit);
        bytes memory proof = _prove(id, fulfiller, _input(), _output());

        vm.prank(fulfiller);
        try coordinator.fulfillInference{gas: txGas}(id, _input(), _output(), proof) {
            _assertFulfilledAndPaid(id, true);
            assertEq(consumer.gasAtEntry(), _gasAtEntryWith(limit, id), "callback starved");
        } catch (bytes memory err) {
            // Out of gas (no data) or the explicit check; never any other failure.
            if (err.length != 0) {
                assertEq(bytes4(err), IInferenceCoordinator.InsufficientGasForCallback.selector);
            }
            assertEq(consumer.gasAtEntry(), 0);
            assertEq(uint8(_status(id)), uint8(IInferenceCoordinator.RequestStatus.Pending));
        }
    }
}
