//! Errors of `verifier-gen`.

use std::path::PathBuf;

/// Result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong turning a verifying key into deployable bytecode.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Solidity compiler could not be started.
    #[error("cannot run the Solidity compiler {}: {source} (run scripts/setup, or pass --solc)", path.display())]
    SolcMissing {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// No solc found where an installed program looks for one ([`crate::find_solc`]).
    #[error(
        "no Solidity compiler found: {tried}. Set ZKINFER_SOLC to a solc {pinned} (a native solc, or a zkinfer \
         checkout's scripts/solc), or put solc {pinned} on PATH"
    )]
    SolcNotFound { pinned: String, tried: String },
    /// The compiler ran but failed.
    #[error("solc failed: {0}")]
    SolcFailed(String),
    /// The compiled verifier exceeds the EIP-170 code size limit.
    #[error("verifier runtime bytecode is {size} bytes, above the EIP-170 limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    /// A file could not be written or read.
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// snark-verifier's output does not have the shape the hardening relies on.
    #[error("cannot harden the generated verifier: {0}")]
    UnexpectedVerifier(String),
    /// A compiled verifier artifact could not be parsed.
    #[error("{} is not a compiled verifier artifact: {reason}", path.display())]
    BadArtifact { path: PathBuf, reason: String },
    /// A verifier artifact that is not the one its model card describes (other later parts).
    #[error(
        "{} does not belong to the model card {}: {reason}. Use the artifact `prover-node setup` wrote beside \
         this card, or run setup again",
        artifact.display(),
        card.display()
    )]
    ArtifactMismatch { artifact: PathBuf, card: PathBuf, reason: String },
    /// An error from the models crate (keys, SRS).
    #[error(transparent)]
    Models(#[from] models::Error),
}
