//! The prover pool: proofs run on blocking threads (bounded by `prover.concurrency`), off the
//! async runtime; results come back on a channel tagged with the input they proved, so a result
//! for an input a reorg replaced meanwhile is recognised and discarded.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use alloy::primitives::{Bytes, B256, U256};
use tokio::sync::mpsc;
use tracing::{info, info_span};

use crate::{
    client::input_hash,
    error::Result,
    proof::Fulfiller,
    prove::{self, LoadedModel},
};

/// A proof and its output.
#[derive(Clone, Debug, PartialEq)]
pub struct Proved {
    /// Quantized output.
    pub output: Vec<i64>,
    /// Proof bytes.
    pub proof: Bytes,
    /// Proving time.
    pub seconds: f64,
}

/// What proves: the loaded models (or a fake in tests).
pub trait ProofBackend: Send + Sync + 'static {
    /// Whether the node serves `model`.
    fn serves(&self, model: &B256) -> bool;
    /// A name for logs.
    fn name(&self, model: &B256) -> String;
    /// Whether `input` can be proved (shape and range), with the reason if not.
    fn check_input(&self, model: &B256, input: &[i64]) -> std::result::Result<(), String>;
    /// Proves `input` for `request_id`, to be submitted by `fulfiller` on its chain and coordinator
    /// (blocking, CPU-heavy).
    fn prove(&self, model: &B256, input: &[i64], request_id: U256, fulfiller: Fulfiller) -> Result<Proved>;
}

/// The models this node serves, by id.
#[derive(Debug, Default)]
pub struct Models(pub HashMap<B256, Arc<LoadedModel>>);

impl ProofBackend for Models {
    fn serves(&self, model: &B256) -> bool {
        self.0.contains_key(model)
    }

    fn name(&self, model: &B256) -> String {
        self.0.get(model).map(|m| m.card.name.clone()).unwrap_or_else(|| model.to_string())
    }

    fn check_input(&self, model: &B256, input: &[i64]) -> std::result::Result<(), String> {
        match self.0.get(model) {
            Some(m) => m.model.check_input(input).map_err(|e| e.to_string()),
            None => Err(format!("model {model} is not served")),
        }
    }

    fn prove(&self, model: &B256, input: &[i64], request_id: U256, fulfiller: Fulfiller) -> Result<Proved> {
        let m = self.0.get(model).ok_or_else(|| crate::Error::Invalid(format!("model {model} is not served")))?;
        let p = prove::prove(m, input, None, request_id, &fulfiller)?;
        Ok(Proved { output: p.output, proof: p.proof, seconds: p.prove_seconds })
    }
}

/// What a proving thread sends back.
#[derive(Debug)]
pub struct ProveResult {
    /// The request.
    pub request_id: U256,
    /// Hash of the input that was proved.
    pub input_hash: B256,
    /// The proof, or why it failed.
    pub result: Result<Proved>,
}

/// Bounded pool of proving threads.
#[derive(Debug)]
pub struct ProverPool<P> {
    backend: Arc<P>,
    concurrency: usize,
    in_flight: HashSet<U256>,
    tx: mpsc::UnboundedSender<ProveResult>,
    rx: mpsc::UnboundedReceiver<ProveResult>,
}

impl<P: ProofBackend> ProverPool<P> {
    /// A pool running at most `concurrency` proofs at once.
    pub fn new(backend: Arc<P>, concurrency: usize) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Self { backend, concurrency, in_flight: HashSet::new(), tx, rx }
    }

    /// The backend.
    pub fn backend(&self) -> &P {
        &self.backend
    }

    /// Free proving slots.
    pub fn free(&self) -> usize {
        self.concurrency.saturating_sub(self.in_flight.len())
    }

    /// Proofs in progress.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Whether `request_id` is being proved.
    pub fn is_proving(&self, request_id: U256) -> bool {
        self.in_flight.contains(&request_id)
    }

    /// Starts proving on a blocking thread.
    pub fn start(&mut self, request_id: U256, model: B256, input: Vec<i64>, fulfiller: Fulfiller) {
        self.in_flight.insert(request_id);
        let (backend, tx) = (self.backend.clone(), self.tx.clone());
        let span = info_span!("prove", request_id = %request_id, model = %backend.name(&model));
        tokio::task::spawn_blocking(move || {
            let _enter = span.enter();
            info!("proving");
            let input_hash = input_hash(&input);
            let result = backend.prove(&model, &input, request_id, fulfiller);
            let _ = tx.send(ProveResult { request_id, input_hash, result });
        });
    }

    /// A finished proof, if one is ready.
    pub fn try_next(&mut self) -> Option<ProveResult> {
        let r = self.rx.try_recv().ok()?;
        self.in_flight.remove(&r.request_id);
        Some(r)
    }

    /// Waits for the next finished proof (pending forever while none is in flight).
    pub async fn next(&mut self) -> ProveResult {
        if self.in_flight.is_empty() {
            std::future::pending::<()>().await;
        }
        let r = self.rx.recv().await.expect("the pool holds a sender");
        self.in_flight.remove(&r.request_id);
        r
    }
}
