"""The trainer executable (qslaw-compile --emit=trainer) end to end: training
on the bundled tiny records, SIGKILL + --resume reproducing the
uninterrupted metrics bit for bit, non-finite steps skipped then a stop, and
each bad input with its message and exit status."""
import json
import os
import struct
import zlib
import shutil
import signal
import subprocess
import time

import pytest

from qslaw_tools.runner import ROOT, tool

FIX = os.path.join(ROOT, "test", "fixtures")
DATA = os.path.join(FIX, "train", "records.jsonl")


@pytest.fixture(scope="module")
def trainer(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("trainer") / "trainer")
    subprocess.run([tool("qslaw-compile"), os.path.join(FIX, "tiny_llava.onnx"),
                    "--quantize=w4g32", r"--quantize-layers=.*language_model.*layers.*",
                    "--emit=trainer", "-o", out], check=True, capture_output=True)
    return out


def run(trainer, *args, **kw):
    return subprocess.run([trainer, *args], capture_output=True, text=True, **kw)


def metrics(d):
    with open(os.path.join(d, "metrics.jsonl")) as f:
        recs = [json.loads(line) for line in f]
    for r in recs:
        r.pop("tokens_per_s")  # wall-clock
    return recs


def test_trains_and_exports(trainer, tmp_path):
    out = str(tmp_path / "run")
    p = run(trainer, f"--data={DATA}", "--steps=12", f"--out={out}", "--quiet",
            f"--export-params={out}/export")
    assert p.returncode == 0, p.stderr
    m = metrics(out)
    assert [r["step"] for r in m] == list(range(1, 13))
    assert all(r["loss"] > 0 and not r["skipped"] for r in m)
    # progressive: language-heavy first, multimodal-heavy later
    assert m[0]["text_fraction"] == 1.0 and m[-1]["text_fraction"] < 0.5
    manifest = json.load(open(os.path.join(out, "export", "params.json")))
    assert {p["kind"] for p in manifest["params"]} == {"scale", "float"}


def test_sigkill_then_resume_matches_uninterrupted(trainer, tmp_path):
    full, cut = str(tmp_path / "full"), str(tmp_path / "cut")
    # 300 steps: a step of the tiny model takes ~3 ms, and 40 (the first
    # version) were often all done before the kill arrived.
    args = [f"--data={DATA}", "--steps=300", "--checkpoint-every=3", "--quiet",
            "--preset=mix", "--seed=7"]
    assert run(trainer, *args, f"--out={full}").returncode == 0
    proc = subprocess.Popen([trainer, *args, f"--out={cut}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt = os.path.join(cut, "checkpoint.bin")
    deadline = time.time() + 60
    while time.time() < deadline and not (os.path.exists(ckpt) and
                                          len(open(os.path.join(cut, "metrics.jsonl")).readlines()) >= 7):
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # The kill landed mid-run: by the signal, not a finished run, and with
    # steps still to do (else the resume below would test nothing).
    assert proc.returncode == -signal.SIGKILL, proc.returncode
    done = len(open(os.path.join(cut, "metrics.jsonl")).readlines())
    assert 7 <= done < 300, done
    # Never a partial checkpoint as the latest: it loads (checksum) on resume.
    r = run(trainer, *args, f"--out={cut}", "--resume")
    assert r.returncode == 0, r.stderr
    assert "resuming at step" in r.stderr
    assert metrics(cut) == metrics(full)  # bitwise: floats printed round-trip
    assert open(os.path.join(cut, "checkpoint.bin"), "rb").read() == \
        open(os.path.join(full, "checkpoint.bin"), "rb").read()


def test_sigterm_writes_checkpoint(trainer, tmp_path):
    out = str(tmp_path / "term")
    proc = subprocess.Popen([trainer, f"--data={DATA}", "--steps=100000", "--quiet",
                             "--checkpoint-every=0", f"--out={out}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and (
            not os.path.exists(os.path.join(out, "metrics.jsonl")) or
            not open(os.path.join(out, "metrics.jsonl")).read()):
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM
    assert "checkpoint written" in err
    assert os.path.exists(os.path.join(out, "checkpoint.bin"))


def test_failed_checkpoint_write_is_an_error(trainer, tmp_path):
    """A checkpoint that cannot be written (here its temporary file's path is
    a directory, which even root cannot open for writing) fails the run with
    the reason and the step, after training and the metrics are complete."""
    out = tmp_path / "ro"
    out.mkdir()
    (out / "checkpoint.bin.tmp").mkdir()
    p = run(trainer, f"--data={DATA}", "--steps=6", "--checkpoint-every=2", "--quiet",
            f"--out={out}")
    assert p.returncode == 1, p.stderr
    assert "qslaw-trainer: error: checkpoint at step 2 not written:" in p.stderr
    assert "checkpoint.bin: cannot write" in p.stderr
    assert "3 checkpoint write(s) failed; no checkpoint was written" in p.stderr
    assert [r["step"] for r in metrics(str(out))] == list(range(1, 7))
    assert not (out / "checkpoint.bin").exists()


def test_sigterm_with_unwritable_checkpoint_says_so(trainer, tmp_path):
    out = tmp_path / "term_ro"
    out.mkdir()
    (out / "checkpoint.bin.tmp").mkdir()
    proc = subprocess.Popen([trainer, f"--data={DATA}", "--steps=100000", "--quiet",
                             "--checkpoint-every=0", f"--out={out}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and not (
            (out / "metrics.jsonl").exists() and (out / "metrics.jsonl").read_text()):
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM
    assert "checkpoint NOT written at step" in err
    assert "checkpoint written at step" not in err
    assert not (out / "checkpoint.bin").exists()


def compile_trainer(out, model=os.path.join(FIX, "tiny_llava.onnx"), spec="w4g32"):
    subprocess.run([tool("qslaw-compile"), model, f"--quantize={spec}",
                    r"--quantize-layers=.*language_model.*layers.*",
                    "--emit=trainer", "-o", out], check=True, capture_output=True)
    return out


@pytest.fixture(scope="module")
def foreign_trainers(tmp_path_factory):
    """Trainers whose checkpoints have the tiny trainer's tensor names and
    sizes: 3-bit codes, and the same graph with one weight changed."""
    d = tmp_path_factory.mktemp("foreign")
    import onnx
    from onnx import numpy_helper
    m = onnx.load(os.path.join(FIX, "tiny_llava.onnx"))
    emb = "m.model.language_model.embed_tokens.weight"
    init = next(i for i in m.graph.initializer if i.name == emb)
    a = numpy_helper.to_array(init).copy()
    a.flat[0] += 0.5
    init.CopyFrom(numpy_helper.from_array(a, emb))
    onnx.save(m, str(d / "retrained.onnx"))
    return {"w3": compile_trainer(str(d / "w3"), spec="w3g32"),
            "retrained": compile_trainer(str(d / "retrained"),
                                         model=str(d / "retrained.onnx"))}


@pytest.mark.parametrize("case,expect", [
    ("w3", "quantized layer '/m/model/language_model/layers.0/self_attn/q_proj/MatMul': "
     "bits is 4 in the checkpoint, 3 in this model"),
    ("retrained", "it was written by another compiled program (program "),
    ("schedule", "the warmup schedule differs: [[3,1,0.20000000000000001,false],"
     "[1,0.20000000000000001,0.20000000000000001,false]] in the checkpoint, "
     "[[1,0.5,0.5,false]] now"),
    ("flipped", "not a valid checkpoint (checksum mismatch: the file is damaged or truncated)"),
    ("truncated", "not a valid checkpoint (checksum mismatch"),
    ("garbage", "not a valid checkpoint (bad header)"),
    ("old_format", "format QSLAWCK1, written by an older qslaw, records no model identity"),
])
def test_resume_refuses_a_foreign_or_damaged_checkpoint(trainer, foreign_trainers,
                                                        tmp_path, case, expect):
    """Names and sizes alone match across bit widths and retrained weights:
    the checkpoint's model identity is what tells them apart. A refused
    resume leaves the checkpoint and the metrics as they were."""
    out = tmp_path / "run"
    args = [f"--data={DATA}", "--steps=10", "--checkpoint-every=2", "--quiet",
            f"--out={out}"]
    assert run(trainer, *args).returncode == 0
    ckpt = out / "checkpoint.bin"
    raw = ckpt.read_bytes()
    if case == "flipped":
        ckpt.write_bytes(raw[:100] + bytes([raw[100] ^ 1]) + raw[101:])
    elif case == "truncated":
        ckpt.write_bytes(raw[:len(raw) // 2])
    elif case == "garbage":
        ckpt.write_bytes(b"not a checkpoint at all, but long enough to read")
    elif case == "old_format":
        ckpt.write_bytes(b"QSLAWCK1" + raw[8:])
    before = (ckpt.read_bytes(), (out / "metrics.jsonl").read_bytes())
    who = foreign_trainers.get(case, trainer)
    extra = ["--preset=mix"] if case == "schedule" else []
    p = run(who, *args, *extra, "--resume")
    assert p.returncode == 1, p.stderr
    assert expect in p.stderr, p.stderr
    assert (ckpt.read_bytes(), (out / "metrics.jsonl").read_bytes()) == before


def test_nonfinite_steps_are_skipped_then_stop(trainer, tmp_path):
    out = str(tmp_path / "nan")
    p = run(trainer, f"--data={DATA}", "--steps=20", f"--out={out}", "--quiet",
            "--preset=none", "--inject-nan-at=3,5,6,7", "--max-nonfinite=3")
    assert p.returncode == 2
    assert "step 3: non-finite loss; step skipped (1 in a row)" in p.stderr
    assert "3 non-finite steps in a row; stopping" in p.stderr
    m = metrics(out)
    assert [r["step"] for r in m if r["skipped"]] == [3, 5, 6, 7]
    assert len(m) == 7


def png_chunk(kind, body):
    return (struct.pack(">I", len(body)) + kind + body +
            struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))


def write_bad_images(d):
    """Images whose headers or data are damaged, made from a real one."""
    good_png = (d / "img0.png").read_bytes()
    # A valid PNG header declaring 100000 x 100000 RGB pixels (30 GB).
    ihdr = struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0)
    (d / "huge.png").write_bytes(
        b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) +
        png_chunk(b"IDAT", zlib.compress(b"\0" * 64)) + png_chunk(b"IEND", b""))
    (d / "truncated.png").write_bytes(good_png[:len(good_png) // 2])
    from PIL import Image
    import io
    buf = io.BytesIO()
    Image.open(d / "img0.png").convert("RGB").resize((64, 64)).save(buf, "JPEG")
    jpg = buf.getvalue()
    # The baseline SOF0 marker holds height and width at offsets 5 and 7.
    sof = jpg.index(b"\xff\xc0")
    huge = bytearray(jpg)
    huge[sof + 5:sof + 9] = struct.pack(">HH", 60000, 60000)
    (d / "huge.jpg").write_bytes(bytes(huge))
    (d / "truncated.jpg").write_bytes(jpg[:len(jpg) // 2])
    # A restart-free scan with a stray marker in its entropy-coded data.
    sos = jpg.index(b"\xff\xda")
    bad = bytearray(jpg)
    mid = (sos + len(jpg)) // 2
    bad[mid:mid + 2] = b"\xff\xd3"
    (d / "corrupt.jpg").write_bytes(bytes(bad))


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


@pytest.mark.parametrize("case,expect", [
    ("missing_image", "img_missing.png: missing image file"),
    ("bad_image", "bad.png: undecodable PNG image"),
    ("bad_json", "records.jsonl:2: malformed JSON record"),
    ("bad_field", "records.jsonl:1: record 'a': \"labels\" must be"),
    ("empty", "no usable record (empty data set)"),
    ("too_long", "no usable record (empty data set)"),
    ("schedule_key", "phase 0: unknown key 'frac'"),
    ("schedule_value", "'text_fraction' = 1.500000 is outside [0, 1]"),
    ("id_past_vocab", "records.jsonl:2: record 'v': input_ids[1] = 48 is "
     "outside the model's range [-48, 48) (axis 0 of "
     "'m.model.language_model.embed_tokens.weight'"),
    ("id_below_vocab", "records.jsonl:2: record 'v': input_ids[0] = -49 is outside"),
    ("label_past_vocab", "records.jsonl:2: record 'v': labels[2] = 50 is outside "
     "the model's range [0, 48) or -100 (the vocabulary of the logits (size 48))"),
    ("pad_id", "--pad-id=48 is outside the model's input_ids range [-48, 48)"),
    ("huge_png", "huge.png: PNG image of 100000 x 100000 pixels is larger than "
     "the limit (16384 per side, 67108864 pixels)"),
    ("huge_jpeg", "huge.jpg: JPEG image of 60000 x 60000 pixels is larger than the limit"),
    ("truncated_png", "truncated.png: undecodable PNG image ("),
    ("truncated_jpeg", "truncated.jpg: undecodable JPEG image (Premature end of JPEG file)"),
    ("corrupt_jpeg", "corrupt.jpg: undecodable JPEG image (Corrupt JPEG data"),
])
def test_bad_inputs(trainer, tmp_path, case, expect):
    shutil.copytree(os.path.join(FIX, "train", "images"), tmp_path / "images")
    ok = '{"id": "a", "input_ids": [1, 2, 3], "labels": [1, 2, 3]}\n'
    img = '{"id": "m", "image": "images/%s", "input_ids": [1, 31, 31, 31, 31, 2], "labels": [1, 2, 3, 4, 5, 6]}\n'
    (tmp_path / "images" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    sched = None
    data = {
        "missing_image": ok + img % "img_missing.png",
        "bad_image": ok + img % "bad.png",
        "bad_json": ok + '{"id": "b", "input_ids": [1, 2\n',
        "bad_field": '{"id": "a", "input_ids": [1, 2, 3], "labels": [1]}\n',
        "empty": "\n",
        "too_long": '{"input_ids": %s, "labels": %s}\n' % ([1] * 30, [1] * 30),
        "id_past_vocab": ok + '{"id": "v", "input_ids": [1, 48, 3], "labels": [1, 2, 3]}\n',
        "id_below_vocab": ok + '{"id": "v", "input_ids": [-49, 1, 3], "labels": [1, 2, 3]}\n',
        "label_past_vocab": ok + '{"id": "v", "input_ids": [1, 2, 3], "labels": [1, 2, 50]}\n',
        "huge_png": ok + img % "huge.png",
        "huge_jpeg": ok + img % "huge.jpg",
        "truncated_png": ok + img % "truncated.png",
        "truncated_jpeg": ok + img % "truncated.jpg",
        "corrupt_jpeg": ok + img % "corrupt.jpg",
    }.get(case, ok)
    write_bad_images(tmp_path / "images")
    if case == "schedule_key":
        sched = write(tmp_path, "s.json", '{"phases": [{"steps": 3, "frac": 0.5}]}')
    if case == "schedule_value":
        sched = write(tmp_path, "s.yaml", "phases:\n  - steps: 3\n    text_fraction: 1.5\n")
    args = [f"--data={write(tmp_path, 'records.jsonl', data)}", "--steps=2",
            f"--out={tmp_path}/out", "--quiet"]
    if sched:
        args.append(f"--schedule={sched}")
    if case == "pad_id":
        args.append("--pad-id=48")
    p = run(trainer, *args)
    assert p.returncode == 1, p.stderr
    assert expect in p.stderr, p.stderr
    assert not os.path.exists(tmp_path / "out" / "checkpoint.bin")
    if case == "too_long":
        assert "skipped 1 record(s) longer than the compiled sequence length 24" in p.stderr
