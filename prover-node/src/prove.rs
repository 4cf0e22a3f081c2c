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
    Bn256, Fr, G1Affine,
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

/// ABI-encodes `fulfillPrivateInference(requestId, output, proof)`.
pub fn fulfill_private_calldata(request_id: U256, output: &[i64], proof: &[u8]) -> Bytes {
    IInferenceCoordinator::fulfillPrivateInferenceCall {
        requestId: request_id,
        output: crate::chain::int256s(output),
        proof: Bytes::copy_from_slice(proof),
    }
    .abi_encode()
    .into()
}

/// Proves `input` (quantized) for `request_id`, to be submitted by `fulfiller` (on its chain and
/// coordinator). A committed-input model needs the `salt` of the request's commitment (and its
/// proof file then carries the commitment, not the input); a public-input model takes none.
pub fn prove(
    m: &LoadedModel,
    input: &[i64],
    salt: Option<Fr>,
    request_id: U256,
    fulfiller: &Fulfiller,
) -> Result<ProofFile> {
    let started = Instant::now();
    let p = prover::prove(&m.srs, &m.pk, &m.shape, &m.model, input, fulfiller.binding(request_id), salt)?;
    let prove_seconds = started.elapsed().as_secs_f64();
    let calldata = verifier_gen::calldata(&p.instances, &p.proof);
    let committed = m.model.input_committed;
    let (input, commitment, fulfill) = if committed {
        let c = p.instances[1];
        (vec![], Some(field_to_u256(&c)), fulfill_private_calldata(request_id, &p.output, &p.proof))
    } else {
        (input.to_vec(), None, fulfill_calldata(request_id, input, &p.output, &p.proof))
    };
    Ok(ProofFile {
        model: m.card.name.clone(),
        model_id: m.card.model_id.clone(),
        chain_id: fulfiller.chain_id,
        coordinator: fulfiller.coordinator,
        request_id,
        fulfiller: fulfiller.address,
        input,
        commitment,
        output_dequantized: dequantize_all(&p.output, m.card.output_scale_bits),
        prediction: argmax(&p.output),
        output: p.output.clone(),
        instances: p.instances.iter().map(field_to_u256).collect(),
        fulfill_calldata: fulfill,
        proof: p.proof.into(),
        verifier_calldata: calldata.into(),
        prove_seconds,
    })
}

/// A random salt for a committed-input model's sample or bench proof (`None` for a public-input
/// model). Real requests use the consumer's salt, from its envelope.
pub fn sample_salt(model: &QuantModel) -> Option<Fr> {
    model.input_committed.then(|| {
        let mut bytes = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes[1..]);
        models::commitment::salt_from_bytes(&bytes).expect("first byte is zero")
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
