//! The ceremonies zkinfer trusts, and the exact files of them it knows.
//!
//! A ceremony is identified by its `[τ]G2`: the importer's pairing check proves that a file's G1
//! powers are the powers of the τ behind the file's own `[τ]G2`, so a file whose `[τ]G2` is a
//! ceremony's holds exactly that ceremony's SRS (as far as it reaches), whatever its bytes. The
//! pinned file hashes additionally name the exact published files, so a user can check what they
//! imported against the ceremony's own list.
//!
//! Adding a ceremony is a reviewed change to [`CEREMONIES`]: verifier-gen emits verifiers without
//! the dev-chain guard only for SRSs whose `[τ]G2` is listed here.

use halo2_base::halo2_proofs::{
    arithmetic::CurveAffine,
    halo2curves::bn256::{Fq, Fq2, G2Affine},
    halo2curves::ff::PrimeField,
};

/// A trusted powers-of-tau ceremony.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ceremony {
    /// Short id (recorded in model cards).
    pub id: &'static str,
    /// Human-readable name.
    pub name: &'static str,
    /// `[τ]G2` in affine normal form, big-endian hex: `x.c0, x.c1, y.c0, y.c1`.
    tau_g2: [&'static str; 4],
}

/// A published file of a ceremony, pinned by its SHA-256.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PinnedFile {
    /// The file's published name.
    pub name: &'static str,
    /// Its SHA-256 (lower-case hex).
    pub sha256: &'static str,
    /// The ceremony it belongs to.
    pub ceremony: &'static str,
    /// The largest halo2 `k` it supports.
    pub k: u32,
}

/// The Hermez run of the Perpetual Powers of Tau (54 contributions and a random beacon).
pub const HERMEZ: Ceremony = Ceremony {
    id: "hermez-ppot",
    name: "Perpetual Powers of Tau, Hermez run (54 contributions + beacon)",
    tau_g2: [
        "30441fd1b5d3370482c42152a8899027716989a6996c2535bc9f7fee8aaef79e",
        "26186a2d65ee4d2f9c9a5b91f86597d35f192cd120caf7e935d8443d1938e23d",
        "054793348f12c0cf5622c340573cb277586319de359ab9389778f689786b1e48",
        "1970ea81dd6992adfbc571effb03503adbbb6a857f578403c6c40e22d65b3c02",
    ],
};

/// Every trusted ceremony.
pub const CEREMONIES: &[Ceremony] = &[HERMEZ];

/// Every known file (see `srs/README.md` for provenance).
pub const PINNED_FILES: &[PinnedFile] = &[
    PinnedFile {
        name: "powersOfTau28_hez_final_08.ptau",
        sha256: "f741f2ddee2875915c24db8aae90d021f51181533f1ee3b58baf64b042e91654",
        ceremony: "hermez-ppot",
        k: 8,
    },
    PinnedFile {
        name: "hermez-raw-11",
        sha256: "c8edbefe1562c50ea105f79d9d49989bcfbf1e6a335b3858d44260e71972b8ee",
        ceremony: "hermez-ppot",
        k: 11,
    },
];

impl Ceremony {
    /// The ceremony's `[τ]G2`.
    pub fn tau_g2(&self) -> G2Affine {
        let fq = |hex_be: &str| {
            let mut repr: [u8; 32] = hex::decode(hex_be).expect("valid hex").try_into().expect("32 bytes");
            repr.reverse();
            Option::<Fq>::from(Fq::from_repr(repr)).expect("canonical")
        };
        let [xc0, xc1, yc0, yc1] = self.tau_g2.map(fq);
        Option::from(G2Affine::from_xy(Fq2 { c0: xc0, c1: xc1 }, Fq2 { c0: yc0, c1: yc1 })).expect("on the curve")
    }

    /// The ceremony whose `[τ]G2` this is.
    pub fn of_tau_g2(tau_g2: &G2Affine) -> Option<&'static Self> {
        CEREMONIES.iter().find(|c| c.tau_g2() == *tau_g2)
    }

    /// The ceremony with this id.
    pub fn by_id(id: &str) -> Option<&'static Self> {
        CEREMONIES.iter().find(|c| c.id == id)
    }
}

impl PinnedFile {
    /// The pinned file with this SHA-256.
    pub fn by_sha256(sha256: &str) -> Option<&'static Self> {
        PINNED_FILES.iter().find(|f| f.sha256.eq_ignore_ascii_case(sha256))
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    #[test]
    fn pinned_files_name_known_ceremonies() {
        for f in PINNED_FILES {
            assert!(Ceremony::by_id(f.ceremony).is_some(), "{}", f.name);
        }
        assert_eq!(Ceremony::of_tau_g2(&HERMEZ.tau_g2()), Some(&HERMEZ));
        assert_eq!(Ceremony::of_tau_g2(&G2Affine::generator()), None);
    }
}
