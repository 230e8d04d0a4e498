"""The LLaMA-7B-block benchmark's path (bench/llama_block.py), checked on the
CPU at a small shape: the same generator, ONNX export, qslaw-compile
invocation (training library, sum-squares loss, external weights) and
session-state driver as the H100 run, against the same PyTorch QSLAW
reference. Losses of four AdamW steps agree to 1e-5 relative (f32 sums of
4096 squares; measured 6e-7). cuda-emulate runs the CUDA pipeline's mapping;
its "hand" variant calls the hand-written kernels' entries (emulated by the
CPU microkernels in f32, hence the same tolerance).
"""
import os
import sys

import numpy as np
import pytest

from qslaw_tools.runner import ROOT
from qslaw_tools.runtime import Model

pytest.importorskip("torch")
pytest.importorskip("transformers")
sys.path.insert(0, os.path.join(ROOT, "bench"))
import llama_block as lb  # noqa: E402


@pytest.fixture(scope="module")
def reference_losses():
    return lb.torch_steps("small", 4)


@pytest.mark.parametrize("target,variant", [("cpu", "generated"),
                                            ("cuda-emulate", "generated"),
                                            ("cuda-emulate", "hand")])
def test_small_block_matches_torch_reference(tmp_path, target, variant, reference_losses):
    (lib,) = lb.prepare("small", str(tmp_path), target=target, variants=(variant,))
    ours = lb.qslaw_steps(Model(lib), "small", 4)
    np.testing.assert_allclose(ours, reference_losses, rtol=1e-5)
    assert ours[-1] < ours[0]


def test_weights_travel_compressed(tmp_path):
    (lib,) = lb.prepare("small", str(tmp_path), target="cpu")
    with open(lib + ".weights", "rb") as f:
        original = f.read()
    lb.compress(lib)
    assert not os.path.exists(lib + ".weights")
    lb.decompress(lib)
    with open(lib + ".weights", "rb") as f:
        assert f.read() == original
    Model(lib)  # the runtime accepts the restored file (size and hash)


def test_bench_dry_run_on_cpu(tmp_path):
    """The GPU benchmark's own code (both variants, steps, timing, report)
    on the CPU, with emulated CUDA libraries."""
    for lib in lb.prepare("small", str(tmp_path), target="cuda-emulate",
                          variants=("generated", "hand")):
        lb.compress(lib)
    out = str(tmp_path / "res.json")
    res = lb.bench("small", str(tmp_path), rounds=2, reps=2, out_json=out, device="cpu")
    assert set(res["variants"]) == {"generated", "hand"} and res["torch_ms"] > 0
    for r in res["variants"].values():
        assert r["steps_timed"] == 4 and r["qslaw_ms"] > 0 and r["speedup"] > 0
        assert r["first_loss"] == pytest.approx(res["torch_first_loss"], rel=1e-5)
    assert os.path.exists(out)
