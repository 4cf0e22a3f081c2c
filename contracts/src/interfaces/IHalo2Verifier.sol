// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

/// @title IHalo2Verifier
/// @notice The calling convention of a generated halo2 (KZG, BN254, SHPLONK) verifier. Documentation only:
/// a generated verifier has no functions, only a fallback, so there is nothing to call through this type.
/// @dev Calldata is the public instances as consecutive 32-byte big-endian words, each a canonical element
/// of the BN254 scalar field (less than r), immediately followed by the proof bytes; there is no selector
/// and no length prefix. The verifier returns empty data if the proof is valid for those instances and
/// reverts (with empty data) otherwise.
///
/// The verifier reduces every instance word mod r, so `y` and `y + r` verify alike: whoever builds the
/// instances must encode them canonically, as `InferenceCoordinator` does.
///
/// A generated verifier embeds the verifying key, and with it the KZG commitments to the model's fixed
/// columns (its quantized weights), so its code hash identifies the model.
interface IHalo2Verifier {
    fallback() external;
}
