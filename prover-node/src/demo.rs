//! The one-command demo: a whole zkinfer system on an embedded anvil.
//!
//! anvil → coordinator + generated verifier → model registered → prover node started →
//! a `DigitBounty` consumer submits a real handwritten digit → the node proves and fulfils →
//! the coordinator verifies on-chain and calls the consumer back. `--private` runs the same with a
//! committed-input model and a private request ([`private`]).

pub mod private;

use std::{
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use alloy::{
    node_bindings::{Anvil, AnvilInstance},
    primitives::{Address, U256},
    providers::{DynProvider, Provider},
    rpc::types::Filter,
    signers::local::PrivateKeySigner,
    sol_types::SolEvent,
};
use models::card::ModelCard;

use crate::{
    bindings::{IDigitBounty, IInferenceCoordinator},
    chain,
    config::{
        ContractConfig, FeeConfig, MetricsConfig, ModelConfig, NodeConfig, PrivateConfig, ProverConfig, RpcConfig,
        SignerConfig, StoreConfig,
    },
    contracts,
    error::{Error, Result},
    metrics::Metrics,
    proof::InputFile,
};

/// Demo options.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    /// The anvil binary.
    pub anvil: PathBuf,
    /// Model card (set up beforehand).
    pub card: PathBuf,
    /// forge's `out/` directory.
    pub forge_out: PathBuf,
    /// The digit image: `{"input": [64 floats], "label": d}`.
    pub input: PathBuf,
    /// Working directory for the node's store.
    pub work_dir: PathBuf,
    /// Extra requests to measure throughput and latency with (0: none).
    pub load_requests: usize,
    /// The SRS file the card's keys were made with (`None`: the card's insecure dev SRS).
    pub srs: Option<PathBuf>,
}

/// Throughput and latency of a burst of requests.
#[derive(Clone, Debug)]
pub struct LoadReport {
    /// Requests sent.
    pub requests: usize,
    /// Requests fulfilled per minute, from the first request to the last fulfilment.
    pub per_minute: f64,
    /// Median request-to-fulfilment latency.
    pub p50: Duration,
    /// 95th percentile latency.
    pub p95: Duration,
}

/// What the demo observed.
#[derive(Clone, Debug)]
pub struct DemoReport {
    /// Request id.
    pub request_id: U256,
    /// Label of the submitted image.
    pub label: Option<u64>,
    /// Digit recognised by the verified model (from the callback).
    pub predicted: u64,
    /// Verified output logits (quantized).
    pub output: Vec<i64>,
    /// Output scale bits.
    pub output_scale_bits: u32,
    /// Whether the consumer's callback succeeded.
    pub callback_succeeded: bool,
    /// Whether the bounty was paid.
    pub bounty_paid: bool,
    /// Gas of the request transaction.
    pub request_gas: u64,
    /// Gas of the fulfilment (verification + callback) transaction.
    pub fulfil_gas: u64,
    /// Request-to-callback latency.
    pub latency: Duration,
    /// Coordinator address.
    pub coordinator: Address,
    /// The burst measurement, if requested.
    pub load: Option<LoadReport>,
}

/// The demo's chain: anvil with the coordinator, the model's verifier, its registration and a
/// listing, and the accounts of the model owner, the prover node and a user (anvil's keys 0, 1, 2).
pub(crate) struct System {
    /// The anvil process (stopped on drop).
    pub chain: AnvilInstance,
    /// The model owner's provider (deployed everything).
    pub owner_p: DynProvider,
    /// The prover node's account.
    pub prover: PrivateKeySigner,
    /// The user's account and provider.
    pub user: PrivateKeySigner,
    /// The user's provider.
    pub user_p: DynProvider,
    /// What was deployed.
    pub d: contracts::Deployment,
}

/// Starts anvil, deploys the coordinator and the card's verifier, registers the model (with a sample
/// proof made here) and lists it.
pub(crate) async fn deploy_system(opts: &DemoOptions, progress: &impl Fn(&str)) -> Result<System> {
    progress("starting anvil (prague, instant mining)");
    let chain = Anvil::new()
        .path(&opts.anvil)
        .args(["--hardfork", "prague"])
        .try_spawn()
        .map_err(|e| Error::Rpc(format!("starting anvil {}: {e}", opts.anvil.display())))?;
    let key = |i: usize| -> PrivateKeySigner { chain.keys()[i].clone().into() };
    let (owner, prover, user) = (key(0), key(1), key(2));
    let owner_p = chain::provider(&chain.endpoint(), owner)?;
    let user_p = chain::provider(&chain.endpoint(), user.clone())?;

    progress("deploying the coordinator and the generated verifier, registering the model");
    let fee = U256::from(10u64).pow(U256::from(15)); // 0.001 ETH
                                                     // registerModel measures the verifier on a valid proof: make one (bound to no request).
    let sample = {
        let card_path = opts.card.clone();
        let srs_file = opts.srs.clone();
        tokio::task::spawn_blocking(move || {
            let card = ModelCard::load(&card_path)?;
            let srs = crate::setup::card_srs(&card, srs_file.as_deref())?;
            let step =
                crate::progress::Step::start(format!("proving a sample for registerModel (k = {})", card.circuit.k));
            let sample = contracts::sample_calldata(&crate::prove::load(&card_path, &srs)?)?;
            step.finish();
            Ok::<_, Error>(sample)
        })
        .await
        .map_err(|e| Error::Invalid(e.to_string()))??
    };
    let d = contracts::deploy_system(&owner_p, &opts.forge_out, &opts.card, sample, fee, 3600).await?;
    progress(&format!(
        "  coordinator {}  verifier {}  model id {}  listing {}",
        d.coordinator, d.verifier, d.model_id, d.listing_id
    ));
    Ok(System { chain, owner_p, prover, user, user_p, d })
}

/// A prover node serving the card's model on `sys`, started and past its first pass over the chain.
pub(crate) struct RunningNode {
    task: tokio::task::JoinHandle<Result<()>>,
    stop: tokio::sync::watch::Sender<bool>,
}

impl RunningNode {
    /// Starts the node (its store in `opts.work_dir`, emptied first), with the key ring `key_file` for
    /// private requests.
    pub(crate) async fn start(opts: &DemoOptions, sys: &System, key_file: Option<PathBuf>) -> Result<Self> {
        let cfg = NodeConfig {
            rpc: RpcConfig {
                ws_url: Some(sys.chain.ws_endpoint()),
                chain_id: Some(sys.chain.chain_id()),
                poll_interval_ms: 100,
                ..RpcConfig::new(sys.chain.endpoint())
            },
            contract: ContractConfig::at(sys.d.coordinator),
            signer: SignerConfig::default(),
            models: vec![ModelConfig {
                card: opts.card.clone(),
                srs: opts.srs.clone(),
                insecure_dev_srs: opts.srs.is_none(),
            }],
            prover: ProverConfig { confirmations: 0, concurrency: 1 },
            store: StoreConfig::new(opts.work_dir.join("store.redb")),
            metrics: MetricsConfig { listen: "127.0.0.1:0".parse().expect("valid"), ..MetricsConfig::default() },
            fees: FeeConfig::default(),
            private: PrivateConfig { key_file },
        };
        let _ = std::fs::remove_file(&cfg.store.path);
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let metrics = Arc::new(Metrics::default());
        let task = tokio::spawn(crate::service::serve(cfg, Some(sys.prover.clone()), metrics.clone(), stop_rx));
        // Wait until the node has loaded its keys and completed a first pass over the chain.
        let ready = Instant::now();
        while !metrics.started.load(std::sync::atomic::Ordering::Relaxed) {
            if task.is_finished() || ready.elapsed() > Duration::from_secs(120) {
                return Err(Error::Invalid("the prover node did not start".into()));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(Self { task, stop })
    }

    /// Stops the node and waits for it.
    pub(crate) async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Runs the demo. `progress` receives one line per step.
pub async fn run(opts: &DemoOptions, progress: impl Fn(&str)) -> Result<DemoReport> {
    let card = ModelCard::load(&opts.card)?;
    let sys = deploy_system(opts, &progress).await?;
    let (d, owner_p, user, user_p) = (&sys.d, &sys.owner_p, &sys.user, &sys.user_p);

    let input_file = InputFile::load(&opts.input)?;
    let label = input_file.label;
    let target = label.unwrap_or(0) as u8;
    progress(&format!("deploying DigitBounty (1 ETH bounty for a {target})"));
    let bounty_code = contracts::forge_bytecode(&opts.forge_out, "DigitBounty")?;
    let args = contracts::bounty_args(d.coordinator, d.listing_id, target, COMMIT_SECONDS, 3600);
    let bounty = contracts::deploy_with(owner_p, bounty_code, &args, U256::from(10u64).pow(U256::from(18))).await?;

    progress("starting the prover node");
    let node = RunningNode::start(opts, &sys, None).await?;
    let model = {
        let card_path = opts.card.clone();
        tokio::task::spawn_blocking(move || ModelCard::load(&card_path).and_then(|c| c.load_model(&card_path)))
            .await
            .map_err(|e| Error::Invalid(e.to_string()))??
    };
    let pixels = input_file.quantized(&model)?;
    progress(&format!(
        "submitting a handwritten {} from the consumer (8x8 pixels, 0..16)",
        label.map(|l| l.to_string()).unwrap_or("digit".into())
    ));
    let c = IInferenceCoordinator::new(d.coordinator, user_p.clone());
    let b = IDigitBounty::new(bounty, user_p.clone());
    // Commit to the image (hidden behind a salt) in the commit phase, reveal it once the phase is over:
    // no copycat can commit to it after seeing it.
    let now_nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let salt = alloy::primitives::keccak256(now_nanos.as_nanos().to_be_bytes());
    let rpc = |e: alloy::contract::Error| Error::Rpc(e.to_string());
    let commitment = b.commitmentOf(user.address(), chain::int256s(&pixels), salt).call().await.map_err(rpc)?;
    chain::mined(b.commit(commitment).send().await, "DigitBounty.commit").await?;
    let commit_deadline = b.commitDeadline().call().await.map_err(rpc)?;
    progress(&format!("committed to the image; revealing it after the commit phase ({COMMIT_SECONDS} s)"));
    wait_for_timestamp_after(user_p, commit_deadline).await?;
    let quote = c.quote(d.listing_id, 100_000).call().await.map_err(rpc)?;
    let started = Instant::now();
    let receipt =
        chain::mined(b.reveal(chain::int256s(&pixels), salt).value(quote).send().await, "DigitBounty.reveal").await?;
    let request_gas = receipt.gas_used;
    let request_id = chain::requested_id(&receipt)?;
    progress(&format!("request {request_id} mined (gas {request_gas}); the node is proving..."));

    let filter = Filter::new().address(bounty).event_signature(IDigitBounty::Classified::SIGNATURE_HASH).from_block(0);
    let (classified, latency) = loop {
        let logs = user_p.get_logs(&filter).await.map_err(|e| Error::Rpc(e.to_string()))?;
        if let Some(log) = logs.into_iter().find_map(|l| l.log_decode::<IDigitBounty::Classified>().ok()) {
            break (log, started.elapsed());
        }
        if started.elapsed() > Duration::from_secs(180) {
            return Err(Error::Invalid("no callback within 180 s".into()));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let fulfil_gas = match classified.transaction_hash {
        Some(h) => user_p
            .get_transaction_receipt(h)
            .await
            .map_err(|e| Error::Rpc(e.to_string()))?
            .map(|r| r.gas_used)
            .unwrap_or(0),
        None => 0,
    };
    let result = c.getResult(request_id).call().await.map_err(|e| Error::Rpc(e.to_string()))?;
    let output: Vec<i64> = result.output.iter().map(|v| i64::try_from(*v).unwrap_or(0)).collect();
    let paid = !b.bounty().call().await.map_err(|e| Error::Rpc(e.to_string()))?.is_zero();
    let load = if opts.load_requests > 0 {
        progress(&format!("sending {} more requests to measure throughput and latency", opts.load_requests));
        Some(load(&c, d.listing_id, &pixels, opts.load_requests).await?)
    } else {
        None
    };
    node.stop().await;
    Ok(DemoReport {
        request_id,
        label,
        predicted: classified.inner.data.digit.to(),
        output,
        output_scale_bits: card.output_scale_bits,
        callback_succeeded: result.callbackSucceeded,
        bounty_paid: !paid,
        request_gas,
        fulfil_gas,
        latency,
        coordinator: d.coordinator,
        load,
    })
}

/// Length of the DigitBounty's commit phase in the demo.
const COMMIT_SECONDS: u64 = 3;

/// Waits until the next block's timestamp will be above `deadline` (anvil stamps a block with the
/// wall clock, or one second after its parent if that is later).
async fn wait_for_timestamp_after(provider: &alloy::providers::DynProvider, deadline: u64) -> Result<()> {
    loop {
        let latest = provider
            .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
            .await
            .map_err(|e| Error::Rpc(e.to_string()))?
            .map(|b| b.header.timestamp)
            .unwrap_or_default();
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs();
        if (latest + 1).max(now) > deadline {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Sends `n` requests back to back (each mined at once) and times each until it is fulfilled.
async fn load(
    c: &IInferenceCoordinator::IInferenceCoordinatorInstance<alloy::providers::DynProvider>,
    listing_id: U256,
    input: &[i64],
    n: usize,
) -> Result<LoadReport> {
    let fee = c.quote(listing_id, 0).call().await.map_err(|e| Error::Rpc(e.to_string()))?;
    let input = chain::int256s(input);
    let started = Instant::now();
    let mut pending = Vec::with_capacity(n);
    for _ in 0..n {
        let receipt = chain::mined(
            c.requestInference(listing_id, input.clone(), 0, fee).value(fee).send().await,
            "requestInference",
        )
        .await?;
        let id = chain::requested_id(&receipt)?;
        pending.push((id, Instant::now()));
    }
    let mut latencies = Vec::with_capacity(n);
    while !pending.is_empty() {
        if started.elapsed() > Duration::from_secs(60 + 10 * n as u64) {
            return Err(Error::Invalid(format!("{} requests still unfulfilled", pending.len())));
        }
        let mut still = Vec::with_capacity(pending.len());
        for (id, sent) in pending {
            let r = c.getRequest(id).call().await.map_err(|e| Error::Rpc(e.to_string()))?;
            if r.status as u8 == 2 {
                latencies.push(sent.elapsed());
            } else {
                still.push((id, sent));
            }
        }
        pending = still;
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let total = started.elapsed();
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 - 1.0) * p).round() as usize];
    Ok(LoadReport { requests: n, per_minute: n as f64 / total.as_secs_f64() * 60.0, p50: pct(0.5), p95: pct(0.95) })
}
