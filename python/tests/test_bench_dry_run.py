"""bench/train_step_cuda.py's own code (resident steps, timing, report) on a
CPU-compiled training library: the GPU run should not be where its bugs are
found. The first losses of both sides agree (the same step as
test_train_step_torch.py checks)."""
import json
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
    """Both variants the GPU run times (generated kernels, hand-written
    kernels), as emulated CUDA libraries, through the script's --artifacts
    entry point."""
    for variant, name in train_step_cuda.VARIANTS.items():
        hand = ["--cuda-hand-kernels=bf16"] if variant == "hand" else []
        subprocess.run([tool("qslaw-compile"),
                        os.path.join(ROOT, "test", "fixtures", "tiny_llava.onnx"),
                        "--target=cuda-emulate", "--quantize=w4g32,mode=scale",
                        r"--quantize-layers=.*language_model.*layers.*", "--train",
                        "-o", str(tmp_path / name), *hand],
                       check=True, capture_output=True)
    out = str(tmp_path / "res.json")
    subprocess.run([sys.executable, os.path.join(ROOT, "bench", "train_step_cuda.py"),
                    "--artifacts", str(tmp_path), "--device", "cpu", "--rounds", "1",
                    "--reps", "2", "--out", out], check=True, capture_output=True)
    with open(out) as f:
        results = json.load(f)
    assert set(results) == {"generated", "hand"}
    for res in results.values():
        assert res["steps_each"] == 2 and res["qslaw_ms_median"] > 0
        assert res["first_loss"]["qslaw"] == pytest.approx(res["first_loss"]["torch"],
                                                           rel=1e-4)
