//! Comparisons (Less, LessOrEqual, Greater, GreaterOrEqual, Equal, Not) giving 0/1, and Where.

use super::{
    arith::{input_shape, operand},
    OpSpec, Result,
};
use crate::{
    error::Error,
    ir::{Cmp, LayerKind},
    onnx::{broadcast_shape, Ctx, Node},
};

pub const COMPARE: OpSpec = OpSpec {
    ops: &["Less", "LessOrEqual", "Greater", "GreaterOrEqual", "Equal", "Not"],
    lower: compare,
    limits: "exact, result 0/1 at scale 2^0; activations or constants, broadcasting",
};

pub const WHERE: OpSpec = OpSpec {
    ops: &["Where"],
    lower: where_,
    limits: "exact; condition computed (0/1), branches activations or constants",
};

fn shape_of(ctx: &Ctx, node: &Node<'_>, n: usize) -> Result<Vec<usize>> {
    if let Ok(s) = node.out_shape(0) {
        return Ok(s);
    }
    let mut shape = input_shape(ctx, node, 0)?;
    for i in 1..n {
        let s = input_shape(ctx, node, i)?;
        shape = broadcast_shape(&shape, &s).ok_or_else(|| Error::ShapeMismatch {
            node: node.name.clone(),
            expected: shape.clone(),
            got: s,
        })?;
    }
    Ok(shape)
}

fn compare(ctx: &mut Ctx, node: &Node<'_>) -> Result<()> {
    if node.op_type() == "Not" {
        let x = ctx.act(node, 0)?;
        let shape = ctx.shape(x).to_vec();
        let zero = ctx.constant(node, &[], &[0.0], &shape)?;
        return ctx.emit(node, vec![x, zero], shape, LayerKind::Compare { cmp: Cmp::Equal });
    }
    let cmp = match node.op_type() {
        "Less" => Cmp::Less,
        "LessOrEqual" => Cmp::LessOrEqual,
        "Greater" => Cmp::Greater,
        "GreaterOrEqual" => Cmp::GreaterOrEqual,
        _ => Cmp::Equal,
    };
    let shape = shape_of(ctx, node, 2)?;
    if !ctx.is_act(node, 0) && !ctx.is_act(node, 1) {
        return Err(node.invalid("no operand depends on the model input"));
    }
    let a = operand(ctx, node, 0, &shape)?;
    let b = operand(ctx, node, 1, &shape)?;
    ctx.emit(node, vec![a, b], shape, LayerKind::Compare { cmp })
}

fn where_(ctx: &mut Ctx, node: &Node<'_>) -> Result<()> {
    let shape = shape_of(ctx, node, 3)?;
    if !ctx.is_act(node, 0) {
        return Err(node.invalid("the condition does not depend on the model input"));
    }
    let c = operand(ctx, node, 0, &shape)?;
    let a = operand(ctx, node, 1, &shape)?;
    let b = operand(ctx, node, 2, &shape)?;
    ctx.emit(node, vec![c, a, b], shape, LayerKind::Where)
}
