"""The hand-written CUDA kernels compile for sm_80 and sm_90a (no GPU needed).

Runs nvcc -cubin on every .cu file of lib/CUDA/Kernels for both targets, so
ptxas accepts the inline PTX (mma.sync, ldmatrix, cp.async), checks that no
kernel spills more than a few registers to local memory (the 128x256 forward
tile spills 8-12 bytes on sm_80 with nvcc 13.0 and none on sm_90a; anything
larger means a register array went to local memory), and, when cuobjdump is present, that
the tensor-core instruction (HMMA) is in the machine code. The Hopper
files (QMatmulW4*Hopper.cu) are sm_90a code: there, the PTX must issue
wgmma.mma_async with no serialisation warning from ptxas (it serialises
wgmma it cannot prove safe), and on sm_80 its kernels only trap. Wgmma.cuh
must match its generator.
"""

import os
import re
import shutil
import subprocess
import sys

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(REPO, "lib", "CUDA", "Kernels"))
import qmatmul_w4 as qk  # noqa: E402

NVCC = qk.find_nvcc()
pytestmark = pytest.mark.skipif(
    NVCC is None, reason="nvcc not found (PATH, CUDA_HOME, /usr/local/cuda)")


@pytest.mark.parametrize("arch", ["sm_80", "sm_90a"])
@pytest.mark.parametrize("src", [os.path.basename(p) for p in qk.SOURCES])
def test_cubin_compiles(tmp_path, arch, src):
    cubin = tmp_path / (src + "." + arch + ".cubin")
    cmd = [NVCC, *qk.nvcc_base_flags(), "-Xptxas=-v", "-cubin",
           qk.gencode_for(arch), os.path.join(qk.KERNEL_DIR, src),
           "-o", str(cubin)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-4000:]
    assert cubin.stat().st_size > 0
    log = res.stdout + res.stderr
    spills = [int(v) for v in re.findall(r"(\d+) bytes spill stores", log)]
    assert spills and max(spills) <= 32, "register spills:\n" + log[-4000:]
    # wgmma.mma_async per 64-element chunk in the sm_90a PTX: forward 3
    # tiles x 2 types x 4 k16 steps; ∂s/∂γ 2 modes x 2 types x 4 steps; ∂X
    # 2 tiles x 2 types x 4 steps.
    hopper = {"QMatmulW4FwdHopper.cu": 24,
              "QMatmulW4GradHopper.cu": 16,
              "QMatmulW4GradInputHopper.cu": 16}.get(src)
    assert "Potential Performance Loss" not in log, log[-4000:]
    if hopper and arch == "sm_90a":
        ptx = tmp_path / (src + ".ptx")
        res = subprocess.run([NVCC, *qk.nvcc_base_flags(), "-ptx",
                              qk.gencode_for(arch),
                              os.path.join(qk.KERNEL_DIR, src), "-o",
                              str(ptx)], capture_output=True, text=True)
        assert res.returncode == 0, res.stderr[-4000:]
        text = ptx.read_text()
        assert text.count("wgmma.mma_async.sync.aligned") == hopper
        assert "fence.proxy.async.shared::cta" in text
    cuobjdump = shutil.which("cuobjdump") or os.path.join(
        os.path.dirname(NVCC), "cuobjdump")
    if os.path.exists(cuobjdump):
        sass = subprocess.run([cuobjdump, "--dump-sass", str(cubin)],
                              capture_output=True, text=True).stdout
        if hopper:
            want = "HGMMA" if arch == "sm_90a" else None
        else:
            want = "HMMA"
        if want:
            assert want in sass, f"no {want} instructions in " + src


def test_wgmma_wrappers_up_to_date():
    gen = os.path.join(qk.KERNEL_DIR, "gen_wgmma.py")
    res = subprocess.run([sys.executable, gen, "--check"], capture_output=True,
                         text=True)
    assert res.returncode == 0, res.stderr
