//! Reader of halo2 `ParamsKZG` files in the raw (uncompressed, Montgomery) encoding, the form in
//! which the Perpetual Powers of Tau / Hermez transcripts are distributed for halo2 provers
//! (`perpetual-powers-of-tau-raw-NN`, `hermez-raw-NN`).
//!
//! Layout: `u32 k` (little-endian), `2^k` G1 points `τ^i·G1`, `2^k` G1 Lagrange points
//! `L_i(τ)·G1`, then `G2` and `τ·G2` (points as in [`super::points`]). The Lagrange points are
//! never read: the importer recomputes them from the powers, so a file cannot smuggle in points
//! that are not the Lagrange basis of its own τ.

use std::io::{Read, Seek, SeekFrom};

use super::{
    points::{Montgomery, G1_BYTES, G2_BYTES},
    ptau::{decode_g1, decode_g2},
    Powers, SrsError,
};

/// The file length of a raw `ParamsKZG` file of size `2^k`.
/// `k` beyond 32 saturates (no such file exists; callers then see a length mismatch).
pub(crate) fn raw_len(k: u32) -> u64 {
    if k > 32 {
        return u64::MAX;
    }
    4 + (2u64 << k) * G1_BYTES as u64 + 2 * G2_BYTES as u64
}

/// Reads the powers of a raw `ParamsKZG` file for a halo2 SRS of size `2^k` (`None`: the file's).
pub(crate) fn read<R: Read + Seek>(r: &mut R, file_len: u64, k: Option<u32>) -> Result<Powers, SrsError> {
    let bad = |reason: String| SrsError::Malformed { format: "halo2 ParamsKZG (raw)", reason };
    let mut b = [0u8; 4];
    r.read_exact(&mut b).map_err(|_| SrsError::Truncated { what: "size prefix" })?;
    let file_k = u32::from_le_bytes(b);
    if !(1..=28).contains(&file_k) {
        return Err(bad(format!("implausible size k = {file_k}")));
    }
    if file_len != raw_len(file_k) {
        let compressed = 4 + (2u64 << file_k) * 32 + 2 * 64;
        return Err(bad(if file_len == compressed {
            "compressed points: convert to the raw (uncompressed) encoding first".into()
        } else {
            format!("{file_len} bytes, but a raw file with k = {file_k} has {} bytes", raw_len(file_k))
        }));
    }
    let k = k.unwrap_or(file_k);
    if k > file_k {
        return Err(SrsError::TooSmall { available: file_k, wanted: k });
    }
    let m = Montgomery::new();
    let mut g1 = vec![0u8; (1usize << k) * G1_BYTES];
    r.read_exact(&mut g1).map_err(|_| SrsError::Truncated { what: "τ·G1 powers" })?;
    let g1 = decode_g1(&m, &g1)?;
    let g2_at = 4 + (2u64 << file_k) * G1_BYTES as u64;
    r.seek(SeekFrom::Start(g2_at)).map_err(|_| SrsError::Truncated { what: "G2 points" })?;
    let mut g2 = [0u8; 2 * G2_BYTES];
    r.read_exact(&mut g2).map_err(|_| SrsError::Truncated { what: "G2 points" })?;
    Ok(Powers {
        available_k: file_k,
        g1,
        g2: decode_g2(&m, &g2[..G2_BYTES], "G2")?,
        tau_g2: decode_g2(&m, &g2[G2_BYTES..], "τ·G2")?,
    })
}
