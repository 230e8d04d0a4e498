"""ctypes bindings of libqslaw_runtime (include/qslaw/Runtime/qslaw_runtime.h):
load a model library made by `qslaw-compile --emit=lib` and run it on NumPy
arrays from Python."""
import ctypes
import os

import numpy as np

from qslaw_tools.runner import build_dir
from qslaw_tools.signature import ModelSignature, TensorSpec

_DTYPES = {"f32": np.float32, "f16": np.float16, "f64": np.float64,
           "i64": np.int64, "i32": np.int32, "i8": np.uint8, "i4": np.uint8,
           "i3": np.uint8, "i2": np.uint8, "i1": np.bool_, "bf16": np.uint16}


def _dtype_name(want, arr):
    """`want` (the signature's dtype) when `arr` is stored that way (bytes of
    either signedness for the 8-bit and narrower codes), else the array's
    own type, which the runtime then refuses with both names."""
    store = np.dtype(_DTYPES.get(want, np.float32))
    if arr.dtype == store or (store.itemsize == 1 and arr.dtype.kind in "iu"
                              and arr.dtype.itemsize == 1 and want != "i1"):
        return want
    for name, t in _DTYPES.items():
        if np.dtype(t) == arr.dtype and name in ("f32", "f16", "f64", "i64", "i32", "i1"):
            return name
    return str(arr.dtype)


class _Tensor(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("dtype", ctypes.c_char_p),
                ("rank", ctypes.c_int32), ("shape", ctypes.POINTER(ctypes.c_int64)),
                ("data", ctypes.c_void_p), ("bytes", ctypes.c_size_t)]


def _lib():
    lib = ctypes.CDLL(os.path.join(build_dir(), "lib", "libqslaw_runtime.so"))
    lib.qslaw_last_error.restype = ctypes.c_char_p
    lib.qslaw_model_signature.restype = ctypes.c_char_p
    lib.qslaw_session_state_count.restype = ctypes.c_int32
    for f in (lib.qslaw_session_state_move, lib.qslaw_session_state_drop):
        f.argtypes = [ctypes.c_void_p, ctypes.c_char_p] + (
            [ctypes.c_char_p] if f is lib.qslaw_session_state_move else [])
    return lib


class _CudaMemoryStats(ctypes.Structure):  # qslaw_cuda_memory_stats
    _fields_ = [("allocated", ctypes.c_size_t), ("peak_allocated", ctypes.c_size_t),
                ("reserved", ctypes.c_size_t), ("peak_reserved", ctypes.c_size_t),
                ("driver_allocations", ctypes.c_uint64)]


def _cuda_runtime():
    return ctypes.CDLL("libqslaw_cuda_runtime.so")


def cuda_memory_stats():
    """The CUDA runtime's caching allocator: {allocated, peak_allocated,
    reserved, peak_reserved, driver_allocations} (bytes; every device buffer
    a session holds, weights included)."""
    s = _CudaMemoryStats()
    _cuda_runtime().qslaw_cuda_get_memory_stats(ctypes.byref(s))
    return {name: getattr(s, name) for name, _ in _CudaMemoryStats._fields_}


def reset_cuda_peak_memory():
    _cuda_runtime().qslaw_cuda_reset_peak_memory()


class Model:
    def __init__(self, path, device="cpu", weights=None):
        """weights: the weights file of a --weights=external library, if not
        beside it."""
        self.lib = _lib()
        self.model = ctypes.c_void_p()
        self._check(self.lib.qslaw_model_load_with_weights(
            path.encode(), weights.encode() if weights else None,
            ctypes.byref(self.model)))
        # The library's signature: its JSON text, and the typed record
        # (qslaw_tools.signature).
        self.signature_text = self.lib.qslaw_model_signature(self.model).decode()
        self.signature = ModelSignature.from_json(self.signature_text)
        self._specs = {}
        self.session = ctypes.c_void_p()
        self._check(self.lib.qslaw_session_create(self.model, device.encode(),
                                                  ctypes.byref(self.session)))

    def _check(self, status):
        if status != 0:
            raise RuntimeError(self.lib.qslaw_last_error().decode())

    def run(self, **inputs):
        return self._run(None, self.signature, inputs)

    def run_function(self, function, inputs, keep=()):
        """Runs a training-library function ("init_params", "grad_step",
        "train_step", "forward_params") on {name: array}; outputs in order.
        Inputs not passed are read from the session state; outputs named in
        `keep` stay in the session state (None in their place)."""
        return self._run(function, self.signature.functions[function], inputs,
                         keep)

    # Session state (qslaw_session_state_*): tensors kept on the device.
    def set_state(self, name, array, dtype="f32"):
        arr = np.ascontiguousarray(array)
        shape = (ctypes.c_int64 * arr.ndim)(*arr.shape)
        t = _Tensor(name.encode(), dtype.encode(), arr.ndim, shape, arr.ctypes.data,
                    arr.nbytes)
        self._check(self.lib.qslaw_session_state_set(self.session, ctypes.byref(t)))

    def state(self):
        """{name: (dtype, shape)} of what the session holds."""
        held = {}
        for i in range(self.lib.qslaw_session_state_count(self.session)):
            t = _Tensor()
            self._check(self.lib.qslaw_session_state_describe(self.session, i,
                                                              ctypes.byref(t)))
            held[t.name.decode()] = (t.dtype.decode(), tuple(t.shape[k] for k in range(t.rank)))
        return held

    def get_state(self, name, dtype=None, shape=None):
        held = self.state().get(name)
        dtype = dtype or (held[0] if held else "f32")
        shape = shape if shape is not None else (held[1] if held else ())
        arr = np.empty(shape, _DTYPES[dtype])
        c_shape = (ctypes.c_int64 * arr.ndim)(*arr.shape)
        t = _Tensor(name.encode(), dtype.encode(), arr.ndim, c_shape, arr.ctypes.data,
                    arr.nbytes)
        self._check(self.lib.qslaw_session_state_get(self.session, ctypes.byref(t)))
        return arr

    def move_state(self, src, dst):
        self._check(self.lib.qslaw_session_state_move(self.session, src.encode(),
                                                      dst.encode()))

    def drop_state(self, name=None):
        self._check(self.lib.qslaw_session_state_drop(
            self.session, name.encode() if name is not None else None))

    # AdamW training with parameters and moments resident (as the trainer).
    _MOMENTS = ("exp_avg.", "exp_avg_sq.")

    def start_training(self):
        """init_params into the session state, AdamW moments zeroed there;
        returns the parameter names."""
        params = self.signature.training.params
        names = [p.name for p in params]
        self.run_function("init_params", {}, keep=names)
        for pre in self._MOMENTS:
            for n, p in zip(names, params):
                self.set_state(pre + n, np.zeros(p.shape, np.float32))
        return names

    def train_step(self, feeds):
        """One train_step reading parameters and moments from the state and
        committing the update there (new.X renamed onto X); returns the
        outputs (loss and gradient norm first, None for the kept ones)."""
        names = [p.name for p in self.signature.training.params]
        updated = ["new." + pre + n for pre in ("",) + self._MOMENTS for n in names]
        out = self.run_function("train_step", feeds, keep=updated)
        for u in updated:
            self.move_state(u, u[len("new."):])
        return out

    def _run(self, function, signature, inputs, keep=()):
        alive = []

        def tensor(spec, arr):
            # The array's own shape and dtype: the runtime checks them against
            # the signature, so a transposed array or another dtype of the
            # same byte count is an error, not wrong numbers.
            # Dims of size 1 may differ (a step counter as [1] for a scalar):
            # that never reorders elements.
            arr = np.ascontiguousarray(arr)
            dims = list(arr.shape)
            if [d for d in spec.shape if d != 1] == [d for d in dims if d != 1]:
                dims = list(spec.shape)
            shape = (ctypes.c_int64 * len(dims))(*dims)
            alive.extend([arr, shape])
            return _Tensor(spec.name.encode(), _dtype_name(spec.dtype, arr).encode(),
                           len(dims), shape, arr.ctypes.data, arr.nbytes)

        # Input specs by name, built once per function (calls pass ~100 tensors).
        by_name = self._specs.get(function)
        if by_name is None:
            by_name = self._specs[function] = {s.name: s for s in signature.inputs}
        ins = (_Tensor * len(inputs))(*[
            tensor(by_name.get(k) or TensorSpec(k, "f32", list(np.shape(v))), v)
            for k, v in inputs.items()])
        outs_np = [None if s.name in keep else np.empty(s.shape, _DTYPES[s.dtype])
                   for s in signature.outputs]

        def out(spec, arr):
            if arr is not None:
                return tensor(spec, arr)
            shape = (ctypes.c_int64 * len(spec.shape))(*spec.shape)
            alive.append(shape)
            return _Tensor(spec.name.encode(), spec.dtype.encode(),
                           len(spec.shape), shape, None, 0)
        outs = (_Tensor * len(outs_np))(*[out(s, a) for s, a in
                                          zip(signature.outputs, outs_np)])
        if function is None:
            status = self.lib.qslaw_session_run(self.session, ins, len(inputs), outs,
                                                len(outs_np))
        else:
            status = self.lib.qslaw_session_run_function(
                self.session, function.encode(), ins, len(inputs), outs, len(outs_np))
        self._check(status)
        return outs_np

    def __del__(self):
        if getattr(self, "session", None):
            self.lib.qslaw_session_free(self.session)
        if getattr(self, "model", None):
            self.lib.qslaw_model_free(self.model)
