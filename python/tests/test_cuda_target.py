"""Models compiled with `qslaw-compile --target=cuda`: generated GPU kernels
for every op (elementwise, reductions, norms, softmax, the quantized matmuls
and their gradients, AdamW), run through the C runtime on the GPU.

Without a GPU (CI) the libraries are still compiled (PTX accepted by ptxas
for sm_80 and sm_90a, one multi-architecture container), must not depend on
LLVM/MLIR at run time, and asking for CUDA fails with a clear message. The
execution tests then run on `--target=cuda-emulate`: the same pipeline up to
the mapped gpu.launch ops, each launch executed as loops over its blocks
and threads on the CPU - which checks the GPU mapping (tiling, guards,
thread indexing, device memory, scalars sunk into kernels) against the same
references; what it cannot check is NVVM code generation and the driver
runtime, which only the GPU runs exercise.

With a GPU, fp32 everywhere (the generated kernels compute in f32 like the
CPU path), so the tolerances are the CPU tests': logits against
onnxruntime within 1e-4; every gradient of @grad_step against PyTorch
autograd within 1e-4 relative (norm of the difference over the norm); 20
AdamW steps' losses within 1e-4 relative. Only the summation order differs
from the CPU (one thread per output, k ascending, plus FMA contraction).

QSLAW_CUDA_ARTIFACTS=DIR uses libraries compiled beforehand into DIR (the GPU
machine has no LLVM to compile them); bench/cuda_artifacts.sh makes them.
"""
import ctypes
import json
import os
import shutil
import subprocess

import numpy as np
import pytest

from qslaw_tools.runner import ROOT, tool
from qslaw_tools.runtime import Model

FIX = os.path.join(ROOT, "test", "fixtures")
LAYERS = r".*language_model.*layers.*"

# name -> (fixture, extra qslaw-compile arguments)
ARTIFACTS = {
    "tiny_llava_fp32": ("tiny_llava", []),
    # Weights in a file mapped at load; the device copies are uploaded from it.
    "tiny_llava_fp32_external": ("tiny_llava", ["--weights=external",
                                                "--weights-min-bytes=256"]),
    "tiny_llava_scale_train": ("tiny_llava", ["--quantize=w4g32,mode=scale",
                                              f"--quantize-layers={LAYERS}", "--train"]),
    "tiny_llava_gamma_train": ("tiny_llava", ["--quantize=w4g32,mode=gamma",
                                              f"--quantize-layers={LAYERS}", "--train"]),
    "tiny_llava_gqa_scale_train": ("tiny_llava_gqa", ["--quantize=w4g32,mode=scale",
                                                      f"--quantize-layers={LAYERS}",
                                                      "--train"]),
    # A trainer executable (not a library): parameters and AdamW moments in
    # the session on the device.
    "tiny_llava_trainer": ("tiny_llava", ["--quantize=w4g32", f"--quantize-layers={LAYERS}",
                                          "--emit=trainer"]),
}
TRAINER_ARGS = [f"--data={os.path.join(FIX, 'train', 'records.jsonl')}", "--steps=12",
                "--preset=mix", "--seed=5", "--quiet"]


def have_gpu():
    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    return True


GPU = have_gpu()


def compile_cuda(name, out_dir, target="cuda", gpu_args=()):
    """gpu_args: e.g. ("--gpu-chips=sm_90a", "--gpu-format=bin") for smaller
    artifacts (bench/cuda_artifacts.sh)."""
    fixture, extra = ARTIFACTS[name]
    extra = extra + (list(gpu_args) if target == "cuda" else [])
    suffix = "" if "--emit=trainer" in extra else ".so"
    out = os.path.join(out_dir, f"{name}.{target}{suffix}" if target != "cuda"
                       else name + suffix)
    subprocess.run([tool("qslaw-compile"), os.path.join(FIX, fixture + ".onnx"),
                    f"--target={target}", "-o", out] + extra, check=True,
                   capture_output=True, text=True)
    return out


PREBUILT = os.environ.get("QSLAW_CUDA_ARTIFACTS")


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    cache = {}

    def get(name, target="cuda"):
        if (name, target) not in cache:
            if PREBUILT and target == "cuda":
                suffix = "" if "--emit=trainer" in ARTIFACTS[name][1] else ".so"
                cache[name, target] = os.path.join(PREBUILT, name + suffix)
            else:
                cache[name, target] = compile_cuda(
                    name, str(tmp_path_factory.mktemp("cuda")), target)
        return cache[name, target]
    return get


# Execution targets: the GPU when there is one; the emulation where the
# compiler is (it makes CPU libraries, which need this machine's LLVM).
TARGETS = [
    pytest.param("cuda", marks=pytest.mark.skipif(
        not GPU, reason="no CUDA driver (libcuda.so.1) on this machine: GPU "
                        "execution tests run on the H100")),
    pytest.param("cuda-emulate", marks=pytest.mark.skipif(
        bool(PREBUILT), reason="prebuilt artifacts: no compiler on this machine")),
]


def open_lib(artifacts, name, target):
    return Model(artifacts(name, target), device="cuda" if target == "cuda" else "cpu")


@pytest.mark.skipif(shutil.which("readelf") is None, reason="no readelf (binutils)")
def test_cuda_library_needs_no_llvm_and_says_cuda(artifacts):
    path = artifacts("tiny_llava_fp32")
    needed = subprocess.run(["readelf", "-d", path], check=True, capture_output=True,
                            text=True).stdout
    assert "libqslaw_cuda_runtime.so" in needed
    assert "libLLVM" not in needed and "libMLIR" not in needed
    assert "mlir_c_runner_utils" not in needed
    rt = os.path.join(os.path.dirname(tool("qslaw-compile")), "..", "lib",
                      "libqslaw_runtime.so")
    if os.path.exists(rt):  # the runtime itself deploys without LLVM too
        needed = subprocess.run(["readelf", "-d", rt], check=True, capture_output=True,
                                text=True).stdout
        assert "libLLVM" not in needed and "libMLIR" not in needed


@pytest.mark.skipif(GPU, reason="checks the message given without a GPU")
def test_cuda_without_gpu_fails_clearly(artifacts):
    with pytest.raises(RuntimeError, match=r"CUDA was requested but is not usable: "
                                           r"the CUDA driver library libcuda.so.1"):
        Model(artifacts("tiny_llava_fp32"), device="cuda")


def test_cuda_library_refuses_cpu_session(artifacts):
    with pytest.raises(RuntimeError, match=r"compiled for cuda, not for device 'cpu'"):
        Model(artifacts("tiny_llava_fp32"), device="cpu")


def feeds(name):
    return {k: np.load(os.path.join(FIX, f"{name}.{k}.npy"))
            for k in ("input_ids", "pixel_values", "attention_mask")}


@pytest.mark.parametrize("target", TARGETS)
def test_forward_matches_onnxruntime(artifacts, target):
    ort = pytest.importorskip("onnxruntime")
    lib = open_lib(artifacts, "tiny_llava_fp32", target)
    inputs = feeds("tiny_llava")
    (logits,) = lib.run(**inputs)
    sess = ort.InferenceSession(os.path.join(FIX, "tiny_llava.onnx"),
                                providers=["CPUExecutionProvider"])
    (ref,) = sess.run(["logits"], inputs)
    np.testing.assert_allclose(logits, ref, rtol=1e-4, atol=1e-4)
    # A second run reuses the cached device blocks and gives the same bits.
    (again,) = lib.run(**inputs)
    np.testing.assert_array_equal(logits, again)


@pytest.mark.parametrize("target", TARGETS)
def test_external_weights_equal_embedded(artifacts, target):
    """--weights=external: the same kernels read the same bytes, uploaded
    from the mapped file instead of the library."""
    path = artifacts("tiny_llava_fp32_external", target)
    assert os.path.exists(path + ".weights")
    inputs = feeds("tiny_llava")
    (external,) = open_lib(artifacts, "tiny_llava_fp32_external", target).run(**inputs)
    (embedded,) = open_lib(artifacts, "tiny_llava_fp32", target).run(**inputs)
    np.testing.assert_array_equal(external, embedded)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("name,mode", [("tiny_llava", "scale"), ("tiny_llava", "gamma"),
                                       ("tiny_llava_gqa", "scale")])
def test_grad_step_matches_torch(artifacts, name, mode, target):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    import test_train_step_torch as ref_tests
    lib = open_lib(artifacts, f"{name}_{mode}_train", target)
    ref_tests.check_gradients_match_torch(lib, name, mode)


@pytest.mark.parametrize("target", TARGETS)
def test_twenty_adamw_steps_match_torch(artifacts, target):
    """Parameters and moments stay in the session state (device memory on
    CUDA) across the steps, as in the trainer."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    import test_train_step_torch as ref_tests
    lib = open_lib(artifacts, "tiny_llava_scale_train", target)
    ref_tests.check_adamw_losses_match_torch(lib, resident=True)


@pytest.mark.parametrize("target", TARGETS)
def test_resident_state_equals_host_round_trip(artifacts, target):
    """The same kernels on device-resident and on host-staged state: no
    atomics, no reordering, so bit for bit."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    import test_train_step_torch as ref_tests
    path = artifacts("tiny_llava_scale_train", target)
    dev = "cuda" if target == "cuda" else "cpu"
    host_losses, host = ref_tests.run_adamw_steps(Model(path, device=dev), steps=3)
    res_losses, res = ref_tests.run_adamw_steps(Model(path, device=dev), steps=3,
                                                resident=True)
    assert host_losses == res_losses
    for a_list, b_list in zip(host, res):
        for a, b in zip(a_list, b_list):
            np.testing.assert_array_equal(a, b)


def trainer_metrics(trainer, out, *extra):
    p = subprocess.run([trainer, *TRAINER_ARGS, f"--out={out}", *extra],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    with open(os.path.join(out, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def reference_trainer_metrics(out_dir):
    """The CPU trainer's metrics for TRAINER_ARGS (compiled here, or made by
    bench/cuda_artifacts.sh on the compiler machine for a GPU machine)."""
    saved = os.path.join(PREBUILT or "", "tiny_llava_trainer.cpu_metrics.json")
    if PREBUILT:
        with open(saved) as f:
            return json.load(f)
    _, extra = ARTIFACTS["tiny_llava_trainer"]
    exe = os.path.join(out_dir, "cpu_trainer")
    subprocess.run([tool("qslaw-compile"), os.path.join(FIX, "tiny_llava.onnx"),
                    "-o", exe] + extra, check=True, capture_output=True)
    return trainer_metrics(exe, os.path.join(out_dir, "cpu_run"))


@pytest.mark.parametrize("target", TARGETS)
def test_trainer_matches_cpu_trainer(artifacts, target, tmp_path):
    """The trainer executable on the target: same sampled batches, losses
    within 1e-4 relative of the CPU trainer's (fp32 on both; the generated
    kernels sum in another order), an ONNX export that onnxruntime loads."""
    ort = pytest.importorskip("onnxruntime")
    trainer = artifacts("tiny_llava_trainer", target)
    ours = trainer_metrics(trainer, str(tmp_path / "run"),
                           f"--export-onnx={tmp_path}/learned.onnx",
                           f"--source-model={os.path.join(FIX, 'tiny_llava.onnx')}")
    ref = reference_trainer_metrics(str(tmp_path))
    assert [r["step"] for r in ours] == list(range(1, 13))
    for a, b in zip(ours, ref):
        assert (a["text_samples"], a["tokens"], a["skipped"]) == \
            (b["text_samples"], b["tokens"], b["skipped"])
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4)
        assert a["grad_norm"] == pytest.approx(b["grad_norm"], rel=1e-3)
    assert ours[-1]["loss"] < ours[0]["loss"]
    ort.InferenceSession(str(tmp_path / "learned.onnx"),
                         providers=["CPUExecutionProvider"])
