"""Compares qslaw-run's logits with onnxruntime on the same fixture inputs."""
import sys

import numpy as np
import onnxruntime as ort

model, stem, got_path, tol = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
feeds = {n: np.load(f"{stem}.{n}.npy") for n in ("input_ids", "pixel_values", "attention_mask")}
want = ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, feeds)[0]
got = np.load(got_path)
rel = np.abs(got - want).max() / np.abs(want).max()
print(f"shape={got.shape} rel_err={rel:.3g}")
print("OK" if got.shape == want.shape and rel < tol else "MISMATCH")
