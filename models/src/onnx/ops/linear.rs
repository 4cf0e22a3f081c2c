//! Gemm, MatMul and BatchNormalization: linear maps with constant coefficients.

use super::{OpSpec, Result};
use crate::{
    error::Error,
    ir::{LayerKind, Pairs, Terms},
    onnx::{broadcast, broadcast_shape, numel, strides, Ctx, Node},
};

pub const GEMM: OpSpec = OpSpec {
    ops: &["Gemm"],
    lower: gemm,
    limits: "linear; one operand constant; `alpha`, `beta`, `transA`, `transB`, bias broadcast",
};

pub const MATMUL: OpSpec =
    OpSpec { ops: &["MatMul"], lower: matmul, limits: "linear with a constant on either side; two activations: proved sum of products, rescaled; batch dimensions broadcast" };

pub const BATCH_NORM: OpSpec = OpSpec {
    ops: &["BatchNormalization"],
    lower: batch_norm,
    limits: "linear (inference mode: folded into one weight and bias per channel)",
};

/// The `(a index, b index)` pairs summed by each output of `a @ b` (numpy rules: a 1-D `a` is a
/// row, a 1-D `b` a column, batch dimensions broadcast), and the output shape.
pub(super) fn matmul_pairs(node: &Node<'_>, a: &[usize], b: &[usize]) -> Result<(Pairs, Vec<usize>)> {
    let mismatch = || Error::ShapeMismatch { node: node.name.clone(), expected: a.to_vec(), got: b.to_vec() };
    let (mut a, mut b) = (a.to_vec(), b.to_vec());
    let (a1, b1) = (a.len() == 1, b.len() == 1);
    if a1 {
        a.insert(0, 1);
    }
    if b1 {
        b.push(1);
    }
    let (m, k) = (a[a.len() - 2], a[a.len() - 1]);
    let (k2, n) = (b[b.len() - 2], b[b.len() - 1]);
    if k != k2 {
        return Err(mismatch());
    }
    let batch = broadcast_shape(&a[..a.len() - 2], &b[..b.len() - 2]).ok_or_else(mismatch)?;
    let nb = numel(&batch);
    let a_batch = super::super::broadcast_index(&a[..a.len() - 2], &batch).ok_or_else(mismatch)?;
    let b_batch = super::super::broadcast_index(&b[..b.len() - 2], &batch).ok_or_else(mismatch)?;
    let mut pairs = Vec::with_capacity(nb * m * n);
    for bi in 0..nb {
        let (ab, bb) = (a_batch[bi] * m * k, b_batch[bi] * k * n);
        for r in 0..m {
            for c in 0..n {
                pairs.push((0..k).map(|j| ((ab + r * k + j) as u32, (bb + j * n + c) as u32)).collect());
            }
        }
    }
    let mut shape = batch;
    if !a1 {
        shape.push(m);
    }
    if !b1 {
        shape.push(n);
    }
    Ok((pairs, shape))
}

/// The terms of `x @ w` (or `w @ x` when `const_left`) with a constant `w`, and the output shape.
fn matmul_terms(
    node: &Node<'_>,
    x_shape: &[usize],
    w_dims: &[usize],
    w: &[f32],
    const_left: bool,
) -> Result<(Terms, Vec<usize>)> {
    let (pairs, shape) =
        if const_left { matmul_pairs(node, w_dims, x_shape)? } else { matmul_pairs(node, x_shape, w_dims)? };
    let terms = pairs
        .into_iter()
        .map(|p| {
            p.into_iter()
                .map(|(ai, bj)| if const_left { (bj, w[ai as usize]) } else { (ai, w[bj as usize]) })
                .filter(|(_, wv)| *wv != 0.0)
                .collect()
        })
        .collect();
    Ok((terms, shape))
}

fn matmul(ctx: &mut Ctx, node: &Node<'_>) -> Result<()> {
    if ctx.is_act(node, 0) && ctx.is_act(node, 1) {
        // Both operands computed: a bilinear layer (attention scores and values).
        let (a, b) = (ctx.act(node, 0)?, ctx.act(node, 1)?);
        let (pairs, shape) = matmul_pairs(node, ctx.shape(a), ctx.shape(b))?;
        return ctx.emit(node, vec![a, b], shape, LayerKind::Bilinear { pairs });
    }
    let const_left = !ctx.is_act(node, 0);
    let (xi, wi) = if const_left { (1, 0) } else { (0, 1) };
    let x = ctx.act(node, xi)?;
    let (dims, w) = ctx.floats(node, wi)?;
    let (terms, shape) = matmul_terms(node, ctx.shape(x), &dims, &w, const_left)?;
    let bias = vec![0.0; terms.len()];
    ctx.emit(node, vec![x], shape, LayerKind::Linear { terms, bias })
}

fn transpose2(dims: &[usize], w: &[f32]) -> (Vec<usize>, Vec<f32>) {
    let (r, c) = (dims[0], dims[1]);
    let mut out = vec![0.0; r * c];
    for i in 0..r {
        for j in 0..c {
            out[j * r + i] = w[i * c + j];
        }
    }
    (vec![c, r], out)
}

fn gemm(ctx: &mut Ctx, node: &Node<'_>) -> Result<()> {
    let alpha = node.attr::<f32>("alpha")?.unwrap_or(1.0);
    let beta = node.attr::<f32>("beta")?.unwrap_or(1.0);
    let trans_a = node.attr::<i64>("transA")?.unwrap_or(0) != 0;
    let trans_b = node.attr::<i64>("transB")?.unwrap_or(0) != 0;
    let const_left = !ctx.is_act(node, 0);
    let (xi, wi) = if const_left { (1, 0) } else { (0, 1) };
    let x = ctx.act(node, xi)?;
    let (mut dims, mut w) = ctx.floats(node, wi)?;
    if dims.len() != 2 || ctx.shape(x).len() != 2 {
        return Err(node.invalid(format!("Gemm operands must be 2-D, got {:?} and {dims:?}", ctx.shape(x))));
    }
    let const_trans = if const_left { trans_a } else { trans_b };
    if const_trans {
        (dims, w) = transpose2(&dims, &w);
    }
    let x_trans = if const_left { trans_b } else { trans_a };
    let mut x_t = x;
    if x_trans {
        let s = ctx.shape(x).to_vec();
        let (r, c) = (s[0], s[1]);
        let sources = (0..r * c)
            .map(|o| {
                let (i, j) = (o / r, o % r);
                crate::ir::Source::Input { slot: 0, index: (j * c + i) as u32 }
            })
            .collect();
        x_t = ctx.push(node, vec![x], vec![c, r], LayerKind::Move { sources });
    }
    let w: Vec<f32> = w.iter().map(|v| v * alpha).collect();
    let (terms, shape) = matmul_terms(node, ctx.shape(x_t), &dims, &w, const_left)?;
    let bias = if node.has_input(2) {
        let (cd, c) = ctx.floats(node, 2)?;
        broadcast(&c, &cd, &shape)
            .ok_or_else(|| Error::ShapeMismatch { node: node.name.clone(), expected: shape.clone(), got: cd })?
            .into_iter()
            .map(|v| v * beta)
            .collect()
    } else {
        vec![0.0; terms.len()]
    };
    ctx.emit(node, vec![x_t], shape, LayerKind::Linear { terms, bias })
}

fn batch_norm(ctx: &mut Ctx, node: &Node<'_>) -> Result<()> {
    if node.attr::<i64>("training_mode")?.unwrap_or(0) != 0 {
        return Err(node.unsupported("training_mode", 1));
    }
    let x = ctx.act(node, 0)?;
    let shape = ctx.shape(x).to_vec();
    let ch = *shape.get(1).ok_or_else(|| node.invalid("input must have a channel dimension"))?;
    let eps = node.attr::<f32>("epsilon")?.unwrap_or(1e-5);
    let mut p = Vec::new();
    for i in 1..=4 {
        let (_, v) = ctx.floats(node, i)?;
        if v.len() != ch {
            return Err(Error::ShapeMismatch { node: node.name.clone(), expected: vec![ch], got: vec![v.len()] });
        }
        p.push(v);
    }
    let inner = numel(&shape[2..]);
    let outer = shape[0];
    let st = strides(&shape);
    let (mut terms, mut bias) = (Vec::with_capacity(numel(&shape)), Vec::with_capacity(numel(&shape)));
    // y = scale·(x − mean)/√(var + ε) + b = a·x + (b − a·mean)
    let folded: Vec<(f32, f32)> = (0..ch)
        .map(|c| {
            let a = p[0][c] / (p[3][c] + eps).sqrt();
            (a, p[1][c] - a * p[2][c])
        })
        .collect();
    for n in 0..outer {
        for (c, (a, b)) in folded.iter().enumerate() {
            for j in 0..inner {
                let idx = (n * st[0] + c * inner + j) as u32;
                terms.push(if *a != 0.0 { vec![(idx, *a)] } else { vec![] });
                bias.push(*b);
            }
        }
    }
    ctx.emit(node, vec![x], shape, LayerKind::Linear { terms, bias })
}
