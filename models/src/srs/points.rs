//! Curve points as powers-of-tau files store them.
//!
//! Both snarkjs `.ptau` files and halo2's raw `ParamsKZG` files store a base-field element of BN254
//! as 32 little-endian bytes of its **Montgomery form** `m = a · R mod q` with `R = 2^256`, so the
//! value is `a = m · R⁻¹ mod q`. A G1 point is `x ‖ y` (64 bytes); a G2 point is
//! `x.c0 ‖ x.c1 ‖ y.c0 ‖ y.c1` (128 bytes) with `x = x.c0 + x.c1·u` in `Fq2 = Fq[u]/(u² + 1)`.
//!
//! Decoding rejects a stored `m ≥ q` (an encoding no honest writer produces) and points off the
//! curve; G2 points are also checked to lie in the order-r subgroup (G2 has a cofactor, G1 has none).

use halo2_base::halo2_proofs::{
    arithmetic::{CurveAffine, Field},
    halo2curves::{
        bn256::{Fq, Fq2, Fr, G1Affine, G2Affine, G2},
        ff::PrimeField,
        group::Group,
    },
};

use super::SrsError;

/// Bytes of one stored G1 point.
pub(crate) const G1_BYTES: usize = 64;
/// Bytes of one stored G2 point.
pub(crate) const G2_BYTES: usize = 128;

/// Converts Montgomery-form field elements: holds `R⁻¹ mod q`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Montgomery {
    r_inv: Fq,
}

impl Montgomery {
    pub(crate) fn new() -> Self {
        // R = 2^256 mod q, computed in the field rather than written as a constant.
        let r = Fq::from(2u64).pow_vartime([256u64]);
        Self { r_inv: r.invert().expect("2^256 is a unit mod q") }
    }

    /// `m · R⁻¹` for the 32 little-endian bytes of `m`, or `None` if `m ≥ q`.
    fn fq(&self, bytes: &[u8]) -> Option<Fq> {
        let repr: [u8; 32] = bytes.try_into().expect("32 bytes");
        Option::<Fq>::from(Fq::from_repr(repr)).map(|m| m * self.r_inv)
    }

    /// Decodes the G1 point at `bytes[..64]`; `what` and `index` name it in errors.
    pub(crate) fn g1(&self, bytes: &[u8], what: &'static str, index: usize) -> Result<G1Affine, SrsError> {
        let coord = |at: usize| self.fq(&bytes[at..at + 32]).ok_or(SrsError::NonCanonicalCoordinate { what, index });
        let (x, y) = (coord(0)?, coord(32)?);
        Option::from(G1Affine::from_xy(x, y)).ok_or(SrsError::NotOnCurve { what, index })
    }

    /// Decodes the G2 point at `bytes[..128]` and checks it is in the prime-order subgroup.
    pub(crate) fn g2(&self, bytes: &[u8], what: &'static str, index: usize) -> Result<G2Affine, SrsError> {
        let coord = |at: usize| self.fq(&bytes[at..at + 32]).ok_or(SrsError::NonCanonicalCoordinate { what, index });
        let x = Fq2 { c0: coord(0)?, c1: coord(32)? };
        let y = Fq2 { c0: coord(64)?, c1: coord(96)? };
        let point: G2Affine = Option::from(G2Affine::from_xy(x, y)).ok_or(SrsError::NotOnCurve { what, index })?;
        // r · P = (r − 1) · P + P, since r itself is 0 as a scalar.
        let r_times_p = G2::from(point) * (-Fr::ONE) + G2::from(point);
        if !bool::from(r_times_p.is_identity()) {
            return Err(SrsError::NotInSubgroup { what, index });
        }
        Ok(point)
    }
}

#[cfg(test)]
mod tests {
    use halo2_base::halo2_proofs::{halo2curves::serde::SerdeObject, SerdeCurveAffine, SerdeFormat};

    use super::*;

    /// Our explicit decoding agrees with halo2curves' own raw (Montgomery) encoding.
    #[test]
    fn decodes_halo2_raw_points() {
        let m = Montgomery::new();
        let p = (G1Affine::generator() * Fr::from(12345u64)).into();
        let mut bytes = Vec::new();
        SerdeCurveAffine::write(&p, &mut bytes, SerdeFormat::RawBytes).unwrap();
        assert_eq!(m.g1(&bytes, "test", 0).unwrap(), p);
        let q: G2Affine = (G2Affine::generator() * Fr::from(777u64)).into();
        assert_eq!(m.g2(&q.to_raw_bytes(), "test", 0).unwrap(), q);
    }

    #[test]
    fn rejects_non_canonical_and_off_curve_points() {
        let m = Montgomery::new();
        let mut bytes = G1Affine::generator().to_raw_bytes();
        bytes[40] ^= 1;
        assert!(matches!(m.g1(&bytes, "test", 3), Err(SrsError::NotOnCurve { index: 3, .. })));
        let mut bytes = G1Affine::generator().to_raw_bytes();
        bytes[..32].fill(0xff);
        assert!(matches!(m.g1(&bytes, "test", 0), Err(SrsError::NonCanonicalCoordinate { .. })));
    }
}
