"""Outputs of a CPU run are written straight into the caller's buffer when
their storage is the host layout (lib/Runtime/SessionRun.cpp), and staged
and copied when that buffer overlaps an input. Today's compiled functions
read all inputs before they copy results into their out-params, so an
overlapping run is correct either way; the staging keeps it correct if
bufferization ever writes a result in place while inputs are still read
(a column softmax is such a case). Checked against NumPy: exactly for the
transpose and negation, to 1e-6 for the softmax (f32 exp, 16-term sums)."""
import ctypes
import os
import subprocess

import numpy as np
import onnx
from onnx import TensorProto, helper

from qslaw_tools.runner import tool
from qslaw_tools.runtime import Model, _Tensor

SHAPE = (16, 16)


def _model(tmp_path, name, nodes, outputs):
    vi = [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(SHAPE)) for n in ["x"] + outputs]
    g = helper.make_graph(nodes, name, vi[:1], vi[1:])
    path = os.path.join(tmp_path, f"{name}.onnx")
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)]), path)
    lib = os.path.join(tmp_path, f"{name}.so")
    subprocess.run([tool("qslaw-compile"), path, "-o", lib], check=True, capture_output=True)
    return Model(lib)


def _run(m, x_buf, *out_bufs):
    shape = (ctypes.c_int64 * 2)(*SHAPE)
    t = lambda n, a: _Tensor(n, b"f32", 2, shape, a.ctypes.data, a.nbytes)  # noqa: E731
    ins = (_Tensor * 1)(t(b"x", x_buf))
    outs = (_Tensor * len(out_bufs))(*[t(b"y%d" % i, a) for i, a in enumerate(out_bufs)])
    m._check(m.lib.qslaw_session_run(m.session, ins, 1, outs, len(out_bufs)))


def _softmax0(x):
    e = np.exp(x.astype(np.float64) - x.max(0))
    return e / e.sum(0)


def test_outputs_written_in_place(tmp_path):
    m = _model(str(tmp_path), "tn", [helper.make_node("Transpose", ["x"], ["y0"], perm=[1, 0]),
                                     helper.make_node("Neg", ["x"], ["y1"])], ["y0", "y1"])
    x = np.arange(256, dtype=np.float32).reshape(SHAPE)
    y, z = np.full_like(x, np.nan), np.full_like(x, np.nan)
    _run(m, x, y, z)
    np.testing.assert_array_equal(y, x.T)
    np.testing.assert_array_equal(z, -x)


def test_output_overlapping_an_input_is_staged(tmp_path):
    m = _model(str(tmp_path), "sm", [helper.make_node("Softmax", ["x"], ["y0"], axis=0)], ["y0"])
    x = np.random.default_rng(0).standard_normal(SHAPE).astype(np.float32)
    buf = x.copy()  # the output is the input itself
    _run(m, buf, buf)
    np.testing.assert_allclose(buf, _softmax0(x), rtol=0, atol=1e-6)
    big = np.zeros(512, np.float32)  # an output half over the input's second half
    xin, yout = big[:256].reshape(SHAPE), big[128:384].reshape(SHAPE)
    xin[...] = x
    _run(m, xin, yout)
    np.testing.assert_allclose(yout, _softmax0(x), rtol=0, atol=1e-6)
