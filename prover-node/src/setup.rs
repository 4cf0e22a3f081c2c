//! Model setup: ONNX → quantized circuit → keys → Solidity verifier → model card.

use std::path::{Path, PathBuf};

use models::{
    artifact,
    calibrate::{calibrate, Calibration, CalibrationOptions},
    card::{CircuitInfo, Files, ModelCard, TensorInfo, VerifierInfo, PK_KIND, VK_KIND},
    eval::{accuracy, Dataset, FloatRunner},
    graph::QuantModel,
    ir::FloatModel,
    onnx, prover,
    srs::{DevSrsCache, Srs},
};
use serde::Deserialize;
use sha3::{Digest, Keccak256};
use tracing::{info, warn};

use crate::{
    error::{Error, Result},
    progress::Step,
};

/// Where the SRS comes from.
#[derive(Clone, Debug)]
pub enum SrsSource {
    /// A ceremony SRS file in halo2 `ParamsKZG` format.
    File(PathBuf),
    /// INSECURE: derived from a public seed (tests and demos only).
    InsecureDev { seed: u64 },
}

/// Optional metadata next to an ONNX file (`<stem>.meta.json`).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ModelMeta {
    /// Model name.
    pub name: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Input scale.
    pub input_scale_bits: Option<u32>,
    /// Weight scale.
    pub weight_scale_bits: Option<u32>,
    /// Activation scale.
    pub activation_scale_bits: Option<u32>,
    /// Value bits.
    pub value_bits: Option<u32>,
    /// Real-valued input range `[min, max]`.
    pub input_range: Option<(f64, f64)>,
    /// Labelled evaluation set, relative to the meta file.
    pub eval_set: Option<String>,
}

impl ModelMeta {
    /// Reads `<onnx stem>.meta.json` if present.
    pub fn for_onnx(onnx: &Path) -> Result<Option<(Self, PathBuf)>> {
        let path = onnx.with_extension("meta.json");
        if !path.exists() {
            return Ok(None);
        }
        let bytes =
            std::fs::read(&path).map_err(|source| Error::Io { action: "reading", path: path.clone(), source })?;
        let meta = serde_json::from_slice(&bytes).map_err(|e| Error::BadFile {
            path: path.clone(),
            what: "model metadata",
            reason: e.to_string(),
        })?;
        Ok(Some((meta, path)))
    }
}

/// Setup options.
#[derive(Clone, Debug)]
pub struct SetupOptions {
    /// The ONNX model.
    pub onnx: PathBuf,
    /// Output directory.
    pub out_dir: PathBuf,
    /// Model name (default: metadata, else the file stem).
    pub name: Option<String>,
    /// SRS.
    pub srs: SrsSource,
    /// Input scale (default: metadata, else calibrated).
    pub input_scale_bits: Option<u32>,
    /// Weight scale (default: metadata, else calibrated).
    pub weight_scale_bits: Option<u32>,
    /// Activation scale (default: metadata, else calibrated).
    pub activation_scale_bits: Option<u32>,
    /// Value range bits (default: sized from the bound over the input range).
    pub value_bits: Option<u32>,
    /// Calibration tolerance (see `CalibrationOptions::tolerance`).
    pub tolerance: f64,
    /// Values of symbolic dimensions (others are fixed to 1).
    pub dims: std::collections::BTreeMap<String, usize>,
    /// Calibration inputs (default: the eval set, else samples of the input range).
    pub calibration_set: Option<PathBuf>,
    /// Real-valued input range (default: metadata, else [-256, 255], narrowed to fit).
    pub input_range: Option<(f64, f64)>,
    /// Circuit size (default: automatic).
    pub k: Option<u32>,
    /// Largest `k` for automatic sizing.
    pub max_k: u32,
    /// Dot-product lanes (default: chosen by the cost model; 0: dot products in the flex gate).
    pub lanes: Option<usize>,
    /// Labelled evaluation set (default: metadata's).
    pub eval_set: Option<PathBuf>,
    /// Committed-input mode: the input stays a private witness and proofs carry its commitment
    /// (private requests; see `models::commitment`).
    pub private_input: bool,
    /// The solc wrapper.
    pub solc: PathBuf,
}

impl SetupOptions {
    /// The defaults of `prover-node setup` (calibrated scales, value bits from the bound,
    /// automatic k, metadata beside the ONNX file, the project's solc).
    pub fn new(onnx: PathBuf, out_dir: PathBuf, srs: SrsSource) -> Self {
        Self {
            onnx,
            out_dir,
            name: None,
            srs,
            input_scale_bits: None,
            weight_scale_bits: None,
            activation_scale_bits: None,
            value_bits: None,
            tolerance: CalibrationOptions::default().tolerance,
            dims: Default::default(),
            calibration_set: None,
            input_range: None,
            k: None,
            max_k: prover::DEFAULT_MAX_K,
            lanes: None,
            eval_set: None,
            private_input: false,
            solc: verifier_gen::default_solc(),
        }
    }
}

/// Contract name for a model name: `digits_mlp` → `DigitsMlpVerifier`.
pub fn contract_name(name: &str) -> String {
    let mut out = String::new();
    for part in name.split(|c: char| !c.is_ascii_alphanumeric()).filter(|p| !p.is_empty()) {
        let mut chars = part.chars();
        if let Some(first) = chars.next() {
            out.push(first.to_ascii_uppercase());
            out.extend(chars);
        }
    }
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert_str(0, "Model");
    }
    out + "Verifier"
}

/// Step 1 of [`run`]: the imported model, its float runner, its metadata and the chosen
/// quantization, before any circuit or key.
pub struct Calibrated {
    /// Model name (option, else metadata, else the file stem).
    pub name: String,
    /// Description from the metadata.
    pub description: String,
    /// The imported float model.
    pub float: FloatModel,
    /// tract's float forward pass of the same file.
    pub runner: FloatRunner,
    /// The labelled evaluation set (option, else metadata's).
    pub eval_set: Option<PathBuf>,
    /// Scales, value bits, input range and the measured output error.
    pub calibration: Calibration,
}

/// Imports the model and calibrates its quantization with the options' defaults (metadata beside
/// the ONNX file, the eval set as calibration set): what `setup` would choose, without keys.
pub fn calibrate_model(opts: &SetupOptions) -> Result<Calibrated> {
    let meta = ModelMeta::for_onnx(&opts.onnx)?;
    let (meta, meta_path) = match meta {
        Some((m, p)) => (m, Some(p)),
        None => (ModelMeta::default(), None),
    };
    let name = opts.name.clone().or(meta.name.clone()).unwrap_or_else(|| {
        opts.onnx.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "model".into())
    });
    info!(target: "prover_node::setup", onnx = %opts.onnx.display(), "importing ONNX model");
    let import_options = onnx::ImportOptions { dims: opts.dims.iter().map(|(k, v)| (k.clone(), *v)).collect() };
    let float = onnx::import_with(&opts.onnx, &import_options)?;
    let runner = FloatRunner::for_model(&opts.onnx, &float)?;
    let eval_set = opts.eval_set.clone().or_else(|| {
        let (file, meta_path) = (meta.eval_set.as_ref()?, meta_path.as_ref()?);
        Some(meta_path.parent().unwrap_or(Path::new(".")).join(file))
    });
    let calibration_set = opts.calibration_set.clone().or(eval_set.clone());
    let samples = match &calibration_set {
        Some(path) => Some(Dataset::load_inputs(path)?),
        None => None,
    };
    let cal_opts = CalibrationOptions {
        input_scale_bits: opts.input_scale_bits.or(meta.input_scale_bits),
        weight_scale_bits: opts.weight_scale_bits.or(meta.weight_scale_bits),
        activation_scale_bits: opts.activation_scale_bits.or(meta.activation_scale_bits),
        value_bits: opts.value_bits.or(meta.value_bits),
        tolerance: opts.tolerance,
        input_range: opts.input_range.or(meta.input_range),
        samples,
        ..CalibrationOptions::default()
    };
    info!(target: "prover_node::setup", "calibrating scales and sizing value bits from the input range");
    let calibration = calibrate(&float, &runner, &cal_opts)?;
    if calibration.narrowed {
        warn!(target: "prover_node::setup", range = ?calibration.input_range_real, "the default input range was narrowed so that every input in it is provable; pass --input-min/--input-max to choose it");
    }
    if !calibration.within_tolerance {
        warn!(target: "prover_node::setup", max_abs_error = calibration.error.max_abs, worst_ratio = calibration.error.worst_ratio, "the quantized output is further from the float model than the tolerance at every candidate scale; check the card's calibration section");
    }
    info!(target: "prover_node::setup", params = ?calibration.params, range = ?calibration.input_range, max_abs_error = calibration.error.max_abs, "quantization chosen");
    Ok(Calibrated { name, description: meta.description.unwrap_or_default(), float, runner, eval_set, calibration })
}

/// Runs the whole setup and writes the artifacts; returns the card and its path.
pub fn run(opts: &SetupOptions) -> Result<(ModelCard, PathBuf)> {
    let Calibrated { name, description, float, runner, eval_set, calibration } = calibrate_model(opts)?;
    let params = calibration.params;
    let mut model = QuantModel::quantize(&float, params, Some(calibration.input_range))?;
    model.input_committed = opts.private_input;
    let bound = model.check_bound()?;

    let acc = match eval_set {
        Some(path) => {
            info!(target: "prover_node::setup", set = %path.display(), "measuring float and quantized accuracy");
            let acc = accuracy(&runner, &model, &Dataset::load(&path)?)?;
            info!(target: "prover_node::setup", float = acc.float, quantized = acc.quantized, samples = acc.samples, "accuracy");
            Some(acc)
        }
        None => None,
    };

    let plan =
        models::sizing::plan(&model, &models::sizing::PlanOptions { k: opts.k, max_k: opts.max_k, lanes: opts.lanes })?;
    let circuit_params = plan.params;
    let k = circuit_params.k();
    info!(
        target: "prover_node::setup",
        k,
        advice = circuit_params.base.num_advice_per_phase[0],
        lanes = circuit_params.lanes,
        predicted_verifier_bytes = plan.cost.verifier_bytes,
        predicted_verify_gas = plan.cost.verify_gas,
        "circuit sized"
    );
    let srs = match &opts.srs {
        SrsSource::File(path) => {
            let step = Step::start(format!("loading and checking the SRS {}", path.display()));
            let srs = Srs::load(path)?;
            step.finish();
            srs
        }
        SrsSource::InsecureDev { seed } => {
            warn!(target: "prover_node::setup", seed, "INSECURE dev SRS derived from a public seed: anyone can forge proofs for these keys; never use it for anything of value");
            dev_srs(k, *seed)?
        }
    };
    let srs_params = srs.for_k(k)?;
    let step = Step::start(format!("generating proving and verifying keys (k = {k})"));
    let (pk, shape) = prover::keygen(&srs_params, &model, &circuit_params)?;
    let weight_exposure = prover::weight_exposure(&pk);
    step.finish();

    std::fs::create_dir_all(&opts.out_dir).map_err(|source| Error::Io {
        action: "creating",
        path: opts.out_dir.clone(),
        source,
    })?;
    let vk_bytes = prover::vk_to_bytes(pk.get_vk());
    let pk_file = format!("{name}.pk");
    let vk_file = format!("{name}.vk");
    artifact::write(&opts.out_dir.join(&pk_file), PK_KIND, &shape, &prover::pk_to_bytes(&pk))?;
    artifact::write(&opts.out_dir.join(&vk_file), VK_KIND, &shape, &vk_bytes)?;
    let vk_keccak = format!("0x{}", hex::encode(Keccak256::digest(&vk_bytes)));

    let step = Step::start("generating the Solidity verifier and compiling it (solc-js)");
    let contract = contract_name(&name);
    let header = format!(
        "Verifier of zkinfer model `{name}` (vk keccak256 {vk_keccak}).\nPublic instances: [binding, input[{}], output[{}]].\nSRS: {}.",
        model.input_len(),
        model.output_len(),
        srs.info.describe()
    );
    let encoding = verifier_gen::Encoding::of_model(&model);
    let verifier = verifier_gen::generate(
        &srs_params,
        pk.get_vk(),
        shape.num_instances,
        &encoding,
        &contract,
        &header,
        &opts.solc,
        &opts.out_dir,
    )?;
    step.finish();
    let compiled = verifier.compiled;
    let model_id = compiled.model_id(&encoding);

    let (inputs, outputs) = TensorInfo::of_model(&model, &float.output_names);
    let onnx_file = file_name(&opts.onnx);
    let onnx_dest = opts.out_dir.join(&onnx_file);
    if std::fs::canonicalize(&opts.onnx).ok() != std::fs::canonicalize(&onnx_dest).ok() {
        std::fs::copy(&opts.onnx, &onnx_dest).map_err(|source| Error::Io {
            action: "copying",
            path: onnx_dest.clone(),
            source,
        })?;
    }
    let onnx_bytes =
        std::fs::read(&opts.onnx).map_err(|source| Error::Io { action: "reading", path: opts.onnx.clone(), source })?;
    let card = ModelCard {
        name: name.clone(),
        description,
        model_id,
        vk_keccak256: vk_keccak,
        onnx_sha256: artifact::sha256_hex(&onnx_bytes),
        input_shape: model.input_shape(),
        output_shape: model.output_shape(),
        quantization: params,
        output_scale_bits: model.output_scale_bits(),
        input_range: model.input_range,
        input_committed: model.input_committed,
        output_range: model.output_range(),
        circuit_version: models::circuit::CIRCUIT_VERSION,
        circuit: CircuitInfo {
            k,
            advice_columns: shape.params.num_advice_per_phase[0],
            lookup_advice_columns: shape.params.num_lookup_advice_per_phase[0],
            fixed_columns: shape.params.num_fixed,
            dot_product_lanes: shape.lanes,
            predicted: Some(models::card::PredictedCost {
                verifier_bytes: plan.cost.verifier_bytes,
                verify_gas: plan.cost.verify_gas,
            }),
            num_instances: shape.num_instances,
            weight_exposure: Some(weight_exposure),
        },
        srs: srs.info.clone(),
        verifier: VerifierInfo {
            contract,
            codehash: compiled.codehash.clone(),
            runtime_bytes: compiled.deployed_bytecode.len(),
            compiler: compiled.compiler.clone(),
            parts: compiled
                .parts
                .iter()
                .map(|p| models::card::VerifierPart {
                    contract: p.contract.clone(),
                    address: p.address.clone(),
                    codehash: p.codehash.clone(),
                    runtime_bytes: p.deployed_bytecode.len(),
                })
                .collect(),
        },
        accuracy: acc,
        dims: opts.dims.clone(),
        inputs,
        outputs,
        bound: Some(bound),
        calibration: Some(calibration),
        function_tables: models::card::FunctionTableInfo::of(&model),
        files: Files {
            onnx: onnx_file,
            proving_key: pk_file,
            verifying_key: vk_file,
            verifier_sol: file_name(&verifier.sol_path),
            verifier_artifact: file_name(&verifier.artifact_path),
        },
    };
    let card_path = opts.out_dir.join(format!("{name}.card.json"));
    card.save(&card_path)?;
    Ok((card, card_path))
}

/// The INSECURE dev SRS of `(seed, k)`, from the on-disk cache or generated (with a progress bar
/// on a terminal).
pub fn dev_srs(k: u32, seed: u64) -> Result<Srs> {
    let cache = DevSrsCache::from_env();
    if cache.contains(k, seed) {
        let step = Step::start(format!("loading the cached INSECURE dev SRS (seed {seed}, k = {k})"));
        let srs = Srs::insecure_dev_with(&cache, k, seed, None)?;
        step.finish();
        return Ok(srs);
    }
    let step =
        Step::bar(format!("generating the INSECURE dev SRS (seed {seed}, k = {k}; cached for next time)"), 2 << k);
    let srs = Srs::insecure_dev_with(&cache, k, seed, Some(&|done, total| step.set(done, total)))?;
    step.finish();
    Ok(srs)
}

/// The SRS of a card (see [`ModelCard::srs`]: the given file, or the card's dev SRS), showing
/// progress while it is loaded or generated.
pub fn card_srs(card: &ModelCard, file: Option<&Path>) -> Result<Srs> {
    match (file, card.srs.dev_seed) {
        (None, Some(seed)) => {
            warn!(model = %card.name, seed, "using the INSECURE dev SRS: proofs prove nothing to anyone who knows the seed");
            dev_srs(card.circuit.k, seed)
        }
        (Some(path), _) => {
            let step = Step::start(format!("loading and checking the SRS {}", path.display()));
            let srs = card.srs(Some(path))?;
            step.finish();
            Ok(srs)
        }
        (None, None) => Ok(card.srs(None)?),
    }
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract_names_are_pascal_case() {
        assert_eq!(contract_name("digits_mlp"), "DigitsMlpVerifier");
        assert_eq!(contract_name("9lives"), "Model9livesVerifier");
        assert_eq!(contract_name("--"), "ModelVerifier");
    }
}
