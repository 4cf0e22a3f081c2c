//! The generated Solidity verifiers on a real anvil: valid proofs pass under a gas budget, and
//! tampered proofs, changed instances and the other model's proofs are rejected. Also pins the
//! committed verifiers in `contracts/generated/` to a fresh generation.

use alloy::primitives::{Address, U256};
use prover_node::{chain, prove};
use zkinfer_tests::{anvil, example_input, root, zoo, zoo_ceremony};

/// Gas budgets of one verifying transaction (intrinsic gas and calldata included), prague. The
/// sizing puts prove time first: on the dev SRS the MLP is laid out at k = 10 with 6 advice columns
/// (measured 446,719 gas; 361,577 at k = 13, which proved 3.5× slower) and the CNN at k = 12 with 10
/// (571,720; 449,749 at k = 13, which proved 1.5× slower).
const BUDGET: [(&str, u64); 2] = [("digits_mlp", 470_000), ("digits_cnn", 600_000)];

#[tokio::test(flavor = "multi_thread")]
async fn generated_verifiers_accept_valid_proofs_and_reject_tampered_ones() {
    let node = anvil();
    let signer = node.keys()[0].clone().into();
    let provider = chain::provider(&node.endpoint(), signer).unwrap();
    let fulfiller = prover_node::proof::Fulfiller {
        chain_id: 31337,
        coordinator: Address::repeat_byte(0xc0),
        address: Address::repeat_byte(0x11),
    };

    let mut deployed = Vec::new();
    let mut proofs = Vec::new();
    for (name, budget) in BUDGET {
        let m = zoo(name);
        assert!(m.compiled.deployed_bytecode.len() <= verifier_gen::EIP170_LIMIT);
        let address = chain::deploy(&provider, m.compiled.bytecode.clone()).await.unwrap();
        let proof = prove::prove(&m.loaded, &example_input(m), None, U256::from(1), &fulfiller).unwrap();
        let ok = chain::verify_on_chain(&provider, address, proof.verifier_calldata.to_vec()).await.unwrap();
        assert!(ok.accepted, "{name}: valid proof rejected on-chain");
        let gas = ok.tx_gas.unwrap();
        let size = m.compiled.deployed_bytecode.len();
        eprintln!(
            "{name}: verifier {size} bytes, {} instances, verifying transaction {gas} gas (prague)",
            proof.instances.len()
        );
        assert!(gas < budget, "{name}: verifying costs {gas} gas, budget {budget}");

        let mut flipped = proof.verifier_calldata.to_vec();
        let at = flipped.len() - proof.proof.len() / 2;
        flipped[at] ^= 0x01;
        assert!(
            !chain::verify_on_chain(&provider, address, flipped).await.unwrap().accepted,
            "{name}: flipped proof byte accepted"
        );

        let mut wrong_output = proof.verifier_calldata.to_vec();
        let last_instance_word = proof.instances.len() * 32 - 1;
        wrong_output[last_instance_word] ^= 0x01;
        assert!(
            !chain::verify_on_chain(&provider, address, wrong_output).await.unwrap().accepted,
            "{name}: changed output instance accepted"
        );

        let mut wrong_binding = proof.verifier_calldata.to_vec();
        wrong_binding[31] ^= 0x01;
        assert!(
            !chain::verify_on_chain(&provider, address, wrong_binding).await.unwrap().accepted,
            "{name}: changed binding accepted"
        );
        deployed.push(address);
        proofs.push(proof);
    }
    // Each model's valid proof fails under the other model's verifier.
    for (i, address) in deployed.iter().enumerate() {
        let other = &proofs[1 - i];
        assert!(
            !chain::verify_on_chain(&provider, *address, other.verifier_calldata.to_vec()).await.unwrap().accepted,
            "cross-model proof accepted"
        );
    }
}

#[test]
fn committed_verifiers_match_a_fresh_generation() {
    // As scripts/gen-fixtures sets them up: the demo's MLP on the ceremony SRS, the CNN on the dev SRS.
    for (name, m) in [("digits_mlp", zoo_ceremony("digits_mlp")), ("digits_cnn", zoo("digits_cnn"))] {
        let path = root().join("contracts/generated").join(&m.card.files.verifier_sol);
        let committed = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(committed == m.source, "{name}: {} is stale: run scripts/gen-fixtures", path.display());
    }
}
