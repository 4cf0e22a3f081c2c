// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

/// @title IInferenceCoordinator
/// @notice Verifiable inference: a consumer pays for an inference of a registered model on an input, anyone
/// fulfils it with the output and a halo2 proof, the coordinator checks the proof in the same transaction,
/// pays the fulfiller, stores the output and calls the consumer back.
///
/// @dev Fixed-point encoding. Inputs and outputs are integers: a real value x of a model with `scaleBits`
/// s is the integer round(x * 2^s). Each value v of a model with `valueBits` B lies in [-H, H) with
/// H = 2^(B-1), and enters the proof as the B-bit unsigned offset value v + H. The public instances of a
/// proof for request `id` fulfilled by `fulfiller` are, in order:
///
///     [ bindingOf(id, fulfiller), pack(input)..., pack(output)... ]
///
/// `pack` cuts a list into chunks of K = floor(248 / B) values and turns each chunk c into one word
/// `sum_j (c[j] + H) * 2^(B * j)` (least significant first; the last chunk may be shorter). Words are
/// below 2^248 < r, so they are canonical field elements, and since every value is range-checked to B
/// bits the packing is injective: no other input or output has the same words. Inputs and outputs are
/// packed separately. `bindingOf(id, fulfiller) = uint256(keccak256(abi.encode(id, fulfiller))) % r`
/// (r = FIELD_MODULUS) makes a proof valid for one request and one fulfiller only, so a proof seen in the
/// mempool cannot be replayed by a front-runner or for another request with the same input.
///
/// Model ids. `modelId = keccak256(abi.encode(verifier.codehash, encoding))`, which, ModelEncoding being
/// static, is keccak256 of the code hash and the nine fields, each as a 32-byte ABI word (inputLen,
/// outputLen, inputScaleBits, outputScaleBits, valueBits, inputMin, inputMax, outputMin, outputMax). A
/// generated verifier embeds its verifying key and so the commitments to the model's weights: the id
/// commits to the weights and to the encoding, and no one can point an id at another model's verifier.
/// Anyone may register any verifier; the first registrant of an id owns its fee and can pause it.
/// Consumers choose the model id (and so the owner and fee) they trust.
interface IInferenceCoordinator {
    // ------------------------------------------------------------------------------------------------
    // Types
    // ------------------------------------------------------------------------------------------------

    enum RequestStatus {
        None,
        Pending,
        Fulfilled,
        Cancelled
    }

    /// @notice How a model's values are encoded; with the verifier's code hash, it determines the model id.
    /// @param inputLen Number of input values.
    /// @param outputLen Number of output values.
    /// @param inputScaleBits Inputs are real values times 2^inputScaleBits (for off-chain encoders).
    /// @param outputScaleBits Outputs are real values times 2^outputScaleBits (for off-chain decoders).
    /// @param valueBits B, the signed width of every value in the packed public instances, in [1, 64].
    /// @param inputMin Smallest accepted input value (inclusive).
    /// @param inputMax Largest accepted input value (inclusive).
    /// @param outputMin Smallest accepted output value (inclusive).
    /// @param outputMax Largest accepted output value (inclusive).
    struct ModelEncoding {
        uint32 inputLen;
        uint32 outputLen;
        uint8 inputScaleBits;
        uint8 outputScaleBits;
        uint8 valueBits;
        int64 inputMin;
        int64 inputMax;
        int64 outputMin;
        int64 outputMax;
    }

    /// @notice A registered model. Four storage slots.
    /// @param verifier The generated halo2 verifier (see IHalo2Verifier).
    /// @param active Whether new requests are accepted. Pending requests stay fulfillable when inactive.
    /// @param deadlineSeconds Time a fulfiller has for a request; after it the requester may cancel.
    /// @param owner The registrant, who may set the fee and (de)activate the model.
    /// @param fee Exact payment for one request, in wei. It must cover the fulfiller's proving and gas,
    /// including a callback of up to MAX_CALLBACK_GAS: the price does not depend on the callback gas limit.
    /// @param encoding Lengths, scales and bounds.
    struct Model {
        address verifier;
        bool active;
        uint64 deadlineSeconds;
        address owner;
        uint96 fee;
        ModelEncoding encoding;
    }

    /// @notice A request. Four storage slots; the input itself is not stored (see `requestInference`).
    /// @param requester Who paid; receives the callback and, on cancellation, the refund.
    /// @param deadline Last timestamp at which the request can be fulfilled; cancellable after it.
    /// @param callbackGasLimit Exact gas for `onInferenceResult`; zero for no callback.
    /// @param status None (unknown id), Pending, Fulfilled or Cancelled.
    /// @param callbackSucceeded Whether the callback ran and did not revert (false when there was none).
    /// @param modelId The model to run.
    /// @param inputHash keccak256(abi.encodePacked(input)).
    /// @param fulfiller Who fulfilled the request (zero until then).
    /// @param payment The fee paid, held until fulfilment (to the fulfiller) or cancellation (to the requester).
    struct Request {
        address requester;
        uint48 deadline;
        uint32 callbackGasLimit;
        RequestStatus status;
        bool callbackSucceeded;
        bytes32 modelId;
        bytes32 inputHash;
        address fulfiller;
        uint96 payment;
    }

    // ------------------------------------------------------------------------------------------------
    // Errors
    // ------------------------------------------------------------------------------------------------

    /// @notice No model is registered under `modelId`.
    error ModelNotFound(bytes32 modelId);
    /// @notice The model exists but its owner has deactivated it; choose another registration.
    error ModelInactive(bytes32 modelId);
    /// @notice A model with this id is already registered (same verifier code and encoding).
    error ModelAlreadyRegistered(bytes32 modelId);
    /// @notice The verifier address has no code: deploy the verifier first (or it was destroyed).
    error VerifierHasNoCode(address verifier);
    /// @notice The verifier's code no longer matches the code the model id was derived from.
    error VerifierCodeChanged(bytes32 modelId, address verifier);
    /// @notice Input and output lengths must both be non-zero.
    error InvalidModelShape(uint32 inputLen, uint32 outputLen);
    /// @notice A value range must have min <= max.
    error InvalidBounds(int64 min, int64 max);
    /// @notice valueBits must be in [1, 64].
    error InvalidValueBits(uint8 valueBits);
    /// @notice A range [min, max] must fit in valueBits signed bits: -2^(B-1) <= min, max < 2^(B-1).
    error BoundsExceedValueBits(int64 min, int64 max, uint8 valueBits);
    /// @notice A model's fulfilment window must be in [1, max] seconds.
    error InvalidDeadline(uint64 deadlineSeconds, uint64 max);
    /// @notice Only the model's owner may do this.
    error NotModelOwner(bytes32 modelId, address caller);
    /// @notice The input has the wrong number of values for the model.
    error InvalidInputLength(uint256 expected, uint256 got);
    /// @notice Input value `index` lies outside the model's [inputMin, inputMax].
    error InputOutOfRange(uint256 index, int256 value);
    /// @notice The output has the wrong number of values for the model.
    error InvalidOutputLength(uint256 expected, uint256 got);
    /// @notice Output value `index` lies outside the model's [outputMin, outputMax].
    error OutputOutOfRange(uint256 index, int256 value);
    /// @notice A value does not fit in valueBits signed bits, so it has no packed encoding.
    error ValueOutOfRange(int256 value, uint8 valueBits);
    /// @notice `msg.value` must equal `quote(modelId, callbackGasLimit)` exactly.
    error IncorrectPayment(uint256 expected, uint256 got);
    /// @notice The callback gas limit exceeds MAX_CALLBACK_GAS.
    error CallbackGasLimitTooHigh(uint32 limit, uint32 max);
    /// @notice The request is unknown, already fulfilled or cancelled.
    error RequestNotPending(uint256 requestId);
    /// @notice The request's deadline has passed; it can no longer be fulfilled, only cancelled.
    error RequestExpired(uint256 requestId);
    /// @notice The request can be cancelled only after its deadline.
    error RequestNotExpired(uint256 requestId, uint64 deadline);
    /// @notice Only the requester may cancel a request.
    error NotRequester(uint256 requestId, address caller);
    /// @notice The input sent with the fulfilment is not the input of the request.
    error InputMismatch(uint256 requestId);
    /// @notice The verifier rejected the proof for these public instances.
    error InvalidProof();
    /// @notice Too little gas was left to give the callback its full gas limit; resend with a higher gas limit.
    error InsufficientGasForCallback(uint256 requestId, uint256 gasLeft, uint256 needed);
    /// @notice The caller has no balance to withdraw.
    error NothingToWithdraw();
    /// @notice Sending the balance failed; the balance is kept. Withdraw to an address that accepts ETH.
    error WithdrawFailed(address to, uint256 amount);
    /// @notice `requestInference`, `fulfillInference`, `cancelRequest` and `withdraw` cannot be re-entered.
    error Reentrancy();

    // ------------------------------------------------------------------------------------------------
    // Events
    // ------------------------------------------------------------------------------------------------

    /// @notice The encoding (lengths, scales, bounds) is committed to by the id; read it with `getModel`.
    event ModelRegistered(
        bytes32 indexed modelId, address indexed owner, address indexed verifier, uint96 fee, uint64 deadlineSeconds
    );
    event ModelFeeSet(bytes32 indexed modelId, uint96 fee);
    event ModelActiveSet(bytes32 indexed modelId, bool active);

    /// @notice Carries everything a prover node needs: the input is not kept in storage.
    event InferenceRequested(
        uint256 indexed requestId,
        bytes32 indexed modelId,
        address indexed requester,
        int256[] input,
        uint32 callbackGasLimit,
        uint256 payment,
        uint64 deadline
    );
    event InferenceFulfilled(uint256 indexed requestId, address indexed fulfiller, int256[] output);
    event CallbackResult(uint256 indexed requestId, bool success);
    event RequestCancelled(uint256 indexed requestId, address indexed requester, uint256 refund);
    event Withdrawn(address indexed account, address indexed to, uint256 amount);

    // ------------------------------------------------------------------------------------------------
    // Models
    // ------------------------------------------------------------------------------------------------

    /// @notice Registers a model. The caller becomes its owner. See the contract docs for the id.
    /// @dev Reverts with VerifierHasNoCode, InvalidModelShape, InvalidValueBits, InvalidBounds,
    /// BoundsExceedValueBits, InvalidDeadline or ModelAlreadyRegistered.
    function registerModel(address verifier, ModelEncoding calldata encoding, uint96 fee, uint64 deadlineSeconds)
        external
        returns (bytes32 modelId);

    /// @notice Sets the fee of new requests (pending ones keep what they paid). Owner only.
    function setFee(bytes32 modelId, uint96 fee) external;

    /// @notice Stops accepting new requests for the model. Pending requests stay fulfillable. Owner only.
    function deactivateModel(bytes32 modelId) external;

    /// @notice Accepts new requests again. Owner only.
    function activateModel(bytes32 modelId) external;

    /// @notice The model registered under `modelId`; all zero if none.
    function getModel(bytes32 modelId) external view returns (Model memory);

    /// @notice The id a model with this verifier code hash and encoding gets.
    function computeModelId(bytes32 verifierCodehash, ModelEncoding calldata encoding) external pure returns (bytes32);

    // ------------------------------------------------------------------------------------------------
    // Requests
    // ------------------------------------------------------------------------------------------------

    /// @notice Requests an inference of `modelId` on `input`, paying exactly `quote(modelId, callbackGasLimit)`.
    /// @param input The input values, each in [inputMin, inputMax], already in the model's fixed-point scale.
    /// @param callbackGasLimit Gas for `IInferenceConsumer.onInferenceResult` on the caller; zero for none.
    /// @return requestId Sequential, starting at 1.
    function requestInference(bytes32 modelId, int256[] calldata input, uint32 callbackGasLimit)
        external
        payable
        returns (uint256 requestId);

    /// @notice Fulfils a pending request with its output and a proof; the first valid proof wins.
    /// @dev The proof must be made for the instances
    /// `publicInstances(model.valueBits, requestId, msg.sender, input, output)`.
    /// Pays the request's payment to msg.sender's withdrawable balance, stores the output, then calls the
    /// requester back with exactly the request's callback gas limit. Reverts with
    /// InsufficientGasForCallback if the transaction's gas cannot give the callback its full limit.
    /// @param input The request's input, as emitted in InferenceRequested (checked against its hash).
    function fulfillInference(
        uint256 requestId,
        int256[] calldata input,
        int256[] calldata output,
        bytes calldata proof
    ) external;

    /// @notice Cancels a pending request after its deadline and credits the payment to the requester's
    /// withdrawable balance. Requester only.
    function cancelRequest(uint256 requestId) external;

    /// @notice Sends the caller's whole withdrawable balance (fees earned, refunds) to `to`.
    function withdraw(address payable to) external;

    // ------------------------------------------------------------------------------------------------
    // Views
    // ------------------------------------------------------------------------------------------------

    /// @notice The exact payment `requestInference` expects. Reverts like `requestInference` would for an
    /// unknown or inactive model or a too-high callback gas limit.
    function quote(bytes32 modelId, uint32 callbackGasLimit) external view returns (uint256);

    function getRequest(uint256 requestId) external view returns (Request memory);

    /// @notice The status, the output (empty unless Fulfilled) and whether the callback succeeded.
    function getResult(uint256 requestId)
        external
        view
        returns (RequestStatus status, int256[] memory output, bool callbackSucceeded);

    /// @notice ETH `account` can withdraw.
    function withdrawable(address account) external view returns (uint256);

    /// @notice The binding instance: uint256(keccak256(abi.encode(requestId, fulfiller))) % r.
    function bindingOf(uint256 requestId, address fulfiller) external pure returns (uint256);

    /// @notice The public instances a proof fulfilling `requestId` from `fulfiller` must be made for, for a
    /// model with `valueBits`. Reverts with InvalidValueBits or ValueOutOfRange.
    function publicInstances(
        uint8 valueBits,
        uint256 requestId,
        address fulfiller,
        int256[] calldata input,
        int256[] calldata output
    ) external pure returns (uint256[] memory);

    /// @notice The largest callback gas limit a request may ask for.
    function MAX_CALLBACK_GAS() external view returns (uint32);

    /// @notice The longest fulfilment window (`deadlineSeconds`) a model may set.
    function MAX_DEADLINE_SECONDS() external view returns (uint64);

    /// @notice r, the order of the BN254 scalar field.
    function FIELD_MODULUS() external view returns (uint256);
}
