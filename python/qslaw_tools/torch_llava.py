"""PyTorch reference of the QSLAW training step on a LLaVA-style ONNX model.

The transformers model the fixture was exported from is rebuilt from its
config and loaded with the ONNX file's weights (initializers, Identity
aliases, and transposed MatMul weights named by their node). Selected linear
layers of the language model become QSLAW fake-quant linears
(torch_reference.py): min-max (RTN) initialisation as qslaw's, scale or gamma
mode, autograd for every gradient. Used only as a reference in tests and
benchmarks.
"""
import re

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from qslaw_tools import torch_reference as tr


def onnx_state_dict(path):
    """Parameter name -> array, from initializers, Identity aliases and the
    [K, N] weights of MatMul nodes (named by their node path)."""
    m = onnx.load(path)
    init = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    sd = {}
    for name, arr in init.items():
        if not name.startswith("onnx::"):
            sd[name] = arr
    for n in m.graph.node:
        if n.op_type == "Identity" and n.input[0] in init:
            sd[n.output[0]] = init[n.input[0]]
        if n.op_type == "MatMul" and n.input[1] in init:
            path_ = n.name.strip("/").split("/")[:-1]  # drop "MatMul"
            sd[".".join(path_) + ".weight"] = init[n.input[1]].T
    # The export wrapper's module was called "m".
    return {k[2:] if k.startswith("m.") else k: v for k, v in sd.items()}, m


def load_model(onnx_path, kv_heads):
    from qslaw_tools.make_fixtures import tiny_llava
    model, cfg = tiny_llava(kv_heads, seed=0)
    sd, _ = onnx_state_dict(onnx_path)
    own = model.state_dict()
    # The export drops what the graph never reads (the vision tower's last
    # layer with vision_feature_layer=-2, its post layernorm); those keep
    # their random values and do not influence the logits.
    missing = [k for k in own if k not in sd]
    needed = [k for k in missing if "vision_tower" not in k]
    if needed:
        raise KeyError(f"weights not found in {onnx_path}: {needed[:5]}")
    model.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(sd[k]))
                           for k in own if k in sd}, strict=False)
    return model.float().eval(), cfg


def rtn_params(w, bits, group):
    """qslaw's min-max initialisation (QuantMath.cpp), asymmetric, in f32."""
    n, k = w.shape
    g = k if group in (0, None) or group >= k else group
    j = (k + g - 1) // g
    qmax = 2 ** bits - 1
    pad = j * g - k
    wp = torch.nn.functional.pad(w, (0, pad)) if pad else w
    wg = wp.reshape(n, j, g)
    if pad:  # the short last group's padding must not widen min/max
        valid = torch.arange(j * g).reshape(j, g) < k
        lo = torch.where(valid, wg, torch.full_like(wg, float("inf"))).amin(-1)
        hi = torch.where(valid, wg, torch.full_like(wg, float("-inf"))).amax(-1)
    else:
        lo, hi = wg.amin(-1), wg.amax(-1)
    lo = torch.minimum(lo, torch.zeros_like(lo))
    hi = torch.maximum(hi, torch.zeros_like(hi))
    s = torch.clamp((hi - lo) / qmax, min=1e-5)
    z = torch.clamp(torch.round(-lo / s), 0, qmax)
    codes = torch.clamp(torch.round(w / tr.expand_groups(s, k, g)) +
                        tr.expand_groups(z, k, g), 0, qmax)
    return codes, s, z, g


class QSLAWLinear(torch.nn.Module):
    """Y = X W_hat^T + b with W_hat from stored codes (scale mode, learn s) or
    recomputed codes (gamma mode, learn gamma)."""

    def __init__(self, linear, bits, group, mode):
        super().__init__()
        w = linear.weight.detach().float()
        codes, s, z, g = rtn_params(w, bits, group)
        self.bits, self.group, self.mode = bits, g, mode
        self.register_buffer("zeros", z)
        self.bias = linear.bias
        if mode == "scale":
            self.register_buffer("codes", codes)
            self.scales = torch.nn.Parameter(s)
        else:
            self.register_buffer("weight", w)
            self.register_buffer("scales", s)
            self.gamma = torch.nn.Parameter(torch.ones_like(s))

    def forward(self, x):
        if self.mode == "scale":
            w = tr.dequant_scale_mode(self.codes, self.scales, self.zeros, self.group)
        else:
            w = tr.dequant_gamma_mode(self.weight, self.scales, self.gamma,
                                      self.zeros, self.bits, self.group)
        return tr.linear(x, w, self.bias)


def quantize_model(model, layers_regex, bits, group, mode):
    """Replaces matching nn.Linear modules (by module path) in place; returns
    {module path: QSLAWLinear}."""
    rx = re.compile(layers_regex)
    out = {}
    for name, mod in list(model.named_modules()):
        for child_name, child in list(mod.named_children()):
            path = f"{name}.{child_name}" if name else child_name
            if isinstance(child, torch.nn.Linear) and rx.fullmatch(path):
                q = QSLAWLinear(child, bits, group, mode)
                setattr(mod, child_name, q)
                out[path] = q
    return out


def next_token_loss(logits, labels):
    return torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1),
        ignore_index=-100)


def forward_logits(model, ids, pix, mask):
    return model(input_ids=ids, pixel_values=pix, attention_mask=mask,
                 use_cache=False).logits


def reference_trainer(onnx_path, kv_heads, layers, bits, group, mode):
    """The PyTorch QSLAW reference: the transformers model with the ONNX
    weights, the matching linears fake-quantised, everything frozen except
    the scales (scale mode) or gamma (gamma mode) and the projector's
    weights. Returns (model, {name: trainable tensor})."""
    model, _ = load_model(onnx_path, kv_heads=kv_heads)
    qs = quantize_model(model, layers, bits, group, mode)
    for p in model.parameters():
        p.requires_grad_(False)
    trainable = {}
    for path, q in qs.items():
        p = q.scales if mode == "scale" else q.gamma
        p.requires_grad_(True)
        trainable[path] = p
    for n, p in model.named_parameters():
        if "multi_modal_projector" in n and n.endswith("weight"):
            p.requires_grad_(True)
            trainable[n] = p
    return model, trainable


class LoraLinear(torch.nn.Module):
    """PEFT's LoRA around a (fake-quant) linear, dropout 0:
    y = base(x) + (alpha / r) * (x A^T) B^T."""

    def __init__(self, base, a, b, alpha):
        super().__init__()
        self.base = base
        self.lora_A = torch.nn.Parameter(torch.as_tensor(a).clone())
        self.lora_B = torch.nn.Parameter(torch.as_tensor(b).clone())
        self.scaling = alpha / self.lora_A.shape[0]

    def forward(self, x):
        return self.base(x) + self.scaling * ((x @ self.lora_A.T) @ self.lora_B.T)


def reference_lora_trainer(onnx_path, kv_heads, layers, bits, group, mode,
                           adapters, alpha, train_scales=False):
    """The reference of a LoRA stage: the quantized model of
    reference_trainer, frozen, with LoraLinear around the linears in
    `adapters` ({module path: (A, B)}); the scales (or gamma) train too when
    train_scales; bits None: the float model (full-precision LoRA). Returns
    (model, {name: trainable tensor})."""
    model, _ = load_model(onnx_path, kv_heads=kv_heads)
    qs = quantize_model(model, layers, bits, group, mode) if bits else {}
    for p in model.parameters():
        p.requires_grad_(False)
    trainable = {}
    for path, q in qs.items():
        if train_scales:
            p = q.scales if mode == "scale" else q.gamma
            p.requires_grad_(True)
            trainable[path] = p
    for path, (a, b) in adapters.items():
        parent, _, child = path.rpartition(".")
        mod = model.get_submodule(parent)
        wrapped = LoraLinear(getattr(mod, child), a, b, alpha)
        setattr(mod, child, wrapped)
        trainable[path + ".lora_A"] = wrapped.lora_A
        trainable[path + ".lora_B"] = wrapped.lora_B
    return model, trainable
