"""One QSLAW training step of the tiny LLaVA fixtures: qslaw's compiled
@train_step (fused qmatmul gradients, AdamW inside the step) against the
PyTorch reference (qslaw_tools/torch_llava.py: transformers model, fake-quant
linears, autograd, torch.optim.AdamW) on the same CPU, same batch, same
trainable sets, both scale modes.

Time: median ms per step over alternating rounds (qslaw, torch, qslaw, ...),
both single-threaded (torch.set_num_threads(1); qslaw's step runs on one
thread) and torch with all cores as a second figure.
Memory: each side in its own child process; peak RSS of the process
(VmHWM) and the step's own growth (peak after the steps minus peak
before the first step, i.e. activations, gradients and optimizer work
memory on top of the loaded model).

    OPENBLAS_NUM_THREADS=1 QSLAW_BUILD_DIR=build .venv/bin/python bench/train_step_cpu.py [--rounds 5 --reps 10]
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "python"))
from qslaw_tools.runner import ROOT, tool  # noqa: E402

FIX = os.path.join(ROOT, "test", "fixtures")
LAYERS = r".*language_model.*layers.*"
IMAGE_TOKEN = 31


def batch(name):
    ids = np.load(os.path.join(FIX, f"{name}.input_ids.npy"))
    pix = np.load(os.path.join(FIX, f"{name}.pixel_values.npy"))
    mask = np.load(os.path.join(FIX, f"{name}.attention_mask.npy"))
    labels = ids.copy()
    labels[ids == IMAGE_TOKEN] = -100
    return ids, pix, mask, labels


def maxrss_mb():
    """This process's peak RSS (VmHWM: unlike ru_maxrss, not inherited from
    the parent across fork + exec)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class QslawStep:
    def __init__(self, lib):
        from qslaw_tools.runtime import Model
        self.m = Model(lib)
        self.params = self.m.signature.training.params
        self.state = self.m.run_function("init_params", {})
        self.mom = [np.zeros_like(p) for p in self.state]
        self.vel = [np.zeros_like(p) for p in self.state]
        self.k = 0

    def __call__(self, ids, pix, mask, labels):
        self.k += 1
        feeds = {p.name: a for p, a in zip(self.params, self.state)}
        feeds.update({"exp_avg." + p.name: a for p, a in zip(self.params, self.mom)})
        feeds.update({"exp_avg_sq." + p.name: a for p, a in zip(self.params, self.vel)})
        feeds.update(lrs=np.full(len(self.params), 1e-4, np.float32),
                     step=np.array(self.k, np.float32), input_ids=ids,
                     pixel_values=pix, attention_mask=mask, labels=labels)
        out = self.m.run_function("train_step", feeds)
        n = len(self.params)
        self.state, self.mom, self.vel = out[2:2 + n], out[2 + n:2 + 2 * n], out[2 + 2 * n:]
        return float(out[0])


class TorchStep:
    def __init__(self, name, mode):
        import torch
        from qslaw_tools import torch_llava as tl
        self.torch, self.tl = torch, tl
        self.model, trainable = tl.reference_trainer(
            os.path.join(FIX, f"{name}.onnx"), kv_heads=4 if name == "tiny_llava" else 2,
            layers=LAYERS, bits=4, group=32, mode=mode)
        self.opt = torch.optim.AdamW(list(trainable.values()), lr=1e-4, weight_decay=0.0)

    def __call__(self, ids, pix, mask, labels):
        t = [self.torch.from_numpy(a) for a in (ids, pix, mask, labels)]
        self.opt.zero_grad()
        loss = self.tl.next_token_loss(self.tl.forward_logits(self.model, *t[:3]), t[3])
        loss.backward()
        self.opt.step()
        return loss.item()


def child(args):
    """Memory of one side, in a fresh process."""
    if args.side == "torch":
        import torch
        torch.set_num_threads(1)
        step = TorchStep(args.name, args.mode)
    else:
        step = QslawStep(args.lib)
    b = batch(args.name)
    before = maxrss_mb()
    for _ in range(5):
        step(*b)
    after = maxrss_mb()
    print(json.dumps({"peak_mb": after, "step_mb": after - before}))


def trainer_step(lib, steps=1000, runs=3):
    """The product path: the C++ training loop (qslaw-train over the same
    library; batch 1 x 24 tokens like the fixture batch, the bundled
    records, no checkpoints) -- ms per step (median of runs, whole process
    wall time / steps, start-up included) and its peak RSS."""
    data = os.path.join(FIX, "train", "records.jsonl")
    ms, rss = [], []
    with tempfile.TemporaryDirectory() as d:
        for _ in range(runs):
            t0 = time.perf_counter()
            p = subprocess.run(["/usr/bin/time", "-f", "%M", tool("qslaw-train"), f"--model={lib}",
                                f"--data={data}", f"--steps={steps}", f"--out={d}", "--quiet",
                                "--checkpoint-every=0", "--preset=none"],
                               check=True, capture_output=True, text=True)
            ms.append((time.perf_counter() - t0) * 1e3 / steps)
            rss.append(int(p.stderr.strip().splitlines()[-1]) / 1024)
    return statistics.median(ms), max(rss)


def memory(side, name, mode, lib):
    out = subprocess.run([sys.executable, __file__, "--child", side, "--name", name,
                          "--mode", mode, "--lib", lib or ""],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--reps", type=int, default=10)
    p.add_argument("--models", default="tiny_llava,tiny_llava_gqa")
    p.add_argument("--modes", default="scale,gamma")
    p.add_argument("--child", dest="side")
    p.add_argument("--name")
    p.add_argument("--mode")
    p.add_argument("--lib")
    p.add_argument("--json", default=os.path.join(ROOT, "bench", "results", "train_step_cpu.json"))
    a = p.parse_args()
    if a.side:
        return child(a)
    import torch
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for name in a.models.split(","):
            for mode in a.modes.split(","):
                lib = os.path.join(d, f"{name}_{mode}.so")
                subprocess.run([tool("qslaw-compile"), os.path.join(FIX, f"{name}.onnx"),
                                f"--quantize=w4g32,mode={mode}", f"--quantize-layers={LAYERS}",
                                "--train", "-o", lib], check=True, capture_output=True)
                b = batch(name)
                ours, ref = QslawStep(lib), TorchStep(name, mode)
                for _ in range(3):  # warm-up
                    ours(*b)
                    ref(*b)
                tq, t1, tn = [], [], []
                for _ in range(a.rounds):
                    for fn, acc, threads in [(ours, tq, 1), (ref, t1, 1), (ref, tn, os.cpu_count())]:
                        torch.set_num_threads(threads)
                        for _ in range(a.reps):
                            t0 = time.perf_counter()
                            fn(*b)
                            acc.append((time.perf_counter() - t0) * 1e3)
                mq, mt = memory("qslaw", name, mode, lib), memory("torch", name, mode, None)
                tr_ms, tr_rss = trainer_step(lib)
                row = dict(model=name, mode=mode, qslaw_ms=statistics.median(tq),
                           trainer_ms=tr_ms, trainer_peak_mb=tr_rss,
                           torch1_ms=statistics.median(t1), torchN_ms=statistics.median(tn),
                           qslaw_peak_mb=mq["peak_mb"], torch_peak_mb=mt["peak_mb"],
                           qslaw_step_mb=mq["step_mb"], torch_step_mb=mt["step_mb"])
                rows.append(row)
                print(json.dumps(row), flush=True)
    os.makedirs(os.path.dirname(a.json), exist_ok=True)
    with open(a.json, "w") as f:
        json.dump(rows, f, indent=1)
    print(f"\n| model | mode | qslaw trainer ms | qslaw via Python ms | torch ms (1 thr) "
          f"| torch ms ({os.cpu_count()} thr) | speed-up trainer / via Python "
          "| peak RSS MB trainer / torch | step growth MB qslaw / torch |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['mode']} | {r['trainer_ms']:.2f} | {r['qslaw_ms']:.2f} | "
              f"{r['torch1_ms']:.2f} | {r['torchN_ms']:.2f} | "
              f"**{r['torch1_ms'] / r['trainer_ms']:.1f}x** / {r['torch1_ms'] / r['qslaw_ms']:.1f}x | "
              f"{r['trainer_peak_mb']:.0f} / {r['torch_peak_mb']:.0f} "
              f"({r['trainer_peak_mb'] / r['torch_peak_mb']:.2f}x) | "
              f"{r['qslaw_step_mb']:.1f} / {r['torch_step_mb']:.1f} |")


if __name__ == "__main__":
    main()
