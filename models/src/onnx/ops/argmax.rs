//! ArgMax and ArgMin: the index of the first largest (smallest) value along an axis, proved.

use super::{pool::reduction_windows, OpSpec, Result};
use crate::{
    ir::LayerKind,
    onnx::{Ctx, Node},
};

pub const ARGMAX: OpSpec = OpSpec {
    ops: &["ArgMax", "ArgMin"],
    lower: argmax,
    limits: "one `axis`, `keepdims`; first index on ties (`select_last_index` = 0); index proved by one-hot selection",
};

fn argmax(ctx: &mut Ctx, node: &Node<'_>) -> Result<()> {
    let x = ctx.act(node, 0)?;
    let shape = ctx.shape(x).to_vec();
    if node.attr::<i64>("select_last_index")?.unwrap_or(0) != 0 {
        return Err(node.unsupported("select_last_index", 1));
    }
    let axis = super::axis(node, node.attr::<i64>("axis")?.unwrap_or(0), shape.len())?;
    let keepdims = node.attr::<i64>("keepdims")?.unwrap_or(1) != 0;
    let windows = reduction_windows(&shape, &[axis]);
    let out_shape: Vec<usize> = shape
        .iter()
        .enumerate()
        .filter_map(|(a, d)| if a == axis { keepdims.then_some(1) } else { Some(*d) })
        .collect();
    let min = node.op_type() == "ArgMin";
    ctx.emit(node, vec![x], out_shape, LayerKind::ArgMax { windows, min })
}
