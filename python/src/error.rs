//! The Python exception hierarchy, and which class each Rust error becomes.
//!
//! Every exception is a [`ZkinferError`]; its message is the Rust error's message (which says
//! what to do), and its `kind` attribute names the Rust variant (`"InputLength"`,
//! `"MalformedOnnx"`, `"InvalidProof"`, …) so a caller can branch on it without parsing text.

use pyo3::{create_exception, exceptions::PyException, prelude::*};

create_exception!(
    zkinfer,
    ZkinferError,
    PyException,
    "Base class of every zkinfer error. `kind` names the Rust error variant."
);
create_exception!(
    zkinfer,
    OnnxError,
    ZkinferError,
    "The ONNX file is not readable, or has operators, attributes or shapes zkinfer cannot prove."
);
create_exception!(
    zkinfer,
    QuantizationError,
    ZkinferError,
    "Scales or value bits that cannot work: an overflow, or an input range that cannot be proved."
);
create_exception!(
    zkinfer,
    InputError,
    ZkinferError,
    "A model input of the wrong length, outside the model's range, not finite, not integral, or one the \
     model cannot evaluate (a division by zero)."
);
create_exception!(
    zkinfer,
    CircuitError,
    ZkinferError,
    "No circuit layout fits the requested size (k, lanes), or the layout is unusable."
);
create_exception!(
    zkinfer,
    SrsError,
    ZkinferError,
    "The SRS failed its checks, is too small, or is not the one the keys were made with."
);
create_exception!(
    zkinfer,
    ArtifactError,
    ZkinferError,
    "A file (card, key, proof, metadata, data set) is missing, unreadable, corrupted or malformed."
);
create_exception!(
    zkinfer,
    VerifierError,
    ZkinferError,
    "Generating or compiling the Solidity verifier failed (solc missing or failing, too large)."
);
create_exception!(zkinfer, ProvingError, ZkinferError, "Proof generation failed.");
create_exception!(
    zkinfer,
    InvalidProofError,
    ZkinferError,
    "The proof does not verify against the model's verifying key and the public instances."
);
create_exception!(
    zkinfer,
    ClaimError,
    InvalidProofError,
    "A proof claims something its proof does not back (output out of range, another model, \
     instances or calldata that do not match, a wrong prediction)."
);

type Class = fn(String) -> PyErr;

/// The variant name of an error, from its `Debug` form (`InputLength { .. }` → `InputLength`).
fn variant(debug: &str) -> String {
    debug.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect()
}

fn raise(py: Python<'_>, class: Class, kind: String, message: String) -> PyErr {
    let err = class(message);
    // Setting an attribute on a fresh exception instance cannot fail short of memory exhaustion;
    // the exception is still raised without `kind` then.
    let _ = err.value(py).setattr("kind", kind);
    err
}

fn models_class(e: &models::Error) -> Class {
    use models::Error as E;
    match e {
        E::MalformedOnnx { .. }
        | E::Unsupported(_)
        | E::UnsupportedAttribute { .. }
        | E::InvalidGraph { .. }
        | E::ShapeMismatch { .. } => OnnxError::new_err::<String>,
        E::InputLength { .. }
        | E::InputOutOfRange { .. }
        | E::InputNotFinite { .. }
        | E::InputTooLarge { .. }
        | E::InputNotIntegral { .. }
        | E::InvalidSalt(_)
        | E::SaltMismatch { .. }
        | E::DivisionByZero { .. } => InputError::new_err::<String>,
        E::OutsideDomain { .. } => InputError::new_err::<String>,
        E::Overflow { .. }
        | E::InputRangeNotProvable { .. }
        | E::InvalidInputRange { .. }
        | E::DivisorMayBeZero { .. }
        | E::InvalidParams(_) => QuantizationError::new_err::<String>,
        E::InvalidCircuitSize(_) | E::NoLayout(_) | E::CircuitTooLarge(_) => CircuitError::new_err::<String>,
        E::WrongSrs(_) | E::SrsTooSmall { .. } | E::Srs { .. } => SrsError::new_err::<String>,
        E::Io { .. } | E::CorruptArtifact { .. } | E::Json { .. } | E::StaleCircuit { .. } => {
            ArtifactError::new_err::<String>
        }
        E::Prove(_) => ProvingError::new_err::<String>,
        E::InvalidProof(_) => InvalidProofError::new_err::<String>,
    }
}

/// A `models` error as the Python exception of its class.
pub(crate) fn from_models(py: Python<'_>, e: models::Error) -> PyErr {
    raise(py, models_class(&e), variant(&format!("{e:?}")), e.to_string())
}

/// A `verifier-gen` error as the Python exception of its class.
pub(crate) fn from_verifier(py: Python<'_>, e: verifier_gen::Error) -> PyErr {
    match e {
        verifier_gen::Error::Models(e) => from_models(py, e),
        verifier_gen::Error::Io { .. } | verifier_gen::Error::BadArtifact { .. } => {
            raise(py, ArtifactError::new_err::<String>, variant(&format!("{e:?}")), e.to_string())
        }
        e => raise(py, VerifierError::new_err::<String>, variant(&format!("{e:?}")), e.to_string()),
    }
}

/// A `prover-node` error as the Python exception of its class (the node's chain and store errors,
/// which these bindings do not reach, are plain [`ZkinferError`]s).
pub(crate) fn from_node(py: Python<'_>, e: prover_node::Error) -> PyErr {
    use prover_node::Error as E;
    match e {
        E::Models(e) => from_models(py, e),
        E::Verifier(e) => from_verifier(py, e),
        E::Io { .. } | E::BadFile { .. } => {
            raise(py, ArtifactError::new_err::<String>, variant(&format!("{e:?}")), e.to_string())
        }
        e => raise(py, ZkinferError::new_err::<String>, variant(&format!("{e:?}")), e.to_string()),
    }
}

/// A claim of a proof that its proof does not back.
pub(crate) fn from_claim(py: Python<'_>, e: prover_node::verify::ClaimError) -> PyErr {
    raise(py, ClaimError::new_err::<String>, variant(&format!("{e:?}")), e.to_string())
}

/// An error raised by the bindings themselves, with its own kind.
pub(crate) fn new(py: Python<'_>, class: Class, kind: &str, message: String) -> PyErr {
    raise(py, class, kind.into(), message)
}

/// Registers the exception classes on the module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("ZkinferError", py.get_type::<ZkinferError>())?;
    m.add("OnnxError", py.get_type::<OnnxError>())?;
    m.add("QuantizationError", py.get_type::<QuantizationError>())?;
    m.add("InputError", py.get_type::<InputError>())?;
    m.add("CircuitError", py.get_type::<CircuitError>())?;
    m.add("SrsError", py.get_type::<SrsError>())?;
    m.add("ArtifactError", py.get_type::<ArtifactError>())?;
    m.add("VerifierError", py.get_type::<VerifierError>())?;
    m.add("ProvingError", py.get_type::<ProvingError>())?;
    m.add("InvalidProofError", py.get_type::<InvalidProofError>())?;
    m.add("ClaimError", py.get_type::<ClaimError>())?;
    Ok(())
}
