// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

/// @title IZkinferVerifier
/// @notice The one function a zkinfer verifier exposes besides its fallback (see IHalo2Verifier): the
/// encoding it was generated for, so that the coordinator can check at registration that the encoding a
/// registrant claims is the one the verifier's instance layout was built for.
interface IZkinferVerifier {
    /// @notice keccak256 of the ABI-encoded words inputLen, outputLen, inputScaleBits, outputScaleBits,
    /// valueBits, inputMin, inputMax, outputMin, outputMax (signed values sign-extended), which equals
    /// keccak256(abi.encode(encoding)) for an IInferenceCoordinator.ModelEncoding.
    function encodingHash() external view returns (bytes32);
}
