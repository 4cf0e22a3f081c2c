//! Native verification with only what a KZG verifier uses of the SRS: `[1]G1`, `G2` and `[τ]G2`.
//!
//! A SHPLONK verifier never commits to anything with the SRS (instances are evaluated, not
//! committed: halo2's `QUERY_INSTANCE` is false for KZG), so of the `2^k` powers it reads only
//! `g[0]`, and the final pairing check uses `G2` and `[τ]G2`; the circuit size enters as `n = 2^k`
//! alone. [`VerifierSrs::params`] therefore builds halo2 `ParamsKZG` holding just those three
//! points, and verification takes milliseconds at any `k` instead of loading or deriving the whole
//! SRS.
//!
//! Where the three points come from:
//!
//! * a dev SRS: `[τ]G2` is derived from the public seed ([`crate::srs::dev::dev_tau`]);
//! * a saved SRS file: [`Srs::load_verifier_points`] reads only those points and identifies the
//!   ceremony by `[τ]G2` (see there);
//! * a loaded [`Srs`]: [`VerifierSrs::of`].
//!
//! [`crate::card::ModelCard::verifier_srs`] adds the checks that the points are those of the
//! card's SRS.

use std::panic::AssertUnwindSafe;

use halo2_base::halo2_proofs::{
    halo2curves::bn256::{Bn256, Fr, G1Affine, G2Affine},
    plonk::{verify_proof, VerifyingKey},
    poly::kzg::{commitment::KZGCommitmentScheme, multiopen::VerifierSHPLONK, strategy::SingleStrategy},
    transcript::TranscriptReadBuffer,
    SerdeCurveAffine, SerdeFormat,
};
use snark_verifier::{loader::native::NativeLoader, system::halo2::transcript::evm::EvmTranscript};

use crate::{
    error::{Error, Result},
    halo2_base_reexports::ParamsKZG,
    srs::{dev, Srs, INSECURE_DEV},
};

/// The part of an SRS a verifier uses: `[1]G1`, `G2` and `[τ]G2`, with where they come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifierSrs {
    /// `[τ]G2`: identifies the SRS (and its ceremony).
    pub tau_g2: G2Affine,
    /// A [`crate::srs::Ceremony::id`], [`INSECURE_DEV`] or [`crate::srs::UNKNOWN_CEREMONY`].
    pub ceremony: String,
    /// Human-readable origin (file path or the dev seed).
    pub source: String,
}

impl VerifierSrs {
    /// The points of the INSECURE dev SRS of `seed` (any `k`): `[τ]G2` derived from the seed.
    pub fn insecure_dev(seed: u64) -> Self {
        Self {
            tau_g2: dev::dev_tau_g2(seed),
            ceremony: INSECURE_DEV.into(),
            source: format!("insecure dev SRS, seed {seed}"),
        }
    }

    /// The points of a loaded SRS.
    pub fn of(srs: &Srs) -> Self {
        Self { tau_g2: srs.params.s_g2(), ceremony: srs.info.ceremony.clone(), source: srs.info.source.clone() }
    }

    /// halo2 verifier parameters for circuits of `2^k` rows holding only `g[0] = G1`, `G2` and
    /// `[τ]G2` (no other powers, no Lagrange points). Only for verification: committing with them
    /// panics.
    pub fn params(&self, k: u32) -> ParamsKZG<Bn256> {
        // halo2 builds ParamsKZG from parts only through an existing value: parse a k = 0 one.
        let mut bytes = Vec::with_capacity(4 + 2 * 64 + 2 * 128);
        bytes.extend_from_slice(&0u32.to_le_bytes());
        for p in [G1Affine::generator(), G1Affine::generator()] {
            p.write(&mut bytes, SerdeFormat::RawBytes).expect("writing to a Vec");
        }
        for p in [G2Affine::generator(), self.tau_g2] {
            p.write(&mut bytes, SerdeFormat::RawBytes).expect("writing to a Vec");
        }
        let base = ParamsKZG::<Bn256>::read_custom(&mut &bytes[..], SerdeFormat::RawBytes)
            .expect("generators and a checked [τ]G2 parse back");
        base.from_parts(k, vec![G1Affine::generator()], Some(Vec::new()), G2Affine::generator(), self.tau_g2)
    }

    /// Verifies a proof (SHPLONK, EVM Keccak transcript: the bytes the on-chain verifier takes
    /// after the instances) against `vk` and the public `instances`.
    ///
    /// # Errors
    /// [`Error::InvalidProof`] if the proof does not verify (a wrong proof, instance, key or SRS).
    pub fn verify(&self, vk: &VerifyingKey<G1Affine>, instances: &[Fr], proof: &[u8]) -> Result<()> {
        let params = self.params(vk.get_domain().k());
        let run = || {
            let mut transcript = TranscriptReadBuffer::<_, G1Affine, _>::init(proof);
            verify_proof::<
                KZGCommitmentScheme<Bn256>,
                VerifierSHPLONK<'_, Bn256>,
                _,
                EvmTranscript<G1Affine, NativeLoader, _, _>,
                _,
            >(&params, vk, SingleStrategy::new(&params), &[&[instances]], &mut transcript)
        };
        // The reduced parameters would panic (not mis-verify) if halo2 ever used a point they
        // lack; report that as a failed verification rather than crash a node.
        match std::panic::catch_unwind(AssertUnwindSafe(run)) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Error::InvalidProof(format!("{e:?}"))),
            Err(_) => Err(Error::InvalidProof("the verifier panicked on this proof".into())),
        }
    }
}
