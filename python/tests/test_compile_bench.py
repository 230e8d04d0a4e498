"""bench/compile_cpu.py's own code on the tiny fixture (the real-width runs
take minutes): every phase of --mlir-timing is parsed from qslaw-compile's
report, and the row says whether the compile stayed under issue 17's
memory bound."""
import json
import os
import subprocess
import sys

from qslaw_tools.runner import ROOT


def test_compile_bench_on_the_tiny_fixture(tmp_path):
    out = str(tmp_path / "rows.json")
    subprocess.run([sys.executable, os.path.join(ROOT, "bench", "compile_cpu.py"),
                    "--models", "tiny", "--what", "lib,trainer", "--timing", "--json", out],
                   check=True, capture_output=True, text=True)
    rows = json.load(open(out))
    assert [(r["model"], r["what"]) for r in rows] == [("tiny", "lib"), ("tiny", "trainer")]
    for r in rows:
        assert r["wall_s"] > 0 and 0 < r["peak_rss_mb"] <= r["bound_mb"]
        phases = r["phases_s"]
        for name in ("Import ONNX", "Lower", "LLVM optimisation (O3)", "LLVM code generation",
                     "Link"):
            assert name in phases, (name, phases)
    assert "Training step" in rows[1]["phases_s"] and "Quantize weights" in rows[1]["phases_s"]
    assert "Training step" not in rows[0]["phases_s"]
