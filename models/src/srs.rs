//! The KZG structured reference string (powers of tau on BN254).
//!
//! A real deployment loads a ceremony SRS file in halo2's `ParamsKZG` format (for example one of
//! the perpetual powers-of-tau transcripts converted to that format); its SHA-256 goes into the
//! model card so anyone can check which SRS a verifier was made with. [`Srs::insecure_dev`] derives
//! one from a public seed: whoever knows the seed knows τ and can forge proofs, so it is for tests
//! and demos only, and says so.

use std::path::Path;

use halo2_base::halo2_proofs::{
    halo2curves::bn256::Bn256,
    poly::{commitment::Params, kzg::commitment::ParamsKZG},
};
use rand_chacha::{rand_core::SeedableRng, ChaCha20Rng};
use serde::{Deserialize, Serialize};

use crate::{
    artifact::sha256_hex,
    error::{Error, Result},
};

/// Where an SRS came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SrsInfo {
    /// SHA-256 of the SRS file as loaded (or as generated, serialized).
    pub sha256: String,
    /// Largest circuit size the SRS supports.
    pub k: u32,
    /// `true` if the SRS was generated from a public seed.
    pub insecure: bool,
    /// Human-readable origin (file path or the dev seed).
    pub source: String,
    /// The public seed of an insecure dev SRS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev_seed: Option<u64>,
}

/// A loaded SRS.
pub struct Srs {
    /// The parameters.
    pub params: ParamsKZG<Bn256>,
    /// Provenance.
    pub info: SrsInfo,
}

impl std::fmt::Debug for Srs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Srs").field("info", &self.info).finish_non_exhaustive()
    }
}

/// Checks the size prefix against the file length before halo2 allocates `2^k` points: a garbage
/// `k` would otherwise abort the process on allocation rather than fail.
fn check_layout(bytes: &[u8]) -> std::result::Result<(), String> {
    let k = u32::from_le_bytes(bytes.get(..4).ok_or("file shorter than 4 bytes")?.try_into().expect("4 bytes"));
    if !(1..=28).contains(&k) {
        return Err(format!("implausible size k = {k}"));
    }
    let points = 2u64 << k;
    // g and g_lagrange (2^k G1 points each), then g2 and s_g2: compressed or raw encodings.
    let compressed = 4 + points * 32 + 2 * 64;
    let raw = 4 + points * 64 + 2 * 128;
    let len = bytes.len() as u64;
    if len != compressed && len != raw {
        return Err(format!("{len} bytes, but an SRS with k = {k} has {compressed} (compressed) or {raw} (raw) bytes"));
    }
    Ok(())
}

impl Srs {
    /// Loads a ceremony SRS file (halo2 `ParamsKZG` format).
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io("reading SRS", path, e))?;
        let sha256 = sha256_hex(&bytes);
        check_layout(&bytes).map_err(|reason| Error::CorruptArtifact { path: path.into(), what: "KZG SRS", reason })?;
        let parsed = std::panic::catch_unwind(|| ParamsKZG::<Bn256>::read(&mut bytes.as_slice()));
        let params = match parsed {
            Ok(Ok(p)) => p,
            Ok(Err(e)) => {
                return Err(Error::CorruptArtifact { path: path.into(), what: "KZG SRS", reason: e.to_string() })
            }
            Err(_) => {
                return Err(Error::CorruptArtifact { path: path.into(), what: "KZG SRS", reason: "unparseable".into() })
            }
        };
        let k = params.k();
        Ok(Self {
            params,
            info: SrsInfo { sha256, k, insecure: false, source: path.display().to_string(), dev_seed: None },
        })
    }

    /// Derives an SRS from a public seed. INSECURE: τ is known to anyone who knows the seed.
    pub fn insecure_dev(k: u32, seed: u64) -> Self {
        let params = ParamsKZG::<Bn256>::setup(k, ChaCha20Rng::seed_from_u64(seed));
        let mut bytes = Vec::new();
        params.write(&mut bytes).expect("writing to a Vec cannot fail");
        let info = SrsInfo {
            sha256: sha256_hex(&bytes),
            k,
            insecure: true,
            source: format!("insecure dev SRS, seed {seed}"),
            dev_seed: Some(seed),
        };
        Self { params, info }
    }

    /// Writes the SRS in halo2's `ParamsKZG` format.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut bytes = Vec::new();
        self.params.write(&mut bytes).map_err(|e| Error::io("serializing SRS", path, e))?;
        std::fs::write(path, bytes).map_err(|e| Error::io("writing SRS", path, e))
    }

    /// Parameters for a circuit of size `k` (downsized copy); fails if the SRS is too small.
    pub fn for_k(&self, k: u32) -> Result<ParamsKZG<Bn256>> {
        if k > self.info.k {
            return Err(Error::SrsTooSmall { srs_k: self.info.k, circuit_k: k });
        }
        let mut p = self.params.clone();
        if k < self.info.k {
            p.downsize(k);
        }
        Ok(p)
    }
}
