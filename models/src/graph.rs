//! The quantized integer model, its plain-integer reference forward pass, and a sound interval
//! bound over the registered input range.
//!
//! [`QuantModel::forward`] defines the semantics zkinfer proves: the circuit in
//! [`crate::circuit`] must produce exactly the same integers (checked by property tests).
//!
//! Per layer, with `B = value_bits`, activations at scale `s_a`, weights at `s_w`:
//! * `Linear`: `acc = bias_q + Σ w_q · x`, with `w_q = round(w·2^s_w)` and
//!   `bias_q = round(b·2^(s_x+s_w))`; then `y = div_round(acc, 2^(s_x+s_w−s_a))` (no division, and
//!   output scale `s_x+s_w`, when that is below `s_a`), optionally followed by ReLU (fused).
//! * `AddConst`: `y = x + round(c·2^s_x)` (a positive `c` that rounds to 0 is one LSB). `Add`, `MaxMin`, `Compare`, `Where`, `Move`: operands are
//!   first brought to the largest of their scales by exact multiplication with a power of two.
//! * `Mul`: `y = div_round(a·b, 2^(s_a+s_b−s_out))` with `s_out = min(s_a+s_b, activation scale)`.
//! * `LeakyRelu`: `y = x` if `x ≥ 0`, else `div_round(round(α·2^s_w)·x, 2^s_w)`.
//! * `Clip`: `min(max(x, round(lo·2^s_x)), round(hi·2^s_x))`.
//! * `Compare`: 1 or 0, at scale 2^0. `ArgMax`: the first index of the extreme value, at 2^0.
//! * `AvgPool`: `y = div_round(Σ window, d)`. `MaxPool`: the window maximum (or minimum).
//! * `Reshape`: identity on the flat data. `Const`: `round(c·2^s_a)`.
//!
//! Every value a layer produces (and every operand after scale alignment) is checked to lie in
//! `[-2^(B-1), 2^(B-1))`; a value outside is an [`Error::Overflow`] naming the node, exactly where
//! the circuit would be unsatisfiable. [`QuantModel::bounds`] proves by interval arithmetic that
//! no input inside [`QuantModel::input_range`] can reach such a value.

use serde::{Deserialize, Serialize};

use crate::{
    error::{Error, Result},
    functions::FunctionTable,
    ir::{Cmp, FloatModel, InputKind, LayerKind, Source, TensorId},
    quant::{dequantize, div_round, quantize, QuantParams, QUANTIZE_LIMIT},
};

/// Inclusive `[lo, hi]` bounds of every value of every tensor (index = tensor id).
pub type TensorBounds = Vec<Vec<(i128, i128)>>;

/// A layer of the quantized model.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QuantLayer {
    /// ONNX node name, for error messages.
    pub node: String,
    /// Input tensors.
    pub inputs: Vec<TensorId>,
    /// Output tensor.
    pub output: TensorId,
    /// Integer computation.
    pub op: QuantOp,
}

/// Where a value of a [`QuantOp::Move`] output comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum QSource {
    /// `inputs[slot][index] · 2^shifts[slot]`.
    Input { slot: u16, index: u32 },
    /// A constant at the output scale.
    Const(i64),
}

/// The integer computation of a layer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum QuantOp {
    /// `y[o] = div_round(bias[o] + Σ w·x[i], 2^shift)`, then ReLU if `relu`.
    Linear { terms: Vec<Vec<(u32, i64)>>, bias: Vec<i64>, shift: u32, relu: bool },
    /// `y = x + c`.
    AddConst { values: Vec<i64> },
    /// `y = a·2^a_shift ± b·2^b_shift`.
    Add { a_shift: u32, b_shift: u32, sub: bool },
    /// `y = div_round(a·b, 2^shift)`.
    Mul { shift: u32 },
    /// `y = values`.
    Const { values: Vec<i64> },
    /// `y[o] = sources[o]`, input values scaled by `2^shifts[slot]`.
    Move { sources: Vec<QSource>, shifts: Vec<u32> },
    /// `y = max(x, 0)`.
    Relu,
    /// `y = x ≥ 0 ? x : div_round(slope·x, 2^shift)`.
    LeakyRelu { slopes: Vec<i64>, shift: u32 },
    /// `y = min(max(x, min), max)`.
    Clip { min: Option<i64>, max: Option<i64> },
    /// `y = max(a·2^a_shift, b·2^b_shift)` (or min).
    MaxMin { min: bool, a_shift: u32, b_shift: u32 },
    /// `y = cmp(a·2^a_shift, b·2^b_shift)` ∈ {0, 1}.
    Compare { cmp: Cmp, a_shift: u32, b_shift: u32 },
    /// `y = cond ? a·2^a_shift : b·2^b_shift` (`cond` ∈ {0, 1}, enforced).
    Where { a_shift: u32, b_shift: u32 },
    /// `y[o] = div_round(Σ x[windows[o]], divisors[o])`.
    AvgPool { windows: Vec<Vec<u32>>, divisors: Vec<u32> },
    /// `y[o] = max x[windows[o]]` (or min).
    MaxPool { windows: Vec<Vec<u32>>, min: bool },
    /// `y[o]` = first position of the max (or min) of `x[windows[o]]`.
    ArgMax { windows: Vec<Vec<u32>>, min: bool },
    /// `y = x`.
    Reshape,
    /// `u = div_round(x, 2^shift)`, clamped to the table's domain (on the sides flagged), then
    /// `y = table[u]` ([`crate::functions`]).
    Table { shift: u32, table: FunctionTable, clamp_lo: bool, clamp_hi: bool },
    /// `y = div_round(a·2^shift, b)` for `b ≠ 0` (computed as `div_round(−a·2^shift, −b)` for `b < 0`);
    /// `max_abs` bounds `|y|` where the composite it comes from guarantees it (interval bounds).
    Div {
        shift: u32,
        #[serde(default)]
        max_abs: Option<i64>,
    },
    /// `y = round(sqrt(x·2^shift))`, half up, for `x ≥ 0` (a negative `x` is an error).
    Sqrt { shift: u32 },
    /// `y[o] = div_round(Σ a[i]·b[j] over pairs[o], 2^shift)`.
    Bilinear { pairs: Vec<Vec<(u32, u32)>>, shift: u32 },
}

/// A model input after quantization.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuantInput {
    /// ONNX name.
    pub name: String,
    /// Tensor id.
    pub tensor: TensorId,
    /// Type in the ONNX file.
    pub kind: InputKind,
    /// Scale (bits): the input scale for real inputs, 0 for integers and booleans.
    pub scale_bits: u32,
}

/// A model quantized to integers.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QuantModel {
    /// Quantization parameters.
    pub params: QuantParams,
    /// Shape of every tensor.
    pub shapes: Vec<Vec<usize>>,
    /// Scale (bits) of every tensor.
    pub scales: Vec<u32>,
    /// Layers in evaluation order.
    pub layers: Vec<QuantLayer>,
    /// The inputs, in order: the flat model input is their concatenation.
    pub inputs: Vec<QuantInput>,
    /// The outputs, in order: the flat model output is their concatenation (all at one scale).
    pub outputs: Vec<TensorId>,
    /// Inclusive range accepted for every quantized input value.
    pub input_range: (i64, i64),
    /// Committed-input mode: the input is a private witness and the proof exposes only
    /// `C = Poseidon(pack(input) ‖ salt)` in its place (see [`crate::commitment`]). Set by setup's
    /// `--private-input`; models saved before it existed are public-input.
    #[serde(default)]
    pub input_committed: bool,
}

/// The largest value any input in range can produce, and where.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValueBound {
    /// Largest magnitude of any range-checked value (as a decimal string: it may exceed 2^53).
    pub max_abs: String,
    /// The node where it occurs.
    pub node: String,
    /// Smallest `value_bits` that holds every such value.
    pub required_value_bits: u32,
}

fn bits_for(max_abs: i128) -> u32 {
    // Smallest B with -2^(B-1) <= -max_abs and max_abs <= 2^(B-1) - 1.
    let mut b = 2;
    while b < 127 && (1i128 << (b - 1)) <= max_abs {
        b += 1;
    }
    b
}

impl QuantModel {
    /// Quantizes an imported model. `input_range` narrows the accepted inputs (for example
    /// `[0, 16]` for the 8x8 digits at scale 2^4); it defaults to the whole value range.
    ///
    /// This does not check that every input in range is provable: see [`Self::bound`].
    pub fn quantize(model: &FloatModel, params: QuantParams, input_range: Option<(i64, i64)>) -> Result<Self> {
        params.validate()?;
        let (vmin, vmax) = (params.value_min(), params.value_max());
        let input_range = input_range.unwrap_or((vmin, vmax));
        if input_range.0 > input_range.1 || input_range.0 < vmin || input_range.1 > vmax {
            return Err(Error::InvalidParams(format!(
                "input range [{}, {}] must lie within the {}-bit value range [{vmin}, {vmax}]",
                input_range.0, input_range.1, params.value_bits
            )));
        }
        let mut scales = vec![0u32; model.shapes.len()];
        let inputs: Vec<QuantInput> = model
            .inputs
            .iter()
            .map(|i| QuantInput {
                name: i.name.clone(),
                tensor: i.tensor,
                kind: i.kind,
                scale_bits: if i.kind == InputKind::Real { params.input_scale_bits } else { 0 },
            })
            .collect();
        for i in &inputs {
            scales[i.tensor] = i.scale_bits;
        }
        let (s_w, s_a) = (params.weight_scale_bits, params.activation_scale_bits);
        let mut layers: Vec<QuantLayer> = Vec::with_capacity(model.layers.len());
        let q = |x: f32, bits: u32, node: &str, what: &str| {
            quantize(x as f64, bits).ok_or_else(|| Error::InvalidGraph {
                node: node.into(),
                reason: format!("{what} {x} cannot be quantized at scale 2^{bits}"),
            })
        };
        let mut outputs = model.outputs.clone();
        let mut shapes = model.shapes.clone();
        // Brings tensor `t` up to scale `target` with an exact data-movement layer (a new tensor):
        // a real constant added to or clipping a tensor at a coarser scale (0/1 flags, indices,
        // integer inputs) must not be rounded to that scale.
        let upscale = |layers: &mut Vec<QuantLayer>,
                       shapes: &mut Vec<Vec<usize>>,
                       scales: &mut Vec<u32>,
                       t: TensorId,
                       target: u32,
                       node: &str|
         -> TensorId {
            let id = shapes.len();
            let n: usize = shapes[t].iter().product();
            shapes.push(shapes[t].clone());
            scales.push(target);
            layers.push(QuantLayer {
                node: format!("{node}:align"),
                inputs: vec![t],
                output: id,
                op: QuantOp::Move {
                    sources: (0..n).map(|i| QSource::Input { slot: 0, index: i as u32 }).collect(),
                    shifts: vec![target - scales[t]],
                },
            });
            id
        };
        for layer in &model.layers {
            let node = layer.node.as_str();
            let mut layer_inputs = layer.inputs.clone();
            if matches!(layer.kind, LayerKind::AddConst { .. } | LayerKind::Clip { .. })
                && scales[layer_inputs[0]] < s_a
            {
                layer_inputs[0] = upscale(&mut layers, &mut shapes, &mut scales, layer_inputs[0], s_a, node);
            }
            let s_in: Vec<u32> = layer_inputs.iter().map(|t| scales[*t]).collect();
            let s_x = s_in.first().copied().unwrap_or(s_a);
            let s_max = s_in.iter().copied().max().unwrap_or(s_a);
            let shifts = |s: &[u32]| -> Vec<u32> { s.iter().map(|x| s_max - x).collect() };
            let (op, scale) = match &layer.kind {
                LayerKind::Linear { terms, bias } => {
                    let s_acc = s_x + s_w;
                    let shift = s_acc.saturating_sub(s_a);
                    let terms = terms
                        .iter()
                        .map(|t| {
                            t.iter()
                                .map(|(i, w)| Ok((*i, q(*w, s_w, node, "weight")?)))
                                .filter(|r| !matches!(r, Ok((_, 0))))
                                .collect::<Result<Vec<_>>>()
                        })
                        .collect::<Result<Vec<_>>>()?;
                    let bias = bias.iter().map(|b| q(*b, s_acc, node, "bias")).collect::<Result<Vec<_>>>()?;
                    (QuantOp::Linear { terms, bias, shift, relu: false }, s_acc - shift)
                }
                LayerKind::AddConst { values } => {
                    // A positive constant too small for the scale (an ε before a square root or a
                    // division) is one LSB, not zero.
                    let values = values
                        .iter()
                        .map(|c| q(*c, s_x, node, "constant").map(|v| if *c > 0.0 { v.max(1) } else { v }))
                        .collect::<Result<Vec<_>>>()?;
                    (QuantOp::AddConst { values }, s_x)
                }
                LayerKind::Add { sub } => {
                    let sh = shifts(&s_in);
                    (QuantOp::Add { a_shift: sh[0], b_shift: sh[1], sub: *sub }, s_max)
                }
                LayerKind::Mul => {
                    let s = s_in[0] + s_in[1];
                    let shift = s.saturating_sub(s_a);
                    (QuantOp::Mul { shift }, s - shift)
                }
                LayerKind::Const { values } => {
                    // Integers (masks, zeros) stay at 2^0: consumers align them up exactly.
                    let s = if values.iter().all(|v| v.fract() == 0.0) { 0 } else { s_a };
                    let values = values.iter().map(|c| q(*c, s, node, "constant")).collect::<Result<Vec<_>>>()?;
                    (QuantOp::Const { values }, s)
                }
                LayerKind::Move { sources } => {
                    let sources = sources
                        .iter()
                        .map(|s| {
                            Ok(match s {
                                Source::Input { slot, index } => QSource::Input { slot: *slot, index: *index },
                                Source::Const(c) => QSource::Const(q(*c, s_max, node, "constant")?),
                            })
                        })
                        .collect::<Result<Vec<_>>>()?;
                    (QuantOp::Move { sources, shifts: shifts(&s_in) }, s_max)
                }
                LayerKind::Relu => {
                    // Fuse into the producing Linear layer when it is the only consumer.
                    let input = layer.inputs[0];
                    let fusable = layers
                        .last()
                        .is_some_and(|l| l.output == input && matches!(l.op, QuantOp::Linear { relu: false, .. }))
                        && !model.outputs.contains(&input)
                        && model.layers.iter().filter(|l| l.inputs.contains(&input)).count() == 1;
                    if fusable {
                        let prev = layers.last_mut().expect("checked above");
                        if let QuantOp::Linear { relu, .. } = &mut prev.op {
                            *relu = true;
                        }
                        prev.output = layer.output;
                        prev.node = format!("{}+{}", prev.node, node);
                        scales[layer.output] = s_x;
                        continue;
                    }
                    (QuantOp::Relu, s_x)
                }
                LayerKind::LeakyRelu { slopes } => {
                    let slopes = slopes.iter().map(|a| q(*a, s_w, node, "slope")).collect::<Result<Vec<_>>>()?;
                    (QuantOp::LeakyRelu { slopes, shift: s_w }, s_x)
                }
                LayerKind::Clip { min, max } => {
                    // A positive lower bound stays positive (a divisor floor), a negative upper
                    // bound negative: at least one LSB.
                    let min = min
                        .map(|v| q(v, s_x, node, "clip bound").map(|c| if v > 0.0 { c.max(1) } else { c }))
                        .transpose()?;
                    let max = max
                        .map(|v| q(v, s_x, node, "clip bound").map(|c| if v < 0.0 { c.min(-1) } else { c }))
                        .transpose()?;
                    (QuantOp::Clip { min, max }, s_x)
                }
                LayerKind::MaxMin { min } => {
                    let sh = shifts(&s_in);
                    (QuantOp::MaxMin { min: *min, a_shift: sh[0], b_shift: sh[1] }, s_max)
                }
                LayerKind::Compare { cmp } => {
                    let sh = shifts(&s_in);
                    (QuantOp::Compare { cmp: *cmp, a_shift: sh[0], b_shift: sh[1] }, 0)
                }
                LayerKind::Where => {
                    let s = s_in[1].max(s_in[2]);
                    (QuantOp::Where { a_shift: s - s_in[1], b_shift: s - s_in[2] }, s)
                }
                LayerKind::AvgPool { windows, divisors } => {
                    (QuantOp::AvgPool { windows: windows.clone(), divisors: divisors.clone() }, s_x)
                }
                LayerKind::MaxPool { windows, min } => (QuantOp::MaxPool { windows: windows.clone(), min: *min }, s_x),
                LayerKind::ArgMax { windows, min } => (QuantOp::ArgMax { windows: windows.clone(), min: *min }, 0),
                LayerKind::Reshape => (QuantOp::Reshape, s_x),
                LayerKind::Function { func, max_input } => {
                    let (bounds, _, _) = interval_bounds(&layers, &shapes, &inputs, input_range);
                    let hull = hull(&bounds[layer_inputs[0]]);
                    let table =
                        FunctionTable::build(*func, s_x, s_a, hull, max_input.map(f64::from), params.value_bits, node)?;
                    let shift = s_x - table.in_scale_bits;
                    let (ulo, uhi) = (div_round(hull.0, 1i128 << shift), div_round(hull.1, 1i128 << shift));
                    // Clamped only on a saturating side; elsewhere the input must stay in the table
                    // (an error in the reference pass, a failed lookup in the circuit, refused at
                    // setup by `check_bound` when the input range allows it).
                    let (sat_lo, sat_hi) = table.func.saturates();
                    let clamp_lo = sat_lo && ulo < table.lo as i128;
                    let clamp_hi = (sat_hi || table.capped) && uhi > table.hi() as i128;
                    (QuantOp::Table { shift, table, clamp_lo, clamp_hi }, s_a)
                }
                LayerKind::Div { max_abs } => {
                    let s_out = s_a.max(s_in[0].saturating_sub(s_in[1]));
                    // One LSB above the real bound covers the quotient's rounding.
                    let max_abs = max_abs.map(|m| (m as f64 * (1u64 << s_out) as f64).ceil() as i64 + 1);
                    (QuantOp::Div { shift: s_out + s_in[1] - s_in[0], max_abs }, s_out)
                }
                LayerKind::Sqrt => {
                    let s_out = s_a.max(s_x.div_ceil(2));
                    (QuantOp::Sqrt { shift: 2 * s_out - s_x }, s_out)
                }
                LayerKind::Bilinear { pairs } => {
                    let s = s_in[0] + s_in[1];
                    let shift = s.saturating_sub(s_a);
                    (QuantOp::Bilinear { pairs: pairs.clone(), shift }, s - shift)
                }
            };
            scales[layer.output] = scale;
            layers.push(QuantLayer { node: layer.node.clone(), inputs: layer_inputs, output: layer.output, op });
        }
        // All outputs at one scale: lower-scale outputs (indices, 0/1 flags) are scaled up exactly.
        let out_scale = outputs.iter().map(|t| scales[*t]).max().unwrap_or(s_a);
        for (j, out) in outputs.iter_mut().enumerate() {
            if scales[*out] != out_scale {
                let name = model.output_names.get(j).cloned().unwrap_or_default();
                *out = upscale(&mut layers, &mut shapes, &mut scales, *out, out_scale, &name);
            }
        }
        Ok(Self { params, shapes, scales, layers, inputs, outputs, input_range, input_committed: false })
    }

    /// Whether any layer is proved by a function table (the circuit then has a lookup region).
    pub fn has_function_tables(&self) -> bool {
        self.layers.iter().any(|l| matches!(l.op, QuantOp::Table { .. }))
    }

    /// Number of public instances of the model's proofs (see [`crate::circuit::num_instances`]).
    pub fn num_instances(&self) -> usize {
        crate::circuit::num_instances(self.input_len(), self.output_len(), self.params.value_bits, self.input_committed)
    }

    /// Number of input values (all inputs, concatenated).
    pub fn input_len(&self) -> usize {
        self.inputs.iter().map(|i| self.numel(i.tensor)).sum()
    }

    /// Number of output values (all outputs, concatenated).
    pub fn output_len(&self) -> usize {
        self.outputs.iter().map(|t| self.numel(*t)).sum()
    }

    fn numel(&self, t: TensorId) -> usize {
        self.shapes[t].iter().product()
    }

    /// Shape of the flat input: the input's shape for a single input, `[input_len]` otherwise.
    pub fn input_shape(&self) -> Vec<usize> {
        match self.inputs.as_slice() {
            [one] => self.shapes[one.tensor].clone(),
            _ => vec![self.input_len()],
        }
    }

    /// Shape of the flat output: the output's shape for a single output, `[output_len]` otherwise.
    pub fn output_shape(&self) -> Vec<usize> {
        match self.outputs.as_slice() {
            [one] => self.shapes[*one].clone(),
            _ => vec![self.output_len()],
        }
    }

    /// Scale (bits) of the inputs that are real numbers (integer and bool inputs are at 2^0).
    pub fn input_scale_bits(&self) -> u32 {
        self.inputs.iter().find(|i| i.kind == InputKind::Real).map_or(0, |i| i.scale_bits)
    }

    /// Scale (bits) of the output.
    pub fn output_scale_bits(&self) -> u32 {
        self.outputs.first().map_or(0, |t| self.scales[*t])
    }

    /// Inclusive range of every output value: from the interval bound, within the value range.
    pub fn output_range(&self) -> (i64, i64) {
        let (vmin, vmax) = (self.params.value_min(), self.params.value_max());
        match self.bounds() {
            Ok(b) => {
                let lo = self.outputs.iter().flat_map(|t| b[*t].iter().map(|x| x.0)).min().unwrap_or(0);
                let hi = self.outputs.iter().flat_map(|t| b[*t].iter().map(|x| x.1)).max().unwrap_or(0);
                ((lo.max(vmin as i128)) as i64, (hi.min(vmax as i128)) as i64)
            }
            Err(_) => (vmin, vmax),
        }
    }

    /// Quantizes a float input (all inputs concatenated) and checks its range. Integer and bool
    /// inputs must hold integers.
    pub fn quantize_input(&self, input: &[f64]) -> Result<Vec<i64>> {
        self.check_len(input.len())?;
        let mut out = Vec::with_capacity(input.len());
        let mut index = 0;
        for i in &self.inputs {
            for _ in 0..self.numel(i.tensor) {
                let x = input[index];
                if !x.is_finite() {
                    return Err(Error::InputNotFinite { index });
                }
                if i.kind != InputKind::Real && x.fract() != 0.0 {
                    let kind = if i.kind == InputKind::Bool { "bool" } else { "integer" };
                    return Err(Error::InputNotIntegral { index, value: x, kind });
                }
                let v = quantize(x, i.scale_bits).ok_or_else(|| self.too_large(index, x, i.scale_bits))?;
                self.check_input_value(index, v as i128)?;
                out.push(v);
                index += 1;
            }
        }
        Ok(out)
    }

    fn check_len(&self, got: usize) -> Result<()> {
        if got != self.input_len() {
            return Err(Error::InputLength { expected: self.input_len(), got, shape: self.input_shape() });
        }
        Ok(())
    }

    /// The error of a finite input that [`quantize`] cannot hold, with the model's range in real units.
    fn too_large(&self, index: usize, value: f64, scale_bits: u32) -> Error {
        let (min, max) = self.input_range;
        Error::InputTooLarge {
            index,
            value,
            min: dequantize(min, scale_bits),
            max: dequantize(max, scale_bits),
            scale_bits,
            limit: QUANTIZE_LIMIT / (1u64 << scale_bits) as f64,
        }
    }

    fn check_input_value(&self, index: usize, value: i128) -> Result<()> {
        let (min, max) = self.input_range;
        if value < min as i128 || value > max as i128 {
            return Err(Error::InputOutOfRange { index, value, min, max });
        }
        Ok(())
    }

    /// Validates an already quantized input.
    pub fn check_input(&self, input: &[i64]) -> Result<()> {
        self.check_len(input.len())?;
        input.iter().enumerate().try_for_each(|(i, v)| self.check_input_value(i, *v as i128))
    }

    /// The reference forward pass: returns every tensor (index = tensor id).
    pub fn forward_all(&self, input: &[i64]) -> Result<Vec<Vec<i64>>> {
        self.check_input(input)?;
        let bits = self.params.value_bits;
        let (vmin, vmax) = (self.params.value_min() as i128, self.params.value_max() as i128);
        let mut tensors: Vec<Vec<i64>> = vec![Vec::new(); self.shapes.len()];
        let mut offset = 0;
        for i in &self.inputs {
            let n = self.numel(i.tensor);
            tensors[i.tensor] = input[offset..offset + n].to_vec();
            offset += n;
        }
        for layer in &self.layers {
            let check = |v: i128| -> Result<i64> {
                if v < vmin || v > vmax {
                    return Err(Error::Overflow { node: layer.node.clone(), value: v, bits });
                }
                Ok(v as i64)
            };
            let arg = |slot: usize| -> &Vec<i64> { &tensors[layer.inputs[slot]] };
            let scaled = |v: i64, shift: u32| check((v as i128) << shift);
            let pair = |a_shift: u32, b_shift: u32| -> Result<Vec<(i64, i64)>> {
                arg(0).iter().zip(arg(1)).map(|(a, b)| Ok((scaled(*a, a_shift)?, scaled(*b, b_shift)?))).collect()
            };
            let out: Vec<i64> = match &layer.op {
                QuantOp::Linear { terms, bias, shift, relu } => {
                    let x = arg(0);
                    terms
                        .iter()
                        .zip(bias)
                        .map(|(t, b)| {
                            let acc =
                                t.iter().fold(*b as i128, |acc, (i, w)| acc + *w as i128 * x[*i as usize] as i128);
                            let y = check(div_round(acc, 1i128 << shift))?;
                            Ok(if *relu { y.max(0) } else { y })
                        })
                        .collect::<Result<_>>()?
                }
                QuantOp::AddConst { values } => {
                    arg(0).iter().zip(values).map(|(a, c)| check(*a as i128 + *c as i128)).collect::<Result<_>>()?
                }
                QuantOp::Add { a_shift, b_shift, sub } => pair(*a_shift, *b_shift)?
                    .into_iter()
                    .map(|(a, b)| check(if *sub { a as i128 - b as i128 } else { a as i128 + b as i128 }))
                    .collect::<Result<_>>()?,
                QuantOp::Mul { shift } => arg(0)
                    .iter()
                    .zip(arg(1))
                    .map(|(a, b)| check(div_round(*a as i128 * *b as i128, 1i128 << shift)))
                    .collect::<Result<_>>()?,
                QuantOp::Const { values } => values.iter().map(|v| check(*v as i128)).collect::<Result<_>>()?,
                QuantOp::Move { sources, shifts } => sources
                    .iter()
                    .map(|s| match s {
                        QSource::Input { slot, index } => {
                            scaled(tensors[layer.inputs[*slot as usize]][*index as usize], shifts[*slot as usize])
                        }
                        QSource::Const(c) => check(*c as i128),
                    })
                    .collect::<Result<_>>()?,
                QuantOp::Relu => arg(0).iter().map(|v| (*v).max(0)).collect(),
                QuantOp::LeakyRelu { slopes, shift } => arg(0)
                    .iter()
                    .zip(slopes)
                    .map(
                        |(x, a)| {
                            if *x >= 0 {
                                Ok(*x)
                            } else {
                                check(div_round(*a as i128 * *x as i128, 1i128 << shift))
                            }
                        },
                    )
                    .collect::<Result<_>>()?,
                QuantOp::Clip { min, max } => arg(0)
                    .iter()
                    .map(|x| {
                        let mut y = *x;
                        if let Some(lo) = min {
                            y = y.max(*lo);
                        }
                        if let Some(hi) = max {
                            y = y.min(*hi);
                        }
                        check(y as i128)
                    })
                    .collect::<Result<_>>()?,
                QuantOp::MaxMin { min, a_shift, b_shift } => {
                    pair(*a_shift, *b_shift)?.into_iter().map(|(a, b)| if *min { a.min(b) } else { a.max(b) }).collect()
                }
                QuantOp::Compare { cmp, a_shift, b_shift } => pair(*a_shift, *b_shift)?
                    .into_iter()
                    .map(|(a, b)| {
                        i64::from(match cmp {
                            Cmp::Less => a < b,
                            Cmp::LessOrEqual => a <= b,
                            Cmp::Greater => a > b,
                            Cmp::GreaterOrEqual => a >= b,
                            Cmp::Equal => a == b,
                            Cmp::NotEqual => a != b,
                        })
                    })
                    .collect(),
                QuantOp::Where { a_shift, b_shift } => {
                    let (c, a, b) = (arg(0), &tensors[layer.inputs[1]], &tensors[layer.inputs[2]]);
                    c.iter()
                        .zip(a.iter().zip(b))
                        .map(|(c, (a, b))| {
                            let (a, b) = (scaled(*a, *a_shift)?, scaled(*b, *b_shift)?);
                            match c {
                                0 => Ok(b),
                                1 => Ok(a),
                                other => Err(Error::InvalidGraph {
                                    node: layer.node.clone(),
                                    reason: format!("condition value {other} is not 0 or 1"),
                                }),
                            }
                        })
                        .collect::<Result<_>>()?
                }
                QuantOp::AvgPool { windows, divisors } => {
                    let x = arg(0);
                    windows
                        .iter()
                        .zip(divisors)
                        .map(|(w, d)| check(div_round(w.iter().map(|i| x[*i as usize] as i128).sum(), *d as i128)))
                        .collect::<Result<_>>()?
                }
                QuantOp::MaxPool { windows, min } => {
                    let x = arg(0);
                    windows
                        .iter()
                        .map(|w| {
                            let it = w.iter().map(|i| x[*i as usize]);
                            if *min { it.min() } else { it.max() }.expect("windows are non-empty")
                        })
                        .collect()
                }
                QuantOp::ArgMax { windows, min } => {
                    let x = arg(0);
                    windows
                        .iter()
                        .map(|w| {
                            let mut best = 0usize;
                            for (j, i) in w.iter().enumerate() {
                                let (v, b) = (x[*i as usize], x[w[best] as usize]);
                                if (*min && v < b) || (!*min && v > b) {
                                    best = j;
                                }
                            }
                            best as i64
                        })
                        .collect()
                }
                QuantOp::Reshape => arg(0).clone(),
                QuantOp::Table { shift, table, .. } => arg(0)
                    .iter()
                    .map(|x| {
                        let u = div_round(*x as i128, 1i128 << shift);
                        table.check(u, &layer.node)?;
                        check(table.eval(u as i64) as i128)
                    })
                    .collect::<Result<_>>()?,
                QuantOp::Div { shift, .. } => arg(0)
                    .iter()
                    .zip(arg(1))
                    .map(|(a, b)| {
                        let (n, d) = div_operands(*a, *b, *shift)
                            .ok_or_else(|| Error::DivisionByZero { node: layer.node.clone() })?;
                        check(div_round(n, d))
                    })
                    .collect::<Result<_>>()?,
                QuantOp::Sqrt { shift } => arg(0)
                    .iter()
                    .map(|x| {
                        if *x < 0 {
                            let s = self.scales[layer.inputs[0]];
                            return Err(Error::OutsideDomain {
                                node: layer.node.clone(),
                                function: "Sqrt".into(),
                                value: *x as f64 / (1u64 << s) as f64,
                                lo: 0.0,
                                hi: f64::INFINITY,
                            });
                        }
                        check(sqrt_round((*x as i128) << shift))
                    })
                    .collect::<Result<_>>()?,
                QuantOp::Bilinear { pairs, shift } => {
                    let (a, b) = (arg(0), arg(1));
                    pairs
                        .iter()
                        .map(|p| {
                            let acc: i128 =
                                p.iter().map(|(i, j)| a[*i as usize] as i128 * b[*j as usize] as i128).sum();
                            check(div_round(acc, 1i128 << shift))
                        })
                        .collect::<Result<_>>()?
                }
            };
            tensors[layer.output] = out;
        }
        Ok(tensors)
    }

    /// The reference forward pass: the quantized output (all outputs, concatenated).
    pub fn forward(&self, input: &[i64]) -> Result<Vec<i64>> {
        let all = self.forward_all(input)?;
        Ok(self.outputs.iter().flat_map(|t| all[*t].iter().copied()).collect())
    }

    /// Sound interval bounds `[lo, hi]` of every value of every tensor over all inputs in
    /// [`Self::input_range`], and the largest magnitude of any value the forward pass range
    /// checks (with its node).
    pub fn bounds_with_max(&self) -> Result<(TensorBounds, i128, String)> {
        Ok(interval_bounds(&self.layers, &self.shapes, &self.inputs, self.input_range))
    }

    /// Sound interval bounds of every tensor over the registered input range.
    pub fn bounds(&self) -> Result<TensorBounds> {
        Ok(self.bounds_with_max()?.0)
    }

    /// The largest value any input in range can produce, where, and the value bits it needs.
    pub fn bound(&self) -> Result<ValueBound> {
        let (_, max_abs, node) = self.bounds_with_max()?;
        Ok(ValueBound { max_abs: max_abs.to_string(), node, required_value_bits: bits_for(max_abs) })
    }

    /// Checks that every input in the registered range is provable with the model's value bits.
    ///
    /// # Errors
    /// [`Error::InputRangeNotProvable`] naming the node and the bits needed.
    pub fn check_bound(&self) -> Result<ValueBound> {
        let (bounds, max_abs, node) = self.bounds_with_max()?;
        for layer in &self.layers {
            let x = hull(&bounds[layer.inputs.first().copied().unwrap_or(0)]);
            match &layer.op {
                QuantOp::Table { shift, table, .. } => {
                    table.check(div_round(x.0, 1i128 << shift), &layer.node)?;
                    table.check(div_round(x.1, 1i128 << shift), &layer.node)?;
                }
                QuantOp::Sqrt { .. } if x.0 < 0 => {
                    return Err(Error::OutsideDomain {
                        node: layer.node.clone(),
                        function: "Sqrt".into(),
                        value: x.0 as f64 / (1u64 << self.scales[layer.inputs[0]]) as f64,
                        lo: 0.0,
                        hi: f64::INFINITY,
                    });
                }
                QuantOp::Div { .. } => {
                    let d = hull(&bounds[layer.inputs[1]]);
                    if d.0 <= 0 && d.1 >= 0 {
                        return Err(Error::DivisorMayBeZero {
                            node: layer.node.clone(),
                            lo: d.0,
                            hi: d.1,
                            min: self.input_range.0,
                            max: self.input_range.1,
                        });
                    }
                }
                _ => {}
            }
        }
        let bound = ValueBound { max_abs: max_abs.to_string(), node, required_value_bits: bits_for(max_abs) };
        if bound.required_value_bits > self.params.value_bits {
            return Err(Error::InputRangeNotProvable {
                node: bound.node.clone(),
                max_abs: bound.max_abs.clone(),
                bits: self.params.value_bits,
                required: bound.required_value_bits,
                min: self.input_range.0,
                max: self.input_range.1,
            });
        }
        Ok(bound)
    }
}

/// The hull `[min lo, max hi]` of a tensor's bounds.
pub fn hull(bounds: &[(i128, i128)]) -> (i128, i128) {
    let lo = bounds.iter().map(|b| b.0).min().unwrap_or(0);
    let hi = bounds.iter().map(|b| b.1).max().unwrap_or(0);
    (lo, hi)
}

/// `(n, d)` with `d > 0` and `n/d = a·2^shift / b`, or `None` for `b = 0`.
pub fn div_operands(a: i64, b: i64, shift: u32) -> Option<(i128, i128)> {
    let n = (a as i128) << shift;
    match b.signum() {
        0 => None,
        1 => Some((n, b as i128)),
        _ => Some((-n, -(b as i128))),
    }
}

/// `round(sqrt(n))`, half up, for `n ≥ 0`: `⌊(⌊sqrt(4n)⌋ + 1) / 2⌋`.
pub fn sqrt_round(n: i128) -> i128 {
    (isqrt(4 * n.max(0)) + 1) / 2
}

/// `⌊sqrt(n)⌋` for `n ≥ 0`.
pub fn isqrt(n: i128) -> i128 {
    (n.max(0) as u128).isqrt() as i128
}

/// Sound interval bounds of every tensor of `layers` over inputs in `input_range`, and the largest
/// magnitude of any range-checked value with its node (see [`QuantModel::bounds_with_max`]).
pub fn interval_bounds(
    layers: &[QuantLayer],
    shapes: &[Vec<usize>],
    inputs: &[QuantInput],
    input_range: (i64, i64),
) -> (TensorBounds, i128, String) {
    let numel = |t: TensorId| -> usize { shapes[t].iter().product() };
    let mut b: Vec<Vec<(i128, i128)>> = vec![Vec::new(); shapes.len()];
    let (lo, hi) = (input_range.0 as i128, input_range.1 as i128);
    let mut max_abs = lo.abs().max(hi.abs());
    let mut max_node = "(input)".to_string();
    for i in inputs {
        b[i.tensor] = vec![(lo, hi); numel(i.tensor)];
    }
    let dr = |x: i128, d: i128| div_round(x, d);
    let sc = |(l, h): (i128, i128), s: u32| (l << s, h << s);
    for layer in layers {
        let mut seen = |v: &(i128, i128)| {
            let m = v.0.abs().max(v.1.abs());
            if m > max_abs {
                max_abs = m;
                max_node = layer.node.clone();
            }
        };
        let x = &b[layer.inputs.first().copied().unwrap_or(0)];
        let out: Vec<(i128, i128)> = match &layer.op {
            QuantOp::Linear { terms, bias, shift, relu } => terms
                .iter()
                .zip(bias)
                .map(|(t, bias)| {
                    let (mut l, mut h) = (*bias as i128, *bias as i128);
                    for (i, w) in t {
                        let (xl, xh) = x[*i as usize];
                        let (p, q) = (*w as i128 * xl, *w as i128 * xh);
                        l += p.min(q);
                        h += p.max(q);
                    }
                    let y = (dr(l, 1 << shift), dr(h, 1 << shift));
                    seen(&y);
                    if *relu {
                        (y.0.max(0), y.1.max(0))
                    } else {
                        y
                    }
                })
                .collect(),
            QuantOp::AddConst { values } => x
                .iter()
                .zip(values)
                .map(|((l, h), c)| {
                    let y = (l + *c as i128, h + *c as i128);
                    seen(&y);
                    y
                })
                .collect(),
            QuantOp::Add { a_shift, b_shift, sub } => x
                .iter()
                .zip(&b[layer.inputs[1]])
                .map(|(a, bb)| {
                    let (a, bb) = (sc(*a, *a_shift), sc(*bb, *b_shift));
                    seen(&a);
                    seen(&bb);
                    let y = if *sub { (a.0 - bb.1, a.1 - bb.0) } else { (a.0 + bb.0, a.1 + bb.1) };
                    seen(&y);
                    y
                })
                .collect(),
            QuantOp::Mul { shift } => x
                .iter()
                .zip(&b[layer.inputs[1]])
                .map(|(a, bb)| {
                    let mut c = vec![a.0 * bb.0, a.0 * bb.1, a.1 * bb.0, a.1 * bb.1];
                    if layer.inputs[0] == layer.inputs[1] {
                        // x·x: never negative.
                        c = vec![
                            if a.0 <= 0 && a.1 >= 0 { 0 } else { a.0.abs().min(a.1.abs()).pow(2) },
                            a.0 * a.0,
                            a.1 * a.1,
                        ];
                    }
                    let y = (dr(*c.iter().min().unwrap(), 1 << shift), dr(*c.iter().max().unwrap(), 1 << shift));
                    seen(&y);
                    y
                })
                .collect(),
            QuantOp::Const { values } => values
                .iter()
                .map(|v| {
                    let y = (*v as i128, *v as i128);
                    seen(&y);
                    y
                })
                .collect(),
            QuantOp::Move { sources, shifts } => sources
                .iter()
                .map(|s| {
                    let y = match s {
                        QSource::Input { slot, index } => {
                            sc(b[layer.inputs[*slot as usize]][*index as usize], shifts[*slot as usize])
                        }
                        QSource::Const(c) => (*c as i128, *c as i128),
                    };
                    seen(&y);
                    y
                })
                .collect(),
            QuantOp::Relu => x.iter().map(|(l, h)| (*l.max(&0), *h.max(&0))).collect(),
            QuantOp::LeakyRelu { slopes, shift } => x
                .iter()
                .zip(slopes)
                .map(|((l, h), a)| {
                    let g = |v: i128| dr(*a as i128 * v, 1 << shift);
                    // x ≥ 0 is the identity; x < 0 is monotone in x for either sign of the slope.
                    let mut cands = Vec::with_capacity(4);
                    if *h >= 0 {
                        cands.extend([*h, (*l).max(0)]);
                    }
                    if *l < 0 {
                        cands.extend([g(*l), g((*h).min(-1))]);
                    }
                    let y = (*cands.iter().min().unwrap(), *cands.iter().max().unwrap());
                    seen(&y);
                    y
                })
                .collect(),
            QuantOp::Clip { min, max } => x
                .iter()
                .map(|(l, h)| {
                    let f = |v: i128| {
                        let v = min.map_or(v, |m| v.max(m as i128));
                        max.map_or(v, |m| v.min(m as i128))
                    };
                    let y = (f(*l), f(*h));
                    seen(&y);
                    y
                })
                .collect(),
            QuantOp::MaxMin { min, a_shift, b_shift } => x
                .iter()
                .zip(&b[layer.inputs[1]])
                .map(|(a, bb)| {
                    let (a, bb) = (sc(*a, *a_shift), sc(*bb, *b_shift));
                    seen(&a);
                    seen(&bb);
                    if *min {
                        (a.0.min(bb.0), a.1.min(bb.1))
                    } else {
                        (a.0.max(bb.0), a.1.max(bb.1))
                    }
                })
                .collect(),
            QuantOp::Compare { a_shift, b_shift, .. } => x
                .iter()
                .zip(&b[layer.inputs[1]])
                .map(|(a, bb)| {
                    seen(&sc(*a, *a_shift));
                    seen(&sc(*bb, *b_shift));
                    (0, 1)
                })
                .collect(),
            QuantOp::Where { a_shift, b_shift } => b[layer.inputs[1]]
                .iter()
                .zip(&b[layer.inputs[2]])
                .map(|(a, bb)| {
                    let (a, bb) = (sc(*a, *a_shift), sc(*bb, *b_shift));
                    seen(&a);
                    seen(&bb);
                    (a.0.min(bb.0), a.1.max(bb.1))
                })
                .collect(),
            QuantOp::AvgPool { windows, divisors } => windows
                .iter()
                .zip(divisors)
                .map(|(w, d)| {
                    let l: i128 = w.iter().map(|i| x[*i as usize].0).sum();
                    let h: i128 = w.iter().map(|i| x[*i as usize].1).sum();
                    let y = (dr(l, *d as i128), dr(h, *d as i128));
                    seen(&y);
                    y
                })
                .collect(),
            QuantOp::MaxPool { windows, min } => windows
                .iter()
                .map(|w| {
                    let ls = w.iter().map(|i| x[*i as usize].0);
                    let hs = w.iter().map(|i| x[*i as usize].1);
                    if *min {
                        (ls.min().unwrap_or(0), hs.min().unwrap_or(0))
                    } else {
                        (ls.max().unwrap_or(0), hs.max().unwrap_or(0))
                    }
                })
                .collect(),
            QuantOp::ArgMax { windows, .. } => windows.iter().map(|w| (0, w.len() as i128 - 1)).collect(),
            QuantOp::Reshape => x.clone(),
            QuantOp::Table { shift, table, .. } => x
                .iter()
                .map(|(l, h)| {
                    let (ul, uh) = (dr(*l, 1 << shift) as i64, dr(*h, 1 << shift) as i64);
                    let (ul, uh) = (ul.clamp(table.lo, table.hi()), uh.clamp(table.lo, table.hi()));
                    let seg = &table.values[(ul - table.lo) as usize..=(uh - table.lo) as usize];
                    let y = (*seg.iter().min().unwrap() as i128, *seg.iter().max().unwrap() as i128);
                    seen(&y);
                    y
                })
                .collect(),
            QuantOp::Div { shift, max_abs } => x
                .iter()
                .zip(&b[layer.inputs[1]])
                .map(|(a, d)| {
                    let y = if d.0 > 0 || d.1 < 0 {
                        // The quotient is monotone on each corner-to-corner edge of a box not
                        // containing 0; ±1 covers the rounding offset varying with the divisor.
                        let mut c = Vec::with_capacity(4);
                        for av in [a.0, a.1] {
                            for dv in [d.0, d.1] {
                                let (n, dd) = div_operands(av as i64, dv as i64, *shift).expect("non-zero");
                                c.push(div_round(n, dd));
                            }
                        }
                        (c.iter().min().unwrap() - 1, c.iter().max().unwrap() + 1)
                    } else {
                        // The divisor may be any non-zero integer in range: |y| ≤ |a|·2^shift.
                        let m = (a.0.abs().max(a.1.abs()) << shift) + 1;
                        (-m, m)
                    };
                    let y = match max_abs {
                        Some(m) => (y.0.max(-(*m as i128)), y.1.min(*m as i128)),
                        None => y,
                    };
                    seen(&y);
                    y
                })
                .collect(),
            QuantOp::Sqrt { shift } => x
                .iter()
                .map(|(l, h)| {
                    let y = (sqrt_round((*l).max(0) << shift), sqrt_round((*h).max(0) << shift));
                    seen(&y);
                    y
                })
                .collect(),
            QuantOp::Bilinear { pairs, shift } => {
                let bb = &b[layer.inputs[1]];
                pairs
                    .iter()
                    .map(|p| {
                        let (mut l, mut h) = (0i128, 0i128);
                        let same = layer.inputs[0] == layer.inputs[1];
                        for (i, j) in p {
                            let (u, v) = (x[*i as usize], bb[*j as usize]);
                            if same && i == j {
                                // A square: never negative.
                                let m = u.0.abs().max(u.1.abs());
                                l += if u.0 <= 0 && u.1 >= 0 { 0 } else { u.0.abs().min(u.1.abs()).pow(2) };
                                h += m * m;
                                continue;
                            }
                            let c = [u.0 * v.0, u.0 * v.1, u.1 * v.0, u.1 * v.1];
                            l += c.iter().min().unwrap();
                            h += c.iter().max().unwrap();
                        }
                        let y = (dr(l, 1 << shift), dr(h, 1 << shift));
                        seen(&y);
                        y
                    })
                    .collect()
            }
        };
        b[layer.output] = out;
    }
    (b, max_abs, max_node)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{Layer, ModelInput};

    pub(crate) fn float_model(shapes: Vec<Vec<usize>>, layers: Vec<Layer>, outputs: Vec<TensorId>) -> FloatModel {
        FloatModel {
            shapes,
            inputs: vec![ModelInput { name: "x".into(), tensor: 0, kind: InputKind::Real }],
            layers,
            outputs,
            output_names: vec!["y".into()],
        }
    }

    fn linear_model(w: Vec<f32>, b: Vec<f32>, k: usize, relu: bool) -> FloatModel {
        let n = b.len();
        let terms = (0..n).map(|o| (0..k).map(|i| (i as u32, w[o * k + i])).collect()).collect();
        let mut layers = vec![Layer {
            node: "fc".into(),
            op: "Gemm".into(),
            inputs: vec![0],
            output: 1,
            kind: LayerKind::Linear { terms, bias: b },
        }];
        let mut shapes = vec![vec![1, k], vec![1, n]];
        if relu {
            layers.push(Layer {
                node: "relu".into(),
                op: "Relu".into(),
                inputs: vec![1],
                output: 2,
                kind: LayerKind::Relu,
            });
            shapes.push(vec![1, n]);
        }
        let out = shapes.len() - 1;
        float_model(shapes, layers, vec![out])
    }

    #[test]
    fn linear_rescales_with_half_up_rounding() {
        let params =
            QuantParams { input_scale_bits: 2, weight_scale_bits: 2, activation_scale_bits: 2, value_bits: 16 };
        // w = 0.75 -> 3, b = 0.25 -> 0.25·2^4 = 4; x = 1.5 -> 6. acc = 4 + 18 = 22; 22/4 = 5.5 -> 6.
        let m = QuantModel::quantize(&linear_model(vec![0.75], vec![0.25], 1, false), params, None).unwrap();
        assert_eq!(m.forward(&[6]).unwrap(), vec![6]);
        // x = -1.5 -> -6: acc = 4 - 18 = -14; -14/4 = -3.5 -> -3 (half up).
        assert_eq!(m.forward(&[-6]).unwrap(), vec![-3]);
    }

    #[test]
    fn relu_is_fused_into_linear() {
        let m =
            QuantModel::quantize(&linear_model(vec![1.0, -1.0], vec![0.0, 0.0], 1, true), QuantParams::default(), None)
                .unwrap();
        assert_eq!(m.layers.len(), 1);
        assert!(matches!(m.layers[0].op, QuantOp::Linear { relu: true, .. }));
        assert_eq!(m.forward(&[64]).unwrap(), vec![64, 0]);
    }

    #[test]
    fn overflow_names_the_node() {
        let params = QuantParams { value_bits: 8, ..QuantParams::default() };
        let m = QuantModel::quantize(&linear_model(vec![1.5], vec![0.0], 1, false), params, None).unwrap();
        match m.forward(&[127]) {
            Err(Error::Overflow { node, bits: 8, .. }) => assert_eq!(node, "fc"),
            other => panic!("expected overflow, got {other:?}"),
        }
        // The bound sees it before any input is tried.
        assert!(matches!(m.check_bound(), Err(Error::InputRangeNotProvable { required: 9, .. })));
    }

    #[test]
    fn the_bound_covers_every_input_in_range() {
        let model = linear_model(vec![0.5, -2.0, 1.25, 0.75], vec![0.1, -0.3], 2, true);
        let m = QuantModel::quantize(&model, QuantParams::default(), Some((-100, 100))).unwrap();
        let bounds = m.bounds().unwrap();
        for a in (-100..=100).step_by(7) {
            for b in (-100..=100).step_by(9) {
                let all = m.forward_all(&[a, b]).unwrap();
                for (t, values) in all.iter().enumerate() {
                    for (v, (lo, hi)) in values.iter().zip(&bounds[t]) {
                        assert!(*lo <= *v as i128 && *v as i128 <= *hi, "tensor {t}: {v} outside [{lo}, {hi}]");
                    }
                }
            }
        }
    }

    #[test]
    fn inputs_are_validated() {
        let m =
            QuantModel::quantize(&linear_model(vec![1.0], vec![0.0], 1, false), QuantParams::default(), Some((0, 16)))
                .unwrap();
        assert!(matches!(m.forward(&[1, 2]), Err(Error::InputLength { expected: 1, got: 2, .. })));
        assert!(matches!(m.forward(&[17]), Err(Error::InputOutOfRange { index: 0, value: 17, min: 0, max: 16 })));
        assert!(matches!(m.quantize_input(&[f64::NAN]), Err(Error::InputNotFinite { index: 0 })));
        // Finite but beyond 64 bits once quantized: named as out of range, with the value and the limit.
        let err = m.quantize_input(&[1e30]).unwrap_err();
        assert!(matches!(err, Error::InputTooLarge { index: 0, .. }), "{err:?}");
        let text = err.to_string();
        assert!(text.starts_with("input[0] = 1e30 is outside the model's input range ["), "{text}");
        assert!(text.contains("in magnitude to fit 64 bits"), "{text}");
    }

    #[test]
    fn value_bits_hold_the_bound_exactly() {
        assert_eq!(bits_for(0), 2);
        assert_eq!(bits_for(1), 2);
        assert_eq!(bits_for(127), 8);
        assert_eq!(bits_for(128), 9);
        assert_eq!(bits_for(32767), 16);
    }
}
