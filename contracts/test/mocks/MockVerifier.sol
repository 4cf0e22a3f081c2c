// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {IZkinferVerifier} from "../../src/interfaces/IZkinferVerifier.sol";

/// @notice The set of verifier calldata (instances || proof) a MockVerifier accepts, by keccak256.
/// Kept apart from the verifier so the verifier has no function selectors that could capture calldata.
contract ProofBook {
    mapping(bytes32 calldataHash => bool) public accepted;

    function accept(bytes calldata verifierCalldata) external {
        accepted[keccak256(verifierCalldata)] = true;
    }
}

/// @notice Answers IZkinferVerifier.encodingHash() as a generated verifier does: on exactly the four
/// selector bytes, so no instance data is ever taken for a function call.
abstract contract ReportsEncoding {
    bytes32 public immutable reportedEncodingHash;

    constructor(bytes32 encodingHash_) {
        reportedEncodingHash = encodingHash_;
    }

    function _answerEncodingHash() internal view {
        if (msg.data.length != 4 || bytes4(msg.data) != IZkinferVerifier.encodingHash.selector) return;
        bytes32 hash = reportedEncodingHash;
        assembly ("memory-safe") {
            mstore(0, hash)
            return(0, 32)
        }
    }
}

/// @notice Test double with the calling convention of a generated halo2 verifier (IHalo2Verifier):
/// fallback only, returns nothing if the exact calldata was accepted in the book, reverts otherwise; and
/// reports the encoding it was made for (IZkinferVerifier). The encoding hash is an immutable, so a mock
/// for another encoding has other code, as a generated verifier would.
contract MockVerifier is ReportsEncoding {
    ProofBook public immutable book;

    constructor(ProofBook book_, bytes32 encodingHash_) ReportsEncoding(encodingHash_) {
        book = book_;
    }

    fallback() external {
        _answerEncodingHash();
        if (!book.accepted(keccak256(msg.data))) revert();
    }
}

/// @notice A verifier with other code (so another model id) that accepts everything.
contract AcceptAllVerifier is ReportsEncoding {
    constructor(bytes32 encodingHash_) ReportsEncoding(encodingHash_) {}

    fallback() external {
        _answerEncodingHash();
    }
}

/// @notice A verifier that rejects a proof by burning all the gas it is given, as a generated verifier
/// does on some malformed proofs (a failed precompile followed by `invalid()`), and accepts the sample.
contract GasBurningVerifier is ReportsEncoding {
    bytes32 public immutable sampleHash;

    constructor(bytes32 encodingHash_, bytes memory sample) ReportsEncoding(encodingHash_) {
        sampleHash = keccak256(sample);
    }

    fallback() external {
        _answerEncodingHash();
        if (keccak256(msg.data) == sampleHash) return;
        assembly ("memory-safe") {
            invalid()
        }
    }
}

/// @notice Not a zkinfer verifier: no encodingHash(), it reverts on everything.
contract SilentVerifier {
    fallback() external {
        revert();
    }
}

/// @notice Accepts everything after burning `extraGas` (settable), to stand for a verifier whose cost
/// changed (a hardfork repricing its precompiles).
contract CostlyVerifier is ReportsEncoding {
    GasKnob public immutable knob = new GasKnob();

    constructor(bytes32 encodingHash_) ReportsEncoding(encodingHash_) {}

    function setExtraGas(uint256 extraGas) external {
        knob.set(extraGas);
    }

    fallback() external {
        _answerEncodingHash();
        uint256 stop = gasleft() - knob.extraGas();
        while (gasleft() > stop) {}
    }
}

contract GasKnob {
    uint256 public extraGas;

    function set(uint256 extraGas_) external {
        extraGas = extraGas_;
    }
}
