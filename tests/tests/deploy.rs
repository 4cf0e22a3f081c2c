//! `prover-node deploy-coordinator`, `deploy-verifier` and `list-model` against real anvils, as a
//! model owner runs them: a zoo model listed on a fresh chain and served by a node that reads the
//! deployments file; a second run that sends nothing, and the forge scripts agreeing on addresses
//! and on the file; the dev-SRS verifier refused on another chain; and a chain started from
//! another anvil's dumped state (a stand-in for an existing network) where the CLI finds the
//! coordinator and the model already there and adds a listing, signing with a keystore.

use std::{path::Path, sync::Arc, time::Duration};

use alloy::{
    node_bindings::{Anvil, AnvilInstance},
    primitives::{Address, B256, U256},
    providers::{DynProvider, Provider},
    signers::local::PrivateKeySigner,
};
use prover_node::{
    bindings::IInferenceCoordinator,
    chain,
    config::{ContractConfig, MetricsConfig, ModelConfig, NodeConfig, RpcConfig, SignerConfig, StoreConfig},
    contracts, deploy,
    deployments::Deployments,
    metrics::Metrics,
};
use zkinfer_tests::{anvil, anvil_bin, eventually, example_input, forge_out, node_bin, root, zoo, ZooModel};

const MINUTE: Duration = Duration::from_secs(60);

fn key(anvil: &AnvilInstance, i: usize) -> PrivateKeySigner {
    anvil.keys()[i].clone().into()
}

fn hex_key(signer: &PrivateKeySigner) -> String {
    format!("0x{}", alloy::hex::encode(signer.to_bytes()))
}

/// What a run of the CLI printed.
struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Run {
    fn assert_ok(&self, what: &str) -> &Self {
        assert!(self.ok, "{what} failed:\n{}\n{}", self.stdout, self.stderr);
        self
    }

    fn says(&self, text: &str) -> bool {
        self.stdout.contains(text)
    }
}

/// Runs `prover-node <args>` against `rpc` with only the environment given (no inherited
/// `ZKINFER_*` variable).
async fn cli(rpc: &str, args: &[&str], env: &[(&str, &str)]) -> Run {
    let bin = node_bin();
    assert!(bin.exists(), "build the node first: cargo build --release -p prover-node");
    let mut cmd = tokio::process::Command::new(&bin);
    cmd.args(args).args(["--rpc-url", rpc]).current_dir(root()).env("NO_COLOR", "1").env("RUST_LOG", "warn");
    for var in [
        "ZKINFER_PRIVATE_KEY",
        "ZKINFER_KEYSTORE_PASSWORD",
        "ZKINFER_DEPLOYMENTS",
        "ZKINFER_COORDINATOR",
        "ZKINFER_RPC_URL",
        "ZKINFER_SALT",
    ] {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied());
    let out = tokio::time::timeout(MINUTE, cmd.output()).await.expect("the CLI did not finish").unwrap();
    Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

async fn nonce(p: &DynProvider, who: Address) -> u64 {
    p.get_transaction_count(who).await.unwrap()
}

fn card_id(m: &ZooModel) -> B256 {
    m.card.model_id.parse().unwrap()
}

/// The coordinator's CREATE2 address, computed from forge's creation code and the default salt.
fn predicted_coordinator() -> Address {
    let init = contracts::forge_bytecode(&forge_out(), "InferenceCoordinator").unwrap();
    deploy::create2_address(deploy::default_coordinator_salt(), &init)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_cli_lists_a_zoo_model_and_a_node_serves_it_from_the_deployments_file() {
    let anvil = anvil();
    let rpc = anvil.endpoint();
    let owner_key = hex_key(&key(&anvil, 0));
    let signer = [("ZKINFER_PRIVATE_KEY", owner_key.as_str())];
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("deployments/31337.json");
    let deployments = ["--deployments", path_str(&file)];
    let mlp = zoo("digits_mlp");

    let forge_out = forge_out();
    let run =
        cli(&rpc, &[&["deploy-coordinator", "--forge-out", path_str(&forge_out)][..], &deployments].concat(), &signer)
            .await;
    run.assert_ok("deploy-coordinator");
    // Simulated first, with its gas and cost.
    assert!(
        run.says("deploy InferenceCoordinator: simulated: ") && run.says(" gas, about ") && run.says(" ETH at "),
        "{}",
        run.stdout
    );
    assert!(run.says("sent            1 transaction"), "{}", run.stdout);
    let recorded = Deployments::load(&file).unwrap();
    assert_eq!((recorded.chain_id, recorded.coordinator), (31337, predicted_coordinator()));
    assert_eq!(recorded.salt, deploy::default_coordinator_salt());

    let run = cli(
        &rpc,
        &[
            &["list-model", "--card", path_str(&mlp.card_path), "--fee", "1000", "--deadline-seconds", "600"][..],
            &deployments,
        ]
        .concat(),
        &signer,
    )
    .await;
    run.assert_ok("list-model");
    for step in [
        "deploy DigitsMlpVerifier: simulated",
        "registerModel digits_mlp: simulated",
        "createListing digits_mlp: simulated",
    ] {
        assert!(run.says(step), "{step:?} missing from:\n{}", run.stdout);
    }
    assert!(run.says("sent            3 transactions"), "{}", run.stdout);

    let recorded = Deployments::load(&file).unwrap();
    let model = &recorded.models["digits_mlp"];
    assert_eq!((model.model_id, model.dev_srs), (card_id(mlp), true));
    let listing = &recorded.listings[&1];
    assert_eq!((listing.model.as_str(), listing.fee, listing.deadline_seconds), ("digits_mlp", U256::from(1000), 600));
    assert_eq!(listing.owner, key(&anvil, 0).address());
    // The file says what the chain says.
    let user = chain::provider(&rpc, key(&anvil, 2)).unwrap();
    let c = IInferenceCoordinator::new(recorded.coordinator, user.clone());
    let on_chain = c.getModel(model.model_id).call().await.unwrap();
    assert_eq!((on_chain.verifier, on_chain.verifyGas), (model.verifier, model.verify_gas));
    let on_chain = c.getListing(U256::from(1)).call().await.unwrap();
    assert_eq!((on_chain.modelId, on_chain.owner, on_chain.deadlineSeconds), (model.model_id, listing.owner, 600));

    // A node configured with the deployments file only (no coordinator address, no chain id).
    let node_key = key(&anvil, 1);
    let cfg = NodeConfig {
        rpc: RpcConfig { poll_interval_ms: 100, ..RpcConfig::new(rpc.clone()) },
        contract: ContractConfig::from_deployments(&file),
        signer: SignerConfig::default(),
        models: vec![ModelConfig { card: mlp.card_path.clone(), srs: None, insecure_dev_srs: true }],
        prover: Default::default(),
        store: StoreConfig::new(dir.path().join("store.redb")),
        metrics: MetricsConfig { listen: "127.0.0.1:0".parse().unwrap(), ..MetricsConfig::default() },
        fees: Default::default(),
        private: Default::default(),
    };
    let (stop, rx) = tokio::sync::watch::channel(false);
    let node = tokio::spawn(prover_node::service::serve(cfg, Some(node_key.clone()), Arc::new(Metrics::default()), rx));
    let input = example_input(mlp);
    let fee = U256::from(1000);
    let call = c.requestInference(U256::from(listing.listing_id), chain::int256s(&input), 0, fee).value(fee);
    let id = chain::requested_id(&chain::mined(call.send().await, "requestInference").await.unwrap()).unwrap();
    let (fulfiller, output) = eventually("fulfilment", MINUTE, || async {
        let r = c.getRequest(id).call().await.ok()?;
        if r.status != IInferenceCoordinator::RequestStatus::Fulfilled {
            return None;
        }
        let out: Vec<i64> =
            c.getResult(id).call().await.ok()?.output.iter().map(|v| i64::try_from(*v).unwrap()).collect();
        Some((r.fulfiller, out))
    })
    .await;
    assert_eq!(fulfiller, node_key.address());
    assert_eq!(output, mlp.loaded.model.forward(&input).unwrap());
    let _ = stop.send(true);
    node.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_second_run_sends_nothing_and_the_forge_scripts_share_addresses_and_file() {
    let anvil = anvil();
    let rpc = anvil.endpoint();
    let owner = key(&anvil, 0);
    let owner_key = hex_key(&owner);
    let signer = [("ZKINFER_PRIVATE_KEY", owner_key.as_str())];
    let provider = chain::provider(&rpc, owner.clone()).unwrap();
    // forge writes only under build/ and deployments/ (foundry.toml fs_permissions).
    std::fs::create_dir_all(root().join("build")).unwrap();
    let dir = tempfile::Builder::new().prefix("deploy-test-").tempdir_in(root().join("build")).unwrap();
    let file = dir.path().join("31337.json");
    let deployments = ["--deployments", path_str(&file)];
    let forge_env = [("PRIVATE_KEY", owner_key.as_str()), ("ZKINFER_DEPLOYMENTS", path_str(&file))];

    // The forge script deploys the coordinator and starts the file; the CLI finds both.
    forge(&rpc, "DeployCoordinator.s.sol", &forge_env).await;
    assert_eq!(Deployments::load(&file).unwrap().coordinator, predicted_coordinator(), "forge's CREATE2 address");
    let sent = nonce(&provider, owner.address()).await;
    let forge_out = forge_out();
    let coordinator = [&["deploy-coordinator", "--forge-out", path_str(&forge_out)][..], &deployments].concat();
    let run = cli(&rpc, &coordinator, &signer).await;
    run.assert_ok("deploy-coordinator after forge");
    assert!(run.says(&format!("coordinator already deployed at {}", predicted_coordinator())), "{}", run.stdout);
    assert!(run.says("sent            nothing"), "{}", run.stdout);
    assert_eq!(nonce(&provider, owner.address()).await, sent);

    // The CLI lists into forge's file.
    let mlp = zoo("digits_mlp");
    let list = |fee: &'static str| {
        [&["list-model", "--card", path_str(&mlp.card_path), "--fee", fee][..], &deployments].concat()
    };
    // A sample proof of another model: the registration is simulated (the verifier's code put in
    // place) before the verifier is deployed, so the command stops with nothing sent.
    let before = nonce(&provider, owner.address()).await;
    let wrong = root().join("contracts/test/fixtures/digits_cnn.json");
    let run = cli(&rpc, &[&list("1000")[..], &["--sample", path_str(&wrong)]].concat(), &signer).await;
    assert!(!run.ok, "another model's sample was accepted:\n{}", run.stdout);
    assert!(run.stderr.contains("registerModel digits_mlp would revert"), "{}", run.stderr);
    assert_eq!(nonce(&provider, owner.address()).await, before, "a refused registration sent a transaction");

    // A fulfilment window outside the coordinator's bounds, on a model not registered yet: refused
    // before the verifier is deployed or the model registered (createListing, the last step, would
    // revert), with the bounds read from the coordinator.
    let before_file = std::fs::read_to_string(&file).unwrap();
    let run = cli(&rpc, &[&list("1000")[..], &["--deadline-seconds", "1"]].concat(), &signer).await;
    assert!(!run.ok, "a 1 s fulfilment window was accepted:\n{}", run.stdout);
    assert!(
        run.stderr.contains("--deadline-seconds 1 is outside the coordinator's bounds [600, 31536000]")
            && run.stderr.contains("this run sent no transaction"),
        "{}",
        run.stderr
    );
    assert_eq!(nonce(&provider, owner.address()).await, before, "a refused window sent a transaction");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), before_file);

    let run = cli(&rpc, &list("1000"), &signer).await;
    run.assert_ok("list-model");
    // The registration is recorded once its receipt is in, before the listing is sent.
    let registered = run.stdout.find("registerModel digits_mlp: mined").expect("registration mined");
    let recorded = run.stdout[registered..].find("updated").map(|i| i + registered).expect("file updated");
    let listing = run.stdout.find("createListing digits_mlp: simulated").expect("listing simulated");
    assert!(recorded < listing, "the model was recorded only after the listing:\n{}", run.stdout);
    let after_list = std::fs::read_to_string(&file).unwrap();
    let sent = nonce(&provider, owner.address()).await;

    // Again: nothing sent, the file unchanged, each step says why.
    let run = cli(&rpc, &list("1000"), &signer).await;
    run.assert_ok("list-model again");
    assert!(
        run.says("digits_mlp already registered") && run.says("listing 1 already lists digits_mlp"),
        "{}",
        run.stdout
    );
    assert!(run.says("sent            nothing"), "{}", run.stdout);
    let run =
        cli(&rpc, &[&["deploy-verifier", "--card", path_str(&mlp.card_path)][..], &deployments].concat(), &signer)
            .await;
    run.assert_ok("deploy-verifier");
    assert!(run.says("DigitsMlpVerifier already deployed at"), "{}", run.stdout);
    cli(&rpc, &coordinator, &signer).await.assert_ok("deploy-coordinator again");
    assert_eq!(nonce(&provider, owner.address()).await, sent, "a second run sent a transaction");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), after_list, "a second run changed the file");

    // A dry run of other terms simulates the new listing and neither sends nor writes.
    let run = cli(&rpc, &[&list("7")[..], &["--dry-run"]].concat(), &signer).await;
    run.assert_ok("list-model --dry-run");
    assert!(run.says("createListing digits_mlp: simulated: "), "{}", run.stdout);
    assert_eq!(nonce(&provider, owner.address()).await, sent);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), after_list);

    // A window outside the bounds is refused before any simulation.
    let short = [&list("7")[..], &["--deadline-seconds", "5"]].concat();
    let run = cli(&rpc, &short, &signer).await;
    assert!(!run.ok, "a 5 s fulfilment window was listed:\n{}", run.stdout);
    assert!(run.stderr.contains("--deadline-seconds 5 is outside the coordinator's bounds"), "{}", run.stderr);
    assert_eq!(nonce(&provider, owner.address()).await, sent);

    // forge's ListModel reads the CLI's file, finds the model and adds listing 2; the CLI then
    // finds that listing on the same terms and sends nothing.
    let card_dir = dir.path().join("digits_mlp");
    std::fs::create_dir_all(&card_dir).unwrap();
    let card_copy = card_dir.join("digits_mlp.card.json");
    std::fs::copy(&mlp.card_path, &card_copy).unwrap();
    let artifact = &mlp.card.files.verifier_artifact;
    std::fs::copy(mlp.card_path.parent().unwrap().join(artifact), card_dir.join(artifact)).unwrap();
    let out = forge(
        &rpc,
        "ListModel.s.sol",
        &[&forge_env[..], &[("ZKINFER_CARD", path_str(&card_copy)), ("ZKINFER_FEE", "7")]].concat(),
    )
    .await;
    assert!(out.contains("digits_mlp already registered"), "{out}");
    let recorded = Deployments::load(&file).unwrap();
    assert_eq!((recorded.listings[&2].fee, recorded.listings[&2].owner), (U256::from(7), owner.address()));
    assert_eq!(recorded.listings[&1].fee, U256::from(1000), "listing 1 kept");
    let sent = nonce(&provider, owner.address()).await;
    let run = cli(&rpc, &list("7"), &signer).await;
    run.assert_ok("list-model after forge");
    assert!(run.says("listing 2 already lists digits_mlp"), "{}", run.stdout);
    assert_eq!(nonce(&provider, owner.address()).await, sent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_account_that_cannot_pay_is_stopped_before_sending_and_nothing_unmined_is_recorded() {
    let anvil = anvil();
    let rpc = anvil.endpoint();
    let owner_key = hex_key(&key(&anvil, 0));
    let funded = [("ZKINFER_PRIVATE_KEY", owner_key.as_str())];
    // A key anvil never funded.
    let poor = PrivateKeySigner::from_bytes(&B256::with_last_byte(0xaa)).unwrap();
    let poor_key = hex_key(&poor);
    let unfunded = [("ZKINFER_PRIVATE_KEY", poor_key.as_str())];
    let provider = chain::provider(&rpc, poor.clone()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("31337.json");
    let deployments = ["--deployments", path_str(&file)];
    let forge_out = forge_out();
    let coordinator = [&["deploy-coordinator", "--forge-out", path_str(&forge_out)][..], &deployments].concat();

    // Stopped at the first step, which it names, with the balance and the cost; no file.
    let run = cli(&rpc, &coordinator, &unfunded).await;
    assert!(!run.ok, "an unfunded deploy-coordinator succeeded:\n{}", run.stdout);
    let expected = format!("deploy InferenceCoordinator: insufficient funds: the account {} has 0 ETH", poor.address());
    assert!(run.stderr.contains(&expected), "{}", run.stderr);
    assert!(run.stderr.contains("nothing was sent for this step"), "{}", run.stderr);
    assert!(!file.exists(), "a deployments file was written for a coordinator never deployed");
    assert_eq!(nonce(&provider, poor.address()).await, 0);

    // The verifier is mined (by someone else), the registration cannot be paid: the file does not
    // record the model; the next run that can pay registers, lists and records it.
    cli(&rpc, &coordinator, &funded).await.assert_ok("deploy-coordinator");
    let started = std::fs::read_to_string(&file).unwrap();
    let mlp = zoo("digits_mlp");
    let verifier = [&["deploy-verifier", "--card", path_str(&mlp.card_path)][..], &deployments].concat();
    cli(&rpc, &verifier, &funded).await.assert_ok("deploy-verifier");
    let list = [&["list-model", "--card", path_str(&mlp.card_path)][..], &deployments].concat();
    let run = cli(&rpc, &list, &unfunded).await;
    assert!(!run.ok, "an unfunded list-model succeeded:\n{}", run.stdout);
    assert!(run.stderr.contains("registerModel digits_mlp: insufficient funds: the account"), "{}", run.stderr);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), started, "the file changed though nothing was registered");
    cli(&rpc, &list, &funded).await.assert_ok("list-model");
    let recorded = Deployments::load(&file).unwrap();
    assert!(recorded.models.contains_key("digits_mlp") && recorded.listings.contains_key(&1), "{recorded:?}");
}

/// Runs a deployment script with `--broadcast` against `rpc`, then its `record()` step (which writes
/// the deployments file from what the chain holds); returns their output.
async fn forge(rpc: &str, script: &str, env: &[(&str, &str)]) -> String {
    let sent = forge_step(rpc, script, &["--broadcast"], env).await;
    let recorded = forge_step(rpc, script, &["--sig", "record()"], env).await;
    format!("{sent}{recorded}")
}

async fn forge_step(rpc: &str, script: &str, args: &[&str], env: &[(&str, &str)]) -> String {
    let bin = root().join("node_modules/@foundry-rs/forge-linux-amd64/bin/forge");
    let out = tokio::time::timeout(
        MINUTE,
        tokio::process::Command::new(bin)
            .args(["script", &format!("contracts/script/{script}"), "--rpc-url", rpc])
            .args(args)
            .current_dir(root())
            .env_remove("ZKINFER_COORDINATOR")
            .envs(env.iter().copied())
            .output(),
    )
    .await
    .expect("forge did not finish")
    .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "forge script {script} {args:?} failed:\n{text}");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dev_srs_verifier_is_refused_off_the_dev_chain_and_a_node_refuses_another_chains_file() {
    let anvil = Anvil::new().path(anvil_bin()).args(["--hardfork", "prague"]).chain_id(1337).spawn();
    let rpc = anvil.endpoint();
    let owner = key(&anvil, 0);
    let owner_key = hex_key(&owner);
    let signer = [("ZKINFER_PRIVATE_KEY", owner_key.as_str())];
    let provider = chain::provider(&rpc, owner.clone()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("1337.json");
    let deployments = ["--deployments", path_str(&file)];

    // The coordinator lands at the same address as on chain 31337.
    let forge_out = forge_out();
    cli(&rpc, &[&["deploy-coordinator", "--forge-out", path_str(&forge_out)][..], &deployments].concat(), &signer)
        .await
        .assert_ok("deploy-coordinator on chain 1337");
    let recorded = Deployments::load(&file).unwrap();
    assert_eq!((recorded.chain_id, recorded.coordinator), (1337, predicted_coordinator()));
    let sent = nonce(&provider, owner.address()).await;

    let mlp = zoo("digits_mlp");
    assert!(mlp.card.srs.insecure);
    for command in ["list-model", "deploy-verifier"] {
        let run =
            cli(&rpc, &[&[command, "--card", path_str(&mlp.card_path)][..], &deployments].concat(), &signer).await;
        assert!(!run.ok, "{command} of a dev-SRS card succeeded on chain 1337:\n{}", run.stdout);
        assert!(
            run.stderr.contains("digits_mlp: refused on chain 1337: its verifier was made with the insecure dev SRS"),
            "{command}: {}",
            run.stderr
        );
    }
    assert_eq!(nonce(&provider, owner.address()).await, sent, "a refused command sent a transaction");
    assert!(Deployments::load(&file).unwrap().models.is_empty(), "a refused model was recorded");

    // A node pointed at chain 31337's deployments file but at this chain's endpoint refuses to start.
    let foreign = dir.path().join("31337.json");
    Deployments::new(31337, recorded.coordinator, recorded.salt).save(&foreign).unwrap();
    let cfg = NodeConfig {
        rpc: RpcConfig::new(rpc.clone()),
        contract: ContractConfig::from_deployments(&foreign),
        signer: SignerConfig::default(),
        models: vec![ModelConfig { card: mlp.card_path.clone(), srs: None, insecure_dev_srs: true }],
        prover: Default::default(),
        store: StoreConfig::new(dir.path().join("store.redb")),
        metrics: MetricsConfig { listen: "127.0.0.1:0".parse().unwrap(), ..MetricsConfig::default() },
        fees: Default::default(),
        private: Default::default(),
    };
    let (_stop, rx) = tokio::sync::watch::channel(false);
    let result = tokio::time::timeout(
        MINUTE,
        prover_node::service::serve(cfg, Some(key(&anvil, 1)), Arc::new(Metrics::default()), rx),
    )
    .await
    .expect("the node neither started nor refused");
    match result {
        Err(prover_node::Error::DeploymentsChainMismatch { file: 31337, chain: 1337, .. }) => {}
        other => panic!("expected DeploymentsChainMismatch, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_a_chain_loaded_from_another_anvils_dump_the_cli_finds_the_coordinator_and_lists() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let mlp = zoo("digits_mlp");
    let forge_out = forge_out();

    // Chain A: the coordinator, the model and listing 1; then A stops and dumps its state.
    let mut a = Anvil::new().path(anvil_bin()).args(["--hardfork", "prague", "--dump-state", path_str(&state)]).spawn();
    let a_key = hex_key(&key(&a, 0));
    let a_file = dir.path().join("a/31337.json");
    let a_deployments = ["--deployments", path_str(&a_file)];
    let signer = [("ZKINFER_PRIVATE_KEY", a_key.as_str())];
    cli(
        &a.endpoint(),
        &[&["deploy-coordinator", "--forge-out", path_str(&forge_out)][..], &a_deployments].concat(),
        &signer,
    )
    .await
    .assert_ok("deploy-coordinator on A");
    cli(
        &a.endpoint(),
        &[&["list-model", "--card", path_str(&mlp.card_path), "--fee", "1000"][..], &a_deployments].concat(),
        &signer,
    )
    .await
    .assert_ok("list-model on A");
    let coordinator = Deployments::load(&a_file).unwrap().coordinator;
    let pid = a.child().id().to_string();
    assert!(std::process::Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
    a.child_mut().wait().unwrap();
    assert!(std::fs::metadata(&state).map(|m| m.len() > 0).unwrap_or(false), "anvil A dumped no state");

    // Chain B starts from A's state: an existing network to a newcomer with no deployments file,
    // who signs with an encrypted keystore.
    let b = Anvil::new().path(anvil_bin()).args(["--hardfork", "prague", "--load-state", path_str(&state)]).spawn();
    let rpc = b.endpoint();
    let newcomer = key(&b, 3);
    PrivateKeySigner::encrypt_keystore(
        dir.path(),
        &mut rand::rngs::OsRng,
        newcomer.to_bytes(),
        "hunter2",
        Some("newcomer.json"),
    )
    .unwrap();
    let keystore = dir.path().join("newcomer.json");
    let with_keystore = [("ZKINFER_KEYSTORE_PASSWORD", "hunter2")];
    let b_file = dir.path().join("b/31337.json");
    let b_deployments = ["--deployments", path_str(&b_file), "--keystore", path_str(&keystore)];
    let provider = chain::provider(&rpc, newcomer.clone()).unwrap();
    assert_eq!(nonce(&provider, newcomer.address()).await, 0);

    let run = cli(
        &rpc,
        &[&["deploy-coordinator", "--forge-out", path_str(&forge_out)][..], &b_deployments].concat(),
        &with_keystore,
    )
    .await;
    run.assert_ok("deploy-coordinator on B");
    assert!(run.says(&format!("coordinator already deployed at {coordinator}")), "{}", run.stdout);
    assert!(run.says(&format!("signer {}", newcomer.address())), "the keystore's account signs:\n{}", run.stdout);
    assert_eq!(Deployments::load(&b_file).unwrap().coordinator, coordinator);

    let run = cli(
        &rpc,
        &[&["list-model", "--card", path_str(&mlp.card_path), "--fee", "2000"][..], &b_deployments].concat(),
        &with_keystore,
    )
    .await;
    run.assert_ok("list-model on B");
    assert!(run.says("digits_mlp already registered"), "{}", run.stdout);
    assert!(run.says("sent            1 transaction"), "only the listing is new:\n{}", run.stdout);
    let recorded = Deployments::load(&b_file).unwrap();
    assert_eq!(recorded.models["digits_mlp"].model_id, card_id(mlp));
    assert_eq!(recorded.listings.keys().copied().collect::<Vec<_>>(), vec![2], "A's listing 1 is not the newcomer's");
    let c = IInferenceCoordinator::new(coordinator, provider.clone());
    let listing = c.getListing(U256::from(2)).call().await.unwrap();
    assert_eq!((listing.modelId, listing.owner, listing.fee.to::<u64>()), (card_id(mlp), newcomer.address(), 2000));
    assert_eq!(c.getListing(U256::from(1)).call().await.unwrap().owner, key(&b, 0).address(), "A's listing survived");

    // A wrong keystore password is refused with a clear error.
    let run = cli(
        &rpc,
        &[&["deploy-coordinator", "--forge-out", path_str(&forge_out)][..], &b_deployments].concat(),
        &[("ZKINFER_KEYSTORE_PASSWORD", "wrong")],
    )
    .await;
    assert!(!run.ok && run.stderr.contains("cannot decrypt the keystore"), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_missing_keystore_or_forge_build_is_named_before_connecting() {
    // Nothing listens here: both are refused before the endpoint is asked anything.
    let rpc = "http://127.0.0.1:9";
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-keystore");
    let run = cli(
        rpc,
        &["deploy-verifier", "--card", path_str(&zoo("digits_mlp").card_path), "--keystore", path_str(&missing)],
        &[("ZKINFER_KEYSTORE_PASSWORD", "x")],
    )
    .await;
    assert!(!run.ok && run.stderr.contains("no-such-keystore: no such file"), "{}", run.stderr);
    assert!(!run.stderr.contains("password"), "{}", run.stderr);

    let run = cli(rpc, &["deploy-coordinator", "--forge-out", path_str(dir.path())], &[]).await;
    assert!(
        !run.ok && run.stderr.contains("run `forge build`") && run.stderr.contains("--forge-out"),
        "{}",
        run.stderr
    );
}

/// A verifier above EIP-170 (case 12 of `../shared/cases` at `k ≤ 10`, cut into parts): forge's
/// DeployVerifier deploys its later parts through the CREATE2 deployer and then the verifier, each
/// at the address the CLI computes; the CLI then finds all of them and sends nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_verifier_in_parts_is_deployed_by_forge_and_found_by_the_cli() {
    use prover_node::setup::{self, SetupOptions, SrsSource};
    std::fs::create_dir_all(root().join("build")).unwrap();
    let dir = tempfile::Builder::new().prefix("deploy-split-").tempdir_in(root().join("build")).unwrap();
    let onnx = root().join("models/tests/data/cases/12_verifier_too_large.onnx");
    let mut opts =
        SetupOptions::new(onnx, dir.path().to_path_buf(), SrsSource::InsecureDev { seed: zkinfer_tests::DEV_SEED });
    opts.max_k = 10;
    let (card, card_path) = setup::run(&opts).expect("setup of case 12 at k ≤ 10");
    let compiled = verifier_gen::Compiled::for_card(&card_path, &card).unwrap();
    assert!(!compiled.parts.is_empty(), "case 12 at k ≤ 10 needs a verifier in parts");

    let anvil = anvil();
    let rpc = anvil.endpoint();
    let owner = key(&anvil, 0);
    let owner_key = hex_key(&owner);
    let provider = chain::provider(&rpc, owner.clone()).unwrap();
    let env = [("PRIVATE_KEY", owner_key.as_str()), ("ZKINFER_CARD", path_str(&card_path))];
    let out = forge_step(&rpc, "DeployVerifier.s.sol", &["--broadcast"], &env).await;
    assert_eq!(out.matches("verifier part deployed at").count(), compiled.parts.len(), "{out}");
    for part in &compiled.parts {
        let at: Address = part.address.parse().unwrap();
        assert_eq!(deploy::create2_address(deploy::VERIFIER_SALT, &part.bytecode), at);
        let code = provider.get_code_at(at).await.unwrap();
        assert_eq!(code.as_ref(), part.deployed_bytecode.as_slice(), "{} at {at}", part.contract);
    }
    let verifier = deploy::create2_address(deploy::VERIFIER_SALT, &compiled.bytecode);
    assert_eq!(provider.get_code_at(verifier).await.unwrap().as_ref(), compiled.deployed_bytecode.as_slice());

    let sent = nonce(&provider, owner.address()).await;
    let file = dir.path().join("31337.json");
    let args = ["deploy-verifier", "--card", path_str(&card_path), "--deployments", path_str(&file)];
    let run = cli(&rpc, &args, &[("ZKINFER_PRIVATE_KEY", owner_key.as_str())]).await;
    run.assert_ok("deploy-verifier after forge");
    for part in &compiled.parts {
        assert!(run.says(&format!("{} already deployed at", part.contract)), "{}", run.stdout);
    }
    assert!(run.says(&format!("{} already deployed at {verifier}", compiled.contract)), "{}", run.stdout);
    assert_eq!(nonce(&provider, owner.address()).await, sent, "a second deployment sent a transaction");

    // On a fresh chain the CLI deploys the parts, then the verifier, at the same addresses.
    let fresh = zkinfer_tests::anvil();
    let file = dir.path().join("fresh.json");
    let args = ["deploy-verifier", "--card", path_str(&card_path), "--deployments", path_str(&file)];
    let run = cli(&fresh.endpoint(), &args, &[("ZKINFER_PRIVATE_KEY", owner_key.as_str())]).await;
    run.assert_ok("deploy-verifier on a fresh chain");
    let fresh_provider = chain::provider(&fresh.endpoint(), owner.clone()).unwrap();
    for part in &compiled.parts {
        let at: Address = part.address.parse().unwrap();
        assert!(run.says(&format!("deploy {}: at {at}", part.contract)), "{}", run.stdout);
        let code = fresh_provider.get_code_at(at).await.unwrap();
        assert_eq!(code.as_ref(), part.deployed_bytecode.as_slice());
    }
    let code = fresh_provider.get_code_at(verifier).await.unwrap();
    assert_eq!(code.as_ref(), compiled.deployed_bytecode.as_slice());
}
