// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {InferenceCoordinator} from "../src/InferenceCoordinator.sol";
import {IInferenceCoordinator} from "../src/interfaces/IInferenceCoordinator.sol";
import {MockVerifier, ProofBook} from "./mocks/MockVerifier.sol";
import {GasMeteringConsumer} from "./mocks/Consumers.sol";
import {InstanceEncoding} from "./utils/InstanceEncoding.sol";
import {GasMetering} from "./utils/GasMetering.sol";
import {console} from "forge-std/console.sol";

/// @notice A digits-sized model (64 inputs, 10 outputs) on a MockVerifier, public or committed-input, and
/// one listing of it. Figures are execution gas as forge meters it: without the 21,000 transaction base
/// and calldata. The mock verifier costs ~5k (a keccak and a cold SLOAD); a real halo2 verifier costs
/// ~250k-350k more.
abstract contract DigitsGasTestBase is GasMetering {
    InferenceCoordinator internal coordinator;
    ProofBook internal book;
    MockVerifier internal verifier;
    bytes32 internal modelId;
    uint256 internal listingId;
    address internal requester = makeAddr("requester");
    address internal node = makeAddr("node");

    function _setUp(bool inputCommitted) internal {
        coordinator = new InferenceCoordinator();
        book = new ProofBook();
        IInferenceCoordinator.ModelEncoding memory encoding =
            IInferenceCoordinator.ModelEncoding(64, 10, 4, 7, 16, 0, 16, -32768, 32767, inputCommitted);
        verifier = new MockVerifier(book, coordinator.computeEncodingHash(encoding));
        book.accept("sample");
        modelId = coordinator.registerModel(address(verifier), encoding, "sample");
        listingId = coordinator.createListing(modelId, 0.001 ether, 1 hours);
        vm.deal(requester, 1 ether);
    }

    function _logits() internal pure returns (int256[] memory logits) {
        logits = new int256[](10);
        for (uint256 i; i < 10; ++i) {
            logits[i] = int256(i) * 1000 - 4000;
        }
    }

    /// @dev As if the next call opened a new transaction.
    function _cool() internal {
        vm.cool(address(coordinator));
        vm.cool(address(verifier));
        vm.cool(address(book));
    }
}

/// @notice Gas budgets for public requests of the digits-sized model, asserted so that a regression fails.
/// Each measured call runs on cold accounts and storage, as the first call of a transaction would.
contract GasTest is DigitsGasTestBase {
    function setUp() public {
        _setUp(false);
    }

    function _pixels() internal pure returns (int256[] memory pixels) {
        pixels = new int256[](64);
        for (uint256 i; i < 64; ++i) {
            pixels[i] = int256(i % 17);
        }
    }

    function _request(uint32 callbackGasLimit) internal returns (uint256) {
        vm.prank(requester);
        return coordinator.requestInference{value: 0.001 ether}(listingId, _pixels(), callbackGasLimit, 0.001 ether);
    }

    function _proof(uint256 id) internal returns (bytes memory proof) {
        // A real SHPLONK proof for a small model is ~1-2 KB; the mock's is short, so calldata differs.
        proof = abi.encodePacked("proof", id);
        book.accept(InstanceEncoding.verifierCalldata(16, address(coordinator), id, node, _pixels(), _logits(), proof));
    }

    function _requestData() internal view returns (bytes memory) {
        return abi.encodeCall(coordinator.requestInference, (listingId, _pixels(), 0, 0.001 ether));
    }

    function _fulfilData(uint256 id, bytes memory proof) internal view returns (bytes memory) {
        return abi.encodeCall(coordinator.fulfillInference, (id, _pixels(), _logits(), proof));
    }

    function test_gas_requestInference() public {
        _cool();
        _request(0);
        assertLt(_lastGas(_requestData()), 160_000, "first request ever");
        _cool();
        _request(0);
        assertLt(_lastGas(_requestData()), 145_000, "request");
    }

    function test_gas_fulfillInference() public {
        uint256 a = _request(0);
        uint256 b = _request(0);
        bytes memory proofA = _proof(a);
        bytes memory proofB = _proof(b);
        _cool();
        vm.prank(node);
        coordinator.fulfillInference(a, _pixels(), _logits(), proofA);
        assertLt(_lastGas(_fulfilData(a, proofA)), 165_000, "fulfil, the fulfiller's first balance");
        _cool();
        vm.prank(node);
        coordinator.fulfillInference(b, _pixels(), _logits(), proofB);
        assertLt(_lastGas(_fulfilData(b, proofB)), 145_000, "fulfil");
    }

    function test_gas_fulfillInferenceWithCallback() public {
        GasMeteringConsumer consumer = new GasMeteringConsumer(coordinator);
        vm.deal(address(consumer), 1 ether);
        vm.prank(address(consumer));
        uint256 id = coordinator.requestInference{value: 0.001 ether}(listingId, _pixels(), 50_000, 0.001 ether);
        bytes memory proof = _proof(id);
        _cool();
        vm.cool(address(consumer));
        vm.prank(node);
        coordinator.fulfillInference(id, _pixels(), _logits(), proof);
        assertLt(_lastGas(_fulfilData(id, proof)), 195_000, "fulfil with a callback");
    }

    function test_gas_cancelRequest() public {
        uint256 id = _request(0);
        vm.warp(block.timestamp + 1 hours + 1);
        _cool();
        vm.prank(requester);
        coordinator.cancelRequest(id);
        assertLt(_lastGas(abi.encodeCall(coordinator.cancelRequest, (id))), 37_000, "cancel");
    }

    function test_gas_withdraw() public {
        uint256 id = _request(0);
        bytes memory proof = _proof(id);
        vm.prank(node);
        coordinator.fulfillInference(id, _pixels(), _logits(), proof);
        _cool();
        vm.prank(node);
        coordinator.withdraw(payable(node));
        assertLt(_lastGas(abi.encodeCall(coordinator.withdraw, (payable(node)))), 45_000, "withdraw");
    }
}

/// @notice Gas of private requests of the committed-input digits-sized model: the request carries a
/// 32-byte commitment and a 593-byte ciphertext (81 + 8 * 64) instead of 64 input words, and books a fifth
/// slot (the prover); fulfilment sends no input and reads the prover's slot. Printed and asserted.
contract PrivateGasTest is DigitsGasTestBase {
    bytes32 internal constant COMMITMENT = bytes32(uint256(0x1234567890abcdef));
    bytes32 internal constant KEY = keccak256("node's X25519 public key");
    uint256 internal constant FIRST_REQUEST_BUDGET = 165_000;
    uint256 internal constant REQUEST_BUDGET = 148_000;
    uint256 internal constant FIRST_FULFIL_BUDGET = 148_000;
    uint256 internal constant FULFIL_BUDGET = 128_000;

    function setUp() public {
        _setUp(true);
        vm.prank(node);
        coordinator.setEncryptionKey(KEY);
    }

    function _ciphertext() internal pure returns (bytes memory ciphertext) {
        ciphertext = new bytes(81 + 8 * 64);
        for (uint256 i; i < ciphertext.length; ++i) {
            ciphertext[i] = bytes1(uint8(uint256(keccak256(abi.encode(i)))));
        }
    }

    function _request() internal returns (uint256) {
        vm.prank(requester);
        return coordinator.requestPrivateInference{value: 0.001 ether}(
            listingId, COMMITMENT, node, KEY, _ciphertext(), 0, 0.001 ether
        );
    }

    function _requestData() internal view returns (bytes memory) {
        return abi.encodeCall(
            coordinator.requestPrivateInference, (listingId, COMMITMENT, node, KEY, _ciphertext(), 0, 0.001 ether)
        );
    }

    function _proof(uint256 id) internal returns (bytes memory proof) {
        proof = abi.encodePacked("proof", id);
        book.accept(
            InstanceEncoding.privateVerifierCalldata(16, address(coordinator), id, node, COMMITMENT, _logits(), proof)
        );
    }

    function _fulfilData(uint256 id, bytes memory proof) internal view returns (bytes memory) {
        return abi.encodeCall(coordinator.fulfillPrivateInference, (id, _logits(), proof));
    }

    function test_gas_requestPrivateInference() public {
        _cool();
        _request();
        uint256 first = _lastGas(_requestData());
        _cool();
        _request();
        uint256 next = _lastGas(_requestData());
        console.log("requestPrivateInference, first request ever: %d gas", first);
        console.log("requestPrivateInference: %d gas", next);
        assertLt(first, FIRST_REQUEST_BUDGET, "first private request ever");
        assertLt(next, REQUEST_BUDGET, "private request");
    }

    function test_gas_fulfillPrivateInference() public {
        uint256 a = _request();
        uint256 b = _request();
        bytes memory proofA = _proof(a);
        bytes memory proofB = _proof(b);
        _cool();
        vm.prank(node);
        coordinator.fulfillPrivateInference(a, _logits(), proofA);
        uint256 first = _lastGas(_fulfilData(a, proofA));
        _cool();
        vm.prank(node);
        coordinator.fulfillPrivateInference(b, _logits(), proofB);
        uint256 next = _lastGas(_fulfilData(b, proofB));
        console.log("fulfillPrivateInference, the prover's first balance: %d gas", first);
        console.log("fulfillPrivateInference: %d gas (mock verifier)", next);
        assertLt(first, FIRST_FULFIL_BUDGET, "private fulfil, the prover's first balance");
        assertLt(next, FULFIL_BUDGET, "private fulfil");
    }
}
