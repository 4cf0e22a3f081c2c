//! Calibration: choosing the fixed-point scales and value bits of a model.
//!
//! For each candidate scale `s` (weights and activations at `2^s`; inputs too unless fixed), the
//! model is quantized, its value bits are sized from the sound interval bound over the whole
//! registered input range ([`QuantModel::bound`]), and its dequantized output is compared with
//! the float model (tract) on a calibration set, or on seeded uniform samples of the input range.
//! The smallest scale whose largest absolute error is within tolerance wins: smaller scales mean
//! fewer value bits, hence fewer range-check cells and faster proving. If none is within
//! tolerance, the most accurate one is taken and the report says so.
//!
//! When no input range is given and even the smallest scale needs more than
//! [`CalibrationOptions::max_value_bits`], the default range is halved until it fits, and the
//! narrowed range is reported: a request outside it is refused up front rather than paid for
//! and never proved.

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
    /// Largest acceptable absolute output error, relative to the largest float output magnitude.
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
            tolerance: 0.01,
            input_range: None,
            samples: None,
        }
    }
}

/// The default real-valued input range when none is given.
pub const DEFAULT_INPUT_RANGE: (f64, f64) = (-256.0, 255.0);
/// Number of seeded samples when no calibration set is given.
pub const DEFAULT_SAMPLES: usize = 16;

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
    /// The tolerance (absolute) the error was held to.
    pub tolerance_abs: f64,
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
) -> Result<OutputError> {
    let bits = model.output_scale_bits();
    let (mut max_abs, mut sum, mut count, mut float_max) = (0f64, 0f64, 0usize, 0f64);
    for (x, f) in samples.iter().zip(float_outputs) {
        let q = model.forward(&model.quantize_input(x)?)?;
        for (q, f) in q.iter().zip(f) {
            let e = (dequantize(*q, bits) - *f as f64).abs();
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
    })
}

/// Chooses scales and value bits for `model` (see the module docs).
///
/// # Errors
/// [`Error::InputRangeNotProvable`] when a given input range cannot be proved within
/// `max_value_bits` at any candidate scale; import, quantization and float-evaluation errors.
pub fn calibrate(model: &FloatModel, runner: &FloatRunner, opts: &CalibrationOptions) -> Result<Calibration> {
    let mut range = opts.input_range.unwrap_or(DEFAULT_INPUT_RANGE);
    let mut narrowed = false;
    let max_bits = opts.value_bits.unwrap_or(opts.max_value_bits).min(QuantParams::MAX_VALUE_BITS);
    loop {
        match calibrate_range(model, runner, opts, range, max_bits)? {
            Ok(mut c) => {
                c.narrowed = narrowed;
                return Ok(c);
            }
            Err(err) if opts.input_range.is_none() && range.1 - range.0 > 1.0 / 64.0 => {
                tracing::debug!(%err, "narrowing the default input range");
                range = (range.0 / 2.0, range.1 / 2.0);
                narrowed = true;
            }
            Err(err) => return Err(err),
        }
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
        _ => (
            samples_of(model, range, DEFAULT_SAMPLES),
            format!("{DEFAULT_SAMPLES} seeded uniform samples of the input range"),
        ),
    };
    let samples: Vec<Vec<f64>> =
        samples.iter().map(|x| x.iter().map(|v| v.clamp(range.0, range.1)).collect()).collect();
    let float_outputs = samples
        .iter()
        .map(|x| runner.run(&x.iter().map(|v| *v as f32).collect::<Vec<_>>()))
        .collect::<Result<Vec<_>>>()?;
    let float_max = float_outputs.iter().flatten().fold(0f64, |m, v| m.max((*v as f64).abs()));
    let tolerance_abs = opts.tolerance * float_max.max(1e-3);

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
            weight_scale_bits: opts.weight_scale_bits.unwrap_or(s),
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
        let bound = quant.check_bound()?;
        let error = output_error(&quant, &samples, &float_outputs, &source)?;
        let within = error.max_abs <= tolerance_abs;
        let c = Calibration {
            params,
            input_range,
            input_range_real: range,
            narrowed: false,
            bound,
            error,
            tolerance_abs,
            within_tolerance: within,
        };
        if within {
            return Ok(Ok(c));
        }
        if best.as_ref().is_none_or(|b| c.error.max_abs < b.error.max_abs) {
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
