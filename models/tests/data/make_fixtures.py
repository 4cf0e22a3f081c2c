#!/usr/bin/env python3
"""Generate the tiny ONNX test fixtures in models/tests/data/.

Run (from the repository root, using the zoo's venv):

    models/zoo/.venv/bin/python models/tests/data/make_fixtures.py

Every fixture is built with ``onnx.helper`` from fixed-seed random weights
drawn uniformly from [-1, 1] (float32), opset 13, IR version 7, batch 1.  Each
valid model is checked with ``onnx.checker`` and run with onnxruntime on a
fixed-seed random input drawn uniformly from [-1, 1]; for the models made only
of ops the circuit supports, the input and onnxruntime's output are written
(flattened, row-major) to ``<name>.expected.json`` as
``{"input": [...], "output": [...]}``.  Inputs and weights are rounded to
multiples of 2^-7 so that a fixed-point encoding at scale 2^7 represents them
exactly; only the intermediate rescaling then introduces error.

Fixtures
--------
* ``conv_stride_pad.onnx``: input [1,2,7,7] -> Conv(2->3, 3x3, strides 2,
  pads 1) [1,3,4,4] -> Relu -> Flatten [1,48] -> Gemm(transB=1, B [4,48],
  C [4]) -> output [1,4].
* ``maxpool.onnx``: input [1,1,6,6] -> Conv(1->2, 3x3, pads 0) [1,2,4,4] ->
  MaxPool(2x2, stride 2) [1,2,2,2] -> Reshape(shape = int64 initializer
  [1,8]) -> MatMul(constant [8,3]) -> Add(constant bias [3]) -> output [1,3].
* ``residual_add.onnx``: input [1,8] -> Gemm(8->8, transB=0) -> Relu ->
  Add(relu output, graph input)  (an activation + activation add) ->
  Gemm(8->2, transB=0) -> output [1,2].
* ``unsupported_op.onnx``: input [1,4] -> Gemm(4->3) -> Sin (node named
  "act_sin") -> output [1,3].  Valid ONNX with an operator
  zkinfer does not support, which it must reject with an error naming the
  node/op; no expected.json is written.
* ``malformed.onnx``: the first half of a valid serialized model followed by
  garbage bytes; the script asserts that both onnx and onnxruntime refuse it.
"""

import json
import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
OPSET = 13
IR_VERSION = 7
FRAC_BITS = 7


def uniform(rng, shape):
    """Uniform in [-1, 1], rounded to a multiple of 2^-7, as float32."""
    v = rng.uniform(-1.0, 1.0, size=shape)
    return (np.round(v * (1 << FRAC_BITS)) / (1 << FRAC_BITS)).astype(np.float32)


def f32(name, arr):
    return numpy_helper.from_array(np.asarray(arr, dtype=np.float32), name=name)


def model_of(graph):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="zkinfer-fixtures", producer_version="1")
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    return model


def run_ort(model, x):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])
    return sess.run(None, {"input": x})[0]


def save(name, model, x, expected, write_expected=True):
    onnx.save(model, os.path.join(HERE, f"{name}.onnx"))
    y = run_ort(model, x)
    assert y.shape == expected.shape, (name, y.shape, expected.shape)
    diff = float(np.abs(y - expected).max())
    assert diff < 1e-5, f"{name}: onnxruntime vs numpy reference differ by {diff}"
    if write_expected:
        with open(os.path.join(HERE, f"{name}.expected.json"), "w") as f:
            json.dump({"input": [float(v) for v in x.ravel()],
                       "output": [float(v) for v in y.ravel()]}, f, separators=(",", ":"))
            f.write("\n")
    print(f"{name}: input {list(x.shape)} -> output {list(y.shape)}, "
          f"max |ort - numpy| = {diff:.1e}, output range [{y.min():.3f}, {y.max():.3f}]")
    return y


# ---- independent numpy references (to cross-check onnxruntime) -------------
def conv2d(x, w, b, stride, pad):
    n, c, h, wd = x.shape
    oc, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh = (h + 2 * pad - kh) // stride + 1
    ow = (wd + 2 * pad - kw) // stride + 1
    out = np.zeros((n, oc, oh, ow), dtype=np.float64)
    for i in range(oh):
        for j in range(ow):
            patch = xp[:, :, i * stride:i * stride + kh, j * stride:j * stride + kw]
            out[:, :, i, j] = np.tensordot(patch, w, axes=([1, 2, 3], [1, 2, 3]))
    return out + b.reshape(1, oc, 1, 1)


def maxpool2(x):
    n, c, h, w = x.shape
    return x.reshape(n, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))


# ---- fixtures ---------------------------------------------------------------
def conv_stride_pad(rng):
    w = uniform(rng, (3, 2, 3, 3))
    b = uniform(rng, (3,))
    fw = uniform(rng, (4, 48))
    fb = uniform(rng, (4,))
    nodes = [
        helper.make_node("Conv", ["input", "conv.weight", "conv.bias"], ["conv_out"],
                         name="conv", kernel_shape=[3, 3], strides=[2, 2],
                         pads=[1, 1, 1, 1], dilations=[1, 1], group=1),
        helper.make_node("Relu", ["conv_out"], ["relu_out"], name="relu"),
        helper.make_node("Flatten", ["relu_out"], ["flat_out"], name="flatten", axis=1),
        helper.make_node("Gemm", ["flat_out", "fc.weight", "fc.bias"], ["output"],
                         name="fc", alpha=1.0, beta=1.0, transB=1),
    ]
    graph = helper.make_graph(
        nodes, "conv_stride_pad",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 2, 7, 7])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 4])],
        [f32("conv.weight", w), f32("conv.bias", b), f32("fc.weight", fw), f32("fc.bias", fb)],
    )
    x = uniform(rng, (1, 2, 7, 7))
    h = np.maximum(conv2d(x.astype(np.float64), w, b, 2, 1), 0).reshape(1, -1)
    return model_of(graph), x, h @ fw.T.astype(np.float64) + fb


def maxpool(rng):
    w = uniform(rng, (2, 1, 3, 3))
    b = uniform(rng, (2,))
    m = uniform(rng, (8, 3))
    bias = uniform(rng, (3,))
    shape = numpy_helper.from_array(np.array([1, 8], dtype=np.int64), name="reshape.shape")
    nodes = [
        helper.make_node("Conv", ["input", "conv.weight", "conv.bias"], ["conv_out"],
                         name="conv", kernel_shape=[3, 3], strides=[1, 1],
                         pads=[0, 0, 0, 0], dilations=[1, 1], group=1),
        helper.make_node("MaxPool", ["conv_out"], ["pool_out"], name="maxpool",
                         kernel_shape=[2, 2], strides=[2, 2], pads=[0, 0, 0, 0]),
        helper.make_node("Reshape", ["pool_out", "reshape.shape"], ["flat_out"], name="reshape"),
        helper.make_node("MatMul", ["flat_out", "matmul.weight"], ["mm_out"], name="matmul"),
        helper.make_node("Add", ["mm_out", "add.bias"], ["output"], name="add_bias"),
    ]
    graph = helper.make_graph(
        nodes, "maxpool",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 1, 6, 6])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3])],
        [f32("conv.weight", w), f32("conv.bias", b), shape,
         f32("matmul.weight", m), f32("add.bias", bias)],
    )
    x = uniform(rng, (1, 1, 6, 6))
    p = maxpool2(conv2d(x.astype(np.float64), w, b, 1, 0)).reshape(1, 8)
    return model_of(graph), x, p @ m.astype(np.float64) + bias


def residual_add(rng):
    w1 = uniform(rng, (8, 8))
    b1 = uniform(rng, (8,))
    w2 = uniform(rng, (8, 2))
    b2 = uniform(rng, (2,))
    nodes = [
        helper.make_node("Gemm", ["input", "fc1.weight", "fc1.bias"], ["fc1_out"],
                         name="fc1", alpha=1.0, beta=1.0, transB=0),
        helper.make_node("Relu", ["fc1_out"], ["relu_out"], name="relu"),
        helper.make_node("Add", ["relu_out", "input"], ["res_out"], name="residual_add"),
        helper.make_node("Gemm", ["res_out", "fc2.weight", "fc2.bias"], ["output"],
                         name="fc2", alpha=1.0, beta=1.0, transB=0),
    ]
    graph = helper.make_graph(
        nodes, "residual_add",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 8])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 2])],
        [f32("fc1.weight", w1), f32("fc1.bias", b1), f32("fc2.weight", w2), f32("fc2.bias", b2)],
    )
    x = uniform(rng, (1, 8))
    x64 = x.astype(np.float64)
    r = np.maximum(x64 @ w1 + b1, 0) + x64
    return model_of(graph), x, r @ w2 + b2


def unsupported_op(rng):
    w = uniform(rng, (4, 3))
    b = uniform(rng, (3,))
    nodes = [
        helper.make_node("Gemm", ["input", "fc.weight", "fc.bias"], ["fc_out"],
                         name="fc", alpha=1.0, beta=1.0, transB=0),
        helper.make_node("Sin", ["fc_out"], ["output"], name="act_sin"),
    ]
    graph = helper.make_graph(
        nodes, "unsupported_op",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3])],
        [f32("fc.weight", w), f32("fc.bias", b)],
    )
    x = uniform(rng, (1, 4))
    return model_of(graph), x, np.sin(x.astype(np.float64) @ w + b)


def malformed(valid_model):
    data = valid_model.SerializeToString()
    garbage = np.random.default_rng(1234).integers(0, 256, size=64, dtype=np.uint8).tobytes()
    bad = data[: len(data) // 2] + garbage
    try:
        onnx.load_model_from_string(bad)
    except Exception as e:  # noqa: BLE001
        print(f"malformed: onnx refuses it ({type(e).__name__})")
    else:
        raise AssertionError("malformed.onnx unexpectedly parses with onnx")
    try:
        ort.InferenceSession(bad, providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001
        print(f"malformed: onnxruntime refuses it ({type(e).__name__})")
    else:
        raise AssertionError("malformed.onnx unexpectedly loads in onnxruntime")
    with open(os.path.join(HERE, "malformed.onnx"), "wb") as f:
        f.write(bad)
    print(f"malformed: {len(bad)} bytes")


def main():
    rng = np.random.default_rng(20240601)
    m, x, ref = conv_stride_pad(rng)
    save("conv_stride_pad", m, x, ref)
    conv_model = m
    m, x, ref = maxpool(rng)
    save("maxpool", m, x, ref)
    m, x, ref = residual_add(rng)
    save("residual_add", m, x, ref)
    m, x, ref = unsupported_op(rng)
    save("unsupported_op", m, x, ref, write_expected=False)
    malformed(conv_model)


if __name__ == "__main__":
    main()
