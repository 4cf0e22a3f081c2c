//! The INSECURE dev SRS: derived from a public seed, generated once per `(seed, k)` and cached on
//! disk.
//!
//! τ is the first field element halo2-axiom's `ParamsKZG::setup` draws from
//! `ChaCha20Rng::seed_from_u64(seed)`; whoever knows the seed knows τ and can forge proofs. Knowing
//! τ also makes the SRS cheap to build: every point is `c·G1` for a scalar `c` computed in the
//! field (`τ^i`, or the Lagrange value `L_i(τ)`), so [`generate`] multiplies the fixed base G1
//! through a precomputed window table (32 mixed additions a point) instead of halo2's
//! variable-base multiplications. The result is the same group elements, so the same bytes and
//! the same SHA-256 as `ParamsKZG::setup(k, ChaCha20Rng::seed_from_u64(seed))` (a test compares).
//!
//! # The cache
//!
//! [`DevSrsCache`] keeps one file per `(seed, k)` (`insecure-dev-seed{seed}-k{k}.srs`) in
//! `$ZKINFER_CACHE_DIR`, else `$XDG_CACHE_HOME/zkinfer`, else `~/.cache/zkinfer`, in the format of
//! [`Srs::save`]. A file is written to a temporary name beside it and renamed into place, so
//! concurrent processes never read a half-written file (two that miss at once both generate; the
//! last rename wins, and both files are identical).
//!
//! A cache hit is checked without the full pairing and Lagrange checks of [`Srs::load`] (which
//! cost several MSMs of size `2^k`): the file's SHA-256 framing (any damage or truncation), its
//! header (seed, k), the parameters parse with every point on the curve, `g[0] = G1`, the G2
//! generator, `[τ]G2` equal to the one re-derived from the seed, and 16 random `g[i]` and 16
//! random Lagrange points recomputed from τ. A file that fails is logged and regenerated, never
//! used; the cache never makes `Srs::insecure_dev` fail.
//!
//! A smaller `k` is not served by downsizing a larger cached SRS: halo2's downsizing recomputes
//! the Lagrange points by an FFT over G1 (`k/2` variable-base multiplications a point), which
//! costs more than generating the smaller SRS afresh.

use std::{
    io::Write,
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
    time::Instant,
};

use halo2_base::halo2_proofs::{
    arithmetic::{parallelize, Field},
    halo2curves::{
        bn256::{Fr, G1Affine, G2Affine, G1},
        ff::{BatchInvert, PrimeField},
        group::{prime::PrimeCurveAffine, Curve, Group},
    },
    poly::commitment::{Params, ParamsProver},
};
use rand::Rng;
use rand_chacha::{rand_core::SeedableRng, ChaCha20Rng};

use super::{params_from_parts, Srs, SrsInfo, INSECURE_DEV};
use crate::{
    artifact::sha256_hex,
    error::{Error, Result},
};

/// The environment variable naming the cache directory.
pub const CACHE_DIR_ENV: &str = "ZKINFER_CACHE_DIR";

/// Largest `k` of a dev SRS (BN254's 2-adicity allows 28; 2^28 points need ~32 GiB).
pub const MAX_DEV_K: u32 = 28;

/// How progress is reported: `(done, total)` in points.
pub type Progress<'a> = &'a (dyn Fn(u64, u64) + Sync);

/// τ of the dev SRS of `seed`: exactly the first draw of `ParamsKZG::setup` from
/// `ChaCha20Rng::seed_from_u64(seed)`. INSECURE by construction.
pub fn dev_tau(seed: u64) -> Fr {
    Fr::random(ChaCha20Rng::seed_from_u64(seed))
}

/// `[τ]G2` of the dev SRS of `seed` (independent of `k`).
pub fn dev_tau_g2(seed: u64) -> G2Affine {
    (G2Affine::generator() * dev_tau(seed)).to_affine()
}

/// Fixed-base multiplication of G1 with 8-bit windows: `table[j][d] = d·2^(8j)·G1`.
struct G1Table(Vec<[G1Affine; 256]>);

impl G1Table {
    fn new() -> Self {
        let mut projective = Vec::with_capacity(32 * 256);
        let mut base = G1::generator();
        for _ in 0..32 {
            let mut acc = G1::identity();
            for _ in 0..256 {
                projective.push(acc);
                acc += base;
            }
            base = acc; // 256·base
        }
        let mut affine = vec![G1Affine::identity(); projective.len()];
        G1::batch_normalize(&projective, &mut affine);
        Self(affine.chunks(256).map(|c| c.try_into().expect("chunks of 256")).collect())
    }

    /// `c·G1` (projective).
    fn mul(&self, c: &Fr) -> G1 {
        // `to_repr` is the canonical little-endian encoding: byte j is window j.
        let repr = c.to_repr();
        let mut acc = G1::identity();
        for (window, &digit) in self.0.iter().zip(repr.as_ref()) {
            if digit != 0 {
                acc += window[digit as usize];
            }
        }
        acc
    }
}

/// The n-th root of unity exactly as `ParamsKZG::setup` computes it.
fn root_of_unity(k: u32) -> Fr {
    let mut root = Fr::ROOT_OF_UNITY_INV.invert().expect("nonzero");
    for _ in k..Fr::S {
        root = root.square();
    }
    root
}

/// `c_i·G1` for every scalar, in blocks, reporting `done` points through `progress`.
fn fixed_base_all(
    table: &G1Table,
    scalars: &[Fr],
    done: &AtomicU64,
    total: u64,
    progress: Option<Progress<'_>>,
) -> Vec<G1Affine> {
    const BLOCK: usize = 1 << 13;
    let mut out = vec![G1Affine::identity(); scalars.len()];
    for (scalars, out) in scalars.chunks(BLOCK).zip(out.chunks_mut(BLOCK)) {
        let mut projective = vec![G1::identity(); scalars.len()];
        parallelize(&mut projective, |p, start| {
            for (p, c) in p.iter_mut().zip(&scalars[start..]) {
                *p = table.mul(c);
            }
        });
        parallelize(out, |out, start| G1::batch_normalize(&projective[start..start + out.len()], out));
        let now = done.fetch_add(scalars.len() as u64, Ordering::Relaxed) + scalars.len() as u64;
        if let Some(progress) = progress {
            progress(now, total);
        }
    }
    out
}

/// Generates the dev SRS of `(seed, k)` from τ: the same points (and bytes) as
/// `ParamsKZG::setup(k, ChaCha20Rng::seed_from_u64(seed))`, several times faster. INSECURE.
///
/// # Errors
/// [`Error::InvalidParams`] if `k` is 0 or above [`MAX_DEV_K`].
pub fn generate(k: u32, seed: u64, progress: Option<Progress<'_>>) -> Result<Srs> {
    if !(1..=MAX_DEV_K).contains(&k) {
        return Err(Error::InvalidParams(format!("a dev SRS needs 1 <= k <= {MAX_DEV_K}, got k = {k}")));
    }
    let started = Instant::now();
    let n = 1usize << k;
    let tau = dev_tau(seed);
    let table = G1Table::new();
    let total = 2 * n as u64;
    let done = AtomicU64::new(0);

    // Powers τ^i.
    let mut powers = vec![Fr::ZERO; n];
    parallelize(&mut powers, |p, start| {
        let mut cur = tau.pow_vartime([start as u64]);
        for p in p.iter_mut() {
            *p = cur;
            cur *= tau;
        }
    });
    let g = fixed_base_all(&table, &powers, &done, total, progress);
    drop(powers);

    // Lagrange values L_i(τ) = (τ^n − 1)/n · ω^i / (τ − ω^i).
    let root = root_of_unity(k);
    let multiplier = (tau.pow_vartime([n as u64]) - Fr::ONE) * Fr::from(n as u64).invert().expect("n < r");
    let mut lagrange = vec![Fr::ZERO; n];
    parallelize(&mut lagrange, |l, start| {
        let mut root_pow = root.pow_vartime([start as u64]);
        let mut denominators: Vec<Fr> = Vec::with_capacity(l.len());
        let mut numerators: Vec<Fr> = Vec::with_capacity(l.len());
        for _ in 0..l.len() {
            denominators.push(tau - root_pow);
            numerators.push(multiplier * root_pow);
            root_pow *= root;
        }
        denominators.iter_mut().batch_invert();
        for ((l, num), inv) in l.iter_mut().zip(numerators).zip(denominators) {
            *l = num * inv;
        }
    });
    let g_lagrange = fixed_base_all(&table, &lagrange, &done, total, progress);
    drop(lagrange);

    let g2 = G2Affine::generator();
    let tau_g2 = (g2 * tau).to_affine();
    let (params, bytes) = params_from_parts(k, &g, &g_lagrange, &g2, &tau_g2);
    tracing::info!(k, seed, seconds = started.elapsed().as_secs_f64(), "generated an INSECURE dev SRS");
    Ok(Srs { params, info: dev_info(k, seed, sha256_hex(&bytes)) })
}

pub(super) fn dev_info(k: u32, seed: u64, sha256: String) -> SrsInfo {
    SrsInfo {
        sha256,
        k,
        insecure: true,
        source: format!("insecure dev SRS, seed {seed}"),
        ceremony: INSECURE_DEV.into(),
        ceremony_file: None,
        dev_seed: Some(seed),
    }
}

/// The default cache directory: `$ZKINFER_CACHE_DIR`, else `$XDG_CACHE_HOME/zkinfer`, else
/// `$HOME/.cache/zkinfer` (`None` if none of them is set).
pub fn default_cache_dir() -> Option<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    var(CACHE_DIR_ENV)
        .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("zkinfer")))
        .or_else(|| var("HOME").map(|d| d.join(".cache").join("zkinfer")))
}

/// The on-disk cache of dev SRSs (see the module docs).
#[derive(Clone, Debug)]
pub struct DevSrsCache {
    dir: Option<PathBuf>,
}

/// Why a cached file was not used.
#[derive(Debug, thiserror::Error)]
enum CacheMiss {
    #[error("{0}")]
    Damaged(String),
}

impl DevSrsCache {
    /// The cache at [`default_cache_dir`] (no cache if it is unknown).
    pub fn from_env() -> Self {
        Self { dir: default_cache_dir() }
    }

    /// A cache in `dir`.
    pub fn at(dir: impl Into<PathBuf>) -> Self {
        Self { dir: Some(dir.into()) }
    }

    /// No cache: every request generates.
    pub fn disabled() -> Self {
        Self { dir: None }
    }

    /// The file of `(seed, k)`, whether or not it exists.
    pub fn path(&self, k: u32, seed: u64) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join(format!("insecure-dev-seed{seed}-k{k}.srs")))
    }

    /// Whether a file for `(seed, k)` exists (it is checked only when loaded).
    pub fn contains(&self, k: u32, seed: u64) -> bool {
        self.path(k, seed).is_some_and(|p| p.is_file())
    }

    /// The dev SRS of `(seed, k)`: the cached file if it passes the checks of the module docs,
    /// else generated (and cached; a cache that cannot be written is logged and skipped).
    ///
    /// # Errors
    /// [`Error::InvalidParams`] if `k` is 0 or above [`MAX_DEV_K`]; never for the cache.
    pub fn get(&self, k: u32, seed: u64, progress: Option<Progress<'_>>) -> Result<Srs> {
        let Some(path) = self.path(k, seed) else {
            return generate(k, seed, progress);
        };
        if path.is_file() {
            let started = Instant::now();
            match load_cached(&path, k, seed) {
                Ok(srs) => {
                    tracing::info!(k, seed, file = %path.display(), seconds = started.elapsed().as_secs_f64(), "loaded the cached INSECURE dev SRS");
                    return Ok(srs);
                }
                Err(CacheMiss::Damaged(reason)) => {
                    tracing::warn!(file = %path.display(), %reason, "the cached dev SRS is damaged; regenerating it")
                }
            }
        }
        let srs = generate(k, seed, progress)?;
        match store(&path, &srs) {
            Ok(()) => tracing::info!(file = %path.display(), "cached the dev SRS"),
            Err(e) => tracing::warn!(file = %path.display(), error = %e, "could not cache the dev SRS"),
        }
        Ok(srs)
    }
}

/// Writes `srs` to a temporary file beside `path` and renames it into place.
fn store(path: &Path, srs: &Srs) -> Result<()> {
    let dir = path.parent().expect("cache files have a directory");
    std::fs::create_dir_all(dir).map_err(|e| Error::io("creating the cache directory", dir, e))?;
    let suffix: u64 = rand::thread_rng().gen();
    let tmp = dir.join(format!(
        ".{}.{}-{suffix:016x}.tmp",
        path.file_name().expect("has a name").to_string_lossy(),
        std::process::id()
    ));
    let written = srs.save(&tmp).and_then(|()| {
        // Make the content durable before the rename publishes it.
        std::fs::OpenOptions::new()
            .write(true)
            .open(&tmp)
            .and_then(|mut f| f.flush().and(f.sync_all()))
            .map_err(|e| Error::io("syncing", &tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| Error::io("renaming into the cache", path, e))
    });
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Loads and checks a cached dev SRS (see the module docs).
fn load_cached(path: &Path, k: u32, seed: u64) -> Result<Srs, CacheMiss> {
    let damaged = |reason: String| CacheMiss::Damaged(reason);
    let (header, payload) = super::read_saved(path).map_err(|e| damaged(e.to_string()))?;
    if header.ceremony != INSECURE_DEV || header.dev_seed != Some(seed) || header.k != k {
        return Err(damaged(format!(
            "the header describes {} seed {:?} k = {}, not the dev SRS of seed {seed} k = {k}",
            header.ceremony, header.dev_seed, header.k
        )));
    }
    let params = super::parse_params(&payload, k).map_err(damaged)?;
    let tau = dev_tau(seed);
    if params.get_g()[0] != G1Affine::generator() || params.g2() != G2Affine::generator() {
        return Err(damaged("g[0] or the G2 point is not the generator".into()));
    }
    if params.s_g2() != (G2Affine::generator() * tau).to_affine() {
        return Err(damaged(format!("its [τ]G2 is not the one of seed {seed}")));
    }
    // Spot checks: 16 random powers and 16 random Lagrange points against τ.
    let n = params.n();
    let root = root_of_unity(k);
    let multiplier = (tau.pow_vartime([n]) - Fr::ONE) * Fr::from(n).invert().expect("n < r");
    let mut rng = rand::thread_rng();
    let generator = G1Affine::generator();
    for _ in 0..16 {
        let i = rng.gen_range(0..n);
        if params.get_g()[i as usize] != (generator * tau.pow_vartime([i])).to_affine() {
            return Err(damaged(format!("g[{i}] is not τ^{i}·G1")));
        }
        let i = rng.gen_range(0..n);
        let w = root.pow_vartime([i]);
        let l = multiplier * w * (tau - w).invert().expect("τ is not a root of unity");
        if super::lagrange_point(&payload, k, i) != (generator * l).to_affine() {
            return Err(damaged(format!("Lagrange point {i} is not L_{i}(τ)·G1")));
        }
    }
    Ok(Srs { params, info: dev_info(k, seed, sha256_hex(&payload)) })
}

#[cfg(test)]
mod tests {
    use halo2_base::halo2_proofs::poly::kzg::commitment::ParamsKZG;

    use super::*;
    use crate::Bn256;

    fn halo2_bytes(p: &ParamsKZG<Bn256>) -> Vec<u8> {
        let mut bytes = Vec::new();
        p.write(&mut bytes).unwrap();
        bytes
    }

    #[test]
    fn generation_matches_halo2_setup_byte_for_byte() {
        for (k, seed) in [(1, 0), (4, 42), (9, 7)] {
            let ours = generate(k, seed, None).unwrap();
            let theirs = ParamsKZG::<Bn256>::setup(k, ChaCha20Rng::seed_from_u64(seed));
            assert_eq!(halo2_bytes(&ours.params), halo2_bytes(&theirs), "k = {k}, seed = {seed}");
            assert_eq!(ours.info.sha256, sha256_hex(&halo2_bytes(&theirs)));
            assert_eq!(dev_tau_g2(seed), theirs.s_g2());
        }
        assert!(matches!(generate(0, 1, None), Err(Error::InvalidParams(_))));
        assert!(matches!(generate(MAX_DEV_K + 1, 1, None), Err(Error::InvalidParams(_))));
    }

    #[test]
    fn progress_reaches_the_total() {
        let last = AtomicU64::new(0);
        let report = |done: u64, total: u64| {
            assert_eq!(total, 2 << 10);
            last.fetch_max(done, Ordering::Relaxed);
        };
        generate(10, 3, Some(&report)).unwrap();
        assert_eq!(last.load(Ordering::Relaxed), 2 << 10);
    }
}
