// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {Test} from "forge-std/Test.sol";
import {InferenceCoordinator} from "../../src/InferenceCoordinator.sol";
import {IInferenceCoordinator} from "../../src/interfaces/IInferenceCoordinator.sol";
import {MockVerifier, ProofBook} from "../mocks/MockVerifier.sol";
import {CoordinatorHandler} from "./CoordinatorHandler.sol";

/// @notice Fees are conserved, a request is fulfilled at most once, and only requesters get refunds, with
/// public and private requests mixed.
contract CoordinatorInvariantsTest is Test {
    InferenceCoordinator internal coordinator;
    CoordinatorHandler internal handler;

    function setUp() public {
        coordinator = new InferenceCoordinator();
        ProofBook book = new ProofBook();
        IInferenceCoordinator.ModelEncoding memory encoding =
            IInferenceCoordinator.ModelEncoding(4, 3, 4, 8, 16, -8, 8, -1000, 1000, false);
        MockVerifier verifier = new MockVerifier(book, coordinator.computeEncodingHash(encoding));
        book.accept("sample");
        bytes32 modelId = coordinator.registerModel(address(verifier), encoding, "sample");
        encoding.inputCommitted = true;
        MockVerifier privateVerifier = new MockVerifier(book, coordinator.computeEncodingHash(encoding));
        bytes32 privateModelId = coordinator.registerModel(address(privateVerifier), encoding, "sample");
        address owner = makeAddr("listingOwner");
        vm.startPrank(owner);
        uint256 listingId = coordinator.createListing(modelId, 0.01 ether, 1 hours);
        uint256 privateListingId = coordinator.createListing(privateModelId, 0.01 ether, 1 hours);
        vm.stopPrank();
        handler = new CoordinatorHandler(coordinator, book, listingId, privateListingId, owner);

        bytes4[] memory selectors = new bytes4[](10);
        selectors[0] = CoordinatorHandler.request.selector;
        selectors[1] = CoordinatorHandler.setFee.selector;
        selectors[2] = CoordinatorHandler.fulfil.selector;
        selectors[3] = CoordinatorHandler.fulfilWithCopiedProof.selector;
        selectors[4] = CoordinatorHandler.cancel.selector;
        selectors[5] = CoordinatorHandler.withdraw.selector;
        selectors[6] = CoordinatorHandler.warp.selector;
        selectors[7] = CoordinatorHandler.requestPrivate.selector;
        selectors[8] = CoordinatorHandler.fulfilPrivate.selector;
        selectors[9] = CoordinatorHandler.fulfilPrivateWithForgedProof.selector;
        targetSelector(FuzzSelector({addr: address(handler), selectors: selectors}));
        targetContract(address(handler));
    }

    function _openPayments() internal view returns (uint256 total) {
        uint256[] memory ids = handler.requestIds();
        for (uint256 i; i < ids.length; ++i) {
            IInferenceCoordinator.Request memory r = coordinator.getRequest(ids[i]);
            if (r.status == IInferenceCoordinator.RequestStatus.Pending) total += r.payment;
        }
    }

    function _balances() internal view returns (uint256 total) {
        address[] memory actors = handler.actors();
        for (uint256 i; i < actors.length; ++i) {
            total += coordinator.withdrawable(actors[i]);
        }
    }

    /// forge-config: default.invariant.fail-on-revert = true
    function invariant_etherHeldEqualsOpenPaymentsPlusBalances() public view {
        assertEq(address(coordinator).balance, _openPayments() + _balances());
    }

    /// forge-config: default.invariant.fail-on-revert = true
    function invariant_feesAreConserved() public view {
        assertEq(handler.totalDeposited(), address(coordinator).balance + handler.totalWithdrawn());
    }

    /// forge-config: default.invariant.fail-on-revert = true
    function invariant_balancesMatchLedger() public view {
        address[] memory actors = handler.actors();
        for (uint256 i; i < actors.length; ++i) {
            assertEq(coordinator.withdrawable(actors[i]), handler.expectedBalance(actors[i]));
        }
    }

    /// forge-config: default.invariant.fail-on-revert = true
    function invariant_requestFulfilledAtMostOnce() public view {
        assertFalse(handler.fulfilledTwice());
        uint256[] memory ids = handler.requestIds();
        for (uint256 i; i < ids.length; ++i) {
            IInferenceCoordinator.Request memory r = coordinator.getRequest(ids[i]);
            uint256 n = handler.successfulFulfilments(ids[i]);
            assertLe(n, 1);
            assertEq(n == 1, r.status == IInferenceCoordinator.RequestStatus.Fulfilled);
        }
    }

    /// forge-config: default.invariant.fail-on-revert = true
    function invariant_onlyRequesterIsRefunded() public view {
        assertFalse(handler.refundedToNonRequester());
    }

    /// forge-config: default.invariant.fail-on-revert = true
    function invariant_copiedProofsAreRejected() public view {
        assertFalse(handler.acceptedForgedProof());
    }

    /// forge-config: default.invariant.fail-on-revert = true
    function invariant_validActionsSucceed() public view {
        assertEq(handler.wronglyRefused(), "");
    }
}
