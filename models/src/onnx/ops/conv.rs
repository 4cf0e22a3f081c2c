//! Conv and ConvTranspose over 1, 2 or 3 spatial dimensions: linear with constant kernels.

use super::{OpSpec, Result, WindowGeometry};
use crate::{
    error::Error,
    ir::LayerKind,
    onnx::{numel, strides, Ctx, Node},
};

pub const CONV: OpSpec = OpSpec {
    ops: &["Conv"],
    lower: conv,
    limits:
        "linear; constant kernel, 1-3 spatial dims, `group` (depthwise), `strides`, `dilations`, `pads`, `auto_pad`",
};

pub const CONV_TRANSPOSE: OpSpec = OpSpec {
    ops: &["ConvTranspose"],
    lower: conv_transpose,
    limits: "linear; constant kernel, `group`, `strides`, `dilations`, `pads`, `output_padding` (not `output_shape`)",
};

/// `(batch, channels, spatial dims)` of an activation `[N, C, D...]`.
fn nc(node: &Node<'_>, shape: &[usize]) -> Result<(usize, usize, Vec<usize>)> {
    if !(3..=5).contains(&shape.len()) {
        return Err(node.invalid(format!("input must be [N, C, D1..Dn] with n in 1..=3, got {shape:?}")));
    }
    Ok((shape[0], shape[1], shape[2..].to_vec()))
}

fn conv(ctx: &mut Ctx, node: &Node<'_>) -> Result<()> {
    let x = ctx.act(node, 0)?;
    let (batch, c, spatial) = nc(node, ctx.shape(x))?;
    let (wd, w) = ctx.floats(node, 1)?;
    let group = node.attr::<i64>("group")?.unwrap_or(1);
    if group < 1 || c % group as usize != 0 {
        return Err(node.unsupported("group", group));
    }
    let g = group as usize;
    if wd.len() != spatial.len() + 2 || wd[1] * g != c || wd[0] % g != 0 {
        return Err(Error::ShapeMismatch {
            node: node.name.clone(),
            expected: vec![wd.first().copied().unwrap_or(0), c / g],
            got: wd.clone(),
        });
    }
    let (m, cg) = (wd[0], wd[1]);
    let kernel = wd[2..].to_vec();
    if let Some(ks) = node.attr_vec::<i64>("kernel_shape")? {
        if ks.iter().map(|k| *k as usize).collect::<Vec<_>>() != kernel {
            return Err(node.unsupported("kernel_shape", ks));
        }
    }
    let geometry = WindowGeometry::read(node, &spatial, kernel.clone())?;
    let windows = geometry.windows(node, &spatial)?;
    let bias = if node.has_input(2) { ctx.floats(node, 2)?.1 } else { vec![0.0; m] };
    if bias.len() != m {
        return Err(Error::ShapeMismatch { node: node.name.clone(), expected: vec![m], got: vec![bias.len()] });
    }
    let (in_sp, out_sp, k_total) = (numel(&spatial), numel(&windows.out_dims), numel(&kernel));
    let mut terms = Vec::with_capacity(batch * m * out_sp);
    let mut out_bias = Vec::with_capacity(batch * m * out_sp);
    for n in 0..batch {
        for mo in 0..m {
            let gi = mo / (m / g);
            for taps in &windows.taps {
                let mut t = Vec::with_capacity(cg * k_total);
                for ci in 0..cg {
                    let cin = gi * cg + ci;
                    for (k, pos) in taps {
                        let Some(pos) = pos else { continue };
                        let wv = w[(mo * cg + ci) * k_total + k];
                        if wv != 0.0 {
                            t.push((((n * c + cin) * in_sp + pos) as u32, wv));
                        }
                    }
                }
                terms.push(t);
                out_bias.push(bias[mo]);
            }
        }
    }
    let mut shape = vec![batch, m];
    shape.extend(&windows.out_dims);
    ctx.emit(node, vec![x], shape, LayerKind::Linear { terms, bias: out_bias })
}

fn conv_transpose(ctx: &mut Ctx, node: &Node<'_>) -> Result<()> {
    let x = ctx.act(node, 0)?;
    let (batch, c, spatial) = nc(node, ctx.shape(x))?;
    let (wd, w) = ctx.floats(node, 1)?;
    let g = node.attr::<i64>("group")?.unwrap_or(1);
    if g < 1 || c % g as usize != 0 {
        return Err(node.unsupported("group", g));
    }
    let g = g as usize;
    // Kernel: [C, M/group, k...]
    if wd.len() != spatial.len() + 2 || wd[0] != c {
        return Err(Error::ShapeMismatch { node: node.name.clone(), expected: vec![c], got: wd.clone() });
    }
    let (mg, kernel) = (wd[1], wd[2..].to_vec());
    let (m, cg, nd) = (mg * g, c / g, spatial.len());
    let ones = vec![1i64; nd];
    let st: Vec<usize> = node.attr_vec::<i64>("strides")?.unwrap_or(ones.clone()).iter().map(|v| *v as usize).collect();
    let dil: Vec<usize> = node.attr_vec::<i64>("dilations")?.unwrap_or(ones).iter().map(|v| *v as usize).collect();
    let out_pad: Vec<usize> =
        node.attr_vec::<i64>("output_padding")?.unwrap_or(vec![0; nd]).iter().map(|v| *v as usize).collect();
    if st.len() != nd || dil.len() != nd || out_pad.len() != nd || st.contains(&0) || dil.contains(&0) {
        return Err(node.unsupported("strides/dilations/output_padding", (st, dil, out_pad)));
    }
    let full: Vec<usize> =
        (0..nd).map(|a| st[a] * (spatial[a] - 1) + out_pad[a] + (kernel[a] - 1) * dil[a] + 1).collect();
    let auto_pad = node.attr::<String>("auto_pad")?.unwrap_or_else(|| "NOTSET".into());
    if let Some(os) = node.attr_vec::<i64>("output_shape")? {
        // tract, the float reference calibration compares with, does not evaluate it as
        // onnxruntime does: refuse rather than calibrate against a wrong reference.
        return Err(node.unsupported("output_shape", format!("{os:?} (give pads and output_padding instead)")));
    }
    let (pb, out_dims): (Vec<usize>, Vec<usize>) = match auto_pad.as_str() {
        "NOTSET" | "VALID" => {
            let p = node.attr_vec::<i64>("pads")?.unwrap_or(vec![0; 2 * nd]);
            if p.len() != 2 * nd || p.iter().any(|v| *v < 0) {
                return Err(node.unsupported("pads", p));
            }
            let p: Vec<usize> = p.iter().map(|v| *v as usize).collect();
            let out = (0..nd).map(|a| full[a].saturating_sub(p[a] + p[a + nd])).collect();
            (p[..nd].to_vec(), out)
        }
        other => return Err(node.unsupported("auto_pad", other)),
    };
    let bias = if node.has_input(2) { ctx.floats(node, 2)?.1 } else { vec![0.0; m] };
    if bias.len() != m {
        return Err(Error::ShapeMismatch { node: node.name.clone(), expected: vec![m], got: vec![bias.len()] });
    }
    let (in_sp, out_sp, k_total) = (numel(&spatial), numel(&out_dims), numel(&kernel));
    let (in_st, k_st, out_st) = (strides(&spatial), strides(&kernel), strides(&out_dims));
    let mut terms: Vec<Vec<(u32, f32)>> = vec![Vec::new(); batch * m * out_sp];
    // Scatter: input position p with kernel offset k lands on p·stride + k·dilation − pad.
    for n in 0..batch {
        for cin in 0..c {
            let gi = cin / cg;
            for p in 0..in_sp {
                for k in 0..k_total {
                    let mut o = 0usize;
                    let mut inside = true;
                    for a in 0..nd {
                        let pa = (p / in_st[a]) % spatial[a];
                        let ka = (k / k_st[a]) % kernel[a];
                        let pos = (pa * st[a] + ka * dil[a]) as isize - pb[a] as isize;
                        if pos < 0 || pos >= out_dims[a] as isize {
                            inside = false;
                            break;
                        }
                        o += pos as usize * out_st[a];
                    }
                    if !inside {
                        continue;
                    }
                    for mj in 0..mg {
                        let wv = w[(cin * mg + mj) * k_total + k];
                        if wv != 0.0 {
                            let mo = gi * mg + mj;
                            terms[(n * m + mo) * out_sp + o].push((((n * c + cin) * in_sp + p) as u32, wv));
                        }
                    }
                }
            }
        }
    }
    let out_bias = (0..batch * m * out_sp).map(|i| bias[(i / out_sp) % m]).collect();
    let mut shape = vec![batch, m];
    shape.extend(&out_dims);
    ctx.emit(node, vec![x], shape, LayerKind::Linear { terms, bias: out_bias })
}
