#!/usr/bin/env python3
"""Generate the mid-size benchmark models of scripts/bench and scripts/bench-vs-ezkl (issue 9).

Run through ``models/bench/gen`` (it picks or prepares a Python with the pins of
models/bench/requirements.txt), or directly:

    python models/bench/gen_models.py [--out-dir build/bench-models] [--seed 0] [--models a,b] [--force]

Everything is deterministic for a seed (single-threaded BLAS, numpy's PCG64, pinned numpy) and needs no
network: the data set is scikit-learn's bundled 8x8 digits (1797 images), the same stratified 75/25 split
as models/zoo/train.py (``random_state=0``; the 450 held-out images are exactly models/zoo/digits_test.json),
each image upsampled bilinearly to 14x14 or 28x28 and rounded to a multiple of 1/16, so every input lies in
[0, 1] and an input scale of 2^4 represents it exactly (both tools see the same numbers).

Models (batch 1, outputs the 10 raw logits; trained a few epochs in numpy, Adam, cosine decay, light L2):

* ``mlp_196_128_64_10``  input [1,196] (14x14): Gemm 196->128, Relu, Gemm 128->64, Relu, Gemm 64->10.
* ``lenet5``             input [1,1,28,28]: Conv 6@5x5 (strides 1, pads 2) -> Relu -> AveragePool 2 (stride 2)
                         -> Conv 16@5x5 (strides 1, pads 0) -> Relu -> AveragePool 2 -> Flatten (400)
                         -> Gemm 120 -> Relu -> Gemm 84 -> Relu -> Gemm 10.  Every Conv and pool carries
                         explicit kernel_shape, strides, pads and dilations (EZKL requires them).
* ``mlp_784_256_128_10`` input [1,784] (28x28).
* ``mlp_784_512_512_10`` input [1,784] (28x28).

Written to the output directory, per model: ``<name>.onnx``, ``<name>.meta.json`` (the zoo's format:
input_scale_bits, input_range, eval_set, float accuracy, ...), ``<name>.input.json`` (one held-out image the
float model classifies correctly with a margin), plus the eval sets ``digits14_test.json`` and
``digits28_test.json`` and ``stamp.json`` (seed, generator hash, file hashes). A model whose files exist and
whose stamp matches the seed and this script is not regenerated (``--force`` regenerates).

ONNX: opset 13, IR version 7, float32 initializers; ops Gemm, Relu, Conv, AveragePool, Flatten only. The
script checks the graph with onnx.checker and that onnxruntime reproduces the numpy forward pass.
"""

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = ROOT / "build" / "bench-models"
OPSET = 13
IR_VERSION = 7
INPUT_SCALE_BITS = 4
SPLIT_SEED = 0  # the zoo's split, independent of --seed

# name -> (side of the square input, architecture, epochs, description)
MODELS = {
    "mlp_196_128_64_10": dict(side=14, layers=[196, 128, 64, 10], epochs=30, lr=3e-3, wd=1e-4),
    "lenet5": dict(side=28, conv=True, epochs=12, lr=3e-3, wd=1e-4),
    "mlp_784_256_128_10": dict(side=28, layers=[784, 256, 128, 10], epochs=20, lr=2e-3, wd=1e-4),
    "mlp_784_512_512_10": dict(side=28, layers=[784, 512, 512, 10], epochs=20, lr=1e-3, wd=1e-4),
}


def log(msg):
    print(f"[gen_models] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------- data


def upsample(x8, side):
    """[N,64] 8x8 images in [0,1] -> [N, side*side], bilinear (pixel centres aligned), rounded to 1/16."""
    n = x8.shape[0]
    img = x8.reshape(n, 8, 8)
    # position of each output pixel centre in input pixel coordinates
    pos = (np.arange(side) + 0.5) * (8.0 / side) - 0.5
    pos = np.clip(pos, 0.0, 7.0)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, 7)
    w = pos - lo
    rows = img[:, lo, :] * (1 - w)[None, :, None] + img[:, hi, :] * w[None, :, None]
    out = rows[:, :, lo] * (1 - w)[None, None, :] + rows[:, :, hi] * w[None, None, :]
    out = np.clip(np.round(out * 16.0) / 16.0, 0.0, 1.0)
    return out.reshape(n, side * side)


def load_data():
    d = load_digits()
    x = d.data / 16.0
    y = d.target.astype(np.int64)
    return train_test_split(x, y, test_size=0.25, stratify=y, random_state=SPLIT_SEED)


# --------------------------------------------------------------------------------------- numpy nets


def softmax_xent_grad(logits, y):
    z = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    n = logits.shape[0]
    loss = -np.log(p[np.arange(n), y] + 1e-12).mean()
    p[np.arange(n), y] -= 1.0
    return loss, p / n


def he(rng, fan_in, shape):
    return rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)


def im2col(x, k, pad):
    """x [N,C,H,W] -> [N, Ho*Wo, C*k*k] (stride 1), column order (c, di, dj) = ONNX Conv weight order."""
    n, c, h, w = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    ho, wo = h + 2 * pad - k + 1, w + 2 * pad - k + 1
    cols = np.empty((n, c, k, k, ho, wo))
    for di in range(k):
        for dj in range(k):
            cols[:, :, di, dj] = xp[:, :, di:di + ho, dj:dj + wo]
    return cols.reshape(n, c * k * k, ho * wo).transpose(0, 2, 1), (ho, wo)


def col2im(g, shape, k, pad):
    """Adjoint of im2col: g [N, Ho*Wo, C*k*k] -> [N,C,H,W]."""
    n, c, h, w = shape
    ho, wo = h + 2 * pad - k + 1, w + 2 * pad - k + 1
    g = g.transpose(0, 2, 1).reshape(n, c, k, k, ho, wo)
    xp = np.zeros((n, c, h + 2 * pad, w + 2 * pad))
    for di in range(k):
        for dj in range(k):
            xp[:, :, di:di + ho, dj:dj + wo] += g[:, :, di, dj]
    return xp[:, :, pad:pad + h, pad:pad + w]


def avgpool2(x):
    n, c, h, w = x.shape
    return x.reshape(n, c, h // 2, 2, w // 2, 2).mean(axis=(3, 5))


def avgpool2_back(g):
    return np.repeat(np.repeat(g, 2, axis=2), 2, axis=3) / 4.0


def mlp_init(rng, layers):
    p = {}
    for i, (a, b) in enumerate(zip(layers, layers[1:])):
        p[f"W{i}"] = he(rng, a, (b, a))  # [out, in], Gemm transB=1
        p[f"b{i}"] = np.zeros(b)
    return p


def mlp_fb(p, x, y, n_layers, input_grad=False):
    """Forward pass (logits when y is None), else (loss, grads[, gradient w.r.t. x])."""
    acts = [x]
    h = x
    for i in range(n_layers):
        h = h @ p[f"W{i}"].T + p[f"b{i}"]
        if i < n_layers - 1:
            h = np.maximum(h, 0.0)
        acts.append(h)
    if y is None:
        return h
    loss, g = softmax_xent_grad(h, y)
    grads = {}
    for i in reversed(range(n_layers)):
        grads[f"W{i}"] = g.T @ acts[i]
        grads[f"b{i}"] = g.sum(axis=0)
        if i > 0 or input_grad:
            g = g @ p[f"W{i}"]
            if i > 0:
                g = g * (acts[i] > 0)
    return (loss, grads, g) if input_grad else (loss, grads)


def lenet_init(rng):
    return {
        "c1": he(rng, 25, (6, 1, 5, 5)), "c1b": np.zeros(6),
        "c2": he(rng, 150, (16, 6, 5, 5)), "c2b": np.zeros(16),
        "W0": he(rng, 400, (120, 400)), "b0": np.zeros(120),
        "W1": he(rng, 120, (84, 120)), "b1": np.zeros(84),
        "W2": he(rng, 84, (10, 84)), "b2": np.zeros(10),
    }


def lenet_fb(p, x, y):
    n = x.shape[0]
    x = x.reshape(n, 1, 28, 28)
    c1, (h1, w1) = im2col(x, 5, 2)                        # [n,784,25]
    z1 = (c1 @ p["c1"].reshape(6, 25).T).transpose(0, 2, 1).reshape(n, 6, h1, w1) + p["c1b"][None, :, None, None]
    a1 = np.maximum(z1, 0.0)
    q1 = avgpool2(a1)                                     # [n,6,14,14]
    c2, (h2, w2) = im2col(q1, 5, 0)                       # [n,100,150]
    z2 = (c2 @ p["c2"].reshape(16, 150).T).transpose(0, 2, 1).reshape(n, 16, h2, w2) + p["c2b"][None, :, None, None]
    a2 = np.maximum(z2, 0.0)
    q2 = avgpool2(a2)                                     # [n,16,5,5]
    f = q2.reshape(n, 400)
    if y is None:
        return mlp_fb(p, f, None, 3)
    loss, grads, gf = mlp_fb(p, f, y, 3, input_grad=True)
    g2 = avgpool2_back(gf.reshape(n, 16, 5, 5)) * (z2 > 0)            # [n,16,10,10]
    g2c = g2.reshape(n, 16, h2 * w2).transpose(0, 2, 1)                # [n,100,16]
    grads["c2"] = np.einsum("npo,npi->oi", g2c, c2).reshape(16, 6, 5, 5)
    grads["c2b"] = g2.sum(axis=(0, 2, 3))
    gq1 = col2im(g2c @ p["c2"].reshape(16, 150), q1.shape, 5, 0)
    g1 = avgpool2_back(gq1) * (z1 > 0)
    g1c = g1.reshape(n, 6, h1 * w1).transpose(0, 2, 1)
    grads["c1"] = np.einsum("npo,npi->oi", g1c, c1).reshape(6, 1, 5, 5)
    grads["c1b"] = g1.sum(axis=(0, 2, 3))
    return loss, grads


def train(fb, p, x, y, epochs, lr, wd, seed):
    rng = np.random.default_rng(seed)
    m = {k: np.zeros_like(v) for k, v in p.items()}
    v = {k: np.zeros_like(v) for k, v in p.items()}
    n, batch = x.shape[0], 32
    total = epochs * ((n + batch - 1) // batch)
    t = 0
    for ep in range(epochs):
        perm = rng.permutation(n)
        tot = 0.0
        for i in range(0, n, batch):
            idx = perm[i:i + batch]
            loss, g = fb(p, x[idx], y[idx])
            cur = lr * 0.5 * (1 + np.cos(np.pi * t / total))
            t += 1
            for k in p:
                gk = g[k] + (wd * p[k] if p[k].ndim > 1 else 0.0)
                m[k] = 0.9 * m[k] + 0.1 * gk
                v[k] = 0.999 * v[k] + 0.001 * gk * gk
                p[k] -= cur * (m[k] / (1 - 0.9 ** t)) / (np.sqrt(v[k] / (1 - 0.999 ** t)) + 1e-8)
            tot += loss * len(idx)
        if ep == 0 or ep == epochs - 1 or ep % 5 == 4:
            log(f"  epoch {ep + 1:3d}/{epochs}  loss {tot / n:.4f}")
    return p


# -------------------------------------------------------------------------------------------- ONNX


def _init(name, arr):
    return numpy_helper.from_array(np.asarray(arr, dtype=np.float32), name=name)


def _model(nodes, name, in_shape, inits, doc):
    graph = helper.make_graph(
        nodes, name,
        inputs=[helper.make_tensor_value_info("input", TensorProto.FLOAT, in_shape)],
        outputs=[helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="zkinfer-bench", producer_version="1", doc_string=doc)
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    return model


def dense_nodes(inp, n_layers, prefix="fc"):
    nodes, inits_names = [], []
    h = inp
    for i in range(n_layers):
        out = "logits" if i == n_layers - 1 else f"{prefix}{i}_out"
        nodes.append(helper.make_node("Gemm", [h, f"{prefix}{i}.weight", f"{prefix}{i}.bias"], [out],
                                      name=f"{prefix}{i}", alpha=1.0, beta=1.0, transA=0, transB=1))
        h = out
        if i < n_layers - 1:
            nodes.append(helper.make_node("Relu", [h], [f"relu_{prefix}{i}"], name=f"relu_{prefix}{i}"))
            h = f"relu_{prefix}{i}"
    return nodes


def dense_inits(p, n_layers, prefix="fc"):
    out = []
    for i in range(n_layers):
        out += [_init(f"{prefix}{i}.weight", p[f"W{i}"]), _init(f"{prefix}{i}.bias", p[f"b{i}"])]
    return out


def export_mlp(name, p, layers):
    n = len(layers) - 1
    return _model(dense_nodes("input", n), name, [1, layers[0]], dense_inits(p, n),
                  f"MLP {'-'.join(map(str, layers))} (Gemm transB=1, Relu) on sklearn digits upsampled; input pixel/16")


def export_lenet(name, p):
    conv = dict(strides=[1, 1], dilations=[1, 1], group=1, kernel_shape=[5, 5])
    pool = dict(kernel_shape=[2, 2], strides=[2, 2], pads=[0, 0, 0, 0])
    nodes = [
        helper.make_node("Conv", ["input", "conv1.weight", "conv1.bias"], ["conv1_out"], name="conv1", pads=[2, 2, 2, 2], **conv),
        helper.make_node("Relu", ["conv1_out"], ["relu1_out"], name="relu1"),
        helper.make_node("AveragePool", ["relu1_out"], ["pool1_out"], name="pool1", **pool),
        helper.make_node("Conv", ["pool1_out", "conv2.weight", "conv2.bias"], ["conv2_out"], name="conv2", pads=[0, 0, 0, 0], **conv),
        helper.make_node("Relu", ["conv2_out"], ["relu2_out"], name="relu2"),
        helper.make_node("AveragePool", ["relu2_out"], ["pool2_out"], name="pool2", **pool),
        helper.make_node("Flatten", ["pool2_out"], ["flat_out"], name="flatten", axis=1),
    ] + dense_nodes("flat_out", 3)
    inits = [_init("conv1.weight", p["c1"]), _init("conv1.bias", p["c1b"]),
             _init("conv2.weight", p["c2"]), _init("conv2.bias", p["c2b"])] + dense_inits(p, 3)
    return _model(nodes, name, [1, 1, 28, 28], inits,
                  "LeNet-5 (Conv 6@5x5 pad 2, Relu, AvgPool 2, Conv 16@5x5, Relu, AvgPool 2, FC 120-84-10) on sklearn "
                  "digits upsampled to 28x28; input pixel/16")


def ort_logits(model, xs, shape):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return np.stack([sess.run(None, {"input": x.reshape(shape).astype(np.float32)})[0].ravel() for x in xs])


# -------------------------------------------------------------------------------------------- main


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def write_json(path, obj, compact=False):
    with open(path, "w") as f:
        if compact:
            json.dump(obj, f, separators=(",", ":"))
        else:
            json.dump(obj, f, indent=2)
        f.write("\n")


def floats(v):
    return [float(a) for a in np.asarray(v).ravel()]


def generate(name, spec, data, out, seed):
    x_tr, x_te, y_tr, y_te = data[spec["side"]]
    rng = np.random.default_rng([seed, list(MODELS).index(name)])
    started = time.monotonic()
    if spec.get("conv"):
        p = lenet_init(rng)
        fb = lenet_fb
        shape = [1, 1, 28, 28]
        p = train(fb, p, x_tr, y_tr, spec["epochs"], spec["lr"], spec["wd"], seed)
        model = export_lenet(name, p)
        ref = np.concatenate([lenet_fb(p, x_te[i:i + 64], None) for i in range(0, len(x_te), 64)])
        arch = "LeNet-5: Conv(1->6, 5x5, strides 1, pads 2) -> Relu -> AveragePool(2x2, strides 2) -> Conv(6->16, 5x5, strides 1, pads 0) -> Relu -> AveragePool(2x2, strides 2) -> Flatten(400) -> Gemm 120 -> Relu -> Gemm 84 -> Relu -> Gemm 10"
    else:
        layers = spec["layers"]
        n = len(layers) - 1
        p = mlp_init(rng, layers)
        fb = lambda p_, x, y: mlp_fb(p_, x, y, n)  # noqa: E731
        shape = [1, layers[0]]
        p = train(fb, p, x_tr, y_tr, spec["epochs"], spec["lr"], spec["wd"], seed)
        model = export_mlp(name, p, layers)
        ref = mlp_fb(p, x_te, None, n)
        arch = "MLP " + " -> Relu -> ".join(f"Gemm({a}->{b}, transB=1)" for a, b in zip(layers, layers[1:]))
    logits = ort_logits(model, x_te, shape)
    diff = float(np.abs(logits - ref).max())
    if diff > 1e-3:
        raise SystemExit(f"{name}: onnxruntime differs from the numpy forward pass by {diff}")
    acc = float((logits.argmax(1) == y_te).mean())
    params = int(sum(v.size for v in p.values()))
    # the benchmark input: the first held-out image classified correctly with a clear top-two margin
    top2 = np.sort(logits, axis=1)[:, -2:]
    ok = np.nonzero((logits.argmax(1) == y_te) & (top2[:, 1] - top2[:, 0] > 2.0))[0]
    pick = int(ok[0]) if len(ok) else int(np.nonzero(logits.argmax(1) == y_te)[0][0])
    onnx_path = out / f"{name}.onnx"
    onnx.save(model, onnx_path)
    side = spec["side"]
    meta = {
        "name": name,
        "description": f"{arch}; trained {spec['epochs']} epochs in numpy (seed {seed}) on the digits upsampled to "
                       f"{side}x{side}; input = pixel/16 (bilinear, rounded to 1/16), row-major",
        "dataset": f"sklearn digits 8x8 upsampled to {side}x{side} (models/bench/gen_models.py)",
        "input_shape": shape,
        "output_shape": [1, 10],
        "parameters": params,
        "input_scale_bits": INPUT_SCALE_BITS,
        "float_accuracy": round(acc, 6),
        "test_samples": int(len(y_te)),
        "labels": "digit 0-9, argmax of logits",
        "input_range": [0.0, 1.0],
        "eval_set": f"digits{side}_test.json",
        "seed": seed,
    }
    write_json(out / f"{name}.meta.json", meta)
    write_json(out / f"{name}.input.json", {"input": floats(x_te[pick]), "label": int(y_te[pick])}, compact=True)
    log(f"{name}: {params:,} parameters, float accuracy {100 * acc:.2f}% on {len(y_te)} held-out images, "
        f"onnxruntime vs numpy {diff:.1e}, {time.monotonic() - started:.1f} s")
    return {"onnx_sha256": sha256(onnx_path), "parameters": params, "float_accuracy": meta["float_accuracy"]}


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out-dir", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--models", default=",".join(MODELS), help=f"comma-separated subset of {', '.join(MODELS)}")
    ap.add_argument("--force", action="store_true", help="regenerate even when the stamp matches")
    args = ap.parse_args(argv)
    names = [m.strip() for m in args.models.split(",") if m.strip()]
    for m in names:
        if m not in MODELS:
            ap.error(f"unknown model {m!r}; known: {', '.join(MODELS)}")
    out = args.out_dir
    out.mkdir(parents=True, exist_ok=True)
    gen_hash = sha256(__file__)
    stamp_path = out / "stamp.json"
    stamp = json.loads(stamp_path.read_text()) if stamp_path.exists() else {}
    if stamp.get("seed") != args.seed or stamp.get("generator_sha256") != gen_hash:
        stamp = {"seed": args.seed, "generator_sha256": gen_hash, "numpy": np.__version__, "models": {}}

    def fresh(name):
        side = MODELS[name]["side"]
        files = [out / f"{name}{ext}" for ext in (".onnx", ".meta.json", ".input.json")] + [out / f"digits{side}_test.json"]
        entry = stamp["models"].get(name)
        return (not args.force and entry is not None and all(f.exists() for f in files)
                and sha256(out / f"{name}.onnx") == entry["onnx_sha256"])

    todo = [m for m in names if not fresh(m)]
    if not todo:
        log(f"{', '.join(names)} up to date in {out} (seed {args.seed})")
        return 0
    x_tr, x_te, y_tr, y_te = load_data()
    data = {}
    for side in sorted({MODELS[m]["side"] for m in todo}):
        data[side] = (upsample(x_tr, side), upsample(x_te, side), y_tr, y_te)
        write_json(out / f"digits{side}_test.json",
                   {"inputs": [floats(r) for r in data[side][1]], "labels": [int(v) for v in y_te]}, compact=True)
    for name in todo:
        log(f"{name}: training (seed {args.seed})")
        stamp["models"][name] = generate(name, MODELS[name], data, out, args.seed)
        write_json(stamp_path, stamp)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
