"""Shared fixtures: the zoo's digits MLP set up once per session with the insecure dev SRS."""

import json
import os
import warnings
from pathlib import Path

import pytest

import zkinfer

ROOT = Path(__file__).resolve().parents[2]
ZOO = ROOT / "models" / "zoo"
ONNX = ZOO / "digits_mlp.onnx"


def prover_node_binary() -> Path:
    """The CLI built from this checkout (scripts/test builds it before running pytest)."""
    if "ZKINFER_PROVER_NODE" in os.environ:
        return Path(os.environ["ZKINFER_PROVER_NODE"])
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    return target / "release" / "prover-node"


@pytest.fixture(scope="session")
def sample():
    """A handwritten 0 from the zoo (64 pixels scaled to [0, 1]) and its label."""
    doc = json.loads((ZOO / "digits_mlp.input.json").read_text())
    return doc["input"], doc["label"]


@pytest.fixture(scope="session")
def card(tmp_path_factory):
    out = tmp_path_factory.mktemp("digits_mlp")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return zkinfer.setup(ONNX, out, insecure_dev_srs=True)


@pytest.fixture(scope="session")
def prover(card):
    return zkinfer.Prover(card)


@pytest.fixture(scope="session")
def proof(prover, sample):
    return prover.prove(sample[0], request_id=7, fulfiller="0x70997970C51812dc3A010C7d01b50e0d17dc79C8")
