"""Python side of qslaw's hand-written w4 CUDA kernels.

* ``pack_w4``   - offline reordering of uint8 codes [N, K] into the packed
                  fragment-order layout the kernels read (docs/CUDA.md).
* ``build``     - compile QMatmulW4*.cu into a shared library with nvcc.
* ``W4Kernels`` - ctypes binding of the C ABI (include/qslaw/CUDA/
                  QMatmulKernels.h) taking torch CUDA tensors.
* ``ref_*``     - float32 PyTorch references of the four kernels.

Used by python/tests/test_cuda_kernels.py and bench/qmatmul_cuda.py; needs
numpy for packing and torch for the binding, nothing else.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess

KERNEL_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.abspath(os.path.join(KERNEL_DIR, "..", "..", ".."))
INCLUDE_DIR = os.path.join(REPO_ROOT, "include")
SOURCES = [
    os.path.join(KERNEL_DIR, "QMatmulW4Fwd.cu"),
    os.path.join(KERNEL_DIR, "QMatmulW4Bwd.cu"),
    os.path.join(KERNEL_DIR, "QMatmulW4FwdHopper.cu"),
    os.path.join(KERNEL_DIR, "QMatmulW4GradHopper.cu"),
    os.path.join(KERNEL_DIR, "QMatmulW4GradInputHopper.cu"),
]

DTYPE_BF16 = 0
DTYPE_FP16 = 1

PATH_AUTO = 0
PATH_GEMV = 1
PATH_TC_128x128 = 2
PATH_TC_64x128 = 3
PATH_TC_64x64 = 4
PATH_TC_128x256 = 5
# sm_90a only (wgmma); QSLAW_CUDA_EINVAL elsewhere.
PATH_WGMMA_128x256 = 6
PATH_WGMMA_128x128 = 7
PATH_WGMMA_256x128 = 8
WGMMA_PATHS = (PATH_WGMMA_128x256, PATH_WGMMA_128x128, PATH_WGMMA_256x128)

# Kernel of ∂X (grad_input) and of the fused group gradients (grad_scale /
# grad_gamma).
GRAD_AUTO = 0
GRAD_MMA = 1
GRAD_WGMMA = 2  # sm_90a only


def find_nvcc():
    """nvcc on PATH, else under CUDA_HOME / /usr/local/cuda, else None."""
    p = shutil.which("nvcc")
    if p:
        return p
    for root in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"),
                 "/usr/local/cuda"):
        if root:
            cand = os.path.join(root, "bin", "nvcc")
            if os.path.isfile(cand) and os.access(cand, os.X_OK):
                return cand
    return None


def gencode_for(arch):
    """nvcc -gencode flag for 'sm_80', 'sm_90a', ... ."""
    num = arch[3:]
    return f"-gencode=arch=compute_{num},code={arch}"


def nvcc_base_flags():
    return ["-std=c++17", "-O3", "-I", INCLUDE_DIR, "-Xptxas=-warn-spills"]


def build(out_dir, archs=("sm_90a",), nvcc=None, extra=()):
    """Compile the kernels into ``out_dir/libqslaw_cuda_w4.so``."""
    nvcc = nvcc or find_nvcc()
    if nvcc is None:
        raise RuntimeError("nvcc not found")
    os.makedirs(out_dir, exist_ok=True)
    so = os.path.join(out_dir, "libqslaw_cuda_w4.so")
    cmd = [nvcc, *nvcc_base_flags(), "-shared", "-Xcompiler", "-fPIC",
           *[gencode_for(a) for a in archs], *extra, *SOURCES, "-o", so]
    subprocess.run(cmd, check=True)
    return so


def arch_of_device(torch):
    major, minor = torch.cuda.get_device_capability()
    arch = f"sm_{major}{minor}"
    return arch + "a" if major == 9 else arch


# ---------------------------------------------------------------------------
# Packing
# ---------------------------------------------------------------------------

def packed_words(n, k):
    return ((n + 15) // 16) * 16 * k // 8


def pack_w4(codes):
    """uint8 codes [N, K] (values 0..15) -> packed uint32 numpy array.

    Layout (see QMatmulW4Common.cuh): packed[nt][c][lane][w], lane = 4g+t,
    w = 2h + half, holding row 16nt + 8h + g, columns 64c + 16t + 8half +
    (0..7); inside a word column offset 2p+e sits at nibble p + 4e.
    """
    import numpy as np

    codes = np.asarray(codes)
    if codes.ndim != 2:
        raise ValueError("codes must be [N, K]")
    n, k = codes.shape
    if k % 64:
        raise ValueError("K must be a multiple of 64")
    npad = (n + 15) // 16 * 16
    c = np.zeros((npad, k), dtype=np.uint32)
    c[:n] = codes.astype(np.uint32) & 15
    # [nt, h, g, c, t, half, p, e]
    c = c.reshape(npad // 16, 2, 8, k // 64, 4, 2, 4, 2)
    # -> [nt, c, g, t, h, half, e, p]
    c = c.transpose(0, 3, 2, 4, 1, 5, 7, 6)
    c = c.reshape(npad // 16, k // 64, 32, 4, 8)
    shifts = (4 * np.arange(8, dtype=np.uint32)).reshape(1, 1, 1, 1, 8)
    words = np.bitwise_or.reduce(c << shifts, axis=-1).astype(np.uint32)
    return np.ascontiguousarray(words.reshape(-1))


def pack_w4_torch(codes):
    """Same as pack_w4 for a torch tensor; returns an int32 tensor on the
    same device (bit pattern identical to the uint32 words)."""
    import numpy as np
    import torch

    words = pack_w4(codes.detach().to("cpu").numpy())
    return torch.from_numpy(words.view(np.int32)).to(codes.device)


# ---------------------------------------------------------------------------
# References (float32)
# ---------------------------------------------------------------------------

def dequant_ref(codes, s, z, g):
    """Ŵ = s * (q - z) in float32, [N, K]."""
    q = codes.float()
    n, k = q.shape
    w = (q.view(n, k // g, g) - z.float().unsqueeze(-1)) * s.float().unsqueeze(-1)
    return w.view(n, k)


def ref_forward(x, codes, s, z, g):
    return x.float() @ dequant_ref(codes, s, z, g).t()


def ref_grad_input(dy, codes, s, z, g):
    return dy.float() @ dequant_ref(codes, s, z, g)


def ref_grad_scale(dy, x, codes, z, g):
    gw = dy.float().t() @ x.float()  # [N, K]
    n, k = gw.shape
    qz = codes.float().view(n, k // g, g) - z.float().unsqueeze(-1)
    return (gw.view(n, k // g, g) * qz).sum(-1)


def gamma_mask(w, s, z, gamma, g, qmax):
    n, k = w.shape
    u = w.float().view(n, k // g, g) / (s.float() * gamma.float()).unsqueeze(-1)
    r = torch_round(u) + z.float().unsqueeze(-1)
    return ((r >= 0) & (r <= qmax)).float().view(n, k)


def torch_round(u):
    import torch
    return torch.round(u)  # half to even, like rintf


def ref_grad_gamma(dy, x, w, s, z, gamma, g, qmax=15):
    gw = dy.float().t() @ x.float()
    n, k = gw.shape
    m = gamma_mask(w, s, z, gamma, g, qmax)
    red = (m * w.float() * gw).view(n, k // g, g).sum(-1)
    return -red / (gamma.float() ** 2)


# ---------------------------------------------------------------------------
# ctypes binding
# ---------------------------------------------------------------------------

class W4Kernels:
    """Binding of libqslaw_cuda_w4.so; methods take torch CUDA tensors and
    launch on torch's current stream. Errors raise RuntimeError."""

    def __init__(self, so_path):
        import torch

        self.torch = torch
        self.lib = ctypes.CDLL(so_path)
        P, I = ctypes.c_void_p, ctypes.c_int
        L = self.lib
        L.qslaw_w4_packed_bytes.argtypes = [I, I]
        L.qslaw_w4_packed_bytes.restype = ctypes.c_size_t
        L.qslaw_w4_pack.argtypes = [P, P, I, I, P]
        L.qslaw_w4_forward_ex.argtypes = [P, P, P, P, P, I, I, I, I, I, I, P]
        L.qslaw_w4_forward_split.argtypes = [P, P, P, P, P, I, I, I, I, I, I,
                                             I, P]
        L.qslaw_w4_forward.argtypes = [P, P, P, P, P, I, I, I, I, I, P]
        L.qslaw_w4_grad_input_ex.argtypes = [P, P, P, P, P, I, I, I, I, I, I,
                                             P]
        L.qslaw_w4_grad_input.argtypes = [P, P, P, P, P, I, I, I, I, I, P]
        L.qslaw_w4_grad_input_split.argtypes = [P, P, P, P, P, I, I, I, I, I,
                                                I, I, P]
        L.qslaw_w4_grad_scale.argtypes = [P, P, P, P, P, I, I, I, I, I, P]
        L.qslaw_w4_grad_gamma.argtypes = [P, P, P, P, P, P, P, I, I, I, I, I,
                                          I, P]
        L.qslaw_w4_grad_scale_ex.argtypes = [P, P, P, P, P, I, I, I, I, I, I,
                                             P]
        L.qslaw_w4_grad_gamma_ex.argtypes = [P, P, P, P, P, P, P, I, I, I, I,
                                             I, I, I, P]
        L.qslaw_w4_set_auto_wgmma.argtypes = [I]
        L.qslaw_w4_auto_wgmma.argtypes = []
        for f in ("qslaw_w4_set_auto_wgmma", "qslaw_w4_auto_wgmma",
                  "qslaw_w4_pack", "qslaw_w4_forward_ex", "qslaw_w4_forward",
                  "qslaw_w4_forward_split", "qslaw_w4_grad_input_ex",
                  "qslaw_w4_grad_input_split",
                  "qslaw_w4_grad_input", "qslaw_w4_grad_scale",
                  "qslaw_w4_grad_gamma", "qslaw_w4_grad_scale_ex",
                  "qslaw_w4_grad_gamma_ex"):
            getattr(L, f).restype = I

    def _dt(self, t):
        torch = self.torch
        if t.dtype == torch.bfloat16:
            return DTYPE_BF16
        if t.dtype == torch.float16:
            return DTYPE_FP16
        raise TypeError(f"unsupported dtype {t.dtype}")

    def _stream(self):
        return ctypes.c_void_p(self.torch.cuda.current_stream().cuda_stream)

    @staticmethod
    def _check(rc, what):
        if rc != 0:
            raise RuntimeError(f"{what} failed with status {rc}")

    def set_auto_wgmma(self, on):
        """Lets AUTO choose the sm_90a wgmma kernels (see
        qslaw_w4_set_auto_wgmma); returns the previous setting."""
        prev = self.lib.qslaw_w4_auto_wgmma()
        self._check(self.lib.qslaw_w4_set_auto_wgmma(int(on)),
                    "set_auto_wgmma")
        return bool(prev)

    def pack(self, codes_u8):
        """Device-side packing of uint8 codes [N, K] -> int32 packed."""
        torch = self.torch
        n, k = codes_u8.shape
        out = torch.empty(packed_words(n, k), dtype=torch.int32,
                          device=codes_u8.device)
        self._check(self.lib.qslaw_w4_pack(codes_u8.data_ptr(), out.data_ptr(),
                                           n, k, self._stream()), "pack")
        return out

    def forward(self, x, qw, s, z, n, g, path=PATH_AUTO, out=None, split=0):
        """split: 0 automatic, 1 none, 2/4/8 cluster split-K (sm_90+)."""
        m, k = x.shape
        y = out if out is not None else self.torch.empty(
            m, n, dtype=x.dtype, device=x.device)
        self._check(self.lib.qslaw_w4_forward_split(
            x.data_ptr(), qw.data_ptr(), s.data_ptr(), z.data_ptr(),
            y.data_ptr(), m, n, k, g, self._dt(x), path, split,
            self._stream()), "forward")
        return y

    def grad_input(self, dy, qw, s, z, k, g, out=None, split=0,
                   path=GRAD_AUTO):
        """split: 0 automatic, 1 none, 2/4/8 cluster split over N (sm_90+);
        path: GRAD_AUTO / GRAD_MMA / GRAD_WGMMA (sm_90a, never splits)."""
        m, n = dy.shape
        dx = out if out is not None else self.torch.empty(
            m, k, dtype=dy.dtype, device=dy.device)
        self._check(self.lib.qslaw_w4_grad_input_split(
            dy.data_ptr(), qw.data_ptr(), s.data_ptr(), z.data_ptr(),
            dx.data_ptr(), m, n, k, g, self._dt(dy), path, split,
            self._stream()), "grad_input")
        return dx

    def grad_scale(self, dy, x, qw, z, g, out=None, path=GRAD_AUTO):
        t, n = dy.shape
        k = x.shape[1]
        ds = out if out is not None else self.torch.empty(
            n, k // g, dtype=self.torch.float32, device=dy.device)
        self._check(self.lib.qslaw_w4_grad_scale_ex(
            dy.data_ptr(), x.data_ptr(), qw.data_ptr(), z.data_ptr(),
            ds.data_ptr(), t, n, k, g, self._dt(dy), path, self._stream()),
            "grad_scale")
        return ds

    def grad_gamma(self, dy, x, w, s, z, gamma, g, qmax=15, out=None,
                   path=GRAD_AUTO):
        t, n = dy.shape
        k = x.shape[1]
        dg = out if out is not None else self.torch.empty(
            n, k // g, dtype=self.torch.float32, device=dy.device)
        self._check(self.lib.qslaw_w4_grad_gamma_ex(
            dy.data_ptr(), x.data_ptr(), w.data_ptr(), s.data_ptr(),
            z.data_ptr(), gamma.data_ptr(), dg.data_ptr(), t, n, k, g, qmax,
            self._dt(dy), path, self._stream()), "grad_gamma")
        return dg
