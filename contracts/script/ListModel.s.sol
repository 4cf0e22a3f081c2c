// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {console2} from "forge-std/console2.sol";
import {IInferenceCoordinator} from "../src/interfaces/IInferenceCoordinator.sol";
import {DeployVerifier} from "./DeployVerifier.s.sol";

/// @title ListModel
/// @notice Puts a model card's model on the chain's coordinator and lists it: deploys the verifier if it is
/// not there (as DeployVerifier), registers the model if it is not registered (with a sample proof, whose
/// verification sets the model's verifyGas), then creates a listing owned by the sender. Refuses a dev-SRS
/// verifier on any chain but 31337 and checks the coordinator derives the card's model id. `run()` writes
/// nothing; `record()`, once the transactions are mined, records the model and the listings the last
/// broadcast created in the deployments file, from what the chain holds (see ZkinferScript).
///
///   ZKINFER_CARD=build/zoo/digits_mlp.card.json ZKINFER_SAMPLE=build/zoo/proof.json ZKINFER_FEE=1000000000000000 \
///   forge script contracts/script/ListModel.s.sol --rpc-url $RPC_URL --account <keystore> --broadcast
///   ZKINFER_CARD=build/zoo/digits_mlp.card.json \
///   forge script contracts/script/ListModel.s.sol --rpc-url $RPC_URL --sig 'record()'
///
/// Environment:
///   ZKINFER_CARD              the model card (required)
///   ZKINFER_SAMPLE            a proof file of the model (`prover-node prove` output: `verifier_calldata`, or
///                             `instances` and `proof` as in contracts/test/fixtures); any request, chain or
///                             coordinator will do. Required only if the model is not registered yet.
///   ZKINFER_FEE               the listing's fee in wei (default 0)
///   ZKINFER_DEADLINE_SECONDS  the listing's fulfilment window (default 3600)
///   ZKINFER_COORDINATOR       the coordinator (default: the deployments file's)
contract ListModel is DeployVerifier {
    /// @notice Sends what is missing (verifier, registration) and a new listing; writes nothing.
    function run() external override returns (address verifier) {
        IInferenceCoordinator coordinator = _coordinator(_readDeployments(_deploymentsPath()));
        Card memory card = _readCard();
        _refuseDevSrsOffDevChain(card);
        // Read before anything is broadcast, so a malformed value stops the script up front.
        uint256 feeWei = _envUintOr("ZKINFER_FEE", 0);
        uint256 window = _envUintOr("ZKINFER_DEADLINE_SECONDS", 3600);
        require(feeWei <= type(uint96).max, "ZKINFER_FEE does not fit uint96");
        require(window <= type(uint64).max, "ZKINFER_DEADLINE_SECONDS does not fit uint64");
        bytes32 modelId = _checkedModelId(coordinator, card, card.codehash);
        verifier = _register(coordinator, card, modelId);
        _list(coordinator, modelId, feeWei, window);
        _logRecordStep("ListModel.s.sol");
    }

    /// @notice Records the card's model (if the coordinator has it registered) and the listings of it that
    /// the last broadcast of this script on this chain created (its successful receipts' ListingCreated
    /// logs, each checked against the coordinator). Sends nothing; reverts, writing nothing, when the model
    /// is not registered.
    function record() external {
        string memory path = _deploymentsPath();
        string memory deployments = _readDeployments(path);
        IInferenceCoordinator coordinator = _coordinator(deployments);
        Card memory card = _readCard();
        bytes32 modelId = _checkedModelId(coordinator, card, card.codehash);
        if (coordinator.getModel(modelId).verifier == address(0)) {
            revert(
                string.concat(
                    card.name,
                    " (model id ",
                    vm.toString(modelId),
                    ") is not registered on the coordinator ",
                    vm.toString(address(coordinator)),
                    ": nothing to record (was the ListModel broadcast mined?); ",
                    path,
                    " not written"
                )
            );
        }
        if (bytes(deployments).length == 0) {
            // A coordinator deployed some other way (ZKINFER_COORDINATOR): start the file (salt unknown: 0).
            _startDeployments(path, address(coordinator), bytes32(0));
        }
        _recordModel(path, coordinator, card, modelId);
        console2.log("recorded %s: model id %s", card.name, vm.toString(modelId));
        _recordListings(path, coordinator, card.name, modelId);
        console2.log("deployments file: %s", path);
    }

    /// @dev Records the listings of `modelId` that the successful receipts of the last broadcast created
    /// and that the coordinator holds.
    function _recordListings(string memory path, IInferenceCoordinator coordinator, string memory name, bytes32 modelId)
        internal
    {
        string memory broadcastPath = _lastBroadcast("ListModel.s.sol");
        if (!vm.exists(broadcastPath)) {
            console2.log("no broadcast of ListModel on this chain (%s): no listing recorded", broadcastPath);
            return;
        }
        string memory json = vm.readFile(broadcastPath);
        bytes32 created = IInferenceCoordinator.ListingCreated.selector;
        for (uint256 i; vm.keyExistsJson(json, _at(".receipts", i)); ++i) {
            string memory receipt = _at(".receipts", i);
            // Only mined, successful transactions: a reverted one's logs were never applied.
            if (vm.parseJsonUint(json, string.concat(receipt, ".status")) != 1) continue;
            string memory logs = string.concat(receipt, ".logs");
            for (uint256 j; vm.keyExistsJson(json, _at(logs, j)); ++j) {
                string memory log = _at(logs, j);
                if (vm.parseJsonAddress(json, string.concat(log, ".address")) != address(coordinator)) continue;
                bytes32[] memory topics = vm.parseJsonBytes32Array(json, string.concat(log, ".topics"));
                if (topics.length < 3 || topics[0] != created || topics[2] != modelId) continue;
                uint256 listingId = uint256(topics[1]);
                // The broadcast file may be another chain's run with the same chain id (a restarted
                // anvil): record only what this chain holds.
                if (coordinator.getListing(listingId).modelId != modelId) continue;
                _recordListing(path, coordinator, name, listingId);
                console2.log("recorded listing %s", listingId);
            }
        }
    }

    function _at(string memory array, uint256 i) private pure returns (string memory) {
        return string.concat(array, "[", vm.toString(i), "]");
    }

    /// @dev Deploys the verifier and registers the model unless the model is registered already.
    function _register(IInferenceCoordinator coordinator, Card memory card, bytes32 modelId)
        internal
        returns (address verifier)
    {
        IInferenceCoordinator.Model memory model = coordinator.getModel(modelId);
        if (model.verifier != address(0)) {
            console2.log("%s already registered: model id %s", card.name, vm.toString(modelId));
            return model.verifier;
        }
        verifier = deployVerifier(card);
        bytes memory sample = _readSample();
        _startBroadcast();
        bytes32 registered = coordinator.registerModel(verifier, card.encoding, sample);
        vm.stopBroadcast();
        require(registered == modelId, "registered model id differs from the card's");
        console2.log("%s registered: model id %s", card.name, vm.toString(modelId));
        console2.log("  verifier %s, verifyGas %s", verifier, uint256(coordinator.getModel(modelId).verifyGas));
    }

    /// @dev Creates a listing of `modelId` on the terms of ZKINFER_FEE and ZKINFER_DEADLINE_SECONDS
    /// (`feeWei` and `window`, checked to fit by `run`).
    function _list(IInferenceCoordinator coordinator, bytes32 modelId, uint256 feeWei, uint256 window)
        internal
        returns (uint256 listingId)
    {
        _startBroadcast();
        // forge-lint: disable-next-line(unsafe-typecast)
        listingId = coordinator.createListing(modelId, uint96(feeWei), uint64(window));
        vm.stopBroadcast();
        console2.log("listing %s: fee %s wei, fulfilment window %s s", listingId, feeWei, window);
        console2.log("  owner %s", coordinator.getListing(listingId).owner);
    }

    function _recordModel(string memory path, IInferenceCoordinator coordinator, Card memory card, bytes32 modelId)
        internal
    {
        IInferenceCoordinator.Model memory model = coordinator.getModel(modelId);
        string memory m = "model";
        vm.serializeBytes32(m, "modelId", modelId);
        vm.serializeAddress(m, "verifier", model.verifier);
        vm.serializeBytes32(m, "codehash", card.codehash);
        vm.serializeUint(m, "verifyGas", model.verifyGas);
        string memory json = vm.serializeBool(m, "devSrs", card.devSrs);
        _writeModel(path, card.name, json);
    }

    function _recordListing(
        string memory path,
        IInferenceCoordinator coordinator,
        string memory name,
        uint256 listingId
    ) internal {
        IInferenceCoordinator.Listing memory listing = coordinator.getListing(listingId);
        string memory l = "listing";
        vm.serializeUint(l, "listingId", listingId);
        vm.serializeString(l, "model", name);
        vm.serializeBytes32(l, "modelId", listing.modelId);
        vm.serializeAddress(l, "owner", listing.owner);
        vm.serializeString(l, "fee", vm.toString(uint256(listing.fee)));
        string memory json = vm.serializeUint(l, "deadlineSeconds", listing.deadlineSeconds);
        _writeDeployments(path, json, string.concat(".listings.", vm.toString(listingId)));
    }

    /// @dev Verifier calldata (instance words, then proof) from the ZKINFER_SAMPLE proof file.
    function _readSample() internal view returns (bytes memory) {
        string memory samplePath = vm.envOr("ZKINFER_SAMPLE", string(""));
        if (bytes(samplePath).length == 0) {
            revert("the model is not registered yet: set ZKINFER_SAMPLE to a proof file of it (`prover-node prove`)");
        }
        string memory json = vm.readFile(samplePath);
        if (vm.keyExistsJson(json, ".verifier_calldata")) return vm.parseJsonBytes(json, ".verifier_calldata");
        return abi.encodePacked(vm.parseJsonUintArray(json, ".instances"), vm.parseJsonBytes(json, ".proof"));
    }
}
