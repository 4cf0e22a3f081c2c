//! Reader of snarkjs powers-of-tau files (`.ptau`, as published by the Perpetual Powers of Tau and
//! Hermez ceremonies).
//!
//! Layout (all integers little-endian):
//!
//! ```text
//! "ptau"  u32 version (1)  u32 number of sections
//! repeated: u32 section id  u64 section size  <size bytes>
//!   1 header: u32 n8 (32), q (n8 bytes), u32 power, u32 ceremony power
//!   2 τ^i·G1 for i < 2^(power+1) − 1   (G1 points, 2·n8 bytes each)
//!   3 τ^i·G2 for i < 2^power           (G2 points, 4·n8 bytes each)
//!   4.. α·τ^i·G1, β·τ^i·G1, β·G2, contributions, and (in "prepared" files) Lagrange points
//! ```
//!
//! Only sections 1–3 are read; points are decoded by [`super::points`]. The reader seeks, so a
//! 2^28 file is not loaded into memory to import a 2^11 SRS.

use std::{
    collections::BTreeMap,
    io::{Read, Seek, SeekFrom},
};

use halo2_base::halo2_proofs::halo2curves::bn256::{G1Affine, G2Affine};

use super::{
    points::{Montgomery, G1_BYTES, G2_BYTES},
    Powers, SrsError,
};

/// The file magic.
pub(crate) const MAGIC: &[u8; 4] = b"ptau";
/// The BN254 base field modulus q, little-endian, as section 1 must state it.
const BN254_Q_LE: [u8; 32] = {
    // 0x30644e72e131a029b85045b68181585d97816a916871ca8d3c208c16d87cfd47
    let be: [u8; 32] = [
        0x30, 0x64, 0x4e, 0x72, 0xe1, 0x31, 0xa0, 0x29, 0xb8, 0x50, 0x45, 0xb6, 0x81, 0x81, 0x58, 0x5d, 0x97, 0x81,
        0x6a, 0x91, 0x68, 0x71, 0xca, 0x8d, 0x3c, 0x20, 0x8c, 0x16, 0xd8, 0x7c, 0xfd, 0x47,
    ];
    let mut le = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        le[i] = be[31 - i];
        i += 1;
    }
    le
};

fn read_exact<R: Read>(r: &mut R, buf: &mut [u8], what: &'static str) -> Result<(), SrsError> {
    r.read_exact(buf).map_err(|_| SrsError::Truncated { what })
}

fn read_u32<R: Read>(r: &mut R, what: &'static str) -> Result<u32, SrsError> {
    let mut b = [0u8; 4];
    read_exact(r, &mut b, what)?;
    Ok(u32::from_le_bytes(b))
}

fn read_u64<R: Read>(r: &mut R, what: &'static str) -> Result<u64, SrsError> {
    let mut b = [0u8; 8];
    read_exact(r, &mut b, what)?;
    Ok(u64::from_le_bytes(b))
}

/// Reads the powers needed for a halo2 SRS of size `2^k` (`k = None`: the largest the file holds).
pub(crate) fn read<R: Read + Seek>(r: &mut R, file_len: u64, k: Option<u32>) -> Result<Powers, SrsError> {
    let bad = |reason: String| SrsError::Malformed { format: "snarkjs .ptau", reason };
    let mut magic = [0u8; 4];
    read_exact(r, &mut magic, "magic")?;
    if &magic != MAGIC {
        return Err(bad("missing \"ptau\" magic".into()));
    }
    let version = read_u32(r, "version")?;
    if version != 1 {
        return Err(bad(format!("version {version}, only version 1 is known")));
    }
    let sections = read_u32(r, "section count")?;
    // id → (offset of the section's data, size)
    let mut table = BTreeMap::new();
    let mut at = 12u64;
    for _ in 0..sections {
        r.seek(SeekFrom::Start(at)).map_err(|_| SrsError::Truncated { what: "section table" })?;
        let id = read_u32(r, "section id")?;
        let size = read_u64(r, "section size")?;
        let data = at + 12;
        if data.checked_add(size).is_none_or(|end| end > file_len) {
            return Err(SrsError::Truncated { what: "section data" });
        }
        if table.insert(id, (data, size)).is_some() {
            return Err(bad(format!("section {id} appears twice")));
        }
        at = data + size;
    }
    let section = |id: u32| table.get(&id).copied().ok_or_else(|| bad(format!("section {id} is missing")));

    let (header, header_size) = section(1)?;
    r.seek(SeekFrom::Start(header)).map_err(|_| SrsError::Truncated { what: "header" })?;
    let n8 = read_u32(r, "header")?;
    if n8 != 32 || header_size != 4 + 32 + 8 {
        return Err(bad(format!("field elements of {n8} bytes: not a BN254 file")));
    }
    let mut q = [0u8; 32];
    read_exact(r, &mut q, "header")?;
    if q != BN254_Q_LE {
        return Err(bad("the header's prime is not BN254's base field modulus".into()));
    }
    let power = read_u32(r, "header")?;
    let ceremony_power = read_u32(r, "header")?;
    if !(1..=28).contains(&power) || power > ceremony_power {
        return Err(bad(format!("implausible power {power} (ceremony power {ceremony_power})")));
    }
    let k = k.unwrap_or(power);
    if k > power {
        return Err(SrsError::TooSmall { available: power, wanted: k });
    }

    let (tau_g1, tau_g1_size) = section(2)?;
    let g1_count = (1u64 << (power + 1)) - 1;
    if tau_g1_size != g1_count * G1_BYTES as u64 {
        return Err(bad(format!("section 2 holds {tau_g1_size} bytes, expected {g1_count} G1 points")));
    }
    let (tau_g2, tau_g2_size) = section(3)?;
    if tau_g2_size != (1u64 << power) * G2_BYTES as u64 {
        return Err(bad(format!("section 3 holds {tau_g2_size} bytes, expected {} G2 points", 1u64 << power)));
    }

    let m = Montgomery::new();
    let n = 1usize << k;
    let mut bytes = vec![0u8; n * G1_BYTES];
    r.seek(SeekFrom::Start(tau_g1)).map_err(|_| SrsError::Truncated { what: "τ·G1 powers" })?;
    read_exact(r, &mut bytes, "τ·G1 powers")?;
    let g1 = decode_g1(&m, &bytes)?;
    let mut g2 = [0u8; 2 * G2_BYTES];
    r.seek(SeekFrom::Start(tau_g2)).map_err(|_| SrsError::Truncated { what: "τ·G2 powers" })?;
    read_exact(r, &mut g2, "τ·G2 powers")?;
    Ok(Powers {
        available_k: power,
        g1,
        g2: m.g2(&g2[..G2_BYTES], "τ^0·G2", 0)?,
        tau_g2: m.g2(&g2[G2_BYTES..], "τ^1·G2", 1)?,
    })
}

/// Decodes consecutive G1 points.
pub(crate) fn decode_g1(m: &Montgomery, bytes: &[u8]) -> Result<Vec<G1Affine>, SrsError> {
    bytes.chunks(G1_BYTES).enumerate().map(|(i, b)| m.g1(b, "τ^i·G1", i)).collect()
}

/// Decodes one G2 point (used by the raw reader).
pub(crate) fn decode_g2(m: &Montgomery, bytes: &[u8], what: &'static str) -> Result<G2Affine, SrsError> {
    m.g2(bytes, what, 0)
}
