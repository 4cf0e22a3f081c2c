//! `zkinfer.Proof` (what `prove` returns and `verify` checks) and `zkinfer.Verification`.

use std::path::PathBuf;

use prover_node::proof::ProofFile;
use pyo3::{prelude::*, types::PyBytes};

use crate::{error, json_to_py};

/// A proof of one inference, with everything needed to check it or send it on-chain. The same
/// document as `prover-node prove`'s proof JSON (`save`/`load`/`to_dict`).
#[pyclass(name = "Proof", module = "zkinfer", frozen)]
pub(crate) struct Proof {
    pub(crate) file: ProofFile,
}

fn hex(bytes: &[u8]) -> String {
    format!("0x{}", ::hex::encode(bytes))
}

#[pymethods]
impl Proof {
    /// Reads a proof JSON file (written by `Proof.save` or `prover-node prove`).
    #[staticmethod]
    fn load(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        let file = ProofFile::load(&path).map_err(|e| error::from_node(py, e))?;
        Ok(Self { file })
    }

    /// Parses a proof from its JSON text (as `to_json` writes it).
    #[staticmethod]
    fn from_json(py: Python<'_>, text: &str) -> PyResult<Self> {
        let file = serde_json::from_str(text).map_err(|e| {
            error::new(py, error::ArtifactError::new_err::<String>, "BadFile", format!("not a valid proof JSON: {e}"))
        })?;
        Ok(Self { file })
    }

    /// Writes the proof JSON to `path`.
    fn save(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        self.file.save(&path).map_err(|e| error::from_node(py, e))
    }

    /// The proof JSON as text.
    fn to_json(&self) -> String {
        serde_json::to_string_pretty(&self.file).expect("proof files serialize")
    }

    /// The proof JSON as a dict (integers as ints, bytes and words as 0x-hex strings).
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        json_to_py(py, &self.file)
    }

    /// Model name.
    #[getter]
    fn model(&self) -> &str {
        &self.file.model
    }

    /// On-chain model id (0x-hex bytes32).
    #[getter]
    fn model_id(&self) -> &str {
        &self.file.model_id
    }

    /// Chain id the proof is bound to.
    #[getter]
    fn chain_id(&self) -> u64 {
        self.file.chain_id
    }

    /// Coordinator address the proof is bound to (0x-hex, checksummed).
    #[getter]
    fn coordinator(&self) -> String {
        self.file.coordinator.to_checksum(None)
    }

    /// Request id the proof is bound to.
    #[getter]
    fn request_id<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        crate::int_of_decimal(py, &self.file.request_id.to_string())
    }

    /// Account allowed to submit the proof (0x-hex, checksummed).
    #[getter]
    fn fulfiller(&self) -> String {
        self.file.fulfiller.to_checksum(None)
    }

    /// Quantized input (integers at scale 2^input_scale_bits).
    #[getter]
    fn input(&self) -> Vec<i64> {
        self.file.input.clone()
    }

    /// The input commitment (0x-hex) of a committed-input model's proof, in the input's place in the
    /// instances; None for a public-input model.
    #[getter]
    fn commitment(&self) -> Option<String> {
        self.file.commitment.map(|c| format!("{c:#066x}"))
    }

    /// Quantized output (integers at scale 2^output_scale_bits).
    #[getter]
    fn output(&self) -> Vec<i64> {
        self.file.output.clone()
    }

    /// Output in real units: output / 2^output_scale_bits.
    #[getter]
    fn output_dequantized(&self) -> Vec<f64> {
        self.file.output_dequantized.clone()
    }

    /// Index of the largest output (the class of a classifier).
    #[getter]
    fn prediction(&self) -> usize {
        self.file.prediction
    }

    /// Public instances as 0x-hex 32-byte words: [binding, packed input…, packed output…].
    #[getter]
    fn instances(&self) -> Vec<String> {
        self.file.instances.iter().map(|w| hex(&w.to_be_bytes::<32>())).collect()
    }

    /// The proof bytes.
    #[getter]
    fn proof<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.file.proof)
    }

    /// Calldata of the model's verifier contract: instances ‖ proof.
    #[getter]
    fn verifier_calldata<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.file.verifier_calldata)
    }

    /// Calldata of `InferenceCoordinator.fulfillInference(requestId, input, output, proof)`.
    #[getter]
    fn fulfill_calldata<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.file.fulfill_calldata)
    }

    /// Proving time in seconds.
    #[getter]
    fn prove_seconds(&self) -> f64 {
        self.file.prove_seconds
    }

    fn __repr__(&self) -> String {
        format!(
            "Proof(model={:?}, prediction={}, output={:?}, proof=<{} bytes>)",
            self.file.model,
            self.file.prediction,
            self.file.output,
            self.file.proof.len()
        )
    }
}

/// What `verify` established: only values derived from what the proof covers.
#[pyclass(name = "Verification", module = "zkinfer", frozen, get_all)]
pub(crate) struct Verification {
    /// The proved quantized output.
    pub(crate) output: Vec<i64>,
    /// The proved output in real units (output / 2^output_scale_bits).
    pub(crate) output_dequantized: Vec<f64>,
    /// Index of the largest proved output.
    pub(crate) prediction: usize,
    /// Time the native verification took, in seconds.
    pub(crate) seconds: f64,
}

#[pymethods]
impl Verification {
    fn __repr__(&self) -> String {
        format!("Verification(prediction={}, output={:?}, seconds={:.4})", self.prediction, self.output, self.seconds)
    }
}
