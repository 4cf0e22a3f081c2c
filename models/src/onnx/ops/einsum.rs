//! Einsum with one or two operands: sums of products over the contracted letters.
//!
//! Two activations become a bilinear layer (attention's `bhqd,bhkd->bhqk` and `bhqk,bhkd->bhqd`), an
//! activation and a constant a linear layer, one operand (transpose, reductions) a linear layer with
//! unit weights. Explicit (`->`) and implicit output; no ellipsis, no repeated letter within an
//! operand (diagonals), no broadcasting of size-1 dimensions.

use super::{OpSpec, Result};
use crate::{
    ir::LayerKind,
    onnx::{Ctx, Node},
};

pub const EINSUM: OpSpec = OpSpec {
    ops: &["Einsum"],
    lower: einsum,
    limits: "one or two operands: two activations as a bilinear layer (sums of products, one rescale), with a \
             constant as a linear layer; no ellipsis, diagonals or size-1 broadcasting",
};

/// For every output position, the `(flat index in a, flat index in b)` pairs of its sum (`b` is
/// `None` for one operand), and the output shape.
type Plan = (Vec<Vec<(usize, Option<usize>)>>, Vec<usize>);

fn plan(node: &Node<'_>, equation: &str, shapes: &[Vec<usize>]) -> Result<Plan> {
    let eq: String = equation.chars().filter(|c| !c.is_whitespace()).collect();
    if eq.contains("...") {
        return Err(node.unsupported("equation", format!("{equation} (ellipsis)")));
    }
    let (lhs, rhs) = match eq.split_once("->") {
        Some((l, r)) => (l.to_string(), Some(r.to_string())),
        None => (eq.clone(), None),
    };
    let operands: Vec<Vec<char>> = lhs.split(',').map(|s| s.chars().collect()).collect();
    if operands.len() != shapes.len() {
        return Err(node.invalid(format!(
            "equation {equation} names {} operands, got {}",
            operands.len(),
            shapes.len()
        )));
    }
    let mut dims: std::collections::BTreeMap<char, usize> = Default::default();
    for (letters, shape) in operands.iter().zip(shapes) {
        if letters.len() != shape.len() || letters.iter().any(|c| !c.is_ascii_alphabetic()) {
            return Err(node.invalid(format!("equation {equation} does not match shape {shape:?}")));
        }
        for (i, c) in letters.iter().enumerate() {
            if letters[..i].contains(c) {
                return Err(node.unsupported("equation", format!("{equation} (repeated letter: a diagonal)")));
            }
            match dims.insert(*c, shape[i]) {
                Some(d) if d != shape[i] => {
                    return Err(node.unsupported("equation", format!("{equation}: `{c}` is {d} and {}", shape[i])));
                }
                _ => {}
            }
        }
    }
    let out: Vec<char> = match rhs {
        Some(r) => r.chars().collect(),
        None => {
            // Implicit: the letters that appear once, in alphabetical order.
            let all: Vec<char> = operands.concat();
            dims.keys().copied().filter(|c| all.iter().filter(|x| *x == c).count() == 1).collect()
        }
    };
    if out.iter().any(|c| !dims.contains_key(c)) {
        return Err(node.invalid(format!("equation {equation}: an output letter is not an input letter")));
    }
    let summed: Vec<char> = dims.keys().copied().filter(|c| !out.contains(c)).collect();
    let out_shape: Vec<usize> = out.iter().map(|c| dims[c]).collect();
    let flat = |letters: &[char], value: &dyn Fn(char) -> usize| -> usize {
        letters.iter().fold(0, |acc, c| acc * dims[c] + value(*c))
    };
    let combos = |letters: &[char]| -> Vec<Vec<usize>> {
        let mut all = vec![vec![]];
        for c in letters {
            all = all.into_iter().flat_map(|p| (0..dims[c]).map(move |v| [p.clone(), vec![v]].concat())).collect();
        }
        all
    };
    let sums = combos(&summed);
    let mut pairs = Vec::new();
    for o in combos(&out) {
        let mut terms = Vec::with_capacity(sums.len());
        for s in &sums {
            let value = |c: char| -> usize {
                match out.iter().position(|x| *x == c) {
                    Some(i) => o[i],
                    None => s[summed.iter().position(|x| *x == c).expect("every letter is out or summed")],
                }
            };
            let a = flat(&operands[0], &value);
            let b = operands.get(1).map(|l| flat(l, &value));
            terms.push((a, b));
        }
        pairs.push(terms);
    }
    Ok((pairs, out_shape))
}

fn einsum(ctx: &mut Ctx, node: &Node<'_>) -> Result<()> {
    let equation: String = node.attr::<String>("equation")?.ok_or_else(|| node.invalid("equation is required"))?;
    let n = node.proto.input.len();
    if !(1..=2).contains(&n) {
        return Err(node.unsupported("operands", n));
    }
    let shapes: Vec<Vec<usize>> = (0..n).map(|i| super::arith::input_shape(ctx, node, i)).collect::<Result<_>>()?;
    let (pairs, shape) = plan(node, &equation, &shapes)?;
    match (n, ctx.is_act(node, 0), n == 2 && ctx.is_act(node, 1)) {
        (1, _, _) => {
            let x = ctx.act(node, 0)?;
            let terms = pairs.iter().map(|p| p.iter().map(|(a, _)| (*a as u32, 1.0)).collect()).collect();
            let bias = vec![0.0; pairs.len()];
            ctx.emit(node, vec![x], shape, LayerKind::Linear { terms, bias })
        }
        (_, true, true) => {
            let (a, b) = (ctx.act(node, 0)?, ctx.act(node, 1)?);
            let pairs = pairs
                .iter()
                .map(|p| p.iter().map(|(i, j)| (*i as u32, j.expect("two operands") as u32)).collect())
                .collect();
            ctx.emit(node, vec![a, b], shape, LayerKind::Bilinear { pairs })
        }
        (_, a_act, _) => {
            let (xi, ci) = if a_act { (0, 1) } else { (1, 0) };
            let x = ctx.act(node, xi)?;
            let (_, w) = ctx.floats(node, ci)?;
            let terms = pairs
                .iter()
                .map(|p| {
                    p.iter()
                        .map(|(i, j)| {
                            let j = j.expect("two operands");
                            if a_act {
                                (*i as u32, w[j])
                            } else {
                                (j as u32, w[*i])
                            }
                        })
                        .filter(|(_, w)| *w != 0.0)
                        .collect()
                })
                .collect();
            let bias = vec![0.0; pairs.len()];
            ctx.emit(node, vec![x], shape, LayerKind::Linear { terms, bias })
        }
    }
}
