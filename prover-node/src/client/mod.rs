//! What the node needs from the chain, as a trait: the job state machine (watcher, prover pool,
//! submitter, reconciler) is written against [`ChainClient`] only, so it runs unchanged on the
//! real JSON-RPC client ([`rpc::RpcClient`], alloy over HTTP, every call under a timeout) and on an
//! in-memory chain in unit tests (`fake::FakeChain`: reorgs, evictions, fee spikes, failing and
//! hanging calls on demand).
//!
//! Errors are typed by what the caller should do ([`ChainError::is_transient`]): a transient error
//! (timeout, connection, HTTP 5xx/429, garbage answer) abandons the pass and is retried with
//! backoff; a revert carries the coordinator's decoded error; a rejection (the node refused the
//! request, e.g. a transaction it will not pool) is handled by the caller.

use std::{future::Future, time::Duration};

use alloy::primitives::{keccak256, Address, Bytes, B256, I256, U256};

use crate::bindings::IInferenceCoordinator::IInferenceCoordinatorErrors;

#[cfg(test)]
pub mod fake;
pub mod rpc;

/// Result of a chain call.
pub type ChainResult<T> = std::result::Result<T, ChainError>;

/// Why a chain call failed.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// No answer within the configured timeout (a hung endpoint).
    #[error("{method}: no answer within {after:?}")]
    Timeout { method: &'static str, after: Duration },
    /// The endpoint is unreachable or answered with a transport-level failure (connection refused
    /// or reset, HTTP 5xx or 429, a rate limit, a malformed answer): retry later.
    #[error("{method}: endpoint unavailable: {source}")]
    Unavailable {
        method: &'static str,
        #[source]
        source: alloy::transports::TransportError,
    },
    /// The call reverts; `error` is the coordinator's error when it decodes as one.
    #[error("{method}: reverts{}", error.as_ref().map(|e| format!(" with {e}")).unwrap_or_default())]
    Reverted { method: &'static str, error: Option<IInferenceCoordinatorErrors> },
    /// The node answered with a JSON-RPC error that is not a revert (it rejects this request).
    #[error("{method}: rejected by the node: {source}")]
    Rejected {
        method: &'static str,
        #[source]
        source: alloy::transports::TransportError,
    },
    /// The address does not answer like an `InferenceCoordinator` (no code, or another ABI).
    #[error("{address} does not answer like an InferenceCoordinator ({reason})")]
    NotACoordinator { address: Address, reason: String },
    /// The endpoint does not have a block it should have (a load-balanced endpoint whose backend
    /// is behind the head another backend reported): not a reorg, retry later.
    #[error("{method}: block {number} is not available from the endpoint yet")]
    BlockUnavailable { method: &'static str, number: u64 },
    /// Signing failed locally.
    #[error("signing: {0}")]
    Signing(String),
}

impl ChainError {
    /// Whether the same call can succeed later without anything changing on our side.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Timeout { .. } | Self::Unavailable { .. } | Self::BlockUnavailable { .. })
    }
}

/// Status of a request on-chain (`IInferenceCoordinator.RequestStatus`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestStatus {
    /// Unknown id (never made, or removed by a reorg).
    None,
    /// Waiting for a fulfilment.
    Pending,
    /// Fulfilled.
    Fulfilled,
    /// Cancelled by the requester.
    Cancelled,
}

/// A request as the coordinator holds it now (at the head).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OnChainRequest {
    /// Status.
    pub status: RequestStatus,
    /// `keccak256(abi.encodePacked(int256[] input))` of a public request; the commitment `C` of a
    /// private one.
    pub input_hash: B256,
    /// The prover a private request names (the only account that may fulfil it); zero for a public
    /// request.
    pub prover: Address,
    /// Deadline (unix seconds).
    pub deadline: u64,
    /// Who fulfilled it (zero unless fulfilled).
    pub fulfiller: Address,
}

/// An `InferenceRequested` event, or a `PrivateInferenceRequested` event naming this node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestEvent {
    /// Request id.
    pub request_id: U256,
    /// Model id.
    pub model_id: B256,
    /// Requester.
    pub requester: Address,
    /// What the request asks to prove.
    pub payload: Payload,
    /// Payment (wei).
    pub payment: U256,
    /// Deadline (unix seconds).
    pub deadline: u64,
    /// Block of the event.
    pub block_number: u64,
    /// Hash of that block.
    pub block_hash: B256,
}

/// The input of a request, as its event carries it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Payload {
    /// `InferenceRequested`: the input in plain sight, `None` if a value does not fit 64 bits.
    Public(Option<Vec<i64>>),
    /// `PrivateInferenceRequested` naming this node: the input only inside the envelope.
    Private(Sealed),
}

/// What a private request carries instead of its input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sealed {
    /// `C = Poseidon(pack(input) ‖ salt)`, the request's `inputHash` on-chain.
    pub commitment: B256,
    /// The X25519 public key the envelope is sealed to (the prover's key when the request was made).
    pub encryption_key: B256,
    /// The version-1 envelope of salt and input.
    pub ciphertext: Bytes,
}

/// A block header, as far as the node cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockInfo {
    /// Block hash.
    pub hash: B256,
    /// EIP-1559 base fee (wei); 0 before London.
    pub base_fee: u128,
    /// Block timestamp (unix seconds): the chain's clock, which judges deadlines.
    pub timestamp: u64,
}

/// A registered model, as far as the node checks it at start-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OnChainModel {
    /// Verifier contract.
    pub verifier: Address,
    /// Whether requests are accepted.
    pub active: bool,
}

/// A mined transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Receipt {
    /// Whether it succeeded.
    pub success: bool,
    /// Block it is in.
    pub block_number: u64,
    /// Gas used.
    pub gas_used: u64,
}

/// `fulfillInference(requestId, input, output, proof)` for a public request,
/// `fulfillPrivateInference(requestId, output, proof)` for a private one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fulfilment {
    /// Request id.
    pub request_id: U256,
    /// What the proof is about: the public input, or the commitment of a private request.
    pub claim: Claim,
    /// Output proved.
    pub output: Vec<i64>,
    /// The proof.
    pub proof: Bytes,
}

/// The request-side instance of a proof: what the coordinator compares with the request's
/// `inputHash`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// A public request's input (sent in `fulfillInference`).
    Input(Vec<i64>),
    /// A private request's commitment (not sent: the coordinator has it).
    Commitment(B256),
}

impl Claim {
    /// What the coordinator stores as the request's `inputHash` for this claim.
    pub fn hash(&self) -> B256 {
        match self {
            Self::Input(input) => input_hash(input),
            Self::Commitment(c) => *c,
        }
    }
}

/// EIP-1559 parameters of one transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxParams {
    /// Nonce.
    pub nonce: u64,
    /// Gas limit.
    pub gas_limit: u64,
    /// `maxFeePerGas` (wei).
    pub max_fee: u128,
    /// `maxPriorityFeePerGas` (wei).
    pub tip: u128,
}

/// A signed transaction, ready to broadcast.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedTx {
    /// Its hash.
    pub hash: B256,
    /// EIP-2718 encoding.
    pub raw: Bytes,
}

/// The node's view of the chain. Every method is one round trip (or a local computation) and must
/// return within the client's timeout.
pub trait ChainClient: Send + Sync + 'static {
    /// The account that signs fulfilments.
    fn fulfiller(&self) -> Address;
    /// The coordinator's address.
    fn coordinator(&self) -> Address;
    /// `eth_chainId`.
    fn chain_id(&self) -> impl Future<Output = ChainResult<u64>> + Send;
    /// The head block number.
    fn head(&self) -> impl Future<Output = ChainResult<u64>> + Send;
    /// A canonical block, `None` if the endpoint answers `null` for it: beyond its head, or not yet
    /// available from the backend that answered (never, by itself, a sign of a reorg).
    fn block(&self, number: u64) -> impl Future<Output = ChainResult<Option<BlockInfo>>> + Send;
    /// A block the node knows exists (at or below a head it was told): `null` is
    /// [`ChainError::BlockUnavailable`], a transient error.
    fn known_block(&self, number: u64) -> impl Future<Output = ChainResult<BlockInfo>> + Send {
        async move {
            self.block(number).await?.ok_or(ChainError::BlockUnavailable { method: "eth_getBlockByNumber", number })
        }
    }
    /// Bytes of code at `address`.
    fn code_size(&self, address: Address) -> impl Future<Output = ChainResult<usize>> + Send;
    /// Whether the coordinator had code at block `block` (`eth_getCode` at that block; needs the
    /// state of that block, which a pruned endpoint may no longer have: then an error that is not
    /// transient).
    fn coordinator_deployed_at(&self, block: u64) -> impl Future<Output = ChainResult<bool>> + Send;
    /// `InferenceRequested` events, and `PrivateInferenceRequested` events whose `prover` is
    /// [`Self::fulfiller`], in `from..=to`, in chain order.
    fn requested(&self, from: u64, to: u64) -> impl Future<Output = ChainResult<Vec<RequestEvent>>> + Send;
    /// A request's current state.
    fn request(&self, id: U256) -> impl Future<Output = ChainResult<OnChainRequest>> + Send;
    /// Request `id` in the coordinator's state as of block `block` (`getRequest` at that block):
    /// `None` if its status is `None`, else the prover it names (zero for a public request). Used
    /// to catch requests whose log a lagging log index left out (a private request naming another
    /// prover is out of this node's logs by design). Only called for blocks at which the
    /// coordinator has code.
    fn request_at(&self, id: U256, block: u64) -> impl Future<Output = ChainResult<Option<Address>>> + Send;
    /// Whether request `id` exists as of block `block` ([`Self::request_at`]).
    fn request_exists_at(&self, id: U256, block: u64) -> impl Future<Output = ChainResult<bool>> + Send {
        async move { Ok(self.request_at(id, block).await?.is_some()) }
    }
    /// `encryptionKeyOf(account)`: the X25519 public key private requests to `account` are sealed
    /// to (zero if none).
    fn encryption_key_of(&self, account: Address) -> impl Future<Output = ChainResult<B256>> + Send;
    /// A registered model, `None` if the id is unknown.
    fn model(&self, id: B256) -> impl Future<Output = ChainResult<Option<OnChainModel>>> + Send;
    /// The fulfiller's mined transaction count (the next nonce once everything sent is mined).
    fn nonce(&self) -> impl Future<Output = ChainResult<u64>> + Send;
    /// The fulfiller's balance (wei).
    fn balance(&self) -> impl Future<Output = ChainResult<U256>> + Send;
    /// The node's suggested priority fee (wei).
    fn suggested_tip(&self) -> impl Future<Output = ChainResult<u128>> + Send;
    /// Gas a fulfilment would use now; reverts as [`ChainError::Reverted`].
    fn estimate_fulfil(&self, f: &Fulfilment) -> impl Future<Output = ChainResult<u64>> + Send;
    /// Signs a fulfilment transaction (locally; nothing is sent).
    fn sign_fulfil(&self, f: &Fulfilment, params: TxParams) -> impl Future<Output = ChainResult<SignedTx>> + Send;
    /// Sends a signed transaction.
    fn broadcast(&self, raw: &Bytes) -> impl Future<Output = ChainResult<()>> + Send;
    /// The receipt of a mined transaction.
    fn receipt(&self, hash: B256) -> impl Future<Output = ChainResult<Option<Receipt>>> + Send;
    /// Whether the node knows the transaction (pending in its pool, or mined).
    fn is_known(&self, hash: B256) -> impl Future<Output = ChainResult<bool>> + Send;
}

/// `keccak256(abi.encodePacked(int256[] input))`, as the coordinator stores it.
pub fn input_hash(input: &[i64]) -> B256 {
    let mut packed = Vec::with_capacity(input.len() * 32);
    for v in input {
        packed.extend_from_slice(&I256::try_from(*v).expect("i64 fits").to_be_bytes::<32>());
    }
    keccak256(packed)
}
