"""The small-scale reproduction of QSLAW's claim on real data (the README's
main job): the bundled full-precision tiny LLaVA trained on scikit-learn's
handwritten digits as visual questions plus a text corpus
(data/repro, made by build_data.py + train_fp.py) is

  1. compiled by qslaw into trainer executables, quantized to 4 and 3 bits
     (RTN min-max init, group 32, asymmetric, scale mode);
  2. exported untrained (RTN) and after learning the scales + projector
     on the training records with no warmup (multimodal only), the
     `progressive` warmup and the `mix` schedule;
  3. evaluated in onnxruntime on the held-out digits (VQA accuracy) and the
     held-out text (perplexity), next to the full-precision model.

    .venv/bin/python -m qslaw_tools.repro.reproduce [--steps 800] [--out build/repro]

Prints a markdown table; writes results.json (and results.png when
matplotlib is installed) under --out.
"""
import argparse
import json
import os
import subprocess
import sys
import time

from qslaw_tools.repro import common as C
from qslaw_tools.repro.evaluate import evaluate_onnx
from qslaw_tools.repro.plotting import bar_panels
from qslaw_tools.runner import ROOT, tool

LAYERS = r".*language_model.*layers.*"
SCHEDULES = [("scale learning, no warmup", "none"),
             ("scale learning, progressive warmup", "progressive"),
             ("scale learning, mix", "mix")]


def run(cmd, log):
    with open(log, "a") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        p = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT)
    if p.returncode != 0:
        sys.exit(f"reproduce: command failed (exit {p.returncode}), see {log}: "
                 + " ".join(cmd))


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m qslaw_tools.repro.reproduce")
    p.add_argument("--data", default=C.DATA_DIR)
    p.add_argument("--model", default=None, help="FP ONNX (default DATA/tiny_llava_digits.onnx)")
    p.add_argument("--out", default=os.path.join(ROOT, "build", "repro"))
    p.add_argument("--bits", default="4,3,2")
    p.add_argument("--group", type=int, default=32)
    p.add_argument("--steps", type=int, default=800)
    # Batch 1 (the compiled batch): the reference 2e-3 is for batch 64.
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, default=None, help="held-out records per set")
    a = p.parse_args(argv)
    model = a.model or os.path.join(a.data, C.MODEL_NAME + ".onnx")
    train = os.path.join(a.data, "train.jsonl")
    if not os.path.exists(train):
        # Images and records are not committed: build_data regenerates them
        # deterministically (checked against manifest.json by the tests).
        from qslaw_tools.repro import build_data
        build_data.main([a.data])
    os.makedirs(a.out, exist_ok=True)
    log = os.path.join(a.out, "log.txt")
    open(log, "w").close()
    t0 = time.time()
    rows = []

    def evaluate(label, bits, path, extra=None):
        r = evaluate_onnx(path, a.data, a.limit)
        row = {"setting": label, "bits": bits, "vqa_accuracy": r["vqa_accuracy"],
               "text_ppl": r["text_ppl"], "model": path, **(extra or {})}
        rows.append(row)
        print(f"  {label:<38} {str(bits):>4}  VQA acc {r['vqa_accuracy']:.3f}  "
              f"text ppl {r['text_ppl']:.3f}", flush=True)

    print(f"qslaw reproduction: {model}, {a.steps} steps per run; log in {log}", flush=True)
    evaluate("full precision", "fp32", model)
    for bits in [int(b) for b in a.bits.split(",")]:
        trainer = os.path.join(a.out, f"trainer_w{bits}")
        run([tool("qslaw-compile"), model, f"--quantize=w{bits}g{a.group}",
             f"--quantize-layers={LAYERS}", "--emit=trainer", "-o", trainer], log)
        rtn = os.path.join(a.out, f"w{bits}_rtn")
        run([trainer, f"--data={train}", "--steps=0", f"--out={rtn}",
             f"--export-onnx={rtn}/model.onnx"], log)
        evaluate("RTN", bits, f"{rtn}/model.onnx")
        for label, preset in SCHEDULES:
            d = os.path.join(a.out, f"w{bits}_{preset}")
            run([trainer, f"--data={train}", f"--steps={a.steps}", f"--preset={preset}",
                 f"--lr={a.lr}", f"--lr-params={a.lr}", f"--seed={a.seed}", f"--out={d}",
                 "--checkpoint-every=0", "--quiet", f"--export-onnx={d}/model.onnx"], log)
            with open(os.path.join(d, "metrics.jsonl")) as f:
                m = [json.loads(line) for line in f]
            tail = [r["loss"] for r in m[-20:] if r["loss"] is not None]
            evaluate(label, bits, f"{d}/model.onnx",
                     {"final_loss": sum(tail) / max(len(tail), 1),
                      "text_fraction_mean": sum(r["text_fraction"] for r in m) / len(m)})
    with open(os.path.join(a.out, "results.json"), "w") as f:
        json.dump({"steps": a.steps, "lr": a.lr, "group": a.group, "seed": a.seed,
                   "rows": rows}, f, indent=1)
    print(f"\nHeld-out results ({a.steps} training steps per run, "
          f"{time.time() - t0:.0f} s in all):\n")
    print(table(rows))
    plot(rows, os.path.join(a.out, "results.png"))
    return 0


def table(rows):
    lines = ["| setting | bits | VQA accuracy | text perplexity |", "|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['setting']} | {r['bits']} | {r['vqa_accuracy']:.3f} | "
                     f"{r['text_ppl']:.3f} |")
    return "\n".join(lines)


def plot(rows, path):
    palette = {"fp32": "#555555", 8: "#2ca02c", 4: "#1f77b4", 3: "#ff7f0e", 2: "#d62728"}
    bar_panels(path, [f"{r['setting']}\n({r['bits']})" for r in rows],
               [palette.get(r["bits"], "#9467bd") for r in rows],
               [("held-out VQA accuracy (higher is better)",
                 [r["vqa_accuracy"] for r in rows], None, False),
                ("held-out text perplexity (lower is better)",
                 [r["text_ppl"] for r in rows], None, True)],
               "QSLAW on digits VQA + text (tiny LLaVA): fp32 (grey), 4-bit (blue), "
               "3-bit (orange), 2-bit (red)")


if __name__ == "__main__":
    sys.exit(main())
