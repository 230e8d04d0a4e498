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
    "tiny_llava_scale_train": ("tiny_llava", ["--quantize=w4g32,mode=scale",
                                              f"--quantize-layers={LAYERS}", "--train"]),
    "tiny_llava_gamma_train": ("tiny_llava", ["--quantize=w4g32,mode=gamma",
                                              f"--quantize-layers={LAYERS}", "--train"]),
    "tiny_llava_gqa_scale_train": ("tiny_llava_gqa", ["--quantize=w4g32,mode=scale",
                                                      f"--quantize-layers={LAYERS}",
                                                      "--train"]),
}


def have_gpu():
    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    return True


GPU = have_gpu()


def compile_cuda(name, out_dir, target="cuda"):
    fixture, extra = ARTIFACTS[name]
    out = os.path.join(out_dir, f"{name}.{target}.so" if target != "cuda" else name + ".so")
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
                cache[name, target] = os.path.join(PREBUILT, name + ".so")
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
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    import test_train_step_torch as ref_tests
    lib = open_lib(artifacts, "tiny_llava_scale_train", target)
    ref_tests.check_adamw_losses_match_torch(lib)
