"""Trains the digits reproduction's full-precision tiny LLaVA from scratch in
PyTorch (every parameter: vision tower, projector, language model) on the
training VQA records and text chunks, then exports it with torch.onnx like
make_fixtures (opset 18, dynamo=False; input_ids [1, S] int64, pixel_values
[1, 3, 32, 32], attention_mask [1, S] int64 -> logits) and checks that
onnxruntime reproduces torch's held-out figures.

    python -m qslaw_tools.repro.train_fp [DATA]      # default data/repro

Writes DATA/tiny_llava_digits.onnx and DATA/tiny_llava_digits.json (config,
training settings, held-out figures of torch and onnxruntime). Needs the
records of build_data. One CPU thread, a few minutes.
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

from qslaw_tools.repro import common as C
from qslaw_tools.repro import evaluate as E

ARCH = dict(vision_hidden=64, vision_intermediate=128, vision_layers=2, vision_heads=4,
            hidden=64, intermediate=192, layers=2, heads=4, kv_heads=4)


def make_model(seed=0, arch=ARCH):
    torch.manual_seed(seed)
    vision = CLIPVisionConfig(hidden_size=arch["vision_hidden"],
                              intermediate_size=arch["vision_intermediate"],
                              num_hidden_layers=arch["vision_layers"],
                              num_attention_heads=arch["vision_heads"],
                              image_size=C.IMAGE_SIZE, patch_size=C.PATCH_SIZE,
                              projection_dim=arch["vision_hidden"])
    text = LlamaConfig(vocab_size=C.VOCAB_SIZE, hidden_size=arch["hidden"],
                       intermediate_size=arch["intermediate"], num_hidden_layers=arch["layers"],
                       num_attention_heads=arch["heads"], num_key_value_heads=arch["kv_heads"],
                       max_position_embeddings=C.SEQ_LEN, rms_norm_eps=1e-6,
                       tie_word_embeddings=False, pad_token_id=C.PAD_ID,
                       bos_token_id=C.BOS_ID, eos_token_id=C.EOS_ID)
    cfg = LlavaConfig(vision_config=vision, text_config=text, image_token_index=C.IMAGE_TOKEN_ID,
                      projector_hidden_act="gelu", vision_feature_layer=-2,
                      vision_feature_select_strategy="default")
    return LlavaForConditionalGeneration(cfg), cfg


class Logits(torch.nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, input_ids, pixel_values, attention_mask):
        return self.m(input_ids=input_ids, pixel_values=pixel_values,
                      attention_mask=attention_mask, use_cache=False).logits


def tensors(path, with_images):
    recs = C.load_records(path)
    ids, labels, mask = (torch.from_numpy(np.stack(x)) for x in zip(*(C.padded(r) for r in recs)))
    pix = None
    if with_images:
        pix = torch.from_numpy(np.stack([C.record_image(r, path) for r in recs]))
    return ids, labels, mask, pix


def ce(logits, labels):
    return torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]),
                                             labels[:, 1:].reshape(-1), ignore_index=-100)


def torch_logits_fn(model):
    def fn(ids, mask, pix):
        with torch.no_grad():
            return model(input_ids=torch.from_numpy(ids)[None],
                         pixel_values=None if pix is None else torch.from_numpy(pix)[None],
                         attention_mask=torch.from_numpy(mask)[None],
                         use_cache=False).logits[0].numpy()
    return fn


def quick_eval(model, hmm, htx):
    """Held-out figures in batches (for the training log)."""
    with torch.no_grad():
        ok = n = 0
        for s in range(0, len(hmm[0]), 64):
            sl = slice(s, s + 64)
            lg = model(input_ids=hmm[0][sl], pixel_values=hmm[3][sl], attention_mask=hmm[2][sl],
                       use_cache=False).logits[:, :-1]
            tgt = hmm[1][sl][:, 1:]
            right = (lg.argmax(-1) == tgt) | (tgt == -100)
            ok += int(right.all(-1).sum())
            n += lg.shape[0]
        lg = model(input_ids=htx[0], attention_mask=htx[2], use_cache=False).logits
        ppl = math.exp(ce(lg, htx[1]).item())
    return ok / n, ppl


def train(data, steps, seed, lr, batch_mm, batch_text, log_every=250):
    mm = tensors(os.path.join(data, "train_mm.jsonl"), True)
    tx = tensors(os.path.join(data, "train_text.jsonl"), False)
    hmm = tensors(os.path.join(data, "heldout_mm.jsonl"), True)
    htx = tensors(os.path.join(data, "heldout_text.jsonl"), False)
    model, cfg = make_model(seed)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01, betas=(0.9, 0.98))
    warm = max(1, steps // 20)
    def lr_factor(s):
        return min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / steps)))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)
    g = torch.Generator().manual_seed(seed)
    t0 = time.time()
    log = []
    for step in range(steps):
        i = torch.randint(0, len(mm[0]), (batch_mm,), generator=g)
        j = torch.randint(0, len(tx[0]), (batch_text,), generator=g)
        out = model(input_ids=mm[0][i], pixel_values=mm[3][i], attention_mask=mm[2][i],
                    use_cache=False)
        loss_mm = ce(out.logits, mm[1][i])
        out = model(input_ids=tx[0][j], attention_mask=tx[2][j], use_cache=False)
        loss_tx = ce(out.logits, tx[1][j])
        loss = loss_mm + loss_tx
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if (step + 1) % log_every == 0 or step == 0:
            model.eval()
            acc, ppl = quick_eval(model, hmm, htx)
            model.train()
            rec = {"step": step + 1, "loss_mm": round(loss_mm.item(), 4),
                   "loss_text": round(loss_tx.item(), 4), "heldout_acc": round(acc, 4),
                   "heldout_ppl": round(ppl, 2), "s": round(time.time() - t0, 1)}
            log.append(rec)
            print(json.dumps(rec), file=sys.stderr, flush=True)
    return model.eval(), cfg, time.time() - t0, log


def export(model, path, data):
    recs = os.path.join(data, "heldout_mm.jsonl")
    rec = C.load_records(recs)[0]
    ids, _, mask = C.padded(rec)
    pix = C.record_image(rec, recs)
    args = (torch.from_numpy(ids)[None], torch.from_numpy(pix)[None], torch.from_numpy(mask)[None])
    torch.onnx.export(Logits(model), args, path,
                      input_names=["input_ids", "pixel_values", "attention_mask"],
                      output_names=["logits"], opset_version=18, dynamo=False)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m qslaw_tools.repro.train_fp")
    p.add_argument("data", nargs="?", default=C.DATA_DIR)
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--batch-mm", type=int, default=16)
    p.add_argument("--batch-text", type=int, default=4)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=None, help="ONNX path (default DATA/tiny_llava_digits.onnx)")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    out = a.out or os.path.join(a.data, C.MODEL_NAME + ".onnx")
    model, cfg, secs, log = train(a.data, a.steps, a.seed, a.lr, a.batch_mm, a.batch_text)
    t = time.time()
    fig_torch = E.evaluate(torch_logits_fn(model), a.data)
    print("torch:", json.dumps(fig_torch), file=sys.stderr)
    export(model, out, a.data)
    fig_ort = E.evaluate_onnx(out, a.data)
    print("onnxruntime:", json.dumps(fig_ort), file=sys.stderr)
    meta = {"onnx": os.path.basename(out), "onnx_bytes": os.path.getsize(out),
            "arch": ARCH, "seq_len": C.SEQ_LEN, "image_size": C.IMAGE_SIZE,
            "patch_size": C.PATCH_SIZE, "image_tokens": C.IMAGE_TOKENS,
            "image_token_id": C.IMAGE_TOKEN_ID, "vocab_size": C.VOCAB_SIZE, "pad_id": C.PAD_ID,
            "parameters": sum(p.numel() for p in model.parameters()),
            "language_model_parameters": sum(p.numel() for n, p in model.named_parameters()
                                             if "language_model" in n),
            "training": {"steps": a.steps, "seed": a.seed, "lr": a.lr, "batch_mm": a.batch_mm,
                         "batch_text": a.batch_text, "optimizer": "AdamW wd 0.01 betas 0.9/0.98, "
                         "cosine, 5% warmup, grad clip 1.0", "threads": a.threads,
                         "seconds": round(secs, 1), "torch": torch.__version__, "log": log},
            "heldout_torch": fig_torch, "heldout_onnxruntime": fig_ort,
            "eval_seconds": round(time.time() - t, 1)}
    with open(os.path.splitext(out)[0] + ".json", "w") as f:
        json.dump(meta, f, indent=1)
    print(json.dumps({k: meta[k] for k in ("heldout_torch", "heldout_onnxruntime")}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
