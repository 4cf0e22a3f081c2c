//! Private requests against a real anvil: a node with a key ring registered on-chain (through the
//! `prover-node encryption-key` commands) fulfils a private request with nothing of its input or
//! salt on-chain; requests whose envelope does not open to their commitment (another input,
//! another salt, another key, copied by another requester) are refused with a labelled reason,
//! never answered, and refunded after the deadline; a request naming another prover is ignored.

use std::time::Duration;

use alloy::{
    primitives::{Address, Bytes, B256, U256},
    providers::{DynProvider, Provider},
    signers::local::PrivateKeySigner,
    sol_types::SolEvent,
};
use models::{
    commitment::{input_commitment, salt_from_bytes},
    envelope::{self, EnvelopeContext, KeyRing},
    quant::field_to_be_bytes,
};
use prover_node::{
    bindings::IInferenceCoordinator,
    chain,
    config::{
        ContractConfig, FeeConfig, MetricsConfig, ModelConfig, NodeConfig, PrivateConfig, ProverConfig, RpcConfig,
        SignerConfig, StoreConfig,
    },
    contracts::{self, Deployment},
    metrics::Failure,
    private::{seal_input, Audience},
    store::{JobState, Store},
};
use zkinfer_tests::{
    anvil, eventually, example_input, forge_out, node_bin, start_node, zoo_private, RunningNode, ZooModel,
};

const MINUTE: Duration = Duration::from_secs(60);
const FEE: u64 = 1000;
const DEADLINE_SECONDS: u64 = 3600;

alloy::sol!(
    #[sol(rpc)]
    interface IRecordingConsumer {
        function requestPrivate(
            uint256 listingId,
            bytes32 commitment,
            address prover,
            bytes calldata ciphertext,
            uint32 callbackGasLimit
        ) external payable returns (uint256);
        function calls() external view returns (uint256);
        function lastRequestId() external view returns (uint256);
        function lastOutput() external view returns (int256[] memory);
    }
);

fn model() -> &'static ZooModel {
    zoo_private("digits_mlp")
}

fn key(anvil: &alloy::node_bindings::AnvilInstance, i: usize) -> PrivateKeySigner {
    anvil.keys()[i].clone().into()
}

struct System {
    anvil: alloy::node_bindings::AnvilInstance,
    deployment: Deployment,
    /// The node's account (anvil key 1).
    node_key: PrivateKeySigner,
    /// A requester (anvil key 2).
    user: DynProvider,
    dir: tempfile::TempDir,
}

impl System {
    async fn new() -> Self {
        let anvil = anvil();
        let owner = chain::provider(&anvil.endpoint(), key(&anvil, 0)).unwrap();
        let user = chain::provider(&anvil.endpoint(), key(&anvil, 2)).unwrap();
        let sample = contracts::sample_calldata(&model().loaded).unwrap();
        let deployment = contracts::deploy_system(
            &owner,
            &forge_out(),
            &model().card_path,
            sample,
            U256::from(FEE),
            DEADLINE_SECONDS,
        )
        .await
        .unwrap();
        let node_key = key(&anvil, 1);
        Self { anvil, deployment, node_key, user, dir: tempfile::tempdir().unwrap() }
    }

    fn key_file(&self) -> std::path::PathBuf {
        self.dir.path().join("encryption-keys.json")
    }

    /// `prover-node encryption-key new`, then `register` signed by the node's account; returns
    /// the registered public key.
    async fn register_node_key(&self) -> B256 {
        let run = |args: &[&str]| {
            let out = std::process::Command::new(node_bin())
                .args(args)
                .current_dir(self.dir.path())
                .env("ZKINFER_PRIVATE_KEY", format!("0x{}", hex::encode(self.node_key.to_bytes())))
                .env_remove("ZKINFER_KEY_FILE")
                .env_remove("ZKINFER_COORDINATOR")
                .env_remove("ZKINFER_DEPLOYMENTS")
                .output()
                .unwrap_or_else(|e| {
                    panic!("{}: {e} (build it: cargo build --release -p prover-node)", node_bin().display())
                });
            let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            assert!(out.status.success(), "prover-node {args:?} failed:\n{text}");
            text
        };
        let key_file = self.key_file().display().to_string();
        let created = run(&["encryption-key", "new", "--key-file", &key_file]);
        assert!(created.contains("created"), "{created}");
        let coordinator = self.deployment.coordinator.to_string();
        let register = ["encryption-key", "register", "--key-file", &key_file, "--rpc-url", &self.anvil.endpoint()];
        let registered = run(&[&register[..], &["--coordinator", &coordinator]].concat());
        let public = B256::from(KeyRing::load(&self.key_file()).unwrap().current().public());
        assert!(registered.contains(&format!("encryption key  {public} registered")), "{registered}");
        // A second run finds it registered and sends nothing.
        let again = run(&[&register[..], &["--coordinator", &coordinator]].concat());
        assert!(again.contains("already registered") && again.contains("sent            nothing"), "{again}");
        assert_eq!(self.coordinator().encryptionKeyOf(self.node_key.address()).call().await.unwrap(), public);
        public
    }

    fn config(&self) -> NodeConfig {
        NodeConfig {
            rpc: RpcConfig { chain_id: Some(31337), poll_interval_ms: 100, ..RpcConfig::new(self.anvil.endpoint()) },
            contract: ContractConfig::at(self.deployment.coordinator),
            signer: SignerConfig::default(),
            models: vec![ModelConfig { card: model().card_path.clone(), srs: None, insecure_dev_srs: true }],
            prover: ProverConfig { confirmations: 0, concurrency: 1 },
            store: StoreConfig::new(self.dir.path().join("store.redb")),
            metrics: MetricsConfig { listen: "127.0.0.1:0".parse().unwrap(), ..MetricsConfig::default() },
            fees: FeeConfig::default(),
            private: PrivateConfig { key_file: Some(self.key_file()) },
        }
    }

    fn coordinator(&self) -> IInferenceCoordinator::IInferenceCoordinatorInstance<DynProvider> {
        IInferenceCoordinator::new(self.deployment.coordinator, self.user.clone())
    }

    fn audience(&self, requester: Address) -> Audience {
        Audience {
            chain_id: 31337,
            coordinator: self.deployment.coordinator,
            requester,
            model_id: self.deployment.model_id,
        }
    }

    /// `requestPrivateInference` sent by `from`; returns the request id and the transaction hash.
    async fn request_private(
        &self,
        from: &DynProvider,
        commitment: B256,
        prover: Address,
        encryption_key: B256,
        ciphertext: Bytes,
    ) -> (U256, B256) {
        let c = IInferenceCoordinator::new(self.deployment.coordinator, from.clone());
        let fee = U256::from(FEE);
        let call = c
            .requestPrivateInference(self.deployment.listing_id, commitment, prover, encryption_key, ciphertext, 0, fee)
            .value(fee);
        let receipt = chain::mined(call.send().await, "requestPrivateInference").await.unwrap();
        (chain::requested_id(&receipt).unwrap(), receipt.transaction_hash)
    }

    /// Waits until `id` is fulfilled and returns (fulfiller, output).
    async fn fulfilled(&self, id: U256) -> (Address, Vec<i64>) {
        let c = self.coordinator();
        eventually("fulfilment", MINUTE, || async {
            let r = c.getRequest(id).call().await.ok()?;
            if r.status != IInferenceCoordinator::RequestStatus::Fulfilled {
                return None;
            }
            let out = c.getResult(id).call().await.ok()?.output.iter().map(|v| i64::try_from(*v).unwrap()).collect();
            Some((r.fulfiller, out))
        })
        .await
    }

    async fn node_nonce(&self) -> u64 {
        self.user.get_transaction_count(self.node_key.address()).await.unwrap()
    }
}

/// Waits until `n` requests failed for `why`, as the node's `/metrics` says.
async fn refused(node: &RunningNode, why: Failure, n: u64) {
    let line = format!("zkinfer_requests_failed_by_reason_total{{reason=\"{}\"}} {n}\n", why.label());
    eventually(&format!("{n} refused as {}", why.label()), MINUTE, || async {
        node.metrics.render().contains(&line).then_some(())
    })
    .await;
}

/// A salt: 31 random bytes under a zero byte (below 2^248).
fn random_salt() -> B256 {
    B256::from(envelope::random_salt(&mut rand::rngs::OsRng))
}

/// `C = Poseidon(pack(input) ‖ salt)` for the model.
fn commitment_of(input: &[i64], salt: B256) -> B256 {
    let value_bits = model().card.quantization.value_bits;
    B256::from(field_to_be_bytes(&input_commitment(input, salt_from_bytes(&salt.0).unwrap(), value_bits)))
}

/// An envelope of `(salt, input)` sealed to `key` for `audience` and `commitment`.
fn seal(key: B256, audience: &Audience, commitment: B256, salt: B256, input: &[i64]) -> Bytes {
    let ctx: EnvelopeContext = audience.context(commitment);
    envelope::seal(&key.0, &ctx, &salt.0, input, &mut rand::rngs::OsRng).unwrap().into()
}

/// Another quantized input of the model (the example with its first values changed, in range).
fn other_input(input: &[i64]) -> Vec<i64> {
    let (min, max) = model().card.input_range;
    let mut other = input.to_vec();
    for v in other.iter_mut().take(8) {
        *v = if *v == max { min } else { max };
    }
    other
}

/// The 32-byte words that must not reach the chain: the packed input words (and the salt), those
/// distinctive enough to search for (at least 8 nonzero bytes).
fn secret_words(input: &[i64], salt: B256) -> Vec<[u8; 32]> {
    let packed = models::circuit::pack(input, model().card.quantization.value_bits);
    let words: Vec<[u8; 32]> = packed
        .iter()
        .map(field_to_be_bytes)
        .chain([salt.0])
        .filter(|w| w.iter().filter(|b| **b != 0).count() >= 8)
        .collect();
    assert!(words.len() >= 2, "the example input packs to distinctive words");
    words
}

fn contains(haystack: &[u8], needle: &[u8; 32]) -> bool {
    haystack.windows(32).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_private_request_is_fulfilled_with_no_trace_of_its_input_and_a_copied_envelope_is_refused() {
    let sys = System::new().await;
    let public_key = sys.register_node_key().await;
    let node_addr = sys.node_key.address();
    let node = start_node(sys.config(), sys.node_key.clone());

    // A consumer contract requests (it is the requester, and is called back).
    let owner = chain::provider(&sys.anvil.endpoint(), key(&sys.anvil, 0)).unwrap();
    let code = consumer_bytecode();
    let consumer_addr =
        contracts::deploy_with(&owner, code, &sys.deployment.coordinator.into_word().0, U256::ZERO).await.unwrap();
    let consumer = IRecordingConsumer::new(consumer_addr, sys.user.clone());
    let input = example_input(model());
    let sealed =
        seal_input(&model().card, &input, public_key, &sys.audience(consumer_addr), &mut rand::rngs::OsRng).unwrap();
    let call = consumer
        .requestPrivate(sys.deployment.listing_id, sealed.commitment, node_addr, sealed.ciphertext.clone(), 1_000_000)
        .value(U256::from(FEE));
    let receipt = chain::mined(call.send().await, "requestPrivate").await.unwrap();
    let id = chain::requested_id(&receipt).unwrap();

    let (fulfiller, output) = sys.fulfilled(id).await;
    assert_eq!(fulfiller, node_addr);
    let expected = model().loaded.model.forward(&input).unwrap();
    assert_eq!(output, expected, "the output is the model's on the plaintext input");
    assert!(sys.coordinator().getRequest(id).call().await.unwrap().callbackSucceeded, "the callback ran");
    assert_eq!(consumer.calls().call().await.unwrap(), U256::from(1), "called back once");
    assert_eq!(consumer.lastRequestId().call().await.unwrap(), id);
    let called_back: Vec<i64> =
        consumer.lastOutput().call().await.unwrap().iter().map(|v| i64::try_from(*v).unwrap()).collect();
    assert_eq!(called_back, expected);
    assert_eq!(sys.coordinator().withdrawable(node_addr).call().await.unwrap(), U256::from(FEE));

    // Every byte that reached the chain: no transaction's calldata and no log carries the packed
    // input words or the salt (only the commitment and the envelope).
    let secrets = secret_words(&input, sealed.salt);
    let head = sys.user.get_block_number().await.unwrap();
    let mut txs = 0;
    for n in 0..=head {
        let block = sys.user.get_block_by_number(n.into()).full().await.unwrap().unwrap();
        for tx in block.transactions.txns() {
            let data = alloy::consensus::Transaction::input(tx);
            txs += 1;
            for w in &secrets {
                assert!(
                    !contains(data, w),
                    "block {n}: a transaction's calldata carries input word {}",
                    B256::from(*w)
                );
            }
        }
    }
    assert!(txs >= 3, "the request and its fulfilment were looked at");
    let logs = sys.user.get_logs(&alloy::rpc::types::Filter::new().from_block(0)).await.unwrap();
    for log in &logs {
        let bytes = [log.topics().iter().flat_map(|t| t.0).collect::<Vec<u8>>(), log.data().data.to_vec()].concat();
        for w in &secrets {
            assert!(!contains(&bytes, w), "a log carries input word {}", B256::from(*w));
        }
    }
    let event = logs
        .iter()
        .find_map(|l| l.log_decode::<IInferenceCoordinator::PrivateInferenceRequested>().ok())
        .expect("the private request's event");
    assert_eq!((event.inner.commitment, &event.inner.ciphertext), (sealed.commitment, &sealed.ciphertext));
    assert!(logs.iter().all(|l| l.topic0() != Some(&IInferenceCoordinator::InferenceRequested::SIGNATURE_HASH)));

    // Another requester copies the commitment and the envelope into a request of its own: the
    // envelope is bound to the consumer, it does not open, and the node answers nothing.
    let nonce = sys.node_nonce().await;
    let thief = chain::provider(&sys.anvil.endpoint(), key(&sys.anvil, 4)).unwrap();
    let (copied, _) =
        sys.request_private(&thief, sealed.commitment, node_addr, public_key, sealed.ciphertext.clone()).await;
    refused(&node, Failure::Undecryptable, 1).await;
    assert_eq!(
        sys.coordinator().getRequest(copied).call().await.unwrap().status,
        IInferenceCoordinator::RequestStatus::Pending
    );
    assert_eq!(sys.node_nonce().await, nonce, "nothing sent for the copy");
    node.stop().await;
    let store = Store::open(&sys.dir.path().join("store.redb"), false).unwrap();
    let job = store.get(copied).unwrap().unwrap();
    let JobState::Failed { reason } = &job.state else { panic!("{:?}", job.state) };
    assert!(reason.starts_with("the envelope does not open"), "{reason}");
    assert!(job.input.is_empty(), "nothing opened, nothing stored");
    // The fulfilled request's plaintext is gone from the store; what identifies it stays.
    let done = store.get(id).unwrap().unwrap();
    assert!(matches!(done.state, JobState::Fulfilled { .. }), "{:?}", done.state);
    assert!(done.input.is_empty(), "a finished private job keeps no plaintext input");
    let private = done.private.expect("a private job");
    assert_eq!((private.salt, private.commitment), (None, sealed.commitment), "salt erased, commitment kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refused_private_requests_are_never_answered_and_refunded_and_another_provers_are_ignored() {
    let sys = System::new().await;
    let ours = sys.register_node_key().await;
    let node_addr = sys.node_key.address();
    // Another prover with its own registered key.
    let other = chain::provider(&sys.anvil.endpoint(), key(&sys.anvil, 3)).unwrap();
    let other_addr = key(&sys.anvil, 3).address();
    let theirs = B256::from(KeyRing::generate(&mut rand::rngs::OsRng).current().public());
    let c_other = IInferenceCoordinator::new(sys.deployment.coordinator, other.clone());
    chain::mined(c_other.setEncryptionKey(theirs).send().await, "setEncryptionKey").await.unwrap();
    let node = start_node(sys.config(), sys.node_key.clone());
    let nonce = sys.node_nonce().await;

    let user_addr = key(&sys.anvil, 2).address();
    let audience = sys.audience(user_addr);
    let a = example_input(model());
    let b = other_input(&a);
    let (s1, s2) = (random_salt(), random_salt());
    // The ciphertext of input A under the commitment of input B.
    let c_b = commitment_of(&b, s1);
    let (other_input_id, _) =
        sys.request_private(&sys.user, c_b, node_addr, ours, seal(ours, &audience, c_b, s1, &a)).await;
    // Input A with another salt than its commitment's.
    let c_a = commitment_of(&a, s1);
    let (other_salt_id, _) =
        sys.request_private(&sys.user, c_a, node_addr, ours, seal(ours, &audience, c_a, s2, &a)).await;
    // Named to this node but sealed to the other prover's key.
    let (other_key_id, _) =
        sys.request_private(&sys.user, c_a, node_addr, ours, seal(theirs, &audience, c_a, s1, &a)).await;
    // Named to the other prover (and sealed to its key): not this node's business.
    let (theirs_id, _) =
        sys.request_private(&sys.user, c_a, other_addr, theirs, seal(theirs, &audience, c_a, s1, &a)).await;
    // And a good one after them all: once it is fulfilled, the node has read the others.
    let (good, _) = sys.request_private(&sys.user, c_a, node_addr, ours, seal(ours, &audience, c_a, s1, &a)).await;
    let (fulfiller, output) = sys.fulfilled(good).await;
    assert_eq!((fulfiller, output), (node_addr, model().loaded.model.forward(&a).unwrap()));

    refused(&node, Failure::CommitmentMismatch, 2).await;
    refused(&node, Failure::Undecryptable, 1).await;
    assert_eq!(sys.node_nonce().await, nonce + 1, "one transaction: the good request's fulfilment");
    assert_eq!(node.metrics.log_gaps.load(std::sync::atomic::Ordering::Relaxed), 0);
    node.stop().await;

    let store = Store::open(&sys.dir.path().join("store.redb"), false).unwrap();
    for (id, expected) in [
        (other_input_id, "is not the request's"),
        (other_salt_id, "is not the request's"),
        (other_key_id, "the envelope does not open"),
    ] {
        let job = store.get(id).unwrap().unwrap();
        let JobState::Failed { reason } = &job.state else { panic!("request {id}: {:?}", job.state) };
        assert!(reason.contains(expected), "request {id}: {reason}");
    }
    assert!(store.get(theirs_id).unwrap().is_none(), "another prover's request is ignored");

    // The requester cancels after the deadline and gets the fee back.
    let _: serde_json::Value = sys.user.raw_request("evm_increaseTime".into(), (DEADLINE_SECONDS + 1,)).await.unwrap();
    let _: serde_json::Value = sys.user.raw_request("evm_mine".into(), ()).await.unwrap();
    let c = sys.coordinator();
    for id in [other_input_id, other_salt_id, other_key_id] {
        let before = c.withdrawable(user_addr).call().await.unwrap();
        let receipt = chain::mined(c.cancelRequest(id).send().await, "cancelRequest").await.unwrap();
        let refund = receipt
            .inner
            .logs()
            .iter()
            .find_map(|l| l.log_decode::<IInferenceCoordinator::RequestCancelled>().ok())
            .expect("RequestCancelled")
            .inner
            .data
            .refund;
        assert_eq!(refund, U256::from(FEE));
        assert_eq!(c.withdrawable(user_addr).call().await.unwrap(), before + U256::from(FEE), "refunded in full");
        assert_eq!(c.getRequest(id).call().await.unwrap().status, IInferenceCoordinator::RequestStatus::Cancelled);
    }
}

/// Creation code of the forge test consumer `RecordingConsumer` (contracts/test/mocks/Consumers.sol).
fn consumer_bytecode() -> Vec<u8> {
    let path = forge_out().join("Consumers.sol/RecordingConsumer.json");
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    hex::decode(json["bytecode"]["object"].as_str().unwrap().trim_start_matches("0x")).unwrap()
}
