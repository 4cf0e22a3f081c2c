//! Element-wise functions proved by lookup tables, and their error bounds.
//!
//! A non-linear function `f` of one activation `x` (at scale `2^s_x`) is proved by a lookup into a
//! table of pairs `(u, round(f(u / 2^t) · 2^s_out))` for every integer `u` in `[lo, hi]`:
//!
//! 1. **rescale** the input to the table's input scale `t ≤ s_x`: `u = div_round(x, 2^(s_x − t))`
//!    (the circuit's rounding division; no-op when `t = s_x`);
//! 2. **clamp** `u` to `[lo, hi]` (only on the sides the interval bound of `x` can cross);
//! 3. **look up** `(u, y)` in the table, which lives in the circuit's own fixed columns
//!    ([`crate::circuit::lookup`]), tagged per table so several functions share the columns.
//!
//! The reference pass ([`FunctionTable::eval`]) and the circuit read the same `values`, which are
//! stored in the quantized model, so the verifying key pins them like the weights. The float math
//! uses `libm` (pure Rust), so a table is the same on every machine.
//!
//! # Domains
//! * Functions with a finite limit on a side (Sigmoid, Tanh, Erf; the tails below; Exp at −∞) are
//!   clamped where they are within a quarter of an output LSB of the limit.
//! * Functions without one (Exp at +∞, Log, Pow) end at the sound interval bound of their input
//!   over the registered input range (rounded out to a power of two, so that similar layers share a
//!   table), and Exp also where its output leaves the value range. The domain does not otherwise
//!   depend on the input bound: every layer of a function at the same scales shares one table. Log and
//!   Pow start at the smallest positive table input (`1/2^t`): an input below it (NaN or −∞ in
//!   floats for non-positive ones) reads `f(1/2^t)`, outside the error bound.
//! * Functions linear at +∞ (GELU, Softplus, ELU, SELU, CELU) are split `f(x) = c·relu(x) + g(x)`
//!   with `g` saturating on both sides; only `g` is a table ([`Func`]'s `*Tail` variants).
//!
//! A table has at most [`MAX_TABLE_ROWS`] entries: the input scale `t` is the largest (at most
//! `s_x`) that fits the domain.
//!
//! # Error bound
//! For an input `x` in the domain, `|y/2^s_out − f(x/2^s_x)| ≤ 2^-(s_out+1) + L·2^-(t+1)` (output
//! rounding, plus input rounding when `t < s_x`, with `L` the largest slope of `f` on the domain,
//! measured at 8 points per table step); outside the domain add the saturation error
//! `|f(x) − f(edge)|`, at most a quarter LSB for a saturating side. [`FunctionTable::error_bound`]
//! returns the in-domain bound plus the saturating sides' allowance.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Most entries of one table (the circuit needs `2^k` rows above all its tables' entries).
pub const MAX_TABLE_ROWS: usize = 4096;

/// An element-wise function proved by a lookup table.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Func {
    /// `1 / (1 + e^-x)`.
    Sigmoid,
    /// `tanh x`.
    Tanh,
    /// The error function.
    Erf,
    /// `e^x`.
    Exp,
    /// `ln x` (`x > 0`).
    Log,
    /// `x^p` for a constant `p` (`x > 0`).
    Pow { p: f32 },
    /// `softplus(x) − relu(x) = ln(1 + e^-|x|)`.
    SoftplusTail,
    /// `gelu(x) − relu(x)` with `gelu(x) = x·Φ(x)` (exact, by `erf`).
    GeluTail,
    /// `gelu(x) − relu(x)` with the tanh approximation of `Φ`.
    GeluTanhTail,
    /// `elu(x) − relu(x)` scaled by `gamma`: `gamma·alpha·(e^x − 1)` for `x < 0`, else 0 (ELU with
    /// `gamma = 1`, SELU otherwise).
    EluTail { alpha: f32, gamma: f32 },
    /// `celu(x) − relu(x)`: `alpha·(e^(x/alpha) − 1)` for `x < 0`, else 0.
    CeluTail { alpha: f32 },
}

/// Quarter-LSB limit finding: the farthest a saturating side is searched, in real units.
const MAX_SATURATION: f64 = 64.0;

impl Func {
    /// `f(x)` in `f64` (pure Rust `libm`, identical on every machine).
    pub fn eval(self, x: f64) -> f64 {
        match self {
            Func::Sigmoid => 1.0 / (1.0 + libm::exp(-x)),
            Func::Tanh => libm::tanh(x),
            Func::Erf => libm::erf(x),
            Func::Exp => libm::exp(x),
            Func::Log => libm::log(x),
            Func::Pow { p } => libm::pow(x, p as f64),
            Func::SoftplusTail => libm::log1p(libm::exp(-x.abs())),
            Func::GeluTail => 0.5 * x * (1.0 + libm::erf(x / std::f64::consts::SQRT_2)) - x.max(0.0),
            Func::GeluTanhTail => {
                let c = (2.0 / std::f64::consts::PI).sqrt();
                0.5 * x * (1.0 + libm::tanh(c * (x + 0.044715 * x * x * x))) - x.max(0.0)
            }
            Func::EluTail { alpha, gamma } => {
                if x < 0.0 {
                    gamma as f64 * alpha as f64 * libm::expm1(x)
                } else {
                    0.0
                }
            }
            Func::CeluTail { alpha } => {
                if x < 0.0 {
                    alpha as f64 * libm::expm1(x / alpha as f64)
                } else {
                    0.0
                }
            }
        }
    }

    /// Whether the function has a finite limit at −∞ and at +∞ (its input is clamped there; on
    /// a side without one, an input outside the table is an error).
    pub fn saturates(self) -> (bool, bool) {
        let (lo, hi) = self.limits();
        (lo.is_some(), hi.is_some())
    }

    /// The limits at −∞ and +∞ where finite.
    fn limits(self) -> (Option<f64>, Option<f64>) {
        match self {
            Func::Sigmoid => (Some(0.0), Some(1.0)),
            Func::Tanh | Func::Erf => (Some(-1.0), Some(1.0)),
            Func::Exp => (Some(0.0), None),
            Func::Log | Func::Pow { .. } => (None, None),
            Func::SoftplusTail | Func::GeluTail | Func::GeluTanhTail => (Some(0.0), Some(0.0)),
            Func::EluTail { alpha, gamma } => (Some(-(alpha as f64) * gamma as f64), Some(0.0)),
            Func::CeluTail { alpha } => (Some(-(alpha as f64)), Some(0.0)),
        }
    }

    /// The smallest table input (in table units) where the function is defined: 1 (positive
    /// inputs) for Log and negative powers, 0 for fractional positive powers, none otherwise.
    fn min_input(self) -> Option<i64> {
        match self {
            Func::Log => Some(1),
            Func::Pow { p } if p <= 0.0 => Some(1),
            Func::Pow { p } if p.fract() != 0.0 => Some(0),
            _ => None,
        }
    }

    /// Name for messages and the model card.
    pub fn name(self) -> String {
        match self {
            Func::Sigmoid => "Sigmoid".into(),
            Func::Tanh => "Tanh".into(),
            Func::Erf => "Erf".into(),
            Func::Exp => "Exp".into(),
            Func::Log => "Log".into(),
            Func::Pow { p } => format!("Pow(x, {p})"),
            Func::SoftplusTail => "Softplus − Relu".into(),
            Func::GeluTail => "Gelu − Relu".into(),
            Func::GeluTanhTail => "Gelu(tanh) − Relu".into(),
            Func::EluTail { alpha, gamma: 1.0 } => format!("Elu(α={alpha}) − Relu"),
            Func::EluTail { alpha, gamma } => format!("Selu(α={alpha}, γ={gamma}) − γ·Relu"),
            Func::CeluTail { alpha } => format!("Celu(α={alpha}) − Relu"),
        }
    }

    /// Smallest `d ≥ 1/16` (step 1/16) with `|f(side·d') − limit| ≤ tol` for every `d' ≥ d`
    /// (checked up to [`MAX_SATURATION`]); the functions here are monotone in their tails.
    fn saturation(self, limit: f64, side: f64, tol: f64) -> f64 {
        let mut d = MAX_SATURATION;
        while d > 1.0 / 16.0 && (self.eval(side * (d - 1.0 / 16.0)) - limit).abs() <= tol {
            d -= 1.0 / 16.0;
        }
        d
    }
}

/// A lookup table of an element-wise function, as stored in the quantized model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FunctionTable {
    /// The function.
    pub func: Func,
    /// Scale (bits) of the table's input `u`.
    pub in_scale_bits: u32,
    /// Scale (bits) of the output.
    pub out_scale_bits: u32,
    /// First table input (at scale `2^in_scale_bits`).
    pub lo: i64,
    /// `values[i] = round(f((lo + i) / 2^t) · 2^s_out)`, half away from zero.
    pub values: Vec<i64>,
    /// Documented error bound (real units), see the module docs.
    pub error_bound: f64,
    /// The domain's upper edge is a cap the composite guarantees (Softmax's `x − max ≤ 0`): inputs
    /// above it, which interval bounds cannot exclude, are clamped rather than refused.
    #[serde(default)]
    pub capped: bool,
}

impl FunctionTable {
    /// Builds the table of `func` for an input at scale `2^s_x` whose values lie in the sound
    /// interval `bound` (integers at `s_x`), with outputs at `2^s_out` that must fit in `value_bits`.
    /// `max_input` caps the domain above (real units; Softmax's `exp(x − max)` has `x − max ≤ 0`).
    ///
    /// # Errors
    /// [`Error::InvalidGraph`] (naming `node`) when the output at the domain's edge does not fit
    /// `value_bits`.
    pub fn build(
        func: Func,
        s_x: u32,
        s_out: u32,
        bound: (i128, i128),
        max_input: Option<f64>,
        value_bits: u32,
        node: &str,
    ) -> Result<Self> {
        let unit = (1u64 << s_x) as f64;
        let (bl, bh) = (bound.0 as f64 / unit, bound.1 as f64 / unit);
        let tol = 0.25 / (1u64 << s_out) as f64;
        let vmax = ((1i128 << (value_bits - 1)) - 1) as f64 / (1u64 << s_out) as f64;
        let (lim_lo, lim_hi) = func.limits();
        // Sides without a limit end at the input bound, rounded out to a power of two (in real
        // units) so that layers with similar bounds share one table.
        let pow2 = |v: f64| if v <= 0.0 { v } else { 2f64.powi(v.log2().ceil() as i32) };
        let mut a = lim_lo.map_or(-pow2(-bl), |l| -func.saturation(l, -1.0, tol));
        let mut b = lim_hi.map_or(pow2(bh), |l| func.saturation(l, 1.0, tol));
        if func == Func::Exp {
            // The largest input whose output still fits the value range.
            b = b.min(libm::log(vmax));
        }
        if let Some(m) = max_input {
            b = b.min(m);
        }
        if a > b {
            // Every input is clamped to one edge.
            let edge = if bh < a { a } else { b };
            (a, b) = (edge, edge);
        }
        let width = b - a;
        let mut t = s_x;
        while t > 0 && width * (1u64 << t) as f64 + 1.0 > MAX_TABLE_ROWS as f64 {
            t -= 1;
        }
        let scale = (1u64 << t) as f64;
        let mut lo = (a * scale).ceil() as i64;
        let mut hi = (b * scale).floor() as i64;
        if let Some(m) = func.min_input() {
            lo = lo.max(m);
            hi = hi.max(lo);
        }
        hi = hi.min(lo + MAX_TABLE_ROWS as i64 - 1);
        if hi < lo {
            hi = lo;
        }
        let out_scale = (1u64 << s_out) as f64;
        // Values are clamped into the value range (a saturating function at its limit can round one
        // LSB past it); the clamp is added to the error bound. Far outside is an error.
        let (vmin, vmax_q) = (-(1i128 << (value_bits - 1)) as f64, ((1i128 << (value_bits - 1)) - 1) as f64);
        let mut clamped = 0.0f64;
        let values = (lo..=hi)
            .map(|u| {
                let y = (func.eval(u as f64 / scale) * out_scale).round();
                if !y.is_finite() || y < vmin - 1.0 || y > vmax_q + 1.0 {
                    return Err(Error::InvalidGraph {
                        node: node.into(),
                        reason: format!(
                            "{} of {} (table input scale 2^{t}) is {} at output scale 2^{s_out}: outside the \
                             {value_bits}-bit value range",
                            func.name(),
                            u as f64 / scale,
                            y
                        ),
                    });
                }
                let c = y.clamp(vmin, vmax_q);
                clamped = clamped.max((c - y).abs());
                Ok(c as i64)
            })
            .collect::<Result<Vec<_>>>()?;
        // Largest slope on the domain, at 8 points per table step (0 when t = s_x: no input rounding).
        let slope = if t == s_x {
            0.0
        } else {
            let step = 1.0 / (8.0 * scale);
            let (x0, x1) = (lo as f64 / scale, hi as f64 / scale);
            let n = ((x1 - x0) / step).ceil() as usize;
            (0..n)
                .map(|i| {
                    let x = x0 + i as f64 * step;
                    ((func.eval(x + step) - func.eval(x)) / step).abs()
                })
                .fold(0.0, f64::max)
        };
        let saturating = if lim_lo.is_some() || lim_hi.is_some() { tol } else { 0.0 };
        let error_bound = (0.5 + clamped) / out_scale + slope * 0.5 / scale + saturating;
        Ok(Self { func, in_scale_bits: t, out_scale_bits: s_out, lo, values, error_bound, capped: max_input.is_some() })
    }

    /// Last table input.
    pub fn hi(&self) -> i64 {
        self.lo + self.values.len() as i64 - 1
    }

    /// Checks that table input `u` is in the domain or beyond a saturating edge.
    ///
    /// # Errors
    /// [`Error::OutsideDomain`] naming `node`.
    pub fn check(&self, u: i128, node: &str) -> Result<()> {
        let (sat_lo, sat_hi) = self.func.saturates();
        if (u < self.lo as i128 && !sat_lo) || (u > self.hi() as i128 && !sat_hi && !self.capped) {
            let scale = (1u64 << self.in_scale_bits) as f64;
            return Err(Error::OutsideDomain {
                node: node.into(),
                function: self.func.name(),
                value: u as f64 / scale,
                lo: self.lo as f64 / scale,
                hi: self.hi() as f64 / scale,
            });
        }
        Ok(())
    }

    /// The output for a table input `u` (clamped to the domain).
    pub fn eval(&self, u: i64) -> i64 {
        self.values[(u.clamp(self.lo, self.hi()) - self.lo) as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::div_round;

    fn all() -> Vec<Func> {
        vec![
            Func::Sigmoid,
            Func::Tanh,
            Func::Erf,
            Func::Exp,
            Func::Log,
            Func::Pow { p: 1.5 },
            Func::Pow { p: -0.5 },
            Func::SoftplusTail,
            Func::GeluTail,
            Func::GeluTanhTail,
            Func::EluTail { alpha: 1.0, gamma: 1.0 },
            Func::EluTail { alpha: 1.673_263_2, gamma: 1.050_701 },
            Func::CeluTail { alpha: 1.5 },
        ]
    }

    /// The quantized function (rescale, clamp, look up) against the real one, at every input
    /// representable at `s_x` over the bound: within the documented bound inside the domain, and
    /// (saturating sides) beyond it.
    #[test]
    fn every_table_is_within_its_documented_bound_over_the_whole_domain() {
        for func in all() {
            for (s_x, s_out, range) in [(10u32, 10u32, 8.0f64), (7, 12, 30.0), (12, 8, 4.0), (4, 10, 200.0)] {
                let lo_real = if func.min_input().is_some() { 0.0 } else { -range };
                let bound = ((lo_real * (1u64 << s_x) as f64) as i128, (range * (1u64 << s_x) as f64) as i128);
                let value_bits = 40;
                let table = match FunctionTable::build(func, s_x, s_out, bound, None, value_bits, "n") {
                    Ok(t) => t,
                    Err(e) => panic!("{}: {e}", func.name()),
                };
                assert!(table.values.len() <= MAX_TABLE_ROWS);
                let shift = s_x - table.in_scale_bits;
                let scale = (1u64 << table.in_scale_bits) as f64;
                let (dlo, dhi) = (table.lo as f64 / scale, table.hi() as f64 / scale);
                let step = ((bound.1 - bound.0) / 20_000).max(1);
                let mut x = bound.0;
                while x <= bound.1 {
                    let u = div_round(x, 1i128 << shift) as i64;
                    let got = table.eval(u) as f64 / (1u64 << s_out) as f64;
                    let real = x as f64 / (1u64 << s_x) as f64;
                    let want = func.eval(real);
                    // Inside the domain (after rounding), or on a saturating side: the documented
                    // bound. (Exp above its value range, Log/Pow at non-positive inputs are clamped.)
                    // (Log and Pow: below the first table input the slope is unbounded; documented.)
                    let first = if func.min_input().is_some() { dlo } else { dlo - 0.5 / scale };
                    let inside = (first..=dhi + 0.5 / scale).contains(&real);
                    let (ll, lh) = func.limits();
                    let saturating = (real < dlo && ll.is_some()) || (real > dhi && lh.is_some());
                    if inside || saturating {
                        assert!(
                            (got - want).abs() <= table.error_bound * 1.000_001 + 1e-12,
                            "{} at {real} (s_x {s_x}, s_out {s_out}, t {}): {got} vs {want}, bound {}",
                            func.name(),
                            table.in_scale_bits,
                            table.error_bound
                        );
                    }
                    x += step;
                }
            }
        }
    }

    #[test]
    fn tables_are_shared_and_capped() {
        // Saturating: the same table whatever the input bound.
        let t = FunctionTable::build(Func::Sigmoid, 10, 10, (-512, 512), None, 24, "n").unwrap();
        let u = FunctionTable::build(Func::Sigmoid, 10, 10, (-90_000, 3_000), None, 24, "n").unwrap();
        assert_eq!(t, u);
        assert!(t.values.len() <= MAX_TABLE_ROWS);
        // Log: the bound rounded out to a power of two.
        let l = FunctionTable::build(Func::Log, 8, 10, (0, 5 << 8), None, 24, "n").unwrap();
        let m = FunctionTable::build(Func::Log, 8, 10, (0, 7 << 8), None, 24, "n").unwrap();
        assert_eq!(l, m);
        assert_eq!(l.hi() as f64 / (1u64 << l.in_scale_bits) as f64, 8.0);
        // Softmax's exp: capped at 0.
        let t = FunctionTable::build(Func::Exp, 8, 10, (-4096, 4096), Some(0.0), 24, "n").unwrap();
        assert_eq!(t.hi(), 0);
        assert_eq!(t.eval(0), 1024);
    }

    #[test]
    fn an_output_outside_the_value_range_is_named() {
        let e = FunctionTable::build(Func::Pow { p: 3.0 }, 4, 10, (0, 16 << 12), None, 16, "cube").unwrap_err();
        assert!(e.to_string().contains("cube"), "{e}");
    }
}
