//! ONNX import and quantization against onnxruntime's outputs, the zoo's accuracy, and the errors
//! a user gets for models zkinfer cannot prove.

use std::path::{Path, PathBuf};

use halo2_base::{gates::circuit::CircuitBuilderStage, halo2_proofs::dev::MockProver};
use models::{
    calibrate::{calibrate, CalibrationOptions},
    circuit::{synthesize, ModelCircuit, Witnessing},
    eval::{accuracy, Dataset, FloatRunner},
    graph::QuantModel,
    onnx,
    quant::{dequantize, QuantParams},
    Error, Fr,
};
use serde::Deserialize;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

fn zoo(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("zoo").join(name)
}

#[derive(Deserialize)]
struct Expected {
    input: Vec<f64>,
    output: Vec<f64>,
}

fn mock_prove(model: &QuantModel, input: &[i64], k: u32) -> (Vec<i64>, bool) {
    // Dot products in the dot-product region, 4 lanes (multi-row sums end in partial rows).
    let mut circuit = ModelCircuit::new(CircuitBuilderStage::Mock, k, 4);
    let s = synthesize(&mut circuit, model, input, Fr::from(9u64), None, Witnessing::Exact).unwrap();
    circuit.calculate_params().unwrap();
    let ok = MockProver::run(k, &circuit, vec![s.instances]).unwrap().verify().is_ok();
    (s.output, ok)
}

#[test]
fn fixtures_match_onnxruntime_and_the_circuit_matches_the_reference() {
    for name in ["conv_stride_pad", "maxpool", "residual_add"] {
        let float = onnx::import(&data(&format!("{name}.onnx"))).unwrap();
        let expected: Expected =
            serde_json::from_slice(&std::fs::read(data(&format!("{name}.expected.json"))).unwrap()).unwrap();
        let model = QuantModel::quantize(&float, QuantParams::default(), None).unwrap();
        let input = model.quantize_input(&expected.input).unwrap();
        let out = model.forward(&input).unwrap();
        assert_eq!(out.len(), expected.output.len(), "{name}");
        for (q, f) in out.iter().zip(&expected.output) {
            let got = dequantize(*q, model.output_scale_bits());
            assert!((got - f).abs() < 0.08, "{name}: quantized {got} vs onnxruntime {f}");
        }
        let (circuit_out, ok) = mock_prove(&model, &input, 12);
        assert!(ok, "{name}: MockProver rejected the honest witness");
        assert_eq!(circuit_out, out, "{name}: circuit differs from the reference");
    }
}

#[test]
fn unsupported_operator_names_the_node_and_op() {
    match onnx::import(&data("unsupported_op.onnx")) {
        Err(Error::Unsupported(refusals)) => {
            assert_eq!(refusals.len(), 1);
            assert_eq!(refusals[0].node, "act_sin");
            assert_eq!(refusals[0].op, "Sin");
        }
        other => panic!("expected Unsupported, got {other:?}"),
    }
    let msg = onnx::import(&data("unsupported_op.onnx")).unwrap_err().to_string();
    assert!(msg.contains("act_sin") && msg.contains("Sin"), "{msg}");
}

#[test]
fn malformed_and_missing_files_are_clear_errors() {
    assert!(matches!(onnx::import(&data("malformed.onnx")), Err(Error::MalformedOnnx { .. })));
    assert!(matches!(onnx::import(&data("does_not_exist.onnx")), Err(Error::Io { .. })));
}

#[derive(Deserialize)]
struct Meta {
    input_scale_bits: Option<u32>,
    weight_scale_bits: Option<u32>,
    activation_scale_bits: Option<u32>,
    value_bits: Option<u32>,
    input_range: (f64, f64),
    eval_set: String,
    test_samples: usize,
}

/// Every zoo model, calibrated as `prover-node setup` does from its metadata (input scale and
/// range fixed, the rest calibrated on the eval set, value bits from the bound), keeps its float
/// accuracy within one point; two of them come from torch.onnx (dynamic batch, folded
/// BatchNorm, depthwise Conv, shape arithmetic) and skl2onnx (scaler and per-class MLPs).
#[test]
fn zoo_models_keep_float_accuracy_within_one_point() {
    for name in
        ["digits_mlp", "digits_cnn", "digits_dwcnn", "breast_cancer", "breast_cancer_sigmoid", "digits_transformer"]
    {
        let path = zoo(&format!("{name}.onnx"));
        let meta: Meta = serde_json::from_slice(&std::fs::read(zoo(&format!("{name}.meta.json"))).unwrap()).unwrap();
        let float = onnx::import(&path).unwrap();
        let runner = FloatRunner::for_model(&path, &float).unwrap();
        let set = Dataset::load(&zoo(&meta.eval_set)).unwrap();
        let opts = CalibrationOptions {
            input_scale_bits: meta.input_scale_bits,
            weight_scale_bits: meta.weight_scale_bits,
            activation_scale_bits: meta.activation_scale_bits,
            value_bits: meta.value_bits,
            input_range: Some(meta.input_range),
            samples: Some(set.inputs.clone()),
            ..CalibrationOptions::default()
        };
        let cal = calibrate(&float, &runner, &opts).unwrap();
        let model = QuantModel::quantize(&float, cal.params, Some(cal.input_range)).unwrap();
        model.check_bound().unwrap();
        let acc = accuracy(&runner, &model, &set).unwrap();
        assert!(acc.float > 0.95, "{name}: float accuracy {}", acc.float);
        assert!(
            acc.quantized >= acc.float - 0.01,
            "{name}: quantized {} vs float {} ({:?})",
            acc.quantized,
            acc.float,
            cal.params
        );
        assert_eq!(acc.samples, meta.test_samples);
        println!(
            "{name}: float {:.4} quantized {:.4} params {:?} range {:?}",
            acc.float, acc.quantized, cal.params, cal.input_range
        );
    }
}

#[test]
fn input_errors_say_expected_and_got() {
    let float = onnx::import(&zoo("digits_mlp.onnx")).unwrap();
    let params = QuantParams { input_scale_bits: 4, ..QuantParams::default() };
    let model = QuantModel::quantize(&float, params, Some((0, 16))).unwrap();
    let err = model.quantize_input(&[0.5; 63]).unwrap_err();
    assert!(matches!(err, Error::InputLength { expected: 64, got: 63, .. }), "{err}");
    assert!(err.to_string().contains("64") && err.to_string().contains("63"));
    let mut x = vec![0.5; 64];
    x[7] = 2.0;
    assert!(matches!(model.quantize_input(&x), Err(Error::InputOutOfRange { index: 7, value: 32, min: 0, max: 16 })));
    let mut q = vec![0i64; 64];
    q[3] = -1;
    assert!(matches!(model.forward(&q), Err(Error::InputOutOfRange { index: 3, .. })));
}
