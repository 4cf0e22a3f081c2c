// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {Test} from "forge-std/Test.sol";
import {DigitsMlpVerifier} from "../generated/DigitsMlpVerifier.sol";
import {DigitsCnnVerifier} from "../generated/DigitsCnnVerifier.sol";
import {IZkinferVerifier} from "../src/interfaces/IZkinferVerifier.sol";

/// @notice The generated verifiers alone, called with the fixtures' calldata (shared case 14): only the
/// exact `instances ‖ proof` verifies. An instance or proof scalar plus r, a coordinate plus q, a point
/// off the curve (cheaply), trailing or missing bytes all revert; `encodingHash()` returns the hash of
/// the encoding the verifier was generated for; a dev-SRS verifier runs on chain 31337 only.
abstract contract VerifierHardeningTest is Test {
    uint256 internal constant R = 21888242871839275222246405745257275088548364400416034343698204186575808495617;
    uint256 internal constant Q = 21888242871839275222246405745257275088696311157297823662689037894645226208583;

    address internal verifier;
    string internal json;
    bytes internal valid;
    uint256 internal instanceCount;

    function _fixture() internal pure virtual returns (string memory);
    function _deployVerifier() internal virtual returns (address);

    function setUp() public {
        json = vm.readFile(string.concat("contracts/test/fixtures/", _fixture(), ".json"));
        verifier = _deployVerifier();
        uint256[] memory instances = vm.parseJsonUintArray(json, ".instances");
        instanceCount = instances.length;
        valid = abi.encodePacked(instances, vm.parseJsonBytes(json, ".proof"));
    }

    function _verifies(bytes memory data) internal view returns (bool ok) {
        (ok,) = verifier.staticcall(data);
    }

    function _addAt(bytes memory data, uint256 at, uint256 v) internal pure returns (bytes memory out) {
        out = bytes.concat(data);
        uint256 word;
        assembly {
            word := mload(add(add(out, 0x20), at))
        }
        unchecked {
            word += v;
        }
        assembly {
            mstore(add(add(out, 0x20), at), word)
        }
    }

    function test_verifier_acceptsExactlyTheValidCalldata() public view {
        assertEq(valid.length, vm.parseJsonUint(json, ".calldataLen"));
        assertTrue(_verifies(valid), "valid calldata rejected");
    }

    function test_verifier_rejectsEveryInstancePlusR() public view {
        for (uint256 i; i < instanceCount; ++i) {
            assertFalse(_verifies(_addAt(valid, 32 * i, R)), "instance + r verified");
        }
    }

    function test_verifier_rejectsAProofScalarPlusR() public view {
        assertFalse(_verifies(_addAt(valid, vm.parseJsonUint(json, ".proofScalarOffset"), R)), "scalar + r verified");
    }

    function test_verifier_rejectsACoordinatePlusQ() public view {
        uint256 p = vm.parseJsonUint(json, ".pointOffset");
        assertFalse(_verifies(_addAt(valid, p, Q)), "x + q verified");
        assertFalse(_verifies(_addAt(valid, p + 32, Q)), "y + q verified");
    }

    function test_verifier_rejectsTrailingAndMissingBytes() public view {
        assertFalse(_verifies(bytes.concat(valid, bytes32(uint256(1)))), "32 trailing bytes verified");
        assertFalse(_verifies(bytes.concat(valid, hex"00")), "1 trailing byte verified");
        bytes memory truncated = new bytes(valid.length - 32);
        for (uint256 i; i < truncated.length; ++i) {
            truncated[i] = valid[i];
        }
        assertFalse(_verifies(truncated), "truncated proof verified");
        assertFalse(_verifies(""), "empty calldata verified");
    }

    /// A point off the curve used to reach an EC precompile, which then consumed all gas forwarded.
    function test_verifier_revertsCheaplyOnAPointOffTheCurve() public view {
        bytes memory bad = _addAt(valid, vm.parseJsonUint(json, ".pointOffset") + 32, 1);
        uint256 before = gasleft();
        (bool ok,) = verifier.staticcall{gas: 5_000_000}(bad);
        uint256 used = before - gasleft();
        assertFalse(ok);
        assertLt(used, 150_000, "an off-curve point burnt the gas limit");
    }

    function testFuzz_verifier_rejectsAnyAddedMultipleOfR(uint256 word, uint256 k) public view {
        uint256 words = valid.length / 32;
        word = bound(word, 0, words - 1);
        k = bound(k, 1, 5);
        // Only words that are scalars stay meaningful mod r; for coordinates the sum is simply invalid.
        assertFalse(_verifies(_addAt(valid, 32 * word, R * k)));
    }

    function test_encodingHash_isTheFixtureEncodingsHash() public view {
        bytes32 expected = keccak256(
            abi.encode(
                vm.parseJsonUint(json, ".inputLen"),
                vm.parseJsonUint(json, ".outputLen"),
                vm.parseJsonUint(json, ".inputScaleBits"),
                vm.parseJsonUint(json, ".outputScaleBits"),
                vm.parseJsonUint(json, ".valueBits"),
                vm.parseJsonInt(json, ".inputMin"),
                vm.parseJsonInt(json, ".inputMax"),
                vm.parseJsonInt(json, ".outputMin"),
                vm.parseJsonInt(json, ".outputMax"),
                // Fixtures written before committed-input models existed have no "inputCommitted".
                vm.keyExistsJson(json, ".inputCommitted") && vm.parseJsonBool(json, ".inputCommitted")
            )
        );
        assertEq(IZkinferVerifier(verifier).encodingHash(), expected);
        assertEq(expected, vm.parseJsonBytes32(json, ".encodingHash"));
    }

    /// Off the dev chain, a dev-SRS verifier refuses everything; a ceremony verifier does not care.
    function test_verifier_onAnotherChainRunsOnlyWithACeremonySrs() public {
        bool dev = vm.parseJsonUint(json, ".devChainId") != 0;
        vm.chainId(1);
        assertEq(_verifies(valid), !dev);
        (bool ok,) = verifier.staticcall(abi.encodeWithSelector(IZkinferVerifier.encodingHash.selector));
        assertEq(ok, !dev);
    }
}

contract DigitsMlpVerifierHardeningTest is VerifierHardeningTest {
    function _fixture() internal pure override returns (string memory) {
        return "digits_mlp";
    }

    function _deployVerifier() internal override returns (address) {
        return address(new DigitsMlpVerifier());
    }

    function test_fixture_isOnTheCeremonySrs() public view {
        assertEq(vm.parseJsonString(json, ".srsCeremony"), "hermez-ppot");
        assertEq(vm.parseJsonUint(json, ".devChainId"), 0);
    }
}

contract DigitsCnnVerifierHardeningTest is VerifierHardeningTest {
    function _fixture() internal pure override returns (string memory) {
        return "digits_cnn";
    }

    function _deployVerifier() internal override returns (address) {
        return address(new DigitsCnnVerifier());
    }
}
