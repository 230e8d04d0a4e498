"""LLaVA-shaped models of realistic width, generated on demand (random
weights from transformers configs, exported by torch.onnx like the tiny
fixtures; never committed). Speed and memory are measured on these.

    .venv/bin/python -m qslaw_tools.make_llava --size small OUT_DIR
    .venv/bin/python -m qslaw_tools.make_llava --size small --vision-layers 1 \
        --text-layers 1 OUT_DIR          # reduced depth, same widths (CI)

Writes OUT_DIR/llava_<size>.onnx and the inputs beside it
(llava_<size>.{input_ids,pixel_values,attention_mask}.npy).

Sizes (sequence 256 = 196 image tokens + 60 text tokens, batch 1 unless
--batch says otherwise):
  small  = CLIP 6 x 384 (image 224, patch 16) + LLaMA 4 x 512 (MLP 1408,
           vocab 32000), about 55 M parameters;
  medium = ViT-B/16 (12 x 768) + LLaMA 8 x 1024 (MLP 2816, vocab 32000),
           about 250 M parameters;
  1b     = ViT-B/16 + LLaMA 16 x 2048 (MLP 5632, 32 heads, vocab 32000),
           about 1.05 B parameters. Its weights (4.2 GB in f32) are always
           written as external data (OUT_DIR/llava_1b.onnx.data), as
           protobuf cannot hold them.

--weights bf16 (or f16) stores the float weights narrow, read through
Cast(to=FLOAT): a half-precision checkpoint computing in f32.
"""
import argparse
import os
import shutil
import tempfile

import numpy as np
import onnx
import torch
from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

from qslaw_tools.make_fixtures import Logits

IMAGE_TOKEN = 31999
IMAGE = 224
PATCH = 16

SIZES = {
    # name: (vision hidden, vision MLP, vision heads, vision layers,
    #        text hidden, text MLP, text heads, text layers)
    "small": (384, 1536, 6, 6, 512, 1408, 8, 4),
    "medium": (768, 3072, 12, 12, 1024, 2816, 16, 8),
    "1b": (768, 3072, 12, 12, 2048, 5632, 32, 16),
}
# Sizes whose weights go to one external data file beside the model.
EXTERNAL = {"1b"}


def llava(size, vision_layers=None, text_layers=None, seed=0):
    vh, vi, vheads, vl, th, ti, theads, tl = SIZES[size]
    torch.manual_seed(seed)
    vision = CLIPVisionConfig(hidden_size=vh, intermediate_size=vi,
                              num_hidden_layers=vision_layers or vl,
                              num_attention_heads=vheads, image_size=IMAGE,
                              patch_size=PATCH, projection_dim=vh)
    text = LlamaConfig(vocab_size=32000, hidden_size=th, intermediate_size=ti,
                       num_hidden_layers=text_layers or tl,
                       num_attention_heads=theads, num_key_value_heads=theads,
                       max_position_embeddings=1024, rms_norm_eps=1e-6,
                       tie_word_embeddings=False)
    cfg = LlavaConfig(vision_config=vision, text_config=text,
                      image_token_index=IMAGE_TOKEN, projector_hidden_act="gelu",
                      vision_feature_layer=-2,
                      vision_feature_select_strategy="default")
    return LlavaForConditionalGeneration(cfg).eval(), cfg


def example_inputs(seq=256, seed=0, batch=1):
    g = torch.Generator().manual_seed(seed)
    n_img = (IMAGE // PATCH) ** 2  # "default" strategy drops CLS
    if seq < n_img + 2:
        raise SystemExit(f"--seq must be at least {n_img + 2} (196 image tokens)")
    if batch < 1:
        raise SystemExit(f"--batch must be at least 1, got {batch}")
    ids = torch.randint(0, 31000, (batch, seq), generator=g)
    ids[:, 1:1 + n_img] = IMAGE_TOKEN
    pix = torch.randn(batch, 3, IMAGE, IMAGE, generator=g)
    mask = torch.ones(batch, seq, dtype=torch.int64)
    return ids, pix, mask


def export(out_dir, size, vision_layers=None, text_layers=None, seq=256,
           name=None, batch=1, weights="f32"):
    """Writes the model (static batch and sequence) and its inputs; returns
    the .onnx path."""
    os.makedirs(out_dir, exist_ok=True)
    name = name or (f"llava_{size}" if batch == 1 else f"llava_{size}_b{batch}")
    model, _ = llava(size, vision_layers, text_layers)
    ids, pix, mask = example_inputs(seq, batch=batch)
    path = os.path.join(out_dir, f"{name}.onnx")
    external = size in EXTERNAL
    # Over 2 GB, torch.onnx writes one file per tensor into the export's
    # directory: export into a scratch directory, then gather them into one
    # data file beside the model.
    target = path
    if external:
        scratch = tempfile.mkdtemp(dir=out_dir, prefix=f".{name}.")
        target = os.path.join(scratch, f"{name}.onnx")
    with torch.no_grad():
        torch.onnx.export(Logits(model), (ids, pix, mask), target,
                          input_names=["input_ids", "pixel_values", "attention_mask"],
                          output_names=["logits"], opset_version=18, dynamo=False)
    del model
    if weights != "f32":
        # A half-precision checkpoint computing in f32 (narrow_weights).
        from qslaw_tools.narrow_weights import narrow_model
        proto = narrow_model(onnx.load(target, load_external_data=True), weights)
        if not external:
            onnx.save(proto, path)
    if external:
        if weights == "f32":
            proto = onnx.load(target, load_external_data=True)
        if os.path.exists(path + ".data"):  # onnx appends to an existing one
            os.remove(path + ".data")
        onnx.save_model(proto, path, save_as_external_data=True,
                        all_tensors_to_one_file=True,
                        location=os.path.basename(path) + ".data",
                        size_threshold=1024)
        del proto
        shutil.rmtree(scratch)
    for n, v in (("input_ids", ids), ("pixel_values", pix), ("attention_mask", mask)):
        np.save(os.path.join(out_dir, f"{name}.{n}.npy"), v.numpy())
    return path


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out")
    p.add_argument("--size", choices=sorted(SIZES), default="small")
    p.add_argument("--vision-layers", type=int)
    p.add_argument("--text-layers", type=int)
    p.add_argument("--seq", type=int, default=256)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--name")
    p.add_argument("--weights", choices=("f32", "bf16", "f16"), default="f32",
                   help="store the float weights as bf16/f16, read through "
                        "Cast(to=FLOAT) (qslaw_tools.narrow_weights)")
    a = p.parse_args()
    path = export(a.out, a.size, a.vision_layers, a.text_layers, a.seq, a.name,
                  a.batch, a.weights)
    print(path, os.path.getsize(path))


if __name__ == "__main__":
    main()
