//! Piecewise-linear activations: Relu, LeakyRelu, PRelu, Abs, Clip, HardSigmoid, HardSwish,
//! and element-wise Max / Min.

use super::{arith::operand, OpSpec, Result};
use crate::{
    error::Error,
    ir::LayerKind,
    onnx::{broadcast, broadcast_shape, Ctx, Node},
};

pub const RELU: OpSpec = OpSpec { ops: &["Relu"], lower: relu, limits: "exact (sign decomposition)" };

pub const LEAKY: OpSpec = OpSpec {
    ops: &["LeakyRelu", "PRelu", "Abs"],
    lower: leaky,
    limits: "slope rescaled at the weight scale; PRelu slopes constant, broadcast",
};

pub const CLIP: OpSpec =
    OpSpec { ops: &["Clip"], lower: clip, limits: "exact; constant `min`/`max` (inputs or attributes); Relu6" };

pub const HARD: OpSpec = OpSpec {
    ops: &["HardSigmoid", "HardSwish"],
    lower: hard,
    limits: "piecewise linear: clip(αx + β, 0, 1), HardSwish = x · HardSigmoid(x) (rescaled product)",
};

pub const MAX_MIN: OpSpec =
    OpSpec { ops: &["Max", "Min"], lower: max_min, limits: "exact; activations or constants, broadcasting" };

fn relu(ctx: &mut Ctx, node: &Node<'_>) -> Result<()> {
    let x = ctx.act(node, 0)?;
    let shape = ctx.shape(x).to_vec();
    ctx.emit(node, vec![x], shape, LayerKind::Relu)
}

fn leaky(ctx: &mut Ctx, node: &Node<'_>) -> Result<()> {
    let x = ctx.act(node, 0)?;
    let shape = ctx.shape(x).to_vec();
    let n: usize = shape.iter().product();
    let slopes = match node.op_type() {
        "Abs" => vec![-1.0; n],
        "LeakyRelu" => vec![node.attr::<f32>("alpha")?.unwrap_or(0.01); n],
        _ => {
            let (d, s) = ctx.floats(node, 1)?;
            broadcast(&s, &d, &shape).ok_or_else(|| Error::ShapeMismatch {
                node: node.name.clone(),
                expected: shape.clone(),
                got: d,
            })?
        }
    };
    ctx.emit(node, vec![x], shape, LayerKind::LeakyRelu { slopes })
}

/// A scalar constant input, if given.
fn scalar(ctx: &Ctx, node: &Node<'_>, i: usize) -> Result<Option<f32>> {
    if !node.has_input(i) {
        return Ok(None);
    }
    let (_, v) = ctx.floats(node, i)?;
    match v.as_slice() {
        [v] => Ok(Some(*v)),
        _ => Err(node.unsupported(&format!("input {i}"), "not a scalar")),
    }
}

fn clip(ctx: &mut Ctx, node: &Node<'_>) -> Result<()> {
    let x = ctx.act(node, 0)?;
    let shape = ctx.shape(x).to_vec();
    let min = scalar(ctx, node, 1)?.or(node.attr::<f32>("min")?).filter(|v| v.is_finite() && *v > f32::MIN);
    let max = scalar(ctx, node, 2)?.or(node.attr::<f32>("max")?).filter(|v| v.is_finite() && *v < f32::MAX);
    if let (Some(lo), Some(hi)) = (min, max) {
        if lo > hi {
            return Err(node.unsupported("min > max", (lo, hi)));
        }
    }
    ctx.emit(node, vec![x], shape, LayerKind::Clip { min, max })
}

fn hard(ctx: &mut Ctx, node: &Node<'_>) -> Result<()> {
    let x = ctx.act(node, 0)?;
    let shape = ctx.shape(x).to_vec();
    let n: usize = shape.iter().product();
    let swish = node.op_type() == "HardSwish";
    let (alpha, beta) = if swish {
        (1.0 / 6.0, 0.5)
    } else {
        (node.attr::<f32>("alpha")?.unwrap_or(0.2), node.attr::<f32>("beta")?.unwrap_or(0.5))
    };
    let terms = (0..n).map(|i| vec![(i as u32, alpha)]).collect();
    let lin = ctx.push(node, vec![x], shape.clone(), LayerKind::Linear { terms, bias: vec![beta; n] });
    let hs = ctx.push(node, vec![lin], shape.clone(), LayerKind::Clip { min: Some(0.0), max: Some(1.0) });
    if swish {
        ctx.emit(node, vec![x, hs], shape, LayerKind::Mul)
    } else {
        ctx.bind(node, 0, hs)
    }
}

fn max_min(ctx: &mut Ctx, node: &Node<'_>) -> Result<()> {
    let min = node.op_type() == "Min";
    let n = node.proto.input.len();
    let shapes = (0..n).map(|i| super::arith::input_shape(ctx, node, i)).collect::<Result<Vec<_>>>()?;
    let mut shape = shapes[0].clone();
    for s in &shapes[1..] {
        shape = broadcast_shape(&shape, s).ok_or_else(|| Error::ShapeMismatch {
            node: node.name.clone(),
            expected: shape.clone(),
            got: s.clone(),
        })?;
    }
    if !(0..n).any(|i| ctx.is_act(node, i)) {
        return Err(node.invalid("no operand depends on the model input"));
    }
    // max(x, c) with a scalar constant is a Clip (cheaper: no constant tensor).
    if n == 2 {
        for (ai, ci) in [(0, 1), (1, 0)] {
            if ctx.is_act(node, ai) && !ctx.is_act(node, ci) && ctx.konst(node, ci)?.len() == 1 {
                let x = ctx.act(node, ai)?;
                let x = ctx.broadcast(node, x, &shape)?;
                let c = ctx.floats(node, ci)?.1[0];
                let kind = if min {
                    LayerKind::Clip { min: None, max: Some(c) }
                } else {
                    LayerKind::Clip { min: Some(c), max: None }
                };
                return ctx.emit(node, vec![x], shape, kind);
            }
        }
    }
    let mut acc = operand(ctx, node, 0, &shape)?;
    for i in 1..n {
        let rhs = operand(ctx, node, i, &shape)?;
        acc = ctx.push(node, vec![acc, rhs], shape.clone(), LayerKind::MaxMin { min });
    }
    ctx.bind(node, 0, acc)
}
