//! Proof files: what `prover-node prove` writes and `verify` reads, and the request binding.

use std::path::Path;

use alloy::{
    primitives::{keccak256, Address, U256},
    sol_types::SolValue,
};
use models::{circuit, quant, Fr};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The BN254 scalar field modulus r.
pub const FIELD_MODULUS: U256 =
    U256::from_limbs([0x43e1f593f0000001, 0x2833e84879b97091, 0xb85045b68181585d, 0x30644e72e131a029]);

/// Who submits a proof, and where: the chain, the coordinator and the fulfilling account. With the
/// request id it makes the binding instance.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fulfiller {
    /// `block.chainid` of the chain the coordinator runs on.
    pub chain_id: u64,
    /// The coordinator's address.
    pub coordinator: Address,
    /// The account that sends `fulfillInference`.
    pub address: Address,
}

impl Fulfiller {
    /// The binding instance of `request_id`, as `InferenceCoordinator.bindingOf` computes it.
    pub fn binding(&self, request_id: U256) -> Fr {
        binding(self.chain_id, self.coordinator, request_id, self.address)
    }
}

/// `keccak256(abi.encode(chainId, coordinator, requestId, fulfiller)) mod r`: the public instance that
/// ties a proof to one chain, one coordinator, one request and one fulfiller (so a proof seen in the
/// mempool cannot be replayed by another account, on another deployment or on another chain).
pub fn binding(chain_id: u64, coordinator: Address, request_id: U256, fulfiller: Address) -> Fr {
    let words = (U256::from(chain_id), coordinator, request_id, fulfiller).abi_encode();
    u256_to_field(U256::from_be_bytes(keccak256(words).0) % FIELD_MODULUS)
}

/// A `U256` below r as a field element.
pub fn u256_to_field(v: U256) -> Fr {
    quant::field_from_be_bytes(&v.to_be_bytes::<32>()).expect("value is reduced below r")
}

/// A field element as a `U256`.
pub fn field_to_u256(f: &Fr) -> U256 {
    U256::from_be_bytes(quant::field_to_be_bytes(f))
}

/// An input file: floats (`{"input": [...]}`) or already quantized integers
/// (`{"input_quantized": [...]}`).
#[derive(Clone, Debug, Deserialize)]
pub struct InputFile {
    /// Real-valued input, quantized at the model's input scale.
    pub input: Option<Vec<f64>>,
    /// Quantized input.
    pub input_quantized: Option<Vec<i64>>,
    /// The expected class, when the input is a labelled example.
    #[serde(default)]
    pub label: Option<u64>,
}

impl InputFile {
    /// Reads an input file.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes =
            std::fs::read(path).map_err(|source| Error::Io { action: "reading input", path: path.into(), source })?;
        let f: Self = serde_json::from_slice(&bytes).map_err(|e| Error::BadFile {
            path: path.into(),
            what: "input file",
            reason: e.to_string(),
        })?;
        if f.input.is_some() == f.input_quantized.is_some() {
            return Err(Error::BadFile {
                path: path.into(),
                what: "input file",
                reason: "give exactly one of \"input\" (floats) or \"input_quantized\" (integers)".into(),
            });
        }
        Ok(f)
    }

    /// The quantized input for `model`.
    pub fn quantized(&self, model: &models::graph::QuantModel) -> Result<Vec<i64>> {
        match (&self.input, &self.input_quantized) {
            (Some(x), _) => Ok(model.quantize_input(x)?),
            (_, Some(q)) => {
                model.check_input(q)?;
                Ok(q.clone())
            }
            _ => unreachable!("checked at load"),
        }
    }
}

/// A proof with everything needed to check or submit it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProofFile {
    /// Model name.
    pub model: String,
    /// On-chain model id.
    pub model_id: String,
    /// `block.chainid` of the chain the proof is bound to.
    pub chain_id: u64,
    /// The coordinator the proof is bound to (zero if none was given).
    pub coordinator: Address,
    /// The request this proof fulfils (0 if none was given).
    pub request_id: U256,
    /// The account allowed to submit it.
    pub fulfiller: Address,
    /// Quantized input (empty for a committed-input model: the input stays with the prover).
    pub input: Vec<i64>,
    /// The input commitment `C = Poseidon(pack(input) ‖ salt)` of a committed-input model's proof, in
    /// the input's place in the instances (absent for public-input models).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commitment: Option<U256>,
    /// Quantized output.
    pub output: Vec<i64>,
    /// Output divided by 2^output_scale_bits.
    pub output_dequantized: Vec<f64>,
    /// Index of the largest output (the predicted class of a classifier).
    pub prediction: usize,
    /// Public instances as 0x-prefixed 32-byte words.
    pub instances: Vec<U256>,
    /// Proof bytes.
    pub proof: alloy::primitives::Bytes,
    /// Calldata for the model's verifier contract (instances ‖ proof).
    pub verifier_calldata: alloy::primitives::Bytes,
    /// Calldata for `InferenceCoordinator.fulfillInference` (`fulfillPrivateInference` for a
    /// committed-input model).
    pub fulfill_calldata: alloy::primitives::Bytes,
    /// Proving time in seconds.
    pub prove_seconds: f64,
}

impl ProofFile {
    /// Reads a proof file.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes =
            std::fs::read(path).map_err(|source| Error::Io { action: "reading proof", path: path.into(), source })?;
        serde_json::from_slice(&bytes).map_err(|e| Error::BadFile {
            path: path.into(),
            what: "proof file",
            reason: e.to_string(),
        })
    }

    /// Writes the proof file.
    pub fn save(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_string_pretty(self).expect("serializes");
        std::fs::write(path, json + "\n").map_err(|source| Error::Io {
            action: "writing proof",
            path: path.into(),
            source,
        })
    }

    /// Instances as field elements, rejecting non-canonical words.
    pub fn field_instances(&self) -> Result<Vec<Fr>> {
        self.instances
            .iter()
            .map(|v| {
                if *v >= FIELD_MODULUS {
                    return Err(Error::Invalid(format!("instance {v:#x} is not below the field modulus")));
                }
                Ok(u256_to_field(*v))
            })
            .collect()
    }

    /// Who may submit this proof, and where.
    pub fn fulfiller(&self) -> Fulfiller {
        Fulfiller { chain_id: self.chain_id, coordinator: self.coordinator, address: self.fulfiller }
    }

    /// Checks the instances say what the file says (binding, input or commitment, output).
    pub fn check_consistent(&self, value_bits: u32) -> Result<()> {
        let f = self.field_instances()?;
        let binding = self.fulfiller().binding(self.request_id);
        let (expected, what) = match self.commitment {
            Some(c) if c < FIELD_MODULUS => {
                (circuit::committed_instances(binding, u256_to_field(c), &self.output, value_bits), "commitment")
            }
            Some(c) => return Err(Error::Invalid(format!("commitment {c:#x} is not below the field modulus"))),
            None => (circuit::public_instances(binding, &self.input, &self.output, value_bits), "input"),
        };
        if f != expected {
            return Err(Error::Invalid(format!(
                "the instances do not match the proof file's request, fulfiller, {what} and output"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modulus_matches_the_field() {
        assert_eq!(field_to_u256(&(-Fr::from(1u64))), FIELD_MODULUS - U256::from(1));
    }

    #[test]
    fn binding_depends_on_chain_coordinator_request_and_fulfiller() {
        let (a, b) = (Address::repeat_byte(1), Address::repeat_byte(2));
        let one = U256::from(1);
        let base = binding(31337, a, one, a);
        assert_ne!(base, binding(1, a, one, a));
        assert_ne!(base, binding(31337, b, one, a));
        assert_ne!(base, binding(31337, a, U256::from(2), a));
        assert_ne!(base, binding(31337, a, one, b));
        assert!(field_to_u256(&base) < FIELD_MODULUS);
    }

    /// The known answers of contracts/test/InferenceCoordinator.t.sol (keccak256 above r for both).
    #[test]
    fn binding_matches_the_coordinators_known_answers() {
        let at: Address = "0xc0dec0dec0dec0dec0dec0dec0dec0dec0dec0de".parse().unwrap();
        let cases = [
            (
                31337,
                42,
                Address::repeat_byte(0x11),
                "0x210e035329c70e3413764f5958a0d9eb4bf18087deb0cfe32208dc792368b1f9",
            ),
            (1, 1, Address::with_last_byte(1), "0x214ae625e73d7eeaf11b827ad55a73bfdb2cd671c705cb372816de67aae3d0d"),
        ];
        for (chain_id, request, fulfiller, expected) in cases {
            let got = field_to_u256(&binding(chain_id, at, U256::from(request), fulfiller));
            assert_eq!(got, expected.parse::<U256>().unwrap());
        }
    }
}
