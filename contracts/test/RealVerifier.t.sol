// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {Test} from "forge-std/Test.sol";
import {InferenceCoordinator} from "../src/InferenceCoordinator.sol";
import {IInferenceCoordinator} from "../src/interfaces/IInferenceCoordinator.sol";
import {DigitsMlpVerifier} from "../generated/DigitsMlpVerifier.sol";
import {DigitsCnnVerifier} from "../generated/DigitsCnnVerifier.sol";
import {GasMetering} from "./utils/GasMetering.sol";
import {DigitBounty} from "../src/examples/DigitBounty.sol";

/// @notice The coordinator with the generated halo2 verifiers of the zoo models and proofs made by the
/// Rust prover (contracts/test/fixtures/*.json, written by scripts/gen-fixtures). A valid proof must
/// fulfil; a flipped proof byte, another output, another fulfiller or another request must not.
abstract contract RealVerifierTest is GasMetering {
    InferenceCoordinator internal coordinator;
    address internal verifier;
    string internal json;
    bytes32 internal modelId;
    uint256 internal requestId;
    address internal fulfiller;
    int256[] internal input;
    int256[] internal output;
    bytes internal proof;
    IInferenceCoordinator.ModelEncoding internal encoding;

    address internal requester = makeAddr("requester");

    function _fixture() internal pure virtual returns (string memory);
    function _otherFixture() internal pure virtual returns (string memory);
    function _deployVerifier() internal virtual returns (address);
    function _verifyGasBudget() internal pure virtual returns (uint256);

    function setUp() public {
        json = vm.readFile(string.concat("contracts/test/fixtures/", _fixture(), ".json"));
        coordinator = new InferenceCoordinator();
        verifier = _deployVerifier();
        encoding = IInferenceCoordinator.ModelEncoding({
            inputLen: uint32(vm.parseJsonUint(json, ".inputLen")),
            outputLen: uint32(vm.parseJsonUint(json, ".outputLen")),
            inputScaleBits: uint8(vm.parseJsonUint(json, ".inputScaleBits")),
            outputScaleBits: uint8(vm.parseJsonUint(json, ".outputScaleBits")),
            valueBits: uint8(vm.parseJsonUint(json, ".valueBits")),
            inputMin: int64(vm.parseJsonInt(json, ".inputMin")),
            inputMax: int64(vm.parseJsonInt(json, ".inputMax")),
            outputMin: int64(vm.parseJsonInt(json, ".outputMin")),
            outputMax: int64(vm.parseJsonInt(json, ".outputMax"))
        });
        modelId = coordinator.registerModel(verifier, encoding, 0.001 ether, 1 hours);
        requestId = vm.parseJsonUint(json, ".requestId");
        fulfiller = vm.parseJsonAddress(json, ".fulfiller");
        input = vm.parseJsonIntArray(json, ".input");
        output = vm.parseJsonIntArray(json, ".output");
        proof = vm.parseJsonBytes(json, ".proof");

        vm.deal(requester, 1 ether);
        // The proof is bound to request `requestId`: make exactly that many requests.
        for (uint256 i; i < requestId; ++i) {
            vm.prank(requester);
            coordinator.requestInference{value: 0.001 ether}(modelId, input, 0);
        }
    }

    function _fulfil(uint256 id, address who, int256[] memory out, bytes memory proofBytes) internal {
        vm.prank(who);
        coordinator.fulfillInference(id, input, out, proofBytes);
    }

    function test_verifier_hasTheCodeVerifierGenCompiled() public view {
        assertEq(verifier.codehash, vm.parseJsonBytes32(json, ".codehash"));
        // EIP-170.
        assertLe(verifier.code.length, 24_576);
    }

    /// The id as verifier_gen::model_id computes it: keccak256 of the code hash then one 32-byte word per
    /// field (signed fields sign-extended), written here without abi.encode of the struct.
    function test_registerModel_derivesTheIdTheRustSideDerives() public view {
        bytes32 expected = keccak256(
            bytes.concat(
                verifier.codehash,
                bytes32(uint256(encoding.inputLen)),
                bytes32(uint256(encoding.outputLen)),
                bytes32(uint256(encoding.inputScaleBits)),
                bytes32(uint256(encoding.outputScaleBits)),
                bytes32(uint256(encoding.valueBits)),
                bytes32(uint256(int256(encoding.inputMin))),
                bytes32(uint256(int256(encoding.inputMax))),
                bytes32(uint256(int256(encoding.outputMin))),
                bytes32(uint256(int256(encoding.outputMax)))
            )
        );
        assertEq(modelId, expected);
        // ...and it is the id in the model card verifier-gen wrote (forge compiled the same bytecode).
        assertEq(modelId, vm.parseJsonBytes32(json, ".modelId"));
    }

    function test_publicInstances_matchTheProversInstances() public view {
        assertEq(
            coordinator.publicInstances(encoding.valueBits, requestId, fulfiller, input, output),
            vm.parseJsonUintArray(json, ".instances")
        );
    }

    /// The verifier alone, called as the coordinator calls it.
    function test_verifier_acceptsTheProofAndRejectsAnotherInstance() public view {
        uint256[] memory instances = vm.parseJsonUintArray(json, ".instances");
        (bool ok, bytes memory ret) = verifier.staticcall(abi.encodePacked(instances, proof));
        assertTrue(ok, "valid proof rejected");
        assertEq(ret.length, 0);
        instances[instances.length - 1] ^= 1;
        (ok,) = verifier.staticcall(abi.encodePacked(instances, proof));
        assertFalse(ok, "proof accepted for another instance");
    }

    function test_fulfillInference_acceptsTheProversProof() public {
        vm.expectEmit(address(coordinator));
        emit IInferenceCoordinator.InferenceFulfilled(requestId, fulfiller, output);
        vm.cool(address(coordinator));
        vm.cool(verifier);
        _fulfil(requestId, fulfiller, output, proof);
        uint256 used = _lastGas(abi.encodeCall(coordinator.fulfillInference, (requestId, input, output, proof)));
        assertLt(used, _verifyGasBudget(), "fulfilment gas");

        (IInferenceCoordinator.RequestStatus status, int256[] memory stored,) = coordinator.getResult(requestId);
        assertEq(uint8(status), uint8(IInferenceCoordinator.RequestStatus.Fulfilled));
        assertEq(stored, output);
        assertEq(coordinator.withdrawable(fulfiller), 0.001 ether);
    }

    function test_fulfillInference_rejectsAFlippedProofByte() public {
        bytes memory bad = bytes.concat(proof);
        bad[bad.length / 2] ^= 0x01;
        vm.expectRevert(IInferenceCoordinator.InvalidProof.selector);
        _fulfil(requestId, fulfiller, output, bad);
    }

    function testFuzz_fulfillInference_rejectsAnyFlippedProofByte(uint256 index, uint8 mask) public {
        index = bound(index, 0, proof.length - 1);
        mask = uint8(bound(mask, 1, 255));
        bytes memory bad = bytes.concat(proof);
        bad[index] ^= bytes1(mask);
        vm.expectRevert(IInferenceCoordinator.InvalidProof.selector);
        _fulfil(requestId, fulfiller, output, bad);
    }

    function test_fulfillInference_rejectsAnotherOutput() public {
        int256[] memory other = new int256[](output.length);
        for (uint256 i; i < output.length; ++i) {
            other[i] = output[i];
        }
        // Make another class win: the claim a dishonest fulfiller would like to make.
        other[0] = output[0] == encoding.outputMax ? output[0] - 1 : output[0] + 1;
        vm.expectRevert(IInferenceCoordinator.InvalidProof.selector);
        _fulfil(requestId, fulfiller, other, proof);
    }

    function test_fulfillInference_rejectsTheProofFromAnotherFulfiller() public {
        vm.expectRevert(IInferenceCoordinator.InvalidProof.selector);
        _fulfil(requestId, makeAddr("front-runner"), output, proof);
        // The proof's own fulfiller still can.
        _fulfil(requestId, fulfiller, output, proof);
    }

    /// The other zoo model proved the same image for the same request and fulfiller: its proof is valid,
    /// but for another verifying key, so neither this verifier nor this model's request accepts it.
    function test_fulfillInference_rejectsAValidProofOfTheOtherModel() public {
        string memory otherJson = vm.readFile(string.concat("contracts/test/fixtures/", _otherFixture(), ".json"));
        bytes memory otherProof = vm.parseJsonBytes(otherJson, ".proof");
        uint256[] memory otherInstances = vm.parseJsonUintArray(otherJson, ".instances");
        (bool ok,) = verifier.staticcall(abi.encodePacked(otherInstances, otherProof));
        assertFalse(ok, "the other model's proof verified");
        vm.expectRevert(IInferenceCoordinator.InvalidProof.selector);
        _fulfil(requestId, fulfiller, vm.parseJsonIntArray(otherJson, ".output"), otherProof);
    }

    function test_fulfillInference_rejectsTheProofForAnotherRequest() public {
        vm.prank(requester);
        uint256 other = coordinator.requestInference{value: 0.001 ether}(modelId, input, 0);
        vm.expectRevert(IInferenceCoordinator.InvalidProof.selector);
        _fulfil(other, fulfiller, output, proof);
    }
}

contract DigitsMlpRealVerifierTest is RealVerifierTest {
    function _fixture() internal pure override returns (string memory) {
        return "digits_mlp";
    }

    function _otherFixture() internal pure override returns (string memory) {
        return "digits_cnn";
    }

    function _deployVerifier() internal override returns (address) {
        return address(new DigitsMlpVerifier());
    }

    function _verifyGasBudget() internal pure override returns (uint256) {
        return 440_000;
    }
}

contract DigitsCnnRealVerifierTest is RealVerifierTest {
    function _fixture() internal pure override returns (string memory) {
        return "digits_cnn";
    }

    function _otherFixture() internal pure override returns (string memory) {
        return "digits_mlp";
    }

    function _deployVerifier() internal override returns (address) {
        return address(new DigitsCnnVerifier());
    }

    function _verifyGasBudget() internal pure override returns (uint256) {
        return 510_000;
    }
}

/// @notice DigitBounty paid out by a real proof: the MLP fixture's image is classified as its `prediction`.
contract DigitBountyRealProofTest is Test {
    function test_onInferenceResult_paysBountyOnRealProof() public {
        string memory json = vm.readFile("contracts/test/fixtures/digits_mlp.json");
        InferenceCoordinator coordinator = new InferenceCoordinator();
        bytes32 modelId = coordinator.registerModel(
            address(new DigitsMlpVerifier()),
            IInferenceCoordinator.ModelEncoding(
                uint32(vm.parseJsonUint(json, ".inputLen")),
                uint32(vm.parseJsonUint(json, ".outputLen")),
                uint8(vm.parseJsonUint(json, ".inputScaleBits")),
                uint8(vm.parseJsonUint(json, ".outputScaleBits")),
                uint8(vm.parseJsonUint(json, ".valueBits")),
                int64(vm.parseJsonInt(json, ".inputMin")),
                int64(vm.parseJsonInt(json, ".inputMax")),
                int64(vm.parseJsonInt(json, ".outputMin")),
                int64(vm.parseJsonInt(json, ".outputMax"))
            ),
            0.001 ether,
            1 hours
        );
        uint8 digit = uint8(vm.parseJsonUint(json, ".prediction"));
        DigitBounty bounty = new DigitBounty{value: 1 ether}(coordinator, modelId, digit);
        int256[] memory pixels = vm.parseJsonIntArray(json, ".input");
        int256[] memory logits = vm.parseJsonIntArray(json, ".output");
        assertEq(bounty.argmax(logits), digit);

        address alice = makeAddr("alice");
        vm.deal(alice, 0.001 ether);
        vm.prank(alice);
        uint256 id = bounty.submit{value: 0.001 ether}(pixels);
        assertEq(id, vm.parseJsonUint(json, ".requestId"));

        vm.prank(vm.parseJsonAddress(json, ".fulfiller"));
        coordinator.fulfillInference(id, pixels, logits, vm.parseJsonBytes(json, ".proof"));
        assertEq(alice.balance, 1 ether);
        assertEq(bounty.bounty(), 0);
        (,, bool callbackSucceeded) = coordinator.getResult(id);
        assertTrue(callbackSucceeded);
    }
}
