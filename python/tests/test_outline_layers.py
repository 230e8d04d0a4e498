"""qslaw-compile --outline-layers (qslaw-outline-layers, the default): each
decoder layer is lowered as a function of its own and identical layers
share one. The pass runs after elementwise fusion, so the outlined build
computes exactly what the inline build (--outline-layers=false) computes:
forward outputs, loss and every gradient are equal bit for bit. In gamma
mode too, where a layer's forward quantizes its weights and its backward
reads the codes again."""
import os
import re
import subprocess

import numpy as np
import pytest

from qslaw_tools.runner import ROOT, tool
from qslaw_tools.runtime import Model

FIX = os.path.join(ROOT, "test", "fixtures", "tiny_llava")
LAYERS = ".*language_model.*layers.*"


def build(tmp_path, outline, quantize):
    out = str(tmp_path / f"train_{outline}.so")
    subprocess.run([tool("qslaw-compile"), FIX + ".onnx", f"--quantize={quantize}",
                    f"--quantize-layers={LAYERS}", "--train", "-o", out,
                    f"--outline-layers={outline}"], check=True, capture_output=True,
                   text=True)
    return Model(out)


def feeds():
    f = {k: np.load(f"{FIX}.{k}.npy")
         for k in ("input_ids", "pixel_values", "attention_mask")}
    return f


def layer_functions(lib):
    syms = subprocess.run(["nm", lib], check=True, capture_output=True, text=True).stdout
    return {line.split()[-1] for line in syms.splitlines()
            if re.search(r"__layer\d+$", line.split()[-1])}


@pytest.mark.parametrize("quantize", ["w4g32", "w4g32,mode=gamma"])
def test_outlined_layers_compute_the_same_step(tmp_path, quantize):
    outlined, inline = build(tmp_path, "true", quantize), build(tmp_path, "false", quantize)
    # Layers are functions in the one build and not in the other.
    outlined_fns = layer_functions(str(tmp_path / "train_true.so"))
    assert any(f.startswith("forward_params__layer") for f in outlined_fns), outlined_fns
    assert any(f.startswith("grad_step__layer") for f in outlined_fns), outlined_fns
    assert not layer_functions(str(tmp_path / "train_false.so"))
    (a,) = outlined.run(**feeds())
    (b,) = inline.run(**feeds())
    assert np.array_equal(a, b)

    results = []
    for m in (outlined, inline):
        params = m.signature.training.params
        init = m.run_function("init_params", {})
        f = {p.name: v for p, v in zip(params, init)}
        inputs = feeds()
        f.update(inputs, labels=inputs["input_ids"].copy())
        results.append(m.run_function("grad_step", f))
    (loss_a, *grads_a), (loss_b, *grads_b) = results
    assert np.array_equal(loss_a, loss_b)
    assert len(grads_a) == len(grads_b) > 0
    for p, ga, gb in zip(outlined.signature.training.params, grads_a, grads_b):
        assert np.array_equal(ga, gb), p.name
