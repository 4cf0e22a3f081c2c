#!/usr/bin/env python3
"""Train a small depthwise CNN on the 8x8 digits with PyTorch and export it with torch.onnx.

Run (from the repository root):

    python3 -m venv models/zoo/.venv
    models/zoo/.venv/bin/pip install -r models/zoo/requirements.txt
    models/zoo/.venv/bin/python models/zoo/train_torch.py

Data: exactly the split of ``train.py`` (scikit-learn's bundled 8x8 digits,
``x = pixel / 16`` in [0, 1], stratified 75/25 split with ``random_state=0``);
the script asserts that its held-out set equals ``digits_test.json`` and
reports accuracy on those 450 images only.

Model ``digits_dwcnn`` (input ``[N,1,8,8]``, output the 10 raw logits):

    Conv2d(1->8, 3x3, pad 1) -> BatchNorm2d(8) -> ReLU
    -> depthwise Conv2d(8->8, 3x3, pad 1, groups=8) -> ReLU
    -> MaxPool2d(2)                       [N,8,4,4]
    -> x.view(x.size(0), -1)              [N,128]
    -> Linear(128->10)

1,466 trainable parameters.  Trained with Adam (lr 1e-2, cosine decay to 0,
weight decay 1e-4), mini-batches of 32, 60 epochs, fixed seeds,
single-threaded and deterministic.

Export: ``torch.onnx.export`` (the TorchScript exporter, ``dynamo=False``) in
eval mode with its defaults (``do_constant_folding=True``; BatchNorm is *not*
folded by hand: whatever the exporter does with it is what the graph holds),
opset 17, ``dynamic_axes`` on the batch dimension of input and output, so the
graph input is ``[batch,1,8,8]`` and ``view(x.size(0), -1)`` becomes
Shape/Gather/Unsqueeze/Concat/Reshape shape arithmetic.  The script prints the
op types, checks the model with ``onnx.checker``, runs it with onnxruntime at
batch 1 on every test image (and once at batch 450), asserts that it agrees
with PyTorch (max abs difference < 1e-4) and takes ``float_accuracy`` from
onnxruntime.

Writes (in models/zoo/): ``digits_dwcnn.onnx``, ``digits_dwcnn.meta.json``,
``digits_dwcnn.input.json`` (the first test image classified correctly with a
logit margin > 4: ``{"input": [64 floats], "label": d}``).
"""

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import json  # noqa: E402
from collections import Counter  # noqa: E402

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from train import INPUT_SCALE_BITS, dump_json, flat_floats, load_data  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
NAME = "digits_dwcnn"
SEED = 0
OPSET = 17
EPOCHS = 60
BATCH = 32


class DwCnn(nn.Module):
    def __init__(self, ch=8, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(1, ch, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(ch)
        self.dw = nn.Conv2d(ch, ch, 3, padding=1, groups=ch)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(ch * 16, classes)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        x = self.pool(torch.relu(self.dw(x)))
        x = x.view(x.size(0), -1)
        return self.fc(x)


def train(model, x, y):
    gen = torch.Generator().manual_seed(SEED + 1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2, weight_decay=1e-4)
    steps = EPOCHS * ((len(y) + BATCH - 1) // BATCH)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    loss_fn = nn.CrossEntropyLoss()
    for ep in range(EPOCHS):
        model.train()
        perm = torch.randperm(len(y), generator=gen)
        total = 0.0
        for i in range(0, len(y), BATCH):
            idx = perm[i:i + BATCH]
            opt.zero_grad()
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        if ep % 10 == 0 or ep == EPOCHS - 1:
            print(f"  epoch {ep:3d}  loss {total / len(y):.4f}")
    model.eval()
    return model


def session(path):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])


def write_meta(path, meta):
    """Pretty-printed like the other *.meta.json files."""
    with open(path, "w") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")


def describe(model):
    g = model.graph
    ops = Counter(n.op_type for n in g.node)

    def shape(v):
        return [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]

    print(f"  opset {model.opset_import[0].version}, IR {model.ir_version}, "
          f"domains {sorted({o.domain or 'ai.onnx' for o in model.opset_import})}")
    print(f"  op types: {dict(ops)}")
    print(f"  inputs:  {[(v.name, shape(v)) for v in g.input]}")
    print(f"  outputs: {[(v.name, shape(v)) for v in g.output]}")
    return ops


def main():
    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)

    x_tr, x_te, y_tr, y_te = load_data()
    with open(os.path.join(HERE, "digits_test.json")) as f:
        ref = json.load(f)
    assert np.array_equal(np.array(ref["inputs"], dtype=np.float32), x_te)
    assert ref["labels"] == [int(v) for v in y_te]
    print(f"train {len(y_tr)}  test {len(y_te)} (= digits_test.json)")

    xt = torch.from_numpy(x_tr).reshape(-1, 1, 8, 8)
    yt = torch.from_numpy(y_tr)
    xe = torch.from_numpy(x_te).reshape(-1, 1, 8, 8)

    model = DwCnn()
    n_params = sum(p.numel() for p in model.parameters())
    print(f"training {NAME} ({n_params} parameters)")
    train(model, xt, yt)
    with torch.no_grad():
        torch_logits = model(xe).numpy()
    print(f"  torch test accuracy {(torch_logits.argmax(1) == y_te).mean():.4f}")

    path = os.path.join(HERE, f"{NAME}.onnx")
    torch.onnx.export(
        model, (xe[:1],), path, dynamo=False, opset_version=OPSET,
        input_names=["input"], output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
    )
    exported = onnx.load(path)
    onnx.checker.check_model(exported, full_check=True)
    print(f"exported {path}")
    ops = describe(exported)

    sess = session(path)
    logits = np.stack([sess.run(None, {"input": xi.reshape(1, 1, 8, 8)})[0][0] for xi in x_te])
    batched = sess.run(None, {"input": x_te.reshape(-1, 1, 8, 8)})[0]
    diff = float(np.abs(logits - torch_logits).max())
    assert diff < 1e-4, f"onnxruntime differs from torch by {diff}"
    assert float(np.abs(batched - logits).max()) < 1e-4
    pred = logits.argmax(1)
    acc = float((pred == y_te).mean())
    wmax = max(float(np.abs(onnx.numpy_helper.to_array(t)).max())
               for t in exported.graph.initializer)
    print(f"{NAME}: onnxruntime test accuracy {acc:.4f} ({int((pred == y_te).sum())}/{len(y_te)}),"
          f" max |ort - torch| = {diff:.2e}, max |initializer| = {wmax:.3f}")
    assert acc >= 0.95

    bn = "kept as BatchNormalization" if "BatchNormalization" in ops else \
        "folded into the first Conv by the exporter"
    write_meta(os.path.join(HERE, f"{NAME}.meta.json"), {
        "name": NAME,
        "description": "PyTorch CNN: Conv(1->8, 3x3, pads 1) -> BatchNorm2d (" + bn + ") -> Relu "
                       "-> depthwise Conv(8->8, 3x3, pads 1, group 8) -> Relu -> MaxPool(2x2, "
                       "stride 2) -> view(N, -1) (Shape/Gather/Unsqueeze/Concat/Reshape) -> "
                       "Gemm(128->10); exported by torch.onnx.export (opset 17) with a dynamic "
                       "batch dimension; input = pixel/16 reshaped row-major to 1x1x8x8",
        "dataset": "sklearn digits 8x8",
        "input_shape": [1, 1, 8, 8],
        "output_shape": [1, 10],
        "input_scale_bits": INPUT_SCALE_BITS,
        "float_accuracy": round(acc, 6),
        "test_samples": int(len(y_te)),
        "labels": "digit 0-9, argmax of logits",
        "input_range": [0.0, 1.0],
        "eval_set": "digits_test.json",
    })

    def margin(lg, y):
        return lg[y] - np.delete(lg, y).max()

    pick = next(i for i in range(len(y_te)) if margin(logits[i], y_te[i]) > 4.0)
    dump_json(os.path.join(HERE, f"{NAME}.input.json"),
              {"input": flat_floats(x_te[pick]), "label": int(y_te[pick])})
    print(f"example input: test index {pick}, label {y_te[pick]}, "
          f"margin {margin(logits[pick], y_te[pick]):.2f}")
    print(f"wrote models/zoo/{NAME}.{{onnx,meta.json,input.json}}")


if __name__ == "__main__":
    main()
