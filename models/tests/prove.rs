//! Real KZG proofs of a zoo model: keygen, prove, verify, and the rejections.

use std::path::Path;

use models::{
    artifact,
    card::{load_verifying_key, VK_KIND},
    graph::QuantModel,
    onnx, prover,
    quant::QuantParams,
    sizing::{plan, PlanOptions},
    srs::Srs,
    Error, Fr,
};

fn mlp() -> QuantModel {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("zoo/digits_mlp.onnx");
    let params = QuantParams { input_scale_bits: 4, ..QuantParams::default() };
    QuantModel::quantize(&onnx::import(&path).unwrap(), params, Some((0, 16))).unwrap()
}

#[test]
fn proofs_verify_and_tampering_is_rejected() {
    let model = mlp();
    let circuit = plan(&model, &PlanOptions { k: None, max_k: prover::DEFAULT_MAX_K, lanes: None }).unwrap().params;
    let k = circuit.k();
    let srs = Srs::insecure_dev(k, 7);
    let (pk, shape) = prover::keygen(&srs.params, &model, &circuit).unwrap();
    let input: Vec<i64> = (0..64).map(|i| (i * 7 % 17) as i64).collect();
    let binding = Fr::from(123u64);
    let proof = prover::prove(&srs.params, &pk, &shape, &model, &input, binding, None).unwrap();
    assert_eq!(proof.output, model.forward(&input).unwrap());
    assert_eq!(proof.instances.len(), shape.num_instances);
    prover::verify(&srs.params, pk.get_vk(), &proof.instances, &proof.proof).unwrap();

    // One flipped byte anywhere in the proof.
    for at in [0, proof.proof.len() / 2, proof.proof.len() - 1] {
        let mut bad = proof.proof.clone();
        bad[at] ^= 1;
        assert!(
            matches!(prover::verify(&srs.params, pk.get_vk(), &proof.instances, &bad), Err(Error::InvalidProof(_))),
            "flip at {at} accepted"
        );
    }
    // A changed output, input or binding.
    let bits = model.params.value_bits;
    let mut wrong_out = proof.output.clone();
    wrong_out[3] += 1;
    for instances in [
        models::circuit::public_instances(binding, &input, &wrong_out, bits),
        models::circuit::public_instances(binding + Fr::from(1u64), &input, &proof.output, bits),
        models::circuit::public_instances(binding, &[&input[1..], &[0]].concat(), &proof.output, bits),
    ] {
        assert!(matches!(
            prover::verify(&srs.params, pk.get_vk(), &instances, &proof.proof),
            Err(Error::InvalidProof(_))
        ));
    }
    // The same proof under another SRS's key is rejected too.
    let other = Srs::insecure_dev(k, 8);
    let (other_pk, _) = prover::keygen(&other.params, &model, &circuit).unwrap();
    assert!(prover::verify(&other.params, other_pk.get_vk(), &proof.instances, &proof.proof).is_err());

    // Wrong inputs never reach the prover.
    assert!(matches!(
        prover::prove(&srs.params, &pk, &shape, &model, &input[1..], binding, None),
        Err(Error::InputLength { expected: 64, got: 63, .. })
    ));
    let mut big = input.clone();
    big[0] = 17;
    assert!(matches!(
        prover::prove(&srs.params, &pk, &shape, &model, &big, binding, None),
        Err(Error::InputOutOfRange { index: 0, value: 17, .. })
    ));

    // Key files survive a round trip and corruption is reported, not panicked on.
    let dir = tempfile::tempdir().unwrap();
    let vk_path = dir.path().join("m.vk");
    artifact::write(&vk_path, VK_KIND, &shape, &prover::vk_to_bytes(pk.get_vk())).unwrap();
    let (vk, _) = load_verifying_key(&vk_path).unwrap();
    prover::verify(&srs.params, &vk, &proof.instances, &proof.proof).unwrap();
    let mut bytes = std::fs::read(&vk_path).unwrap();
    let n = bytes.len();
    bytes[n - 40] ^= 0xff;
    std::fs::write(&vk_path, &bytes).unwrap();
    assert!(matches!(load_verifying_key(&vk_path), Err(Error::CorruptArtifact { .. })));
    std::fs::write(&vk_path, &bytes[..n / 2]).unwrap();
    assert!(matches!(load_verifying_key(&vk_path), Err(Error::CorruptArtifact { .. })));
}

#[test]
fn an_srs_too_small_for_the_circuit_is_an_error() {
    let model = mlp();
    let circuit = plan(&model, &PlanOptions { k: None, max_k: prover::DEFAULT_MAX_K, lanes: None }).unwrap().params;
    let small = Srs::insecure_dev(circuit.k() - 1, 1);
    match small.for_k(circuit.k()) {
        Err(Error::SrsTooSmall { srs_k, circuit_k }) => {
            assert_eq!((srs_k, circuit_k), (circuit.k() - 1, circuit.k()))
        }
        other => panic!("expected SrsTooSmall, got {other:?}"),
    }
    // A larger SRS is downsized.
    let big = Srs::insecure_dev(circuit.k() + 1, 1);
    assert_eq!(halo2_base::halo2_proofs::poly::commitment::Params::k(&big.for_k(circuit.k()).unwrap()), circuit.k());
    // A saved SRS loads back with its digest; a corrupted one is reported.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("srs.bin");
    big.save(&path).unwrap();
    let loaded = Srs::load(&path).unwrap();
    assert_eq!(
        (loaded.info.k, loaded.info.sha256.clone(), loaded.info.insecure),
        (big.info.k, big.info.sha256.clone(), true)
    );
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.truncate(bytes.len() - 1);
    std::fs::write(&path, &bytes).unwrap();
    assert!(matches!(Srs::load(&path), Err(Error::CorruptArtifact { .. })));
    std::fs::write(&path, b"not an srs").unwrap();
    assert!(matches!(Srs::load(&path), Err(Error::CorruptArtifact { .. })));
}
