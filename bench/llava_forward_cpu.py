"""Forward latency of real-width LLaVA models (generated on demand by
qslaw_tools.make_llava) against onnxruntime, side by side in one process
per thread count, alternating in rounds; medians and ratios.

    .venv/bin/python bench/llava_forward_cpu.py [--sizes small,medium]
        [--threads 1,2] [--rounds 5] [--variants f32,w4] [--parallel]
        [--models DIR] [--json OUT]

Variants: f32 (the float model in both), w4 (w4g128 asymmetric on the
language model's linears: qslaw --quantize, onnxruntime the MatMulNBits
model its own quantizer makes from the same float model; lm_head stays
float in both, as onnxruntime's quantizer only takes MatMuls it can see as
such and the comparison must be like for like), and w2/w3/w8 (qslaw only,
against qslaw's w4). The number check is in the tests
(test_llava_real_width.py); here only that the outputs are finite.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "python"))
from qslaw_tools.runner import tool  # noqa: E402

NAMES = ("input_ids", "pixel_values", "attention_mask")
LM = ".*language_model.*(proj).*"


def model_path(models, size):
    path = os.path.join(models, f"llava_{size}.onnx")
    if not os.path.exists(path):
        from qslaw_tools.make_llava import export
        export(models, size)
    return path


def ort_w4(src, dst):
    if os.path.exists(dst):
        return dst
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer
    m = onnx.load(src)
    excl = [n.name for n in m.graph.node
            if n.op_type == "MatMul" and not ("language_model" in n.name and "proj" in n.name)]
    q = MatMulNBitsQuantizer(m, block_size=128, is_symmetric=False, nodes_to_exclude=excl)
    q.process()
    onnx.save(q.model.model, dst, save_as_external_data=True, location=os.path.basename(dst) + ".data")
    return dst


def compile_lib(onnx_path, out, extra):
    t0 = time.perf_counter()
    subprocess.run([tool("qslaw-compile"), onnx_path, "-o", out, "--weights=external", *extra],
                   check=True, capture_output=True)
    return time.perf_counter() - t0


def worker(args):
    """Times one (library, onnx) pair at one thread count; prints JSON."""
    import numpy as np
    import onnxruntime as ort
    from qslaw_tools.runtime import Model
    feeds = {n: np.load(f"{args.stem}.{n}.npy") for n in NAMES}
    m = Model(args.lib)
    sess = None
    if args.ort:
        so = ort.SessionOptions()
        so.intra_op_num_threads = args.threads
        so.inter_op_num_threads = 1
        sess = ort.InferenceSession(args.ort, so, providers=["CPUExecutionProvider"])
        sess.run(None, feeds)
    y = m.run(**feeds)
    y = y[0] if isinstance(y, (list, tuple)) else y
    assert np.all(np.isfinite(np.asarray(y)))
    # Rounds alternate between the two, three runs each, with a pause at
    # each switch: both keep worker threads spinning for a while after a
    # run (libomp 200 ms by default), which would otherwise steal the
    # other's cores.
    tq, to = [], []
    for _ in range(args.rounds):
        for _ in range(3):
            t0 = time.perf_counter()
            m.run(**feeds)
            tq.append(time.perf_counter() - t0)
        time.sleep(0.4)
        if sess:
            for _ in range(3):
                t0 = time.perf_counter()
                sess.run(None, feeds)
                to.append(time.perf_counter() - t0)
            time.sleep(0.4)
    print(json.dumps({"qslaw_ms": statistics.median(tq) * 1e3,
                      "ort_ms": statistics.median(to) * 1e3 if to else None}))


def run_worker(stem, lib, ort_path, threads, rounds):
    env = dict(os.environ, QSLAW_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads),
               OPENBLAS_NUM_THREADS="1")  # NumPy's own pool stays idle
    cmd = [sys.executable, __file__, "--worker", "--stem", stem, "--lib", lib,
           "--threads", str(threads), "--rounds", str(rounds)]
    if ort_path:
        cmd += ["--ort", ort_path]
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--sizes", default="small")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--variants", default="f32,w4,w2,w3,w8")
    p.add_argument("--models", default=os.path.join(tempfile.gettempdir(), "qslaw-models"))
    p.add_argument("--parallel", action="store_true",
                   help="also compile each variant with --parallel (OpenMP loops)")
    p.add_argument("--json")
    # worker mode
    p.add_argument("--worker", action="store_true")
    p.add_argument("--stem")
    p.add_argument("--lib")
    p.add_argument("--ort")
    a = p.parse_args()
    if a.worker:
        a.threads = int(a.threads)
        return worker(a)
    os.makedirs(a.models, exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for size in a.sizes.split(","):
            src = model_path(a.models, size)
            stem = src[:-len(".onnx")]
            libs = {}
            for v in a.variants.split(","):
                extra = [] if v == "f32" else [f"--quantize={v}g128,asym",
                                                f"--quantize-layers={LM}"]
                for par in ([False, True] if a.parallel else [False]):
                    name = v + ("+par" if par else "")
                    lib = os.path.join(d, f"{size}_{name}.so")
                    libs[name] = (lib, compile_lib(src, lib, extra + (["--parallel"] if par else [])))
            ort_paths = {"f32": src, "f32+par": src}
            if "w4" in a.variants.split(","):
                ort_paths["w4"] = ort_paths["w4+par"] = ort_w4(
                    src, os.path.join(a.models, f"llava_{size}_w4g128_ort.onnx"))
            for t in (int(x) for x in a.threads.split(",")):
                w4_ms = None
                for v, (lib, compile_s) in libs.items():
                    r = run_worker(stem, lib, ort_paths.get(v), t, a.rounds)
                    if v == "w4":
                        w4_ms = r["qslaw_ms"]
                    rows.append(dict(size=size, variant=v, threads=t, compile_s=compile_s, **r))
                for r in rows:
                    if r["size"] == size and r["threads"] == t and r["variant"] in ("w2", "w3", "w8"):
                        r["vs_w4"] = r["qslaw_ms"] / w4_ms if w4_ms else None
    print(f"{'size':7} {'variant':8} {'thr':>3} {'qslaw ms':>9} {'ort ms':>8} "
          f"{'ort/qslaw':>9} {'vs w4':>6} {'compile s':>9}")
    for r in rows:
        ratio = r["ort_ms"] / r["qslaw_ms"] if r["ort_ms"] else None
        print(f"{r['size']:7} {r['variant']:8} {r['threads']:>3} {r['qslaw_ms']:9.1f} "
              f"{r['ort_ms'] if r['ort_ms'] else float('nan'):8.1f} "
              f"{ratio if ratio else float('nan'):9.2f} "
              f"{r.get('vs_w4') or float('nan'):6.2f} {r['compile_s']:9.1f}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
