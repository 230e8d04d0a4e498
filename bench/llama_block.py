"""One LLaMA-7B-shaped decoder block (hidden 4096, MLP 11008, 32 heads,
sequence 1024, batch 4): the QSLAW training step (w4 g128 asymmetric, scale
mode, every linear quantised, scales trained with AdamW, loss sum(y^2)
of the block's output), qslaw's --target=cuda library against the PyTorch
QSLAW reference (transformers' LlamaModel with one layer, fake-quant linears
from qslaw_tools/torch_llava.py, autograd, torch.optim.AdamW) on the same
GPU, the same weights and the same batch.

    # on the compiler machine (LLVM, about 3 GB of RAM for the 7B shape):
    .venv/bin/python bench/llama_block.py prepare --shape 7b --out DIR
    # DIR holds block.so and block.so.weights.xz (the weights file, about
    # 108 MB, compressed so that DIR fits a device call); then on the GPU:
    QSLAW_BUILD_DIR=ART LD_LIBRARY_PATH=ART/lib python3 bench/llama_block.py \
        bench --shape 7b --artifacts DIR
    # (ART from bench/cuda_artifacts.sh: the runtime libraries)

The weights are periodic (a random 64 x 128 tile repeated over each matrix)
so that the compressed weights file travels; the kernels' work does not
depend on the values (dense integer codes, no sparsity), so the timing is
that of any 7B block. Time: median ms per step over alternating rounds,
synchronised after each step; parameters, moments and the batch stay on the
device for both sides. Memory: peak bytes of qslaw's caching allocator vs
torch.cuda.max_memory_allocated (weights, activations, gradients, optimizer
state). The first step's losses of the two sides are compared.
"""
import argparse
import json
import lzma
import math
import os
import shutil
import statistics
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "python"))

SHAPES = {
    "7b": dict(hidden=4096, mlp=11008, heads=32, seq=1024, batch=4),
    # For checking the whole path on a CPU (python/tests/test_llama_block_bench.py).
    "small": dict(hidden=128, mlp=384, heads=4, seq=16, batch=2),
}
QUANT = "w4g128"
BITS, GROUP = 4, 128
LR = 1e-3
TILE = (64, 128)


def make_block(shape, seed=0):
    """transformers' LlamaModel with one decoder layer and periodic weights."""
    import torch
    from transformers import LlamaConfig, LlamaModel
    s = SHAPES[shape]
    cfg = LlamaConfig(vocab_size=32, hidden_size=s["hidden"], intermediate_size=s["mlp"],
                      num_hidden_layers=1, num_attention_heads=s["heads"],
                      num_key_value_heads=s["heads"], max_position_embeddings=s["seq"],
                      rms_norm_eps=1e-6, tie_word_embeddings=False)
    cfg._attn_implementation = "eager"
    model = LlamaModel(cfg).eval()
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 2 and "embed" not in name:
                n, k = p.shape
                tile = rng.standard_normal(TILE).astype(np.float32) / math.sqrt(k)
                w = np.tile(tile, (-(-n // TILE[0]), -(-k // TILE[1])))[:n, :k]
            else:
                w = (1 + 0.1 * rng.standard_normal(p.shape)).astype(np.float32)
            p.copy_(torch.from_numpy(np.ascontiguousarray(w)))
    return model


class Block:
    """Wraps the model for export and reference: (hidden, mask) -> hidden."""

    @staticmethod
    def module(model):
        import torch

        class M(torch.nn.Module):
            def __init__(self, m):
                super().__init__()
                self.m = m

            def forward(self, hidden, attention_mask):
                return self.m(inputs_embeds=hidden, attention_mask=attention_mask,
                              use_cache=False).last_hidden_state
        return M(model)


def batch(shape, seed=1):
    s = SHAPES[shape]
    rng = np.random.default_rng(seed)
    hidden = rng.standard_normal((s["batch"], s["seq"], s["hidden"])).astype(np.float32)
    mask = np.ones((s["batch"], s["seq"]), np.int64)
    return hidden, mask


def export_onnx(shape, path):
    """The block as ONNX (opset 18, TorchScript exporter, as the fixtures):
    inputs hidden [B, T, H] and attention_mask [B, T], output out."""
    import torch
    hidden, mask = batch(shape)
    with torch.no_grad():
        torch.onnx.export(Block.module(make_block(shape)),
                          (torch.from_numpy(hidden), torch.from_numpy(mask)), path,
                          input_names=["hidden", "attention_mask"], output_names=["out"],
                          opset_version=18, dynamo=False)


# Library variants: the generated kernels (f32), and the hand-written w4
# kernels for every quantised matmul and its gradients (bf16 tensor cores,
# --cuda-hand-kernels; the other ops stay generated).
VARIANTS = {"generated": ("block.so", []),
            "hand": ("block_hand.so", ["--cuda-hand-kernels=bf16"])}


def prepare(shape, out, target="cuda", extra=(), variants=("generated",)):
    """Exports the block to ONNX and compiles its training library with
    external weights into `out`, once per variant; returns the paths."""
    from qslaw_tools.runner import tool
    os.makedirs(out, exist_ok=True)
    onnx_path = os.path.join(out, "block.onnx")
    export_onnx(shape, onnx_path)
    libs = []
    for v in variants:
        name, flags = VARIANTS[v]
        lib = os.path.join(out, name)
        cmd = [tool("qslaw-compile"), onnx_path, f"--target={target}", f"--quantize={QUANT}",
               "--quantize-layers=.*", "--train", "--train-loss=sum-squares",
               "--weights=external", "-o", lib, *extra, *flags]
        subprocess.run(cmd, check=True)
        libs.append(lib)
    os.remove(onnx_path)
    return libs


def compress(lib):
    with open(lib + ".weights", "rb") as f, lzma.open(lib + ".weights.xz", "wb",
                                                       preset=6) as g:
        shutil.copyfileobj(f, g, 1 << 24)
    os.remove(lib + ".weights")


def decompress(lib):
    if not os.path.exists(lib + ".weights"):
        with lzma.open(lib + ".weights.xz", "rb") as f, open(lib + ".weights", "wb") as g:
            shutil.copyfileobj(f, g, 1 << 24)


def qslaw_steps(model, shape, steps, lr=LR, times=None):
    """`steps` train_step calls with parameters, moments and the batch in the
    session state; returns the losses (and appends each step's seconds to
    `times`)."""
    model.drop_state()
    n = len(model.start_training())
    hidden, mask = batch(shape)
    model.set_state("hidden", hidden)
    model.set_state("attention_mask", mask, dtype="i64")
    losses = []
    for step in range(1, steps + 1):
        start = time.perf_counter()
        out = model.train_step(dict(lrs=np.full(n, lr, np.float32),
                                    step=np.array(step, np.float32)))
        if times is not None:
            times.append(time.perf_counter() - start)
        losses.append(float(out[0]))
    return losses


def reference(shape, device):
    """The PyTorch QSLAW reference: every linear fake-quantised (qslaw's RTN
    initialisation), only the scales train."""
    import torch
    from qslaw_tools import torch_llava as tl
    model = make_block(shape)
    qs = tl.quantize_model(model, r".*", BITS, GROUP, "scale")
    for p in model.parameters():
        p.requires_grad_(False)
    scales = [q.scales for q in qs.values()]
    for s in scales:
        s.requires_grad_(True)
    model = model.to(device)
    opt = torch.optim.AdamW(scales, lr=LR, weight_decay=0.0)
    hidden, mask = batch(shape)
    x = torch.from_numpy(hidden).to(device)
    m = torch.from_numpy(mask).to(device)
    block = Block.module(model)

    def step():
        opt.zero_grad(set_to_none=True)
        y = block(x, m)
        loss = (y * y).sum()
        loss.backward()
        opt.step()
        return loss.item()
    return step


def torch_steps(shape, steps, device="cpu"):
    step = reference(shape, device)
    return [step() for _ in range(steps)]


def bench(shape, artifacts, rounds, reps, out_json, device="cuda",
          variants=tuple(VARIANTS)):
    """Every library variant in `artifacts` against the same reference, one
    variant loaded at a time (its peak memory alone). device="cpu" is a dry
    run of this function on CPU-compiled libraries (prepare(...,
    target="cpu")): the same steps and timing, no GPU memory figures;
    python/tests/test_llama_block_bench.py runs it so that the GPU minutes
    are not spent finding bugs in this script."""
    import torch
    from qslaw_tools.runtime import (Model, cuda_memory_stats,
                                     reset_cuda_peak_memory)
    gpu = device == "cuda"
    sync = torch.cuda.synchronize if gpu else (lambda: None)
    if gpu:
        torch.cuda.reset_peak_memory_stats()
    ref_step = reference(shape, device)
    ref_first = ref_step()
    sync()
    res = {
        "device": torch.cuda.get_device_name() if gpu else "cpu (dry run)",
        "cuda": torch.version.cuda if gpu else None,
        "date": time.strftime("%Y-%m-%d"),
        "shape": SHAPES[shape], "quant": QUANT, "mode": "scale",
        "torch_first_loss": ref_first, "variants": {},
        # whether AUTO may pick the hand kernels' wgmma forms (read by
        # libqslaw_cuda_kernels.so at load)
        "auto_wgmma": os.environ.get("QSLAW_W4_AUTO_WGMMA", "0"),
    }
    ref_t = []
    for variant, (name, _) in VARIANTS.items():
        if variant not in variants:
            continue
        lib = os.path.join(artifacts, name)
        if not os.path.exists(lib):
            continue
        decompress(lib)
        if gpu:
            reset_cuda_peak_memory()
        model = Model(lib, device=device)
        # Also loads the kernels and uploads (and packs) the weights: untimed.
        ours_first = qslaw_steps(model, shape, 1)[0]
        ours_t = []
        for _ in range(rounds):
            qslaw_steps(model, shape, reps, times=ours_t)  # each run waits for the GPU
            for _ in range(reps):
                sync()
                start = time.perf_counter()
                ref_step()
                sync()
                ref_t.append(time.perf_counter() - start)
        # Every device buffer qslaw holds (weights included) comes from its
        # caching allocator.
        peak = cuda_memory_stats()["peak_allocated"] if gpu else None
        del model  # unloads the library: its device weights are released
        r = {"steps_timed": len(ours_t), "qslaw_ms": 1e3 * statistics.median(ours_t),
             "qslaw_peak_bytes": peak, "first_loss": ours_first,
             "first_loss_rel_diff": abs(ours_first - ref_first) / abs(ref_first)}
        res["variants"][variant] = r
    if not res["variants"]:
        raise SystemExit(f"no library of {sorted(v[0] for v in VARIANTS.values())} "
                         f"in {artifacts}")
    res["torch_ms"] = 1e3 * statistics.median(ref_t)
    res["torch_peak_bytes"] = torch.cuda.max_memory_allocated() if gpu else None
    for r in res["variants"].values():
        r["speedup"] = res["torch_ms"] / r["qslaw_ms"]
        if gpu:
            r["memory_ratio"] = r["qslaw_peak_bytes"] / res["torch_peak_bytes"]
    print(json.dumps(res, indent=1))
    if out_json:
        with open(out_json, "w") as f:
            json.dump(res, f, indent=1)
    return res


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--shape", default="7b", choices=SHAPES)
    p.add_argument("--out", required=True)
    p.add_argument("--chips", default="sm_90a")
    p.add_argument("--target", default="cuda", choices=["cuda", "cpu"])
    p.add_argument("--variants", default="generated,hand",
                   help=f"comma-separated, of {', '.join(VARIANTS)} (hand needs "
                        "--target cuda)")
    b = sub.add_parser("bench")
    b.add_argument("--shape", default="7b", choices=SHAPES)
    b.add_argument("--artifacts", required=True)
    b.add_argument("--rounds", type=int, default=3)
    b.add_argument("--reps", type=int, default=3)
    b.add_argument("--json", default=None)
    b.add_argument("--device", default="cuda", choices=["cuda", "cpu"],
                   help="cpu: dry run on a library from prepare --target cpu")
    b.add_argument("--variants", default=",".join(VARIANTS),
                   help=f"comma-separated, of {', '.join(VARIANTS)}")
    a = ap.parse_args()
    if a.cmd == "prepare":
        start = time.time()
        gpu_args = (f"--gpu-chips={a.chips}", "--gpu-format=bin") if a.target == "cuda" else ()
        for lib in prepare(a.shape, a.out, target=a.target, extra=gpu_args,
                           variants=a.variants.split(",")):
            compress(lib)
            print(f"{lib}: {os.path.getsize(lib) / 2**20:.1f} MiB, weights "
                  f"{os.path.getsize(lib + '.weights.xz') / 2**20:.1f} MiB compressed")
        print(f"{time.time() - start:.0f} s")
    else:
        unknown = set(a.variants.split(",")) - set(VARIANTS)
        if unknown:
            ap.error(f"--variants: unknown {', '.join(sorted(unknown))} "
                     f"(known: {', '.join(VARIANTS)})")
        bench(a.shape, a.artifacts, a.rounds, a.reps, a.json, a.device,
              a.variants.split(","))


if __name__ == "__main__":
    main()
