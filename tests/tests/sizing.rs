//! The sizing cost model against real verifiers: for zoo models at several dot-product lane counts,
//! the verifier's bytecode and the gas of a verifying call on anvil are within the model's stated
//! error of what `models::sizing::predict` said before key generation.
//!
//! `ZKINFER_SIZING_SWEEP=1` runs more layouts and prints the table the coefficients were fitted to.

use alloy::primitives::{Address, U256};
use models::sizing::{self, ShapeCounts};
use prover_node::{
    chain,
    proof::{Fulfiller, InputFile},
    prove,
    setup::{self, SetupOptions, SrsSource},
};
use zkinfer_tests::{anvil, root, DEV_SEED};

/// Relative error allowed on bytecode size and on gas.
const BYTES_TOLERANCE: f64 = 0.10;
const GAS_TOLERANCE: f64 = 0.12;

struct Measured {
    name: String,
    lanes: usize,
    k: u32,
    counts: ShapeCounts,
    predicted: sizing::Cost,
    bytes: usize,
    gas: u64,
}

async fn measure(provider: &alloy::providers::DynProvider, name: &str, lanes: usize) -> Option<Measured> {
    let dir = tempfile::tempdir().unwrap();
    let onnx = root().join(format!("models/zoo/{name}.onnx"));
    let mut opts = SetupOptions::new(onnx, dir.path().to_path_buf(), SrsSource::InsecureDev { seed: DEV_SEED });
    opts.lanes = Some(lanes);
    let (card, card_path) = match setup::run(&opts) {
        Ok(done) => done,
        Err(e) => {
            eprintln!("setup of {name} with {lanes} lanes: {e}");
            return None;
        }
    };
    let srs = card.srs(None).unwrap();
    let loaded = prove::load(&card_path, &srs).unwrap();
    let params = loaded.shape.circuit_params();
    let counts = ShapeCounts::of(&params);
    let predicted = sizing::predict(params.k(), counts, loaded.shape.num_instances);
    let compiled = verifier_gen::Compiled::for_card(&card_path, &card).unwrap();
    let address = chain::deploy(provider, compiled.bytecode.clone()).await.unwrap();
    let input = InputFile::load(&root().join(format!("models/zoo/{name}.input.json")))
        .unwrap()
        .quantized(&loaded.model)
        .unwrap();
    let fulfiller =
        Fulfiller { chain_id: 31337, coordinator: Address::repeat_byte(0xc0), address: Address::repeat_byte(0x11) };
    let proof = prove::prove(&loaded, &input, None, U256::from(1), &fulfiller).unwrap();
    let on_chain = chain::verify_on_chain(provider, address, proof.verifier_calldata.to_vec()).await.unwrap();
    assert!(on_chain.accepted, "{name} with {lanes} lanes: valid proof rejected");
    // Execution gas: the transaction's minus intrinsic (21k) and calldata (16 per non-zero byte, 4 per zero).
    let calldata_gas: u64 = proof.verifier_calldata.iter().map(|b| if *b == 0 { 4 } else { 16 }).sum();
    let gas = on_chain.tx_gas.unwrap() - 21_000 - calldata_gas;
    Some(Measured {
        name: name.into(),
        lanes,
        k: params.k(),
        counts,
        predicted,
        bytes: compiled.deployed_bytecode.len(),
        gas,
    })
}

fn relative(predicted: f64, actual: f64) -> f64 {
    (predicted - actual).abs() / actual
}

#[tokio::test(flavor = "multi_thread")]
async fn predicted_verifier_bytes_and_gas_match_the_generated_verifiers() {
    let node = anvil();
    let provider = chain::provider(&node.endpoint(), node.keys()[0].clone().into()).unwrap();
    let sweep = std::env::var_os("ZKINFER_SIZING_SWEEP").is_some();
    let layouts: Vec<(&str, usize)> = if sweep {
        let mut v = Vec::new();
        for name in ["digits_mlp", "digits_cnn", "breast_cancer", "digits_dwcnn"] {
            for lanes in [0, 1, 2, 4, 8, 12] {
                v.push((name, lanes));
            }
        }
        v
    } else {
        // breast_cancer_sigmoid: a function table (a second lookup argument) deploys, verifies and is predicted.
        // digits_transformer: attention, LayerNorm, GELU, Softmax (k = 16).
        vec![
            ("digits_mlp", 0),
            ("digits_mlp", 6),
            ("digits_cnn", 3),
            ("breast_cancer_sigmoid", 0),
            ("digits_transformer", 0),
            // breast_cancer_forest: comparisons and path selection (a tree ensemble).
            ("breast_cancer_forest", 0),
        ]
    };
    let mut rows = Vec::new();
    for (name, lanes) in layouts {
        let Some(m) = measure(&provider, name, lanes).await else {
            assert!(sweep, "{name} with {lanes} lanes: no layout");
            continue;
        };
        eprintln!("measured {} lanes={} k={} {:?} bytes={} gas={}", m.name, m.lanes, m.k, m.counts, m.bytes, m.gas);
        rows.push(m);
    }
    println!("model,lanes,k,advice,fixed,permutation,lookups,degree,bytes,pred_bytes,gas,pred_gas");
    for m in &rows {
        let c = m.counts;
        println!(
            "{},{},{},{},{},{},{},{},{},{},{},{}",
            m.name,
            m.lanes,
            m.k,
            c.advice,
            c.fixed,
            c.permutation,
            c.lookups,
            c.degree,
            m.bytes,
            m.predicted.verifier_bytes,
            m.gas,
            m.predicted.verify_gas
        );
    }
    for m in &rows {
        let eb = relative(m.predicted.verifier_bytes as f64, m.bytes as f64);
        let eg = relative(m.predicted.verify_gas as f64, m.gas as f64);
        assert!(
            eb <= BYTES_TOLERANCE,
            "{} ({} lanes): predicted {} bytes, generated {}",
            m.name,
            m.lanes,
            m.predicted.verifier_bytes,
            m.bytes
        );
        assert!(
            eg <= GAS_TOLERANCE,
            "{} ({} lanes): predicted {} gas, measured {}",
            m.name,
            m.lanes,
            m.predicted.verify_gas,
            m.gas
        );
    }
}
