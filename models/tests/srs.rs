//! The SRS importer on the real Hermez ceremony files committed under `srs/`, and on tampered
//! copies of them, each refused with a named error.

use std::path::{Path, PathBuf};

use halo2_base::halo2_proofs::{
    halo2curves::{
        bn256::{G1Affine, G2Affine},
        group::Curve,
        serde::SerdeObject,
    },
    poly::commitment::ParamsProver,
};
use models::{
    artifact,
    srs::{ImportOptions, Srs, SrsError, SRS_KIND},
    Error,
};

fn srs_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../srs").join(name)
}

fn import(path: &Path, k: Option<u32>) -> Result<Srs, Error> {
    Srs::import(path, &ImportOptions { k, allow_unknown_ceremony: false })
}

/// Writes `bytes` to a temporary file and imports it.
fn import_bytes(bytes: &[u8]) -> Result<Srs, Error> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tampered");
    std::fs::write(&path, bytes).unwrap();
    import(&path, None)
}

fn srs_error(r: Result<Srs, Error>) -> SrsError {
    match r {
        Err(Error::Srs { source, .. }) => source,
        other => panic!("expected an SRS error, got {other:?}"),
    }
}

/// Offsets of the G1 powers in the two files (see the module docs of `models::srs`).
const PTAU_G1: usize = 80;
const RAW_G1: usize = 4;

#[test]
fn imports_the_hermez_ptau_and_raw_files_to_the_same_srs() {
    let ptau = import(&srs_file("8.ptau"), None).unwrap();
    assert_eq!((ptau.info.k, ptau.info.ceremony.as_str(), ptau.info.insecure), (8, "hermez-ppot", false));
    let file = ptau.info.ceremony_file.clone().unwrap();
    assert_eq!(file.pinned_as.as_deref(), Some("powersOfTau28_hez_final_08.ptau"));
    assert_eq!(file.sha256, "f741f2ddee2875915c24db8aae90d021f51181533f1ee3b58baf64b042e91654");

    let raw = import(&srs_file("hermez-raw-11"), None).unwrap();
    assert_eq!((raw.info.k, raw.info.ceremony.as_str()), (11, "hermez-ppot"));
    assert_eq!(raw.info.ceremony_file.as_ref().unwrap().pinned_as.as_deref(), Some("hermez-raw-11"));
    assert_eq!(raw.params.get_g()[0], G1Affine::generator());

    // One ceremony, one τ: the k = 11 file downsized to 8 is byte for byte the .ptau's SRS, and so is
    // importing it at k = 8 directly (Lagrange points recomputed each time).
    assert_eq!(raw.downsized(8).unwrap().info.sha256, ptau.info.sha256);
    assert_eq!(import(&srs_file("hermez-raw-11"), Some(8)).unwrap().info.sha256, ptau.info.sha256);
    assert!(matches!(srs_error(import(&srs_file("8.ptau"), Some(9))), SrsError::TooSmall { available: 8, wanted: 9 }));
}

#[test]
fn an_imported_srs_saves_and_loads_with_its_provenance() {
    let raw = import(&srs_file("hermez-raw-11"), None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hermez-11.srs");
    raw.save(&path).unwrap();
    let loaded = Srs::load(&path).unwrap();
    assert_eq!(loaded.info.sha256, raw.info.sha256);
    assert_eq!(
        (loaded.info.ceremony.clone(), loaded.info.ceremony_file.clone()),
        (raw.info.ceremony.clone(), raw.info.ceremony_file.clone())
    );
    assert!(loaded.info.describe().contains("Hermez"), "{}", loaded.info.describe());
    // A ceremony file given to `load` is imported on the fly.
    assert_eq!(Srs::load(&srs_file("8.ptau")).unwrap().info.k, 8);

    // A flipped payload byte fails the checksum.
    let mut bytes = std::fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n - 300] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    assert!(matches!(Srs::load(&path), Err(Error::CorruptArtifact { .. })));
}

#[test]
fn a_saved_srs_is_rechecked_not_trusted() {
    let raw = import(&srs_file("8.ptau"), None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.srs");
    let mut payload = Vec::new();
    raw.params.write_custom(&mut payload, halo2_base::halo2_proofs::SerdeFormat::RawBytes).unwrap();
    let header = |ceremony: &str| serde_json::json!({ "k": 8, "insecure": false, "ceremony": ceremony });

    // Lagrange point 3 replaced by another valid point, with a fresh checksum.
    let mut bad = payload.clone();
    let at = 4 + 256 * 64 + 3 * 64;
    bad[at..at + 64].copy_from_slice(&G1Affine::generator().to_raw_bytes());
    artifact::write(&path, SRS_KIND, &header("hermez-ppot"), &bad).unwrap();
    assert!(matches!(Srs::load(&path), Err(Error::Srs { source: SrsError::InconsistentLagrange, .. })));

    // A dev SRS whose header claims the ceremony.
    let dev = Srs::insecure_dev(8, 1);
    let mut dev_payload = Vec::new();
    dev.params.write_custom(&mut dev_payload, halo2_base::halo2_proofs::SerdeFormat::RawBytes).unwrap();
    artifact::write(&path, SRS_KIND, &header("hermez-ppot"), &dev_payload).unwrap();
    assert!(matches!(Srs::load(&path), Err(Error::Srs { source: SrsError::CeremonyMismatch { .. }, .. })));
}

#[test]
fn tampered_ceremony_files_are_refused_with_named_errors() {
    let ptau = std::fs::read(srs_file("8.ptau")).unwrap();
    let raw = std::fs::read(srs_file("hermez-raw-11")).unwrap();

    // A flipped byte in a G1 power: the point leaves the curve.
    let mut t = ptau.clone();
    t[PTAU_G1 + 5 * 64 + 7] ^= 0x01;
    assert!(matches!(srs_error(import_bytes(&t)), SrsError::NotOnCurve { index: 5, .. }));

    // A coordinate ≥ q.
    let mut t = raw.clone();
    t[RAW_G1 + 9 * 64..RAW_G1 + 9 * 64 + 32].fill(0xff);
    assert!(matches!(srs_error(import_bytes(&t)), SrsError::NonCanonicalCoordinate { index: 9, .. }));

    // g[5] replaced by another point on the curve (g[5] + G1): only the pairing check can tell.
    let g5 = Srs::import(&srs_file("8.ptau"), &ImportOptions::default()).unwrap().params.get_g()[5];
    let other = (g5 + G1Affine::generator()).to_affine();
    for (bytes, at) in [(&ptau, PTAU_G1), (&raw, RAW_G1)] {
        let mut t = bytes.clone();
        t[at + 5 * 64..at + 6 * 64].copy_from_slice(&other.to_raw_bytes());
        assert!(matches!(srs_error(import_bytes(&t)), SrsError::InconsistentPowers));
    }

    // g[0] is not the generator.
    let mut t = raw.clone();
    t[RAW_G1..RAW_G1 + 64].copy_from_slice(&other.to_raw_bytes());
    assert!(matches!(srs_error(import_bytes(&t)), SrsError::WrongGenerator { .. }));

    // [τ]G2 replaced by [2τ]G2 (a valid subgroup point): the powers no longer match it.
    let mut t = raw.clone();
    let n = t.len();
    let tau_g2 = G2Affine::from_raw_bytes(&t[n - 128..]).unwrap();
    t[n - 128..].copy_from_slice(&(tau_g2 + tau_g2).to_affine().to_raw_bytes());
    assert!(matches!(srs_error(import_bytes(&t)), SrsError::InconsistentPowers));

    // Truncated files.
    assert!(matches!(srs_error(import_bytes(&ptau[..ptau.len() / 2])), SrsError::Truncated { .. }));
    assert!(matches!(srs_error(import_bytes(&raw[..raw.len() - 1])), SrsError::Malformed { .. }));
}

#[test]
fn a_consistent_srs_of_no_known_ceremony_needs_explicit_consent() {
    let dev = Srs::insecure_dev(6, 3);
    let mut bytes = Vec::new();
    dev.params.write_custom(&mut bytes, halo2_base::halo2_proofs::SerdeFormat::RawBytes).unwrap();
    assert!(matches!(srs_error(import_bytes(&bytes)), SrsError::UnknownCeremony { .. }));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dev-raw");
    std::fs::write(&path, &bytes).unwrap();
    let srs = Srs::import(&path, &ImportOptions { k: None, allow_unknown_ceremony: true }).unwrap();
    assert_eq!((srs.info.ceremony.as_str(), srs.info.insecure), ("unknown", false));
    assert_eq!(srs.info.sha256, dev.info.sha256);
    assert_eq!(srs.params.s_g2(), dev.params.s_g2());
}
