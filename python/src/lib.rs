//! `zkinfer._native`: the Python extension module of zkinfer (see `python/README.md` and the
//! stub `python/zkinfer/_native.pyi`).
//!
//! The same operations as the `prover-node` CLI, with Python-friendly signatures: paths are `str`
//! or `os.PathLike`, inputs are sequences of numbers, options are keyword arguments whose defaults
//! are the CLI's. Key generation, proving, verification and SRS work run with the GIL released,
//! so other Python threads keep running meanwhile.

// The closures run with the GIL released return the library's own error types, which are large
// (paths, messages); each crosses into Python once per call, so boxing them would buy nothing.
#![allow(clippy::result_large_err)]

mod card;
mod error;
mod proof;

use std::{collections::BTreeMap, path::PathBuf, time::Instant};

use alloy::primitives::{Address, B256, U256};
use card::{card_path, ModelCard};
use models::{card::ModelCard as Card, srs::Srs};
use proof::{Proof, Verification};
use prover_node::{
    proof::{Fulfiller, ProofFile},
    prove::LoadedModel,
    setup::{SetupOptions, SrsSource},
};
use pyo3::{
    exceptions::{PyTypeError, PyValueError},
    prelude::*,
    types::PyInt,
};

/// A serde value as the Python object `json.loads` makes of its JSON.
pub(crate) fn json_to_py<'py, T: serde::Serialize>(py: Python<'py>, value: &T) -> PyResult<Bound<'py, PyAny>> {
    let text = serde_json::to_string(value).expect("zkinfer documents serialize");
    py.import("json")?.call_method1("loads", (text,))
}

/// A Python int from its decimal digits (for 256-bit values).
pub(crate) fn int_of_decimal<'py>(py: Python<'py>, digits: &str) -> PyResult<Bound<'py, PyAny>> {
    py.get_type::<PyInt>().call1((digits,))
}

fn u256_arg(name: &str, value: &Bound<'_, PyAny>) -> PyResult<U256> {
    if !value.is_instance_of::<PyInt>() {
        return Err(PyTypeError::new_err(format!("{name} must be an int")));
    }
    let digits = value.str()?.to_string();
    digits
        .parse::<U256>()
        .map_err(|_| PyValueError::new_err(format!("{name} = {digits} is not an unsigned 256-bit integer")))
}

fn address_arg(name: &str, value: Option<&str>) -> PyResult<Address> {
    match value {
        None => Ok(Address::ZERO),
        Some(s) => s.parse().map_err(|_| {
            PyValueError::new_err(format!("{name} = {s:?} is not an address (0x followed by 40 hex digits)"))
        }),
    }
}

fn b256_arg(name: &str, value: &str) -> PyResult<B256> {
    value.parse().map_err(|_| {
        PyValueError::new_err(format!("{name} = {value:?} is not 32 bytes (0x followed by 64 hex digits)"))
    })
}

/// The salt of a committed-input model's proof, parsed and checked below 2^248.
fn salt_arg(py: Python<'_>, salt: Option<&str>) -> PyResult<Option<models::Fr>> {
    salt.map(|s| {
        let bytes = b256_arg("salt", s)?;
        models::commitment::salt_from_bytes(&bytes.0).map_err(|e| error::from_models(py, e))
    })
    .transpose()
}

/// Exactly one of the two input forms, quantized for `model`.
fn quantized_input(
    py: Python<'_>,
    model: &models::graph::QuantModel,
    input: Option<Vec<f64>>,
    input_quantized: Option<Vec<i64>>,
) -> PyResult<Vec<i64>> {
    let result = match (input, input_quantized) {
        (Some(x), None) => model.quantize_input(&x),
        (None, Some(q)) => model.check_input(&q).map(|()| q),
        _ => {
            return Err(PyValueError::new_err(
                "give exactly one of input (real values) or input_quantized (integers at the input scale)",
            ))
        }
    };
    result.map_err(|e| error::from_models(py, e))
}

/// Refuses a ceremony card without an SRS file up front, naming the SRS its keys were made with
/// (a dev-SRS card needs none: the SRS is derived from the card's seed).
fn require_srs(py: Python<'_>, card: &Card, srs: Option<&PathBuf>) -> PyResult<()> {
    if srs.is_none() && card.srs.dev_seed.is_none() {
        return Err(error::new(
            py,
            error::SrsError::new_err::<String>,
            "SrsRequired",
            format!(
                "the keys of `{}` were made with the SRS {} ({}): pass srs=<that file>",
                card.name,
                card.srs.source,
                card.srs.describe()
            ),
        ));
    }
    Ok(())
}

/// The SRS file of an existing card, or its dev SRS (cached on disk, generated on first use).
fn card_srs(py: Python<'_>, card: &Card, srs: Option<PathBuf>) -> PyResult<Srs> {
    require_srs(py, card, srs.as_ref())?;
    py.detach(|| prover_node::setup::card_srs(card, srs.as_deref())).map_err(|e| error::from_node(py, e))
}

/// A model loaded for proving: its card, proving key and SRS, loaded once for many proofs.
#[pyclass(name = "Prover", module = "zkinfer", frozen)]
struct Prover {
    card: Py<ModelCard>,
    loaded: LoadedModel,
}

#[pymethods]
impl Prover {
    /// Loads the card's model, proving key and SRS. `srs` is the SRS file the keys were made with
    /// (an imported or a ceremony file); leave it out for keys made with the insecure dev SRS.
    #[new]
    #[pyo3(signature = (card, *, srs = None))]
    fn new(py: Python<'_>, card: &Bound<'_, PyAny>, srs: Option<PathBuf>) -> PyResult<Self> {
        let path = card_path(card)?;
        let card = ModelCard::load(py, &path)?;
        let srs = card_srs(py, &card.card, srs)?;
        let loaded = py.detach(|| prover_node::prove::load(&card.path, &srs)).map_err(|e| error::from_node(py, e))?;
        Ok(Self { card: Py::new(py, card)?, loaded })
    }

    /// The model card.
    #[getter]
    fn card(&self, py: Python<'_>) -> Py<ModelCard> {
        self.card.clone_ref(py)
    }

    /// Quantizes real input values: round(x · 2^input_scale_bits), range-checked.
    fn quantize(&self, py: Python<'_>, input: Vec<f64>) -> PyResult<Vec<i64>> {
        quantized_input(py, &self.loaded.model, Some(input), None)
    }

    /// The quantized output the circuit proves for an input (the integer reference forward pass,
    /// no proof): integers at scale 2^output_scale_bits.
    #[pyo3(signature = (input = None, *, input_quantized = None))]
    fn forward(
        &self,
        py: Python<'_>,
        input: Option<Vec<f64>>,
        input_quantized: Option<Vec<i64>>,
    ) -> PyResult<Vec<i64>> {
        let q = quantized_input(py, &self.loaded.model, input, input_quantized)?;
        self.loaded.model.forward(&q).map_err(|e| error::from_models(py, e))
    }

    /// Proves one inference. `input` is real values (quantized at the model's input scale) or
    /// `input_quantized` integers; `request_id`, `chain_id`, `coordinator` and `fulfiller` bind the
    /// proof to one coordinator request and the account that submits it (defaults: request 0 on
    /// chain 31337, zero addresses, as `prover-node prove`). `salt` (0x-hex, below 2^248) is the salt
    /// of a committed-input model's input commitment, required for such a model and refused for
    /// others. The GIL is released while proving.
    #[pyo3(signature = (input = None, *, input_quantized = None, request_id = None, chain_id = 31337, coordinator = None, fulfiller = None, salt = None))]
    #[allow(clippy::too_many_arguments)]
    fn prove(
        &self,
        py: Python<'_>,
        input: Option<Vec<f64>>,
        input_quantized: Option<Vec<i64>>,
        request_id: Option<&Bound<'_, PyAny>>,
        chain_id: u64,
        coordinator: Option<&str>,
        fulfiller: Option<&str>,
        salt: Option<&str>,
    ) -> PyResult<Proof> {
        let input = quantized_input(py, &self.loaded.model, input, input_quantized)?;
        let salt = salt_arg(py, salt)?;
        let request_id = request_id.map(|r| u256_arg("request_id", r)).transpose()?.unwrap_or_default();
        let fulfiller = Fulfiller {
            chain_id,
            coordinator: address_arg("coordinator", coordinator)?,
            address: address_arg("fulfiller", fulfiller)?,
        };
        let file = py
            .detach(|| prover_node::prove::prove(&self.loaded, &input, salt, request_id, &fulfiller))
            .map_err(|e| error::from_node(py, e))?;
        Ok(Proof { file })
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        format!("Prover({})", self.card.borrow(py).__repr__())
    }
}

/// Quantizes, sizes and sets up an ONNX model: proving and verifying keys, the Solidity verifier
/// (generated and compiled) and the model card, all written to `out_dir`. Options not given take
/// the CLI's defaults (`prover-node setup`). Exactly one of `srs` (an imported or ceremony SRS
/// file) or `insecure_dev_srs=True` (throwaway keys, chain 31337 only) must be chosen.
#[pyfunction]
#[pyo3(signature = (
    onnx, out_dir, *, srs = None, insecure_dev_srs = false, dev_srs_seed = 42, name = None,
    input_scale_bits = None, weight_scale_bits = None, activation_scale_bits = None, value_bits = None,
    tolerance = None, input_range = None, calibration_set = None, eval_set = None, dims = None,
    k = None, max_k = None, lanes = None, private_input = false, solc = None
))]
#[allow(clippy::too_many_arguments)]
fn setup(
    py: Python<'_>,
    onnx: PathBuf,
    out_dir: PathBuf,
    srs: Option<PathBuf>,
    insecure_dev_srs: bool,
    dev_srs_seed: u64,
    name: Option<String>,
    input_scale_bits: Option<u32>,
    weight_scale_bits: Option<u32>,
    activation_scale_bits: Option<u32>,
    value_bits: Option<u32>,
    tolerance: Option<f64>,
    input_range: Option<(f64, f64)>,
    calibration_set: Option<PathBuf>,
    eval_set: Option<PathBuf>,
    dims: Option<BTreeMap<String, usize>>,
    k: Option<u32>,
    max_k: Option<u32>,
    lanes: Option<usize>,
    private_input: bool,
    solc: Option<PathBuf>,
) -> PyResult<ModelCard> {
    let source = match (srs, insecure_dev_srs) {
        (Some(path), false) => SrsSource::File(path),
        (None, true) => {
            PyErr::warn(
                py,
                &py.get_type::<pyo3::exceptions::PyUserWarning>(),
                c"INSECURE dev SRS (public seed): anyone can forge proofs for these keys; their verifier \
                  only runs on chain 31337. Tests and demos only.",
                1,
            )?;
            SrsSource::InsecureDev { seed: dev_srs_seed }
        }
        _ => return Err(PyValueError::new_err(
            "choose an SRS: srs=<file> (a ceremony or imported SRS) or insecure_dev_srs=True (tests and demos only)",
        )),
    };
    let mut opts = SetupOptions::new(onnx, out_dir, source);
    opts.name = name;
    opts.input_scale_bits = input_scale_bits;
    opts.weight_scale_bits = weight_scale_bits;
    opts.activation_scale_bits = activation_scale_bits;
    opts.value_bits = value_bits;
    opts.tolerance = tolerance.unwrap_or(opts.tolerance);
    opts.input_range = input_range;
    opts.calibration_set = calibration_set;
    opts.eval_set = eval_set;
    opts.dims = dims.unwrap_or_default();
    opts.k = k;
    opts.max_k = max_k.unwrap_or(opts.max_k);
    opts.lanes = lanes;
    opts.private_input = private_input;
    // An installed wheel is away from the checkout it was built in: look for solc the way its user
    // expects (ZKINFER_SOLC, PATH, then that checkout), before any long work.
    opts.solc = match solc {
        Some(solc) => solc,
        None => verifier_gen::find_solc().map_err(|e| error::from_verifier(py, e))?,
    };
    let (_, path) = py.detach(|| prover_node::setup::run(&opts)).map_err(|e| error::from_node(py, e))?;
    // The card as everyone else will read it from its file (a float may differ from the in-memory
    // one in its last digit after the JSON round trip).
    ModelCard::load(py, &path)
}

/// Chooses the quantization `setup` would choose (scales, value bits, input range) and measures
/// the quantized model's output error against the float model, without making keys. Returns the
/// card's `calibration` section as a dict.
#[pyfunction]
#[pyo3(signature = (
    onnx, *, input_scale_bits = None, weight_scale_bits = None, activation_scale_bits = None,
    value_bits = None, tolerance = None, input_range = None, calibration_set = None, dims = None
))]
#[allow(clippy::too_many_arguments)]
fn calibrate<'py>(
    py: Python<'py>,
    onnx: PathBuf,
    input_scale_bits: Option<u32>,
    weight_scale_bits: Option<u32>,
    activation_scale_bits: Option<u32>,
    value_bits: Option<u32>,
    tolerance: Option<f64>,
    input_range: Option<(f64, f64)>,
    calibration_set: Option<PathBuf>,
    dims: Option<BTreeMap<String, usize>>,
) -> PyResult<Bound<'py, PyAny>> {
    let mut opts = SetupOptions::new(onnx, PathBuf::new(), SrsSource::InsecureDev { seed: 0 });
    opts.input_scale_bits = input_scale_bits;
    opts.weight_scale_bits = weight_scale_bits;
    opts.activation_scale_bits = activation_scale_bits;
    opts.value_bits = value_bits;
    opts.tolerance = tolerance.unwrap_or(opts.tolerance);
    opts.input_range = input_range;
    opts.calibration_set = calibration_set;
    opts.dims = dims.unwrap_or_default();
    let calibrated = py.detach(|| prover_node::setup::calibrate_model(&opts)).map_err(|e| error::from_node(py, e))?;
    json_to_py(py, &calibrated.calibration)
}

/// Reads a model card written by `setup`.
#[pyfunction]
fn load_card(py: Python<'_>, path: PathBuf) -> PyResult<ModelCard> {
    ModelCard::load(py, &path)
}

/// Proves one inference of the card's model (loads the keys each call; keep a `Prover` to prove
/// many). Arguments as `Prover(card, srs=srs).prove(...)`.
#[pyfunction]
#[pyo3(signature = (card, input = None, *, input_quantized = None, srs = None, request_id = None, chain_id = 31337, coordinator = None, fulfiller = None, salt = None))]
#[allow(clippy::too_many_arguments)]
fn prove(
    py: Python<'_>,
    card: &Bound<'_, PyAny>,
    input: Option<Vec<f64>>,
    input_quantized: Option<Vec<i64>>,
    srs: Option<PathBuf>,
    request_id: Option<&Bound<'_, PyAny>>,
    chain_id: u64,
    coordinator: Option<&str>,
    fulfiller: Option<&str>,
    salt: Option<&str>,
) -> PyResult<Proof> {
    Prover::new(py, card, srs)?.prove(py, input, input_quantized, request_id, chain_id, coordinator, fulfiller, salt)
}

/// For a private request to a committed-input model: commits to the input with a fresh salt and
/// seals it to the prover's X25519 `encryption_key` for one chain, coordinator and requester (the
/// account or contract that will call `requestPrivateInference`). Returns a dict with the
/// `commitment`, `encryption_key` and `ciphertext` to pass on (0x-hex) and the `salt`, which stays
/// with the caller.
#[pyfunction]
#[pyo3(signature = (card, input = None, *, input_quantized = None, encryption_key, requester, coordinator, chain_id = 31337))]
#[allow(clippy::too_many_arguments)]
fn seal_input<'py>(
    py: Python<'py>,
    card: &Bound<'py, PyAny>,
    input: Option<Vec<f64>>,
    input_quantized: Option<Vec<i64>>,
    encryption_key: &str,
    requester: &str,
    coordinator: &str,
    chain_id: u64,
) -> PyResult<Bound<'py, PyAny>> {
    let path = card_path(card)?;
    let card = ModelCard::load(py, &path)?;
    let model = card.card.load_model(&path).map_err(|e| error::from_models(py, e))?;
    let input = quantized_input(py, &model, input, input_quantized)?;
    let model_id = b256_arg("the card's model_id", &card.card.model_id)?;
    let audience = prover_node::private::Audience {
        chain_id,
        coordinator: address_arg("coordinator", Some(coordinator))?,
        requester: address_arg("requester", Some(requester))?,
        model_id,
    };
    let key = b256_arg("encryption_key", encryption_key)?;
    let sealed = prover_node::private::seal_input(&card.card, &input, key, &audience, &mut rand::rngs::OsRng)
        .map_err(|e| error::from_node(py, e))?;
    json_to_py(py, &sealed)
}

/// Verifies a proof (a `Proof` or the path of a proof JSON) against the card, as
/// `prover-node verify` does natively: the claims are checked against what the proof covers
/// (ranges, instances, calldata, prediction; `ClaimError`), then the proof against the verifying
/// key and the card's SRS (`InvalidProofError`). `srs` as for `Prover`.
#[pyfunction]
#[pyo3(signature = (card, proof, *, srs = None))]
fn verify(
    py: Python<'_>,
    card: &Bound<'_, PyAny>,
    proof: &Bound<'_, PyAny>,
    srs: Option<PathBuf>,
) -> PyResult<Verification> {
    let path = card_path(card)?;
    let card = ModelCard::load(py, &path)?;
    let file: ProofFile = match proof.cast::<Proof>() {
        Ok(p) => p.get().file.clone(),
        Err(_) => ProofFile::load(&proof.extract::<PathBuf>()?).map_err(|e| error::from_node(py, e))?,
    };
    let encoding = verifier_gen::Encoding::of_card(&card.card);
    let claims = prover_node::verify::check_claims(&card.card.model_id, &encoding, &file)
        .map_err(|e| error::from_claim(py, e))?;
    require_srs(py, &card.card, srs.as_ref())?;
    let started = Instant::now();
    py.detach(|| {
        prover_node::verify::verify_native(&card.card, &card.path, srs.as_deref(), &claims.instances, &file.proof)
    })
    .map_err(|e| error::from_node(py, e))?;
    Ok(Verification {
        output: claims.output,
        output_dequantized: claims.dequantized,
        prediction: claims.prediction,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Imports a ceremony file (snarkjs `.ptau` or raw halo2 `ParamsKZG`) with every check, downsized
/// to 2^k points, and writes the SRS `setup`/`prove` load to `out`. Returns its provenance.
#[pyfunction]
#[pyo3(signature = (file, out, *, k = None, allow_unknown_ceremony = false))]
fn import_srs<'py>(
    py: Python<'py>,
    file: PathBuf,
    out: PathBuf,
    k: Option<u32>,
    allow_unknown_ceremony: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let opts = models::srs::ImportOptions { k, allow_unknown_ceremony };
    let info = py
        .detach(|| {
            let srs = Srs::import(&file, &opts)?;
            srs.save(&out)?;
            Ok(srs.info)
        })
        .map_err(|e| error::from_models(py, e))?;
    json_to_py(py, &info)
}

/// Sends zkinfer's log lines (setup steps, SRS warnings, timings) to stderr. `filter` is a
/// `RUST_LOG`-style directive such as "info" or "prover_node=debug". Returns False if logging was
/// already set up (by an earlier call), True otherwise.
#[pyfunction]
#[pyo3(signature = (filter = "info"))]
fn enable_logging(filter: &str) -> PyResult<bool> {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .map_err(|e| PyValueError::new_err(format!("filter {filter:?}: {e}")))?;
    Ok(tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init()
        .is_ok())
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("DEV_CHAIN_ID", verifier_gen::DEV_CHAIN_ID)?;
    error::register(m)?;
    m.add_class::<ModelCard>()?;
    m.add_class::<Prover>()?;
    m.add_class::<Proof>()?;
    m.add_class::<Verification>()?;
    m.add_function(wrap_pyfunction!(setup, m)?)?;
    m.add_function(wrap_pyfunction!(calibrate, m)?)?;
    m.add_function(wrap_pyfunction!(load_card, m)?)?;
    m.add_function(wrap_pyfunction!(prove, m)?)?;
    m.add_function(wrap_pyfunction!(seal_input, m)?)?;
    m.add_function(wrap_pyfunction!(verify, m)?)?;
    m.add_function(wrap_pyfunction!(import_srs, m)?)?;
    m.add_function(wrap_pyfunction!(enable_logging, m)?)?;
    Ok(())
}
