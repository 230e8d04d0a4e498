"""QSLAW_GEMM_TRACE (lib/Runtime/Ukernels/UkernelABI.cpp) records each
contraction a compiled model runs as the float GEMM it amounts to, and
build/bin/gemm_lower_bound times those shapes alone: the GEMM lower bound of
bench/train_step_real_cpu.py. Checked on a two-layer model whose matmuls are
known: a float MatMul (a library sgemm) and a 4-bit quantized one (a qmatmul
ukernel)."""
import json
import os
import subprocess

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from qslaw_tools.runner import tool

M, K, H, N = 32, 256, 128, 64


def _model(path):
    rng = np.random.default_rng(0)
    g = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w1"], ["h"], name="proj"),
         helper.make_node("MatMul", ["h", "w2"], ["y"], name="head")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [M, K])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [M, N])],
        [numpy_helper.from_array(rng.standard_normal((K, H)).astype(np.float32), "w1"),
         numpy_helper.from_array(rng.standard_normal((H, N)).astype(np.float32), "w2")])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)]), path)


def _trace(tmp_path, compile_args):
    onnx_path, lib = str(tmp_path / "m.onnx"), str(tmp_path / "m.so")
    _model(onnx_path)
    subprocess.run([tool("qslaw-compile"), onnx_path, "-o", lib, "--gemm-min-flops=0",
                    *compile_args], check=True, capture_output=True)
    x = str(tmp_path / "x.npy")
    np.save(x, np.ones((M, K), np.float32))
    trace = str(tmp_path / "trace.jsonl")
    env = dict(os.environ, QSLAW_GEMM_TRACE=trace)
    subprocess.run([tool("qslaw-run"), lib, "--input", "x=" + x, "--output-dir",
                    str(tmp_path / "out")], check=True, capture_output=True, env=env)
    with open(trace) as f:
        return trace, [json.loads(line) for line in f]


def _shape(r):
    return r["kind"], r["batch"], r["m"], r["n"], r["k"], r["trans_a"], r["trans_b"]


def test_float_and_quantized_contractions_are_traced(tmp_path):
    trace, rows = _trace(tmp_path, ["--quantize=w4g32", "--quantize-layers=w1"])
    # x[M,K] . w1[K,H] quantized: Y = X W^T with W stored [H, K]; h . w2 a float GEMM.
    assert sorted(map(_shape, rows)) == sorted([("qmatmul", 1, M, H, K, 0, 1),
                                                ("sgemm", 1, M, N, H, 0, 0)])
    out = subprocess.run([tool("gemm_lower_bound"), trace, "--threads", "1", "--min-ms", "1"],
                         check=True, capture_output=True, text=True).stdout
    bound = json.loads(out)
    assert [(r["m"], r["n"], r["k"], r["calls"]) for r in bound["shapes"]] == \
        sorted([(M, H, K, 1), (M, N, H, 1)])
    assert bound["gflop"] == pytest.approx(2e-9 * M * (H * K + N * H))
    assert bound["total_ms"] > 0 and all(r["ms"] > 0 for r in bound["shapes"])


def test_bad_trace_is_named(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"kind":"sgemm","batch":1,"m":4,"n":4,"k":4,"trans_a":0,"trans_b":0}\n'
                   '{"kind":"sgemm","m":4}\n')
    r = subprocess.run([tool("gemm_lower_bound"), str(bad)], capture_output=True, text=True)
    assert r.returncode == 1
    assert f"{bad}:2: not a contraction record" in r.stderr
