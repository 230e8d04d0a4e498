"""Runs MLIR functions through qslaw-exec (lowering + JIT) on NumPy arrays."""
import json
import os
import subprocess
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def build_dir():
    return os.environ.get("QSLAW_BUILD_DIR", os.path.join(ROOT, "build"))


def tool(name):
    return os.path.join(build_dir(), "bin", name)


def run_mlir(mlir, inputs, num_outputs=1, entry="main", cpu_options="",
             repeat=0):
    """Compiles `mlir`, runs `entry` on `inputs` and returns its outputs
    (and the timing record when repeat > 0)."""
    with tempfile.TemporaryDirectory() as d:
        src = os.path.join(d, "m.mlir")
        with open(src, "w") as f:
            f.write(mlir)
        cmd = [tool("qslaw-exec"), src, f"--entry={entry}",
               f"--cpu-options={cpu_options}"]
        for i, a in enumerate(inputs):
            p = os.path.join(d, f"in{i}.npy")
            np.save(p, a)
            cmd.append(f"--input={p}")
        outs = [os.path.join(d, f"out{i}.npy") for i in range(num_outputs)]
        cmd += [f"--output={p}" for p in outs]
        if repeat:
            cmd += [f"--repeat={repeat}"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"qslaw-exec failed ({proc.returncode}):\n"
                               f"{proc.stderr}\n--- module ---\n{mlir}")
        results = [np.load(p) for p in outs]
        if repeat:
            return results, json.loads(proc.stdout.strip().splitlines()[-1])
        return results
