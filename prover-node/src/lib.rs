//! zkinfer prover node: model setup, proving, verification, and (in `run`) the daemon that fulfils
//! on-chain inference requests.

pub mod bench;
pub mod bindings;
pub mod chain;
pub mod cli;
pub mod client;
pub mod config;
pub mod contracts;
pub mod demo;
pub mod deploy;
pub mod deployments;
pub mod error;
pub mod metrics;
pub mod private;
pub mod progress;
pub mod proof;
pub mod prove;
pub mod prover;
pub mod reconciler;
pub mod service;
pub mod setup;
pub mod store;
pub mod submitter;
pub mod subscriber;
pub mod verify;
pub mod watcher;

pub use error::{Error, Result};
