#!/usr/bin/env python3
"""Train a small random forest on the breast-cancer data and export it with skl2onnx.

Run (from the repository root):

    python3 -m venv models/zoo/.venv
    models/zoo/.venv/bin/pip install -r models/zoo/requirements.txt
    models/zoo/.venv/bin/python models/zoo/train_trees.py

Data: exactly the split of ``train_sklearn.py`` (scikit-learn's bundled
Wisconsin diagnostic breast-cancer set, 30 raw features, stratified 75/25
split with ``random_state=0``); the script asserts that its held-out part
equals ``breast_cancer_test.json`` and reports accuracy on those 143 samples
only.  Trees need no feature scaling: the input is the 30 RAW features, the
same input as ``breast_cancer`` and ``breast_cancer_sigmoid``.

Survey (printed on every run, not shipped): ``DecisionTreeClassifier``
(depth 4), ``RandomForestClassifier`` (10 trees, depth 4) and
``GradientBoostingClassifier`` (10 trees, depth 2) exported by skl2onnx with
``options={id(model): {"zipmap": False}}`` (a plain float probability tensor
instead of a sequence of maps).  Each becomes ONE node
``ai.onnx.ml:TreeEnsembleClassifier`` (ai.onnx.ml opset 1) with outputs
``label`` (int64 [N]) and ``probabilities`` (float [N, 2]); the gradient
boosting export names the node output ``proba_output`` and adds an
``Identity`` to ``probabilities``.  For each, the script prints the
attributes, checks onnxruntime against scikit-learn's ``predict_proba`` and
checks a small numpy evaluator written from the semantics in ``TREES.md``
(``evaluate()`` below) against onnxruntime on every test sample.

Model ``breast_cancer_forest``: ``RandomForestClassifier(n_estimators=10,
max_depth=4, random_state=0)`` fitted on the float32 training features.  The
export is edited in two ways only: the ``label`` graph output is removed (the
node still names it, nothing reads it), so the single graph output is
``probabilities`` ``[1, 2]`` = ``[P(malignant), P(benign)]``, argmax = class;
and the duplicated default-domain entry that skl2onnx writes into
``opset_import`` is dropped.  The batch dimension is fixed to 1.

Input precision: as in ``train_sklearn.py``, one fixed-point input scale for
all raw features; the script prints the held-out accuracy with inputs rounded
to 2^-b for b = 2..16, and ``input_scale_bits`` is the smallest b from which
on no held-out prediction changes, but at least 8, the scale of the other two
breast-cancer models, so that all three read the same encoded input.  (A tree
only compares ``x <= t``; with x a multiple of 2^-b, ``x <= t`` iff
``x * 2^b <= floor(t * 2^b)``, so the thresholds need no finer scale than the
input.)

Writes (in models/zoo/): ``breast_cancer_forest.onnx``,
``breast_cancer_forest.meta.json``, ``breast_cancer_forest.input.json`` (the
first test sample classified correctly with ``|p - 0.5| > 0.4``).
``breast_cancer_test.json`` is read, not written.
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
from onnx import helper  # noqa: E402
from skl2onnx import to_onnx  # noqa: E402
from skl2onnx.common.data_types import FloatTensorType  # noqa: E402
from sklearn.datasets import load_breast_cancer  # noqa: E402
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.tree import DecisionTreeClassifier  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
NAME = "breast_cancer_forest"
EVAL_SET = "breast_cancer_test.json"
SEED = 0
OPSET = {"": 17, "ai.onnx.ml": 3}  # skl2onnx still writes ai.onnx.ml opset 1 attributes
N_TREES = 10
DEPTH = 4
SAME_ENCODING_AS = 8  # input_scale_bits of breast_cancer(_sigmoid): one encoding for all three


def load_data():
    data = load_breast_cancer()
    x, y = data.data, data.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=0.25, stratify=y, random_state=SEED)
    return data, x, x_tr, x_te, y_tr, y_te


def export(model, n_features, name="input"):
    """skl2onnx export with a probability tensor (no ZipMap)."""
    return to_onnx(model, initial_types=[(name, FloatTensorType([None, n_features]))],
                   options={id(model): {"zipmap": False}}, target_opset=OPSET)


def keep_probabilities_only(model, batch=1):
    """Drop the label graph output, fix the batch dimension, dedupe opset_import, check."""
    g = model.graph
    keep = [o for o in g.output if o.name == "probabilities"]
    assert len(keep) == 1, [o.name for o in g.output]
    del g.output[:]
    g.output.extend(keep)
    for v in list(g.input) + list(g.output):
        v.type.tensor_type.shape.dim[0].Clear()
        v.type.tensor_type.shape.dim[0].dim_value = batch
    seen, imports = set(), []
    for o in model.opset_import:
        if o.domain not in seen:
            seen.add(o.domain)
            imports.append(helper.make_opsetid(o.domain, o.version))
    del model.opset_import[:]
    model.opset_import.extend(sorted(imports, key=lambda o: o.domain))  # skl2onnx's order varies
    onnx.checker.check_model(model, full_check=True)
    return model


def session(model):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])


def tree_node(model):
    nodes = [n for n in model.graph.node if n.op_type.startswith("TreeEnsemble")]
    assert len(nodes) == 1
    return nodes[0]


def attrs_of(node):
    out = {}
    for a in node.attribute:
        v = helper.get_attribute_value(a)
        if isinstance(v, bytes):
            v = v.decode()
        elif isinstance(v, list) and v and isinstance(v[0], bytes):
            v = [s.decode() for s in v]
        out[a.name] = v
    return out


def evaluate(attrs, x):
    """TreeEnsembleClassifier / TreeEnsembleRegressor as described in TREES.md (one sample).

    Only what skl2onnx produces: BRANCH_LEQ and LEAF modes, aggregate SUM,
    post_transform NONE / LOGISTIC / SOFTMAX, the binary single-column case.
    """
    x = np.asarray(x, dtype=np.float32)
    classifier = "class_ids" in attrs
    p = "class_" if classifier else "target_"
    n_out = len(attrs["classlabels_int64s"]) if classifier else attrs["n_targets"]
    key = list(zip(attrs["nodes_treeids"], attrs["nodes_nodeids"]))
    index = {k: i for i, k in enumerate(key)}
    leaf_weights = {}
    for t, n, c, w in zip(attrs[p + "treeids"], attrs[p + "nodeids"], attrs[p + "ids"],
                          attrs[p + "weights"]):
        leaf_weights.setdefault((t, n), []).append((c, w))
    used = sorted(set(attrs[p + "ids"]))
    binary = classifier and n_out == 2 and used == [0]
    scores = np.zeros(1 if binary else n_out, dtype=np.float64)
    for tree in sorted(set(attrs["nodes_treeids"])):
        i = index[(tree, 0)]
        while attrs["nodes_modes"][i] != "LEAF":
            assert attrs["nodes_modes"][i] == "BRANCH_LEQ", attrs["nodes_modes"][i]
            go_true = x[attrs["nodes_featureids"][i]] <= np.float32(attrs["nodes_values"][i])
            nxt = attrs["nodes_truenodeids" if go_true else "nodes_falsenodeids"][i]
            i = index[(tree, nxt)]
        for c, w in leaf_weights.get(key[i], []):
            scores[c] += w
    scores += np.asarray(attrs.get("base_values", [0.0] * len(scores)), dtype=np.float64)
    post = attrs.get("post_transform", "NONE")
    if binary:
        s = scores[0]
        if post == "NONE":
            return np.array([1.0 - s, s])
        assert post == "LOGISTIC", post
        return np.array([1.0 - 1.0 / (1.0 + math.exp(-s)), 1.0 / (1.0 + math.exp(-s))])
    if post == "NONE":
        return scores
    if post == "LOGISTIC":
        return 1.0 / (1.0 + np.exp(-scores))
    assert post == "SOFTMAX", post
    e = np.exp(scores - scores.max())
    return e / e.sum()


def summarize(title, model):
    node = tree_node(model)
    a = attrs_of(node)
    ops = [(n.domain + ':' if n.domain else '') + n.op_type for n in model.graph.node]
    outs = [(o.name, onnx.TensorProto.DataType.Name(o.type.tensor_type.elem_type))
            for o in model.graph.output]
    imports = [(o.domain or "ai.onnx", o.version) for o in model.opset_import]
    print(f"  {title}: {ops}, opset_import {imports}")
    print(f"    node outputs {list(node.output)}; graph outputs {outs}")
    for k, v in sorted(a.items()):
        if isinstance(v, list) and len(v) > 8:
            extra = f" distinct {sorted(set(v))}" if k in ("nodes_modes", "class_ids",
                                                           "nodes_hitrates",
                                                           "nodes_missing_value_tracks_true",
                                                           "class_treeids", "target_ids") else ""
            v = f"len {len(v)}: {v[:8]}...{extra}"
        print(f"    {k} = {v}")
    return a


def survey(x_tr, y_tr, x_te):
    print("skl2onnx survey (zipmap False):")
    xf = x_tr.astype(np.float32)
    models = [
        ("DecisionTreeClassifier(max_depth=4)", DecisionTreeClassifier(max_depth=DEPTH,
                                                                       random_state=SEED)),
        ("RandomForestClassifier(10 trees, max_depth=4)",
         RandomForestClassifier(n_estimators=N_TREES, max_depth=DEPTH, random_state=SEED)),
        ("GradientBoostingClassifier(10 trees, max_depth=2)",
         GradientBoostingClassifier(n_estimators=10, max_depth=2, random_state=SEED)),
    ]
    for title, m in models:
        m.fit(xf, y_tr)
        exported = export(m, xf.shape[1])
        a = summarize(title, exported)
        if isinstance(m, GradientBoostingClassifier):
            prior = float(np.log(y_tr.mean() / (1 - y_tr.mean())))
            print(f"    (log-odds prior of class 1 on the training part: {prior:.7f}; learning "
                  f"rate {m.learning_rate}, folded into class_weights)")
        if isinstance(m, RandomForestClassifier):
            per_tree = Counter()
            for t, w in zip(a["class_treeids"], a["class_weights"]):
                per_tree[t] = max(per_tree[t], w)
            print(f"    largest leaf weight per tree: {max(per_tree.values()):.4f} "
                  f"(<= 1/{N_TREES}: the per-tree probabilities are pre-divided by the tree count)")
        sess = session(exported)
        xe = x_te.astype(np.float32)
        ort_p = np.stack([sess.run(["probabilities"], {"input": r[None, :]})[0][0] for r in xe])
        d_skl = float(np.abs(ort_p - m.predict_proba(xe)).max())
        d_ref = max(float(np.abs(evaluate(a, r) - o).max()) for r, o in zip(xe, ort_p))
        print(f"    max |ort - sklearn predict_proba| {d_skl:.2e}; "
              f"max |ort - evaluate()| {d_ref:.2e}")
        assert d_skl < 1e-5 and d_ref < 1e-5


def main():
    data, x_all, x_tr, x_te, y_tr, y_te = load_data()
    with open(os.path.join(HERE, EVAL_SET)) as f:
        ref = json.load(f)
    assert np.array_equal(np.array(ref["inputs"]), x_te)
    assert ref["labels"] == [int(v) for v in y_te]
    print(f"train {len(y_tr)}  test {len(y_te)} (= {EVAL_SET})")
    survey(x_tr, y_tr, x_te)

    xf, xe = x_tr.astype(np.float32), x_te.astype(np.float32)
    forest = RandomForestClassifier(n_estimators=N_TREES, max_depth=DEPTH, random_state=SEED)
    forest.fit(xf, y_tr)
    model = keep_probabilities_only(export(forest, xf.shape[1]))
    path = os.path.join(HERE, f"{NAME}.onnx")
    onnx.save(model, path)
    a = attrs_of(tree_node(model))
    n_nodes = len(a["nodes_modes"])
    n_leaves = a["nodes_modes"].count("LEAF")
    ops = [(n.domain or "ai.onnx") + ":" + n.op_type for n in model.graph.node]
    print(f"exported {path}: {ops}, "
          f"{n_nodes} nodes ({n_nodes - n_leaves} comparisons, {n_leaves} leaves), outputs "
          f"{[o.name for o in model.graph.output]}")

    sess = session(model)
    out = np.stack([sess.run(None, {"input": r[None, :]})[0][0] for r in xe])
    assert len(sess.get_outputs()) == 1 and out.shape == (len(y_te), 2)
    diff = float(np.abs(out - forest.predict_proba(xe)).max())
    assert diff < 1e-5, f"onnxruntime differs from scikit-learn by {diff}"
    pred = out.argmax(1)
    acc = float((pred == y_te).mean())
    print(f"{NAME}: onnxruntime test accuracy {acc:.4f} ({int((pred == y_te).sum())}/{len(y_te)}), "
          f"max |ort - sklearn| = {diff:.2e}")

    changed_at = {}
    for b in range(2, 17):
        q = (np.round(xe * (1 << b)) / (1 << b)).astype(np.float32)
        qo = np.stack([sess.run(None, {"input": r[None, :]})[0][0] for r in q])
        changed_at[b] = int((qo.argmax(1) != pred).sum())
        print(f"  inputs rounded to 2^-{b:<2d}: accuracy {(qo.argmax(1) == y_te).mean():.4f}, "
              f"{changed_at[b]} predictions changed, max |p error| "
              f"{np.abs(qo[:, 1] - out[:, 1]).max():.4f}")
    stable = min(b for b in changed_at if all(changed_at[c] == 0 for c in changed_at if c >= b))
    scale_bits = max(stable, SAME_ENCODING_AS)
    print(f"  no prediction changes from 2^-{stable} on; input_scale_bits {scale_bits} (the "
          f"encoding of breast_cancer and breast_cancer_sigmoid, the same raw input)")

    lo, hi = x_all.min(0), x_all.max(0)
    feature_ranges = [[round(max(0.0, float(u) - 0.1 * float(v - u)), 6),
                       round(float(v) + 0.1 * float(v - u), 6)] for u, v in zip(lo, hi)]
    input_range = [0.0, float(math.ceil(float(hi.max()) * 1.1 / 100.0) * 100)]
    used = sorted({f for f, m in zip(a["nodes_featureids"], a["nodes_modes"]) if m != "LEAF"})
    with open(os.path.join(HERE, f"{NAME}.meta.json"), "w") as f:
        json.dump({
            "name": NAME,
            "description": (
                f"scikit-learn RandomForestClassifier({N_TREES} trees, max_depth {DEPTH}, "
                f"random_state {SEED}) exported by skl2onnx (zipmap False) as one "
                f"ai.onnx.ml:TreeEnsembleClassifier node ({n_nodes} nodes: "
                f"{n_nodes - n_leaves} BRANCH_LEQ comparisons, {n_leaves} leaves; post_transform "
                "NONE, binary single-column weights: P(benign) = sum of the reached leaves' "
                "class_weights (each tree's leaf probability / 10), output [1 - s, s]); the "
                "label output is removed from the graph outputs, so the single output is "
                "probabilities [1,2]. Input = the 30 RAW features (trees need no scaling), the "
                "same as breast_cancer; input_range is the raw range with a 10% margin, per "
                f"feature in feature_ranges; the forest reads {len(used)} of the 30 features "
                "(features_used). Output = [P(malignant), P(benign)], argmax = class. See "
                "TREES.md for the attribute semantics."),
            "dataset": "sklearn breast cancer (Wisconsin diagnostic)",
            "input_shape": [1, 30],
            "output_shape": [1, 2],
            "input_scale_bits": scale_bits,
            "float_accuracy": round(acc, 6),
            "test_samples": int(len(y_te)),
            "labels": "0 = malignant, 1 = benign, argmax of [P(malignant), P(benign)]",
            "input_range": input_range,
            "eval_set": EVAL_SET,
            "features_used": used,
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
