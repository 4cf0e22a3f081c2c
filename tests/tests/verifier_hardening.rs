//! The hardened verifiers on a real anvil (shared case 14 and the rest of issue 11's verifier items):
//! only the exact valid calldata verifies; an instance or proof scalar plus r, a coordinate plus q,
//! trailing or missing bytes all revert; a point off the curve reverts cheaply instead of burning the
//! gas limit; `encodingHash()` returns the encoding's hash; a dev-SRS verifier runs on chain 31337
//! only, a ceremony-SRS verifier anywhere.

use alloy::{
    network::TransactionBuilder,
    node_bindings::Anvil,
    primitives::{Address, Bytes, U256},
    providers::{DynProvider, Provider},
    rpc::types::TransactionRequest,
};
use prover_node::{chain, proof::Fulfiller, prove};
use verifier_gen::{encoding_hash, Encoding, DEV_CHAIN_ID};
use zkinfer_tests::{anvil, anvil_bin, example_input, zoo, zoo_ceremony, ZooModel};

/// r, the BN254 scalar field modulus (what instances and proof scalars must stay below).
const R: U256 = U256::from_limbs([0x43e1f593f0000001, 0x2833e84879b97091, 0xb85045b68181585d, 0x30644e72e131a029]);
/// q, the BN254 base field modulus (what coordinates must stay below).
const Q: U256 = U256::from_limbs([0x3c208c16d87cfd47, 0x97816a916871ca8d, 0xb85045b68181585d, 0x30644e72e131a029]);

fn add_at(calldata: &[u8], at: usize, v: U256) -> Vec<u8> {
    let mut c = calldata.to_vec();
    let word = U256::from_be_slice(&c[at..at + 32]).wrapping_add(v);
    c[at..at + 32].copy_from_slice(&word.to_be_bytes::<32>());
    c
}

async fn accepted(provider: &DynProvider, verifier: Address, calldata: Vec<u8>) -> bool {
    chain::verify_on_chain(provider, verifier, calldata).await.unwrap().accepted
}

/// Sends `calldata` in a transaction with a 5M gas limit and returns (success, gas used).
async fn send(provider: &DynProvider, verifier: Address, calldata: Vec<u8>) -> (bool, u64) {
    let tx =
        TransactionRequest::default().with_to(verifier).with_input(Bytes::from(calldata)).with_gas_limit(5_000_000);
    let receipt = provider.send_transaction(tx).await.unwrap().get_receipt().await.unwrap();
    (receipt.status(), receipt.gas_used)
}

async fn encoding_hash_of(provider: &DynProvider, verifier: Address) -> Option<Vec<u8>> {
    let selector = &verifier_gen::keccak256(b"encodingHash()")[..4];
    let tx = TransactionRequest::default().with_to(verifier).with_input(Bytes::copy_from_slice(selector));
    provider.call(tx).await.ok().map(|b| b.to_vec())
}

/// Every variant of shared case 14, and the point checks, against one deployed verifier.
async fn check_hardening(provider: &DynProvider, m: &ZooModel, name: &str) {
    let layout = m.compiled.layout.clone().expect("verifier-gen records the calldata layout");
    let verifier = chain::deploy(provider, m.compiled.bytecode.clone()).await.unwrap();
    let fulfiller = Fulfiller {
        chain_id: DEV_CHAIN_ID,
        coordinator: Address::repeat_byte(0xc0),
        address: Address::repeat_byte(0x11),
    };
    let proof = prove::prove(&m.loaded, &example_input(m), None, U256::from(1), &fulfiller).unwrap();
    let valid = proof.verifier_calldata.to_vec();
    assert_eq!(valid.len(), layout.calldata_len(), "{name}: layout length");
    assert!(accepted(provider, verifier, valid.clone()).await, "{name}: valid calldata rejected");

    // encodingHash() commits the code to the card's encoding.
    let expected = encoding_hash(&Encoding::of_card(&m.card));
    assert_eq!(encoding_hash_of(provider, verifier).await.as_deref(), Some(&expected[..]), "{name}: encodingHash");

    let n = layout.num_instances;
    let mut variants: Vec<(String, Vec<u8>)> = Vec::new();
    for i in 0..n {
        variants.push((format!("instance{i}_plus_r"), add_at(&valid, 32 * i, R)));
    }
    let proof_scalars: Vec<usize> =
        layout.scalar_ranges.iter().flat_map(|&(a, b)| (a..b).step_by(32)).filter(|&o| o >= 32 * n).collect();
    assert!(!proof_scalars.is_empty());
    for &o in [proof_scalars[0], proof_scalars[proof_scalars.len() / 2], *proof_scalars.last().unwrap()].iter() {
        variants.push((format!("proof_scalar_{o:#x}_plus_r"), add_at(&valid, o, R)));
    }
    for &p in [layout.points[0], *layout.points.last().unwrap()].iter() {
        variants.push((format!("point_{p:#x}_x_plus_q"), add_at(&valid, p, Q)));
        variants.push((format!("point_{p:#x}_y_plus_q"), add_at(&valid, p + 32, Q)));
    }
    variants.push(("proof_plus_32_bytes".into(), [&valid[..], &[0u8; 31], &[1u8]].concat()));
    variants.push(("proof_plus_1_byte".into(), [&valid[..], &[0u8]].concat()));
    variants.push(("truncated_proof".into(), valid[..valid.len() - 32].to_vec()));
    variants.push(("empty".into(), Vec::new()));
    for (label, calldata) in variants {
        assert!(!accepted(provider, verifier, calldata).await, "{name}: {label} verified");
    }

    // A point off the curve reverts at once: no precompile sees it and burns the gas limit (the old
    // verifiers used all 5M). A reverted transaction still pays prague's calldata floor (EIP-7623,
    // 40 gas per non-zero byte: about 140k for the MLP's 3 KB), hence the bound.
    let off_curve = add_at(&valid, layout.points[0] + 32, U256::from(1));
    let (ok, gas) = send(provider, verifier, off_curve).await;
    assert!(!ok);
    assert!(gas < 250_000, "{name}: an off-curve point cost {gas} gas of a 5M limit");
    let last = *layout.points.last().unwrap();
    let (ok, gas_last) = send(provider, verifier, add_at(&valid, last + 32, U256::from(1))).await;
    assert!(!ok);
    assert!(gas_last < 1_000_000, "{name}: an off-curve final point cost {gas_last} gas of a 5M limit");
    eprintln!("{name}: off-curve first point reverts after {gas} gas, last point after {gas_last} gas");
}

#[tokio::test(flavor = "multi_thread")]
async fn hardened_verifiers_reject_every_variant_of_case_14() {
    let node = anvil();
    let provider = chain::provider(&node.endpoint(), node.keys()[0].clone().into()).unwrap();
    check_hardening(&provider, zoo_ceremony("digits_mlp"), "digits_mlp (Hermez, k ≤ 11)").await;
    check_hardening(&provider, zoo("digits_mlp"), "digits_mlp (dev SRS)").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn dev_srs_verifiers_run_only_on_the_dev_chain() {
    let dev = zoo("digits_mlp");
    let ceremony = zoo_ceremony("digits_mlp");
    assert_eq!(dev.compiled.dev_chain_id, Some(DEV_CHAIN_ID));
    assert!(dev.source.contains("chainid()"));
    assert_eq!(ceremony.compiled.dev_chain_id, None);
    assert!(!ceremony.source.contains("chainid()"));

    // A chain that is not the dev chain.
    let node = Anvil::new().path(anvil_bin()).args(["--hardfork", "prague", "--chain-id", "1"]).spawn();
    let provider = chain::provider(&node.endpoint(), node.keys()[0].clone().into()).unwrap();
    for (m, runs) in [(dev, false), (ceremony, true)] {
        let verifier = chain::deploy(&provider, m.compiled.bytecode.clone()).await.unwrap();
        let fulfiller =
            Fulfiller { chain_id: 1, coordinator: Address::repeat_byte(0xc0), address: Address::repeat_byte(0x11) };
        let proof = prove::prove(&m.loaded, &example_input(m), None, U256::from(1), &fulfiller).unwrap();
        assert_eq!(accepted(&provider, verifier, proof.verifier_calldata.to_vec()).await, runs);
        assert_eq!(encoding_hash_of(&provider, verifier).await.is_some(), runs);
    }
}
