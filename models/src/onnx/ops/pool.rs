//! Pooling and reductions: AveragePool, MaxPool, GlobalAveragePool, GlobalMaxPool, ReduceSum,
//! ReduceMean, ReduceMax, ReduceMin.

use super::{OpSpec, Result, WindowGeometry};
use crate::{
    ir::LayerKind,
    onnx::{numel, strides, Ctx, Node},
};

pub const POOL: OpSpec = OpSpec {
    ops: &["AveragePool", "MaxPool", "GlobalAveragePool", "GlobalMaxPool"],
    lower: pool,
    limits: "1-3 spatial dims, `strides`, `pads`, `auto_pad`, `dilations`, `ceil_mode`, `count_include_pad`; average by proved rounding division",
};

pub const REDUCE: OpSpec = OpSpec {
    ops: &["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin"],
    lower: reduce,
    limits:
        "constant `axes` (attribute or input), `keepdims`, `noop_with_empty_axes`; mean by proved rounding division",
};

fn pool(ctx: &mut Ctx, node: &Node<'_>) -> Result<()> {
    let op = node.op_type();
    let x = ctx.act(node, 0)?;
    let shape = ctx.shape(x).to_vec();
    if shape.len() < 3 {
        return Err(node.invalid(format!("input must be [N, C, D1..Dn], got {shape:?}")));
    }
    let (outer, spatial) = (shape[0] * shape[1], shape[2..].to_vec());
    let global = op.starts_with("Global");
    let max = op.ends_with("MaxPool");
    if op == "MaxPool" {
        if node.attr::<i64>("storage_order")?.unwrap_or(0) != 0 {
            return Err(node.unsupported("storage_order", 1));
        }
        if node.proto.output.iter().skip(1).any(|o| !o.is_empty()) {
            return Err(node.unsupported("Indices output", "requested"));
        }
    }
    let geometry = if global {
        let n = spatial.len();
        WindowGeometry {
            kernel: spatial.clone(),
            strides: vec![1; n],
            dilations: vec![1; n],
            pads_begin: vec![0; n],
            pads_end: vec![0; n],
            ceil_mode: false,
        }
    } else {
        let kernel: Vec<usize> = node
            .attr_vec::<i64>("kernel_shape")?
            .ok_or_else(|| node.invalid("kernel_shape is required"))?
            .iter()
            .map(|k| *k as usize)
            .collect();
        if kernel.len() != spatial.len() || kernel.contains(&0) {
            return Err(node.unsupported("kernel_shape", kernel));
        }
        WindowGeometry::read(node, &spatial, kernel)?
    };
    let include_pad = node.attr::<i64>("count_include_pad")?.unwrap_or(0) != 0;
    let windows = geometry.windows(node, &spatial)?;
    let in_sp = numel(&spatial);
    let (mut wins, mut divisors) = (Vec::new(), Vec::new());
    for o in 0..outer {
        for (taps, padded) in windows.taps.iter().zip(&windows.padded_counts) {
            let win: Vec<u32> = taps.iter().filter_map(|(_, p)| p.map(|p| (o * in_sp + p) as u32)).collect();
            if win.is_empty() {
                return Err(node.invalid("a pooling window covers only padding"));
            }
            // count_include_pad counts the window clipped to input + explicit pads (a ceil-mode
            // window reaching past the pads does not count the part beyond).
            divisors.push(if include_pad { *padded as u32 } else { win.len() as u32 });
            wins.push(win);
        }
    }
    let mut out_shape = shape[..2].to_vec();
    out_shape.extend(&windows.out_dims);
    let kind = if max {
        LayerKind::MaxPool { windows: wins, min: false }
    } else {
        LayerKind::AvgPool { windows: wins, divisors }
    };
    ctx.emit(node, vec![x], out_shape, kind)
}

/// The reduction windows of `shape` over `axes`: for each output (reduced axes removed, in
/// row-major order), the flat input indices it covers.
pub(super) fn reduction_windows(shape: &[usize], axes: &[usize]) -> Vec<Vec<u32>> {
    let kept: Vec<usize> = (0..shape.len()).filter(|a| !axes.contains(a)).collect();
    let kept_dims: Vec<usize> = kept.iter().map(|a| shape[*a]).collect();
    let mut windows = vec![Vec::new(); numel(&kept_dims)];
    let st = strides(shape);
    let kst = strides(&kept_dims);
    for flat in 0..numel(shape) {
        let o: usize = kept.iter().enumerate().map(|(j, a)| ((flat / st[*a]) % shape[*a]) * kst[j]).sum();
        windows[o].push(flat as u32);
    }
    windows
}

/// Reduced axes from the `axes` attribute or input 1.
pub(super) fn reduce_axes(ctx: &Ctx, node: &Node<'_>, rank: usize) -> Result<Option<Vec<usize>>> {
    let axes = if node.has_input(1) { Some(ctx.ints(node, 1)?) } else { node.attr_vec::<i64>("axes")? };
    match axes {
        Some(a) if !a.is_empty() => {
            let mut out = a.iter().map(|a| super::axis(node, *a, rank)).collect::<Result<Vec<_>>>()?;
            out.sort_unstable();
            out.dedup();
            Ok(Some(out))
        }
        _ => Ok(None),
    }
}

fn reduce(ctx: &mut Ctx, node: &Node<'_>) -> Result<()> {
    let x = ctx.act(node, 0)?;
    let shape = ctx.shape(x).to_vec();
    let keepdims = node.attr::<i64>("keepdims")?.unwrap_or(1) != 0;
    let axes = match reduce_axes(ctx, node, shape.len())? {
        Some(a) => a,
        None if node.attr::<i64>("noop_with_empty_axes")?.unwrap_or(0) != 0 => {
            return ctx.emit(node, vec![x], shape, LayerKind::Reshape);
        }
        None => (0..shape.len()).collect(),
    };
    let windows = reduction_windows(&shape, &axes);
    let out_shape: Vec<usize> = shape
        .iter()
        .enumerate()
        .filter_map(|(a, d)| if axes.contains(&a) { keepdims.then_some(1) } else { Some(*d) })
        .collect();
    let kind = match node.op_type() {
        "ReduceSum" => LayerKind::AvgPool { divisors: vec![1; windows.len()], windows },
        "ReduceMean" => LayerKind::AvgPool { divisors: windows.iter().map(|w| w.len() as u32).collect(), windows },
        "ReduceMax" => LayerKind::MaxPool { windows, min: false },
        _ => LayerKind::MaxPool { windows, min: true },
    };
    ctx.emit(node, vec![x], out_shape, kind)
}
