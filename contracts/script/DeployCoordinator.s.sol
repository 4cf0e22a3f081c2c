// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {console2} from "forge-std/console2.sol";
import {InferenceCoordinator} from "../src/InferenceCoordinator.sol";
import {ZkinferScript} from "./ZkinferScript.sol";

/// @title DeployCoordinator
/// @notice Deploys InferenceCoordinator at a deterministic address through the standard CREATE2 deployer
/// (0x4e59b44847b379578588920cA78FbF26c0B4956C): the address depends only on the salt and the
/// coordinator's bytecode, so it is the same on every chain. If the coordinator is already there, nothing
/// is sent. `record()` then starts the deployments file of the chain (see ZkinferScript) once the
/// coordinator's code is on the chain:
///
///   forge script contracts/script/DeployCoordinator.s.sol --rpc-url $RPC_URL --account <keystore> --broadcast
///   forge script contracts/script/DeployCoordinator.s.sol --rpc-url $RPC_URL --sig 'record()'
///
/// Environment: ZKINFER_SALT (bytes32; default keccak256("zkinfer.InferenceCoordinator")), and those of
/// ZkinferScript.
contract DeployCoordinator is ZkinferScript {
    bytes32 internal constant DEFAULT_SALT = keccak256("zkinfer.InferenceCoordinator");

    /// @notice Sends the coordinator's deployment unless it is there; writes nothing.
    function run() external returns (InferenceCoordinator coordinator) {
        (bytes32 salt, address predicted,) = _predicted();
        coordinator = InferenceCoordinator(predicted);
        if (predicted.code.length != 0) {
            console2.log("coordinator already deployed at %s (salt %s)", predicted, vm.toString(salt));
        } else {
            if (CREATE2_FACTORY.code.length == 0) {
                revert("no CREATE2 deployer at 0x4e59b44847b379578588920cA78FbF26c0B4956C on this chain");
            }
            _startBroadcast();
            coordinator = new InferenceCoordinator{salt: salt}();
            vm.stopBroadcast();
            require(address(coordinator) == predicted, "CREATE2 address differs from the prediction");
            console2.log("coordinator deployed at %s (salt %s)", predicted, vm.toString(salt));
        }
        _logRecordStep("DeployCoordinator.s.sol");
    }

    /// @notice Starts the deployments file with the coordinator if its code is on the chain; sends nothing.
    function record() external {
        (bytes32 salt, address predicted, string memory deployments) = _predicted();
        string memory path = _deploymentsPath();
        if (predicted.code.length == 0) {
            revert(
                string.concat(
                    "no coordinator at ",
                    vm.toString(predicted),
                    " on chain ",
                    vm.toString(block.chainid),
                    " (salt ",
                    vm.toString(salt),
                    "): nothing to record (was the DeployCoordinator broadcast mined?); ",
                    path,
                    " not written"
                )
            );
        }
        if (bytes(deployments).length == 0) {
            _startDeployments(path, predicted, salt);
            console2.log("deployments file %s started: coordinator %s", path, predicted);
        } else {
            console2.log("deployments file %s already records coordinator %s", path, predicted);
        }
    }

    /// @dev The salt, the coordinator's CREATE2 address, and the deployments file (checked to record that
    /// address, if it exists).
    function _predicted() internal view returns (bytes32 salt, address predicted, string memory deployments) {
        salt = _envBytes32Or("ZKINFER_SALT", DEFAULT_SALT);
        predicted = vm.computeCreate2Address(salt, keccak256(type(InferenceCoordinator).creationCode));
        string memory path = _deploymentsPath();
        deployments = _readDeployments(path);
        if (bytes(deployments).length != 0) {
            address recorded = vm.parseJsonAddress(deployments, ".coordinator");
            if (recorded != predicted) {
                revert(
                    string.concat(
                        path,
                        " records coordinator ",
                        vm.toString(recorded),
                        ", not ",
                        vm.toString(predicted),
                        " (salt ",
                        vm.toString(salt),
                        "): use that file's salt or another ZKINFER_DEPLOYMENTS"
                    )
                );
            }
        }
    }
}
