//! The job state machine against the in-memory chain: reorgs at every stage, evictions after a
//! restart, fee spikes, failing and hanging endpoints.

use std::{
    sync::{Condvar, Mutex},
    time::Instant,
};

use alloy::primitives::{keccak256, Address, Bytes};
use models::envelope::{self, EnvelopeContext};

use super::*;
use crate::{
    client::{
        fake::{FakeChain, PrivateRequest, REQUESTER},
        input_hash, RequestStatus,
    },
    config::{
        ContractConfig, FeeConfig, MetricsConfig, PrivateConfig, ProverConfig, RpcConfig, SignerConfig, StoreConfig,
    },
    metrics::Failure,
    prover::Proved,
};

const ME: Address = Address::repeat_byte(0xAA);
const OTHER: Address = Address::repeat_byte(0xBB);
const MODEL: B256 = B256::repeat_byte(0x11);

/// Proves by summing the input; can be paused to hold a job in `Proving`; counts proofs per input
/// and records the salts of private ones.
#[derive(Default)]
struct TestProver {
    paused: Mutex<bool>,
    resume: Condvar,
    proofs: Mutex<Vec<(U256, Vec<i64>)>>,
    salts: Mutex<Vec<(U256, Option<B256>)>>,
}

/// The test model's commitment: a stand-in for Poseidon (the node only compares it).
fn commitment(input: &[i64], salt: &B256) -> B256 {
    keccak256([input_hash(input).as_slice(), salt.as_slice()].concat())
}

/// Inputs of private requests to the test model have this many values.
const PRIVATE_LEN: usize = 3;

impl TestProver {
    fn pause(&self, paused: bool) {
        *self.paused.lock().unwrap() = paused;
        self.resume.notify_all();
    }

    fn proofs_of(&self, id: u64, input: &[i64]) -> usize {
        self.proofs.lock().unwrap().iter().filter(|(i, x)| *i == U256::from(id) && x == input).count()
    }
}

impl ProofBackend for TestProver {
    fn serves(&self, model: &B256) -> bool {
        *model == MODEL
    }

    fn name(&self, _: &B256) -> String {
        "test".into()
    }

    fn check_input(&self, _: &B256, input: &[i64]) -> std::result::Result<(), String> {
        match input.iter().position(|v| !(0..=16).contains(v)) {
            Some(i) => Err(format!("input[{i}] = {} is outside the model's quantized input range [0, 16]", input[i])),
            None => Ok(()),
        }
    }

    fn check_private_input(&self, _: &B256, input: &[i64]) -> std::result::Result<(), String> {
        match input.iter().position(|v| !(0..=16).contains(v)) {
            Some(i) => Err(format!("input[{i}] is outside the model's quantized input range [0, 16]")),
            None => Ok(()),
        }
    }

    fn input_len(&self, _: &B256) -> usize {
        PRIVATE_LEN
    }

    fn commitment(&self, _: &B256, input: &[i64], salt: &B256) -> std::result::Result<B256, String> {
        Ok(commitment(input, salt))
    }

    fn prove(
        &self,
        _: &B256,
        input: &[i64],
        salt: Option<B256>,
        request_id: U256,
        _: crate::proof::Fulfiller,
    ) -> Result<Proved> {
        let mut paused = self.paused.lock().unwrap();
        while *paused {
            paused = self.resume.wait(paused).unwrap();
        }
        drop(paused);
        self.proofs.lock().unwrap().push((request_id, input.to_vec()));
        self.salts.lock().unwrap().push((request_id, salt));
        Ok(Proved { output: vec![input.iter().sum()], proof: input_hash(input).to_vec().into(), seconds: 0.0 })
    }
}

fn config(dir: &std::path::Path, confirmations: u64) -> NodeConfig {
    NodeConfig {
        rpc: RpcConfig { poll_interval_ms: 10, timeout_ms: 50, ..RpcConfig::new("http://unused") },
        contract: ContractConfig::at(Address::repeat_byte(0xC0)),
        signer: SignerConfig::default(),
        models: vec![],
        prover: ProverConfig { confirmations, concurrency: 1 },
        store: StoreConfig::new(dir.join("store.redb")),
        metrics: MetricsConfig { stale_after_secs: 1, ..MetricsConfig::default() },
        fees: FeeConfig::default(),
        private: PrivateConfig { key_file: Some(dir.join("keys.json")) },
    }
}

struct Harness {
    chain: FakeChain,
    prover: Arc<TestProver>,
    dir: tempfile::TempDir,
    confirmations: u64,
}

impl Harness {
    /// A chain, a prover, and a key ring whose key is registered for the node's account.
    fn new(confirmations: u64) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ring = KeyRing::generate(&mut rand::rngs::OsRng);
        ring.save(&dir.path().join("keys.json")).unwrap();
        let chain = FakeChain::new(ME, MODEL);
        chain.with(|s| s.encryption_keys.insert(ME, B256::from(ring.current().public())));
        Self { chain, prover: Arc::default(), dir, confirmations }
    }

    /// The node's key ring.
    fn ring(&self) -> KeyRing {
        KeyRing::load(&self.dir.path().join("keys.json")).unwrap()
    }

    /// The node's registered public key.
    fn key(&self) -> B256 {
        B256::from(self.ring().current().public())
    }

    fn node(&self) -> Node<FakeChain, TestProver> {
        self.node_with(|_| {})
    }

    fn node_with(&self, change: impl FnOnce(&mut NodeConfig)) -> Node<FakeChain, TestProver> {
        let mut cfg = config(self.dir.path(), self.confirmations);
        change(&mut cfg);
        Node::new(cfg, self.chain.clone(), self.prover.clone(), Arc::default()).unwrap()
    }

    fn request(&self, id: u64, input: &[i64]) {
        self.chain.request(id, MODEL, input.to_vec(), now() + 3600);
        self.chain.mine(self.confirmations as usize);
    }
}

/// A salt (below 2^248).
fn salt(byte: u8) -> B256 {
    let mut b = [byte; 32];
    b[0] = 0;
    B256::new(b)
}

/// An envelope of `(salt, input)` sealed to `key` for a request of `requester` with `commitment`
/// on the fake chain's coordinator.
fn seal(key: B256, requester: Address, commitment: B256, salt: B256, input: &[i64]) -> Bytes {
    let ctx = EnvelopeContext {
        chain_id: 31337,
        coordinator: Address::repeat_byte(0xC0).into_array(),
        requester: requester.into_array(),
        model_id: MODEL.0,
        commitment: commitment.0,
    };
    envelope::seal(&key.0, &ctx, &salt.0, input, &mut rand::rngs::OsRng).unwrap().into()
}

/// A well-formed private request to the node (`input` sealed to its key, committed with `salt`).
fn private(h: &Harness, input: &[i64], salt: B256) -> PrivateRequest {
    let c = commitment(input, &salt);
    PrivateRequest {
        prover: ME,
        requester: REQUESTER,
        commitment: c,
        encryption_key: h.key(),
        ciphertext: seal(h.key(), REQUESTER, c, salt, input),
    }
}

fn job(node: &Node<FakeChain, TestProver>, id: u64) -> Job {
    node.ctx.store.get(U256::from(id)).unwrap().unwrap()
}

/// Passes (taking finished proofs) until `done`, or panics after 200 passes.
async fn drive(
    node: &mut Node<FakeChain, TestProver>,
    what: &str,
    done: impl Fn(&Node<FakeChain, TestProver>) -> bool,
) {
    drive_with(node, what, done, None).await
}

/// Like [`drive`], mining a block on `chain` before every pass (a chain that moves on).
async fn drive_with(
    node: &mut Node<FakeChain, TestProver>,
    what: &str,
    done: impl Fn(&Node<FakeChain, TestProver>) -> bool,
    mine: Option<&FakeChain>,
) {
    for _ in 0..200 {
        if let Some(chain) = mine {
            chain.mine(1);
        }
        node.pass().await.unwrap();
        if done(node) {
            return;
        }
        if node.pool.in_flight() > 0 {
            if let Ok(r) = tokio::time::timeout(Duration::from_millis(20), node.pool.next()).await {
                node.on_proved(r).unwrap();
            }
        }
    }
    panic!(
        "never reached: {what}; job states {:?}",
        node.ctx.store.active().unwrap().iter().map(|j| j.state.name()).collect::<Vec<_>>()
    );
}

fn state_is(id: u64, name: &'static str) -> impl Fn(&Node<FakeChain, TestProver>) -> bool {
    move |n| n.ctx.store.get(U256::from(id)).unwrap().is_some_and(|j| j.state.name() == name)
}

#[tokio::test]
async fn a_request_is_proved_and_fulfilled_once() {
    let h = Harness::new(0);
    let mut node = h.node();
    node.check_chain().await.unwrap();
    h.request(1, &[1, 2, 3]);
    drive(&mut node, "fulfilled", state_is(1, "fulfilled")).await;
    assert_eq!(h.chain.status(1), (RequestStatus::Fulfilled, ME));
    assert_eq!(h.chain.our_mined_txs(), 1);
    assert_eq!(node.ctx.metrics.fulfilled.load(Ordering::Relaxed), 1);
    for _ in 0..5 {
        node.pass().await.unwrap();
    }
    assert_eq!(h.chain.our_mined_txs(), 1, "nothing is sent twice");
}

/// Where a job is when the chain reorganises under it.
#[derive(Clone, Copy, Debug)]
enum Stage {
    Queued,
    Proving,
    Proven,
    /// Sent, waiting in the pool.
    Submitted,
    /// Mined, not yet `confirmations` deep.
    Unconfirmed,
}

async fn reach(h: &Harness, node: &mut Node<FakeChain, TestProver>, stage: Stage) {
    match stage {
        Stage::Queued => {
            h.prover.pause(true);
            // The pool is busy with another request (proved first: lower id), so request 1 stays queued.
            h.chain.request(0, MODEL, vec![9], now() + 3600);
            h.request(1, &[1, 2, 3]);
            node.pass().await.unwrap();
            assert_eq!(job(node, 1).state, JobState::Queued);
        }
        Stage::Proving => {
            h.prover.pause(true);
            h.request(1, &[1, 2, 3]);
            node.pass().await.unwrap();
            assert_eq!(job(node, 1).state, JobState::Proving);
        }
        Stage::Proven => {
            h.request(1, &[1, 2, 3]);
            node.pass().await.unwrap();
            let r = node.pool.next().await;
            node.on_proved(r).unwrap();
            assert_eq!(job(node, 1).state.name(), "proven");
        }
        Stage::Submitted => {
            h.chain.with(|s| s.automine = false);
            h.request(1, &[1, 2, 3]);
            drive(node, "submitted", state_is(1, "submitted")).await;
        }
        Stage::Unconfirmed => {
            h.request(1, &[1, 2, 3]);
            drive(node, "mined", |_| h.chain.our_mined_txs() == 1).await;
            assert_eq!(job(node, 1).state.name(), "submitted");
        }
    }
}

#[tokio::test]
async fn a_reorg_that_replaces_the_input_at_any_stage_is_fulfilled_with_the_new_input() {
    for stage in [Stage::Queued, Stage::Proving, Stage::Proven, Stage::Submitted, Stage::Unconfirmed] {
        let h = Harness::new(2);
        let mut node = h.node();
        node.check_chain().await.unwrap();
        let fork_at = h.chain.head_number();
        reach(&h, &mut node, stage).await;
        // Everything since `fork_at` disappears (request, confirmations, our transaction), and a
        // request with another input takes id 1.
        h.chain.reorg((h.chain.head_number() - fork_at) as usize);
        h.chain.with(|s| s.automine = true);
        h.chain.evict_all();
        h.chain.request(1, MODEL, vec![4, 5, 6], now() + 3600);
        h.chain.mine(3);
        h.prover.pause(false);
        drive_with(&mut node, &format!("{stage:?}: fulfilled"), state_is(1, "fulfilled"), Some(&h.chain)).await;
        assert_eq!(h.chain.status(1), (RequestStatus::Fulfilled, ME), "{stage:?}");
        assert_eq!(h.chain.our_mined_txs(), 1, "{stage:?}: one fulfilment on the canonical chain");
        assert!(h.prover.proofs_of(1, &[1, 2, 3]) <= 1, "{stage:?}: the stale input is proved at most once");
        assert_eq!(h.prover.proofs_of(1, &[4, 5, 6]), 1, "{stage:?}: the new input is proved once");
        // No loop afterwards.
        for _ in 0..10 {
            node.pass().await.unwrap();
        }
        assert_eq!(h.prover.proofs_of(1, &[4, 5, 6]), 1, "{stage:?}");
    }
}

#[tokio::test]
async fn a_reorg_that_removes_the_request_waits_for_it_and_drops_it_only_once_expired() {
    let h = Harness::new(0);
    let mut node = h.node();
    node.check_chain().await.unwrap();
    h.prover.pause(true);
    let fork_at = h.chain.head_number();
    h.request(1, &[1, 2, 3]);
    node.pass().await.unwrap();
    h.chain.reorg((h.chain.head_number() - fork_at) as usize);
    h.chain.mine(2);
    h.prover.pause(false);
    drive(&mut node, "reorged", state_is(1, "reorged")).await;
    // The request comes back (same input) in a later block: the job resumes.
    h.request(1, &[1, 2, 3]);
    drive(&mut node, "fulfilled", state_is(1, "fulfilled")).await;
    assert_eq!(node.ctx.metrics.dropped.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn a_transaction_evicted_while_the_node_was_down_is_sent_again() {
    let h = Harness::new(0);
    h.chain.with(|s| s.automine = false);
    {
        let mut node = h.node();
        node.check_chain().await.unwrap();
        h.request(1, &[1, 2, 3]);
        drive(&mut node, "submitted", state_is(1, "submitted")).await;
    } // the node stops (its store is closed) with the transaction in the pool
    h.chain.evict_all();
    h.chain.mine(1);
    let mut node = h.node();
    node.check_chain().await.unwrap();
    node.pass().await.unwrap();
    assert_eq!(node.ctx.metrics.tx_rebroadcast.load(Ordering::Relaxed), 1);
    h.chain.mine(1);
    drive(&mut node, "fulfilled", state_is(1, "fulfilled")).await;
    assert_eq!(h.chain.our_mined_txs(), 1);
    assert_eq!(node.ctx.metrics.dropped.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn a_fulfilment_mined_while_the_node_was_down_is_recorded_as_fulfilled() {
    let h = Harness::new(0);
    h.chain.with(|s| s.automine = false);
    {
        let mut node = h.node();
        node.check_chain().await.unwrap();
        h.request(1, &[1, 2, 3]);
        drive(&mut node, "submitted", state_is(1, "submitted")).await;
    }
    h.chain.mine(1);
    let mut node = h.node();
    node.check_chain().await.unwrap();
    drive(&mut node, "fulfilled", state_is(1, "fulfilled")).await;
    let JobState::Fulfilled { tx, .. } = job(&node, 1).state else { unreachable!() };
    assert!(tx.is_some());
    assert_eq!(node.ctx.metrics.dropped.load(Ordering::Relaxed), 0);
    assert_eq!(node.ctx.metrics.fulfilled.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn a_request_fulfilled_by_another_is_dropped_with_its_reason() {
    let h = Harness::new(0);
    let mut node = h.node();
    node.check_chain().await.unwrap();
    h.prover.pause(true);
    h.request(1, &[1, 2, 3]);
    node.pass().await.unwrap();
    h.chain.fulfil_by(1, OTHER, &[1, 2, 3]);
    h.prover.pause(false);
    drive(&mut node, "dropped", state_is(1, "dropped")).await;
    assert_eq!(job(&node, 1).state, JobState::Dropped { reason: DropReason::FulfilledByOther { fulfiller: OTHER } });
    assert_eq!(node.ctx.metrics.dropped_with("fulfilled_by_other"), 1);
    assert_eq!(h.chain.our_mined_txs(), 0);
}

#[tokio::test]
async fn a_fee_spike_replaces_the_stuck_transaction_on_its_nonce_and_nothing_is_stacked_behind_it() {
    let h = Harness::new(0);
    h.chain.with(|s| s.automine = false);
    let mut node = h.node();
    node.check_chain().await.unwrap();
    h.request(1, &[1, 2, 3]);
    h.request(2, &[3, 2, 1]);
    drive(&mut node, "first sent", state_is(1, "submitted")).await;
    let JobState::Submitted { tx: first, .. } = job(&node, 1).state else { unreachable!() };
    // The base fee jumps 100x: the pooled transaction no longer pays it.
    h.chain.with(|s| s.next_base_fee = 100_000_000_000);
    h.chain.mine(1);
    assert_eq!(h.chain.our_mined_txs(), 0);
    drive(&mut node, "replaced", |n| n.ctx.metrics.tx_replaced.load(Ordering::Relaxed) >= 1).await;
    // Request 2 was proved meanwhile but not sent behind the stuck nonce.
    assert_eq!(job(&node, 2).state.name(), "proven");
    h.chain.mine(1);
    h.chain.with(|s| s.automine = true);
    drive(&mut node, "both fulfilled", |n| state_is(1, "fulfilled")(n) && state_is(2, "fulfilled")(n)).await;
    let (max_fee, tip) = h.chain.mined_fees(first.nonce).expect("nonce 0 mined");
    assert!(max_fee * 10 >= first.current().max_fee * 11 && tip * 10 >= first.current().tip * 11);
    assert!(max_fee >= 200_000_000_000, "pays the new base fee: {max_fee}");
    assert_eq!(h.chain.our_mined_txs(), 2);
}

#[tokio::test]
async fn a_hung_endpoint_stalls_health_not_the_node_and_shutdown_is_prompt() {
    let h = Harness::new(0);
    let node = h.node();
    let metrics = node.ctx.metrics.clone();
    let (stop, rx) = watch::channel(false);
    let running = tokio::spawn(node.run(rx));
    let wait = |what: &'static str, f: Box<dyn Fn() -> bool>| async move {
        let started = Instant::now();
        while !f() {
            assert!(started.elapsed() < Duration::from_secs(10), "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    let m = metrics.clone();
    wait("started", Box::new(move || m.health().is_ok())).await;
    h.chain.with(|s| s.hang = true);
    h.request(1, &[1, 2, 3]);
    let m = metrics.clone();
    wait("stalled health", Box::new(move || m.health().is_err())).await;
    assert!(metrics.health().unwrap_err().contains("stalled"), "{:?}", metrics.health());
    h.chain.with(|s| s.hang = false);
    let chain = h.chain.clone();
    wait("fulfilled after the hang", Box::new(move || chain.status(1).0 == RequestStatus::Fulfilled)).await;
    let m = metrics.clone();
    wait("healthy again", Box::new(move || m.health().is_ok())).await;
    // Hang again, then stop: the node stops at once, mid-call.
    h.chain.with(|s| s.hang = true);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let t = Instant::now();
    stop.send_replace(true);
    running.await.unwrap().unwrap();
    assert!(t.elapsed() < Duration::from_secs(1), "shutdown took {:?}", t.elapsed());
}

#[tokio::test]
async fn failing_calls_are_retried_and_nothing_is_lost() {
    let h = Harness::new(0);
    let node = h.node();
    let (stop, rx) = watch::channel(false);
    let running = tokio::spawn(node.run(rx));
    for id in 1..=5u64 {
        h.chain.with(|s| s.fail_next = 3);
        h.request(id, &[id as i64]);
    }
    let started = Instant::now();
    while (1..=5).any(|id| h.chain.status(id).0 != RequestStatus::Fulfilled) {
        assert!(started.elapsed() < Duration::from_secs(10), "not all fulfilled");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.send_replace(true);
    running.await.unwrap().unwrap();
    assert_eq!(h.chain.our_mined_txs(), 5);
}

#[tokio::test]
async fn start_up_refuses_another_chain() {
    let h = Harness::new(0);
    let mut cfg = config(h.dir.path(), 0);
    cfg.rpc.chain_id = Some(1);
    let node = Node::new(cfg, h.chain.clone(), h.prover.clone(), Arc::default()).unwrap();
    let err = node.check_chain().await.unwrap_err();
    assert!(matches!(err, Error::ChainIdMismatch { expected: 1, got: 31337 }), "{err}");
}

#[tokio::test]
async fn a_request_left_out_by_a_lagging_log_index_is_found_again() {
    let h = Harness::new(0);
    let mut node = h.node();
    node.check_chain().await.unwrap();
    h.request(1, &[1, 2, 3]);
    drive(&mut node, "fulfilled", state_is(1, "fulfilled")).await;
    // The log index lags: eth_getLogs answers empty for the new blocks while the node scans them.
    h.chain.with(|s| s.log_lag = 100);
    h.request(2, &[4, 5]);
    for _ in 0..5 {
        h.chain.mine(1);
        node.pass().await.unwrap();
    }
    assert!(node.ctx.store.get(U256::from(2)).unwrap().is_none(), "the lagging index hid the request");
    // The index catches up: the request is recovered although the cursor had passed its block.
    h.chain.with(|s| s.log_lag = 0);
    drive(&mut node, "fulfilled", state_is(2, "fulfilled")).await;
    assert_eq!(h.chain.status(2), (RequestStatus::Fulfilled, ME));
    assert!(node.ctx.metrics.log_gaps.load(Ordering::Relaxed) >= 1);
}

#[tokio::test]
async fn deadlines_are_judged_by_the_chain_clock_not_the_wall_clock() {
    let h = Harness::new(0);
    // The chain's clock runs two hours behind the node's: a deadline a minute in the wall clock's
    // past is still an hour and more ahead on-chain, and the request can be fulfilled.
    h.chain.with(|s| s.clock_skew = -7200);
    let mut node = h.node();
    node.check_chain().await.unwrap();
    h.chain.request(1, MODEL, vec![1, 2, 3], now() - 60);
    drive(&mut node, "fulfilled", state_is(1, "fulfilled")).await;
    assert_eq!(h.chain.status(1), (RequestStatus::Fulfilled, ME));
    assert_eq!(node.ctx.metrics.dropped.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn a_backlog_under_a_slow_endpoint_is_reconciled_over_several_passes_and_fulfilled() {
    let h = Harness::new(0);
    for id in 1..=40 {
        h.request(id, &[1]);
    }
    // Every call takes 8 ms: reconciling the 40 jobs at once (320 ms) overruns the 300 ms pass
    // deadline (6 × the 50 ms timeout); a few per pass fit.
    h.chain.with(|s| s.delay_ms = 8);
    let node = h.node();
    let (stop, rx) = watch::channel(false);
    let running = tokio::spawn(node.run(rx));
    let started = Instant::now();
    while (1..=40).any(|id| h.chain.status(id).0 != RequestStatus::Fulfilled) {
        assert!(started.elapsed() < Duration::from_secs(30), "the backlog never drained (livelock)");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.send_replace(true);
    running.await.unwrap().unwrap();
}

#[test]
fn health_names_a_slow_endpoint_as_slow_not_unreachable() {
    let m = Metrics::default();
    m.started.store(true, Ordering::Relaxed);
    m.stale_after_secs.store(1, Ordering::Relaxed);
    m.rpc_up.store(false, Ordering::Relaxed);
    m.pass_overran.store(true, Ordering::Relaxed);
    let why = m.health().unwrap_err();
    assert!(why.contains("too slowly") && !why.contains("unreachable"), "{why}");
}

/// A confirmed fulfilment (ours or another's) undone by a reorg deeper than `confirmations`.
async fn deep_reorg_undoes_the_fulfilment(by_other: bool) {
    deep_reorg_undoes_a_fulfilment(by_other, false).await;
}

async fn deep_reorg_undoes_a_fulfilment(by_other: bool, private_request: bool) {
    let h = Harness::new(1);
    let mut node = h.node();
    node.check_chain().await.unwrap();
    let fork_at = h.chain.head_number() + 1;
    if private_request {
        h.chain.request_private(1, MODEL, private(&h, &[1, 2, 3], salt(7)), now() + 3600);
        h.chain.mine(1);
    } else {
        h.request(1, &[1, 2, 3]);
    }
    if by_other {
        h.prover.pause(true);
        node.pass().await.unwrap();
        h.chain.fulfil_by(1, OTHER, &[1, 2, 3]);
        h.prover.pause(false);
        drive_with(&mut node, "dropped", state_is(1, "dropped"), Some(&h.chain)).await;
    } else {
        drive_with(&mut node, "fulfilled", state_is(1, "fulfilled"), Some(&h.chain)).await;
    }
    h.chain.mine(3);
    node.pass().await.unwrap();
    let depth = (h.chain.head_number() - fork_at) as usize;
    h.chain.reorg(depth);
    h.chain.mine(depth + 1);
    assert_eq!(h.chain.status(1).0, RequestStatus::Pending, "the reorg undid the fulfilment");
    let chain = h.chain.clone();
    drive_with(
        &mut node,
        "fulfilled again",
        move |_| chain.status(1) == (RequestStatus::Fulfilled, ME),
        Some(&h.chain),
    )
    .await;
    if private_request {
        // Proved again from the envelope read again (the store kept no plaintext), with its salt.
        let salts = h.prover.salts.lock().unwrap().clone();
        assert!(salts.len() >= 2 && salts.iter().all(|s| *s == (U256::from(1), Some(salt(7)))), "{salts:?}");
        assert!(h.prover.proofs.lock().unwrap().iter().all(|(_, input)| input == &[1, 2, 3]));
    }
}

#[tokio::test]
async fn a_deep_reorg_that_undoes_a_private_fulfilment_opens_the_envelope_again() {
    deep_reorg_undoes_a_fulfilment(false, true).await;
}

#[tokio::test]
async fn a_deep_reorg_that_undoes_our_confirmed_fulfilment_reopens_the_request() {
    deep_reorg_undoes_the_fulfilment(false).await;
}

#[tokio::test]
async fn a_deep_reorg_that_undoes_another_fulfilment_reopens_the_request() {
    deep_reorg_undoes_the_fulfilment(true).await;
}

/// Passes while the log index lags by more than the chain grows: the scan covers `id`'s block
/// without its event.
async fn scan_past_unindexed(h: &Harness, node: &mut Node<FakeChain, TestProver>, id: u64) {
    for _ in 0..5 {
        h.chain.mine(1);
        node.pass().await.unwrap();
    }
    assert!(node.ctx.store.get(U256::from(id)).unwrap().is_none(), "the lagging index hid request {id}");
}

#[tokio::test]
async fn the_first_request_a_fresh_node_sees_survives_a_lagging_log_index() {
    // The only request there is, hidden by the index while a fresh node scans past it.
    let h = Harness::new(0);
    let mut node = h.node();
    node.check_chain().await.unwrap();
    h.chain.with(|s| s.log_lag = 100);
    h.request(1, &[1, 2, 3]);
    scan_past_unindexed(&h, &mut node, 1).await;
    h.chain.with(|s| s.log_lag = 0);
    drive(&mut node, "the hidden first request fulfilled", state_is(1, "fulfilled")).await;

    // The first request hidden, the second one seen once the index caught up.
    let h = Harness::new(0);
    let mut node = h.node();
    node.check_chain().await.unwrap();
    h.chain.with(|s| s.log_lag = 100);
    h.request(1, &[1, 2, 3]);
    scan_past_unindexed(&h, &mut node, 1).await;
    h.chain.with(|s| s.log_lag = 0);
    h.request(2, &[3, 2, 1]);
    drive(&mut node, "both fulfilled", |n| state_is(1, "fulfilled")(n) && state_is(2, "fulfilled")(n)).await;
    assert_eq!(h.chain.our_mined_txs(), 2);
    assert!(node.ctx.metrics.log_gaps.load(Ordering::Relaxed) >= 1);
}

/// Requests 1 and 2 before `start_block`, the coordinator deployed at block `deployed_at`; the
/// first in-scope request (3) hidden by the index from a fresh node, request 4 seen later.
async fn first_in_scope_request_hidden(deployed_at: u64, history_from: Option<u64>) {
    let h = Harness::new(0);
    h.chain.mine(deployed_at as usize);
    h.chain.with(|s| s.deployed_at = deployed_at);
    h.request(1, &[1]);
    h.request(2, &[2]);
    let start_block = h.chain.head_number() + 1;
    if let Some(from) = history_from {
        // The endpoint keeps only recent state: not block `start_block - 1`.
        h.chain.with(|s| s.history_from = from.max(start_block));
    }
    let mut node = h.node_with(|c| c.contract.start_block = start_block);
    node.check_chain().await.unwrap();
    h.chain.with(|s| s.log_lag = 100);
    h.request(3, &[3]);
    scan_past_unindexed(&h, &mut node, 3).await;
    h.chain.with(|s| s.log_lag = 0);
    h.request(4, &[4]);
    drive(&mut node, "3 and 4 fulfilled", |n| state_is(3, "fulfilled")(n) && state_is(4, "fulfilled")(n)).await;
    for _ in 0..5 {
        h.chain.mine(1);
        node.pass().await.unwrap();
    }
    // The requests before start_block are out of scope: not touched, not rescanned for ever.
    for id in [1, 2] {
        assert!(node.ctx.store.get(U256::from(id)).unwrap().is_none(), "request {id} is before start_block");
        assert_eq!(h.chain.status(id).0, RequestStatus::Pending);
    }
    assert_eq!(h.chain.our_mined_txs(), 2);
    assert_eq!(node.ctx.store.seen_through().unwrap(), Some(U256::from(4)));
}

#[tokio::test]
async fn the_first_request_after_start_block_survives_a_lagging_log_index() {
    first_in_scope_request_hidden(1, None).await;
}

#[tokio::test]
async fn a_start_block_before_the_coordinator_existed_is_no_error() {
    // start_block - 1 predates the coordinator: its state there is not read (it has no code).
    let h = Harness::new(0);
    h.chain.mine(5);
    h.chain.with(|s| s.deployed_at = 5);
    let mut node = h.node_with(|c| c.contract.start_block = 2);
    node.check_chain().await.unwrap();
    h.chain.with(|s| s.log_lag = 100);
    h.request(1, &[1, 2, 3]);
    scan_past_unindexed(&h, &mut node, 1).await;
    h.chain.with(|s| s.log_lag = 0);
    drive(&mut node, "fulfilled", state_is(1, "fulfilled")).await;
}

#[tokio::test]
async fn without_old_state_the_first_request_after_start_block_is_found_by_one_rescan() {
    first_in_scope_request_hidden(1, Some(0)).await;
}

#[tokio::test]
async fn a_null_block_from_a_lagging_backend_is_retried_not_taken_for_a_reorg() {
    let h = Harness::new(1);
    let mut node = h.node();
    node.check_chain().await.unwrap();
    h.request(1, &[1, 2, 3]);
    drive_with(&mut node, "fulfilled", state_is(1, "fulfilled"), Some(&h.chain)).await;
    h.request(2, &[3, 2, 1]);
    // The endpoint answers `null` for blocks at or below its head, at every point of a pass.
    for nulls in 1..=6 {
        h.chain.with(|s| s.null_blocks = nulls);
        h.chain.mine(1);
        if let Err(e) = node.pass().await {
            assert!(e.is_retryable(), "{e}");
        }
    }
    h.chain.with(|s| s.null_blocks = 0);
    drive_with(&mut node, "fulfilled", state_is(2, "fulfilled"), Some(&h.chain)).await;
    assert_eq!(node.ctx.metrics.reorgs.load(Ordering::Relaxed), 0, "a null block is not a reorg");
    assert!(node.ctx.metrics.blocks_unavailable.load(Ordering::Relaxed) >= 1);
    assert_eq!(h.chain.our_mined_txs(), 2);
}

/// Captures what the node logs on this thread (tests run on a current-thread runtime).
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = Logs;

    fn make_writer(&'a self) -> Logs {
        self.clone()
    }
}

impl Logs {
    fn capture() -> (Self, tracing::subscriber::DefaultGuard) {
        let logs = Self::default();
        let subscriber = tracing_subscriber::fmt().with_writer(logs.clone()).with_ansi(false).finish();
        (logs.clone(), tracing::subscriber::set_default(subscriber))
    }

    fn count(&self, needle: &str) -> usize {
        String::from_utf8_lossy(&self.0.lock().unwrap()).matches(needle).count()
    }
}

const GWEI: u128 = 1_000_000_000;

#[tokio::test]
async fn a_base_fee_above_the_cap_is_said_once_exported_and_waited_out_without_sending() {
    let (logs, _guard) = Logs::capture();
    let h = Harness::new(0);
    let mut node = h.node_with(|c| c.fees.max_fee_per_gas = 20 * GWEI as u64);
    node.check_chain().await.unwrap();
    // One fulfilment already in the pool when the base fee rises above the cap and the pool
    // evicts it; a second request proved meanwhile.
    h.chain.with(|s| s.automine = false);
    h.request(1, &[1, 2, 3]);
    drive(&mut node, "submitted", state_is(1, "submitted")).await;
    h.chain.with(|s| s.next_base_fee = 50 * GWEI);
    h.chain.mine(1);
    h.chain.evict_all();
    h.request(2, &[3, 2, 1]);
    drive(&mut node, "proven", state_is(2, "proven")).await;
    let calls = h.chain.with(|s| s.broadcast_calls);
    for _ in 0..50 {
        h.chain.mine(1);
        node.pass().await.unwrap();
    }
    assert_eq!(h.chain.with(|s| s.broadcast_calls), calls, "nothing is sent that cannot be mined");
    assert_eq!(node.ctx.metrics.tx_rebroadcast.load(Ordering::Relaxed), 0);
    assert_eq!(logs.count("above fees.max_fee_per_gas"), 1, "said once");
    assert_eq!(logs.count("WARN"), 1, "nothing else warned, pass after pass");
    assert_eq!(logs.count("raise fees.max_fee_per_gas to at least 10"), 1, "names the setting and the value");
    let metrics = &node.ctx.metrics;
    metrics.started.store(true, Ordering::Relaxed); // as `run` does
    metrics.pass_succeeded();
    assert!(metrics.fee_capped.load(Ordering::Relaxed));
    assert!(metrics.health().unwrap().contains("fees.max_fee_per_gas"), "{:?}", metrics.health());
    let text = metrics.render();
    assert!(text.contains("zkinfer_fee_capped 1") && text.contains("zkinfer_base_fee_wei 50000000000"), "{text}");
    // The base fee falls: both are fulfilled, each once.
    h.chain.with(|s| {
        s.next_base_fee = GWEI;
        s.automine = true;
    });
    drive_with(
        &mut node,
        "both fulfilled",
        |n| state_is(1, "fulfilled")(n) && state_is(2, "fulfilled")(n),
        Some(&h.chain),
    )
    .await;
    assert!(!node.ctx.metrics.fee_capped.load(Ordering::Relaxed));
    assert_eq!(h.chain.our_mined_txs(), 2);
    assert_eq!(logs.count("under fees.max_fee_per_gas again"), 1);
}

#[tokio::test]
async fn requests_that_cannot_be_fulfilled_are_counted_by_reason() {
    let h = Harness::new(0);
    let mut node = h.node();
    node.check_chain().await.unwrap();
    h.request(1, &[1, 99]); // outside the test model's range 0..=16
    h.request(2, &[1, 2]);
    drive(&mut node, "fulfilled", state_is(2, "fulfilled")).await;
    assert_eq!(job(&node, 1).state.name(), "failed");
    let m = &node.ctx.metrics;
    assert_eq!(m.failed_with(crate::metrics::Failure::InputOutOfRange), 1);
    let text = m.render();
    assert!(text.contains("zkinfer_requests_failed_by_reason_total{reason=\"input_out_of_range\"} 1"), "{text}");
    assert!(text.contains("zkinfer_requests_failed_by_reason_total{reason=\"proving_failed\"} 0"), "{text}");
}

#[tokio::test]
async fn a_reorg_that_leaves_the_chain_shorter_than_the_cursor_is_noticed_without_new_blocks() {
    let h = Harness::new(0);
    let mut node = h.node();
    node.check_chain().await.unwrap();
    h.prover.pause(true);
    h.chain.mine(3);
    h.request(1, &[1, 2, 3]);
    node.pass().await.unwrap();
    assert_eq!(job(&node, 1).state, JobState::Proving);
    // Three blocks go, one comes back with another input for id 1: the chain stays shorter than
    // the cursor (nothing else is mined).
    h.chain.reorg(3);
    h.chain.request(1, MODEL, vec![4, 5, 6], now() + 3600);
    h.prover.pause(false);
    drive(&mut node, "fulfilled with the new input", state_is(1, "fulfilled")).await;
    assert_eq!(h.prover.proofs_of(1, &[4, 5, 6]), 1);
    assert_eq!(h.chain.our_mined_txs(), 1);
}

#[tokio::test]
async fn a_pass_that_fails_after_a_job_is_marked_proving_does_not_strand_it() {
    // The job is persisted as `proving` before the proof starts; a call failing (or a pass
    // cancelled by its deadline or shutdown) in between must not leave it `proving` with no proof
    // running, which nothing but a restart would re-queue.
    let h = Harness::new(0);
    let mut node = h.node();
    node.check_chain().await.unwrap();
    h.request(1, &[1, 2, 3]);
    h.chain.with(|s| s.fail_method = Some(("eth_chainId", 1)));
    assert!(node.pass().await.is_err(), "the pass fails on eth_chainId");
    drive(&mut node, "fulfilled without a restart", state_is(1, "fulfilled")).await;
    assert_eq!(h.chain.our_mined_txs(), 1);
}

#[test]
fn the_deployments_path_is_logged_canonical() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("config")).unwrap();
    let file = dir.path().join("31337.json");
    std::fs::write(&file, "{}").unwrap();
    let canonical = std::fs::canonicalize(&file).unwrap().display().to_string();
    assert_eq!(display_path(&dir.path().join("config/../31337.json")), canonical);
    // A path that does not exist (yet) is shown as given.
    let missing = dir.path().join("config/../nothing.json");
    assert_eq!(display_path(&missing), missing.display().to_string());
}

#[tokio::test]
async fn a_private_request_is_opened_proved_with_its_salt_and_fulfilled_privately() {
    let h = Harness::new(0);
    let mut node = h.node();
    node.check_chain().await.unwrap();
    assert!(node.ctx.metrics.encryption_key_registered.load(Ordering::Relaxed));
    let (input, s) = ([1, 2, 3], salt(7));
    h.chain.request_private(1, MODEL, private(&h, &input, s), now() + 3600);
    drive(&mut node, "fulfilled", state_is(1, "fulfilled")).await;
    assert_eq!(h.chain.status(1), (RequestStatus::Fulfilled, ME));
    assert_eq!(h.chain.our_mined_txs(), 1);
    assert_eq!(h.chain.signed_private(), 1, "fulfilled with fulfillPrivateInference");
    assert_eq!(h.prover.proofs_of(1, &input), 1);
    assert_eq!(*h.prover.salts.lock().unwrap(), vec![(U256::from(1), Some(s))]);
    // Proved with the opened input and salt; once fulfilled, the store keeps neither.
    let j = job(&node, 1);
    assert!(j.input.is_empty(), "a fulfilled private job keeps no input: {:?}", j.input);
    let p = j.private.expect("a private job");
    assert_eq!((p.commitment, p.salt, p.encryption_key), (commitment(&input, &s), None, h.key()));
    // A public request next to it still goes through fulfillInference.
    h.request(2, &[4, 5]);
    drive(&mut node, "fulfilled", state_is(2, "fulfilled")).await;
    assert_eq!(h.chain.signed_private(), 1);
}

/// Runs `requests` (id 1, 2, …) against a node and a good private request after them; returns the
/// node once the good one is fulfilled, with the log lines captured meanwhile.
async fn refused(h: &Harness, requests: Vec<PrivateRequest>) -> (Node<FakeChain, TestProver>, Logs) {
    let (logs, _guard) = Logs::capture();
    let mut node = h.node();
    node.check_chain().await.unwrap();
    let n = requests.len() as u64;
    for (i, r) in requests.into_iter().enumerate() {
        h.chain.request_private(i as u64 + 1, MODEL, r, now() + 3600);
    }
    h.chain.request_private(n + 1, MODEL, private(h, &[3, 3, 3], salt(9)), now() + 3600);
    drive(&mut node, "the good request fulfilled", state_is(n + 1, "fulfilled")).await;
    for _ in 0..5 {
        node.pass().await.unwrap();
    }
    for id in 1..=n {
        assert_eq!(job(&node, id).state.name(), "failed", "request {id}");
        assert_eq!(h.chain.status(id).0, RequestStatus::Pending, "request {id}: nothing sent, left to its requester");
    }
    assert_eq!(h.chain.signed_private(), 1, "only the good request is answered");
    assert_eq!(h.prover.proofs.lock().unwrap().len(), 1, "nothing refused is proved");
    (node, logs)
}

fn reason(node: &Node<FakeChain, TestProver>, id: u64) -> String {
    match job(node, id).state {
        JobState::Failed { reason } => reason,
        other => panic!("request {id}: {other:?}"),
    }
}

#[tokio::test]
async fn an_envelope_that_does_not_open_is_refused_with_a_labelled_reason_logged_once() {
    let h = Harness::new(0);
    let (input, s) = ([1, 2, 3], salt(7));
    // Copied by another requester into its own request: the envelope is bound to the first.
    let mut copied = private(&h, &input, s);
    copied.requester = Address::repeat_byte(0x99);
    // Sealed to another key than the one it names (the node's).
    let mut other_key = private(&h, &input, s);
    let stranger = KeyRing::generate(&mut rand::rngs::OsRng);
    other_key.ciphertext = seal(B256::from(stranger.current().public()), REQUESTER, other_key.commitment, s, &input);
    // Tampered in one byte.
    let mut tampered = private(&h, &input, s);
    let mut bytes = tampered.ciphertext.to_vec();
    bytes[40] ^= 1;
    tampered.ciphertext = bytes.into();
    // Too short for the model's input.
    let mut short = private(&h, &input, s);
    short.ciphertext = seal(h.key(), REQUESTER, short.commitment, s, &input[..2]);
    let (node, logs) = refused(&h, vec![copied, other_key, tampered, short]).await;
    for id in 1..=4 {
        assert!(reason(&node, id).starts_with("the envelope does not open"), "{}", reason(&node, id));
        assert_eq!(reason(&node, id).matches("does not open").count(), 1, "said once: {}", reason(&node, id));
    }
    assert!(reason(&node, 4).contains("expected 105"), "{}", reason(&node, 4));
    assert_eq!(node.ctx.metrics.failed_with(Failure::Undecryptable), 4);
    let text = node.ctx.metrics.render();
    assert!(text.contains("zkinfer_requests_failed_by_reason_total{reason=\"undecryptable\"} 4"), "{text}");
    assert_eq!(logs.count("request cannot be proved; refused"), 4, "each refusal is logged once");
    assert_eq!(logs.count("request_id=1 reason=\"undecryptable\""), 1);
}

#[tokio::test]
async fn an_envelope_that_opens_to_another_commitment_is_refused() {
    let h = Harness::new(0);
    let (a, b, s) = ([1, 2, 3], [3, 2, 1], salt(7));
    // The ciphertext of input A, under (and bound to) the commitment of input B.
    let mut other_input = private(&h, &b, s);
    other_input.ciphertext = seal(h.key(), REQUESTER, other_input.commitment, s, &a);
    // The right input with another salt than the commitment's.
    let mut other_salt = private(&h, &a, s);
    other_salt.ciphertext = seal(h.key(), REQUESTER, other_salt.commitment, salt(8), &a);
    // Opens and matches, but an input the model cannot take.
    let out_of_range = private(&h, &[1, 2, 99], s);
    let (node, logs) = refused(&h, vec![other_input, other_salt, out_of_range]).await;
    for id in 1..=2 {
        assert!(reason(&node, id).contains("is not the request's"), "{}", reason(&node, id));
        assert!(job(&node, id).input.is_empty(), "a refused input is not stored");
    }
    assert_eq!(node.ctx.metrics.failed_with(Failure::CommitmentMismatch), 2);
    assert_eq!(node.ctx.metrics.failed_with(Failure::InputOutOfRange), 1);
    assert_eq!(logs.count("reason=\"commitment_mismatch\""), 2);
    // The out-of-range value of a private input is neither logged nor stored: its index and the range are.
    assert_eq!(
        reason(&node, 3),
        "the envelope's input cannot be proved: input[2] is outside the model's quantized input range [0, 16]"
    );
    assert_eq!(logs.count("input[2] is outside"), 1);
    assert_eq!(logs.count("= 99"), 0, "the private value is not logged");
}

#[tokio::test]
async fn a_request_sealed_to_a_key_the_node_does_not_hold_is_refused() {
    let h = Harness::new(0);
    let stranger = B256::from(KeyRing::generate(&mut rand::rngs::OsRng).current().public());
    let (input, s) = ([1, 2, 3], salt(7));
    let mut r = private(&h, &input, s);
    r.encryption_key = stranger;
    r.ciphertext = seal(stranger, REQUESTER, r.commitment, s, &input);
    let (node, _) = refused(&h, vec![r]).await;
    assert_eq!(
        reason(&node, 1),
        format!("sealed to key {stranger}, which this node does not hold (not in its key ring)")
    );
    assert_eq!(node.ctx.metrics.failed_with(Failure::UnknownEncryptionKey), 1);

    // A node without a key ring refuses every private request the same way.
    let h = Harness::new(0);
    let mut node = h.node_with(|c| c.private.key_file = None);
    node.check_chain().await.unwrap();
    assert!(!node.ctx.metrics.encryption_key_registered.load(Ordering::Relaxed));
    h.chain.request_private(1, MODEL, private(&h, &input, s), now() + 3600);
    drive(&mut node, "refused", state_is(1, "failed")).await;
    assert!(reason(&node, 1).contains("no private.key_file configured"), "{}", reason(&node, 1));
    assert_eq!(node.ctx.metrics.failed_with(Failure::UnknownEncryptionKey), 1);
}

#[tokio::test]
async fn a_rotated_key_still_opens_requests_sealed_to_the_older_key() {
    let h = Harness::new(0);
    let (input, s) = ([1, 2, 3], salt(7));
    let old = private(&h, &input, s);
    let mut ring = h.ring();
    ring.generate_new(&mut rand::rngs::OsRng);
    ring.save(&h.dir.path().join("keys.json")).unwrap();
    // Not yet registered: the node says so (and serves the old key's requests meanwhile).
    let mut node = h.node();
    node.check_chain().await.unwrap();
    assert!(!node.ctx.metrics.encryption_key_registered.load(Ordering::Relaxed));
    h.chain.request_private(1, MODEL, old, now() + 3600);
    drive(&mut node, "fulfilled", state_is(1, "fulfilled")).await;
    h.chain.with(|s| s.encryption_keys.insert(ME, B256::from(ring.current().public())));
    h.chain.request_private(2, MODEL, private(&h, &[4, 4, 4], s), now() + 3600);
    drive(&mut node, "fulfilled", state_is(2, "fulfilled")).await;
    assert_eq!(job(&node, 2).private.unwrap().encryption_key, B256::from(ring.current().public()));
}

#[tokio::test]
async fn a_key_rotated_while_the_node_runs_opens_requests_sealed_to_it() {
    let h = Harness::new(0);
    let mut node = h.node();
    node.check_chain().await.unwrap();
    h.chain.request_private(1, MODEL, private(&h, &[1, 2, 3], salt(7)), now() + 3600);
    drive(&mut node, "fulfilled", state_is(1, "fulfilled")).await;
    // `prover-node encryption-key new` while the node runs, and the new key registered.
    let mut ring = h.ring();
    ring.generate_new(&mut rand::rngs::OsRng);
    ring.save(&h.dir.path().join("keys.json")).unwrap();
    let new_key = B256::from(ring.current().public());
    h.chain.with(|s| s.encryption_keys.insert(ME, new_key));
    assert_eq!(h.key(), new_key);
    h.chain.request_private(2, MODEL, private(&h, &[4, 4, 4], salt(8)), now() + 3600);
    drive(&mut node, "the request sealed to the new key fulfilled", state_is(2, "fulfilled")).await;
    assert_eq!(job(&node, 2).private.unwrap().encryption_key, new_key);
    assert_eq!(h.prover.proofs_of(2, &[4, 4, 4]), 1);
    // A key neither in the ring nor in its file is still refused.
    let stranger = B256::from(KeyRing::generate(&mut rand::rngs::OsRng).current().public());
    let mut r = private(&h, &[1, 1, 1], salt(9));
    r.encryption_key = stranger;
    r.ciphertext = seal(stranger, REQUESTER, r.commitment, salt(9), &[1, 1, 1]);
    h.chain.request_private(3, MODEL, r, now() + 3600);
    drive(&mut node, "refused", state_is(3, "failed")).await;
    assert!(reason(&node, 3).contains("not in its key ring"), "{}", reason(&node, 3));
}

#[tokio::test]
async fn the_key_file_is_read_again_at_most_once_a_pass() {
    let h = Harness::new(0);
    let node = h.node();
    let keys = node.ctx.keys.as_ref().unwrap();
    let stranger = B256::from(KeyRing::generate(&mut rand::rngs::OsRng).current().public());
    assert!(keys.find_or_reload(&stranger).is_none());
    // Rotated now: within the same pass the file is not read again.
    let mut ring = h.ring();
    ring.generate_new(&mut rand::rngs::OsRng);
    ring.save(&h.dir.path().join("keys.json")).unwrap();
    let new_key = B256::from(ring.current().public());
    assert!(keys.find_or_reload(&new_key).is_none(), "read again twice in one pass");
    keys.new_pass();
    assert!(keys.find_or_reload(&new_key).is_some(), "read again in the next pass");
    assert!(keys.find(&h.key()).is_some());
}

#[tokio::test]
async fn a_private_request_naming_another_prover_is_not_picked_up_and_leaves_no_gap() {
    let h = Harness::new(0);
    let mut node = h.node();
    node.check_chain().await.unwrap();
    let mut theirs = private(&h, &[1, 2, 3], salt(7));
    theirs.prover = OTHER;
    h.chain.request_private(1, MODEL, theirs, now() + 3600);
    h.request(2, &[1, 2]);
    drive(&mut node, "fulfilled", state_is(2, "fulfilled")).await;
    for _ in 0..5 {
        h.chain.mine(1);
        node.pass().await.unwrap();
    }
    assert!(node.ctx.store.get(U256::from(1)).unwrap().is_none(), "not this node's request");
    assert_eq!(h.chain.status(1).0, RequestStatus::Pending);
    assert_eq!(h.prover.proofs_of(1, &[1, 2, 3]), 0);
    assert_eq!(node.ctx.metrics.log_gaps.load(Ordering::Relaxed), 0, "its missing log is no gap");
    assert_eq!(node.ctx.store.seen_through().unwrap(), Some(U256::from(2)));
}

#[tokio::test]
async fn a_reorg_that_replaces_a_private_request_is_fulfilled_with_the_new_opening() {
    let h = Harness::new(2);
    let mut node = h.node();
    node.check_chain().await.unwrap();
    let fork_at = h.chain.head_number();
    h.prover.pause(true);
    h.chain.request_private(1, MODEL, private(&h, &[1, 2, 3], salt(7)), now() + 3600);
    h.chain.mine(2);
    node.pass().await.unwrap();
    assert_eq!(job(&node, 1).state, JobState::Proving);
    // The request is replaced: the same input under another salt (another commitment).
    h.chain.reorg((h.chain.head_number() - fork_at) as usize);
    h.chain.request_private(1, MODEL, private(&h, &[1, 2, 3], salt(8)), now() + 3600);
    h.chain.mine(3);
    h.prover.pause(false);
    drive_with(&mut node, "fulfilled", state_is(1, "fulfilled"), Some(&h.chain)).await;
    assert_eq!(h.chain.status(1), (RequestStatus::Fulfilled, ME));
    assert_eq!(h.chain.our_mined_txs(), 1);
    let salts = h.prover.salts.lock().unwrap().clone();
    assert_eq!(salts.iter().filter(|(_, s)| *s == Some(salt(8))).count(), 1, "the new opening is proved once");
    assert!(salts.iter().filter(|(_, s)| *s == Some(salt(7))).count() <= 1);
    assert_eq!(job(&node, 1).private.unwrap().commitment, commitment(&[1, 2, 3], &salt(8)));
    assert_eq!(job(&node, 1).private.unwrap().salt, None, "no plaintext kept once fulfilled");

    // The same private request moved to another block keeps its work.
    let fork_at = h.chain.head_number();
    let (r, deadline) = (private(&h, &[5, 5, 5], salt(9)), now() + 3600);
    h.chain.request_private(2, MODEL, r.clone(), deadline);
    h.chain.mine(2);
    node.pass().await.unwrap();
    h.chain.reorg((h.chain.head_number() - fork_at) as usize);
    h.chain.mine(1);
    h.chain.request_private(2, MODEL, r, deadline);
    h.chain.mine(3);
    drive_with(&mut node, "fulfilled", state_is(2, "fulfilled"), Some(&h.chain)).await;
    assert_eq!(h.prover.proofs_of(2, &[5, 5, 5]), 1, "opened and proved once");
}
