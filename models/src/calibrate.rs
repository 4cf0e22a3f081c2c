//! Calibration: choosing the fixed-point scales and value bits of a model.
//!
//! For each candidate scale `s` (weights and activations at `2^s`; inputs too unless fixed), the
//! model is quantized, its value bits are sized from the sound interval bound over the whole
//! registered input range ([`QuantModel::bound`]), and its dequantized output is compared with
//! the float model (tract) on a calibration set, or on seeded uniform samples of `[-1, 1]` (clipped
//! to the input range; most models take normalized inputs).
//! The smallest scale whose every output is within tolerance wins: smaller scales mean
//! fewer value bits, hence fewer range-check cells and faster proving. If none is within
//! tolerance, the most accurate one is taken and the report says so.
//!
//! When no input range is given and no scale is within tolerance inside
//! [`CalibrationOptions::max_value_bits`] over the default range, the range is halved (down to
//! about `[-1, 1]`) until one is, and the narrowed range is reported: a request outside it is
//! refused up front rather than paid for and never proved.

use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::{
    error::{Error, Result},
    eval::FloatRunner,
    graph::{QuantModel, ValueBound},
    ir::{FloatModel, InputKind},
    quant::{dequantize, quantize, QuantParams},
};

/// What calibration may choose, and what it must keep.
#[derive(Clone, Debug)]
pub struct CalibrationOptions {
    /// Fixed input scale (bits), or `None` to calibrate it with the others.
    pub input_scale_bits: Option<u32>,
    /// Fixed weight scale, or `None`.
    pub weight_scale_bits: Option<u32>,
    /// Fixed activation scale, or `None`.
    pub activation_scale_bits: Option<u32>,
    /// Fixed value bits, or `None` to size them from the bound.
    pub value_bits: Option<u32>,
    /// Candidate scales (bits), tried in increasing order.
    pub scales: std::ops::RangeInclusive<u32>,
    /// Largest value bits calibration may choose.
    pub max_value_bits: u32,
    /// Relative tolerance `t`: every output `q` of every sample must satisfy
    /// `|q − f| ≤ t·|f| + (t/10)·mean|f|` against the float output `f`.
    pub tolerance: f64,
    /// Real-valued input range `[min, max]`; `None` means the default, which may be narrowed.
    pub input_range: Option<(f64, f64)>,
    /// Calibration inputs (flat, all inputs concatenated); `None`: seeded samples of the range.
    pub samples: Option<Vec<Vec<f64>>>,
}

impl Default for CalibrationOptions {
    fn default() -> Self {
        Self {
            input_scale_bits: None,
            weight_scale_bits: None,
            activation_scale_bits: None,
            value_bits: None,
            scales: 4..=16,
            max_value_bits: 32,
            tolerance: 0.005,
            input_range: None,
            samples: None,
        }
    }
}

/// The default real-valued input range when none is given.
pub const DEFAULT_INPUT_RANGE: (f64, f64) = (-256.0, 255.0);
/// How much finer than the activations calibration quantizes weights (bits).
pub const WEIGHT_EXTRA_BITS: u32 = 6;
/// Number of seeded samples when no calibration set is given.
pub const DEFAULT_SAMPLES: usize = 64;

/// Output error of the quantized model against the float model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutputError {
    /// Largest absolute error over all outputs and samples.
    pub max_abs: f64,
    /// Mean absolute error.
    pub mean_abs: f64,
    /// Largest float output magnitude (the tolerance is relative to it).
    pub float_max_abs: f64,
    /// Number of samples.
    pub samples: usize,
    /// Where the samples came from.
    pub source: String,
    /// Largest ratio of an output's error to its allowance (`≤ 1` is within tolerance).
    pub worst_ratio: f64,
}

/// What calibration chose, and why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// The chosen parameters.
    pub params: QuantParams,
    /// The quantized input range every request must lie in (inclusive).
    pub input_range: (i64, i64),
    /// The real-valued input range it stands for.
    pub input_range_real: (f64, f64),
    /// Whether the default range had to be narrowed to fit the value bits.
    pub narrowed: bool,
    /// The largest value any input in range can produce.
    pub bound: ValueBound,
    /// Output error on the calibration samples.
    pub error: OutputError,
    /// The tolerance: relative part `t` and absolute part `(t/10)·mean|f|`.
    pub tolerance: (f64, f64),
    /// Whether the error is within tolerance.
    pub within_tolerance: bool,
}

/// Quantized range of every input value for a real range, at the real inputs' scale.
pub fn quantized_range(model: &FloatModel, range: (f64, f64), input_scale_bits: u32) -> Result<(i64, i64)> {
    let q = |x: f64| {
        quantize(x, input_scale_bits)
            .ok_or_else(|| Error::InvalidParams(format!("input bound {x} is not representable")))
    };
    let mut lo = q(range.0)?;
    let mut hi = q(range.1)?;
    // Integer and boolean inputs are taken at scale 2^0.
    for i in &model.inputs {
        if i.kind != InputKind::Real {
            lo = lo.min(range.0.floor() as i64);
            hi = hi.max(range.1.ceil() as i64);
        }
    }
    if !model.inputs.iter().any(|i| i.kind == InputKind::Real) {
        (lo, hi) = (range.0.floor() as i64, range.1.ceil() as i64);
    }
    Ok((lo, hi))
}

fn samples_of(model: &FloatModel, range: (f64, f64), n: usize) -> Vec<Vec<f64>> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0x5ca1e);
    let len: usize = model.inputs.iter().map(|i| model.numel(i.tensor)).sum();
    (0..n)
        .map(|_| {
            let mut v = Vec::with_capacity(len);
            for i in &model.inputs {
                for _ in 0..model.numel(i.tensor) {
                    v.push(match i.kind {
                        InputKind::Real => rng.gen_range(range.0..=range.1),
                        InputKind::Integer => rng.gen_range(range.0.ceil() as i64..=range.1.floor() as i64) as f64,
                        InputKind::Bool => f64::from(rng.gen_bool(0.5)),
                    });
                }
            }
            v
        })
        .collect()
}

/// Output error of `model` against the float outputs on `samples`.
pub fn output_error(
    model: &QuantModel,
    samples: &[Vec<f64>],
    float_outputs: &[Vec<f32>],
    source: &str,
    (rel, abs): (f64, f64),
) -> Result<OutputError> {
    let bits = model.output_scale_bits();
    let (mut max_abs, mut sum, mut count, mut float_max) = (0f64, 0f64, 0usize, 0f64);
    let mut worst_ratio = 0f64;
    for (x, f) in samples.iter().zip(float_outputs) {
        let q = model.forward(&model.quantize_input(x)?)?;
        for (q, f) in q.iter().zip(f) {
            let e = (dequantize(*q, bits) - *f as f64).abs();
            worst_ratio = worst_ratio.max(e / (rel * (*f as f64).abs() + abs));
            max_abs = max_abs.max(e);
            sum += e;
            count += 1;
            float_max = float_max.max((*f as f64).abs());
        }
    }
    Ok(OutputError {
        max_abs,
        mean_abs: sum / count.max(1) as f64,
        float_max_abs: float_max,
        samples: samples.len(),
        source: source.into(),
        worst_ratio,
    })
}

/// Checks a real-valued input range is a finite interval with `min < max`.
///
/// # Errors
/// [`Error::InvalidInputRange`] otherwise.
pub fn check_input_range((min, max): (f64, f64)) -> Result<()> {
    if min.is_finite() && max.is_finite() && min < max {
        Ok(())
    } else {
        Err(Error::InvalidInputRange { min, max })
    }
}

/// Chooses scales and value bits for `model` (see the module docs).
///
/// # Errors
/// [`Error::InvalidInputRange`] for an input range that is not finite with min < max;
/// [`Error::InputRangeNotProvable`] when a given input range cannot be proved within
/// `max_value_bits` at any candidate scale; import, quantization and float-evaluation errors.
pub fn calibrate(model: &FloatModel, runner: &FloatRunner, opts: &CalibrationOptions) -> Result<Calibration> {
    if let Some(range) = opts.input_range {
        check_input_range(range)?;
    }
    let mut range = opts.input_range.unwrap_or(DEFAULT_INPUT_RANGE);
    let mut narrowed = false;
    let max_bits = opts.value_bits.unwrap_or(opts.max_value_bits).min(QuantParams::MAX_VALUE_BITS);
    let mut best: Option<Calibration> = None;
    loop {
        // The default range may be halved (down to about [-1, 1]) when accuracy or the value bits
        // demand it; an explicit range is kept.
        let can_narrow = opts.input_range.is_none() && range.1 > 1.0;
        match calibrate_range(model, runner, opts, range, max_bits)? {
            Ok(mut c) if c.within_tolerance || !can_narrow => {
                c.narrowed = narrowed;
                if !c.within_tolerance && best.as_ref().is_some_and(|b| b.error.worst_ratio < c.error.worst_ratio) {
                    return Ok(best.expect("checked"));
                }
                return Ok(c);
            }
            Ok(mut c) => {
                c.narrowed = narrowed;
                if best.as_ref().is_none_or(|b| c.error.worst_ratio < b.error.worst_ratio) {
                    best = Some(c);
                }
            }
            Err(err) if !can_narrow => return best.ok_or(err),
            Err(err) => tracing::debug!(%err, "no scale fits the value bits over {range:?}"),
        }
        range = (range.0 / 2.0, range.1 / 2.0);
        narrowed = true;
    }
}

/// One calibration pass over a fixed range: `Ok(Err(_))` when no scale fits the value bits.
fn calibrate_range(
    model: &FloatModel,
    runner: &FloatRunner,
    opts: &CalibrationOptions,
    range: (f64, f64),
    max_bits: u32,
) -> Result<std::result::Result<Calibration, Error>> {
    let (samples, source) = match &opts.samples {
        Some(s) if !s.is_empty() => (s.clone(), format!("{} calibration samples", s.len())),
        _ => {
            // Most models take normalized inputs: calibrate where they usually lie.
            let typical = (range.0.max(-1.0), range.1.min(1.0));
            let (r, what) = if typical.0 < typical.1 {
                (typical, "[-1, 1] ∩ the input range")
            } else {
                (range, "the input range")
            };
            (samples_of(model, r, DEFAULT_SAMPLES), format!("{DEFAULT_SAMPLES} seeded uniform samples of {what}"))
        }
    };
    let samples: Vec<Vec<f64>> =
        samples.iter().map(|x| x.iter().map(|v| v.clamp(range.0, range.1)).collect()).collect();
    let float_outputs = samples
        .iter()
        .map(|x| runner.run(&x.iter().map(|v| *v as f32).collect::<Vec<_>>()))
        .collect::<Result<Vec<_>>>()?;
    if let Some(i) = float_outputs.iter().position(|f| f.iter().any(|v| !v.is_finite())) {
        // Log, Sqrt, Reciprocal... outside their domain: no error can be measured there.
        return Err(Error::InvalidParams(format!(
            "the float model's output is not finite (NaN or ±inf) on calibration sample {i} of {source} over the \
             input range [{}, {}]: pass --calibration-set with inputs the model is defined on, and \
             --input-min/--input-max to match",
            range.0, range.1
        )));
    }
    let count = float_outputs.iter().map(|f| f.len()).sum::<usize>().max(1);
    let float_mean = float_outputs.iter().flatten().map(|v| (*v as f64).abs()).sum::<f64>() / count as f64;
    let tolerance = (opts.tolerance, opts.tolerance / 10.0 * float_mean.max(1e-2));

    let fixed = opts.weight_scale_bits.is_some() && opts.activation_scale_bits.is_some();
    let scales: Vec<u32> = match (fixed, opts.activation_scale_bits) {
        (true, Some(a)) => vec![a],
        _ => opts.scales.clone().collect(),
    };
    let mut best: Option<Calibration> = None;
    let mut first_err = None;
    for s in scales {
        let mut params = QuantParams {
            input_scale_bits: opts.input_scale_bits.unwrap_or(s),
            // Weights are cheap to make precise: products are not range checked, only the
            // rescaled activations are, so a finer weight scale costs a few remainder bits.
            weight_scale_bits: opts
                .weight_scale_bits
                .unwrap_or((s + WEIGHT_EXTRA_BITS).min(QuantParams::MAX_SCALE_BITS)),
            activation_scale_bits: opts.activation_scale_bits.unwrap_or(s),
            value_bits: QuantParams::MAX_VALUE_BITS,
        };
        if params.validate().is_err() {
            continue;
        }
        let input_range = quantized_range(model, range, params.input_scale_bits)?;
        let wide = match QuantModel::quantize(model, params, Some(input_range)) {
            Ok(m) => m,
            Err(e) => {
                first_err.get_or_insert(e);
                continue;
            }
        };
        let bound = wide.bound()?;
        let range_bits = bits_of_range(input_range);
        let needed = bound.required_value_bits.max(range_bits).max(8);
        if needed > max_bits {
            first_err.get_or_insert(Error::InputRangeNotProvable {
                node: bound.node.clone(),
                max_abs: bound.max_abs.clone(),
                bits: max_bits,
                required: needed,
                min: input_range.0,
                max: input_range.1,
            });
            continue;
        }
        params.value_bits = opts.value_bits.unwrap_or(needed);
        let quant = QuantModel::quantize(model, params, Some(input_range))?;
        let bound = match quant.check_bound() {
            Ok(b) => b,
            // At a coarse scale a small positive input can round to 0 (a Log or a divisor): a
            // finer scale may fit.
            Err(e @ (Error::OutsideDomain { .. } | Error::DivisorMayBeZero { .. })) => {
                first_err.get_or_insert(e);
                continue;
            }
            Err(e) => return Err(e),
        };
        let error = output_error(&quant, &samples, &float_outputs, &source, tolerance)?;
        let within = error.worst_ratio <= 1.0;
        let c = Calibration {
            params,
            input_range,
            input_range_real: range,
            narrowed: false,
            bound,
            error,
            tolerance,
            within_tolerance: within,
        };
        if within {
            return Ok(Ok(c));
        }
        // Ties on the worst sample (a flipped tree branch is a whole vote at any scale) go to the
        // smaller mean error.
        let better =
            |b: &Calibration| (c.error.worst_ratio, c.error.mean_abs) < (b.error.worst_ratio, b.error.mean_abs);
        if best.as_ref().is_none_or(better) {
            best = Some(c);
        }
    }
    Ok(best.ok_or_else(|| {
        first_err.unwrap_or_else(|| Error::InvalidParams("no candidate scale is valid for this model".into()))
    }))
}

fn bits_of_range((lo, hi): (i64, i64)) -> u32 {
    let m = (lo as i128).abs().max((hi as i128).abs());
    let mut b = 2;
    while (1i128 << (b - 1)) <= m {
        b += 1;
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_ranges_must_be_finite_with_min_below_max() {
        for (range, ok) in [
            ((0.0, 1.0), true),
            ((-256.0, 255.0), true),
            ((1.0, 0.0), false),
            ((1.0, 1.0), false),
            ((f64::NAN, 1.0), false),
            ((0.0, f64::NAN), false),
            ((f64::NEG_INFINITY, 0.0), false),
            ((0.0, f64::INFINITY), false),
        ] {
            match check_input_range(range) {
                Ok(()) => assert!(ok, "{range:?} was accepted"),
                Err(Error::InvalidInputRange { .. }) => assert!(!ok, "{range:?} was refused"),
                Err(e) => panic!("{range:?}: {e}"),
            }
        }
    }
}
