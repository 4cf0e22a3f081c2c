"""Type stubs of zkinfer's extension module (python/src/*.rs).

Units: real values are the model's float inputs and outputs; quantized values are integers at a
power-of-two scale (input q = round(x * 2**input_scale_bits); output x = q / 2**output_scale_bits).
Times are seconds, sizes bytes, gas in EVM gas units.
"""

import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

_Path = Union[str, "os.PathLike[str]"]

__version__: str
DEV_CHAIN_ID: int
"""Chain id on which verifiers made with the insecure dev SRS run (31337, anvil's)."""

class ZkinferError(Exception):
    """Base class of every zkinfer error; the message says what to do."""

    kind: str
    """The Rust error variant, e.g. "InputLength", "MalformedOnnx", "InvalidProof"."""

class OnnxError(ZkinferError):
    """The ONNX file is not readable, or has operators, attributes or shapes zkinfer cannot prove."""

class QuantizationError(ZkinferError):
    """Scales or value bits that cannot work: an overflow, or an input range that cannot be proved."""

class InputError(ZkinferError):
    """A model input of the wrong length, outside the model's range, not finite, not integral, or
    one the model cannot evaluate (kind "DivisionByZero")."""

class CircuitError(ZkinferError):
    """No circuit layout fits the requested size (k, lanes), or the layout is unusable."""

class SrsError(ZkinferError):
    """The SRS failed its checks, is too small, or is not the one the keys were made with
    (kind "SrsRequired": the card's keys need their SRS file, pass srs=...)."""

class ArtifactError(ZkinferError):
    """A file (card, key, proof, metadata, data set) is missing, unreadable, corrupted or malformed."""

class VerifierError(ZkinferError):
    """Generating or compiling the Solidity verifier failed (solc missing or failing, too large)."""

class ProvingError(ZkinferError):
    """Proof generation failed."""

class InvalidProofError(ZkinferError):
    """The proof does not verify against the model's verifying key and the public instances."""

class ClaimError(InvalidProofError):
    """A proof claims something its proof does not back (an output outside the model's range,
    another model, instances or calldata that do not match, a wrong prediction)."""

class ModelCard:
    """The published description of a set-up model (the JSON file `setup` writes)."""

    @staticmethod
    def load(path: _Path) -> "ModelCard":
        """Reads a card file written by `setup` (or `prover-node setup`)."""
    @property
    def path(self) -> str:
        """Absolute path of the card file."""
    @property
    def name(self) -> str: ...
    @property
    def description(self) -> str: ...
    @property
    def model_id(self) -> str:
        """On-chain model id, 0x-hex bytes32 (hash of the verifier's code hash and the encoding)."""
    @property
    def input_shape(self) -> List[int]: ...
    @property
    def output_shape(self) -> List[int]: ...
    @property
    def input_len(self) -> int:
        """Number of input values a proof takes (all inputs concatenated flat, ONNX input order)."""
    @property
    def output_len(self) -> int:
        """Number of output values a proof returns."""
    @property
    def input_scale_bits(self) -> int:
        """Inputs are quantized as round(x * 2**input_scale_bits)."""
    @property
    def output_scale_bits(self) -> int:
        """Real output = quantized output / 2**output_scale_bits."""
    @property
    def value_bits(self) -> int:
        """Every activation fits in this many signed bits."""
    @property
    def input_range(self) -> Tuple[int, int]:
        """Quantized input range (inclusive) every request must lie in."""
    @property
    def output_range(self) -> Tuple[int, int]:
        """Possible quantized output range (inclusive)."""
    @property
    def max_abs_error(self) -> Optional[float]:
        """Largest absolute output error against the float model measured at calibration, in real
        units (None on a card without a calibration section)."""
    @property
    def k(self) -> int:
        """The circuit has 2**k rows."""
    @property
    def insecure_srs(self) -> bool:
        """True when the keys come from the INSECURE dev SRS (verifier runs on chain 31337 only)."""
    @property
    def srs(self) -> str:
        """One line on the SRS: ceremony, k and hashes."""
    @property
    def verifier_contract(self) -> str:
        """Solidity contract name of the verifier."""
    @property
    def verifier_bytes(self) -> int:
        """Runtime bytecode size of the verifier, in bytes (EIP-170 limit: 24,576)."""
    @property
    def accuracy(self) -> Optional[Dict[str, Any]]:
        """Float and quantized accuracy (fractions of 1) on the eval set, None without one."""
    @property
    def files(self) -> Dict[str, str]:
        """Absolute paths: onnx, proving_key, verifying_key, verifier_sol (Solidity source) and
        verifier_artifact (compiled bytecode and ABI, JSON)."""
    def to_dict(self) -> Dict[str, Any]:
        """The whole card as a dict."""

class Proof:
    """A proof of one inference with everything needed to check it or send it on-chain; the same
    document as `prover-node prove`'s proof JSON."""

    @staticmethod
    def load(path: _Path) -> "Proof":
        """Reads a proof JSON file (from `Proof.save` or `prover-node prove`)."""
    @staticmethod
    def from_json(text: str) -> "Proof":
        """Parses the proof JSON text `to_json` writes; ArtifactError if malformed."""
    def save(self, path: _Path) -> None: ...
    def to_json(self) -> str: ...
    def to_dict(self) -> Dict[str, Any]:
        """The proof JSON as a dict (bytes and 32-byte words as 0x-hex strings)."""
    @property
    def model(self) -> str: ...
    @property
    def model_id(self) -> str: ...
    @property
    def chain_id(self) -> int: ...
    @property
    def coordinator(self) -> str:
        """Coordinator address the proof is bound to (checksummed 0x-hex)."""
    @property
    def request_id(self) -> int: ...
    @property
    def fulfiller(self) -> str:
        """Account allowed to submit the proof (checksummed 0x-hex)."""
    @property
    def input(self) -> List[int]:
        """Quantized input, integers at scale 2**input_scale_bits (empty for a committed-input
        model: the proof carries the commitment instead)."""
    @property
    def commitment(self) -> Optional[str]:
        """The input commitment (0x-hex) of a committed-input model's proof; None otherwise."""
    @property
    def output(self) -> List[int]:
        """Quantized output, integers at scale 2**output_scale_bits."""
    @property
    def output_dequantized(self) -> List[float]:
        """Output in real units: output / 2**output_scale_bits."""
    @property
    def prediction(self) -> int:
        """Index of the largest output (the class of a classifier)."""
    @property
    def instances(self) -> List[str]:
        """Public instances as 0x-hex 32-byte words: binding, packed input, packed output."""
    @property
    def proof(self) -> bytes: ...
    @property
    def verifier_calldata(self) -> bytes:
        """Calldata of the model's verifier contract: 32-byte instances followed by the proof."""
    @property
    def fulfill_calldata(self) -> bytes:
        """Calldata of InferenceCoordinator.fulfillInference(requestId, input, output, proof)."""
    @property
    def prove_seconds(self) -> float: ...

class Verification:
    """What `verify` established, derived only from what the proof covers."""

    @property
    def output(self) -> List[int]: ...
    @property
    def output_dequantized(self) -> List[float]: ...
    @property
    def prediction(self) -> int: ...
    @property
    def seconds(self) -> float:
        """Time the native verification took."""

class Prover:
    """A model loaded for proving (card, proving key, SRS), to prove many inputs."""

    def __init__(self, card: Union[ModelCard, _Path], *, srs: Optional[_Path] = None) -> None:
        """`srs`: the SRS file the keys were made with (imported or ceremony file); leave it out
        for keys made with the insecure dev SRS (regenerated from the card's seed, cached on disk
        in $ZKINFER_CACHE_DIR, else $XDG_CACHE_HOME/zkinfer, else ~/.cache/zkinfer)."""
    @property
    def card(self) -> ModelCard: ...
    def quantize(self, input: Sequence[float]) -> List[int]:
        """round(x * 2**input_scale_bits) of each real input, range-checked (InputError)."""
    def forward(
        self, input: Optional[Sequence[float]] = None, *, input_quantized: Optional[Sequence[int]] = None
    ) -> List[int]:
        """The quantized output a proof of this input will carry (the integer reference forward
        pass, no proof), at scale 2**output_scale_bits."""
    def prove(
        self,
        input: Optional[Sequence[float]] = None,
        *,
        input_quantized: Optional[Sequence[int]] = None,
        request_id: Optional[int] = None,
        chain_id: int = 31337,
        coordinator: Optional[str] = None,
        fulfiller: Optional[str] = None,
        salt: Optional[str] = None,
    ) -> Proof:
        """Proves one inference (the GIL is released meanwhile). Give `input` (real values, flat,
        all inputs concatenated) or `input_quantized` (integers). `request_id` (default 0),
        `chain_id`, `coordinator` and `fulfiller` (0x-hex addresses, default zero) bind the proof
        to one coordinator request and the account that submits it. `salt` (0x-hex, 32 bytes below
        2**248): the salt of the input commitment, required for a model set up with
        `private_input=True` (its proof then carries the commitment, not the input) and refused
        for others."""

def setup(
    onnx: _Path,
    out_dir: _Path,
    *,
    srs: Optional[_Path] = None,
    insecure_dev_srs: bool = False,
    dev_srs_seed: int = 42,
    name: Optional[str] = None,
    input_scale_bits: Optional[int] = None,
    weight_scale_bits: Optional[int] = None,
    activation_scale_bits: Optional[int] = None,
    value_bits: Optional[int] = None,
    tolerance: Optional[float] = None,
    input_range: Optional[Tuple[float, float]] = None,
    calibration_set: Optional[_Path] = None,
    eval_set: Optional[_Path] = None,
    dims: Optional[Mapping[str, int]] = None,
    k: Optional[int] = None,
    max_k: Optional[int] = None,
    lanes: Optional[int] = None,
    private_input: bool = False,
    solc: Optional[_Path] = None,
) -> ModelCard:
    """Quantizes, sizes and sets up an ONNX model: writes the proving key, verifying key, Solidity
    verifier (source and compiled artifact) and model card to `out_dir`, as `prover-node setup`.

    SRS: exactly one of `srs` (a ceremony file such as srs/hermez-raw-11, or one written by
    `import_srs`) or `insecure_dev_srs=True` (public seed `dev_srs_seed`: throwaway keys whose
    verifier only runs on chain 31337; a UserWarning says so).

    Defaults (the CLI's): scales (bits of the power-of-two fixed-point scales) from
    `<model>.meta.json` beside the ONNX file, else calibrated; `value_bits` sized from a sound
    bound over the input range; `tolerance` 0.005 (every output within 0.5% of its float value
    plus 0.05% of the mean output); `input_range` (real units, inclusive) from the metadata, else
    (-256, 255) narrowed if needed; `calibration_set` / `eval_set`: JSON files
    {"inputs": [[...]], "labels": [...]} (default: the metadata's eval set); `dims`: values of
    symbolic dimensions (others 1); `k`: fixed circuit size 2**k rows, else chosen up to `max_k`
    (20); `lanes`: dot-product gate width, else chosen by the cost model; `private_input`: commit to
    the input instead of making it public (private requests; another verifier and model id).

    solc: the Solidity compiler for the verifier, solc 0.8.30 (forge's version here, so the code
    hash and model id equal forge's). If not given: $ZKINFER_SOLC (a native solc 0.8.30 or a
    checkout's scripts/solc), else a `solc` on PATH reporting version 0.8.30, else scripts/solc of
    the checkout this package was built from if it is still there; else VerifierError (kind
    "SolcNotFound") naming the three places, raised before any work."""

def calibrate(
    onnx: _Path,
    *,
    input_scale_bits: Optional[int] = None,
    weight_scale_bits: Optional[int] = None,
    activation_scale_bits: Optional[int] = None,
    value_bits: Optional[int] = None,
    tolerance: Optional[float] = None,
    input_range: Optional[Tuple[float, float]] = None,
    calibration_set: Optional[_Path] = None,
    dims: Optional[Mapping[str, int]] = None,
) -> Dict[str, Any]:
    """The quantization `setup` would choose with the same options, without keys: the card's
    `calibration` section as a dict (params, input_range, input_range_real, narrowed, bound,
    error {max_abs, mean_abs, worst_ratio, ...} in real units, tolerance, within_tolerance)."""

def load_card(path: _Path) -> ModelCard:
    """Reads a model card written by `setup`."""

def prove(
    card: Union[ModelCard, _Path],
    input: Optional[Sequence[float]] = None,
    *,
    input_quantized: Optional[Sequence[int]] = None,
    srs: Optional[_Path] = None,
    request_id: Optional[int] = None,
    chain_id: int = 31337,
    coordinator: Optional[str] = None,
    fulfiller: Optional[str] = None,
    salt: Optional[str] = None,
) -> Proof:
    """`Prover(card, srs=srs).prove(...)`: loads the keys on every call (keep a Prover for many)."""

def seal_input(
    card: Union[ModelCard, _Path],
    input: Optional[Sequence[float]] = None,
    *,
    input_quantized: Optional[Sequence[int]] = None,
    encryption_key: str,
    requester: str,
    coordinator: str,
    chain_id: int = 31337,
) -> Dict[str, Any]:
    """For a private request to a committed-input model (set up with `private_input=True`):
    commits to the input with a fresh random salt, C = Poseidon(packed input ‖ salt), and seals
    (salt, input) to the prover's X25519 `encryption_key` (its `encryptionKeyOf` on the coordinator)
    for one chain, coordinator, requester (the account or contract that calls
    `requestPrivateInference`) and model. Returns {"commitment", "encryption_key", "ciphertext",
    "salt", "requester", "model_id", "chain_id", "coordinator"} (0x-hex); pass the first three to
    `requestPrivateInference` and keep the salt private."""

def verify(card: Union[ModelCard, _Path], proof: Union[Proof, _Path], *, srs: Optional[_Path] = None) -> Verification:
    """Verifies natively, as `prover-node verify`: the proof's claims against what it covers
    (ClaimError), then the proof against the verifying key and the card's SRS
    (InvalidProofError). `srs` as for Prover."""

def import_srs(
    file: _Path, out: _Path, *, k: Optional[int] = None, allow_unknown_ceremony: bool = False
) -> Dict[str, Any]:
    """Checks a ceremony file (snarkjs .ptau or raw halo2 ParamsKZG), recomputes the Lagrange
    points, downsizes to 2**k points and writes the SRS setup/prove load; returns its provenance."""

def enable_logging(filter: str = "info") -> bool:
    """Sends zkinfer's log lines to stderr (`filter` as RUST_LOG); False if already enabled."""
