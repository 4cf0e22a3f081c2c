//! Proving a model on an input, producing a [`ProofFile`].

use std::{path::Path, time::Instant};

use alloy::{
    primitives::{Bytes, U256},
    sol_types::SolCall,
};
use models::{
    card::ModelCard,
    eval::{argmax, dequantize_all},
    graph::QuantModel,
    halo2_base_reexports::{ParamsKZG, ProvingKey},
    prover::{self, CircuitShape},
    Bn256, G1Affine,
};

use crate::{
    bindings::IInferenceCoordinator,
    error::Result,
    proof::{field_to_u256, Fulfiller, ProofFile},
};

/// A model ready to prove: quantized graph, keys and SRS.
pub struct LoadedModel {
    /// The card.
    pub card: ModelCard,
    /// Quantized graph.
    pub model: QuantModel,
    /// Proving key.
    pub pk: ProvingKey<G1Affine>,
    /// Circuit shape.
    pub shape: CircuitShape,
    /// SRS at the circuit's size.
    pub srs: ParamsKZG<Bn256>,
}

impl std::fmt::Debug for LoadedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedModel")
            .field("name", &self.card.name)
            .field("model_id", &self.card.model_id)
            .finish_non_exhaustive()
    }
}

/// ABI-encodes `fulfillInference(requestId, input, output, proof)`.
pub fn fulfill_calldata(request_id: U256, input: &[i64], output: &[i64], proof: &[u8]) -> Bytes {
    IInferenceCoordinator::fulfillInferenceCall {
        requestId: request_id,
        input: crate::chain::int256s(input),
        output: crate::chain::int256s(output),
        proof: Bytes::copy_from_slice(proof),
    }
    .abi_encode()
    .into()
}

/// Proves `input` (quantized) for `request_id`, to be submitted by `fulfiller` (on its chain and
/// coordinator).
pub fn prove(m: &LoadedModel, input: &[i64], request_id: U256, fulfiller: &Fulfiller) -> Result<ProofFile> {
    let started = Instant::now();
    let p = prover::prove(&m.srs, &m.pk, &m.shape, &m.model, input, fulfiller.binding(request_id), None)?;
    let prove_seconds = started.elapsed().as_secs_f64();
    let calldata = verifier_gen::calldata(&p.instances, &p.proof);
    Ok(ProofFile {
        model: m.card.name.clone(),
        model_id: m.card.model_id.clone(),
        chain_id: fulfiller.chain_id,
        coordinator: fulfiller.coordinator,
        request_id,
        fulfiller: fulfiller.address,
        input: input.to_vec(),
        output_dequantized: dequantize_all(&p.output, m.card.output_scale_bits),
        prediction: argmax(&p.output),
        output: p.output.clone(),
        instances: p.instances.iter().map(field_to_u256).collect(),
        fulfill_calldata: fulfill_calldata(request_id, input, &p.output, &p.proof),
        proof: p.proof.into(),
        verifier_calldata: calldata.into(),
        prove_seconds,
    })
}

/// Loads everything needed to prove from a card. `srs` must be the SRS of the card.
pub fn load(card_path: &Path, srs: &models::srs::Srs) -> Result<LoadedModel> {
    let card = ModelCard::load(card_path)?;
    if srs.info.sha256 != card.srs.sha256 {
        return Err(crate::Error::Invalid(format!(
            "the SRS {} (sha256 {}) is not the one the keys were made with ({}, sha256 {})",
            srs.info.source, srs.info.sha256, card.srs.source, card.srs.sha256
        )));
    }
    let model = card.load_model(card_path)?;
    let (pk, shape) = card.load_proving_key(card_path)?;
    let params = srs.for_k(shape.k())?;
    Ok(LoadedModel { card, model, pk, shape, srs: params })
}
