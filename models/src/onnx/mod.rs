//! ONNX import: an ONNX file becomes a [`FloatModel`] in the small IR of [`crate::ir`].
//!
//! tract does the parts a well-kept library does best: it parses the protobuf, fixes symbolic
//! dimensions (a dynamic batch) to concrete sizes, infers every tensor's shape and type, and
//! folds every tensor that does not depend on a model input (shape arithmetic such as
//! `Shape → Gather → Concat → Reshape`, `Identity`, `Cast` or `Transpose` of a weight,
//! `ConstantOfShape`, `Range`...). What is left, nodes computing on activations, is dispatched by
//! operator type to one module of [`ops`] through [`ops::REGISTRY`]; each module checks its
//! attributes and lowers the node into IR layers.
//!
//! Every unsupported operator or attribute of a model is collected and reported at once in
//! [`Error::Unsupported`].

pub mod ops;

use std::{collections::HashMap, path::Path, sync::Arc};

use tract_onnx::{
    pb::{self, type_proto, NodeProto},
    prelude::*,
    tract_hir::infer::{Factoid, InferenceOp},
};

pub use crate::ir::{FloatModel, InputKind, Layer, LayerKind, ModelInput, TensorId};
use crate::{
    error::{Error, Refusal, Result},
    ir::Source,
};

/// Largest number of values of any tensor zkinfer imports (2^24): far beyond what proves in
/// reasonable time, and a guard against files that would exhaust memory.
pub const MAX_TENSOR_VALUES: usize = 1 << 24;

/// Import options.
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    /// Values of symbolic dimensions by name (for example `batch_size = 1`). A symbolic dimension
    /// not listed here is fixed to 1: zkinfer proves one sample at a time.
    pub dims: HashMap<String, usize>,
}

/// Imports an ONNX file with the default options (every symbolic dimension fixed to 1).
pub fn import(path: &Path) -> Result<FloatModel> {
    import_with(path, &ImportOptions::default())
}

/// Imports an ONNX file.
///
/// # Errors
/// [`Error::Io`] if the file cannot be read, [`Error::MalformedOnnx`] if it is not an ONNX
/// protobuf, [`Error::Unsupported`] listing every node zkinfer cannot prove, and
/// [`Error::InvalidGraph`] / [`Error::ShapeMismatch`] for inconsistent graphs.
pub fn import_with(path: &Path, options: &ImportOptions) -> Result<FloatModel> {
    // A damaged or hostile file must give an error, never abort the caller: tract's analysis is
    // not written against adversarial graphs, so a panic inside it becomes an InvalidGraph.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| import_inner(path, options))).unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        Err(Error::InvalidGraph { node: "(graph)".into(), reason: format!("the importer failed on this file: {what}") })
    })
}

fn import_inner(path: &Path, options: &ImportOptions) -> Result<FloatModel> {
    let bytes = std::fs::read(path).map_err(|e| Error::io("reading ONNX model", path, e))?;
    let malformed = |reason: String| Error::MalformedOnnx { path: path.into(), reason };
    let framework = tract_onnx::onnx();
    let proto = framework.proto_model_for_read(&mut bytes.as_slice()).map_err(|e| malformed(format!("{e:#}")))?;
    let graph = proto.graph.as_ref().ok_or_else(|| malformed("the model has no graph".into()))?;
    let dir = path.parent().and_then(|p| p.to_str());
    let parsed = framework
        .parse(&proto, dir)
        .map_err(|e| Error::InvalidGraph { node: "(graph)".into(), reason: format!("tract cannot build it: {e:#}") })?;
    let mut model = parsed.model;
    let outlets = parsed.outlets_by_name;

    let initializers: std::collections::HashSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let mut ctx = Ctx {
        opset: proto
            .opset_import
            .iter()
            .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
            .map_or(13, |o| o.version),
        ..Ctx::default()
    };
    let mut inputs = Vec::new();
    for input in graph.input.iter().filter(|i| !initializers.contains(i.name.as_str())) {
        let (kind, dt, shape) = input_type(input, options)?;
        let outlet = *outlets.get(&input.name).ok_or_else(|| malformed(format!("input `{}` not found", input.name)))?;
        let position = model
            .input_outlets()
            .map_err(|e| malformed(format!("{e:#}")))?
            .iter()
            .position(|o| *o == outlet)
            .ok_or_else(|| malformed(format!("input `{}` is not a source of the graph", input.name)))?;
        model
            .set_input_fact(position, InferenceFact::dt_shape(dt, shape.clone()))
            .map_err(|e| malformed(format!("input `{}`: {e:#}", input.name)))?;
        let tensor = ctx.shapes.len();
        ctx.shapes.push(shape);
        ctx.values.insert(input.name.clone(), Value::Act(tensor));
        ctx.input_kinds.insert(tensor, kind);
        inputs.push(ModelInput { name: input.name.clone(), tensor, kind });
    }
    if inputs.is_empty() {
        return Err(malformed("the graph has no input tensor (every input is an initializer)".into()));
    }
    // A bool input is true when nonzero (as ONNX casts numbers to bool): any integer in the
    // registered range is then a valid request, and consumers see a proved 0/1 tensor.
    for i in inputs.iter().filter(|i| i.kind == InputKind::Bool) {
        let shape = ctx.shapes[i.tensor].clone();
        let n = numel(&shape);
        let name = format!("{}:bool", i.name);
        let zero = ctx.push_named(&name, "Cast", vec![], shape.clone(), LayerKind::Const { values: vec![0.0; n] });
        let flag = ctx.push_named(
            &name,
            "Cast",
            vec![i.tensor, zero],
            shape,
            LayerKind::Compare { cmp: crate::ir::Cmp::NotEqual },
        );
        ctx.values.insert(i.name.clone(), Value::Act(flag));
    }
    // Shape and type inference, and folding of everything that does not depend on an input.
    // Failures here are not fatal: the op modules check what they need and say what is wrong.
    let analysis = model.analyse(true).err().map(|e| format!("{e:#}"));
    if let Some(e) = &analysis {
        tracing::debug!(error = %e, "tract analysis incomplete");
    }

    for init in &graph.initializer {
        let outlet = outlets.get(&init.name).copied();
        let value = outlet.and_then(|o| model.outlet_fact(o).ok()).and_then(|f| f.value.concretize());
        match value {
            Some(t) => ctx.values.insert(init.name.clone(), Value::Const(t)),
            None => {
                return Err(Error::InvalidGraph {
                    node: init.name.clone(),
                    reason: "initializer could not be loaded".into(),
                })
            }
        };
    }

    // Each tensor name is produced once (a graph writing one name twice is not valid ONNX).
    let mut produced = std::collections::HashSet::new();
    for out in graph.node.iter().flat_map(|n| n.output.iter()).filter(|o| !o.is_empty()) {
        if !produced.insert(out.as_str()) || initializers.contains(out.as_str()) {
            return Err(Error::InvalidGraph { node: out.clone(), reason: "this tensor name is produced twice".into() });
        }
    }

    let mut refusals = Vec::new();
    for (index, proto_node) in graph.node.iter().enumerate() {
        let name = if proto_node.name.is_empty() {
            format!("{}_{index}", proto_node.op_type)
        } else {
            proto_node.name.clone()
        };
        let outs: Vec<Option<OutletId>> =
            proto_node.output.iter().map(|o| if o.is_empty() { None } else { outlets.get(o).copied() }).collect();
        let facts: Vec<Option<&InferenceFact>> =
            outs.iter().map(|o| o.and_then(|o| model.outlet_fact(o).ok())).collect();
        let tract_node = outs.iter().flatten().next().map(|o| &model.nodes()[o.node]);

        // 1. Folded by tract's analysis: every output is a known constant.
        let folded: Option<Vec<Arc<Tensor>>> = facts
            .iter()
            .zip(&proto_node.output)
            .filter(|(_, n)| !n.is_empty())
            .map(|(f, _)| f.and_then(|f| f.value.concretize()))
            .collect();
        if let Some(values) = folded.filter(|v| !v.is_empty()) {
            for (out, v) in proto_node.output.iter().filter(|n| !n.is_empty()).zip(values) {
                ctx.values.insert(out.clone(), Value::Const(v));
            }
            continue;
        }
        // 2. Every input is constant (tract skips tensors above its folding budget): evaluate it.
        let inputs_present: Vec<&String> = proto_node.input.iter().filter(|n| !n.is_empty()).collect();
        let const_inputs: Option<TVec<TValue>> = inputs_present
            .iter()
            .map(|n| match ctx.values.get(*n) {
                Some(Value::Const(t)) => Some(t.clone().into_tensor().into_tvalue()),
                _ => None,
            })
            .collect();
        if let (Some(const_inputs), Some(tn)) = (const_inputs, tract_node) {
            if let Ok(Some(values)) = tn.op.eval_out_of_plan(const_inputs) {
                for (out, v) in proto_node.output.iter().filter(|n| !n.is_empty()).zip(values) {
                    ctx.values.insert(out.clone(), Value::Const(v.into_arc_tensor()));
                }
                continue;
            }
        }
        // 3. A computation on activations: the operator's module lowers it.
        let spec = ops::lookup(&proto_node.op_type);
        let poisoned = inputs_present.iter().any(|n| matches!(ctx.values.get(*n), Some(Value::Poisoned) | None));
        let poison = |ctx: &mut Ctx| {
            for out in &proto_node.output {
                ctx.values.insert(out.clone(), Value::Poisoned);
            }
        };
        let Some(spec) = spec else {
            refusals.push(Refusal {
                node: name.clone(),
                op: proto_node.op_type.clone(),
                reason: "operator not supported".into(),
            });
            poison(&mut ctx);
            continue;
        };
        if poisoned {
            poison(&mut ctx);
            continue;
        }
        let out_shapes = facts
            .iter()
            .map(|f| {
                f.and_then(|f| f.shape.concretize())
                    .and_then(|dims| dims.iter().map(|d| d.as_i64().and_then(|v| usize::try_from(v).ok())).collect())
            })
            .collect();
        let node = Node { proto: proto_node, name: name.clone(), out_shapes, op: tract_node.map(|n| n.op.as_ref()) };
        if let Some(shape) = node
            .out_shapes
            .iter()
            .flatten()
            .find(|s| s.iter().try_fold(1usize, |a, d| a.checked_mul(*d)).is_none_or(|n| n > MAX_TENSOR_VALUES))
        {
            return Err(node.invalid(format!(
                "output shape {shape:?} has more than {MAX_TENSOR_VALUES} values: too large to prove"
            )));
        }
        match (spec.lower)(&mut ctx, &node) {
            Ok(()) => {
                if let Some(missing) = proto_node.output.iter().find(|o| !o.is_empty() && !ctx.values.contains_key(*o))
                {
                    // Optional outputs (Dropout's mask, BatchNormalization's running stats) that the
                    // rest of the graph does not read are fine; a read is refused below.
                    ctx.values.insert(missing.clone(), Value::Poisoned);
                }
            }
            Err(Error::UnsupportedAttribute { node, op, attribute, value }) => {
                refusals.push(Refusal { node, op, reason: format!("unsupported {attribute} = {value}") });
                poison(&mut ctx);
            }
            Err(Error::Unsupported(mut more)) => {
                refusals.append(&mut more);
                poison(&mut ctx);
            }
            Err(e) => return Err(e),
        }
    }
    if !refusals.is_empty() {
        return Err(Error::Unsupported(refusals));
    }

    let mut outputs = Vec::new();
    let mut output_names = Vec::new();
    for output in &graph.output {
        let id = match ctx.values.get(&output.name) {
            Some(Value::Act(id)) => *id,
            Some(Value::Const(_)) => {
                return Err(Error::InvalidGraph {
                    node: output.name.clone(),
                    reason: "the output is a constant: it does not depend on the input".into(),
                })
            }
            Some(Value::Poisoned) | None => {
                return Err(Error::InvalidGraph {
                    node: output.name.clone(),
                    reason: "the output is never computed".into(),
                })
            }
        };
        outputs.push(id);
        output_names.push(output.name.clone());
    }
    if outputs.is_empty() {
        return Err(malformed("the graph has no output".into()));
    }
    Ok(FloatModel { shapes: ctx.shapes, inputs, layers: ctx.layers, outputs, output_names })
}

/// The type of a graph input: its kind, tract datum type and concrete shape.
fn input_type(input: &pb::ValueInfoProto, options: &ImportOptions) -> Result<(InputKind, DatumType, Vec<usize>)> {
    let bad = |reason: String| Error::InvalidGraph { node: input.name.clone(), reason };
    let Some(type_proto::Value::TensorType(tt)) = input.r#type.as_ref().and_then(|t| t.value.as_ref()) else {
        return Err(bad("the input is not a tensor (sequences and maps are not supported)".into()));
    };
    use pb::tensor_proto::DataType as D;
    let elem = D::try_from(tt.elem_type).unwrap_or(D::Undefined);
    let (kind, dt) = match elem {
        D::Float | D::Float16 | D::Double | D::Bfloat16 => (InputKind::Real, f32::datum_type()),
        D::Int8 | D::Int16 | D::Int32 | D::Int64 | D::Uint8 | D::Uint16 | D::Uint32 | D::Uint64 => {
            (InputKind::Integer, DatumType::try_from(elem).unwrap_or(i64::datum_type()))
        }
        D::Bool => (InputKind::Bool, bool::datum_type()),
        other => {
            return Err(bad(format!(
                "input type {} is not supported (real, integer and bool inputs are)",
                other.as_str_name()
            )))
        }
    };
    let shape = tt.shape.as_ref().ok_or_else(|| bad("the input has no shape".into()))?;
    let too_big =
        |dims: &[usize]| dims.iter().try_fold(1usize, |a, d| a.checked_mul(*d)).is_none_or(|n| n > MAX_TENSOR_VALUES);
    let dims = shape
        .dim
        .iter()
        .enumerate()
        .map(|(axis, d)| {
            use pb::tensor_shape_proto::dimension::Value as Dim;
            match &d.value {
                Some(Dim::DimValue(v)) if *v > 0 => Ok(*v as usize),
                Some(Dim::DimParam(p)) => Ok(options.dims.get(p).copied().unwrap_or(1)),
                None => Ok(1),
                Some(Dim::DimValue(v)) => Err(bad(format!("dimension {axis} is {v}"))),
            }
        })
        .collect::<Result<Vec<_>>>()?;
    if too_big(&dims) {
        return Err(bad(format!(
            "the input has shape {dims:?}: more than {MAX_TENSOR_VALUES} values is too large to prove"
        )));
    }
    Ok((kind, dt, dims))
}

/// A tensor name's value during import.
#[derive(Clone, Debug)]
pub(crate) enum Value {
    /// Computed from the model's inputs: an IR tensor.
    Act(TensorId),
    /// Known at import (an initializer or a folded subgraph).
    Const(Arc<Tensor>),
    /// Produced by a node that was refused; consumers are skipped.
    Poisoned,
}

/// An ONNX node being lowered.
pub struct Node<'a> {
    /// The ONNX node.
    pub proto: &'a NodeProto,
    /// Its name (or `<op>_<index>`).
    pub name: String,
    /// Concrete shape of each output, when tract's analysis found it.
    pub out_shapes: Vec<Option<Vec<usize>>>,
    /// tract's operator for the node (used to evaluate data movement on index tensors).
    pub op: Option<&'a dyn InferenceOp>,
}

impl Node<'_> {
    /// The ONNX operator type.
    pub fn op_type(&self) -> &str {
        &self.proto.op_type
    }

    /// An optional attribute.
    pub fn attr<'b, T>(&'b self, name: &str) -> Result<Option<T>>
    where
        T: tract_onnx::pb_helpers::AttrScalarType<'b>,
    {
        self.proto.get_attr_opt::<T>(name).map_err(|e| self.invalid(format!("attribute {name}: {e}")))
    }

    /// An optional list attribute.
    pub fn attr_vec<'b, T>(&'b self, name: &str) -> Result<Option<Vec<T>>>
    where
        T: tract_onnx::pb_helpers::AttrTVecType<'b>,
    {
        self.proto.get_attr_opt_vec::<T>(name).map_err(|e| self.invalid(format!("attribute {name}: {e}")))
    }

    /// An [`Error::UnsupportedAttribute`] for this node.
    pub fn unsupported(&self, attribute: &str, value: impl std::fmt::Debug) -> Error {
        Error::UnsupportedAttribute {
            node: self.name.clone(),
            op: self.proto.op_type.clone(),
            attribute: attribute.into(),
            value: format!("{value:?}"),
        }
    }

    /// An [`Error::InvalidGraph`] for this node.
    pub fn invalid(&self, reason: impl Into<String>) -> Error {
        Error::InvalidGraph { node: self.name.clone(), reason: reason.into() }
    }

    /// Whether input `i` is given (ONNX marks omitted optional inputs with an empty name).
    pub fn has_input(&self, i: usize) -> bool {
        self.proto.input.get(i).is_some_and(|n| !n.is_empty())
    }

    /// The concrete shape of output `j`.
    pub fn out_shape(&self, j: usize) -> Result<Vec<usize>> {
        self.out_shapes
            .get(j)
            .cloned()
            .flatten()
            .ok_or_else(|| self.invalid(format!("the shape of output {j} could not be inferred")))
    }
}

/// The import state the op modules write into.
#[derive(Default)]
pub struct Ctx {
    pub(crate) values: HashMap<String, Value>,
    pub(crate) input_kinds: HashMap<TensorId, InputKind>,
    /// Tensors cast to a real type: integer semantics (truncating division) no longer apply.
    pub(crate) real_casts: std::collections::HashSet<TensorId>,
    /// Shape of every IR tensor.
    pub shapes: Vec<Vec<usize>>,
    /// IR layers so far.
    pub layers: Vec<Layer>,
    /// The model's default-domain opset version (operators changed meaning across versions).
    pub opset: i64,
}

impl Ctx {
    fn value(&self, node: &Node<'_>, i: usize) -> Result<&Value> {
        let name = node
            .proto
            .input
            .get(i)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| node.invalid(format!("input {i} is missing")))?;
        self.values.get(name).ok_or_else(|| node.invalid(format!("input {i} (`{name}`) is not defined")))
    }

    /// Whether input `i` is an activation (computed from the model's inputs).
    pub fn is_act(&self, node: &Node<'_>, i: usize) -> bool {
        matches!(self.value(node, i), Ok(Value::Act(_)))
    }

    /// Input `i` as an activation.
    pub fn act(&self, node: &Node<'_>, i: usize) -> Result<TensorId> {
        match self.value(node, i)? {
            Value::Act(id) => Ok(*id),
            Value::Const(_) => Err(node.invalid(format!("input {i} must be computed from the model input"))),
            Value::Poisoned => Err(node.invalid(format!("input {i} comes from a refused node"))),
        }
    }

    /// Input `i` as a constant tensor.
    pub fn konst(&self, node: &Node<'_>, i: usize) -> Result<Arc<Tensor>> {
        match self.value(node, i)? {
            Value::Const(t) => Ok(t.clone()),
            Value::Act(_) => Err(node.unsupported(
                &format!("input {i}"),
                "computed from the model input (zkinfer needs it constant: weights, shapes, indices)",
            )),
            Value::Poisoned => Err(node.invalid(format!("input {i} comes from a refused node"))),
        }
    }

    /// Input `i` as a constant: its shape and values as `f32`.
    pub fn floats(&self, node: &Node<'_>, i: usize) -> Result<(Vec<usize>, Vec<f32>)> {
        let t = self.konst(node, i)?;
        tensor_f32(&t).map_err(|e| node.invalid(format!("input {i}: {e}")))
    }

    /// Input `i` as a constant list of integers.
    pub fn ints(&self, node: &Node<'_>, i: usize) -> Result<Vec<i64>> {
        let t = self.konst(node, i)?;
        let c = t.cast_to::<i64>().map_err(|e| node.invalid(format!("input {i} is not integral: {e:#}")))?;
        let view = c.to_plain_array_view::<i64>().map_err(|e| node.invalid(format!("input {i}: {e:#}")))?;
        Ok(view.iter().copied().collect())
    }

    /// Shape of an IR tensor.
    pub fn shape(&self, t: TensorId) -> &[usize] {
        &self.shapes[t]
    }

    /// Appends a layer computing a new tensor of `shape`; returns its id.
    pub fn push(&mut self, node: &Node<'_>, inputs: Vec<TensorId>, shape: Vec<usize>, kind: LayerKind) -> TensorId {
        self.push_named(&node.name, &node.proto.op_type, inputs, shape, kind)
    }

    fn push_named(
        &mut self,
        node: &str,
        op: &str,
        inputs: Vec<TensorId>,
        shape: Vec<usize>,
        kind: LayerKind,
    ) -> TensorId {
        let output = self.shapes.len();
        self.shapes.push(shape);
        self.layers.push(Layer { node: node.into(), op: op.into(), inputs, output, kind });
        output
    }

    /// Names output `j` of `node` as IR tensor `t`.
    pub fn bind(&mut self, node: &Node<'_>, j: usize, t: TensorId) -> Result<()> {
        let name = node
            .proto
            .output
            .get(j)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| node.invalid(format!("output {j} is missing")))?;
        if numel(&self.shapes[t]) > MAX_TENSOR_VALUES {
            return Err(node.invalid(format!(
                "output shape {:?} has more than {MAX_TENSOR_VALUES} values: too large to prove",
                self.shapes[t]
            )));
        }
        if let Some(expected) = node.out_shapes.get(j).cloned().flatten() {
            if expected.iter().product::<usize>() != self.shapes[t].iter().product::<usize>() {
                return Err(Error::ShapeMismatch { node: node.name.clone(), expected, got: self.shapes[t].clone() });
            }
            self.shapes[t] = expected;
        }
        self.values.insert(name.clone(), Value::Act(t));
        Ok(())
    }

    /// Pushes a layer and binds it as output 0.
    pub fn emit(&mut self, node: &Node<'_>, inputs: Vec<TensorId>, shape: Vec<usize>, kind: LayerKind) -> Result<()> {
        let t = self.push(node, inputs, shape, kind);
        self.bind(node, 0, t)
    }

    /// Broadcasts activation `t` to `shape` (numpy rules) with a data-movement layer, or returns
    /// it unchanged when it already has that many values in that shape.
    pub fn broadcast(&mut self, node: &Node<'_>, t: TensorId, shape: &[usize]) -> Result<TensorId> {
        if self.shapes[t] == shape {
            return Ok(t);
        }
        let from = self.shapes[t].clone();
        if from.iter().product::<usize>() == shape.iter().product::<usize>() && squeeze(&from) == squeeze(shape) {
            return Ok(self.push(node, vec![t], shape.to_vec(), LayerKind::Reshape));
        }
        let index = broadcast_index(&from, shape).ok_or_else(|| Error::ShapeMismatch {
            node: node.name.clone(),
            expected: shape.to_vec(),
            got: from.clone(),
        })?;
        let sources = index.into_iter().map(|i| Source::Input { slot: 0, index: i as u32 }).collect();
        Ok(self.push(node, vec![t], shape.to_vec(), LayerKind::Move { sources }))
    }

    /// A constant tensor as an IR layer, broadcast to `shape`.
    pub fn constant(&mut self, node: &Node<'_>, dims: &[usize], values: &[f32], shape: &[usize]) -> Result<TensorId> {
        let values = broadcast(values, dims, shape).ok_or_else(|| Error::ShapeMismatch {
            node: node.name.clone(),
            expected: shape.to_vec(),
            got: dims.to_vec(),
        })?;
        Ok(self.push(node, vec![], shape.to_vec(), LayerKind::Const { values }))
    }
}

fn squeeze(s: &[usize]) -> Vec<usize> {
    s.iter().copied().filter(|d| *d != 1).collect()
}

/// A constant tensor's shape and values as `f32`.
pub fn tensor_f32(t: &Tensor) -> std::result::Result<(Vec<usize>, Vec<f32>), String> {
    let c = t.cast_to::<f32>().map_err(|e| format!("not numeric: {e:#}"))?;
    let view = c.to_plain_array_view::<f32>().map_err(|e| format!("{e:#}"))?;
    Ok((t.shape().to_vec(), view.iter().copied().collect()))
}

/// Number of values of a shape.
pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// Row-major strides of a shape.
pub fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// The broadcast shape of two shapes (numpy rules), if they are compatible.
pub fn broadcast_shape(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let n = a.len().max(b.len());
    let pad = |s: &[usize]| -> Vec<usize> { std::iter::repeat_n(1, n - s.len()).chain(s.iter().copied()).collect() };
    let (a, b) = (pad(a), pad(b));
    a.iter()
        .zip(&b)
        .map(|(x, y)| match (x, y) {
            (x, y) if x == y => Some(*x),
            (1, y) => Some(*y),
            (x, 1) => Some(*x),
            _ => None,
        })
        .collect()
}

/// For each element of `to`, the flat index of the element of `from` it is broadcast from.
/// `None` if `from` does not broadcast to `to`.
pub fn broadcast_index(from: &[usize], to: &[usize]) -> Option<Vec<usize>> {
    if from.len() > to.len() {
        // Leading ones of `from` may be dropped.
        let extra = from.len() - to.len();
        if from[..extra].iter().any(|d| *d != 1) {
            return None;
        }
        return broadcast_index(&from[extra..], to);
    }
    let pad = to.len() - from.len();
    let padded: Vec<usize> = std::iter::repeat_n(1, pad).chain(from.iter().copied()).collect();
    if padded.iter().zip(to).any(|(a, b)| *a != 1 && a != b) {
        return None;
    }
    let src = strides(&padded);
    let dst = strides(to);
    Some(
        (0..numel(to))
            .map(|flat| {
                (0..to.len()).filter(|d| padded[*d] != 1).map(|d| ((flat / dst[d]) % to[d]) * src[d]).sum::<usize>()
            })
            .collect(),
    )
}

/// Broadcasts `data` of shape `from` to shape `to` (numpy rules); `None` if incompatible.
pub fn broadcast(data: &[f32], from: &[usize], to: &[usize]) -> Option<Vec<f32>> {
    Some(broadcast_index(from, to)?.into_iter().map(|i| data[i]).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcast_follows_numpy_rules() {
        assert_eq!(broadcast(&[1.0, 2.0], &[2], &[1, 2, 2]).unwrap(), vec![1.0, 2.0, 1.0, 2.0]);
        assert_eq!(broadcast(&[1.0, 2.0], &[2, 1], &[2, 3]).unwrap(), vec![1.0, 1.0, 1.0, 2.0, 2.0, 2.0]);
        assert!(broadcast(&[1.0, 2.0, 3.0], &[3], &[1, 2]).is_none());
        assert_eq!(broadcast_shape(&[1, 3, 4], &[1, 1, 4]), Some(vec![1, 3, 4]));
        assert_eq!(broadcast_shape(&[3], &[2, 1]), Some(vec![2, 3]));
        assert_eq!(broadcast_shape(&[3], &[2]), None);
    }

    #[test]
    fn strides_are_row_major() {
        assert_eq!(strides(&[2, 3, 4]), vec![12, 4, 1]);
    }
}
