"""bench/train_step_cuda.py's own code (resident steps, timing, report) on a
CPU-compiled training library: the GPU run should not be where its bugs are
found. The first losses of both sides agree (the same step as
test_train_step_torch.py checks)."""
import os
import subprocess
import sys

import pytest

from qslaw_tools.runner import ROOT, tool

pytest.importorskip("torch")
pytest.importorskip("transformers")
sys.path.insert(0, os.path.join(ROOT, "bench"))
import train_step_cuda  # noqa: E402


def test_tiny_llava_train_step_bench_dry_run(tmp_path):
    lib = str(tmp_path / "train.so")
    subprocess.run([tool("qslaw-compile"), os.path.join(ROOT, "test", "fixtures", "tiny_llava.onnx"),
                    "--quantize=w4g32,mode=scale",
                    r"--quantize-layers=.*language_model.*layers.*", "--train", "-o", lib],
                   check=True, capture_output=True)
    out = str(tmp_path / "res.json")
    res = train_step_cuda.run(lib, device="cpu", rounds=2, reps=2, out=out)
    assert res["steps_each"] == 4 and res["qslaw_ms_median"] > 0
    assert res["first_loss"]["qslaw"] == pytest.approx(res["first_loss"]["torch"], rel=1e-4)
    assert os.path.exists(out)
