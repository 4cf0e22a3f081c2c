//! Key generation, proving and native verification (SHPLONK over KZG/BN254, Keccak transcript in
//! the EVM encoding so the same proof bytes verify on-chain).

use halo2_base::{
    gates::{
        circuit::{builder::BaseCircuitBuilder, BaseCircuitParams, CircuitBuilderStage},
        flex_gate::MultiPhaseThreadBreakPoints,
    },
    halo2_proofs::{
        halo2curves::bn256::{Bn256, Fr, G1Affine},
        plonk::{create_proof, keygen_pk, keygen_vk, verify_proof, ProvingKey, VerifyingKey},
        poly::{
            commitment::{Params, ParamsProver},
            kzg::{
                commitment::{KZGCommitmentScheme, ParamsKZG},
                multiopen::{ProverSHPLONK, VerifierSHPLONK},
                strategy::SingleStrategy,
            },
        },
        transcript::{TranscriptReadBuffer, TranscriptWriterBuffer},
        SerdeFormat,
    },
};
use rand::rngs::OsRng;
use serde::{Deserialize, Serialize};
use snark_verifier::{loader::native::NativeLoader, system::halo2::transcript::evm::EvmTranscript};

use crate::{
    circuit::{synthesize, Witnessing},
    error::{Error, Result},
    graph::QuantModel,
};

/// Rows reserved at the bottom of the circuit for blinding factors.
pub const MINIMUM_ROWS: usize = 20;
/// Smallest circuit size we use.
pub const MIN_K: u32 = 8;
/// Largest circuit size we try.
pub const MAX_K: u32 = 22;
/// Default largest `k` when sizing automatically. Within it, the fewest advice columns win: every
/// advice column adds a commitment, evaluations and MSM terms to the on-chain verifier (about
/// 45k gas each measured on the digits MLP), while proving time grows with `columns · 2^k`.
pub const DEFAULT_MAX_K: u32 = 14;

/// Everything needed to rebuild the circuit's constraint system exactly.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CircuitShape {
    /// halo2-base configuration (k, columns, lookup bits).
    pub params: BaseCircuitParams,
    /// Where the prover breaks rows across advice columns (from key generation).
    pub break_points: MultiPhaseThreadBreakPoints,
    /// Number of public instances: 1 binding + packed inputs + packed outputs.
    pub num_instances: usize,
}

impl CircuitShape {
    /// Circuit size: 2^k rows.
    pub fn k(&self) -> u32 {
        self.params.k as u32
    }
}

fn shape_builder(model: &QuantModel, k: u32) -> Result<(BaseCircuitBuilder<Fr>, BaseCircuitParams)> {
    let mut builder = BaseCircuitBuilder::from_stage(CircuitBuilderStage::Keygen)
        .use_k(k as usize)
        .use_lookup_bits(k as usize - 1)
        .use_instance_columns(1);
    let input = vec![0i64; model.input_len()];
    synthesize(&mut builder, model, &input, Fr::from(0u64), Witnessing::ShapeOnly)?;
    let params = builder.calculate_params(Some(MINIMUM_ROWS));
    Ok((builder, params))
}

/// Picks the circuit size: the given `k`, or the `k ≤ max_k` that needs the fewest advice columns
/// (the smallest such `k` on ties).
pub fn choose_k(model: &QuantModel, k: Option<u32>, max_k: u32) -> Result<BaseCircuitParams> {
    let probe = |k: u32| -> Result<BaseCircuitParams> {
        let (mut builder, params) = shape_builder(model, k)?;
        // Dropping a builder that was never synthesized makes halo2-base warn; it was only a probe.
        builder.clear();
        Ok(params)
    };
    if let Some(k) = k {
        if !(MIN_K..=MAX_K).contains(&k) {
            return Err(Error::InvalidParams(format!("k = {k} must be in {MIN_K}..={MAX_K}")));
        }
        return probe(k);
    }
    if !(MIN_K..=MAX_K).contains(&max_k) {
        return Err(Error::InvalidParams(format!("max k = {max_k} must be in {MIN_K}..={MAX_K}")));
    }
    let mut best: Option<BaseCircuitParams> = None;
    for k in MIN_K..=max_k {
        let params = probe(k)?;
        if best.as_ref().is_none_or(|b| params.num_advice_per_phase[0] < b.num_advice_per_phase[0]) {
            best = Some(params);
        }
    }
    Ok(best.expect("the range of k is not empty"))
}

/// Generates the proving key (which contains the verifying key) for `model` at `params.k`.
pub fn keygen(
    srs: &ParamsKZG<Bn256>,
    model: &QuantModel,
    params: &BaseCircuitParams,
) -> Result<(ProvingKey<G1Affine>, CircuitShape)> {
    let k = params.k as u32;
    if srs.k() != k {
        return Err(Error::InvalidParams(format!("SRS has k = {}, circuit needs k = {k}", srs.k())));
    }
    let (mut builder, calculated) = shape_builder(model, k)?;
    builder.set_params(calculated.clone());
    let vk = keygen_vk(srs, &builder).map_err(|e| Error::Prove(format!("verifying key generation: {e:?}")))?;
    let pk = keygen_pk(srs, vk, &builder).map_err(|e| Error::Prove(format!("proving key generation: {e:?}")))?;
    let shape = CircuitShape {
        params: calculated,
        break_points: builder.break_points(),
        num_instances: crate::circuit::num_instances(model.input_len(), model.output_len(), model.params.value_bits),
    };
    Ok((pk, shape))
}

/// A proof with what it proves.
#[derive(Clone, Debug)]
pub struct Proof {
    /// Proof bytes (EVM transcript encoding).
    pub proof: Vec<u8>,
    /// Public instances `[binding, packed input.., packed output..]`.
    pub instances: Vec<Fr>,
    /// The quantized output.
    pub output: Vec<i64>,
}

/// Proves `model(input)`, bound to `binding`.
pub fn prove(
    srs: &ParamsKZG<Bn256>,
    pk: &ProvingKey<G1Affine>,
    shape: &CircuitShape,
    model: &QuantModel,
    input: &[i64],
    binding: Fr,
) -> Result<Proof> {
    if srs.k() != shape.k() {
        return Err(Error::InvalidParams(format!("SRS has k = {}, circuit needs k = {}", srs.k(), shape.k())));
    }
    // The reference pass validates the input and names any overflow before synthesis.
    let expected = model.forward(input)?;
    let mut builder = BaseCircuitBuilder::prover(shape.params.clone(), shape.break_points.clone());
    let synthesized = synthesize(&mut builder, model, input, binding, Witnessing::Exact)?;
    if synthesized.output != expected {
        return Err(Error::Prove(format!(
            "circuit output {:?} differs from the reference {expected:?}",
            synthesized.output
        )));
    }
    let instances = synthesized.instances;
    let mut transcript = TranscriptWriterBuffer::<_, G1Affine, _>::init(Vec::new());
    create_proof::<
        KZGCommitmentScheme<Bn256>,
        ProverSHPLONK<'_, Bn256>,
        _,
        _,
        EvmTranscript<G1Affine, NativeLoader, _, _>,
        _,
    >(srs, pk, &[builder], &[&[&instances]], OsRng, &mut transcript)
    .map_err(|e| Error::Prove(format!("{e:?}")))?;
    let proof = transcript.finalize();
    Ok(Proof { proof, instances, output: synthesized.output })
}

/// Verifies a proof natively.
pub fn verify(srs: &ParamsKZG<Bn256>, vk: &VerifyingKey<G1Affine>, instances: &[Fr], proof: &[u8]) -> Result<()> {
    let verifier_params = srs.verifier_params();
    let mut transcript = TranscriptReadBuffer::<_, G1Affine, _>::init(proof);
    verify_proof::<
        KZGCommitmentScheme<Bn256>,
        VerifierSHPLONK<'_, Bn256>,
        _,
        EvmTranscript<G1Affine, NativeLoader, _, _>,
        _,
    >(verifier_params, vk, SingleStrategy::new(srs), &[&[instances]], &mut transcript)
    .map_err(|e| Error::InvalidProof(format!("{e:?}")))
}

/// Serializes a proving key.
pub fn pk_to_bytes(pk: &ProvingKey<G1Affine>) -> Vec<u8> {
    let mut out = Vec::new();
    pk.write(&mut out, SerdeFormat::RawBytesUnchecked).expect("writing to a Vec cannot fail");
    out
}

/// Serializes a verifying key.
pub fn vk_to_bytes(vk: &VerifyingKey<G1Affine>) -> Vec<u8> {
    let mut out = Vec::new();
    vk.write(&mut out, SerdeFormat::RawBytes).expect("writing to a Vec cannot fail");
    out
}

/// Parses a proving key (integrity is checked by the artifact framing first).
pub fn pk_from_bytes(bytes: &[u8], shape: &CircuitShape) -> std::result::Result<ProvingKey<G1Affine>, String> {
    let params = shape.params.clone();
    std::panic::catch_unwind(|| {
        ProvingKey::read::<_, BaseCircuitBuilder<Fr>>(&mut &bytes[..], SerdeFormat::RawBytesUnchecked, params)
    })
    .map_err(|_| "unparseable proving key".to_string())?
    .map_err(|e| e.to_string())
}

/// Parses a verifying key.
pub fn vk_from_bytes(bytes: &[u8], shape: &CircuitShape) -> std::result::Result<VerifyingKey<G1Affine>, String> {
    let params = shape.params.clone();
    std::panic::catch_unwind(|| {
        VerifyingKey::read::<_, BaseCircuitBuilder<Fr>>(&mut &bytes[..], SerdeFormat::RawBytes, params)
    })
    .map_err(|_| "unparseable verifying key".to_string())?
    .map_err(|e| e.to_string())
}
