use std::{path::Path, time::Instant};
use models::{eval::*, graph::QuantModel, onnx, prover, quant::QuantParams, srs::Srs, Fr};

fn main() {
    for name in ["digits_mlp", "digits_cnn"] {
        let p = format!("models/zoo/{name}.onnx");
        let f = onnx::import(Path::new(&p)).unwrap();
        let params = QuantParams { input_scale_bits: 4, ..Default::default() };
        let q = QuantModel::quantize(&f, params, Some((0, 16))).unwrap();
        let runner = FloatRunner::load(Path::new(&p), &f.input_shape).unwrap();
        let data = Dataset::load(Path::new("models/zoo/digits_test.json")).unwrap();
        let acc = accuracy(&runner, &q, &data).unwrap();
        println!("{name}: {acc:?}");
        for max_adv in [1usize, 2, 4, 8] {
            let t = Instant::now();
            let cp = prover::choose_k(&q, None, max_adv).unwrap();
            println!("  max_adv {max_adv}: {:?} choose {:?}", cp, t.elapsed());
            let srs = Srs::insecure_dev(cp.k as u32, 1);
            let t = Instant::now();
            let (pk, shape) = prover::keygen(&srs.params, &q, &cp).unwrap();
            println!("  keygen {:?}", t.elapsed());
            let input = q.quantize_input(&data.inputs[0]).unwrap();
            let t = Instant::now();
            let proof = prover::prove(&srs.params, &pk, &shape, &q, &input, Fr::from(7u64)).unwrap();
            println!("  prove {:?} bytes {}", t.elapsed(), proof.proof.len());
            prover::verify(&srs.params, pk.get_vk(), &proof.instances, &proof.proof).unwrap();
            let mut bad = proof.instances.clone(); bad[70] += Fr::from(1u64);
            assert!(prover::verify(&srs.params, pk.get_vk(), &bad, &proof.proof).is_err());
            println!("  verify ok");
        }
    }
}
