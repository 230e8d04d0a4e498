"""Malformed ONNX nodes and tensors are errors naming the file, node and op,
never a crash (issue 18, hole 6). Each case mutates one small valid model
(qslaw_tools.small_models) and imports it with qslaw-compile: the exit must
be 0 (the mutation was still valid ONNX) or 1 with an error, never a signal.
The cases the importer must refuse are checked for their messages."""
import os
import subprocess

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from qslaw_tools.runner import tool
from qslaw_tools.small_models import small_models

MODELS = small_models()


def compile_(tmp_path, m, name="m"):
    path = tmp_path / f"{name}.onnx"
    path.write_bytes(m.SerializeToString() if hasattr(m, "SerializeToString") else m)
    return subprocess.run([tool("qslaw-compile"), str(path), "--emit=onnx-mlir",
                           "-o", str(tmp_path / f"{name}.mlir")],
                          capture_output=True, text=True, timeout=120)


def mutations(model):
    """(description, mutated model) for every node and initializer."""
    for i, node in enumerate(model.graph.node):
        def variant(fn, what):
            m = onnx.ModelProto()
            m.CopyFrom(model)
            fn(m.graph.node[i])
            return f"node {i} ({node.op_type}): {what}", m
        if len(node.input):
            yield variant(lambda n: n.input.pop(), "last input dropped")
            yield variant(lambda n: n.input.__setitem__(0, ""), "input 0 empty")
            yield variant(lambda n: n.input.__setitem__(0, "nowhere"), "input 0 undefined")
        yield variant(lambda n: n.ClearField("output"), "no outputs")
        yield variant(lambda n: n.input.append("x"), "an extra input")
        for a, attr in enumerate(node.attribute):
            for v in (1000, -1000, 2**62):
                if attr.type == onnx.AttributeProto.INT:
                    yield variant(lambda n, a=a, v=v: setattr(n.attribute[a], "i", v),
                                  f"attribute {attr.name} = {v}")
                if attr.type == onnx.AttributeProto.INTS:
                    yield variant(lambda n, a=a, v=v: n.attribute[a].ints.__setitem__(0, v),
                                  f"attribute {attr.name}[0] = {v}")
            yield variant(lambda n, a=a: (setattr(n.attribute[a], "type", onnx.AttributeProto.FLOAT),
                                          setattr(n.attribute[a], "f", 1.5)),
                          f"attribute {attr.name} of the wrong type")
    for k, init in enumerate(model.graph.initializer):
        a = numpy_helper.to_array(init)
        def ivariant(values, what):
            m = onnx.ModelProto()
            m.CopyFrom(model)
            m.graph.initializer[k].CopyFrom(numpy_helper.from_array(values, init.name))
            return f"initializer {init.name}: {what}", m
        if a.dtype == np.int64 and a.size:
            for v in (-5, -1000, 2**62, -2**63):
                b = a.copy()
                b.flat[0] = v
                yield ivariant(b, f"[0] = {v}")
            yield ivariant(np.full_like(a, -1), "all -1")
        m = onnx.ModelProto()
        m.CopyFrom(model)
        del m.graph.initializer[k].dims[:]
        m.graph.initializer[k].dims.extend([2**40, 2**40])
        yield f"initializer {init.name}: dims 2^40 x 2^40", m


CASES = [(name, desc, m) for name, data in sorted(MODELS.items())
         for desc, m in mutations(onnx.load_from_string(data))]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_mutations_never_crash(tmp_path, name):
    bad = []
    for model_name, desc, m in CASES:
        if model_name != name:
            continue
        p = compile_(tmp_path, m)
        if p.returncode not in (0, 1) or (p.returncode == 1 and "error:" not in p.stderr):
            bad.append(f"{desc}: exit {p.returncode}: {p.stderr[-600:]}")
    assert not bad, "\n".join(bad)


def with_node(name, fn):
    m = onnx.load_from_string(MODELS[name])
    fn(m.graph.node[0])
    return m


@pytest.mark.parametrize("name,fn,expect", [
    ("concat", lambda n: n.input.__setitem__(0, ""),
     "(Concat, opset 17): required input 0 ('inputs') is empty"),
    ("matmul_add", lambda n: n.input.pop(), "(MatMul, opset 17): 1 inputs, ONNX's schema takes [2, 2]"),
    ("concat", lambda n: setattr(n.attribute[0], "i", 7),
     "(Concat, opset 17): attribute 'axis' 7 is out of range [-2, 2) for a rank-2 input"),
    ("softmax", lambda n: (setattr(n.attribute[0], "type", onnx.AttributeProto.FLOAT),
                           setattr(n.attribute[0], "f", 1.0)),
     "(Softmax, opset 17): attribute 'axis' is FLOAT, ONNX's schema says INT"),
    ("gather", lambda n: n.ClearField("output"), "node '' (Gather) has no output"),
    ("reshape_transpose", lambda n: None, None),
])
def test_named_errors(tmp_path, name, fn, expect):
    p = compile_(tmp_path, with_node(name, fn))
    if expect is None:
        assert p.returncode == 0, p.stderr
        return
    assert p.returncode == 1, p.stderr
    assert expect in p.stderr, p.stderr
    assert "m.onnx" in p.stderr


def with_initializer(name, init, fn):
    m = onnx.load_from_string(MODELS[name])
    t = next(i for i in m.graph.initializer if i.name == init)
    fn(t)
    return m


def test_overflowing_initializer_dims(tmp_path):
    """2^32 x 2^32 floats wrapped to 0 bytes, which empty raw_data matched."""
    def huge(t):
        del t.dims[:]
        t.dims.extend([2**32, 2**32])
        t.raw_data = b""
    p = compile_(tmp_path, with_initializer("matmul_add", "w", huge))
    assert p.returncode == 1, p.stderr
    assert "initializer 'w': its dimensions' product overflows 64 bits" in p.stderr


def test_negative_expanded_shape(tmp_path):
    def neg(t):
        t.CopyFrom(numpy_helper.from_array(np.array([-5, 3], np.int64), t.name))
    p = compile_(tmp_path, with_initializer("unsqueeze_expand", "es", neg))
    assert p.returncode == 1, p.stderr
    assert "(Expand, opset 17): gives a result of shape [-5, 3]: negative or " \
           "overflowing dimensions" in p.stderr, p.stderr


def test_operand_shapes_that_do_not_fit(tmp_path):
    """A LayerNormalization scale of the wrong length made invalid IR that
    was written out (found by fuzz_onnx_import); now the node is named."""
    def longer(t):
        t.CopyFrom(numpy_helper.from_array(np.ones(5, np.float32), t.name))
    p = compile_(tmp_path, with_initializer("layernorm", "s", longer))
    assert p.returncode == 1, p.stderr
    assert "(LayerNormalization, opset 17): its inputs' shapes or types do not " \
           "fit the op" in p.stderr, p.stderr
    assert not (tmp_path / "m.mlir").exists()


def test_names_are_defined_once(tmp_path):
    m = onnx.load_from_string(MODELS["softmax"])
    m.graph.input.append(m.graph.input[0])
    p = compile_(tmp_path, m)
    assert p.returncode == 1 and "graph input 'x' is declared twice" in p.stderr, p.stderr
    m = onnx.load_from_string(MODELS["matmul_add"])
    m.graph.node[1].output[0] = "t"
    p = compile_(tmp_path, m)
    assert p.returncode == 1, p.stderr
    assert "(Add, opset 17): output 't' is already defined" in p.stderr, p.stderr


def test_inputs_that_do_not_broadcast(tmp_path):
    def rank3(t):
        t.CopyFrom(numpy_helper.from_array(np.ones((3, 2, 2), np.float32), t.name))
    p = compile_(tmp_path, with_initializer("layernorm", "bb", rank3))
    assert p.returncode == 1, p.stderr
    assert "an input of type 'tensor<3x2x2xf32>' does not broadcast to the result " \
           "shape [2, 3]" in p.stderr, p.stderr
    assert "(LayerNormalization, opset 17): its inputs' shapes or types do not fit" in p.stderr
