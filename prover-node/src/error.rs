//! Errors of the prover node.

use alloy::primitives::{Address, B256};

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
        "no contract at the coordinator address {address} on this chain: check contract.coordinator and rpc.http_url"
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
