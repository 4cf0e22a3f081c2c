//! Errors of the prover node.

use alloy::primitives::{Address, B256, U256};

use crate::{client::ChainError, store::StoreError};

/// Result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors of setup, proving and chain access.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// From the models crate (ONNX, quantization, keys, proofs).
    #[error(transparent)]
    Models(#[from] models::Error),
    /// From verifier generation.
    #[error(transparent)]
    Verifier(#[from] verifier_gen::Error),
    /// A file could not be read or written.
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A JSON file is malformed.
    #[error("{} is not a valid {what}: {reason}", path.display())]
    BadFile { path: std::path::PathBuf, what: &'static str, reason: String },
    /// Invalid user input.
    #[error("{0}")]
    Invalid(String),
    /// The configuration file is not valid TOML for the node (unknown key, wrong type, …).
    #[error("config: {0}")]
    ConfigSyntax(String),
    /// A configuration value is unusable.
    #[error("config: {key}: {reason}")]
    Config { key: &'static str, reason: String },
    /// The RPC endpoint failed (tooling: setup, verify, demo).
    #[error("RPC error: {0}")]
    Rpc(String),
    /// A chain call of the node failed.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// The embedded store failed or was refused.
    #[error(transparent)]
    Store(Box<StoreError>),
    /// The endpoint serves another chain than the configured one.
    #[error(
        "the RPC endpoint reports chain id {got}, the config expects {expected} (rpc.chain_id); no transaction is sent"
    )]
    ChainIdMismatch { expected: u64, got: u64 },
    /// No contract at the configured coordinator address.
    #[error(
        "no contract at the coordinator address {address} on this chain: check the coordinator (contract.coordinator, \
         contract.deployments or --coordinator) and the RPC URL"
    )]
    NoCode { address: Address },
    /// A served model is not registered on the coordinator under its card's id.
    #[error(
        "model {model} (id {model_id}) is not registered on the coordinator {coordinator}: register it, or \
         check that contract.coordinator is the coordinator it was registered on"
    )]
    ModelNotRegistered { model: String, model_id: B256, coordinator: Address },
    /// A task of the node panicked (a bug): the node stops rather than run without it.
    #[error("{what} failed unexpectedly: {reason}")]
    Panicked { what: &'static str, reason: String },
    /// A transaction was mined but reverted.
    #[error("transaction reverted: {0}")]
    Reverted(String),
    /// No deployments file where one was named.
    #[error(
        "no deployments file at {}: run `prover-node deploy-coordinator` (or the forge script DeployCoordinator) \
         against this chain first, or point at the right file",
        path.display()
    )]
    DeploymentsMissing { path: std::path::PathBuf },
    /// The deployments file records another chain than the one the RPC endpoint serves.
    #[error(
        "{} is the deployments file of chain {file}, but the RPC endpoint serves chain {chain}: use chain {chain}'s \
         file (deployments/{chain}.json) or the RPC URL of chain {file}",
        path.display()
    )]
    DeploymentsChainMismatch { path: std::path::PathBuf, file: u64, chain: u64 },
    /// Two sources name different coordinators (a flag or the config versus the deployments file,
    /// or the file versus the CREATE2 address of this salt).
    #[error("{what} is {given}, but {} records coordinator {recorded}: one deployments file per coordinator", path.display())]
    CoordinatorMismatch { what: String, given: Address, path: std::path::PathBuf, recorded: Address },
    /// A verifier made with the insecure dev SRS, to be deployed on a chain other than the dev chain.
    #[error(
        "{model}: refused on chain {chain_id}: its verifier was made with the insecure dev SRS (card srs.insecure = \
         true), which lets anyone forge its proofs, and it runs only on chain {}; run `prover-node setup` with a \
         ceremony SRS (--srs) to deploy it here",
        verifier_gen::DEV_CHAIN_ID
    )]
    DevSrsOffDevChain { model: String, chain_id: u64 },
    /// The standard CREATE2 deployer is not on this chain.
    #[error(
        "no CREATE2 deployer at {address} on chain {chain_id}: deterministic deployment needs it (it is on anvil and \
         most public chains; see github.com/Arachnid/deterministic-deployment-proxy to deploy it)"
    )]
    NoCreate2Factory { address: Address, chain_id: u64 },
    /// Deployed code, or a verifier artifact, is not the model card's verifier.
    #[error("{what} has code hash {got}, but the card's verifier has {expected}")]
    VerifierCodeMismatch { what: String, got: B256, expected: B256 },
    /// The coordinator derives another model id than the card states.
    #[error(
        "{model}: the coordinator derives model id {derived} from the card's verifier and encoding, but the card says \
         {card}: the card and its verifier artifact do not belong together (run `prover-node setup` again)"
    )]
    ModelIdMismatch { model: String, card: B256, derived: B256 },
    /// The signing account cannot pay for a deployment step (checked before it is sent).
    #[error("{0}")]
    InsufficientFunds(Box<Shortfall>),
    /// The encryption key ring cannot be used.
    #[error(
        "{0} (private.key_file / --key-file; create or rotate the ring with `prover-node encryption-key new --key-file \
         FILE`)"
    )]
    KeyRing(#[source] models::envelope::EnvelopeError),
    /// A transaction would revert (found by simulating it); it was not sent (earlier steps of the
    /// same command may have been: the CLI says which).
    #[error("{what} would revert: {reason}; it was not sent")]
    SimulationReverted { what: String, reason: String },
    /// A listing's fulfilment window outside the coordinator's bounds (checked before anything is sent).
    #[error(
        "--deadline-seconds {deadline} is outside the coordinator's bounds [{min}, {max}] (MIN_DEADLINE_SECONDS, \
         MAX_DEADLINE_SECONDS); nothing was sent"
    )]
    DeadlineOutOfRange { deadline: u64, min: u64, max: u64 },
}

/// What a deployment step costs and what its account has ([`Error::InsufficientFunds`]).
#[derive(Debug, thiserror::Error)]
#[error(
    "{what}: insufficient funds: the account {account} has {} ETH, the transaction needs about {} ETH ({gas} gas at \
     {} gwei, with a margin); nothing was sent for this step",
    crate::deploy::format_ether(*balance),
    crate::deploy::format_ether(*needed),
    crate::deploy::format_gwei(*gas_price)
)]
pub struct Shortfall {
    /// The step (`deploy DigitsMlpVerifier`, `registerModel digits_mlp`, …).
    pub what: String,
    /// The signing account.
    pub account: Address,
    /// Its balance (wei).
    pub balance: U256,
    /// Gas limit × gas price + value (wei).
    pub needed: U256,
    /// The gas limit (the estimate with its margin).
    pub gas: u64,
    /// The gas price (wei).
    pub gas_price: u128,
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        Self::Store(Box::new(e))
    }
}

impl Error {
    /// Whether retrying the same operation later can succeed (the endpoint, not the request, failed).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Rpc(_) => true,
            Self::Chain(e) => e.is_transient(),
            _ => false,
        }
    }
}
