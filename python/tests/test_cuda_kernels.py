"""Numerical checks of the hand-written w4 CUDA kernels (lib/CUDA/Kernels).

Needs an NVIDIA GPU, torch with CUDA, numpy and nvcc; otherwise every test is
skipped with the reason. The kernels are compiled with nvcc into a temporary
directory and loaded with ctypes; every result is compared with a float32
PyTorch reference on fresh random data, outputs are poisoned (NaN) before
each call so unwritten elements fail.

Tolerances (relative Frobenius error ‖out−ref‖/‖ref‖ against a float32
reference computed from the *same* rounded bf16/fp16 inputs):
  * forward / dX: the kernels round each dequantised weight to the
    activation type before the tensor-core product (bf16: 8-bit mantissa,
    unit roundoff 2^-9 ~ 2e-3, plus the bf16 rounding of -z·s inside the
    fused multiply-add, ~8·s·2^-9 absolute, i.e. ~4e-3 of rms(Ŵ); fp16:
    2^-12 ~ 2.4e-4) and round the fp32 result once more to the output type.
    Rounding errors are independent across k, so they do not grow with K in
    the relative norm: bf16 < 1e-2, fp16 < 2e-3 (the bounds are ~2x the
    worst observed on H100 for K up to 11008).
  * ds / dγ: operands are the exact bf16/fp16 inputs, products are exact in
    fp32 and accumulated in fp32 (error ~ sqrt(T)·2^-24 relative per
    element), the group epilogue is fp32: 1e-4 relative, plus a max-abs check.
"""

import os
import sys

import pytest

torch = pytest.importorskip("torch", reason="PyTorch is not installed")
np = pytest.importorskip("numpy", reason="numpy is not installed")

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(REPO, "lib", "CUDA", "Kernels"))
import qmatmul_w4 as qk  # noqa: E402

if not torch.cuda.is_available():
    pytest.skip("no CUDA GPU visible to torch (torch.cuda.is_available() is "
                "False)", allow_module_level=True)
if qk.find_nvcc() is None:
    pytest.skip("nvcc not found (PATH, CUDA_HOME, /usr/local/cuda)",
                allow_module_level=True)

DEV = "cuda"
TOL_FWD = {torch.bfloat16: 1e-2, torch.float16: 2e-3}
TOL_GRAD = 1e-4


@pytest.fixture(scope="module")
def kern(tmp_path_factory):
    out = tmp_path_factory.mktemp("qslaw_cuda_w4")
    so = qk.build(str(out), archs=(qk.arch_of_device(torch),))
    return qk.W4Kernels(so)


def rel_err(out, ref):
    out, ref = out.float(), ref.float()
    assert torch.isfinite(out).all(), "non-finite / unwritten output"
    return ((out - ref).norm() / ref.norm().clamp_min(1e-30)).item()


def make_quant(n, k, g, seed, int_zero=True):
    gen = torch.Generator(device="cpu").manual_seed(seed)
    codes = torch.randint(0, 16, (n, k), generator=gen, dtype=torch.uint8)
    j = k // g
    s = (torch.rand(n, j, generator=gen) * 0.02 + 0.002)
    if int_zero:
        z = torch.randint(0, 16, (n, j), generator=gen).float()
    else:
        z = torch.rand(n, j, generator=gen) * 15.0
    qw = qk.pack_w4_torch(codes).to(DEV)
    return codes.to(DEV), qw, s.to(DEV), z.to(DEV)


def rand_act(shape, dtype, seed):
    gen = torch.Generator(device="cpu").manual_seed(seed)
    return torch.randn(*shape, generator=gen).to(dtype).to(DEV)


def test_device_pack_matches_python(kern):
    codes, qw, _, _ = make_quant(1000, 384, 128, seed=1)
    dev = kern.pack(codes.contiguous())
    torch.cuda.synchronize()
    assert torch.equal(dev.cpu(), qw.cpu())


FWD_SHAPES = [(256, 512), (1000, 384), (4096, 1024)]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("g", [32, 64, 128])
@pytest.mark.parametrize("m", [1, 3, 8, 13, 16, 17, 100, 257])
@pytest.mark.parametrize("nk", FWD_SHAPES)
def test_forward_auto(kern, dtype, g, m, nk):
    n, k = nk
    if k % g:
        pytest.skip("K not a multiple of G")
    codes, qw, s, z = make_quant(n, k, g, seed=m * 7 + g)
    x = rand_act((m, k), dtype, seed=m + n)
    y = torch.full((m, n), float("nan"), dtype=dtype, device=DEV)
    kern.forward(x, qw, s, z, n, g, out=y)
    torch.cuda.synchronize()
    ref = qk.ref_forward(x, codes, s, z, g)
    assert rel_err(y, ref) < TOL_FWD[dtype]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("path", [qk.PATH_GEMV, qk.PATH_TC_128x128,
                                  qk.PATH_TC_64x128, qk.PATH_TC_64x64,
                                  qk.PATH_TC_128x256])
@pytest.mark.parametrize("m", [1, 9, 16, 50, 130])
def test_forward_every_path(kern, dtype, path, m):
    if path == qk.PATH_GEMV and m > 16:
        pytest.skip("GEMV path is for M <= 16")
    n, k, g = 1000, 768, 128
    codes, qw, s, z = make_quant(n, k, g, seed=path * 100 + m,
                                 int_zero=(m % 2 == 0))
    x = rand_act((m, k), dtype, seed=m)
    y = torch.full((m, n), float("nan"), dtype=dtype, device=DEV)
    kern.forward(x, qw, s, z, n, g, path=path, out=y)
    torch.cuda.synchronize()
    assert rel_err(y, qk.ref_forward(x, codes, s, z, g)) < TOL_FWD[dtype]


# Shapes that select each warps-per-tile variant of the GEMV path (16, 8 and
# 4 warps per 16-row tile on a 132-SM H100), uneven K splits over the warps
# (KC = 33, 3, 1 chunks) and rows that are not a multiple of 16.
GEMV_SHAPES = [(1000, 2048, 128), (1000, 2112, 64), (6144, 1024, 128),
               (11008, 512, 32), (520, 192, 64), (264, 64, 32)]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("m", [1, 5, 8, 9, 16])
@pytest.mark.parametrize("nkg", GEMV_SHAPES)
def test_forward_gemv_variants(kern, dtype, m, nkg):
    n, k, g = nkg
    codes, qw, s, z = make_quant(n, k, g, seed=m * 31 + n + k,
                                 int_zero=(m % 2 == 1))
    x = rand_act((m, k), dtype, seed=m * 3 + k)
    y = torch.full((m, n), float("nan"), dtype=dtype, device=DEV)
    kern.forward(x, qw, s, z, n, g, path=qk.PATH_GEMV, out=y)
    torch.cuda.synchronize()
    assert rel_err(y, qk.ref_forward(x, codes, s, z, g)) < TOL_FWD[dtype]


def _cluster_ok():
    return torch.cuda.get_device_capability()[0] >= 9


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("split", [1, 2, 4, 8])
@pytest.mark.parametrize("path", [qk.PATH_TC_128x128, qk.PATH_TC_64x128,
                                  qk.PATH_TC_64x64])
@pytest.mark.parametrize("mkg", [(17, 768, 32), (100, 1024, 128),
                                 (130, 832, 64)])
def test_forward_split_k(kern, dtype, split, path, mkg):
    m, k, g = mkg
    if split > 1 and not _cluster_ok():
        pytest.skip("cluster split-K needs sm_90+")
    n = 1000
    codes, qw, s, z = make_quant(n, k, g, seed=split * 17 + path + m,
                                 int_zero=(split % 4 == 0))
    x = rand_act((m, k), dtype, seed=m + split)
    y = torch.full((m, n), float("nan"), dtype=dtype, device=DEV)
    kern.forward(x, qw, s, z, n, g, path=path, split=split, out=y)
    torch.cuda.synchronize()
    assert rel_err(y, qk.ref_forward(x, codes, s, z, g)) < TOL_FWD[dtype]


def _sm90():
    return torch.cuda.get_device_capability() == (9, 0)


# The wgmma paths: partial M and N tiles (N = 1000 is neither a multiple of
# 128 nor 256), K shorter than the copy distance (K = 64, 128), every group
# size (G = 32 puts two groups in a 64-column chunk), fractional zero points.
# One row past the output is poisoned too: the epilogue must not write it.
WGMMA_CASES = [(1, 256, 64, 32), (64, 1000, 128, 64), (100, 1000, 768, 128),
               (129, 512, 192, 32), (300, 4096, 1024, 128),
               (1030, 1000, 4096, 64), (256, 11008, 512, 128)]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("path", qk.WGMMA_PATHS)
@pytest.mark.parametrize("case", WGMMA_CASES)
def test_forward_wgmma(kern, dtype, path, case):
    if not _sm90():
        pytest.skip("wgmma paths are sm_90a code (this GPU is sm_%d%d)"
                    % torch.cuda.get_device_capability())
    m, n, k, g = case
    codes, qw, s, z = make_quant(n, k, g, seed=path * 31 + m + k,
                                 int_zero=(m % 2 == 0))
    x = rand_act((m, k), dtype, seed=m + k)
    buf = torch.full((m + 1, n), float("nan"), dtype=dtype, device=DEV)
    y = buf[:m]
    kern.forward(x, qw, s, z, n, g, path=path, out=y)
    torch.cuda.synchronize()
    assert torch.isnan(buf[m].float()).all(), "wrote past the output"
    assert rel_err(y, qk.ref_forward(x, codes, s, z, g)) < TOL_FWD[dtype]


def _skip_unless_runs(grad_path):
    if grad_path == qk.GRAD_WGMMA and not _sm90():
        pytest.skip("the wgmma kernels are sm_90a code (this GPU is sm_%d%d)"
                    % torch.cuda.get_device_capability())


def test_wgmma_refused_off_sm90(kern):
    if _sm90():
        pytest.skip("this GPU runs the wgmma paths")
    codes, qw, s, z = make_quant(256, 512, 128, seed=4)
    x = rand_act((200, 512), torch.bfloat16, seed=4)
    y = torch.empty(200, 256, dtype=torch.bfloat16, device=DEV)
    for p in qk.WGMMA_PATHS:
        assert kern.lib.qslaw_w4_forward_ex(
            x.data_ptr(), qw.data_ptr(), s.data_ptr(), z.data_ptr(),
            y.data_ptr(), 200, 256, 512, 128, 0, p, None) == 1
    ds = torch.empty(256, 4, device=DEV)
    assert kern.lib.qslaw_w4_grad_scale_ex(
        y.data_ptr(), x.data_ptr(), qw.data_ptr(), z.data_ptr(),
        ds.data_ptr(), 200, 256, 512, 128, 0, qk.GRAD_WGMMA, None) == 1
    dx = torch.empty(200, 512, dtype=torch.bfloat16, device=DEV)
    assert kern.lib.qslaw_w4_grad_input_split(
        y.data_ptr(), qw.data_ptr(), s.data_ptr(), z.data_ptr(),
        dx.data_ptr(), 200, 256, 512, 128, 0, qk.GRAD_WGMMA, 0, None) == 1


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_auto_wgmma_policy(kern, dtype):
    """With the policy on, AUTO runs the wgmma kernels from M (T) = 512 on:
    its results are bitwise those of the explicit wgmma selection; with it
    off, those of the mma.sync kernels (the 128x256 tile for the forward)."""
    _skip_unless_runs(qk.GRAD_WGMMA)
    m, n, k, g = 1024, 1000, 2048, 128
    codes, qw, s, z = make_quant(n, k, g, seed=21)
    x = rand_act((m, k), dtype, seed=22)
    dy = rand_act((m, n), dtype, seed=23)

    def run(fwd_path, grad_path):
        y = kern.forward(x, qw, s, z, n, g, path=fwd_path)
        dx = kern.grad_input(dy, qw, s, z, k, g, path=grad_path)
        ds = kern.grad_scale(dy, x, qw, z, g, path=grad_path)
        torch.cuda.synchronize()
        return y, dx, ds

    prev = kern.set_auto_wgmma(True)
    try:
        auto_on = run(qk.PATH_AUTO, qk.GRAD_AUTO)
        kern.set_auto_wgmma(False)
        auto_off = run(qk.PATH_AUTO, qk.GRAD_AUTO)
    finally:
        kern.set_auto_wgmma(prev)
    wgmma = run(qk.PATH_WGMMA_128x256, qk.GRAD_WGMMA)
    mma = run(qk.PATH_TC_128x256, qk.GRAD_MMA)
    for a, b in zip(auto_on, wgmma):
        assert torch.equal(a, b)
    for a, b in zip(auto_off, mma):
        assert torch.equal(a, b)
    assert rel_err(auto_on[0], qk.ref_forward(x, codes, s, z, g)) < TOL_FWD[dtype]


@pytest.mark.parametrize("m", [64, 128, 200])
def test_forward_mid_m_auto(kern, m):
    # Auto path for 16 < M <= 256 (cluster split-K on sm_90+), N = 4096.
    n, k, g = 4096, 4096, 128
    codes, qw, s, z = make_quant(n, k, g, seed=m)
    x = rand_act((m, k), torch.bfloat16, seed=m)
    y = torch.full((m, n), float("nan"), dtype=torch.bfloat16, device=DEV)
    kern.forward(x, qw, s, z, n, g, out=y)
    torch.cuda.synchronize()
    assert rel_err(y, qk.ref_forward(x, codes, s, z, g)) < 1e-2


def test_forward_large_k(kern):
    # K = 11008 (LLaMA down_proj); M = 1 and 16 (GEMV), 300 (tensor cores).
    n, k, g = 256, 11008, 128
    codes, qw, s, z = make_quant(n, k, g, seed=5)
    for m in (1, 16, 300):
        x = rand_act((m, k), torch.bfloat16, seed=m)
        y = kern.forward(x, qw, s, z, n, g)
        torch.cuda.synchronize()
        assert rel_err(y, qk.ref_forward(x, codes, s, z, g)) < 1e-2


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("m", [1, 7, 16, 100, 300])
@pytest.mark.parametrize("nkg", [(256, 512, 128), (1000, 384, 64),
                                 (520, 192, 32), (2048, 2048, 128)])
def test_grad_input(kern, dtype, m, nkg):
    n, k, g = nkg
    codes, qw, s, z = make_quant(n, k, g, seed=m * 3 + n)
    dy = rand_act((m, n), dtype, seed=m * 11 + k)
    dx = torch.full((m, k), float("nan"), dtype=dtype, device=DEV)
    kern.grad_input(dy, qw, s, z, k, g, out=dx)
    torch.cuda.synchronize()
    assert rel_err(dx, qk.ref_grad_input(dy, codes, s, z, g)) < TOL_FWD[dtype]


# ∂X on wgmma: the 128 x 128 tile (small grids) and the 128 x 256 tile
# (M = 1100: at least 132 blocks), K = 64 and 4480 leave a k-chunk of the
# last tile past K; N = 520 leaves padded rows in the last 16-row weight
# tile and a partial 64-row chunk of the reduction, N = 11008 a long one.
# One row past the output is poisoned: the epilogue must not write it.
DX_WGMMA_CASES = [(1, 256, 64, 32), (100, 1000, 768, 128), (129, 520, 192, 32),
                  (300, 4096, 1024, 128), (64, 11008, 512, 128),
                  (1100, 1000, 4096, 64), (1100, 520, 4480, 128)]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("case", DX_WGMMA_CASES)
def test_grad_input_wgmma(kern, dtype, case):
    _skip_unless_runs(qk.GRAD_WGMMA)
    m, n, k, g = case
    codes, qw, s, z = make_quant(n, k, g, seed=m + n + k,
                                 int_zero=(m % 2 == 0))
    dy = rand_act((m, n), dtype, seed=m * 7 + n)
    buf = torch.full((m + 1, k), float("nan"), dtype=dtype, device=DEV)
    dx = buf[:m]
    kern.grad_input(dy, qw, s, z, k, g, out=dx, path=qk.GRAD_WGMMA)
    torch.cuda.synchronize()
    assert torch.isnan(buf[m].float()).all(), "wrote past the output"
    assert rel_err(dx, qk.ref_grad_input(dy, codes, s, z, g)) < TOL_FWD[dtype]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("split", [1, 2, 4, 8])
@pytest.mark.parametrize("m", [1, 16, 100, 300])
@pytest.mark.parametrize("nkg", [(1000, 384, 64), (4096, 2048, 128)])
def test_grad_input_split(kern, dtype, split, m, nkg):
    n, k, g = nkg
    if split > 1 and not _cluster_ok():
        pytest.skip("cluster split needs sm_90+")
    codes, qw, s, z = make_quant(n, k, g, seed=m * 5 + split + n)
    dy = rand_act((m, n), dtype, seed=m * 13 + split)
    dx = torch.full((m, k), float("nan"), dtype=dtype, device=DEV)
    kern.grad_input(dy, qw, s, z, k, g, out=dx, split=split)
    torch.cuda.synchronize()
    assert rel_err(dx, qk.ref_grad_input(dy, codes, s, z, g)) < TOL_FWD[dtype]


def test_split_invalid(kern):
    codes, qw, s, z = make_quant(256, 512, 128, seed=3)
    x = rand_act((40, 512), torch.bfloat16, seed=2)
    y = torch.empty(40, 256, dtype=torch.bfloat16, device=DEV)
    lib = kern.lib
    args = (x.data_ptr(), qw.data_ptr(), s.data_ptr(), z.data_ptr(),
            y.data_ptr(), 40, 256, 512, 128, 0)
    # split 3 is not a power of two; 128x256 never splits; GEMV never splits
    assert lib.qslaw_w4_forward_split(*args, qk.PATH_TC_64x64, 3, None) == 1
    assert lib.qslaw_w4_forward_split(*args, qk.PATH_TC_128x256, 2, None) == 1
    assert lib.qslaw_w4_forward_split(*args, qk.PATH_GEMV, 2, None) == 1
    for p in qk.WGMMA_PATHS:  # never split
        assert lib.qslaw_w4_forward_split(*args, p, 2, None) == 1
    # more splits than K chunks (K = 512: 8 chunks)
    if _cluster_ok():
        assert lib.qslaw_w4_forward_split(*args, qk.PATH_TC_64x64, 8,
                                          None) == 0
    else:
        assert lib.qslaw_w4_forward_split(*args, qk.PATH_TC_64x64, 2,
                                          None) == 1
    dx = torch.empty(40, 512, dtype=torch.bfloat16, device=DEV)
    assert lib.qslaw_w4_grad_input_ex(y.data_ptr(), qw.data_ptr(),
                                      s.data_ptr(), z.data_ptr(),
                                      dx.data_ptr(), 40, 256, 512, 128, 0, 8,
                                      None) == 1  # N = 256: only 4 slabs
    dargs = (y.data_ptr(), qw.data_ptr(), s.data_ptr(), z.data_ptr(),
             dx.data_ptr(), 40, 256, 512, 128, 0)
    # the wgmma ∂X never splits; kernel selections are 0..2
    assert lib.qslaw_w4_grad_input_split(*dargs, qk.GRAD_WGMMA, 2, None) == 1
    assert lib.qslaw_w4_grad_input_split(*dargs, 3, 1, None) == 1
    assert lib.qslaw_w4_grad_input_split(*dargs, -1, 1, None) == 1
    torch.cuda.synchronize()


def _check_group_grad(out, ref):
    assert rel_err(out, ref) < TOL_GRAD
    # element-wise: error relative to the magnitude of the row of groups
    scale = ref.abs().amax().clamp_min(1e-30)
    assert ((out - ref).abs().amax() / scale).item() < 1e-3


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("t", [1, 37, 256, 1000])
@pytest.mark.parametrize("nkg", [(256, 512, 128), (1000, 384, 64),
                                 (520, 192, 32)])
@pytest.mark.parametrize("path", [qk.GRAD_AUTO, qk.GRAD_WGMMA])
def test_grad_scale(kern, dtype, t, nkg, path):
    n, k, g = nkg
    _skip_unless_runs(path)
    codes, qw, s, z = make_quant(n, k, g, seed=t + n, int_zero=(t % 2 == 0))
    dy = rand_act((t, n), dtype, seed=t * 5)
    x = rand_act((t, k), dtype, seed=t * 13)
    ds = torch.full((n, k // g), float("nan"), device=DEV)
    kern.grad_scale(dy, x, qw, z, g, out=ds, path=path)
    torch.cuda.synchronize()
    _check_group_grad(ds, qk.ref_grad_scale(dy, x, codes, z, g))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("t", [1, 37, 300])
@pytest.mark.parametrize("nkg", [(256, 512, 128), (1000, 384, 64),
                                 (520, 192, 32)])
@pytest.mark.parametrize("path", [qk.GRAD_AUTO, qk.GRAD_WGMMA])
def test_grad_gamma(kern, dtype, t, nkg, path):
    n, k, g = nkg
    _skip_unless_runs(path)
    gen = torch.Generator(device="cpu").manual_seed(t * 3 + n)
    j = k // g
    w = (torch.randn(n, k, generator=gen) * 0.05).to(dtype)
    wf = w.float().view(n, j, g)
    lo, hi = wf.amin(-1), wf.amax(-1)
    s = ((hi - lo) / 15.0).clamp_min(1e-5)
    z = torch.round(-lo / s)
    # γ around 1 with spread so that some weights fall outside [0, 15]
    gamma = 0.8 + 0.4 * torch.rand(n, j, generator=gen)
    w, s, z, gamma = w.to(DEV), s.to(DEV), z.to(DEV), gamma.to(DEV)
    dy = rand_act((t, n), dtype, seed=t * 7)
    x = rand_act((t, k), dtype, seed=t * 17)
    dg = torch.full((n, j), float("nan"), device=DEV)
    kern.grad_gamma(dy, x, w, s, z, gamma, g, qmax=15, out=dg, path=path)
    torch.cuda.synchronize()
    ref = qk.ref_grad_gamma(dy, x, w, s, z, gamma, g, qmax=15)
    m = qk.gamma_mask(w, s, z, gamma, g, 15)
    assert 0.0 < m.mean().item() < 1.0, "test data must exercise the mask"
    _check_group_grad(dg, ref)


def test_invalid_arguments(kern):
    codes, qw, s, z = make_quant(256, 512, 128, seed=9)
    x = rand_act((4, 512), torch.bfloat16, seed=1)
    y = torch.empty(4, 256, dtype=torch.bfloat16, device=DEV)
    lib = kern.lib
    st = None
    # K not a multiple of 64, G unsupported, M > 16 on the GEMV path, dtype
    assert lib.qslaw_w4_forward(x.data_ptr(), qw.data_ptr(), s.data_ptr(),
                                z.data_ptr(), y.data_ptr(), 4, 256, 500, 128,
                                0, st) == 1
    assert lib.qslaw_w4_forward(x.data_ptr(), qw.data_ptr(), s.data_ptr(),
                                z.data_ptr(), y.data_ptr(), 4, 256, 512, 96,
                                0, st) == 1
    assert lib.qslaw_w4_forward_ex(x.data_ptr(), qw.data_ptr(), s.data_ptr(),
                                   z.data_ptr(), y.data_ptr(), 17, 256, 512,
                                   128, 0, qk.PATH_GEMV, st) == 1
    assert lib.qslaw_w4_forward(x.data_ptr(), qw.data_ptr(), s.data_ptr(),
                                z.data_ptr(), y.data_ptr(), 4, 256, 512, 128,
                                7, st) == 2
    # unknown kernel selection for the group gradients
    ds = torch.empty(256, 4, device=DEV)
    assert lib.qslaw_w4_grad_scale_ex(y.data_ptr(), x.data_ptr(),
                                      qw.data_ptr(), z.data_ptr(),
                                      ds.data_ptr(), 4, 256, 512, 128, 0, 3,
                                      st) == 1
