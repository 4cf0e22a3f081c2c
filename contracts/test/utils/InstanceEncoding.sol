// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

/// @notice The public-instance encoding written out independently of the coordinator, for tests:
/// [keccak256(abi.encode(chainid, coordinator, requestId, fulfiller)) mod r, pack(input)..., pack(output)...],
/// where pack puts floor(248 / B) values per word, value j of a word contributing (v + 2^(B-1)) * 2^(B * j);
/// for a private request of a committed-input model, [binding, C, pack(output)...] with C the request's
/// commitment. The chain id is the current one (`block.chainid`).
library InstanceEncoding {
    uint256 internal constant R = 21888242871839275222246405745257275088548364400416034343698204186575808495617;

    function pack(uint256 bits, int256[] memory values) internal pure returns (uint256[] memory words) {
        uint256 perWord = 248 / bits;
        uint256 count = values.length / perWord + (values.length % perWord == 0 ? 0 : 1);
        words = new uint256[](count);
        uint256 next;
        for (uint256 w; w < count; ++w) {
            uint256 word;
            for (uint256 j; j < perWord && next < values.length; ++j) {
                word += uint256(values[next] + int256(2 ** (bits - 1))) * 2 ** (bits * j);
                ++next;
            }
            words[w] = word;
        }
    }

    function binding(address coordinator, uint256 requestId, address fulfiller) internal view returns (uint256) {
        return uint256(keccak256(abi.encode(block.chainid, coordinator, requestId, fulfiller))) % R;
    }

    function instances(
        uint256 bits,
        address coordinator,
        uint256 requestId,
        address fulfiller,
        int256[] memory input,
        int256[] memory output
    ) internal view returns (uint256[] memory out) {
        uint256[] memory packedInput = pack(bits, input);
        uint256[] memory packedOutput = pack(bits, output);
        out = new uint256[](1 + packedInput.length + packedOutput.length);
        out[0] = binding(coordinator, requestId, fulfiller);
        for (uint256 i; i < packedInput.length; ++i) {
            out[1 + i] = packedInput[i];
        }
        for (uint256 j; j < packedOutput.length; ++j) {
            out[1 + packedInput.length + j] = packedOutput[j];
        }
    }

    function privateInstances(
        uint256 bits,
        address coordinator,
        uint256 requestId,
        address fulfiller,
        bytes32 commitment,
        int256[] memory output
    ) internal view returns (uint256[] memory out) {
        uint256[] memory packedOutput = pack(bits, output);
        out = new uint256[](2 + packedOutput.length);
        out[0] = binding(coordinator, requestId, fulfiller);
        out[1] = uint256(commitment);
        for (uint256 j; j < packedOutput.length; ++j) {
            out[2 + j] = packedOutput[j];
        }
    }

    /// @dev What the coordinator must send the verifier: the instance words, then the proof.
    function verifierCalldata(
        uint256 bits,
        address coordinator,
        uint256 requestId,
        address fulfiller,
        int256[] memory input,
        int256[] memory output,
        bytes memory proof
    ) internal view returns (bytes memory) {
        return concat(instances(bits, coordinator, requestId, fulfiller, input, output), proof);
    }

    /// @dev `verifierCalldata` of a private request with commitment `commitment`.
    function privateVerifierCalldata(
        uint256 bits,
        address coordinator,
        uint256 requestId,
        address fulfiller,
        bytes32 commitment,
        int256[] memory output,
        bytes memory proof
    ) internal view returns (bytes memory) {
        return concat(privateInstances(bits, coordinator, requestId, fulfiller, commitment, output), proof);
    }

    function concat(uint256[] memory words, bytes memory proof) internal pure returns (bytes memory data) {
        for (uint256 i; i < words.length; ++i) {
            data = bytes.concat(data, bytes32(words[i]));
        }
        data = bytes.concat(data, proof);
    }
}
