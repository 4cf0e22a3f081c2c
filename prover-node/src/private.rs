//! The consumer's side of a private request: the input commitment and the envelope.
//!
//! For a committed-input model, [`seal_input`] draws a salt, computes `C = Poseidon(pack(input) ‖ salt)`
//! ([`models::commitment`]) and seals `(salt, input)` to the prover's X25519 key for one chain,
//! coordinator, requester, model and commitment ([`models::envelope`]). The requester then calls
//! `requestPrivateInference(listingId, C, prover, key, ciphertext, ..)`: the chain sees `C` and the
//! ciphertext, never the input or the salt.

use alloy::primitives::{Address, Bytes, B256};
use models::{
    card::ModelCard,
    commitment::{input_commitment, salt_from_bytes},
    envelope::{self, EnvelopeContext},
    quant::field_to_be_bytes,
};
use rand::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// What a private request needs, and what stays with the consumer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedInput {
    /// `C`, the `commitment` argument of `requestPrivateInference` (a field element, big-endian).
    pub commitment: B256,
    /// The prover's X25519 public key the envelope is sealed to (`encryptionKey`).
    pub encryption_key: B256,
    /// The envelope (`ciphertext`): `81 + 8 · inputLen` bytes.
    pub ciphertext: Bytes,
    /// The salt. Keep it private: with it, anyone can test guesses of the input against `C`.
    pub salt: B256,
    /// Who the envelope is sealed for (the account or contract that calls `requestPrivateInference`).
    pub requester: Address,
    /// The model id of the request.
    pub model_id: B256,
    /// The chain and coordinator it is sealed for.
    pub chain_id: u64,
    /// The coordinator it is sealed for.
    pub coordinator: Address,
}

/// Where an envelope may be opened: one chain, coordinator, requester and model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Audience {
    /// `block.chainid`.
    pub chain_id: u64,
    /// The coordinator's address.
    pub coordinator: Address,
    /// The account or contract that will call `requestPrivateInference`.
    pub requester: Address,
    /// The committed-input model's id.
    pub model_id: B256,
}

impl Audience {
    /// The envelope context of this audience for commitment `c`.
    pub fn context(&self, commitment: B256) -> EnvelopeContext {
        EnvelopeContext {
            chain_id: self.chain_id,
            coordinator: self.coordinator.into_array(),
            requester: self.requester.into_array(),
            model_id: self.model_id.0,
            commitment: commitment.0,
        }
    }
}

/// Commits to `input` (quantized, in the card's input range) with a fresh salt and seals it to
/// `encryption_key` for `audience`.
///
/// # Errors
/// The card's model does not commit to its input (`--private-input` at setup), the input has the wrong
/// length or a value outside the model's input range, or the key is not a usable X25519 key.
pub fn seal_input(
    card: &ModelCard,
    input: &[i64],
    encryption_key: B256,
    audience: &Audience,
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<SealedInput> {
    if !card.input_committed {
        return Err(Error::Invalid(format!(
            "model {} takes public inputs: a private request needs a model set up with --private-input",
            card.name
        )));
    }
    let expected: usize = card.input_shape.iter().product();
    if input.len() != expected {
        return Err(Error::Invalid(format!("the model takes {expected} input values, got {}", input.len())));
    }
    let (min, max) = card.input_range;
    if let Some(i) = input.iter().position(|v| !(min..=max).contains(v)) {
        return Err(Error::Invalid(format!(
            "input[{i}] = {} is outside the model's quantized input range [{min}, {max}]",
            input[i]
        )));
    }
    let salt_bytes = envelope::random_salt(rng);
    let salt = salt_from_bytes(&salt_bytes)?;
    let commitment = B256::from(field_to_be_bytes(&input_commitment(input, salt, card.quantization.value_bits)));
    let ciphertext = envelope::seal(&encryption_key.0, &audience.context(commitment), &salt_bytes, input, rng)
        .map_err(|e| Error::Invalid(format!("sealing the input: {e}")))?;
    Ok(SealedInput {
        commitment,
        encryption_key,
        ciphertext: ciphertext.into(),
        salt: B256::from(salt_bytes),
        requester: audience.requester,
        model_id: audience.model_id,
        chain_id: audience.chain_id,
        coordinator: audience.coordinator,
    })
}
