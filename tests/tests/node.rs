//! The prover node against a real anvil: request → verified fulfilment → callback; a crash in the
//! middle of proving; an RPC outage; a reorg that moves a request; two nodes racing; requests the
//! node cannot or must not serve.

use std::{
    process::Stdio,
    sync::{atomic::Ordering, Arc},
    time::Duration,
};

use alloy::{
    primitives::{Address, U256},
    providers::{DynProvider, Provider},
    signers::local::PrivateKeySigner,
};
use prover_node::{
    bindings::IInferenceCoordinator,
    chain,
    config::{
        ContractConfig, MetricsConfig, ModelConfig, NodeConfig, ProverConfig, RpcConfig, SignerConfig, StoreConfig,
    },
    contracts::{self, Deployment},
    metrics::Metrics,
};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    net::TcpListener,
    sync::watch,
};
use zkinfer_tests::{anvil, eventually, example_input, forge_out, root, zoo};

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
            rpc: RpcConfig {
                http_url: url.into(),
                ws_url: None,
                chain_id: Some(31337),
                poll_interval_ms: 100,
                max_log_range: 2000,
            },
            contract: ContractConfig { coordinator: self.deployment.coordinator, start_block: 0 },
            signer: SignerConfig::default(),
            models: vec![ModelConfig { card: zoo("digits_mlp").card_path.clone(), srs: None, insecure_dev_srs: true }],
            prover: ProverConfig { confirmations, concurrency: 1 },
            store: StoreConfig { path: self.dir.path().join(store) },
            metrics: MetricsConfig { listen: "127.0.0.1:0".parse().unwrap() },
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

struct RunningNode {
    stop: watch::Sender<bool>,
    handle: tokio::task::JoinHandle<prover_node::Result<()>>,
    metrics: Arc<Metrics>,
}

fn start(cfg: NodeConfig, signer: PrivateKeySigner) -> RunningNode {
    let (stop, rx) = watch::channel(false);
    let metrics = Arc::new(Metrics::default());
    let handle = tokio::spawn(prover_node::service::serve(cfg, Some(signer), metrics.clone(), rx));
    RunningNode { stop, handle, metrics }
}

impl RunningNode {
    async fn stop(self) {
        let _ = self.stop.send(true);
        self.handle.await.unwrap().unwrap();
    }
}

fn expected_output(input: &[i64]) -> Vec<i64> {
    zoo("digits_mlp").loaded.model.forward(input).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn request_is_proved_fulfilled_and_called_back_once() {
    let sys = System::new().await;
    let node_key = key(&sys.anvil, 1);
    let node_addr = node_key.address();
    let node = start(sys.config(&sys.anvil.endpoint(), "a.redb", 0), node_key);
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
    let node = start(cfg, key(&sys.anvil, 1));
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
    let node = start(sys.config(&sys.anvil.endpoint(), "b.redb", 0), key(&sys.anvil, 1));
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
    let a = start(sys.config(&sys.anvil.endpoint(), "race-a.redb", 0), key(&sys.anvil, 3));
    let b = start(sys.config(&sys.anvil.endpoint(), "race-b.redb", 0), key(&sys.anvil, 4));
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
    let node = start(sys.config(&url, "outage.redb", 0), key(&sys.anvil, 1));
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
    let node = start(sys.config(&sys.anvil.endpoint(), "reorg.redb", 2), key(&sys.anvil, 1));
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
    let bin = root().join("target/release/prover-node");
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
