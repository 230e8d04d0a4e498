"""The recipe's three stages on the digits reproduction, against the LoRA
baselines (docs/Training.md, "The three stages"):

  QSLAW + LoRA: (1) progressive warmup of scales + projector, (2) scale
      learning on the mixed data continuing from (1) (--init-params), (3)
      LoRA on every language-model linear with the learned scales frozen
      (--init-params, --train-scales=), the projector at lr 2e-5;
  QLoRA-style: LoRA on the RTN base (no scale learning), the same stage 3;
  full-precision LoRA: the same stage 3 on the float model;

at each bit width, for each seed, with a global batch of --accumulation
micro-batches (the compiled batch is 1). Every result is exported to ONNX
(adapters as MatMul branches) and scored by onnxruntime on the held-out
digits (VQA accuracy) and text (perplexity).

    python -m qslaw_tools.repro.lora_stage [--seeds 0] [--bits 3,2]
    python -m qslaw_tools.repro.lora_stage --full      # 3 seeds: the table
"""
import argparse
import json
import os
import statistics
import sys
import time

from qslaw_tools.repro import common as C
from qslaw_tools.repro.evaluate import evaluate_onnx
from qslaw_tools.repro.plotting import bar_panels
from qslaw_tools.repro.reproduce import LAYERS, run
from qslaw_tools.runner import ROOT, tool

PROJECTOR = r".*multi_modal_projector.*"


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m qslaw_tools.repro.lora_stage")
    p.add_argument("--data", default=C.DATA_DIR)
    p.add_argument("--out", default=os.path.join(ROOT, "build", "repro_lora"))
    p.add_argument("--bits", default="3,2")
    p.add_argument("--group", type=int, default=32)
    p.add_argument("--seeds", default="0")
    p.add_argument("--full", action="store_true", help="seeds 0,1,2")
    p.add_argument("--warmup-steps", type=int, default=400)
    p.add_argument("--scale-steps", type=int, default=400)
    p.add_argument("--lora-steps", type=int, default=300)
    p.add_argument("--accumulation", type=int, default=8)
    p.add_argument("--lr", type=float, default=5e-4, help="scales and projector, stages 1-2")
    p.add_argument("--lr-lora", type=float, default=1e-3)
    p.add_argument("--lr-projector-lora", type=float, default=2e-5)
    p.add_argument("--rank", type=int, default=8)
    p.add_argument("--alpha", type=float, default=16.0)
    p.add_argument("--limit", type=int, default=None, help="held-out records per set")
    a = p.parse_args(argv)
    seeds = [0, 1, 2] if a.full else [int(s) for s in a.seeds.split(",")]
    model = os.path.join(a.data, C.MODEL_NAME + ".onnx")
    train = os.path.join(a.data, "train.jsonl")
    if not os.path.exists(train):
        from qslaw_tools.repro import build_data
        build_data.main([a.data])
    os.makedirs(a.out, exist_ok=True)
    log = os.path.join(a.out, "log.txt")
    open(log, "w").close()
    t0 = time.time()
    results = []  # (setting, bits, seed, vqa, ppl)

    def compile_(out, *flags):
        run([tool("qslaw-compile"), model, *flags, "--emit=trainer", "-o", out], log)
        return out

    def train_(trainer, d, seed, steps, *flags):
        run([trainer, f"--data={train}", f"--steps={steps}", f"--seed={seed}",
             f"--out={d}", "--checkpoint-every=0", "--quiet", *flags], log)

    def score(setting, bits, seed, onnx_path):
        r = evaluate_onnx(onnx_path, a.data, a.limit)
        results.append((setting, bits, seed, r["vqa_accuracy"], r["text_ppl"]))
        print(f"  seed {seed}  {setting:<34} {str(bits):>4}  VQA acc "
              f"{r['vqa_accuracy']:.3f}  text ppl {r['text_ppl']:.3f}", flush=True)

    lora_flags = ["--train-scales=", f"--train-params={PROJECTOR}",
                  f"--train-lora={LAYERS}", f"--lora-rank={a.rank}",
                  f"--lora-alpha={a.alpha}"]
    stage3 = [f"--accumulation-steps={a.accumulation}", "--preset=mix",
              f"--lr-lora={a.lr_lora}", f"--lr-params={a.lr_projector_lora}"]
    print(f"qslaw LoRA stage: seeds {seeds}, bits {a.bits}, global batch "
          f"{a.accumulation}; log in {log}", flush=True)
    for seed in seeds:
        out = os.path.join(a.out, f"seed{seed}")
        os.makedirs(out, exist_ok=True)
        # Full-precision LoRA.
        t = compile_(os.path.join(out, "fp_lora"), *lora_flags, f"--lora-seed={seed}")
        d = os.path.join(out, "fp_lora_run")
        train_(t, d, seed, a.lora_steps, *stage3, f"--export-onnx={d}/model.onnx")
        score("full-precision LoRA", "fp32", seed, f"{d}/model.onnx")
        for bits in [int(b) for b in a.bits.split(",")]:
            q = [f"--quantize=w{bits}g{a.group}", f"--quantize-layers={LAYERS}"]
            pre = os.path.join(out, f"w{bits}")
            # QLoRA-style: LoRA on the RTN base.
            t = compile_(pre + "_qlora", *q, *lora_flags, f"--lora-seed={seed}")
            d = pre + "_qlora_run"
            train_(t, d, seed, a.lora_steps, *stage3, f"--export-onnx={d}/model.onnx")
            score("LoRA on RTN (QLoRA-style)", bits, seed, f"{d}/model.onnx")
            # QSLAW stage 1: progressive warmup of scales + projector.
            t = compile_(pre + "_s1", *q)
            s1 = pre + "_s1_run"
            train_(t, s1, seed, a.warmup_steps, "--preset=progressive", f"--lr={a.lr}",
                   f"--lr-params={a.lr}", f"--export-params={s1}/params")
            # Stage 2: scale learning on the mixed data, from stage 1.
            t = compile_(pre + "_s2", *q, f"--init-params={s1}/params")
            s2 = pre + "_s2_run"
            train_(t, s2, seed, a.scale_steps, "--preset=mix", f"--lr={a.lr}",
                   f"--lr-params={a.lr}", f"--export-params={s2}/params",
                   f"--export-onnx={s2}/model.onnx")
            score("QSLAW stages 1-2 (no LoRA)", bits, seed, f"{s2}/model.onnx")
            # Stage 3: LoRA with the learned scales frozen.
            t = compile_(pre + "_s3", *q, f"--init-params={s2}/params", *lora_flags,
                         f"--lora-seed={seed}")
            d = pre + "_s3_run"
            train_(t, d, seed, a.lora_steps, *stage3, f"--export-onnx={d}/model.onnx")
            score("QSLAW stages 1-3 (+ LoRA)", bits, seed, f"{d}/model.onnx")
    rows = summarise(results)
    with open(os.path.join(a.out, "results.json"), "w") as f:
        json.dump({"seeds": seeds, "args": vars(a), "runs": results, "rows": rows}, f, indent=1)
    print(f"\nHeld-out results, mean +- std over {len(seeds)} seed(s) "
          f"({time.time() - t0:.0f} s in all):\n")
    print(table(rows))
    plot(rows, os.path.join(a.out, "results.png"))
    return 0


def summarise(results):
    rows = []
    for key in dict.fromkeys((s, b) for s, b, *_ in results):
        runs = [r for r in results if (r[0], r[1]) == key]
        vqa, ppl = [r[3] for r in runs], [r[4] for r in runs]
        sd = (lambda v: statistics.stdev(v) if len(v) > 1 else 0.0)
        rows.append({"setting": key[0], "bits": key[1], "seeds": len(runs),
                     "vqa_mean": statistics.mean(vqa), "vqa_std": sd(vqa),
                     "ppl_mean": statistics.mean(ppl), "ppl_std": sd(ppl)})
    return rows


def table(rows):
    lines = ["| setting | bits | VQA accuracy | text perplexity |", "|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['setting']} | {r['bits']} | {r['vqa_mean']:.3f} ± "
                     f"{r['vqa_std']:.3f} | {r['ppl_mean']:.2f} ± {r['ppl_std']:.2f} |")
    return "\n".join(lines)


def plot(rows, path):
    palette = {"full-precision LoRA": "#555555", "LoRA on RTN (QLoRA-style)": "#ff7f0e",
               "QSLAW stages 1-2 (no LoRA)": "#9ecae1", "QSLAW stages 1-3 (+ LoRA)": "#1f77b4"}
    n = rows[0]["seeds"] if rows else 0
    bar_panels(path, [f"{r['setting']} ({r['bits']})" for r in rows],
               [palette.get(r["setting"], "#9467bd") for r in rows],
               [("held-out VQA accuracy (higher is better)", [r["vqa_mean"] for r in rows],
                 [r["vqa_std"] for r in rows], False),
                ("held-out text perplexity (lower is better)", [r["ppl_mean"] for r in rows],
                 [r["ppl_std"] for r in rows], False)],
               f"LoRA stage on digits VQA + text (tiny LLaVA), mean ± std over {n} "
               "seed(s); bits in parentheses")


if __name__ == "__main__":
    sys.exit(main())
