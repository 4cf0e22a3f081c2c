// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {Test} from "forge-std/Test.sol";

/// @notice contracts/solc-settings.json (read by verifier-gen, which compiles verifiers itself) must
/// describe exactly the compiler and settings forge uses, or a verifier's code hash, and so its model
/// id, would differ between the two.
contract SolcSettingsTest is Test {
    string internal toml;
    string internal json;

    function setUp() public {
        toml = vm.readFile("foundry.toml");
        json = vm.readFile("contracts/solc-settings.json");
    }

    function test_solcSettings_matchFoundryToml() public view {
        assertEq(
            vm.parseJsonBool(json, ".settings.optimizer.enabled"), vm.parseTomlBool(toml, ".profile.default.optimizer")
        );
        assertEq(
            vm.parseJsonUint(json, ".settings.optimizer.runs"),
            vm.parseTomlUint(toml, ".profile.default.optimizer_runs")
        );
        assertEq(
            vm.parseJsonBool(json, ".settings.optimizer.details.yul"),
            vm.parseTomlBool(toml, ".profile.default.optimizer_details.yul")
        );
        assertEq(
            vm.parseJsonString(json, ".settings.evmVersion"), vm.parseTomlString(toml, ".profile.default.evm_version")
        );
        assertEq(vm.parseJsonBool(json, ".settings.viaIR"), vm.parseTomlBool(toml, ".profile.default.via_ir"));
        assertEq(
            vm.parseJsonString(json, ".settings.metadata.bytecodeHash"),
            vm.parseTomlString(toml, ".profile.default.bytecode_hash")
        );
        assertEq(
            vm.parseJsonBool(json, ".settings.metadata.appendCBOR"),
            vm.parseTomlBool(toml, ".profile.default.cbor_metadata")
        );
    }

    function test_solcSettings_pinTheInstalledCompiler() public view {
        string memory pkg = vm.readFile("node_modules/solc/package.json");
        string memory version = vm.parseJsonString(pkg, ".version");
        string memory compiler = vm.parseJsonString(json, ".compiler");
        assertTrue(vm.indexOf(compiler, string.concat(version, "+commit.")) == 0, "compiler is not solc-js's");
    }
}
