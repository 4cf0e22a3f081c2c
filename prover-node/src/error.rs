//! Errors of the prover node.

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
    /// The RPC endpoint failed (retryable).
    #[error("RPC error: {0}")]
    Rpc(String),
    /// The embedded store failed.
    #[error("store: {0}")]
    Store(String),
    /// A transaction was mined but reverted.
    #[error("transaction reverted: {0}")]
    Reverted(String),
}

impl Error {
    /// Whether retrying the same operation later can succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Rpc(_))
    }
}
