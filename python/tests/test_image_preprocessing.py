"""The trainer's image preprocessing from a Hugging Face
preprocessor_config.json (lib/Train/ImageProcessor.cpp), through the
exported qslaw_trainer_preprocess_image, against transformers' own image
processors on the same PNG images: CLIP (LLaVA-1.5's shortest-edge resize
and centre crop), CLIP with bilinear resampling, LLaVA's pad-to-square
with the mean colour, SigLIP (height x width, mean = std = 0.5).

Tolerance, justified by the resize: both sides resample with PIL's
antialiased filters and round each pass to 8 bits, but PIL does so in
fixed point (22-bit coefficients), so a pixel may land one 8-bit level
apart: |diff| <= 1/255/std after normalisation. Where an exact resize
changes the aspect ratio (SigLIP on a non-square image), the installed
Pillow sometimes runs its two passes in the other order, which moves some
pixels by up to a few levels: there the bound is 8 levels and a mean
under 0.5 levels (measured 0.27). Bad configs are named errors; the trainer finds the
config beside its data and says which one it used."""
import ctypes
import json
import os
import subprocess

import numpy as np
import pytest

PIL = pytest.importorskip("PIL.Image")
transformers = pytest.importorskip("transformers")

from qslaw_tools.runner import ROOT, build_dir, tool  # noqa: E402

S = 224
SIZES = [(300, 200), (173, 251), (224, 224), (50, 80), (640, 480), (225, 224)]


@pytest.fixture(scope="module")
def preprocess():
    lib = ctypes.CDLL(os.path.join(build_dir(), "lib", "libqslaw_trainer.so"))
    f = lib.qslaw_trainer_preprocess_image
    f.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_longlong,
                  ctypes.c_void_p, ctypes.c_char_p, ctypes.c_ulong]

    def run(image, config, size=S):
        out = np.zeros((3, size, size), np.float32)
        err = ctypes.create_string_buffer(1024)
        rc = f(str(image).encode(), str(config).encode() if config else None,
               size, out.ctypes.data, err, len(err))
        return (out, None) if rc == 0 else (None, err.value.decode())
    return run


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    d = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    paths = []
    for w, h in SIZES:
        y, x = np.mgrid[0:h, 0:w]
        base = np.stack([128 + 100 * np.sin(x / 7.0 + c) * np.cos(y / 11.0 - c)
                         for c in range(3)], -1)
        px = np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
        p = d / f"img_{w}x{h}.png"
        PIL.fromarray(px).save(p)
        paths.append(p)
    return paths


PROCESSORS = {
    "clip": ("CLIPImageProcessor", {}),
    "clip_bilinear": ("CLIPImageProcessor", {"resample": 2}),
    "llava_pad": ("LlavaImageProcessor", {"do_pad": True}),
    "siglip": ("SiglipImageProcessor", {"size": {"height": S, "width": S}}),
}


@pytest.mark.parametrize("name", sorted(PROCESSORS))
def test_matches_transformers(preprocess, images, tmp_path, name):
    cls, kw = PROCESSORS[name]
    getattr(transformers, cls)(**kw).save_pretrained(tmp_path)
    config = tmp_path / "preprocessor_config.json"
    proc = transformers.AutoImageProcessor.from_pretrained(tmp_path)
    level = 1 / 255 / min(proc.image_std)
    for p in images:
        ref = proc(images=PIL.open(p).convert("RGB"), return_tensors="np")["pixel_values"][0]
        ours, err = preprocess(p, config)
        assert err is None, err
        assert ref.shape == ours.shape == (3, S, S)
        diff = np.abs(ours - ref)
        w, h = PIL.open(p).size
        reshaped = name == "siglip" and w != h
        assert diff.max() <= (8 if reshaped else 1) * level + 1e-5, (p.name, diff.max() / level)
        assert diff.mean() <= (0.5 if reshaped else 0.05) * level, (p.name, diff.mean() / level)


def test_pad_to_square_is_applied(preprocess, images, tmp_path):
    """LLaVA's padding: a wide image's top and bottom rows are the mean
    colour, which normalises to (int(255 mean)/255 - mean)/std ~ 0."""
    transformers.LlavaImageProcessor(do_pad=True).save_pretrained(tmp_path)
    wide = next(p for p in images if p.name == "img_640x480.png")
    out, err = preprocess(wide, tmp_path / "preprocessor_config.json")
    assert err is None
    assert np.abs(out[:, 0, :]).max() < 0.02 and np.abs(out[:, -1, :]).max() < 0.02
    assert np.abs(out[:, S // 2, :]).max() > 0.5


def test_without_a_config_keeps_the_old_preprocessing(preprocess, images):
    out, err = preprocess(images[0], None)
    assert err is None and np.isfinite(out).all()


BAD = [
    ({"image_std": [0.5, 0.0, 0.5]}, '"image_std" must be positive, got 0'),
    ({"image_mean": [0.5, 0.5]}, '"image_mean" must be a number or a list of 3 numbers'),
    ({"resample": 7}, '"resample" must be 0 (nearest), 2 (bilinear) or 3 (bicubic); got 7'),
    ({"crop_size": {"height": 336, "width": 336}},
     '"crop_size" gives 336 x 336 images; the model\'s pixel_values are 224 x 224'),
    ({"size": {"longest_edge": 224}}, '"size" has the unsupported field "longest_edge"'),
    ({"size": {"shortest_edge": -3}}, '"size" must be positive'),
    ({"do_pad": "yes"}, '"do_pad" must be true or false'),
    ({"image_grid_pinpoints": [[336, 672]]}, 'unknown key "image_grid_pinpoints"'),
    ({"rescale_factor": 0}, '"rescale_factor" must be a positive number'),
]


@pytest.mark.parametrize("edit,message", BAD, ids=[m.split('"')[1] for _, m in BAD])
def test_bad_configs(preprocess, images, tmp_path, edit, message):
    cfg = {"do_resize": True, "size": {"shortest_edge": S}, "do_center_crop": True,
           "crop_size": {"height": S, "width": S}, "resample": 3,
           "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}
    cfg.update(edit)
    path = tmp_path / "preprocessor_config.json"
    path.write_text(json.dumps(cfg))
    out, err = preprocess(images[0], path)
    assert out is None and message in err and str(path) in err, err


def test_missing_crop_size_and_malformed_json(preprocess, images, tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"do_center_crop": True, "do_resize": False}))
    assert "do_center_crop is set but there is no \"crop_size\"" in preprocess(images[0], path)[1]
    path.write_text("{not json")
    assert str(path) in preprocess(images[0], path)[1]


def test_trainer_uses_the_config_beside_its_data(tmp_path):
    """The tiny fixture's records with a SigLIP-style config (28 x 28) beside
    them: the trainer says it uses it; a bad one stops it before training."""
    fix = os.path.join(ROOT, "test", "fixtures")
    trainer = tmp_path / "trainer"
    subprocess.run([tool("qslaw-compile"), os.path.join(fix, "tiny_llava.onnx"),
                    "--quantize=w4g32", r"--quantize-layers=.*language_model.*layers.*",
                    "--emit=trainer", "-o", str(trainer)], check=True, capture_output=True)
    data = tmp_path / "data"
    import shutil
    shutil.copytree(os.path.join(fix, "train"), data)
    cfg = data / "preprocessor_config.json"
    cfg.write_text(json.dumps({"do_resize": True, "size": {"height": 28, "width": 28},
                               "resample": 3, "image_mean": [0.5] * 3, "image_std": [0.5] * 3}))
    r = subprocess.run([str(trainer), f"--data={data}/records.jsonl", "--steps=2",
                        f"--out={tmp_path}/run", "--quiet"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert f"images preprocessed as {cfg} says" in r.stderr
    cfg.write_text(json.dumps({"size": {"height": 32, "width": 32}}))
    r = subprocess.run([str(trainer), f"--data={data}/records.jsonl", "--steps=2",
                        f"--out={tmp_path}/run2", "--quiet"], capture_output=True, text=True)
    assert r.returncode == 1 and "gives 32 x 32 images" in r.stderr, r.stderr
    assert not (tmp_path / "run2").exists()
    os.remove(cfg)
    r = subprocess.run([str(trainer), f"--data={data}/records.jsonl", "--steps=2",
                        f"--out={tmp_path}/run3", "--quiet"], capture_output=True, text=True)
    assert r.returncode == 0 and "no preprocessor_config.json" in r.stderr, r.stderr
