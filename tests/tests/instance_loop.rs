//! A model with a 64×64 input — a few hundred public instance words — gets a verifier that
//! deploys (its bytecode does not grow with the instances: they are evaluated in a loop, see
//! `verifier_gen::instances`) and, on a real anvil, accepts a valid proof and rejects a changed
//! input word in the middle of the instances, a changed output, a flipped proof byte, and a
//! non-canonical instance.

use alloy::primitives::U256;
use models::{
    graph::QuantModel,
    ir::{FloatModel, InputKind, Layer, LayerKind, ModelInput},
    prover,
    quant::QuantParams,
    srs::Srs,
    Fr,
};
use prover_node::chain;
use verifier_gen::{Encoding, EIP170_LIMIT};
use zkinfer_tests::anvil;

/// Side of the square input image.
const SIDE: usize = 64;
/// Patch side of the strided convolution (stride = patch: every pixel is read once).
const PATCH: usize = 8;
/// Classes of the dense head.
const CLASSES: usize = 4;
/// r, the BN254 scalar field modulus.
const R: U256 = U256::from_limbs([0x43e1f593f0000001, 0x2833e84879b97091, 0xb85045b68181585d, 0x30644e72e131a029]);

/// Deterministic weights in [-0.25, 0.25].
fn weight(i: usize) -> f32 {
    let h = (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(17);
    ((h % 1001) as f32 / 1000.0 - 0.5) * 0.5
}

/// input [1, 1, 64, 64] → Conv 1→1, 8×8 kernel, stride 8 (as a linear layer) → ReLU → Dense 64→4.
fn conv_model() -> QuantModel {
    let cells = SIDE / PATCH;
    let conv: Vec<Vec<(u32, f32)>> = (0..cells * cells)
        .map(|o| {
            let (oy, ox) = (o / cells, o % cells);
            (0..PATCH * PATCH)
                .map(|k| {
                    let (ky, kx) = (k / PATCH, k % PATCH);
                    (((oy * PATCH + ky) * SIDE + ox * PATCH + kx) as u32, weight(k))
                })
                .collect()
        })
        .collect();
    let dense: Vec<Vec<(u32, f32)>> =
        (0..CLASSES).map(|c| (0..cells * cells).map(|i| (i as u32, weight(1000 + c * 64 + i))).collect()).collect();
    let layer = |node: &str, inputs: Vec<usize>, output: usize, kind: LayerKind| Layer {
        node: node.into(),
        op: node.into(),
        inputs,
        output,
        kind,
    };
    let float = FloatModel {
        shapes: vec![vec![1, 1, SIDE, SIDE], vec![1, 1, cells, cells], vec![1, 1, cells, cells], vec![1, CLASSES]],
        inputs: vec![ModelInput { name: "image".into(), tensor: 0, kind: InputKind::Real }],
        layers: vec![
            layer("conv", vec![0], 1, LayerKind::Linear { terms: conv, bias: vec![0.0625; cells * cells] }),
            layer("relu", vec![1], 2, LayerKind::Relu),
            layer("fc", vec![2], 3, LayerKind::Linear { terms: dense, bias: vec![0.125, -0.125, 0.0, 0.25] }),
        ],
        outputs: vec![3],
        output_names: vec!["logits".into()],
    };
    let params = QuantParams::default();
    let one = 1i64 << params.input_scale_bits;
    QuantModel::quantize(&float, params, Some((0, one))).expect("quantize")
}

fn flip(calldata: &[u8], byte: usize) -> Vec<u8> {
    let mut c = calldata.to_vec();
    c[byte] ^= 0x01;
    c
}

/// Largest circuit size the cost model may choose (it picks the cheapest layout to prove whose
/// verifier fits).
const MAX_K: u32 = 16;

#[tokio::test(flavor = "multi_thread")]
async fn a_64x64_input_model_gets_a_deployable_verifier_that_checks_every_instance() {
    let model = conv_model();
    assert_eq!(model.input_len(), SIDE * SIDE);
    let plan = models::sizing::plan(&model, &models::sizing::PlanOptions { k: None, max_k: MAX_K, lanes: None })
        .expect("circuit shape");
    let circuit = plan.params.clone();
    let k = circuit.k();
    let srs = Srs::insecure_dev(k, 64);
    let (pk, shape) = prover::keygen(&srs.params, &model, &circuit).expect("keygen");
    let n = shape.num_instances;
    assert!(n > 250, "{n} instance words: the test is about a large instance count");

    let dir = tempfile::tempdir().expect("temp dir");
    let encoding = Encoding::of_model(&model);
    let started = std::time::Instant::now();
    let generated = verifier_gen::generate(
        &srs.params,
        pk.get_vk(),
        n,
        &encoding,
        "Conv64Verifier",
        "64x64-input test model",
        &verifier_gen::default_solc(),
        dir.path(),
    )
    .expect("a deployable verifier");
    let compiled = generated.compiled;
    let size = compiled.deployed_bytecode.len();
    eprintln!("64x64 input: {n} instance words, verifier {size} bytes (generated in {:?})", started.elapsed());
    assert!(size < EIP170_LIMIT, "{size} bytes");
    let layout = compiled.layout.clone().expect("layout");
    assert_eq!(layout.num_instances, n);
    assert_eq!(layout.scalar_ranges[0], (0, 32 * n), "the instances are checked canonical in one run");

    let input: Vec<i64> = (0..SIDE * SIDE).map(|i| ((i * 37 + i / SIDE * 11) % 129) as i64).collect();
    let binding = Fr::from(0xb1du64);
    let started = std::time::Instant::now();
    let proof = prover::prove(&srs.params, &pk, &shape, &model, &input, binding, None).expect("prove");
    eprintln!("64x64 input: proved at k = {k} ({circuit:?}) in {:?}", started.elapsed());
    assert_eq!(proof.instances.len(), n);
    assert_eq!(
        proof.instances,
        models::circuit::public_instances(binding, &input, &proof.output, model.params.value_bits)
    );
    let valid = verifier_gen::calldata(&proof.instances, &proof.proof);
    assert_eq!(valid.len(), layout.calldata_len());

    let node = anvil();
    let provider = chain::provider(&node.endpoint(), node.keys()[0].clone().into()).expect("provider");
    let verifier = chain::deploy(&provider, compiled.bytecode.clone()).await.expect("deploy");
    let ok = chain::verify_on_chain(&provider, verifier, valid.clone()).await.expect("call");
    assert!(ok.accepted, "valid proof rejected");
    eprintln!("64x64 input: verified on anvil (prague) for {} gas", ok.tx_gas.unwrap_or_default());
    // The sizing's gas prediction (made before keygen) counts the instance loop: execution gas is
    // the transaction's minus the intrinsic 21k and the calldata (16 per non-zero byte, 4 per zero).
    let calldata_gas: u64 = valid.iter().map(|b| if *b == 0 { 4 } else { 16 }).sum();
    let execution = ok.tx_gas.expect("gas") - 21_000 - calldata_gas;
    let error = (plan.cost.verify_gas as f64 - execution as f64).abs() / execution as f64;
    eprintln!("64x64 input: predicted {} gas, measured {execution} ({:.1}% off)", plan.cost.verify_gas, 100.0 * error);
    assert!(error <= 0.02, "predicted {} gas, measured {execution} with {n} instance words", plan.cost.verify_gas);

    // The instance words: [binding, packed input.., packed output..].
    let input_words = model.input_len().div_ceil(models::circuit::values_per_word(model.params.value_bits));
    let middle = 1 + input_words / 2;
    let mut other_input = input.clone();
    other_input[SIDE * SIDE / 2 + SIDE / 2] += 1;
    let mut other_output = proof.output.clone();
    other_output[CLASSES - 1] += 1;
    let repacked = |input: &[i64], output: &[i64]| {
        let instances = models::circuit::public_instances(binding, input, output, model.params.value_bits);
        verifier_gen::calldata(&instances, &proof.proof)
    };
    let mut plus_r = valid.clone();
    let word = U256::from_be_slice(&plus_r[32 * middle..32 * middle + 32]) + R;
    plus_r[32 * middle..32 * middle + 32].copy_from_slice(&word.to_be_bytes::<32>());
    let variants = [
        ("a flipped bit of the middle instance word", flip(&valid, 32 * middle + 31)),
        ("a flipped high bit of the middle instance word", flip(&valid, 32 * middle + 2)),
        ("one input pixel in the middle changed by one", repacked(&other_input, &proof.output)),
        ("the last output changed by one", repacked(&input, &other_output)),
        ("a flipped bit of the last (output) instance word", flip(&valid, 32 * n - 1)),
        ("a flipped bit of the second instance word", flip(&valid, 32 + 31)),
        ("a flipped proof byte", flip(&valid, 32 * n + proof.proof.len() / 2)),
        ("the middle instance word plus r", plus_r),
        ("one instance word fewer", [&valid[32..32 * n], &proof.proof[..]].concat()),
    ];
    for (what, calldata) in variants {
        assert_ne!(calldata, valid);
        let verdict = chain::verify_on_chain(&provider, verifier, calldata).await.expect("call");
        assert!(!verdict.accepted, "{what}: accepted");
    }
    // Still accepted after all that (nothing above changed the verifier's state).
    assert!(chain::verify_on_chain(&provider, verifier, valid).await.expect("call").accepted);
}
