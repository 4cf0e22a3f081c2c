//! The fulfilment daemon: one state machine over the persisted jobs.
//!
//! Every tick (one `poll_interval`):
//! 1. **watch**: read the head; scan `InferenceRequested` logs from the persisted cursor up to
//!    `head − confirmations`; jobs for served models are stored `Queued` (others `Dropped`). If
//!    the cursor block's hash changed, a reorg happened: the cursor rewinds and the range is
//!    scanned again (stored jobs whose request moved are updated if not yet submitted).
//! 2. **prove**: queued jobs go to a bounded pool of blocking threads (`concurrency`), off the
//!    async runtime; results come back on a channel and are persisted (`Proven` / `Failed`).
//! 3. **submit**: before sending, the request is read on chain: only a still-pending,
//!    unexpired request whose input hash matches is fulfilled. Submissions are sequential (no nonce
//!    races); the tx hash is persisted the moment it is known.
//! 4. **confirm**: a submitted job becomes `Fulfilled` once its receipt is `confirmations` deep;
//!    a reverted or vanished transaction sends it back to `Proven` (or drops it, if someone else
//!    fulfilled the request meanwhile).
//!
//! RPC failures never lose state: the tick is abandoned, logged with a backoff, and retried.

use std::{
    collections::{HashMap, HashSet},
    sync::{atomic::Ordering, Arc},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use alloy::{
    eips::BlockNumberOrTag,
    primitives::{keccak256, Address, Bytes, B256, I256, U256},
    providers::{DynProvider, Provider},
    rpc::types::Filter,
    sol_types::SolEvent,
};
use tokio::sync::{mpsc, watch};
use tracing::{debug, error, info, info_span, warn, Instrument};

use crate::{
    bindings::IInferenceCoordinator::{self, IInferenceCoordinatorErrors, IInferenceCoordinatorInstance},
    config::NodeConfig,
    error::{Error, Result},
    metrics::Metrics,
    proof::Fulfiller,
    prove::{self, LoadedModel},
    store::{Job, JobState, Store},
};

/// How far the cursor rewinds when a reorg is detected.
const REORG_REWIND: u64 = 64;
/// Blocks after which a submitted transaction with no receipt is considered lost.
const LOST_TX_BLOCKS: u64 = 10;
/// Submission attempts before a job is failed.
const MAX_ATTEMPTS: u32 = 5;

/// Request status values of `IInferenceCoordinator.RequestStatus`.
mod status {
    pub const NONE: u8 = 0;
    pub const PENDING: u8 = 1;
    pub const FULFILLED: u8 = 2;
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn rpc(e: impl std::fmt::Display) -> Error {
    Error::Rpc(e.to_string())
}

/// `keccak256(abi.encodePacked(int256[] input))`, as the coordinator stores it.
pub fn input_hash(input: &[i64]) -> B256 {
    let mut packed = Vec::with_capacity(input.len() * 32);
    for v in input {
        packed.extend_from_slice(&I256::try_from(*v).expect("i64 fits").to_be_bytes::<32>());
    }
    keccak256(packed)
}

/// Loads the served models (blocking: reads proving keys).
pub fn load_models(cfg: &NodeConfig) -> Result<HashMap<B256, Arc<LoadedModel>>> {
    let mut out = HashMap::new();
    for m in &cfg.models {
        let card = models::card::ModelCard::load(&m.card)?;
        let srs = card.srs(m.srs.as_deref())?;
        let loaded = prove::load(&m.card, &srs)?;
        let id: B256 =
            card.model_id.parse().map_err(|_| Error::Invalid(format!("bad model id in {}", m.card.display())))?;
        info!(target: "prover_node::service", model = %card.name, model_id = %id, k = card.circuit.k, "model loaded");
        out.insert(id, Arc::new(loaded));
    }
    Ok(out)
}

/// What a proving thread sends back.
struct ProveResult {
    request_id: U256,
    result: Result<(Vec<i64>, Bytes, f64)>,
}

/// The running node.
pub struct Node {
    cfg: NodeConfig,
    provider: DynProvider,
    coordinator: IInferenceCoordinatorInstance<DynProvider>,
    models: HashMap<B256, Arc<LoadedModel>>,
    store: Store,
    metrics: Arc<Metrics>,
    fulfiller: Address,
    in_flight: HashSet<U256>,
    chain_verified: bool,
    chain_id: Option<u64>,
    results_tx: mpsc::UnboundedSender<ProveResult>,
    results_rx: mpsc::UnboundedReceiver<ProveResult>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node").field("fulfiller", &self.fulfiller).finish_non_exhaustive()
    }
}

impl Node {
    /// Builds a node: provider, store (with interrupted proofs re-queued).
    pub fn new(
        cfg: NodeConfig,
        models: HashMap<B256, Arc<LoadedModel>>,
        metrics: Arc<Metrics>,
        signer: alloy::signers::local::PrivateKeySigner,
    ) -> Result<Self> {
        let fulfiller = signer.address();
        let provider = crate::chain::provider(&cfg.rpc.http_url, signer)?;
        let coordinator = IInferenceCoordinator::new(cfg.contract.coordinator, provider.clone());
        let store = Store::open(&cfg.store.path)?;
        for mut job in store.active()? {
            if job.state == JobState::Proving {
                info!(target: "prover_node::service", request_id = %job.request_id, "re-queueing a proof interrupted by a restart");
                job.state = JobState::Queued;
                store.put(&job)?;
            }
        }
        let (results_tx, results_rx) = mpsc::unbounded_channel();
        Ok(Self {
            cfg,
            provider,
            coordinator,
            models,
            store,
            metrics,
            fulfiller,
            in_flight: HashSet::new(),
            chain_verified: false,
            chain_id: None,
            results_tx,
            results_rx,
        })
    }

    /// Runs until `shutdown` becomes true; then waits for proofs in progress and persists them.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> Result<()> {
        info!(target: "prover_node::service", fulfiller = %self.fulfiller, coordinator = %self.cfg.contract.coordinator, "node started");
        let wake = Arc::new(tokio::sync::Notify::new());
        if let Some(url) = self.cfg.rpc.ws_url.clone().filter(|u| !u.is_empty()) {
            tokio::spawn(crate::subscriber::new_heads(url, wake.clone(), self.metrics.clone(), shutdown.clone()));
        }
        let poll = Duration::from_millis(self.cfg.rpc.poll_interval_ms);
        let mut backoff = poll;
        loop {
            if *shutdown.borrow() {
                break;
            }
            match self.tick().await {
                Ok(()) => {
                    if !self.metrics.rpc_up.swap(true, Ordering::Relaxed) {
                        info!(target: "prover_node::service", "RPC reachable");
                    }
                    backoff = poll;
                }
                Err(e) if e.is_retryable() => {
                    self.chain_verified = false;
                    self.metrics.rpc_errors.fetch_add(1, Ordering::Relaxed);
                    if self.metrics.rpc_up.swap(false, Ordering::Relaxed) {
                        warn!(target: "prover_node::service", error = %e, "RPC unreachable; retrying with backoff");
                    } else {
                        debug!(target: "prover_node::service", error = %e, backoff_ms = backoff.as_millis() as u64, "RPC still unreachable");
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
                Err(e) => {
                    error!(target: "prover_node::service", error = %e, "tick failed");
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
            let wait = if self.metrics.rpc_up.load(Ordering::Relaxed) { poll } else { backoff };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = wake.notified() => {}
                Some(r) = self.results_rx.recv() => self.on_proved(r)?,
                _ = shutdown.changed() => {}
            }
        }
        info!(target: "prover_node::service", in_flight = self.in_flight.len(), "shutting down: finishing proofs in progress");
        while !self.in_flight.is_empty() {
            match tokio::time::timeout(Duration::from_secs(30), self.results_rx.recv()).await {
                Ok(Some(r)) => self.on_proved(r)?,
                _ => break,
            }
        }
        info!(target: "prover_node::service", "stopped");
        Ok(())
    }

    /// One pass of watch → prove → submit → confirm.
    pub async fn tick(&mut self) -> Result<()> {
        // The endpoint's chain is checked once per (re)connection, not on every pass.
        // The chain id is also bound into every proof (see proof::binding).
        if !self.chain_verified {
            let id = self.provider.get_chain_id().await.map_err(rpc)?;
            if let Some(expected) = self.cfg.rpc.chain_id.filter(|e| *e != id) {
                return Err(Error::Invalid(format!(
                    "RPC reports chain id {id}, config expects {expected}; no transaction is sent"
                )));
            }
            self.chain_id = Some(id);
            self.chain_verified = true;
        }
        let head = self.provider.get_block_number().await.map_err(rpc)?;
        self.watch(head).await?;
        while let Ok(r) = self.results_rx.try_recv() {
            self.on_proved(r)?;
        }
        let jobs = self.store.active()?;
        let depth = jobs.iter().filter(|j| matches!(j.state, JobState::Queued | JobState::Proving)).count();
        self.metrics.queue_depth.store(depth as u64, Ordering::Relaxed);
        self.schedule(&jobs)?;
        for job in jobs {
            match &job.state {
                JobState::Proven { .. } => self.submit(job, head).await?,
                JobState::Submitted { .. } => self.confirm(job, head).await?,
                _ => {}
            }
        }
        Ok(())
    }

    async fn block_hash(&self, number: u64) -> Result<Option<B256>> {
        let block = self.provider.get_block_by_number(BlockNumberOrTag::Number(number)).await.map_err(rpc)?;
        Ok(block.map(|b| b.header.hash))
    }

    async fn watch(&mut self, head: u64) -> Result<()> {
        let safe = head.saturating_sub(self.cfg.prover.confirmations);
        let start = self.cfg.contract.start_block;
        let mut from = match self.store.cursor()? {
            Some((block, hash)) => {
                if block > head || self.block_hash(block).await? != Some(hash) {
                    let rewound = block.saturating_sub(REORG_REWIND).max(start).min(safe);
                    warn!(target: "prover_node::watcher", cursor = block, rewound, "chain reorganised under the cursor; rescanning");
                    rewound
                } else {
                    block + 1
                }
            }
            None => start,
        };
        if from > safe {
            return Ok(());
        }
        while from <= safe {
            let to = (from + self.cfg.rpc.max_log_range - 1).min(safe);
            let filter = Filter::new()
                .address(self.cfg.contract.coordinator)
                .event_signature(IInferenceCoordinator::InferenceRequested::SIGNATURE_HASH)
                .from_block(from)
                .to_block(to);
            let logs = self.provider.get_logs(&filter).await.map_err(rpc)?;
            for log in logs {
                let (Some(block_number), Some(block_hash)) = (log.block_number, log.block_hash) else { continue };
                let event = match log.log_decode::<IInferenceCoordinator::InferenceRequested>() {
                    Ok(e) => e.inner.data,
                    Err(e) => {
                        warn!(target: "prover_node::watcher", error = %e, "undecodable InferenceRequested log");
                        continue;
                    }
                };
                self.on_request(event, block_number, block_hash)?;
            }
            from = to + 1;
        }
        if let Some(hash) = self.block_hash(safe).await? {
            self.store.set_cursor(safe, hash)?;
        }
        self.metrics.last_block.store(safe, Ordering::Relaxed);
        Ok(())
    }

    fn on_request(
        &mut self,
        e: IInferenceCoordinator::InferenceRequested,
        block_number: u64,
        block_hash: B256,
    ) -> Result<()> {
        let existing = self.store.get(e.requestId)?;
        if let Some(job) = &existing {
            let moved = job.block_hash != block_hash;
            let resettable = matches!(job.state, JobState::Queued | JobState::Proven { .. } | JobState::Failed { .. });
            if !moved || !resettable {
                return Ok(());
            }
            info!(target: "prover_node::watcher", request_id = %e.requestId, block_number, "request moved by a reorg; re-queued");
        }
        let served = self.models.get(&e.modelId).cloned();
        let input: Option<Vec<i64>> = e.input.iter().map(|v| i64::try_from(*v).ok()).collect();
        let state = match (&served, &input) {
            (None, _) => {
                debug!(target: "prover_node::watcher", request_id = %e.requestId, model_id = %e.modelId, "model not served; skipping");
                self.metrics.dropped.fetch_add(1, Ordering::Relaxed);
                JobState::Dropped { reason: format!("model {} is not served by this node", e.modelId) }
            }
            (Some(_), None) => {
                self.metrics.failed.fetch_add(1, Ordering::Relaxed);
                JobState::Failed { reason: "input value outside the 64-bit range".into() }
            }
            (Some(m), Some(input)) => match m.model.check_input(input) {
                Ok(()) => {
                    self.metrics.seen.fetch_add(1, Ordering::Relaxed);
                    info!(target: "prover_node::watcher", request_id = %e.requestId, model = %m.card.name, block_number, "request seen");
                    JobState::Queued
                }
                Err(err) => {
                    warn!(target: "prover_node::watcher", request_id = %e.requestId, error = %err, "request cannot be proved");
                    self.metrics.failed.fetch_add(1, Ordering::Relaxed);
                    JobState::Failed { reason: err.to_string() }
                }
            },
        };
        self.store.put(&Job {
            request_id: e.requestId,
            model_id: e.modelId,
            requester: e.requester,
            input: input.unwrap_or_default(),
            deadline: e.deadline,
            block_number,
            block_hash,
            seen_at: existing.map(|j| j.seen_at).unwrap_or_else(now),
            state,
            attempts: 0,
        })
    }

    fn schedule(&mut self, jobs: &[Job]) -> Result<()> {
        for job in jobs {
            if self.in_flight.len() >= self.cfg.prover.concurrency {
                break;
            }
            if job.state != JobState::Queued || self.in_flight.contains(&job.request_id) {
                continue;
            }
            let mut job = job.clone();
            let Some(model) = self.models.get(&job.model_id).cloned() else { continue };
            job.state = JobState::Proving;
            self.store.put(&job)?;
            self.in_flight.insert(job.request_id);
            let tx = self.results_tx.clone();
            let Some(chain_id) = self.chain_id else { break };
            let fulfiller = Fulfiller { chain_id, coordinator: self.cfg.contract.coordinator, address: self.fulfiller };
            let (request_id, input) = (job.request_id, job.input.clone());
            let span =
                info_span!(target: "prover_node::prover", "prove", request_id = %request_id, model = %model.card.name);
            tokio::task::spawn_blocking(move || {
                let _enter = span.enter();
                info!(target: "prover_node::prover", "proving");
                let result =
                    prove::prove(&model, &input, request_id, &fulfiller).map(|p| (p.output, p.proof, p.prove_seconds));
                let _ = tx.send(ProveResult { request_id, result });
            });
        }
        Ok(())
    }

    fn on_proved(&mut self, r: ProveResult) -> Result<()> {
        self.in_flight.remove(&r.request_id);
        let Some(mut job) = self.store.get(r.request_id)? else { return Ok(()) };
        if job.state != JobState::Proving {
            return Ok(());
        }
        match r.result {
            Ok((output, proof, secs)) => {
                self.metrics.proven.fetch_add(1, Ordering::Relaxed);
                self.metrics.add_prove_seconds(secs);
                info!(target: "prover_node::prover", request_id = %job.request_id, seconds = secs, ?output, "proved");
                job.state = JobState::Proven { output, proof, prove_seconds: secs };
            }
            Err(e) => {
                self.metrics.failed.fetch_add(1, Ordering::Relaxed);
                warn!(target: "prover_node::prover", request_id = %job.request_id, error = %e, "proving failed");
                job.state = JobState::Failed { reason: e.to_string() };
            }
        }
        self.store.put(&job)
    }

    fn drop_job(&self, mut job: Job, reason: String) -> Result<()> {
        info!(target: "prover_node::submitter", request_id = %job.request_id, %reason, "dropped");
        self.metrics.dropped.fetch_add(1, Ordering::Relaxed);
        job.state = JobState::Dropped { reason };
        self.store.put(&job)
    }

    async fn submit(&mut self, mut job: Job, head: u64) -> Result<()> {
        let JobState::Proven { output, proof, .. } = job.state.clone() else { return Ok(()) };
        let span = info_span!(target: "prover_node::submitter", "submit", request_id = %job.request_id);
        async {
            let req = self.coordinator.getRequest(job.request_id).call().await.map_err(rpc)?;
            match req.status as u8 {
                status::PENDING => {}
                status::NONE => {
                    // Not on chain (a reorg removed it): wait for the watcher to see it again or the deadline.
                    if now() > job.deadline {
                        return self.drop_job(job, "request vanished from the chain and expired".into());
                    }
                    return Ok(());
                }
                status::FULFILLED => return self.drop_job(job, format!("already fulfilled by {}", req.fulfiller)),
                _ => return self.drop_job(job, "cancelled by the requester".into()),
            }
            if req.deadline.to::<u64>() <= now() {
                return self.drop_job(job, "deadline passed".into());
            }
            if req.inputHash != input_hash(&job.input) {
                warn!(target: "prover_node::submitter", "on-chain input differs from the event we proved (reorg?); re-queueing");
                job.state = JobState::Queued;
                return self.store.put(&job);
            }
            let call = self.coordinator.fulfillInference(job.request_id, crate::chain::int256s(&job.input), crate::chain::int256s(&output), proof.clone());
            match call.send().await {
                Ok(pending) => {
                    let tx = *pending.tx_hash();
                    job.attempts += 1;
                    info!(target: "prover_node::submitter", %tx, attempt = job.attempts, "fulfilment submitted");
                    job.state = JobState::Submitted { tx, output, proof, sent_at_block: head };
                    self.store.put(&job)
                }
                Err(e) => match e.as_decoded_interface_error::<IInferenceCoordinatorErrors>() {
                    Some(IInferenceCoordinatorErrors::RequestNotPending(_)) => self.drop_job(job, "fulfilled or cancelled meanwhile".into()),
                    Some(IInferenceCoordinatorErrors::RequestExpired(_)) => self.drop_job(job, "deadline passed".into()),
                    Some(other) => {
                        self.metrics.failed.fetch_add(1, Ordering::Relaxed);
                        error!(target: "prover_node::submitter", error = ?other, "the coordinator rejects this fulfilment");
                        job.state = JobState::Failed { reason: format!("coordinator rejected the fulfilment: {other:?}") };
                        self.store.put(&job)
                    }
                    None if e.as_revert_data().is_some() => {
                        job.attempts += 1;
                        if job.attempts >= MAX_ATTEMPTS {
                            job.state = JobState::Failed { reason: format!("fulfilment reverted: {e}") };
                        }
                        self.store.put(&job)
                    }
                    None => Err(rpc(e)),
                },
            }
        }
        .instrument(span)
        .await
    }

    async fn confirm(&mut self, mut job: Job, head: u64) -> Result<()> {
        let JobState::Submitted { tx, output, proof, sent_at_block } = job.state.clone() else { return Ok(()) };
        let receipt = self.provider.get_transaction_receipt(tx).await.map_err(rpc)?;
        match receipt {
            Some(r) if r.status() => {
                let block = r.block_number.unwrap_or(head);
                if block + self.cfg.prover.confirmations > head {
                    return Ok(());
                }
                // Still ours after the confirmations (a reorg may have replaced it)?
                let req = self.coordinator.getRequest(job.request_id).call().await.map_err(rpc)?;
                if req.status as u8 == status::FULFILLED && req.fulfiller == self.fulfiller {
                    self.metrics.fulfilled.fetch_add(1, Ordering::Relaxed);
                    info!(target: "prover_node::submitter", request_id = %job.request_id, %tx, block, gas_used = r.gas_used, latency_s = now().saturating_sub(job.seen_at), "fulfilled");
                    job.state = JobState::Fulfilled { tx, block, gas_used: r.gas_used };
                    self.store.put(&job)
                } else if req.status as u8 == status::PENDING {
                    job.state = JobState::Proven { output, proof, prove_seconds: 0.0 };
                    self.store.put(&job)
                } else {
                    self.drop_job(job, "fulfilment replaced by a reorg".into())
                }
            }
            Some(_) => {
                let req = self.coordinator.getRequest(job.request_id).call().await.map_err(rpc)?;
                if req.status as u8 == status::PENDING && job.attempts < MAX_ATTEMPTS {
                    warn!(target: "prover_node::submitter", request_id = %job.request_id, %tx, "fulfilment reverted; retrying");
                    job.state = JobState::Proven { output, proof, prove_seconds: 0.0 };
                    self.store.put(&job)
                } else if req.status as u8 == status::FULFILLED {
                    self.drop_job(job, format!("fulfilled first by {}", req.fulfiller))
                } else {
                    self.drop_job(job, "fulfilment reverted".into())
                }
            }
            None if head > sent_at_block + LOST_TX_BLOCKS => {
                let req = self.coordinator.getRequest(job.request_id).call().await.map_err(rpc)?;
                if req.status as u8 == status::PENDING {
                    warn!(target: "prover_node::submitter", request_id = %job.request_id, %tx, "transaction lost; resubmitting");
                    job.state = JobState::Proven { output, proof, prove_seconds: 0.0 };
                    self.store.put(&job)
                } else if req.status as u8 == status::FULFILLED && req.fulfiller == self.fulfiller {
                    self.metrics.fulfilled.fetch_add(1, Ordering::Relaxed);
                    job.state = JobState::Fulfilled { tx, block: head, gas_used: 0 };
                    self.store.put(&job)
                } else {
                    self.drop_job(job, "request no longer pending".into())
                }
            }
            None => Ok(()),
        }
    }
}

/// Loads models, binds metrics and runs the node until `shutdown`. The signer comes from the
/// configuration unless one is given.
pub async fn serve(
    cfg: NodeConfig,
    signer: Option<alloy::signers::local::PrivateKeySigner>,
    metrics: Arc<Metrics>,
    shutdown: watch::Receiver<bool>,
) -> Result<()> {
    let signer = match signer {
        Some(s) => s,
        None => cfg.signer()?,
    };
    let listener = crate::metrics::bind(cfg.metrics.listen).await.map_err(|source| Error::Io {
        action: "binding metrics on",
        path: cfg.metrics.listen.to_string().into(),
        source,
    })?;
    info!(target: "prover_node::metrics", addr = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), "metrics and health endpoint");
    tokio::spawn(crate::metrics::serve(listener, metrics.clone(), shutdown.clone()));
    let cfg_clone = cfg.clone();
    let models = tokio::task::spawn_blocking(move || load_models(&cfg_clone))
        .await
        .map_err(|e| Error::Invalid(e.to_string()))??;
    Node::new(cfg, models, metrics, signer)?.run(shutdown).await
}
