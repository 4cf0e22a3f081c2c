// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {IInferenceCoordinator} from "./interfaces/IInferenceCoordinator.sol";
import {IInferenceConsumer} from "./interfaces/IInferenceConsumer.sol";
import {IZkinferVerifier} from "./interfaces/IZkinferVerifier.sol";

/// @title InferenceCoordinator
/// @notice Model registry, listings, request book and proof-checked fulfilment for verifiable inference.
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
///
/// Private requests take the same path with the commitment C in place of the input hash and the named
/// prover in a fifth slot; fulfilment differs only in who may fulfil and in the instances the proof is
/// checked against, and shares everything after the verifier call with public fulfilment (`_settle`).
/// Whether a request is private follows from its model (`inputCommitted`): a committed-input model takes
/// private requests only, any other public requests only.
///
/// Verifier gas. A verifier that rejects a proof may do so by exhausting its gas (an `invalid()`, a failed
/// precompile in a loop): it is called with the model's verifyGas, measured at registration on a valid
/// proof, so a bad proof costs its sender at most that much, never the rest of the transaction's gas.
contract InferenceCoordinator is IInferenceCoordinator {
    /// @inheritdoc IInferenceCoordinator
    uint256 public constant FIELD_MODULUS =
        21888242871839275222246405745257275088548364400416034343698204186575808495617;

    /// @inheritdoc IInferenceCoordinator
    uint32 public constant MAX_CALLBACK_GAS = 1_000_000;

    /// @inheritdoc IInferenceCoordinator
    uint256 public constant CIPHERTEXT_OVERHEAD = 81;

    /// @dev Bytes of a version-1 envelope per input value: an i64, big-endian.
    uint256 private constant CIPHERTEXT_BYTES_PER_VALUE = 8;

    /// @inheritdoc IInferenceCoordinator
    /// @dev Time for a node to see the request, prove (seconds for the zoo, minutes for large models) and get
    /// a transaction included with confirmations, on a congested chain too.
    uint64 public constant MIN_DEADLINE_SECONDS = 10 minutes;

    /// @inheritdoc IInferenceCoordinator
    /// @dev Bounds how long a payment can be locked, and keeps `block.timestamp + deadlineSeconds` within
    /// the 48-bit deadline field.
    uint64 public constant MAX_DEADLINE_SECONDS = 365 days;

    /// @inheritdoc IInferenceCoordinator
    /// @dev The zoo verifiers use 262k (MLP) and 322k (CNN); each further advice column costs ~45k. A model
    /// whose verifier needs more cannot be registered.
    uint32 public constant MAX_VERIFY_GAS = 2_000_000;

    /// @dev Added to a quarter more than the measured verify gas: the measurement may have found the
    /// verifier's account or state warm that a fulfilment finds cold (2,600 per account, 2,100 per slot).
    uint256 private constant VERIFY_GAS_SLACK = 20_000;

    /// @dev Gas `encodingHash()` may use: a generated verifier returns a constant.
    uint256 private constant ENCODING_HASH_GAS = 30_000;

    /// @dev Addresses up to this are precompiles (0x01..0x11 on Ethereum; 0x100 is P256VERIFY) or reserved
    /// for them by L2s; no contract is ever deployed there.
    uint160 private constant MAX_RESERVED_ADDRESS = 0xffff;

    /// @dev Bits of a packed public instance word: floor(248 / valueBits) values per word, so every word
    /// is below 2^248 < r.
    uint256 private constant PACKED_WORD_BITS = 248;

    /// @dev Largest valueBits: bounds are int64.
    uint8 private constant MAX_VALUE_BITS = 64;

    /// @dev Gas spent after a gas check and before the CALL/STATICCALL gets its gas: the call's own cost
    /// (a cold account: 2,600), the stack work around it, and margin.
    uint256 private constant CALL_OVERHEAD = 5_000;

    /// @dev EXTCODEHASH of an account that exists but has no code.
    bytes32 private constant EMPTY_CODEHASH = keccak256("");

    /// @dev The first three bytes of an EIP-7702 delegation designator (0xef0100 || address).
    uint256 private constant DELEGATION_PREFIX = 0xef0100;

    mapping(bytes32 modelId => Model) private _models;
    mapping(uint256 listingId => Listing) private _listings;
    mapping(uint256 requestId => Request) private _requests;
    /// @dev Output j of a request is bits [64 * (j % 4), 64 * (j % 4) + 64) of word j / 4, as int64.
    mapping(uint256 requestId => mapping(uint256 word => uint256)) private _outputWords;
    mapping(address account => uint256) private _balances;
    mapping(address prover => bytes32) private _encryptionKeys;
    uint256 private _lastListingId;
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
    function registerModel(address verifier, ModelEncoding calldata encoding, bytes calldata sample)
        external
        returns (bytes32 modelId)
    {
        _checkVerifierAccount(verifier);
        if (encoding.inputLen == 0 || encoding.outputLen == 0) {
            revert InvalidModelShape(encoding.inputLen, encoding.outputLen);
        }
        uint8 valueBits = encoding.valueBits;
        if (valueBits == 0 || valueBits > MAX_VALUE_BITS) revert InvalidValueBits(valueBits);
        _checkBounds(encoding.inputMin, encoding.inputMax, valueBits);
        _checkBounds(encoding.outputMin, encoding.outputMax, valueBits);
        modelId = computeModelId(verifier.codehash, encoding);
        Model storage model = _models[modelId];
        if (model.verifier != address(0)) revert ModelAlreadyRegistered(modelId);
        _checkReportedEncoding(verifier, computeEncodingHash(encoding));
        uint32 verifyGas = _measureVerifyGas(verifier, sample);
        model.verifier = verifier;
        model.verifyGas = verifyGas;
        model.encoding = encoding;
        emit ModelRegistered(modelId, verifier, msg.sender, verifyGas);
    }

    /// @inheritdoc IInferenceCoordinator
    function remeasureVerifyGas(bytes32 modelId, bytes calldata sample) external returns (uint32 verifyGas) {
        Model storage model = _models[modelId];
        if (model.verifier == address(0)) revert ModelNotFound(modelId);
        verifyGas = _measureVerifyGas(_boundVerifier(model, modelId), sample);
        if (verifyGas <= model.verifyGas) return model.verifyGas;
        model.verifyGas = verifyGas;
        emit VerifyGasRaised(modelId, verifyGas);
    }

    /// @inheritdoc IInferenceCoordinator
    function getModel(bytes32 modelId) external view returns (Model memory) {
        return _models[modelId];
    }

    /// @inheritdoc IInferenceCoordinator
    function computeModelId(bytes32 verifierCodehash, ModelEncoding memory encoding) public pure returns (bytes32) {
        return keccak256(abi.encode(verifierCodehash, encoding));
    }

    /// @inheritdoc IInferenceCoordinator
    function computeEncodingHash(ModelEncoding memory encoding) public pure returns (bytes32) {
        return keccak256(abi.encode(encoding));
    }

    // ------------------------------------------------------------------------------------------------
    // Listings
    // ------------------------------------------------------------------------------------------------

    /// @inheritdoc IInferenceCoordinator
    function createListing(bytes32 modelId, uint96 fee, uint64 deadlineSeconds) external returns (uint256 listingId) {
        if (_models[modelId].verifier == address(0)) revert ModelNotFound(modelId);
        if (deadlineSeconds < MIN_DEADLINE_SECONDS || deadlineSeconds > MAX_DEADLINE_SECONDS) {
            revert InvalidDeadline(deadlineSeconds, MIN_DEADLINE_SECONDS, MAX_DEADLINE_SECONDS);
        }
        listingId = ++_lastListingId;
        Listing storage listing = _listings[listingId];
        listing.modelId = modelId;
        listing.owner = msg.sender;
        listing.fee = fee;
        listing.deadlineSeconds = deadlineSeconds;
        listing.active = true;
        emit ListingCreated(listingId, modelId, msg.sender, fee, deadlineSeconds);
    }

    /// @inheritdoc IInferenceCoordinator
    function setListingFee(uint256 listingId, uint96 fee) external {
        _ownedListing(listingId).fee = fee;
        emit ListingFeeSet(listingId, fee);
    }

    /// @inheritdoc IInferenceCoordinator
    function deactivateListing(uint256 listingId) external {
        _ownedListing(listingId).active = false;
        emit ListingActiveSet(listingId, false);
    }

    /// @inheritdoc IInferenceCoordinator
    function activateListing(uint256 listingId) external {
        _ownedListing(listingId).active = true;
        emit ListingActiveSet(listingId, true);
    }

    /// @inheritdoc IInferenceCoordinator
    function offerListing(uint256 listingId, address newOwner) external {
        _ownedListing(listingId).pendingOwner = newOwner;
        emit ListingTransferOffered(listingId, msg.sender, newOwner);
    }

    /// @inheritdoc IInferenceCoordinator
    function acceptListing(uint256 listingId) external {
        Listing storage listing = _listings[listingId];
        if (listing.owner == address(0)) revert ListingNotFound(listingId);
        if (listing.pendingOwner != msg.sender) revert NotPendingListingOwner(listingId, msg.sender);
        address previous = listing.owner;
        listing.owner = msg.sender;
        listing.pendingOwner = address(0);
        emit ListingTransferred(listingId, previous, msg.sender);
    }

    /// @inheritdoc IInferenceCoordinator
    function getListing(uint256 listingId) external view returns (Listing memory) {
        return _listings[listingId];
    }

    // ------------------------------------------------------------------------------------------------
    // Requests
    // ------------------------------------------------------------------------------------------------

    /// @inheritdoc IInferenceCoordinator
    function requestInference(uint256 listingId, int256[] calldata input, uint32 callbackGasLimit, uint256 maxFee)
        external
        payable
        nonReentrant
        returns (uint256 requestId)
    {
        Listing storage listing = _paidListing(listingId, callbackGasLimit, maxFee);
        bytes32 modelId = listing.modelId;
        Model storage model = _models[modelId];
        if (model.encoding.inputCommitted) revert InputCommitted(modelId);
        _checkInput(model, input);
        uint48 deadline;
        (requestId, deadline) = _storeRequest(listing, modelId, _hash(input), address(0), callbackGasLimit);
        _emitInferenceRequested(requestId, modelId, listingId, input, callbackGasLimit, deadline);
    }

    /// @inheritdoc IInferenceCoordinator
    function requestPrivateInference(
        uint256 listingId,
        bytes32 commitment,
        address prover,
        bytes32 encryptionKey,
        bytes calldata ciphertext,
        uint32 callbackGasLimit,
        uint256 maxFee
    ) external payable nonReentrant returns (uint256 requestId) {
        bytes32 modelId;
        uint48 deadline;
        // Scoped to keep the stack within reach of the event's arguments.
        {
            Listing storage listing = _paidListing(listingId, callbackGasLimit, maxFee);
            modelId = listing.modelId;
            _checkPrivateRequest(_models[modelId], modelId, commitment, prover, encryptionKey, ciphertext.length);
            (requestId, deadline) = _storeRequest(listing, modelId, commitment, prover, callbackGasLimit);
        }
        _emitPrivateInferenceRequested(
            requestId, modelId, prover, listingId, commitment, encryptionKey, ciphertext, callbackGasLimit, deadline
        );
    }

    /// @inheritdoc IInferenceCoordinator
    function fulfillInference(
        uint256 requestId,
        int256[] calldata input,
        int256[] calldata output,
        bytes calldata proof
    ) external nonReentrant {
        Request storage request = _fulfillableRequest(requestId);
        bytes32 modelId = request.modelId;
        Model storage model = _models[modelId];
        // The model's flag, not the request's prover: it shares a slot with the output bounds read below.
        if (model.encoding.inputCommitted) revert PrivateRequest(requestId);
        if (_hash(input) != request.inputHash) revert InputMismatch(requestId);
        _checkOutput(model, output);
        address verifier = _boundVerifier(model, modelId);
        uint256[] memory instances = _instances(model.encoding.valueBits, requestId, msg.sender, input, output);
        _verifyProof(requestId, verifier, model.verifyGas, instances, proof);
        _settle(requestId, request, output);
    }

    /// @inheritdoc IInferenceCoordinator
    function fulfillPrivateInference(uint256 requestId, int256[] calldata output, bytes calldata proof)
        external
        nonReentrant
    {
        Request storage request = _fulfillableRequest(requestId);
        address prover = request.prover;
        if (prover == address(0)) revert NotPrivateRequest(requestId);
        if (prover != msg.sender) revert NotNamedProver(requestId, msg.sender);
        bytes32 modelId = request.modelId;
        Model storage model = _models[modelId];
        _checkOutput(model, output);
        address verifier = _boundVerifier(model, modelId);
        uint256[] memory instances =
            _privateInstances(model.encoding.valueBits, requestId, msg.sender, request.inputHash, output);
        _verifyProof(requestId, verifier, model.verifyGas, instances, proof);
        _settle(requestId, request, output);
    }

    /// @inheritdoc IInferenceCoordinator
    function setEncryptionKey(bytes32 key) external {
        _encryptionKeys[msg.sender] = key;
        emit EncryptionKeySet(msg.sender, key);
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
    function quote(uint256 listingId, uint32 callbackGasLimit) external view returns (uint256) {
        return _quote(_listings[listingId], listingId, callbackGasLimit);
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
    function encryptionKeyOf(address prover) external view returns (bytes32) {
        return _encryptionKeys[prover];
    }

    /// @inheritdoc IInferenceCoordinator
    function bindingOf(uint256 requestId, address fulfiller) public view returns (uint256) {
        return uint256(keccak256(abi.encode(block.chainid, address(this), requestId, fulfiller))) % FIELD_MODULUS;
    }

    /// @inheritdoc IInferenceCoordinator
    function publicInstances(
        uint8 valueBits,
        uint256 requestId,
        address fulfiller,
        int256[] calldata input,
        int256[] calldata output
    ) external view returns (uint256[] memory) {
        if (valueBits == 0 || valueBits > MAX_VALUE_BITS) revert InvalidValueBits(valueBits);
        _checkFits(input, valueBits);
        _checkFits(output, valueBits);
        return _instances(valueBits, requestId, fulfiller, input, output);
    }

    /// @inheritdoc IInferenceCoordinator
    function privateInstances(
        uint8 valueBits,
        uint256 requestId,
        address fulfiller,
        bytes32 commitment,
        int256[] calldata output
    ) external view returns (uint256[] memory) {
        if (valueBits == 0 || valueBits > MAX_VALUE_BITS) revert InvalidValueBits(valueBits);
        if (uint256(commitment) >= FIELD_MODULUS) revert CommitmentNotInField(commitment);
        _checkFits(output, valueBits);
        return _privateInstances(valueBits, requestId, fulfiller, commitment, output);
    }

    // ------------------------------------------------------------------------------------------------
    // Internals
    // ------------------------------------------------------------------------------------------------

    function _ownedListing(uint256 listingId) private view returns (Listing storage listing) {
        listing = _listings[listingId];
        address owner = listing.owner;
        if (owner == address(0)) revert ListingNotFound(listingId);
        if (owner != msg.sender) revert NotListingOwner(listingId, msg.sender);
    }

    /// @dev The listing, checked to take requests at a fee within `maxFee` that `msg.value` pays exactly.
    function _paidListing(uint256 listingId, uint32 callbackGasLimit, uint256 maxFee)
        private
        view
        returns (Listing storage listing)
    {
        listing = _listings[listingId];
        uint256 price = _quote(listing, listingId, callbackGasLimit);
        if (price > maxFee) revert FeeAboveMax(listingId, price, maxFee);
        if (msg.value != price) revert IncorrectPayment(price, msg.value);
    }

    /// @dev Books a pending request paid with `msg.value`; `prover` is zero for a public request, whose
    /// fifth slot is then left unwritten.
    function _storeRequest(
        Listing storage listing,
        bytes32 modelId,
        bytes32 inputHash,
        address prover,
        uint32 callbackGasLimit
    ) private returns (uint256 requestId, uint48 deadline) {
        requestId = ++_lastRequestId;
        // Cannot overflow 48 bits: deadlineSeconds <= MAX_DEADLINE_SECONDS.
        deadline = uint48(block.timestamp + listing.deadlineSeconds);
        Request storage request = _requests[requestId];
        request.requester = msg.sender;
        request.deadline = deadline;
        request.callbackGasLimit = callbackGasLimit;
        request.status = RequestStatus.Pending;
        request.modelId = modelId;
        request.inputHash = inputHash;
        // Cannot truncate: msg.value == fee, a uint96.
        request.payment = uint96(msg.value);
        if (prover != address(0)) request.prover = prover;
    }

    /// @dev The checks of `requestPrivateInference` beyond the listing's, in the order the interface states.
    /// The ciphertext cannot be checked to open to the commitment here; its length can.
    function _checkPrivateRequest(
        Model storage model,
        bytes32 modelId,
        bytes32 commitment,
        address prover,
        bytes32 encryptionKey,
        uint256 ciphertextLength
    ) private view {
        if (!model.encoding.inputCommitted) revert InputNotCommitted(modelId);
        if (uint256(commitment) >= FIELD_MODULUS) revert CommitmentNotInField(commitment);
        bytes32 current = _encryptionKeys[prover];
        if (current == bytes32(0)) revert NoEncryptionKey(prover);
        if (encryptionKey != current) revert EncryptionKeyMismatch(prover, current, encryptionKey);
        uint256 expected = CIPHERTEXT_OVERHEAD + CIPHERTEXT_BYTES_PER_VALUE * model.encoding.inputLen;
        if (ciphertextLength != expected) revert InvalidCiphertextLength(expected, ciphertextLength);
    }

    /// @dev The request, checked to be pending and within its deadline.
    function _fulfillableRequest(uint256 requestId) private view returns (Request storage request) {
        request = _requests[requestId];
        if (request.status != RequestStatus.Pending) revert RequestNotPending(requestId);
        // Deadlines are hours or days; a validator's few seconds of leeway do not matter.
        // forge-lint: disable-next-line(block-timestamp)
        if (block.timestamp > request.deadline) revert RequestExpired(requestId);
    }

    /// @dev What a verified fulfilment does, public or private: marks the request fulfilled by the caller,
    /// stores the output, credits the payment, emits InferenceFulfilled, then calls the requester back.
    function _settle(uint256 requestId, Request storage request, int256[] calldata output) private {
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

    function _quote(Listing storage listing, uint256 listingId, uint32 callbackGasLimit)
        private
        view
        returns (uint256)
    {
        if (listing.owner == address(0)) revert ListingNotFound(listingId);
        if (!listing.active) revert ListingInactive(listingId);
        if (callbackGasLimit > MAX_CALLBACK_GAS) revert CallbackGasLimitTooHigh(callbackGasLimit, MAX_CALLBACK_GAS);
        return listing.fee;
    }

    /// @dev A verifier must be a contract of its own: not a precompile (which has no code to hash, so a
    /// code-bound id would mean nothing), not an account without code, and not an EIP-7702 delegated
    /// account, whose code is a designator its owner can point at other code (or a precompile) at will.
    function _checkVerifierAccount(address verifier) private view {
        if (uint160(verifier) <= MAX_RESERVED_ADDRESS) revert VerifierIsPrecompile(verifier);
        if (verifier.code.length == 0) revert VerifierHasNoCode(verifier);
        bool delegated;
        address delegate;
        assembly ("memory-safe") {
            // A designator is 0xef0100 then the 20-byte delegate (23 bytes); 0xef starts no deployed code
            // (EIP-3541), so the prefix alone identifies it.
            extcodecopy(verifier, 0, 0, 23)
            let head := mload(0)
            delegated := eq(shr(232, head), DELEGATION_PREFIX)
            delegate := shr(96, shl(24, head))
        }
        if (delegated) revert VerifierIsDelegated(verifier, delegate);
    }

    /// @dev Reverts unless the verifier answers `encodingHash()` with `expected`. The call gets bounded gas
    /// and its return data is read only if it is exactly one word.
    function _checkReportedEncoding(address verifier, bytes32 expected) private view {
        bytes4 selector = IZkinferVerifier.encodingHash.selector;
        bool ok;
        bytes32 reported;
        assembly ("memory-safe") {
            mstore(0, selector)
            ok := staticcall(ENCODING_HASH_GAS, verifier, 0, 4, 0, 0)
            ok := and(ok, eq(returndatasize(), 32))
            if ok {
                returndatacopy(0, 0, 32)
                reported := mload(0)
            }
        }
        if (!ok) revert VerifierEncodingUnavailable(verifier);
        if (reported != expected) revert EncodingMismatch(verifier, expected, reported);
    }

    /// @dev Runs the verifier on `sample` with MAX_VERIFY_GAS and returns the gas it used plus a quarter and
    /// VERIFY_GAS_SLACK, at most MAX_VERIFY_GAS. The sample must verify: a rejected proof says nothing about
    /// the cost of an accepted one. A generated verifier runs the same straight-line code on every valid
    /// proof (precompile prices do not depend on the points), so one measurement stands for all.
    function _measureVerifyGas(address verifier, bytes calldata sample) private view returns (uint32) {
        bool ok;
        uint256 used;
        assembly ("memory-safe") {
            let data := mload(0x40)
            calldatacopy(data, sample.offset, sample.length)
            let before := gas()
            ok := staticcall(MAX_VERIFY_GAS, verifier, data, sample.length, 0, 0)
            used := sub(before, gas())
        }
        if (!ok) revert SampleProofRejected(verifier);
        uint256 verifyGas = used + used / 4 + VERIFY_GAS_SLACK;
        // Cannot truncate: at most MAX_VERIFY_GAS, a uint32.
        return uint32(verifyGas < MAX_VERIFY_GAS ? verifyGas : MAX_VERIFY_GAS);
    }

    function _checkInput(Model storage model, int256[] calldata input) private view {
        uint256 n = model.encoding.inputLen;
        if (input.length != n) revert InvalidInputLength(n, input.length);
        int256 lo = model.encoding.inputMin;
        int256 hi = model.encoding.inputMax;
        for (uint256 i; i < n; ++i) {
            int256 v = input[i];
            if (v < lo || v > hi) revert InputOutOfRange(i, v);
        }
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

    /// @dev Reverts with InvalidProof unless `verifier` accepts `proof` for `instances` within `verifyGas`.
    /// The verifier gets exactly `verifyGas` or the fulfilment reverts with InsufficientGasForVerifier: under
    /// EIP-150 a call passes at most 63/64 of the gas left, so `verifyGas` needs `verifyGas * 64 / 63` left
    /// at the call, plus the call's own cost. Otherwise a fulfiller sending too little gas would see a valid
    /// proof rejected as invalid.
    function _verifyProof(
        uint256 requestId,
        address verifier,
        uint256 verifyGas,
        uint256[] memory instances,
        bytes calldata proof
    ) private view {
        uint256 data;
        uint256 size;
        assembly ("memory-safe") {
            // Calldata = the instance words, then the proof, laid out in free memory.
            data := mload(0x40)
            let words := shl(5, mload(instances))
            mcopy(data, add(instances, 0x20), words)
            calldatacopy(add(data, words), proof.offset, proof.length)
            size := add(words, proof.length)
        }
        uint256 needed = verifyGas + verifyGas / 63 + 1 + CALL_OVERHEAD;
        uint256 gasLeft = gasleft();
        if (gasLeft < needed) revert InsufficientGasForVerifier(requestId, gasLeft, needed);
        bool valid;
        assembly ("memory-safe") {
            // Copies no return data: the verifier returns none, and a hostile one cannot bloat memory.
            valid := staticcall(verifyGas, verifier, data, size, 0, 0)
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
    ) private view returns (uint256[] memory instances) {
        uint256 perWord = PACKED_WORD_BITS / valueBits;
        uint256 inputWords = (input.length + perWord - 1) / perWord;
        uint256 outputWords = (output.length + perWord - 1) / perWord;
        instances = new uint256[](1 + inputWords + outputWords);
        instances[0] = bindingOf(requestId, fulfiller);
        _pack(instances, 1, input, valueBits, perWord);
        _pack(instances, 1 + inputWords, output, valueBits, perWord);
    }

    /// @dev [binding, commitment, pack(output)...] (see IInferenceCoordinator), under the same guarantee as
    /// `_instances`; the commitment is below r (`requestPrivateInference` and `privateInstances` check).
    function _privateInstances(
        uint256 valueBits,
        uint256 requestId,
        address fulfiller,
        bytes32 commitment,
        int256[] calldata output
    ) private view returns (uint256[] memory instances) {
        uint256 perWord = PACKED_WORD_BITS / valueBits;
        uint256 outputWords = (output.length + perWord - 1) / perWord;
        instances = new uint256[](2 + outputWords);
        instances[0] = bindingOf(requestId, fulfiller);
        instances[1] = uint256(commitment);
        _pack(instances, 2, output, valueBits, perWord);
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

    /// @dev `emit InferenceRequested(requestId, modelId, msg.sender, listingId, input, callbackGasLimit,
    /// msg.value, deadline)`, with the ABI encoding written out: the compiler's array encoder (without the
    /// Yul optimizer, see foundry.toml) costs ~20k more for a 64-value input. The data is the head
    /// (listingId, offset of `input` = 0xa0, callbackGasLimit, payment, deadline) then `input` (length,
    /// values).
    function _emitInferenceRequested(
        uint256 requestId,
        bytes32 modelId,
        uint256 listingId,
        int256[] calldata input,
        uint32 callbackGasLimit,
        uint48 deadline
    ) private {
        bytes32 topic = InferenceRequested.selector;
        assembly ("memory-safe") {
            let data := mload(0x40)
            mstore(data, listingId)
            mstore(add(data, 0x20), 0xa0)
            mstore(add(data, 0x40), and(callbackGasLimit, 0xffffffff))
            mstore(add(data, 0x60), callvalue())
            mstore(add(data, 0x80), and(deadline, 0xffffffffffff))
            mstore(add(data, 0xa0), input.length)
            let size := shl(5, input.length)
            calldatacopy(add(data, 0xc0), input.offset, size)
            log4(data, add(0xc0, size), topic, requestId, modelId, caller())
        }
    }

    /// @dev `emit PrivateInferenceRequested(requestId, modelId, prover, msg.sender, listingId, commitment,
    /// encryptionKey, ciphertext, callbackGasLimit, msg.value, deadline)`, with the ABI encoding written out
    /// as in `_emitInferenceRequested`. The data is the head (requester, listingId, commitment,
    /// encryptionKey, offset of `ciphertext` = 0x100, callbackGasLimit, payment, deadline) then `ciphertext`
    /// (length, bytes zero-padded to a whole word).
    function _emitPrivateInferenceRequested(
        uint256 requestId,
        bytes32 modelId,
        address prover,
        uint256 listingId,
        bytes32 commitment,
        bytes32 encryptionKey,
        bytes calldata ciphertext,
        uint32 callbackGasLimit,
        uint48 deadline
    ) private {
        bytes32 topic = PrivateInferenceRequested.selector;
        assembly ("memory-safe") {
            let data := mload(0x40)
            mstore(data, caller())
            mstore(add(data, 0x20), listingId)
            mstore(add(data, 0x40), commitment)
            mstore(add(data, 0x60), encryptionKey)
            mstore(add(data, 0x80), 0x100)
            mstore(add(data, 0xa0), and(callbackGasLimit, 0xffffffff))
            mstore(add(data, 0xc0), callvalue())
            mstore(add(data, 0xe0), and(deadline, 0xffffffffffff))
            mstore(add(data, 0x100), ciphertext.length)
            let padded := and(add(ciphertext.length, 31), not(31))
            // Zero the last word first: free memory may hold scratch data, and the padding must be zeros.
            mstore(add(data, add(0x100, padded)), 0)
            calldatacopy(add(data, 0x120), ciphertext.offset, ciphertext.length)
            log4(
                data,
                add(0x120, padded),
                topic,
                requestId,
                modelId,
                and(prover, 0xffffffffffffffffffffffffffffffffffffffff)
            )
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
        uint256 needed = gasLimit + gasLimit / 63 + 1 + CALL_OVERHEAD;
        uint256 gasLeft = gasleft();
        if (gasLeft < needed) revert InsufficientGasForCallback(requestId, gasLeft, needed);
        assembly ("memory-safe") {
            success := call(gasLimit, requester, 0, add(data, 0x20), mload(data), 0, 0)
        }
    }
}
