//! The prover node against a real anvil: request → verified fulfilment → callback; a crash in the
//! middle of proving; an RPC outage; a reorg that moves a request; two nodes racing; requests the
//! node cannot or must not serve.

use std::{process::Stdio, sync::atomic::Ordering, time::Duration};

use alloy::{
    primitives::{Address, U256},
    providers::{DynProvider, Provider},
    signers::local::PrivateKeySigner,
};
use prover_node::{
    bindings::IInferenceCoordinator,
    chain,
    config::{
        ContractConfig, FeeConfig, MetricsConfig, ModelConfig, NodeConfig, ProverConfig, RpcConfig, SignerConfig,
        StoreConfig,
    },
    contracts::{self, Deployment},
    metrics::Metrics,
};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    net::TcpListener,
    sync::watch,
};
use zkinfer_tests::{
    anvil, eventually, example_input, forge_out, node_bin, start_node, zoo, HttpFault, HttpFaultProxy,
};

const MINUTE: Duration = Duration::from_secs(60);

struct System {
    anvil: alloy::node_bindings::AnvilInstance,
    deployment: Deployment,
    user: DynProvider,
    dir: tempfile::TempDir,
}

impl System {
    async fn new() -> Self {
        let anvil = anvil();
        let owner = chain::provider(&anvil.endpoint(), key(&anvil, 0)).unwrap();
        let user = chain::provider(&anvil.endpoint(), key(&anvil, 2)).unwrap();
        let sample = contracts::sample_calldata(&zoo("digits_mlp").loaded).unwrap();
        let deployment = contracts::deploy_system(
            &owner,
            &forge_out(),
            &zoo("digits_mlp").card_path,
            sample,
            U256::from(1000),
            3600,
        )
        .await
        .unwrap();
        Self { anvil, deployment, user, dir: tempfile::tempdir().unwrap() }
    }

    fn config(&self, url: &str, store: &str, confirmations: u64) -> NodeConfig {
        NodeConfig {
            rpc: RpcConfig { chain_id: Some(31337), poll_interval_ms: 100, ..RpcConfig::new(url) },
            contract: ContractConfig::at(self.deployment.coordinator),
            signer: SignerConfig::default(),
            models: vec![ModelConfig { card: zoo("digits_mlp").card_path.clone(), srs: None, insecure_dev_srs: true }],
            prover: ProverConfig { confirmations, concurrency: 1 },
            store: StoreConfig::new(self.dir.path().join(store)),
            metrics: MetricsConfig { listen: "127.0.0.1:0".parse().unwrap(), ..MetricsConfig::default() },
            fees: FeeConfig::default(),
            private: Default::default(),
        }
    }

    fn coordinator(&self) -> IInferenceCoordinator::IInferenceCoordinatorInstance<DynProvider> {
        IInferenceCoordinator::new(self.deployment.coordinator, self.user.clone())
    }

    async fn request(&self, input: &[i64]) -> U256 {
        self.request_listing(self.deployment.listing_id, input).await
    }

    async fn request_listing(&self, listing_id: U256, input: &[i64]) -> U256 {
        let coordinator = self.coordinator();
        let fee = U256::from(1000);
        let call = coordinator.requestInference(listing_id, chain::int256s(input), 0, fee).value(fee);
        chain::requested_id(&chain::mined(call.send().await, "requestInference").await.unwrap()).unwrap()
    }

    /// Waits until `id` is fulfilled and returns (fulfiller, output).
    async fn fulfilled(&self, id: U256, timeout: Duration) -> (Address, Vec<i64>) {
        let c = self.coordinator();
        eventually("fulfilment", timeout, || async {
            let r = c.getRequest(id).call().await.ok()?;
            if r.status as u8 != 2 {
                return None;
            }
            let out = c.getResult(id).call().await.ok()?.output.iter().map(|v| i64::try_from(*v).unwrap()).collect();
            Some((r.fulfiller, out))
        })
        .await
    }

    /// Asserts exactly one `InferenceFulfilled` event for `id` (waiting until the log is queryable:
    /// anvil can answer `getRequest` from the new state a moment before its log index has the block).
    async fn assert_fulfilled_once(&self, id: U256) {
        let n = eventually("the fulfilment event", MINUTE, || async {
            let n = self.fulfilment_events(id).await;
            (n > 0).then_some(n)
        })
        .await;
        assert_eq!(n, 1, "request {id} fulfilled {n} times");
    }

    async fn fulfilment_events(&self, id: U256) -> usize {
        let filter = alloy::rpc::types::Filter::new()
            .address(self.deployment.coordinator)
            .event_signature(<IInferenceCoordinator::InferenceFulfilled as alloy::sol_types::SolEvent>::SIGNATURE_HASH)
            .topic1(id)
            .from_block(0);
        self.user.get_logs(&filter).await.unwrap().len()
    }
}

fn key(anvil: &alloy::node_bindings::AnvilInstance, i: usize) -> PrivateKeySigner {
    anvil.keys()[i].clone().into()
}

fn expected_output(input: &[i64]) -> Vec<i64> {
    zoo("digits_mlp").loaded.model.forward(input).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn request_is_proved_fulfilled_and_called_back_once() {
    let sys = System::new().await;
    let node_key = key(&sys.anvil, 1);
    let node_addr = node_key.address();
    let node = start_node(sys.config(&sys.anvil.endpoint(), "a.redb", 0), node_key);
    let input = example_input(zoo("digits_mlp"));
    let id = sys.request(&input).await;
    let (fulfiller, output) = sys.fulfilled(id, MINUTE).await;
    assert_eq!(fulfiller, node_addr);
    assert_eq!(output, expected_output(&input));
    // Paid exactly the fee, through the pull balance.
    let c = sys.coordinator();
    assert_eq!(c.withdrawable(node_addr).call().await.unwrap(), U256::from(1000));
    eventually("metrics", MINUTE, || async { (node.metrics.fulfilled.load(Ordering::Relaxed) == 1).then_some(()) })
        .await;
    sys.assert_fulfilled_once(id).await;
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_block_subscription_wakes_the_node_long_before_the_poll() {
    let sys = System::new().await;
    let mut cfg = sys.config(&sys.anvil.endpoint(), "ws.redb", 0);
    // Polling alone would take ten minutes to see the request: only the subscription can be this fast.
    cfg.rpc.poll_interval_ms = 600_000;
    cfg.rpc.ws_url = Some(sys.anvil.ws_endpoint());
    let node = start_node(cfg, key(&sys.anvil, 1));
    eventually("subscription", MINUTE, || async { node.metrics.ws_connected.load(Ordering::Relaxed).then_some(()) })
        .await;
    let input = example_input(zoo("digits_mlp"));
    let id = sys.request(&input).await;
    let (_, output) = sys.fulfilled(id, MINUTE).await;
    assert_eq!(output, expected_output(&input));
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unserved_models_and_rejected_requests_do_not_disturb_the_node() {
    let sys = System::new().await;
    let node = start_node(sys.config(&sys.anvil.endpoint(), "b.redb", 0), key(&sys.anvil, 1));
    // A second model the node does not serve.
    let owner = chain::provider(&sys.anvil.endpoint(), key(&sys.anvil, 0)).unwrap();
    let cnn = zoo("digits_cnn");
    let verifier = chain::deploy(&owner, cnn.compiled.bytecode.clone()).await.unwrap();
    let c_owner = IInferenceCoordinator::new(sys.deployment.coordinator, owner.clone());
    let sample = contracts::sample_calldata(&cnn.loaded).unwrap();
    let cnn_id = contracts::register_model(&c_owner, verifier, &cnn.card, sample).await.unwrap();
    let cnn_listing = contracts::create_listing(&c_owner, cnn_id, U256::from(1000), 3600).await.unwrap();
    let input = example_input(zoo("digits_mlp"));
    sys.request_listing(cnn_listing, &input).await;
    // An out-of-range input is rejected on-chain with a named error.
    let mut bad = input.clone();
    bad[0] = 17;
    let c = sys.coordinator();
    let err = c
        .requestInference(sys.deployment.listing_id, chain::int256s(&bad), 0, U256::from(1000))
        .value(U256::from(1000))
        .send()
        .await
        .unwrap_err();
    assert!(matches!(
        err.as_decoded_interface_error::<IInferenceCoordinator::IInferenceCoordinatorErrors>(),
        Some(IInferenceCoordinator::IInferenceCoordinatorErrors::InputOutOfRange(_))
    ));
    // The node still serves its own model.
    let id = sys.request(&input).await;
    sys.fulfilled(id, MINUTE).await;
    eventually("the unserved request recorded as dropped", MINUTE, || async {
        (node.metrics.dropped.load(Ordering::Relaxed) >= 1).then_some(())
    })
    .await;
    assert!(!node.handle.is_finished());
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_race_and_exactly_one_fulfils() {
    let sys = System::new().await;
    let a = start_node(sys.config(&sys.anvil.endpoint(), "race-a.redb", 0), key(&sys.anvil, 3));
    let b = start_node(sys.config(&sys.anvil.endpoint(), "race-b.redb", 0), key(&sys.anvil, 4));
    let input = example_input(zoo("digits_mlp"));
    let ids = [sys.request(&input).await, sys.request(&input).await];
    for id in ids {
        let (fulfiller, _) = sys.fulfilled(id, MINUTE).await;
        assert!(fulfiller == key(&sys.anvil, 3).address() || fulfiller == key(&sys.anvil, 4).address());
        sys.assert_fulfilled_once(id).await;
    }
    // Both nodes settle: every request is fulfilled by one and dropped (or never sent) by the other.
    eventually("both nodes settled", MINUTE, || async {
        let done = |m: &Metrics| m.fulfilled.load(Ordering::Relaxed) + m.dropped.load(Ordering::Relaxed);
        (done(&a.metrics) + done(&b.metrics) >= 4).then_some(())
    })
    .await;
    assert_eq!(a.metrics.fulfilled.load(Ordering::Relaxed) + b.metrics.fulfilled.load(Ordering::Relaxed), 2);
    a.stop().await;
    b.stop().await;
}

/// A TCP proxy to anvil that can be switched off: while off, new connections are dropped and
/// open ones are cut.
async fn proxy(target: String) -> (String, watch::Sender<bool>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (up_tx, up_rx) = watch::channel(true);
    tokio::spawn(async move {
        loop {
            let Ok((mut inbound, _)) = listener.accept().await else { continue };
            if !*up_rx.borrow() {
                drop(inbound);
                continue;
            }
            let (target, mut down) = (target.clone(), up_rx.clone());
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = down.wait_for(|up| !*up) => {}
                    }
                }
            });
        }
    });
    (format!("http://{addr}"), up_tx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_rpc_outage_is_survived() {
    let sys = System::new().await;
    let target = sys.anvil.endpoint().trim_start_matches("http://").to_string();
    let (url, up) = proxy(target).await;
    let node = start_node(sys.config(&url, "outage.redb", 0), key(&sys.anvil, 1));
    eventually("node up", MINUTE, || async { node.metrics.rpc_up.load(Ordering::Relaxed).then_some(()) }).await;
    up.send_replace(false);
    eventually("node notices the outage", MINUTE, || async {
        (!node.metrics.rpc_up.load(Ordering::Relaxed)).then_some(())
    })
    .await;
    let input = example_input(zoo("digits_mlp"));
    let id = sys.request(&input).await;
    assert!(node.metrics.rpc_errors.load(Ordering::Relaxed) > 0);
    up.send_replace(true);
    let (_, output) = sys.fulfilled(id, MINUTE).await;
    assert_eq!(output, expected_output(&input));
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reorg_that_replaces_the_request_is_fulfilled_with_the_new_input() {
    let sys = System::new().await;
    let node = start_node(sys.config(&sys.anvil.endpoint(), "reorg.redb", 2), key(&sys.anvil, 1));
    let snapshot: U256 = sys.user.raw_request("evm_snapshot".into(), ()).await.unwrap();
    let first = example_input(zoo("digits_mlp"));
    let id = sys.request(&first).await;
    // One block on top: not yet deep enough for the node (confirmations = 2). Then the chain
    // reorganises: the request disappears and a different one takes its id in a new block.
    let _: () = sys.user.raw_request("anvil_mine".into(), (U256::from(1),)).await.unwrap();
    let reverted: bool = sys.user.raw_request("evm_revert".into(), (snapshot,)).await.unwrap();
    assert!(reverted);
    let second: Vec<i64> = first.iter().map(|v| 16 - v).collect();
    let id2 = sys.request(&second).await;
    assert_eq!(id, id2);
    let _: () = sys.user.raw_request("anvil_mine".into(), (U256::from(3),)).await.unwrap();
    let (_, output) = sys.fulfilled(id2, MINUTE).await;
    assert_eq!(output, expected_output(&second));
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_killed_mid_proof_resumes_and_fulfils_exactly_once() {
    let sys = System::new().await;
    let node_key = key(&sys.anvil, 1);
    let node_addr = node_key.address();
    let dir = tempfile::tempdir().unwrap();
    let cfg_path = dir.path().join("node.toml");
    let store = dir.path().join("store.redb");
    std::fs::write(
        &cfg_path,
        format!(
            "[rpc]\nhttp_url = \"{}\"\nchain_id = 31337\npoll_interval_ms = 100\n[contract]\ncoordinator = \"{}\"\n\
             [[models]]\ncard = \"{}\"\ninsecure_dev_srs = true\n[store]\npath = \"{}\"\n[metrics]\nlisten = \"127.0.0.1:0\"\n",
            sys.anvil.endpoint(),
            sys.deployment.coordinator,
            zoo("digits_mlp").card_path.display(),
            store.display()
        ),
    )
    .unwrap();
    let bin = node_bin();
    assert!(bin.exists(), "build the node first: cargo build --release -p prover-node");
    let spawn = || {
        tokio::process::Command::new(&bin)
            .args(["run", "--config"])
            .arg(&cfg_path)
            .env("ZKINFER_PRIVATE_KEY", format!("0x{}", alloy::hex::encode(node_key.to_bytes())))
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap()
    };
    let input = example_input(zoo("digits_mlp"));
    let mut child = spawn();
    let id = sys.request(&input).await;
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    tokio::time::timeout(MINUTE, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains("proving") && line.contains("prove{") {
                break;
            }
        }
    })
    .await
    .expect("the node never started proving");
    child.start_kill().unwrap(); // SIGKILL
    child.wait().await.unwrap();
    let c = sys.coordinator();
    assert_eq!(c.getRequest(id).call().await.unwrap().status as u8, 1, "killed before fulfilling");

    let mut child = spawn();
    let (fulfiller, output) = sys.fulfilled(id, MINUTE).await;
    assert_eq!((fulfiller, output), (node_addr, expected_output(&input)));
    // Let the restarted node settle, then check nothing was sent twice.
    tokio::time::sleep(Duration::from_millis(500)).await;
    sys.assert_fulfilled_once(id).await;
    assert_eq!(sys.user.get_transaction_count(node_addr).await.unwrap(), 1, "the node sent more than one transaction");
    child.start_kill().unwrap();
    child.wait().await.unwrap();
}

// ---- Faults: hung RPC, reorgs mid-proof, evictions after a crash, fee spikes, damaged stores ----

/// What the fault proxy does with traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Forward to anvil.
    Up,
    /// Accept and read requests, never answer (connections stay open).
    Blackhole,
}

/// A TCP proxy to anvil that can blackhole: requests are accepted and never answered, on new
/// and on open (keep-alive) connections alike.
async fn fault_proxy(target: String) -> (String, watch::Sender<Mode>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (mode_tx, mode_rx) = watch::channel(Mode::Up);
    async fn hold(mut inbound: tokio::net::TcpStream, mut mode: watch::Receiver<Mode>) {
        use tokio::io::AsyncReadExt;
        let mut buf = [0u8; 4096];
        loop {
            tokio::select! {
                n = inbound.read(&mut buf) => if matches!(n, Ok(0) | Err(_)) { return },
                _ = mode.wait_for(|m| *m != Mode::Blackhole) => return,
            }
        }
    }
    tokio::spawn(async move {
        loop {
            let Ok((mut inbound, _)) = listener.accept().await else { continue };
            let (target, mut mode) = (target.clone(), mode_rx.clone());
            tokio::spawn(async move {
                let blackholed = *mode.borrow() == Mode::Blackhole;
                if blackholed {
                    return hold(inbound, mode).await;
                }
                let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await else { return };
                let blackholed = tokio::select! {
                    _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => false,
                    r = mode.wait_for(|m| *m == Mode::Blackhole) => r.is_ok(),
                };
                if blackholed {
                    drop(outbound);
                    hold(inbound, mode).await;
                }
            });
        }
    });
    (format!("http://{addr}"), mode_tx)
}

async fn raw(p: &DynProvider, method: &'static str, params: serde_json::Value) -> serde_json::Value {
    p.raw_request(method.into(), params).await.unwrap_or_else(|e| panic!("{method}: {e}"))
}

async fn snapshot(p: &DynProvider) -> serde_json::Value {
    raw(p, "evm_snapshot", serde_json::json!([])).await
}

async fn revert(p: &DynProvider, snapshot: serde_json::Value) {
    assert_eq!(raw(p, "evm_revert", serde_json::json!([snapshot])).await, serde_json::json!(true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hung_rpc_stalls_health_then_recovers_and_sigterm_stays_prompt() {
    let sys = System::new().await;
    let target = sys.anvil.endpoint().trim_start_matches("http://").to_string();
    let (url, mode) = fault_proxy(target).await;
    let mut cfg = sys.config(&url, "hung.redb", 0);
    cfg.rpc.timeout_ms = 1_000;
    cfg.metrics.stale_after_secs = 3;
    let node = start_node(cfg, key(&sys.anvil, 1));
    let input = example_input(zoo("digits_mlp"));
    let first = sys.request(&input).await;
    sys.fulfilled(first, MINUTE).await;
    assert_eq!(node.metrics.health(), Ok("ok"));

    mode.send_replace(Mode::Blackhole);
    let hung_at = std::time::Instant::now();
    let during = sys.request(&input).await;
    let reason = eventually("health to report the stall", MINUTE, || async { node.metrics.health().err() }).await;
    assert!(reason.contains("stalled"), "{reason}");
    let stalled_after = hung_at.elapsed();
    tokio::time::sleep(Duration::from_secs(10).saturating_sub(hung_at.elapsed())).await;
    mode.send_replace(Mode::Up);
    let restored = std::time::Instant::now();
    let mut ids = vec![during];
    for _ in 0..3 {
        ids.push(sys.request(&input).await);
    }
    let (_, output) = sys.fulfilled(during, MINUTE).await;
    let recovered_after = restored.elapsed();
    assert_eq!(output, expected_output(&input));
    for id in &ids {
        sys.fulfilled(*id, MINUTE).await;
        sys.assert_fulfilled_once(*id).await;
    }
    let all_after = restored.elapsed();
    eventually("healthy again", MINUTE, || async { node.metrics.health().is_ok().then_some(()) }).await;
    eprintln!(
        "hung RPC: health stalled after {:.1} s; request sent during the hang fulfilled {:.1} s after the \
         endpoint came back, all 4 within {:.1} s",
        stalled_after.as_secs_f64(),
        recovered_after.as_secs_f64(),
        all_after.as_secs_f64()
    );
    assert!(recovered_after < Duration::from_secs(15), "recovery took {recovered_after:?}");

    // Shutdown while every call hangs is still prompt.
    mode.send_replace(Mode::Blackhole);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let stopping = std::time::Instant::now();
    tokio::time::timeout(Duration::from_secs(5), node.stop()).await.expect("the node ignored shutdown during a hang");
    eprintln!("hung RPC: shutdown took {:.2} s", stopping.elapsed().as_secs_f64());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reorg_while_proving_restarts_the_job_with_the_new_input() {
    let sys = System::new().await;
    let node = start_node(sys.config(&sys.anvil.endpoint(), "reorg-proving.redb", 2), key(&sys.anvil, 1));
    let snapshot = snapshot(&sys.user).await;
    let first = example_input(zoo("digits_mlp"));
    let id = sys.request(&first).await;
    // Deep enough (confirmations = 2): the node picks the request up and starts proving it.
    raw(&sys.user, "anvil_mine", serde_json::json!([2])).await;
    eventually("the node to take the request", MINUTE, || async {
        (node.metrics.seen.load(Ordering::Relaxed) >= 1).then_some(())
    })
    .await;
    // A reorg of depth 3 replaces the request with another input under the same id.
    revert(&sys.user, snapshot).await;
    let second: Vec<i64> = first.iter().map(|v| 16 - v).collect();
    assert_eq!(sys.request(&second).await, id);
    raw(&sys.user, "anvil_mine", serde_json::json!([3])).await;
    let (_, output) = sys.fulfilled(id, MINUTE).await;
    assert_eq!(output, expected_output(&second));
    sys.assert_fulfilled_once(id).await;
    // The stale input is not proved again and again: a few seconds later nothing more was proved.
    let proven = node.metrics.proven.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(node.metrics.proven.load(Ordering::Relaxed), proven);
    assert!(proven <= 2, "{proven} proofs for one request");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reorg_that_removes_our_unconfirmed_fulfilment_and_changes_the_input_is_fulfilled_again() {
    let sys = System::new().await;
    let node_key = key(&sys.anvil, 1);
    let node_addr = node_key.address();
    let node = start_node(sys.config(&sys.anvil.endpoint(), "reorg-unconfirmed.redb", 2), node_key);
    let snapshot = snapshot(&sys.user).await;
    let first = example_input(zoo("digits_mlp"));
    let id = sys.request(&first).await;
    raw(&sys.user, "anvil_mine", serde_json::json!([2])).await;
    // Our fulfilment is mined, one block deep: not final with confirmations = 2.
    let (fulfiller, _) = sys.fulfilled(id, MINUTE).await;
    assert_eq!(fulfiller, node_addr);
    revert(&sys.user, snapshot).await;
    let second: Vec<i64> = first.iter().map(|v| 16 - v).collect();
    assert_eq!(sys.request(&second).await, id);
    raw(&sys.user, "anvil_mine", serde_json::json!([3])).await;
    let (fulfiller, output) = sys.fulfilled(id, MINUTE).await;
    assert_eq!((fulfiller, output), (node_addr, expected_output(&second)));
    raw(&sys.user, "anvil_mine", serde_json::json!([3])).await;
    eventually("recorded as fulfilled", MINUTE, || async {
        (node.metrics.fulfilled.load(Ordering::Relaxed) == 1).then_some(())
    })
    .await;
    assert_eq!(node.metrics.dropped.load(Ordering::Relaxed), 0);
    node.stop().await;
}

/// Sends a request with automine off and mines it.
async fn request_mined_by_hand(sys: &System, input: &[i64]) -> U256 {
    let c = sys.coordinator();
    let fee = U256::from(1000);
    let call = c.requestInference(sys.deployment.listing_id, chain::int256s(input), 0, fee).value(fee).gas(2_000_000);
    let pending = call.send().await.unwrap();
    raw(&sys.user, "anvil_mine", serde_json::json!([1])).await;
    chain::requested_id(&pending.get_receipt().await.unwrap()).unwrap()
}

async fn pending_nonce(sys: &System, who: Address) -> u64 {
    sys.user.get_transaction_count(who).pending().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_transaction_evicted_after_a_crash_is_sent_again_and_a_mined_one_is_recorded_fulfilled() {
    let sys = System::new().await;
    let node_key = key(&sys.anvil, 1);
    let node_addr = node_key.address();
    let cfg = sys.config(&sys.anvil.endpoint(), "evicted.redb", 0);
    raw(&sys.user, "evm_setAutomine", serde_json::json!([false])).await;
    let input = example_input(zoo("digits_mlp"));

    // 1. The fulfilment reaches the pool, the node dies, the pool evicts it: sent again.
    let node = start_node(cfg.clone(), node_key.clone());
    let id = request_mined_by_hand(&sys, &input).await;
    eventually("fulfilment in the pool", MINUTE, || async {
        (pending_nonce(&sys, node_addr).await == 1).then_some(())
    })
    .await;
    node.handle.abort(); // a crash: no shutdown sequence
    let _ = node.handle.await;
    raw(&sys.user, "anvil_dropAllTransactions", serde_json::json!([])).await;
    assert_eq!(pending_nonce(&sys, node_addr).await, 0, "evicted");
    let node = start_node(cfg.clone(), node_key.clone());
    eventually("fulfilment sent again", MINUTE, || async { (pending_nonce(&sys, node_addr).await == 1).then_some(()) })
        .await;
    raw(&sys.user, "anvil_mine", serde_json::json!([1])).await;
    let (fulfiller, output) = sys.fulfilled(id, MINUTE).await;
    assert_eq!((fulfiller, output), (node_addr, expected_output(&input)));
    eventually("recorded as fulfilled", MINUTE, || async {
        (node.metrics.fulfilled.load(Ordering::Relaxed) == 1).then_some(())
    })
    .await;
    assert!(node.metrics.tx_rebroadcast.load(Ordering::Relaxed) >= 1);
    assert_eq!(node.metrics.dropped.load(Ordering::Relaxed), 0);

    // 2. The node dies with its fulfilment in the pool, which is then mined: recorded as fulfilled.
    let id2 = request_mined_by_hand(&sys, &input).await;
    eventually("second fulfilment in the pool", MINUTE, || async {
        (pending_nonce(&sys, node_addr).await == 2).then_some(())
    })
    .await;
    node.handle.abort();
    let _ = node.handle.await;
    raw(&sys.user, "anvil_mine", serde_json::json!([1])).await;
    let node = start_node(cfg, node_key);
    eventually("found fulfilled after the restart", MINUTE, || async {
        (node.metrics.fulfilled.load(Ordering::Relaxed) == 1).then_some(())
    })
    .await;
    assert_eq!(node.metrics.dropped.load(Ordering::Relaxed), 0, "its own fulfilment recorded as dropped");
    sys.assert_fulfilled_once(id).await;
    sys.assert_fulfilled_once(id2).await;
    assert_eq!(sys.user.get_transaction_count(node_addr).await.unwrap(), 2, "one transaction per request");
    raw(&sys.user, "evm_setAutomine", serde_json::json!([true])).await;
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fee_spike_replaces_the_stuck_fulfilment_on_the_same_nonce_with_higher_fees() {
    let sys = System::new().await;
    let node_key = key(&sys.anvil, 1);
    let node_addr = node_key.address();
    raw(&sys.user, "evm_setAutomine", serde_json::json!([false])).await;
    let node = start_node(sys.config(&sys.anvil.endpoint(), "fees.redb", 0), node_key);
    let input = example_input(zoo("digits_mlp"));
    let id = request_mined_by_hand(&sys, &input).await;
    eventually("fulfilment in the pool", MINUTE, || async {
        (pending_nonce(&sys, node_addr).await == 1).then_some(())
    })
    .await;
    let pool = raw(&sys.user, "txpool_content", serde_json::json!([])).await;
    let pending = pool["pending"].as_object().unwrap().iter().find(|(a, _)| a.parse::<Address>().unwrap() == node_addr);
    let first = pending.unwrap().1["0"].clone();
    let fee = |tx: &serde_json::Value, k: &str| {
        u128::from_str_radix(tx[k].as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
    };
    let (first_max, first_tip) = (fee(&first, "maxFeePerGas"), fee(&first, "maxPriorityFeePerGas"));
    // The base fee jumps to 100 gwei, far above the transaction's max fee.
    let spike = 100_000_000_000u128;
    assert!(first_max < spike);
    raw(&sys.user, "anvil_setNextBlockBaseFeePerGas", serde_json::json!([format!("{spike:#x}")])).await;
    raw(&sys.user, "anvil_mine", serde_json::json!([1])).await;
    assert_eq!(sys.coordinator().getRequest(id).call().await.unwrap().status as u8, 1, "not mined under the spike");
    eventually("a replacement", MINUTE, || async {
        (node.metrics.tx_replaced.load(Ordering::Relaxed) >= 1).then_some(())
    })
    .await;
    eventually("the replacement in the pool", MINUTE, || async {
        (pending_nonce(&sys, node_addr).await == 1).then_some(())
    })
    .await;
    raw(&sys.user, "anvil_mine", serde_json::json!([1])).await;
    let (fulfiller, _) = sys.fulfilled(id, MINUTE).await;
    assert_eq!(fulfiller, node_addr);
    // The mined transaction is the replacement: same nonce, tip and max fee raised by ≥ 10%.
    let filter = alloy::rpc::types::Filter::new()
        .address(sys.deployment.coordinator)
        .event_signature(<IInferenceCoordinator::InferenceFulfilled as alloy::sol_types::SolEvent>::SIGNATURE_HASH)
        .topic1(id)
        .from_block(0);
    let log = sys.user.get_logs(&filter).await.unwrap().remove(0);
    let mined = raw(&sys.user, "eth_getTransactionByHash", serde_json::json!([log.transaction_hash.unwrap()])).await;
    assert_eq!(mined["nonce"], first["nonce"]);
    let (max, tip) = (fee(&mined, "maxFeePerGas"), fee(&mined, "maxPriorityFeePerGas"));
    assert!(max * 10 >= first_max * 11 && tip * 10 >= first_tip * 11, "{first_max}/{first_tip} -> {max}/{tip}");
    assert!(max >= spike, "the replacement pays the spiked base fee: {max}");
    assert_eq!(sys.user.get_transaction_count(node_addr).await.unwrap(), 1);
    eprintln!("fee spike: max fee {first_max} -> {max} wei, tip {first_tip} -> {tip} wei, same nonce");
    raw(&sys.user, "evm_setAutomine", serde_json::json!([true])).await;
    node.stop().await;
}

fn node_command(sys: &System, cfg_path: &std::path::Path, extra: &[&str]) -> tokio::process::Command {
    let bin = node_bin();
    assert!(bin.exists(), "build the node first: cargo build --release -p prover-node");
    let mut cmd = tokio::process::Command::new(&bin);
    cmd.args(["run", "--config"])
        .arg(cfg_path)
        .args(extra)
        .env("ZKINFER_PRIVATE_KEY", format!("0x{}", alloy::hex::encode(key(&sys.anvil, 1).to_bytes())))
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

fn write_config(
    sys: &System,
    dir: &std::path::Path,
    url: &str,
    coordinator: Address,
    chain_id: u64,
) -> std::path::PathBuf {
    let path = dir.join(format!("node-{chain_id}-{coordinator}.toml"));
    std::fs::write(
        &path,
        format!(
            "[rpc]\nhttp_url = \"{url}\"\nchain_id = {chain_id}\npoll_interval_ms = 100\n[contract]\ncoordinator = \"{coordinator}\"\n\
             [[models]]\ncard = \"{}\"\ninsecure_dev_srs = true\n[store]\npath = \"store.redb\"\n[metrics]\nlisten = \"127.0.0.1:0\"\n",
            zoo("digits_mlp").card_path.display(),
        ),
    )
    .unwrap();
    let _ = sys;
    path
}

/// Runs the node binary until it exits (within a minute); returns (exit code, stderr).
async fn run_to_exit(mut cmd: tokio::process::Command) -> (Option<i32>, String) {
    let out = tokio::time::timeout(MINUTE, cmd.output()).await.expect("the node did not exit").unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_stores_and_wrong_chains_are_refused_with_a_named_error() {
    let sys = System::new().await;
    let dir = tempfile::tempdir().unwrap();
    let url = sys.anvil.endpoint();
    let cfg = write_config(&sys, dir.path(), &url, sys.deployment.coordinator, 31337);
    let store = dir.path().join("store.redb");

    // An empty store file: refused, not silently replaced.
    std::fs::write(&store, b"").unwrap();
    let (code, err) = run_to_exit(node_command(&sys, &cfg, &[])).await;
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("empty file") && err.contains("--reinit-store"), "{err}");
    assert_eq!(std::fs::metadata(&store).unwrap().len(), 0);

    // --reinit-store starts a fresh one, and the node serves.
    let mut child = node_command(&sys, &cfg, &["--reinit-store"]).spawn().unwrap();
    let input = example_input(zoo("digits_mlp"));
    let id = sys.request(&input).await;
    sys.fulfilled(id, MINUTE).await;
    // SIGTERM: a clean stop.
    let pid = child.id().unwrap().to_string();
    std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait()).await.expect("SIGTERM ignored").unwrap();
    assert!(status.success(), "{status:?}");

    // The same store, truncated: a clear error and exit code 1, not a panic (101).
    let bytes = std::fs::read(&store).unwrap();
    std::fs::write(&store, &bytes[..bytes.len() / 2]).unwrap();
    let (code, err) = run_to_exit(node_command(&sys, &cfg, &[])).await;
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("damaged") && err.contains("--reinit-store"), "{err}");
    // One error naming the file, no redb panic text before it.
    assert!(err.contains(&format!("the store {} is damaged", store.display())), "{err}");
    for panic_text in ["panicked", "assertion", "page_manager"] {
        assert!(!err.contains(panic_text), "{panic_text:?} in:\n{err}");
    }
    // Recovery: moved aside, rescanned; the request fulfilled meanwhile is recognised, not sent again.
    let mut child = node_command(&sys, &cfg, &["--reinit-store"]).spawn().unwrap();
    let id2 = sys.request(&input).await;
    sys.fulfilled(id2, MINUTE).await;
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    sys.assert_fulfilled_once(id).await;
    assert_eq!(sys.user.get_transaction_count(key(&sys.anvil, 1).address()).await.unwrap(), 2);

    // A fresh chain with a coordinator at the same address: the store is refused.
    let other = System::new().await;
    assert_eq!(other.deployment.coordinator, sys.deployment.coordinator, "same deployer, same address");
    let other_dir = tempfile::tempdir().unwrap();
    let cfg_other =
        write_config(&other, other_dir.path(), &other.anvil.endpoint(), other.deployment.coordinator, 31337);
    std::fs::copy(&cfg_other, &cfg).unwrap(); // the first chain's store, the second chain's endpoint
    let (code, err) = run_to_exit(node_command(&other, &cfg, &[])).await;
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("was made for chain 31337 (genesis"), "{err}");

    // Wrong chain id, and a coordinator address without code.
    let fresh = tempfile::tempdir().unwrap();
    let wrong_chain = write_config(&sys, fresh.path(), &url, sys.deployment.coordinator, 1);
    let (code, err) = run_to_exit(node_command(&sys, &wrong_chain, &[])).await;
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("reports chain id 31337, the config expects 1"), "{err}");
    let no_code = write_config(&sys, fresh.path(), &url, Address::repeat_byte(0x42), 31337);
    let (code, err) = run_to_exit(node_command(&sys, &no_code, &[])).await;
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("no contract at the coordinator address"), "{err}");
    // Another contract (the verifier) as coordinator: the model is not found on it.
    let not_coordinator = write_config(&sys, fresh.path(), &url, sys.deployment.verifier, 31337);
    let (code, err) = run_to_exit(node_command(&sys, &not_coordinator, &[])).await;
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("InferenceCoordinator") || err.contains("is not registered"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn http_500_and_429_from_the_rpc_are_retried_and_nothing_is_sent_twice() {
    let sys = System::new().await;
    let proxy = HttpFaultProxy::start(&sys.anvil.endpoint()).await;
    let node_key = key(&sys.anvil, 1);
    let node_addr = node_key.address();
    let mut cfg = sys.config(&proxy.url, "http-faults.redb", 0);
    cfg.rpc.timeout_ms = 2_000;
    let node = start_node(cfg, node_key);
    let input = example_input(zoo("digits_mlp"));
    eventually("node up", MINUTE, || async { node.metrics.rpc_up.load(Ordering::Relaxed).then_some(()) }).await;

    let mut ids = vec![];
    for status in [500, 429] {
        // Every call answered with `status` for a window; a request made meanwhile (straight to
        // anvil) is fulfilled once the endpoint recovers.
        let errors = node.metrics.rpc_errors.load(Ordering::Relaxed);
        proxy.set(HttpFault::Status(status));
        let id = sys.request(&input).await;
        eventually("the node to meet the errors", MINUTE, || async {
            (node.metrics.rpc_errors.load(Ordering::Relaxed) > errors && !node.metrics.rpc_up.load(Ordering::Relaxed))
                .then_some(())
        })
        .await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(sys.coordinator().getRequest(id).call().await.unwrap().status as u8, 1, "pending during the window");
        assert!(proxy.count("eth_blockNumber", HttpFault::Status(status)) > 0);
        proxy.set(HttpFault::Pass);
        let recovering = std::time::Instant::now();
        let (fulfiller, output) = sys.fulfilled(id, MINUTE).await;
        assert_eq!((fulfiller, output), (node_addr, expected_output(&input)));
        let took = recovering.elapsed();
        eprintln!("HTTP {status}: fulfilled {:.1} s after the endpoint recovered", took.as_secs_f64());
        assert!(took < Duration::from_secs(15), "recovery from HTTP {status} took {took:?}");
        ids.push(id);
    }

    // The fulfilment reaches the chain but its answer is a 500 (and every re-send's too): the
    // node must recognise its own transaction, not send another.
    proxy.set_for("eth_sendRawTransaction", HttpFault::StatusAfterForward(500));
    let id = sys.request(&input).await;
    let (fulfiller, _) = sys.fulfilled(id, MINUTE).await;
    assert_eq!(fulfiller, node_addr);
    assert!(proxy.count("eth_sendRawTransaction", HttpFault::StatusAfterForward(500)) >= 1);
    eventually("recorded as fulfilled", MINUTE, || async {
        (node.metrics.fulfilled.load(Ordering::Relaxed) == 3).then_some(())
    })
    .await;
    proxy.set(HttpFault::Pass);
    ids.push(id);

    tokio::time::sleep(Duration::from_secs(1)).await;
    for id in &ids {
        sys.assert_fulfilled_once(*id).await;
    }
    assert_eq!(sys.user.get_transaction_count(node_addr).await.unwrap(), 3, "one transaction per request");
    assert_eq!(node.metrics.dropped.load(Ordering::Relaxed), 0);
    node.stop().await;
}
