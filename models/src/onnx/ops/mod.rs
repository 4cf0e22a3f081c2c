//! One module per ONNX operator family, and the registry that dispatches to them.
//!
//! Adding an operator: write `lower` in a module of this directory (check the attributes, then
//! push IR layers through [`Ctx`]) and add one line to [`REGISTRY`]. The supported-operator table
//! in the README is generated from the registry ([`supported_ops_markdown`]), and a test fails
//! when the two disagree.

mod activation;
mod argmax;
mod arith;
mod compare;
mod conv;
mod einsum;
mod function;
mod linear;
mod movement;
mod pool;
mod recurrent;
mod trees;

use super::{Ctx, Node};
use crate::error::Result;

/// How one operator family is imported.
pub struct OpSpec {
    /// ONNX operator types handled by this module.
    pub ops: &'static [&'static str],
    /// Lowers one node into IR layers.
    pub lower: fn(&mut Ctx, &Node<'_>) -> Result<()>,
    /// What is supported, and the limits (shown in the README's operator table).
    pub limits: &'static str,
}

/// Every supported operator family.
pub static REGISTRY: &[&OpSpec] = &[
    &linear::GEMM,
    &linear::MATMUL,
    &linear::BATCH_NORM,
    &conv::CONV,
    &conv::CONV_TRANSPOSE,
    &arith::ADD_SUB,
    &arith::MUL_DIV,
    &arith::NEG,
    &activation::RELU,
    &activation::LEAKY,
    &activation::CLIP,
    &activation::HARD,
    &activation::MAX_MIN,
    &function::TABLE,
    &function::RELU_TAIL,
    &function::EXACT,
    &function::POW,
    &function::SOFTMAX,
    &function::LAYER_NORM,
    &recurrent::RECURRENT,
    &einsum::EINSUM,
    &trees::TREES,
    &pool::POOL,
    &pool::REDUCE,
    &compare::COMPARE,
    &compare::WHERE,
    &argmax::ARGMAX,
    &movement::ALIAS,
    &movement::MOVE,
    &movement::CAST,
];

/// The module handling an ONNX operator type.
pub fn lookup(op: &str) -> Option<&'static OpSpec> {
    REGISTRY.iter().copied().find(|s| s.ops.contains(&op))
}

/// Every supported ONNX operator type, sorted.
pub fn supported_ops() -> Vec<&'static str> {
    let mut ops: Vec<&str> = REGISTRY.iter().flat_map(|s| s.ops.iter().copied()).collect();
    ops.sort_unstable();
    ops
}

/// The README's table of supported operators and their limits, generated from [`REGISTRY`].
pub fn supported_ops_markdown() -> String {
    let mut out = String::from("| operators | supported as |\n|---|---|\n");
    for spec in REGISTRY {
        out.push_str(&format!("| {} | {} |\n", spec.ops.join(", "), spec.limits));
    }
    out
}

/// The output dims and, for every output position, the `(kernel offset, input position)` pairs
/// of a sliding window over N spatial dims (`None` where the window covers padding).
/// Positions are row-major flat indices over the spatial dims only.
pub(crate) struct Windows {
    pub out_dims: Vec<usize>,
    pub taps: Vec<Vec<(usize, Option<usize>)>>,
    /// For each output position, how many taps fall inside the input or its explicit padding
    /// (the divisor of an average with `count_include_pad`; ceil-mode windows may go beyond).
    pub padded_counts: Vec<usize>,
}

/// Sliding-window geometry shared by Conv and the pools.
#[derive(Clone, Debug)]
pub(crate) struct WindowGeometry {
    pub kernel: Vec<usize>,
    pub strides: Vec<usize>,
    pub dilations: Vec<usize>,
    pub pads_begin: Vec<usize>,
    pub pads_end: Vec<usize>,
    pub ceil_mode: bool,
}

impl WindowGeometry {
    /// Reads `strides`, `dilations`, `pads`, `auto_pad` and `ceil_mode` for a kernel over
    /// `spatial` input dims.
    pub fn read(node: &Node<'_>, spatial: &[usize], kernel: Vec<usize>) -> Result<Self> {
        let n = spatial.len();
        let ones = vec![1i64; n];
        let strides = node.attr_vec::<i64>("strides")?.unwrap_or(ones.clone());
        let dilations = node.attr_vec::<i64>("dilations")?.unwrap_or(ones);
        if strides.len() != n || strides.iter().any(|s| *s < 1) {
            return Err(node.unsupported("strides", strides));
        }
        if dilations.len() != n || dilations.iter().any(|s| *s < 1) {
            return Err(node.unsupported("dilations", dilations));
        }
        let strides: Vec<usize> = strides.iter().map(|s| *s as usize).collect();
        let dilations: Vec<usize> = dilations.iter().map(|s| *s as usize).collect();
        let ceil_mode = node.attr::<i64>("ceil_mode")?.unwrap_or(0) != 0;
        let auto_pad = node.attr::<String>("auto_pad")?.unwrap_or_else(|| "NOTSET".into());
        let (pads_begin, pads_end) = match auto_pad.as_str() {
            "NOTSET" => {
                let p = node.attr_vec::<i64>("pads")?.unwrap_or(vec![0; 2 * n]);
                if p.len() != 2 * n || p.iter().any(|v| *v < 0) {
                    return Err(node.unsupported("pads", p));
                }
                (p[..n].iter().map(|v| *v as usize).collect(), p[n..].iter().map(|v| *v as usize).collect())
            }
            "VALID" => (vec![0; n], vec![0; n]),
            "SAME_UPPER" | "SAME_LOWER" if node.op_type().ends_with("Pool") && dilations.iter().any(|d| *d != 1) => {
                // onnxruntime sizes SAME pooling windows without the dilation, Conv with it:
                // refuse rather than pick one.
                return Err(node.unsupported("auto_pad", format!("{auto_pad} with dilations {dilations:?}")));
            }
            "SAME_UPPER" | "SAME_LOWER" => {
                let (mut b, mut e) = (vec![0; n], vec![0; n]);
                for a in 0..n {
                    let out = spatial[a].div_ceil(strides[a]);
                    let span = (kernel[a] - 1) * dilations[a] + 1;
                    let total = ((out - 1) * strides[a] + span).saturating_sub(spatial[a]);
                    let (small, big) = (total / 2, total - total / 2);
                    (b[a], e[a]) = if auto_pad == "SAME_UPPER" { (small, big) } else { (big, small) };
                }
                (b, e)
            }
            other => return Err(node.unsupported("auto_pad", other)),
        };
        Ok(Self { kernel, strides, dilations, pads_begin, pads_end, ceil_mode })
    }

    /// The windows over `spatial` input dims.
    pub fn windows(&self, node: &Node<'_>, spatial: &[usize]) -> Result<Windows> {
        let n = spatial.len();
        if self.kernel.contains(&0) || self.strides.contains(&0) || self.dilations.contains(&0) {
            return Err(node.unsupported("kernel/strides/dilations", "a zero entry"));
        }
        let mut out_dims = Vec::with_capacity(n);
        for (a, size) in spatial.iter().enumerate() {
            let span = (self.kernel[a] - 1) * self.dilations[a] + 1;
            let padded = size + self.pads_begin[a] + self.pads_end[a];
            if padded < span {
                return Err(node.invalid(format!("kernel span {span} is larger than the padded input {padded}")));
            }
            let mut out = if self.ceil_mode {
                (padded - span).div_ceil(self.strides[a]) + 1
            } else {
                (padded - span) / self.strides[a] + 1
            };
            // A window must start inside the input or its left padding (ONNX ceil_mode rule).
            if self.ceil_mode && (out - 1) * self.strides[a] >= size + self.pads_begin[a] {
                out -= 1;
            }
            out_dims.push(out);
        }
        let in_strides = super::strides(spatial);
        let kernel_total: usize = self.kernel.iter().product();
        let kernel_strides = super::strides(&self.kernel);
        let out_total: usize = out_dims.iter().product();
        let out_strides = super::strides(&out_dims);
        let mut taps = Vec::with_capacity(out_total);
        let mut padded_counts = Vec::with_capacity(out_total);
        for o in 0..out_total {
            let mut win = Vec::with_capacity(kernel_total);
            let mut in_padding = 0;
            for k in 0..kernel_total {
                let mut flat = 0usize;
                let mut inside = true;
                let mut inside_padded = true;
                for a in 0..n {
                    let oa = (o / out_strides[a]) % out_dims[a];
                    let ka = (k / kernel_strides[a]) % self.kernel[a];
                    let pos = (oa * self.strides[a] + ka * self.dilations[a]) as isize - self.pads_begin[a] as isize;
                    if pos < -(self.pads_begin[a] as isize) || pos >= (spatial[a] + self.pads_end[a]) as isize {
                        inside_padded = false;
                    }
                    if pos < 0 || pos >= spatial[a] as isize {
                        inside = false;
                    } else {
                        flat += pos as usize * in_strides[a];
                    }
                }
                in_padding += usize::from(inside_padded);
                win.push((k, inside.then_some(flat)));
            }
            taps.push(win);
            padded_counts.push(in_padding);
        }
        Ok(Windows { out_dims, taps, padded_counts })
    }
}

/// Normalizes a possibly negative axis of a rank-`rank` tensor.
pub(crate) fn axis(node: &Node<'_>, axis: i64, rank: usize) -> Result<usize> {
    let a = if axis < 0 { axis + rank as i64 } else { axis };
    if a < 0 || a >= rank as i64 {
        return Err(node.unsupported("axis", axis));
    }
    Ok(a as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operator_is_registered_once() {
        let ops = supported_ops();
        let mut dedup = ops.clone();
        dedup.dedup();
        assert_eq!(ops, dedup, "an operator is registered twice");
        for op in ["Gemm", "Conv", "Concat", "Gather", "ArgMax", "PRelu", "Where", "Resize"] {
            assert!(lookup(op).is_some(), "{op} is not registered");
        }
        assert!(lookup("Sigmoid").is_some() && lookup("Softmax").is_some());
        assert!(
            lookup("LSTM").is_some()
                && lookup("Einsum").is_some()
                && lookup("TreeEnsembleClassifier").is_some()
                && lookup("TreeEnsembleRegressor").is_none()
        );
    }

    #[test]
    fn the_readme_table_is_generated_from_the_registry() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
        let table = supported_ops_markdown();
        assert!(
            readme.contains(&table),
            "README.md's operator table differs from the registry; replace it with:\n{table}"
        );
    }
}
