//! `prover-node bench`: per-model setup time, prove time, peak memory, proof size, verifier size
//! and on-chain verify gas, measured on this machine and printed as a table.
//!
//! Each model is measured in a child process of its own, so "peak memory" (the kernel's VmHWM) is
//! that model's alone: key generation, proving and verification included.

use std::{
    path::{Path, PathBuf},
    time::Instant,
};

use alloy::{node_bindings::Anvil, primitives::U256};
use serde::{Deserialize, Serialize};

use crate::{
    chain,
    error::{Error, Result},
    proof::InputFile,
    prove,
    setup::{self, SetupOptions, SrsSource},
};

/// One row of the table.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BenchRow {
    /// Model name.
    pub model: String,
    /// Circuit size.
    pub k: u32,
    /// Advice columns.
    pub advice_columns: usize,
    /// Setup (import, keygen, verifier generation and compilation) seconds.
    pub setup_seconds: f64,
    /// Median proving seconds.
    pub prove_seconds: f64,
    /// Native verification seconds.
    pub verify_seconds: f64,
    /// Peak resident memory of the whole run, bytes.
    pub peak_rss_bytes: u64,
    /// Proof size in bytes.
    pub proof_bytes: usize,
    /// Verifier runtime bytecode size.
    pub verifier_bytes: usize,
    /// Gas of a transaction calling the verifier (intrinsic and calldata included).
    pub verify_tx_gas: u64,
    /// Quantized accuracy, if measured.
    pub quantized_accuracy: Option<f64>,
    /// Float accuracy, if measured.
    pub float_accuracy: Option<f64>,
}

/// Peak resident set size of this process (`VmHWM`), in bytes.
pub fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|kb| kb.parse::<u64>().ok()))
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// Measures one model (call this in its own process for a meaningful peak memory). With
/// `private_input` the model is set up in committed-input mode, so the row measures the input
/// commitment's cost (Poseidon in the circuit, one commitment instance in place of the packed input).
pub fn measure(onnx: &Path, runs: usize, solc: PathBuf, anvil: &Path, private_input: bool) -> Result<BenchRow> {
    let dir = std::env::temp_dir().join(format!("zkinfer-bench-{}", std::process::id()));
    let opts = SetupOptions {
        solc,
        private_input,
        ..SetupOptions::new(onnx.to_path_buf(), dir.clone(), SrsSource::InsecureDev { seed: 42 })
    };
    let started = Instant::now();
    let (card, card_path) = setup::run(&opts)?;
    let setup_seconds = started.elapsed().as_secs_f64();

    let srs = card.srs(None)?;
    let loaded = prove::load(&card_path, &srs)?;
    let input_path = onnx.with_extension("input.json");
    let input = if input_path.exists() {
        InputFile::load(&input_path)?.quantized(&loaded.model)?
    } else {
        vec![loaded.model.input_range.0.max(0).min(loaded.model.input_range.1); loaded.model.input_len()]
    };
    let mut times = Vec::with_capacity(runs);
    let mut last = None;
    for _ in 0..runs.max(1) {
        let salt = prove::sample_salt(&loaded.model);
        let p = prove::prove(&loaded, &input, salt, U256::from(1), &crate::proof::Fulfiller::default())?;
        times.push(p.prove_seconds);
        last = Some(p);
    }
    let proof = last.expect("at least one run");
    times.sort_by(f64::total_cmp);
    let prove_seconds = times[times.len() / 2];

    let (vk, _) = card.load_verifying_key(&card_path)?;
    let started = Instant::now();
    models::prover::verify(&loaded.srs, &vk, &proof.field_instances()?, &proof.proof)?;
    let verify_seconds = started.elapsed().as_secs_f64();

    let compiled = verifier_gen::Compiled::for_card(&card_path, &card)?;
    let node = Anvil::new()
        .path(anvil)
        .args(["--hardfork", "prague"])
        .try_spawn()
        .map_err(|e| Error::Rpc(format!("starting anvil {}: {e}", anvil.display())))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Invalid(e.to_string()))?;
    let verify_tx_gas = rt.block_on(async {
        let provider = chain::provider(&node.endpoint(), node.keys()[0].clone().into())?;
        let address = chain::deploy_verifier(&provider, &compiled).await?;
        let result = chain::verify_on_chain(&provider, address, proof.verifier_calldata.to_vec()).await?;
        result.tx_gas.ok_or_else(|| Error::Invalid("the verifier rejected a valid proof".into()))
    })?;
    drop(node);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(BenchRow {
        model: if private_input { format!("{} (private input)", card.name) } else { card.name.clone() },
        k: card.circuit.k,
        advice_columns: card.circuit.advice_columns,
        setup_seconds,
        prove_seconds,
        verify_seconds,
        peak_rss_bytes: peak_rss_bytes(),
        proof_bytes: proof.proof.len(),
        verifier_bytes: compiled.total_runtime_bytes(),
        verify_tx_gas,
        quantized_accuracy: card.accuracy.as_ref().map(|a| a.quantized),
        float_accuracy: card.accuracy.as_ref().map(|a| a.float),
    })
}

/// Renders rows as a Markdown table.
pub fn table(rows: &[BenchRow]) -> String {
    let mut out = String::from(
        "| model | k | advice cols | setup | prove (median) | native verify | peak memory | proof | verifier bytecode | verify gas (tx) | accuracy float / quantized |\n\
         |---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let acc = match (r.float_accuracy, r.quantized_accuracy) {
            (Some(f), Some(q)) => format!("{:.2}% / {:.2}%", f * 100.0, q * 100.0),
            _ => "-".into(),
        };
        out.push_str(&format!(
            "| {} | {} | {} | {:.2} s | {:.3} s | {:.1} ms | {:.0} MiB | {} B | {} B | {} | {} |\n",
            r.model,
            r.k,
            r.advice_columns,
            r.setup_seconds,
            r.prove_seconds,
            r.verify_seconds * 1000.0,
            r.peak_rss_bytes as f64 / (1024.0 * 1024.0),
            r.proof_bytes,
            r.verifier_bytes,
            r.verify_tx_gas,
            acc
        ));
    }
    out
}
