// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {IInferenceCoordinator} from "../../src/interfaces/IInferenceCoordinator.sol";
import {IInferenceConsumer} from "../../src/interfaces/IInferenceConsumer.sol";

/// @notice Requests through the coordinator so that it is the requester (and the callback target).
abstract contract ConsumerBase is IInferenceConsumer {
    IInferenceCoordinator public immutable coordinator;

    constructor(IInferenceCoordinator coordinator_) {
        coordinator = coordinator_;
    }

    function request(uint256 listingId, int256[] calldata input, uint32 callbackGasLimit)
        external
        payable
        returns (uint256)
    {
        return coordinator.requestInference{value: msg.value}(listingId, input, callbackGasLimit, msg.value);
    }

    function requestPrivate(
        uint256 listingId,
        bytes32 commitment,
        address prover,
        bytes calldata ciphertext,
        uint32 callbackGasLimit
    ) external payable returns (uint256) {
        return coordinator.requestPrivateInference{value: msg.value}(
            listingId, commitment, prover, coordinator.encryptionKeyOf(prover), ciphertext, callbackGasLimit, msg.value
        );
    }

    function cancel(uint256 requestId) external {
        coordinator.cancelRequest(requestId);
    }

    receive() external payable {}
}

/// @notice Records the result and the gas it was given (read first thing, before any other work).
contract RecordingConsumer is ConsumerBase {
    uint256 public gasAtEntry;
    uint256 public calls;
    uint256 public lastRequestId;
    int256[] internal _lastOutput;

    constructor(IInferenceCoordinator coordinator_) ConsumerBase(coordinator_) {}

    function onInferenceResult(uint256 requestId, int256[] calldata output) external {
        uint256 g = gasleft();
        gasAtEntry = g;
        calls += 1;
        lastRequestId = requestId;
        _lastOutput = output;
    }

    function lastOutput() external view returns (int256[] memory) {
        return _lastOutput;
    }
}

/// @notice Records only the gas it was given, so that it succeeds on as little as ~30k gas.
contract GasMeteringConsumer is ConsumerBase {
    uint256 public gasAtEntry;

    constructor(IInferenceCoordinator coordinator_) ConsumerBase(coordinator_) {}

    function onInferenceResult(uint256, int256[] calldata) external {
        gasAtEntry = gasleft();
    }
}

contract RevertingConsumer is ConsumerBase {
    error NoThanks();

    constructor(IInferenceCoordinator coordinator_) ConsumerBase(coordinator_) {}

    function onInferenceResult(uint256, int256[] calldata) external pure {
        revert NoThanks();
    }
}

/// @notice Spins until it runs out of gas.
contract GasBurningConsumer is ConsumerBase {
    uint256 public counter;

    constructor(IInferenceCoordinator coordinator_) ConsumerBase(coordinator_) {}

    function onInferenceResult(uint256, int256[] calldata) external {
        while (true) {
            counter += 1;
        }
    }
}

/// @notice Reverts with as much return data as its gas allows, to make a caller that copies it pay.
contract ReturnBombConsumer is ConsumerBase {
    uint256 public immutable bombBytes;

    constructor(IInferenceCoordinator coordinator_, uint256 bombBytes_) ConsumerBase(coordinator_) {
        bombBytes = bombBytes_;
    }

    function onInferenceResult(uint256, int256[] calldata) external view {
        uint256 size = bombBytes;
        assembly ("memory-safe") {
            revert(0, size)
        }
    }
}

/// @notice From its callback, tries every guarded entry point and records how each failed.
contract ReentrantConsumer is ConsumerBase {
    uint256 public listingId;
    int256[] internal _input;
    uint256 public otherRequestId;

    bytes public fulfillError;
    bytes public cancelError;
    bytes public withdrawError;
    bytes public requestError;
    bytes public privateFulfillError;
    bytes public privateRequestError;
    bool public called;

    constructor(IInferenceCoordinator coordinator_) ConsumerBase(coordinator_) {}

    function arm(uint256 listingId_, int256[] calldata input, uint256 otherRequestId_) external {
        listingId = listingId_;
        _input = input;
        otherRequestId = otherRequestId_;
    }

    function onInferenceResult(uint256, int256[] calldata output) external {
        called = true;
        try coordinator.fulfillInference(otherRequestId, _input, output, hex"") {}
        catch (bytes memory err) {
            fulfillError = err;
        }
        try coordinator.cancelRequest(otherRequestId) {}
        catch (bytes memory err) {
            cancelError = err;
        }
        try coordinator.withdraw(payable(address(this))) {}
        catch (bytes memory err) {
            withdrawError = err;
        }
        try coordinator.requestInference(listingId, _input, 0, 0) {}
        catch (bytes memory err) {
            requestError = err;
        }
        try coordinator.fulfillPrivateInference(otherRequestId, output, hex"") {}
        catch (bytes memory err) {
            privateFulfillError = err;
        }
        try coordinator.requestPrivateInference(listingId, bytes32(0), address(this), bytes32(0), hex"", 0, 0) {}
        catch (bytes memory err) {
            privateRequestError = err;
        }
    }
}
