//! Shared harness of the end-to-end tests: the repository's toolchain, zoo model artifacts built
//! once per test process, and anvil instances on free ports that die with the test.

use std::{
    path::{Path, PathBuf},
    sync::{Mutex, OnceLock},
};

use alloy::node_bindings::{Anvil, AnvilInstance};
use models::card::ModelCard;
use prover_node::{
    prove::{self, LoadedModel},
    setup::{self, SetupOptions, SrsSource},
};

/// Seed of the insecure dev SRS the committed verifiers were generated with.
pub const DEV_SEED: u64 = 42;

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

/// The native anvil binary installed by `scripts/setup` (or `$ZKINFER_ANVIL`).
pub fn anvil_bin() -> PathBuf {
    std::env::var_os("ZKINFER_ANVIL")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil"))
}

/// Starts anvil on a free port (prague, instant mining); it is killed when dropped.
pub fn anvil() -> AnvilInstance {
    let bin = anvil_bin();
    assert!(bin.exists(), "{} is missing: run scripts/setup", bin.display());
    Anvil::new().path(bin).args(["--hardfork", "prague"]).spawn()
}

/// Artifacts of a zoo model set up with the dev SRS.
pub struct ZooModel {
    /// Model card path.
    pub card_path: PathBuf,
    /// Loaded card.
    pub card: ModelCard,
    /// Ready to prove.
    pub loaded: LoadedModel,
    /// Compiled verifier.
    pub compiled: verifier_gen::Compiled,
    /// Generated Solidity source.
    pub source: String,
    _dir: tempfile::TempDir,
}

impl std::fmt::Debug for ZooModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZooModel").field("card", &self.card.name).finish_non_exhaustive()
    }
}

/// Largest k of the committed Hermez ceremony file (`srs/hermez-raw-11`).
pub const CEREMONY_K: u32 = 11;

fn build(name: &str, ceremony: bool) -> ZooModel {
    let dir = tempfile::tempdir().expect("temp dir");
    let onnx = root().join(format!("models/zoo/{name}.onnx"));
    let (opts, srs_file) = if ceremony {
        // As scripts/gen-fixtures and the demo do: import the committed ceremony file, k ≤ 11.
        let path = dir.path().join("hermez-11.srs");
        let srs = models::srs::Srs::import(&root().join("srs/hermez-raw-11"), &Default::default()).expect("import");
        srs.save(&path).expect("save SRS");
        let mut opts = SetupOptions::new(onnx, dir.path().to_path_buf(), SrsSource::File(path.clone()));
        opts.max_k = CEREMONY_K;
        (opts, Some(path))
    } else {
        (SetupOptions::new(onnx, dir.path().to_path_buf(), SrsSource::InsecureDev { seed: DEV_SEED }), None)
    };
    let (card, card_path) = setup::run(&opts).unwrap_or_else(|e| panic!("setup of {name}: {e}"));
    let srs = card.srs(srs_file.as_deref()).expect("SRS");
    let loaded = prove::load(&card_path, &srs).expect("load");
    let compiled = verifier_gen::Compiled::for_card(&card_path, &card).expect("verifier artifact");
    let source = std::fs::read_to_string(ModelCard::resolve(&card_path, &card.files.verifier_sol)).expect("source");
    ZooModel { card_path, card, loaded, compiled, source, _dir: dir }
}

/// A zoo model's artifacts on the insecure dev SRS, built once per test process.
pub fn zoo(name: &'static str) -> &'static ZooModel {
    cached(name, false)
}

/// A zoo model's artifacts on the committed Hermez ceremony SRS (k ≤ 11), built once per test process.
pub fn zoo_ceremony(name: &'static str) -> &'static ZooModel {
    cached(name, true)
}

fn cached(name: &'static str, ceremony: bool) -> &'static ZooModel {
    type Cache = Mutex<Vec<(&'static str, bool, &'static ZooModel)>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(Vec::new()));
    let mut guard = cache.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, _, m)) = guard.iter().find(|(n, c, _)| *n == name && *c == ceremony) {
        return m;
    }
    let model: &'static ZooModel = Box::leak(Box::new(build(name, ceremony)));
    guard.push((name, ceremony, model));
    model
}

/// Reads a zoo example input (`models/zoo/<name>.input.json`), quantized for the model.
pub fn example_input(m: &ZooModel) -> Vec<i64> {
    let file = prover_node::proof::InputFile::load(&root().join(format!("models/zoo/{}.input.json", m.card.name)))
        .expect("input");
    file.quantized(&m.loaded.model).expect("quantize")
}

/// forge's build output (`forge build` must have run).
pub fn forge_out() -> PathBuf {
    let out = root().join("out");
    assert!(
        out.join("InferenceCoordinator.sol/InferenceCoordinator.json").exists(),
        "run `forge build` first (scripts/test does)"
    );
    out
}

/// Polls `check` every 50 ms until it returns `Some`, or panics after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: std::time::Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = std::time::Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(started.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
