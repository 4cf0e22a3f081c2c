// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

/// @notice The set of verifier calldata (instances || proof) a MockVerifier accepts, by keccak256.
/// Kept apart from the verifier so the verifier has no function selectors that could capture calldata.
contract ProofBook {
    mapping(bytes32 calldataHash => bool) public accepted;

    function accept(bytes calldata verifierCalldata) external {
        accepted[keccak256(verifierCalldata)] = true;
    }
}

/// @notice Test double with the calling convention of a generated halo2 verifier (IHalo2Verifier):
/// fallback only, returns nothing if the exact calldata was accepted in the book, reverts otherwise.
contract MockVerifier {
    ProofBook public immutable book;

    constructor(ProofBook book_) {
        book = book_;
    }

    fallback() external {
        if (!book.accepted(keccak256(msg.data))) revert();
    }
}

/// @notice A verifier with other code (so another model id) that accepts everything.
contract AcceptAllVerifier {
    fallback() external {}
}
