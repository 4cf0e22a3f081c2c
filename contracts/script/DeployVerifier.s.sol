// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {console2} from "forge-std/console2.sol";
import {ZkinferScript} from "./ZkinferScript.sol";

/// @title DeployVerifier
/// @notice Deploys the verifier of a model card (its compiled artifact, `files.verifier_artifact`) through
/// the standard CREATE2 deployer with a zero salt, so one verifier code has one address per chain and a
/// second run sends nothing. Checks the deployed code hash is the card's, and refuses a dev-SRS verifier
/// on any chain but 31337. Does not register the model: ListModel does.
///
///   ZKINFER_CARD=build/zoo/digits_mlp.card.json \
///   forge script contracts/script/DeployVerifier.s.sol --rpc-url $RPC_URL --account <keystore> --broadcast
contract DeployVerifier is ZkinferScript {
    function run() external virtual returns (address verifier) {
        Card memory card = _readCard();
        _refuseDevSrsOffDevChain(card);
        verifier = deployVerifier(card);
    }

    /// @notice Deploys (or finds) the card's verifier; shared with ListModel.
    function deployVerifier(Card memory card) public returns (address verifier) {
        string memory artifact = vm.readFile(card.artifactPath);
        if (vm.keyExistsJson(artifact, ".dev_chain_id")) {
            uint256 devChain = vm.parseJsonUint(artifact, ".dev_chain_id");
            if (devChain != block.chainid) {
                revert(
                    string.concat(
                        card.artifactPath,
                        " runs only on chain ",
                        vm.toString(devChain),
                        " (dev SRS), not on ",
                        vm.toString(block.chainid)
                    )
                );
            }
        }
        bytes memory initCode = vm.parseJsonBytes(artifact, ".bytecode");
        bytes32 runtimeHash = keccak256(vm.parseJsonBytes(artifact, ".deployed_bytecode"));
        if (runtimeHash != card.codehash) {
            revert(
                string.concat(
                    card.artifactPath,
                    " is not the card's verifier: its code hash is ",
                    vm.toString(runtimeHash),
                    ", the card's ",
                    vm.toString(card.codehash)
                )
            );
        }

        _checkParts(card, artifact);

        bytes32 salt = bytes32(0);
        // A verifier above EIP-170 is cut into contracts: its later parts first (the verifier calls them).
        for (uint256 i = 0; vm.keyExistsJson(artifact, _part(i)); i++) {
            _deployPart(card, artifact, _part(i));
        }
        verifier = vm.computeCreate2Address(salt, keccak256(initCode));
        if (verifier.code.length != 0) {
            console2.log("%s verifier already deployed at %s", card.name, verifier);
        } else {
            if (CREATE2_FACTORY.code.length == 0) {
                revert("no CREATE2 deployer at 0x4e59b44847b379578588920cA78FbF26c0B4956C on this chain");
            }
            _startBroadcast();
            (bool ok,) = CREATE2_FACTORY.call(abi.encodePacked(salt, initCode));
            vm.stopBroadcast();
            require(ok && verifier.code.length != 0, "verifier deployment failed");
            console2.log("%s verifier deployed at %s (%s bytes)", card.name, verifier, verifier.code.length);
        }
        if (verifier.codehash != card.codehash) {
            revert(string.concat("code at ", vm.toString(verifier), " is not the card's verifier"));
        }
    }

    /// @notice The artifact must hold the later parts the card lists, with the same code hashes: one
    /// without them would deploy a verifier whose every call fails on a part never deployed.
    function _checkParts(Card memory card, string memory artifact) private view {
        for (uint256 i = 0; vm.keyExistsJson(artifact, _part(i)) || vm.keyExistsJson(card.json, _cardPart(i)); i++) {
            bool same = vm.keyExistsJson(artifact, _part(i)) && vm.keyExistsJson(card.json, _cardPart(i))
                && vm.parseJsonBytes32(artifact, string.concat(_part(i), ".codehash"))
                    == vm.parseJsonBytes32(card.json, string.concat(_cardPart(i), ".codehash"));
            if (!same) {
                revert(
                    string.concat(
                        card.artifactPath,
                        " does not belong to the card ",
                        card.path,
                        ": part ",
                        vm.toString(i + 2),
                        " of the verifier is not the same in both (the card lists the parts its verifier calls); ",
                        "use the artifact prover-node setup wrote beside the card, or run setup again"
                    )
                );
            }
        }
    }

    function _cardPart(uint256 i) private pure returns (string memory) {
        return string.concat(".verifier.parts[", vm.toString(i), "]");
    }

    function _part(uint256 i) private pure returns (string memory) {
        return string.concat(".parts[", vm.toString(i), "]");
    }

    /// @notice Deploys (or finds) a later part of a split verifier at its CREATE2 address.
    function _deployPart(Card memory card, string memory artifact, string memory key) private {
        bytes memory initCode = vm.parseJsonBytes(artifact, string.concat(key, ".bytecode"));
        bytes32 codehash = vm.parseJsonBytes32(artifact, string.concat(key, ".codehash"));
        address part = vm.computeCreate2Address(bytes32(0), keccak256(initCode));
        if (part != vm.parseJsonAddress(artifact, string.concat(key, ".address"))) {
            revert(string.concat("the init code of ", key, " does not give the address the artifact records"));
        }
        if (part.code.length == 0) {
            if (CREATE2_FACTORY.code.length == 0) {
                revert("no CREATE2 deployer at 0x4e59b44847b379578588920cA78FbF26c0B4956C on this chain");
            }
            _startBroadcast();
            (bool ok,) = CREATE2_FACTORY.call(abi.encodePacked(bytes32(0), initCode));
            vm.stopBroadcast();
            require(ok && part.code.length != 0, "verifier part deployment failed");
            console2.log("%s verifier part deployed at %s (%s bytes)", card.name, part, part.code.length);
        }
        if (part.codehash != codehash) {
            revert(string.concat("code at ", vm.toString(part), " is not the verifier part of ", key));
        }
    }
}
