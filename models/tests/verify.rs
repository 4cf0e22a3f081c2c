//! Native verification with only `[1]G1`, `G2` and `[τ]G2` of the SRS (`models::verify`): the
//! proofs of the full-SRS verifier verify, tampered proofs and instances and another SRS do not,
//! and the three points are read from SRS files without their powers.

use std::{path::Path, time::Instant};

use models::{
    graph::QuantModel,
    onnx, prover,
    quant::QuantParams,
    sizing::{plan, PlanOptions},
    srs::{dev::dev_tau_g2, ImportOptions, Srs, SrsError},
    verify::VerifierSrs,
    Error, Fr,
};

fn mlp() -> QuantModel {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("zoo/digits_mlp.onnx");
    let params = QuantParams { input_scale_bits: 4, ..QuantParams::default() };
    QuantModel::quantize(&onnx::import(&path).unwrap(), params, Some((0, 16))).unwrap()
}

fn input() -> Vec<i64> {
    (0..64).map(|i| (i * 7 % 17) as i64).collect()
}

#[test]
fn proofs_verify_with_three_points_and_tampering_is_rejected() {
    let model = mlp();
    let k = 14;
    let circuit = plan(&model, &PlanOptions { k: Some(k), max_k: k, lanes: None }).unwrap().params;
    let srs = Srs::insecure_dev(k, 11);
    let (pk, shape) = prover::keygen(&srs.params, &model, &circuit).unwrap();
    let binding = Fr::from(99u64);
    let proof = prover::prove(&srs.params, &pk, &shape, &model, &input(), binding, None).unwrap();
    let vk = pk.get_vk();

    // The seed alone, and the loaded SRS, give the same three points; both verify.
    let small = VerifierSrs::insecure_dev(11);
    assert_eq!(small, VerifierSrs { source: small.source.clone(), ..VerifierSrs::of(&srs) });
    small.verify(vk, &proof.instances, &proof.proof).unwrap();
    VerifierSrs::of(&srs).verify(vk, &proof.instances, &proof.proof).unwrap();
    // The full-SRS verifier agrees.
    prover::verify(&srs.params, vk, &proof.instances, &proof.proof).unwrap();

    for at in [0, proof.proof.len() / 3, proof.proof.len() - 1] {
        let mut bad = proof.proof.clone();
        bad[at] ^= 1;
        assert!(
            matches!(small.verify(vk, &proof.instances, &bad), Err(Error::InvalidProof(_))),
            "flip at {at} accepted"
        );
    }
    assert!(matches!(
        small.verify(vk, &proof.instances, &proof.proof[..proof.proof.len() - 32]),
        Err(Error::InvalidProof(_))
    ));
    assert!(matches!(small.verify(vk, &proof.instances, &[]), Err(Error::InvalidProof(_))));
    let bits = model.params.value_bits;
    let mut wrong_out = proof.output.clone();
    wrong_out[2] -= 1;
    for instances in [
        models::circuit::public_instances(binding, &input(), &wrong_out, bits),
        models::circuit::public_instances(binding + Fr::from(1u64), &input(), &proof.output, bits),
        proof.instances[..proof.instances.len() - 1].to_vec(),
        [&proof.instances[..], &[Fr::from(0u64)]].concat(),
    ] {
        assert!(matches!(small.verify(vk, &instances, &proof.proof), Err(Error::InvalidProof(_))));
    }
    // Another τ (another seed) rejects the proof.
    assert!(matches!(
        VerifierSrs::insecure_dev(12).verify(vk, &proof.instances, &proof.proof),
        Err(Error::InvalidProof(_))
    ));
}

/// Not a timed assertion: prints the native verify time at k = 16 with the three points, next to
/// what the full SRS costs to obtain (generated from the seed, as `verify` did before).
#[test]
fn verify_time_at_k16_is_milliseconds() {
    let model = mlp();
    let circuit = plan(&model, &PlanOptions { k: Some(16), max_k: 16, lanes: None }).unwrap().params;
    let srs = Srs::insecure_dev(16, 5);
    let (pk, shape) = prover::keygen(&srs.params, &model, &circuit).unwrap();
    let proof = prover::prove(&srs.params, &pk, &shape, &model, &input(), Fr::from(1u64), None).unwrap();
    let started = Instant::now();
    let small = VerifierSrs::insecure_dev(5);
    small.verify(pk.get_vk(), &proof.instances, &proof.proof).unwrap();
    let small_ms = started.elapsed().as_secs_f64() * 1e3;
    let started = Instant::now();
    let full = models::srs::dev::generate(16, 5, None).unwrap();
    prover::verify(&full.params, pk.get_vk(), &proof.instances, &proof.proof).unwrap();
    let full_ms = started.elapsed().as_secs_f64() * 1e3;
    println!("native verify at k = 16: {small_ms:.1} ms with [1]G1, G2, [τ]G2 (seed -> τ included); {full_ms:.0} ms generating the full SRS (uncached) and verifying");
}

#[test]
fn verifier_points_are_read_from_saved_srs_files() {
    let dir = tempfile::tempdir().unwrap();

    // A saved dev SRS: its [τ]G2 must be its seed's.
    let dev = Srs::insecure_dev(6, 3);
    let path = dir.path().join("dev.srs");
    dev.save(&path).unwrap();
    let (points, sha) = Srs::load_verifier_points(&path).unwrap();
    assert_eq!(
        (points.tau_g2, points.ceremony.as_str(), sha),
        (dev_tau_g2(3), "insecure-dev", dev.info.sha256.clone())
    );

    // The same file claiming another seed is refused.
    let mut other = Srs::insecure_dev(6, 3);
    other.info.dev_seed = Some(4);
    let forged = dir.path().join("forged.srs");
    other.save(&forged).unwrap();
    assert!(matches!(
        Srs::load_verifier_points(&forged),
        Err(Error::Srs { source: SrsError::CeremonyMismatch { .. }, .. })
    ));

    // A ceremony SRS: identified by [τ]G2 without reading the powers.
    let raw = Path::new(env!("CARGO_MANIFEST_DIR")).join("../srs/hermez-raw-11");
    let hermez = Srs::import(&raw, &ImportOptions { k: Some(9), allow_unknown_ceremony: false }).unwrap();
    let path = dir.path().join("hermez-9.srs");
    hermez.save(&path).unwrap();
    let (points, sha) = Srs::load_verifier_points(&path).unwrap();
    assert_eq!((points.ceremony.as_str(), sha), ("hermez-ppot", hermez.info.sha256.clone()));
    assert_eq!(points.tau_g2, VerifierSrs::of(&hermez).tau_g2);
    // A plain ceremony file is imported in full, with the same points.
    let (points, _) = Srs::load_verifier_points(&raw).unwrap();
    assert_eq!(points.ceremony, "hermez-ppot");

    // A dev SRS relabelled as the ceremony is refused by its points.
    let mut relabelled = Srs::insecure_dev(6, 3);
    relabelled.info.ceremony = "hermez-ppot".into();
    relabelled.info.insecure = false;
    let path = dir.path().join("relabelled.srs");
    relabelled.save(&path).unwrap();
    assert!(matches!(
        Srs::load_verifier_points(&path),
        Err(Error::Srs { source: SrsError::CeremonyMismatch { .. }, .. })
    ));

    // An unknown ceremony is tied to its hash: a damaged power is caught by hashing the file.
    let mut unknown = Srs::insecure_dev(6, 3);
    unknown.info.ceremony = models::srs::UNKNOWN_CEREMONY.into();
    unknown.info.dev_seed = None;
    let path = dir.path().join("unknown.srs");
    unknown.save(&path).unwrap();
    assert_eq!(Srs::load_verifier_points(&path).unwrap().1, unknown.info.sha256);
    let mut bytes = std::fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n - 1000] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    assert!(matches!(Srs::load_verifier_points(&path), Err(Error::CorruptArtifact { .. })));

    // Truncated files and garbage are named errors, not panics.
    bytes.truncate(n - 1);
    std::fs::write(&path, &bytes).unwrap();
    assert!(matches!(Srs::load_verifier_points(&path), Err(Error::CorruptArtifact { .. })));
    std::fs::write(&path, b"ZKINFER1\xff\xff\xff\xff").unwrap();
    assert!(matches!(Srs::load_verifier_points(&path), Err(Error::CorruptArtifact { .. })));
    std::fs::write(&path, b"not an srs at all").unwrap();
    assert!(matches!(Srs::load_verifier_points(&path), Err(Error::CorruptArtifact { .. })));
}
