"""ctypes bindings of libqslaw_runtime (include/qslaw/Runtime/qslaw_runtime.h):
load a model library made by `qslaw-compile --emit=lib` and run it on NumPy
arrays from Python."""
import ctypes
import json
import os

import numpy as np

from qslaw_tools.runner import build_dir

_DTYPES = {"f32": np.float32, "f16": np.float16, "f64": np.float64,
           "i64": np.int64, "i32": np.int32, "i8": np.uint8, "i4": np.uint8,
           "i3": np.uint8, "i2": np.uint8, "i1": np.bool_, "bf16": np.uint16}


class _Tensor(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("dtype", ctypes.c_char_p),
                ("rank", ctypes.c_int32), ("shape", ctypes.POINTER(ctypes.c_int64)),
                ("data", ctypes.c_void_p), ("bytes", ctypes.c_size_t)]


def _lib():
    lib = ctypes.CDLL(os.path.join(build_dir(), "lib", "libqslaw_runtime.so"))
    lib.qslaw_last_error.restype = ctypes.c_char_p
    lib.qslaw_model_signature.restype = ctypes.c_char_p
    return lib


class Model:
    def __init__(self, path, device="cpu"):
        self.lib = _lib()
        self.model = ctypes.c_void_p()
        self._check(self.lib.qslaw_model_load(path.encode(), ctypes.byref(self.model)))
        self.signature = json.loads(self.lib.qslaw_model_signature(self.model))
        self._specs = {}
        self.session = ctypes.c_void_p()
        self._check(self.lib.qslaw_session_create(self.model, device.encode(),
                                                  ctypes.byref(self.session)))

    def _check(self, status):
        if status != 0:
            raise RuntimeError(self.lib.qslaw_last_error().decode())

    def run(self, **inputs):
        return self._run(None, self.signature, inputs)

    def run_function(self, function, inputs):
        """Runs a training-library function ("init_params", "grad_step",
        "train_step", "forward_params") on {name: array}; outputs in order."""
        return self._run(function, self.signature["functions"][function], inputs)

    def _run(self, function, signature, inputs):
        keep = []

        def tensor(spec, arr):
            arr = np.ascontiguousarray(arr)
            shape = (ctypes.c_int64 * len(spec["shape"]))(*spec["shape"])
            keep.extend([arr, shape])
            return _Tensor(spec["name"].encode(), spec["dtype"].encode(), len(spec["shape"]),
                           shape, arr.ctypes.data, arr.nbytes)

        # Input specs by name, built once per function (calls pass ~100 tensors).
        by_name = self._specs.get(function)
        if by_name is None:
            by_name = self._specs[function] = {s["name"]: s for s in signature["inputs"]}
        ins = (_Tensor * len(inputs))(*[
            tensor(by_name.get(k) or {"name": k, "dtype": "f32", "shape": list(np.shape(v))}, v)
            for k, v in inputs.items()])
        outs_np = [np.empty(s["shape"], _DTYPES[s["dtype"]]) for s in signature["outputs"]]
        outs = (_Tensor * len(outs_np))(*[tensor(s, a) for s, a in
                                          zip(signature["outputs"], outs_np)])
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
