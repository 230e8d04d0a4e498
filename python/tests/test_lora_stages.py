"""The recipe's stages chained through qslaw: a scale-learning trainer
exports its tensors (--export-params), a LoRA-stage trainer is compiled from
them (--init-params: learned scales and projector carried over, frozen) and
trains only its adapters. Checked: the LoRA stage's model at step 0 (B = 0)
computes what the scale stage learned, bit for bit; a forward library
compiled with --init-params does too; the LoRA trainer learns; bad
--init-params are named errors."""
import json
import os
import subprocess

import numpy as np
import pytest

from qslaw_tools.runner import tool
from qslaw_tools.runtime import Model
from test_train_step_torch import FIX, LAYERS, batch

DATA = os.path.join(FIX, "train", "records.jsonl")
MODEL = os.path.join(FIX, "tiny_llava.onnx")
ADAPTED = r".*language_model.*layers.*(q_proj|v_proj).*"


def compile_(out, *args):
    return subprocess.run([tool("qslaw-compile"), MODEL, f"--quantize-layers={LAYERS}",
                           *args, "-o", str(out)], capture_output=True, text=True)


@pytest.fixture(scope="module")
def stage2(tmp_path_factory):
    """The scale-learning stage: 6 steps, its tensors exported."""
    d = tmp_path_factory.mktemp("stage2")
    r = compile_(d / "trainer", "--quantize=w4g32", "--emit=trainer")
    assert r.returncode == 0, r.stderr
    p = subprocess.run([str(d / "trainer"), f"--data={DATA}", "--steps=6",
                        f"--out={d}/run", "--quiet", "--lr=2e-2",
                        f"--export-params={d}/export"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    return d


def learned(export):
    manifest = json.load(open(os.path.join(export, "params.json")))
    return {p["name"]: np.load(os.path.join(export, p["file"]))
            for p in manifest["params"]}, manifest


def feeds(lib, values):
    ids, pix, mask, _ = batch("tiny_llava")
    f = {p.name: values[p.name] for p in lib.signature.training.params}
    f.update(input_ids=ids, pixel_values=pix, attention_mask=mask)
    return f


def test_lora_stage_starts_from_the_learned_scales(stage2, tmp_path):
    export = str(stage2 / "export")
    values, manifest = learned(export)
    assert {p["kind"] for p in manifest["params"]} == {"scale", "float"}
    # What the scale stage learned, run through its own --train library.
    r = compile_(tmp_path / "s2.so", "--quantize=w4g32", "--train")
    assert r.returncode == 0, r.stderr
    s2 = Model(str(tmp_path / "s2.so"))
    want = s2.run_function("forward_params", feeds(s2, values))[0]
    init_rtn = dict(zip([p.name for p in s2.signature.training.params],
                        s2.run_function("init_params", {})))
    before = s2.run_function("forward_params", feeds(s2, init_rtn))[0]
    assert np.abs(want - before).max() > 1e-4  # the stage learned something

    # The LoRA stage: scales and projector from stage 2, frozen; adapters train.
    r = compile_(tmp_path / "s3.so", "--quantize=w4g32", "--train",
                 f"--init-params={export}", "--train-scales=", "--train-params=",
                 f"--train-lora={ADAPTED}", "--lora-rank=4")
    assert r.returncode == 0, r.stderr
    assert f"loaded {len(manifest['params'])} learned tensor(s)" in r.stdout
    s3 = Model(str(tmp_path / "s3.so"))
    sig = s3.signature.training
    assert {p.kind for p in sig.params} == {"lora_A", "lora_B"}
    assert sig.init_params == export
    init = dict(zip([p.name for p in sig.params], s3.run_function("init_params", {})))
    got = s3.run_function("forward_params", feeds(s3, init))[0]
    np.testing.assert_array_equal(got, want)

    # A forward library with the learned tensors folded in: the same logits.
    r = compile_(tmp_path / "fwd.so", "--quantize=w4g32", f"--init-params={export}")
    assert r.returncode == 0, r.stderr
    ids, pix, mask, _ = batch("tiny_llava")
    fwd = Model(str(tmp_path / "fwd.so")).run(input_ids=ids, pixel_values=pix,
                                              attention_mask=mask)[0]
    np.testing.assert_allclose(fwd, want, rtol=0, atol=1e-5)


def test_lora_trainer_trains_adapters_only(stage2, tmp_path):
    export = str(stage2 / "export")
    r = compile_(tmp_path / "t3", "--quantize=w4g32", "--emit=trainer",
                 f"--init-params={export}", "--train-scales=", "--train-params=",
                 f"--train-lora={ADAPTED}", "--lora-rank=4", "--lora-alpha=8")
    assert r.returncode == 0, r.stderr
    p = subprocess.run([str(tmp_path / "t3"), f"--data={DATA}", "--steps=30",
                        f"--out={tmp_path}/run", "--quiet", "--lr-lora=1e-2",
                        "--preset=none", f"--export-params={tmp_path}/export"],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    m = [json.loads(line) for line in open(tmp_path / "run" / "metrics.jsonl")]
    assert m[0]["lr"] > 0 and all(not r["skipped"] for r in m)
    first, last = np.mean([r["loss"] for r in m[:5]]), np.mean([r["loss"] for r in m[-5:]])
    assert last < first, (first, last)
    values, manifest = learned(f"{tmp_path}/export")
    kinds = {p["kind"] for p in manifest["params"]}
    assert kinds == {"lora_A", "lora_B"}
    assert all(values[p["name"]].any() for p in manifest["params"])


def test_bad_init_params(stage2, tmp_path):
    export = str(stage2 / "export")
    cases = [
        (["--quantize=w3g32", f"--init-params={export}"],
         "was learned at 4 bits, group 32; this model quantizes"),
        (["--quantize=w4g32,mode=gamma", f"--init-params={export}"],
         "is a scale-mode tensor; this model quantizes"),
        (["--quantize=w4g32", f"--init-params={tmp_path}/missing"],
         "params.json: No such file or directory"),
        ([f"--init-params={export}"], "--init-params loads learned scales: it needs"),
    ]
    # A manifest naming a LoRA adapter, and one naming a tensor of the wrong shape.
    values, manifest = learned(export)
    for name, edit in [("lora", lambda p: p.update(kind="lora_A")),
                       ("shape", None)]:
        d = tmp_path / name
        d.mkdir()
        m = json.loads(json.dumps(manifest))
        for p in m["params"]:
            arr = values[p["name"]]
            if edit and p["kind"] == "scale":
                edit(p)
                edit = None
            if name == "shape" and p["kind"] == "float":
                arr = arr[:-1]
            np.save(d / p["file"], arr)
        json.dump(m, open(d / "params.json", "w"))
        cases.append((["--quantize=w4g32", f"--init-params={d}"],
                      "is of kind 'lora_A'" if name == "lora" else "in the learned tensor"))
    for args, message in cases:
        out = tmp_path / "bad.so"
        r = compile_(out, *args)
        assert r.returncode == 1 and message in r.stderr, (args, r.stderr)
        assert not out.exists()


def test_lora_stage_refuses_a_checkpoint_of_another_model(stage2, tmp_path):
    """--resume of a LoRA-stage run from the scale stage's checkpoint (same
    source model, another program and trainable set): named, nothing
    changed."""
    export = str(stage2 / "export")
    r = compile_(tmp_path / "t3", "--quantize=w4g32", "--emit=trainer",
                 f"--init-params={export}", "--train-scales=", "--train-params=",
                 f"--train-lora={ADAPTED}", "--lora-rank=4")
    assert r.returncode == 0, r.stderr
    run = tmp_path / "run"
    import shutil
    shutil.copytree(stage2 / "run", run)
    before = (run / "checkpoint.bin").read_bytes(), (run / "metrics.jsonl").read_bytes()
    p = subprocess.run([str(tmp_path / "t3"), f"--data={DATA}", "--steps=8", f"--out={run}",
                        "--quiet", "--resume"], capture_output=True, text=True)
    assert p.returncode == 1
    assert "the checkpoint belongs to another model or run" in p.stderr, p.stderr
    assert "MatMul.lora_A" in p.stderr  # the first difference, named
    assert ((run / "checkpoint.bin").read_bytes(), (run / "metrics.jsonl").read_bytes()) == before


def test_a_stage_continues_training_what_the_last_one_learned(stage2, tmp_path):
    """--init-params with the same tensors trainable (stage 1 -> stage 2):
    the learned values become the initial ones, each one tensor (the
    projector weight has several uses)."""
    export = str(stage2 / "export")
    values, _ = learned(export)
    r = compile_(tmp_path / "cont.so", "--quantize=w4g32", "--train",
                 f"--init-params={export}")
    assert r.returncode == 0, r.stderr
    lib = Model(str(tmp_path / "cont.so"))
    params = lib.signature.training.params
    assert sorted(p.name for p in params) == sorted(values)
    for p, v in zip(params, lib.run_function("init_params", {})):
        np.testing.assert_array_equal(v, values[p.name])
