// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {CommonBase} from "forge-std/Base.sol";
import {StdCheats} from "forge-std/StdCheats.sol";
import {StdUtils} from "forge-std/StdUtils.sol";
import {InferenceCoordinator} from "../../src/InferenceCoordinator.sol";
import {IInferenceCoordinator} from "../../src/interfaces/IInferenceCoordinator.sol";
import {ProofBook} from "../mocks/MockVerifier.sol";
import {InstanceEncoding} from "../utils/InstanceEncoding.sol";

/// @notice Drives the coordinator with random requests, public and private, fulfilments (valid, replayed,
/// forged, through the wrong path), cancellations by anyone, withdrawals, fee changes and time, and keeps a
/// ledger of what each actor should own. Every actor has an encryption key, so any can be named prover.
contract CoordinatorHandler is CommonBase, StdCheats, StdUtils {
    InferenceCoordinator public immutable coordinator;
    ProofBook public immutable book;
    uint256 public immutable listingId;
    /// @notice A listing of a committed-input model with the same shape (4 inputs, 3 outputs, 16 bits).
    uint256 public immutable privateListingId;
    address public immutable listingOwner;

    address[] internal _actors;
    uint256[] internal _requestIds;

    /// @notice What each actor should be able to withdraw, by this ledger.
    mapping(address => uint256) public expectedBalance;
    mapping(uint256 requestId => uint256) public successfulFulfilments;
    uint256 public totalDeposited;
    uint256 public totalWithdrawn;

    /// @notice Set if the coordinator ever accepted what it must refuse.
    bool public fulfilledTwice;
    bool public refundedToNonRequester;
    bool public acceptedForgedProof;
    /// @notice Set if the coordinator refused what it must accept, with the action's name.
    string public wronglyRefused;

    mapping(bytes32 => uint256) public calls;

    constructor(
        InferenceCoordinator coordinator_,
        ProofBook book_,
        uint256 listingId_,
        uint256 privateListingId_,
        address listingOwner_
    ) {
        coordinator = coordinator_;
        book = book_;
        listingId = listingId_;
        privateListingId = privateListingId_;
        listingOwner = listingOwner_;
        for (uint256 i; i < 4; ++i) {
            address actor = makeAddr(string.concat("actor", vm.toString(i)));
            _actors.push(actor);
            vm.deal(actor, 1_000 ether);
            vm.prank(actor);
            coordinator.setEncryptionKey(keccak256(abi.encode("key", actor)));
        }
    }

    function actors() external view returns (address[] memory) {
        return _actors;
    }

    function requestIds() external view returns (uint256[] memory) {
        return _requestIds;
    }

    function _actor(uint256 seed) internal view returns (address) {
        return _actors[seed % _actors.length];
    }

    function _input(int256[4] memory raw) internal pure returns (int256[] memory input) {
        input = new int256[](4);
        for (uint256 i; i < 4; ++i) {
            input[i] = _bound(raw[i], -8, 8);
        }
    }

    function _output(int256[3] memory raw) internal pure returns (int256[] memory output) {
        output = new int256[](3);
        for (uint256 i; i < 3; ++i) {
            output[i] = _bound(raw[i], -1000, 1000);
        }
    }

    /// @dev Inputs are derived from the id, so fulfilment can rebuild them.
    function _inputOf(uint256 requestId) internal pure returns (int256[] memory) {
        int256[4] memory raw;
        for (uint256 i; i < 4; ++i) {
            raw[i] = int256(uint256(keccak256(abi.encode(requestId, i))));
        }
        return _input(raw);
    }

    /// @dev Commitments too, so fulfilment can rebuild them (and check them against the stored one).
    function _commitmentOf(uint256 requestId) internal pure returns (bytes32) {
        return bytes32(uint256(keccak256(abi.encode("commitment", requestId))) % InstanceEncoding.R);
    }

    function _pick(uint256 seed) internal view returns (uint256) {
        // Sometimes an id that does not exist.
        if (_requestIds.length == 0 || seed % 10 == 0) return _requestIds.length + 1 + seed % 3;
        return _requestIds[seed % _requestIds.length];
    }

    function request(uint256 actorSeed, uint32 callbackGasLimit) external {
        calls["request"]++;
        address actor = _actor(actorSeed);
        uint256 id = _requestIds.length + 1;
        uint256 fee = coordinator.quote(listingId, 0);
        int256[] memory input = _inputOf(id);
        uint32 gasLimit = uint32(_bound(callbackGasLimit, 0, 100_000));
        vm.prank(actor);
        uint256 got = coordinator.requestInference{value: fee}(listingId, input, gasLimit, fee);
        if (got != id) wronglyRefused = "sequential request id";
        _requestIds.push(id);
        totalDeposited += fee;
    }

    function requestPrivate(uint256 actorSeed, uint256 proverSeed, uint32 callbackGasLimit) external {
        calls["requestPrivate"]++;
        address actor = _actor(actorSeed);
        address prover = _actor(proverSeed);
        uint256 id = _requestIds.length + 1;
        uint256 fee = coordinator.quote(privateListingId, 0);
        uint32 gasLimit = uint32(_bound(callbackGasLimit, 0, 100_000));
        bytes32 key = coordinator.encryptionKeyOf(prover);
        vm.prank(actor);
        uint256 got = coordinator.requestPrivateInference{value: fee}(
            privateListingId, _commitmentOf(id), prover, key, new bytes(81 + 8 * 4), gasLimit, fee
        );
        if (got != id) wronglyRefused = "sequential request id";
        _requestIds.push(id);
        totalDeposited += fee;
    }

    /// @dev Both listings always charge the same fee.
    function setFee(uint96 fee) external {
        calls["setFee"]++;
        uint96 newFee = uint96(_bound(fee, 0, 1 ether));
        vm.startPrank(listingOwner);
        coordinator.setListingFee(listingId, newFee);
        coordinator.setListingFee(privateListingId, newFee);
        vm.stopPrank();
    }

    function fulfil(uint256 requestSeed, uint256 actorSeed, int256[3] memory raw) external {
        calls["fulfil"]++;
        uint256 id = _pick(requestSeed);
        address actor = _actor(actorSeed);
        int256[] memory input = _inputOf(id);
        int256[] memory output = _output(raw);
        bytes memory proof = abi.encodePacked("proof", id, actor, output);
        book.accept(InstanceEncoding.verifierCalldata(16, address(coordinator), id, actor, input, output, proof));
        IInferenceCoordinator.Request memory before = coordinator.getRequest(id);
        bool shouldWork = before.status == IInferenceCoordinator.RequestStatus.Pending
            && block.timestamp <= before.deadline && before.prover == address(0);

        vm.prank(actor);
        try coordinator.fulfillInference(id, input, output, proof) {
            calls["fulfil.ok"]++;
            if (++successfulFulfilments[id] > 1) fulfilledTwice = true;
            expectedBalance[actor] += before.payment;
        } catch {
            if (shouldWork) wronglyRefused = "valid fulfilment";
        }
    }

    /// @notice Fulfils with a proof made for another fulfiller (a front-runner copying the mempool).
    function fulfilWithCopiedProof(uint256 requestSeed, uint256 actorSeed, int256[3] memory raw) external {
        calls["fulfilCopied"]++;
        uint256 id = _pick(requestSeed);
        address prover = _actor(actorSeed);
        address thief = _actor(actorSeed % 4 + 1);
        int256[] memory input = _inputOf(id);
        int256[] memory output = _output(raw);
        bytes memory proof = abi.encodePacked("proof", id, prover, output);
        book.accept(InstanceEncoding.verifierCalldata(16, address(coordinator), id, prover, input, output, proof));
        vm.prank(thief);
        try coordinator.fulfillInference(id, input, output, proof) {
            acceptedForgedProof = true;
        } catch {}
    }

    /// @notice Fulfils through the private path, mostly as the named prover, sometimes as anyone; on a
    /// public request it must fail.
    function fulfilPrivate(uint256 requestSeed, uint256 actorSeed, int256[3] memory raw) external {
        calls["fulfilPrivate"]++;
        uint256 id = _pick(requestSeed);
        IInferenceCoordinator.Request memory before = coordinator.getRequest(id);
        address actor = actorSeed % 3 == 0 || before.prover == address(0) ? _actor(actorSeed) : before.prover;
        int256[] memory output = _output(raw);
        bytes memory proof = abi.encodePacked("private proof", id, actor, output);
        book.accept(
            InstanceEncoding.privateVerifierCalldata(
                16, address(coordinator), id, actor, _commitmentOf(id), output, proof
            )
        );
        bool shouldWork = before.status == IInferenceCoordinator.RequestStatus.Pending
            && block.timestamp <= before.deadline && before.prover != address(0) && actor == before.prover;

        vm.prank(actor);
        try coordinator.fulfillPrivateInference(id, output, proof) {
            calls["fulfilPrivate.ok"]++;
            if (++successfulFulfilments[id] > 1) fulfilledTwice = true;
            if (actor != before.prover) acceptedForgedProof = true;
            expectedBalance[actor] += before.payment;
        } catch {
            if (shouldWork) wronglyRefused = "valid private fulfilment";
        }
    }

    /// @notice The named prover sends a proof made for another fulfiller, or for another commitment.
    function fulfilPrivateWithForgedProof(uint256 requestSeed, uint256 actorSeed, int256[3] memory raw) external {
        calls["fulfilPrivateForged"]++;
        uint256 id = _pick(requestSeed);
        address prover = coordinator.getRequest(id).prover;
        if (prover == address(0)) prover = _actor(actorSeed);
        address other = _actor(actorSeed % 4 + 1);
        bool otherCommitment = other == prover;
        int256[] memory output = _output(raw);
        bytes memory proof = abi.encodePacked("forged private proof", id, output);
        bytes32 c = otherCommitment ? bytes32(uint256(_commitmentOf(id)) ^ 1) : _commitmentOf(id);
        book.accept(InstanceEncoding.privateVerifierCalldata(16, address(coordinator), id, other, c, output, proof));
        vm.prank(prover);
        try coordinator.fulfillPrivateInference(id, output, proof) {
            acceptedForgedProof = true;
        } catch {}
    }

    function cancel(uint256 requestSeed, uint256 actorSeed) external {
        calls["cancel"]++;
        uint256 id = _pick(requestSeed);
        IInferenceCoordinator.Request memory before = coordinator.getRequest(id);
        // Mostly the requester, sometimes anyone.
        address actor = actorSeed % 3 == 0 ? _actor(actorSeed) : before.requester;
        if (actor == address(0)) actor = _actor(actorSeed);
        bool shouldWork = before.status == IInferenceCoordinator.RequestStatus.Pending && actor == before.requester
            && block.timestamp > before.deadline;

        vm.prank(actor);
        try coordinator.cancelRequest(id) {
            calls["cancel.ok"]++;
            if (actor != before.requester) refundedToNonRequester = true;
            expectedBalance[actor] += before.payment;
        } catch {
            if (shouldWork) wronglyRefused = "valid cancellation";
        }
    }

    function withdraw(uint256 actorSeed) external {
        calls["withdraw"]++;
        address actor = _actor(actorSeed);
        uint256 amount = coordinator.withdrawable(actor);
        uint256 balanceBefore = actor.balance;
        vm.prank(actor);
        try coordinator.withdraw(payable(actor)) {
            calls["withdraw.ok"]++;
            if (actor.balance != balanceBefore + amount) wronglyRefused = "full withdrawal";
            totalWithdrawn += amount;
            expectedBalance[actor] = 0;
        } catch {
            if (amount != 0) wronglyRefused = "funded withdrawal";
        }
    }

    function warp(uint256 secondsAhead) external {
        calls["warp"]++;
        vm.warp(block.timestamp + _bound(secondsAhead, 0, 30 minutes));
    }
}
