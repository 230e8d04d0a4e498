#!/usr/bin/env python3
"""Benchmark of qslaw's hand-written w4 CUDA kernels against cuBLAS (H100).

For N x K in {4096x4096, 11008x4096, 4096x11008}, w4 g128 asymmetric,
bf16 and fp16 activations, M in {1, 16, 128, 1024, 4096}:
  * forward Y = X·Ŵᵀ (ours, fused dequant) vs torch.matmul on the float
    weight in the same dtype (cuBLAS) vs the roofline
    max(bytes / BW, 2MNK / peak), BW from a device-to-device copy and the
    peak from an 8192³ cuBLAS GEMM of the same dtype, both in this run;
  * ds (scale mode) fused vs unfused (cuBLAS dYᵀX + group reduction in
    torch) vs the bare cuBLAS dYᵀX GEMM of the same M, N, K;
  * dX = dY·Ŵ vs cuBLAS dY·W.
Every timing: CUDA graph of R launches cycling over enough buffer copies to
defeat the 50 MB L2, timed with CUDA events, warm-up, median of replays.
Writes JSON (default bench/results/qmatmul_cuda_h100.json) and prints a
markdown table.
"""

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile

import torch

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(REPO, "lib", "CUDA", "Kernels"))
import qmatmul_w4 as qk  # noqa: E402

DEV = "cuda"
L2_DEFEAT_BYTES = 256 << 20


def copies_for(nbytes):
    return max(1, min(16, -(-L2_DEFEAT_BYTES // max(nbytes, 1))))


def time_graph(fns, reps=20, inner=None):
    """fns: list of zero-arg callables (one per buffer copy). Captures a
    graph that calls them round-robin `inner` times, returns median seconds
    per call."""
    n = len(fns)
    inner = inner or max(n, 8)
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for i in range(max(n, 3)):
            fns[i % n]()
    torch.cuda.current_stream().wait_stream(s)
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        for i in range(inner):
            fns[i % n]()
    for _ in range(3):
        g.replay()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        a = torch.cuda.Event(enable_timing=True)
        b = torch.cuda.Event(enable_timing=True)
        a.record()
        g.replay()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b) * 1e-3 / inner)
    del g
    return statistics.median(times)


def measure_bw():
    n = 1 << 30
    src = torch.empty(n, dtype=torch.uint8, device=DEV).random_(0, 255)
    dst = torch.empty_like(src)
    t = time_graph([lambda: dst.copy_(src)], reps=10, inner=5)
    del src, dst
    return 2 * n / t


def measure_peak(dtype):
    n = 8192
    a = torch.randn(n, n, device=DEV).to(dtype)
    b = torch.randn(n, n, device=DEV).to(dtype)
    c = torch.empty(n, n, device=DEV, dtype=dtype)
    t = time_graph([lambda: torch.matmul(a, b, out=c)], reps=10, inner=5)
    return 2 * n ** 3 / t


def driver_version():
    try:
        return subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=30).stdout.strip()
    except Exception:  # noqa: BLE001
        return "unknown"


def bench_shape(kern, n, k, g, dtype, ms, bw, peak, do_bwd, paths,
                wgmma=False):
    rows = []
    j = k // g
    codes = torch.randint(0, 16, (n, k), dtype=torch.uint8, device=DEV)
    s = torch.rand(n, j, device=DEV) * 0.02 + 0.002
    z = torch.randint(0, 16, (n, j), device=DEV).float()
    qw0 = kern.pack(codes)
    wq_bytes = qw0.numel() * 4 + 2 * s.numel() * 4
    nq = copies_for(wq_bytes)
    qws = [qw0] + [qw0.clone() for _ in range(nq - 1)]
    ss = [s] + [s.clone() for _ in range(nq - 1)]
    zs = [z] + [z.clone() for _ in range(nq - 1)]
    wf0 = qk.dequant_ref(codes, s, z, g).to(dtype)
    nf = copies_for(wf0.numel() * 2)
    wfs = [wf0] + [wf0.clone() for _ in range(nf - 1)]
    for m in ms:
        x = torch.randn(m, k, device=DEV).to(dtype)
        y = torch.empty(m, n, device=DEV, dtype=dtype)
        flops = 2.0 * m * n * k
        byts = m * k * 2 + wq_bytes + m * n * 2
        t_roof = max(byts / bw, flops / peak)
        res = {"N": n, "K": k, "G": g, "M": m,
               "dtype": str(dtype).replace("torch.", "")}
        t_ours = {}
        for p in paths(m):
            t_ours[p] = time_graph([
                (lambda i=i: kern.forward(x, qws[i], ss[i], zs[i], n, g,
                                          path=p, out=y)) for i in range(nq)])
        best = min(t_ours, key=t_ours.get)
        t_auto = t_ours[qk.PATH_AUTO]
        wg = {p: t for p, t in t_ours.items() if p in qk.WGMMA_PATHS}
        if wg:
            wbest = min(wg, key=wg.get)
            res["fwd_wgmma_best_path"] = wbest
            res["fwd_wgmma_us"] = wg[wbest] * 1e6
        if 16 < m <= 256:
            # the same tile without the cluster split-K, for comparison
            res["fwd_nosplit_us"] = 1e6 * time_graph([
                (lambda i=i: kern.forward(x, qws[i], ss[i], zs[i], n, g,
                                          split=1, out=y)) for i in range(nq)])
        if m <= 16:
            # What a plain device-to-device copy moving the same number of
            # bytes (read + write) achieves at this size: the launch, ramp
            # and tail costs every kernel of this size pays.
            half = byts // 2
            nc = copies_for(byts)
            srcs = [torch.empty(half, dtype=torch.uint8, device=DEV)
                    for _ in range(nc)]
            dsts = [torch.empty_like(v) for v in srcs]
            for v in srcs:
                v.random_(0, 255)
            res["copy_same_bytes_us"] = 1e6 * time_graph([
                (lambda i=i: dsts[i].copy_(srcs[i])) for i in range(nc)])
            del srcs, dsts
        t_cublas = time_graph([
            (lambda i=i: torch.matmul(x, wfs[i].t(), out=y)) for i in range(nf)])
        res.update({
            "fwd_us": t_auto * 1e6,
            "fwd_paths_us": {str(p): v * 1e6 for p, v in t_ours.items()},
            "fwd_best_path": best,
            "cublas_fwd_us": t_cublas * 1e6,
            "roofline_us": t_roof * 1e6,
            "roofline_bound": "memory" if byts / bw >= flops / peak else "compute",
            "fwd_bytes": byts,
            "fwd_eff_vs_roofline": t_roof / t_auto,
            "fwd_speedup_vs_cublas": t_cublas / t_auto,
            "fwd_achieved_GBps": byts / t_auto / 1e9,
            "fwd_achieved_TFLOPs": flops / t_auto / 1e12,
        })
        if wg:
            res["fwd_wgmma_vs_cublas"] = t_cublas / wg[wbest]
        if do_bwd:
            dy = torch.randn(m, n, device=DEV).to(dtype)
            dx = torch.empty(m, k, device=DEV, dtype=dtype)
            ds = torch.empty(n, j, device=DEV)
            gw = torch.empty(n, k, device=DEV, dtype=dtype)
            res["dscale_fused_us"] = 1e6 * time_graph([
                (lambda i=i: kern.grad_scale(dy, x, qws[i], zs[i], g, out=ds))
                for i in range(nq)])
            if wgmma:
                res["dscale_wgmma_us"] = 1e6 * time_graph([
                    (lambda i=i: kern.grad_scale(dy, x, qws[i], zs[i], g,
                                                 out=ds, path=qk.GRAD_WGMMA))
                    for i in range(nq)])

            def unfused(i):
                torch.matmul(dy.t(), x, out=gw)
                qz = codes.view(n, j, g).float() - zs[i].unsqueeze(-1)
                torch.sum(gw.view(n, j, g).float() * qz, dim=-1, out=ds)
            res["dscale_unfused_us"] = 1e6 * time_graph(
                [(lambda i=i: unfused(i)) for i in range(nq)])
            res["cublas_dYtX_us"] = 1e6 * time_graph(
                [lambda: torch.matmul(dy.t(), x, out=gw)])
            res["dx_us"] = 1e6 * time_graph([
                (lambda i=i: kern.grad_input(dy, qws[i], ss[i], zs[i], k, g,
                                             out=dx)) for i in range(nq)])
            if m <= 256:
                res["dx_nosplit_us"] = 1e6 * time_graph([
                    (lambda i=i: kern.grad_input(dy, qws[i], ss[i], zs[i], k,
                                                 g, out=dx, split=1))
                    for i in range(nq)])
            if wgmma:
                res["dx_wgmma_us"] = 1e6 * time_graph([
                    (lambda i=i: kern.grad_input(dy, qws[i], ss[i], zs[i], k,
                                                 g, out=dx,
                                                 path=qk.GRAD_WGMMA))
                    for i in range(nq)])
            res["cublas_dx_us"] = 1e6 * time_graph([
                (lambda i=i: torch.matmul(dy, wfs[i], out=dx))
                for i in range(nf)])
            del dy, dx, ds, gw
        rows.append(res)
        print(json.dumps(res), flush=True)
    del qws, wfs
    torch.cuda.empty_cache()
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(
        REPO, "bench", "results", "qmatmul_cuda_h100.json"))
    ap.add_argument("--so", default=None, help="prebuilt library")
    ap.add_argument("--ms", default="1,16,128,1024,4096")
    ap.add_argument("--shapes", default="4096x4096,11008x4096,4096x11008")
    ap.add_argument("--dtypes", default="bfloat16,float16")
    ap.add_argument("--no-bwd", action="store_true")
    ap.add_argument("--all-paths", action="store_true",
                    help="also time every forward path, not just auto")
    ap.add_argument("--profile-once", action="store_true",
                    help="no timing: run each forward once (for ncu)")
    args = ap.parse_args()
    if args.profile_once:
        so = args.so or qk.build(tempfile.mkdtemp(prefix="qslaw_cuda_"),
                                 archs=(qk.arch_of_device(torch),))
        kern = qk.W4Kernels(so)
        for shp in args.shapes.split(","):
            n, k = (int(v) for v in shp.split("x"))
            codes = torch.randint(0, 16, (n, k), dtype=torch.uint8, device=DEV)
            s = torch.rand(n, k // 128, device=DEV) * 0.02 + 0.002
            z = torch.randint(0, 16, (n, k // 128), device=DEV).float()
            qw = kern.pack(codes)
            for m in (int(v) for v in args.ms.split(",")):
                x = torch.randn(m, k, device=DEV).to(torch.bfloat16)
                for _ in range(3):
                    kern.forward(x, qw, s, z, n, 128)
        torch.cuda.synchronize()
        return

    so = args.so or qk.build(tempfile.mkdtemp(prefix="qslaw_cuda_"),
                             archs=(qk.arch_of_device(torch),))
    kern = qk.W4Kernels(so)
    torch.manual_seed(0)
    props = torch.cuda.get_device_properties(0)
    bw = measure_bw()
    peaks = {dt: measure_peak(getattr(torch, dt)) for dt in args.dtypes.split(",")}
    meta = {
        "device": props.name, "sms": props.multi_processor_count,
        "driver": driver_version(), "torch": torch.__version__,
        "cuda": torch.version.cuda, "date": "2026-11-23",
        "copy_bandwidth_GBps": bw / 1e9,
        "cublas_peak_TFLOPs": {k: v / 1e12 for k, v in peaks.items()},
        "peak_source": "8192^3 torch.matmul (cuBLAS) of the same dtype, "
                       "random data, this run",
        "bandwidth_source": "1 GiB device-to-device copy, read+write bytes",
    }
    print(json.dumps(meta), flush=True)
    ms = [int(v) for v in args.ms.split(",")]

    # The wgmma paths are not chosen by auto yet: time them beside it (M >=
    # 128, where they are meant to win) so one run decides the dispatch.
    wgmma = torch.cuda.get_device_capability() == (9, 0)

    def paths(m):
        ps = [qk.PATH_AUTO]
        if wgmma and m >= 128:
            ps += list(qk.WGMMA_PATHS)
        if not args.all_paths:
            return ps
        if m <= 16:
            ps.append(qk.PATH_GEMV)
        ps += [qk.PATH_TC_128x128, qk.PATH_TC_64x128, qk.PATH_TC_64x64,
               qk.PATH_TC_128x256]
        return ps

    rows = []
    for dt in args.dtypes.split(","):
        dtype = getattr(torch, dt)
        for shp in args.shapes.split(","):
            n, k = (int(v) for v in shp.split("x"))
            rows += bench_shape(kern, n, k, 128, dtype, ms, bw, peaks[dt],
                                not args.no_bwd, paths, wgmma)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"meta": meta, "rows": rows}, f, indent=1)

    print(f"\n{meta['device']}, driver {meta['driver']}, copy BW "
          f"{bw / 1e9:.0f} GB/s, cuBLAS peak " + ", ".join(
              f"{k} {v:.0f} TFLOP/s" for k, v in meta["cublas_peak_TFLOPs"].items()))
    def opt(r, key):
        return f"{r[key]:.1f}" if key in r else "-"

    print("\n| dtype | N x K | M | ours fwd us | GB/s | copy same bytes us "
          "| no-split fwd us | wgmma fwd us (path) | cuBLAS us "
          "| roofline us (bound) "
          "| ours/roof eff | cuBLAS/ours | ds fused us | ds wgmma us "
          "| ds unfused us | "
          "cuBLAS dYtX us | dX us | no-split dX us | wgmma dX us "
          "| cuBLAS dX us |")
    print("|---" * 20 + "|")
    for r in rows:
        print(f"| {r['dtype']} | {r['N']}x{r['K']} | {r['M']} | {r['fwd_us']:.1f} | "
              f"{r['fwd_achieved_GBps']:.0f} | {opt(r, 'copy_same_bytes_us')} | "
              f"{opt(r, 'fwd_nosplit_us')} | "
              + (f"{r['fwd_wgmma_us']:.1f} ({r['fwd_wgmma_best_path']}) | "
                 if "fwd_wgmma_us" in r else "- | ")
              + f"{r['cublas_fwd_us']:.1f} | {r['roofline_us']:.1f} ({r['roofline_bound'][:3]}) | "
              f"{r['fwd_eff_vs_roofline']:.2f} | {r['fwd_speedup_vs_cublas']:.2f} | "
              + (f"{r['dscale_fused_us']:.1f} | {opt(r, 'dscale_wgmma_us')} | "
                 f"{r['dscale_unfused_us']:.1f} | "
                 f"{r['cublas_dYtX_us']:.1f} | {r['dx_us']:.1f} | "
                 f"{opt(r, 'dx_nosplit_us')} | {opt(r, 'dx_wgmma_us')} | "
                 f"{r['cublas_dx_us']:.1f} |"
                 if "dx_us" in r else "- | " * 8))


if __name__ == "__main__":
    main()
