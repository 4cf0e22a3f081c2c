//! zkinfer models: from an ONNX file to a halo2-KZG proof of a quantized inference.
//!
//! * [`onnx`] imports a model (via `tract-onnx`), one module per operator family, into the small
//!   layer IR of [`ir`].
//! * [`graph`] quantizes it to integers and defines the semantics with a plain-integer
//!   reference forward pass.
//! * [`circuit`] lays the same computation out as a halo2 circuit (weights in fixed columns).
//! * [`sizing`] chooses the circuit's layout by a cost model (prove work, verifier gas and bytes).
//! * [`prover`] runs key generation, proving and native verification; [`verify`] verifies with
//!   only `[1]G1`, `G2`, `[τ]G2` of the SRS; [`srs`] loads the KZG SRS (and caches the dev one);
//!   [`artifact`] frames key files with checksums; [`card`] is the published model card.
//! * [`envelope`] seals a private input and its salt to a prover's X25519 key, and opens it.

pub mod artifact;
pub mod calibrate;
pub mod card;
pub mod circuit;
pub mod commitment;
pub mod envelope;
pub mod error;
pub mod eval;
pub mod functions;
pub mod graph;
pub mod ir;
pub mod onnx;
pub mod prover;
pub mod quant;
pub mod sizing;
pub mod srs;
pub mod verify;

pub use error::{Error, Result};
pub use halo2_base::halo2_proofs::halo2curves::bn256::{Bn256, Fr, G1Affine};

/// halo2 types that appear in this crate's API.
pub mod halo2_base_reexports {
    pub use halo2_base::halo2_proofs::{
        plonk::{ProvingKey, VerifyingKey},
        poly::kzg::commitment::ParamsKZG,
    };
}
