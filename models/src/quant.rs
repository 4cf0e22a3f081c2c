//! Fixed-point quantization and the field encoding of signed integers.
//!
//! # Scales
//! Every real value `x` is represented by an integer `q = round(x · 2^s)` for a power-of-two scale
//! `2^s`. Inputs use `s_in`, weights `s_w`, activations `s_a`. A product of an activation at scale
//! `s_x` and a weight at `s_w` lives at scale `s_x + s_w`; biases are quantized directly at that
//! scale so they add without rescaling.
//!
//! # Rounding
//! * Quantizing a float: round half away from zero (`f64::round`).
//! * Rescaling an accumulator by `2^t`, and dividing a pooling sum by its window size `d`:
//!   `y = floor((acc + floor(d/2)) / d)`, i.e. round half up (towards +∞). The circuit proves this
//!   with `acc + floor(d/2) + d·2^(B-1) = d·(y + 2^(B-1)) + r`, `0 ≤ r < d`, `0 ≤ y + 2^(B-1) < 2^B`.
//!
//! # Value range
//! Every activation tensor is proved to lie in `[-2^(B-1), 2^(B-1))` where `B` is `value_bits`.
//! The reference pass reports an [`Error::Overflow`] where a value would leave that range, exactly
//! where the circuit would be unsatisfiable.
//!
//! # Field encoding
//! A signed integer `v` is the field element `v mod r` (negatives as `r − |v|`), `r` the BN254
//! scalar field modulus. Decoding maps elements above `(r−1)/2` back to negatives.

use halo2_base::halo2_proofs::halo2curves::{bn256::Fr, ff::PrimeField};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Quantization parameters of a model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuantParams {
    /// Input scale: inputs are `round(x · 2^input_scale_bits)`.
    pub input_scale_bits: u32,
    /// Weight scale: weights are `round(w · 2^weight_scale_bits)`.
    pub weight_scale_bits: u32,
    /// Activation (and output) scale.
    pub activation_scale_bits: u32,
    /// `B`: every activation lies in `[-2^(B-1), 2^(B-1))`.
    pub value_bits: u32,
}

impl Default for QuantParams {
    fn default() -> Self {
        Self { input_scale_bits: 7, weight_scale_bits: 7, activation_scale_bits: 7, value_bits: 16 }
    }
}

impl QuantParams {
    /// Largest value bits we accept: keeps every accumulator far below the field modulus.
    pub const MAX_VALUE_BITS: u32 = 40;
    /// Largest scale we accept.
    pub const MAX_SCALE_BITS: u32 = 20;

    /// Checks the parameters are usable.
    pub fn validate(&self) -> Result<()> {
        if !(4..=Self::MAX_VALUE_BITS).contains(&self.value_bits) {
            return Err(Error::InvalidParams(format!(
                "value_bits = {} must be in 4..={}",
                self.value_bits,
                Self::MAX_VALUE_BITS
            )));
        }
        for (name, s) in [
            ("input_scale_bits", self.input_scale_bits),
            ("weight_scale_bits", self.weight_scale_bits),
            ("activation_scale_bits", self.activation_scale_bits),
        ] {
            if s > Self::MAX_SCALE_BITS {
                return Err(Error::InvalidParams(format!("{name} = {s} exceeds {}", Self::MAX_SCALE_BITS)));
            }
        }
        if self.activation_scale_bits > self.weight_scale_bits + self.input_scale_bits {
            return Err(Error::InvalidParams(format!(
                "activation_scale_bits = {} must not exceed weight_scale_bits + input_scale_bits",
                self.activation_scale_bits
            )));
        }
        Ok(())
    }

    /// Smallest representable activation.
    pub fn value_min(&self) -> i64 {
        -(1i64 << (self.value_bits - 1))
    }

    /// Largest representable activation.
    pub fn value_max(&self) -> i64 {
        (1i64 << (self.value_bits - 1)) - 1
    }
}

/// `round(x · 2^bits)`, half away from zero. Returns `None` if the result does not fit an `i64`.
pub fn quantize(x: f64, bits: u32) -> Option<i64> {
    let v = (x * (1u64 << bits) as f64).round();
    (v.is_finite() && v.abs() < QUANTIZE_LIMIT).then_some(v as i64)
}

/// The magnitude a quantized value must stay below to be an `i64` ([`quantize`]; `2^63 ≈ 9.2e18`).
pub const QUANTIZE_LIMIT: f64 = 9.0e18;

/// `q / 2^bits` as a float.
pub fn dequantize(q: i64, bits: u32) -> f64 {
    q as f64 / (1u64 << bits) as f64
}

/// `floor((acc + floor(d/2)) / d)`: the rounding division proved in the circuit.
pub fn div_round(acc: i128, d: i128) -> i128 {
    debug_assert!(d > 0);
    (acc + d / 2).div_euclid(d)
}

/// Encodes a signed integer as a field element (`v mod r`).
pub fn to_field(v: i128) -> Fr {
    let mag = Fr::from_u128(v.unsigned_abs());
    if v < 0 {
        -mag
    } else {
        mag
    }
}

/// Decodes a field element holding a signed integer of magnitude below 2^127.
/// Returns `None` for elements outside that window.
pub fn from_field(f: &Fr) -> Option<i128> {
    let pos = f.to_repr();
    if pos.as_ref()[16..].iter().all(|b| *b == 0) {
        let v = u128::from_le_bytes(pos.as_ref()[..16].try_into().ok()?);
        return i128::try_from(v).ok();
    }
    let neg = (-*f).to_repr();
    if neg.as_ref()[16..].iter().all(|b| *b == 0) {
        let v = u128::from_le_bytes(neg.as_ref()[..16].try_into().ok()?);
        return i128::try_from(v).ok().map(|v| -v);
    }
    None
}

/// A field element as 32 big-endian bytes (the EVM word layout of a public instance).
pub fn field_to_be_bytes(f: &Fr) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(f.to_repr().as_ref());
    out.reverse();
    out
}

/// Parses 32 big-endian bytes as a canonical field element.
pub fn field_from_be_bytes(bytes: &[u8; 32]) -> Option<Fr> {
    let mut le = *bytes;
    le.reverse();
    Option::from(Fr::from_bytes(&le))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantize_rounds_half_away_from_zero() {
        let cases = [
            (0.5 / 128.0, 7, 1),
            (-0.5 / 128.0, 7, -1),
            (0.49 / 128.0, 7, 0),
            (1.0, 4, 16),
            (-1.0, 7, -128),
            (0.3, 7, 38),
        ];
        for (x, bits, want) in cases {
            assert_eq!(quantize(x, bits), Some(want), "quantize({x}, {bits})");
        }
        assert_eq!(quantize(f64::NAN, 7), None);
        assert_eq!(quantize(1e300, 7), None);
    }

    #[test]
    fn div_round_rounds_half_up() {
        let cases = [
            (7, 2, 4),
            (6, 4, 2),
            (-6, 4, -1),
            (-7, 4, -2),
            (-5, 2, -2),
            (5, 2, 3),
            (0, 128, 0),
            (63, 128, 0),
            (64, 128, 1),
            (-64, 128, 0),
            (-65, 128, -1),
            (9, 3, 3),
            (10, 3, 3),
            (11, 3, 4),
        ];
        for (acc, d, want) in cases {
            assert_eq!(div_round(acc, d), want, "div_round({acc}, {d})");
        }
    }

    #[test]
    fn field_encoding_round_trips() {
        for v in [0i128, 1, -1, 127, -128, 1 << 40, -(1 << 40), i64::MAX as i128, i64::MIN as i128] {
            let f = to_field(v);
            assert_eq!(from_field(&f), Some(v));
            let be = field_to_be_bytes(&f);
            assert_eq!(field_from_be_bytes(&be), Some(f));
        }
        assert_eq!(field_to_be_bytes(&to_field(1))[31], 1);
        // -1 is r - 1, whose top byte is 0x30.
        assert_eq!(field_to_be_bytes(&to_field(-1))[0], 0x30);
    }
}
