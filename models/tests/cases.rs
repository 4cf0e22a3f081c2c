//! The shared cases zkinfer used to get wrong (grouped convolution, PRelu, a dynamic batch with
//! shape arithmetic, Gemm's alpha/beta/transA, scales too coarse for a model, an in-range input
//! that overflowed at prove time), each with onnxruntime's output as the right value. Every case
//! goes the way `prover-node setup` does with default flags: import, calibrate, quantize with value
//! bits sized from the bound; then the reference pass must match onnxruntime within the calibrated
//! tolerance and the circuit must equal the reference (MockProver).

use std::path::{Path, PathBuf};

use halo2_base::{gates::circuit::CircuitBuilderStage, halo2_proofs::dev::MockProver};
use models::{
    calibrate::{calibrate, CalibrationOptions},
    circuit::{synthesize, ModelCircuit, Witnessing},
    eval::FloatRunner,
    graph::QuantModel,
    onnx,
    quant::dequantize,
    Error, Fr,
};
use serde::Deserialize;

#[derive(Deserialize)]
struct Expected {
    input: Vec<f64>,
    onnxruntime: Vec<f64>,
}

fn case(name: &str) -> (PathBuf, Expected) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/cases");
    let expected = serde_json::from_slice(&std::fs::read(dir.join(format!("{name}.expected.json"))).unwrap()).unwrap();
    (dir.join(format!("{name}.onnx")), expected)
}

/// Setup's default path: import, calibrate with default options, quantize.
fn setup(path: &Path) -> QuantModel {
    let float = onnx::import(path).unwrap();
    let runner = FloatRunner::for_model(path, &float).unwrap();
    let cal = calibrate(&float, &runner, &CalibrationOptions::default()).unwrap();
    let model = QuantModel::quantize(&float, cal.params, Some(cal.input_range)).unwrap();
    model.check_bound().unwrap();
    model
}

fn mock(model: &QuantModel, input: &[i64]) -> Vec<i64> {
    let k = 14;
    // Dot products in the dot-product region, 2 lanes (multi-row sums end in partial rows).
    let mut circuit = ModelCircuit::new(CircuitBuilderStage::Mock, k as u32, 2);
    let s = synthesize(&mut circuit, model, input, Fr::from(3u64), None, Witnessing::Exact).unwrap();
    circuit.calculate_params().unwrap();
    MockProver::run(k as u32, &circuit, vec![s.instances]).unwrap().assert_satisfied();
    s.output
}

/// Proves the case's input as setup would and compares with onnxruntime: every output within
/// 2% of its value plus 0.2% of the largest output.
fn check(name: &str) -> QuantModel {
    let (path, expected) = case(name);
    let model = setup(&path);
    let input = model.quantize_input(&expected.input).unwrap();
    let out = model.forward(&input).unwrap();
    assert_eq!(mock(&model, &input), out, "{name}: circuit differs from the reference");
    let largest = expected.onnxruntime.iter().fold(0f64, |m, v| m.max(v.abs()));
    for (j, (q, f)) in out.iter().zip(&expected.onnxruntime).enumerate() {
        let got = dequantize(*q, model.output_scale_bits());
        assert!(
            (got - f).abs() <= 0.02 * f.abs() + 0.002 * largest,
            "{name}: out[{j}] = {got}, onnxruntime {f} (params {:?})",
            model.params
        );
    }
    model
}

#[test]
fn case_03_grouped_and_depthwise_convolution() {
    check("03_grouped_conv");
}

#[test]
fn case_04_prelu() {
    check("04_prelu");
}

#[test]
fn case_05_dynamic_batch_and_shape_arithmetic_are_fixed_and_folded() {
    let (path, _) = case("05_dynamic_batch_view");
    let float = onnx::import(&path).unwrap();
    // Shape → Gather → Unsqueeze → Concat → Reshape folded: only the data layers remain.
    assert!(float.layers.iter().all(|l| !["Shape", "Gather", "Concat", "Unsqueeze"].contains(&l.op.as_str())));
    assert_eq!(float.shapes[float.inputs[0].tensor][0], 1, "the batch is fixed to 1");
    check("05_dynamic_batch_view");
}

#[test]
fn case_08_gemm_alpha_beta_and_trans_a() {
    check("08_gemm_alpha_beta");
    check("08_gemm_trans_a");
}

#[test]
fn case_09_calibration_keeps_a_high_gain_model_accurate() {
    // onnxruntime: 1.0271; with fixed 2^7 scales zkinfer used to prove 1.3125 without a warning.
    let model = check("09_batchnorm1d_after_linear");
    assert!(model.params.activation_scale_bits > 7, "calibration kept 2^7: {:?}", model.params);
}

#[test]
fn case_11_every_input_in_the_registered_range_is_provable() {
    let (path, expected) = case("11_overflow_at_prove_time");
    let model = setup(&path);
    let bound = model.check_bound().unwrap();
    assert!(bound.required_value_bits <= model.params.value_bits);
    // The case's input (100.0 everywhere) lies in the registered range and proves.
    check("11_overflow_at_prove_time");
    // The extremes of the range prove too: no paid request can overflow.
    let n = model.input_len();
    for v in [model.input_range.0, model.input_range.1] {
        let out = model.forward(&vec![v; n]).unwrap();
        assert_eq!(mock(&model, &vec![v; n]), out);
    }
    // Outside the range is refused before any proving.
    let too_big = vec![expected.input[0] * 1e3; n];
    assert!(matches!(model.quantize_input(&too_big), Err(Error::InputOutOfRange { .. })));
}

/// Regressions found by trying to break the importer (files made with torch and onnx.helper,
/// onnxruntime's outputs recorded by the script that copied them): integer-to-bool casts,
/// real constants meeting 0/1 flags or indices, bool inputs, and average pooling with
/// `ceil_mode` and `count_include_pad`.
#[test]
fn importer_regressions_match_onnxruntime() {
    #[derive(Deserialize)]
    struct Regression {
        input: Vec<f64>,
        onnxruntime: Vec<f64>,
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/regressions");
    let all: std::collections::BTreeMap<String, Regression> =
        serde_json::from_slice(&std::fs::read(dir.join("expected.json")).unwrap()).unwrap();
    assert!(all.len() >= 8);
    for (name, r) in &all {
        let model = setup(&dir.join(format!("{name}.onnx")));
        let input = model.quantize_input(&r.input).unwrap();
        let out = model.forward(&input).unwrap();
        assert_eq!(mock(&model, &input), out, "{name}: circuit differs from the reference");
        let largest = r.onnxruntime.iter().fold(0f64, |m, v| m.max(v.abs()));
        for (j, (q, f)) in out.iter().zip(&r.onnxruntime).enumerate() {
            let got = dequantize(*q, model.output_scale_bits());
            assert!(
                (got - f).abs() <= 0.02 * f.abs() + 0.002 * largest.max(1.0),
                "{name}: out[{j}] = {got}, onnxruntime {f}"
            );
        }
    }
    // A bool input is true when nonzero: 2 behaves as 1, so every integer in range is provable.
    let model = setup(&dir.join("where_bool_input.onnx"));
    let r = &all["where_bool_input"];
    let mut twos = r.input.clone();
    for v in twos.iter_mut().take(4) {
        *v *= 2.0;
    }
    let a = model.forward(&model.quantize_input(&r.input).unwrap()).unwrap();
    let b = model.forward(&model.quantize_input(&twos).unwrap()).unwrap();
    assert_eq!(a, b);
    // A fractional value for it is refused, naming the type.
    let mut half = r.input.clone();
    half[0] = 0.5;
    assert!(matches!(model.quantize_input(&half), Err(Error::InputNotIntegral { kind: "bool", .. })));
}

/// What zkinfer cannot prove exactly is refused with an error naming the node, never proved
/// wrong, never a panic and never an allocation that exhausts memory: a narrowing integer cast
/// (wraps), integer division (truncates), ConvTranspose's `output_shape` (tract, the float
/// reference, disagrees with onnxruntime), negative pads, a 20M-value Tile, a 200M-value input,
/// zero kernels and strides.
#[test]
fn what_cannot_be_proved_exactly_is_refused() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/regressions");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.starts_with("refused_") {
            continue;
        }
        n += 1;
        let result = std::panic::catch_unwind(|| onnx::import(&path));
        match result {
            Ok(Err(e)) => println!("{name}: {e}"),
            Ok(Ok(_)) => panic!("{name}: imported, expected a refusal"),
            Err(_) => panic!("{name}: the importer panicked"),
        }
    }
    assert!(n >= 7, "found {n} refusal files");
}

/// Case 12 (MLP 64-160-10 with `--max-k 11`, once an undeployable 38 KB verifier after keygen): it now
/// fits one contract at k ≤ 11 (packed dot products). At k ≤ 10 every layout needs so many columns
/// that the verifier is above EIP-170: sizing plans it cut into contracts (`verifier_gen::split`;
/// `tests/tests/split_verifier.rs` deploys and verifies it), with the hand-ons' gas counted. A
/// request no layout fits (too few rows for the forced lanes) is refused in well under a second,
/// before any key is made, naming what to change; the circuit still equals the reference and
/// onnxruntime.
#[test]
fn case_12_sizing_never_ends_at_an_undeployable_verifier() {
    use models::sizing::{plan, PlanOptions, VERIFIER_BYTES_BUDGET};
    let (path, _) = case("12_verifier_too_large");
    let model = setup(&path);
    // With packed dot products (several outputs per weight cell) the case's own request fits.
    let fits = plan(&model, &PlanOptions { k: None, max_k: 11, lanes: None }).unwrap();
    assert!(fits.cost.verifier_bytes <= VERIFIER_BYTES_BUDGET, "{:?}", fits.cost);
    assert_eq!(fits.cost.verifier_parts, 1);
    let started = std::time::Instant::now();
    let split = plan(&model, &PlanOptions { k: None, max_k: 10, lanes: None }).unwrap();
    assert!(started.elapsed() < std::time::Duration::from_secs(1), "sizing took {:?}", started.elapsed());
    println!("max k 10: {:?}", split.cost);
    assert!(split.cost.verifier_bytes > VERIFIER_BYTES_BUDGET && split.cost.verifier_parts >= 2, "{:?}", split.cost);
    // Too few rows for one lane's dot products at k = 10: refused, naming the flags that would do.
    let started = std::time::Instant::now();
    let refused = plan(&model, &PlanOptions { k: Some(10), max_k: models::prover::DEFAULT_MAX_K, lanes: Some(1) });
    let elapsed = started.elapsed();
    match refused {
        Err(Error::NoLayout(why)) => {
            println!("k 10, 1 lane: {why} ({elapsed:?})");
            assert!(why.contains("pass --k ") && !why.contains("--max-k"), "names the wrong flag: {why}");
            // The layout it names reads as setup then prints it (and the card records it): flex-gate
            // advice, lookup advice and lanes apart, not one total of every advice column.
            let at = why.split("it fits (").nth(1).expect("names a layout");
            assert!(at.contains(" advice + ") && at.contains(" lookup columns, dot-product gate of 1 lane,"), "{why}");
        }
        other => panic!("expected NoLayout at k = 10 with 1 lane, got {other:?}"),
    }
    assert!(elapsed < std::time::Duration::from_secs(1), "refusal took {elapsed:?}");
    let chosen = plan(&model, &PlanOptions { k: None, max_k: models::prover::DEFAULT_MAX_K, lanes: None }).unwrap();
    assert!(chosen.cost.verifier_bytes <= VERIFIER_BYTES_BUDGET);
    println!("default: k = {}, {} lanes, {:?}", chosen.params.k(), chosen.params.lanes, chosen.cost);
    check("12_verifier_too_large");
}
