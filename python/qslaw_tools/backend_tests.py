"""Runs the ONNX backend node tests (generated in memory from the cases
shipped in the `onnx` package: onnx.backend.test.case.node) through
qslaw-compile and qslaw-exec, for every test whose ops the importer claims
(`qslaw-compile --list-supported-ops`).

    .venv/bin/python python/qslaw_tools/backend_tests.py --write-docs

writes docs/SupportedOps.md (pass/fail per test) and
test/backend/expected_pass.txt (the tests CI keeps passing).
"""
import argparse
import json
import re
import os
import subprocess
import sys
import tempfile
import warnings

import numpy as np
import onnx

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from qslaw_tools.runner import ROOT, tool  # noqa: E402


def supported():
    out = subprocess.run([tool("qslaw-compile"), "--list-supported-ops"],
                         check=True, capture_output=True, text=True).stdout
    ops = {}
    for line in out.splitlines():
        d = json.loads(line)
        ops.setdefault((d["domain"], d["op"]), []).append((d["since"], d["until"]))
    return ops


def cases():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from onnx.backend.test.case.node import collect_testcases
        return collect_testcases(None)


def claimed(model, ops):
    opset = {o.domain or "": o.version for o in model.opset_import}
    if not 13 <= opset.get("", 0) <= 23:
        return False
    for n in model.graph.node:
        ranges = ops.get((n.domain or "", n.op_type))
        v = opset.get(n.domain or "", -1)
        if not ranges or not any(a <= v <= b for a, b in ranges):
            return False
    return True


def freeze_parameters(model, inputs):
    """The static variant of a test: integer graph inputs that only feed
    parameter slots (axes, starts, shape, split, k, ... — any input slot but
    the first), and integer scalars, become initializers holding the test's
    values."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    g = model.graph
    names = [i.name for i in g.input]
    keep_inputs, keep_values = [], []
    for vi, value in zip(list(g.input), inputs):
        arr = np.asarray(value)
        uses = [(n, k) for n in g.node for k, i in enumerate(n.input) if i == vi.name]
        param_slots = all(k >= 1 for _, k in uses) and \
            not any(n.op_type == "Gather" for n, _ in uses)
        # Integer scalars (window sizes, counts) are parameters wherever used.
        if arr.dtype.kind in "iu" and uses and (param_slots or arr.ndim == 0):
            g.initializer.append(onnx.numpy_helper.from_array(arr, vi.name))
        else:
            keep_inputs.append(vi)
            keep_values.append(value)
    del g.input[:]
    g.input.extend(keep_inputs)
    del names
    return model, keep_values


def _last_error(stderr, fallback):
    lines = stderr.strip().splitlines()
    if not lines:
        return fallback
    # Drop temporary file names: keep what follows the last "error: ".
    msg = lines[-1].rsplit("error: ", 1)[-1]
    return re.sub(r"/tmp/\S+?/m\.onnx:? ?", "", msg)[:160]


def _shape_bindings(model, inputs):
    """Static variant: dynamic input dimensions are bound to the test data."""
    shapes = []
    for vi, value in zip(model.graph.input, inputs):
        dims = vi.type.tensor_type.shape.dim if vi.type.HasField("tensor_type") else []
        if any(not dd.HasField("dim_value") for dd in dims):
            arr = np.asarray(value)
            if arr.ndim and all(s > 0 for s in arr.shape):
                shapes += ["--shape", vi.name + "=" + "x".join(map(str, arr.shape))]
    return shapes


def _compare(out_files, outputs, rtol, atol):
    for o, want in zip(out_files, outputs):
        got = np.load(o)
        want = np.asarray(want)
        if got.shape != want.shape:
            return "fail", f"shape {got.shape} vs {want.shape}"
        if want.dtype == bool:
            ok = np.array_equal(got.astype(bool), want)
        else:
            ok = np.allclose(got.astype(np.float64), want.astype(np.float64),
                             rtol=rtol, atol=atol, equal_nan=True)
        if not ok:
            return "fail", f"max abs diff {np.abs(got.astype(np.float64) - want.astype(np.float64)).max():.3g}"
    return "pass", ""


def _run_library(lib, device, input_names, inputs, output_names, d, python=False):
    """Runs `lib` in its own process (a crash is a result): qslaw-run, or
    with `python` qslaw_tools/run_library.py (the runtime through ctypes; no
    LLVM needed, as on the GPU machine). Returns (out files, None) or
    (None, error detail)."""
    out = os.path.join(d, "out")
    if python:
        cmd = [sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                            "run_library.py"), lib, device, out]
    else:
        cmd = [tool("qslaw-run"), lib, "--output-dir", out, "--device", device]
    for i, (name, a) in enumerate(zip(input_names, inputs)):
        f = os.path.join(d, f"in{i}.npy")
        np.save(f, np.asarray(a))
        cmd += [f"{name}={f}"] if python else ["--input", f"{name}={f}"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if p.returncode:
        return None, _last_error(p.stderr, "run failed")
    return [os.path.join(d, "out", n + ".npy") for n in output_names], None


def _compile_library(model, inputs, target, lib, d):
    path = os.path.join(d, "m.onnx")
    onnx.save(model, path)
    p = subprocess.run([tool("qslaw-compile"), path, f"--target={target}", "-o", lib,
                        "--gpu-chips=sm_90a", "--gpu-format=bin",
                        *_shape_bindings(model, inputs)], capture_output=True, text=True)
    return None if p.returncode == 0 else _last_error(p.stderr, "compile failed")


def run_case(case, target="cpu"):
    """Returns (status, detail): pass, fail (numbers), error (compile/run).
    target "cpu": qslaw-exec (JIT) on the graph-level MLIR; "cuda-emulate":
    a library from qslaw-compile --target=cuda-emulate run by qslaw-run."""
    inputs, outputs = case.data_sets[0]
    model, inputs = freeze_parameters(case.model, inputs)
    with tempfile.TemporaryDirectory() as d:
        if target != "cpu":
            lib = os.path.join(d, "m.so")
            err = _compile_library(model, inputs, target, lib, d)
            if err:
                return "error", err
            outs, err = _run_library(lib, "cpu", [vi.name for vi in model.graph.input], inputs,
                                     [o.name for o in model.graph.output], d)
            if err:
                return "error", err
            return _compare(outs, outputs, case.rtol, case.atol)
        path = os.path.join(d, "m.onnx")
        onnx.save(model, path)
        mlir = os.path.join(d, "m.mlir")
        p = subprocess.run([tool("qslaw-compile"), path, "--emit=mlir", "-o", mlir,
                            *_shape_bindings(model, inputs)], capture_output=True, text=True)
        if p.returncode:
            return "error", _last_error(p.stderr, "compile failed")
        cmd = [tool("qslaw-exec"), mlir, "--entry=forward"]
        for i, a in enumerate(inputs):
            f = os.path.join(d, f"in{i}.npy")
            np.save(f, np.asarray(a))
            cmd.append(f"--input={f}")
        outs = [os.path.join(d, f"out{i}.npy") for i in range(len(outputs))]
        cmd += [f"--output={o}" for o in outs]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if p.returncode:
            return "error", _last_error(p.stderr, "run failed")
        return _compare(outs, outputs, case.rtol, case.atol)


def compile_for_cuda(case):
    """Compiles the case for --target=cuda (NVVM, ptxas, cubin for sm_90a)
    without running it; returns an error detail or None. Where there is no
    GPU this is what checks that every op's kernels make it through ptxas."""
    inputs, _ = case.data_sets[0]
    model, inputs = freeze_parameters(case.model, inputs)
    with tempfile.TemporaryDirectory() as d:
        return _compile_library(model, inputs, "cuda", os.path.join(d, "m.so"), d)


def prebuild(case, out_dir, target="cuda"):
    """For a machine with a GPU and no compiler: OUT/<name>.so
    (--target=cuda, sm_90a) and OUT/<name>.npz (inputs, expected outputs,
    names, tolerances). Returns an error detail or None."""
    inputs, outputs = case.data_sets[0]
    model, inputs = freeze_parameters(case.model, inputs)
    with tempfile.TemporaryDirectory() as d:
        err = _compile_library(model, inputs, target, os.path.join(out_dir, case.name + ".so"), d)
    if err:
        return err
    arrays = {f"in{i}": np.asarray(a) for i, a in enumerate(inputs)}
    arrays.update({f"out{i}": np.asarray(a) for i, a in enumerate(outputs)})
    meta = {"inputs": [vi.name for vi in model.graph.input],
            "outputs": [o.name for o in model.graph.output],
            "rtol": case.rtol, "atol": case.atol}
    np.savez(os.path.join(out_dir, case.name + ".npz"), meta=json.dumps(meta), **arrays)
    return None


def run_prebuilt(name, prebuilt_dir, device="cuda"):
    """Runs a library from prebuild() and compares with its expected outputs."""
    data = np.load(os.path.join(prebuilt_dir, name + ".npz"))
    meta = json.loads(str(data["meta"]))
    inputs = [data[f"in{i}"] for i in range(len(meta["inputs"]))]
    outputs = [data[f"out{i}"] for i in range(len(meta["outputs"]))]
    with tempfile.TemporaryDirectory() as d:
        outs, err = _run_library(os.path.join(prebuilt_dir, name + ".so"), device,
                                 meta["inputs"], inputs, meta["outputs"], d, python=True)
        if err:
            return "error", err
        return _compare(outs, outputs, meta["rtol"], meta["atol"])


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--write-docs", action="store_true")
    p.add_argument("--only", default="", help="comma-separated test names")
    p.add_argument("--target", default="cpu", choices=["cpu", "cuda-emulate"])
    p.add_argument("--prebuild", default="",
                   help="DIR: compile the --target=cuda library and data of each "
                        "test in --only into DIR (for a GPU machine)")
    a = p.parse_args()
    ops = supported()
    only = set(a.only.split(",")) if a.only else None
    results = []
    for case in cases():
        if case.kind != "node" or (only and case.name not in only):
            continue
        if not claimed(case.model, ops):
            continue
        if a.prebuild:
            os.makedirs(a.prebuild, exist_ok=True)
            err = prebuild(case, a.prebuild)
            print(f"{'error ' + err if err else 'built'} {case.name}", flush=True)
            continue
        status, detail = run_case(case, a.target)
        op = case.model.graph.node[0].op_type if len(case.model.graph.node) == 1 else \
            "+".join(sorted({n.op_type for n in case.model.graph.node}))
        results.append((op, case.name, status, detail))
        print(f"{status:5s} {case.name} {detail}", flush=True)
    if a.prebuild:
        return
    passed = sum(r[2] == "pass" for r in results)
    print(f"{passed} of {len(results)} claimed backend tests pass")
    if a.write_docs:
        by_op = {}
        for op, name, status, detail in results:
            by_op.setdefault(op, []).append((name, status, detail))
        lines = ["# Supported ONNX ops", "",
                 "Generated by `python/qslaw_tools/backend_tests.py --write-docs` from the ONNX",
                 "backend node tests (the cases shipped in the `onnx` package, onnx "
                 f"{onnx.__version__}) whose ops the importer claims. Static shapes only;",
                 "a test fails or errors where an attribute, data type or dynamic form is not",
                 "supported yet. Static variant: integer inputs that only feed parameter",
                 "slots (axes, starts/ends, shape, split, k), and integer scalars, are frozen as initializers with",
                 "the test's values, and dynamic input dimensions are bound to the test data",
                 "(`--shape`). Importer registrations: "
                 "`qslaw-compile --list-supported-ops`.", "",
                 f"**{passed} of {len(results)} claimed tests pass.**", "",
                 "| op | passing | tests |", "|---|---|---|"]
        for op in sorted(by_op):
            rows = by_op[op]
            ok = sum(s == "pass" for _, s, _ in rows)
            lines.append(f"| {op} | {ok}/{len(rows)} | " + ", ".join(
                f"{n}: {s}" + (f" ({d})" if d and s != 'pass' else "") for n, s, d in rows)
                .replace("|", "/") + " |")
        open(os.path.join(ROOT, "docs", "SupportedOps.md"), "w").write("\n".join(lines) + "\n")
        os.makedirs(os.path.join(ROOT, "test", "backend"), exist_ok=True)
        with open(os.path.join(ROOT, "test", "backend", "expected_pass.txt"), "w") as f:
            for _, name, status, _ in sorted(results, key=lambda r: r[1]):
                if status == "pass":
                    f.write(name + "\n")


if __name__ == "__main__":
    main()
