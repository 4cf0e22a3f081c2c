//! The prover pool: proofs run on blocking threads (bounded by `prover.concurrency`), off the
//! async runtime; results come back on a channel tagged with the claim they proved (the input's
//! hash, or a private request's commitment), so a result for an input a reorg replaced meanwhile
//! is recognised and discarded.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use alloy::primitives::{Bytes, B256, U256};
use tokio::sync::mpsc;
use tracing::{info, info_span};

use crate::{
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
    /// [`Self::check_input`] for a private request's input: the reason names the offending index
    /// and the model's range but never an input value (it is logged and stored).
    fn check_private_input(&self, model: &B256, input: &[i64]) -> std::result::Result<(), String>;
    /// Number of input values of `model` (what a private request's envelope must hold).
    fn input_len(&self, model: &B256) -> usize;
    /// `C = Poseidon(pack(input) ‖ salt)` for `model`'s value bits, the commitment a private
    /// request's envelope must open to (`salt` big-endian, below 2^248; `input` checked).
    fn commitment(&self, model: &B256, input: &[i64], salt: &B256) -> std::result::Result<B256, String>;
    /// Proves `input` for `request_id`, to be submitted by `fulfiller` on its chain and coordinator
    /// (blocking, CPU-heavy). A private request's `salt` opens its commitment together with the
    /// input; a public request has none.
    fn prove(
        &self,
        model: &B256,
        input: &[i64],
        salt: Option<B256>,
        request_id: U256,
        fulfiller: Fulfiller,
    ) -> Result<Proved>;
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

    fn check_private_input(&self, model: &B256, input: &[i64]) -> std::result::Result<(), String> {
        match self.0.get(model) {
            Some(m) => m.model.check_input(input).map_err(|e| match e {
                models::error::Error::InputOutOfRange { index, min, max, .. } => {
                    format!("input[{index}] is outside the model's quantized input range [{min}, {max}]")
                }
                models::error::Error::InputLength { expected, got, .. } => {
                    format!("wrong input length: the model takes {expected} values, got {got}")
                }
                _ => "the input is not one the model takes".to_string(),
            }),
            None => Err(format!("model {model} is not served")),
        }
    }

    fn input_len(&self, model: &B256) -> usize {
        self.0.get(model).map_or(0, |m| m.model.input_len())
    }

    fn commitment(&self, model: &B256, input: &[i64], salt: &B256) -> std::result::Result<B256, String> {
        let m = self.0.get(model).ok_or_else(|| format!("model {model} is not served"))?;
        let salt = models::commitment::salt_from_bytes(&salt.0).map_err(|e| e.to_string())?;
        let c = models::commitment::input_commitment(input, salt, m.model.params.value_bits);
        Ok(B256::from(crate::proof::field_to_u256(&c)))
    }

    fn prove(
        &self,
        model: &B256,
        input: &[i64],
        salt: Option<B256>,
        request_id: U256,
        fulfiller: Fulfiller,
    ) -> Result<Proved> {
        let m = self.0.get(model).ok_or_else(|| crate::Error::Invalid(format!("model {model} is not served")))?;
        let salt = salt.map(|s| models::commitment::salt_from_bytes(&s.0)).transpose()?;
        let p = prove::prove(m, input, salt, request_id, &fulfiller)?;
        Ok(Proved { output: p.output, proof: p.proof, seconds: p.prove_seconds })
    }
}

/// What a proving thread sends back.
#[derive(Debug)]
pub struct ProveResult {
    /// The request.
    pub request_id: U256,
    /// [`Claim::hash`](crate::client::Claim::hash) of what was proved: the input's hash, or the
    /// commitment of a private request (another salt is another commitment).
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

    /// Starts proving `job` on a blocking thread.
    pub fn start(&mut self, job: &crate::store::Job, fulfiller: Fulfiller) {
        let (request_id, model, input_hash) = (job.request_id, job.model_id, job.claim_hash());
        let input = job.input.clone();
        let salt = job.private.as_ref().and_then(|p| p.salt);
        self.in_flight.insert(request_id);
        let (backend, tx) = (self.backend.clone(), self.tx.clone());
        let span = info_span!("prove", request_id = %request_id, model = %backend.name(&model));
        tokio::task::spawn_blocking(move || {
            let _enter = span.enter();
            info!("proving");
            let result = backend.prove(&model, &input, salt, request_id, fulfiller);
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
