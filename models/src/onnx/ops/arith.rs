//! Add, Sub, Sum, Mul, Div and Neg: element-wise arithmetic with broadcasting.

use super::{OpSpec, Result};
use crate::{
    error::Error,
    ir::{LayerKind, TensorId},
    onnx::{broadcast, broadcast_shape, Ctx, Node},
};

pub const ADD_SUB: OpSpec = OpSpec {
    ops: &["Add", "Sub", "Sum"],
    lower: add_sub,
    limits: "exact; activation ± activation, activation ± constant, constant − activation; broadcasting",
};

pub const MUL_DIV: OpSpec = OpSpec {
    ops: &["Mul", "Div"],
    lower: mul_div,
    limits: "activation × or ÷ constant (linear); activation × activation (rescaled product); ÷ an activation by proved rounding division (a zero divisor is an error)",
};

pub const NEG: OpSpec = OpSpec { ops: &["Neg"], lower: neg, limits: "exact" };

/// The output shape of an element-wise node over its inputs' shapes.
fn out_shape(node: &Node<'_>, shapes: &[Vec<usize>]) -> Result<Vec<usize>> {
    if let Ok(s) = node.out_shape(0) {
        return Ok(s);
    }
    let mut acc = shapes[0].clone();
    for s in &shapes[1..] {
        acc = broadcast_shape(&acc, s).ok_or_else(|| Error::ShapeMismatch {
            node: node.name.clone(),
            expected: acc.clone(),
            got: s.clone(),
        })?;
    }
    Ok(acc)
}

/// The shape of input `i`, whether an activation or a constant.
pub(super) fn input_shape(ctx: &Ctx, node: &Node<'_>, i: usize) -> Result<Vec<usize>> {
    if ctx.is_act(node, i) {
        Ok(ctx.shape(ctx.act(node, i)?).to_vec())
    } else {
        Ok(ctx.konst(node, i)?.shape().to_vec())
    }
}

/// Input `i` broadcast to `shape` as an activation (a constant becomes a `Const` layer).
pub(super) fn operand(ctx: &mut Ctx, node: &Node<'_>, i: usize, shape: &[usize]) -> Result<TensorId> {
    if ctx.is_act(node, i) {
        let t = ctx.act(node, i)?;
        ctx.broadcast(node, t, shape)
    } else {
        let (d, v) = ctx.floats(node, i)?;
        ctx.constant(node, &d, &v, shape)
    }
}

/// Constant input `i` broadcast to `shape`.
fn const_values(ctx: &Ctx, node: &Node<'_>, i: usize, shape: &[usize]) -> Result<Vec<f32>> {
    let (d, v) = ctx.floats(node, i)?;
    broadcast(&v, &d, shape).ok_or_else(|| Error::ShapeMismatch {
        node: node.name.clone(),
        expected: shape.to_vec(),
        got: d,
    })
}

fn add_sub(ctx: &mut Ctx, node: &Node<'_>) -> Result<()> {
    let sub = node.op_type() == "Sub";
    let n = node.proto.input.len();
    let shapes = (0..n).map(|i| input_shape(ctx, node, i)).collect::<Result<Vec<_>>>()?;
    let shape = out_shape(node, &shapes)?;
    let acts: Vec<usize> = (0..n).filter(|i| ctx.is_act(node, *i)).collect();
    if acts.is_empty() {
        return Err(node.invalid("no operand depends on the model input"));
    }
    if n == 2 && acts.len() == 1 {
        let (ai, ci) = (acts[0], 1 - acts[0]);
        let x = ctx.act(node, ai)?;
        let x = ctx.broadcast(node, x, &shape)?;
        let c = const_values(ctx, node, ci, &shape)?;
        if sub && ai == 1 {
            // c − x: linear with weight −1.
            let terms = (0..c.len()).map(|i| vec![(i as u32, -1.0)]).collect();
            return ctx.emit(node, vec![x], shape, LayerKind::Linear { terms, bias: c });
        }
        let values = if sub { c.iter().map(|v| -v).collect() } else { c };
        return ctx.emit(node, vec![x], shape, LayerKind::AddConst { values });
    }
    // Sum of activations (constants become Const layers), left to right.
    let mut acc = operand(ctx, node, 0, &shape)?;
    for i in 1..n {
        let rhs = operand(ctx, node, i, &shape)?;
        acc = ctx.push(node, vec![acc, rhs], shape.clone(), LayerKind::Add { sub });
    }
    ctx.bind(node, 0, acc)
}

fn mul_div(ctx: &mut Ctx, node: &Node<'_>) -> Result<()> {
    let div = node.op_type() == "Div";
    if div && ctx.is_act(node, 0) && super::movement::integral(ctx, ctx.act(node, 0)?) {
        return Err(node.unsupported("operand", "an integer tensor (ONNX integer division truncates)"));
    }
    let shapes = (0..2).map(|i| input_shape(ctx, node, i)).collect::<Result<Vec<_>>>()?;
    let shape = out_shape(node, &shapes)?;
    match (ctx.is_act(node, 0), ctx.is_act(node, 1)) {
        (true, true) => {
            let (a, b) = (operand(ctx, node, 0, &shape)?, operand(ctx, node, 1, &shape)?);
            ctx.emit(node, vec![a, b], shape, if div { LayerKind::Div { max_abs: None } } else { LayerKind::Mul })
        }
        (false, true) if div => {
            // A constant divided by an activation.
            let a = operand(ctx, node, 0, &shape)?;
            let b = operand(ctx, node, 1, &shape)?;
            ctx.emit(node, vec![a, b], shape, LayerKind::Div { max_abs: None })
        }
        (a_act, _) => {
            let (ai, ci) = if a_act { (0, 1) } else { (1, 0) };
            let x = ctx.act(node, ai)?;
            let x = ctx.broadcast(node, x, &shape)?;
            let c = const_values(ctx, node, ci, &shape)?;
            let terms = c
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let w = if div { 1.0 / c } else { *c };
                    if !w.is_finite() {
                        return Err(node.invalid(format!("division by {c}")));
                    }
                    Ok(if w == 0.0 { vec![] } else { vec![(i as u32, w)] })
                })
                .collect::<Result<Vec<_>>>()?;
            let bias = vec![0.0; terms.len()];
            ctx.emit(node, vec![x], shape, LayerKind::Linear { terms, bias })
        }
    }
}

fn neg(ctx: &mut Ctx, node: &Node<'_>) -> Result<()> {
    let x = ctx.act(node, 0)?;
    let shape = ctx.shape(x).to_vec();
    let n: usize = shape.iter().product();
    let terms = (0..n).map(|i| vec![(i as u32, -1.0)]).collect();
    ctx.emit(node, vec![x], shape, LayerKind::Linear { terms, bias: vec![0.0; n] })
}
