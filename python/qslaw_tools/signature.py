"""The model signature a compiled qslaw library carries (`qslaw_signature_json`),
as typed records: the Python mirror of include/qslaw/Support/Signature.h, which
owns the format. Field names are the JSON keys. `test_signature_schema.py`
checks that what the compiler writes reads back here and prints back to the same
JSON, so a key added on one side and not the other fails a test.

    sig = ModelSignature.from_json(text)        # or a dict
    sig.training.params[0].shape, sig.functions["train_step"].inputs
"""
import dataclasses
import json
import typing
from dataclasses import dataclass, field
from typing import Dict, List, Optional


class SignatureError(ValueError):
    """A signature that does not fit the schema; the message names the field
    ("signature.training.params[2].shape[0]: expected a non-negative int")."""


# A shape: non-negative ints (checked when read).
Dims = typing.NewType("Dims", list)

# Fields omitted from the JSON when empty (the compiler writes them only when
# it knows them).
_OMIT_EMPTY = {"omit_empty": True}


@dataclass
class IndexRange:
    begin: int
    end: int
    ignore: Optional[int] = None
    indexes: str = field(default="", metadata=_OMIT_EMPTY)


@dataclass
class TensorSpec:
    name: str
    dtype: str
    shape: Dims
    index_range: Optional[IndexRange] = None


@dataclass
class FunctionSignature:
    entry: str
    inputs: List[TensorSpec]
    outputs: List[TensorSpec]


@dataclass
class QuantizedLayer:
    op: str
    bits: int
    group: int
    symmetric: bool
    mode: str
    shape: Dims
    layer: str = field(default="", metadata=_OMIT_EMPTY)
    node: str = field(default="", metadata=_OMIT_EMPTY)
    weight: str = field(default="", metadata=_OMIT_EMPTY)


# TrainableParam.kind: a quantised layer's scales or gamma, a full-precision
# initializer, a LoRA adapter's factors (kParamKinds in Signature.h).
PARAM_KINDS = ("scale", "gamma", "float", "lora_A", "lora_B")


@dataclass
class TrainableParam:
    name: str
    kind: str
    source: str
    shape: Dims

    def __post_init__(self):
        if self.kind not in PARAM_KINDS:
            raise SignatureError(f"TrainableParam '{self.name}': kind {self.kind!r} is not "
                                 f"one of {', '.join(PARAM_KINDS)}")


@dataclass
class LoraRecord:
    layers: str
    rank: int
    alpha: float


@dataclass
class TrainingRecord:
    params: List[TrainableParam] = field(default_factory=list)
    quantize: str = ""
    quantize_layers: str = ""
    clip_steps: int = 0
    model: str = ""
    init_params: Optional[str] = None
    lora: Optional[LoraRecord] = None
    layers: List[QuantizedLayer] = field(default_factory=list)


@dataclass
class WeightsRecord:
    file: str
    data_bytes: int
    xxh3: str
    tensors: int = 0


@dataclass
class ModelSignature:
    entry: str
    inputs: List[TensorSpec]
    outputs: List[TensorSpec]
    target: str = "cpu"
    quantization: List[QuantizedLayer] = field(default_factory=list)
    functions: Dict[str, FunctionSignature] = field(default_factory=dict,
                                                    metadata=_OMIT_EMPTY)
    training: Optional[TrainingRecord] = None
    program: Optional[str] = None
    weights: Optional[WeightsRecord] = None

    @classmethod
    def from_json(cls, source, strict=False):
        """Parses JSON text or an already-loaded dict. strict: unknown keys
        are errors (the schema test); otherwise ignored, as the C++ reader
        does, so that a newer compiler's libraries still load."""
        if isinstance(source, (str, bytes)):
            try:
                source = json.loads(source)
            except json.JSONDecodeError as e:
                raise SignatureError(f"signature: bad JSON: {e}") from None
        return _read(cls, source, "signature", strict)

    def to_json(self):
        """The JSON value (dicts and lists), keys as the compiler writes them."""
        return _write(self)

    def dumps(self):
        """The JSON text as the compiler prints it: keys sorted, no spaces."""
        return json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))


def _read(tp, value, path, strict):
    if tp is Dims:
        if not isinstance(value, list):
            raise SignatureError(f"{path}: expected an array")
        for i, d in enumerate(value):
            if not isinstance(d, int) or isinstance(d, bool):
                raise SignatureError(f"{path}[{i}]: expected int, got {d!r}")
            if d < 0:
                raise SignatureError(f"{path}[{i}]: expected a non-negative int")
        return value
    origin = typing.get_origin(tp)
    if origin is typing.Union:  # Optional[X]
        (inner,) = [a for a in typing.get_args(tp) if a is not type(None)]
        return None if value is None else _read(inner, value, path, strict)
    if origin in (list, List):
        if not isinstance(value, list):
            raise SignatureError(f"{path}: expected an array")
        (inner,) = typing.get_args(tp)
        return [_read(inner, v, f"{path}[{i}]", strict) for i, v in enumerate(value)]
    if origin in (dict, Dict):
        if not isinstance(value, dict):
            raise SignatureError(f"{path}: expected an object")
        inner = typing.get_args(tp)[1]
        return {k: _read(inner, v, f"{path}.{k}", strict) for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise SignatureError(f"{path}: expected an object")
        hints = typing.get_type_hints(tp)
        names = {f.name for f in dataclasses.fields(tp)}
        if strict and set(value) - names:
            raise SignatureError(f"{path}: unknown key(s) {sorted(set(value) - names)}"
                                 f" (not in qslaw_tools.signature.{tp.__name__})")
        args = {}
        for f in dataclasses.fields(tp):
            if f.name in value:
                args[f.name] = _read(hints[f.name], value[f.name], f"{path}.{f.name}",
                                     strict)
            elif f.default is dataclasses.MISSING and \
                    f.default_factory is dataclasses.MISSING:
                raise SignatureError(f"{path}.{f.name}: missing")
        try:
            return tp(**args)
        except SignatureError as e:  # a record's own check, e.g. a kind
            raise SignatureError(f"{path}: {e}") from None
    # Scalars; bool is not an int here, an int is a float.
    ok = {int: lambda v: isinstance(v, int) and not isinstance(v, bool),
          float: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
          bool: lambda v: isinstance(v, bool),
          str: lambda v: isinstance(v, str)}[tp](value)
    if not ok:
        raise SignatureError(f"{path}: expected {tp.__name__}, got {value!r}")
    return value


def _write(value):
    if dataclasses.is_dataclass(value):
        out = {}
        for f in dataclasses.fields(value):
            v = getattr(value, f.name)
            if v is None or (f.metadata.get("omit_empty") and not v):
                continue
            out[f.name] = _write(v)
        return out
    if isinstance(value, list):
        return [_write(v) for v in value]
    if isinstance(value, dict):
        return {k: _write(v) for k, v in value.items()}
    return value
