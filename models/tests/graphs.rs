//! Whole-graph import behaviour on models built here with the ONNX protobuf types: integer, bool
//! and string inputs, several inputs and outputs, symbolic dimensions, every refusal listed at
//! once, and no panic on damaged files.

use std::path::{Path, PathBuf};

use models::{
    graph::QuantModel,
    ir::InputKind,
    onnx::{self, ImportOptions},
    quant::QuantParams,
    Error,
};
use prost::Message;
use tract_onnx::pb::{self, tensor_proto::DataType, tensor_shape_proto::dimension::Value as Dim, type_proto};

fn input(name: &str, dt: DataType, dims: &[Dim]) -> pb::ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| pb::tensor_shape_proto::Dimension { value: Some(d.clone()), ..Default::default() })
        .collect();
    pb::ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: dt as i32,
                shape: Some(pb::TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn node(op: &str, inputs: &[&str], outputs: &[&str], attrs: Vec<pb::AttributeProto>) -> pb::NodeProto {
    pb::NodeProto {
        op_type: op.into(),
        name: outputs[0].into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        attribute: attrs,
        ..Default::default()
    }
}

fn floats(name: &str, dims: &[i64], v: &[f32]) -> pb::TensorProto {
    pb::TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: DataType::Float as i32,
        float_data: v.to_vec(),
        ..Default::default()
    }
}

fn write(dir: &Path, name: &str, graph: pb::GraphProto) -> PathBuf {
    let model = pb::ModelProto {
        ir_version: 8,
        opset_import: vec![pb::OperatorSetIdProto { domain: String::new(), version: 17 }],
        graph: Some(graph),
        ..Default::default()
    };
    let path = dir.join(format!("{name}.onnx"));
    std::fs::write(&path, model.encode_to_vec()).unwrap();
    path
}

fn v(d: i64) -> Dim {
    Dim::DimValue(d)
}

/// `a` (real, [N, 3]) and `n` (int64, [N, 3]): y = a·W + Cast(n); z = ArgMax(y) — two inputs of
/// two types, two outputs of two scales, a symbolic batch `N`.
fn two_inputs_two_outputs(dir: &Path) -> PathBuf {
    let to_float = pb::AttributeProto {
        name: "to".into(),
        r#type: pb::attribute_proto::AttributeType::Int as i32,
        i: DataType::Float as i64,
        ..Default::default()
    };
    let axis = pb::AttributeProto {
        name: "axis".into(),
        r#type: pb::attribute_proto::AttributeType::Int as i32,
        i: 1,
        ..Default::default()
    };
    write(
        dir,
        "two_io",
        pb::GraphProto {
            name: "two_io".into(),
            node: vec![
                node("MatMul", &["a", "w"], &["aw"], vec![]),
                node("Cast", &["n"], &["nf"], vec![to_float]),
                node("Add", &["aw", "nf"], &["y"], vec![]),
                node("ArgMax", &["y"], &["z"], vec![axis]),
            ],
            initializer: vec![floats("w", &[3, 3], &[0.5, -1.0, 0.25, 1.5, 0.75, -0.5, -0.25, 0.125, 1.0])],
            input: vec![
                input("a", DataType::Float, &[Dim::DimParam("N".into()), v(3)]),
                input("n", DataType::Int64, &[Dim::DimParam("N".into()), v(3)]),
            ],
            output: vec![input("y", DataType::Float, &[]), input("z", DataType::Int64, &[])],
            ..Default::default()
        },
    )
}

#[test]
fn several_inputs_of_several_types_and_several_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let path = two_inputs_two_outputs(dir.path());
    let float = onnx::import(&path).unwrap();
    assert_eq!(float.inputs.len(), 2);
    assert_eq!(float.inputs[0].kind, InputKind::Real);
    assert_eq!(float.inputs[1].kind, InputKind::Integer);
    assert_eq!(float.shapes[float.inputs[0].tensor], vec![1, 3], "symbolic N fixed to 1");
    assert_eq!(float.outputs.len(), 2);
    let params = QuantParams { value_bits: 20, ..QuantParams::default() };
    let model = QuantModel::quantize(&float, params, Some((-512, 512))).unwrap();
    assert_eq!(model.input_len(), 6);
    assert_eq!(model.output_len(), 4);
    // a = [1, 0, -1] (scale 2^7), n = [2, -3, 1] (integers, scale 2^0), flat in graph order.
    let input = model.quantize_input(&[1.0, 0.0, -1.0, 2.0, -3.0, 1.0]).unwrap();
    assert_eq!(input, vec![128, 0, -128, 2, -3, 1]);
    let out = model.forward(&input).unwrap();
    // y = a·W + n = [0.5+0.25+2, -1-0.125-3, 0.25-1+1] = [2.75, -4.125, 0.25]; argmax 0.
    let s = model.output_scale_bits();
    let y: Vec<f64> = out[..3].iter().map(|q| *q as f64 / (1u64 << s) as f64).collect();
    assert_eq!(y, vec![2.75, -4.125, 0.25]);
    assert_eq!(out[3], 0, "the index output is rescaled to the common output scale exactly");
    // A non-integer value for the integer input is refused.
    assert!(model.quantize_input(&[1.0, 0.0, -1.0, 2.5, -3.0, 1.0]).is_err());
    // A size given for the symbolic dimension is used.
    let opts = ImportOptions { dims: [("N".to_string(), 2)].into_iter().collect() };
    let float = onnx::import_with(&path, &opts).unwrap();
    assert_eq!(float.shapes[float.inputs[0].tensor], vec![2, 3]);
}

#[test]
fn a_string_input_is_refused_naming_its_type() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "strings",
        pb::GraphProto {
            node: vec![node("Identity", &["s"], &["t"], vec![])],
            input: vec![input("s", DataType::String, &[v(1)])],
            output: vec![input("t", DataType::String, &[])],
            ..Default::default()
        },
    );
    let err = onnx::import(&path).unwrap_err();
    assert!(err.to_string().contains("STRING"), "{err}");
}

#[test]
fn every_unsupported_node_is_listed_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "three_refusals",
        pb::GraphProto {
            node: vec![
                node("Sin", &["x"], &["s"], vec![]),
                node("Cos", &["s"], &["t"], vec![]),
                node("Floor", &["x"], &["e"], vec![]),
                node("Add", &["t", "e"], &["y"], vec![]),
            ],
            input: vec![input("x", DataType::Float, &[v(1), v(4)])],
            output: vec![input("y", DataType::Float, &[])],
            ..Default::default()
        },
    );
    match onnx::import(&path) {
        Err(Error::Unsupported(r)) => {
            let ops: Vec<&str> = r.iter().map(|r| r.op.as_str()).collect();
            assert_eq!(ops, ["Sin", "Cos", "Floor"]);
            let msg = Error::Unsupported(r.clone()).to_string();
            assert!(msg.contains("node `s` (Sin)") && msg.contains("node `e` (Floor)"), "{msg}");
        }
        other => panic!("expected every refusal, got {other:?}"),
    }
}

#[test]
fn damaged_files_are_errors_not_panics() {
    let zoo = Path::new(env!("CARGO_MANIFEST_DIR")).join("zoo/digits_cnn.onnx");
    let bytes = std::fs::read(zoo).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("damaged.onnx");
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for i in 0..64 {
        let mut b = bytes.clone();
        if i % 2 == 0 {
            b.truncate(bytes.len() * i / 64);
        } else {
            for _ in 0..8 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let at = (seed as usize) % b.len();
                b[at] ^= (seed >> 32) as u8 | 1;
            }
        }
        std::fs::write(&path, &b).unwrap();
        let result = std::panic::catch_unwind(|| onnx::import(&path));
        assert!(result.is_ok(), "import panicked on damaged copy {i}");
    }
}
