//! The model card: the published description of a proved model, and where its artifacts are.
//!
//! Anyone can recompute the model id from it: compile the verifier source with the recorded
//! compiler settings, hash the runtime bytecode (`verifier.codehash`), and hash that with the
//! encoding fields (see `verifier_gen::model_id`). The verifier embeds the verifying key, whose
//! fixed-column commitments pin the weights; `vk_keccak256` identifies the key file itself.

use std::path::{Path, PathBuf};

use halo2_base::halo2_proofs::{halo2curves::bn256::G1Affine, plonk::ProvingKey};
use serde::{Deserialize, Serialize};

use crate::{
    artifact,
    calibrate::Calibration,
    error::{Error, Result},
    eval::Accuracy,
    graph::{QuantModel, ValueBound},
    onnx,
    prover::{self, CircuitShape},
    quant::QuantParams,
    srs::{dev::Progress, DevSrsCache, Srs, SrsInfo},
    verify::VerifierSrs,
};

/// Artifact kind tag of proving key files.
pub const PK_KIND: &str = "zkinfer proving key";
/// Artifact kind tag of verifying key files.
pub const VK_KIND: &str = "zkinfer verifying key";

/// The on-chain verifier of a model.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifierInfo {
    /// Solidity contract name.
    pub contract: String,
    /// `keccak256` of the runtime bytecode (the deployed `EXTCODEHASH`).
    pub codehash: String,
    /// Runtime bytecode size (EIP-170 limit: 24,576).
    pub runtime_bytes: usize,
    /// Compiler version.
    pub compiler: String,
    /// The later parts of a verifier too large for one contract, which it calls in turn (second to
    /// last; empty when it fits one contract). Each is deployed through the standard CREATE2
    /// deployer with the zero salt; the verifier's code pins their code hashes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<VerifierPart>,
}

/// A later part of a verifier cut into several contracts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifierPart {
    /// Solidity contract name.
    pub contract: String,
    /// Its CREATE2 address (standard deployer, zero salt), the same on every chain.
    pub address: String,
    /// `keccak256` of its runtime bytecode.
    pub codehash: String,
    /// Runtime bytecode size (bytes, at most 24,576).
    pub runtime_bytes: usize,
}

/// Circuit dimensions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CircuitInfo {
    /// 2^k rows.
    pub k: u32,
    /// Advice columns.
    pub advice_columns: usize,
    /// Advice columns with range lookups.
    pub lookup_advice_columns: usize,
    /// Fixed columns of the flex-gate region (constants).
    pub fixed_columns: usize,
    /// Lanes of the dot-product gate (each an advice column of activations and a fixed column of
    /// weights; 0: dot products in the flex gate).
    #[serde(default)]
    pub dot_product_lanes: usize,
    /// Verifier bytecode and verify gas predicted by the sizing before key generation.
    #[serde(default)]
    pub predicted: Option<PredictedCost>,
    /// Public instances: 1 binding + packed inputs (or 1 input commitment) + packed outputs.
    pub num_instances: usize,
    /// How many public proofs expose the fixed columns (weights, tables, constants); see
    /// [`WeightExposure`].
    #[serde(default)]
    pub weight_exposure: Option<WeightExposure>,
}

/// What public proofs reveal of the fixed columns, where the weights live.
///
/// The verifying key holds only commitments to the fixed columns, but every halo2 proof opens each
/// fixed column's polynomial at the proof's random point `x` (and at each rotation a gate queries it
/// at), and those evaluations are public. An evaluation is one linear equation in the column's entries
/// (its Lagrange coefficients at `x`). A column with `m` unknown entries is therefore determined, with
/// overwhelming probability, by `m` proofs at distinct points, and everyone who sees the proofs can solve
/// for it. So after `max_entries` public proofs every fixed-column value, every weight included, is
/// public. To keep weights private, a model owner needs them in advice columns committed once and
/// bound to by each proof; the README describes that option.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeightExposure {
    /// Fixed columns of the proving key (weights, function tables, constants, selectors).
    pub fixed_columns: usize,
    /// Non-zero entries of the fullest fixed column: an upper bound on the public proofs after which
    /// every fixed-column value is determined.
    pub max_entries: usize,
    /// Non-zero entries of all fixed columns together.
    pub total_entries: usize,
}

/// What sizing predicted for the chosen layout (see `models::sizing`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PredictedCost {
    /// Verifier runtime bytecode (bytes).
    pub verifier_bytes: usize,
    /// Gas of one verifying call (execution, without intrinsic and calldata gas).
    pub verify_gas: u64,
}

/// One input or output tensor of a model.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TensorInfo {
    /// ONNX name.
    pub name: String,
    /// Shape (batch fixed at import).
    pub shape: Vec<usize>,
    /// `real`, `integer` or `bool` (inputs); outputs are `real` at the output scale.
    pub kind: String,
    /// Fixed-point scale (bits).
    pub scale_bits: u32,
}

impl TensorInfo {
    /// The inputs and outputs of a quantized model, with the ONNX output names.
    pub fn of_model(model: &QuantModel, output_names: &[String]) -> (Vec<Self>, Vec<Self>) {
        let inputs = model
            .inputs
            .iter()
            .map(|i| Self {
                name: i.name.clone(),
                shape: model.shapes[i.tensor].clone(),
                kind: format!("{:?}", i.kind).to_lowercase(),
                scale_bits: i.scale_bits,
            })
            .collect();
        let outputs = model
            .outputs
            .iter()
            .enumerate()
            .map(|(j, t)| Self {
                name: output_names.get(j).cloned().unwrap_or_else(|| format!("output{j}")),
                shape: model.shapes[*t].clone(),
                kind: "real".into(),
                scale_bits: model.scales[*t],
            })
            .collect();
        (inputs, outputs)
    }
}

/// Files of a model, relative to the card's directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Files {
    /// The ONNX model.
    pub onnx: String,
    /// Proving key.
    pub proving_key: String,
    /// Verifying key.
    pub verifying_key: String,
    /// Solidity verifier source.
    pub verifier_sol: String,
    /// Compiled verifier (JSON with bytecode).
    pub verifier_artifact: String,
}

/// Published description of a model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelCard {
    /// Short name.
    pub name: String,
    /// What the model does.
    pub description: String,
    /// On-chain model id (hex).
    pub model_id: String,
    /// `keccak256` of the serialized verifying key.
    pub vk_keccak256: String,
    /// SHA-256 of the ONNX file.
    pub onnx_sha256: String,
    /// Input shape (batch 1 included).
    pub input_shape: Vec<usize>,
    /// Output shape.
    pub output_shape: Vec<usize>,
    /// Quantization parameters.
    pub quantization: QuantParams,
    /// Scale (bits) of the output values.
    pub output_scale_bits: u32,
    /// Accepted quantized input range (inclusive).
    pub input_range: (i64, i64),
    /// Whether the input is committed, not public: proofs carry `C = Poseidon(pack(input) ‖ salt)` in
    /// the input's place and requests are private ([`crate::commitment`]).
    #[serde(default)]
    pub input_committed: bool,
    /// Possible quantized output range (inclusive).
    pub output_range: (i64, i64),
    /// Version of the circuit layout the keys were made for ([`crate::circuit::CIRCUIT_VERSION`];
    /// cards without it predate packed dot products: 1).
    #[serde(default = "legacy_circuit_version")]
    pub circuit_version: u32,
    /// Circuit dimensions.
    pub circuit: CircuitInfo,
    /// The SRS the keys were made with.
    pub srs: SrsInfo,
    /// The generated verifier.
    pub verifier: VerifierInfo,
    /// Accuracy on a held-out set, if one was given.
    pub accuracy: Option<Accuracy>,
    /// Values given to symbolic dimensions at import (others are 1).
    #[serde(default)]
    pub dims: std::collections::BTreeMap<String, usize>,
    /// Each input tensor, in the order of the flat input (instances and coordinator encoding).
    #[serde(default)]
    pub inputs: Vec<TensorInfo>,
    /// Each output tensor, in the order of the flat output.
    #[serde(default)]
    pub outputs: Vec<TensorInfo>,
    /// The largest value any input in `input_range` can produce: the sound bound the value bits
    /// were sized from.
    #[serde(default)]
    pub bound: Option<ValueBound>,
    /// What calibration chose and the output error it measured against the float model.
    #[serde(default)]
    pub calibration: Option<Calibration>,
    /// The function tables of the circuit (non-linear element-wise functions), with their domains
    /// and documented error bounds.
    #[serde(default)]
    pub function_tables: Vec<FunctionTableInfo>,
    /// Artifact files.
    pub files: Files,
}

/// One lookup table of an element-wise function ([`crate::functions`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FunctionTableInfo {
    /// ONNX node(s) it proves.
    pub node: String,
    /// The tabulated function (for a function linear at +∞, its saturating part).
    pub function: String,
    /// Scale (bits) of the table's input; the layer's input is rounded to it.
    pub input_scale_bits: u32,
    /// Scale (bits) of the output.
    pub output_scale_bits: u32,
    /// Domain of the table in real units, inclusive; inputs outside are clamped to it.
    pub domain: (f64, f64),
    /// Number of entries (rows of the table).
    pub entries: usize,
    /// Largest absolute error of the quantized function against the real one for an input in the
    /// domain (plus a quarter LSB beyond a saturating edge), in real units.
    pub error_bound: f64,
}

impl FunctionTableInfo {
    /// The tables of `model`'s layers, one entry per layer.
    pub fn of(model: &crate::graph::QuantModel) -> Vec<Self> {
        model
            .layers
            .iter()
            .filter_map(|l| match &l.op {
                crate::graph::QuantOp::Table { table, .. } => {
                    let scale = (1u64 << table.in_scale_bits) as f64;
                    Some(Self {
                        node: l.node.clone(),
                        function: table.func.name(),
                        input_scale_bits: table.in_scale_bits,
                        output_scale_bits: table.out_scale_bits,
                        domain: (table.lo as f64 / scale, table.hi() as f64 / scale),
                        entries: table.values.len(),
                        error_bound: table.error_bound,
                    })
                }
                _ => None,
            })
            .collect()
    }
}

fn legacy_circuit_version() -> u32 {
    1
}

impl ModelCard {
    /// Reads a card.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io("reading model card", path, e))?;
        serde_json::from_slice(&bytes).map_err(|source| Error::Json { path: path.into(), what: "model card", source })
    }

    /// Fails with [`Error::StaleCircuit`] unless the card's keys were made for this version's circuit.
    pub fn check_circuit_version(&self) -> Result<()> {
        match self.circuit_version {
            crate::circuit::CIRCUIT_VERSION => Ok(()),
            card => Err(Error::StaleCircuit { card, current: crate::circuit::CIRCUIT_VERSION }),
        }
    }

    /// Writes the card as pretty JSON.
    pub fn save(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_string_pretty(self).expect("cards serialize");
        std::fs::write(path, json + "\n").map_err(|e| Error::io("writing model card", path, e))
    }

    /// Resolves a file named in the card relative to the card's directory.
    pub fn resolve(card_path: &Path, file: &str) -> PathBuf {
        card_path.parent().unwrap_or(Path::new(".")).join(file)
    }

    /// The SRS the card's keys were made with: the given ceremony file, or (with `None`) the
    /// card's insecure dev SRS from the on-disk cache or regenerated from its public seed.
    ///
    /// # Errors
    /// [`Error::WrongSrs`] when the file is not the SRS the card's keys were made with: a verifier
    /// or a verification with another SRS (another τ, or no dev-chain guard) would be
    /// meaningless; [`Error::InvalidParams`] for `None` when the card has no dev seed.
    pub fn srs(&self, file: Option<&Path>) -> Result<Srs> {
        self.srs_with(file, None)
    }

    /// [`ModelCard::srs`] reporting the progress of dev SRS generation (`(done, total)` points;
    /// not called on a cache hit or for a file).
    pub fn srs_with(&self, file: Option<&Path>, progress: Option<Progress<'_>>) -> Result<Srs> {
        match file {
            Some(path) => {
                let srs = Srs::load(path)?;
                self.check_srs_file(path, &srs.info.sha256)?;
                Ok(srs)
            }
            None => {
                let seed = self.dev_seed()?;
                tracing::warn!(model = %self.name, seed, "using the INSECURE dev SRS: proofs prove nothing to anyone who knows the seed");
                Srs::insecure_dev_with(&DevSrsCache::from_env(), self.circuit.k, seed, progress)
            }
        }
    }

    /// What a verifier needs of the card's SRS (`[1]G1`, `G2`, `[τ]G2`): read from the given
    /// SRS file without loading its powers ([`Srs::load_verifier_points`]), or derived from the
    /// card's dev seed. Milliseconds at any `k` for a dev SRS or a known ceremony.
    ///
    /// # Errors
    /// As [`ModelCard::srs`]: [`Error::WrongSrs`] when the file is not the card's SRS (another
    /// params hash, or another ceremony than the card records).
    pub fn verifier_srs(&self, file: Option<&Path>) -> Result<VerifierSrs> {
        match file {
            Some(path) => {
                let (srs, sha256) = Srs::load_verifier_points(path)?;
                self.check_srs_file(path, &sha256)?;
                if !self.srs.ceremony.is_empty() && srs.ceremony != self.srs.ceremony {
                    return Err(Error::WrongSrs(format!(
                        "the SRS {} is of ceremony `{}`, but the keys of `{}` were made with ceremony `{}` ({})",
                        path.display(),
                        srs.ceremony,
                        self.name,
                        self.srs.ceremony,
                        self.srs.source
                    )));
                }
                Ok(srs)
            }
            None => {
                let seed = self.dev_seed()?;
                tracing::warn!(model = %self.name, seed, "verifying against the INSECURE dev SRS: anyone who knows the seed can forge proofs");
                Ok(VerifierSrs::insecure_dev(seed))
            }
        }
    }

    fn check_srs_file(&self, path: &Path, sha256: &str) -> Result<()> {
        if sha256 != self.srs.sha256 {
            return Err(Error::WrongSrs(format!(
                "the SRS {} (sha256 {sha256}) is not the one the keys of `{}` were made with ({}, sha256 {})",
                path.display(),
                self.name,
                self.srs.source,
                self.srs.sha256
            )));
        }
        Ok(())
    }

    fn dev_seed(&self) -> Result<u64> {
        self.srs.dev_seed.ok_or_else(|| {
            Error::InvalidParams(format!(
                "the keys of `{}` were not made with an insecure dev SRS: give the SRS file ({})",
                self.name, self.srs.source
            ))
        })
    }

    /// Re-imports and quantizes the model, checking the ONNX file is the one the card describes.
    pub fn load_model(&self, card_path: &Path) -> Result<QuantModel> {
        self.check_circuit_version()?;
        let onnx_path = Self::resolve(card_path, &self.files.onnx);
        let bytes = std::fs::read(&onnx_path).map_err(|e| Error::io("reading ONNX model", &onnx_path, e))?;
        let digest = artifact::sha256_hex(&bytes);
        if digest != self.onnx_sha256 {
            return Err(Error::CorruptArtifact {
                path: onnx_path,
                what: "ONNX model for this card",
                reason: format!("SHA-256 {digest} differs from the card's {}", self.onnx_sha256),
            });
        }
        let options = onnx::ImportOptions { dims: self.dims.iter().map(|(k, v)| (k.clone(), *v)).collect() };
        let float = onnx::import_with(&onnx_path, &options)?;
        let mut model = QuantModel::quantize(&float, self.quantization, Some(self.input_range))?;
        model.input_committed = self.input_committed;
        Ok(model)
    }

    /// Loads the proving key and circuit shape.
    pub fn load_proving_key(&self, card_path: &Path) -> Result<(ProvingKey<G1Affine>, CircuitShape)> {
        let path = Self::resolve(card_path, &self.files.proving_key);
        let (shape, payload): (CircuitShape, Vec<u8>) = artifact::read(&path, PK_KIND)?;
        let pk = prover::pk_from_bytes(&payload, &shape).map_err(|reason| Error::CorruptArtifact {
            path,
            what: PK_KIND,
            reason,
        })?;
        Ok((pk, shape))
    }

    /// Loads the verifying key and circuit shape.
    pub fn load_verifying_key(
        &self,
        card_path: &Path,
    ) -> Result<(halo2_base::halo2_proofs::plonk::VerifyingKey<G1Affine>, CircuitShape)> {
        load_verifying_key(&Self::resolve(card_path, &self.files.verifying_key))
    }
}

/// Loads a verifying key file.
pub fn load_verifying_key(
    path: &Path,
) -> Result<(halo2_base::halo2_proofs::plonk::VerifyingKey<G1Affine>, CircuitShape)> {
    let (shape, payload): (CircuitShape, Vec<u8>) = artifact::read(path, VK_KIND)?;
    let vk = prover::vk_from_bytes(&payload, &shape).map_err(|reason| Error::CorruptArtifact {
        path: path.into(),
        what: VK_KIND,
        reason,
    })?;
    Ok((vk, shape))
}
