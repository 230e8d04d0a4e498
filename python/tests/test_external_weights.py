"""qslaw-compile --weights=external: the model's large constants live in
OUT.weights, mapped by the runtime at load. Libraries and trainers built that
way compute exactly what embedded ones do (bit for bit: the same code reads
the same bytes); loads of one library share the mapping; a trainer without
its weights file stops before writing anything. The format itself, and
corrupt/foreign/truncated files, are covered by test/E2E/external-weights.test
and test/Conversion/external-weights*.mlir."""
import json
import os
import struct
import subprocess

import numpy as np
import pytest

from qslaw_tools.runner import ROOT, tool
from qslaw_tools.runtime import Model

FIX = os.path.join(ROOT, "test", "fixtures")
DATA = os.path.join(FIX, "train", "records.jsonl")
LAYERS = r"--quantize-layers=.*language_model.*layers.*"


def compile_model(out, *args):
    subprocess.run([tool("qslaw-compile"), os.path.join(FIX, "tiny_llava.onnx"),
                    "-o", out, *args], check=True, capture_output=True, text=True)
    return out


def feeds():
    return {k: np.load(os.path.join(FIX, f"tiny_llava.{k}.npy"))
            for k in ("input_ids", "pixel_values", "attention_mask")}


def read_header(path):
    with open(path, "rb") as f:
        head = f.read(32)
        assert head[:8] == b"QSLAWWTS"
        version, text_bytes, data_offset, data_bytes = struct.unpack("<IIQQ", head[8:])
        header = json.loads(f.read(text_bytes))
    assert version == 1 and data_offset % 4096 == 0
    assert os.path.getsize(path) == data_offset + data_bytes
    return header, data_bytes


# w3 codes are one per byte, w2/w4 packed: each byte layout goes through the file.
@pytest.mark.parametrize("quant", ["w4g32", "w3g32,sym", "w2g16"])
def test_library_equals_embedded(tmp_path, quant):
    emb = compile_model(str(tmp_path / "emb.so"), f"--quantize={quant}")
    ext = compile_model(str(tmp_path / "ext.so"), f"--quantize={quant}",
                        "--weights=external", "--weights-min-bytes=64")
    header, data_bytes = read_header(ext + ".weights")
    assert header["tensors"] and all(t["offset"] % 64 == 0 and
                                     t["offset"] + t["bytes"] <= data_bytes
                                     for t in header["tensors"])
    # The codes are in the file, not in the library.
    assert any("xi8>" in t["type"] or "xi3>" in t["type"] for t in header["tensors"])
    assert os.path.getsize(ext) < os.path.getsize(emb)
    (a,) = Model(emb).run(**feeds())
    (b,) = Model(ext).run(**feeds())
    np.testing.assert_array_equal(a, b)


def test_explicit_weights_path(tmp_path):
    ext = compile_model(str(tmp_path / "ext.so"), "--quantize=w4g32", "--weights=external")
    (want,) = Model(ext).run(**feeds())
    os.makedirs(tmp_path / "other")
    moved = str(tmp_path / "other" / "w.bin")
    os.rename(ext + ".weights", moved)
    with pytest.raises(RuntimeError, match=r"ext.so.weights: cannot open"):
        Model(ext)
    (got,) = Model(ext, weights=moved).run(**feeds())
    np.testing.assert_array_equal(want, got)


def test_loads_share_one_mapping(tmp_path):
    ext = compile_model(str(tmp_path / "ext.so"), "--quantize=w4g32", "--weights=external")
    first, second = Model(ext), Model(ext)
    (want,) = first.run(**feeds())
    del first  # the other load keeps the mapping
    (got,) = second.run(**feeds())
    np.testing.assert_array_equal(want, got)
    del second  # unmapped; a new load maps and checks the file again
    (again,) = Model(ext).run(**feeds())
    np.testing.assert_array_equal(want, again)


def metrics(d):
    with open(os.path.join(d, "metrics.jsonl")) as f:
        recs = [json.loads(line) for line in f]
    for r in recs:
        r.pop("tokens_per_s")
    return recs


def test_trainer_equals_embedded(tmp_path):
    common = ["--quantize=w4g32", LAYERS, "--emit=trainer"]
    emb = compile_model(str(tmp_path / "emb"), *common)
    ext = compile_model(str(tmp_path / "ext"), *common, "--weights=external")
    runs = {}
    for name, exe in (("emb", emb), ("ext", ext)):
        out = str(tmp_path / f"run_{name}")
        p = subprocess.run([exe, f"--data={DATA}", "--steps=6", f"--out={out}", "--quiet",
                            f"--export-params={out}/export"], capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
        runs[name] = out
    assert metrics(runs["emb"]) == metrics(runs["ext"])
    for f in ("params.json",):
        with open(os.path.join(runs["emb"], "export", f)) as a, \
             open(os.path.join(runs["ext"], "export", f)) as b:
            assert json.load(a) == json.load(b)

    # --weights names a file elsewhere.
    os.rename(ext + ".weights", str(tmp_path / "elsewhere.weights"))
    out = str(tmp_path / "run_elsewhere")
    p = subprocess.run([ext, f"--data={DATA}", "--steps=6", f"--out={out}", "--quiet",
                        f"--weights={tmp_path / 'elsewhere.weights'}"],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert metrics(out) == metrics(runs["ext"])
    os.rename(str(tmp_path / "elsewhere.weights"), ext + ".weights")

    # Without its weights file the trainer stops before writing anything.
    os.rename(ext + ".weights", ext + ".moved")
    out = str(tmp_path / "run_missing")
    p = subprocess.run([ext, f"--data={DATA}", "--steps=2", f"--out={out}", "--quiet"],
                       capture_output=True, text=True)
    assert p.returncode != 0
    assert "ext.weights: cannot open: No such file or directory" in p.stderr
    assert not os.path.exists(out)


def test_failed_weights_write_links_nothing(tmp_path):
    """The weights file is written on a thread of its own while LLVM
    compiles; the driver waits for it before linking. When the write fails
    (here a directory stands where the file goes), the compile fails naming
    the file, and no library refers to weights that do not exist."""
    out = str(tmp_path / "ext.so")
    os.makedirs(out + ".weights")
    r = subprocess.run([tool("qslaw-compile"), os.path.join(FIX, "tiny_llava.onnx"),
                        "-o", out, "--quantize=w4g32", "--weights=external"],
                       capture_output=True, text=True)
    assert r.returncode != 0
    assert "writing the weights file failed" in r.stderr and "ext.so.weights" in r.stderr, r.stderr
    assert not os.path.exists(out) and not os.path.exists(out + ".o")
    assert os.path.isdir(out + ".weights")
