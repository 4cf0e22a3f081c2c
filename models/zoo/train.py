#!/usr/bin/env python3
"""Train and export the zkinfer model zoo: two small real digit classifiers.

Run (from the repository root):

    python3 -m venv models/zoo/.venv
    models/zoo/.venv/bin/pip install -r models/zoo/requirements.txt
    models/zoo/.venv/bin/python models/zoo/train.py

Everything is deterministic (fixed seeds, single-threaded BLAS) and needs no
network: the data set is scikit-learn's bundled 8x8 handwritten digits
(``sklearn.datasets.load_digits``: 1797 grey-scale images, pixels 0..16).

Data
----
* Inputs are scaled to ``x = pixel / 16``, so every value lies in [0, 1] and is
  a multiple of 1/16.  A fixed-point circuit input scale of 2^4
  (``input_scale_bits = 4``) therefore represents every input *exactly*
  (the integer input is just the raw pixel value).
* A stratified 75/25 train/test split with ``random_state=0`` is used.  The
  held-out 25% (450 images) is written to ``digits_test.json`` and is never
  used for training; all reported accuracies are on it.

Models (batch dimension fixed to 1, outputs are the 10 raw logits)
------
* ``digits_mlp``: input ``[1,64]`` -> Gemm(64->32) -> Relu -> Gemm(32->10).
  The Gemm weights are stored PyTorch-style as ``[out, in]`` with
  ``transB=1``.  2,368 multiplications.
* ``digits_cnn``: input ``[1,1,8,8]`` (the 64 values row-major) ->
  Conv(1->8, 3x3, stride 1, pads 1) -> Relu -> AveragePool(2x2, stride 2)
  -> Flatten -> Gemm(128->10, weight stored ``[in, out]``, ``transB=0``).
  4,608 conv + 1,280 Gemm = 5,888 multiplications (plus the 2x2 average,
  i.e. a sum followed by a division by 4).

Only the ONNX ops Gemm (alpha=beta=1), Conv, Relu, AveragePool and Flatten
appear, opset 13, IR version 7, float32 initializers.  There is no Softmax,
ArgMax, Cast, Sub or Div in the graphs: the predicted class is the argmax of
the logits, computed outside the model.

Training
--------
Plain numpy with hand-written forward and backward passes: softmax
cross-entropy loss, mini-batches of 32, 150 epochs, Adam (lr 1e-2 with
cosine decay to 0),
and a light L2 weight decay (added to the gradient of the weights, not the
biases, coefficient 1e-3) so that weights stay small -- this helps the fixed-point
quantisation used by the circuit (weights ~ round(w * 2^7)).  The conv layer is
computed with an im2col patch matrix (each output pixel's 3x3 zero-padded
neighbourhood), which is exactly ONNX's Conv (a cross-correlation).

Export and verification
-----------------------
Graphs are built with ``onnx.helper``, validated with ``onnx.checker``
(full check), then run with onnxruntime on every test image one at a time
(batch 1).  The script asserts that onnxruntime reproduces the numpy forward
pass (max abs difference < 1e-4) and takes the reported ``float_accuracy``
from the onnxruntime logits.  As an extra sanity check it also prints the
accuracy of a simple simulated fixed-point evaluation (weights at 2^7,
inputs at 2^4, activations rescaled to 2^7 with rounding).

Outputs (all in models/zoo/)
-------
* ``digits_mlp.onnx``, ``digits_cnn.onnx``
* ``digits_mlp.meta.json``, ``digits_cnn.meta.json``
* ``digits_test.json``: ``{"inputs": [[64 floats], ...], "labels": [...]}``
  shared by both models (the CNN reshapes each row-major to 1x1x8x8)
* ``digits_mlp.input.json``, ``digits_cnn.input.json``: one test image that
  both models classify correctly (with a comfortable logit margin),
  ``{"input": [64 floats], "label": d}``.
"""

import os

# Keep CPU use modest and results reproducible: single-threaded BLAS.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import json  # noqa: E402

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SEED = 0
OPSET = 13
IR_VERSION = 7  # the IR version that goes with opset 13
INPUT_SCALE_BITS = 4


# --------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------
def load_data():
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)  # [1797, 64] in [0, 1]
    y = digits.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=0.25, stratify=y, random_state=SEED
    )
    return x_tr, x_te, y_tr, y_te


# --------------------------------------------------------------------------
# numpy building blocks
# --------------------------------------------------------------------------
def softmax_xent_grad(logits, y):
    """Mean cross-entropy loss and its gradient w.r.t. the logits."""
    z = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    n = logits.shape[0]
    loss = -np.log(p[np.arange(n), y] + 1e-12).mean()
    g = p
    g[np.arange(n), y] -= 1.0
    return loss, g / n


class Adam:
    def __init__(self, params, lr, b1=0.9, b2=0.999, eps=1e-8):
        self.params = params  # dict name -> array (updated in place)
        self.lr, self.b1, self.b2, self.eps = lr, b1, b2, eps
        self.m = {k: np.zeros_like(v) for k, v in params.items()}
        self.v = {k: np.zeros_like(v) for k, v in params.items()}
        self.t = 0

    def step(self, grads, lr):
        self.t += 1
        for k, g in grads.items():
            self.m[k] = self.b1 * self.m[k] + (1 - self.b1) * g
            self.v[k] = self.b2 * self.v[k] + (1 - self.b2) * g * g
            mh = self.m[k] / (1 - self.b1 ** self.t)
            vh = self.v[k] / (1 - self.b2 ** self.t)
            self.params[k] -= lr * mh / (np.sqrt(vh) + self.eps)


def he_init(rng, fan_in, shape):
    return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float64)


def im2col_3x3_pad1(x):
    """[N,64] row-major 8x8 images -> [N,64,9] zero-padded 3x3 patches.

    Patch index k = di*3 + dj, i.e. the row-major order of a 3x3 kernel, so
    patches @ W.reshape(C, 9).T is ONNX Conv (cross-correlation) with pads 1.
    """
    n = x.shape[0]
    img = np.zeros((n, 10, 10), dtype=np.float64)
    img[:, 1:9, 1:9] = x.reshape(n, 8, 8)
    cols = np.empty((n, 8, 8, 9), dtype=np.float64)
    for di in range(3):
        for dj in range(3):
            cols[:, :, :, di * 3 + dj] = img[:, di:di + 8, dj:dj + 8]
    return cols.reshape(n, 64, 9)


def train_loop(forward_backward, params, x, y, epochs, lr, wd, decay_keys, seed):
    rng = np.random.default_rng(seed)
    opt = Adam(params, lr)
    n = x.shape[0]
    batch = 32
    steps_per_epoch = (n + batch - 1) // batch
    total = epochs * steps_per_epoch
    step = 0
    for ep in range(epochs):
        perm = rng.permutation(n)
        tot_loss = 0.0
        for i in range(0, n, batch):
            idx = perm[i:i + batch]
            loss, grads = forward_backward(params, x[idx], y[idx])
            for k in decay_keys:  # L2 weight decay on weights only
                grads[k] = grads[k] + wd * params[k]
            cur_lr = lr * 0.5 * (1 + np.cos(np.pi * step / total))
            opt.step(grads, cur_lr)
            step += 1
            tot_loss += loss * len(idx)
        if ep % 20 == 0 or ep == epochs - 1:
            print(f"  epoch {ep:3d}  loss {tot_loss / n:.4f}")
    return params


# --------------------------------------------------------------------------
# MLP
# --------------------------------------------------------------------------
def mlp_init(rng):
    return {
        "W1": he_init(rng, 64, (32, 64)),  # [out, in] (transB=1)
        "b1": np.zeros(32),
        "W2": he_init(rng, 32, (10, 32)),
        "b2": np.zeros(10),
    }


def mlp_forward(p, x):
    h = np.maximum(x @ p["W1"].T + p["b1"], 0.0)
    return h @ p["W2"].T + p["b2"]


def mlp_fb(p, x, y):
    z1 = x @ p["W1"].T + p["b1"]
    h = np.maximum(z1, 0.0)
    logits = h @ p["W2"].T + p["b2"]
    loss, g = softmax_xent_grad(logits, y)
    grads = {"W2": g.T @ h, "b2": g.sum(0)}
    dh = (g @ p["W2"]) * (z1 > 0)
    grads["W1"] = dh.T @ x
    grads["b1"] = dh.sum(0)
    return loss, grads


# --------------------------------------------------------------------------
# CNN (x is pre-converted to im2col patches [N,64,9])
# --------------------------------------------------------------------------
CNN_CH = 8


def cnn_init(rng):
    return {
        "Wc": he_init(rng, 9, (CNN_CH, 9)),  # reshaped to [C,1,3,3] on export
        "bc": np.zeros(CNN_CH),
        "Wf": he_init(rng, CNN_CH * 16, (CNN_CH * 16, 10)),  # [in, out] (transB=0)
        "bf": np.zeros(10),
    }


def _pool_flatten(a):
    """[N,64,C] (spatial row-major, channel last) -> avgpool 2x2 -> [N, C*16] (C,H,W order)."""
    n = a.shape[0]
    a = a.reshape(n, 4, 2, 4, 2, CNN_CH).mean(axis=(2, 4))  # [N,4,4,C]
    return a.transpose(0, 3, 1, 2).reshape(n, CNN_CH * 16)


def cnn_forward(p, cols):
    a = np.maximum(cols @ p["Wc"].T + p["bc"], 0.0)
    return _pool_flatten(a) @ p["Wf"] + p["bf"]


def cnn_fb(p, cols, y):
    n = cols.shape[0]
    z = cols @ p["Wc"].T + p["bc"]  # [N,64,C]
    a = np.maximum(z, 0.0)
    f = _pool_flatten(a)
    logits = f @ p["Wf"] + p["bf"]
    loss, g = softmax_xent_grad(logits, y)
    grads = {"Wf": f.T @ g, "bf": g.sum(0)}
    df = (g @ p["Wf"].T).reshape(n, CNN_CH, 4, 4).transpose(0, 2, 3, 1)  # [N,4,4,C]
    da = np.broadcast_to(df[:, :, None, :, None, :] / 4.0, (n, 4, 2, 4, 2, CNN_CH))
    dz = da.reshape(n, 64, CNN_CH) * (z > 0)
    grads["Wc"] = np.einsum("nsc,nsk->ck", dz, cols)
    grads["bc"] = dz.sum(axis=(0, 1))
    return loss, grads


# --------------------------------------------------------------------------
# simulated fixed point (sanity check only; the circuit's own scheme may differ)
# --------------------------------------------------------------------------
W_BITS = 7
A_BITS = 7


def _q(v, bits):
    return np.round(np.asarray(v) * (1 << bits)).astype(np.int64)


def _rescale(v, shift):
    """Integer round-half-up division by 2^shift."""
    return (v + (1 << (shift - 1))) >> shift


def mlp_fixed_point(p, x):
    xi = np.round(x * (1 << INPUT_SCALE_BITS)).astype(np.int64)  # exact pixels
    acc = xi @ _q(p["W1"], W_BITS).T + _q(p["b1"], INPUT_SCALE_BITS + W_BITS)
    h = _rescale(np.maximum(acc, 0), INPUT_SCALE_BITS + W_BITS - A_BITS)
    return h @ _q(p["W2"], W_BITS).T + _q(p["b2"], A_BITS + W_BITS)


def cnn_fixed_point(p, cols):
    ci = np.round(cols * (1 << INPUT_SCALE_BITS)).astype(np.int64)
    acc = ci @ _q(p["Wc"], W_BITS).T + _q(p["bc"], INPUT_SCALE_BITS + W_BITS)
    a = _rescale(np.maximum(acc, 0), INPUT_SCALE_BITS + W_BITS - A_BITS)
    n = a.shape[0]
    s = a.reshape(n, 4, 2, 4, 2, CNN_CH).sum(axis=(2, 4))
    s = _rescale(s, 2)  # average of 4 = sum / 4
    f = s.transpose(0, 3, 1, 2).reshape(n, CNN_CH * 16)
    return f @ _q(p["Wf"], W_BITS) + _q(p["bf"], A_BITS + W_BITS)


# --------------------------------------------------------------------------
# ONNX export
# --------------------------------------------------------------------------
def _init(name, arr):
    return numpy_helper.from_array(np.asarray(arr, dtype=np.float32), name=name)


def _make_model(graph, doc):
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="zkinfer-zoo",
        producer_version="1",
        doc_string=doc,
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    return model


def export_mlp(p):
    nodes = [
        helper.make_node("Gemm", ["input", "fc1.weight", "fc1.bias"], ["fc1_out"],
                         name="fc1", alpha=1.0, beta=1.0, transA=0, transB=1),
        helper.make_node("Relu", ["fc1_out"], ["relu1_out"], name="relu1"),
        helper.make_node("Gemm", ["relu1_out", "fc2.weight", "fc2.bias"], ["logits"],
                         name="fc2", alpha=1.0, beta=1.0, transA=0, transB=1),
    ]
    graph = helper.make_graph(
        nodes, "digits_mlp",
        inputs=[helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 64])],
        outputs=[helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])],
        initializer=[
            _init("fc1.weight", p["W1"]), _init("fc1.bias", p["b1"]),
            _init("fc2.weight", p["W2"]), _init("fc2.bias", p["b2"]),
        ],
    )
    return _make_model(graph, "sklearn digits 8x8 MLP 64-32-10; input pixel/16, output logits")


def export_cnn(p):
    nodes = [
        helper.make_node("Conv", ["input", "conv1.weight", "conv1.bias"], ["conv1_out"],
                         name="conv1", kernel_shape=[3, 3], strides=[1, 1],
                         pads=[1, 1, 1, 1], dilations=[1, 1], group=1),
        helper.make_node("Relu", ["conv1_out"], ["relu1_out"], name="relu1"),
        helper.make_node("AveragePool", ["relu1_out"], ["pool1_out"], name="pool1",
                         kernel_shape=[2, 2], strides=[2, 2], pads=[0, 0, 0, 0]),
        helper.make_node("Flatten", ["pool1_out"], ["flat_out"], name="flatten", axis=1),
        helper.make_node("Gemm", ["flat_out", "fc.weight", "fc.bias"], ["logits"],
                         name="fc", alpha=1.0, beta=1.0, transA=0, transB=0),
    ]
    graph = helper.make_graph(
        nodes, "digits_cnn",
        inputs=[helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 1, 8, 8])],
        outputs=[helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])],
        initializer=[
            _init("conv1.weight", p["Wc"].reshape(CNN_CH, 1, 3, 3)),
            _init("conv1.bias", p["bc"]),
            _init("fc.weight", p["Wf"]), _init("fc.bias", p["bf"]),
        ],
    )
    return _make_model(graph, "sklearn digits 8x8 CNN conv3x3(8)-relu-avgpool2-fc10; "
                              "input pixel/16 as 1x1x8x8, output logits")


def ort_logits(model, x, shape):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])
    out = [sess.run(None, {"input": xi.reshape(shape).astype(np.float32)})[0][0] for xi in x]
    return np.array(out)


def dump_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, separators=(",", ":"))
        f.write("\n")


def flat_floats(v):
    return [float(t) for t in v]


# --------------------------------------------------------------------------
def main():
    x_tr, x_te, y_tr, y_te = load_data()
    print(f"train {len(y_tr)}  test {len(y_te)}")
    x_tr64, x_te64 = x_tr.astype(np.float64), x_te.astype(np.float64)
    rng = np.random.default_rng(SEED)

    print("training digits_mlp")
    mlp = train_loop(mlp_fb, mlp_init(rng), x_tr64, y_tr, epochs=150, lr=1e-2,
                     wd=1e-3, decay_keys=["W1", "W2"], seed=SEED + 1)
    print("training digits_cnn")
    cols_tr, cols_te = im2col_3x3_pad1(x_tr64), im2col_3x3_pad1(x_te64)
    cnn = train_loop(cnn_fb, cnn_init(rng), cols_tr, y_tr, epochs=150, lr=1e-2,
                     wd=1e-3, decay_keys=["Wc", "Wf"], seed=SEED + 2)

    results = {}
    for name, params, model, shape, np_logits, fx_logits, desc in [
        ("digits_mlp", mlp, export_mlp(mlp), [1, 64],
         mlp_forward(mlp, x_te64), mlp_fixed_point(mlp, x_te64),
         "MLP: Gemm(64->32, transB=1) -> Relu -> Gemm(32->10, transB=1); "
         "trained in numpy on sklearn digits, input = pixel/16"),
        ("digits_cnn", cnn, export_cnn(cnn), [1, 1, 8, 8],
         cnn_forward(cnn, cols_te), cnn_fixed_point(cnn, cols_te),
         "CNN: Conv(1->8, 3x3, stride 1, pads 1) -> Relu -> AveragePool(2x2, stride 2) "
         "-> Flatten -> Gemm(128->10, transB=0); trained in numpy on sklearn digits, "
         "input = pixel/16 reshaped row-major to 1x1x8x8"),
    ]:
        logits = ort_logits(model, x_te, shape)
        diff = float(np.abs(logits - np_logits).max())
        assert diff < 1e-4, f"{name}: onnxruntime differs from numpy by {diff}"
        pred = logits.argmax(1)
        acc = float((pred == y_te).mean())
        fx_acc = float((fx_logits.argmax(1) == y_te).mean())
        wmax = max(float(np.abs(v).max()) for v in params.values())
        print(f"{name}: onnxruntime test accuracy {acc:.4f} ({int((pred == y_te).sum())}/"
              f"{len(y_te)}), max |ort - numpy| = {diff:.2e}, "
              f"simulated fixed-point accuracy {fx_acc:.4f}, max |param| = {wmax:.3f}")
        onnx.save(model, os.path.join(HERE, f"{name}.onnx"))
        dump_json(os.path.join(HERE, f"{name}.meta.json"), {
            "name": name,
            "description": desc,
            "dataset": "sklearn digits 8x8",
            "input_shape": shape,
            "output_shape": [1, 10],
            "input_scale_bits": INPUT_SCALE_BITS,
            "float_accuracy": round(acc, 6),
            "test_samples": int(len(y_te)),
            "labels": "digit 0-9, argmax of logits",
        })
        results[name] = logits

    # Example input: first test image both models get right with a clear margin.
    def margin(lg, y):
        other = np.where(np.arange(10) == y, -np.inf, lg)
        return lg[y] - other.max()

    pick = None
    for i in range(len(y_te)):
        if all(margin(results[n][i], y_te[i]) > 4.0 for n in results):
            pick = i
            break
    assert pick is not None
    example = {"input": flat_floats(x_te[pick]), "label": int(y_te[pick])}
    for name in results:
        dump_json(os.path.join(HERE, f"{name}.input.json"), example)
    print(f"example input: test index {pick}, label {y_te[pick]}, logits margins "
          + ", ".join(f"{n} {margin(results[n][pick], y_te[pick]):.2f}" for n in results))

    dump_json(os.path.join(HERE, "digits_test.json"), {
        "inputs": [flat_floats(v) for v in x_te],
        "labels": [int(v) for v in y_te],
    })
    print("wrote models/zoo/{digits_mlp,digits_cnn}.{onnx,meta.json,input.json}, digits_test.json")


if __name__ == "__main__":
    main()
