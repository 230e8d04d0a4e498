"""Stores a model's float weights as bf16 or f16, read through Cast nodes:
how an exported half-precision checkpoint computing in f32 looks in ONNX.
Each FLOAT initializer of at least 1024 elements keeps its name with the
narrow type, and a Cast(to=FLOAT) named '<name>__f32' feeds its readers.

    .venv/bin/python -m qslaw_tools.narrow_weights IN.onnx OUT.onnx [--dtype bf16|f16]
        [--external]     # weights in OUT.onnx.data (needed over 2 GB)

Rounding is to nearest even, as torch's .to(torch.bfloat16) does.
"""
import argparse
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

MIN_ELEMENTS = 1024


def to_bf16_bits(a):
    """f32 array -> uint16 bf16 bit patterns (round to nearest even)."""
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def bf16_to_f32(bits):
    return (bits.astype(np.uint32) << 16).view(np.float32)


def narrow_model(model, dtype="bf16"):
    """Rewrites `model` (an onnx.ModelProto with its data loaded) in place."""
    g = model.graph
    casts, renamed = [], {}
    for t in g.initializer:
        if t.data_type != TensorProto.FLOAT or int(np.prod(t.dims)) < MIN_ELEMENTS:
            continue
        a = numpy_helper.to_array(t)
        if dtype == "bf16":
            bits = to_bf16_bits(a)
            t.data_type = TensorProto.BFLOAT16
        else:
            bits = a.astype(np.float16).view(np.uint16)
            t.data_type = TensorProto.FLOAT16
        t.ClearField("float_data")
        t.raw_data = bits.tobytes()
        wide = t.name + "__f32"
        renamed[t.name] = wide
        casts.append(helper.make_node("Cast", [t.name], [wide], to=TensorProto.FLOAT,
                                      name=t.name + "__cast"))
    for n in g.node:
        for i, x in enumerate(n.input):
            if x in renamed:
                n.input[i] = renamed[x]
    nodes = casts + list(g.node)
    del g.node[:]
    g.node.extend(nodes)
    return model


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("src")
    p.add_argument("dst")
    p.add_argument("--dtype", choices=("bf16", "f16"), default="bf16")
    p.add_argument("--external", action="store_true")
    a = p.parse_args()
    model = narrow_model(onnx.load(a.src, load_external_data=True), a.dtype)
    if a.external:
        if os.path.exists(a.dst + ".data"):
            os.remove(a.dst + ".data")
        onnx.save_model(model, a.dst, save_as_external_data=True,
                        all_tensors_to_one_file=True,
                        location=os.path.basename(a.dst) + ".data", size_threshold=1024)
    else:
        onnx.save(model, a.dst)
    print(a.dst)


if __name__ == "__main__":
    main()
