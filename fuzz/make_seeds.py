"""Writes the fuzz harnesses' seed corpora into fuzz/corpus/<harness>/.

Seeds are small, valid inputs of each format (and a few known-bad ones), so
that mutation starts inside the parser rather than at its magic number:
ONNX models of one or a few ops, .npy arrays of each dtype and format
version, records, schedules, images, and a checkpoint and weights-file
header written by the real trainer and compiler (paths from --build).

    python fuzz/make_seeds.py --build build
"""
import argparse
import io
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "python"))
from qslaw_tools.small_models import small_models  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(ROOT, "test", "fixtures")


def out_dir(corpus, name):
    d = os.path.join(corpus, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    return d


def onnx_seeds(d):
    for name, data in small_models().items():
        open(os.path.join(d, name + ".onnx"), "wb").write(data)


def npy_seeds(d):
    arrays = {
        "f4": np.arange(6, dtype=np.float32).reshape(2, 3),
        "i8": np.arange(4, dtype=np.int64),
        "u1": np.arange(5, dtype=np.uint8),
        "f2": np.ones((2, 2), np.float16),
        "scalar": np.array(3.0, np.float64),
        "empty": np.zeros((0, 3), np.int32),
        "fortran": np.asfortranarray(np.ones((2, 3), np.float32)),
    }
    for name, a in arrays.items():
        np.save(os.path.join(d, name + ".npy"), a)
    with open(os.path.join(d, "v2.npy"), "wb") as f:
        np.lib.format.write_array(f, np.ones(3, np.float32), version=(2, 0))
    shutil.copy(os.path.join(FIX, "tiny_llava.input_ids.npy"), d)


def records_seeds(d):
    shutil.copy(os.path.join(FIX, "train", "records.jsonl"), d)
    lines = [
        '{"id": "a", "input_ids": [1, 2, 3], "labels": [-100, 2, 3]}',
        '{"id": "m", "image": "images/img0.png", "input_ids": [1, 31, 2], "labels": [1, 2, 3]}',
        '{"input_ids": [5], "labels": [5]}\n\n{"input_ids": [6, 7], "labels": [6, 7]}',
        '{"id": "b", "input_ids": [1, 2], "labels": [1]}',
    ]
    for i, text in enumerate(lines):
        open(os.path.join(d, f"r{i}.jsonl"), "w").write(text + "\n")


def schedule_seeds(d):
    texts = {
        "preset.json": '{"preset": "progressive", "warmup_steps": 10, "p_end": 0.3}',
        "mix.json": '{"preset": "mix"}',
        "phases.json": json.dumps({"phases": [
            {"steps": 5, "text_fraction": 1.0},
            {"steps": 10, "p_start": 1.0, "p_end": 0.2, "interp": "cosine"}]}),
        "phases.yaml": "phases:\n  - steps: 3\n    text_fraction: 0.5\n"
                       "  - steps: 4\n    p_start: 0.5\n    p_end: 0.1\n    interp: linear\n",
    }
    for name, t in texts.items():
        open(os.path.join(d, name), "w").write(t)


def png_chunk(kind, body):
    return (struct.pack(">I", len(body)) + kind + body +
            struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))


def image_seeds(d):
    from PIL import Image
    img = Image.open(os.path.join(FIX, "train", "images", "img0.png")).convert("RGB")
    small = img.resize((12, 9))
    for name, im, fmt, kw in [
            ("rgb.png", small, "PNG", {}),
            ("gray.png", small.convert("L"), "PNG", {}),
            ("rgba.png", small.convert("RGBA"), "PNG", {}),
            ("palette.png", small.convert("P"), "PNG", {}),
            ("base.jpg", small, "JPEG", {}),
            ("progressive.jpg", small, "JPEG", {"progressive": True}),
            ("gray.jpg", small.convert("L"), "JPEG", {})]:
        buf = io.BytesIO()
        im.save(buf, fmt, **kw)
        open(os.path.join(d, name), "wb").write(buf.getvalue())
    ihdr = struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0)
    open(os.path.join(d, "huge.png"), "wb").write(
        b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) +
        png_chunk(b"IDAT", zlib.compress(b"\0" * 64)) + png_chunk(b"IEND", b""))


def built_seeds(build, corpus):
    """A checkpoint and a weights-file header, from the real tools."""
    compile_ = os.path.join(build, "bin", "qslaw-compile")
    with tempfile.TemporaryDirectory() as t:
        trainer = os.path.join(t, "trainer")
        subprocess.run([compile_, os.path.join(FIX, "tiny_llava.onnx"), "--quantize=w4g32",
                        r"--quantize-layers=.*language_model.*layers.0.*mlp.*",
                        "--emit=trainer", "-o", trainer], check=True, capture_output=True)
        subprocess.run([trainer, f"--data={os.path.join(FIX, 'train', 'records.jsonl')}",
                        "--steps=2", "--checkpoint-every=0", "--quiet", f"--out={t}/run"],
                       check=True, capture_output=True)
        d = out_dir(corpus, "fuzz_checkpoint")
        shutil.copy(os.path.join(t, "run", "checkpoint.bin"), d)
        lib = os.path.join(t, "m.so")
        subprocess.run([compile_, os.path.join(FIX, "tiny_llava.onnx"), "--weights=external",
                        "-o", lib], check=True, capture_output=True)
        raw = open(lib + ".weights", "rb").read()
        off = struct.unpack_from("<Q", raw, 16)[0]
        d = out_dir(corpus, "fuzz_weights_header")
        open(os.path.join(d, "header.bin"), "wb").write(raw[:off])


def processor_config_seeds(d):
    """CLIP (LLaVA-1.5, with do_pad), SigLIP and a nearest-resample config
    for the harness's 16 x 16 model input, plus two known-bad ones."""
    clip_mean, clip_std = [0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711]
    seeds = {
        "clip_pad": {"do_pad": True, "do_resize": True, "size": {"shortest_edge": 16},
                     "resample": 3, "do_center_crop": True,
                     "crop_size": {"height": 16, "width": 16}, "do_rescale": True,
                     "rescale_factor": 1 / 255, "do_normalize": True,
                     "image_mean": clip_mean, "image_std": clip_std,
                     "image_processor_type": "CLIPImageProcessor"},
        "siglip": {"do_resize": True, "size": {"height": 16, "width": 16}, "resample": 3,
                   "image_mean": [0.5] * 3, "image_std": [0.5] * 3},
        "nearest_int_size": {"size": 16, "default_to_square": True, "resample": 0,
                             "do_center_crop": False},
        "bad_std": {"size": {"height": 16, "width": 16}, "image_std": [0, 1, 1]},
        "huge_edge": {"size": {"shortest_edge": 100000}, "crop_size": 16},
    }
    for name, cfg in seeds.items():
        with open(os.path.join(d, name + ".json"), "w") as f:
            json.dump(cfg, f)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--corpus", default=os.path.join(ROOT, "fuzz", "corpus"))
    a = ap.parse_args()
    onnx_seeds(out_dir(a.corpus, "fuzz_onnx_import"))
    npy_seeds(out_dir(a.corpus, "fuzz_npy"))
    records_seeds(out_dir(a.corpus, "fuzz_records"))
    schedule_seeds(out_dir(a.corpus, "fuzz_schedule"))
    image_seeds(out_dir(a.corpus, "fuzz_image"))
    processor_config_seeds(out_dir(a.corpus, "fuzz_processor_config"))
    built_seeds(a.build, a.corpus)


if __name__ == "__main__":
    main()
