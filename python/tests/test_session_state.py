"""Session state (qslaw_session_state_*, include/qslaw/Runtime/qslaw_runtime.h):
tensors a session keeps between runs - on CUDA in device memory - so that a
training loop's parameters and AdamW moments never round-trip through the
host. Checked on the CPU target here (the same code path binds device
memory on CUDA; test_cuda_target.py runs it there):

- 20 resident AdamW steps match torch.optim.AdamW (rtol 1e-4, fp32);
- resident and host round-trip runs of the same library give bit-identical
  parameters and moments (same compiled code, same inputs: no tolerance);
- what is held can be listed, read back, renamed and dropped, and every
  misuse is refused with the tensor's name and what was expected.
"""
import os
import subprocess

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from qslaw_tools.runner import ROOT, tool  # noqa: E402
from qslaw_tools.runtime import Model  # noqa: E402
from test_train_step_torch import (LAYERS, batch, check_adamw_losses_match_torch,  # noqa: E402
                                   run_adamw_steps)

FIX = os.path.join(ROOT, "test", "fixtures")


@pytest.fixture(scope="module")
def train_lib(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("state") / "train.so")
    subprocess.run([tool("qslaw-compile"), os.path.join(FIX, "tiny_llava.onnx"),
                    "--quantize=w4g32", f"--quantize-layers={LAYERS}", "--train",
                    "-o", out], check=True, capture_output=True)
    return out


def test_resident_adamw_matches_torch(train_lib):
    check_adamw_losses_match_torch(Model(train_lib), resident=True)


def test_resident_equals_host_round_trip(train_lib):
    losses_host, host = run_adamw_steps(Model(train_lib), steps=3)
    losses_res, res = run_adamw_steps(Model(train_lib), steps=3, resident=True)
    assert losses_host == losses_res
    for a_list, b_list in zip(host, res):
        for a, b in zip(a_list, b_list):
            np.testing.assert_array_equal(a, b)


def test_state_listing_get_move_drop(train_lib):
    lib = Model(train_lib)
    params = lib.signature.training.params
    names = [p.name for p in params]
    host = lib.run_function("init_params", {})
    kept = lib.run_function("init_params", {}, keep=names)
    assert kept == [None] * len(names)
    held = lib.state()
    assert sorted(held) == sorted(names)
    for p, h in zip(params, host):
        assert held[p.name] == ("f32", tuple(p.shape))
        np.testing.assert_array_equal(lib.get_state(p.name), h)
    lib.move_state(names[0], "renamed")
    assert "renamed" in lib.state() and names[0] not in lib.state()
    np.testing.assert_array_equal(lib.get_state("renamed"), host[0])
    lib.move_state("renamed", names[1])  # replaces names[1]
    np.testing.assert_array_equal(lib.get_state(names[1]), host[0])
    lib.drop_state(names[1])
    assert names[1] not in lib.state()
    lib.set_state("ints", np.arange(6, dtype=np.int64).reshape(2, 3), dtype="i64")
    np.testing.assert_array_equal(lib.get_state("ints"), np.arange(6).reshape(2, 3))
    lib.drop_state()
    assert lib.state() == {}


def test_missing_state_input_is_named(train_lib):
    lib = Model(train_lib)
    ids, pix, mask, labels = batch("tiny_llava")
    first = lib.signature.training.params[0].name
    with pytest.raises(RuntimeError, match=f"missing input '{first}' "
                                           r"\(the model takes: "):
        lib.run_function("grad_step", dict(input_ids=ids, pixel_values=pix,
                                           attention_mask=mask, labels=labels))


def test_state_of_wrong_shape_or_dtype_is_refused(train_lib):
    lib = Model(train_lib)
    params = lib.signature.training.params
    lib.run_function("init_params", {}, keep=[p.name for p in params])
    p0 = params[0]
    lib.set_state(p0.name, np.zeros([3], np.float32))
    ids, pix, mask, labels = batch("tiny_llava")
    feeds = dict(input_ids=ids, pixel_values=pix, attention_mask=mask, labels=labels)
    with pytest.raises(RuntimeError, match=f"input '{p0.name}': the session state "
                                           r"holds f32 \[3\], the model takes f32"):
        lib.run_function("grad_step", feeds)
    lib.set_state(p0.name, np.zeros(p0.shape, np.float64), dtype="f64")
    with pytest.raises(RuntimeError, match="holds f64"):
        lib.run_function("grad_step", feeds)


def test_state_misuse_is_refused(train_lib):
    lib = Model(train_lib)
    with pytest.raises(RuntimeError, match="no tensor 'nope' in the session state"):
        lib.get_state("nope", "f32", (1,))
    with pytest.raises(RuntimeError, match="no tensor 'nope' in the session state"):
        lib.move_state("nope", "x")
    with pytest.raises(RuntimeError, match="no tensor 'nope' in the session state"):
        lib.drop_state("nope")
    with pytest.raises(RuntimeError, match="state tensor 'x': unknown dtype 'f12'"):
        lib.set_state("x", np.zeros(2, np.float32), dtype="f12")
    lib.set_state("x", np.zeros((2, 3), np.float32))
    with pytest.raises(RuntimeError, match=r"state tensor 'x': shape \[3, 2\], "
                                           r"expected \[2, 3\]"):
        lib.get_state("x", "f32", (3, 2))
    with pytest.raises(RuntimeError, match="state tensor 'x': dtype f64, expected f32"):
        lib.get_state("x", "f64", (2, 3))
    # A failed call leaves what is held as it was.
    np.testing.assert_array_equal(lib.get_state("x"), np.zeros((2, 3), np.float32))
