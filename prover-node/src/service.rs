//! The fulfilment daemon: start-up checks, then one loop of passes over the persisted jobs.
//!
//! Start-up (retried while the endpoint is unreachable; any other failure is fatal and named):
//! the chain id is the configured one, the store was made for this chain (genesis hash) and
//! coordinator (or is new), the coordinator has code and answers like a coordinator, and each
//! served model is registered under its card's id. Then interrupted proofs are re-queued and
//! every job is [reconciled](crate::reconciler) with the chain.
//!
//! Each pass (every `poll_interval_ms`, or at once on a new block through the WebSocket
//! subscription):
//! 1. the [watcher](crate::watcher) scans new `InferenceRequested` logs (and
//!    `PrivateInferenceRequested` logs naming this node, opened with its key ring) into jobs; after a reorg
//!    every job is reconciled again;
//! 2. the [prover pool](crate::prover) takes queued jobs whose request is still pending with the
//!    same input (and, with `fees.skip_unprofitable`, pays for its gas);
//! 3. the [submitter](crate::submitter) follows transactions in flight and sends proven jobs.
//!
//! Every chain call is bounded by `rpc.timeout_ms`, a whole pass by a deadline, and shutdown is
//! watched around both: a hung endpoint costs a pass, never the node. A failed pass is retried
//! with backoff; `/health` fails once no pass succeeded for `metrics.stale_after_secs`.

use std::{
    sync::{atomic::Ordering, Arc},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use alloy::primitives::{B256, U256};
use models::envelope::KeyRing;
use tokio::sync::{watch, Notify};
use tracing::{debug, info, warn};

use crate::{
    client::{rpc::RpcClient, ChainClient},
    config::NodeConfig,
    error::{Error, Result},
    metrics::Metrics,
    proof::Fulfiller,
    prove,
    prover::{ProofBackend, ProveResult, ProverPool},
    reconciler::{self, judge, settle, Verdict},
    store::{DropReason, Identity, Job, JobState, Store},
    submitter::Submitter,
    watcher,
};

/// Unix seconds.
pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// What every component works with.
#[derive(Debug)]
pub struct Ctx<C> {
    /// The chain.
    pub client: C,
    /// The job store.
    pub store: Store,
    /// Counters and health.
    pub metrics: Arc<Metrics>,
    /// Configuration.
    pub cfg: NodeConfig,
    /// Timestamp of the latest head block seen (0 before the first pass).
    pub chain_time: std::sync::atomic::AtomicU64,
    /// The request id the watcher last warned about as missing from the logs (warned once).
    pub gap_warned: std::sync::Mutex<Option<U256>>,
    /// Passes in a row that found the head below the scan cursor.
    pub short_head: std::sync::atomic::AtomicU32,
    /// The key ring that opens private requests naming this node (`private.key_file`).
    pub keys: Option<Keys>,
    /// The chain id, once read (private requests' envelopes are bound to it).
    pub chain_id: std::sync::OnceLock<u64>,
}

/// The node's key ring and its file: a rotation (`prover-node encryption-key new`) while the node
/// runs is picked up when an envelope names a key the ring loaded does not hold.
#[derive(Debug)]
pub struct Keys {
    path: std::path::PathBuf,
    ring: std::sync::RwLock<KeyRing>,
    /// Whether the file was read again during this pass (at most once a pass).
    reloaded: std::sync::atomic::AtomicBool,
}

impl Keys {
    /// The ring loaded from `path`.
    pub fn new(path: std::path::PathBuf, ring: KeyRing) -> Self {
        Self { path, ring: std::sync::RwLock::new(ring), reloaded: Default::default() }
    }

    /// The ring as loaded last.
    pub fn ring(&self) -> std::sync::RwLockReadGuard<'_, KeyRing> {
        self.ring.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The secret of public key `public`, if the ring holds it.
    pub fn find(&self, public: &B256) -> Option<models::envelope::EncryptionSecret> {
        self.ring().find(&public.0).cloned()
    }

    /// The secret of public key `public`; if the ring lacks it, the key file is read again (at
    /// most once a pass: see [`Self::new_pass`]) in case the ring was rotated meanwhile.
    pub fn find_or_reload(&self, public: &B256) -> Option<models::envelope::EncryptionSecret> {
        if let Some(secret) = self.find(public) {
            return Some(secret);
        }
        if self.reloaded.swap(true, Ordering::Relaxed) {
            return None;
        }
        match KeyRing::load(&self.path) {
            Ok(ring) => {
                let found = ring.find(&public.0).cloned();
                info!(
                    key_file = %self.path.display(),
                    keys = ring.keys().len(),
                    public_key = %B256::from(ring.current().public()),
                    found = found.is_some(),
                    "a request names a key the ring did not hold: key ring read again"
                );
                *self.ring.write().unwrap_or_else(|e| e.into_inner()) = ring;
                found
            }
            Err(e) => {
                warn!(key_file = %self.path.display(), error = %e, "reading the key ring again failed; keeping the ring loaded");
                None
            }
        }
    }

    /// A new pass: the key file may be read again.
    pub fn new_pass(&self) {
        self.reloaded.store(false, Ordering::Relaxed);
    }
}

impl<C: ChainClient> Ctx<C> {
    /// The chain's id (read once).
    pub async fn chain_id(&self) -> Result<u64> {
        if let Some(id) = self.chain_id.get() {
            return Ok(*id);
        }
        let id = self.client.chain_id().await?;
        Ok(*self.chain_id.get_or_init(|| id))
    }
}

impl<C> Ctx<C> {
    /// The chain's clock: the latest head block's timestamp (the wall clock before one is known).
    /// Deadlines are judged by it, as the coordinator judges them by `block.timestamp`.
    pub fn chain_now(&self) -> u64 {
        match self.chain_time.load(Ordering::Relaxed) {
            0 => now(),
            t => t,
        }
    }
}

/// Balance is read every this often.
const BALANCE_EVERY: Duration = Duration::from_secs(10);
/// Longest backoff after a failed pass.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Proofs in progress get this long to finish at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

/// Loads the served models (blocking: reads proving keys).
pub fn load_models(cfg: &NodeConfig) -> Result<crate::prover::Models> {
    let mut out = std::collections::HashMap::new();
    for m in &cfg.models {
        let card = models::card::ModelCard::load(&m.card)?;
        let srs = card.srs(m.srs.as_deref())?;
        let loaded = prove::load(&m.card, &srs)?;
        let id: B256 = card.model_id.parse().map_err(|_| Error::BadFile {
            path: m.card.clone(),
            what: "model card",
            reason: format!("model id {:?} is not 32 hex bytes", card.model_id),
        })?;
        info!(model = %card.name, model_id = %id, k = card.circuit.k, "model loaded");
        out.insert(id, Arc::new(loaded));
    }
    Ok(crate::prover::Models(out))
}

/// Loads the key ring of `private.key_file`, if set.
pub fn load_keys(cfg: &NodeConfig) -> Result<Option<KeyRing>> {
    cfg.private.key_file.as_deref().map(KeyRing::load).transpose().map_err(Error::KeyRing)
}

/// The running node.
#[derive(Debug)]
pub struct Node<C, P> {
    ctx: Ctx<C>,
    pool: ProverPool<P>,
    submitter: Submitter,
    reconciled: bool,
    /// Jobs still to reconcile (a few per pass).
    to_reconcile: Vec<U256>,
    last_balance: Option<std::time::Instant>,
}

impl<C: ChainClient, P: ProofBackend> Node<C, P> {
    /// A node over `client` and `backend`, its store opened (refused if empty or damaged) and its
    /// key ring loaded (if `private.key_file` is set).
    pub fn new(cfg: NodeConfig, client: C, backend: Arc<P>, metrics: Arc<Metrics>) -> Result<Self> {
        let keys = load_keys(&cfg)?.zip(cfg.private.key_file.clone()).map(|(ring, path)| Keys::new(path, ring));
        let store = Store::open(&cfg.store.path, cfg.store.reinit)?;
        metrics.stale_after_secs.store(cfg.metrics.stale_after_secs, Ordering::Relaxed);
        let pool = ProverPool::new(backend, cfg.prover.concurrency);
        Ok(Self {
            ctx: Ctx {
                client,
                store,
                metrics,
                cfg,
                chain_time: Default::default(),
                gap_warned: Default::default(),
                short_head: Default::default(),
                keys,
                chain_id: Default::default(),
            },
            pool,
            submitter: Submitter::default(),
            reconciled: false,
            to_reconcile: Vec::new(),
            last_balance: None,
        })
    }

    /// The shared context (tests inspect the store through it).
    pub fn ctx(&self) -> &Ctx<C> {
        &self.ctx
    }

    /// Start-up checks. Fatal errors are returned; an unreachable endpoint is reported as transient.
    pub async fn check_chain(&self) -> Result<()> {
        let client = &self.ctx.client;
        let chain_id = client.chain_id().await?;
        let _ = self.ctx.chain_id.set(chain_id);
        if let Some(expected) = self.ctx.cfg.rpc.chain_id.filter(|e| *e != chain_id) {
            return Err(Error::ChainIdMismatch { expected, got: chain_id });
        }
        let contract = &self.ctx.cfg.contract;
        if let (Some(path), Some(file)) = (&contract.deployments, contract.deployments_chain_id) {
            if file != chain_id {
                return Err(Error::DeploymentsChainMismatch { path: path.clone(), file, chain: chain_id });
            }
        }
        let genesis = client.known_block(0).await?.hash;
        let coordinator = client.coordinator();
        if client.code_size(coordinator).await? == 0 {
            return Err(Error::NoCode { address: coordinator });
        }
        for cfg in &self.ctx.cfg.models {
            let card = models::card::ModelCard::load(&cfg.card)?;
            let model_id: B256 = card.model_id.parse().unwrap_or_default();
            match client.model(model_id).await? {
                None => return Err(Error::ModelNotRegistered { model: card.name, model_id, coordinator }),
                Some(m) if !m.active => warn!(model = %card.name, %model_id, "model is deactivated on the coordinator"),
                Some(_) => {}
            }
        }
        self.ctx.store.check_identity(Identity { chain_id, genesis, coordinator })?;
        info!(chain_id, %genesis, %coordinator, "chain, coordinator and models checked");
        self.check_encryption_key().await
    }

    /// Says which key private requests to this node must be sealed to, and warns when the key
    /// registered on-chain for the node's account (`encryptionKeyOf`) is not the ring's newest:
    /// consumers seal to the registered key, so an unregistered ring key receives nothing, and a
    /// registered key the ring lacks makes every private request to this node undecryptable.
    async fn check_encryption_key(&self) -> Result<()> {
        let client = &self.ctx.client;
        let me = client.fulfiller();
        // A copy: no lock is held across the calls below.
        let Some(keys) = self.ctx.keys.as_ref().map(|k| k.ring().clone()) else {
            // Only a hint without a ring: a node serving public models needs nothing of this call.
            if let Ok(registered) =
                client.encryption_key_of(me).await.inspect_err(|e| debug!(error = %e, "encryptionKeyOf"))
            {
                if registered == B256::ZERO {
                    return Ok(());
                }
                warn!(
                    account = %me,
                    registered = %registered,
                    "this account has an encryption key on the coordinator but the node has no key ring \
                     (private.key_file): private requests naming it are refused as unknown_encryption_key"
                );
            }
            return Ok(());
        };
        let registered = client.encryption_key_of(me).await?;
        let current = B256::from(keys.current().public());
        let path = self.ctx.cfg.private.key_file.as_deref().unwrap_or(std::path::Path::new("?")).display();
        info!(key_file = %path, public_key = %current, keys = keys.keys().len(), "encryption key ring loaded");
        let ok = registered == current;
        self.ctx.metrics.encryption_key_registered.store(ok, Ordering::Relaxed);
        if ok {
            info!(account = %me, public_key = %current, "encryption key registered on the coordinator: private requests can be sealed to this node");
        } else if registered == B256::ZERO {
            warn!(
                account = %me,
                public_key = %current,
                "NO ENCRYPTION KEY REGISTERED for this account on the coordinator: nobody can make a private \
                 request to this node; run `prover-node encryption-key register --key-file {path}`"
            );
        } else if keys.find(&registered.0).is_some() {
            warn!(
                account = %me,
                registered = %registered,
                public_key = %current,
                "the coordinator has an older key of the ring for this account (it still opens requests sealed \
                 to it), not the newest: run `prover-node encryption-key register --key-file {path}` to publish \
                 the rotation"
            );
        } else {
            warn!(
                account = %me,
                registered = %registered,
                public_key = %current,
                "the ENCRYPTION KEY REGISTERED for this account is NOT IN THE KEY RING {path}: every private request \
                 sealed to it is refused (unknown_encryption_key); use the ring that holds it, or register this \
                 ring's key with `prover-node encryption-key register`"
            );
        }
        Ok(())
    }

    /// Runs until `shutdown` becomes true; then waits (boundedly) for proofs in progress.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> Result<()> {
        let fulfiller = self.ctx.client.fulfiller();
        info!(%fulfiller, coordinator = %self.ctx.client.coordinator(), "node starting");
        for mut job in self.ctx.store.active()? {
            if job.state == JobState::Proving {
                info!(request_id = %job.request_id, "re-queueing a proof interrupted by a restart");
                job.state = JobState::Queued;
                self.ctx.store.put(&job)?;
            }
        }
        let poll = Duration::from_millis(self.ctx.cfg.rpc.poll_interval_ms);
        let timeout = Duration::from_millis(self.ctx.cfg.rpc.timeout_ms);
        // Start-up checks, retried while the endpoint is unreachable.
        let mut backoff = poll;
        loop {
            let checked = tokio::select! {
                r = self.check_chain() => r,
                _ = shutdown.wait_for(|s| *s) => return Ok(()),
            };
            match checked {
                Ok(()) => break,
                Err(e) if e.is_retryable() => {
                    self.ctx.metrics.rpc_errors.fetch_add(1, Ordering::Relaxed);
                    if backoff == poll {
                        warn!(error = %e, "cannot reach the RPC endpoint at start-up; retrying");
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.wait_for(|s| *s) => return Ok(()),
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                Err(e) => return Err(e),
            }
        }
        self.ctx.metrics.rpc_up.store(true, Ordering::Relaxed);
        self.ctx.metrics.pass_succeeded();
        self.ctx.metrics.started.store(true, Ordering::Relaxed);
        info!("node started");

        let wake = Arc::new(Notify::new());
        if let Some(url) = self.ctx.cfg.rpc.ws_url.clone().filter(|u| !u.is_empty()) {
            tokio::spawn(crate::subscriber::new_heads(
                url,
                wake.clone(),
                self.ctx.metrics.clone(),
                timeout,
                shutdown.clone(),
            ));
        }
        // A pass makes a bounded number of calls, each bounded by the timeout; this deadline also
        // covers a client without timeouts of its own.
        let pass_deadline = timeout * 6;
        let mut backoff = poll;
        let mut failing = false;
        loop {
            if *shutdown.borrow() {
                break;
            }
            let outcome = tokio::select! {
                r = tokio::time::timeout(pass_deadline, self.pass()) => r,
                _ = shutdown.wait_for(|s| *s) => break,
            };
            let result = match outcome {
                Ok(r) => {
                    self.ctx.metrics.pass_overran.store(false, Ordering::Relaxed);
                    r
                }
                Err(_) => {
                    // Every call is bounded by the client's timeout, so the calls answered: the
                    // endpoint is slow, not unreachable (a call that timed out fails the pass itself).
                    self.ctx.metrics.pass_overran.store(true, Ordering::Relaxed);
                    Err(Error::Chain(crate::client::ChainError::Timeout { method: "pass", after: pass_deadline }))
                }
            };
            match result {
                Ok(()) => {
                    self.ctx.metrics.pass_succeeded();
                    if !self.ctx.metrics.rpc_up.swap(true, Ordering::Relaxed) || failing {
                        info!("chain reachable again; passes succeed");
                    }
                    failing = false;
                    backoff = poll;
                }
                Err(e) => {
                    if e.is_retryable() {
                        self.ctx.metrics.rpc_errors.fetch_add(1, Ordering::Relaxed);
                        self.ctx.metrics.rpc_up.store(false, Ordering::Relaxed);
                    }
                    if !failing {
                        warn!(error = %e, "pass failed; retrying with backoff (logged once until it recovers)");
                    } else {
                        debug!(error = %e, backoff_ms = backoff.as_millis() as u64, "pass failed again");
                    }
                    failing = true;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
            let wait = if failing { backoff } else { poll };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = wake.notified() => {}
                r = self.pool.next() => self.on_proved(r)?,
                _ = shutdown.wait_for(|s| *s) => {}
            }
        }
        info!(in_flight = self.pool.in_flight(), "shutting down: finishing proofs in progress");
        let grace = tokio::time::Instant::now() + SHUTDOWN_GRACE;
        while self.pool.in_flight() > 0 {
            match tokio::time::timeout_at(grace, self.pool.next()).await {
                Ok(r) => self.on_proved(r)?,
                Err(_) => {
                    warn!("proofs still running at shutdown; they are redone at the next start");
                    break;
                }
            }
        }
        info!("stopped");
        Ok(())
    }

    /// One pass: watch → reconcile (after a start or a reorg) → prove → submit.
    pub async fn pass(&mut self) -> Result<()> {
        if let Some(keys) = &self.ctx.keys {
            keys.new_pass();
        }
        let head = self.ctx.client.head().await?;
        if let Some(b) = self.ctx.client.block(head).await? {
            self.ctx.chain_time.store(b.timestamp, Ordering::Relaxed);
        }
        let scan = watcher::scan(&self.ctx, self.pool.backend(), head).await?;
        if scan.reorged {
            self.reconciled = false;
        }
        if !self.reconciled {
            self.to_reconcile = reconciler::to_reconcile(&self.ctx)?;
            self.reconciled = true;
        }
        reconciler::reconcile_some(&self.ctx, &mut self.to_reconcile, reconciler::RECONCILE_BATCH).await?;
        while let Some(r) = self.pool.try_next() {
            self.on_proved(r)?;
        }
        let jobs = self.ctx.store.active()?;
        reconciler::recheck_reorged(&self.ctx, &jobs).await?;
        self.schedule(&jobs, head).await?;
        let jobs = self.ctx.store.active()?;
        let depth = jobs.iter().filter(|j| matches!(j.state, JobState::Queued | JobState::Proving)).count();
        self.ctx.metrics.queue_depth.store(depth as u64, Ordering::Relaxed);
        self.submitter.pass(&self.ctx, &jobs, head).await?;
        self.check_balance().await
    }

    async fn check_balance(&mut self) -> Result<()> {
        if self.last_balance.is_some_and(|t| t.elapsed() < BALANCE_EVERY) {
            return Ok(());
        }
        let balance = self.ctx.client.balance().await?;
        self.last_balance = Some(std::time::Instant::now());
        let gwei = balance / U256::from(1_000_000_000u64);
        self.ctx.metrics.balance_gwei.store(gwei.try_into().unwrap_or(u64::MAX), Ordering::Relaxed);
        let low = balance < U256::from(self.ctx.cfg.signer.min_balance);
        if low != self.ctx.metrics.low_balance.swap(low, Ordering::Relaxed) {
            if low {
                warn!(%balance, min_balance = self.ctx.cfg.signer.min_balance, "signer balance is low: fund it, or fulfilments will fail");
            } else {
                info!(%balance, "signer balance is sufficient again");
            }
        }
        Ok(())
    }

    /// Starts proofs for queued jobs whose request is still pending with the same input.
    async fn schedule(&mut self, jobs: &[Job], head: u64) -> Result<()> {
        let mut fee_per_gas = None;
        // A job is `proving` only while its proof runs: one left so by a pass that failed or was
        // cancelled between marking it and starting the proof is queued again.
        let ready: Vec<&Job> = jobs
            .iter()
            .filter(|j| {
                j.state == JobState::Queued || (j.state == JobState::Proving && !self.pool.is_proving(j.request_id))
            })
            .collect();
        for job in ready {
            if self.pool.free() == 0 {
                break;
            }
            if self.pool.is_proving(job.request_id) {
                continue; // a stale proof of the previous input is still running
            }
            let req = self.ctx.client.request(job.request_id).await?;
            let verdict = judge(job, &req, self.ctx.client.fulfiller(), self.ctx.chain_now());
            if verdict != Verdict::Keep {
                settle(&self.ctx, job.clone(), verdict)?;
                continue;
            }
            if self.ctx.cfg.fees.skip_unprofitable {
                let price = match fee_per_gas {
                    Some(p) => p,
                    None => {
                        let base = self.ctx.client.known_block(head).await?.base_fee;
                        let tip = self.ctx.client.suggested_tip().await?;
                        let (_, tip) = crate::submitter::market_fees(base, tip, &self.ctx.cfg.fees);
                        *fee_per_gas.insert(base + tip)
                    }
                };
                let cost = U256::from(price) * U256::from(self.ctx.cfg.fees.fulfil_gas);
                if job.payment < cost {
                    settle(
                        &self.ctx,
                        job.clone(),
                        Verdict::Drop(DropReason::Unprofitable { payment: job.payment, cost }),
                    )?;
                    continue;
                }
            }
            // The chain id and the coordinator are bound into the proof (proof::binding). Read
            // before the job is marked `proving`: nothing may fail between that and the start.
            let fulfiller = Fulfiller {
                chain_id: self.ctx.client.chain_id().await?,
                coordinator: self.ctx.client.coordinator(),
                address: self.ctx.client.fulfiller(),
            };
            let mut proving = job.clone();
            proving.state = JobState::Proving;
            self.ctx.store.put(&proving)?;
            self.pool.start(job, fulfiller);
        }
        Ok(())
    }

    fn on_proved(&mut self, r: ProveResult) -> Result<()> {
        let Some(mut job) = self.ctx.store.get(r.request_id)? else { return Ok(()) };
        if job.state != JobState::Proving || job.claim_hash() != r.input_hash {
            info!(request_id = %r.request_id, state = job.state.name(), "discarding a proof of an input a reorg replaced");
            self.ctx.metrics.stale_proofs.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        match r.result {
            Ok(p) => {
                self.ctx.metrics.proven.fetch_add(1, Ordering::Relaxed);
                self.ctx.metrics.add_prove_seconds(p.seconds);
                info!(request_id = %job.request_id, seconds = p.seconds, output = ?p.output, "proved");
                job.state = JobState::Proven { output: p.output, proof: p.proof, prove_seconds: p.seconds };
            }
            Err(e) => {
                self.ctx.metrics.count_failure(crate::metrics::Failure::ProvingFailed);
                warn!(request_id = %job.request_id, error = %e, "proving failed");
                job.state = JobState::Failed { reason: e.to_string() };
            }
        }
        self.ctx.store.put(&job)?;
        Ok(())
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
    let mut cfg = cfg;
    if let Some(file) = cfg.apply_deployments()? {
        log_deployments(&cfg, &file);
    }
    let signer = match signer {
        Some(s) => s,
        None => cfg.signer()?,
    };
    // The key ring and the store first: an unusable file is reported before minutes of key loading.
    load_keys(&cfg)?;
    let coordinator = cfg.contract.coordinator()?;
    let client = RpcClient::new(&cfg.rpc.http_url, signer, coordinator, Duration::from_millis(cfg.rpc.timeout_ms))?;
    let store_check = Store::open(&cfg.store.path, cfg.store.reinit)?;
    drop(store_check);
    let listener = crate::metrics::bind(cfg.metrics.listen).await.map_err(|source| Error::Io {
        action: "binding metrics on",
        path: cfg.metrics.listen.to_string().into(),
        source,
    })?;
    info!(addr = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), "metrics and health endpoint");
    tokio::spawn(crate::metrics::serve(listener, metrics.clone(), shutdown.clone()));
    let cfg_clone = cfg.clone();
    let mut stop = shutdown.clone();
    let loaded = tokio::select! {
        r = tokio::task::spawn_blocking(move || load_models(&cfg_clone)) => r,
        _ = stop.wait_for(|s| *s) => return Ok(()),
    };
    let backend = loaded.map_err(|e| Error::Panicked { what: "loading models", reason: e.to_string() })??;
    cfg.store.reinit = false; // already applied above
    Node::new(cfg, client, Arc::new(backend), metrics)?.run(shutdown).await
}

/// Says which of the deployments file's listings route requests to the served models, and warns
/// about a served model the file does not record (registered by someone else, or the wrong file).
fn log_deployments(cfg: &NodeConfig, file: &crate::deployments::Deployments) {
    // Canonical (`/srv/deployments/31337.json`, not `config/../deployments/31337.json`): the
    // configured path is joined to the config file's directory.
    let path = cfg.contract.deployments.as_deref().map(display_path).unwrap_or_else(|| "?".into());
    info!(deployments = %path, chain_id = file.chain_id, coordinator = %file.coordinator, "coordinator from the deployments file");
    for m in &cfg.models {
        // An unreadable card is reported, with its path, when the models are loaded.
        let Ok(card) = models::card::ModelCard::load(&m.card) else { continue };
        let Ok(model_id) = card.model_id.parse::<B256>() else { continue };
        if file.model_by_id(model_id).is_none() {
            warn!(model = %card.name, %model_id, deployments = %path, "served model not recorded in the deployments file");
            continue;
        }
        let listings: Vec<u64> = file.listings_of(model_id).map(|l| l.listing_id).collect();
        info!(model = %card.name, %model_id, ?listings, "served model recorded in the deployments file");
    }
}

/// A path as a log shows it: canonical if it exists (no `..`, symlinks resolved), else as given.
fn display_path(path: &std::path::Path) -> String {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf()).display().to_string()
}

#[cfg(test)]
mod tests;
