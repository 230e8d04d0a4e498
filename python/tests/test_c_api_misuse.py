"""C API misuse (issue 18, hole 8): null handles are errors naming the call,
a model freed before its sessions stays alive until the last session goes,
outputs whose name, dtype or shape disagree with the model are refused, and
Python's Model.run sends each array's own shape and dtype, so a transposed
array or another dtype of the same byte count is an error, not wrong
numbers. Each checked in a child process where a crash would be a signal."""
import ctypes
import os
import subprocess
import sys
import textwrap

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from qslaw_tools.runner import build_dir, tool
from qslaw_tools.runtime import Model


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    d = tmp_path_factory.mktemp("capi")
    g = helper.make_graph([helper.make_node("Transpose", ["x"], ["y"], perm=[1, 0])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 2])])
    path = str(d / "t.onnx")
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)]), path)
    out = str(d / "t.so")
    subprocess.run([tool("qslaw-compile"), path, "-o", out], check=True, capture_output=True)
    return out


def child(lib, body):
    """Runs `body` with `rt` (libqslaw_runtime), `T` (qslaw_tensor) and the
    model path `lib` in a fresh interpreter; returns its exit code and stdout."""
    code = textwrap.dedent("""
        import ctypes, os
        from qslaw_tools.runtime import _Tensor as T, _lib
        rt = _lib()
        lib = {lib!r}
        def err():
            return rt.qslaw_last_error().decode()
        """).format(lib=lib) + textwrap.dedent(body)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    return p.returncode, p.stdout + p.stderr


def test_null_handles_are_errors(lib):
    rc, out = child(lib, """
        rt.qslaw_model_num_inputs.restype = ctypes.c_int32
        assert rt.qslaw_model_signature(None) is None
        print(err())
        assert rt.qslaw_model_num_inputs(None) == -1
        s = ctypes.c_void_p()
        assert rt.qslaw_session_create(None, b"cpu", ctypes.byref(s)) == 2
        print(err())
        assert rt.qslaw_session_run(None, None, 0, None, 0) == 2
        print(err())
        assert rt.qslaw_session_run_function(None, b"f", None, 0, None, 0) == 2
        assert rt.qslaw_model_input(None, 0, None) == 2
        rt.qslaw_model_free(None)
        rt.qslaw_session_free(None)
        print("survived")
        """)
    assert rc == 0, out
    assert "qslaw_model_signature: null model" in out
    assert "qslaw_session_create: null model or session pointer" in out
    assert "qslaw_session_run: null session" in out
    assert "survived" in out


def test_model_freed_before_its_session(lib):
    rc, out = child(lib, """
        import numpy as np
        m, s = ctypes.c_void_p(), ctypes.c_void_p()
        assert rt.qslaw_model_load(lib.encode(), ctypes.byref(m)) == 0, err()
        assert rt.qslaw_session_create(m, b"cpu", ctypes.byref(s)) == 0, err()
        rt.qslaw_model_free(m)          # the session still runs
        x = np.arange(6, dtype=np.float32).reshape(2, 3)
        y = np.zeros((3, 2), np.float32)
        xs, ys = (ctypes.c_int64 * 2)(2, 3), (ctypes.c_int64 * 2)(3, 2)
        ins = (T * 1)(T(b"x", b"f32", 2, xs, x.ctypes.data, x.nbytes))
        outs = (T * 1)(T(b"y", b"f32", 2, ys, y.ctypes.data, y.nbytes))
        assert rt.qslaw_session_run(s, ins, 1, outs, 1) == 0, err()
        assert (y == x.T).all()
        rt.qslaw_session_free(s)        # the model goes with it
        print("ok")
        """)
    assert rc == 0 and "ok" in out, out


@pytest.mark.parametrize("name,dtype,shape,message", [
    (b"z", b"f32", (3, 2), "output 0 ('y'): the caller names it 'z'"),
    (b"y", b"i32", (3, 2), "output 0 ('y'): the caller's dtype is i32, the model gives f32"),
    (b"y", b"f32", (2, 3), "output 0 ('y'): the caller's shape is [2, 3], the model gives [3, 2]"),
])
def test_outputs_must_agree_with_the_model(lib, name, dtype, shape, message):
    rc, out = child(lib, f"""
        import numpy as np
        m, s = ctypes.c_void_p(), ctypes.c_void_p()
        assert rt.qslaw_model_load(lib.encode(), ctypes.byref(m)) == 0, err()
        assert rt.qslaw_session_create(m, b"cpu", ctypes.byref(s)) == 0, err()
        x = np.zeros((2, 3), np.float32)
        y = np.zeros(6, np.float32)
        xs, ys = (ctypes.c_int64 * 2)(2, 3), (ctypes.c_int64 * 2)(*{shape!r})
        ins = (T * 1)(T(b"x", b"f32", 2, xs, x.ctypes.data, x.nbytes))
        outs = (T * 1)(T({name!r}, {dtype!r}, 2, ys, y.ctypes.data, y.nbytes))
        assert rt.qslaw_session_run(s, ins, 1, outs, 1) == 2
        print(err())
        """)
    assert rc == 0, out
    assert message in out


def test_python_sends_the_arrays_own_shape_and_dtype(lib):
    m = Model(lib)
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(m.run(x=x)[0], x.T)
    with pytest.raises(RuntimeError, match=r"input 'x': shape \[3, 2\], the model takes \[2, 3\]"):
        m.run(x=np.ascontiguousarray(x.T))  # same 24 bytes, transposed
    with pytest.raises(RuntimeError, match=r"input 'x': dtype i32, the model takes f32"):
        m.run(x=x.view(np.int32))


def test_sessions_run_concurrently(lib):
    """Sessions on one model, each on its own thread (ctypes drops the GIL
    during the calls), all get their own results."""
    import threading
    models = [Model(lib) for _ in range(4)]
    errors = []

    def work(i, m):
        try:
            for k in range(50):
                x = (np.full((2, 3), i * 100 + k) + np.arange(6).reshape(2, 3)).astype(np.float32)
                np.testing.assert_array_equal(m.run(x=x)[0], x.T)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i, m)) for i, m in enumerate(models)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


def test_state_tensor_with_overflowing_shape(lib):
    """2^32 x 2^32 f32 wrapped to 0 bytes, which a 0-byte buffer matched."""
    rc, out = child(lib, """
        m, s = ctypes.c_void_p(), ctypes.c_void_p()
        assert rt.qslaw_model_load(lib.encode(), ctypes.byref(m)) == 0, err()
        assert rt.qslaw_session_create(m, b"cpu", ctypes.byref(s)) == 0, err()
        dims = (ctypes.c_int64 * 2)(2**32, 2**32)
        t = T(b"w", b"f32", 2, dims, None, 0)
        assert rt.qslaw_session_state_set(s, ctypes.byref(t)) == 2
        print(err())
        dims = (ctypes.c_int64 * 2)(-1, 4)
        t = T(b"w", b"f32", 2, dims, None, 0)
        assert rt.qslaw_session_state_set(s, ctypes.byref(t)) == 2
        print(err())
        print("survived")
        """)
    assert rc == 0, out
    assert "state tensor 'w': negative or too large dimensions in [4294967296, 4294967296]" in out
    assert "state tensor 'w': negative or too large dimensions in [-1, 4]" in out
    assert "survived" in out
