"""zkinfer: verifiable ML inference for smart contracts, from Python.

A model owner goes from an ONNX file (exported from torch, Keras or scikit-learn) to a model card,
proving and verifying keys, a Solidity verifier and a proof:

    import zkinfer
    card = zkinfer.setup("model.onnx", "build/model", insecure_dev_srs=True)
    proof = zkinfer.prove(card, [0.0, 0.5, ...])
    zkinfer.verify(card, proof)

Everything runs in the Rust library the ``prover-node`` CLI uses (the same defaults, the same
files); errors are ``ZkinferError`` subclasses whose ``kind`` names the Rust error.
"""

from ._native import (
    DEV_CHAIN_ID,
    ArtifactError,
    CircuitError,
    ClaimError,
    InputError,
    InvalidProofError,
    ModelCard,
    OnnxError,
    Proof,
    Prover,
    ProvingError,
    QuantizationError,
    SrsError,
    Verification,
    VerifierError,
    ZkinferError,
    __version__,
    calibrate,
    enable_logging,
    import_srs,
    load_card,
    prove,
    seal_input,
    setup,
    verify,
)

__all__ = [
    "DEV_CHAIN_ID",
    "ArtifactError",
    "CircuitError",
    "ClaimError",
    "InputError",
    "InvalidProofError",
    "ModelCard",
    "OnnxError",
    "Proof",
    "Prover",
    "ProvingError",
    "QuantizationError",
    "SrsError",
    "Verification",
    "VerifierError",
    "ZkinferError",
    "__version__",
    "calibrate",
    "enable_logging",
    "import_srs",
    "load_card",
    "prove",
    "seal_input",
    "setup",
    "verify",
]
