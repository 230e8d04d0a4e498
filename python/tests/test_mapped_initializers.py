"""Initializers in external data are mapped, not read (issue 17). The model's
external data file is larger than this machine's memory: a sparse file with
a 32 GiB table that no node reads, beside the 64x64 weight the graph uses.
The compile succeeds with a peak RSS far below the table (reading it, as the
importer once did, would need 32 GiB), and the library computes X @ W,
checked against NumPy."""
import subprocess
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper

from qslaw_tools.runner import tool
from qslaw_tools.runtime import Model

TABLE_BYTES = 32 << 30


def external(name, dims, offset, length, location):
    t = TensorProto(name=name, data_type=TensorProto.FLOAT, dims=dims)
    t.data_location = TensorProto.EXTERNAL
    for k, v in (("location", location), ("offset", str(offset)), ("length", str(length))):
        e = t.external_data.add()
        e.key, e.value = k, v
    return t


def test_unread_external_table_is_mapped_not_read(tmp_path):
    rng = np.random.default_rng(0)
    w = rng.standard_normal((64, 64)).astype(np.float32)
    data = tmp_path / "m.onnx.data"
    with open(data, "wb") as f:
        f.write(w.tobytes())
        f.truncate(w.nbytes + TABLE_BYTES)  # a hole: no disk, no memory
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 64])],
        initializer=[external("w", [64, 64], 0, w.nbytes, data.name),
                     external("table", [8, TABLE_BYTES // 32], w.nbytes, TABLE_BYTES,
                              data.name)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    path = str(tmp_path / "m.onnx")
    onnx.save(model, path)  # the data file is already in place

    lib = str(tmp_path / "m.so")
    # The compiler's peak RSS, measured by a small process that starts it: a
    # child forked from this (large) test process would count this
    # process's pages until its exec.
    probe = ("import resource, subprocess, sys\n"
             "r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, "
             "stderr=subprocess.PIPE, text=True)\n"
             "sys.stderr.write(r.stderr)\n"
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
             "sys.exit(r.returncode)\n")
    proc = subprocess.run([sys.executable, "-c", probe, tool("qslaw-compile"), path,
                           "-o", lib], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    peak = int(proc.stdout.split()[-1]) * 1024
    assert peak < (1 << 30), peak  # the table is 32 GiB

    x = rng.standard_normal((4, 64)).astype(np.float32)
    (y,) = Model(lib).run(x=x)
    # f32 dot products of 64 terms: a few ulps of the result's scale.
    np.testing.assert_allclose(y, x @ w, rtol=1e-5, atol=1e-5)
