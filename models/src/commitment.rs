//! The input commitment of committed-input models.
//!
//! A committed-input model proves `output = model(input)` for an input it never reveals: the input is a
//! private witness, and the proof's public instances carry, in the input's place, the commitment
//!
//! ```text
//! C = Poseidon(pack(input) ‖ salt)
//! ```
//!
//! `pack` is the packing of the public instances ([`crate::circuit::pack`]: `floor(248 / B)` values of
//! `B = value_bits` bits per word), so the words are canonical and, every input value being range
//! checked, injective. The salt is a field element below 2^248, chosen uniformly at random by the
//! consumer: without it, trying every input of a low-entropy model (a yes/no feature vector, a 16-level
//! pixel image) would find the input from `C`.
//!
//! The hash is halo2-base's Poseidon sponge over BN254's scalar field with width `T = 3`, rate 2, 8 full
//! and 57 partial rounds (the parameters of the Poseidon paper's Table 2 for a 254-bit field at a 128-bit
//! security level, as used by halo2-lib), hashing a fixed-length array. The native value below runs the
//! same gadget with witness generation only, so the commitment a consumer computes and the one the
//! circuit constrains cannot drift apart.

use std::sync::OnceLock;

use halo2_base::{
    gates::GateChip,
    halo2_proofs::halo2curves::bn256::Fr,
    poseidon::hasher::{spec::OptimizedPoseidonSpec, PoseidonHasher},
    virtual_region::copy_constraints::SharedCopyConstraintManager,
    AssignedValue, Context,
};

use crate::{
    error::{Error, Result},
    quant::field_from_be_bytes,
};

/// Poseidon state width.
pub const POSEIDON_T: usize = 3;
/// Poseidon rate (field elements absorbed per permutation).
pub const POSEIDON_RATE: usize = 2;
/// Full rounds.
pub const POSEIDON_R_F: usize = 8;
/// Partial rounds.
pub const POSEIDON_R_P: usize = 57;
/// Bytes of a salt; its first byte is zero, so a salt is below 2^248 (248 bits of entropy).
pub const SALT_BYTES: usize = 32;

/// The Poseidon parameters of the input commitment (built once: computing the round constants and
/// sparse matrices takes a few milliseconds).
pub fn spec() -> &'static OptimizedPoseidonSpec<Fr, POSEIDON_T, POSEIDON_RATE> {
    static SPEC: OnceLock<OptimizedPoseidonSpec<Fr, POSEIDON_T, POSEIDON_RATE>> = OnceLock::new();
    SPEC.get_or_init(OptimizedPoseidonSpec::new::<POSEIDON_R_F, POSEIDON_R_P, 0>)
}

/// Constrains `Poseidon(words ‖ salt)` in `ctx` and returns the cell holding it.
pub(crate) fn constrain(
    ctx: &mut Context<Fr>,
    gate: &GateChip<Fr>,
    words: &[AssignedValue<Fr>],
    salt: AssignedValue<Fr>,
) -> AssignedValue<Fr> {
    let mut hasher = PoseidonHasher::<Fr, POSEIDON_T, POSEIDON_RATE>::new(spec().clone());
    hasher.initialize_consts(ctx, gate);
    let absorbed: Vec<AssignedValue<Fr>> = words.iter().copied().chain([salt]).collect();
    hasher.hash_fix_len_array(ctx, gate, &absorbed)
}

/// `C = Poseidon(pack(input) ‖ salt)` for `value_bits`-bit inputs: what the circuit of a committed-input
/// model exposes. The values must fit in `value_bits` signed bits (the model's input range does).
pub fn input_commitment(input: &[i64], salt: Fr, value_bits: u32) -> Fr {
    let mut ctx = Context::new(true, 0, "zkinfer::commitment", 0, SharedCopyConstraintManager::default());
    let gate = GateChip::default();
    let words: Vec<AssignedValue<Fr>> =
        crate::circuit::pack(input, value_bits).into_iter().map(|w| ctx.load_witness(w)).collect();
    let salt = ctx.load_witness(salt);
    *constrain(&mut ctx, &gate, &words, salt).value()
}

/// The salt encoded in 32 big-endian bytes. Errors with [`Error::InvalidSalt`] unless it is below 2^248
/// (first byte zero).
pub fn salt_from_bytes(bytes: &[u8; SALT_BYTES]) -> Result<Fr> {
    if bytes[0] != 0 {
        return Err(Error::InvalidSalt(format!(
            "0x{} is not below 2^248 (its first byte must be zero)",
            hex::encode(bytes)
        )));
    }
    Ok(field_from_be_bytes(bytes).expect("below 2^248 < r"))
}

#[cfg(test)]
mod tests {
    use halo2_base::{
        gates::{
            circuit::{builder::BaseCircuitBuilder, CircuitBuilderStage},
            RangeInstructions,
        },
        halo2_proofs::dev::MockProver,
    };

    use super::*;

    #[test]
    fn native_value_is_the_constrained_value() {
        let (input, salt) = ([-3i64, 0, 7, 100, -128, 127], Fr::from(0x5a17u64));
        let native = input_commitment(&input, salt, 8);
        let mut builder = BaseCircuitBuilder::<Fr>::from_stage(CircuitBuilderStage::Mock)
            .use_k(10)
            .use_lookup_bits(9)
            .use_instance_columns(1);
        let range = builder.range_chip();
        let ctx = builder.main(0);
        let words: Vec<_> = crate::circuit::pack(&input, 8).into_iter().map(|w| ctx.load_witness(w)).collect();
        let salt_cell = ctx.load_witness(salt);
        let c = constrain(ctx, range.gate(), &words, salt_cell);
        assert_eq!(*c.value(), native);
        builder.assigned_instances = vec![vec![c]];
        builder.calculate_params(Some(9));
        MockProver::run(10, &builder, vec![vec![native]]).unwrap().assert_satisfied();
        assert!(MockProver::run(10, &builder, vec![vec![native + Fr::one()]]).unwrap().verify().is_err());
    }

    #[test]
    fn salt_and_input_change_the_commitment() {
        let c = input_commitment(&[1, 2, 3], Fr::from(9u64), 16);
        assert_ne!(c, input_commitment(&[1, 2, 3], Fr::from(10u64), 16));
        assert_ne!(c, input_commitment(&[1, 2, 4], Fr::from(9u64), 16));
        assert_ne!(c, input_commitment(&[1, 2, 3, 0], Fr::from(9u64), 16));
        assert_eq!(c, input_commitment(&[1, 2, 3], Fr::from(9u64), 16));
    }

    /// A yes/no feature vector of 8 bits has 256 values: without the salt, trying them all against `C`
    /// (with no salt, or any salt but the right one) finds nothing; only the salt's holder can open `C`.
    #[test]
    fn the_salt_hides_a_low_entropy_input() {
        let secret: Vec<i64> = vec![1, 0, 0, 1, 1, 0, 1, 0];
        let salt = Fr::from_raw([0x0123_4567_89ab_cdef, 0xfeed_f00d_dead_beef, 0x1357_9bdf_2468_ace0, 0x00ff_eedd]);
        let c = input_commitment(&secret, salt, 8);
        let all = (0u32..256).map(|m| (0..8).map(|b| ((m >> b) & 1) as i64).collect::<Vec<i64>>());
        for guess in all {
            assert_ne!(input_commitment(&guess, Fr::zero(), 8), c, "found without a salt");
            assert_ne!(input_commitment(&guess, salt + Fr::one(), 8), c, "found with a wrong salt");
            assert_eq!(input_commitment(&guess, salt, 8) == c, guess == secret);
        }
    }

    #[test]
    fn salts_are_below_2_248_and_round_trip() {
        let mut bytes = [7u8; 32];
        assert!(matches!(salt_from_bytes(&bytes), Err(Error::InvalidSalt(_))));
        bytes[0] = 0;
        let salt = salt_from_bytes(&bytes).unwrap();
        assert_eq!(crate::quant::field_to_be_bytes(&salt), bytes);
    }
}
