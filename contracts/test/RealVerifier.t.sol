// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {Test} from "forge-std/Test.sol";
import {InferenceCoordinator} from "../src/InferenceCoordinator.sol";
import {IInferenceCoordinator} from "../src/interfaces/IInferenceCoordinator.sol";
import {DigitsMlpVerifier} from "../generated/DigitsMlpVerifier.sol";
import {DigitsCnnVerifier} from "../generated/DigitsCnnVerifier.sol";
import {GasMetering} from "./utils/GasMetering.sol";
import {DigitBounty} from "../src/examples/DigitBounty.sol";
import {IZkinferVerifier} from "../src/interfaces/IZkinferVerifier.sol";

/// @notice Loading the proof fixtures: the coordinator is deployed at the address, and runs on the chain,
/// the fixture proofs were bound to.
abstract contract FixtureLoader is GasMetering {
    function _encodingOf(string memory json) internal view returns (IInferenceCoordinator.ModelEncoding memory) {
        return IInferenceCoordinator.ModelEncoding({
            inputLen: uint32(vm.parseJsonUint(json, ".inputLen")),
            outputLen: uint32(vm.parseJsonUint(json, ".outputLen")),
            inputScaleBits: uint8(vm.parseJsonUint(json, ".inputScaleBits")),
            outputScaleBits: uint8(vm.parseJsonUint(json, ".outputScaleBits")),
            valueBits: uint8(vm.parseJsonUint(json, ".valueBits")),
            inputMin: int64(vm.parseJsonInt(json, ".inputMin")),
            inputMax: int64(vm.parseJsonInt(json, ".inputMax")),
            outputMin: int64(vm.parseJsonInt(json, ".outputMin")),
            outputMax: int64(vm.parseJsonInt(json, ".outputMax")),
            inputCommitted: _inputCommittedOf(json)
        });
    }

    /// Fixtures written before committed-input models existed have no "inputCommitted": they are public.
    function _inputCommittedOf(string memory json) internal view returns (bool) {
        return vm.keyExistsJson(json, ".inputCommitted") && vm.parseJsonBool(json, ".inputCommitted");
    }

    /// The verifier calldata of the fixture's proof: a valid sample for `registerModel`.
    function _sampleOf(string memory json) internal pure returns (bytes memory) {
        return abi.encodePacked(vm.parseJsonUintArray(json, ".instances"), vm.parseJsonBytes(json, ".proof"));
    }

    /// Verifiers generated before IZkinferVerifier existed do not answer `encodingHash()`: until the
    /// regenerated verifiers land, a mocked call answers for them with the fixture's encoding. A verifier
    /// that answers is used as it is.
    function _reportEncoding(address v, IInferenceCoordinator.ModelEncoding memory e) internal {
        bytes memory call_ = abi.encodeWithSelector(IZkinferVerifier.encodingHash.selector);
        (bool ok, bytes memory ret) = v.staticcall{gas: 100_000}(call_);
        if (ok && ret.length == 32) return;
        vm.mockCall(v, call_, abi.encode(keccak256(abi.encode(e))));
    }

    /// A coordinator at the fixture's address, on the fixture's chain.
    function _fixtureCoordinator(string memory json) internal returns (InferenceCoordinator) {
        vm.chainId(vm.parseJsonUint(json, ".chainId"));
        address at = vm.parseJsonAddress(json, ".coordinator");
        deployCodeTo("InferenceCoordinator.sol:InferenceCoordinator", at);
        return InferenceCoordinator(at);
    }
}

/// @notice The coordinator with the generated halo2 verifiers of the zoo models and proofs made by the
/// Rust prover (contracts/test/fixtures/*.json, written by scripts/gen-fixtures). A valid proof must
/// fulfil; a flipped proof byte, another output, another fulfiller, another request, another coordinator
/// or another chain must not.
abstract contract RealVerifierTest is FixtureLoader {
    uint256 internal constant R = 21888242871839275222246405745257275088548364400416034343698204186575808495617;

    InferenceCoordinator internal coordinator;
    address internal verifier;
    string internal json;
    bytes32 internal modelId;
    uint256 internal listingId;
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
        coordinator = _fixtureCoordinator(json);
        verifier = _deployVerifier();
        encoding = _encodingOf(json);
        _reportEncoding(verifier, encoding);
        modelId = coordinator.registerModel(verifier, encoding, _sampleOf(json));
        listingId = coordinator.createListing(modelId, 0.001 ether, 1 hours);
        requestId = vm.parseJsonUint(json, ".requestId");
        fulfiller = vm.parseJsonAddress(json, ".fulfiller");
        input = vm.parseJsonIntArray(json, ".input");
        output = vm.parseJsonIntArray(json, ".output");
        proof = vm.parseJsonBytes(json, ".proof");

        vm.deal(requester, 1 ether);
        // The proof is bound to request `requestId`: make exactly that many requests.
        for (uint256 i; i < requestId; ++i) {
            vm.prank(requester);
            coordinator.requestInference{value: 0.001 ether}(listingId, input, 0, 0.001 ether);
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
                bytes32(uint256(int256(encoding.outputMax))),
                bytes32(uint256(encoding.inputCommitted ? 1 : 0))
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
        uint256 other = coordinator.requestInference{value: 0.001 ether}(listingId, input, 0, 0.001 ether);
        vm.expectRevert(IInferenceCoordinator.InvalidProof.selector);
        _fulfil(other, fulfiller, output, proof);
    }

    /// The same request id and fulfiller on another deployment of the coordinator (same chain): the binding
    /// names the coordinator, so the proof does not verify there.
    function test_fulfillInference_rejectsReplayOnASecondCoordinator() public {
        InferenceCoordinator second = new InferenceCoordinator();
        bytes32 id = second.registerModel(verifier, encoding, _sampleOf(json));
        uint256 listing = second.createListing(id, 0, 1 hours);
        for (uint256 i; i < requestId; ++i) {
            vm.prank(requester);
            second.requestInference(listing, input, 0, 0);
        }
        vm.expectRevert(IInferenceCoordinator.InvalidProof.selector);
        vm.prank(fulfiller);
        second.fulfillInference(requestId, input, output, proof);
        // The proof is still good where it was made for.
        _fulfil(requestId, fulfiller, output, proof);
    }

    /// The same coordinator address and request on another chain (a fork, a testnet deployment at the same
    /// address): the binding names the chain id.
    function test_fulfillInference_rejectsReplayOnAnotherChain() public {
        uint256 snapshot = vm.snapshotState();
        vm.chainId(block.chainid + 1);
        vm.expectRevert(IInferenceCoordinator.InvalidProof.selector);
        _fulfil(requestId, fulfiller, output, proof);
        vm.revertToState(snapshot);
        _fulfil(requestId, fulfiller, output, proof);
    }

    /// verifyGas comes from running the verifier on the sample: above what it used, within the margin.
    function test_registerModel_measuresTheRealVerifier() public view {
        uint256 verifyGas = coordinator.getModel(modelId).verifyGas;
        assertGt(verifyGas, 250_000);
        assertLt(verifyGas, _verifyGasBudget());
    }

    /// A proof whose first commitment is not on the curve: the verifier rejects it within the model's
    /// verifyGas, however much gas the fulfiller sent.
    function test_fulfillInference_boundsTheCostOfAnOffCurveProof() public {
        bytes memory bad = bytes.concat(proof);
        for (uint256 i; i < 64; ++i) {
            bad[i] = 0;
        }
        bad[31] = 0x01;
        bad[63] = 0x01; // (1, 1): 1 != 1 + 3
        uint256[] memory instances = vm.parseJsonUintArray(json, ".instances");
        // Called directly, the hardened verifier reverts at the first bad point, before any precompile
        // could burn what it was given (verifier-gen's hardening; the old verifiers burnt all 5M)...
        uint256 before = gasleft();
        (bool ok,) = verifier.staticcall{gas: 5_000_000}(abi.encodePacked(instances, bad));
        assertFalse(ok);
        assertLt(before - gasleft(), 100_000, "an off-curve point was not rejected at once");
        // ...and through the coordinator it gets verifyGas at most, whatever the fulfiller sent.
        uint256 verifyGas = coordinator.getModel(modelId).verifyGas;
        vm.prank(fulfiller);
        before = gasleft();
        try coordinator.fulfillInference{gas: 10_000_000}(requestId, input, output, bad) {
            fail();
        } catch (bytes memory err) {
            assertEq(err, abi.encodeWithSelector(IInferenceCoordinator.InvalidProof.selector));
        }
        // The rest is the coordinator's own work and this test's ABI encoding of ~3 KB of arguments.
        assertLt(before - gasleft(), verifyGas + 250_000, "a bad proof cost more than verifyGas");
    }

    /// Too little gas for the verifier to get its verifyGas is a named error, not InvalidProof.
    function test_fulfillInference_revertsWhenTooLittleGasForTheVerifier() public {
        vm.prank(fulfiller);
        try coordinator.fulfillInference{gas: 200_000}(requestId, input, output, proof) {
            fail();
        } catch (bytes memory err) {
            assertEq(bytes4(err), IInferenceCoordinator.InsufficientGasForVerifier.selector);
        }
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

    /// On the Hermez ceremony SRS the MLP fits k = 11 with 4 advice columns (k = 13 and 1 column on the
    /// dev SRS before): about 110k more verify gas.
    function _verifyGasBudget() internal pure override returns (uint256) {
        return 560_000;
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

    /// The sizing puts prove time first (a work slack of 0.05 units, not 0.5): the CNN is laid out at
    /// k = 12 with 10 advice columns and one dot-product lane. It proves in about two thirds of the
    /// time of k = 13 with 5 columns, for about 110k more verify gas (632k per fulfilment, measured).
    function _verifyGasBudget() internal pure override returns (uint256) {
        return 680_000;
    }
}

/// @notice Random tamperings of the real proofs, against the generated verifiers directly.
contract RealProofTamperingTest is Test {
    uint256 internal constant R = 21888242871839275222246405745257275088548364400416034343698204186575808495617;

    struct Fixture {
        address verifier;
        uint256[] instances;
        bytes proof;
    }

    Fixture internal mlp;
    Fixture internal cnn;

    function _load(Fixture storage f, string memory name, address verifier) internal {
        string memory json = vm.readFile(string.concat("contracts/test/fixtures/", name, ".json"));
        f.verifier = verifier;
        f.instances = vm.parseJsonUintArray(json, ".instances");
        f.proof = vm.parseJsonBytes(json, ".proof");
        vm.chainId(vm.parseJsonUint(json, ".chainId"));
        (bool ok,) = verifier.staticcall(abi.encodePacked(f.instances, f.proof));
        assertTrue(ok, "the untampered proof must verify");
    }

    function setUp() public {
        _load(mlp, "digits_mlp", address(new DigitsMlpVerifier()));
        _load(cnn, "digits_cnn", address(new DigitsCnnVerifier()));
    }

    /// 10,000 random tamperings of a real proof of either zoo model and its instances, made directly
    /// against the verifier: one to three proof bytes flipped, and/or one instance word replaced by another
    /// canonical field element (the coordinator only ever sends canonical words). None may verify.
    /// forge-config: default.fuzz.runs = 10000
    function testFuzz_verifier_rejectsRandomTampering(uint256 seed, uint8 mode) public view {
        Fixture storage f = seed % 2 == 0 ? mlp : cnn;
        uint256[] memory instances = f.instances;
        bytes memory proof = f.proof;
        bytes memory bad = bytes.concat(proof);
        mode = uint8(bound(mode, 0, 2));
        if (mode != 1) {
            uint256 flips = 1 + (seed >> 128) % 3;
            for (uint256 k; k < flips; ++k) {
                uint256 r = uint256(keccak256(abi.encode(seed, k)));
                uint8 mask = uint8(r >> 8) | 1;
                bad[(r >> 16) % bad.length] ^= bytes1(mask);
            }
        }
        if (mode != 0) {
            uint256 r = uint256(keccak256(abi.encode(seed, "instance")));
            uint256 w = r % instances.length;
            uint256 delta = 1 + (r >> 8) % (R - 1);
            instances[w] = addmod(instances[w], delta, R);
        }
        if (keccak256(bad) == keccak256(proof) && mode == 0) return; // flips cancelled out
        (bool ok,) = f.verifier.staticcall{gas: 2_000_000}(abi.encodePacked(instances, bad));
        assertFalse(ok, "a tampered proof verified");
    }
}

/// @notice DigitBounty paid out by a real proof: the MLP fixture's image is classified as its `prediction`.
contract DigitBountyRealProofTest is FixtureLoader {
    InferenceCoordinator internal coordinator;
    DigitBounty internal bounty;
    string internal json;

    function _deployBounty() internal {
        json = vm.readFile("contracts/test/fixtures/digits_mlp.json");
        coordinator = _fixtureCoordinator(json);
        address verifier = address(new DigitsMlpVerifier());
        _reportEncoding(verifier, _encodingOf(json));
        bytes32 modelId = coordinator.registerModel(verifier, _encodingOf(json), _sampleOf(json));
        uint256 listingId = coordinator.createListing(modelId, 0.001 ether, 1 hours);
        uint8 digit = uint8(vm.parseJsonUint(json, ".prediction"));
        bounty = new DigitBounty{value: 1 ether}(coordinator, listingId, digit, 1 hours, 1 hours);
    }

    function test_onInferenceResult_paysBountyOnRealProof() public {
        _deployBounty();
        int256[] memory pixels = vm.parseJsonIntArray(json, ".input");
        int256[] memory logits = vm.parseJsonIntArray(json, ".output");
        assertEq(bounty.argmax(logits), vm.parseJsonUint(json, ".prediction"));

        address alice = makeAddr("alice");
        vm.deal(alice, 0.001 ether);
        vm.prank(alice);
        bounty.commit(bounty.commitmentOf(alice, pixels, "salt"));
        vm.warp(block.timestamp + 1 hours + 1);
        vm.prank(alice);
        uint256 id = bounty.reveal{value: 0.001 ether}(pixels, "salt");
        assertEq(id, vm.parseJsonUint(json, ".requestId"));

        vm.prank(vm.parseJsonAddress(json, ".fulfiller"));
        coordinator.fulfillInference(id, pixels, logits, vm.parseJsonBytes(json, ".proof"));
        assertEq(alice.balance, 1 ether);
        assertEq(bounty.bounty(), 0);
        (,, bool callbackSucceeded) = coordinator.getResult(id);
        assertTrue(callbackSucceeded);
    }
}
