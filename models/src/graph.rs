//! The quantized integer model and its plain-integer reference forward pass.
//!
//! [`QuantModel::forward`] defines the semantics zkinfer proves: the circuit in
//! [`crate::circuit`] must produce exactly the same integers (checked by property tests).
//!
//! Per layer, with `B = value_bits` and activations at scale `s_a`:
//! * `Linear`: `acc = bias_q + Σ w_q · x`, with `w_q = round(w·2^s_w)` and
//!   `bias_q = round(b·2^(s_x+s_w))`; then `y = div_round(acc, 2^(s_x+s_w−s_a))`, optionally
//!   followed by ReLU (fused: the circuit decomposes the rescaled value's sign bit once).
//! * `AddConst`: `y = x + round(c·2^s_x)`. `Add`: both operands are first brought to the larger of
//!   their scales by exact multiplication with a power of two.
//! * `AvgPool`: `y = div_round(Σ window, d)`. `MaxPool`: the window maximum. `Relu`: `max(x, 0)`.
//! * `Reshape`: identity on the flat data.
//!
//! Every layer output is checked to lie in `[-2^(B-1), 2^(B-1))`; a value outside is an
//! [`Error::Overflow`] naming the node.

use serde::{Deserialize, Serialize};

use crate::{
    error::{Error, Result},
    onnx::{FloatModel, LayerKind, TensorId},
    quant::{div_round, quantize, QuantParams},
};

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

/// The integer computation of a layer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum QuantOp {
    /// `y[o] = div_round(bias[o] + Σ w·x[i], 2^shift)`, then ReLU if `relu`.
    Linear { terms: Vec<Vec<(u32, i64)>>, bias: Vec<i64>, shift: u32, relu: bool },
    /// `y = x + c`.
    AddConst { values: Vec<i64> },
    /// `y = a·2^a_shift + b·2^b_shift`.
    Add { a_shift: u32, b_shift: u32 },
    /// `y = max(x, 0)`.
    Relu,
    /// `y[o] = div_round(Σ x[windows[o]], divisors[o])`.
    AvgPool { windows: Vec<Vec<u32>>, divisors: Vec<u32> },
    /// `y[o] = max x[windows[o]]`.
    MaxPool { windows: Vec<Vec<u32>> },
    /// `y = x`.
    Reshape,
}

/// A model quantized to integers.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QuantModel {
    /// Quantization parameters.
    pub params: QuantParams,
    /// Shape of every tensor; tensor 0 is the input.
    pub shapes: Vec<Vec<usize>>,
    /// Scale (bits) of every tensor.
    pub scales: Vec<u32>,
    /// Layers in evaluation order.
    pub layers: Vec<QuantLayer>,
    /// The output tensor.
    pub output: TensorId,
    /// Inclusive range accepted for each quantized input value.
    pub input_range: (i64, i64),
}

impl QuantModel {
    /// Quantizes an imported model. `input_range` narrows the accepted inputs (for example
    /// `[0, 16]` for the 8x8 digits at scale 2^4); it defaults to the whole value range.
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
        scales[0] = params.input_scale_bits;
        let mut layers: Vec<QuantLayer> = Vec::with_capacity(model.layers.len());
        let q = |x: f32, bits: u32, node: &str, what: &str| {
            quantize(x as f64, bits).ok_or_else(|| Error::InvalidGraph {
                node: node.into(),
                reason: format!("{what} {x} cannot be quantized at scale 2^{bits}"),
            })
        };
        for layer in &model.layers {
            let node = layer.node.as_str();
            let s_x = scales[layer.inputs[0]];
            let (op, scale) = match &layer.kind {
                LayerKind::Linear { terms, bias } => {
                    let s_acc = s_x + params.weight_scale_bits;
                    let shift = s_acc.checked_sub(params.activation_scale_bits).ok_or_else(|| {
                        Error::InvalidParams(format!(
                            "node `{node}`: input scale 2^{s_x} · weight scale 2^{} is finer than the activation scale",
                            params.weight_scale_bits
                        ))
                    })?;
                    let terms = terms
                        .iter()
                        .map(|t| {
                            t.iter()
                                .map(|(i, w)| Ok((*i, q(*w, params.weight_scale_bits, node, "weight")?)))
                                .filter(|r| !matches!(r, Ok((_, 0))))
                                .collect::<Result<Vec<_>>>()
                        })
                        .collect::<Result<Vec<_>>>()?;
                    let bias = bias.iter().map(|b| q(*b, s_acc, node, "bias")).collect::<Result<Vec<_>>>()?;
                    (QuantOp::Linear { terms, bias, shift, relu: false }, params.activation_scale_bits)
                }
                LayerKind::AddConst { values } => {
                    let values = values.iter().map(|c| q(*c, s_x, node, "constant")).collect::<Result<Vec<_>>>()?;
                    (QuantOp::AddConst { values }, s_x)
                }
                LayerKind::Add => {
                    let s_b = scales[layer.inputs[1]];
                    let s = s_x.max(s_b);
                    (QuantOp::Add { a_shift: s - s_x, b_shift: s - s_b }, s)
                }
                LayerKind::Relu => {
                    // Fuse into the producing Linear layer when it is the only consumer.
                    let input = layer.inputs[0];
                    let fusable = layers
                        .last()
                        .is_some_and(|l| l.output == input && matches!(l.op, QuantOp::Linear { relu: false, .. }))
                        && model.output != input
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
                LayerKind::AvgPool { windows, divisors } => {
                    (QuantOp::AvgPool { windows: windows.clone(), divisors: divisors.clone() }, s_x)
                }
                LayerKind::MaxPool { windows } => (QuantOp::MaxPool { windows: windows.clone() }, s_x),
                LayerKind::Reshape => (QuantOp::Reshape, s_x),
            };
            scales[layer.output] = scale;
            layers.push(QuantLayer {
                node: layer.node.clone(),
                inputs: layer.inputs.clone(),
                output: layer.output,
                op,
            });
        }
        Ok(Self { params, shapes: model.shapes.clone(), scales, layers, output: model.output, input_range })
    }

    /// Number of input values.
    pub fn input_len(&self) -> usize {
        self.shapes[0].iter().product()
    }

    /// Number of output values.
    pub fn output_len(&self) -> usize {
        self.shapes[self.output].iter().product()
    }

    /// Scale (bits) of the output.
    pub fn output_scale_bits(&self) -> u32 {
        self.scales[self.output]
    }

    /// Inclusive range of every output value.
    pub fn output_range(&self) -> (i64, i64) {
        let relu_last = self
            .layers
            .iter()
            .find(|l| l.output == self.output)
            .is_some_and(|l| matches!(l.op, QuantOp::Relu | QuantOp::Linear { relu: true, .. }));
        (if relu_last { 0 } else { self.params.value_min() }, self.params.value_max())
    }

    /// Quantizes a float input at the model's input scale and checks its range.
    pub fn quantize_input(&self, input: &[f64]) -> Result<Vec<i64>> {
        self.check_len(input.len())?;
        input
            .iter()
            .enumerate()
            .map(|(index, x)| {
                if !x.is_finite() {
                    return Err(Error::InputNotFinite { index });
                }
                let v = quantize(*x, self.params.input_scale_bits).ok_or(Error::InputNotFinite { index })?;
                self.check_input_value(index, v as i128)?;
                Ok(v)
            })
            .collect()
    }

    fn check_len(&self, got: usize) -> Result<()> {
        if got != self.input_len() {
            return Err(Error::InputLength { expected: self.input_len(), got, shape: self.shapes[0].clone() });
        }
        Ok(())
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
        tensors[0] = input.to_vec();
        for layer in &self.layers {
            let check = |v: i128| -> Result<i64> {
                if v < vmin || v > vmax {
                    return Err(Error::Overflow { node: layer.node.clone(), value: v, bits });
                }
                Ok(v as i64)
            };
            let x = &tensors[layer.inputs[0]];
            let out: Vec<i64> = match &layer.op {
                QuantOp::Linear { terms, bias, shift, relu } => terms
                    .iter()
                    .zip(bias)
                    .map(|(t, b)| {
                        let acc = t.iter().fold(*b as i128, |acc, (i, w)| acc + *w as i128 * x[*i as usize] as i128);
                        let y = check(div_round(acc, 1i128 << shift))?;
                        Ok(if *relu { y.max(0) } else { y })
                    })
                    .collect::<Result<_>>()?,
                QuantOp::AddConst { values } => {
                    x.iter().zip(values).map(|(a, c)| check(*a as i128 + *c as i128)).collect::<Result<_>>()?
                }
                QuantOp::Add { a_shift, b_shift } => {
                    let y = &tensors[layer.inputs[1]];
                    x.iter()
                        .zip(y)
                        .map(|(a, b)| check(((*a as i128) << a_shift) + ((*b as i128) << b_shift)))
                        .collect::<Result<_>>()?
                }
                QuantOp::Relu => x.iter().map(|v| (*v).max(0)).collect(),
                QuantOp::AvgPool { windows, divisors } => windows
                    .iter()
                    .zip(divisors)
                    .map(|(w, d)| check(div_round(w.iter().map(|i| x[*i as usize] as i128).sum(), *d as i128)))
                    .collect::<Result<_>>()?,
                QuantOp::MaxPool { windows } => windows
                    .iter()
                    .map(|w| w.iter().map(|i| x[*i as usize]).max().expect("windows are non-empty"))
                    .collect(),
                QuantOp::Reshape => x.clone(),
            };
            tensors[layer.output] = out;
        }
        Ok(tensors)
    }

    /// The reference forward pass: the quantized output.
    pub fn forward(&self, input: &[i64]) -> Result<Vec<i64>> {
        let mut all = self.forward_all(input)?;
        Ok(std::mem::take(&mut all[self.output]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onnx::Layer;

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
        FloatModel { output: shapes.len() - 1, shapes, layers }
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
        assert_eq!(m.output_range().0, 0);
    }

    #[test]
    fn overflow_names_the_node() {
        let params = QuantParams { value_bits: 8, ..QuantParams::default() };
        let m = QuantModel::quantize(&linear_model(vec![1.5], vec![0.0], 1, false), params, None).unwrap();
        match m.forward(&[127]) {
            Err(Error::Overflow { node, bits: 8, .. }) => assert_eq!(node, "fc"),
            other => panic!("expected overflow, got {other:?}"),
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
    }
}
