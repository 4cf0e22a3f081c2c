//! LSTM and GRU, unrolled over the model's fixed sequence length.
//!
//! Every time step becomes IR layers: one linear layer per gate over `[x_t, h_{t−1}]` (the constant
//! `W` and `R` rows, both biases), the gate's Sigmoid or Tanh table, and products of activations for
//! the cell and hidden states. Directions `forward`, `reverse` and `bidirectional`; the default
//! activations only; batch 1 (the batch dimension is fixed at import).

use super::{OpSpec, Result};
use crate::{
    functions::Func,
    ir::{LayerKind, Source, TensorId},
    onnx::{Ctx, Node},
};

pub const RECURRENT: OpSpec = OpSpec {
    ops: &["LSTM", "GRU"],
    lower: recurrent,
    limits: "unrolled over the fixed sequence length; forward, reverse, bidirectional; default activations; \
             `linear_before_reset` (GRU); constant weights, biases and initial states; batch 1; no peepholes, `clip`, \
             `input_forget`, `layout = 1`",
};

/// Which cell.
#[derive(Clone, Copy, PartialEq)]
enum Cell {
    Lstm,
    Gru { linear_before_reset: bool },
}

struct Weights {
    /// `[gates·H, I]`, `[gates·H, H]`, `[2·gates·H]` for one direction.
    w: Vec<f32>,
    r: Vec<f32>,
    b: Vec<f32>,
}

fn recurrent(ctx: &mut Ctx, node: &Node<'_>) -> Result<()> {
    let cell = if node.op_type() == "LSTM" {
        Cell::Lstm
    } else {
        Cell::Gru { linear_before_reset: node.attr::<i64>("linear_before_reset")?.unwrap_or(0) != 0 }
    };
    let gates = if cell == Cell::Lstm { 4 } else { 3 };
    if node.attr::<i64>("layout")?.unwrap_or(0) != 0 {
        return Err(node.unsupported("layout", 1));
    }
    if node.attr::<f32>("clip")?.is_some() {
        return Err(node.unsupported("clip", "set"));
    }
    if node.attr::<i64>("input_forget")?.unwrap_or(0) != 0 {
        return Err(node.unsupported("input_forget", 1));
    }
    if node.attr_vec::<String>("activations")?.is_some_and(|a| {
        let default: &[&str] = if cell == Cell::Lstm { &["Sigmoid", "Tanh", "Tanh"] } else { &["Sigmoid", "Tanh"] };
        a.iter().zip(default.iter().cycle()).any(|(x, d)| !x.eq_ignore_ascii_case(d))
    }) {
        return Err(node.unsupported("activations", "other than the defaults"));
    }
    if cell == Cell::Lstm && node.has_input(7) {
        return Err(node.unsupported("P (peepholes)", "given"));
    }
    let x = ctx.act(node, 0)?;
    let xs = ctx.shape(x).to_vec();
    let [seq, batch, input] = xs[..] else {
        return Err(node.invalid(format!("X must be [seq, batch, input], got {xs:?}")));
    };
    if batch != 1 {
        return Err(node.unsupported("batch", batch));
    }
    let (wd, w) = ctx.floats(node, 1)?;
    let (rd, r) = ctx.floats(node, 2)?;
    let dirs = wd[0];
    let hidden = rd[2];
    if wd != [dirs, gates * hidden, input] || rd != [dirs, gates * hidden, hidden] {
        return Err(node.invalid(format!("W {wd:?} / R {rd:?} do not match X {xs:?}")));
    }
    let direction = node.attr::<String>("direction")?.unwrap_or_else(|| "forward".into());
    let expected_dirs = if direction == "bidirectional" { 2 } else { 1 };
    if dirs != expected_dirs || !matches!(direction.as_str(), "forward" | "reverse" | "bidirectional") {
        return Err(node.unsupported("direction", direction));
    }
    let b = if node.has_input(3) { ctx.floats(node, 3)?.1 } else { vec![0.0; dirs * 2 * gates * hidden] };
    if node.has_input(4) {
        let lens = ctx.ints(node, 4)?;
        if lens.iter().any(|l| *l as usize != seq) {
            return Err(node.unsupported("sequence_lens", lens));
        }
    }
    let initial = |ctx: &mut Ctx, i: usize, d: usize| -> Result<Option<TensorId>> {
        if !node.has_input(i) {
            return Ok(None);
        }
        if ctx.is_act(node, i) {
            let t = ctx.act(node, i)?;
            let sources = (0..hidden).map(|j| Source::Input { slot: 0, index: (d * hidden + j) as u32 }).collect();
            return Ok(Some(ctx.push(node, vec![t], vec![hidden], LayerKind::Move { sources })));
        }
        let (_, v) = ctx.floats(node, i)?;
        let values = v[d * hidden..(d + 1) * hidden].to_vec();
        Ok(Some(ctx.push(node, vec![], vec![hidden], LayerKind::Const { values })))
    };
    let g = gates * hidden;
    let mut outputs: Vec<Vec<TensorId>> = Vec::new();
    let (mut last_h, mut last_c) = (Vec::new(), Vec::new());
    for d in 0..dirs {
        let weights = Weights {
            w: w[d * g * input..(d + 1) * g * input].to_vec(),
            r: r[d * g * hidden..(d + 1) * g * hidden].to_vec(),
            b: b[d * 2 * g..(d + 1) * 2 * g].to_vec(),
        };
        let reverse = direction == "reverse" || d == 1;
        let mut h = initial(ctx, 5, d)?;
        let mut c = if cell == Cell::Lstm { initial(ctx, 6, d)? } else { None };
        let mut hs = vec![0; seq];
        for step in 0..seq {
            let t = if reverse { seq - 1 - step } else { step };
            let sources = (0..input).map(|j| Source::Input { slot: 0, index: (t * input + j) as u32 }).collect();
            let xt = ctx.push(node, vec![x], vec![input], LayerKind::Move { sources });
            let (hn, cn) = step_cell(ctx, node, cell, &weights, input, hidden, xt, h, c);
            hs[t] = hn;
            h = Some(hn);
            c = cn;
        }
        outputs.push(hs);
        last_h.push(h.expect("seq > 0"));
        if let Some(c) = c {
            last_c.push(c);
        }
    }
    // Y [seq, dirs, 1, H], Y_h [dirs, 1, H], Y_c [dirs, 1, H]
    let mut slots = Vec::new();
    let mut sources = Vec::new();
    for t in 0..seq {
        for hs in &outputs {
            let slot = slots.len() as u16;
            slots.push(hs[t]);
            sources.extend((0..hidden).map(|j| Source::Input { slot, index: j as u32 }));
        }
    }
    let y = ctx.push(node, slots, vec![seq, dirs, 1, hidden], LayerKind::Move { sources });
    ctx.bind(node, 0, y)?;
    let stack = |ctx: &mut Ctx, ts: &[TensorId]| {
        let sources = (0..ts.len())
            .flat_map(|s| (0..hidden).map(move |j| Source::Input { slot: s as u16, index: j as u32 }))
            .collect();
        ctx.push(node, ts.to_vec(), vec![ts.len(), 1, hidden], LayerKind::Move { sources })
    };
    if node.proto.output.get(1).is_some_and(|n| !n.is_empty()) {
        let yh = stack(ctx, &last_h);
        ctx.bind(node, 1, yh)?;
    }
    if node.proto.output.get(2).is_some_and(|n| !n.is_empty()) {
        let yc = stack(ctx, &last_c);
        ctx.bind(node, 2, yc)?;
    }
    Ok(())
}

/// `W_k·x + R_k·h + Wb_k + Rb_k` for gate `k` over `xh = [x, h]` (`with_h`: `xh` holds `h`;
/// `parts`: include the `W` part and its bias, the `R` part and its bias).
#[allow(clippy::too_many_arguments)]
fn gate(
    ctx: &mut Ctx,
    node: &Node<'_>,
    wts: &Weights,
    k: usize,
    (input, hidden): (usize, usize),
    xh: TensorId,
    with_h: bool,
    parts: (bool, bool),
) -> TensorId {
    let g = wts.b.len() / 2;
    let (use_w, use_r) = parts;
    let terms = (0..hidden)
        .map(|o| {
            let row = k * hidden + o;
            let mut t = Vec::new();
            if use_w {
                t.extend((0..input).map(|i| (i as u32, wts.w[row * input + i])));
            }
            if use_r && with_h {
                t.extend((0..hidden).map(|j| ((input + j) as u32, wts.r[row * hidden + j])));
            }
            t.retain(|(_, v)| *v != 0.0);
            t
        })
        .collect();
    let bias = (0..hidden)
        .map(|o| {
            let row = k * hidden + o;
            (if use_w { wts.b[row] } else { 0.0 }) + (if use_r { wts.b[g + row] } else { 0.0 })
        })
        .collect();
    ctx.push(node, vec![xh], vec![hidden], LayerKind::Linear { terms, bias })
}

fn func(ctx: &mut Ctx, node: &Node<'_>, t: TensorId, f: Func, hidden: usize) -> TensorId {
    ctx.push(node, vec![t], vec![hidden], LayerKind::Function { func: f, max_input: None })
}

#[allow(clippy::too_many_arguments)]
fn step_cell(
    ctx: &mut Ctx,
    node: &Node<'_>,
    cell: Cell,
    wts: &Weights,
    input: usize,
    hidden: usize,
    xt: TensorId,
    h: Option<TensorId>,
    c: Option<TensorId>,
) -> (TensorId, Option<TensorId>) {
    // [x_t, h_{t−1}] (just x_t while the state is zero)
    let xh = match h {
        Some(h) => {
            let sources = (0..input)
                .map(|i| Source::Input { slot: 0, index: i as u32 })
                .chain((0..hidden).map(|j| Source::Input { slot: 1, index: j as u32 }))
                .collect();
            ctx.push(node, vec![xt, h], vec![input + hidden], LayerKind::Move { sources })
        }
        None => xt,
    };
    let with_h = h.is_some();
    let dims = (input, hidden);
    let mul = |ctx: &mut Ctx, a: TensorId, b: TensorId| ctx.push(node, vec![a, b], vec![hidden], LayerKind::Mul);
    let add = |ctx: &mut Ctx, a: TensorId, b: TensorId, sub: bool| {
        ctx.push(node, vec![a, b], vec![hidden], LayerKind::Add { sub })
    };
    match cell {
        Cell::Lstm => {
            // gate order i, o, f, c
            let pre = |ctx: &mut Ctx, k| gate(ctx, node, wts, k, dims, xh, with_h, (true, true));
            let (pi, po, pf, pc) = (pre(ctx, 0), pre(ctx, 1), pre(ctx, 2), pre(ctx, 3));
            let i = func(ctx, node, pi, Func::Sigmoid, hidden);
            let o = func(ctx, node, po, Func::Sigmoid, hidden);
            let f = func(ctx, node, pf, Func::Sigmoid, hidden);
            let cand = func(ctx, node, pc, Func::Tanh, hidden);
            let ic = mul(ctx, i, cand);
            let c_new = match c {
                Some(c) => {
                    let fc = mul(ctx, f, c);
                    add(ctx, fc, ic, false)
                }
                None => ic,
            };
            let tc = func(ctx, node, c_new, Func::Tanh, hidden);
            (mul(ctx, o, tc), Some(c_new))
        }
        Cell::Gru { linear_before_reset } => {
            // gate order z, r, h
            let z_pre = gate(ctx, node, wts, 0, dims, xh, with_h, (true, true));
            let r_pre = gate(ctx, node, wts, 1, dims, xh, with_h, (true, true));
            let z = func(ctx, node, z_pre, Func::Sigmoid, hidden);
            let r = func(ctx, node, r_pre, Func::Sigmoid, hidden);
            let cand_pre = match h {
                // h = 0: r ⊙ (R·0 + Rb) = r ⊙ Rb, and R·(r ⊙ 0) + Rb = Rb.
                None if !linear_before_reset => gate(ctx, node, wts, 2, dims, xh, false, (true, true)),
                None => {
                    let wx = gate(ctx, node, wts, 2, dims, xh, false, (true, false));
                    let rb = gate(ctx, node, wts, 2, dims, xh, false, (false, true));
                    let r_rb = mul(ctx, r, rb);
                    add(ctx, wx, r_rb, false)
                }
                Some(h) => {
                    let wx = gate(ctx, node, wts, 2, dims, xh, false, (true, false));
                    let rh = if linear_before_reset {
                        let rh = gate(ctx, node, wts, 2, dims, xh, true, (false, true));
                        mul(ctx, r, rh)
                    } else {
                        let rh = mul(ctx, r, h);
                        let sources = (0..input)
                            .map(|i| Source::Input { slot: 0, index: i as u32 })
                            .chain((0..hidden).map(|j| Source::Input { slot: 1, index: j as u32 }))
                            .collect();
                        let x_rh = ctx.push(node, vec![xt, rh], vec![input + hidden], LayerKind::Move { sources });
                        gate(ctx, node, wts, 2, dims, x_rh, true, (false, true))
                    };
                    add(ctx, wx, rh, false)
                }
            };
            let cand = func(ctx, node, cand_pre, Func::Tanh, hidden);
            // h' = (1 − z)⊙cand + z⊙h = cand − z⊙cand + z⊙h
            let z_cand = mul(ctx, z, cand);
            let mut h_new = add(ctx, cand, z_cand, true);
            if let Some(h) = h {
                let zh = mul(ctx, z, h);
                h_new = add(ctx, h_new, zh, false);
            }
            (h_new, None)
        }
    }
}
