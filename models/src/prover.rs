//! Key generation, proving and native verification (SHPLONK over KZG/BN254, Keccak transcript in
//! the EVM encoding so the same proof bytes verify on-chain).

use halo2_base::{
    gates::{
        circuit::{BaseCircuitParams, CircuitBuilderStage},
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

pub use crate::circuit::MINIMUM_ROWS;
use crate::circuit::{CircuitParams, ModelCircuit};

/// Smallest circuit size we use.
pub const MIN_K: u32 = 8;
/// Largest circuit size we try.
pub const MAX_K: u32 = 22;
/// Default largest `k` when sizing automatically (see [`crate::sizing`]).
pub const DEFAULT_MAX_K: u32 = 20;

/// Everything needed to rebuild the circuit's constraint system exactly.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CircuitShape {
    /// halo2-base configuration (k, columns, lookup bits).
    pub params: BaseCircuitParams,
    /// Where the prover breaks rows across advice columns (from key generation).
    pub break_points: MultiPhaseThreadBreakPoints,
    /// Number of public instances: 1 binding + packed inputs (or 1 commitment) + packed outputs.
    pub num_instances: usize,
    /// Lanes of the dot-product region (0: dot products in the flex gate; keys made before the
    /// region existed have none).
    #[serde(default)]
    pub lanes: usize,
    /// Whether the circuit has function tables (keys made before they existed have none).
    #[serde(default)]
    pub lookups: bool,
}

impl CircuitShape {
    /// Circuit size: 2^k rows.
    pub fn k(&self) -> u32 {
        self.params.k as u32
    }

    /// The circuit's configuration.
    pub fn circuit_params(&self) -> CircuitParams {
        CircuitParams { base: self.params.clone(), lanes: self.lanes, lookups: self.lookups }
    }
}

/// Synthesizes `model` shape-only (zero input) at `2^k` rows with `lanes` dot-product lanes and
/// sizes it.
pub(crate) fn shape_circuit(model: &QuantModel, k: u32, lanes: usize) -> Result<(ModelCircuit, CircuitParams)> {
    let mut circuit = ModelCircuit::new(CircuitBuilderStage::Keygen, k, lanes);
    // Any input in range: the values do not change the shape.
    let input = vec![model.input_range.0; model.input_len()];
    synthesize(&mut circuit, model, &input, Fr::from(0u64), None, Witnessing::ShapeOnly)?;
    let params = circuit.calculate_params()?;
    Ok((circuit, params))
}

/// Generates the proving key (which contains the verifying key) for `model` with `params`.
pub fn keygen(
    srs: &ParamsKZG<Bn256>,
    model: &QuantModel,
    params: &CircuitParams,
) -> Result<(ProvingKey<G1Affine>, CircuitShape)> {
    let k = params.k();
    if srs.k() != k {
        return Err(Error::InvalidCircuitSize(format!("SRS has k = {}, circuit needs k = {k}", srs.k())));
    }
    let (mut circuit, calculated) = shape_circuit(model, k, params.lanes)?;
    circuit.set_params(&calculated);
    let vk = keygen_vk(srs, &circuit).map_err(|e| Error::Prove(format!("verifying key generation: {e:?}")))?;
    let pk = keygen_pk(srs, vk, &circuit).map_err(|e| Error::Prove(format!("proving key generation: {e:?}")))?;
    let shape = CircuitShape {
        params: calculated.base,
        break_points: circuit.base.break_points(),
        num_instances: model.num_instances(),
        lanes: calculated.lanes,
        lookups: calculated.lookups,
    };
    Ok((pk, shape))
}

/// A proof with what it proves.
#[derive(Clone, Debug)]
pub struct Proof {
    /// Proof bytes (EVM transcript encoding).
    pub proof: Vec<u8>,
    /// Public instances `[binding, packed input.., packed output..]` (`[binding, C, packed output..]`
    /// for a committed-input model).
    pub instances: Vec<Fr>,
    /// The quantized output.
    pub output: Vec<i64>,
}

/// Proves `model(input)`, bound to `binding`. A committed-input model needs the `salt` of its input
/// commitment, a public-input model none ([`Error::SaltMismatch`] otherwise).
pub fn prove(
    srs: &ParamsKZG<Bn256>,
    pk: &ProvingKey<G1Affine>,
    shape: &CircuitShape,
    model: &QuantModel,
    input: &[i64],
    binding: Fr,
    salt: Option<Fr>,
) -> Result<Proof> {
    if srs.k() != shape.k() {
        return Err(Error::InvalidCircuitSize(format!("SRS has k = {}, circuit needs k = {}", srs.k(), shape.k())));
    }
    // The reference pass validates the input and names any overflow before synthesis.
    let expected = model.forward(input)?;
    let mut circuit = ModelCircuit::prover(&shape.circuit_params(), shape.break_points.clone());
    let synthesized = synthesize(&mut circuit, model, input, binding, salt, Witnessing::Exact)?;
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
    >(srs, pk, &[circuit], &[&[&instances]], OsRng, &mut transcript)
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

/// What public proofs reveal of the fixed columns (see [`crate::card::WeightExposure`]): the
/// non-zero entries of each fixed column of `pk` (selectors included) are counted.
pub fn weight_exposure(pk: &ProvingKey<G1Affine>) -> crate::card::WeightExposure {
    let counts: Vec<usize> =
        pk.fixed_values().iter().map(|col| col.iter().filter(|v| **v != Fr::from(0u64)).count()).collect();
    crate::card::WeightExposure {
        fixed_columns: counts.len(),
        max_entries: counts.iter().copied().max().unwrap_or(0),
        total_entries: counts.iter().sum(),
    }
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
    let params = shape.circuit_params();
    std::panic::catch_unwind(|| {
        ProvingKey::read::<_, ModelCircuit>(&mut &bytes[..], SerdeFormat::RawBytesUnchecked, params)
    })
    .map_err(|_| "unparseable proving key".to_string())?
    .map_err(|e| e.to_string())
}

/// Parses a verifying key.
pub fn vk_from_bytes(bytes: &[u8], shape: &CircuitShape) -> std::result::Result<VerifyingKey<G1Affine>, String> {
    let params = shape.circuit_params();
    std::panic::catch_unwind(|| VerifyingKey::read::<_, ModelCircuit>(&mut &bytes[..], SerdeFormat::RawBytes, params))
        .map_err(|_| "unparseable verifying key".to_string())?
        .map_err(|e| e.to_string())
}
