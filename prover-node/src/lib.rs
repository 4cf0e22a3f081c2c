//! zkinfer prover node: model setup, proving, verification, and (in `run`) the daemon that fulfils
//! on-chain inference requests.

pub mod bench;
pub mod bindings;
pub mod chain;
pub mod error;
pub mod proof;
pub mod prove;
pub mod setup;

pub use error::{Error, Result};
