"""Gradient accumulation in the trainer (--accumulation-steps=k): k
micro-batches of the compiled batch B make one optimizer step of k*B
samples. Checked against a trainer compiled at batch k*B on the same
weights (the fixture re-exported): the same samples per step (text
fraction, tokens), losses of 20 steps within 1e-5 relative and the learned
tensors within 1e-4 (f32: the sums run in another order); SIGKILL in the
middle of a run with accumulation and --resume reproduce the uninterrupted
run bit for bit; bad values are named errors."""
import json
import os
import signal
import subprocess
import time

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from qslaw_tools.make_fixtures import export_with_batch  # noqa: E402
from qslaw_tools.runner import ROOT, tool  # noqa: E402

FIX = os.path.join(ROOT, "test", "fixtures")
DATA = os.path.join(FIX, "train", "records.jsonl")
LAYERS = r".*language_model.*layers.*"
K = 3


def compile_trainer(model, out):
    subprocess.run([tool("qslaw-compile"), model, "--quantize=w4g32",
                    f"--quantize-layers={LAYERS}", "--emit=trainer", "-o", str(out)],
                   check=True, capture_output=True)
    return str(out)


@pytest.fixture(scope="module")
def trainers(tmp_path_factory):
    d = tmp_path_factory.mktemp("accum")
    big = export_with_batch(os.path.join(FIX, "tiny_llava.onnx"), 4, K,
                            str(d / f"tiny_llava_b{K}.onnx"))
    return (compile_trainer(os.path.join(FIX, "tiny_llava.onnx"), d / "b1"),
            compile_trainer(big, d / f"b{K}"))


def train(trainer, out, *args):
    p = subprocess.run([trainer, f"--data={DATA}", f"--out={out}", "--quiet",
                        "--preset=mix", "--seed=5", "--lr=1e-2", *args],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    with open(os.path.join(out, "metrics.jsonl")) as f:
        recs = [json.loads(line) for line in f]
    for r in recs:
        r.pop("tokens_per_s")
    return recs


def learned(d):
    manifest = json.load(open(os.path.join(d, "params.json")))
    return [np.load(os.path.join(d, p["file"])) for p in manifest["params"]]


def test_k_micro_batches_equal_one_k_times_larger_batch(trainers, tmp_path):
    small, big = trainers
    acc = train(small, tmp_path / "acc", "--steps=20", f"--accumulation-steps={K}",
                f"--export-params={tmp_path}/acc/export")
    one = train(big, tmp_path / "big", "--steps=20",
                f"--export-params={tmp_path}/big/export")
    for a, b in zip(acc, one):
        assert (a["text_samples"], a["tokens"], a["text_fraction"]) == \
            (b["text_samples"], b["tokens"], b["text_fraction"])
        assert not a["skipped"] and not b["skipped"]
    assert any(0 < r["text_samples"] < K for r in acc)  # mixed global batches
    np.testing.assert_allclose([r["loss"] for r in acc], [r["loss"] for r in one],
                               rtol=1e-5)
    np.testing.assert_allclose([r["grad_norm"] for r in acc],
                               [r["grad_norm"] for r in one], rtol=1e-4)
    for x, y in zip(learned(f"{tmp_path}/acc/export"), learned(f"{tmp_path}/big/export")):
        np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-6)


def test_accumulation_one_is_the_plain_step(trainers, tmp_path):
    small, _ = trainers
    assert train(small, tmp_path / "a", "--steps=5") == \
        train(small, tmp_path / "b", "--steps=5", "--accumulation-steps=1")


def test_sigkill_mid_accumulation_then_resume_is_exact(trainers, tmp_path):
    small, _ = trainers
    full, cut = tmp_path / "full", tmp_path / "cut"
    args = ["--steps=200", "--checkpoint-every=3", f"--accumulation-steps={K}"]
    ref = train(small, full, *args)
    proc = subprocess.Popen([small, f"--data={DATA}", f"--out={cut}", "--quiet",
                             "--preset=mix", "--seed=5", "--lr=1e-2", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    metrics = cut / "metrics.jsonl"
    deadline = time.time() + 60
    while time.time() < deadline and not ((cut / "checkpoint.bin").exists() and
                                          metrics.exists() and
                                          len(metrics.read_text().splitlines()) >= 7):
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    done = len(metrics.read_text().splitlines())
    assert 7 <= done < 200, done
    resumed = train(small, cut, *args, "--resume")
    assert resumed == ref
    assert (cut / "checkpoint.bin").read_bytes() == (full / "checkpoint.bin").read_bytes()


@pytest.mark.parametrize("value", ["0", "-2"])
def test_bad_accumulation(trainers, tmp_path, value):
    small, _ = trainers
    p = subprocess.run([small, f"--data={DATA}", f"--out={tmp_path}/o", "--steps=3",
                        f"--accumulation-steps={value}"], capture_output=True, text=True)
    assert p.returncode == 1
    assert f"--accumulation-steps={value}: must be >= 1" in p.stderr
    assert not (tmp_path / "o").exists()
