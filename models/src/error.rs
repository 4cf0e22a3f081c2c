//! Errors of the `models` crate. Every variant carries what a user needs to act on it.

use std::path::PathBuf;

/// Result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong between an ONNX file and a verified proof.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not a valid ONNX protobuf.
    #[error("{} is not a readable ONNX model: {reason}", path.display())]
    MalformedOnnx { path: PathBuf, reason: String },
    /// Nodes zkinfer cannot prove: every one of the model, with the reason.
    #[error("{}", refusals_message(.0))]
    Unsupported(Vec<Refusal>),
    /// The operator is supported but not with this attribute value.
    #[error("node `{node}` ({op}): unsupported {attribute} = {value}")]
    UnsupportedAttribute { node: String, op: String, attribute: String, value: String },
    /// The graph is structurally invalid or outside what zkinfer handles.
    #[error("node `{node}`: {reason}")]
    InvalidGraph { node: String, reason: String },
    /// A tensor has the wrong shape.
    #[error("node `{node}`: shape mismatch, expected {expected:?}, got {got:?}")]
    ShapeMismatch { node: String, expected: Vec<usize>, got: Vec<usize> },
    /// The input has the wrong number of values.
    #[error("wrong input length: the model takes {expected} values (shape {shape:?}), got {got}")]
    InputLength { expected: usize, got: usize, shape: Vec<usize> },
    /// An input value is outside the model's quantized range.
    #[error("input[{index}] = {value} is outside the model's quantized input range [{min}, {max}]")]
    InputOutOfRange { index: usize, value: i128, min: i64, max: i64 },
    /// A float input is NaN or infinite.
    #[error("input[{index}] is not a finite number")]
    InputNotFinite { index: usize },
    /// A finite input so large that quantized (× 2^`scale_bits`) it does not fit 64 bits; the
    /// model's range is narrower still, so it is named.
    #[error(
        "input[{index}] = {value:e} is outside the model's input range [{min}, {max}] (and too large to quantize: \
         at scale 2^{scale_bits} an input must be below {limit:e} in magnitude to fit 64 bits)"
    )]
    InputTooLarge { index: usize, value: f64, min: f64, max: f64, scale_bits: u32, limit: f64 },
    /// A quantized value left the circuit's value range during the forward pass.
    #[error(
        "node `{node}`: quantized value {value} overflows the {bits}-bit value range; \
         raise --value-bits or lower the activation scale"
    )]
    Overflow { node: String, value: i128, bits: u32 },
    /// A divisor is zero (Div, Reciprocal, Softmax over an all-zero sum).
    #[error("node `{node}`: division by zero")]
    DivisionByZero { node: String },
    /// A function's input is outside the domain it is proved on (Log and Pow of non-positive
    /// values, Sqrt of negative ones, Exp beyond the value range: no limit to clamp to).
    #[error(
        "node `{node}`: {function} of {value} is outside its proved domain [{lo}, {hi}]; narrow \
         --input-min/--input-max so that it cannot happen, or raise the scales (--input-scale-bits, \
         --activation-scale-bits) if small values round to 0"
    )]
    OutsideDomain { node: String, function: String, value: f64, lo: f64, hi: f64 },
    /// Some input in the registered range makes a divisor zero.
    #[error(
        "node `{node}`: the divisor can be 0 for inputs in the registered range [{min}, {max}] (its bound is \
         [{lo}, {hi}] quantized); narrow --input-min/--input-max so that it cannot, or raise the scales \
         (--input-scale-bits, --activation-scale-bits) if small values round to 0"
    )]
    DivisorMayBeZero { node: String, lo: i128, hi: i128, min: i64, max: i64 },
    /// Some input inside the registered range would overflow the value range.
    #[error(
        "inputs in the registered range [{min}, {max}] can reach {max_abs} at node `{node}`, which needs \
         {required} value bits (have {bits}, at most 40 are supported); narrow --input-min/--input-max, lower \
         the scales, or raise --value-bits if {required} <= 40"
    )]
    InputRangeNotProvable { node: String, max_abs: String, bits: u32, required: u32, min: i64, max: i64 },
    /// A real-valued input range that is not a finite interval with min < max (checked before
    /// calibration, which would otherwise clamp with it and panic).
    #[error(
        "invalid input range [{min}, {max}]: min and max must be finite with min < max (--input-min/--input-max, \
         `input_range` of setup/calibrate, or the model's .meta.json)"
    )]
    InvalidInputRange { min: f64, max: f64 },
    /// An integer or bool input was given a fractional value.
    #[error("input[{index}] = {value} must be an integer: that input is of {kind} type")]
    InputNotIntegral { index: usize, value: f64, kind: &'static str },
    /// A salt that is not a field element below 2^248 (see [`crate::commitment`]).
    #[error("invalid salt: {0}")]
    InvalidSalt(String),
    /// A committed-input model was proved without a salt, or a public-input model with one.
    #[error("{}", if *.committed { "this model commits to its input: proving it needs the salt of the commitment (a private request's envelope carries it)" } else { "this model's input is public: it takes no salt (set the model up with --private-input to commit to the input)" })]
    SaltMismatch { committed: bool },
    /// The card's keys were made by a zkinfer whose circuit lays models out differently: its
    /// proving key cannot prove this version's circuit (re-run `setup`; the model id changes).
    #[error(
        "the model card was made with circuit version {card} and this zkinfer builds circuit version {current}: its keys \
         cannot prove this circuit; re-run setup (a new verifier and model id)"
    )]
    StaleCircuit { card: u32, current: u32 },
    /// The SRS given is not the one a card's keys were made with.
    #[error("{0}")]
    WrongSrs(String),
    /// A circuit size or layout that cannot be used (k out of range, an SRS of another size, a
    /// dot-product region larger than the circuit).
    #[error("invalid circuit size: {0}")]
    InvalidCircuitSize(String),
    /// No circuit layout within the requested size has a deployable verifier (or fits at all).
    #[error("no circuit layout fits: {0}")]
    NoLayout(String),
    /// Quantization parameters that cannot work.
    #[error("invalid quantization parameters: {0}")]
    InvalidParams(String),
    /// The SRS cannot serve a circuit of this size.
    #[error("the SRS supports circuits up to k = {srs_k}, but this circuit needs k = {circuit_k}; use a larger SRS")]
    SrsTooSmall { srs_k: u32, circuit_k: u32 },
    /// A powers-of-tau file failed the SRS checks (see [`crate::srs`]).
    #[error("{} is not a usable KZG SRS: {source}", path.display())]
    Srs {
        path: PathBuf,
        #[source]
        source: crate::srs::SrsError,
    },
    /// A key, SRS or proof file failed its integrity checks.
    #[error("{} is not a valid {what}: {reason}", path.display())]
    CorruptArtifact { path: PathBuf, what: &'static str, reason: String },
    /// The circuit does not fit the chosen parameters.
    #[error("circuit does not fit: {0}")]
    CircuitTooLarge(String),
    /// Proof generation failed.
    #[error("proving failed: {0}")]
    Prove(String),
    /// The proof does not verify against the verifying key and instances.
    #[error("proof rejected: {0}")]
    InvalidProof(String),
    /// A JSON document could not be parsed.
    #[error("{} is not valid {what} JSON: {source}", path.display())]
    Json {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

/// One node zkinfer cannot prove, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// ONNX node name.
    pub node: String,
    /// ONNX operator type.
    pub op: String,
    /// What is unsupported.
    pub reason: String,
}

fn refusals_message(refusals: &[Refusal]) -> String {
    let mut ops: Vec<&str> = refusals.iter().map(|r| r.op.as_str()).collect();
    ops.sort_unstable();
    ops.dedup();
    let mut msg = format!("{} node(s) cannot be proved (operators: {}):", refusals.len(), ops.join(", "));
    for r in refusals {
        msg.push_str(&format!("\n  - node `{}` ({}): {}", r.node, r.op, r.reason));
    }
    msg.push_str(&format!("\nsupported operators: {}", crate::onnx::ops::supported_ops().join(", ")));
    msg
}

impl Error {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { action, path: path.into(), source }
    }
}
