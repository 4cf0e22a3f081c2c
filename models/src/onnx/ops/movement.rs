//! Data movement: Reshape-like aliases, and every operator that only moves values (Transpose,
//! Slice, Gather, Concat, Split, Pad, Expand, Tile, Resize nearest, DepthToSpace...).
//!
//! Movement operators are not re-implemented here: tract evaluates the node itself on *index
//! tensors* (each activation value replaced by a code naming its position, each constant data
//! value by a code naming it), and the codes in the result say where every output value comes
//! from. The semantics (axes, negative steps, pad modes, nearest rounding modes...) are therefore
//! exactly tract's ONNX semantics; an operator that computes new values (Resize in linear mode)
//! yields codes that name nothing, and is refused.

use tract_onnx::{prelude::*, tract_hir::infer::InferenceOp};

use super::{OpSpec, Result};
use crate::{
    error::Error,
    ir::{InputKind, LayerKind, Source, TensorId},
    onnx::{numel, tensor_f32, Ctx, Node},
};

pub const ALIAS: OpSpec = OpSpec {
    ops: &["Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Dropout"],
    lower: alias,
    limits: "free (same values, new shape); Dropout in inference mode",
};

pub const MOVE: OpSpec = OpSpec {
    ops: &[
        "Transpose",
        "Slice",
        "Gather",
        "GatherElements",
        "Concat",
        "Split",
        "Pad",
        "Expand",
        "Tile",
        "Resize",
        "DepthToSpace",
        "SpaceToDepth",
    ],
    lower: movement,
    limits: "exact (values moved, none computed); indices, shapes and pads constant; Pad constant/reflect/edge; Resize mode nearest (Upsample, deprecated since opset 10, is not read by tract)",
};

pub const CAST: OpSpec = OpSpec {
    ops: &["Cast", "CastLike"],
    lower: cast,
    limits: "free between real types, and from integer or bool to any type; real to integer (truncation) refused",
};

fn alias(ctx: &mut Ctx, node: &Node<'_>) -> Result<()> {
    if node.op_type() == "Dropout" && node.has_input(2) {
        let training = ctx.ints(node, 2).ok().and_then(|v| v.first().copied()).unwrap_or(0);
        if training != 0 {
            return Err(node.unsupported("training_mode", training));
        }
    }
    let x = ctx.act(node, 0)?;
    let shape = node.out_shape(0)?;
    if numel(&shape) != numel(ctx.shape(x)) {
        return Err(Error::ShapeMismatch { node: node.name.clone(), expected: ctx.shape(x).to_vec(), got: shape });
    }
    ctx.emit(node, vec![x], shape, LayerKind::Reshape)
}

/// Whether an IR tensor holds integers (computed by ArgMax or a comparison, or an integer input).
pub(super) fn integral(ctx: &Ctx, t: TensorId) -> bool {
    if ctx.real_casts.contains(&t) {
        return false;
    }
    match ctx.layers.iter().find(|l| l.output == t) {
        Some(l) => match &l.kind {
            LayerKind::ArgMax { .. } | LayerKind::Compare { .. } => true,
            LayerKind::Reshape | LayerKind::Move { .. } => l.inputs.iter().all(|i| integral(ctx, *i)),
            _ => false,
        },
        None => ctx.input_kinds.get(&t).is_some_and(|k| *k != InputKind::Real),
    }
}

fn cast(ctx: &mut Ctx, node: &Node<'_>) -> Result<()> {
    let x = ctx.act(node, 0)?;
    let to = if node.op_type() == "CastLike" {
        ctx.konst(node, 1)?.datum_type()
    } else {
        node.attr::<DatumType>("to")?.ok_or_else(|| node.invalid("attribute `to` is required"))?
    };
    let shape = ctx.shape(x).to_vec();
    if to == bool::datum_type() {
        // x != 0
        let zero = ctx.constant(node, &[], &[0.0], &shape)?;
        return ctx.emit(node, vec![x, zero], shape, LayerKind::Compare { cmp: crate::ir::Cmp::NotEqual });
    }
    if !to.is_float() && !integral(ctx, x) {
        return Err(
            node.unsupported("to", format!("{to:?} from a real-valued activation (truncation is not supported)"))
        );
    }
    // Narrower integer types wrap around (int64 -1 → uint8 255): only widths that hold every
    // value zkinfer proves (at most 40 signed bits) are a plain copy.
    if !to.is_float() && ![DatumType::I64, DatumType::I32, DatumType::TDim].contains(&to) {
        return Err(node.unsupported("to", format!("{to:?} (a narrowing integer cast wraps around)")));
    }
    let y = ctx.push(node, vec![x], shape, LayerKind::Reshape);
    if to.is_float() {
        ctx.real_casts.insert(y);
    }
    ctx.bind(node, 0, y)
}

/// Which inputs of a movement operator carry data (moved values); the others are parameters.
fn data_inputs(op: &str, n: usize) -> Vec<usize> {
    match op {
        "Concat" => (0..n).collect(),
        _ => vec![0],
    }
}

fn movement(ctx: &mut Ctx, node: &Node<'_>) -> Result<()> {
    let op = node.op.ok_or_else(|| node.invalid("tract has no operator for this node"))?;
    let n = node.proto.input.len();
    let data = data_inputs(node.op_type(), n);
    let pad_value = match node.op_type() {
        "Pad" => {
            let mode = node.attr::<String>("mode")?.unwrap_or_else(|| "constant".into());
            if !["constant", "reflect", "edge"].contains(&mode.as_str()) {
                return Err(node.unsupported("mode", mode));
            }
            if node.attr::<f32>("value")?.is_some_and(|v| v != 0.0) {
                // Before opset 11 the value is baked into tract's operator; refuse rather than guess.
                return Err(node.unsupported("value (opset < 11)", node.attr::<f32>("value")?));
            }
            let pads =
                if node.has_input(1) { ctx.ints(node, 1)? } else { node.attr_vec::<i64>("pads")?.unwrap_or_default() };
            if pads.iter().any(|p| *p < 0) {
                return Err(node.unsupported("pads", format!("{pads:?} (negative pads crop; use Slice)")));
            }
            if node.has_input(2) {
                ctx.floats(node, 2)?.1.first().copied().unwrap_or(0.0)
            } else {
                0.0
            }
        }
        "Resize" => {
            let mode = node.attr::<String>("mode")?.unwrap_or_else(|| "nearest".into());
            if mode != "nearest" {
                return Err(node.unsupported("mode", format!("{mode} (only nearest moves values)")));
            }
            0.0
        }
        _ => 0.0,
    };

    // Codes: activation slot s, element i → offset_s + i + 1; constant data element j → −(j + 1);
    // 0 → the pad value.
    let mut slots: Vec<(TensorId, usize, usize)> = Vec::new(); // (tensor, first code, len)
    let mut pool: Vec<f32> = Vec::new();
    let mut next_code = 1usize;
    let mut inputs: TVec<TValue> = TVec::new();
    let mut is_data: Vec<bool> = Vec::new();
    for i in 0..n {
        if !node.has_input(i) {
            continue;
        }
        if data.contains(&i) {
            let codes: Vec<f32> = if ctx.is_act(node, i) {
                let t = ctx.act(node, i)?;
                let len = numel(ctx.shape(t));
                let start = next_code;
                next_code += len;
                slots.push((t, start, len));
                (start..start + len).map(|c| c as f32).collect()
            } else {
                let (_, v) = ctx.floats(node, i)?;
                let start = pool.len();
                pool.extend(&v);
                (start..start + v.len()).map(|j| -((j + 1) as f32)).collect()
            };
            let shape = if ctx.is_act(node, i) {
                ctx.shape(ctx.act(node, i)?).to_vec()
            } else {
                ctx.konst(node, i)?.shape().to_vec()
            };
            let t = Tensor::from_shape(&shape, &codes).map_err(|e| node.invalid(format!("{e:#}")))?;
            inputs.push(t.into_tvalue());
            is_data.push(true);
        } else if node.op_type() == "Pad" && i == 2 {
            inputs.push(Tensor::from(0f32).into_tvalue());
            is_data.push(false);
        } else {
            inputs.push(ctx.konst(node, i)?.clone().into_tensor().into_tvalue());
            is_data.push(false);
        }
    }
    if next_code + pool.len() >= 1 << 24 {
        return Err(node.invalid("more than 2^24 values: too large to prove"));
    }
    if slots.is_empty() {
        return Err(node.invalid("no data input depends on the model input"));
    }
    let outputs = match op.eval_out_of_plan(inputs.clone()) {
        Ok(Some(out)) => out,
        // Some operators (expansions such as Upsample) only evaluate inside a model: wire the
        // node alone, with its parameters as constants, and run that.
        _ => eval_in_model(op, &inputs, &is_data)
            .map_err(|e| node.invalid(format!("evaluating the data movement: {e:#}")))?,
    };
    let slot_tensors: Vec<TensorId> = slots.iter().map(|s| s.0).collect();
    for (j, out) in outputs.iter().enumerate() {
        if node.proto.output.get(j).is_none_or(|o| o.is_empty()) {
            continue;
        }
        let (shape, codes) = tensor_f32(out).map_err(|e| node.invalid(e))?;
        let sources = codes
            .iter()
            .map(|c| {
                if c.fract() != 0.0 {
                    return Err(node.unsupported("semantics", "computes new values (not a pure data movement)"));
                }
                let c = *c as i64;
                Ok(if c == 0 {
                    Source::Const(pad_value)
                } else if c < 0 {
                    Source::Const(*pool.get((-c - 1) as usize).ok_or_else(|| node.invalid("bad movement code"))?)
                } else {
                    let c = c as usize;
                    let s = slots
                        .iter()
                        .position(|(_, start, len)| (*start..start + len).contains(&c))
                        .ok_or_else(|| node.invalid("bad movement code"))?;
                    Source::Input { slot: s as u16, index: (c - slots[s].1) as u32 }
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let identity = slots.len() == 1
            && sources.len() == slots[0].2
            && sources.iter().enumerate().all(|(i, s)| *s == Source::Input { slot: 0, index: i as u32 });
        let t = if identity {
            ctx.push(node, slot_tensors.clone(), shape, LayerKind::Reshape)
        } else {
            ctx.push(node, slot_tensors.clone(), shape, LayerKind::Move { sources })
        };
        ctx.bind(node, j, t)?;
    }
    Ok(())
}

/// Runs `op` in a one-node model: data inputs as sources, parameters as constants.
fn eval_in_model(op: &dyn InferenceOp, inputs: &[TValue], is_data: &[bool]) -> TractResult<TVec<TValue>> {
    let mut model = InferenceModel::default();
    let mut wires = TVec::new();
    let mut feed = TVec::new();
    for (i, (t, data)) in inputs.iter().zip(is_data).enumerate() {
        if *data {
            wires.push(model.add_source(format!("data{i}"), InferenceFact::dt_shape(t.datum_type(), t.shape()))?);
            feed.push(t.clone());
        } else {
            wires.push(model.add_const(format!("param{i}"), t.clone().into_tensor())?);
        }
    }
    let outs = model.wire_node("op", tract_onnx::tract_hir::tract_core::dyn_clone::clone_box(op), &wires)?;
    model.select_output_outlets(&outs)?;
    let plan = model.into_typed()?.into_runnable()?;
    plan.run(feed)
}
