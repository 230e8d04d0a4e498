"""The runtime's next-token loss kernels (qslaw_cross_entropy_f32 and its
gradient, lib/Runtime/Ukernels/CrossEntropy.cpp), which a CPU training step
calls instead of generated code: only the counted rows are read. Checked
against NumPy in float64 at a vocabulary-sized row, with ignored and
out-of-range labels, padded rows (a slice's row stride), one and two
threads. The whole step against PyTorch autograd is test_train_step_torch."""
import ctypes
import os

import numpy as np
import pytest

from qslaw_tools.runner import build_dir


def _kernels():
    lib = ctypes.CDLL(os.path.join(build_dir(), "lib", "libqslaw_ukernels.so"))
    P, I, C, F = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int, ctypes.c_float
    lib.qslaw_cross_entropy_f32.argtypes = [I, I, P, I, P, I, C]
    lib.qslaw_cross_entropy_f32.restype = F
    lib.qslaw_cross_entropy_grad_f32.argtypes = [I, I, P, I, P, I, F, P, I, C, C]
    return lib


def _reference(x, labels, ignore, grad_loss):
    """Loss and gradient in float64 (the op's definition)."""
    x = x.astype(np.float64)
    V = x.shape[1]
    ok = (labels != ignore) & (labels >= 0) & (labels < V)
    lse = np.log(np.exp(x - x.max(1, keepdims=True)).sum(1)) + x.max(1)
    count = max(int(ok.sum()), 1)
    picked = x[np.arange(len(x)), np.where(ok, labels, 0)]
    loss = np.where(ok, lse - picked, 0).sum() / count
    p = np.exp(x - lse[:, None])
    p[np.arange(len(x)), np.where(ok, labels, 0)] -= 1
    grad = np.where(ok[:, None], p * grad_loss / count, 0)
    return loss, grad


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("labels_kind", ["mixed", "all_ignored", "all_counted"])
@pytest.mark.parametrize("zero_ignored", [1, 0])
def test_loss_and_gradient_match_numpy(threads, labels_kind, zero_ignored):
    """zero_ignored 0 (a gradient only the head's row-selecting GEMM reads):
    ignored rows are left as they were."""
    lib = _kernels()
    rng = np.random.default_rng(3)
    T, V, pad, ignore = 37, 32000 + 13, 19, -100
    # Rows of a wider buffer (row stride V + pad), like a token slice's.
    buf = (rng.standard_normal((T, V + pad)) * 4).astype(np.float32)
    x = buf[:, :V]
    labels = rng.integers(0, V, T).astype(np.int64)
    if labels_kind == "mixed":
        labels[rng.random(T) < 0.6] = ignore
        labels[3] = V  # out of range: not counted
        labels[5] = -7
    elif labels_kind == "all_ignored":
        labels[:] = ignore
    grad_loss = 0.75
    loss = lib.qslaw_cross_entropy_f32(T, V, buf.ctypes.data, V + pad, labels.ctypes.data,
                                       ignore, threads)
    grad = np.full((T, V + 3), np.nan, np.float32)  # row stride V + 3
    lib.qslaw_cross_entropy_grad_f32(T, V, buf.ctypes.data, V + pad, labels.ctypes.data,
                                     ignore, grad_loss, grad.ctypes.data, V + 3, zero_ignored,
                                     threads)
    want_loss, want_grad = _reference(x, labels, ignore, grad_loss)
    ok = (labels != ignore) & (labels >= 0) & (labels < V)
    if not zero_ignored:
        assert np.isnan(grad[~ok]).all()
        want_grad[~ok] = np.nan
    # f32 sums of 32013 exps (each within ~1e-7) and a log: ~1e-6 relative.
    assert abs(loss - want_loss) <= 1e-5 * max(abs(want_loss), 1e-3)
    np.testing.assert_allclose(grad[:, :V], want_grad, rtol=1e-4, atol=1e-9)
    assert np.isnan(grad[:, V:]).all()  # past each row: untouched
    if labels_kind == "all_ignored":
        assert loss == 0.0 and (not grad[:, :V].any() if zero_ignored else True)


def test_extreme_logits():
    """Rows with logits far apart (exp of -1e4) and equal logits: no
    overflow, no NaN."""
    lib = _kernels()
    T, V = 3, 1000
    x = np.zeros((T, V), np.float32)
    x[0, 7] = 1e4
    x[1, :] = -5e3
    x[2, ::2] = 88.0
    labels = np.array([7, 1, 2], np.int64)
    loss = lib.qslaw_cross_entropy_f32(T, V, x.ctypes.data, V, labels.ctypes.data, -100, 2)
    grad = np.empty_like(x)
    lib.qslaw_cross_entropy_grad_f32(T, V, x.ctypes.data, V, labels.ctypes.data, -100, 1.0,
                                     grad.ctypes.data, V, 1, 2)
    want_loss, want_grad = _reference(x, labels, -100, 1.0)
    assert np.isfinite(loss) and np.isfinite(grad).all()
    assert abs(loss - want_loss) <= 1e-5 * abs(want_loss)
    np.testing.assert_allclose(grad, want_grad, rtol=1e-4, atol=1e-9)


def test_nan_logits_propagate_to_their_rows():
    """A NaN logit in a counted row makes the loss and that row's gradient
    NaN (the trainer skips non-finite steps by the loss); one in an ignored
    row is never read. (Under UBSan: no NaN reaches a float-to-int
    conversion.)"""
    lib = _kernels()
    T, V = 4, 300
    rng = np.random.default_rng(5)
    x = rng.standard_normal((T, V)).astype(np.float32)
    labels = np.array([1, -100, 2, 3], np.int64)
    x[1, 10] = np.nan  # ignored row
    loss = lib.qslaw_cross_entropy_f32(T, V, x.ctypes.data, V, labels.ctypes.data, -100, 2)
    assert np.isfinite(loss)
    x[2, 17] = np.nan  # counted row
    loss = lib.qslaw_cross_entropy_f32(T, V, x.ctypes.data, V, labels.ctypes.data, -100, 2)
    assert np.isnan(loss)
    grad = np.empty_like(x)
    lib.qslaw_cross_entropy_grad_f32(T, V, x.ctypes.data, V, labels.ctypes.data, -100, 1.0,
                                     grad.ctypes.data, V, 1, 2)
    assert np.isnan(grad[2]).all()
    assert np.isfinite(grad[[0, 3]]).all() and not grad[1].any()
