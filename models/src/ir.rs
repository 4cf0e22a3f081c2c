//! The float intermediate representation every ONNX operator lowers into.
//!
//! A model is a list of [`Layer`]s over flat, row-major tensors (batch fixed at import). The layer
//! kinds are few on purpose: linear maps with constant weights, element-wise functions of one or
//! two activations, data movement, and window reductions (pooling, `Reduce*`, `ArgMax`). The
//! quantizer ([`crate::graph`]) gives each kind an exact integer semantics, and the circuit
//! ([`crate::circuit`]) proves that semantics; neither needs to know which ONNX operator a layer
//! came from.

use serde::{Deserialize, Serialize};

use crate::functions::Func;

/// Index of a tensor in a model.
pub type TensorId = usize;

/// The terms of a linear layer: for each output, `(input index, weight)` pairs.
pub type Terms = Vec<Vec<(u32, f32)>>;

/// The products of a bilinear layer: for each output, `(index in a, index in b)` pairs.
pub type Pairs = Vec<Vec<(u32, u32)>>;

/// How a model input is typed in the ONNX file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum InputKind {
    /// A real number (float16/32/64): quantized at the model's input scale.
    Real,
    /// An integer (int8..int64, uint8..uint64): taken as is, at scale 2^0.
    Integer,
    /// A boolean: 0 or 1, at scale 2^0.
    Bool,
}

/// One input tensor of a model.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelInput {
    /// ONNX name of the input.
    pub name: String,
    /// Its tensor id.
    pub tensor: TensorId,
    /// Its type.
    pub kind: InputKind,
}

/// A model imported from ONNX, with float parameters.
#[derive(Clone, Debug)]
pub struct FloatModel {
    /// Shape of every tensor (batch dimensions included, fixed at import).
    pub shapes: Vec<Vec<usize>>,
    /// The model's inputs, in ONNX graph order (the order of the public instances).
    pub inputs: Vec<ModelInput>,
    /// Layers in evaluation order.
    pub layers: Vec<Layer>,
    /// The model's outputs, in ONNX graph order.
    pub outputs: Vec<TensorId>,
    /// ONNX names of the outputs.
    pub output_names: Vec<String>,
}

impl FloatModel {
    /// Number of values of a tensor.
    pub fn numel(&self, t: TensorId) -> usize {
        self.shapes[t].iter().product()
    }
}

/// One operation of an imported model.
#[derive(Clone, Debug)]
pub struct Layer {
    /// ONNX node name (or `<op>_<index>` when the node has none).
    pub node: String,
    /// ONNX operator type.
    pub op: String,
    /// Input tensors.
    pub inputs: Vec<TensorId>,
    /// Output tensor.
    pub output: TensorId,
    /// What it computes.
    pub kind: LayerKind,
}

/// Where a value of a [`LayerKind::Move`] output comes from.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Source {
    /// `inputs[slot][index]`.
    Input { slot: u16, index: u32 },
    /// A constant (padding, a constant operand of `Concat`).
    Const(f32),
}

/// Comparison of two values; the result is 1 (true) or 0 (false) at scale 2^0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Cmp {
    /// `a < b`
    Less,
    /// `a <= b`
    LessOrEqual,
    /// `a > b`
    Greater,
    /// `a >= b`
    GreaterOrEqual,
    /// `a == b`
    Equal,
    /// `a != b`
    NotEqual,
}

/// The computation of a layer.
#[derive(Clone, Debug)]
pub enum LayerKind {
    /// `out[o] = bias[o] + Σ w · in[i]` over `terms[o]`: every operator linear in one activation
    /// with constant coefficients (Gemm, MatMul, Conv, ConvTranspose, BatchNormalization, Mul and
    /// Div by a constant, Neg, ReduceSum over windows with weights...).
    Linear { terms: Terms, bias: Vec<f32> },
    /// `out = in + c`.
    AddConst { values: Vec<f32> },
    /// `out = a + b` (or `a - b`) of two activations of the same shape.
    Add { sub: bool },
    /// `out = a · b` of two activations of the same shape.
    Mul,
    /// A constant tensor (no inputs), for constant operands of element-wise layers.
    Const { values: Vec<f32> },
    /// Data movement: `out[o] = sources[o]` (Transpose, Slice, Gather, Concat, Pad, Expand, Tile,
    /// Resize nearest, Split, broadcasting...).
    Move { sources: Vec<Source> },
    /// `out = max(in, 0)`.
    Relu,
    /// `out = in ≥ 0 ? in : slope · in`, one slope per element (LeakyRelu, PRelu, Abs).
    LeakyRelu { slopes: Vec<f32> },
    /// `out = min(max(in, min), max)`.
    Clip { min: Option<f32>, max: Option<f32> },
    /// Element-wise `max(a, b)` (or `min`).
    MaxMin { min: bool },
    /// Element-wise comparison of two activations of the same shape.
    Compare { cmp: Cmp },
    /// `out = cond ? a : b` (inputs `[cond, a, b]`, same shape, `cond` ∈ {0, 1}).
    Where,
    /// `out[o] = Σ in[windows[o]] / divisors[o]` (AveragePool, ReduceMean, ReduceSum with divisor 1).
    AvgPool { windows: Vec<Vec<u32>>, divisors: Vec<u32> },
    /// `out[o] = max in[windows[o]]` (or `min`).
    MaxPool { windows: Vec<Vec<u32>>, min: bool },
    /// `out[o]` = position in `windows[o]` of its first largest (or smallest) value, at scale 2^0.
    ArgMax { windows: Vec<Vec<u32>>, min: bool },
    /// Same data, new shape.
    Reshape,
    /// `out = f(in)` element-wise, by a lookup table ([`crate::functions`]); `max_input` caps the
    /// table's domain (real units) where the input is known not to exceed it.
    Function { func: Func, max_input: Option<f32> },
    /// `out = a / b` of two activations of the same shape (a zero divisor is an error);
    /// `max_abs` is a bound on `|a / b|` known from the composite it comes from (Softmax ≤ 1,
    /// LayerNormalization ≤ √n), which interval arithmetic cannot see.
    Div { max_abs: Option<f32> },
    /// `out = sqrt(in)` (a negative input is an error).
    Sqrt,
    /// `out[o] = Σ a[i]·b[j]` over `pairs[o]` (inputs `[a, b]`): MatMul and Einsum of two activations.
    Bilinear { pairs: Pairs },
}
