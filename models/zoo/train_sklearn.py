#!/usr/bin/env python3
"""Train a scikit-learn breast-cancer classifier and export it with skl2onnx (standard ops only).

Run (from the repository root):

    python3 -m venv models/zoo/.venv
    models/zoo/.venv/bin/pip install -r models/zoo/requirements.txt
    models/zoo/.venv/bin/python models/zoo/train_sklearn.py

Data: scikit-learn's bundled Wisconsin diagnostic breast-cancer set
(``load_breast_cancer``: 569 samples, 30 raw real-valued features, target
0 = malignant, 1 = benign).  Stratified 75/25 split with ``random_state=0``;
the held-out 143 samples go to ``breast_cancer_test.json`` and are used for
nothing but the reported accuracy.  Model inputs are the *raw* features: the
standardisation is part of the exported graph.

Which skl2onnx export gives standard ONNX ops only (skl2onnx 1.20.0)?  The
script re-checks this on every run (``survey()``) and prints the op lists:

* ``StandardScaler`` -> ``ai.onnx.ml:Scaler`` by default; with the converter
  option ``{"div": "div"}`` it is ``Sub`` + ``Div`` (standard ops).
* ``MLPClassifier`` (binary) -> the probabilities go through ``Sigmoid`` (and
  ``Sub``/``Concat``), the label through ``ArgMax`` ->
  ``ai.onnx.ml:ArrayFeatureExtractor``: not usable.
* ``LogisticRegression`` -> ``ai.onnx.ml:LinearClassifier``; with
  ``black_op={"LinearClassifier"}`` and ``raw_scores`` its scores become
  ``MatMul`` + ``Add``, but the label output always needs
  ``ai.onnx.ml:ArrayFeatureExtractor``, and skl2onnx's output selection
  (``select_model_inputs_outputs``) leaves an output without a type, which
  ``onnx.checker`` rejects.
* ``MLPRegressor`` with two targets -> standard ops, but skl2onnx's converter
  reshapes its output to ``[-1, 1]`` (a batch-1 input gives a ``[2, 1]``
  output): wrong shape.
* ``MultiOutputRegressor(MLPRegressor)`` -> one MLP per target, each
  ``MatMul``/``Add``/``Relu``/``Reshape`` to ``[N, 1]``, joined by ``Concat``:
  correct ``[N, 2]`` output, standard ops only.  **This is the model.**

Model ``breast_cancer``: ``Pipeline(StandardScaler, MultiOutputRegressor(
MLPRegressor(30 -> H -> 1, relu, lbfgs)))`` trained by least squares on the
one-hot class indicators (+1 for the true class, -1 for the other), so the
output is a 2-class score vector and argmax = class.  The hidden width H and
the L2 penalty alpha are chosen by 5-fold cross-validation on the training
part only.  Export: ``to_onnx`` with ``initial_types`` ``input`` float
``[None, 30]``, ``final_types`` ``scores`` float ``[None, 2]``, scaler option
``div``, target opset 17, no ``ai.onnx.ml`` domain in the result (asserted).
The script runs the model with onnxruntime at batch 1 on every test sample
and asserts agreement with scikit-learn.

``input_range`` in the meta file is one range for all 30 raw features, the
dataset's min/max with a 10% margin above (the features are non-negative
measurements, so the lower end is 0); ``feature_ranges`` gives the same per
feature.  The raw features span 0.0007 .. 4254 (areas are in the thousands,
fractal dimensions ~0.05), so one fixed-point input scale has to cover both;
the script prints the held-out accuracy with inputs rounded to 2^-b for
b = 2..16, and ``input_scale_bits`` is the smallest b from which on no
held-out prediction changes.

Writes (in models/zoo/): ``breast_cancer.onnx``, ``breast_cancer.meta.json``,
``breast_cancer.input.json`` (``{"input": [30 floats], "label": c}``: the first
test sample classified correctly with a score margin > 1) and
``breast_cancer_test.json`` (``{"inputs": [[30 floats], ...], "labels":
[...]}``, the raw feature values as given by scikit-learn).
"""

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import json  # noqa: E402
import math  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
from skl2onnx import to_onnx  # noqa: E402
from skl2onnx.common.data_types import FloatTensorType  # noqa: E402
from sklearn.datasets import load_breast_cancer  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import StratifiedKFold, train_test_split  # noqa: E402
from sklearn.multioutput import MultiOutputRegressor  # noqa: E402
from sklearn.neural_network import MLPClassifier, MLPRegressor  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
NAME = "breast_cancer"
SEED = 0
OPSET = 17
HIDDEN = [4, 8, 16]
ALPHAS = [0.1, 1.0, 3.0, 10.0]
SCALER_OPTIONS = {StandardScaler: {"div": "div"}}


def load_data():
    data = load_breast_cancer()
    x, y = data.data, data.target.astype(np.int64)  # x float64, as shipped
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=0.25, stratify=y, random_state=SEED)
    return data, x, x_tr, x_te, y_tr, y_te


def targets(y):
    return np.eye(2)[y] * 2.0 - 1.0  # +1 for the true class, -1 for the other


def make_model(hidden, alpha):
    mlp = MLPRegressor(hidden_layer_sizes=(hidden,), activation="relu", solver="lbfgs",
                       alpha=alpha, max_iter=3000, random_state=SEED)
    return Pipeline([("scaler", StandardScaler()), ("mlp", MultiOutputRegressor(mlp))])


def choose(x_tr, y_tr):
    """Hidden width and alpha by 5-fold CV on the training part.

    Scored by the number of correct out-of-fold predictions; ties (common on
    426 samples) go to the fewest parameters, then to the strongest
    regularisation.
    """
    folds = list(StratifiedKFold(5, shuffle=True, random_state=SEED).split(x_tr, y_tr))
    results = []
    for h in HIDDEN:
        for a in ALPHAS:
            correct = sum(int((make_model(h, a).fit(x_tr[tr], targets(y_tr[tr]))
                               .predict(x_tr[va]).argmax(1) == y_tr[va]).sum())
                          for tr, va in folds)
            print(f"  hidden {h:2d} alpha {a:5.1f}: cv accuracy {correct / len(y_tr):.4f} "
                  f"({correct}/{len(y_tr)})")
            results.append((correct, h, a))
    top = max(r[0] for r in results)
    correct, h, a = min((r for r in results if r[0] == top), key=lambda r: (r[1], -r[2]))
    return correct / len(y_tr), h, a


def op_list(model):
    return [(n.domain + ":" if n.domain else "") + n.op_type for n in model.graph.node]


def dims(v):
    return [d.dim_param or (d.dim_value if d.HasField("dim_value") else None)
            for d in v.type.tensor_type.shape.dim]


def export(pipe):
    return to_onnx(pipe, initial_types=[("input", FloatTensorType([None, 30]))],
                   final_types=[("scores", FloatTensorType([None, 2]))],
                   options=SCALER_OPTIONS, target_opset=OPSET)


def survey(x_tr, y_tr):
    """Print what skl2onnx makes of the obvious alternatives (why this model)."""
    xf = x_tr.astype(np.float32)
    init = [("input", FloatTensorType([None, 30]))]
    mlpc = Pipeline([("scaler", StandardScaler()),
                     ("clf", MLPClassifier((8,), max_iter=2000, random_state=SEED))]).fit(xf, y_tr)
    logreg = Pipeline([("scaler", StandardScaler()),
                       ("clf", LogisticRegression(max_iter=5000))]).fit(xf, y_tr)
    mlpr = Pipeline([("scaler", StandardScaler()),
                     ("reg", MLPRegressor(hidden_layer_sizes=(8,), solver="lbfgs", max_iter=3000,
                                          random_state=SEED))]).fit(xf, targets(y_tr))
    tries = [
        ("StandardScaler default + MLPClassifier", mlpc, {MLPClassifier: {"zipmap": False}}, None),
        ("StandardScaler div + MLPClassifier nocl", mlpc,
         {StandardScaler: {"div": "div"}, MLPClassifier: {"zipmap": False, "nocl": True}}, None),
        ("LogisticRegression raw_scores", logreg,
         {LogisticRegression: {"zipmap": False, "raw_scores": True}}, None),
        ("LogisticRegression raw_scores, black_op LinearClassifier+Scaler", logreg,
         {LogisticRegression: {"zipmap": False, "raw_scores": True}},
         {"LinearClassifier", "Scaler"}),
        ("MLPRegressor, 2 targets", mlpr, SCALER_OPTIONS, None),
    ]
    print("skl2onnx survey (alternatives not used):")
    for title, pipe, options, black in tries:
        m = to_onnx(pipe, initial_types=init, options=options, black_op=black, target_opset=OPSET)
        outs = [(o.name, dims(o)) for o in m.graph.output]
        extra = ""
        if title.startswith("MLPRegressor"):
            sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
            shape = list(sess.run(None, {"input": xf[:1]})[0].shape)
            extra = f"; onnxruntime output shape at batch 1: {shape}"
        print(f"  {title}: {op_list(m)} -> outputs {outs}{extra}")


def main():
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    data, x_all, x_tr, x_te, y_tr, y_te = load_data()
    print(f"train {len(y_tr)}  test {len(y_te)}")
    survey(x_tr, y_tr)

    print("choosing hidden width and alpha (5-fold CV on the training part)")
    cv, hidden, alpha = choose(x_tr.astype(np.float32), y_tr)
    print(f"  chosen: hidden {hidden}, alpha {alpha} (cv accuracy {cv:.4f})")
    pipe = make_model(hidden, alpha).fit(x_tr.astype(np.float32), targets(y_tr))

    model = export(pipe)
    onnx.checker.check_model(model, full_check=True)
    ops = op_list(model)
    domains = {o.domain or "ai.onnx" for o in model.opset_import}
    assert all(":" not in o for o in ops) and domains == {"ai.onnx"}, (ops, domains)
    path = os.path.join(HERE, f"{NAME}.onnx")
    onnx.save(model, path)
    n_params = sum(int(np.prod(t.dims)) for t in model.graph.initializer)
    print(f"exported {path}: opset {OPSET}, IR {model.ir_version}, {n_params} initializer values")
    print(f"  op types: {ops}")
    print(f"  inputs:  {[(v.name, dims(v)) for v in model.graph.input]}")
    print(f"  outputs: {[(v.name, dims(v)) for v in model.graph.output]}")

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])
    xf = x_te.astype(np.float32)
    scores = np.stack([sess.run(None, {"input": xi[None, :]})[0][0] for xi in xf])
    diff = float(np.abs(scores - pipe.predict(xf)).max())
    assert diff < 1e-4, f"onnxruntime differs from scikit-learn by {diff}"
    pred = scores.argmax(1)
    acc = float((pred == y_te).mean())
    print(f"{NAME}: onnxruntime test accuracy {acc:.4f} ({int((pred == y_te).sum())}/{len(y_te)}),"
          f" max |ort - sklearn| = {diff:.2e}, max |score| = {float(np.abs(scores).max()):.3f}")

    # Input precision: a single fixed-point input scale for all raw features.
    changed_at = {}
    for b in range(2, 17):
        q = (np.round(xf * (1 << b)) / (1 << b)).astype(np.float32)
        qs = np.stack([sess.run(None, {"input": xi[None, :]})[0][0] for xi in q])
        changed_at[b] = int((qs.argmax(1) != pred).sum())
        print(f"  inputs rounded to 2^-{b:<2d}: accuracy {(qs.argmax(1) == y_te).mean():.4f}, "
              f"{changed_at[b]} predictions changed, max |score error| "
              f"{np.abs(qs - scores).max():.4f}, largest integer input "
              f"{int(np.round(x_all.max() * (1 << b)))}")
    # the smallest b from which on (up to 16) no held-out prediction changes
    scale_bits = min(b for b in changed_at if all(changed_at[c] == 0 for c in changed_at if c >= b))
    assert scale_bits is not None

    lo, hi = x_all.min(0), x_all.max(0)
    feature_ranges = [[round(max(0.0, float(a) - 0.1 * float(b - a)), 6),
                       round(float(b) + 0.1 * float(b - a), 6)] for a, b in zip(lo, hi)]
    input_range = [0.0, float(math.ceil(float(hi.max()) * 1.1 / 100.0) * 100)]
    with open(os.path.join(HERE, f"{NAME}.meta.json"), "w") as f:
        json.dump({
            "name": NAME,
            "description": (
                f"scikit-learn Pipeline(StandardScaler, MultiOutputRegressor(MLPRegressor 30->"
                f"{hidden}->1 relu, one per class)) trained on +-1 one-hot class targets, exported "
                "by skl2onnx "
                "(scaler option div, standard ONNX ops only: Sub/Div scaler, per-class "
                "MatMul/Add/Relu/MatMul/Add/Reshape, Concat). Input = the 30 RAW features "
                "(the standardisation is in the graph), so input_range is the raw feature "
                "range: dataset min/max over all features with a 10% margin (per feature in "
                "feature_ranges). The features span 0.0007..4254, so the input scale needs "
                f"2^-{scale_bits} resolution (coarser input rounding changes held-out "
                "predictions) while the largest input is 4254. Output = 2 class scores, "
                "argmax = class."),
            "dataset": "sklearn breast cancer (Wisconsin diagnostic)",
            "input_shape": [1, 30],
            "output_shape": [1, 2],
            "input_scale_bits": scale_bits,
            "float_accuracy": round(acc, 6),
            "test_samples": int(len(y_te)),
            "labels": "0 = malignant, 1 = benign, argmax of scores",
            "input_range": input_range,
            "eval_set": f"{NAME}_test.json",
            "feature_names": [str(n) for n in data.feature_names],
            "feature_ranges": feature_ranges,
        }, f, indent=2)
        f.write("\n")

    def margin(s, c):
        return float(s[c] - s[1 - c])

    pick = next(i for i in range(len(y_te)) if margin(scores[i], y_te[i]) > 1.0)
    with open(os.path.join(HERE, f"{NAME}.input.json"), "w") as f:
        json.dump({"input": [float(v) for v in x_te[pick]], "label": int(y_te[pick])}, f,
                  separators=(",", ":"))
        f.write("\n")
    with open(os.path.join(HERE, f"{NAME}_test.json"), "w") as f:
        json.dump({"inputs": [[float(v) for v in row] for row in x_te],
                   "labels": [int(v) for v in y_te]}, f, separators=(",", ":"))
        f.write("\n")
    print(f"input_scale_bits {scale_bits}; example input: test index {pick}, label {y_te[pick]}, "
          f"margin {margin(scores[pick], y_te[pick]):.2f}")
    print(f"wrote models/zoo/{NAME}.{{onnx,meta.json,input.json}}, {NAME}_test.json")


if __name__ == "__main__":
    main()
