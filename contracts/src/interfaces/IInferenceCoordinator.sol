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
///     [ bindingOf(id, fulfiller), pack(input)..., pack(output)... ]      public-input model
///     [ bindingOf(id, fulfiller), C, pack(output)... ]                   committed-input model
///
/// `pack` cuts a list into chunks of K = floor(248 / B) values and turns each chunk c into one word
/// `sum_j (c[j] + H) * 2^(B * j)` (least significant first; the last chunk may be shorter). Words are
/// below 2^248 < r, so they are canonical field elements, and since every value is range-checked to B
/// bits the packing is injective: no other input or output has the same words. Inputs and outputs are
/// packed separately. The binding
///
///     bindingOf(id, fulfiller) = uint256(keccak256(abi.encode(block.chainid, coordinator, id, fulfiller))) % r
///
/// (r = FIELD_MODULUS, coordinator = this contract's address) makes a proof valid for one chain, one
/// coordinator, one request and one fulfiller only: a proof seen in the mempool cannot be used by a
/// front-runner, for another request with the same input, on another deployment or on another chain.
/// C is the commitment of a private request, C = Poseidon(pack(input) || salt) over BN254 Fr (halo2-base's
/// PoseidonHasher, T = 3, RATE = 2, R_F = 8, R_P = 57; salt a random field element below 2^248), given by
/// the requester as a canonical field element (below r); the circuit of a committed-input model takes the
/// input and the salt as private witnesses and proves both the opening of C and the output.
///
/// Models and listings. A model is a verifier's code and an encoding, nothing else:
/// `modelId = keccak256(abi.encode(verifier.codehash, encoding))`, which, ModelEncoding being static, is
/// keccak256 of the code hash and the ten fields, each as a 32-byte ABI word (inputLen, outputLen,
/// inputScaleBits, outputScaleBits, valueBits, inputMin, inputMax, outputMin, outputMax, inputCommitted). A
/// generated
/// verifier embeds its verifying key, so the commitments to the model's weights, and reports the encoding
/// it was generated for (IZkinferVerifier.encodingHash), which `registerModel` checks: an id commits to
/// the weights and to the encoding, and no one can point an id at another model's verifier or at a wrong
/// encoding. Registering a model gives no rights over it. Commercial terms live in listings: anyone may
/// list a registered model with a fee and a fulfilment window and owns that listing (transferable); any
/// number of listings may serve one model. Consumers request through a listing they choose, and should pin
/// its id after checking `getListing(id).modelId` is the model id they trust.
///
/// Private requests. A committed-input model (`inputCommitted`) takes requests only through
/// `requestPrivateInference`: the requester sends the commitment C and the input and salt encrypted to a
/// prover's registered X25519 key (`setEncryptionKey`), names that prover, and only that prover can fulfil,
/// with a proof that opens C and computes the output. What stays public: the model id and listing, the
/// output, the timing of request and fulfilment, the ciphertext (so its size, which gives away only the
/// model's input length), the prover and the requester. What is hidden: the input and the salt (the salt
/// makes C useless for trying candidate inputs, however few there are).
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
    /// @param inputCommitted Whether the circuit takes the input privately and exposes only its commitment
    /// C (see the instance layout above): such a model takes private requests only, the others public ones
    /// only.
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
        bool inputCommitted;
    }

    /// @notice A registered model. Three storage slots; it has no owner and never changes, except that
    /// `verifyGas` may be raised by a new measurement (`remeasureVerifyGas`).
    /// @param verifier The generated halo2 verifier (see IHalo2Verifier and IZkinferVerifier).
    /// @param verifyGas Gas forwarded to the verifier on each fulfilment: the gas it used on a valid proof
    /// at registration, plus a quarter and VERIFY_GAS_SLACK, at most MAX_VERIFY_GAS.
    /// @param encoding Lengths, scales and bounds.
    struct Model {
        address verifier;
        uint32 verifyGas;
        ModelEncoding encoding;
    }

    /// @notice A listing: an offer to serve a model's requests on given terms. Three storage slots.
    /// @param modelId The registered model requests run; fixed for the listing's life.
    /// @param owner Who may set the fee, (de)activate the listing and transfer it.
    /// @param fee Exact payment for one request, in wei, paid to the fulfiller. It must cover proving and gas,
    /// including a callback of up to MAX_CALLBACK_GAS: the price does not depend on the callback gas limit.
    /// @param pendingOwner The account a transfer was offered to, until it accepts (zero if none).
    /// @param deadlineSeconds Time a fulfiller has for a request, in [MIN_DEADLINE_SECONDS,
    /// MAX_DEADLINE_SECONDS]; fixed for the listing's life. After it the requester may cancel.
    /// @param active Whether new requests are accepted. Pending requests stay fulfillable when inactive.
    struct Listing {
        bytes32 modelId;
        address owner;
        uint96 fee;
        address pendingOwner;
        uint64 deadlineSeconds;
        bool active;
    }

    /// @notice A request. Five storage slots (a public request leaves the fifth, `prover`, unwritten); the
    /// input itself is not stored (see `requestInference`).
    /// @param requester Who paid; receives the callback and, on cancellation, the refund.
    /// @param deadline Last timestamp at which the request can be fulfilled; cancellable after it.
    /// @param callbackGasLimit Exact gas for `onInferenceResult`; zero for no callback.
    /// @param status None (unknown id), Pending, Fulfilled or Cancelled.
    /// @param callbackSucceeded Whether the callback ran and did not revert (false when there was none).
    /// @param modelId The model to run.
    /// @param inputHash keccak256(abi.encodePacked(input)) for a public request; the commitment C for a
    /// private one.
    /// @param fulfiller Who fulfilled the request (zero until then).
    /// @param payment The fee paid, held until fulfilment (to the fulfiller) or cancellation (to the requester).
    /// @param prover The only account that may fulfil a private request (the one its input is encrypted to);
    /// zero for a public request.
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
        address prover;
    }

    // ------------------------------------------------------------------------------------------------
    // Errors
    // ------------------------------------------------------------------------------------------------

    /// @notice No model is registered under `modelId`: register it first (`registerModel`).
    error ModelNotFound(bytes32 modelId);
    /// @notice A model with this id is already registered (same verifier code and encoding): list it instead.
    error ModelAlreadyRegistered(bytes32 modelId);
    /// @notice The verifier address has no code: deploy the verifier first (or it was destroyed).
    error VerifierHasNoCode(address verifier);
    /// @notice The verifier address is a precompile or another reserved address (below 2^16), not a verifier.
    error VerifierIsPrecompile(address verifier);
    /// @notice The verifier is an EIP-7702 delegated account, whose behaviour its owner can change at will.
    error VerifierIsDelegated(address verifier, address delegate);
    /// @notice The verifier does not answer `encodingHash()` with one word: it is not a zkinfer verifier
    /// (regenerate it with verifier-gen).
    error VerifierEncodingUnavailable(address verifier);
    /// @notice The verifier was generated for another encoding than the one given: register it with the
    /// encoding of its model card.
    error EncodingMismatch(address verifier, bytes32 expected, bytes32 reported);
    /// @notice The verifier rejected the sample proof of `registerModel` / `remeasureVerifyGas` (or needed
    /// more than MAX_VERIFY_GAS for it): pass the calldata (instances then proof) of a valid proof.
    error SampleProofRejected(address verifier);
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
    /// @notice A listing's fulfilment window must be in [min, max] seconds.
    error InvalidDeadline(uint64 deadlineSeconds, uint64 min, uint64 max);
    /// @notice No listing has this id.
    error ListingNotFound(uint256 listingId);
    /// @notice The listing's owner has deactivated it; choose another listing of the model.
    error ListingInactive(uint256 listingId);
    /// @notice Only the listing's owner may do this.
    error NotListingOwner(uint256 listingId, address caller);
    /// @notice Only the account the listing was offered to may accept it.
    error NotPendingListingOwner(uint256 listingId, address caller);
    /// @notice The listing's fee is above the most the requester agreed to pay (it was raised, or maxFee is
    /// too low): quote again.
    error FeeAboveMax(uint256 listingId, uint256 fee, uint256 maxFee);
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
    /// @notice `msg.value` must equal the listing's fee (`quote(listingId, callbackGasLimit)`) exactly.
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
    /// @notice The verifier rejected the proof for these public instances (within the model's verifyGas).
    error InvalidProof();
    /// @notice Too little gas was left to give the verifier the model's full verifyGas; resend with a higher
    /// gas limit.
    error InsufficientGasForVerifier(uint256 requestId, uint256 gasLeft, uint256 needed);
    /// @notice Too little gas was left to give the callback its full gas limit; resend with a higher gas limit.
    error InsufficientGasForCallback(uint256 requestId, uint256 gasLeft, uint256 needed);
    /// @notice The caller has no balance to withdraw.
    error NothingToWithdraw();
    /// @notice Sending the balance failed; the balance is kept. Withdraw to an address that accepts ETH.
    error WithdrawFailed(address to, uint256 amount);
    /// @notice The request, fulfil (public or private), cancel and withdraw functions cannot be re-entered.
    error Reentrancy();
    /// @notice `requestPrivateInference` on a model that takes its input in public: use `requestInference`.
    error InputNotCommitted(bytes32 modelId);
    /// @notice `requestInference` on a committed-input model: it takes private requests only
    /// (`requestPrivateInference`).
    error InputCommitted(bytes32 modelId);
    /// @notice The commitment is not a canonical field element (it must be below FIELD_MODULUS): a
    /// Poseidon output always is, so the commitment was not made as the spec says.
    error CommitmentNotInField(bytes32 commitment);
    /// @notice The named prover has registered no encryption key (or removed it): choose another prover.
    error NoEncryptionKey(address prover);
    /// @notice The input was encrypted to another key than the prover's current one (it rotated its key):
    /// read `encryptionKeyOf(prover)` and encrypt again.
    error EncryptionKeyMismatch(address prover, bytes32 current, bytes32 given);
    /// @notice The ciphertext must be CIPHERTEXT_OVERHEAD + 8 * inputLen bytes (a version-1 envelope of the
    /// salt and inputLen values).
    error InvalidCiphertextLength(uint256 expected, uint256 got);
    /// @notice `fulfillPrivateInference` on a public request: use `fulfillInference`.
    error NotPrivateRequest(uint256 requestId);
    /// @notice Only the prover a private request names may fulfil it.
    error NotNamedProver(uint256 requestId, address caller);
    /// @notice `fulfillInference` on a private request: use `fulfillPrivateInference`.
    error PrivateRequest(uint256 requestId);

    // ------------------------------------------------------------------------------------------------
    // Events
    // ------------------------------------------------------------------------------------------------

    /// @notice The encoding (lengths, scales, bounds) is committed to by the id; read it with `getModel`.
    event ModelRegistered(
        bytes32 indexed modelId, address indexed verifier, address indexed registrant, uint32 verifyGas
    );
    event VerifyGasRaised(bytes32 indexed modelId, uint32 verifyGas);
    event ListingCreated(
        uint256 indexed listingId, bytes32 indexed modelId, address indexed owner, uint96 fee, uint64 deadlineSeconds
    );
    event ListingFeeSet(uint256 indexed listingId, uint96 fee);
    event ListingActiveSet(uint256 indexed listingId, bool active);
    /// @notice `pendingOwner` may now accept the listing; zero withdraws an offer.
    event ListingTransferOffered(uint256 indexed listingId, address indexed owner, address indexed pendingOwner);
    event ListingTransferred(uint256 indexed listingId, address indexed previousOwner, address indexed newOwner);

    /// @notice Carries everything a prover node needs: the input is not kept in storage.
    event InferenceRequested(
        uint256 indexed requestId,
        bytes32 indexed modelId,
        address indexed requester,
        uint256 listingId,
        int256[] input,
        uint32 callbackGasLimit,
        uint256 payment,
        uint64 deadline
    );
    event InferenceFulfilled(uint256 indexed requestId, address indexed fulfiller, int256[] output);
    event CallbackResult(uint256 indexed requestId, bool success);
    event RequestCancelled(uint256 indexed requestId, address indexed requester, uint256 refund);
    event Withdrawn(address indexed account, address indexed to, uint256 amount);
    /// @notice `prover` encrypts-to `key` from now on (X25519 public key); zero means it removed its key.
    event EncryptionKeySet(address indexed prover, bytes32 key);
    /// @notice A private request: carries everything its prover needs, the input only inside `ciphertext`
    /// (encrypted to `encryptionKey`, which was `prover`'s key when the request was made).
    /// `InferenceRequested` is not emitted for it.
    event PrivateInferenceRequested(
        uint256 indexed requestId,
        bytes32 indexed modelId,
        address indexed prover,
        address requester,
        uint256 listingId,
        bytes32 commitment,
        bytes32 encryptionKey,
        bytes ciphertext,
        uint32 callbackGasLimit,
        uint256 payment,
        uint48 deadline
    );

    // ------------------------------------------------------------------------------------------------
    // Models
    // ------------------------------------------------------------------------------------------------

    /// @notice Registers the model of `verifier` and `encoding` (anyone may; registering gives no rights).
    /// Checks that the verifier is a contract (not a precompile, not an EIP-7702 delegated account) that
    /// reports this encoding, and measures the gas it spends on `sample` to set the model's verifyGas.
    /// @param sample Verifier calldata (instance words then proof bytes) of any valid proof for this
    /// verifier, e.g. `verifier_calldata` of a `prover-node prove` proof file.
    /// @dev Reverts with VerifierIsPrecompile, VerifierHasNoCode, VerifierIsDelegated, InvalidModelShape,
    /// InvalidValueBits, InvalidBounds, BoundsExceedValueBits, ModelAlreadyRegistered,
    /// VerifierEncodingUnavailable, EncodingMismatch or SampleProofRejected.
    function registerModel(address verifier, ModelEncoding calldata encoding, bytes calldata sample)
        external
        returns (bytes32 modelId);

    /// @notice Measures the verifier on a valid `sample` again and raises the model's verifyGas if the new
    /// figure is higher (after a hardfork reprices precompiles, say). Anyone may; it never lowers verifyGas.
    function remeasureVerifyGas(bytes32 modelId, bytes calldata sample) external returns (uint32 verifyGas);

    /// @notice The model registered under `modelId`; all zero if none.
    function getModel(bytes32 modelId) external view returns (Model memory);

    /// @notice The id a model with this verifier code hash and encoding gets.
    function computeModelId(bytes32 verifierCodehash, ModelEncoding calldata encoding) external pure returns (bytes32);

    /// @notice What `IZkinferVerifier.encodingHash()` of a verifier generated for `encoding` returns:
    /// keccak256(abi.encode(encoding)).
    function computeEncodingHash(ModelEncoding calldata encoding) external pure returns (bytes32);

    // ------------------------------------------------------------------------------------------------
    // Listings
    // ------------------------------------------------------------------------------------------------

    /// @notice Lists a registered model: the caller owns the listing. Listings are numbered from 1.
    function createListing(bytes32 modelId, uint96 fee, uint64 deadlineSeconds) external returns (uint256 listingId);

    /// @notice Sets the fee of new requests (pending ones keep what they paid). Owner only.
    function setListingFee(uint256 listingId, uint96 fee) external;

    /// @notice Stops accepting new requests through the listing. Pending requests stay fulfillable. Owner only.
    function deactivateListing(uint256 listingId) external;

    /// @notice Accepts new requests again. Owner only.
    function activateListing(uint256 listingId) external;

    /// @notice Offers the listing to `newOwner`, who becomes owner on `acceptListing`; zero withdraws an
    /// offer. Owner only.
    function offerListing(uint256 listingId, address newOwner) external;

    /// @notice Takes over a listing offered to the caller.
    function acceptListing(uint256 listingId) external;

    /// @notice The listing `listingId`; all zero if none.
    function getListing(uint256 listingId) external view returns (Listing memory);

    // ------------------------------------------------------------------------------------------------
    // Requests
    // ------------------------------------------------------------------------------------------------

    /// @notice Requests an inference of the listing's model on `input`, paying exactly the listing's fee.
    /// The input is public (calldata and event). Reverts with InputCommitted for a committed-input model.
    /// @param input The input values, each in [inputMin, inputMax], already in the model's fixed-point scale.
    /// @param callbackGasLimit Gas for `IInferenceConsumer.onInferenceResult` on the caller; zero for none.
    /// @param maxFee The most the caller agrees to pay: a fee raised above it reverts (FeeAboveMax) instead of
    /// charging more. Contracts that pay `quote(...)` must pass their own cap here.
    /// @return requestId Sequential, starting at 1.
    function requestInference(uint256 listingId, int256[] calldata input, uint32 callbackGasLimit, uint256 maxFee)
        external
        payable
        returns (uint256 requestId);

    /// @notice Fulfils a pending public request with its output and a proof; the first valid proof wins.
    /// Reverts with PrivateRequest for a private request.
    /// @dev The proof must be made for the instances
    /// `publicInstances(model.valueBits, requestId, msg.sender, input, output)` on this chain and this
    /// coordinator. The verifier gets exactly the model's verifyGas: a proof it rejects within that costs
    /// the fulfiller at most verifyGas, whatever the verifier does. Pays the request's payment to
    /// msg.sender's withdrawable balance, stores the output, then calls the requester back with exactly the
    /// request's callback gas limit. Reverts with InsufficientGasForVerifier or InsufficientGasForCallback
    /// if the transaction's gas cannot give the verifier or the callback its full amount.
    /// @param input The request's input, as emitted in InferenceRequested (checked against its hash).
    function fulfillInference(
        uint256 requestId,
        int256[] calldata input,
        int256[] calldata output,
        bytes calldata proof
    ) external;

    /// @notice Requests an inference of the listing's committed-input model on a private input, paying
    /// exactly the listing's fee; only `prover` can fulfil it. The input never reaches the chain: only its
    /// commitment and the ciphertext do.
    /// @dev Reverts as `requestInference` does for the listing, fee and payment, then with InputNotCommitted,
    /// CommitmentNotInField, NoEncryptionKey, EncryptionKeyMismatch or InvalidCiphertextLength, in that
    /// order. The coordinator cannot check that the ciphertext opens to the commitment: if it does not, the
    /// prover cannot fulfil and the requester cancels after the deadline (refunded in full).
    /// @param commitment C = Poseidon(pack(input) || salt), below FIELD_MODULUS.
    /// @param prover The prover the input is encrypted to, who alone may fulfil.
    /// @param encryptionKey The key the input was encrypted to: must be `encryptionKeyOf(prover)` now.
    /// @param ciphertext A version-1 envelope of salt and input to `encryptionKey`, bound to this chain,
    /// coordinator, requester, model and commitment; CIPHERTEXT_OVERHEAD + 8 * inputLen bytes.
    /// @param callbackGasLimit As for `requestInference`.
    /// @param maxFee As for `requestInference`.
    /// @return requestId Sequential, from the same counter as public requests.
    function requestPrivateInference(
        uint256 listingId,
        bytes32 commitment,
        address prover,
        bytes32 encryptionKey,
        bytes calldata ciphertext,
        uint32 callbackGasLimit,
        uint256 maxFee
    ) external payable returns (uint256 requestId);

    /// @notice Fulfils a pending private request with its output and a proof. Named prover only.
    /// @dev The proof must be made for the instances
    /// `privateInstances(model.valueBits, requestId, msg.sender, commitment, output)` on this chain and
    /// this coordinator. Reverts with RequestNotPending, RequestExpired, NotPrivateRequest or
    /// NotNamedProver, then as `fulfillInference` does for the output, the verifier and the proof; on
    /// success pays, stores, emits InferenceFulfilled and calls back exactly as `fulfillInference` does.
    function fulfillPrivateInference(uint256 requestId, int256[] calldata output, bytes calldata proof) external;

    /// @notice Sets the caller's X25519 public key, to which requesters encrypt private inputs for it.
    /// Rotating it makes new requests encrypted to the old key revert (EncryptionKeyMismatch); requests
    /// already made keep the key they were encrypted to (in their event). Zero removes it: the caller can
    /// then be named by no new private request.
    function setEncryptionKey(bytes32 key) external;

    /// @notice Cancels a pending request after its deadline and credits the payment to the requester's
    /// withdrawable balance. Requester only.
    function cancelRequest(uint256 requestId) external;

    /// @notice Sends the caller's whole withdrawable balance (fees earned, refunds) to `to`.
    function withdraw(address payable to) external;

    // ------------------------------------------------------------------------------------------------
    // Views
    // ------------------------------------------------------------------------------------------------

    /// @notice The exact payment `requestInference` expects. Reverts like `requestInference` would for an
    /// unknown or inactive listing or a too-high callback gas limit.
    function quote(uint256 listingId, uint32 callbackGasLimit) external view returns (uint256);

    function getRequest(uint256 requestId) external view returns (Request memory);

    /// @notice The status, the output (empty unless Fulfilled) and whether the callback succeeded.
    function getResult(uint256 requestId)
        external
        view
        returns (RequestStatus status, int256[] memory output, bool callbackSucceeded);

    /// @notice ETH `account` can withdraw.
    function withdrawable(address account) external view returns (uint256);

    /// @notice The binding instance on this chain and coordinator:
    /// uint256(keccak256(abi.encode(block.chainid, address(this), requestId, fulfiller))) % r.
    function bindingOf(uint256 requestId, address fulfiller) external view returns (uint256);

    /// @notice The public instances a proof fulfilling `requestId` from `fulfiller` on this coordinator must
    /// be made for, for a model with `valueBits`. Reverts with InvalidValueBits or ValueOutOfRange.
    function publicInstances(
        uint8 valueBits,
        uint256 requestId,
        address fulfiller,
        int256[] calldata input,
        int256[] calldata output
    ) external view returns (uint256[] memory);

    /// @notice The public instances a proof fulfilling the private request `requestId` with commitment
    /// `commitment` from `fulfiller` on this coordinator must be made for, for a model with `valueBits`:
    /// [bindingOf(requestId, fulfiller), commitment, pack(output)...]. Reverts with InvalidValueBits,
    /// CommitmentNotInField or ValueOutOfRange.
    function privateInstances(
        uint8 valueBits,
        uint256 requestId,
        address fulfiller,
        bytes32 commitment,
        int256[] calldata output
    ) external view returns (uint256[] memory);

    /// @notice The X25519 public key `prover` registered (`setEncryptionKey`); zero if none.
    function encryptionKeyOf(address prover) external view returns (bytes32);

    /// @notice Bytes of a version-1 envelope beyond its 8 bytes per input value: 1 (version) + 32
    /// (ephemeral X25519 public key) + 32 (salt) + 16 (ChaCha20-Poly1305 tag) = 81.
    function CIPHERTEXT_OVERHEAD() external view returns (uint256);

    /// @notice The largest callback gas limit a request may ask for.
    function MAX_CALLBACK_GAS() external view returns (uint32);

    /// @notice The shortest fulfilment window (`deadlineSeconds`) a listing may set.
    function MIN_DEADLINE_SECONDS() external view returns (uint64);

    /// @notice The longest fulfilment window (`deadlineSeconds`) a listing may set.
    function MAX_DEADLINE_SECONDS() external view returns (uint64);

    /// @notice The most gas any model's verifier is given per fulfilment.
    function MAX_VERIFY_GAS() external view returns (uint32);

    /// @notice r, the order of the BN254 scalar field.
    function FIELD_MODULUS() external view returns (uint256);
}
