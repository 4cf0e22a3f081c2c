//! The command line of `prover-node`: its arguments (clap) and one function per command, which
//! the binary (`main.rs`) only dispatches to. Each command prints its results on stdout and
//! returns errors that name what to do.

use std::path::PathBuf;

use crate::{
    chain,
    deploy::Deployer,
    deployments::Deployments,
    proof::{Fulfiller, InputFile, ProofFile},
    prove,
    setup::{self, SetupOptions, SrsSource},
};
use alloy::primitives::{Address, B256, U256};
use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use models::{card::ModelCard, srs::Srs};

#[derive(Parser)]
#[command(name = "prover-node", version, about = "zkinfer prover node: verifiable ML inference for smart contracts")]
pub struct Cli {
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Model owner: ONNX → quantized circuit → proving/verifying keys → Solidity verifier → model card.
    Setup(SetupArgs),
    /// Prove one inference: writes output, proof, public instances and ready-to-send calldata.
    Prove(ProveArgs),
    /// Verify a proof natively, and optionally on-chain through the generated verifier.
    Verify(VerifyArgs),
    /// Measure setup, proving, memory, proof size, verifier size and verify gas per model.
    Bench(BenchArgs),
    /// Run the node: watch the coordinator, prove requests for served models, fulfil them.
    Run(RunArgs),
    /// The whole system on an embedded anvil: deploy, register, run a node, classify a real digit.
    Demo(DemoArgs),
    /// Ceremony SRS files: import (with every check) what setup, prove and the node load.
    #[command(subcommand)]
    Srs(SrsCommand),
    /// Deploy the coordinator at its deterministic CREATE2 address (the forge script's), unless it
    /// is there; start the chain's deployments file.
    DeployCoordinator(DeployCoordinatorArgs),
    /// Deploy a model card's verifier (CREATE2, one address per verifier code), unless it is there.
    DeployVerifier(DeployVerifierArgs),
    /// Register a model card's model on the coordinator (deploying its verifier) unless it is
    /// registered, list it unless a listing on the same terms is recorded, record both in the
    /// deployments file.
    ListModel(ListModelArgs),
    /// Consumer of a private request: commit to an input (fresh salt) and seal it to a prover's
    /// encryption key, for one chain, coordinator, requester and model. Writes the arguments of
    /// requestPrivateInference (and the salt, which stays with you).
    SealInput(SealInputArgs),
    /// Node operator: the X25519 key ring that opens private requests naming this node (create,
    /// rotate, publish on the coordinator).
    #[command(subcommand)]
    EncryptionKey(EncryptionKeyCommand),
}

#[derive(Subcommand)]
pub enum EncryptionKeyCommand {
    /// Create the key ring, or rotate it (a new newest key; older keys stay in the ring so that
    /// requests sealed to them still open). Prints the public key to register.
    New(KeyFileArgs),
    /// Publish the ring's newest public key as the signing account's encryption key on the
    /// coordinator (setEncryptionKey; simulated first). Sign with the node's account.
    Register(RegisterKeyArgs),
    /// Print the ring's public keys, newest last.
    Show(KeyFileArgs),
}

#[derive(Args)]
pub struct KeyFileArgs {
    /// The key ring file (JSON holding the secret keys, mode 0600): the node's private.key_file.
    #[arg(long, env = "ZKINFER_KEY_FILE", value_name = "FILE")]
    key_file: PathBuf,
}

#[derive(Args)]
pub struct RegisterKeyArgs {
    #[command(flatten)]
    keys: KeyFileArgs,
    #[command(flatten)]
    chain: ChainArgs,
    /// The coordinator (default: the deployments file's).
    #[arg(long, env = "ZKINFER_COORDINATOR")]
    coordinator: Option<Address>,
}

/// The chain and the signer of the deployment commands.
#[derive(Args)]
pub struct ChainArgs {
    /// JSON-RPC URL of the chain (HTTP).
    #[arg(long, env = "ZKINFER_RPC_URL")]
    rpc_url: String,
    /// Encrypted JSON keystore of the signing account (for example from `cast wallet import`;
    /// forge keeps them in ~/.foundry/keystores/). Used instead of the private key when given.
    #[arg(long, value_name = "FILE", help_heading = "Signer")]
    keystore: Option<PathBuf>,
    /// Environment variable holding the keystore's password (never a flag: it would be in the
    /// shell history and the process list).
    #[arg(long, value_name = "VAR", default_value = "ZKINFER_KEYSTORE_PASSWORD", help_heading = "Signer")]
    keystore_password_env: String,
    /// Hex private key of the signing account. Set the environment variable rather than the flag.
    #[arg(long, env = "ZKINFER_PRIVATE_KEY", hide_env_values = true, help_heading = "Signer")]
    private_key: Option<String>,
    /// The chain's deployments file (read, and written unless --dry-run). Default:
    /// deployments/<chain id>.json, where the forge scripts write it.
    #[arg(long, env = "ZKINFER_DEPLOYMENTS", value_name = "FILE")]
    deployments: Option<PathBuf>,
    /// Simulate every transaction and print its gas and cost; send nothing, write nothing.
    #[arg(long)]
    dry_run: bool,
}

impl ChainArgs {
    /// The signer: the keystore (password from the environment) if given, else the private key.
    fn signer(&self) -> anyhow::Result<alloy::signers::local::PrivateKeySigner> {
        if let Some(path) = &self.keystore {
            if !path.is_file() {
                bail!("--keystore {}: no such file (forge keeps keystores in ~/.foundry/keystores/)", path.display());
            }
            let password = std::env::var(&self.keystore_password_env).map_err(|_| {
                anyhow::anyhow!(
                    "--keystore {}: set the environment variable {} to its password",
                    path.display(),
                    self.keystore_password_env
                )
            })?;
            return alloy::signers::local::PrivateKeySigner::decrypt_keystore(path, password).map_err(|e| {
                anyhow::anyhow!(
                    "cannot decrypt the keystore {}: {e} (check the password in {})",
                    path.display(),
                    self.keystore_password_env
                )
            });
        }
        match &self.private_key {
            Some(key) => Ok(chain::signer(key)?),
            None => bail!(
                "no signer: give --keystore FILE (password in ${}) or set ZKINFER_PRIVATE_KEY",
                self.keystore_password_env
            ),
        }
    }

    /// Connects, printing each step of the deployer on stdout.
    async fn deployer(&self) -> anyhow::Result<(Deployer, PathBuf)> {
        let deployer = Deployer::connect(&self.rpc_url, self.signer()?, self.dry_run, |line| println!("{line}"))
            .await
            .with_context(|| format!("connecting to {}", self.rpc_url))?;
        let path = self.deployments.clone().unwrap_or_else(|| Deployments::default_path(deployer.chain_id()));
        println!("chain           {} (signer {})", deployer.chain_id(), deployer.sender());
        if self.dry_run {
            println!("dry run         simulating only: nothing is sent, nothing written");
        }
        Ok((deployer, path))
    }
}

#[derive(Args)]
pub struct DeployCoordinatorArgs {
    #[command(flatten)]
    chain: ChainArgs,
    /// forge's build output, holding the coordinator's creation code (`forge build`).
    #[arg(long, default_value = "out", value_name = "DIR")]
    forge_out: PathBuf,
    /// CREATE2 salt (default keccak256("zkinfer.InferenceCoordinator"), as the forge script).
    #[arg(long, env = "ZKINFER_SALT")]
    salt: Option<B256>,
}

#[derive(Args)]
pub struct DeployVerifierArgs {
    #[command(flatten)]
    chain: ChainArgs,
    /// Model card written by `setup` (its verifier artifact is read beside it).
    #[arg(long, value_name = "FILE")]
    card: PathBuf,
}

#[derive(Args)]
pub struct ListModelArgs {
    #[command(flatten)]
    chain: ChainArgs,
    /// Model card written by `setup` (its verifier artifact and keys are read beside it).
    #[arg(long, value_name = "FILE")]
    card: PathBuf,
    /// The coordinator (default: the deployments file's).
    #[arg(long, env = "ZKINFER_COORDINATOR")]
    coordinator: Option<Address>,
    /// Fee per request, in wei.
    #[arg(long, default_value = "0", help_heading = "Listing")]
    fee: U256,
    /// Time a node has to fulfil a request, in seconds.
    #[arg(long, default_value_t = 3600, help_heading = "Listing")]
    deadline_seconds: u64,
    /// A proof of the model (`prove` output, or `instances` and `proof`), needed only to register
    /// it: the coordinator measures the verifier's gas on it. Default: prove one with the card's
    /// keys (on --srs, or the card's dev SRS).
    #[arg(long, value_name = "FILE", help_heading = "Registration")]
    sample: Option<PathBuf>,
    /// The ceremony SRS of the card's keys, to prove the sample when --sample is not given.
    #[arg(long, value_name = "FILE", help_heading = "Registration")]
    srs: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum SrsCommand {
    /// Check a snarkjs .ptau or halo2 raw ParamsKZG ceremony file (curve points, generators, a batched
    /// pairing check of the powers against [τ]G2, pinned hashes of known ceremony files), recompute
    /// the Lagrange points, downsize, and write the SRS the node loads (ParamsKZG with a checksum).
    Import(SrsImportArgs),
    /// Re-check an SRS file (imported or a ceremony file) and print where it comes from.
    Show {
        /// The SRS file.
        file: PathBuf,
    },
}

#[derive(Args)]
pub struct SrsImportArgs {
    /// The ceremony file: `.ptau` (snarkjs) or a raw halo2 `ParamsKZG` file.
    file: PathBuf,
    /// Where to write the imported SRS.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Downsize to 2^k points (default: everything the file holds).
    #[arg(long)]
    k: Option<u32>,
    /// Accept a file of no known ceremony; its verifiers then only run on the dev chain (31337).
    #[arg(long)]
    allow_unknown_ceremony: bool,
}

#[derive(Args)]
pub struct DemoArgs {
    /// The zoo model to serve (set up on first use with the ceremony SRS, k ≤ 11).
    #[arg(long, default_value = "models/zoo/digits_mlp.onnx")]
    onnx: PathBuf,
    /// The ceremony file the demo's keys are made with (imported and checked on first use).
    #[arg(long, default_value = "srs/hermez-raw-11")]
    ceremony_srs: PathBuf,
    /// The digit image to classify.
    #[arg(long, default_value = "models/zoo/digits_mlp.input.json")]
    input: PathBuf,
    /// Working directory (keys, node store).
    #[arg(long, default_value = "build/demo")]
    work_dir: PathBuf,
    /// forge's build output.
    #[arg(long, default_value = "out")]
    forge_out: PathBuf,
    /// The anvil binary.
    #[arg(long, env = "ZKINFER_ANVIL", default_value = "node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil")]
    anvil: PathBuf,
    /// After the demo, send this many more requests and report throughput and p50/p95 latency.
    #[arg(long, default_value_t = 0, conflicts_with = "private")]
    load_requests: usize,
    /// Private mode: the model set up with --private-input, the node's encryption key registered, and a
    /// private request from a PrivateClassifier consumer (the input sealed to the node, only its
    /// commitment on-chain); prints what is public and what is not.
    #[arg(long)]
    private: bool,
}

#[derive(Args)]
pub struct RunArgs {
    /// Node configuration (TOML; see prover-node/node.example.toml).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// Override rpc.http_url.
    #[arg(long, env = "ZKINFER_RPC_URL", help_heading = "Overrides")]
    rpc_url: Option<String>,
    /// Override contract.coordinator.
    #[arg(long, env = "ZKINFER_COORDINATOR", help_heading = "Overrides")]
    coordinator: Option<Address>,
    /// Override contract.deployments (the chain's deployments file, which names the coordinator).
    #[arg(long, env = "ZKINFER_DEPLOYMENTS", value_name = "FILE", help_heading = "Overrides")]
    deployments: Option<PathBuf>,
    /// Override store.path.
    #[arg(long, env = "ZKINFER_STORE", help_heading = "Overrides")]
    store: Option<PathBuf>,
    /// Override metrics.listen.
    #[arg(long, env = "ZKINFER_METRICS_LISTEN", help_heading = "Overrides")]
    metrics_listen: Option<std::net::SocketAddr>,
    /// Override private.key_file (the key ring that opens private requests).
    #[arg(long, env = "ZKINFER_KEY_FILE", value_name = "FILE", help_heading = "Overrides")]
    key_file: Option<PathBuf>,
    /// Override prover.confirmations.
    #[arg(long, help_heading = "Overrides")]
    confirmations: Option<u64>,
    /// Override contract.start_block (where a fresh store starts scanning).
    #[arg(long, help_heading = "Overrides")]
    start_block: Option<u64>,
    /// Recovery: move an empty or damaged store aside and start a fresh one, rescanning from
    /// contract.start_block (requests fulfilled meanwhile are recognised on-chain).
    #[arg(long, help_heading = "Recovery")]
    reinit_store: bool,
}

#[derive(Args)]
pub struct BenchArgs {
    /// ONNX models to measure (each in its own process).
    #[arg(required = true, value_name = "ONNX")]
    models: Vec<PathBuf>,
    /// Proving runs per model (the median is reported).
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// The anvil binary used to measure gas.
    #[arg(long, env = "ZKINFER_ANVIL", default_value = "node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil")]
    anvil: PathBuf,
    /// Solidity compiler (standard-JSON interface).
    #[arg(long, env = "ZKINFER_SOLC", value_name = "PATH")]
    solc: Option<PathBuf>,
    /// Set the models up in committed-input mode (private requests): measures what the input
    /// commitment costs against a run without the flag.
    #[arg(long)]
    private_input: bool,
    /// Measure a single model in this process and print its row as JSON (used internally).
    #[arg(long, hide = true)]
    child: bool,
}

#[derive(Args)]
pub struct SrsArgs {
    /// KZG SRS file (halo2 ParamsKZG format, e.g. from a powers-of-tau ceremony).
    #[arg(long, value_name = "FILE", conflicts_with = "insecure_dev_srs", help_heading = "SRS")]
    srs: Option<PathBuf>,
    /// Use an SRS derived from a public seed. INSECURE: anyone can forge proofs. Tests and demos only.
    #[arg(long, help_heading = "SRS")]
    insecure_dev_srs: bool,
    /// Seed of the insecure dev SRS (setup only; prove/verify take it from the card).
    #[arg(long, default_value_t = 42, help_heading = "SRS")]
    dev_srs_seed: u64,
}

impl SrsArgs {
    fn source(&self) -> anyhow::Result<SrsSource> {
        match (&self.srs, self.insecure_dev_srs) {
            (Some(path), false) => Ok(SrsSource::File(path.clone())),
            (None, true) => Ok(SrsSource::InsecureDev { seed: self.dev_srs_seed }),
            _ => bail!("choose an SRS: --srs <FILE> (ceremony) or --insecure-dev-srs (tests and demos only)"),
        }
    }

    /// The SRS file for an existing card (`None`: the card's dev SRS).
    fn file(&self) -> anyhow::Result<Option<PathBuf>> {
        Ok(match self.source()? {
            SrsSource::File(path) => Some(path),
            SrsSource::InsecureDev { .. } => None,
        })
    }

    /// The SRS for an existing card.
    fn load_for(&self, card: &ModelCard) -> anyhow::Result<Srs> {
        Ok(setup::card_srs(card, self.file()?.as_deref())?)
    }
}

#[derive(Args)]
pub struct SetupArgs {
    /// The ONNX model. Optional metadata is read from `<stem>.meta.json` beside it.
    #[arg(long, value_name = "FILE")]
    onnx: PathBuf,
    /// Directory for keys, verifier and model card.
    #[arg(long, value_name = "DIR")]
    out_dir: PathBuf,
    /// Model name (default: from metadata, else the file stem).
    #[arg(long)]
    name: Option<String>,
    #[command(flatten)]
    srs: SrsArgs,
    /// Input fixed-point scale: inputs are round(x · 2^bits) (default: metadata, else calibrated).
    #[arg(long, help_heading = "Quantization")]
    input_scale_bits: Option<u32>,
    /// Weight fixed-point scale (default: metadata, else calibrated).
    #[arg(long, help_heading = "Quantization")]
    weight_scale_bits: Option<u32>,
    /// Activation fixed-point scale (default: metadata, else calibrated).
    #[arg(long, help_heading = "Quantization")]
    activation_scale_bits: Option<u32>,
    /// Every activation must fit in this many signed bits (default: sized from a sound bound over
    /// the whole input range).
    #[arg(long, help_heading = "Quantization")]
    value_bits: Option<u32>,
    /// Largest acceptable output error of calibration, relative to the largest float output.
    #[arg(long, default_value_t = 0.005, help_heading = "Quantization")]
    tolerance: f64,
    /// Value of a symbolic input dimension, `NAME=SIZE` (repeatable; others are fixed to 1).
    #[arg(long = "dim", value_name = "NAME=SIZE", value_parser = parse_dim, help_heading = "Quantization")]
    dims: Vec<(String, usize)>,
    /// Calibration inputs `{"inputs": [[..]]}` (default: metadata's eval set, else samples of the range).
    #[arg(long, value_name = "FILE", help_heading = "Quantization")]
    calibration_set: Option<PathBuf>,
    /// Smallest real input value accepted (with --input-max; default: metadata, else [-256, 255]
    /// narrowed if needed to fit the value bits).
    #[arg(long, requires = "input_max", allow_hyphen_values = true, help_heading = "Quantization")]
    input_min: Option<f64>,
    /// Largest real input value accepted.
    #[arg(long, requires = "input_min", allow_hyphen_values = true, help_heading = "Quantization")]
    input_max: Option<f64>,
    /// Circuit size 2^k rows (default: automatic, see --max-k).
    #[arg(long, help_heading = "Circuit")]
    k: Option<u32>,
    /// Largest k when choosing automatically (the layout of least predicted prove work whose
    /// verifier fits wins).
    #[arg(long, default_value_t = models::prover::DEFAULT_MAX_K, help_heading = "Circuit")]
    max_k: u32,
    /// Lanes of the dot-product gate (weights per row; 0: dot products in the flex gate).
    /// Default: chosen by the cost model.
    #[arg(long, help_heading = "Circuit")]
    lanes: Option<usize>,
    /// Labelled set `{"inputs": [[..]], "labels": [..]}` for float/quantized accuracy (default: metadata's).
    #[arg(long, value_name = "FILE")]
    eval_set: Option<PathBuf>,
    /// Commit to the input instead of making it public: the proof carries C = Poseidon(packed input ‖
    /// salt) in the input's place, and the model serves private requests (the input travels encrypted
    /// to the prover and never appears on-chain). Another verifier, hence another model id.
    #[arg(long, help_heading = "Circuit")]
    private_input: bool,
    /// Solidity compiler (standard-JSON interface).
    #[arg(long, env = "ZKINFER_SOLC", value_name = "PATH")]
    solc: Option<PathBuf>,
}

#[derive(Args)]
pub struct ProveArgs {
    /// Model card written by `setup`.
    #[arg(long, value_name = "FILE")]
    card: PathBuf,
    /// Input JSON: {"input": [floats]} or {"input_quantized": [integers]}.
    #[arg(long, value_name = "FILE")]
    input: PathBuf,
    /// Where to write the proof JSON.
    #[arg(long, value_name = "FILE", default_value = "proof.json")]
    out: PathBuf,
    /// The coordinator request this proof fulfils (bound into the proof).
    #[arg(long, default_value = "0", help_heading = "Request")]
    request_id: U256,
    /// The chain id of the coordinator's chain (bound into the proof).
    #[arg(long, default_value_t = 31337, help_heading = "Request")]
    chain_id: u64,
    /// The coordinator the proof will be submitted to (bound into the proof).
    #[arg(long, default_value_t = Address::ZERO, help_heading = "Request")]
    coordinator: Address,
    /// The account that will submit the proof (bound into the proof).
    #[arg(long, default_value_t = Address::ZERO, help_heading = "Request")]
    fulfiller: Address,
    /// The salt of the input commitment (32 bytes, 0x-hex, below 2^248), for a model set up with
    /// --private-input: the proof then shows C = Poseidon(packed input ‖ salt), not the input.
    #[arg(long, value_name = "HEX", help_heading = "Request")]
    salt: Option<B256>,
    #[command(flatten)]
    srs: SrsArgs,
}

#[derive(Args)]
pub struct SealInputArgs {
    /// Model card of a committed-input model (set up with --private-input).
    #[arg(long, value_name = "FILE")]
    card: PathBuf,
    /// Input JSON: {"input": [floats]} or {"input_quantized": [integers]}.
    #[arg(long, value_name = "FILE")]
    input: PathBuf,
    /// The prover's X25519 public key, as registered on the coordinator (`encryptionKeyOf(prover)`).
    #[arg(long, value_name = "HEX")]
    encryption_key: B256,
    /// The account or contract that will call requestPrivateInference (the envelope opens for its
    /// requests only).
    #[arg(long)]
    requester: Address,
    /// The chain id of the coordinator's chain.
    #[arg(long, default_value_t = 31337)]
    chain_id: u64,
    /// The coordinator the request goes to.
    #[arg(long)]
    coordinator: Address,
    /// Where to write the sealed request (JSON: commitment, encryption_key, ciphertext, salt, ...).
    #[arg(long, value_name = "FILE", default_value = "sealed.json")]
    out: PathBuf,
}

#[derive(Args)]
pub struct VerifyArgs {
    /// Model card written by `setup`.
    #[arg(long, value_name = "FILE")]
    card: PathBuf,
    /// Proof JSON written by `prove`.
    #[arg(long, value_name = "FILE")]
    proof: PathBuf,
    #[command(flatten)]
    srs: SrsArgs,
    /// Also verify on-chain through the generated verifier at this RPC endpoint.
    #[arg(long, env = "ZKINFER_RPC_URL", help_heading = "On-chain")]
    rpc_url: Option<String>,
    /// An already deployed verifier (default: deploy the card's verifier).
    #[arg(long, help_heading = "On-chain")]
    verifier: Option<Address>,
    /// Key that pays for deploying the verifier.
    #[arg(long, env = "ZKINFER_PRIVATE_KEY", hide_env_values = true, help_heading = "On-chain")]
    private_key: Option<String>,
}

/// Logs to stderr (through the progress display on a terminal), `RUST_LOG` or `info`.
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(crate::progress::log_writer)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

fn parse_dim(s: &str) -> Result<(String, usize), String> {
    let (name, size) = s.split_once('=').ok_or_else(|| format!("`{s}`: expected NAME=SIZE"))?;
    let size: usize = size.parse().map_err(|e| format!("`{s}`: {e}"))?;
    if size == 0 {
        return Err(format!("`{s}`: a dimension must be at least 1"));
    }
    Ok((name.to_string(), size))
}

/// `srs import`.
pub fn srs_import(a: SrsImportArgs) -> anyhow::Result<()> {
    crate::progress::enable_terminal();
    let opts = models::srs::ImportOptions { k: a.k, allow_unknown_ceremony: a.allow_unknown_ceremony };
    let srs = Srs::import(&a.file, &opts)?;
    srs.save(&a.out)?;
    println!("checked         points on the curve, g[0] = G1, G2 generator, powers consistent with [τ]G2");
    println!("srs             {}", srs.info.describe());
    println!("written         {} (Lagrange points recomputed)", a.out.display());
    Ok(())
}

/// `srs show`.
pub fn srs_show(file: PathBuf) -> anyhow::Result<()> {
    crate::progress::enable_terminal();
    let srs = Srs::load(&file)?;
    println!("srs             {}", srs.info.describe());
    Ok(())
}

/// `setup`.
pub fn setup(a: SetupArgs) -> anyhow::Result<()> {
    crate::progress::enable_terminal();
    let opts = SetupOptions {
        onnx: a.onnx,
        out_dir: a.out_dir,
        name: a.name,
        srs: a.srs.source()?,
        input_scale_bits: a.input_scale_bits,
        weight_scale_bits: a.weight_scale_bits,
        activation_scale_bits: a.activation_scale_bits,
        value_bits: a.value_bits,
        tolerance: a.tolerance,
        dims: a.dims.into_iter().collect(),
        calibration_set: a.calibration_set,
        input_range: a.input_min.zip(a.input_max),
        k: a.k,
        max_k: a.max_k,
        lanes: a.lanes,
        eval_set: a.eval_set,
        private_input: a.private_input,
        solc: a.solc.unwrap_or_else(verifier_gen::default_solc),
    };
    let (card, path) = setup::run(&opts)?;
    println!("model card      {}", path.display());
    println!("model id        {}", card.model_id);
    println!(
        "circuit         k = {}, {} advice + {} lookup columns, dot-product gate of {} lane{}, {} public instances",
        card.circuit.k,
        card.circuit.advice_columns,
        card.circuit.lookup_advice_columns,
        card.circuit.dot_product_lanes,
        if card.circuit.dot_product_lanes == 1 { "" } else { "s" },
        card.circuit.num_instances
    );
    let predicted = card
        .circuit
        .predicted
        .as_ref()
        .map(|p| format!(", predicted {} bytes and {} gas per verifying call", p.verifier_bytes, p.verify_gas))
        .unwrap_or_default();
    println!(
        "verifier        {} ({} bytes runtime{predicted}, codehash {})",
        card.verifier.contract, card.verifier.runtime_bytes, card.verifier.codehash
    );
    for part in &card.verifier.parts {
        println!(
            "  calls part    {} ({} bytes runtime, at {} through the CREATE2 deployer, codehash {})",
            part.contract, part.runtime_bytes, part.address, part.codehash
        );
    }
    let q = &card.quantization;
    println!(
        "quantization    scales 2^{} in / 2^{} weights / 2^{} activations, {} value bits, input range {:?}",
        q.input_scale_bits, q.weight_scale_bits, q.activation_scale_bits, q.value_bits, card.input_range
    );
    if let Some(b) = &card.bound {
        println!("bound           |value| <= {} over the whole input range (at `{}`)", b.max_abs, b.node);
    }
    if let Some(c) = &card.calibration {
        println!(
            "output error    max {:.5}, mean {:.5} vs the float model ({}; worst error / allowance {:.2})",
            c.error.max_abs, c.error.mean_abs, c.error.source, c.error.worst_ratio
        );
    }
    if let Some(acc) = &card.accuracy {
        println!(
            "accuracy        float {:.2}%, quantized {:.2}% on {} held-out samples",
            acc.float * 100.0,
            acc.quantized * 100.0,
            acc.samples
        );
    }
    for t in &card.function_tables {
        println!(
            "function table  {} at `{}`: {} entries over [{}, {}] (input 2^{}, output 2^{}), error <= {:.2e}",
            t.function,
            t.node,
            t.entries,
            t.domain.0,
            t.domain.1,
            t.input_scale_bits,
            t.output_scale_bits,
            t.error_bound
        );
    }
    if let Some(w) = &card.circuit.weight_exposure {
        println!(
            "weights         in {} fixed columns, the fullest with {} non-zero entries: public proofs reveal one \
             evaluation of each per proof, so {} proofs determine every weight (see the README, \"What stays private\")",
            w.fixed_columns, w.max_entries, w.max_entries
        );
    }
    if card.input_committed {
        println!("input           committed: proofs carry C = Poseidon(packed input ‖ salt), never the input");
    }
    println!("srs             {}", card.srs.describe());
    if card.srs.insecure {
        println!("WARNING         keys made with an INSECURE dev SRS (public seed): for tests and demos only");
        println!("                its verifier reverts on every chain but chain id {}", verifier_gen::DEV_CHAIN_ID);
    }
    Ok(())
}

/// `prove`.
pub fn prove(a: ProveArgs) -> anyhow::Result<()> {
    crate::progress::enable_terminal();
    let card = ModelCard::load(&a.card)?;
    let srs = a.srs.load_for(&card)?;
    let loaded = prove::load(&a.card, &srs)?;
    let input = InputFile::load(&a.input)?.quantized(&loaded.model)?;
    tracing::info!(model = %card.name, "proving");
    let fulfiller = Fulfiller { chain_id: a.chain_id, coordinator: a.coordinator, address: a.fulfiller };
    let step = crate::progress::Step::start_if(card.circuit.k >= 16, format!("proving (k = {})", card.circuit.k));
    let salt = a.salt.map(|s| models::commitment::salt_from_bytes(&s.0)).transpose()?;
    let proof = prove::prove(&loaded, &input, salt, a.request_id, &fulfiller)?;
    step.map(|s| s.finish());
    proof.save(&a.out)?;
    if let Some(c) = proof.commitment {
        println!(
            "commitment      {c:#066x} (Poseidon of the packed input and the salt; the input is not in the proof)"
        );
    }
    println!("output          {:?} (quantized, scale 2^{})", proof.output, card.output_scale_bits);
    println!("dequantized     {:?}", proof.output_dequantized.iter().map(|v| format!("{v:.3}")).collect::<Vec<_>>());
    println!("prediction      {}", proof.prediction);
    println!("srs             {}", card.srs.describe());
    println!("proof           {} bytes in {:.2} s -> {}", proof.proof.len(), proof.prove_seconds, a.out.display());
    Ok(())
}

/// `seal-input`.
pub fn seal_input(a: SealInputArgs) -> anyhow::Result<()> {
    let card = ModelCard::load(&a.card)?;
    let model = card.load_model(&a.card)?;
    let input = InputFile::load(&a.input)?.quantized(&model)?;
    let model_id: B256 = card.model_id.parse().context("the card's model_id is not 32 bytes of hex")?;
    let audience =
        crate::private::Audience { chain_id: a.chain_id, coordinator: a.coordinator, requester: a.requester, model_id };
    let sealed = crate::private::seal_input(&card, &input, a.encryption_key, &audience, &mut rand::rngs::OsRng)?;
    let json = serde_json::to_string_pretty(&sealed)?;
    // It holds the salt: readable by its owner only.
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    // An existing file keeps its mode on open: tighten it too.
    #[cfg(unix)]
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    std::io::Write::write_all(&mut file, (json + "\n").as_bytes())
        .with_context(|| format!("writing {}", a.out.display()))?;
    println!("commitment      {}", sealed.commitment);
    println!("ciphertext      {} bytes, sealed to {}", sealed.ciphertext.len(), sealed.encryption_key);
    println!("for             requester {} on chain {}, coordinator {}", a.requester, a.chain_id, a.coordinator);
    println!("written         {} (keep it private: it holds the salt)", a.out.display());
    println!(
        "next            requestPrivateInference(listingId, commitment, prover, encryption_key, ciphertext, \
         callbackGasLimit, maxFee) from {}",
        a.requester
    );
    Ok(())
}

/// `verify`.
pub fn verify(a: VerifyArgs) -> anyhow::Result<()> {
    crate::progress::enable_terminal();
    let card = ModelCard::load(&a.card)?;
    let proof = ProofFile::load(&a.proof)?;
    let claims = crate::verify::check_claims(&card.model_id, &verifier_gen::Encoding::of_card(&card), &proof)
        .with_context(|| format!("{} makes a claim its proof does not back", a.proof.display()))?;
    let took = crate::verify::verify_native(&card, &a.card, a.srs.file()?.as_deref(), &claims.instances, &proof.proof)?;
    println!(
        "native          proof verifies in {:.1} ms (output {:?}, prediction {})",
        took.as_secs_f64() * 1e3,
        claims.output,
        claims.prediction
    );
    println!("dequantized     {:?}", claims.dequantized.iter().map(|v| format!("{v:.3}")).collect::<Vec<_>>());
    println!("srs             {}", card.srs.describe());
    if let Some(rpc) = a.rpc_url {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        rt.block_on(async {
            let key = a
                .private_key
                .context("--private-key (or ZKINFER_PRIVATE_KEY) is needed to deploy the verifier")?;
            let provider = chain::provider(&rpc, chain::signer(&key)?)?;
            let address = match a.verifier {
                Some(addr) => {
                    // Only the card's verifier proves anything: compare the deployed code.
                    let code = alloy::providers::Provider::get_code_at(&provider, addr).await?;
                    let hash = format!("0x{}", hex::encode(alloy::primitives::keccak256(&code)));
                    if !hash.eq_ignore_ascii_case(&card.verifier.codehash) {
                        bail!(
                            "the contract at {addr} is not this model's verifier: its code hash {hash} differs from the card's {}",
                            card.verifier.codehash
                        );
                    }
                    for part in &card.verifier.parts {
                        let at: alloy::primitives::Address = part.address.parse()?;
                        if alloy::providers::Provider::get_code_at(&provider, at).await?.is_empty() {
                            bail!(
                                "the verifier calls its part {} at {at}, which is not deployed on this chain: \
                                 leave out --verifier to deploy it with the verifier",
                                part.contract
                            );
                        }
                    }
                    addr
                }
                None => {
                    let compiled = verifier_gen::Compiled::for_card(&a.card, &card)?;
                    let addr = chain::deploy_verifier(&provider, &compiled).await?;
                    println!("deployed        {} at {addr}", card.verifier.contract);
                    addr
                }
            };
            let result = chain::verify_on_chain(&provider, address, claims.verifier_calldata.clone()).await?;
            if !result.accepted {
                bail!("the on-chain verifier at {address} rejected the proof");
            }
            println!(
                "on-chain        proof verifies at {address} ({} gas per verifying transaction)",
                result.tx_gas.unwrap_or_default()
            );
            Ok(())
        })?;
    }
    Ok(())
}

/// What the private demo prints: the verified result, then what the chain saw and what it did not.
fn print_private_report(r: &crate::demo::private::PrivateDemoReport, srs: &str) {
    let logits: Vec<String> =
        r.output.iter().map(|v| format!("{:.2}", *v as f64 / (1u64 << r.output_scale_bits) as f64)).collect();
    println!();
    println!(
        "verified class        {} (image label {}), recorded by the consumer's callback",
        r.predicted,
        r.label.map(|l| l.to_string()).unwrap_or("?".into())
    );
    println!("verified logits       [{}]", logits.join(", "));
    println!("keys and verifier     {srs}");
    println!("gas                   request {} · fulfil (verify + callback) {}", r.request_gas, r.fulfil_gas);
    println!("latency               {:.2} s from the request to the callback", r.latency.as_secs_f64());
    println!();
    println!("public (on-chain)     model id {} (a committed-input model), listing {}", r.model_id, r.listing_id);
    println!("                      requester {} (the PrivateClassifier consumer)", r.consumer);
    println!("                      prover {} and its encryption key {}", r.prover, r.encryption_key);
    println!("                      commitment C = Poseidon(packed input ‖ salt) = {}", r.commitment);
    println!(
        "                      ciphertext {} bytes (81 + 8 × {} values: it reveals the input's length only)",
        r.ciphertext_bytes, r.input_len
    );
    println!("                      the verified output, gas, and timing of request and fulfilment");
    println!("hidden                the {} input values and the salt: the prover opened them off-chain", r.input_len);
    println!(
        "checked               the request ({} bytes of calldata), the fulfilment and all their logs contain \
         none of: {}",
        r.request_calldata_bytes,
        r.searched.join(", ")
    );
}

/// `demo`.
pub fn demo(a: DemoArgs) -> anyhow::Result<()> {
    crate::progress::enable_terminal();
    let stem = a.onnx.file_stem().map(|s| s.to_string_lossy().into_owned()).context("--onnx has no file name")?;
    let model_dir = a.work_dir.join(if a.private { format!("{stem}-private") } else { stem.clone() });
    let card_path = model_dir.join(format!("{stem}.card.json"));
    // The ceremony file, imported once (every check, Lagrange points recomputed) into what setup,
    // prove and the node load; `Srs::load` re-checks it on every load.
    let srs_path = a.work_dir.join("srs").join("hermez-11.srs");
    let srs = match Srs::load(&srs_path) {
        Ok(srs) => srs,
        Err(_) => {
            println!("[demo] importing the ceremony SRS {} (checks, Lagrange points)...", a.ceremony_srs.display());
            let srs = Srs::import(&a.ceremony_srs, &models::srs::ImportOptions::default())?;
            std::fs::create_dir_all(srs_path.parent().expect("has a parent"))?;
            srs.save(&srs_path)?;
            srs
        }
    };
    println!("[demo] SRS: {}", srs.info.describe());
    let onnx_sha = std::fs::read(&a.onnx).map(|b| models::artifact::sha256_hex(&b)).ok();
    let fresh = ModelCard::load(&card_path).ok().filter(|c| {
        (c.srs.sha256 == srs.info.sha256 || (a.private && c.srs.insecure))
            && c.input_committed == a.private
            && onnx_sha.as_deref() == Some(c.onnx_sha256.as_str())
            && c.check_circuit_version().is_ok()
    });
    // The committed-input circuit (Poseidon and the in-circuit input range check) may not fit the
    // shipped ceremony file's k = 11; then the private demo uses the insecure dev SRS (chain 31337).
    let mut srs_file = Some(srs_path.clone());
    let mut srs_text = srs.info.describe();
    match fresh {
        Some(card) => {
            println!("[demo] reusing the keys in {}", model_dir.display());
            if card.srs.insecure {
                srs_file = None;
                srs_text = card.srs.describe();
            }
        }
        None => {
            println!("[demo] setting up {} (quantize, keygen, generate and compile the verifier)...", a.onnx.display());
            let mut opts = SetupOptions::new(a.onnx.clone(), model_dir.clone(), SrsSource::File(srs_path.clone()));
            opts.max_k = srs.info.k;
            opts.private_input = a.private;
            match setup::run(&opts) {
                Err(crate::Error::Models(models::Error::NoLayout(why))) if a.private => {
                    println!(
                        "[demo] the committed-input circuit does not fit the ceremony file (k <= {}): {why}",
                        srs.info.k
                    );
                    println!("[demo] using the INSECURE dev SRS instead (public seed; its verifier runs on chain 31337 only)");
                    opts.srs = SrsSource::InsecureDev { seed: 42 };
                    opts.max_k = models::prover::DEFAULT_MAX_K;
                    let (card, _) = setup::run(&opts)?;
                    srs_file = None;
                    srs_text = card.srs.describe();
                }
                other => {
                    other?;
                }
            }
        }
    }
    let opts = crate::demo::DemoOptions {
        anvil: a.anvil,
        card: card_path,
        forge_out: a.forge_out,
        input: a.input,
        work_dir: a.work_dir.join("node"),
        load_requests: a.load_requests,
        srs: srs_file,
    };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    if a.private {
        let report = rt.block_on(crate::demo::private::run(&opts, |line| println!("[demo] {line}")))?;
        print_private_report(&report, &srs_text);
        return Ok(());
    }
    let report = rt.block_on(crate::demo::run(&opts, |line| println!("[demo] {line}")))?;
    let logits: Vec<String> =
        report.output.iter().map(|v| format!("{:.2}", *v as f64 / (1u64 << report.output_scale_bits) as f64)).collect();
    println!();
    println!(
        "verified prediction   {} (image label {})",
        report.predicted,
        report.label.map(|l| l.to_string()).unwrap_or("?".into())
    );
    println!("verified logits       [{}]", logits.join(", "));
    println!("callback              {}", if report.callback_succeeded { "succeeded" } else { "FAILED" });
    println!("keys and verifier     {}", srs.info.describe());
    println!(
        "bounty                {}",
        if report.bounty_paid { "paid to the submitter" } else { "not paid (wrong digit)" }
    );
    println!("gas                   request {} · fulfil (verify + callback) {}", report.request_gas, report.fulfil_gas);
    println!("latency               {:.2} s from requestInference to the callback", report.latency.as_secs_f64());
    if let Some(load) = report.load {
        println!(
            "load                  {} requests: {:.1} requests/minute, latency p50 {:.2} s, p95 {:.2} s (request mined → fulfilment mined)",
            load.requests,
            load.per_minute,
            load.p50.as_secs_f64(),
            load.p95.as_secs_f64()
        );
    }
    Ok(())
}

/// `run`: the node, until SIGTERM or Ctrl-C.
pub fn run_node(a: RunArgs) -> anyhow::Result<()> {
    let mut cfg =
        crate::config::NodeConfig::load(&a.config).with_context(|| format!("loading {}", a.config.display()))?;
    if let Some(url) = a.rpc_url {
        cfg.rpc.http_url = url;
    }
    if let Some(c) = a.coordinator {
        cfg.contract.coordinator = Some(c);
    }
    if let Some(d) = a.deployments {
        cfg.contract.deployments = Some(d);
    }
    if let Some(s) = a.store {
        cfg.store.path = s;
    }
    if let Some(m) = a.metrics_listen {
        cfg.metrics.listen = m;
    }
    if let Some(k) = a.key_file {
        cfg.private.key_file = Some(k);
    }
    if let Some(c) = a.confirmations {
        cfg.prover.confirmations = c;
    }
    if let Some(b) = a.start_block {
        cfg.contract.start_block = b;
    }
    cfg.store.reinit = a.reinit_store;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let result = rt.block_on(async {
        let (tx, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            tracing::info!("shutdown requested");
            let _ = tx.send(true);
        });
        crate::service::serve(cfg, None, std::sync::Arc::default(), rx).await
    });
    // A proof still running on a blocking thread must not hold the process past its grace period.
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    result?;
    Ok(())
}

/// `bench`.
pub fn bench(a: BenchArgs) -> anyhow::Result<()> {
    crate::progress::enable_terminal();
    let solc = a.solc.clone().unwrap_or_else(verifier_gen::default_solc);
    if a.child {
        let row = crate::bench::measure(&a.models[0], a.runs, solc, &a.anvil, a.private_input)?;
        println!("{}", serde_json::to_string(&row)?);
        return Ok(());
    }
    let exe = std::env::current_exe()?;
    let mut rows = Vec::new();
    for model in &a.models {
        eprintln!("measuring {} ({} proving runs)...", model.display(), a.runs);
        let out = std::process::Command::new(&exe)
            .arg("bench")
            .arg("--child")
            .arg("--runs")
            .arg(a.runs.to_string())
            .arg("--anvil")
            .arg(&a.anvil)
            .arg("--solc")
            .arg(&solc)
            .args(a.private_input.then_some("--private-input"))
            .arg(model)
            .env("RUST_LOG", "warn")
            .stderr(std::process::Stdio::inherit())
            .output()?;
        if !out.status.success() {
            bail!("measuring {} failed", model.display());
        }
        rows.push(serde_json::from_slice::<crate::bench::BenchRow>(&out.stdout)?);
    }
    println!("{}", crate::bench::table(&rows));
    println!("2 cores, insecure dev SRS, anvil --hardfork prague, solc 0.8.30 (optimizer 200 runs, Yul optimizer off)");
    Ok(())
}

/// `deploy-coordinator`.
pub fn deploy_coordinator(a: DeployCoordinatorArgs) -> anyhow::Result<()> {
    let init_code = crate::contracts::forge_bytecode(&a.forge_out, "InferenceCoordinator").with_context(|| {
        format!(
            "the coordinator's creation code comes from forge's build output ({}): run `forge build` in the zkinfer \
             repository and run this command from its root, or pass --forge-out <repository>/out",
            a.forge_out.display()
        )
    })?;
    let salt = a.salt.unwrap_or_else(crate::deploy::default_coordinator_salt);
    block_on(async {
        let (mut deployer, path) = a.chain.deployer().await?;
        let d = deployer.deploy_coordinator(&init_code, salt, &path).await.map_err(|e| stopped(&deployer, &path, e))?;
        println!("coordinator     {} (salt {salt})", d.address);
        print_spent(&deployer);
        Ok(())
    })
}

/// `deploy-verifier`.
pub fn deploy_verifier(a: DeployVerifierArgs) -> anyhow::Result<()> {
    let card = ModelCard::load(&a.card)?;
    let compiled = verifier_gen::Compiled::for_card(&a.card, &card)?;
    block_on(async {
        let (mut deployer, _) = a.chain.deployer().await?;
        let v = deployer.deploy_verifier(&card, &compiled).await?;
        println!("verifier        {} of {} (codehash {})", v.address, card.name, card.verifier.codehash);
        print_spent(&deployer);
        Ok(())
    })
}

/// `list-model`.
pub fn list_model(a: ListModelArgs) -> anyhow::Result<()> {
    let card = ModelCard::load(&a.card)?;
    let terms = crate::deploy::ListingTerms { fee: a.fee, deadline_seconds: a.deadline_seconds };
    let sample = || -> crate::Result<alloy::primitives::Bytes> {
        match &a.sample {
            Some(path) => crate::deploy::load_sample(path),
            None => {
                println!("sample          proving one with the card's keys (--sample to give one)");
                let srs = setup::card_srs(&card, a.srs.as_deref())?;
                crate::contracts::sample_calldata(&prove::load(&a.card, &srs)?)
            }
        }
    };
    block_on(async {
        let (mut deployer, path) = a.chain.deployer().await?;
        let l = deployer
            .list_model(&a.card, &card, a.coordinator, &path, terms, sample)
            .await
            .map_err(|e| stopped(&deployer, &path, e))?;
        println!("coordinator     {}", l.coordinator);
        println!("model           {} (id {}, verifier {})", card.name, l.model_id, l.verifier);
        match l.listing_id {
            Some(id) => {
                println!("listing         {id} ({} wei per request, {} s to fulfil)", a.fee, a.deadline_seconds)
            }
            None => println!("listing         none yet (dry run)"),
        }
        print_spent(&deployer);
        Ok(())
    })
}

/// `encryption-key new`: creates the ring, or rotates it.
pub fn encryption_key_new(a: KeyFileArgs) -> anyhow::Result<()> {
    use models::envelope::KeyRing;
    let rng = &mut rand::rngs::OsRng;
    let (ring, rotated) = if a.key_file.exists() {
        let mut ring = KeyRing::load(&a.key_file).with_context(|| format!("rotating {}", a.key_file.display()))?;
        ring.generate_new(rng);
        (ring, true)
    } else {
        (KeyRing::generate(rng), false)
    };
    ring.save(&a.key_file)?;
    let public = B256::from(ring.current().public());
    if rotated {
        println!("rotated         {} ({} keys)", a.key_file.display(), ring.keys().len());
        println!(
            "kept            {} older key{}: requests sealed to them still open",
            ring.keys().len() - 1,
            if ring.keys().len() == 2 { "" } else { "s" }
        );
    } else {
        println!("created         {} (mode 0600: it holds the secret key)", a.key_file.display());
    }
    println!("public key      {public}");
    println!(
        "next            publish it: prover-node encryption-key register --key-file {} --rpc-url URL (signed by the \
         node's account); until then requests are sealed to the key registered before",
        a.key_file.display()
    );
    Ok(())
}

/// `encryption-key show`.
pub fn encryption_key_show(a: KeyFileArgs) -> anyhow::Result<()> {
    let ring = models::envelope::KeyRing::load(&a.key_file)?;
    for (i, key) in ring.keys().iter().enumerate() {
        let newest = if i + 1 == ring.keys().len() { " (newest: the one to register)" } else { "" };
        println!("key {i:<11} {} created {}{newest}", B256::from(key.secret.public()), key.created);
    }
    Ok(())
}

/// `encryption-key register`.
pub fn encryption_key_register(a: RegisterKeyArgs) -> anyhow::Result<()> {
    let ring = models::envelope::KeyRing::load(&a.keys.key_file)?;
    let key = B256::from(ring.current().public());
    block_on(async {
        let (mut deployer, path) = a.chain.deployer().await?;
        let r = deployer.register_encryption_key(a.coordinator, &path, key).await?;
        println!("coordinator     {}", r.coordinator);
        println!("account         {}", deployer.sender());
        let before = if r.previous.is_zero() { "none".to_string() } else { r.previous.to_string() };
        match (r.sent, r.previous == key) {
            (_, true) => println!("encryption key  {key} (already registered)"),
            (true, false) => println!("encryption key  {key} registered (was {before})"),
            (false, false) => println!("encryption key  {key} not registered (dry run; registered now: {before})"),
        }
        print_spent(&deployer);
        Ok(())
    })
}

/// The error of a deployment command, with what it sent before failing: the deployer's errors speak of the
/// failing step only ("… it was not sent"), while earlier steps of the same run may have been mined.
fn stopped(deployer: &Deployer, deployments: &std::path::Path, e: crate::Error) -> anyhow::Error {
    let e = anyhow::Error::from(e);
    match deployer.sent() {
        0 => e.context("stopped; this run sent no transaction"),
        n => e.context(format!(
            "stopped after {n} transaction{} of this run {} mined ({} ETH, listed above); a model they \
             registered is recorded in {}, and running the command again sends only what is still missing",
            if n == 1 { "" } else { "s" },
            if n == 1 { "was" } else { "were" },
            crate::deploy::format_ether(deployer.spent()),
            deployments.display()
        )),
    }
}

fn print_spent(deployer: &Deployer) {
    match deployer.sent() {
        0 => println!("sent            nothing"),
        n => println!(
            "sent            {n} transaction{}, {} ETH",
            if n == 1 { "" } else { "s" },
            crate::deploy::format_ether(deployer.spent())
        ),
    }
}

fn block_on(f: impl std::future::Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(f)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn deployment_commands_take_the_signer_from_a_keystore_or_the_key() {
        let parse = |args: &[&str]| Cli::try_parse_from([&["prover-node"][..], args].concat());
        let Command::ListModel(a) =
            parse(&["list-model", "--rpc-url", "http://x", "--card", "c.json", "--keystore", "k.json", "--fee", "5"])
                .unwrap()
                .command
        else {
            panic!("not list-model")
        };
        assert_eq!(
            (a.fee, a.deadline_seconds, a.chain.keystore_password_env.as_str()),
            (U256::from(5), 3600, "ZKINFER_KEYSTORE_PASSWORD")
        );
        assert!(parse(&["deploy-verifier", "--rpc-url", "http://x"]).is_err(), "--card is required");
        assert!(parse(&["list-model", "--rpc-url", "http://x", "--card", "c", "--fee", "-1"]).is_err());
        let Command::DeployCoordinator(d) =
            parse(&["deploy-coordinator", "--rpc-url", "http://x", "--salt", &format!("{}", B256::repeat_byte(1))])
                .unwrap()
                .command
        else {
            panic!("not deploy-coordinator")
        };
        assert_eq!(d.salt, Some(B256::repeat_byte(1)));
        let Command::EncryptionKey(EncryptionKeyCommand::Register(r)) = parse(&[
            "encryption-key",
            "register",
            "--key-file",
            "k.json",
            "--rpc-url",
            "http://x",
            "--coordinator",
            &Address::repeat_byte(2).to_string(),
            "--dry-run",
        ])
        .unwrap()
        .command
        else {
            panic!("not encryption-key register")
        };
        assert_eq!(
            (r.keys.key_file, r.coordinator, r.chain.dry_run),
            ("k.json".into(), Some(Address::repeat_byte(2)), true)
        );
        assert!(parse(&["encryption-key", "new"]).is_err(), "--key-file is required");
    }

    #[test]
    fn encryption_key_new_creates_the_ring_then_rotates_it_keeping_older_keys() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("keys.json");
        encryption_key_new(KeyFileArgs { key_file: file.clone() }).unwrap();
        let first = models::envelope::KeyRing::load(&file).unwrap().current().public();
        encryption_key_new(KeyFileArgs { key_file: file.clone() }).unwrap();
        let ring = models::envelope::KeyRing::load(&file).unwrap();
        assert_eq!(ring.keys().len(), 2);
        assert_ne!(ring.current().public(), first, "a new newest key");
        assert!(ring.find(&first).is_some(), "the older key still opens what was sealed to it");
    }
}
