"""Small ONNX models, one or a few ops each: the ONNX fuzz harness's seeds
(fuzz/make_seeds.py) and the base of the malformed-node tests."""
import numpy as np
from onnx import TensorProto, helper, numpy_helper


def model(nodes, inputs, outputs, inits=(), opset=17, domains=()):
    g = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    ops = [helper.make_opsetid("", opset)] + [helper.make_opsetid(d, 1) for d in domains]
    m = helper.make_model(g, opset_imports=ops)
    m.ir_version = 8
    return m.SerializeToString()


def vi(name, dtype, shape):
    return helper.make_tensor_value_info(name, dtype, shape)


def small_models():
    """name -> serialized ModelProto."""
    F, I = TensorProto.FLOAT, TensorProto.INT64
    r = np.random.default_rng(0)
    w = numpy_helper.from_array(r.standard_normal((4, 3)).astype(np.float32), "w")
    b = numpy_helper.from_array(np.ones(3, np.float32), "b")
    emb = numpy_helper.from_array(r.standard_normal((10, 4)).astype(np.float32), "emb")
    shape = numpy_helper.from_array(np.array([2, 6], np.int64), "shape")
    axes = numpy_helper.from_array(np.array([0], np.int64), "axes")
    seeds = {
        "matmul_add": model([helper.make_node("MatMul", ["x", "w"], ["t"]),
                             helper.make_node("Add", ["t", "b"], ["y"])],
                            [vi("x", F, [2, 4])], [vi("y", F, [2, 3])], [w, b]),
        "gather": model([helper.make_node("Gather", ["emb", "ids"], ["y"], axis=0)],
                        [vi("ids", I, [1, 3])], [vi("y", F, [1, 3, 4])], [emb]),
        "concat": model([helper.make_node("Concat", ["x", "x"], ["y"], axis=1)],
                        [vi("x", F, [2, 4])], [vi("y", F, [2, 8])]),
        "reshape_transpose": model(
            [helper.make_node("Reshape", ["x", "shape"], ["t"]),
             helper.make_node("Transpose", ["t"], ["y"], perm=[1, 0])],
            [vi("x", F, [3, 4])], [vi("y", F, [6, 2])], [shape]),
        "softmax": model([helper.make_node("Softmax", ["x"], ["y"], axis=-1)],
                         [vi("x", F, [2, 4])], [vi("y", F, [2, 4])]),
        "layernorm": model(
            [helper.make_node("LayerNormalization", ["x", "s", "bb"], ["y"], axis=-1)],
            [vi("x", F, [2, 3])], [vi("y", F, [2, 3])],
            [numpy_helper.from_array(np.ones(3, np.float32), "s"),
             numpy_helper.from_array(np.zeros(3, np.float32), "bb")]),
        "slice": model(
            [helper.make_node("Slice", ["x", "st", "en", "axes"], ["y"])],
            [vi("x", F, [4, 4])], [vi("y", F, [2, 4])],
            [numpy_helper.from_array(np.array([1], np.int64), "st"),
             numpy_helper.from_array(np.array([3], np.int64), "en"), axes]),
        "unsqueeze_expand": model(
            [helper.make_node("Unsqueeze", ["x", "axes"], ["t"]),
             helper.make_node("Expand", ["t", "es"], ["y"])],
            [vi("x", F, [3])], [vi("y", F, [2, 3])],
            [axes, numpy_helper.from_array(np.array([2, 3], np.int64), "es")]),
        "where_equal": model(
            [helper.make_node("Equal", ["ids", "k"], ["m"]),
             helper.make_node("Cast", ["m"], ["y"], to=F)],
            [vi("ids", I, [1, 3])], [vi("y", F, [1, 3])],
            [numpy_helper.from_array(np.array(2, np.int64), "k")]),
        "reduce_pow": model(
            [helper.make_node("Pow", ["x", "two"], ["p"]),
             helper.make_node("ReduceMean", ["p"], ["m"], axes=[0], keepdims=1),
             helper.make_node("Sqrt", ["m"], ["y"])],
            [vi("x", F, [2, 3])], [vi("y", F, [1, 3])],
            [numpy_helper.from_array(np.array(2.0, np.float32), "two")]),
        "conv": model(
            [helper.make_node("Conv", ["x", "k"], ["y"], strides=[2, 2])],
            [vi("x", F, [1, 1, 4, 4])], [vi("y", F, [1, 2, 2, 2])],
            [numpy_helper.from_array(np.ones((2, 1, 2, 2), np.float32), "k")]),
        "range_cumsum": model(
            [helper.make_node("CumSum", ["x", "ax"], ["y"])],
            [vi("x", F, [2, 3])], [vi("y", F, [2, 3])],
            [numpy_helper.from_array(np.array(1, np.int64), "ax")]),
        "dynamic_input": model([helper.make_node("Gather", ["emb", "input_ids"], ["y"])],
                               [vi("input_ids", I, ["batch", "seq"])],
                               [vi("y", F, ["batch", "seq", 4])], [emb]),
    }
    return seeds
