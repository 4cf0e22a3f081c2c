"""From a torch model to a model card, keys, a Solidity verifier and a proof, in one script.

    scripts/python                                   # builds and installs zkinfer into .venv
    .venv/bin/pip install torch                      # optional (the CUDA build from PyPI is ~3 GB)
    .venv/bin/python python/examples/torch_to_proof.py --out build/torch_digits

With torch it trains a small MLP on the zoo's 8x8 digits (pixels scaled to [0, 1]) and exports it
to ONNX; without torch, or with --onnx FILE, it takes an ONNX file as it is (default: the zoo's
digits_mlp.onnx, trained the same way in numpy). Each step is a notebook cell.
"""

import argparse
import inspect
import json
import pathlib
import warnings
from typing import Tuple

import zkinfer

ROOT = pathlib.Path(__file__).resolve().parents[2]
DIGITS = ROOT / "models" / "zoo" / "digits_test.json"  # {"inputs": [[64 floats]], "labels": [...]}
ZOO_MLP = ROOT / "models" / "zoo" / "digits_mlp.onnx"


def torch_to_onnx(out_dir: pathlib.Path) -> Tuple[pathlib.Path, pathlib.Path]:
    """Trains a 64-24-10 MLP on 300 of the digits and exports it with torch.onnx.export; writes the
    other 150 as the held-out set. Returns the ONNX file and the held-out set."""
    import torch

    data = json.loads(DIGITS.read_text())
    x = torch.tensor(data["inputs"], dtype=torch.float32)
    y = torch.tensor(data["labels"])
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 24), torch.nn.ReLU(), torch.nn.Linear(24, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(300):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x[:300]), y[:300])
        loss.backward()
        optimizer.step()
    print(f"trained         loss {loss.item():.3f} on 300 digits")
    heldout = out_dir / "digits_heldout.json"
    heldout.write_text(json.dumps({"inputs": data["inputs"][300:], "labels": data["labels"][300:]}))
    path = out_dir / "torch_digits.onnx"
    model.eval()
    # The TorchScript exporter: one static graph of Gemm and Relu, batch 1.
    legacy = {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(model, (x[:1],), str(path), input_names=["pixels"], output_names=["logits"], **legacy)
    return path, heldout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / "build" / "torch_digits", help="output directory")
    parser.add_argument("--onnx", type=pathlib.Path, help="an ONNX file to use instead of training with torch")
    parser.add_argument("--srs", type=pathlib.Path, help="a ceremony SRS (e.g. srs/hermez-raw-11); default: the insecure dev SRS")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    zkinfer.enable_logging("warn")

    # 1. The model, as ONNX.
    onnx, eval_set = args.onnx, DIGITS  # the zoo's models never saw digits_test.json
    if onnx is None:
        try:
            onnx, eval_set = torch_to_onnx(args.out)
        except ImportError:
            print(f"torch is not installed: using the zoo's {ZOO_MLP.name}")
            onnx = ZOO_MLP
    print(f"onnx            {onnx}")

    # 2. Calibrate: the fixed-point scales and value bits setup will use, and the error they cost.
    #    Inputs are pixels in [0, 1]: every input in that range is provable.
    calibration = zkinfer.calibrate(onnx, input_range=(0.0, 1.0), calibration_set=DIGITS)
    params, error = calibration["params"], calibration["error"]
    print(
        f"quantization    inputs 2^{params['input_scale_bits']}, weights 2^{params['weight_scale_bits']}, "
        f"activations 2^{params['activation_scale_bits']}, {params['value_bits']} value bits; "
        f"max output error {error['max_abs']:.4f} on {error['samples']} digits"
    )

    # 3. Setup: keys, the Solidity verifier and the model card. The dev SRS is for trying things
    #    out (its verifier only runs on chain 31337); pass a ceremony file for anything of value.
    srs = {"srs": args.srs, "max_k": 11} if args.srs else {"insecure_dev_srs": True}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the dev SRS warning: we know
        card = zkinfer.setup(
            onnx, args.out, input_range=(0.0, 1.0), calibration_set=DIGITS, eval_set=eval_set, **srs
        )
    print(f"model card      {card.path}")
    print(f"model id        {card.model_id}")
    print(f"circuit         k = {card.k}; srs {card.srs}")
    print(f"verifier        {card.files['verifier_sol']} ({card.verifier_bytes} bytes runtime)")
    acc = card.accuracy
    print(f"accuracy        float {acc['float']:.1%}, quantized {acc['quantized']:.1%} on {acc['samples']} held-out digits")

    # 4. Prove one digit, bound to a coordinator request and the account that will submit it.
    data = json.loads(DIGITS.read_text())
    image, label = data["inputs"][-1], data["labels"][-1]
    prover = zkinfer.Prover(card, srs=args.srs)
    proof = prover.prove(image, request_id=1, fulfiller="0x70997970C51812dc3A010C7d01b50e0d17dc79C8")
    proof.save(args.out / "proof.json")
    logits = ", ".join(f"{v:.2f}" for v in proof.output_dequantized)
    print(f"proved          digit {proof.prediction} (label {label}), logits [{logits}]")
    print(f"proof           {len(proof.proof)} bytes in {proof.prove_seconds:.2f} s -> {args.out / 'proof.json'}")
    print(f"calldata        verifier {len(proof.verifier_calldata)} bytes, fulfillInference {len(proof.fulfill_calldata)} bytes")

    # 5. Verify, as anyone holding the card and the proof can.
    checked = zkinfer.verify(card, proof, srs=args.srs)
    print(f"verified        prediction {checked.prediction} in {checked.seconds * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
