"""Builds the tiny LLaVA-style fixtures: random weights from transformers
configs (a tiny CLIP vision tower, a 2-layer MLP projector, a tiny LLaMA
decoder; a grouped-query-attention variant), exported with torch.onnx.

    .venv/bin/pip install torch transformers onnx_ir   # fixture generation only
    .venv/bin/python python/qslaw_tools/make_fixtures.py test/fixtures

The outputs are small enough to commit; CI does not need torch.
"""
import argparse
import os

import numpy as np
import torch
from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

IMAGE_TOKEN = 31
SEQ = 24
IMAGE = 28
PATCH = 14


def tiny_llava(kv_heads, seed):
    torch.manual_seed(seed)
    vision = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                              num_attention_heads=4, image_size=IMAGE, patch_size=PATCH,
                              projection_dim=32)
    text = LlamaConfig(vocab_size=48, hidden_size=64, intermediate_size=128,
                       num_hidden_layers=2, num_attention_heads=4,
                       num_key_value_heads=kv_heads, max_position_embeddings=64,
                       rms_norm_eps=1e-6, tie_word_embeddings=False)
    cfg = LlavaConfig(vision_config=vision, text_config=text, image_token_index=IMAGE_TOKEN,
                      projector_hidden_act="gelu", vision_feature_layer=-2,
                      vision_feature_select_strategy="default")
    model = LlavaForConditionalGeneration(cfg).eval()
    return model, cfg


class Logits(torch.nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, input_ids, pixel_values, attention_mask):
        out = self.m(input_ids=input_ids, pixel_values=pixel_values,
                     attention_mask=attention_mask, use_cache=False)
        return out.logits


def example_inputs(cfg):
    n_img = (IMAGE // PATCH) ** 2  # "default" strategy drops CLS
    ids = torch.randint(0, 30, (1, SEQ))
    ids[0, 1:1 + n_img] = IMAGE_TOKEN
    pix = torch.randn(1, 3, IMAGE, IMAGE)
    mask = torch.ones(1, SEQ, dtype=torch.int64)
    return ids, pix, mask


def export_with_batch(onnx_path, kv_heads, batch, out_path):
    """The fixture `onnx_path` (its weights, through torch_llava.load_model)
    re-exported with a static batch of `batch`: a compiled batch of B*k to
    compare k accumulated micro-batches of B against."""
    from qslaw_tools.torch_llava import load_model
    model, cfg = load_model(onnx_path, kv_heads)
    ids, pix, mask = example_inputs(cfg)
    ids, pix, mask = (t.repeat(batch, *([1] * (t.dim() - 1))) for t in (ids, pix, mask))
    torch.onnx.export(Logits(model), (ids, pix, mask), out_path,
                      input_names=["input_ids", "pixel_values", "attention_mask"],
                      output_names=["logits"], opset_version=18, dynamo=False)
    return out_path


def main():
    p = argparse.ArgumentParser()
    p.add_argument("out")
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)
    for name, kv in [("tiny_llava", 4), ("tiny_llava_gqa", 2)]:
        model, cfg = tiny_llava(kv, seed=0 if kv == 4 else 1)
        ids, pix, mask = example_inputs(cfg)
        path = os.path.join(a.out, f"{name}.onnx")
        torch.onnx.export(Logits(model), (ids, pix, mask), path,
                          input_names=["input_ids", "pixel_values", "attention_mask"],
                          output_names=["logits"], opset_version=18, dynamo=False)
        np.save(os.path.join(a.out, f"{name}.input_ids.npy"), ids.numpy())
        np.save(os.path.join(a.out, f"{name}.pixel_values.npy"), pix.numpy())
        np.save(os.path.join(a.out, f"{name}.attention_mask.npy"), mask.numpy())
        print(path, os.path.getsize(path))
    # The MatMulNBits variant, made by onnxruntime's own quantizer (w4, block
    # 32, asymmetric) on the language model's linears only.
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer
    import onnx
    src = onnx.load(os.path.join(a.out, "tiny_llava.onnx"))
    excl = [n.name for n in src.graph.node
            if n.op_type == "MatMul" and "language_model" not in n.name]
    q = MatMulNBitsQuantizer(src, block_size=32, is_symmetric=False, nodes_to_exclude=excl)
    q.process()
    onnx.save(q.model.model, os.path.join(a.out, "tiny_llava_w4g32_ort.onnx"))
    # The block-wise QDQ variant (DequantizeLinear, uint4, block 32 -> MatMul).
    from onnxruntime.quantization import QuantFormat
    src = onnx.load(os.path.join(a.out, "tiny_llava.onnx"))
    q = MatMulNBitsQuantizer(src, block_size=32, is_symmetric=False, nodes_to_exclude=excl,
                             quant_format=QuantFormat.QDQ, op_types_to_quantize=("MatMul",))
    q.process()
    onnx.save(q.model.model, os.path.join(a.out, "tiny_llava_w4g32_qdq.onnx"))


if __name__ == "__main__":
    main()
