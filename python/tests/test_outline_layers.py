"""qslaw-compile --outline-layers (qslaw-outline-layers): each decoder layer
is lowered as a function of its own and identical layers share one. The
forward computes exactly what the inline build computes (same ops, same
order); the gradients may differ in their last bits, because elementwise
fusion (and with it vectorisation and reduction order) stops at layer
boundaries: they agree to f32 rounding (observed 5e-7 relative; 1e-5
allows a few ulps over the tiny model's sums of up to 128 terms)."""
import os
import subprocess

import numpy as np

from qslaw_tools.runner import ROOT, tool
from qslaw_tools.runtime import Model

FIX = os.path.join(ROOT, "test", "fixtures", "tiny_llava")
LAYERS = ".*language_model.*layers.*"


def build(tmp_path, outline):
    out = str(tmp_path / f"train_{outline}.so")
    subprocess.run([tool("qslaw-compile"), FIX + ".onnx", "--quantize=w4g32",
                    f"--quantize-layers={LAYERS}", "--train", "-o", out,
                    f"--outline-layers={outline}"], check=True, capture_output=True,
                   text=True)
    return Model(out)


def feeds():
    f = {k: np.load(f"{FIX}.{k}.npy")
         for k in ("input_ids", "pixel_values", "attention_mask")}
    return f


def test_outlined_layers_compute_the_same_step(tmp_path):
    outlined, inline = build(tmp_path, "true"), build(tmp_path, "false")
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
    assert abs(float(loss_a) - float(loss_b)) <= 1e-6 * abs(float(loss_b))
    assert len(grads_a) == len(grads_b) > 0
    for ga, gb in zip(grads_a, grads_b):
        np.testing.assert_allclose(ga, gb, rtol=1e-5, atol=1e-5 * np.abs(gb).max())
