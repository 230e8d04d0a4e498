"""A MatMulNBits model sized to make it visible (2048x2048: 16 MiB of float
weight, 2 MiB of 4-bit codes) compiles to a library and runs without ever
holding a float copy of the weight: the library is ~1/8 of the float
model's, and the process's peak RSS is lower than the float model's by
about the float weight size (measured with /usr/bin/time)."""
import os
import subprocess
import tempfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from qslaw_tools.runner import tool

N = K = 2048
BS = 128


def models(d):
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 16, (N, K), dtype=np.uint8)
    packed = (codes[:, 0::2] | (codes[:, 1::2] << 4)).reshape(N, K // BS, BS // 2)
    scales = (rng.random(N * (K // BS)) * 0.01).astype(np.float32)
    x = [helper.make_tensor_value_info("A", TensorProto.FLOAT, [1, K])]
    y = [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)]
    nb = helper.make_model(helper.make_graph(
        [helper.make_node("MatMulNBits", ["A", "B", "s"], ["Y"], domain="com.microsoft",
                          K=K, N=N, bits=4, block_size=BS)], "g", x, y,
        [numpy_helper.from_array(packed.astype(np.uint8), "B"),
         numpy_helper.from_array(scales, "s")]),
        opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("com.microsoft", 1)])
    fl = helper.make_model(helper.make_graph(
        [helper.make_node("MatMul", ["A", "W"], ["Y"])], "g", x, y,
        [numpy_helper.from_array(rng.standard_normal((K, N)).astype(np.float32), "W")]),
        opset_imports=[helper.make_opsetid("", 21)])
    onnx.save(nb, os.path.join(d, "nb.onnx"))
    onnx.save(fl, os.path.join(d, "fl.onnx"))
    np.save(os.path.join(d, "a.npy"), rng.standard_normal((1, K)).astype(np.float32))


def peak_rss_kib(d, name):
    lib = os.path.join(d, name + ".so")
    subprocess.run([tool("qslaw-compile"), os.path.join(d, name + ".onnx"), "-o", lib],
                   check=True, capture_output=True)
    r = subprocess.run(["/usr/bin/time", "-f", "%M", tool("qslaw-run"), lib,
                        "--input", "A=" + os.path.join(d, "a.npy"),
                        "--output-dir", os.path.join(d, "out-" + name)],
                       check=True, capture_output=True, text=True)
    return int(r.stderr.strip().splitlines()[-1]), os.path.getsize(lib)


def test_no_float_copy_of_quantized_weights():
    float_kib = N * K * 4 // 1024
    with tempfile.TemporaryDirectory() as d:
        models(d)
        rss_nb, size_nb = peak_rss_kib(d, "nb")
        rss_fl, size_fl = peak_rss_kib(d, "fl")
    assert size_nb < size_fl / 4, (size_nb, size_fl)
    # The float model maps its 16 MiB weight; the quantized one only 2 MiB of
    # codes: peak RSS differs by most of the float weight size.
    assert rss_fl - rss_nb > 0.6 * float_kib, (rss_fl, rss_nb, float_kib)
