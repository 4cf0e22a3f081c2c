//! The KZG structured reference string (powers of tau on BN254).
//!
//! Keys for anything of value come from a ceremony: a snarkjs `.ptau` file (Perpetual Powers of Tau
//! / Hermez) or a halo2 raw `ParamsKZG` file of one, brought in by [`Srs::import`], which checks
//!
//! * every coordinate is canonical (`< q`) and every point is on its curve (G2 also in the order-r
//!   subgroup);
//! * `g[0] = G1` and the file's G2 point is the generator;
//! * the G1 points are consecutive powers of the τ behind the file's `[τ]G2`, by one batched
//!   pairing check with random `ρ_i`: `e(Σ ρ_i·g[i+1], G2) = e(Σ ρ_i·g[i], [τ]G2)`. A single
//!   `g[i+1] ≠ τ·g[i]` makes the two sides differ except with probability `1/r`; with `g[0] = G1`
//!   this gives `g[i] = τ^i·G1` for every point kept;
//! * the ceremony: the file's SHA-256 against [`ceremony::PINNED_FILES`], and its `[τ]G2` against
//!   [`ceremony::CEREMONIES`] (which, after the pairing check, pins every point); a file of neither
//!   is refused unless explicitly allowed, and is then recorded as an unknown ceremony;
//!
//! then recomputes the Lagrange points `L_i(τ)·G1` (an inverse FFT over G1) instead of trusting any
//! in the file, downsizes to the requested `k`, and [`Srs::save`] writes what the node loads: halo2
//! `ParamsKZG` bytes framed with a checksum and the provenance ([`crate::artifact`]).
//!
//! [`Srs::load`] re-checks a saved SRS every time (points, generators, the pairing check, and the
//! Lagrange points by one random evaluation), and derives the ceremony from the points, never from
//! the header. A plain ceremony file given to [`Srs::load`] is imported on the fly.
//!
//! [`Srs::insecure_dev`] derives an SRS from a public seed: whoever knows the seed knows τ and can
//! forge proofs, so it is for tests and demos only, says so, and verifier-gen guards every verifier
//! made from it to the dev chain id. It is generated once per `(seed, k)` and cached on disk
//! ([`dev`]).
//!
//! A verifier needs only `[1]G1`, `G2` and `[τ]G2` of all this: [`Srs::load_verifier_points`]
//! reads just those from a saved SRS (see [`crate::verify`]).

pub mod ceremony;
pub mod dev;
mod points;
mod ptau;
mod raw;

use std::{
    io::{Read, Seek},
    path::Path,
};

use halo2_base::halo2_proofs::{
    arithmetic::{best_multiexp, g_to_lagrange, Field},
    halo2curves::{
        bn256::{Bn256, Fr, G1Affine, G2Affine},
        group::{prime::PrimeCurveAffine, Curve},
        pairing::Engine,
    },
    poly::{
        commitment::{Params, ParamsProver},
        kzg::commitment::ParamsKZG,
        EvaluationDomain,
    },
    SerdeCurveAffine, SerdeFormat,
};
use rand::rngs::OsRng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use self::{
    ceremony::{Ceremony, PinnedFile},
    dev::DevSrsCache,
};
use crate::{
    artifact::{self, sha256_hex},
    error::{Error, Result},
};

/// Artifact kind tag of SRS files written by [`Srs::save`].
pub const SRS_KIND: &str = "zkinfer KZG SRS";
/// The `ceremony` of an SRS derived from a public seed.
pub const INSECURE_DEV: &str = "insecure-dev";
/// The `ceremony` of an SRS imported with `allow_unknown_ceremony`.
pub const UNKNOWN_CEREMONY: &str = "unknown";

/// What is wrong with a powers-of-tau file.
#[derive(Debug, thiserror::Error)]
pub enum SrsError {
    /// The file ends early.
    #[error("the file is truncated ({what})")]
    Truncated { what: &'static str },
    /// The file is not in the format it claims.
    #[error("not a valid {format} file: {reason}")]
    Malformed { format: &'static str, reason: String },
    /// A stored coordinate is not below the base field modulus q.
    #[error("{what} #{index}: a coordinate is not below the field modulus q (non-canonical encoding)")]
    NonCanonicalCoordinate { what: &'static str, index: usize },
    /// A point is not on the curve.
    #[error("{what} #{index} is not on the BN254 curve")]
    NotOnCurve { what: &'static str, index: usize },
    /// A G2 point is on the curve but outside the order-r subgroup.
    #[error("{what} #{index} is not in the order-r subgroup of G2")]
    NotInSubgroup { what: &'static str, index: usize },
    /// The file does not start from the standard generator.
    #[error("{what} is not the standard BN254 generator")]
    WrongGenerator { what: &'static str },
    /// `[τ]G2` is the identity or the generator (τ = 0 or 1).
    #[error("[τ]G2 is degenerate (τ = 0 or 1)")]
    DegenerateTau,
    /// The batched pairing check failed: the G1 points are not consecutive powers of the file's τ.
    #[error("the G1 points are not consecutive powers of the τ of the file's [τ]G2 (batched pairing check failed)")]
    InconsistentPowers,
    /// The stored Lagrange points are not the Lagrange basis of the powers.
    #[error("the Lagrange points are not the Lagrange basis of the G1 powers (random evaluation check failed)")]
    InconsistentLagrange,
    /// Neither the file nor its `[τ]G2` belongs to a known ceremony.
    #[error(
        "unknown ceremony: the file (sha256 {sha256}) is not a pinned ceremony file and its [τ]G2 is not a known \
         ceremony's; pass --allow-unknown-ceremony to import it anyway (its verifiers then only run on a dev chain)"
    )]
    UnknownCeremony { sha256: String },
    /// A saved SRS claims a ceremony its points do not belong to.
    #[error("the file claims ceremony `{claimed}`, but its [τ]G2 is {actual}'s")]
    CeremonyMismatch { claimed: String, actual: String },
    /// The file holds fewer powers than requested.
    #[error("the file holds an SRS up to k = {available}, not k = {wanted}")]
    TooSmall { available: u32, wanted: u32 },
}

/// The powers read from a ceremony file, before any check but encoding and curve membership.
pub(crate) struct Powers {
    /// The largest `k` the file supports.
    pub(crate) available_k: u32,
    /// `τ^i·G1` for `i < 2^k`.
    pub(crate) g1: Vec<G1Affine>,
    /// The file's G2 generator.
    pub(crate) g2: G2Affine,
    /// `[τ]G2`.
    pub(crate) tau_g2: G2Affine,
}

/// The ceremony file an SRS was imported from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CeremonyFile {
    /// File name as given.
    pub name: String,
    /// SHA-256 of the whole file.
    pub sha256: String,
    /// `snarkjs .ptau` or `halo2 ParamsKZG (raw)`.
    pub format: String,
    /// The pinned file it matched, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned_as: Option<String>,
}

/// Where an SRS came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SrsInfo {
    /// SHA-256 of the SRS as halo2 `ParamsKZG` bytes (raw encoding).
    pub sha256: String,
    /// Largest circuit size the SRS supports.
    pub k: u32,
    /// `true` if the SRS was generated from a public seed.
    pub insecure: bool,
    /// Human-readable origin (file path or the dev seed).
    pub source: String,
    /// The ceremony: a [`Ceremony::id`], [`INSECURE_DEV`] or [`UNKNOWN_CEREMONY`].
    #[serde(default)]
    pub ceremony: String,
    /// The ceremony file it was imported from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ceremony_file: Option<CeremonyFile>,
    /// The public seed of an insecure dev SRS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev_seed: Option<u64>,
}

impl SrsInfo {
    /// One line for people: ceremony, k and hashes.
    pub fn describe(&self) -> String {
        let ceremony = match Ceremony::by_id(&self.ceremony) {
            Some(c) => c.name.to_string(),
            None if self.insecure || self.ceremony == INSECURE_DEV => {
                format!("INSECURE dev SRS (public seed {})", self.dev_seed.map_or("?".into(), |s| s.to_string()))
            }
            None if self.ceremony.is_empty() => "unrecorded".into(),
            None => format!("{} ceremony", self.ceremony),
        };
        let file = match &self.ceremony_file {
            Some(f) => format!(
                "; from {} (sha256 {}{})",
                f.name,
                f.sha256,
                f.pinned_as.as_ref().map_or(String::new(), |p| format!(", pinned as {p}"))
            ),
            None => String::new(),
        };
        format!("{ceremony}, k = {}, params sha256 {}{file}", self.k, self.sha256)
    }
}

/// Options of [`Srs::import`].
#[derive(Clone, Copy, Debug, Default)]
pub struct ImportOptions {
    /// Downsize to this `k` (default: the largest the file supports).
    pub k: Option<u32>,
    /// Accept a file of no known ceremony (recorded as [`UNKNOWN_CEREMONY`]).
    pub allow_unknown_ceremony: bool,
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

#[derive(Serialize, Deserialize)]
pub(crate) struct SavedHeader {
    pub(crate) k: u32,
    pub(crate) insecure: bool,
    pub(crate) ceremony: String,
    #[serde(default)]
    pub(crate) ceremony_file: Option<CeremonyFile>,
    #[serde(default)]
    pub(crate) dev_seed: Option<u64>,
}

fn srs_error(path: &Path, e: SrsError) -> Error {
    Error::Srs { path: path.into(), source: e }
}

/// Checks `g[0] = G1`, the G2 generator, a non-degenerate τ, and the batched pairing check.
fn check_powers(g1: &[G1Affine], g2: &G2Affine, tau_g2: &G2Affine) -> Result<(), SrsError> {
    if g1.first() != Some(&G1Affine::generator()) {
        return Err(SrsError::WrongGenerator { what: "τ^0·G1 (g[0])" });
    }
    if *g2 != G2Affine::generator() {
        return Err(SrsError::WrongGenerator { what: "the G2 point" });
    }
    if bool::from(tau_g2.is_identity()) || *tau_g2 == G2Affine::generator() {
        return Err(SrsError::DegenerateTau);
    }
    if g1.len() < 2 {
        return Ok(());
    }
    let rho: Vec<Fr> = (1..g1.len()).map(|_| Fr::random(OsRng)).collect();
    let shifted = best_multiexp(&rho, &g1[1..]).to_affine();
    let unshifted = best_multiexp(&rho, &g1[..g1.len() - 1]).to_affine();
    if Bn256::pairing(&shifted, g2) != Bn256::pairing(&unshifted, tau_g2) {
        return Err(SrsError::InconsistentPowers);
    }
    Ok(())
}

/// Checks the Lagrange points by one random evaluation: for random evaluations `c` on the domain and
/// the coefficients `a` of the polynomial they define, `Σ c_i·lag[i] = Σ a_j·g[j]`.
fn check_lagrange(g: &[G1Affine], lagrange: &[G1Affine], k: u32) -> Result<(), SrsError> {
    let domain = EvaluationDomain::<Fr>::new(1, k);
    let c: Vec<Fr> = (0..g.len()).map(|_| Fr::random(OsRng)).collect();
    let a = domain.lagrange_to_coeff(domain.lagrange_from_vec(c.clone()));
    if best_multiexp(&c, lagrange) != best_multiexp(&a, g) {
        return Err(SrsError::InconsistentLagrange);
    }
    Ok(())
}

/// The ceremony of checked powers, or why none applies.
fn identify(tau_g2: &G2Affine, file_sha256: &str, allow_unknown: bool) -> Result<(String, Option<String>), SrsError> {
    let pinned = PinnedFile::by_sha256(file_sha256);
    match (Ceremony::of_tau_g2(tau_g2), pinned) {
        // A pinned file must also carry its ceremony's τ: the table is only trusted with the points.
        (Some(c), Some(p)) if p.ceremony == c.id => Ok((c.id.into(), Some(p.name.into()))),
        (Some(c), Some(p)) => Err(SrsError::CeremonyMismatch { claimed: p.ceremony.into(), actual: c.id.into() }),
        (Some(c), None) => Ok((c.id.into(), None)),
        (None, _) if allow_unknown => Ok((UNKNOWN_CEREMONY.into(), None)),
        (None, _) => Err(SrsError::UnknownCeremony { sha256: file_sha256.into() }),
    }
}

/// Serializes halo2 `ParamsKZG` (raw encoding) from its parts and parses it back with halo2's
/// checked reader.
fn params_from_parts(
    k: u32,
    g: &[G1Affine],
    lagrange: &[G1Affine],
    g2: &G2Affine,
    tau_g2: &G2Affine,
) -> (ParamsKZG<Bn256>, Vec<u8>) {
    let mut bytes = Vec::with_capacity(raw::raw_len(k) as usize);
    bytes.extend_from_slice(&k.to_le_bytes());
    for p in g.iter().chain(lagrange) {
        p.write(&mut bytes, SerdeFormat::RawBytes).expect("writing to a Vec");
    }
    g2.write(&mut bytes, SerdeFormat::RawBytes).expect("writing to a Vec");
    tau_g2.write(&mut bytes, SerdeFormat::RawBytes).expect("writing to a Vec");
    let params = ParamsKZG::<Bn256>::read_custom(&mut bytes.as_slice(), SerdeFormat::RawBytes)
        .expect("points checked on the curve serialize and parse back");
    (params, bytes)
}

/// Reads a file written by [`Srs::save`], checking its SHA-256 framing.
pub(crate) fn read_saved(path: &Path) -> Result<(SavedHeader, Vec<u8>)> {
    artifact::read(path, SRS_KIND)
}

/// Parses the `ParamsKZG` bytes of a saved SRS of size `2^k` (every point checked on the curve).
pub(crate) fn parse_params(payload: &[u8], k: u32) -> std::result::Result<ParamsKZG<Bn256>, String> {
    if payload.len() as u64 != raw::raw_len(k) || payload[..4] != k.to_le_bytes() {
        return Err(format!("{} bytes of parameters do not hold an SRS with k = {k}", payload.len()));
    }
    ParamsKZG::<Bn256>::read_custom(&mut &payload[..], SerdeFormat::RawBytes).map_err(|e| format!("invalid point: {e}"))
}

/// The `i`-th Lagrange point of `ParamsKZG` bytes already parsed by [`parse_params`].
pub(crate) fn lagrange_point(payload: &[u8], k: u32, i: u64) -> G1Affine {
    let at = 4 + ((1u64 << k) + i) as usize * 64;
    G1Affine::read(&mut &payload[at..at + 64], SerdeFormat::RawBytesUnchecked).expect("length checked")
}

fn file_sha256(path: &Path) -> Result<(String, u64)> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::io("reading SRS", path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(|e| Error::io("reading SRS", path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        len += n as u64;
    }
    Ok((hex::encode(hasher.finalize()), len))
}

impl Srs {
    /// Imports a ceremony file (snarkjs `.ptau` or halo2 raw `ParamsKZG`) with every check of the
    /// module docs, recomputing the Lagrange points, downsized to `opts.k`.
    pub fn import(path: &Path, opts: &ImportOptions) -> Result<Self> {
        let (sha256, len) = file_sha256(path)?;
        let mut file =
            std::io::BufReader::new(std::fs::File::open(path).map_err(|e| Error::io("reading SRS", path, e))?);
        let mut magic = [0u8; 4];
        file.read_exact(&mut magic).map_err(|_| srs_error(path, SrsError::Truncated { what: "magic" }))?;
        file.rewind().map_err(|e| Error::io("reading SRS", path, e))?;
        let (format, powers) = if &magic == ptau::MAGIC {
            ("snarkjs .ptau", ptau::read(&mut file, len, opts.k))
        } else {
            ("halo2 ParamsKZG (raw)", raw::read(&mut file, len, opts.k))
        };
        let powers = powers.map_err(|e| srs_error(path, e))?;
        check_powers(&powers.g1, &powers.g2, &powers.tau_g2).map_err(|e| srs_error(path, e))?;
        let (ceremony, pinned_as) =
            identify(&powers.tau_g2, &sha256, opts.allow_unknown_ceremony).map_err(|e| srs_error(path, e))?;
        let k = opts.k.unwrap_or(powers.available_k);
        let lagrange = g_to_lagrange(powers.g1.iter().map(|p| p.to_curve()).collect(), k);
        let (params, bytes) = params_from_parts(k, &powers.g1, &lagrange, &powers.g2, &powers.tau_g2);
        let name = path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned());
        tracing::info!(file = %path.display(), format, %ceremony, k, "imported a ceremony SRS");
        Ok(Self {
            params,
            info: SrsInfo {
                sha256: sha256_hex(&bytes),
                k,
                insecure: false,
                source: path.display().to_string(),
                ceremony,
                ceremony_file: Some(CeremonyFile { name, sha256, format: format.into(), pinned_as }),
                dev_seed: None,
            },
        })
    }

    /// Loads an SRS written by [`Srs::save`], re-checking it; any other file is imported as a
    /// ceremony file with [`Srs::import`]'s defaults.
    pub fn load(path: &Path) -> Result<Self> {
        let mut magic = [0u8; 8];
        let framed = std::fs::File::open(path)
            .and_then(|mut f| f.read_exact(&mut magic))
            .map(|()| &magic == artifact::MAGIC)
            .unwrap_or(false);
        if !framed {
            let (sha256, len) = file_sha256(path)?;
            let prefix_k = u32::from_le_bytes(magic[..4].try_into().expect("4 bytes"));
            let known = ptau::MAGIC == &magic[..4] || ((1..=28).contains(&prefix_k) && raw::raw_len(prefix_k) == len);
            if !known {
                return Err(Error::CorruptArtifact {
                    path: path.into(),
                    what: "KZG SRS",
                    reason: format!(
                        "{len} bytes (sha256 {sha256}): neither a zkinfer SRS, a snarkjs .ptau nor a raw halo2 ParamsKZG file"
                    ),
                });
            }
            return Self::import(path, &ImportOptions::default());
        }
        let (header, payload) = read_saved(path)?;
        let params = parse_params(&payload, header.k).map_err(|reason| Error::CorruptArtifact {
            path: path.into(),
            what: "KZG SRS",
            reason,
        })?;
        let check = || -> Result<(), SrsError> {
            check_powers(params.get_g(), &params.g2(), &params.s_g2())?;
            let mut lagrange = Vec::with_capacity(params.n() as usize);
            let mut rest = &payload[4 + params.n() as usize * 64..];
            for _ in 0..params.n() {
                lagrange.push(G1Affine::read(&mut rest, SerdeFormat::RawBytesUnchecked).expect("length checked"));
            }
            check_lagrange(params.get_g(), &lagrange, header.k)?;
            match Ceremony::of_tau_g2(&params.s_g2()) {
                Some(c) if c.id == header.ceremony => Ok(()),
                Some(c) => Err(SrsError::CeremonyMismatch { claimed: header.ceremony.clone(), actual: c.id.into() }),
                None if header.ceremony == INSECURE_DEV || header.ceremony == UNKNOWN_CEREMONY => Ok(()),
                None => Err(SrsError::CeremonyMismatch {
                    claimed: header.ceremony.clone(),
                    actual: "no known ceremony".into(),
                }),
            }
        };
        check().map_err(|e| srs_error(path, e))?;
        Ok(Self {
            params,
            info: SrsInfo {
                sha256: sha256_hex(&payload),
                k: header.k,
                insecure: header.insecure || header.ceremony == INSECURE_DEV,
                source: path.display().to_string(),
                ceremony: header.ceremony,
                ceremony_file: header.ceremony_file,
                dev_seed: header.dev_seed,
            },
        })
    }

    /// Reads only `[1]G1`, `G2` and `[τ]G2` of a saved SRS (what a verifier uses, see
    /// [`crate::verify`]), with the params SHA-256 its header records. A ceremony file (`.ptau`,
    /// raw `ParamsKZG`) is imported in full instead.
    ///
    /// The points are checked (canonical, on the curve, `g[0]` and the G2 point the generators) and
    /// `[τ]G2` identifies the SRS: a known ceremony's `[τ]G2` must be the one the header names; a
    /// dev SRS's must be the one its seed derives. Only for an unknown ceremony, where nothing but
    /// the file's hash ties the points to a card, is the whole file hashed and compared with the
    /// header (a few hundred milliseconds at k = 20).
    ///
    /// # Errors
    /// [`Error::CorruptArtifact`] for a damaged or foreign file; [`Error::Srs`] with
    /// [`SrsError::CeremonyMismatch`] when the points are not the SRS the header names.
    pub fn load_verifier_points(path: &Path) -> Result<(crate::verify::VerifierSrs, String)> {
        use std::io::SeekFrom;

        #[derive(Deserialize)]
        struct Envelope {
            kind: String,
            payload_sha256: String,
            header: SavedHeader,
        }
        let corrupt = |reason: String| Error::CorruptArtifact { path: path.into(), what: "KZG SRS", reason };
        let io = |e: std::io::Error| Error::io("reading SRS", path, e);
        let mut file = std::fs::File::open(path).map_err(io)?;
        let file_len = file.metadata().map_err(io)?.len();
        let mut prefix = [0u8; 12];
        if file.read_exact(&mut prefix).is_err() || &prefix[..8] != artifact::MAGIC {
            let srs = Self::load(path)?;
            return Ok((crate::verify::VerifierSrs::of(&srs), srs.info.sha256));
        }
        let header_len = u32::from_le_bytes(prefix[8..].try_into().expect("4 bytes")) as u64;
        if header_len > 1 << 20 || 12 + header_len > file_len {
            return Err(corrupt("truncated or implausible header".into()));
        }
        let mut json = vec![0u8; header_len as usize];
        file.read_exact(&mut json).map_err(io)?;
        let envelope: Envelope = serde_json::from_slice(&json).map_err(|e| corrupt(format!("bad header: {e}")))?;
        if envelope.kind != SRS_KIND {
            return Err(corrupt(format!("this file holds a {}", envelope.kind)));
        }
        let header = envelope.header;
        let payload_at = 12 + header_len;
        if file_len - payload_at != raw::raw_len(header.k) {
            return Err(corrupt(format!(
                "{} bytes of parameters do not hold an SRS with k = {} (truncated?)",
                file_len - payload_at,
                header.k
            )));
        }
        let mut head = [0u8; 4 + 64];
        file.read_exact(&mut head).map_err(io)?;
        let n = 1u64 << header.k;
        file.seek(SeekFrom::Start(payload_at + 4 + 2 * n * 64)).map_err(io)?;
        let mut tail = [0u8; 2 * 128];
        file.read_exact(&mut tail).map_err(io)?;
        if head[..4] != header.k.to_le_bytes() {
            return Err(corrupt(format!("the parameters do not start with k = {}", header.k)));
        }
        let g1 = G1Affine::read(&mut &head[4..], SerdeFormat::RawBytes).map_err(|e| corrupt(format!("g[0]: {e}")))?;
        let g2 = G2Affine::read(&mut &tail[..128], SerdeFormat::RawBytes).map_err(|e| corrupt(format!("G2: {e}")))?;
        let tau_g2 =
            G2Affine::read(&mut &tail[128..], SerdeFormat::RawBytes).map_err(|e| corrupt(format!("[τ]G2: {e}")))?;
        let fail = |e: SrsError| srs_error(path, e);
        if g1 != G1Affine::generator() {
            return Err(fail(SrsError::WrongGenerator { what: "τ^0·G1 (g[0])" }));
        }
        if g2 != G2Affine::generator() {
            return Err(fail(SrsError::WrongGenerator { what: "the G2 point" }));
        }
        if bool::from(tau_g2.is_identity()) || tau_g2 == G2Affine::generator() {
            return Err(fail(SrsError::DegenerateTau));
        }
        let mismatch =
            |actual: &str| SrsError::CeremonyMismatch { claimed: header.ceremony.clone(), actual: actual.into() };
        match Ceremony::of_tau_g2(&tau_g2) {
            Some(c) if c.id == header.ceremony => {}
            Some(c) => return Err(fail(mismatch(c.id))),
            None if header.ceremony == INSECURE_DEV => {
                let seed = header.dev_seed.ok_or_else(|| fail(mismatch("a dev SRS without its seed")))?;
                if dev::dev_tau_g2(seed) != tau_g2 {
                    return Err(fail(mismatch(&format!("not the dev SRS of seed {seed}"))));
                }
            }
            None if header.ceremony == UNKNOWN_CEREMONY => {
                // Nothing but the hash ties these points to a card: check the whole payload.
                file.seek(SeekFrom::Start(payload_at)).map_err(io)?;
                let mut hasher = Sha256::new();
                std::io::copy(&mut file, &mut hasher).map_err(io)?;
                let digest = hex::encode(hasher.finalize());
                if digest != envelope.payload_sha256 {
                    return Err(corrupt(format!(
                        "checksum mismatch (expected {}, got {digest}): the file is corrupted or truncated",
                        envelope.payload_sha256
                    )));
                }
            }
            None => return Err(fail(mismatch("no known ceremony"))),
        }
        let verifier =
            crate::verify::VerifierSrs { tau_g2, ceremony: header.ceremony, source: path.display().to_string() };
        Ok((verifier, envelope.payload_sha256))
    }

    /// The SRS derived from a public seed, from the on-disk cache ([`DevSrsCache::from_env`]) or
    /// generated and cached. INSECURE: τ is known to anyone who knows the seed. The same points as
    /// `ParamsKZG::setup(k, ChaCha20Rng::seed_from_u64(seed))`.
    ///
    /// # Panics
    /// If `k` is 0 or above [`dev::MAX_DEV_K`] (as halo2's `setup` does); see
    /// [`Srs::insecure_dev_with`] for an error instead.
    pub fn insecure_dev(k: u32, seed: u64) -> Self {
        Self::insecure_dev_with(&DevSrsCache::from_env(), k, seed, None).expect("a dev SRS needs 1 <= k <= 28")
    }

    /// [`Srs::insecure_dev`] with an explicit cache and a progress callback (`(done, total)`
    /// points, called only while generating).
    ///
    /// # Errors
    /// [`Error::InvalidParams`] if `k` is 0 or above [`dev::MAX_DEV_K`]. Cache failures are
    /// logged, never returned.
    pub fn insecure_dev_with(
        cache: &DevSrsCache,
        k: u32,
        seed: u64,
        progress: Option<dev::Progress<'_>>,
    ) -> Result<Self> {
        cache.get(k, seed, progress)
    }

    /// Writes the SRS as the node loads it: halo2 `ParamsKZG` bytes (raw encoding) framed with
    /// their SHA-256 and the provenance.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut bytes = Vec::new();
        self.params
            .write_custom(&mut bytes, SerdeFormat::RawBytes)
            .map_err(|e| Error::io("serializing SRS", path, e))?;
        let header = SavedHeader {
            k: self.info.k,
            insecure: self.info.insecure,
            ceremony: self.info.ceremony.clone(),
            ceremony_file: self.info.ceremony_file.clone(),
            dev_seed: self.info.dev_seed,
        };
        artifact::write(path, SRS_KIND, &header, &bytes)
    }

    /// A copy downsized to `k` (Lagrange points recomputed), keeping the provenance.
    pub fn downsized(&self, k: u32) -> Result<Self> {
        let params = self.for_k(k)?;
        let mut bytes = Vec::new();
        params.write_custom(&mut bytes, SerdeFormat::RawBytes).expect("writing to a Vec cannot fail");
        let info = SrsInfo { sha256: sha256_hex(&bytes), k, ..self.info.clone() };
        Ok(Self { params, info })
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
