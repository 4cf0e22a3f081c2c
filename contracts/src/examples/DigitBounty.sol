// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {IInferenceCoordinator} from "../interfaces/IInferenceCoordinator.sol";
import {IInferenceConsumer} from "../interfaces/IInferenceConsumer.sol";

/// @title DigitBounty
/// @notice Example consumer: pays its bounty to the first submitter whose 8x8 image a proven digit
/// classifier labels as `targetDigit`. The submitter pays the inference fee; the label is the argmax of
/// the model's ten logits, computed here from the proven output.
///
/// @dev Copycats. An image is public from the moment it is submitted (it is in the transaction and in
/// InferenceRequested), and anyone can fulfil a request, their own first. If submissions were open while
/// images are visible, a copycat could resubmit a winning image, or a near copy, and fulfil it before the
/// original. So the bounty runs in two phases: until `commitDeadline` submitters commit to
/// `commitmentOf(submitter, pixels, salt)`, which hides the image and names its submitter; after it, and
/// until `revealDeadline`, they reveal and the image is classified. When the first image is revealed no
/// new commitment can be made, and a commitment only reveals for the account that made it: nothing
/// revealed can be copied.
///
/// Exits. If no one wins, the sponsor takes the bounty back after `exitTime`: the reveal phase plus the
/// listing's fulfilment window, so that every request made in time has been fulfilled or has expired.
/// A submitter whose request expired unfulfilled gets the fee back with `reclaim`.
contract DigitBounty is IInferenceConsumer {
    /// @notice Gas this contract asks for its callback: the argmax and one ETH transfer.
    uint32 public constant CALLBACK_GAS = 100_000;

    IInferenceCoordinator public immutable coordinator;
    /// @notice The listing requests go through; its model is checked to be a ten-class classifier.
    uint256 public immutable listingId;
    uint8 public immutable targetDigit;
    /// @notice Who funded the bounty and may take it back after `exitTime`.
    address public immutable sponsor;
    /// @notice Last timestamp at which a commitment is accepted.
    uint64 public immutable commitDeadline;
    /// @notice Last timestamp at which an image can be revealed (and so classified).
    uint64 public immutable revealDeadline;
    /// @notice From this timestamp on the sponsor may withdraw an unpaid bounty.
    uint64 public immutable exitTime;

    /// @notice The bounty still to be won; zero once paid or withdrawn.
    uint256 public bounty;
    /// @notice Commitments made and not yet revealed.
    mapping(bytes32 commitment => bool) public committed;
    /// @notice Who revealed the image of each request this contract made.
    mapping(uint256 requestId => address) public submitterOf;

    error NotCoordinator(address caller);
    error NotADigitClassifier(uint32 outputLen);
    error InvalidTargetDigit(uint8 digit);
    error InvalidPhases(uint64 commitSeconds, uint64 revealSeconds);
    error BountyAlreadyPaid();
    error CommitPhaseOver(uint64 commitDeadline);
    error NotInRevealPhase(uint64 opensAfter, uint64 closesAt);
    error UnknownCommitment(bytes32 commitment);
    error NotSubmitter(uint256 requestId, address caller);
    error NotSponsor(address caller);
    error BountyStillOpen(uint64 exitTime);
    error PayoutFailed(address to, uint256 amount);

    event Committed(bytes32 indexed commitment);
    event Submitted(uint256 indexed requestId, address indexed submitter);
    event Classified(uint256 indexed requestId, address indexed submitter, uint256 digit);
    event BountyPaid(uint256 indexed requestId, address indexed winner, uint256 amount);
    event BountyWithdrawn(address indexed sponsor, uint256 amount);
    event Reclaimed(uint256 indexed requestId, address indexed submitter, uint256 refund);

    /// @param coordinator_ The coordinator the listing is on.
    /// @param listingId_ A listing of a digit classifier: ten outputs, one logit per digit.
    /// @param targetDigit_ The digit that wins, 0 to 9.
    /// @param commitSeconds Length of the commit phase, from now.
    /// @param revealSeconds Length of the reveal phase, after the commit phase.
    constructor(
        IInferenceCoordinator coordinator_,
        uint256 listingId_,
        uint8 targetDigit_,
        uint64 commitSeconds,
        uint64 revealSeconds
    ) payable {
        IInferenceCoordinator.Listing memory listing = coordinator_.getListing(listingId_);
        uint32 outputLen = coordinator_.getModel(listing.modelId).encoding.outputLen;
        if (outputLen != 10) revert NotADigitClassifier(outputLen);
        if (targetDigit_ > 9) revert InvalidTargetDigit(targetDigit_);
        if (commitSeconds == 0 || revealSeconds == 0) revert InvalidPhases(commitSeconds, revealSeconds);
        coordinator = coordinator_;
        listingId = listingId_;
        targetDigit = targetDigit_;
        sponsor = msg.sender;
        commitDeadline = uint64(block.timestamp) + commitSeconds;
        revealDeadline = commitDeadline + revealSeconds;
        exitTime = revealDeadline + listing.deadlineSeconds + 1;
        bounty = msg.value;
    }

    /// @notice What `commit` takes for `pixels`: binds the image to its submitter and hides it behind a
    /// secret `salt` until the reveal. Compute it off-chain (or with an `eth_call`), never in a transaction.
    function commitmentOf(address submitter, int256[] calldata pixels, bytes32 salt) public pure returns (bytes32) {
        return keccak256(abi.encode(submitter, pixels, salt));
    }

    /// @notice Commits to an image during the commit phase.
    function commit(bytes32 commitment) external {
        // forge-lint: disable-next-line(block-timestamp)
        if (block.timestamp > commitDeadline) revert CommitPhaseOver(commitDeadline);
        committed[commitment] = true;
        emit Committed(commitment);
    }

    /// @notice Reveals a committed image and requests its classification. Send exactly the listing's fee,
    /// `coordinator.quote(listingId, CALLBACK_GAS)`: it is also the most this request may charge.
    function reveal(int256[] calldata pixels, bytes32 salt) external payable returns (uint256 requestId) {
        if (bounty == 0) revert BountyAlreadyPaid();
        // forge-lint: disable-next-line(block-timestamp)
        if (block.timestamp <= commitDeadline || block.timestamp > revealDeadline) {
            revert NotInRevealPhase(commitDeadline, revealDeadline);
        }
        bytes32 commitment = commitmentOf(msg.sender, pixels, salt);
        if (!committed[commitment]) revert UnknownCommitment(commitment);
        committed[commitment] = false;
        requestId = coordinator.requestInference{value: msg.value}(listingId, pixels, CALLBACK_GAS, msg.value);
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

    /// @notice Returns an unpaid bounty to the sponsor once no request made in time can still be fulfilled.
    function withdrawBounty() external {
        if (msg.sender != sponsor) revert NotSponsor(msg.sender);
        // forge-lint: disable-next-line(block-timestamp)
        if (block.timestamp < exitTime) revert BountyStillOpen(exitTime);
        uint256 amount = bounty;
        if (amount == 0) revert BountyAlreadyPaid();
        bounty = 0;
        emit BountyWithdrawn(msg.sender, amount);
        (bool sent,) = msg.sender.call{value: amount}("");
        if (!sent) revert PayoutFailed(msg.sender, amount);
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
