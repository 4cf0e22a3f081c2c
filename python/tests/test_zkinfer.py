"""The Python entry point on the zoo's digits MLP: setup, card, calibrate, prove, verify, errors."""

import ast
import inspect
import json
import math
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import onnxruntime
import pytest

import zkinfer
from conftest import ONNX, ROOT, ZOO, prover_node_binary

FULFILLER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


def test_setup_writes_the_card_keys_and_verifier(card):
    assert card.name == "digits_mlp"
    assert (card.input_shape, card.output_shape) == ([1, 64], [1, 10])
    assert (card.input_len, card.output_len) == (64, 10)
    # digits_mlp.meta.json: inputs are pixel/16 in [0, 1] at scale 2^4
    assert card.input_scale_bits == 4
    assert card.input_range == (0, 16)
    lo, hi = card.output_range
    assert lo < 0 < hi
    assert card.model_id.startswith("0x") and len(card.model_id) == 66
    assert card.insecure_srs and "INSECURE" in card.srs
    assert 0 < card.verifier_bytes <= 24576
    assert card.verifier_contract == "DigitsMlpVerifier"
    for name, path in card.files.items():
        assert Path(path).is_file(), f"{name}: {path} missing"
    assert card.files["verifier_sol"].endswith("DigitsMlpVerifier.sol")
    assert "contract DigitsMlpVerifier" in Path(card.files["verifier_sol"]).read_text()
    assert card.accuracy["quantized"] >= 0.9
    whole = card.to_dict()
    assert whole["model_id"] == card.model_id and whole["circuit"]["k"] == card.k
    assert zkinfer.load_card(card.path).to_dict() == whole
    assert zkinfer.ModelCard.load(Path(card.path)).model_id == card.model_id


def test_setup_with_the_dev_srs_warns_loudly(tmp_path):
    with pytest.warns(UserWarning, match="INSECURE dev SRS"):
        with pytest.raises(zkinfer.OnnxError):
            zkinfer.setup(_garbage_onnx(tmp_path), tmp_path / "out", insecure_dev_srs=True)


def test_setup_compiles_with_the_solc_named_by_zkinfer_solc(tmp_path, monkeypatch):
    fake = tmp_path / "solc"
    fake.write_text("#!/bin/sh\ncat >/dev/null\necho 'fake solc was called' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("ZKINFER_SOLC", str(fake))
    with pytest.warns(UserWarning):
        with pytest.raises(zkinfer.VerifierError, match="fake solc was called") as err:
            zkinfer.setup(ONNX, tmp_path / "out", insecure_dev_srs=True)
    assert err.value.kind == "SolcFailed"


@pytest.mark.parametrize("input_range", [(1.0, 0.0), (0.5, 0.5), (math.nan, 1.0), (0.0, math.inf)])
def test_an_invalid_input_range_is_a_named_error(tmp_path, input_range):
    with pytest.warns(UserWarning, match="INSECURE dev SRS"):
        with pytest.raises(zkinfer.QuantizationError, match="invalid input range") as err:
            zkinfer.setup(ONNX, tmp_path / "out", insecure_dev_srs=True, input_range=input_range)
    assert err.value.kind == "InvalidInputRange"
    with pytest.raises(zkinfer.QuantizationError, match="invalid input range"):
        zkinfer.calibrate(ONNX, input_range=input_range)


def test_setup_needs_exactly_one_srs(tmp_path):
    with pytest.raises(ValueError, match="choose an SRS"):
        zkinfer.setup(ONNX, tmp_path)
    with pytest.raises(ValueError, match="choose an SRS"):
        zkinfer.setup(ONNX, tmp_path, srs=ROOT / "srs" / "hermez-raw-11", insecure_dev_srs=True)


def _same(a, b):
    """Equal documents, floats to 1e-12 (the card file keeps 17 significant digits)."""
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, float):
        return a == pytest.approx(b, rel=1e-12, abs=0)
    return a == b


def test_calibrate_chooses_what_setup_chose(card):
    calibration = zkinfer.calibrate(ONNX)
    assert _same(calibration, card.to_dict()["calibration"])
    assert calibration["within_tolerance"] is True
    assert calibration["error"]["max_abs"] == pytest.approx(card.max_abs_error, rel=1e-12)
    # a fixed scale is kept
    fixed = zkinfer.calibrate(ONNX, input_scale_bits=6, weight_scale_bits=12, activation_scale_bits=8)
    assert (fixed["params"]["input_scale_bits"], fixed["params"]["activation_scale_bits"]) == (6, 8)


def test_prove_gives_the_reference_output_within_the_documented_error(card, prover, proof, sample):
    x, label = sample
    assert proof.output == prover.forward(x) == prover.forward(input_quantized=prover.quantize(x))
    assert proof.input == [round(v * 16) for v in x]
    assert proof.output_dequantized == [q / 2**card.output_scale_bits for q in proof.output]
    assert proof.prediction == label == int(np.argmax(proof.output))
    session = onnxruntime.InferenceSession(str(ONNX), providers=["CPUExecutionProvider"])
    (name,) = [i.name for i in session.get_inputs()]
    (logits,) = session.run(None, {name: np.asarray([x], dtype=np.float32)})
    # the sample is in the calibration set, whose largest error the card records (tract and
    # onnxruntime agree to float rounding)
    error = np.abs(np.asarray(proof.output_dequantized) - logits[0]).max()
    assert error <= card.max_abs_error + 1e-5, (error, card.max_abs_error)


def test_the_proof_is_bound_and_encoded_for_the_chain(card, proof):
    assert (proof.model, proof.model_id) == ("digits_mlp", card.model_id)
    assert (proof.request_id, proof.chain_id, proof.fulfiller) == (7, 31337, FULFILLER)
    assert proof.coordinator == "0x" + "0" * 40
    assert len(proof.instances) == card.to_dict()["circuit"]["num_instances"]
    words = b"".join(bytes.fromhex(w[2:]) for w in proof.instances)
    assert proof.verifier_calldata == words + proof.proof
    assert len(proof.proof) > 1000
    # fulfillInference(uint256,int256[],int256[],bytes) selector, then the request id
    assert proof.fulfill_calldata[4:36] == (7).to_bytes(32, "big")
    assert proof.prove_seconds > 0


def test_prove_matches_the_cli(card, proof, tmp_path):
    cli = prover_node_binary()
    if not cli.is_file():
        pytest.skip(f"{cli} not built (cargo build --release -p prover-node)")
    out = tmp_path / "cli-proof.json"
    subprocess.run(
        [cli, "prove", "--card", card.path, "--input", ZOO / "digits_mlp.input.json", "--insecure-dev-srs",
         "--request-id", "7", "--fulfiller", FULFILLER, "--out", out],
        check=True, capture_output=True,
    )
    cli_proof = zkinfer.Proof.load(out)
    assert (cli_proof.input, cli_proof.output, cli_proof.instances) == (proof.input, proof.output, proof.instances)
    assert cli_proof.fulfill_calldata[: 4 + 32 * 3] == proof.fulfill_calldata[: 4 + 32 * 3]
    # each side verifies the other's proof
    assert zkinfer.verify(card, out).output == proof.output
    mine = tmp_path / "python-proof.json"
    proof.save(mine)
    subprocess.run(
        [cli, "verify", "--card", card.path, "--proof", mine, "--insecure-dev-srs"], check=True, capture_output=True
    )


def test_verify_accepts_the_proof_object_and_its_file(card, proof, tmp_path):
    checked = zkinfer.verify(card, proof)
    assert (checked.output, checked.prediction) == (proof.output, proof.prediction)
    assert checked.output_dequantized == proof.output_dequantized
    assert 0 < checked.seconds < 5
    path = tmp_path / "proof.json"
    proof.save(path)
    assert proof.to_dict() == json.loads(proof.to_json())
    assert _same(zkinfer.Proof.load(path).to_dict(), proof.to_dict())
    assert zkinfer.verify(card.path, str(path)).output == proof.output


def _doctored(proof, change):
    doc = proof.to_dict()
    change(doc)
    return zkinfer.Proof.from_json(json.dumps(doc))


def test_a_flipped_proof_byte_fails_verification(card, proof):
    def flip(doc):
        raw = bytearray(bytes.fromhex(doc["proof"][2:]))
        raw[len(raw) // 2] ^= 1
        doc["proof"] = "0x" + raw.hex()
        words = b"".join(bytes.fromhex(w[2:]) for w in proof.instances)  # the dict's are unpadded
        doc["verifier_calldata"] = "0x" + (words + bytes(raw)).hex()

    with pytest.raises(zkinfer.InvalidProofError) as err:
        zkinfer.verify(card, _doctored(proof, flip))
    assert err.value.kind == "InvalidProof"
    assert not isinstance(err.value, zkinfer.ClaimError)


def test_a_doctored_claim_fails_by_name(card, proof):
    def other_output(doc):
        doc["output"][3] += 1
        doc["output_dequantized"][3] = doc["output"][3] / 2**card.output_scale_bits

    with pytest.raises(zkinfer.ClaimError, match="instances") as err:
        zkinfer.verify(card, _doctored(proof, other_output))
    assert err.value.kind == "InstancesMismatch"
    assert isinstance(err.value, zkinfer.InvalidProofError)

    def other_prediction(doc):
        doc["prediction"] = 7

    with pytest.raises(zkinfer.ClaimError, match="prediction 7") as err:
        zkinfer.verify(card, _doctored(proof, other_prediction))
    assert err.value.kind == "PredictionMismatch"


@pytest.mark.parametrize(
    "kwargs, kind, message",
    [
        ({"input": [0.5] * 63}, "InputLength", "takes 64 values"),
        ({"input": [0.5] * 63 + [2.0]}, "InputOutOfRange", r"input\[63\] = 32"),
        ({"input": [0.5] * 63 + [math.nan]}, "InputNotFinite", r"input\[63\]"),
        (
            {"input": [0.5] * 63 + [10**30]},
            "InputTooLarge",
            r"input\[63\] = 1e30 is outside the model's input range \[0, 1\] .* at scale 2\^4 .* below 5.625e17",
        ),
        ({"input_quantized": [8] * 63 + [-1]}, "InputOutOfRange", r"input\[63\] = -1"),
    ],
)
def test_bad_inputs_raise_input_errors(prover, kwargs, kind, message):
    with pytest.raises(zkinfer.InputError, match=message) as err:
        prover.prove(**kwargs)
    assert err.value.kind == kind
    assert isinstance(err.value, zkinfer.ZkinferError)


def test_bad_arguments_raise_value_errors(prover, sample):
    with pytest.raises(ValueError, match="exactly one"):
        prover.prove()
    with pytest.raises(ValueError, match="exactly one"):
        prover.prove(sample[0], input_quantized=[0] * 64)
    with pytest.raises(ValueError, match="not an address"):
        prover.prove(sample[0], fulfiller="0x1234")
    with pytest.raises(ValueError, match="unsigned 256-bit"):
        prover.prove(sample[0], request_id=-1)


def test_numpy_vectors_are_accepted(prover, sample):
    x = np.asarray(sample[0], dtype=np.float32)
    assert prover.forward(x) == prover.forward(sample[0])


def _garbage_onnx(tmp_path):
    path = tmp_path / "broken.onnx"
    path.write_bytes(b"this is not a protobuf \xff\xfe" * 8)
    return path


def test_a_malformed_onnx_file_is_named(tmp_path):
    path = _garbage_onnx(tmp_path)
    with pytest.raises(zkinfer.OnnxError, match="broken.onnx") as err:
        zkinfer.calibrate(path)
    assert err.value.kind == "MalformedOnnx"
    with pytest.raises(zkinfer.ArtifactError, match="missing.onnx") as err:
        zkinfer.calibrate(tmp_path / "missing.onnx")
    assert err.value.kind == "Io"


def test_malformed_cards_and_proofs_are_artifact_errors(tmp_path):
    path = tmp_path / "card.json"
    path.write_text("{}")
    with pytest.raises(zkinfer.ArtifactError, match="model card") as err:
        zkinfer.load_card(path)
    assert err.value.kind == "Json"
    with pytest.raises(zkinfer.ArtifactError, match="proof"):
        zkinfer.Proof.from_json('{"model": 1}')


def test_proving_releases_the_gil(prover, sample):
    done = threading.Event()
    result = {}

    def work():
        started = time.perf_counter()
        result["proof"] = prover.prove(sample[0])
        result["seconds"] = time.perf_counter() - started
        done.set()

    thread = threading.Thread(target=work)
    last = time.perf_counter()
    longest = 0.0
    thread.start()
    while not done.is_set():
        now = time.perf_counter()
        longest, last = max(longest, now - last), now
    thread.join()
    # with the GIL held for the whole proof, this loop would stall for all of it
    assert longest < result["seconds"] / 4, (longest, result["seconds"])
    assert result["proof"].output == prover.forward(sample[0])


def test_a_ceremony_card_needs_its_srs(tmp_path, sample):
    ceremony = ROOT / "srs" / "hermez-raw-11"
    card = zkinfer.setup(ONNX, tmp_path, srs=ceremony, max_k=11)
    assert not card.insecure_srs and card.k <= 11
    with pytest.raises(zkinfer.SrsError, match="pass srs=") as err:
        zkinfer.Prover(card)
    assert err.value.kind == "SrsRequired"
    proof = zkinfer.prove(card, sample[0], srs=ceremony)
    assert zkinfer.verify(card, proof, srs=ceremony).prediction == sample[1]
    with pytest.raises(zkinfer.SrsError):
        zkinfer.verify(card, proof)


def test_the_example_runs_on_the_zoo_model(tmp_path):
    example = ROOT / "python" / "examples" / "torch_to_proof.py"
    run = subprocess.run(
        [sys.executable, example, "--onnx", ONNX, "--out", tmp_path], check=True, capture_output=True, text=True
    )
    assert "verified        prediction" in run.stdout, run.stdout
    assert (tmp_path / "digits_mlp.card.json").is_file() and (tmp_path / "proof.json").is_file()


def _stub_parameters(function):
    args = function.args
    names = [a.arg for a in args.posonlyargs + args.args if a.arg != "self"]
    return names, [a.arg for a in args.kwonlyargs]


def _runtime_parameters(obj):
    parameters = inspect.signature(obj).parameters.values()
    positional = [p.name for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return [n for n in positional if n != "self"], [p.name for p in parameters if p.kind == p.KEYWORD_ONLY]


def test_the_stub_matches_the_module():
    stub = ast.parse((Path(zkinfer.__file__).parent / "_native.pyi").read_text())
    defined = {node.name: node for node in stub.body if isinstance(node, (ast.FunctionDef, ast.ClassDef))}
    assert set(zkinfer.__all__) - {"__version__", "DEV_CHAIN_ID"} <= set(defined)
    for name, node in defined.items():
        if isinstance(node, ast.FunctionDef):
            assert _stub_parameters(node) == _runtime_parameters(getattr(zkinfer, name)), name
    prover = {node.name: node for node in defined["Prover"].body if isinstance(node, ast.FunctionDef)}
    for method in ("prove", "forward", "quantize"):
        assert _stub_parameters(prover[method]) == _runtime_parameters(getattr(zkinfer.Prover, method)), method
    assert _stub_parameters(prover["__init__"]) == _runtime_parameters(zkinfer.Prover)


# The X25519 base point (u = 9): a valid, contributory public key for sealing in tests.
BASE_POINT_KEY = "0x09" + "00" * 31
COORDINATOR = "0xc0dec0dec0dec0dec0dec0dec0dec0dec0dec0de"


@pytest.fixture(scope="session")
def private_card(tmp_path_factory):
    out = tmp_path_factory.mktemp("digits_mlp_private")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return zkinfer.setup(ONNX, out, insecure_dev_srs=True, private_input=True)


def test_a_private_input_is_sealed_and_proved_behind_its_commitment(card, private_card, sample):
    doc = private_card.to_dict()
    assert doc["input_committed"] and not card.to_dict()["input_committed"]
    assert doc["model_id"] != card.model_id
    assert doc["circuit"]["num_instances"] == 3  # binding, commitment, one word of 10 logits
    sealed = zkinfer.seal_input(
        private_card, sample[0], encryption_key=BASE_POINT_KEY, requester=FULFILLER, coordinator=COORDINATOR
    )
    assert len(bytes.fromhex(sealed["ciphertext"][2:])) == 81 + 8 * 64
    assert sealed["salt"][2:4] == "00"  # below 2**248
    prover = zkinfer.Prover(private_card)
    proof = prover.prove(sample[0], request_id=3, fulfiller=FULFILLER, salt=sealed["salt"])
    assert proof.commitment == sealed["commitment"] == proof.instances[1]
    assert proof.input == []
    assert proof.output == prover.forward(sample[0])
    zkinfer.verify(private_card, proof)
    # Another salt commits to something else; the public model takes no salt, the private one needs it.
    other = prover.prove(sample[0], salt="0x00" + "11" * 31)
    assert other.commitment != sealed["commitment"]
    with pytest.raises(zkinfer.ZkinferError, match="salt"):
        prover.prove(sample[0])
    with pytest.raises(zkinfer.ZkinferError, match="salt"):
        zkinfer.Prover(card).prove(sample[0], salt=sealed["salt"])
    with pytest.raises(zkinfer.ZkinferError, match="--private-input"):
        zkinfer.seal_input(card, sample[0], encryption_key=BASE_POINT_KEY, requester=FULFILLER, coordinator=COORDINATOR)
    with pytest.raises(zkinfer.ZkinferError, match="2\\^248"):
        prover.prove(sample[0], salt="0x" + "ff" * 32)
