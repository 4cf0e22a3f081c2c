//! Import and quantization time of a 1M-parameter model (target: under 5 s).
//!
//! Builds an ONNX MLP 1024 → 1024 → 10 (1,059,850 parameters, seeded weights) in a temporary
//! directory, then times `onnx::import`, `QuantModel::quantize` and the interval bound, and prints
//! a table. Run: `cargo bench -p zkinfer-models --bench import`.

use std::time::Instant;

use models::{graph::QuantModel, onnx, quant::QuantParams};
use prost::Message;
use rand::{Rng, SeedableRng};
use tract_onnx::pb;

fn tensor(name: &str, dims: &[i64], rng: &mut impl Rng) -> pb::TensorProto {
    let n: i64 = dims.iter().product();
    pb::TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: pb::tensor_proto::DataType::Float as i32,
        float_data: (0..n).map(|_| rng.gen_range(-0.05f32..0.05)).collect(),
        ..Default::default()
    }
}

fn value_info(name: &str, dims: &[i64]) -> pb::ValueInfoProto {
    use pb::{tensor_shape_proto::dimension::Value, type_proto};
    let dim = dims
        .iter()
        .map(|d| pb::tensor_shape_proto::Dimension { value: Some(Value::DimValue(*d)), ..Default::default() })
        .collect();
    pb::ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: pb::tensor_proto::DataType::Float as i32,
                shape: Some(pb::TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn node(op: &str, inputs: &[&str], output: &str) -> pb::NodeProto {
    pb::NodeProto {
        op_type: op.into(),
        name: output.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        ..Default::default()
    }
}

fn main() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let (d, h, o) = (1024i64, 1024i64, 10i64);
    let graph = pb::GraphProto {
        name: "mlp_1m".into(),
        node: vec![
            node("MatMul", &["x", "w1"], "h0"),
            node("Add", &["h0", "b1"], "h1"),
            node("Relu", &["h1"], "h2"),
            node("MatMul", &["h2", "w2"], "h3"),
            node("Add", &["h3", "b2"], "y"),
        ],
        initializer: vec![
            tensor("w1", &[d, h], &mut rng),
            tensor("b1", &[h], &mut rng),
            tensor("w2", &[h, o], &mut rng),
            tensor("b2", &[o], &mut rng),
        ],
        input: vec![value_info("x", &[1, d])],
        output: vec![value_info("y", &[1, o])],
        ..Default::default()
    };
    let model = pb::ModelProto {
        ir_version: 8,
        opset_import: vec![pb::OperatorSetIdProto { domain: String::new(), version: 17 }],
        graph: Some(graph),
        ..Default::default()
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("mlp_1m.onnx");
    std::fs::write(&path, model.encode_to_vec()).expect("write model");
    let params = d * h + h + h * o + o;

    let t = Instant::now();
    let float = onnx::import(&path).expect("import");
    let import = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let q = QuantModel::quantize(&float, QuantParams { value_bits: 32, ..QuantParams::default() }, Some((-128, 128)))
        .expect("quantize");
    let quantize = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let bound = q.bound().expect("bound");
    let bound_s = t.elapsed().as_secs_f64();
    println!("| model | parameters | import | quantize | interval bound | total |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| MLP 1024-1024-10 | {params} | {import:.2} s | {quantize:.2} s | {bound_s:.2} s | {:.2} s |",
        import + quantize + bound_s
    );
    println!("(bound: {} value bits needed)", bound.required_value_bits);
}
