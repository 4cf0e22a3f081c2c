//! ONNX import: an ONNX file (parsed by `tract-onnx`) becomes a [`FloatModel`], a topologically
//! ordered list of layers over flat row-major tensors with batch size 1.
//!
//! Every linear operator (Gemm, MatMul, Conv, BatchNormalization) is lowered to one generic
//! [`LayerKind::Linear`]: for each output element, a bias plus a sparse list of
//! `(input index, weight)` terms. Pooling is lowered to explicit windows. The reference pass and
//! the circuit then only need to know a handful of layer kinds.

use std::{collections::HashMap, path::Path};

use tract_onnx::{
    data_resolver::FopenDataResolver,
    pb::{self, type_proto, NodeProto},
    prelude::{Framework, Tensor},
};

use crate::error::{Error, Result};

/// The ONNX operators zkinfer can prove.
pub const SUPPORTED_OPS: &str = "Gemm, MatMul, Conv, BatchNormalization, Add, Sub, Relu, \
    AveragePool, MaxPool, GlobalAveragePool, Flatten, Reshape, Squeeze, Unsqueeze, Identity, \
    Dropout, Constant";

/// Index of a tensor in a model.
pub type TensorId = usize;

/// A model imported from ONNX, with float parameters.
#[derive(Clone, Debug)]
pub struct FloatModel {
    /// Shape of every tensor; tensor 0 is the input (batch dimension included, fixed to 1).
    pub shapes: Vec<Vec<usize>>,
    /// Layers in evaluation order.
    pub layers: Vec<Layer>,
    /// The tensor that is the model's output.
    pub output: TensorId,
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

/// The computation of a layer.
#[derive(Clone, Debug)]
pub enum LayerKind {
    /// `out[o] = bias[o] + Σ w · in[i]` over `terms[o]`.
    Linear { terms: Vec<Vec<(u32, f32)>>, bias: Vec<f32> },
    /// `out = in + c`, `c` broadcast to the output shape.
    AddConst { values: Vec<f32> },
    /// `out = a + b` of two activations of the same shape.
    Add,
    /// `out = max(in, 0)`.
    Relu,
    /// `out[o] = Σ in[windows[o]] / divisors[o]`.
    AvgPool { windows: Vec<Vec<u32>>, divisors: Vec<u32> },
    /// `out[o] = max in[windows[o]]`.
    MaxPool { windows: Vec<Vec<u32>> },
    /// Same data, new shape.
    Reshape,
}

/// A dense layer's parameters: weight `w[w_index(i, o)]` for input `i` and output `o`.
struct Dense<'a> {
    w: &'a [f32],
    k: usize,
    n: usize,
    w_index: &'a dyn Fn(usize, usize) -> usize,
    bias: Vec<f32>,
    shape: Vec<usize>,
}

/// A constant operand: dims, values as floats, and as integers when integral.
type ConstRef<'a> = (&'a [usize], &'a [f32], Option<&'a [i64]>);

enum Value {
    Act(TensorId),
    Const { dims: Vec<usize>, data: Vec<f32>, ints: Option<Vec<i64>> },
}

/// Imports an ONNX file.
pub fn import(path: &Path) -> Result<FloatModel> {
    let bytes = std::fs::read(path).map_err(|e| Error::io("reading ONNX model", path, e))?;
    let proto = tract_onnx::onnx()
        .proto_model_for_read(&mut bytes.as_slice())
        .map_err(|e| Error::MalformedOnnx { path: path.into(), reason: format!("{e:#}") })?;
    let graph = proto
        .graph
        .as_ref()
        .ok_or_else(|| Error::MalformedOnnx { path: path.into(), reason: "the model has no graph".into() })?;
    Importer::default().run(graph, path)
}

#[derive(Default)]
struct Importer {
    values: HashMap<String, Value>,
    shapes: Vec<Vec<usize>>,
    layers: Vec<Layer>,
}

fn graph_err(node: &str, reason: impl Into<String>) -> Error {
    Error::InvalidGraph { node: node.into(), reason: reason.into() }
}

fn attr_err(node: &NodeProto, name: &str, e: impl std::fmt::Display) -> Error {
    Error::InvalidGraph { node: node.name.clone(), reason: format!("attribute {name}: {e}") }
}

fn unsupported_attr(node: &str, op: &str, attribute: &str, value: impl std::fmt::Debug) -> Error {
    Error::UnsupportedAttribute {
        node: node.into(),
        op: op.into(),
        attribute: attribute.into(),
        value: format!("{value:?}"),
    }
}

fn load_tensor(t: &pb::TensorProto, node: &str) -> Result<Value> {
    let tensor: Tensor = tract_onnx::tensor::load_tensor(&FopenDataResolver, t, None)
        .map_err(|e| graph_err(node, format!("cannot load tensor `{}`: {e:#}", t.name)))?;
    let dims = tensor.shape().to_vec();
    let ints = tensor
        .cast_to::<i64>()
        .ok()
        .and_then(|c| c.to_plain_array_view::<i64>().ok().map(|a| a.iter().copied().collect()));
    let floats =
        tensor.cast_to::<f32>().map_err(|e| graph_err(node, format!("tensor `{}` is not numeric: {e:#}", t.name)))?;
    let data = floats
        .to_plain_array_view::<f32>()
        .map_err(|e| graph_err(node, format!("tensor `{}`: {e:#}", t.name)))?
        .iter()
        .copied()
        .collect();
    Ok(Value::Const { dims, data, ints })
}

fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// Row-major strides of a shape.
fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// Broadcasts `data` of shape `from` to shape `to` (numpy rules).
fn broadcast(data: &[f32], from: &[usize], to: &[usize], node: &str) -> Result<Vec<f32>> {
    if from.len() > to.len() {
        return Err(Error::ShapeMismatch { node: node.into(), expected: to.to_vec(), got: from.to_vec() });
    }
    let pad = to.len() - from.len();
    let mut padded = vec![1; pad];
    padded.extend_from_slice(from);
    for (a, b) in padded.iter().zip(to) {
        if *a != 1 && a != b {
            return Err(Error::ShapeMismatch { node: node.into(), expected: to.to_vec(), got: from.to_vec() });
        }
    }
    let src_strides = strides(&padded);
    let dst_strides = strides(to);
    Ok((0..numel(to))
        .map(|flat| {
            let mut src = 0;
            for d in 0..to.len() {
                let coord = (flat / dst_strides[d]) % to[d];
                if padded[d] != 1 {
                    src += coord * src_strides[d];
                }
            }
            data[src]
        })
        .collect())
}

impl Importer {
    fn run(mut self, graph: &pb::GraphProto, path: &Path) -> Result<FloatModel> {
        for init in &graph.initializer {
            let v = load_tensor(init, &init.name)?;
            self.values.insert(init.name.clone(), v);
        }
        let inputs: Vec<&pb::ValueInfoProto> =
            graph.input.iter().filter(|i| !self.values.contains_key(&i.name)).collect();
        let [input] = inputs.as_slice() else {
            return Err(Error::MalformedOnnx {
                path: path.into(),
                reason: format!("zkinfer models take exactly one input tensor, this one has {}", inputs.len()),
            });
        };
        let input_shape = Self::input_shape(input, path)?;
        self.shapes.push(input_shape);
        self.values.insert(input.name.clone(), Value::Act(0));

        for (index, node) in graph.node.iter().enumerate() {
            let name = if node.name.is_empty() { format!("{}_{index}", node.op_type) } else { node.name.clone() };
            self.node(node, &name)?;
        }
        let [output] = graph.output.as_slice() else {
            return Err(Error::MalformedOnnx {
                path: path.into(),
                reason: format!("zkinfer models have exactly one output, this one has {}", graph.output.len()),
            });
        };
        let output = match self.values.get(&output.name) {
            Some(Value::Act(id)) => *id,
            Some(Value::Const { .. }) => return Err(graph_err(&output.name, "the output is a constant")),
            None => return Err(graph_err(&output.name, "the output is never computed")),
        };
        Ok(FloatModel { shapes: self.shapes, layers: self.layers, output })
    }

    fn input_shape(input: &pb::ValueInfoProto, path: &Path) -> Result<Vec<usize>> {
        let bad = |reason: String| Error::MalformedOnnx { path: path.into(), reason };
        let Some(type_proto::Value::TensorType(tt)) = input.r#type.as_ref().and_then(|t| t.value.as_ref()) else {
            return Err(bad(format!("input `{}` is not a tensor", input.name)));
        };
        let shape = tt.shape.as_ref().ok_or_else(|| bad(format!("input `{}` has no shape", input.name)))?;
        shape
            .dim
            .iter()
            .enumerate()
            .map(|(axis, d)| {
                use pb::tensor_shape_proto::dimension::Value as D;
                match &d.value {
                    Some(D::DimValue(v)) if *v > 0 => Ok(*v as usize),
                    // A symbolic leading dimension is the batch: zkinfer proves one sample.
                    Some(D::DimParam(_)) | None if axis == 0 => Ok(1),
                    other => Err(bad(format!("input `{}` has unsupported dimension {axis}: {other:?}", input.name))),
                }
            })
            .collect()
    }

    fn act(&self, node: &NodeProto, name: &str, i: usize) -> Result<TensorId> {
        match node.input.get(i).and_then(|n| self.values.get(n)) {
            Some(Value::Act(id)) => Ok(*id),
            Some(Value::Const { .. }) => {
                Err(graph_err(name, format!("input {i} must be computed from the model input, not a constant")))
            }
            None => Err(graph_err(name, format!("input {i} ({:?}) is not defined", node.input.get(i)))),
        }
    }

    fn konst(&self, node: &NodeProto, name: &str, i: usize) -> Result<ConstRef<'_>> {
        match node.input.get(i).filter(|n| !n.is_empty()).and_then(|n| self.values.get(n)) {
            Some(Value::Const { dims, data, ints }) => Ok((dims, data, ints.as_deref())),
            Some(Value::Act(_)) => Err(graph_err(
                name,
                format!("input {i} must be a constant (initializer); data-dependent weights are not supported"),
            )),
            None => Err(graph_err(name, format!("input {i} ({:?}) is not defined", node.input.get(i)))),
        }
    }

    fn has_input(&self, node: &NodeProto, i: usize) -> bool {
        node.input.get(i).is_some_and(|n| !n.is_empty())
    }

    fn push(
        &mut self,
        node: &NodeProto,
        name: &str,
        inputs: Vec<TensorId>,
        shape: Vec<usize>,
        kind: LayerKind,
    ) -> Result<()> {
        let output = self.shapes.len();
        self.shapes.push(shape);
        let out_name = node.output.first().ok_or_else(|| graph_err(name, "node has no output"))?;
        self.values.insert(out_name.clone(), Value::Act(output));
        self.layers.push(Layer { node: name.into(), op: node.op_type.clone(), inputs, output, kind });
        Ok(())
    }

    fn alias(&mut self, node: &NodeProto, name: &str, input: TensorId, shape: Vec<usize>) -> Result<()> {
        if numel(&shape) != numel(&self.shapes[input]) {
            return Err(Error::ShapeMismatch { node: name.into(), expected: self.shapes[input].clone(), got: shape });
        }
        self.push(node, name, vec![input], shape, LayerKind::Reshape)
    }

    fn node(&mut self, node: &NodeProto, name: &str) -> Result<()> {
        let op = node.op_type.as_str();
        match op {
            "Gemm" => self.gemm(node, name),
            "MatMul" => self.matmul(node, name),
            "Conv" => self.conv(node, name),
            "BatchNormalization" => self.batch_norm(node, name),
            "Add" | "Sub" => self.add(node, name, op == "Sub"),
            "Relu" => {
                let x = self.act(node, name, 0)?;
                let shape = self.shapes[x].clone();
                self.push(node, name, vec![x], shape, LayerKind::Relu)
            }
            "AveragePool" | "MaxPool" | "GlobalAveragePool" => self.pool(node, name),
            "Flatten" => {
                let x = self.act(node, name, 0)?;
                let shape = self.shapes[x].clone();
                let axis = node.get_attr_opt::<i64>("axis").map_err(|e| attr_err(node, "axis", e))?.unwrap_or(1);
                let axis = if axis < 0 { axis + shape.len() as i64 } else { axis };
                if !(0..=shape.len() as i64).contains(&axis) {
                    return Err(unsupported_attr(name, op, "axis", axis));
                }
                let (a, b) = shape.split_at(axis as usize);
                self.alias(node, name, x, vec![numel(a), numel(b)])
            }
            "Reshape" => {
                let x = self.act(node, name, 0)?;
                let (_, _, ints) = self.konst(node, name, 1)?;
                let target = ints.ok_or_else(|| graph_err(name, "shape must be an int64 constant"))?.to_vec();
                let shape = self.reshape_target(name, &self.shapes[x].clone(), &target)?;
                self.alias(node, name, x, shape)
            }
            "Squeeze" | "Unsqueeze" => {
                let x = self.act(node, name, 0)?;
                let shape = self.shapes[x].clone();
                let axes: Vec<i64> = if self.has_input(node, 1) {
                    self.konst(node, name, 1)?.2.ok_or_else(|| graph_err(name, "axes must be int64"))?.to_vec()
                } else {
                    node.get_attr_opt_slice::<i64>("axes")
                        .map_err(|e| attr_err(node, "axes", e))?
                        .map(|s| s.to_vec())
                        .unwrap_or_default()
                };
                let new_shape = if op == "Squeeze" {
                    let rank = shape.len() as i64;
                    let axes: Vec<usize> = axes.iter().map(|a| (if *a < 0 { a + rank } else { *a }) as usize).collect();
                    shape
                        .iter()
                        .enumerate()
                        .filter(|(i, d)| !(if axes.is_empty() { **d == 1 } else { axes.contains(i) }))
                        .map(|(_, d)| *d)
                        .collect()
                } else {
                    let rank = (shape.len() + axes.len()) as i64;
                    let mut axes: Vec<usize> =
                        axes.iter().map(|a| (if *a < 0 { a + rank } else { *a }) as usize).collect();
                    axes.sort_unstable();
                    let mut s = shape.clone();
                    for a in axes {
                        if a > s.len() {
                            return Err(unsupported_attr(name, op, "axes", a));
                        }
                        s.insert(a, 1);
                    }
                    s
                };
                self.alias(node, name, x, new_shape)
            }
            "Identity" | "Dropout" => {
                let x = self.act(node, name, 0)?;
                let shape = self.shapes[x].clone();
                self.alias(node, name, x, shape)
            }
            "Constant" => {
                let t = node
                    .get_attr_opt::<&pb::TensorProto>("value")
                    .map_err(|e| attr_err(node, "value", e))?
                    .ok_or_else(|| Error::UnsupportedAttribute {
                        node: name.into(),
                        op: op.into(),
                        attribute: "value".into(),
                        value: "(only tensor constants)".into(),
                    })?;
                let v = load_tensor(t, name)?;
                let out = node.output.first().ok_or_else(|| graph_err(name, "node has no output"))?;
                self.values.insert(out.clone(), v);
                Ok(())
            }
            _ => Err(Error::UnsupportedOp { node: name.into(), op: op.into(), supported: SUPPORTED_OPS }),
        }
    }

    fn reshape_target(&self, name: &str, from: &[usize], target: &[i64]) -> Result<Vec<usize>> {
        let mut out = Vec::with_capacity(target.len());
        let mut infer = None;
        for (i, t) in target.iter().enumerate() {
            match *t {
                0 => out.push(*from.get(i).ok_or_else(|| graph_err(name, "shape 0 refers to a missing dimension"))?),
                -1 if infer.is_none() => {
                    infer = Some(i);
                    out.push(1);
                }
                t if t > 0 => out.push(t as usize),
                t => return Err(graph_err(name, format!("invalid reshape dimension {t}"))),
            }
        }
        if let Some(i) = infer {
            let known = numel(&out);
            if known == 0 || numel(from) % known != 0 {
                return Err(Error::ShapeMismatch { node: name.into(), expected: from.to_vec(), got: out });
            }
            out[i] = numel(from) / known;
        }
        Ok(out)
    }

    /// Checks an activation is a batch of one vector and returns its length.
    fn vector_len(&self, name: &str, x: TensorId) -> Result<usize> {
        let shape = &self.shapes[x];
        match shape.as_slice() {
            [k] | [1, k] => Ok(*k),
            _ => Err(Error::ShapeMismatch { node: name.into(), expected: vec![1, numel(shape)], got: shape.clone() }),
        }
    }

    /// `out[o] = bias[o] + Σ_i w[w_index(i, o)] · x[i]` for a `k`-vector `x` and `n` outputs.
    fn dense(&mut self, node: &NodeProto, name: &str, x: TensorId, dense: Dense<'_>) -> Result<()> {
        let Dense { w, k, n, w_index, bias, shape } = dense;
        let terms =
            (0..n).map(|o| (0..k).map(|i| (i as u32, w[w_index(i, o)])).filter(|(_, w)| *w != 0.0).collect()).collect();
        self.push(node, name, vec![x], shape, LayerKind::Linear { terms, bias })
    }

    fn gemm(&mut self, node: &NodeProto, name: &str) -> Result<()> {
        let op = "Gemm";
        for (attr, default) in [("alpha", 1.0f32), ("beta", 1.0)] {
            let v = node.get_attr_opt::<f32>(attr).map_err(|e| attr_err(node, attr, e))?.unwrap_or(default);
            if v != 1.0 {
                return Err(unsupported_attr(name, op, attr, v));
            }
        }
        let trans_a = node.get_attr_opt::<i64>("transA").map_err(|e| attr_err(node, "transA", e))?.unwrap_or(0);
        if trans_a != 0 {
            return Err(unsupported_attr(name, op, "transA", trans_a));
        }
        let trans_b = node.get_attr_opt::<i64>("transB").map_err(|e| attr_err(node, "transB", e))?.unwrap_or(0) != 0;
        let x = self.act(node, name, 0)?;
        let k = self.vector_len(name, x)?;
        let (dims, w) = {
            let (d, w, _) = self.konst(node, name, 1)?;
            (d.to_vec(), w.to_vec())
        };
        let [r, c] = dims.as_slice() else {
            return Err(graph_err(name, format!("weight must be 2-D, got shape {dims:?}")));
        };
        let (wk, n) = if trans_b { (*c, *r) } else { (*r, *c) };
        if wk != k {
            return Err(Error::ShapeMismatch { node: name.into(), expected: vec![1, wk], got: self.shapes[x].clone() });
        }
        let bias = if self.has_input(node, 2) {
            let (bd, b, _) = self.konst(node, name, 2)?;
            broadcast(b, bd, &[1, n], name)?
        } else {
            vec![0.0; n]
        };
        let (cols, tb) = (*c, trans_b);
        let w_index = move |i: usize, o: usize| if tb { o * cols + i } else { i * cols + o };
        self.dense(node, name, x, Dense { w: &w, k, n, w_index: &w_index, bias, shape: vec![1, n] })
    }

    fn matmul(&mut self, node: &NodeProto, name: &str) -> Result<()> {
        let x = self.act(node, name, 0)?;
        let shape = self.shapes[x].clone();
        let (dims, w) = {
            let (d, w, _) = self.konst(node, name, 1)?;
            (d.to_vec(), w.to_vec())
        };
        let [k, n] = dims.as_slice() else {
            return Err(graph_err(name, format!("MatMul weight must be a 2-D constant, got shape {dims:?}")));
        };
        let (k, n) = (*k, *n);
        if shape.last() != Some(&k) || numel(&shape) != k {
            return Err(Error::ShapeMismatch { node: name.into(), expected: vec![1, k], got: shape });
        }
        let mut out_shape = shape.clone();
        *out_shape.last_mut().expect("non-empty") = n;
        let w_index = move |i: usize, o: usize| i * n + o;
        self.dense(node, name, x, Dense { w: &w, k, n, w_index: &w_index, bias: vec![0.0; n], shape: out_shape })
    }

    fn spatial(&self, name: &str, x: TensorId) -> Result<(usize, usize, usize)> {
        match self.shapes[x].as_slice() {
            [1, c, h, w] => Ok((*c, *h, *w)),
            other => Err(Error::ShapeMismatch { node: name.into(), expected: vec![1, 0, 0, 0], got: other.to_vec() }),
        }
    }

    /// Reads `pads` / `auto_pad` / `strides` / `dilations` for a 2-D window op.
    fn window_attrs(
        &self,
        node: &NodeProto,
        name: &str,
        kernel: [usize; 2],
        hw: [usize; 2],
    ) -> Result<([usize; 2], [usize; 4])> {
        let op = node.op_type.as_str();
        let strides = node
            .get_attr_opt_slice::<i64>("strides")
            .map_err(|e| attr_err(node, "strides", e))?
            .map(|s| s.to_vec())
            .unwrap_or(vec![1, 1]);
        let [sh, sw] = strides.as_slice() else { return Err(unsupported_attr(name, op, "strides", strides)) };
        if *sh < 1 || *sw < 1 {
            return Err(unsupported_attr(name, op, "strides", strides));
        }
        let stride = [*sh as usize, *sw as usize];
        if let Some(d) = node.get_attr_opt_slice::<i64>("dilations").map_err(|e| attr_err(node, "dilations", e))? {
            if d.iter().any(|d| *d != 1) {
                return Err(unsupported_attr(name, op, "dilations", d));
            }
        }
        let auto_pad = node
            .get_attr_opt::<String>("auto_pad")
            .map_err(|e| attr_err(node, "auto_pad", e))?
            .unwrap_or_else(|| "NOTSET".into());
        let pads = match auto_pad.as_str() {
            "NOTSET" => {
                let p = node
                    .get_attr_opt_slice::<i64>("pads")
                    .map_err(|e| attr_err(node, "pads", e))?
                    .map(|s| s.to_vec())
                    .unwrap_or(vec![0; 4]);
                let [t, l, b, r] = p.as_slice() else { return Err(unsupported_attr(name, op, "pads", p)) };
                if [t, l, b, r].iter().any(|v| **v < 0) {
                    return Err(unsupported_attr(name, op, "pads", p));
                }
                [*t as usize, *l as usize, *b as usize, *r as usize]
            }
            "VALID" => [0; 4],
            "SAME_UPPER" | "SAME_LOWER" => {
                let mut p = [0usize; 4];
                for a in 0..2 {
                    let out = hw[a].div_ceil(stride[a]);
                    let total = ((out - 1) * stride[a] + kernel[a]).saturating_sub(hw[a]);
                    let (small, big) = (total / 2, total - total / 2);
                    let (begin, end) = if auto_pad == "SAME_UPPER" { (small, big) } else { (big, small) };
                    p[a] = begin;
                    p[a + 2] = end;
                }
                p
            }
            other => return Err(unsupported_attr(name, op, "auto_pad", other)),
        };
        Ok((stride, pads))
    }

    fn conv(&mut self, node: &NodeProto, name: &str) -> Result<()> {
        let op = "Conv";
        let x = self.act(node, name, 0)?;
        let (c, h, w) = self.spatial(name, x)?;
        let group = node.get_attr_opt::<i64>("group").map_err(|e| attr_err(node, "group", e))?.unwrap_or(1);
        if group != 1 {
            return Err(unsupported_attr(name, op, "group", group));
        }
        let (dims, weights) = {
            let (d, wt, _) = self.konst(node, name, 1)?;
            (d.to_vec(), wt.to_vec())
        };
        let [m, wc, kh, kw] = dims.as_slice() else {
            return Err(graph_err(name, format!("Conv weight must be 4-D [M, C, kH, kW], got {dims:?}")));
        };
        let (m, kh, kw) = (*m, *kh, *kw);
        if *wc != c {
            return Err(Error::ShapeMismatch {
                node: name.into(),
                expected: vec![1, *wc, h, w],
                got: self.shapes[x].clone(),
            });
        }
        let (stride, pads) = self.window_attrs(node, name, [kh, kw], [h, w])?;
        let bias = if self.has_input(node, 2) { self.konst(node, name, 2)?.1.to_vec() } else { vec![0.0; m] };
        if bias.len() != m {
            return Err(Error::ShapeMismatch { node: name.into(), expected: vec![m], got: vec![bias.len()] });
        }
        let (ph, pw) = (h + pads[0] + pads[2], w + pads[1] + pads[3]);
        if ph < kh || pw < kw {
            return Err(graph_err(name, format!("kernel {kh}x{kw} is larger than the padded input {ph}x{pw}")));
        }
        let (oh, ow) = ((ph - kh) / stride[0] + 1, (pw - kw) / stride[1] + 1);
        let mut terms = Vec::with_capacity(m * oh * ow);
        let mut out_bias = Vec::with_capacity(m * oh * ow);
        for mo in 0..m {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut t = Vec::with_capacity(c * kh * kw);
                    for ci in 0..c {
                        for ky in 0..kh {
                            for kx in 0..kw {
                                let iy = (oy * stride[0] + ky) as isize - pads[0] as isize;
                                let ix = (ox * stride[1] + kx) as isize - pads[1] as isize;
                                if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                    continue;
                                }
                                let wv = weights[((mo * c + ci) * kh + ky) * kw + kx];
                                if wv != 0.0 {
                                    t.push(((((ci * h) + iy as usize) * w + ix as usize) as u32, wv));
                                }
                            }
                        }
                    }
                    terms.push(t);
                    out_bias.push(bias[mo]);
                }
            }
        }
        self.push(node, name, vec![x], vec![1, m, oh, ow], LayerKind::Linear { terms, bias: out_bias })
    }

    fn batch_norm(&mut self, node: &NodeProto, name: &str) -> Result<()> {
        let x = self.act(node, name, 0)?;
        let shape = self.shapes[x].clone();
        let ch = *shape.get(1).ok_or_else(|| Error::ShapeMismatch {
            node: name.into(),
            expected: vec![1, 0],
            got: shape.clone(),
        })?;
        let eps = node.get_attr_opt::<f32>("epsilon").map_err(|e| attr_err(node, "epsilon", e))?.unwrap_or(1e-5);
        let mut p = Vec::new();
        for i in 1..=4 {
            let v = self.konst(node, name, i)?.1.to_vec();
            if v.len() != ch {
                return Err(Error::ShapeMismatch { node: name.into(), expected: vec![ch], got: vec![v.len()] });
            }
            p.push(v);
        }
        let inner = numel(&shape[2..]);
        let (mut terms, mut bias) = (Vec::new(), Vec::new());
        // y = scale·(x − mean)/√(var + ε) + b, folded into one weight and one bias per channel.
        let [scale, b, mean, var] = [&p[0], &p[1], &p[2], &p[3]];
        for (c, (((scale, b), mean), var)) in scale.iter().zip(b).zip(mean).zip(var).enumerate() {
            let a = scale / (var + eps).sqrt();
            for j in 0..inner {
                let idx = (c * inner + j) as u32;
                terms.push(if a != 0.0 { vec![(idx, a)] } else { vec![] });
                bias.push(b - a * mean);
            }
        }
        self.push(node, name, vec![x], shape, LayerKind::Linear { terms, bias })
    }

    fn add(&mut self, node: &NodeProto, name: &str, sub: bool) -> Result<()> {
        let lhs_act = matches!(node.input.first().and_then(|n| self.values.get(n)), Some(Value::Act(_)));
        let rhs_act = matches!(node.input.get(1).and_then(|n| self.values.get(n)), Some(Value::Act(_)));
        match (lhs_act, rhs_act) {
            (true, true) if !sub => {
                let (a, b) = (self.act(node, name, 0)?, self.act(node, name, 1)?);
                if self.shapes[a] != self.shapes[b] {
                    return Err(Error::ShapeMismatch {
                        node: name.into(),
                        expected: self.shapes[a].clone(),
                        got: self.shapes[b].clone(),
                    });
                }
                let shape = self.shapes[a].clone();
                self.push(node, name, vec![a, b], shape, LayerKind::Add)
            }
            (true, false) | (false, true) if !(sub && rhs_act) => {
                let (ai, ci) = if lhs_act { (0, 1) } else { (1, 0) };
                let x = self.act(node, name, ai)?;
                let shape = self.shapes[x].clone();
                let (dims, data, _) = self.konst(node, name, ci)?;
                let mut values = broadcast(data, dims, &shape, name)?;
                if sub {
                    values.iter_mut().for_each(|v| *v = -*v);
                }
                self.push(node, name, vec![x], shape, LayerKind::AddConst { values })
            }
            _ => Err(Error::UnsupportedAttribute {
                node: name.into(),
                op: node.op_type.clone(),
                attribute: "operands".into(),
                value: "supported: activation + constant, activation - constant, activation + activation".into(),
            }),
        }
    }

    fn pool(&mut self, node: &NodeProto, name: &str) -> Result<()> {
        let op = node.op_type.as_str();
        let x = self.act(node, name, 0)?;
        let (c, h, w) = self.spatial(name, x)?;
        let global = op == "GlobalAveragePool";
        let kernel = if global {
            [h, w]
        } else {
            let k = node
                .get_attr_opt_slice::<i64>("kernel_shape")
                .map_err(|e| attr_err(node, "kernel_shape", e))?
                .map(|s| s.to_vec())
                .unwrap_or_default();
            let [a, b] = k.as_slice() else { return Err(unsupported_attr(name, op, "kernel_shape", k)) };
            if *a < 1 || *b < 1 {
                return Err(unsupported_attr(name, op, "kernel_shape", k));
            }
            [*a as usize, *b as usize]
        };
        let (stride, pads) = if global { ([1, 1], [0; 4]) } else { self.window_attrs(node, name, kernel, [h, w])? };
        if !global {
            let ceil = node.get_attr_opt::<i64>("ceil_mode").map_err(|e| attr_err(node, "ceil_mode", e))?.unwrap_or(0);
            if ceil != 0 {
                return Err(unsupported_attr(name, op, "ceil_mode", ceil));
            }
            let order =
                node.get_attr_opt::<i64>("storage_order").map_err(|e| attr_err(node, "storage_order", e))?.unwrap_or(0);
            if order != 0 {
                return Err(unsupported_attr(name, op, "storage_order", order));
            }
        }
        let include_pad = node
            .get_attr_opt::<i64>("count_include_pad")
            .map_err(|e| attr_err(node, "count_include_pad", e))?
            .unwrap_or(0)
            != 0;
        let (ph, pw) = (h + pads[0] + pads[2], w + pads[1] + pads[3]);
        if ph < kernel[0] || pw < kernel[1] {
            return Err(graph_err(name, "pooling window larger than the padded input"));
        }
        let (oh, ow) = ((ph - kernel[0]) / stride[0] + 1, (pw - kernel[1]) / stride[1] + 1);
        let (mut windows, mut divisors) = (Vec::new(), Vec::new());
        for ci in 0..c {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut win = Vec::new();
                    for ky in 0..kernel[0] {
                        for kx in 0..kernel[1] {
                            let iy = (oy * stride[0] + ky) as isize - pads[0] as isize;
                            let ix = (ox * stride[1] + kx) as isize - pads[1] as isize;
                            if iy >= 0 && ix >= 0 && iy < h as isize && ix < w as isize {
                                win.push(((ci * h + iy as usize) * w + ix as usize) as u32);
                            }
                        }
                    }
                    if win.is_empty() {
                        return Err(graph_err(name, "a pooling window covers only padding"));
                    }
                    divisors.push(if include_pad { (kernel[0] * kernel[1]) as u32 } else { win.len() as u32 });
                    windows.push(win);
                }
            }
        }
        let shape = vec![1, c, oh, ow];
        let kind = if op == "MaxPool" {
            if pads.iter().any(|p| *p != 0) && include_pad {
                return Err(unsupported_attr(name, op, "count_include_pad", 1));
            }
            LayerKind::MaxPool { windows }
        } else {
            LayerKind::AvgPool { windows, divisors }
        };
        self.push(node, name, vec![x], shape, kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcast_follows_numpy_rules() {
        let v = broadcast(&[1.0, 2.0], &[2], &[1, 2, 2], "n").unwrap();
        assert_eq!(v, vec![1.0, 2.0, 1.0, 2.0]);
        let v = broadcast(&[1.0, 2.0], &[2, 1], &[2, 3], "n").unwrap();
        assert_eq!(v, vec![1.0, 1.0, 1.0, 2.0, 2.0, 2.0]);
        assert!(matches!(broadcast(&[1.0, 2.0, 3.0], &[3], &[1, 2], "n"), Err(Error::ShapeMismatch { .. })));
    }

    #[test]
    fn strides_are_row_major() {
        assert_eq!(strides(&[2, 3, 4]), vec![12, 4, 1]);
    }
}
