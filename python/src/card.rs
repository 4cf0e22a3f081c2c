//! `zkinfer.ModelCard`: the card `setup` writes, with the fields a notebook reads most as
//! attributes and the whole card as a dict.

use std::path::{Path, PathBuf};

use models::card::ModelCard as Card;
use pyo3::{prelude::*, types::PyDict};

use crate::{error, json_to_py};

/// The published description of a set-up model: encoding, circuit, SRS, verifier and the files
/// beside it. `to_dict()` is the whole card (the JSON file `setup` wrote).
#[pyclass(name = "ModelCard", module = "zkinfer", frozen)]
pub(crate) struct ModelCard {
    pub(crate) card: Card,
    /// Absolute path of the card file.
    pub(crate) path: PathBuf,
}

impl ModelCard {
    /// Reads the card at `path`.
    pub(crate) fn load(py: Python<'_>, path: &Path) -> PyResult<Self> {
        let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let card = Card::load(&path).map_err(|e| error::from_models(py, e))?;
        Ok(Self { card, path })
    }

    fn file(&self, name: &str) -> String {
        Card::resolve(&self.path, name).display().to_string()
    }
}

/// The card path of a `ModelCard` or of a path-like argument.
pub(crate) fn card_path(card: &Bound<'_, PyAny>) -> PyResult<PathBuf> {
    match card.cast::<ModelCard>() {
        Ok(c) => Ok(c.get().path.clone()),
        Err(_) => card.extract::<PathBuf>(),
    }
}

#[pymethods]
impl ModelCard {
    /// Reads a card file written by `setup`.
    #[staticmethod]
    #[pyo3(name = "load")]
    fn py_load(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        Self::load(py, &path)
    }

    /// Absolute path of the card file.
    #[getter]
    fn path(&self) -> String {
        self.path.display().to_string()
    }

    /// Model name.
    #[getter]
    fn name(&self) -> &str {
        &self.card.name
    }

    /// Description (from the model's metadata).
    #[getter]
    fn description(&self) -> &str {
        &self.card.description
    }

    /// On-chain model id (0x-hex bytes32): hash of the verifier's code hash and the encoding.
    #[getter]
    fn model_id(&self) -> &str {
        &self.card.model_id
    }

    /// Input shape (batch fixed at import).
    #[getter]
    fn input_shape(&self) -> Vec<usize> {
        self.card.input_shape.clone()
    }

    /// Output shape.
    #[getter]
    fn output_shape(&self) -> Vec<usize> {
        self.card.output_shape.clone()
    }

    /// Number of input values a proof takes (all inputs concatenated flat).
    #[getter]
    fn input_len(&self) -> usize {
        self.card.input_shape.iter().product()
    }

    /// Number of output values a proof returns.
    #[getter]
    fn output_len(&self) -> usize {
        self.card.output_shape.iter().product()
    }

    /// Inputs are quantized as round(x · 2^input_scale_bits).
    #[getter]
    fn input_scale_bits(&self) -> u32 {
        self.card.quantization.input_scale_bits
    }

    /// Outputs are integers at scale 2^output_scale_bits: real value = output / 2^output_scale_bits.
    #[getter]
    fn output_scale_bits(&self) -> u32 {
        self.card.output_scale_bits
    }

    /// Every activation fits in this many signed bits.
    #[getter]
    fn value_bits(&self) -> u32 {
        self.card.quantization.value_bits
    }

    /// Quantized input range (inclusive) every request must lie in.
    #[getter]
    fn input_range(&self) -> (i64, i64) {
        self.card.input_range
    }

    /// Possible quantized output range (inclusive).
    #[getter]
    fn output_range(&self) -> (i64, i64) {
        self.card.output_range
    }

    /// Largest absolute output error measured against the float model at calibration (in real
    /// units, i.e. after dividing by 2^output_scale_bits); None on cards without calibration.
    #[getter]
    fn max_abs_error(&self) -> Option<f64> {
        self.card.calibration.as_ref().map(|c| c.error.max_abs)
    }

    /// The circuit has 2^k rows.
    #[getter]
    fn k(&self) -> u32 {
        self.card.circuit.k
    }

    /// True when the keys were made with the INSECURE dev SRS (its verifier runs on chain 31337 only).
    #[getter]
    fn insecure_srs(&self) -> bool {
        self.card.srs.insecure
    }

    /// One line on the SRS: ceremony, k and hashes.
    #[getter]
    fn srs(&self) -> String {
        self.card.srs.describe()
    }

    /// Solidity contract name of the verifier.
    #[getter]
    fn verifier_contract(&self) -> &str {
        &self.card.verifier.contract
    }

    /// Runtime bytecode size of the verifier in bytes (EIP-170 limit: 24,576).
    #[getter]
    fn verifier_bytes(&self) -> usize {
        self.card.verifier.runtime_bytes
    }

    /// Float and quantized accuracy on the eval set, as a dict (None without an eval set).
    #[getter]
    fn accuracy<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.card.accuracy.as_ref().map(|a| json_to_py(py, a)).transpose()
    }

    /// Absolute paths of the card's files: `onnx`, `proving_key`, `verifying_key`, `verifier_sol`
    /// (the Solidity verifier) and `verifier_artifact` (its compiled bytecode and ABI).
    #[getter]
    fn files<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let f = &self.card.files;
        let d = PyDict::new(py);
        d.set_item("onnx", self.file(&f.onnx))?;
        d.set_item("proving_key", self.file(&f.proving_key))?;
        d.set_item("verifying_key", self.file(&f.verifying_key))?;
        d.set_item("verifier_sol", self.file(&f.verifier_sol))?;
        d.set_item("verifier_artifact", self.file(&f.verifier_artifact))?;
        Ok(d)
    }

    /// The whole card as a dict (the JSON document `setup` wrote).
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        json_to_py(py, &self.card)
    }

    pub(crate) fn __repr__(&self) -> String {
        format!(
            "ModelCard(name={:?}, model_id={:?}, k={}, srs={:?}, path={:?})",
            self.card.name,
            self.card.model_id,
            self.card.circuit.k,
            if self.card.srs.insecure { "INSECURE dev" } else { self.card.srs.ceremony.as_str() },
            self.path.display().to_string()
        )
    }
}
