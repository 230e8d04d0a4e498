"""The tiny LLaVA's QSLAW training step on the GPU: qslaw's --target=cuda
library (generated kernels, through the C runtime) against the PyTorch QSLAW
reference (qslaw_tools/torch_llava.py: fake-quant linears, autograd,
torch.optim.AdamW) on the same GPU, same batch, scale mode, w4 g32.

Time: median ms per step over alternating rounds (qslaw, torch, ...), with
the device synchronised after each step. qslaw's figure includes what the
session API does every call: staging parameters, optimizer state and the
batch host->device and the outputs back.
Memory: peak bytes held by qslaw's caching allocator during the steps
(qslaw_cuda_get_memory_stats) vs torch.cuda.max_memory_allocated.

Needs the libraries from bench/cuda_artifacts.sh:
    QSLAW_BUILD_DIR=DIR LD_LIBRARY_PATH=DIR/lib python bench/train_step_cuda.py --artifacts DIR/models
"""
import argparse
import ctypes
import json
import os
import statistics
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "python"))
sys.path.insert(0, os.path.join(HERE, "..", "python", "tests"))


class Stats(ctypes.Structure):
    _fields_ = [("allocated", ctypes.c_size_t), ("peak_allocated", ctypes.c_size_t),
                ("reserved", ctypes.c_size_t), ("peak_reserved", ctypes.c_size_t),
                ("driver_allocations", ctypes.c_uint64)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--artifacts", required=True)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    import torch
    import test_train_step_torch as ref_tests
    from qslaw_tools import torch_llava as tl
    from qslaw_tools.runtime import Model

    name, mode, lr = "tiny_llava", "scale", 2e-3
    lib = Model(os.path.join(args.artifacts, f"{name}_{mode}_train.so"), device="cuda")
    cuda_rt = ctypes.CDLL("libqslaw_cuda_runtime.so")
    params = lib.signature["training"]["params"]
    state = lib.run_function("init_params", {})
    m = [np.zeros_like(p) for p in state]
    v = [np.zeros_like(p) for p in state]
    ids, pix, mask, labels = ref_tests.batch(name)
    step_no = [0]

    def qslaw_step():
        nonlocal state, m, v
        step_no[0] += 1
        feeds = {p["name"]: a for p, a in zip(params, state)}
        feeds.update({"exp_avg." + p["name"]: a for p, a in zip(params, m)})
        feeds.update({"exp_avg_sq." + p["name"]: a for p, a in zip(params, v)})
        feeds.update(lrs=np.full(len(params), lr, np.float32),
                     step=np.array(step_no[0], np.float32), input_ids=ids,
                     pixel_values=pix, attention_mask=mask, labels=labels)
        out = lib.run_function("train_step", feeds)  # returns after a sync
        n = len(params)
        state, m, v = out[2:2 + n], out[2 + n:2 + 2 * n], out[2 + 2 * n:]
        return float(out[0])

    model, trainable = ref_tests.reference(name, mode)
    model = model.cuda()
    opt = torch.optim.AdamW(list(trainable.values()), lr=lr, weight_decay=0.0)
    t = [torch.from_numpy(a).cuda() for a in (ids, pix, mask, labels)]

    def torch_step():
        opt.zero_grad()
        loss = tl.next_token_loss(tl.forward_logits(model, *t[:3]), t[3])
        loss.backward()
        opt.step()
        torch.cuda.synchronize()
        return loss.item()

    for _ in range(3):  # warm-up: module loads, cuBLAS handles, caches
        qslaw_step()
        torch_step()
    cuda_rt.qslaw_cuda_reset_peak_memory()
    torch.cuda.reset_peak_memory_stats()
    times = {"qslaw": [], "torch": []}
    for _ in range(args.rounds):
        for label, fn in (("qslaw", qslaw_step), ("torch", torch_step)):
            for _ in range(args.reps):
                start = time.perf_counter()
                fn()
                times[label].append((time.perf_counter() - start) * 1e3)
    stats = Stats()
    cuda_rt.qslaw_cuda_get_memory_stats(ctypes.byref(stats))
    result = {
        "device": torch.cuda.get_device_name(),
        "steps_each": args.rounds * args.reps,
        "qslaw_ms_median": statistics.median(times["qslaw"]),
        "torch_ms_median": statistics.median(times["torch"]),
        "qslaw_peak_bytes": stats.peak_allocated,
        "qslaw_peak_reserved_bytes": stats.peak_reserved,
        "qslaw_driver_allocations": stats.driver_allocations,
        "torch_peak_bytes": torch.cuda.max_memory_allocated(),
    }
    result["speedup"] = result["torch_ms_median"] / result["qslaw_ms_median"]
    result["memory_ratio"] = result["qslaw_peak_bytes"] / result["torch_peak_bytes"]
    print(json.dumps(result, indent=1))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
