//! The demo's private mode: a committed-input model, a private request, and a look at every byte
//! that reached the chain.
//!
//! anvil → coordinator + the committed-input model's verifier → the node's X25519 key ring made and its
//! key registered (`setEncryptionKey`) → a `PrivateClassifier` consumer → the user commits to a digit
//! and seals it to the node's key for the consumer (`seal-input`) → `submit` (requestPrivateInference)
//! → the node opens the envelope, checks the commitment, proves and fulfils → the callback records
//! the verified class. Then the request and fulfilment transactions and every log they emitted are
//! searched for the input, in each encoding it could take.

use std::time::{Duration, Instant};

use alloy::{
    primitives::{Address, Bytes, B256, U256},
    providers::Provider,
    rpc::types::Filter,
    sol_types::{SolEvent, SolValue},
};
use models::{card::ModelCard, envelope::KeyRing, quant::field_to_be_bytes};

use super::{deploy_system, DemoOptions, RunningNode};
use crate::{
    bindings::{IInferenceCoordinator, IPrivateClassifier},
    chain, contracts,
    error::{Error, Result},
    private::{seal_input, Audience},
    proof::InputFile,
};

/// What the private demo observed.
#[derive(Clone, Debug)]
pub struct PrivateDemoReport {
    /// Request id.
    pub request_id: U256,
    /// Label of the submitted image.
    pub label: Option<u64>,
    /// The verified class (from the callback).
    pub predicted: u64,
    /// The verified output (quantized).
    pub output: Vec<i64>,
    /// Output scale bits.
    pub output_scale_bits: u32,
    /// Model id of the committed-input model.
    pub model_id: B256,
    /// The listing the request went through.
    pub listing_id: U256,
    /// The consumer contract (the requester the envelope is sealed for).
    pub consumer: Address,
    /// The prover named by the request.
    pub prover: Address,
    /// The node's registered X25519 public key.
    pub encryption_key: B256,
    /// `C = Poseidon(pack(input) ‖ salt)`.
    pub commitment: B256,
    /// Bytes of the envelope on-chain.
    pub ciphertext_bytes: usize,
    /// Calldata bytes of the request transaction.
    pub request_calldata_bytes: usize,
    /// Input values (hidden).
    pub input_len: usize,
    /// Gas of the request transaction.
    pub request_gas: u64,
    /// Gas of the fulfilment (verification + callback) transaction.
    pub fulfil_gas: u64,
    /// Request-to-callback latency.
    pub latency: Duration,
    /// Encodings of the input searched for in the request and fulfilment transactions and logs.
    pub searched: Vec<&'static str>,
}

/// Runs the private demo on a card set up with `--private-input`.
pub async fn run(opts: &DemoOptions, progress: impl Fn(&str)) -> Result<PrivateDemoReport> {
    let card = ModelCard::load(&opts.card)?;
    if !card.input_committed {
        return Err(Error::Invalid(format!(
            "{}: the private demo needs a card set up with --private-input",
            card.name
        )));
    }
    let sys = deploy_system(opts, &progress).await?;
    let d = &sys.d;
    let rpc = |e: alloy::contract::Error| Error::Rpc(e.to_string());

    progress("the node makes its X25519 key ring and registers its public key (setEncryptionKey)");
    std::fs::create_dir_all(&opts.work_dir).map_err(|source| Error::Io {
        action: "creating",
        path: opts.work_dir.clone(),
        source,
    })?;
    let key_file = opts.work_dir.join("encryption-keys.json");
    let ring = KeyRing::generate(&mut rand::rngs::OsRng);
    ring.save(&key_file).map_err(|e| Error::Invalid(e.to_string()))?;
    let encryption_key = B256::from(ring.current().public());
    let prover_p = chain::provider(&sys.chain.endpoint(), sys.prover.clone())?;
    let as_prover = IInferenceCoordinator::new(d.coordinator, prover_p);
    chain::mined(as_prover.setEncryptionKey(encryption_key).send().await, "setEncryptionKey").await?;

    progress("deploying the PrivateClassifier consumer");
    let code = contracts::forge_bytecode(&opts.forge_out, "PrivateClassifier")?;
    let args: Bytes = (d.coordinator, d.listing_id).abi_encode_params().into();
    let consumer = contracts::deploy_with(&sys.owner_p, code, &args, U256::ZERO).await?;

    progress("starting the prover node (with its key ring)");
    let node = RunningNode::start(opts, &sys, Some(key_file)).await?;

    let input_file = InputFile::load(&opts.input)?;
    let model = card.load_model(&opts.card)?;
    let pixels = input_file.quantized(&model)?;
    let c = IInferenceCoordinator::new(d.coordinator, sys.user_p.clone());
    let registered = c.encryptionKeyOf(sys.prover.address()).call().await.map_err(rpc)?;
    let audience = Audience {
        chain_id: sys.chain.chain_id(),
        coordinator: d.coordinator,
        requester: consumer,
        model_id: d.model_id,
    };
    let sealed = seal_input(&card, &pixels, registered, &audience, &mut rand::rngs::OsRng)?;
    progress(&format!(
        "the user commits to a handwritten {} (C = {}) and seals it to the node's key for the consumer ({} bytes)",
        input_file.label.map(|l| l.to_string()).unwrap_or("digit".into()),
        sealed.commitment,
        sealed.ciphertext.len()
    ));
    let fee = c.quote(d.listing_id, 100_000).call().await.map_err(rpc)?;
    let classifier = IPrivateClassifier::new(consumer, sys.user_p.clone());
    let started = Instant::now();
    let receipt = chain::mined(
        classifier
            .submit(sealed.commitment, sys.prover.address(), sealed.encryption_key, sealed.ciphertext.clone(), fee)
            .value(fee)
            .send()
            .await,
        "PrivateClassifier.submit",
    )
    .await?;
    let request_gas = receipt.gas_used;
    let request_id = receipt
        .inner
        .logs()
        .iter()
        .find_map(|l| l.log_decode::<IPrivateClassifier::Submitted>().ok())
        .map(|l| l.inner.data.requestId)
        .ok_or_else(|| Error::Invalid("no Submitted event in the request's receipt".into()))?;
    progress(&format!("private request {request_id} mined (gas {request_gas}); the node is opening and proving..."));

    let filter =
        Filter::new().address(consumer).event_signature(IPrivateClassifier::Classified::SIGNATURE_HASH).from_block(0);
    let (classified, latency) = loop {
        let logs = sys.user_p.get_logs(&filter).await.map_err(|e| Error::Rpc(e.to_string()))?;
        if let Some(log) = logs.into_iter().find_map(|l| l.log_decode::<IPrivateClassifier::Classified>().ok()) {
            break (log, started.elapsed());
        }
        if started.elapsed() > Duration::from_secs(180) {
            return Err(Error::Invalid("no callback within 180 s".into()));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    node.stop().await;
    let fulfil_hash =
        classified.transaction_hash.ok_or_else(|| Error::Invalid("the callback's log has no transaction".into()))?;
    let fulfil = sys
        .user_p
        .get_transaction_receipt(fulfil_hash)
        .await
        .map_err(|e| Error::Rpc(e.to_string()))?
        .ok_or_else(|| Error::Invalid("no receipt for the fulfilment".into()))?;
    let result = c.getResult(request_id).call().await.map_err(rpc)?;
    let output: Vec<i64> = result.output.iter().map(|v| i64::try_from(*v).unwrap_or(0)).collect();

    // Every byte the two transactions put on the chain: their calldata and their logs.
    let mut on_chain: Vec<Vec<u8>> = Vec::new();
    for (hash, r) in [(receipt.transaction_hash, &receipt), (fulfil_hash, &fulfil)] {
        let tx = sys
            .user_p
            .get_transaction_by_hash(hash)
            .await
            .map_err(|e| Error::Rpc(e.to_string()))?
            .ok_or_else(|| Error::Invalid(format!("no transaction {hash}")))?;
        on_chain.push(alloy::consensus::Transaction::input(tx.inner.inner()).to_vec());
        for log in r.inner.logs() {
            on_chain.push(log.data().data.to_vec());
            on_chain.extend(log.topics().iter().map(|t| t.to_vec()));
        }
    }
    let request_calldata_bytes = on_chain[0].len();
    let searched = find_input(&on_chain, &pixels, sealed.salt, card.quantization.value_bits)?;
    Ok(PrivateDemoReport {
        request_id,
        label: input_file.label,
        predicted: classified.inner.data.predictedClass.to(),
        output,
        output_scale_bits: card.output_scale_bits,
        model_id: d.model_id,
        listing_id: d.listing_id,
        consumer,
        prover: sys.prover.address(),
        encryption_key,
        commitment: sealed.commitment,
        ciphertext_bytes: sealed.ciphertext.len(),
        request_calldata_bytes,
        input_len: pixels.len(),
        request_gas,
        fulfil_gas: fulfil.gas_used,
        latency,
        searched,
    })
}

/// Fails if any encoding of the input (or the salt) occurs in `blobs`: each packed public-instance word
/// (what a public request's proof would carry), the whole `int256[]` ABI encoding (what
/// `requestInference` would carry), the envelope's i64 plaintext, and the salt. Returns the encodings
/// searched.
fn find_input(blobs: &[Vec<u8>], input: &[i64], salt: B256, value_bits: u32) -> Result<Vec<&'static str>> {
    let words: Vec<Vec<u8>> =
        models::circuit::pack(input, value_bits).iter().map(|w| field_to_be_bytes(w).to_vec()).collect();
    let abi: Vec<u8> = chain::int256s(input).abi_encode_packed();
    let plain: Vec<u8> = input.iter().flat_map(|v| v.to_be_bytes()).collect();
    let found = |needle: &[u8]| blobs.iter().any(|b| b.windows(needle.len()).any(|w| w == needle));
    let checks: [(&'static str, bool); 4] = [
        ("packed instance words", words.iter().any(|w| found(w))),
        ("int256[] encoding", found(&abi)),
        ("i64 plaintext", found(&plain)),
        ("salt", found(salt.as_slice())),
    ];
    if let Some((what, _)) = checks.iter().find(|(_, hit)| *hit) {
        return Err(Error::Invalid(format!("the input's {what} appear on-chain")));
    }
    Ok(checks.iter().map(|(what, _)| *what).collect())
}
