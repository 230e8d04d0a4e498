"""The tiny LLaVA's QSLAW training step on the GPU: qslaw's --target=cuda
libraries (generated kernels; and the hand-written w4 kernels for the
quantised matmuls, --cuda-hand-kernels=bf16), through the C runtime, each
against the PyTorch QSLAW
reference (qslaw_tools/torch_llava.py: fake-quant linears, autograd,
torch.optim.AdamW) on the same GPU, same batch, scale mode, w4 g32.

Time: median ms per step over alternating rounds (qslaw, torch, ...), with
the device synchronised after each step. On the qslaw side the parameters and
AdamW moments stay in the session state (device memory), as in the trainer;
a step sends the batch, `lrs` and `step` and reads back the loss and the
gradient norm.
Memory: peak bytes held by qslaw's caching allocator during the steps
(qslaw_cuda_get_memory_stats; weights included) vs
torch.cuda.max_memory_allocated.

Needs the libraries from bench/cuda_artifacts.sh:
    QSLAW_BUILD_DIR=DIR LD_LIBRARY_PATH=DIR/lib python bench/train_step_cuda.py --artifacts DIR/models
--device cpu --library L is a dry run of this script on a CPU-compiled
library (python/tests/test_bench_dry_run.py), so that GPU minutes are not
spent on bugs in it.
"""
import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "python"))
sys.path.insert(0, os.path.join(HERE, "..", "python", "tests"))


def run(library, device="cuda", rounds=5, reps=10, out=None):
    import torch
    import test_train_step_torch as ref_tests
    from qslaw_tools import torch_llava as tl
    from qslaw_tools.runtime import Model, cuda_memory_stats, reset_cuda_peak_memory

    name, mode, lr = "tiny_llava", "scale", 2e-3
    gpu = device == "cuda"
    sync = torch.cuda.synchronize if gpu else (lambda: None)
    lib = Model(library, device=device)
    n_params = len(lib.start_training())
    ids, pix, mask, labels = ref_tests.batch(name)
    step_no = [0]

    def qslaw_step():
        step_no[0] += 1
        out = lib.train_step(dict(  # returns after the device has finished
            lrs=np.full(n_params, lr, np.float32), step=np.array(step_no[0], np.float32),
            input_ids=ids, pixel_values=pix, attention_mask=mask, labels=labels))
        return float(out[0])

    model, trainable = ref_tests.reference(name, mode)
    model = model.to(device)
    opt = torch.optim.AdamW(list(trainable.values()), lr=lr, weight_decay=0.0)
    t = [torch.from_numpy(a).to(device) for a in (ids, pix, mask, labels)]

    def torch_step():
        opt.zero_grad()
        loss = tl.next_token_loss(tl.forward_logits(model, *t[:3]), t[3])
        loss.backward()
        opt.step()
        sync()
        return loss.item()

    first = {"qslaw": qslaw_step(), "torch": torch_step()}
    for _ in range(2):  # warm-up: module loads, weight uploads, cuBLAS handles
        qslaw_step()
        torch_step()
    if gpu:
        reset_cuda_peak_memory()
        torch.cuda.reset_peak_memory_stats()
    times = {"qslaw": [], "torch": []}
    for _ in range(rounds):
        for label, fn in (("qslaw", qslaw_step), ("torch", torch_step)):
            for _ in range(reps):
                start = time.perf_counter()
                fn()
                times[label].append((time.perf_counter() - start) * 1e3)
    result = {
        "device": torch.cuda.get_device_name() if gpu else "cpu (dry run)",
        "date": time.strftime("%Y-%m-%d"),
        "steps_each": rounds * reps,
        "first_loss": first,
        "qslaw_ms_median": statistics.median(times["qslaw"]),
        "torch_ms_median": statistics.median(times["torch"]),
    }
    result["speedup"] = result["torch_ms_median"] / result["qslaw_ms_median"]
    if gpu:
        stats = cuda_memory_stats()
        result.update(qslaw_peak_bytes=stats["peak_allocated"],
                      qslaw_peak_reserved_bytes=stats["peak_reserved"],
                      qslaw_driver_allocations=stats["driver_allocations"],
                      torch_peak_bytes=torch.cuda.max_memory_allocated())
        result["memory_ratio"] = result["qslaw_peak_bytes"] / result["torch_peak_bytes"]
    print(json.dumps(result, indent=1))
    if out:
        with open(out, "w") as f:
            json.dump(result, f, indent=1)
    return result


# --artifacts: the libraries of python/tests/test_cuda_target.py's ARTIFACTS.
VARIANTS = {"generated": "tiny_llava_scale_train.so",
            "hand": "tiny_llava_scale_train_hand.so"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--artifacts", help="DIR/models from bench/cuda_artifacts.sh: "
                                        "runs every variant found there")
    ap.add_argument("--library", help="one training library instead")
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    if args.library:
        run(args.library, args.device, args.rounds, args.reps, args.out)
        return
    if not args.artifacts:
        ap.error("give --artifacts or --library")
    results = {}
    for variant, name in VARIANTS.items():  # one at a time: its own peak memory
        path = os.path.join(args.artifacts, name)
        if os.path.exists(path):
            results[variant] = run(path, args.device, args.rounds, args.reps)
    if not results:
        ap.error(f"none of {sorted(VARIANTS.values())} in {args.artifacts}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
