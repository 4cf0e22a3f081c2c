// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {Script} from "forge-std/Script.sol";
import {VmSafe} from "forge-std/Vm.sol";
import {console2} from "forge-std/console2.sol";
import {IInferenceCoordinator} from "../src/interfaces/IInferenceCoordinator.sol";

/// @title ZkinferScript
/// @notice What the deployment scripts share: the signer, the model card, and the per-chain deployments
/// file.
///
/// @dev Environment (all optional unless a script says otherwise):
///   PRIVATE_KEY            signs with this key; otherwise forge's own flags (--account, --private-key,
///                          --ledger, ...) or its default sender
///   ZKINFER_DEPLOYMENTS    the deployments file; default deployments/<chain id>.json
///   ZKINFER_CARD           a model card written by `prover-node setup` (its verifier artifact is read
///                          from the card's directory, as the card names it)
///
/// The deployments file (one per chain, one coordinator per file):
///   { "chainId": 31337, "coordinator": "0x..", "salt": "0x..",
///     "models":   { "<card name>": { "modelId", "verifier", "codehash", "verifyGas", "devSrs" } },
///     "listings": { "<listing id>": { "listingId", "model", "modelId", "owner", "fee", "deadlineSeconds" } } }
/// `fee` is a decimal string (wei). `prover-node deploy-coordinator` / `list-model` read and write the same
/// file (prover-node/src/deployments.rs), and the node reads it (`contract.deployments`).
///
/// Sending and recording are two steps. `run()` (with `--broadcast`) sends the transactions and writes
/// nothing: forge executes the Solidity before it sends anything, so a write there would record contracts
/// whose transactions then fail (an unfunded key, a revert, a dropped transaction). `record()` (run
/// afterwards, `--sig 'record()'`, no key, nothing sent) reads the chain and writes only what is there: code
/// at the coordinator's address, a registered model, and the listings created by the script's last
/// broadcast (the ListingCreated logs of its successful receipts, each checked on the chain).
abstract contract ZkinferScript is Script {
    /// @notice The only chain a verifier made with a dev (insecure) SRS runs on: anvil's default chain id.
    uint256 internal constant DEV_CHAIN_ID = 31337;

    /// @notice Where `forge script --broadcast` records its transactions: foundry.toml's `broadcast`.
    string internal constant BROADCAST_DIR = "build/broadcast";

    /// @notice The card's fields the scripts use.
    struct Card {
        string path;
        string json;
        string name;
        bytes32 modelId;
        bytes32 codehash;
        bool devSrs;
        IInferenceCoordinator.ModelEncoding encoding;
        string artifactPath;
    }

    /// @notice Starts broadcasting with PRIVATE_KEY if set, else as forge's sender (--account, ...).
    function _startBroadcast() internal {
        // envUint, not envOr: a malformed key must stop the script, not fall back to another sender.
        if (vm.envExists("PRIVATE_KEY")) vm.startBroadcast(vm.envUint("PRIVATE_KEY"));
        else vm.startBroadcast();
    }

    /// @notice Whether this run sends its transactions (`--broadcast`, or `--resume`).
    function _broadcasting() internal view returns (bool) {
        return vm.isContext(VmSafe.ForgeContext.ScriptBroadcast) || vm.isContext(VmSafe.ForgeContext.ScriptResume);
    }

    /// @notice Says how to record what the run sent, once it is mined (or that a dry run sent nothing).
    function _logRecordStep(string memory script) internal view {
        if (!_broadcasting()) {
            console2.log("dry run (no --broadcast): nothing sent, %s not written", _deploymentsPath());
            return;
        }
        console2.log(
            "%s is written from what is mined, not by this run; once the transactions are mined:", _deploymentsPath()
        );
        console2.log("  forge script contracts/script/%s --sig 'record()' --rpc-url <the same RPC URL>", script);
    }

    /// @notice forge's record of the last `--broadcast` of `script` on this chain (its transactions and
    /// receipts): `<broadcast>/<script>/<chain id>/run-latest.json`, with foundry.toml's `broadcast` dir.
    function _lastBroadcast(string memory script) internal view returns (string memory) {
        return string.concat(
            vm.projectRoot(), "/", BROADCAST_DIR, "/", script, "/", vm.toString(block.chainid), "/run-latest.json"
        );
    }

    function _deploymentsPath() internal view returns (string memory) {
        string memory fallbackPath = string.concat("deployments/", vm.toString(block.chainid), ".json");
        return vm.envOr("ZKINFER_DEPLOYMENTS", fallbackPath);
    }

    /// @notice The deployments file's content, or "" if there is none; reverts if it is another chain's.
    function _readDeployments(string memory path) internal view returns (string memory json) {
        if (!vm.exists(path)) return "";
        json = vm.readFile(path);
        uint256 fileChain = vm.parseJsonUint(json, ".chainId");
        if (fileChain != block.chainid) {
            revert(
                string.concat(
                    path,
                    " is the deployments file of chain ",
                    vm.toString(fileChain),
                    ", not of chain ",
                    vm.toString(block.chainid),
                    ": point ZKINFER_DEPLOYMENTS at this chain's file"
                )
            );
        }
    }

    /// @notice The coordinator: ZKINFER_COORDINATOR if set, else the deployments file's; checked to have code.
    function _coordinator(string memory deployments) internal view returns (IInferenceCoordinator coordinator) {
        address fromFile;
        if (bytes(deployments).length != 0) fromFile = vm.parseJsonAddress(deployments, ".coordinator");
        coordinator = IInferenceCoordinator(_envAddressOr("ZKINFER_COORDINATOR", fromFile));
        if (fromFile != address(0) && address(coordinator) != fromFile) {
            revert(
                string.concat(
                    "ZKINFER_COORDINATOR is ",
                    vm.toString(address(coordinator)),
                    " but ",
                    _deploymentsPath(),
                    " records ",
                    vm.toString(fromFile),
                    ": one file per coordinator (set ZKINFER_DEPLOYMENTS)"
                )
            );
        }
        if (address(coordinator) == address(0)) {
            revert(
                string.concat(
                    "no coordinator: run DeployCoordinator first (it writes ",
                    _deploymentsPath(),
                    ") or set ZKINFER_COORDINATOR"
                )
            );
        }
        if (address(coordinator).code.length == 0) {
            revert(string.concat("no contract at coordinator ", vm.toString(address(coordinator))));
        }
    }

    /// @notice Reads the model card named by ZKINFER_CARD.
    function _readCard() internal view returns (Card memory card) {
        card.path = vm.envString("ZKINFER_CARD");
        card.json = vm.readFile(card.path);
        string memory json = card.json;
        card.name = vm.parseJsonString(json, ".name");
        _checkName(card.name);
        card.modelId = vm.parseJsonBytes32(json, ".model_id");
        card.codehash = vm.parseJsonBytes32(json, ".verifier.codehash");
        card.devSrs = vm.parseJsonBool(json, ".srs.insecure");
        card.encoding = IInferenceCoordinator.ModelEncoding({
            inputLen: _u32(_product(vm.parseJsonUintArray(json, ".input_shape"))),
            outputLen: _u32(_product(vm.parseJsonUintArray(json, ".output_shape"))),
            inputScaleBits: _u8(vm.parseJsonUint(json, ".quantization.input_scale_bits")),
            outputScaleBits: _u8(vm.parseJsonUint(json, ".output_scale_bits")),
            valueBits: _u8(vm.parseJsonUint(json, ".quantization.value_bits")),
            inputMin: _i64(vm.parseJsonInt(json, ".input_range[0]")),
            inputMax: _i64(vm.parseJsonInt(json, ".input_range[1]")),
            outputMin: _i64(vm.parseJsonInt(json, ".output_range[0]")),
            outputMax: _i64(vm.parseJsonInt(json, ".output_range[1]")),
            // Cards written before committed-input models existed have no `input_committed` (serde default).
            inputCommitted: vm.keyExistsJson(json, ".input_committed") && vm.parseJsonBool(json, ".input_committed")
        });
        card.artifactPath = string.concat(_dirname(card.path), vm.parseJsonString(json, ".files.verifier_artifact"));
    }

    /// @notice Stops the script if the card's verifier was made with a dev (insecure) SRS and this is not
    /// the dev chain: anyone who knows the dev SRS's secret can forge its proofs, and such a verifier
    /// reverts on every other chain anyway.
    function _refuseDevSrsOffDevChain(Card memory card) internal view {
        if (card.devSrs && block.chainid != DEV_CHAIN_ID) {
            revert(
                string.concat(
                    card.name,
                    ": refused on chain ",
                    vm.toString(block.chainid),
                    ": its verifier was made with",
                    " the insecure dev SRS (card srs.insecure = true) and runs only on chain 31337; run",
                    " `prover-node setup` with a ceremony SRS to deploy it here"
                )
            );
        }
    }

    /// @notice The model id the coordinator derives for the card's verifier code and encoding, checked equal
    /// to the card's.
    function _checkedModelId(IInferenceCoordinator coordinator, Card memory card, bytes32 codehash)
        internal
        pure
        returns (bytes32 modelId)
    {
        modelId = coordinator.computeModelId(codehash, card.encoding);
        if (modelId != card.modelId) {
            revert(
                string.concat(
                    card.name,
                    ": the coordinator derives model id ",
                    vm.toString(modelId),
                    " from verifier code ",
                    vm.toString(codehash),
                    " and the card's encoding, but the card says ",
                    vm.toString(card.modelId)
                )
            );
        }
    }

    /// @notice Starts a deployments file for `coordinator` (creating its directory).
    function _startDeployments(string memory path, address coordinator, bytes32 salt) internal {
        string memory dir = _dirname(path);
        if (bytes(dir).length != 0) vm.createDir(dir, true);
        vm.writeJson(
            string.concat(
                '{"chainId":',
                vm.toString(block.chainid),
                ',"coordinator":"',
                vm.toString(coordinator),
                '","salt":"',
                vm.toString(salt),
                '","models":{},"listings":{}}'
            ),
            path
        );
    }

    /// @notice Writes `value` (JSON) at `key` of the deployments file. `key` must not hold a name: forge
    /// splits it at every dot (see `_writeModel`).
    function _writeDeployments(string memory path, string memory value, string memory key) internal {
        vm.writeJson(value, path, key);
    }

    /// @notice Writes `entry` (JSON) as model `name` of the deployments file, keeping the other models.
    /// @dev `vm.writeJson(value, path, ".models." + name)` would split the key at every dot, so a card
    /// named "mlp.v2" would land at models.mlp.v2 (a file the CLI and the node refuse). The models object is
    /// rebuilt instead, its keys set as keys (never parsed as a path), and written whole at ".models"; the
    /// models already there are read back with a bracketed path (`.models['<name>']`), which forge's reader
    /// takes for any name without a single quote.
    function _writeModel(string memory path, string memory name, string memory entry) internal {
        _checkName(name);
        string memory json = vm.readFile(path);
        string memory models = "zkinfer.deployments.models";
        string memory out = vm.serializeJson(models, "{}");
        if (vm.keyExistsJson(json, ".models")) {
            string[] memory names = vm.parseJsonKeys(json, ".models");
            for (uint256 i; i < names.length; ++i) {
                if (keccak256(bytes(names[i])) == keccak256(bytes(name))) continue;
                _checkName(names[i]);
                out = vm.serializeString(models, names[i], _recordedModel(json, names[i]));
            }
        }
        out = vm.serializeString(models, name, entry);
        vm.writeJson(out, path, ".models");
    }

    /// @dev The entry of model `name` in the deployments file `json`, re-serialized field by field.
    function _recordedModel(string memory json, string memory name) private returns (string memory) {
        string memory at = string.concat(".models['", name, "']");
        string memory m = "zkinfer.deployments.recorded";
        vm.serializeBytes32(m, "modelId", vm.parseJsonBytes32(json, string.concat(at, ".modelId")));
        vm.serializeAddress(m, "verifier", vm.parseJsonAddress(json, string.concat(at, ".verifier")));
        vm.serializeBytes32(m, "codehash", vm.parseJsonBytes32(json, string.concat(at, ".codehash")));
        vm.serializeUint(m, "verifyGas", vm.parseJsonUint(json, string.concat(at, ".verifyGas")));
        return vm.serializeBool(m, "devSrs", vm.parseJsonBool(json, string.concat(at, ".devSrs")));
    }

    /// @dev Refuses a model name the scripts cannot key the deployments file by (a single quote ends the
    /// bracketed path `_writeModel` reads it with) or that is empty.
    function _checkName(string memory name) internal pure {
        bytes memory b = bytes(name);
        bool ok = b.length != 0;
        for (uint256 i; ok && i < b.length; ++i) {
            ok = b[i] != "'";
        }
        if (!ok) {
            revert(
                string.concat(
                    "model name \"",
                    name,
                    "\" cannot key the deployments file (empty or with a single quote): rename the model with",
                    " `prover-node setup --name`"
                )
            );
        }
    }

    /// @notice The unsigned integer in environment variable `name`, or `fallbackValue` if it is not set.
    /// @dev Not `vm.envOr`: it returns the default when the value does not parse, so ZKINFER_FEE=1_000
    /// would list for free. A set variable must parse (decimal, or 0x hex).
    function _envUintOr(string memory name, uint256 fallbackValue) internal view returns (uint256) {
        if (!vm.envExists(name)) return fallbackValue;
        try vm.envUint(name) returns (uint256 value) {
            return value;
        } catch {
            revert(_badEnv(name, "an unsigned integer (decimal digits, or 0x hex)"));
        }
    }

    /// @notice The bytes32 in environment variable `name`, or `fallbackValue` if it is not set (a set
    /// variable must parse, see `_envUintOr`).
    function _envBytes32Or(string memory name, bytes32 fallbackValue) internal view returns (bytes32) {
        if (!vm.envExists(name)) return fallbackValue;
        try vm.envBytes32(name) returns (bytes32 value) {
            return value;
        } catch {
            revert(_badEnv(name, "a bytes32 (0x and up to 64 hex digits)"));
        }
    }

    /// @notice The address in environment variable `name`, or `fallbackValue` if it is not set (a set
    /// variable must parse, see `_envUintOr`).
    function _envAddressOr(string memory name, address fallbackValue) internal view returns (address) {
        if (!vm.envExists(name)) return fallbackValue;
        try vm.envAddress(name) returns (address value) {
            return value;
        } catch {
            revert(_badEnv(name, "an address (0x and 40 hex digits)"));
        }
    }

    function _badEnv(string memory name, string memory expected) private view returns (string memory) {
        return string.concat(name, "=\"", vm.envString(name), "\" is not ", expected, "; nothing was sent");
    }

    function _product(uint256[] memory values) private pure returns (uint256 p) {
        p = 1;
        for (uint256 i; i < values.length; ++i) {
            p *= values[i];
        }
    }

    /// @dev The directory part of `path` with its trailing slash, or "" for a bare file name.
    function _dirname(string memory path) internal pure returns (string memory) {
        bytes memory b = bytes(path);
        uint256 end = b.length;
        while (end > 0 && b[end - 1] != "/") --end;
        bytes memory dir = new bytes(end);
        for (uint256 i; i < end; ++i) {
            dir[i] = b[i];
        }
        return string(dir);
    }

    function _u32(uint256 v) private pure returns (uint32) {
        require(v <= type(uint32).max, "card: value does not fit uint32");
        // forge-lint: disable-next-line(unsafe-typecast)
        return uint32(v);
    }

    function _u8(uint256 v) private pure returns (uint8) {
        require(v <= type(uint8).max, "card: value does not fit uint8");
        // forge-lint: disable-next-line(unsafe-typecast)
        return uint8(v);
    }

    function _i64(int256 v) private pure returns (int64) {
        require(v >= type(int64).min && v <= type(int64).max, "card: value does not fit int64");
        // forge-lint: disable-next-line(unsafe-typecast)
        return int64(v);
    }
}
