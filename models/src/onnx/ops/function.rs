//! Non-linear element-wise functions and the composites built from them: Sigmoid, Tanh, Erf,
//! Exp, Log, Pow, Sqrt, Reciprocal, Softsign, Softplus, Gelu, Elu, Selu, Celu; Softmax,
//! LogSoftmax, LayerNormalization.
//!
//! Saturating functions are one lookup table ([`crate::functions`]); functions linear at +∞ are
//! `c·relu(x)` plus a saturating table; Sqrt, Reciprocal and Softsign are exact rounding gadgets
//! (no table); Pow with exponent 1, 2, 3, 4, 0.5, −0.5, −1 is exact, any other constant exponent a
//! table.

use super::{pool::reduction_windows, OpSpec, Result};
use crate::{
    functions::Func,
    ir::{LayerKind, Source, TensorId},
    onnx::{Ctx, Node},
};

pub const TABLE: OpSpec = OpSpec {
    ops: &["Sigmoid", "Tanh", "Erf", "Exp", "Log"],
    lower: table,
    limits: "lookup table: input rounded to the table's scale and clamped where the function saturates (or to its \
             input bound); error bound on the model card",
};

pub const RELU_TAIL: OpSpec = OpSpec {
    ops: &["Gelu", "Softplus", "Elu", "Selu", "Celu"],
    lower: relu_tail,
    limits: "`c·relu(x)` plus a lookup table of the saturating rest; Gelu `approximate` none or tanh",
};

pub const EXACT: OpSpec = OpSpec {
    ops: &["Sqrt", "Reciprocal", "Softsign"],
    lower: exact,
    limits: "proved rounding: integer square root (negative inputs read 0), division (a zero divisor is an error)",
};

pub const POW: OpSpec = OpSpec {
    ops: &["Pow"],
    lower: pow,
    limits: "constant scalar exponent: 1, 2, 3, 4 by products, 0.5 / −0.5 / −1 by square root and division, any other \
             by lookup table (positive inputs)",
};

pub const SOFTMAX: OpSpec = OpSpec {
    ops: &["Softmax", "LogSoftmax"],
    lower: softmax,
    limits: "any `axis`: max, exp table of x − max, sum, proved division (LogSoftmax: x − max − log table of the sum)",
};

pub const LAYER_NORM: OpSpec = OpSpec {
    ops: &["LayerNormalization"],
    lower: layer_norm,
    limits: "`axis`, `epsilon`, constant scale and bias; mean and variance by proved rounding division, square root \
             and division exact",
};

fn same_shape(ctx: &Ctx, x: TensorId) -> (Vec<usize>, usize) {
    let shape = ctx.shape(x).to_vec();
    let n = shape.iter().product();
    (shape, n)
}

fn table(ctx: &mut Ctx, node: &Node<'_>) -> Result<()> {
    let x = ctx.act(node, 0)?;
    let func = match node.op_type() {
        "Sigmoid" => Func::Sigmoid,
        "Tanh" => Func::Tanh,
        "Erf" => Func::Erf,
        "Exp" => Func::Exp,
        _ => Func::Log,
    };
    let (shape, _) = same_shape(ctx, x);
    ctx.emit(node, vec![x], shape, LayerKind::Function { func, max_input: None })
}

/// `gamma·relu(x) + g(x)`.
fn relu_plus(ctx: &mut Ctx, node: &Node<'_>, x: TensorId, gamma: f32, tail: Func) -> Result<()> {
    let (shape, n) = same_shape(ctx, x);
    let g = ctx.push(node, vec![x], shape.clone(), LayerKind::Function { func: tail, max_input: None });
    let mut r = ctx.push(node, vec![x], shape.clone(), LayerKind::Relu);
    if gamma != 1.0 {
        let terms = (0..n).map(|i| vec![(i as u32, gamma)]).collect();
        r = ctx.push(node, vec![r], shape.clone(), LayerKind::Linear { terms, bias: vec![0.0; n] });
    }
    ctx.emit(node, vec![r, g], shape, LayerKind::Add { sub: false })
}

fn relu_tail(ctx: &mut Ctx, node: &Node<'_>) -> Result<()> {
    let x = ctx.act(node, 0)?;
    let alpha = |default: f32| -> Result<f32> { Ok(node.attr::<f32>("alpha")?.unwrap_or(default)) };
    match node.op_type() {
        "Gelu" => {
            let tail = match node.attr::<String>("approximate")?.as_deref().unwrap_or("none") {
                "none" => Func::GeluTail,
                "tanh" => Func::GeluTanhTail,
                other => return Err(node.unsupported("approximate", other)),
            };
            relu_plus(ctx, node, x, 1.0, tail)
        }
        "Softplus" => relu_plus(ctx, node, x, 1.0, Func::SoftplusTail),
        "Elu" => relu_plus(ctx, node, x, 1.0, Func::EluTail { alpha: alpha(1.0)?, gamma: 1.0 }),
        "Selu" => {
            let gamma = node.attr::<f32>("gamma")?.unwrap_or(1.050_701);
            relu_plus(ctx, node, x, gamma, Func::EluTail { alpha: alpha(1.673_263_2)?, gamma })
        }
        _ => {
            let a = alpha(1.0)?;
            if !(a.is_finite() && a > 0.0) {
                return Err(node.unsupported("alpha", a));
            }
            relu_plus(ctx, node, x, 1.0, Func::CeluTail { alpha: a })
        }
    }
}

/// A constant tensor of `v` shaped like `x`.
fn filled(ctx: &mut Ctx, node: &Node<'_>, x: TensorId, v: f32) -> Result<TensorId> {
    let (shape, _) = same_shape(ctx, x);
    ctx.constant(node, &[1], &[v], &shape)
}

fn reciprocal(ctx: &mut Ctx, node: &Node<'_>, x: TensorId) -> Result<TensorId> {
    let (shape, _) = same_shape(ctx, x);
    let one = filled(ctx, node, x, 1.0)?;
    Ok(ctx.push(node, vec![one, x], shape, LayerKind::Div { max_abs: None }))
}

fn exact(ctx: &mut Ctx, node: &Node<'_>) -> Result<()> {
    let x = ctx.act(node, 0)?;
    let (shape, n) = same_shape(ctx, x);
    match node.op_type() {
        "Sqrt" => ctx.emit(node, vec![x], shape, LayerKind::Sqrt),
        "Reciprocal" => {
            let y = reciprocal(ctx, node, x)?;
            ctx.bind(node, 0, y)
        }
        _ => {
            // x / (1 + |x|)
            let abs = ctx.push(node, vec![x], shape.clone(), LayerKind::LeakyRelu { slopes: vec![-1.0; n] });
            let den = ctx.push(node, vec![abs], shape.clone(), LayerKind::AddConst { values: vec![1.0; n] });
            ctx.emit(node, vec![x, den], shape, LayerKind::Div { max_abs: Some(1.0) })
        }
    }
}

fn pow(ctx: &mut Ctx, node: &Node<'_>) -> Result<()> {
    let x = ctx.act(node, 0)?;
    if ctx.is_act(node, 1) {
        return Err(node.unsupported("exponent", "an activation (only constant exponents)"));
    }
    let (_, e) = ctx.floats(node, 1)?;
    let p = match e.as_slice() {
        [p] if p.is_finite() => *p,
        _ => return Err(node.unsupported("exponent", "not a finite scalar")),
    };
    let (shape, _) = same_shape(ctx, x);
    let y = match p {
        1.0 => ctx.push(node, vec![x], shape, LayerKind::Reshape),
        2.0 | 3.0 | 4.0 => {
            let sq = ctx.push(node, vec![x, x], shape.clone(), LayerKind::Mul);
            match p {
                2.0 => sq,
                3.0 => ctx.push(node, vec![sq, x], shape, LayerKind::Mul),
                _ => ctx.push(node, vec![sq, sq], shape, LayerKind::Mul),
            }
        }
        0.5 => ctx.push(node, vec![x], shape, LayerKind::Sqrt),
        -1.0 => reciprocal(ctx, node, x)?,
        -0.5 => {
            let r = ctx.push(node, vec![x], shape, LayerKind::Sqrt);
            reciprocal(ctx, node, r)?
        }
        p => ctx.push(node, vec![x], shape, LayerKind::Function { func: Func::Pow { p }, max_input: None }),
    };
    ctx.bind(node, 0, y)
}

/// For `shape` reduced over `axis`: the windows (flat positions of each group) and, for every
/// position, its group.
fn groups(shape: &[usize], axes: &[usize]) -> (Vec<Vec<u32>>, Vec<u32>) {
    let windows = reduction_windows(shape, axes);
    let mut group = vec![0u32; shape.iter().product()];
    for (g, w) in windows.iter().enumerate() {
        for i in w {
            group[*i as usize] = g as u32;
        }
    }
    (windows, group)
}

/// A per-group tensor broadcast back to every position of its group.
fn spread(ctx: &mut Ctx, node: &Node<'_>, t: TensorId, group: &[u32], shape: &[usize]) -> TensorId {
    let sources = group.iter().map(|g| Source::Input { slot: 0, index: *g }).collect();
    ctx.push(node, vec![t], shape.to_vec(), LayerKind::Move { sources })
}

fn softmax(ctx: &mut Ctx, node: &Node<'_>) -> Result<()> {
    let x = ctx.act(node, 0)?;
    let (shape, _) = same_shape(ctx, x);
    let axis = super::axis(node, node.attr::<i64>("axis")?.unwrap_or(-1), shape.len())?;
    // Opset < 13 flattens from `axis` on; 13+ normalizes one axis.
    let opset_13 = ctx.opset >= 13;
    let axes: Vec<usize> = if opset_13 { vec![axis] } else { (axis..shape.len()).collect() };
    let y = softmax_over(ctx, node, x, &shape, &axes, node.op_type() == "LogSoftmax");
    ctx.bind(node, 0, y)
}

/// Softmax of `x` (of `shape`) over its last axis.
pub(super) fn softmax_of(ctx: &mut Ctx, node: &Node<'_>, x: TensorId, shape: &[usize]) -> Result<TensorId> {
    Ok(softmax_over(ctx, node, x, shape, &[shape.len() - 1], false))
}

/// Softmax (or LogSoftmax) of `x` over `axes`: max, exp table of `x − max`, sum, division.
fn softmax_over(ctx: &mut Ctx, node: &Node<'_>, x: TensorId, shape: &[usize], axes: &[usize], log: bool) -> TensorId {
    let shape = shape.to_vec();
    let (windows, group) = groups(&shape, axes);
    let g = windows.len();
    let max = ctx.push(node, vec![x], vec![g], LayerKind::MaxPool { windows: windows.clone(), min: false });
    let max_all = spread(ctx, node, max, &group, &shape);
    let d = ctx.push(node, vec![x, max_all], shape.clone(), LayerKind::Add { sub: true });
    let e = ctx.push(node, vec![d], shape.clone(), LayerKind::Function { func: Func::Exp, max_input: Some(0.0) });
    let sum = ctx.push(node, vec![e], vec![g], LayerKind::AvgPool { divisors: vec![1; g], windows });
    // The sum is at least exp(0) = 1 (the maximum's own term, exactly 1 in the table): saying so
    // changes no value and keeps the interval bound of the division (and the log) finite.
    let sum = ctx.push(node, vec![sum], vec![g], LayerKind::Clip { min: Some(1.0), max: None });
    if log {
        let log = ctx.push(node, vec![sum], vec![g], LayerKind::Function { func: Func::Log, max_input: None });
        let log_all = spread(ctx, node, log, &group, &shape);
        return ctx.push(node, vec![d, log_all], shape, LayerKind::Add { sub: true });
    }
    let sum_all = spread(ctx, node, sum, &group, &shape);
    ctx.push(node, vec![e, sum_all], shape, LayerKind::Div { max_abs: Some(1.0) })
}

fn layer_norm(ctx: &mut Ctx, node: &Node<'_>) -> Result<()> {
    let x = ctx.act(node, 0)?;
    let (shape, n) = same_shape(ctx, x);
    let axis = super::axis(node, node.attr::<i64>("axis")?.unwrap_or(-1), shape.len())?;
    let eps = node.attr::<f32>("epsilon")?.unwrap_or(1e-5);
    if node.proto.output.iter().skip(1).any(|o| !o.is_empty()) {
        return Err(node.unsupported("Mean / InvStdDev outputs", "requested"));
    }
    let axes: Vec<usize> = (axis..shape.len()).collect();
    let (windows, group) = groups(&shape, &axes);
    let (g, m) = (windows.len(), windows[0].len());
    let mean =
        ctx.push(node, vec![x], vec![g], LayerKind::AvgPool { divisors: vec![m as u32; g], windows: windows.clone() });
    let mean_all = spread(ctx, node, mean, &group, &shape);
    let d = ctx.push(node, vec![x, mean_all], shape.clone(), LayerKind::Add { sub: true });
    let pairs = windows.iter().map(|w| w.iter().map(|i| (*i, *i)).collect()).collect();
    let ss = ctx.push(node, vec![d, d], vec![g], LayerKind::Bilinear { pairs });
    let var = ctx.push(
        node,
        vec![ss],
        vec![g],
        LayerKind::AvgPool { divisors: vec![m as u32; g], windows: (0..g as u32).map(|i| vec![i]).collect() },
    );
    let var = ctx.push(node, vec![var], vec![g], LayerKind::AddConst { values: vec![eps; g] });
    let std = ctx.push(node, vec![var], vec![g], LayerKind::Sqrt);
    // sqrt(var + ε) ≥ sqrt(ε); at least 2^-10 so that it stays positive after quantization.
    let floor = eps.sqrt().max(1.0 / 1024.0);
    let std = ctx.push(node, vec![std], vec![g], LayerKind::Clip { min: Some(floor), max: None });
    let std_all = spread(ctx, node, std, &group, &shape);
    // |x_i − mean| ≤ √(m−1)·std for any row; 2·√m + 2 leaves room for the rounding of the mean,
    // the variance and the root.
    let max_abs = Some(2.0 * (m as f32).sqrt() + 2.0);
    let normed = ctx.push(node, vec![d, std_all], shape.clone(), LayerKind::Div { max_abs });
    // scale (input 1) and bias (input 2), constants broadcast over the normalized axes
    let (sd, sv) = ctx.floats(node, 1)?;
    let scale = crate::onnx::broadcast(&sv, &sd, &shape[axis..])
        .ok_or_else(|| node.unsupported("scale", format!("shape {sd:?}")))?;
    let bias = if node.has_input(2) {
        let (bd, bv) = ctx.floats(node, 2)?;
        crate::onnx::broadcast(&bv, &bd, &shape[axis..])
            .ok_or_else(|| node.unsupported("bias", format!("shape {bd:?}")))?
    } else {
        vec![0.0; m]
    };
    let terms = (0..n).map(|i| vec![(i as u32, scale[i % m])]).collect();
    let bias = (0..n).map(|i| bias[i % m]).collect();
    ctx.emit(node, vec![normed], shape, LayerKind::Linear { terms, bias })
}
