// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {IInferenceCoordinator} from "./interfaces/IInferenceCoordinator.sol";
import {IInferenceConsumer} from "./interfaces/IInferenceConsumer.sol";

/// @title InferenceCoordinator
/// @notice Model registry, request book and proof-checked fulfilment for verifiable inference.
/// See IInferenceCoordinator for the encoding of ids and public instances.
///
/// @dev Money. Every wei the contract holds is either the payment of a Pending request or someone's
/// withdrawable balance: fulfilment moves a payment to the fulfiller's balance, cancellation moves it back
/// to the requester's balance, and `withdraw` pays a balance out. Nothing is pushed during fulfilment or
/// cancellation, so no recipient can block either.
///
/// Inputs are not stored. A request stores keccak256(abi.encodePacked(input)) and emits the input in
/// InferenceRequested; the fulfiller sends the input back and the coordinator checks it against the hash.
/// For the 64-value digits model, storing the input (4 int64 per slot) would cost 16 fresh slots, about
/// 350k gas per request; the hash costs one slot (22k) and the input is paid for as calldata and log data
/// instead (about 2 KB each). Outputs are stored, 4 int64 per slot, so contracts can read them.
contract InferenceCoordinator is IInferenceCoordinator {
    /// @inheritdoc IInferenceCoordinator
    uint256 public constant FIELD_MODULUS =
        21888242871839275222246405745257275088548364400416034343698204186575808495617;

    /// @inheritdoc IInferenceCoordinator
    uint32 public constant MAX_CALLBACK_GAS = 1_000_000;

    /// @inheritdoc IInferenceCoordinator
    /// @dev Bounds how long a payment can be locked, and keeps `block.timestamp + deadlineSeconds` within
    /// the 48-bit deadline field.
    uint64 public constant MAX_DEADLINE_SECONDS = 365 days;

    /// @dev Bits of a packed public instance word: floor(248 / valueBits) values per word, so every word
    /// is below 2^248 < r.
    uint256 private constant PACKED_WORD_BITS = 248;

    /// @dev Largest valueBits: bounds are int64.
    uint8 private constant MAX_VALUE_BITS = 64;

    /// @dev Gas spent after the callback gas check and before the CALL gets its gas: the CALL's own cost
    /// (the requester's account is already warm), the stack work around it, and margin.
    uint256 private constant CALLBACK_CALL_OVERHEAD = 5_000;

    /// @dev EXTCODEHASH of an account that exists but has no code.
    bytes32 private constant EMPTY_CODEHASH = keccak256("");

    mapping(bytes32 modelId => Model) private _models;
    mapping(uint256 requestId => Request) private _requests;
    /// @dev Output j of a request is bits [64 * (j % 4), 64 * (j % 4) + 64) of word j / 4, as int64.
    mapping(uint256 requestId => mapping(uint256 word => uint256)) private _outputWords;
    mapping(address account => uint256) private _balances;
    uint256 private _lastRequestId;
    bool private transient _locked;

    modifier nonReentrant() {
        if (_locked) revert Reentrancy();
        _locked = true;
        _;
        _locked = false;
    }

    // ------------------------------------------------------------------------------------------------
    // Models
    // ------------------------------------------------------------------------------------------------

    /// @inheritdoc IInferenceCoordinator
    function registerModel(address verifier, ModelEncoding calldata encoding, uint96 fee, uint64 deadlineSeconds)
        external
        returns (bytes32 modelId)
    {
        if (verifier.code.length == 0) revert VerifierHasNoCode(verifier);
        if (encoding.inputLen == 0 || encoding.outputLen == 0) {
            revert InvalidModelShape(encoding.inputLen, encoding.outputLen);
        }
        uint8 valueBits = encoding.valueBits;
        if (valueBits == 0 || valueBits > MAX_VALUE_BITS) revert InvalidValueBits(valueBits);
        _checkBounds(encoding.inputMin, encoding.inputMax, valueBits);
        _checkBounds(encoding.outputMin, encoding.outputMax, valueBits);
        if (deadlineSeconds == 0 || deadlineSeconds > MAX_DEADLINE_SECONDS) {
            revert InvalidDeadline(deadlineSeconds, MAX_DEADLINE_SECONDS);
        }
        modelId = computeModelId(verifier.codehash, encoding);
        Model storage model = _models[modelId];
        if (model.owner != address(0)) revert ModelAlreadyRegistered(modelId);
        model.verifier = verifier;
        model.active = true;
        model.deadlineSeconds = deadlineSeconds;
        model.owner = msg.sender;
        model.fee = fee;
        model.encoding = encoding;
        emit ModelRegistered(modelId, msg.sender, verifier, fee, deadlineSeconds);
    }

    /// @inheritdoc IInferenceCoordinator
    function setFee(bytes32 modelId, uint96 fee) external {
        _ownedModel(modelId).fee = fee;
        emit ModelFeeSet(modelId, fee);
    }

    /// @inheritdoc IInferenceCoordinator
    function deactivateModel(bytes32 modelId) external {
        _ownedModel(modelId).active = false;
        emit ModelActiveSet(modelId, false);
    }

    /// @inheritdoc IInferenceCoordinator
    function activateModel(bytes32 modelId) external {
        _ownedModel(modelId).active = true;
        emit ModelActiveSet(modelId, true);
    }

    /// @inheritdoc IInferenceCoordinator
    function getModel(bytes32 modelId) external view returns (Model memory) {
        return _models[modelId];
    }

    /// @inheritdoc IInferenceCoordinator
    function computeModelId(bytes32 verifierCodehash, ModelEncoding memory encoding) public pure returns (bytes32) {
        return keccak256(abi.encode(verifierCodehash, encoding));
    }

    // ------------------------------------------------------------------------------------------------
    // Requests
    // ------------------------------------------------------------------------------------------------

    /// @inheritdoc IInferenceCoordinator
    function requestInference(bytes32 modelId, int256[] calldata input, uint32 callbackGasLimit)
        external
        payable
        nonReentrant
        returns (uint256 requestId)
    {
        Model storage model = _models[modelId];
        uint256 price = _quote(model, modelId, callbackGasLimit);
        if (msg.value != price) revert IncorrectPayment(price, msg.value);
        uint256 n = model.encoding.inputLen;
        if (input.length != n) revert InvalidInputLength(n, input.length);
        int256 lo = model.encoding.inputMin;
        int256 hi = model.encoding.inputMax;
        for (uint256 i; i < n; ++i) {
            int256 v = input[i];
            if (v < lo || v > hi) revert InputOutOfRange(i, v);
        }

        requestId = ++_lastRequestId;
        // Cannot overflow 48 bits: deadlineSeconds <= MAX_DEADLINE_SECONDS.
        uint48 deadline = uint48(block.timestamp + model.deadlineSeconds);
        Request storage request = _requests[requestId];
        request.requester = msg.sender;
        request.deadline = deadline;
        request.callbackGasLimit = callbackGasLimit;
        request.status = RequestStatus.Pending;
        request.modelId = modelId;
        request.inputHash = _hash(input);
        // Cannot truncate: msg.value == fee, a uint96.
        request.payment = uint96(msg.value);
        _emitInferenceRequested(requestId, modelId, input, callbackGasLimit, deadline);
    }

    /// @inheritdoc IInferenceCoordinator
    function fulfillInference(
        uint256 requestId,
        int256[] calldata input,
        int256[] calldata output,
        bytes calldata proof
    ) external nonReentrant {
        Request storage request = _requests[requestId];
        if (request.status != RequestStatus.Pending) revert RequestNotPending(requestId);
        // Deadlines are hours or days; a validator's few seconds of leeway do not matter.
        // forge-lint: disable-next-line(block-timestamp)
        if (block.timestamp > request.deadline) revert RequestExpired(requestId);
        if (_hash(input) != request.inputHash) revert InputMismatch(requestId);
        bytes32 modelId = request.modelId;
        Model storage model = _models[modelId];
        _checkOutput(model, output);
        address verifier = _boundVerifier(model, modelId);
        _verifyProof(verifier, _instances(model.encoding.valueBits, requestId, msg.sender, input, output), proof);

        request.status = RequestStatus.Fulfilled;
        request.fulfiller = msg.sender;
        _storeOutput(requestId, output);
        uint256 payment = request.payment;
        if (payment != 0) _balances[msg.sender] += payment;
        emit InferenceFulfilled(requestId, msg.sender, output);

        uint256 callbackGasLimit = request.callbackGasLimit;
        if (callbackGasLimit != 0) {
            bool success = _callback(requestId, request.requester, callbackGasLimit, output);
            if (success) request.callbackSucceeded = true;
            emit CallbackResult(requestId, success);
        }
    }

    /// @inheritdoc IInferenceCoordinator
    function cancelRequest(uint256 requestId) external nonReentrant {
        Request storage request = _requests[requestId];
        if (request.status != RequestStatus.Pending) revert RequestNotPending(requestId);
        if (request.requester != msg.sender) revert NotRequester(requestId, msg.sender);
        uint48 deadline = request.deadline;
        // forge-lint: disable-next-line(block-timestamp)
        if (block.timestamp <= deadline) revert RequestNotExpired(requestId, deadline);
        request.status = RequestStatus.Cancelled;
        uint256 refund = request.payment;
        if (refund != 0) _balances[msg.sender] += refund;
        emit RequestCancelled(requestId, msg.sender, refund);
    }

    /// @inheritdoc IInferenceCoordinator
    function withdraw(address payable to) external nonReentrant {
        uint256 amount = _balances[msg.sender];
        if (amount == 0) revert NothingToWithdraw();
        _balances[msg.sender] = 0;
        emit Withdrawn(msg.sender, to, amount);
        bool sent;
        assembly ("memory-safe") {
            sent := call(gas(), to, amount, 0, 0, 0, 0)
        }
        if (!sent) revert WithdrawFailed(to, amount);
    }

    // ------------------------------------------------------------------------------------------------
    // Views
    // ------------------------------------------------------------------------------------------------

    /// @inheritdoc IInferenceCoordinator
    function quote(bytes32 modelId, uint32 callbackGasLimit) external view returns (uint256) {
        return _quote(_models[modelId], modelId, callbackGasLimit);
    }

    /// @inheritdoc IInferenceCoordinator
    function getRequest(uint256 requestId) external view returns (Request memory) {
        return _requests[requestId];
    }

    /// @inheritdoc IInferenceCoordinator
    function getResult(uint256 requestId)
        external
        view
        returns (RequestStatus status, int256[] memory output, bool callbackSucceeded)
    {
        Request storage request = _requests[requestId];
        status = request.status;
        callbackSucceeded = request.callbackSucceeded;
        if (status != RequestStatus.Fulfilled) return (status, output, callbackSucceeded);
        uint256 m = _models[request.modelId].encoding.outputLen;
        output = new int256[](m);
        mapping(uint256 => uint256) storage words = _outputWords[requestId];
        uint256 word;
        for (uint256 i; i < m; ++i) {
            if (i % 4 == 0) word = words[i / 4];
            // Takes back the 64 bits `_storeOutput` packed, reinterpreted as the int64 they were.
            // forge-lint: disable-next-line(unsafe-typecast)
            output[i] = int64(uint64(word >> (64 * (i % 4))));
        }
    }

    /// @inheritdoc IInferenceCoordinator
    function withdrawable(address account) external view returns (uint256) {
        return _balances[account];
    }

    /// @inheritdoc IInferenceCoordinator
    function bindingOf(uint256 requestId, address fulfiller) public pure returns (uint256) {
        return uint256(keccak256(abi.encode(requestId, fulfiller))) % FIELD_MODULUS;
    }

    /// @inheritdoc IInferenceCoordinator
    function publicInstances(
        uint8 valueBits,
        uint256 requestId,
        address fulfiller,
        int256[] calldata input,
        int256[] calldata output
    ) external pure returns (uint256[] memory) {
        if (valueBits == 0 || valueBits > MAX_VALUE_BITS) revert InvalidValueBits(valueBits);
        _checkFits(input, valueBits);
        _checkFits(output, valueBits);
        return _instances(valueBits, requestId, fulfiller, input, output);
    }

    // ------------------------------------------------------------------------------------------------
    // Internals
    // ------------------------------------------------------------------------------------------------

    function _ownedModel(bytes32 modelId) private view returns (Model storage model) {
        model = _models[modelId];
        address owner = model.owner;
        if (owner == address(0)) revert ModelNotFound(modelId);
        if (owner != msg.sender) revert NotModelOwner(modelId, msg.sender);
    }

    function _quote(Model storage model, bytes32 modelId, uint32 callbackGasLimit) private view returns (uint256) {
        if (model.owner == address(0)) revert ModelNotFound(modelId);
        if (!model.active) revert ModelInactive(modelId);
        if (callbackGasLimit > MAX_CALLBACK_GAS) revert CallbackGasLimitTooHigh(callbackGasLimit, MAX_CALLBACK_GAS);
        return model.fee;
    }

    function _checkOutput(Model storage model, int256[] calldata output) private view {
        uint256 m = model.encoding.outputLen;
        if (output.length != m) revert InvalidOutputLength(m, output.length);
        int256 lo = model.encoding.outputMin;
        int256 hi = model.encoding.outputMax;
        for (uint256 i; i < m; ++i) {
            int256 v = output[i];
            if (v < lo || v > hi) revert OutputOutOfRange(i, v);
        }
    }

    /// @dev The model's verifier, checked to still have the code its id was derived from. Since EIP-6780
    /// code cannot change after deployment on Ethereum, but chains without it allow a verifier to be
    /// destroyed and redeployed with other code at the same address; the check costs only a keccak.
    function _boundVerifier(Model storage model, bytes32 modelId) private view returns (address verifier) {
        verifier = model.verifier;
        bytes32 codehash = verifier.codehash;
        if (codehash == bytes32(0) || codehash == EMPTY_CODEHASH) revert VerifierHasNoCode(verifier);
        bytes32 boundId = computeModelId(codehash, model.encoding);
        if (boundId != modelId) revert VerifierCodeChanged(modelId, verifier);
    }

    /// @dev Reverts with InvalidProof unless `verifier` accepts `proof` for `instances`.
    function _verifyProof(address verifier, uint256[] memory instances, bytes calldata proof) private view {
        bool valid;
        assembly ("memory-safe") {
            // Calldata = the instance words, then the proof, laid out in free memory.
            let data := mload(0x40)
            let words := shl(5, mload(instances))
            mcopy(data, add(instances, 0x20), words)
            calldatacopy(add(data, words), proof.offset, proof.length)
            // Copies no return data: the verifier returns none, and a hostile one cannot bloat memory.
            valid := staticcall(gas(), verifier, data, add(words, proof.length), 0, 0)
        }
        if (!valid) revert InvalidProof();
    }

    /// @dev [binding, pack(input)..., pack(output)...] (see IInferenceCoordinator). Callers guarantee every
    /// value fits in `valueBits` signed bits: the model's bounds do (`_checkBounds`), and `publicInstances`
    /// checks.
    function _instances(
        uint256 valueBits,
        uint256 requestId,
        address fulfiller,
        int256[] calldata input,
        int256[] calldata output
    ) private pure returns (uint256[] memory instances) {
        uint256 perWord = PACKED_WORD_BITS / valueBits;
        uint256 inputWords = (input.length + perWord - 1) / perWord;
        uint256 outputWords = (output.length + perWord - 1) / perWord;
        instances = new uint256[](1 + inputWords + outputWords);
        instances[0] = bindingOf(requestId, fulfiller);
        _pack(instances, 1, input, valueBits, perWord);
        _pack(instances, 1 + inputWords, output, valueBits, perWord);
    }

    /// @dev Writes pack(values) into `words` from index `first`: value i, offset to v + 2^(B-1) in
    /// [0, 2^B), goes to bit B * (i % perWord) of word `first + i / perWord`.
    function _pack(uint256[] memory words, uint256 first, int256[] calldata values, uint256 valueBits, uint256 perWord)
        private
        pure
    {
        int256 half = int256(1) << (valueBits - 1);
        uint256 n = values.length;
        // Cannot overflow: |v| and half are at most 2^63, shifts stay below 248, indices below n.
        unchecked {
            uint256 i;
            for (uint256 w = first; i < n; ++w) {
                uint256 word;
                uint256 shift;
                for (uint256 j; j < perWord && i < n; ++j) {
                    // forge-lint: disable-next-line(unsafe-typecast)
                    word |= uint256(values[i] + half) << shift;
                    shift += valueBits;
                    ++i;
                }
                words[w] = word;
            }
        }
    }

    /// @dev `emit InferenceRequested(requestId, modelId, msg.sender, input, callbackGasLimit, msg.value,
    /// deadline)`, with the ABI encoding written out: the compiler's array encoder (without the Yul
    /// optimizer, see foundry.toml) costs ~20k more for a 64-value input. The data is the head
    /// (offset of `input` = 0x80, callbackGasLimit, payment, deadline) then `input` (length, values).
    function _emitInferenceRequested(
        uint256 requestId,
        bytes32 modelId,
        int256[] calldata input,
        uint32 callbackGasLimit,
        uint48 deadline
    ) private {
        bytes32 topic = InferenceRequested.selector;
        assembly ("memory-safe") {
            let data := mload(0x40)
            mstore(data, 0x80)
            mstore(add(data, 0x20), and(callbackGasLimit, 0xffffffff))
            mstore(add(data, 0x40), callvalue())
            mstore(add(data, 0x60), and(deadline, 0xffffffffffff))
            mstore(add(data, 0x80), input.length)
            let size := shl(5, input.length)
            calldatacopy(add(data, 0xa0), input.offset, size)
            log4(data, add(0xa0, size), topic, requestId, modelId, caller())
        }
    }

    /// @dev keccak256(abi.encodePacked(values)): the values' 32-byte words as they sit in calldata.
    function _hash(int256[] calldata values) private pure returns (bytes32 digest) {
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            let size := shl(5, values.length)
            calldatacopy(ptr, values.offset, size)
            digest := keccak256(ptr, size)
        }
    }

    /// @dev [min, max] is a non-empty range of `valueBits`-bit signed values.
    function _checkBounds(int64 min, int64 max, uint8 valueBits) private pure {
        if (min > max) revert InvalidBounds(min, max);
        int256 half = int256(1) << (valueBits - 1);
        if (min < -half || max >= half) revert BoundsExceedValueBits(min, max, valueBits);
    }

    function _checkFits(int256[] calldata values, uint8 valueBits) private pure {
        int256 half = int256(1) << (valueBits - 1);
        for (uint256 i; i < values.length; ++i) {
            int256 v = values[i];
            if (v < -half || v >= half) revert ValueOutOfRange(v, valueBits);
        }
    }

    /// @dev Packs the (range-checked, so int64) output 4 values per slot.
    function _storeOutput(uint256 requestId, int256[] calldata output) private {
        mapping(uint256 => uint256) storage words = _outputWords[requestId];
        uint256 m = output.length;
        uint256 word;
        for (uint256 i; i < m; ++i) {
            word |= uint256(uint64(int64(output[i]))) << (64 * (i % 4));
            if (i % 4 == 3 || i + 1 == m) {
                words[i / 4] = word;
                word = 0;
            }
        }
    }

    /// @dev Calls the requester with exactly `gasLimit` gas, or reverts if this transaction cannot afford
    /// it, so a fulfiller cannot make a callback fail by sending too little gas. Under EIP-150 a CALL
    /// passes at most 63/64 of the gas left, so `gasLimit` needs `gasLimit * 64 / 63` left at the CALL,
    /// plus what is spent between this check and the CALL. A requester without code is not called.
    /// No return data is copied, so a callee cannot make this frame pay for a huge return.
    function _callback(uint256 requestId, address requester, uint256 gasLimit, int256[] calldata output)
        private
        returns (bool success)
    {
        if (requester.code.length == 0) return false;
        bytes memory data = abi.encodeCall(IInferenceConsumer.onInferenceResult, (requestId, output));
        uint256 needed = gasLimit + gasLimit / 63 + 1 + CALLBACK_CALL_OVERHEAD;
        uint256 gasLeft = gasleft();
        if (gasLeft < needed) revert InsufficientGasForCallback(requestId, gasLeft, needed);
        assembly ("memory-safe") {
            success := call(gasLimit, requester, 0, add(data, 0x20), mload(data), 0, 0)
        }
    }
}
