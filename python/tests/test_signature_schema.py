"""The signature schema has one owner (include/qslaw/Support/Signature.h) and a
Python mirror (qslaw_tools.signature): what the compiler writes must read back
in Python strictly (no key Python does not know) and print back to the same
JSON, and every key Python knows must be one the compiler writes."""
import dataclasses
import json
import os
import subprocess
import typing

import pytest

from qslaw_tools import signature as S
from qslaw_tools.runner import tool
from qslaw_tools.runtime import Model

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
FIX = os.path.join(ROOT, "test", "fixtures")
MODEL = os.path.join(FIX, "tiny_llava.onnx")
ADAPTED = r".*language_model.*layers.*(q_proj|v_proj).*"

# (file, qslaw-compile flags): a float library, a quantised one with external
# weights, a LoRA trainer library with external weights, a 3-bit symmetric
# one learning the projector.
VARIANTS = [
    ("float.so", []),
    ("q4.so", ["--quantize=w4g32", "--weights=external"]),
    ("lora.so", ["--quantize=w4g32", "--train", f"--train-lora={ADAPTED}",
                 "--lora-rank=4", "--lora-alpha=8", "--weights=external"]),
    ("proj.so", ["--quantize=w3g32,sym", "--train", "--train-scales=",
                 "--train-params=.*projector.*"]),
]
# Written only in cases these variants do not cover: a later stage's
# --init-params directory.
NOT_COVERED = {"TrainingRecord.init_params"}


@pytest.fixture(scope="module")
def libraries(tmp_path_factory):
    d = tmp_path_factory.mktemp("sig")
    out = {}
    for name, flags in VARIANTS:
        r = subprocess.run([tool("qslaw-compile"), MODEL, *flags, "-o", str(d / name)],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        out[name] = Model(str(d / name))
    return out


def _keys_seen(value, hint, seen):
    """Records "Class.field" for every key of `value`, read as `hint`."""
    args = typing.get_args(hint)
    if isinstance(value, list):
        for v in value:
            _keys_seen(v, args[0] if args else hint, seen)
    elif typing.get_origin(hint) in (dict, typing.Dict):
        for v in value.values():
            _keys_seen(v, args[1], seen)
    elif args:  # Optional[X]
        _keys_seen(value, [a for a in args if a is not type(None)][0], seen)
    elif dataclasses.is_dataclass(hint):
        hints = typing.get_type_hints(hint)
        for k, v in value.items():
            seen.add(f"{hint.__name__}.{k}")
            _keys_seen(v, hints[k], seen)


def test_compiled_signatures_read_back_and_print_the_same(libraries):
    for name, lib in libraries.items():
        text = lib.signature_text
        sig = S.ModelSignature.from_json(text, strict=True)
        assert sig.to_json() == json.loads(text), name
        assert sig.dumps() == json.dumps(json.loads(text), sort_keys=True,
                                         separators=(",", ":")), name
    lora = S.ModelSignature.from_json(libraries["lora.so"].signature_text)
    assert (lora.training.lora.rank, lora.training.lora.alpha) == (4, 8.0)
    assert lora.weights.file == "lora.so.weights" and lora.weights.data_bytes > 0
    assert {p.kind for p in lora.training.params} >= {"lora_A", "lora_B"}
    assert lora.functions["train_step"].outputs[0].name == "loss"
    proj = S.ModelSignature.from_json(libraries["proj.so"].signature_text)
    assert {(q.bits, q.symmetric) for q in proj.quantization} == {(3, True)}
    assert proj.weights is None and proj.training.lora is None
    assert S.ModelSignature.from_json(libraries["float.so"].signature_text).training is None


def test_every_python_key_is_one_the_compiler_writes(libraries):
    seen = set()
    for lib in libraries.values():
        d = json.loads(lib.signature_text)
        _keys_seen(d, S.ModelSignature, seen)
    known = {f"{cls.__name__}.{f.name}"
             for cls in (S.ModelSignature, S.FunctionSignature, S.TensorSpec,
                         S.IndexRange, S.QuantizedLayer, S.TrainableParam,
                         S.LoraRecord, S.TrainingRecord, S.WeightsRecord)
             for f in dataclasses.fields(cls)}
    # FunctionSignature's fields are ModelSignature's too.
    known -= {"FunctionSignature.entry", "FunctionSignature.inputs",
              "FunctionSignature.outputs"} - seen
    assert known - seen == NOT_COVERED


def test_malformed_signatures_name_the_field(libraries):
    good = json.loads(libraries["lora.so"].signature_text)

    def error(mutate):
        d = json.loads(json.dumps(good))
        mutate(d)
        with pytest.raises(S.SignatureError) as e:
            S.ModelSignature.from_json(json.dumps(d), strict=True)
        return str(e.value)

    assert error(lambda d: d["training"]["params"][2]["shape"].__setitem__(0, -1)) == \
        "signature.training.params[2].shape[0]: expected a non-negative int"
    assert error(lambda d: d["weights"].__setitem__("data_bytes", "9")) == \
        "signature.weights.data_bytes: expected int, got '9'"
    assert error(lambda d: d.pop("entry")) == "signature.entry: missing"
    assert "kind 'scales' is not one of scale, gamma" in error(
        lambda d: d["training"]["params"][0].__setitem__("kind", "scales"))
    assert "unknown key(s) ['extra']" in error(
        lambda d: d["functions"]["train_step"].__setitem__("extra", 1))
    with pytest.raises(S.SignatureError, match="bad JSON"):
        S.ModelSignature.from_json("{")
    # Not strict (what the runtime bindings use): a newer key is ignored.
    d = json.loads(json.dumps(good))
    d["functions"]["train_step"]["extra"] = 1
    assert S.ModelSignature.from_json(json.dumps(d)).functions["train_step"].entry == \
        "train_step"
