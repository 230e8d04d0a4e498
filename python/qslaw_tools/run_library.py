"""Runs a qslaw model library on .npy inputs and writes its outputs, through
the C runtime's ctypes binding (no LLVM needed, unlike qslaw-run): the GPU
machine's way to run prebuilt libraries in a process of their own.

    python -m qslaw_tools.run_library LIB DEVICE OUT_DIR NAME=FILE.npy ...
writes OUT_DIR/<output name>.npy for every output."""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from qslaw_tools.runtime import Model  # noqa: E402


def main(argv):
    lib, device, out_dir, *specs = argv
    inputs = {}
    for spec in specs:
        name, _, path = spec.rpartition("=")
        inputs[name] = np.load(path)
    model = Model(lib, device=device)
    outputs = model.run(**inputs)
    os.makedirs(out_dir, exist_ok=True)
    for spec, arr in zip(model.signature.outputs, outputs):
        np.save(os.path.join(out_dir, spec.name + ".npy"), arr)


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except RuntimeError as e:  # the runtime's message, without a traceback
        sys.exit(f"error: {e}")
