//! A verifier above EIP-170 is cut into contracts that call one another (`verifier_gen::split`), so
//! a layout with many columns still deploys. Case 12 of `../shared/cases` (an MLP 64-160-10) at
//! `k ≤ 10` needs so many columns that its verifier is about 30 KB: set up as a model owner would,
//! it gets a verifier in parts, each under the limit; on anvil the parts deploy through the CREATE2
//! deployer, a valid proof verifies (directly and at registration with the coordinator), and a
//! flipped proof byte, a changed output, or a verifier whose later part is missing are rejected.

use alloy::{
    network::TransactionBuilder,
    primitives::{Address, Bytes, U256},
    providers::Provider,
    rpc::types::TransactionRequest,
};
use prover_node::{
    chain, contracts,
    proof::Fulfiller,
    prove,
    setup::{self, SetupOptions, SrsSource},
};
use verifier_gen::{Compiled, EIP170_LIMIT};
use zkinfer_tests::{anvil, forge_out, root, DEV_SEED};

fn case_input(model: &models::graph::QuantModel) -> Vec<i64> {
    let path = root().join("models/tests/data/cases/12_verifier_too_large.expected.json");
    let expected: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let input: Vec<f64> = serde_json::from_value(expected["input"].clone()).unwrap();
    model.quantize_input(&input).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_verifier_above_eip170_is_deployed_in_parts_and_verifies_on_anvil() {
    let dir = tempfile::tempdir().unwrap();
    let onnx = root().join("models/tests/data/cases/12_verifier_too_large.onnx");
    let mut opts = SetupOptions::new(onnx, dir.path().to_path_buf(), SrsSource::InsecureDev { seed: DEV_SEED });
    opts.max_k = 10;
    let (card, card_path) = setup::run(&opts).expect("setup at k ≤ 10");
    let compiled = Compiled::for_card(&card_path, &card).unwrap();
    let predicted = card.circuit.predicted.clone().expect("predicted costs");
    eprintln!(
        "case 12 at k = {}: {} advice columns, verifier {} bytes in {} contracts ({:?}), predicted {} bytes",
        card.circuit.k,
        card.circuit.advice_columns,
        compiled.total_runtime_bytes(),
        compiled.parts.len() + 1,
        std::iter::once(compiled.deployed_bytecode.len())
            .chain(compiled.parts.iter().map(|p| p.deployed_bytecode.len()))
            .collect::<Vec<_>>(),
        predicted.verifier_bytes,
    );
    assert!(compiled.total_runtime_bytes() > EIP170_LIMIT, "the case is about a verifier too large for one contract");
    assert!(!compiled.parts.is_empty() && compiled.largest_runtime_bytes() <= EIP170_LIMIT);
    assert_eq!(card.verifier.parts.len(), compiled.parts.len());
    for (info, part) in card.verifier.parts.iter().zip(&compiled.parts) {
        assert_eq!((&info.address, &info.codehash), (&part.address, &part.codehash));
        // Each part's sources are written beside the verifier's.
        assert!(dir.path().join(format!("{}.sol", part.contract)).is_file(), "{} source", part.contract);
    }

    let srs = card.srs(None).unwrap();
    let loaded = prove::load(&card_path, &srs).unwrap();
    let input = case_input(&loaded.model);
    let node = anvil();
    let provider = chain::provider(&node.endpoint(), node.keys()[0].clone().into()).unwrap();

    // The verifier alone, its later parts not deployed: it refuses every proof (a call to an
    // address without code answers empty data, which the part before refuses).
    let fulfiller =
        Fulfiller { chain_id: 31337, coordinator: Address::repeat_byte(0xc0), address: Address::repeat_byte(0x11) };
    let proof = prove::prove(&loaded, &input, None, U256::from(1), &fulfiller).unwrap();
    let valid = proof.verifier_calldata.to_vec();
    let lonely = chain::deploy(&provider, compiled.bytecode.clone()).await.unwrap();
    assert!(
        !chain::verify_on_chain(&provider, lonely, valid.clone()).await.unwrap().accepted,
        "accepted without its parts"
    );

    let verifier = chain::deploy_verifier(&provider, &compiled).await.unwrap();
    for part in &compiled.parts {
        let code = provider.get_code_at(part.address.parse().unwrap()).await.unwrap();
        assert_eq!(code.as_ref(), part.deployed_bytecode.as_slice(), "{} at its CREATE2 address", part.contract);
    }
    // Deploying again sends nothing for the parts (they are there) and gives a second verifier.
    assert_ne!(chain::deploy_verifier(&provider, &compiled).await.unwrap(), verifier);

    let ok = chain::verify_on_chain(&provider, verifier, valid.clone()).await.unwrap();
    assert!(ok.accepted, "valid proof rejected by the split verifier");
    // The first verifier, deployed before its parts, now finds them too.
    assert!(chain::verify_on_chain(&provider, lonely, valid.clone()).await.unwrap().accepted);
    let calldata_gas: u64 = valid.iter().map(|b| if *b == 0 { 4 } else { 16 }).sum();
    let execution = ok.tx_gas.unwrap() - 21_000 - calldata_gas;
    let error = (predicted.verify_gas as f64 - execution as f64) / execution as f64;
    eprintln!(
        "case 12: verified for {} gas per transaction ({execution} execution, predicted {}, {:+.1}%)",
        ok.tx_gas.unwrap(),
        predicted.verify_gas,
        100.0 * error
    );
    assert!(error.abs() <= 0.03, "predicted {} gas, measured {execution}", predicted.verify_gas);

    let mut flipped = valid.clone();
    let at = valid.len() - proof.proof.len() / 2;
    flipped[at] ^= 1;
    assert!(!chain::verify_on_chain(&provider, verifier, flipped).await.unwrap().accepted, "flipped proof byte");
    let mut output = valid.clone();
    output[proof.instances.len() * 32 - 1] ^= 1;
    assert!(!chain::verify_on_chain(&provider, verifier, output).await.unwrap().accepted, "changed output");
    // A later part called on its own with made-up memory: it answers for that memory only, and
    // nothing trusts it but the part before it.
    let last: Address = compiled.parts.last().unwrap().address.parse().unwrap();
    let junk = TransactionRequest::default().with_to(last).with_input(Bytes::from(valid.clone()));
    assert!(provider.call(junk).await.is_err(), "a part accepted calldata of the wrong length");

    // Cut finer (a 12,000-byte limit per contract): parts in the middle both restore memory and hand
    // it on. The same proof verifies; a flipped byte does not.
    let encoding = verifier_gen::Encoding::of_card(&card);
    let source = verifier_gen::solidity_source(
        &loaded.srs,
        loaded.pk.get_vk(),
        proof.instances.len(),
        "Case12Fine",
        "case 12, cut finer",
        &encoding,
    )
    .unwrap();
    let (fine, sources) = verifier_gen::compile_verifier(&verifier_gen::default_solc(), &source, "Case12Fine", 12_000)
        .expect("cut into parts of at most 12,000 bytes");
    assert!(fine.parts.len() >= 2, "{} parts", fine.parts.len() + 1);
    assert_eq!(sources.len(), fine.parts.len() + 1);
    assert!(fine.largest_runtime_bytes() <= 12_000);
    let fine_verifier = chain::deploy_verifier(&provider, &fine).await.unwrap();
    let fine_ok = chain::verify_on_chain(&provider, fine_verifier, valid.clone()).await.unwrap();
    assert!(fine_ok.accepted, "valid proof rejected by the verifier in {} parts", fine.parts.len() + 1);
    eprintln!(
        "case 12 in {} parts of at most 12,000 bytes: {} gas per transaction ({} bytes of memory handed on)",
        fine.parts.len() + 1,
        fine_ok.tx_gas.unwrap(),
        source.memory_end
    );
    let mut flipped = valid.clone();
    flipped[valid.len() - 40] ^= 1;
    assert!(!chain::verify_on_chain(&provider, fine_verifier, flipped).await.unwrap().accepted);

    // Through the coordinator: registration measures the verifier on the sample proof.
    let sample = Bytes::from(valid.clone());
    let deployment = contracts::deploy_system(&provider, &forge_out(), &card_path, sample, U256::ZERO, 3600)
        .await
        .expect("deploy, register and list with the split verifier");
    assert_eq!(format!("{:?}", deployment.model_id), card.model_id, "model id");
}
