"""ONNX import: models built with onnx.helper go through qslaw-compile
(--emit=mlir), run through qslaw-exec, and are compared with onnxruntime on
the same inputs (fp32: 1e-5 relative to the output scale; MatMulNBits: 1e-4,
both sides dequantise the same codes but accumulate in different orders)."""
import os
import subprocess
import tempfile

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from qslaw_tools.runner import run_mlir, tool


def compile_onnx(model, extra=()):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "m.onnx")
        onnx.save(model, path)
        out = os.path.join(d, "m.mlir")
        proc = subprocess.run([tool("qslaw-compile"), path, "-o", out, "--emit=mlir", *extra],
                              capture_output=True, text=True)
        if proc.returncode:
            raise RuntimeError(proc.stderr)
        return open(out).read(), proc.stdout


def ort_run(model, feeds):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    s = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return s.run(None, feeds)


def make(nodes, inputs, outputs, inits=(), opset=17, ms=False):
    g = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    ops = [helper.make_opsetid("", opset)]
    if ms:
        ops.append(helper.make_opsetid("com.microsoft", 1))
    return helper.make_model(g, opset_imports=ops)


def vi(name, shape, t=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, t, shape)


def check(model, feeds, rtol=1e-5):
    mlir, log = compile_onnx(model)
    assert "[1/" in log and "Importing ONNX model" in log
    want = ort_run(model, feeds)
    got = run_mlir(mlir, list(feeds.values()), num_outputs=len(want), entry="forward")
    for g, w in zip(got, want):
        scale = max(np.abs(w).max(), 1e-6)
        assert g.shape == w.shape
        np.testing.assert_allclose(g, w, atol=rtol * scale, rtol=0)


def test_mlp_block():
    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.standard_normal((32, 64)).astype(np.float32) * 0.2, "w1")
    b1 = numpy_helper.from_array(rng.standard_normal(64).astype(np.float32), "b1")
    w2 = numpy_helper.from_array(rng.standard_normal((16, 64)).astype(np.float32) * 0.2, "w2")
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"]),
             helper.make_node("Add", ["h", "b1"], ["hb"]),
             helper.make_node("Erf", ["hb"], ["e"]),
             helper.make_node("Sigmoid", ["e"], ["s"]),
             helper.make_node("Mul", ["hb", "s"], ["m"]),
             helper.make_node("Gemm", ["m", "w2"], ["y0"], transB=1, alpha=0.5),
             helper.make_node("Softmax", ["y0"], ["y"], axis=-1)]
    model = make(nodes, [vi("x", [2, 5, 32])], [vi("y", None)], [w1, b1, w2])
    # Gemm needs 2-D: reshape through an explicit node.
    shape = numpy_helper.from_array(np.array([10, 64], np.int64), "shp")
    nodes.insert(5, helper.make_node("Reshape", ["m", "shp"], ["m2"]))
    nodes[6] = helper.make_node("Gemm", ["m2", "w2"], ["y0"], transB=1, alpha=0.5)
    model = make(nodes, [vi("x", [2, 5, 32])], [vi("y", None)], [w1, b1, w2, shape])
    x = rng.standard_normal((2, 5, 32)).astype(np.float32)
    check(model, {"x": x})


def test_attention_scores_and_norm():
    rng = np.random.default_rng(1)
    nodes = [helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 1, 3, 2]),
             helper.make_node("MatMul", ["q", "kt"], ["s"]),
             helper.make_node("Softmax", ["s"], ["p"], axis=-1),
             helper.make_node("MatMul", ["p", "v"], ["o"]),
             helper.make_node("Pow", ["o", "two"], ["o2"]),
             helper.make_node("ReduceMean", ["o2", "ax"], ["ms"], keepdims=1),
             helper.make_node("Sqrt", ["ms"], ["rms"]),
             helper.make_node("Reciprocal", ["rms"], ["inv"]),
             helper.make_node("Mul", ["o", "inv"], ["y"])]
    inits = [numpy_helper.from_array(np.array(2.0, np.float32), "two"),
             numpy_helper.from_array(np.array([-1], np.int64), "ax")]
    model = make(nodes, [vi("q", [1, 2, 4, 8]), vi("k", [1, 2, 4, 8]), vi("v", [1, 2, 4, 8])],
                 [vi("y", None)], inits, opset=18)
    feeds = {n: rng.standard_normal((1, 2, 4, 8)).astype(np.float32) for n in "qkv"}
    check(model, feeds)


def pack(v, bits):
    per = 8 // bits
    v = v.reshape(-1)
    pad = (-len(v)) % per
    v = np.concatenate([v, np.zeros(pad, v.dtype)]).reshape(-1, per)
    out = np.zeros(len(v), np.uint8)
    for i in range(per):
        out |= (v[:, i].astype(np.uint8) << (i * bits))
    return out


@pytest.mark.parametrize("k,bs,with_zp,bits", [(96, 32, True, 4), (80, 32, True, 4),
                                                (64, 16, False, 4), (64, 32, True, 8)])
def test_matmulnbits(k, bs, with_zp, bits):
    rng = np.random.default_rng(k + bs)
    n, m = 24, 3
    kb = -(-k // bs)
    codes = rng.integers(0, 2 ** bits, (n, kb * bs), dtype=np.uint8)
    codes[:, k:] = 0  # padding of a short last block
    scales = (rng.random((n, kb)) * 0.1 + 0.01).astype(np.float32)
    zp = rng.integers(0, 2 ** bits, (n, kb), dtype=np.uint8)
    blob = bs * bits // 8
    B = np.stack([pack(codes[i, j * bs:(j + 1) * bs], bits) for i in range(n) for j in range(kb)]).reshape(n, kb, blob)
    inits = [numpy_helper.from_array(B, "B"), numpy_helper.from_array(scales.reshape(-1), "scales")]
    ins = ["A", "B", "scales"]
    if with_zp:
        inits.append(numpy_helper.from_array(np.stack([pack(zp[i], bits) for i in range(n)]), "zp"))
        ins.append("zp")
    node = helper.make_node("MatMulNBits", ins, ["Y"], domain="com.microsoft",
                            K=k, N=n, bits=bits, block_size=bs)
    model = make([node], [vi("A", [m, k])], [vi("Y", None)], inits, opset=21, ms=True)
    mlir, _ = compile_onnx(model)
    assert "qslaw.qmatmul" in mlir
    assert f"tensor<{n}x{k}xf32>" not in mlir, "float weight materialised"
    a = rng.standard_normal((m, k)).astype(np.float32)
    check(model, {"A": a}, rtol=1e-4)


def test_quantize_option_matches_reference():
    rng = np.random.default_rng(3)
    w = numpy_helper.from_array(rng.standard_normal((256, 32)).astype(np.float32), "layers.0.w")
    model = make([helper.make_node("MatMul", ["x", "layers.0.w"], ["y"])],
                 [vi("x", [4, 256])], [vi("y", None)], [w])
    mlir, log = compile_onnx(model, ["--quantize=w4g128"])
    assert "Quantizing weights (w4g128)" in log
    assert "qslaw.qmatmul" in mlir and "tensor<256x32xf32>" not in mlir


def test_dynamic_dims_need_binding():
    model = make([helper.make_node("Relu", ["x"], ["y"])], [vi("x", ["batch", 8])],
                 [vi("y", None)], opset=17)
    with pytest.raises(RuntimeError, match="dynamic dimension 'batch'; bind it with --shape x="):
        compile_onnx(model)
    mlir, _ = compile_onnx(model, ["--shape", "x=3x8"])
    assert "tensor<3x8xf32>" in mlir


def test_unsupported_ops_listed_together():
    nodes = [helper.make_node("Relu", ["x"], ["a"], name="ok"),
             helper.make_node("Celu", ["a"], ["b"], name="first_bad"),
             helper.make_node("Hardmax", ["b"], ["y"], name="second_bad")]
    model = make(nodes, [vi("x", [2, 2])], [vi("y", None)], opset=17)
    with pytest.raises(RuntimeError) as e:
        compile_onnx(model)
    msg = str(e.value)
    assert "2 node(s) use unsupported ops" in msg
    assert "(ai.onnx, Celu, 17) at node 'first_bad'" in msg
    assert "(ai.onnx, Hardmax, 17) at node 'second_bad'" in msg


def test_bad_files():
    with tempfile.TemporaryDirectory() as d:
        garbage = os.path.join(d, "g.onnx")
        open(garbage, "wb").write(b"\x08\x07garbage that is not protobuf \xff\xff\xff")
        proc = subprocess.run([tool("qslaw-compile"), garbage, "-o", os.path.join(d, "o")],
                              capture_output=True, text=True)
        assert proc.returncode != 0 and "not a valid ONNX model" in proc.stderr
        # Initializer whose raw data disagrees with its shape.
        t = numpy_helper.from_array(np.zeros((4, 4), np.float32), "w")
        t.raw_data = t.raw_data[:20]
        model = make([helper.make_node("MatMul", ["x", "w"], ["y"])], [vi("x", [1, 4])],
                     [vi("y", None)], [t])
        path = os.path.join(d, "bad.onnx")
        onnx.save(model, path)
        proc = subprocess.run([tool("qslaw-compile"), path, "-o", os.path.join(d, "o")],
                              capture_output=True, text=True)
        assert proc.returncode != 0
        assert "initializer 'w': raw_data holds 20 bytes" in proc.stderr
        # Unknown opset.
        model = make([helper.make_node("Relu", ["x"], ["y"])], [vi("x", [2])], [vi("y", None)], opset=11)
        onnx.save(model, path)
        proc = subprocess.run([tool("qslaw-compile"), path, "-o", os.path.join(d, "o")],
                              capture_output=True, text=True)
        assert proc.returncode != 0 and "unsupported default opset 11" in proc.stderr


def test_external_data_and_missing_file():
    rng = np.random.default_rng(4)
    w = rng.standard_normal((64, 16)).astype(np.float32)
    model = make([helper.make_node("MatMul", ["x", "w"], ["y"])], [vi("x", [2, 64])],
                 [vi("y", None)], [numpy_helper.from_array(w, "w")])
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "ext.onnx")
        onnx.save(model, path, save_as_external_data=True, all_tensors_to_one_file=True,
                  location="weights.bin", size_threshold=0)
        out = os.path.join(d, "o.mlir")
        subprocess.run([tool("qslaw-compile"), path, "-o", out, "--emit=mlir"], check=True, capture_output=True)
        x = rng.standard_normal((2, 64)).astype(np.float32)
        (y,) = run_mlir(open(out).read(), [x], entry="forward")
        np.testing.assert_allclose(y, x @ w, rtol=1e-5, atol=1e-5)
        os.remove(os.path.join(d, "weights.bin"))
        proc = subprocess.run([tool("qslaw-compile"), path, "-o", out], capture_output=True, text=True)
        assert proc.returncode != 0
        assert "initializer 'w': cannot read external data file" in proc.stderr
        assert "weights.bin" in proc.stderr


def test_decoder_pieces():
    """Embedding gather, causal mask (Trilu/Where/Equal), RoPE-style
    Slice/Concat/Neg/Cos/Sin, Expand, Range, ConstantOfShape, RMS and layer
    norms, Squeeze/Unsqueeze/Shape/Cast/Max/Min/Less/Greater."""
    rng = np.random.default_rng(7)
    V, H, S = 20, 8, 6
    emb = numpy_helper.from_array(rng.standard_normal((V, H)).astype(np.float32), "emb")
    g = numpy_helper.from_array((rng.random(H) + 0.5).astype(np.float32), "g")
    beta = numpy_helper.from_array(rng.standard_normal(H).astype(np.float32), "beta")
    I = lambda name, v: numpy_helper.from_array(np.array(v, np.int64), name)  # noqa: E731
    F = lambda name, v: numpy_helper.from_array(np.array(v, np.float32), name)  # noqa: E731
    inits = [emb, g, beta, I("zero", 0), I("seq", S), I("one", 1), I("half", H // 2),
             I("end", H), I("ax0", [0]), I("ax1", [1]), I("shape_ss", [S, S]), F("neginf", -1e9),
             I("exp_shape", [1, S, H]), F("two", 2.0)]
    nodes = [
        helper.make_node("Gather", ["emb", "ids"], ["h"]),                       # [1,S,H]
        helper.make_node("SimplifiedLayerNormalization", ["h", "g"], ["hn"], axis=-1, epsilon=1e-6),
        helper.make_node("Slice", ["hn", "zero", "half", "two_ax"], ["x1"]),
        helper.make_node("Slice", ["hn", "half", "end", "two_ax"], ["x2"]),
        helper.make_node("Neg", ["x2"], ["nx2"]),
        helper.make_node("Concat", ["nx2", "x1"], ["rot"], axis=-1),
        helper.make_node("Range", ["zero", "seq", "one"], ["pos"]),
        helper.make_node("Cast", ["pos"], ["posf"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["posf", "ax1"], ["posc"]),                # [S,1]
        helper.make_node("Cos", ["posc"], ["c"]),
        helper.make_node("Sin", ["posc"], ["s"]),
        helper.make_node("Mul", ["hn", "c"], ["a"]),
        helper.make_node("Mul", ["rot", "s"], ["b"]),
        helper.make_node("Add", ["a", "b"], ["roped"]),
        helper.make_node("ConstantOfShape", ["shape_ss"], ["ones"],
                         value=helper.make_tensor("v", TensorProto.FLOAT, [1], [1.0])),
        helper.make_node("Trilu", ["ones"], ["tri"], upper=0),
        helper.make_node("Equal", ["tri", "zerof"], ["masked"]),
        helper.make_node("Where", ["masked", "neginf", "zerof"], ["mask"]),       # [S,S]
        helper.make_node("MatMul", ["mask", "roped"], ["mixed"]),                 # [1,S,H]
        helper.make_node("Max", ["mixed", "lo"], ["clipped_lo"]),
        helper.make_node("Min", ["clipped_lo", "hi"], ["clipped"]),
        helper.make_node("LayerNormalization", ["clipped", "g", "beta"], ["ln"], axis=-1),
        helper.make_node("Expand", ["ln", "exp_shape"], ["ex"]),
        helper.make_node("Squeeze", ["ex", "ax0"], ["sq"]),
        helper.make_node("Less", ["sq", "zerof"], ["neg"]),
        helper.make_node("Greater", ["sq", "zerof"], ["pos_mask"]),
        helper.make_node("Where", ["neg", "sq", "zerof"], ["y"]),
        helper.make_node("Cast", ["pos_mask"], ["y2"], to=TensorProto.FLOAT),
        helper.make_node("Shape", ["sq"], ["y3"]),
    ]
    inits += [I("two_ax", [2]), F("zerof", 0.0), F("lo", -1e4), F("hi", 1e4)]
    model = make(nodes, [vi("ids", [1, S], TensorProto.INT64)],
                 [vi("y", None), vi("y2", None), vi("y3", None, TensorProto.INT64)], inits, opset=17)
    ids = rng.integers(0, V, (1, S)).astype(np.int64)
    ids[0, 0] = -1  # negative index counts from the end
    check(model, {"ids": ids})


def test_shape_chain_folds():
    """torch.onnx-style shape arithmetic (Shape -> Gather -> Mul -> Unsqueeze
    -> Concat -> Reshape, Equal/Where on shapes) folds at import; the
    compiled IR has no shape computations left."""
    I = lambda name, v: numpy_helper.from_array(np.array(v, np.int64), name)  # noqa: E731
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Gather", ["s", "i0"], ["d0"], axis=0),
             helper.make_node("Gather", ["s", "i1"], ["d1"], axis=0),
             helper.make_node("Gather", ["s", "i2"], ["d2"], axis=0),
             helper.make_node("Mul", ["d1", "d2"], ["d12"]),
             helper.make_node("Unsqueeze", ["d0", "ax0"], ["u0"]),
             helper.make_node("Unsqueeze", ["d12", "ax0"], ["u1"]),
             helper.make_node("Concat", ["u0", "u1"], ["shape"], axis=0),
             helper.make_node("Equal", ["shape", "minus1"], ["is_neg"]),
             helper.make_node("Where", ["is_neg", "ones", "shape"], ["shape2"]),
             helper.make_node("Slice", ["shape2", "st", "en"], ["shape3"]),
             helper.make_node("Concat", ["shape3", "last"], ["shape4"], axis=0),
             helper.make_node("Reshape", ["x", "shape4"], ["y"])]
    inits = [I("i0", 0), I("i1", 1), I("i2", 2), I("ax0", [0]), I("minus1", [-1, -1]),
             I("ones", [1, 1]), I("st", [0]), I("en", [2]), I("last", [1])]
    model = make(nodes, [vi("x", [2, 3, 4])], [vi("y", None)], inits, opset=17)
    mlir, _ = compile_onnx(model)
    assert "linalg.generic" not in mlir and "tensor<2x12x1xf32>" in mlir
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    check(model, {"x": x})


def _int4_tensor(name, arr, signed):
    flat = (arr.reshape(-1).astype(np.int64) & 0xF).astype(np.uint8)
    if len(flat) % 2:
        flat = np.concatenate([flat, np.zeros(1, np.uint8)])
    packed = (flat[0::2] | (flat[1::2] << 4)).astype(np.uint8)
    return helper.make_tensor(name, TensorProto.INT4 if signed else TensorProto.UINT4,
                              arr.shape, packed.tobytes(), raw=True)


@pytest.mark.parametrize("signed,with_zp,k,bs", [(False, True, 64, 32), (True, True, 80, 32),
                                                 (True, False, 64, 16)])
def test_dequantizelinear_blockwise_to_qmatmul(signed, with_zp, k, bs):
    rng = np.random.default_rng(k + bs + signed)
    n, kb = 24, -(-k // bs)
    lo, hi = (-8, 8) if signed else (0, 16)
    q = rng.integers(lo, hi, (k, n))
    s = (rng.random((kb, n)) * 0.1 + 0.01).astype(np.float32)
    inits = [_int4_tensor("q", q, signed), numpy_helper.from_array(s, "s")]
    ins = ["q", "s"]
    if with_zp:
        inits.append(_int4_tensor("z", rng.integers(lo, hi, (kb, n)), signed))
        ins.append("z")
    nodes = [helper.make_node("DequantizeLinear", ins, ["w"], axis=0, block_size=bs),
             helper.make_node("MatMul", ["x", "w"], ["y"])]
    model = make(nodes, [vi("x", [3, k])], [vi("y", None)], inits, opset=21)
    model.ir_version = 10
    mlir, _ = compile_onnx(model)
    assert "qslaw.qmatmul" in mlir and "qslaw.dequantize" not in mlir
    x = rng.standard_normal((3, k)).astype(np.float32)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    want = ort.InferenceSession(model.SerializeToString(), so,
                                providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    (got,) = run_mlir(mlir, [x], entry="forward")
    np.testing.assert_allclose(got, want, atol=1e-5 * np.abs(want).max(), rtol=0)


def test_dequantizelinear_unsupported_form_is_an_error():
    q = numpy_helper.from_array(np.zeros((4, 4, 4), np.uint8), "q")
    s = numpy_helper.from_array(np.ones(4, np.float32), "s")
    nodes = [helper.make_node("DequantizeLinear", ["q", "s"], ["w"], axis=1, name="dq")]
    model = make(nodes, [vi("x", [1])], [vi("w", None)], [q, s], opset=21)
    with pytest.raises(RuntimeError, match="node 'dq' .*supported: 2-D int4/uint4/int8/uint8"):
        compile_onnx(model)


@pytest.mark.parametrize("field,value,message", [
    # The slice runs past the end of the file: large slices used to be
    # mapped unchecked (SIGBUS at first touch), small ones read back zeros.
    ("offset", "1000000", "external data [1000000, 1004096) runs past the end of"),
    ("offset", "64", "external data [64, 4160) runs past the end of"),
    ("offset", "abc", "external data 'offset' is not a non-negative integer: 'abc'"),
    ("offset", "-8", "external data 'offset' is not a non-negative integer: '-8'"),
    ("length", "12x", "external data 'length' is not a non-negative integer: '12x'"),
    ("length", "4000", "external data 'length' is 4000 bytes, shape and type need 4096"),
])
def test_bad_external_data_is_named(field, value, message):
    """Each a clear error naming the initializer and the field, exit 1, no
    signal, no output file."""
    w = np.ones((64, 16), np.float32)  # 4096 bytes
    model = make([helper.make_node("MatMul", ["x", "w"], ["y"])], [vi("x", [2, 64])],
                 [vi("y", None)], [numpy_helper.from_array(w, "w")])
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "ext.onnx")
        onnx.save(model, path, save_as_external_data=True, all_tensors_to_one_file=True,
                  location="weights.bin", size_threshold=0)
        m = onnx.load(path, load_external_data=False)
        entries = {e.key: e for e in m.graph.initializer[0].external_data}
        if field in entries:
            entries[field].value = value
        else:
            m.graph.initializer[0].external_data.add(key=field, value=value)
        onnx.save(m, path)
        out = os.path.join(d, "o.so")
        proc = subprocess.run([tool("qslaw-compile"), path, "-o", out],
                              capture_output=True, text=True)
        assert proc.returncode == 1, (proc.returncode, proc.stderr)
        assert "initializer 'w': " + message in proc.stderr, proc.stderr
        assert not os.path.exists(out)
