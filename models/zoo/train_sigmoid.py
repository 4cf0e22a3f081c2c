#!/usr/bin/env python3
"""Train a breast-cancer MLP with a Sigmoid output (PyTorch) and export it with torch.onnx.

Run (from the repository root):

    python3 -m venv models/zoo/.venv
    models/zoo/.venv/bin/pip install -r models/zoo/requirements.txt
    models/zoo/.venv/bin/python models/zoo/train_sigmoid.py

Data: exactly the split of ``train_sklearn.py`` (scikit-learn's bundled
Wisconsin diagnostic breast-cancer set, ``load_breast_cancer``: 569 samples,
30 raw features, target 0 = malignant, 1 = benign; stratified 75/25 split
with ``random_state=0``).  The script asserts that its held-out part equals
``breast_cancer_test.json`` (the raw features, shared with ``breast_cancer``)
and reports accuracy on those 143 samples only.

Model ``breast_cancer_sigmoid`` (input ``[1,30]`` raw features, output
``[1,2]`` = ``[1 - p, p]`` with ``p`` = P(benign)):

    (x - mean) / std                      standardisation in the graph (Sub, Div)
    -> Linear(30->16) -> ReLU             Gemm, Relu
    -> Linear(16->1) -> Sigmoid           Gemm, Sigmoid: p = P(benign)
    -> cat([1 - p, p], dim=1)             Sub (from the constant 1), Concat

``mean`` and ``std`` are the training part's per-feature mean and population
standard deviation (as ``StandardScaler``), stored as float32 buffers.  The
two-column output makes ``argmax`` the decision ``p > 0.5`` (class 1 =
benign iff ``p > 1 - p``; at exactly ``p = 0.5`` argmax takes the first
column, malignant), so accuracy, the prover's prediction and
``prover-node verify`` need no special case for a single probability.  The
Sigmoid is still the classifier's output non-linearity: column 1 is its
value, column 0 its complement.

Training: binary cross-entropy on the logit (``BCEWithLogitsLoss``),
full-batch Adam (lr 1e-2) for 400 steps, fixed seeds, single-threaded and
deterministic.  At every step the raw inputs get fresh uniform noise of
+-half a unit in the last place of the target input encoding 2^-8
(``NOISE_BITS``, the input scale of ``breast_cancer``): the features with the
smallest spread (fractal-dimension error: std 0.0026) are of the order of
that unit, and a net trained without the noise leaned on them so much that
rounding the inputs to 2^-8 flipped three held-out predictions (2^-12 was
needed before none changed).  The noise level is fixed by the encoding, not
tuned.  The weight decay (L2 on all parameters) is chosen by 5-fold
stratified cross-validation on the training part only, from
``WEIGHT_DECAYS``; ties go to the strongest decay (smaller weights suit the
fixed-point encoding).

Export: ``torch.onnx.export`` (TorchScript exporter, ``dynamo=False``) in
eval mode, opset 17, batch fixed to 1 (no dynamic axes).  The script checks
the model with ``onnx.checker`` (full check), asserts that it holds standard
ONNX ops only, runs it with onnxruntime at batch 1 on every test sample,
asserts agreement with PyTorch (< 1e-5) and takes ``float_accuracy`` from
onnxruntime (argmax of the two columns).

Input precision: as in ``train_sklearn.py``, one fixed-point input scale for
all raw features; the script prints the held-out accuracy with inputs
rounded to 2^-b for b = 2..16, and ``input_scale_bits`` is the smallest b
from which on no held-out prediction changes.  ``input_range`` is the same
raw range as ``breast_cancer`` ([0, 4700]: the dataset's maximum with a 10%
margin, rounded up), ``feature_ranges`` gives it per feature, and
``standardized_range`` records the range of the standardised features
``(x - mean) / std`` over all 569 samples (what the first Gemm sees on real
data), with ``standardized_range_of_input_range`` the (much wider) range
that the registered raw input range allows.

Writes (in models/zoo/): ``breast_cancer_sigmoid.onnx``,
``breast_cancer_sigmoid.meta.json``, ``breast_cancer_sigmoid.input.json``
(``{"input": [30 floats], "label": c}``: the first test sample classified
correctly with ``|p - 0.5| > 0.4``).  ``breast_cancer_test.json`` is read,
not written.
"""

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import json  # noqa: E402
import math  # noqa: E402
from collections import Counter  # noqa: E402

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
import torch  # noqa: E402
from sklearn.datasets import load_breast_cancer  # noqa: E402
from sklearn.model_selection import StratifiedKFold, train_test_split  # noqa: E402
from torch import nn  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
NAME = "breast_cancer_sigmoid"
EVAL_SET = "breast_cancer_test.json"
SEED = 0
OPSET = 17
HIDDEN = 16
STEPS = 400
LR = 1e-2
WEIGHT_DECAYS = [1e-4, 1e-3, 1e-2, 3e-2]
NOISE_BITS = 8
STANDARD_OPS = {"Sub", "Div", "Gemm", "Relu", "Sigmoid", "Concat", "Constant"}


def load_data():
    data = load_breast_cancer()
    x, y = data.data, data.target.astype(np.int64)  # x float64, as shipped
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=0.25, stratify=y, random_state=SEED)
    return data, x, x_tr, x_te, y_tr, y_te


class SigmoidMlp(nn.Module):
    def __init__(self, mean, std, hidden=HIDDEN):
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32))
        self.fc1 = nn.Linear(30, hidden)
        self.fc2 = nn.Linear(hidden, 1)

    def logit(self, x):
        z = (x - self.mean) / self.std
        return self.fc2(torch.relu(self.fc1(z)))

    def forward(self, x):
        p = torch.sigmoid(self.logit(x))
        return torch.cat([1.0 - p, p], dim=1)


def standardizer(x):
    """Per-feature mean and population std (StandardScaler's), float32."""
    return x.mean(0).astype(np.float32), x.std(0).astype(np.float32)


def fit(x, y, weight_decay):
    """Deterministic full-batch training; returns the model in eval mode."""
    torch.manual_seed(SEED)
    noise = torch.Generator().manual_seed(SEED + 1)
    mean, std = standardizer(x)
    model = SigmoidMlp(mean, std)
    xt = torch.from_numpy(x.astype(np.float32))
    yt = torch.from_numpy(y.astype(np.float32))[:, None]
    opt = torch.optim.Adam(model.parameters(), lr=LR, weight_decay=weight_decay)
    loss_fn = nn.BCEWithLogitsLoss()
    model.train()
    for _ in range(STEPS):
        opt.zero_grad()
        jitter = (torch.rand(xt.shape, generator=noise) - 0.5) * 2.0 ** -NOISE_BITS
        loss = loss_fn(model.logit(xt + jitter), yt)
        loss.backward()
        opt.step()
    model.eval()
    return model, float(loss.item())


def predict(model, x):
    with torch.no_grad():
        return model(torch.from_numpy(x.astype(np.float32))).numpy()


def choose(x_tr, y_tr):
    folds = list(StratifiedKFold(5, shuffle=True, random_state=SEED).split(x_tr, y_tr))
    results = []
    for wd in WEIGHT_DECAYS:
        correct = 0
        for tr, va in folds:
            model, _ = fit(x_tr[tr], y_tr[tr], wd)
            correct += int((predict(model, x_tr[va]).argmax(1) == y_tr[va]).sum())
        print(f"  weight decay {wd:g}: cv accuracy {correct / len(y_tr):.4f} "
              f"({correct}/{len(y_tr)})")
        results.append((correct, wd))
    top = max(r[0] for r in results)
    wd = max(r[1] for r in results if r[0] == top)
    return top / len(y_tr), wd


def session(path):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])


def describe(model):
    g = model.graph
    ops = Counter(n.op_type for n in g.node)

    def shape(v):
        return [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]

    print(f"  opset {model.opset_import[0].version}, IR {model.ir_version}, "
          f"domains {sorted({o.domain or 'ai.onnx' for o in model.opset_import})}")
    print(f"  op types (in order): {[n.op_type for n in g.node]}")
    print(f"  inputs:  {[(v.name, shape(v)) for v in g.input]}")
    print(f"  outputs: {[(v.name, shape(v)) for v in g.output]}")
    return ops


def main():
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)

    data, x_all, x_tr, x_te, y_tr, y_te = load_data()
    with open(os.path.join(HERE, EVAL_SET)) as f:
        ref = json.load(f)
    assert np.array_equal(np.array(ref["inputs"]), x_te), f"{EVAL_SET} is another split"
    assert ref["labels"] == [int(v) for v in y_te]
    print(f"train {len(y_tr)}  test {len(y_te)} (= {EVAL_SET})")

    print("choosing the weight decay (5-fold CV on the training part)")
    cv, wd = choose(x_tr, y_tr)
    print(f"  chosen: weight decay {wd:g} (cv accuracy {cv:.4f})")
    model, loss = fit(x_tr, y_tr, wd)
    n_params = sum(p.numel() for p in model.parameters())
    torch_out = predict(model, x_te)
    print(f"trained {NAME} ({n_params} parameters), final training loss {loss:.4f}, "
          f"torch test accuracy {(torch_out.argmax(1) == y_te).mean():.4f}")

    path = os.path.join(HERE, f"{NAME}.onnx")
    example = torch.from_numpy(x_te[:1].astype(np.float32))
    torch.onnx.export(model, (example,), path, dynamo=False, opset_version=OPSET,
                      input_names=["input"], output_names=["probs"])
    exported = onnx.load(path)
    onnx.checker.check_model(exported, full_check=True)
    print(f"exported {path}")
    ops = describe(exported)
    domains = {o.domain or "ai.onnx" for o in exported.opset_import}
    assert set(ops) <= STANDARD_OPS and domains == {"ai.onnx"}, (ops, domains)
    assert ops["Sigmoid"] == 1 and ops["Concat"] == 1, ops

    sess = session(path)
    xf = x_te.astype(np.float32)
    out = np.stack([sess.run(None, {"input": xi[None, :]})[0][0] for xi in xf])
    diff = float(np.abs(out - torch_out).max())
    assert diff < 1e-5, f"onnxruntime differs from torch by {diff}"
    assert float(np.abs(out.sum(1) - 1.0).max()) < 1e-6
    pred = out.argmax(1)
    assert np.array_equal(pred, (out[:, 1] > 0.5).astype(np.int64))
    acc = float((pred == y_te).mean())
    wmax = max(float(np.abs(onnx.numpy_helper.to_array(t)).max())
               for t in exported.graph.initializer if t.name.startswith("fc"))
    print(f"{NAME}: onnxruntime test accuracy {acc:.4f} ({int((pred == y_te).sum())}/{len(y_te)}),"
          f" max |ort - torch| = {diff:.2e}, max |Gemm weight or bias| = {wmax:.3f}")
    assert acc >= 0.95

    # Input precision: a single fixed-point input scale for all raw features.
    changed_at = {}
    for b in range(2, 17):
        q = (np.round(xf * (1 << b)) / (1 << b)).astype(np.float32)
        qo = np.stack([sess.run(None, {"input": xi[None, :]})[0][0] for xi in q])
        changed_at[b] = int((qo.argmax(1) != pred).sum())
        print(f"  inputs rounded to 2^-{b:<2d}: accuracy {(qo.argmax(1) == y_te).mean():.4f}, "
              f"{changed_at[b]} predictions changed, max |p error| "
              f"{np.abs(qo[:, 1] - out[:, 1]).max():.4f}")
    scale_bits = min(b for b in changed_at if all(changed_at[c] == 0 for c in changed_at if c >= b))

    lo, hi = x_all.min(0), x_all.max(0)
    feature_ranges = [[round(max(0.0, float(a) - 0.1 * float(b - a)), 6),
                       round(float(b) + 0.1 * float(b - a), 6)] for a, b in zip(lo, hi)]
    input_range = [0.0, float(math.ceil(float(hi.max()) * 1.1 / 100.0) * 100)]
    mean, std = model.mean.numpy().astype(np.float64), model.std.numpy().astype(np.float64)
    z_all = (x_all - mean) / std
    std_range = [round(float(z_all.min()), 3), round(float(z_all.max()), 3)]
    std_of_input = [round(float(((input_range[0] - mean) / std).min()), 1),
                    round(float(((input_range[1] - mean) / std).max()), 1)]
    print(f"standardized features over the data set: {std_range}; over the raw input range "
          f"{input_range}: {std_of_input}")

    with open(os.path.join(HERE, f"{NAME}.meta.json"), "w") as f:
        json.dump({
            "name": NAME,
            "description": (
                f"PyTorch MLP with a Sigmoid output: (x - mean) / std (Sub, Div: the "
                f"standardisation is in the graph, training-part mean and population std) -> "
                f"Gemm(30->{HIDDEN}) -> Relu -> Gemm({HIDDEN}->1) -> Sigmoid = p = P(benign) -> "
                "Concat([1 - p, p]) (Sub from the constant 1); trained with binary "
                f"cross-entropy (full-batch Adam, {STEPS} steps, inputs jittered by +-2^-"
                f"{NOISE_BITS + 1} (input rounding noise), weight decay {wd:g} chosen by "
                "5-fold CV on the training part), exported by torch.onnx.export (opset 17, "
                "batch 1). Input = the 30 RAW features, the same as breast_cancer (input_range "
                "is the raw range with a 10% margin, per feature in feature_ranges; "
                "standardized_range is the standardised features' range over the data set). "
                "Output = [1 - p, p]: argmax = class, i.e. benign iff p > 0.5."),
            "dataset": "sklearn breast cancer (Wisconsin diagnostic)",
            "input_shape": [1, 30],
            "output_shape": [1, 2],
            "input_scale_bits": scale_bits,
            "float_accuracy": round(acc, 6),
            "test_samples": int(len(y_te)),
            "labels": "0 = malignant, 1 = benign, argmax of [1 - p, p] (benign iff p > 0.5)",
            "input_range": input_range,
            "eval_set": EVAL_SET,
            "standardized_range": std_range,
            "standardized_range_of_input_range": std_of_input,
            "feature_names": [str(n) for n in data.feature_names],
            "feature_ranges": feature_ranges,
        }, f, indent=2)
        f.write("\n")

    pick = next(i for i in range(len(y_te))
                if pred[i] == y_te[i] and abs(float(out[i, 1]) - 0.5) > 0.4)
    with open(os.path.join(HERE, f"{NAME}.input.json"), "w") as f:
        json.dump({"input": [float(v) for v in x_te[pick]], "label": int(y_te[pick])}, f,
                  separators=(",", ":"))
        f.write("\n")
    print(f"input_scale_bits {scale_bits}; example input: test index {pick}, label {y_te[pick]}, "
          f"p {float(out[pick, 1]):.4f}")
    print(f"wrote models/zoo/{NAME}.{{onnx,meta.json,input.json}}")


if __name__ == "__main__":
    main()
