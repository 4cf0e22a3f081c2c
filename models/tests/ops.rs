//! Every operator module against onnxruntime: each fixture in `tests/fixtures/ops` (made by its
//! committed `gen.py`) is imported, quantized with value bits sized from the bound over its input
//! range, run through the reference pass and compared with onnxruntime's float output; then the
//! circuit is laid out on the same input and must equal the reference bit for bit (MockProver).

use std::path::{Path, PathBuf};

use halo2_base::{gates::circuit::CircuitBuilderStage, halo2_proofs::dev::MockProver};
use models::{
    circuit::{synthesize, ModelCircuit, Witnessing},
    graph::QuantModel,
    onnx,
    quant::{dequantize, QuantParams},
    Fr,
};
use serde::Deserialize;

/// Fixtures of models tract cannot read (see the test).
const TRACT_REFUSES: &[&str] = &["tree_gbm", "tree_regressor"];

#[derive(Deserialize)]
struct Sample {
    inputs: Vec<Vec<f64>>,
    outputs: Vec<Vec<f64>>,
}

#[derive(Deserialize)]
struct Fixture {
    op: String,
    input_range: (f64, f64),
    samples: Vec<Sample>,
}

fn fixtures() -> Vec<(String, PathBuf, Fixture)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ops");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            let fixture: Fixture = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            out.push((name.clone(), dir.join(format!("{name}.onnx")), fixture));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(out.len() >= 60, "expected the operator fixtures, found {}", out.len());
    out
}

/// Quantizes at scales 2^7 (inputs, weights: the fixtures' values are multiples of 2^-7) and
/// 2^10 (activations), with value bits sized from the sound bound over the fixture's range.
fn quantize(name: &str, path: &Path, range: (f64, f64)) -> QuantModel {
    let float = onnx::import(path).unwrap_or_else(|e| panic!("{name}: import failed: {e}"));
    let mut params =
        QuantParams { input_scale_bits: 7, weight_scale_bits: 7, activation_scale_bits: 10, value_bits: 40 };
    let q = |x: f64| (x * 128.0).round() as i64;
    let input_range = Some((q(range.0), q(range.1)));
    let wide = QuantModel::quantize(&float, params, input_range).unwrap();
    params.value_bits = wide.bound().unwrap().required_value_bits.max(8);
    assert!(params.value_bits <= 40, "{name}: needs {} value bits", params.value_bits);
    let model = QuantModel::quantize(&float, params, input_range).unwrap();
    model.check_bound().unwrap();
    model
}

fn mock(model: &QuantModel, input: &[i64]) -> (Vec<i64>, bool) {
    let k = 15;
    // Dot products in the dot-product region, 2 lanes (multi-row sums end in partial rows).
    let mut circuit = ModelCircuit::new(CircuitBuilderStage::Mock, k as u32, 2);
    let s = synthesize(&mut circuit, model, input, Fr::from(7u64), None, Witnessing::Exact).unwrap();
    circuit.calculate_params().unwrap();
    let ok = MockProver::run(k as u32, &circuit, vec![s.instances]).unwrap().verify().is_ok();
    (s.output, ok)
}

#[test]
fn every_operator_matches_onnxruntime_and_the_circuit_equals_the_reference() {
    let mut failures = Vec::new();
    for (name, path, fixture) in fixtures() {
        if fixture.op == "Upsample" {
            // tract does not read Upsample (deprecated since opset 10): refused up front, named.
            match onnx::import(&path) {
                Err(models::Error::Unsupported(r)) => assert_eq!(r[0].op, fixture.op, "{name}"),
                other => panic!("{name}: expected a refusal, got {other:?}"),
            }
            continue;
        }
        if TRACT_REFUSES.contains(&name.as_str()) {
            // tract rejects a binary gradient boosting's single base value and does not read
            // TreeEnsembleRegressor: a named error, not a wrong model.
            let e = onnx::import(&path).unwrap_err().to_string();
            assert!(e.contains("TreeEnsemble"), "{name}: {e}");
            continue;
        }
        let model = quantize(&name, &path, fixture.input_range);
        let out_bits = model.output_scale_bits();
        for (si, sample) in fixture.samples.iter().enumerate() {
            let flat: Vec<f64> = sample.inputs.concat();
            let input = model.quantize_input(&flat).unwrap();
            let out = model.forward(&input).unwrap_or_else(|e| panic!("{name}: forward failed: {e}"));
            let expected: Vec<f64> = sample.outputs.concat();
            assert_eq!(out.len(), expected.len(), "{name}: output length");
            for (j, (q, f)) in out.iter().zip(&expected).enumerate() {
                let got = dequantize(*q, out_bits);
                // Inputs and weights are exact at 2^-7; each rescale to 2^-10 rounds by at most
                // 2^-11, and products of activations add their relative errors.
                let tol = 0.02 + 0.01 * f.abs();
                if (got - f).abs() > tol {
                    failures.push(format!(
                        "{name} ({}) sample {si} out[{j}]: zkinfer {got} vs onnxruntime {f}",
                        fixture.op
                    ));
                    break;
                }
            }
            if si == 0 {
                let (circuit_out, ok) = mock(&model, &input);
                assert!(ok, "{name}: MockProver rejected the honest witness");
                assert_eq!(circuit_out, out, "{name}: circuit differs from the reference");
            }
        }
    }
    assert!(failures.is_empty(), "{} mismatches:\n{}", failures.len(), failures.join("\n"));
}
