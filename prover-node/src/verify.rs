//! What `prover-node verify` believes of a proof file besides the proof.
//!
//! A proof file carries claims (input, output, dequantized output, prediction, verifier calldata)
//! next to the public instances the proof is checked against. The instances pack `⌊248/B⌋` values
//! per field element as `v + 2^(B−1)`, which is injective only for values inside `B` bits: a file
//! can raise `output[7]` by `2^B` and lower `output[8]` by one and keep the same packed words, so
//! the proof still verifies while the file claims another class. [`check_claims`] therefore
//!
//! * range-checks every input and output against the model's encoding (the registered input range
//!   and the possible output range, both inside `B` bits, which makes the packing injective);
//! * rebuilds the instances from the file's request, fulfiller, input and output and requires the
//!   file's instances to equal them;
//! * requires the verifier calldata to be exactly those instances followed by the proof;
//! * recomputes the dequantized output and the prediction from the checked output and refuses a
//!   file that claims anything else.
//!
//! [`verify_native`] then verifies the proof with only `[1]G1`, `G2` and `[τ]G2` of the card's SRS
//! (`models::verify`): milliseconds at any `k`, with no SRS to load or generate.

use std::{path::Path, time::Duration};

use models::{card::ModelCard, eval::argmax, Fr};
use verifier_gen::Encoding;

use crate::{error::Result, proof::ProofFile};

/// Verifies `proof` for `instances` natively against the card's verifying key and SRS: the given
/// SRS file (only its `[1]G1`, `G2`, `[τ]G2` are read) or, with `None`, the card's INSECURE dev
/// SRS (`[τ]G2` derived from its seed). Returns the time the verification itself took.
///
/// # Errors
/// `WrongSrs` when the file is not the card's SRS, a corrupt verifying key or SRS file, and
/// `InvalidProof` when the proof does not verify.
pub fn verify_native(
    card: &ModelCard,
    card_path: &Path,
    srs_file: Option<&Path>,
    instances: &[Fr],
    proof: &[u8],
) -> Result<Duration> {
    let srs = card.verifier_srs(srs_file)?;
    let (vk, _) = card.load_verifying_key(card_path)?;
    let started = std::time::Instant::now();
    srs.verify(&vk, instances, proof)?;
    Ok(started.elapsed())
}

/// A claim of a proof file that the proof does not back.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    /// The file is for another model.
    #[error("the proof is for model {proof}, the card is model {card}")]
    WrongModel { proof: String, card: String },
    /// A committed-input model's file must carry the commitment and no input; a public-input
    /// model's file the input and no commitment.
    #[error("{0}")]
    InputMode(&'static str),
    /// Wrong number of input or output values.
    #[error("the proof file has {got} {what} values, the model has {expected}")]
    Length { what: &'static str, expected: usize, got: usize },
    /// An input outside the model's registered range (its packing would alias another input).
    #[error("input[{index}] = {value} is outside the model's input range [{min}, {max}]")]
    InputOutOfRange { index: usize, value: i64, min: i64, max: i64 },
    /// An output outside the model's possible range (its packing would alias another output).
    #[error("output[{index}] = {value} is outside the model's output range [{min}, {max}]")]
    OutputOutOfRange { index: usize, value: i64, min: i64, max: i64 },
    /// The instances are not those of the file's request, fulfiller, input and output.
    #[error("the public instances do not encode the file's request, fulfiller, input and output: {0}")]
    InstancesMismatch(String),
    /// The verifier calldata is not the instances followed by the proof.
    #[error("verifier_calldata is not the public instances followed by the proof ({got} bytes, expected {expected})")]
    CalldataMismatch { expected: usize, got: usize },
    /// The claimed prediction is not the argmax of the proved output.
    #[error("the file claims prediction {claimed}, but the proved output's largest value is at {checked}")]
    PredictionMismatch { claimed: usize, checked: usize },
    /// The claimed dequantized output is not the proved output divided by 2^scale.
    #[error("the file claims output_dequantized[{index}] = {claimed}, but the proved output gives {checked}")]
    DequantizedMismatch { index: usize, claimed: f64, checked: f64 },
}

/// A proof file's claims after [`check_claims`]: only values derived from what the proof covers.
#[derive(Clone, Debug)]
pub struct CheckedClaims {
    /// The proved quantized output.
    pub output: Vec<i64>,
    /// `output / 2^output_scale_bits`.
    pub dequantized: Vec<f64>,
    /// Index of the largest output (first on ties).
    pub prediction: usize,
    /// The public instances.
    pub instances: Vec<Fr>,
    /// `instances ‖ proof`, as the verifier takes it.
    pub verifier_calldata: Vec<u8>,
}

fn check_range(what: &'static str, values: &[i64], expected: u32, (min, max): (i64, i64)) -> Result<(), ClaimError> {
    if values.len() != expected as usize {
        return Err(ClaimError::Length { what, expected: expected as usize, got: values.len() });
    }
    match values.iter().position(|v| !(min..=max).contains(v)) {
        Some(index) if what == "input" => Err(ClaimError::InputOutOfRange { index, value: values[index], min, max }),
        Some(index) => Err(ClaimError::OutputOutOfRange { index, value: values[index], min, max }),
        None => Ok(()),
    }
}

/// Checks a proof file of the model with `model_id` and `encoding` (see the module docs). The proof
/// itself is not verified here.
pub fn check_claims(model_id: &str, encoding: &Encoding, proof: &ProofFile) -> Result<CheckedClaims, ClaimError> {
    if !proof.model_id.eq_ignore_ascii_case(model_id) {
        return Err(ClaimError::WrongModel { proof: proof.model_id.clone(), card: model_id.into() });
    }
    match (encoding.input_committed, proof.commitment.is_some()) {
        (true, false) => {
            return Err(ClaimError::InputMode("the model commits to its input, but the file has no commitment"))
        }
        (false, true) => {
            return Err(ClaimError::InputMode("the model's input is public, but the file claims a commitment"))
        }
        (true, true) if !proof.input.is_empty() => {
            return Err(ClaimError::InputMode("the model commits to its input: the file must not carry it"))
        }
        (true, true) => {}
        (false, false) => {
            check_range("input", &proof.input, encoding.input_len, (encoding.input_min, encoding.input_max))?
        }
    }
    check_range("output", &proof.output, encoding.output_len, (encoding.output_min, encoding.output_max))?;
    proof.check_consistent(encoding.value_bits as u32).map_err(|e| ClaimError::InstancesMismatch(e.to_string()))?;
    let instances = proof.field_instances().map_err(|e| ClaimError::InstancesMismatch(e.to_string()))?;
    let verifier_calldata = verifier_gen::calldata(&instances, &proof.proof);
    if proof.verifier_calldata[..] != verifier_calldata[..] {
        return Err(ClaimError::CalldataMismatch {
            expected: verifier_calldata.len(),
            got: proof.verifier_calldata.len(),
        });
    }
    let scale = (1u64 << encoding.output_scale_bits) as f64;
    let dequantized: Vec<f64> = proof.output.iter().map(|&v| v as f64 / scale).collect();
    let prediction = argmax(&proof.output);
    if proof.prediction != prediction {
        return Err(ClaimError::PredictionMismatch { claimed: proof.prediction, checked: prediction });
    }
    if proof.output_dequantized.len() != dequantized.len() {
        return Err(ClaimError::Length {
            what: "dequantized output",
            expected: dequantized.len(),
            got: proof.output_dequantized.len(),
        });
    }
    // The file's decimal text may read back one ulp off (JSON floats are not round-tripped bit for
    // bit); a claim is wrong when it is further than that from the proved value.
    let differs = |claimed: f64, checked: f64| (claimed - checked).abs() > 4.0 * f64::EPSILON * checked.abs().max(1.0);
    if let Some(index) = (0..dequantized.len()).find(|&i| differs(proof.output_dequantized[i], dequantized[i])) {
        return Err(ClaimError::DequantizedMismatch {
            index,
            claimed: proof.output_dequantized[index],
            checked: dequantized[index],
        });
    }
    Ok(CheckedClaims { output: proof.output.clone(), dequantized, prediction, instances, verifier_calldata })
}

#[cfg(test)]
mod tests {
    use alloy::primitives::{Address, Bytes, U256};

    use super::*;

    fn encoding() -> Encoding {
        Encoding {
            input_len: 64,
            output_len: 10,
            input_scale_bits: 4,
            output_scale_bits: 7,
            value_bits: 16,
            input_min: 0,
            input_max: 16,
            output_min: -32768,
            output_max: 32767,
            input_committed: false,
        }
    }

    /// A self-consistent proof file (the proof bytes are not a proof: claims are checked alone).
    fn proof_file() -> ProofFile {
        let input: Vec<i64> = (0..64).map(|i| i % 17).collect();
        let output: Vec<i64> = vec![1164, -544, -372, -801, -143, 189, 415, -406, 91, -35];
        let mut p = ProofFile {
            model: "digits_mlp".into(),
            model_id: "0x01".into(),
            chain_id: 31337,
            coordinator: Address::repeat_byte(0xc0),
            request_id: U256::from(1),
            fulfiller: Address::repeat_byte(0x11),
            output_dequantized: output.iter().map(|&v| v as f64 / 128.0).collect(),
            prediction: argmax(&output),
            input,
            commitment: None,
            output,
            instances: vec![],
            proof: Bytes::from(vec![7u8; 96]),
            verifier_calldata: Bytes::new(),
            fulfill_calldata: Bytes::new(),
            prove_seconds: 0.0,
        };
        let instances = models::circuit::public_instances(p.fulfiller().binding(p.request_id), &p.input, &p.output, 16);
        p.instances = instances.iter().map(crate::proof::field_to_u256).collect();
        p.verifier_calldata = verifier_gen::calldata(&instances, &p.proof).into();
        p
    }

    /// The three doctored files of shared case 13 (`tamper.py`): the packed instances are unchanged.
    fn tampered(p: &ProofFile, variant: u8) -> ProofFile {
        let mut q = p.clone();
        match variant {
            1 => q.prediction = 7,
            2 => {
                q.output[7] += 1 << 16;
                q.output[8] -= 1;
                q.output_dequantized = q.output.iter().map(|&v| v as f64 / 128.0).collect();
                q.prediction = 7;
            }
            _ => {
                q.input[0] += 1 << 16;
                q.input[1] -= 1;
            }
        }
        q
    }

    #[test]
    fn a_consistent_file_passes_and_yields_recomputed_claims() {
        let p = proof_file();
        let c = check_claims("0x01", &encoding(), &p).unwrap();
        assert_eq!((c.prediction, c.dequantized[0]), (0, 1164.0 / 128.0));
        assert_eq!(c.verifier_calldata, p.verifier_calldata.to_vec());
    }

    #[test]
    fn each_doctored_file_of_case_13_is_rejected_by_name() {
        let p = proof_file();
        let e = encoding();
        // The aliasing really keeps the packed instances: only the range checks can tell.
        for v in [2, 3] {
            assert!(tampered(&p, v).check_consistent(16).is_ok(), "variant {v} changed the instances");
        }
        assert!(matches!(
            check_claims("0x01", &e, &tampered(&p, 1)),
            Err(ClaimError::PredictionMismatch { claimed: 7, checked: 0 })
        ));
        assert!(matches!(
            check_claims("0x01", &e, &tampered(&p, 2)),
            Err(ClaimError::OutputOutOfRange { index: 7, .. })
        ));
        assert!(matches!(
            check_claims("0x01", &e, &tampered(&p, 3)),
            Err(ClaimError::InputOutOfRange { index: 0, value: 65536, .. })
        ));
    }

    #[test]
    fn calldata_other_than_instances_then_proof_is_rejected() {
        let p = proof_file();
        let mut q = p.clone();
        q.verifier_calldata = [&p.verifier_calldata[..], &[0u8; 32]].concat().into();
        assert!(matches!(check_claims("0x01", &encoding(), &q), Err(ClaimError::CalldataMismatch { .. })));
        let mut q = p.clone();
        q.output_dequantized[3] += 1.0;
        assert!(matches!(check_claims("0x01", &encoding(), &q), Err(ClaimError::DequantizedMismatch { index: 3, .. })));
        // A large value read back one ulp off (JSON floats) is the same claim; two LSBs of the
        // output scale off is not.
        let mut q = p.clone();
        q.output_dequantized[3] = f64::from_bits(q.output_dequantized[3].to_bits() + 1);
        assert!(check_claims("0x01", &encoding(), &q).is_ok());
        assert!(matches!(check_claims("0x02", &encoding(), &p), Err(ClaimError::WrongModel { .. })));
        let mut q = p.clone();
        q.request_id = U256::from(2);
        assert!(matches!(check_claims("0x01", &encoding(), &q), Err(ClaimError::InstancesMismatch(_))));
    }
}
