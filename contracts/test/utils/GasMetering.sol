// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {Test} from "forge-std/Test.sol";

contract Noop {
    function noop() external {}
}

/// @notice Execution gas of the last top-level call, the same under `forge test` and
/// `forge test --gas-report`.
abstract contract GasMetering is Test {
    Noop private immutable _noop = new Noop();

    /// @dev Execution gas of the last call. `forge test --gas-report` runs each top-level call as a
    /// transaction of its own and then meters the transaction's intrinsic gas too; take that out.
    function _lastGas(bytes memory callData) internal returns (uint256 used) {
        used = vm.lastCallGas().gasTotalUsed;
        if (_isolated()) used -= _intrinsicGas(callData);
    }

    function _isolated() private returns (bool) {
        _noop.noop();
        return vm.lastCallGas().gasTotalUsed >= 21_000;
    }

    function _intrinsicGas(bytes memory callData) private pure returns (uint256 gas) {
        gas = 21_000;
        for (uint256 i; i < callData.length; ++i) {
            gas += callData[i] == 0 ? 4 : 16;
        }
    }
}
