//! Review of verifiers cut into parts (`verifier_gen::split`): the same key's verifier in one
//! contract and cut at other places (limits of 6,000 to 15,000 bytes per part, 2 to 5 parts) gives
//! the same verdict on a valid proof and on every tampering tried — flipped bits in every proof
//! word, changed instances, non-canonical scalars and coordinates, other lengths, a proof of
//! another input — on anvil.

use alloy::{
    network::TransactionBuilder,
    primitives::{Address, Bytes, U256},
    providers::{DynProvider, Provider},
    rpc::types::TransactionRequest,
};
use prover_node::{chain, proof::Fulfiller, prove};
use verifier_gen::{CalldataLayout, Compiled, Encoding};
use zkinfer_tests::{anvil, example_input, zoo, ZooModel};

/// `r` (the scalar field modulus) and `q` (the base field modulus), big-endian.
fn modulus(hex_str: &str) -> [u8; 32] {
    hex::decode(hex_str).unwrap().try_into().unwrap()
}
const R: &str = "30644e72e131a029b85045b68181585d2833e84879b9709143e1f593f0000001";
const Q: &str = "30644e72e131a029b85045b68181585d97816a916871ca8d3c208c16d87cfd47";

/// `word + m` (big-endian, no overflow for values below `m < 2^254`).
fn add_be(word: &[u8], m: &[u8; 32]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut carry = 0u16;
    for i in (0..32).rev() {
        let s = word[i] as u16 + m[i] as u16 + carry;
        out[i] = s as u8;
        carry = s >> 8;
    }
    assert_eq!(carry, 0);
    out
}

/// Every tampering of `valid` tried, named.
fn tamperings(valid: &[u8], other: &[u8], layout: &CalldataLayout) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let words = valid.len() / 32;
    for w in 0..words {
        for (byte, bit) in [(31usize, 0u8), (0, 5), (17, 3)] {
            let mut c = valid.to_vec();
            c[32 * w + byte] ^= 1 << bit;
            out.push((format!("word {w} byte {byte} bit {bit}"), c));
        }
    }
    let (r, q) = (modulus(R), modulus(Q));
    for &(start, end) in &layout.scalar_ranges {
        for at in [start, end - 32] {
            let mut c = valid.to_vec();
            c[at..at + 32].copy_from_slice(&add_be(&valid[at..at + 32], &r));
            out.push((format!("scalar at {at:#x} + r"), c));
        }
    }
    for &at in layout.points.iter().take(4).chain(layout.points.last()) {
        for (axis, off) in [("x", 0), ("y", 32)] {
            let mut c = valid.to_vec();
            c[at + off..at + off + 32].copy_from_slice(&add_be(&valid[at + off..at + off + 32], &q));
            out.push((format!("point at {at:#x}: {axis} + q"), c));
        }
        let mut c = valid.to_vec();
        c[at..at + 64].fill(0);
        out.push((format!("point at {at:#x} := (0, 0)"), c));
        // -P: (x, q - y) is on the curve.
        let y = &valid[at + 32..at + 64];
        let mut neg = [0u8; 32];
        let mut borrow = 0i16;
        for i in (0..32).rev() {
            let d = q[i] as i16 - y[i] as i16 - borrow;
            neg[i] = d.rem_euclid(256) as u8;
            borrow = (d < 0) as i16;
        }
        let mut c = valid.to_vec();
        c[at + 32..at + 64].copy_from_slice(&neg);
        out.push((format!("point at {at:#x} negated"), c));
    }
    let n = 32 * layout.num_instances;
    let mut mixed = valid[..n].to_vec();
    mixed.extend_from_slice(&other[n..]);
    out.push(("instances of one proof, proof of another".into(), mixed));
    let mut mixed = other[..n].to_vec();
    mixed.extend_from_slice(&valid[n..]);
    out.push(("instances of another proof, this proof".into(), mixed));
    out.push(("one byte short".into(), valid[..valid.len() - 1].to_vec()));
    out.push(("one word short".into(), valid[..valid.len() - 32].to_vec()));
    out.push(("one byte more".into(), [valid, &[0]].concat()));
    out.push(("one word more".into(), [valid, &[0; 32]].concat()));
    out.push(("empty".into(), Vec::new()));
    out
}

/// What a contract answers `calldata` with: `Ok(returned bytes)` or `Err(())` for a revert.
async fn answer(provider: &DynProvider, to: Address, calldata: &[u8]) -> Result<Vec<u8>, ()> {
    let tx = TransactionRequest::default().with_to(to).with_input(Bytes::from(calldata.to_vec()));
    match provider.call(tx).await {
        Ok(b) => Ok(b.to_vec()),
        Err(e) if e.as_error_resp().is_some() => Err(()),
        Err(e) => panic!("rpc: {e}"),
    }
}

async fn gas(provider: &DynProvider, to: Address, calldata: &[u8]) -> u64 {
    let tx = TransactionRequest::default().with_to(to).with_input(Bytes::from(calldata.to_vec()));
    provider.estimate_gas(tx).await.unwrap()
}

/// The card's verifier source regenerated from its key (the same code hash as the card's).
fn card_source(m: &ZooModel) -> verifier_gen::Source {
    let encoding = Encoding::of_card(&m.card);
    let n = m.card.circuit.num_instances;
    verifier_gen::solidity_source(&m.loaded.srs, m.loaded.pk.get_vk(), n, &m.compiled.contract, "review", &encoding)
        .unwrap()
}

/// The verifier calldata of a valid proof of the example input and of a valid proof of another
/// input (for swaps between two valid proofs).
fn two_proofs(m: &ZooModel) -> (Vec<u8>, Vec<u8>) {
    let fulfiller = Fulfiller { chain_id: 31337, coordinator: Address::repeat_byte(0xc0), address: Address::ZERO };
    let input = example_input(m);
    let proof = prove::prove(&m.loaded, &input, None, U256::from(1), &fulfiller).unwrap();
    let valid = proof.verifier_calldata.to_vec();
    let mut other_input = input.clone();
    other_input[0] = if other_input[0] == 0 { 1 } else { 0 };
    let other = prove::prove(&m.loaded, &other_input, None, U256::from(2), &fulfiller).unwrap();
    (valid, other.verifier_calldata.to_vec())
}

/// The model's verifier (one contract, as the card has it) and the same source cut under each of
/// `limits`; on anvil every one accepts a valid proof and agrees with the one-contract verifier on
/// every tampering.
async fn same_verdicts(m: &ZooModel, limits: &[usize], parts: &[usize], tag: &str) {
    let (valid, other) = two_proofs(m);
    assert_eq!(valid.len(), other.len());

    let source = card_source(m);
    let solc = verifier_gen::default_solc();
    let whole: Compiled = verifier_gen::compile_solidity(&solc, &source.solidity, &m.compiled.contract).unwrap();
    assert_eq!(whole.codehash, m.card.verifier.codehash, "the review regenerates the card's verifier");
    let layout = source.layout.clone();

    let node = anvil();
    let provider = chain::provider(&node.endpoint(), node.keys()[0].clone().into()).unwrap();
    let reference = chain::deploy_verifier(&provider, &m.compiled).await.unwrap();
    let reference_gas = gas(&provider, reference, &valid).await;
    let mut verifiers = Vec::new();
    // Limits of bytes per part for `compile_verifier`, then numbers of parts for `split::build`
    // (cut at even shares of the source: many parts put cuts among the calldata reads).
    let tries = limits.iter().map(|&l| (l, None)).chain(parts.iter().map(|&p| (p, Some(p))));
    for (limit, forced) in tries {
        // The name must be the source's: the first part is that contract, cut short.
        let (split, sources) = match forced {
            None => verifier_gen::compile_verifier(&solc, &source, &m.compiled.contract, limit),
            Some(parts) => verifier_gen::split::build(
                &solc,
                &source.solidity,
                source.memory_end,
                layout.calldata_len(),
                &m.compiled.contract,
                parts,
                verifier_gen::EIP170_LIMIT,
            ),
        }
        .unwrap_or_else(|e| panic!("{tag}: cut under {limit} bytes or in {limit} parts: {e}"));
        let limit = if forced.is_some() { verifier_gen::EIP170_LIMIT } else { limit };
        let reads_in_later_parts: usize =
            sources[1..].iter().map(|s| s.matches("zk_calldataload(").count().saturating_sub(1)).sum();
        eprintln!("{tag}: {} calldata reads in later parts", reads_in_later_parts);
        let dump = std::env::temp_dir().join(format!("split-review-{tag}-{limit}-{}", sources.len()));
        std::fs::create_dir_all(&dump).unwrap();
        for (i, s) in sources.iter().enumerate() {
            std::fs::write(dump.join(format!("part{}.sol", i + 1)), s).unwrap();
        }
        assert!(split.largest_runtime_bytes() <= limit);
        let address = chain::deploy_verifier(&provider, &split).await.unwrap();
        let g = gas(&provider, address, &valid).await;
        let parts = split.parts.len() + 1;
        let predicted = (parts as u64 - 1) * models::sizing::handoff_gas(split.total_runtime_bytes());
        eprintln!(
            "{tag} under {limit} bytes: {parts} parts {:?}, {g} gas ({:+} against one contract; handoff_gas predicts {predicted:+})",
            std::iter::once(split.deployed_bytecode.len())
                .chain(split.parts.iter().map(|p| p.deployed_bytecode.len()))
                .collect::<Vec<_>>(),
            g as i64 - reference_gas as i64,
        );
        verifiers.push((limit, parts, address));
    }
    assert_eq!(answer(&provider, reference, &valid).await, Ok(Vec::new()), "{tag}: valid proof, one contract");
    for &(limit, parts, address) in &verifiers {
        assert_eq!(answer(&provider, address, &valid).await, Ok(Vec::new()), "{tag}: valid proof, {parts} parts");
        assert_eq!(answer(&provider, address, &other).await, Ok(Vec::new()), "{tag}: other proof, {limit}");
    }
    let cases = tamperings(&valid, &other, &layout);
    let mut disagreements = Vec::new();
    for (what, calldata) in &cases {
        let expected = answer(&provider, reference, calldata).await;
        assert!(expected.is_err(), "{tag}: the one-contract verifier accepted {what}");
        for &(limit, parts, address) in &verifiers {
            let got = answer(&provider, address, calldata).await;
            if got != expected {
                disagreements.push(format!("{what}: {parts} parts (limit {limit}) answered {got:?}"));
            }
        }
    }
    eprintln!("{tag}: {} tamperings × {} cuts, {} disagreements", cases.len(), verifiers.len(), disagreements.len());
    assert!(disagreements.is_empty(), "{tag}: {disagreements:#?}");
    // The encoding hash is answered by the first part, as by the one contract.
    let selector = &verifier_gen::keccak256(b"encodingHash()")[..4];
    let expected = answer(&provider, reference, selector).await;
    for &(_, _, address) in &verifiers {
        assert_eq!(answer(&provider, address, selector).await, expected);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn digits_mlp_cut_anywhere_agrees_with_one_contract() {
    same_verdicts(zoo("digits_mlp"), &[10_000, 6_000, 4_000, 3_000], &[8, 12, 16], "digits_mlp").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn digits_cnn_cut_anywhere_agrees_with_one_contract() {
    same_verdicts(zoo("digits_cnn"), &[15_000, 10_000, 8_000], &[10, 16], "digits_cnn").await;
}

/// The byte offsets in `src` where the top-level statements after `validate_ec_point` start, as
/// `verifier_gen::split` finds them (braces and parentheses balanced at the end of a line with code).
fn statement_starts(src: &str) -> Vec<usize> {
    let start = src.find("function validate_ec_point(").unwrap();
    let mut depth = 0;
    let mut end = start;
    for (i, c) in src[start..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    end = start + i + 1;
                    break;
                }
            }
            _ => {}
        }
    }
    let ending = src.rfind("// Revert if anything fails").unwrap();
    let ending = src[..ending].rfind('\n').unwrap() + 1;
    let (mut out, mut balance, mut from, mut at) = (Vec::new(), 0i64, end, end);
    for line in src[end..ending].split_inclusive('\n') {
        at += line.len();
        let code = line.split("//").next().unwrap_or_default();
        balance += code.chars().map(|c| matches!(c, '{' | '(') as i64 - matches!(c, '}' | ')') as i64).sum::<i64>();
        if balance == 0 && !code.trim().is_empty() {
            out.push(from);
            from = at;
        }
    }
    out
}

/// `src` with comments that make `split::build` in `cuts.len() + 1` parts cut before each statement
/// of `cuts` (or the first place after it that borders no scratch memory): comments count in the
/// source length the cuts share out, and change no bytecode.
fn forcing_cuts(src: &str, cuts: &[usize]) -> String {
    let starts = statement_starts(src);
    let pad = format!("// {}\n", "x".repeat(2 * src.len()));
    let mut out = src.to_string();
    for &c in cuts.iter().rev() {
        assert!(c >= 1);
        out.insert_str(starts[c - 1], &pad);
    }
    out
}

/// Cuts forced at every statement boundary of several windows: among the first proof reads, around
/// the first squeeze (scratch memory), among the evaluations, around the instance loop and at the
/// end; each window gives a verifier in up to 16 parts that must agree with the one contract.
#[tokio::test(flavor = "multi_thread")]
async fn digits_mlp_cut_at_every_boundary_of_several_windows() {
    let m = zoo("digits_mlp");
    let (valid, other) = two_proofs(m);
    let mut source = card_source(m);
    let original = source.solidity.clone();
    let starts = statement_starts(&original);
    let text = |i: usize| &original[starts[i]..starts.get(i + 1).copied().unwrap_or(original.len())];
    let find = |what: &str| (0..starts.len()).find(|&i| text(i).contains(what)).unwrap();
    let squeeze = find("calldatacopy(");
    let instance_loop = find("for {");
    let total = starts.len();
    eprintln!("{total} statements; the first squeeze's copy at {squeeze}, the instance loop at {instance_loop}");
    let windows: Vec<Vec<usize>> = vec![
        (1..16).collect(),
        (squeeze.saturating_sub(6).max(16)..squeeze + 24).collect(),
        (instance_loop - 7..instance_loop + 8).collect(),
        (total / 2..total / 2 + 15).collect(),
        (total - 15..total).collect(),
    ];
    let solc = verifier_gen::default_solc();
    let node = anvil();
    let provider = chain::provider(&node.endpoint(), node.keys()[0].clone().into()).unwrap();
    let reference = chain::deploy_verifier(&provider, &m.compiled).await.unwrap();
    let cases = tamperings(&valid, &other, &source.layout);
    let mut expected = Vec::new();
    for (what, calldata) in &cases {
        let verdict = answer(&provider, reference, calldata).await;
        assert!(verdict.is_err(), "the one-contract verifier accepted {what}");
        expected.push(verdict);
    }
    let mut disagreements = Vec::new();
    let mut copy_in_a_later_part = false;
    for window in windows {
        source.solidity = forcing_cuts(&original, &window);
        let (split, sources) = match verifier_gen::split::build(
            &solc,
            &source.solidity,
            source.memory_end,
            source.layout.calldata_len(),
            &m.compiled.contract,
            window.len() + 1,
            verifier_gen::EIP170_LIMIT,
        ) {
            Ok(done) => done,
            Err(e) => {
                eprintln!("cuts {window:?}: {e}");
                continue;
            }
        };
        // Where the cuts landed: the first statement of each later part.
        let landed: Vec<usize> = sources[1..]
            .iter()
            .map(|s| {
                let body = s.split("function zk_calldatacopy").nth(1).unwrap();
                let first =
                    body.lines().skip(1).find(|l| l.contains('(') && !l.trim_start().starts_with("//")).unwrap();
                (0..total).find(|&i| text(i).replace("calldata", "zk_calldata").contains(first.trim())).unwrap()
            })
            .collect();
        copy_in_a_later_part |= sources[1..].iter().any(|s| s.contains("zk_calldatacopy(0x"));
        let address = chain::deploy_verifier(&provider, &split).await.unwrap();
        eprintln!("cuts asked {window:?}, landed near {landed:?}: {} parts", split.parts.len() + 1);
        assert_eq!(answer(&provider, address, &valid).await, Ok(Vec::new()), "valid proof, cuts {window:?}");
        assert_eq!(answer(&provider, address, &other).await, Ok(Vec::new()), "other proof, cuts {window:?}");
        for ((what, calldata), verdict) in cases.iter().zip(&expected) {
            let got = answer(&provider, address, calldata).await;
            if &got != verdict {
                disagreements.push(format!("{what}: cuts {window:?} answered {got:?}"));
            }
        }
    }
    assert!(disagreements.is_empty(), "{disagreements:#?}");
    assert!(copy_in_a_later_part, "no window put the first squeeze's calldatacopy in a later part");
}

/// The coordinator measures a verifier with `MAX_VERIFY_GAS` (2,000,000) and refuses a model whose
/// sample proof does not verify within it: the layout a setup plans must be verifiable within it.
#[test]
fn planned_layouts_verify_within_the_coordinators_gas_cap() {
    const MAX_VERIFY_GAS: u64 = 2_000_000;
    let mut over = Vec::new();
    for name in ["digits_mlp", "digits_cnn"] {
        let m = zoo(name);
        for max_k in models::prover::MIN_K..=12 {
            let opts = models::sizing::PlanOptions { k: None, max_k, lanes: None };
            let Ok(plan) = models::sizing::plan(&m.loaded.model, &opts) else { continue };
            let c = &plan.cost;
            eprintln!(
                "{name}, max k {max_k}: k = {}, {} advice columns, {} bytes in {} parts, {} gas",
                plan.params.k(),
                c.counts.advice,
                c.verifier_bytes,
                c.verifier_parts,
                c.verify_gas
            );
            if c.verify_gas > MAX_VERIFY_GAS {
                over.push(format!("{name} at max k {max_k}: {} gas in {} parts", c.verify_gas, c.verifier_parts));
            }
        }
    }
    assert!(over.is_empty(), "planned above the coordinator's MAX_VERIFY_GAS: {over:#?}");
}

/// digits_cnn at `--max-k 9` would need a verifier in 7 parts (80 advice columns, about 3.5M gas),
/// which the coordinator cannot register: setup refuses it and names `--max-k 10`. At `--max-k 10`
/// it plans 3 parts, and the coordinator registers them (its sample proof measured within
/// MAX_VERIFY_GAS).
#[tokio::test(flavor = "multi_thread")]
async fn a_planned_split_verifier_is_registered_by_the_coordinator() {
    use prover_node::setup::{self, SetupOptions, SrsSource};
    let dir = tempfile::tempdir().unwrap();
    let onnx = zkinfer_tests::root().join("models/zoo/digits_cnn.onnx");
    let mut opts =
        SetupOptions::new(onnx, dir.path().to_path_buf(), SrsSource::InsecureDev { seed: zkinfer_tests::DEV_SEED });
    opts.max_k = 9;
    let refused = setup::run(&opts).map(|_| ()).unwrap_err().to_string();
    assert!(refused.contains("pass --max-k 10"), "{refused}");
    opts.max_k = 10;
    let (card, card_path) = setup::run(&opts).expect("setup at k ≤ 10");
    let compiled = Compiled::for_card(&card_path, &card).unwrap();
    let predicted = card.circuit.predicted.clone().unwrap();
    let srs = card.srs(None).unwrap();
    let loaded = prove::load(&card_path, &srs).unwrap();
    let file =
        prover_node::proof::InputFile::load(&zkinfer_tests::root().join("models/zoo/digits_cnn.input.json")).unwrap();
    let input = file.quantized(&loaded.model).unwrap();
    let fulfiller = Fulfiller { chain_id: 31337, coordinator: Address::repeat_byte(0xc0), address: Address::ZERO };
    let proof = prove::prove(&loaded, &input, None, U256::from(1), &fulfiller).unwrap();
    let node = anvil();
    let provider = chain::provider(&node.endpoint(), node.keys()[0].clone().into()).unwrap();
    let verifier = chain::deploy_verifier(&provider, &compiled).await.unwrap();
    let measured = gas(&provider, verifier, &proof.verifier_calldata).await;
    eprintln!(
        "digits_cnn at k ≤ 10: {} parts, {} bytes, predicted {} gas, measured {measured} (transaction)",
        compiled.parts.len() + 1,
        compiled.total_runtime_bytes(),
        predicted.verify_gas
    );
    let sample = Bytes::from(proof.verifier_calldata.to_vec());
    let deployed = prover_node::contracts::deploy_system(
        &provider,
        &zkinfer_tests::forge_out(),
        &card_path,
        sample,
        U256::ZERO,
        3600,
    )
    .await;
    assert!(deployed.is_ok(), "setup planned a verifier the coordinator does not register: {:?}", deployed.err());
}

/// Deploying a verifier in parts where it cannot work: a chain without the CREATE2 deployer is
/// named before anything is sent; an artifact whose part bytecode was changed is refused.
#[tokio::test(flavor = "multi_thread")]
async fn parts_that_cannot_be_deployed_are_named() {
    let m = zoo("digits_mlp");
    let source = card_source(m);
    let (split, _) =
        verifier_gen::compile_verifier(&verifier_gen::default_solc(), &source, &m.compiled.contract, 8_000).unwrap();
    assert!(!split.parts.is_empty());

    let bare = alloy::node_bindings::Anvil::new()
        .path(zkinfer_tests::anvil_bin())
        .args(["--hardfork", "prague", "--disable-default-create2-deployer"])
        .spawn();
    let provider = chain::provider(&bare.endpoint(), bare.keys()[0].clone().into()).unwrap();
    let err = chain::deploy_verifier(&provider, &split).await.unwrap_err().to_string();
    assert!(err.contains("CREATE2 deployer"), "{err}");
    assert_eq!(provider.get_transaction_count(bare.addresses()[0]).await.unwrap(), 0, "sent on a chain without it");

    // A part's init code changed in the artifact (its address and code hash left as they were).
    let node = anvil();
    let provider = chain::provider(&node.endpoint(), node.keys()[0].clone().into()).unwrap();
    let mut tampered = split.clone();
    let code = &mut tampered.parts[0].bytecode;
    let at = code.len() - 40;
    code[at] ^= 1;
    let err = chain::deploy_verifier(&provider, &tampered).await.unwrap_err().to_string();
    eprintln!("tampered part: {err}");
    assert_eq!(
        provider.get_transaction_count(node.addresses()[0]).await.unwrap(),
        0,
        "a tampered part was sent before its address was checked: {err}"
    );
}
