"""Whole-model initialization: ``initialize(module, rules=..., seed=...)``.

Each parameter is identified by its qualified name (``named_parameters``);
its values come from ``Stream(seed).child(path)``, so they depend only on the
seed, the path, the rule and the shape: not on the order modules are declared
or visited, nor on other parameters.  Tied parameters are initialized once,
under one canonical path (the embedding's if one of the aliases belongs to an
``nn.Embedding``, else the lexicographically smallest), so the result does not
depend on which alias is declared first.
"""

from __future__ import annotations

import fnmatch
import inspect
import math
import numbers
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import torch
from torch import nn
from weightinit.common.dtypes import standardize_dtype
from weightinit.common.errors import InitializerTypeError, InitializerValueError
from weightinit.initializers.base import BuiltinInitializer, Initializer, RandomInitializer, generate
from weightinit.initializers.storage import GATES, KINDS, Layout, torch_default_fans, torch_layout
from weightinit.initializers.variance_scaling import VarianceScaling
from weightinit.random.distributions import Normal, TruncatedNormal, Uniform
from weightinit.random.streams import Stream
from weightinit.registry.api import get as _get
from weightinit.torch.place import draw_seed, numpy_dtype, resolve_stream, write_array, write_distribution
from weightinit.torch.roles import find_residual_projections

__all__ = ["initialize", "InitReport", "ParamRecord", "ParamInfo", "PerParameter", "PRESETS"]

_Conv = nn.modules.conv._ConvNd
_NORMS = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm) + (
    (nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()
)


# ---------------------------------------------------------------------------------------------- parameter facts


@dataclass
class ParamInfo:
    """Everything a rule can look at for one parameter.

    Attributes:
      path: the canonical qualified name (``"blocks.0.attn.c_proj.weight"``).
      name: the attribute name in its module (``"weight"``).
      module, module_path: the module that owns the parameter and its path.
      parent: the owner's parent module (or None at the root).
      kind: the layer kind of :func:`weightinit.initializers.storage.torch_layout`
        (``"linear_in_out"`` for a dense weight stored ``(in, out)``, such as
        Hugging Face's ``Conv1D``; see ``layouts=`` of :func:`initialize`).
      role: ``"weight"``, ``"bias"``, ``"embedding"``, ``"recurrent"`` (RNN
        hidden-to-hidden), ``"norm_weight"``, ``"norm_bias"``, ``"bias_kv"``
        (``MultiheadAttention``'s ``bias_k``/``bias_v``) or ``"vector"``
        (another 1-D parameter).
      layout: the :class:`~weightinit.initializers.storage.Layout` (per-block fans).
      weight_shape: for a bias, its module's weight shape (else None).
      residual: True for the weight (and bias) of a residual output projection.
      n_residual: residual additions found in the model (0 unless needed).
      aliases: every path of a tied parameter (the canonical one first).
    """

    path: str
    name: str
    module: nn.Module
    module_path: str
    parent: nn.Module | None
    kind: str
    role: str
    layout: Layout
    weight_shape: tuple | None = None
    residual: bool = False
    n_residual: int = 0
    aliases: tuple = ()

    @property
    def fan_in(self) -> int:
        return self.layout.fan_in

    @property
    def fan_out(self) -> int:
        return self.layout.fan_out

    @property
    def shape(self) -> tuple:
        return self.layout.shape


def _is_norm(m: nn.Module) -> bool:
    return isinstance(m, _NORMS) or (type(m).__name__.endswith("Norm") and not isinstance(m, (nn.Linear, _Conv)))


def _classify(m: nn.Module, pname: str, shape: tuple) -> tuple[str, str, dict, str | None]:
    """(kind, role, layout kwargs, sibling weight name) for parameter ``pname`` of module ``m``."""
    nd = len(shape)
    is_bias = pname.startswith("bias")
    if _is_norm(m) and nd <= 1:
        return "vector", ("norm_bias" if is_bias else "norm_weight"), {}, None
    if isinstance(m, (nn.RNNBase, nn.RNNCellBase)):
        mode = getattr(m, "mode", "")
        if isinstance(m, (nn.LSTM, nn.LSTMCell)) or mode == "LSTM":
            g = GATES["LSTM"]
        elif isinstance(m, (nn.GRU, nn.GRUCell)) or mode == "GRU":
            g = GATES["GRU"]
        else:
            g = GATES["RNN"]
        if pname.startswith("weight_ih"):
            return "rnn_ih", "weight", {"gates": g}, None
        if pname.startswith("weight_hh"):
            return "rnn_hh", "recurrent", {"gates": g}, None
        if pname.startswith("weight_hr"):
            return "linear", "weight", {}, None
        return "vector", "bias", {}, None
    if isinstance(m, nn.MultiheadAttention):
        if pname == "in_proj_weight":
            return "mha_in_proj", "weight", {}, None
        if pname.endswith("_proj_weight"):
            return "linear", "weight", {}, None
        if pname == "in_proj_bias":
            return "vector", "bias", {}, "in_proj_weight"
        return "vector", "bias_kv", {}, None  # bias_k, bias_v: (1, 1, E) learned key/value rows
    if isinstance(m, (nn.Embedding, nn.EmbeddingBag)) and pname == "weight":
        return "embedding", "embedding", {}, None
    if isinstance(m, _Conv):
        if is_bias:
            return "vector", "bias", {}, "weight"
        if m.transposed:
            return "conv_transpose", "weight", {"groups": m.groups}, None
        depthwise = m.groups > 1 and m.groups == m.in_channels
        return ("depthwise" if depthwise else "conv"), "weight", {"groups": m.groups}, None
    if isinstance(m, nn.Bilinear):
        return ("vector", "bias", {}, "weight") if is_bias else ("bilinear", "weight", {}, None)
    if isinstance(m, nn.Linear):
        return ("vector", "bias", {}, "weight") if is_bias else ("linear", "weight", {}, None)
    if nd <= 1:
        if is_bias and isinstance(getattr(m, "weight", None), torch.Tensor) and m.weight.dim() >= 2:
            return "vector", "bias", {}, "weight"
        return "vector", ("bias" if is_bias else "vector"), {}, None
    return "generic", "weight", {}, None


def _is_hf_conv1d(m: nn.Module) -> bool:
    """Hugging Face's ``transformers.pytorch_utils.Conv1D`` (recognized without importing transformers).

    Its signature: a class named ``Conv1D`` with an int ``nf`` (output features) and a 2-D
    ``weight`` of shape ``(nx, nf)`` (``nx == m.nx`` when it has ``nx``), applied as ``x @ weight``.
    """
    if type(m).__name__ != "Conv1D" or isinstance(m, _Conv):
        return False
    nf, w = getattr(m, "nf", None), getattr(m, "weight", None)
    if not isinstance(nf, int) or isinstance(nf, bool) or not isinstance(w, torch.Tensor) or w.dim() != 2:
        return False
    nx = getattr(m, "nx", None)
    return w.shape[1] == nf and (not isinstance(nx, int) or w.shape[0] == nx)


_ROLE_OF_KIND = {"embedding": "embedding", "rnn_hh": "recurrent", "vector": "vector"}


def _check_layout_kind(kind, where: str) -> str:
    if not isinstance(kind, str) or kind not in KINDS:
        raise InitializerValueError(
            f"Unknown layout kind {kind!r} for {where}; expected one of {list(KINDS)} (e.g. 'linear_in_out' for "
            "a dense weight stored (in, out))."
        )
    return kind


def _type_matcher(types) -> Callable[[nn.Module, str], bool]:
    return lambda m, path: isinstance(m, types)


def _path_matcher(pattern: str) -> Callable[[nn.Module, str], bool]:
    f = _glob_or_regex(pattern)
    return lambda m, path: f(path)


def _layout_rules(layouts) -> list[tuple[Callable[[nn.Module, str], bool], Any]]:
    """``layouts=`` as (module matcher, kind or {param glob: kind}) pairs, validated."""
    if layouts is None:
        return []
    if not isinstance(layouts, dict):
        raise InitializerTypeError(
            "`layouts` must be a dict {module type, tuple of types or module-path glob: layout kind or "
            f"{{param_glob: layout kind}}}}; received {type(layouts).__name__}."
        )
    out = []
    for key, value in layouts.items():
        if inspect.isclass(key) or (isinstance(key, tuple) and key and all(inspect.isclass(k) for k in key)):
            match = _type_matcher(key)
        elif isinstance(key, str):
            match = _path_matcher(key)
        else:
            raise InitializerTypeError(
                f"A `layouts` key must be a module type, a tuple of types or a module-path glob; received {key!r}."
            )
        if isinstance(value, dict):
            for k in value.values():
                _check_layout_kind(k, f"layouts[{_pattern_label(key)}]")
        else:
            _check_layout_kind(value, f"layouts[{_pattern_label(key)}]")
        out.append((match, value))
    return out


def _layout_override(m: nn.Module, module_path: str, pname: str, shape: tuple, layout_rules) -> str | None:
    """The layout kind declared for a weight (>= 2-D) by ``layouts=``, ``weightinit_layout`` or HF's Conv1D."""
    if len(shape) < 2:
        return None
    declared = next((v for match, v in layout_rules if match(m, module_path)), None)
    where = "layouts="
    if declared is None and getattr(m, "weightinit_layout", None) is not None:
        declared, where = m.weightinit_layout, f"{type(m).__name__}.weightinit_layout"
    if isinstance(declared, dict):
        declared = next((k for pat, k in declared.items() if fnmatch.fnmatchcase(pname, pat)), None)
    if declared is not None:
        return _check_layout_kind(declared, where)
    if pname == "weight" and _is_hf_conv1d(m):
        return "linear_in_out"
    return None


# ---------------------------------------------------------------------------------------------- rules


class PerParameter:
    """An initializer chosen per parameter: ``fn(info)`` returns what to use for that parameter.

    ``fn`` receives a :class:`ParamInfo` and may return anything a rule
    accepts: an initializer or its name, a distribution (``wi.Uniform``,
    ``wi.Normal``, ``wi.TruncatedNormalDistribution``; sampled over the
    parameter's torch shape), a number (a constant), or None (leave as is).

    >>> import weightinit as wi
    >>> scaled = PerParameter(lambda info: wi.Normal(0.0, 1.0 / info.fan_in ** 0.5), label="N(0, 1/fan_in)")
    """

    def __init__(self, fn: Callable[[ParamInfo], Any], label: str | None = None) -> None:
        self.fn = fn
        self.label = label or getattr(fn, "__name__", "per-parameter")

    def __repr__(self) -> str:
        return f"PerParameter({self.label})"


@dataclass
class _Rule:
    match: Callable[[ParamInfo], bool]
    init: Any
    label: str
    needs_roles: bool = False


def _glob_or_regex(pattern) -> Callable[[str], bool]:
    if isinstance(pattern, re.Pattern):
        return lambda s: pattern.fullmatch(s) is not None
    if pattern.startswith("re:"):
        rx = re.compile(pattern[3:])
        return lambda s: rx.fullmatch(s) is not None
    return lambda s: fnmatch.fnmatchcase(s, pattern)


def _make_rule(pattern, init, label: str | None = None) -> _Rule:
    text = label or _pattern_label(pattern)
    if isinstance(pattern, str) and pattern.startswith("role:"):
        role = pattern[5:]
        if role == "residual":
            return _Rule(lambda i: i.residual, init, text, needs_roles=True)
        return _Rule(lambda i, r=role: i.role == r, init, text)
    if isinstance(pattern, (str, re.Pattern)):
        f = _glob_or_regex(pattern)
        return _Rule(lambda i: any(f(a) for a in (i.aliases or (i.path,))), init, text)
    if inspect.isclass(pattern) and issubclass(pattern, nn.Module):
        return _Rule(lambda i: isinstance(i.module, pattern), init, text)
    if isinstance(pattern, tuple) and pattern and all(inspect.isclass(p) for p in pattern):
        return _Rule(lambda i: isinstance(i.module, pattern), init, text)
    if isinstance(pattern, tuple) and len(pattern) >= 2 and isinstance(pattern[-1], str):
        types = pattern[:-1] if len(pattern) > 2 else pattern[0]
        f = _glob_or_regex(pattern[-1])
        return _Rule(lambda i: isinstance(i.module, types) and f(i.name), init, text)
    if callable(pattern):
        return _Rule(lambda i: bool(pattern(i)), init, text)
    raise InitializerTypeError(
        f"A rule's pattern must be a glob or regex on the parameter path ('*.bias', 're:.*proj.*', a compiled "
        f"re.Pattern), 'role:<role>', a module type or tuple of types, (type, 'param_glob'), or a predicate on "
        f"ParamInfo; received {pattern!r} of type {type(pattern).__name__}."
    )


def _pattern_label(pattern) -> str:
    if inspect.isclass(pattern):
        return pattern.__name__
    if isinstance(pattern, tuple):
        return "(" + ", ".join(_pattern_label(p) for p in pattern) + ")"
    if isinstance(pattern, re.Pattern):
        return f"re:{pattern.pattern}"
    if isinstance(pattern, str):
        return pattern
    return getattr(pattern, "__name__", repr(pattern))


# ---------------------------------------------------------------------------------------------- presets


def _torch_linear_bound(weight_shape) -> float:
    """``kaiming_uniform_(w, a=sqrt(5))``'s bound, computed as torch computes it."""
    fan_in = torch_default_fans(weight_shape)[0]
    gain = math.sqrt(2.0 / (1 + math.sqrt(5) ** 2))
    std = gain / math.sqrt(fan_in)
    return math.sqrt(3.0) * std


def _uniform_or_zero(bound: float):
    return Uniform(-bound, bound) if bound > 0 else 0.0


def _torch_defaults(i: ParamInfo):
    """PyTorch's ``reset_parameters`` of the module owning the parameter, in distribution."""
    m = i.module
    if isinstance(m, (nn.RNNBase, nn.RNNCellBase)):
        return _uniform_or_zero(1.0 / math.sqrt(m.hidden_size) if m.hidden_size > 0 else 0.0)
    if isinstance(m, nn.MultiheadAttention):
        if i.name.endswith("proj_weight"):
            fi, fo = torch_default_fans(i.shape)
            a = math.sqrt(3.0) * math.sqrt(2.0 / float(fi + fo))
            return Uniform(-a, a)
        if i.name == "in_proj_bias":
            return 0.0
        return _torch_bias_kv(i)
    if isinstance(m, nn.Linear) and i.role == "bias" and isinstance(i.parent, nn.MultiheadAttention):
        return 0.0 if i.parent.in_proj_bias is not None else _uniform_or_zero(_torch_bias_bound(i))
    if isinstance(m, nn.Bilinear):
        return _uniform_or_zero(1.0 / math.sqrt(m.weight.size(1)))
    if isinstance(m, (nn.Linear, _Conv)):
        if i.role == "bias":
            return _uniform_or_zero(_torch_bias_bound(i))
        if 0 in i.shape:
            return None
        return Uniform(-_torch_linear_bound(i.shape), _torch_linear_bound(i.shape))
    if isinstance(m, (nn.Embedding, nn.EmbeddingBag)):
        return Normal(0.0, 1.0)
    if _is_hf_conv1d(m) and i.name in ("weight", "bias"):
        return Normal(0.0, 0.02) if i.name == "weight" else 0.0  # its constructor's init (no reset_parameters)
    if isinstance(m, nn.PReLU):
        return float(m.init)
    if i.role == "norm_weight":
        return 1.0
    if i.role == "norm_bias":
        return 0.0
    return _UNMATCHED


def _torch_bias_bound(i: ParamInfo) -> float:
    fan_in = torch_default_fans(i.weight_shape)[0] if i.weight_shape and len(i.weight_shape) >= 2 else 0
    return 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0


_UNMATCHED = object()


def _norm_rules() -> list[_Rule]:
    return [
        _make_rule("role:norm_weight", 1.0, "norm weight: ones"),
        _make_rule("role:norm_bias", 0.0, "norm bias: zeros"),
    ]


def _torch_bias_kv(i: ParamInfo):
    """``MultiheadAttention``'s own init of ``bias_k``/``bias_v`` (1, 1, E): ``xavier_normal_``, N(0, 1/E)."""
    fi, fo = torch_default_fans(i.shape) if len(i.shape) >= 2 else (i.fan_in, i.fan_out)
    return Normal(0.0, math.sqrt(2.0 / float(fi + fo)))


def _bias_kv_rule(name: str) -> _Rule:
    # Keras, Flax and the variance-scaling families have no counterpart of these learned key/value rows,
    # so every such preset uses PyTorch's own xavier_normal_ for them.
    return _make_rule("role:bias_kv", PerParameter(_torch_bias_kv, "xavier_normal_"), f"{name}: bias_kv torch default")


def _family_rules(name: str, weight_init: str, *, recurrent: str | None = None, embedding=None) -> list[_Rule]:
    rules = _norm_rules()
    rules.append(_bias_kv_rule(name))
    rules.append(_make_rule("role:bias", 0.0, f"{name}: bias zeros"))
    if recurrent is not None:
        rules.append(_make_rule("role:recurrent", recurrent, f"{name}: recurrent {recurrent} (per gate)"))
    if embedding is not None:
        rules.append(_make_rule("role:embedding", embedding, f"{name}: embedding"))
    rules.append(
        _make_rule(lambda i: i.role in ("weight", "embedding", "recurrent"), weight_init, f"{name}: {weight_init}")
    )
    return rules


def _prelu_rule() -> _Rule:
    return _make_rule((nn.PReLU, "weight"), PerParameter(lambda i: float(i.module.init)), "PReLU init")


def _preset_torch() -> list[_Rule]:
    return [
        _Rule(lambda i: _torch_defaults(i) is not _UNMATCHED, PerParameter(_torch_defaults, "torch"), "torch default")
    ]


def _gpt2(std: float = 0.02):
    def residual(i: ParamInfo):
        n = max(1, i.n_residual)
        return Normal(0.0, std / math.sqrt(n))

    return [
        *_norm_rules(),
        _make_rule("role:bias_kv", Normal(0.0, std), "gpt2: bias_kv N(0, 0.02)"),
        _make_rule("role:bias", 0.0, "gpt2: bias zeros"),
        _Rule(
            lambda i: i.residual and i.role == "weight",
            PerParameter(residual, "N(0, 0.02/sqrt(2 n_layers))"),
            "gpt2: residual projection",
            needs_roles=True,
        ),
        _Rule(lambda i: len(i.shape) >= 2, Normal(0.0, std), "gpt2: N(0, 0.02)"),
    ]


def _is_linear(i: ParamInfo) -> bool:
    return isinstance(i.module, nn.Linear)


def _timm_tokens() -> list[_Rule]:
    """timm's ``VisionTransformer.init_weights`` (the same in every mode) and DeiT's ``dist_token``.

    ``trunc_normal_(std=.02)`` has timm's absolute bounds (-2, 2), i.e. +-100 std.  ``cls_token`` and
    ``reg_token`` are N(0, 1e-6) as in timm >= 0.6 (timm <= 0.5 drew ``cls_token`` from
    trunc_normal(.02), or left it zero in its jax mode); ``dist_token`` is trunc_normal(.02)
    (``VisionTransformerDistilled.init_weights``).
    """
    return [
        _make_rule(
            re.compile(r"(.*\.)?(pos_embed|dist_token)"),
            TruncatedNormal(0.0, 0.02, -2.0, 2.0),
            "timm: pos_embed/dist_token trunc_normal .02",
        ),
        _make_rule(re.compile(r"(.*\.)?(cls_token|reg_token)"), Normal(0.0, 1e-6), "timm: cls/reg token N(0, 1e-6)"),
    ]


def _preset_vit() -> list[_Rule]:
    return [
        *_timm_tokens(),
        _Rule(
            lambda i: _is_linear(i) and i.role == "weight",
            TruncatedNormal(0.0, 0.02, -2.0, 2.0),
            "timm vit: Linear trunc_normal .02",
        ),
        _Rule(lambda i: _is_linear(i) and i.role == "bias", 0.0, "timm vit: Linear bias zeros"),
        *_preset_torch(),
    ]


def _preset_jax(head_bias: float | str = 0.0) -> list[_Rule]:
    """timm's ``init_weights_vit_jax`` (``weight_init='jax'``); ``head_bias`` its head bias.

    ``head_bias="nlhb"`` is timm's ``'jax_nlhb'`` mode: ``-log(num_classes)``, ``num_classes`` being
    each head's output size.  Heads are the Linear layers whose module path starts with ``head``
    (timm's ``name.startswith('head')``).  ``PRESETS["jax"](head_bias=b)`` returns the rules, which
    ``initialize`` accepts as ``rules=`` (alone or inside a list).
    """
    if isinstance(head_bias, str):
        if head_bias.lower() != "nlhb":
            raise InitializerValueError(f"`head_bias` must be a number or 'nlhb'; received {head_bias!r}.")
        bias = PerParameter(lambda i: -math.log(max(1, i.shape[0])), "-log(num_classes)")
        label = "timm jax: head bias -log(num_classes)"
    elif isinstance(head_bias, numbers.Real) and not isinstance(head_bias, bool) and math.isfinite(head_bias):
        bias, label = float(head_bias), f"timm jax: head bias {float(head_bias):g}"
    else:
        raise InitializerValueError(f"`head_bias` must be a finite number or 'nlhb'; received {head_bias!r}.")

    def head(i):
        return i.module_path.startswith("head")

    return [
        *_timm_tokens(),
        _Rule(lambda i: _is_linear(i) and head(i) and i.role == "weight", 0.0, "timm jax: head weight zeros"),
        _Rule(lambda i: _is_linear(i) and head(i) and i.role == "bias", bias, label),
        _Rule(lambda i: _is_linear(i) and i.role == "weight", "glorot_uniform", "timm jax: Linear xavier_uniform"),
        _Rule(
            lambda i: _is_linear(i) and i.role == "bias" and "mlp" in i.module_path,
            Normal(0.0, 1e-6),
            "timm jax: mlp bias N(0, 1e-6)",
        ),
        _Rule(lambda i: _is_linear(i) and i.role == "bias", 0.0, "timm jax: Linear bias zeros"),
        _Rule(
            lambda i: isinstance(i.module, nn.Conv2d) and i.role == "weight",
            "lecun_normal",
            "timm jax: Conv2d lecun_normal",
        ),
        _Rule(lambda i: isinstance(i.module, nn.Conv2d) and i.role == "bias", 0.0, "timm jax: Conv2d bias zeros"),
        *_preset_torch(),
    ]


PRESETS: dict[str, Callable[[], list[_Rule]]] = {
    "torch": _preset_torch,
    "keras": lambda: [
        _prelu_rule(),
        _Rule(
            lambda i: isinstance(i.module, (nn.LSTM, nn.LSTMCell)) and i.name.startswith("bias_ih"),
            PerParameter(lambda i: _forget_gate_ones(i), "unit_forget_bias"),
            "keras: LSTM bias (forget gate 1)",
        ),
        *_family_rules("keras", "glorot_uniform", recurrent="orthogonal", embedding=Uniform(-0.05, 0.05)),
    ],
    "flax": lambda: [
        _prelu_rule(),
        *_family_rules(
            "flax",
            "lecun_normal",
            recurrent="orthogonal",
            embedding=PerParameter(lambda i: VarianceScaling(1.0, "fan_in", "untruncated_normal"), "N(0, 1/dim)"),
        ),
    ],
    "he": lambda: [_prelu_rule(), *_family_rules("he", "he_normal")],
    "glorot": lambda: [_prelu_rule(), *_family_rules("glorot", "glorot_uniform")],
    "lecun": lambda: [_prelu_rule(), *_family_rules("lecun", "lecun_normal")],
    "gpt2": _gpt2,
    "vit": _preset_vit,
    "jax": _preset_jax,
    "jax_nlhb": lambda: _preset_jax(head_bias="nlhb"),
}
for _fam in ("he", "glorot", "lecun"):
    for _dist in ("normal", "uniform"):
        PRESETS[f"{_fam}_{_dist}"] = lambda f=_fam, d=_dist: [_prelu_rule(), *_family_rules(f"{f}_{d}", f"{f}_{d}")]


def _forget_gate_ones(i: ParamInfo):
    """Keras' ``unit_forget_bias``: the forget-gate block (gate 1 of i, f, g, o) of the input bias is 1."""
    h = i.shape[0] // 4
    value = np.zeros(i.shape, dtype=np.float32)
    value[h : 2 * h] = 1.0
    return _get({"class_name": "Constant", "config": {"value": value}})


def _expand(rules) -> list[_Rule]:
    if rules is None:
        rules = "torch"
    if isinstance(rules, (str, dict)):
        rules = [rules]
    out: list[_Rule] = []
    for item in rules:
        if isinstance(item, str):
            key = item.lower()
            if key not in PRESETS:
                raise InitializerValueError(f"Unknown preset {item!r}; known presets: {sorted(PRESETS)}.")
            out.extend(PRESETS[key]())
        elif isinstance(item, dict):
            out.extend(_make_rule(k, v) for k, v in item.items())
        elif isinstance(item, _Rule):
            out.append(item)
        elif isinstance(item, list):  # e.g. PRESETS["jax"](head_bias=...) inside a list of rules
            out.extend(_expand(item))
        elif isinstance(item, tuple) and len(item) == 2:
            out.append(_make_rule(*item))
        else:
            raise InitializerTypeError(
                f"`rules` must be a preset name, a dict {{pattern: initializer}}, or a list of presets and "
                f"(pattern, initializer) pairs; received an item {item!r} of type {type(item).__name__}."
            )
    return out


# ---------------------------------------------------------------------------------------------- placing values


def _resolve_value(value, info: ParamInfo):
    """(op, payload, label) with op in {"skip", "dist", "const", "init", "fn"}."""
    for _ in range(8):
        if isinstance(value, PerParameter):
            value = value.fn(info)
            continue
        break
    if value is None or (isinstance(value, str) and value.lower() in ("skip", "keep")):
        return "skip", None, "left as is"
    if isinstance(value, (Uniform, Normal, TruncatedNormal)):
        return "dist", value, repr(value)
    if isinstance(value, numbers.Number) and not isinstance(value, bool):
        return "const", value, f"constant {value}"
    if isinstance(value, (str, dict)):
        value = _get(value)
    if inspect.isclass(value) and issubclass(value, Initializer):
        value = value()
    if isinstance(value, Initializer):
        return "init", value, type(value).__name__
    if callable(value):
        return "fn", value, getattr(value, "__name__", repr(value))
    raise InitializerTypeError(
        f"A rule's initializer must be a weightinit initializer or name, a distribution, a number, a "
        f"PerParameter, a torch-style function fn(tensor), or None; received {value!r} for {info.path}."
    )


def _place_initializer(tensor: torch.Tensor, init, layout: Layout, stream: Stream) -> None:
    """Generate with a weightinit initializer in the parameter's torch layout (see weightinit.initializers.storage)."""
    shape = tuple(tensor.shape)
    dist_for = getattr(init, "distribution_for", None)
    if isinstance(init, RandomInitializer) and init.elementwise and callable(dist_for):
        dt = numpy_dtype(tensor.dtype, type(init).__name__)
        s = init.stream_for_call(shape, dt, stream)
        fan_shape = shape if getattr(init, "input_axes", None) is not None else layout.fan_shape
        write_distribution(tensor, dist_for(fan_shape), s)
        return
    dt = standardize_dtype(str(tensor.dtype))
    if isinstance(init, BuiltinInitializer) and init.elementwise and not isinstance(init, RandomInitializer):
        write_array(tensor, np.asarray(generate(init, shape, dt, stream=stream)))
        return
    if layout.blocks == 1:
        arr = np.asarray(generate(init, layout.cl_shape, dt, stream=stream))
        write_array(tensor, np.transpose(arr, layout.perm) if arr.ndim == len(layout.perm) else arr)
        return
    # One array for all blocks, written once: a slice of a DTensor is a new tensor, so writing
    # block by block into slices would be lost for sharded parameters.
    blocks = [
        np.transpose(np.asarray(generate(init, layout.cl_shape, dt, stream=stream.fold_in(b))), layout.perm)
        for b in range(layout.blocks)
    ]
    write_array(tensor, np.concatenate(blocks, axis=0))


def _call_fn(fn, tensor: torch.Tensor, stream: Stream) -> None:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        params = {}
    kwargs = {}
    if "seed" in params:
        kwargs["seed"] = stream
    elif "generator" in params:
        g = torch.Generator(device=tensor.device)
        g.manual_seed(stream.to_int() & ((1 << 63) - 1))
        kwargs["generator"] = g
    with torch.no_grad():
        fn(tensor, **kwargs)


def _apply(op: str, payload, tensor: torch.Tensor, info: ParamInfo, stream: Stream) -> None:
    if tensor.is_meta or op == "skip":
        return
    with torch.no_grad():
        if op == "dist":
            write_distribution(tensor, payload, stream)
        elif op == "const":
            tensor.fill_(payload)
        elif op == "init":
            _place_initializer(tensor, payload, info.layout, stream)
        else:
            _call_fn(payload, tensor, stream)


# ---------------------------------------------------------------------------------------------- report


@dataclass
class ParamRecord:
    """How one parameter was initialized (``rule`` and ``initializer`` are None when no rule matched).

    ``module_type`` is the class name of the module owning the parameter.
    """

    path: str
    shape: tuple
    dtype: str
    kind: str
    role: str
    fan_in: int
    fan_out: int
    rule: str | None
    initializer: str | None
    aliases: tuple = ()
    residual: bool = False
    module_type: str = ""


@dataclass
class InitReport:
    """What :func:`initialize` did: one :class:`ParamRecord` per (canonical) parameter.

    Attributes:
      records: canonical path -> record, in ``named_parameters`` order.
      unmatched: canonical paths no rule matched (left as they were; their
        records have ``rule=None``; ``strict=True`` raises instead).
      tied: canonical path -> its other paths, for tied parameters.
      residual_projections: module paths found to project into a residual stream.
      n_residual: residual additions found (2 per GPT-style layer).
      buffers_reset: modules whose running statistics were reset.
      seed: the 64-bit root seed used.
    """

    records: dict = field(default_factory=dict)
    unmatched: list = field(default_factory=list)
    tied: dict = field(default_factory=dict)
    residual_projections: list = field(default_factory=list)
    n_residual: int = 0
    buffers_reset: list = field(default_factory=list)
    seed: int | None = None

    def __getitem__(self, path: str) -> ParamRecord:
        return self.records[path]

    def __iter__(self):
        return iter(self.records.values())

    def __len__(self) -> int:
        return len(self.records)

    def __str__(self) -> str:
        head = ("parameter", "shape", "kind", "fans", "rule", "initializer")
        rows = [
            (
                r.path + (" (tied: " + ", ".join(r.aliases[1:]) + ")" if len(r.aliases) > 1 else ""),
                "x".join(map(str, r.shape)) or "()",
                r.kind + (" [residual]" if r.residual else ""),
                f"{r.fan_in}/{r.fan_out}",
                r.rule or "-- unmatched --",
                r.initializer or "",
            )
            for r in self.records.values()
        ]
        widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
        lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in (head, *rows)]
        lines.insert(1, "  ".join("-" * w for w in widths))
        lines.append(f"{len(self.records)} parameters, {len(self.unmatched)} unmatched, seed {self.seed}")
        if self.unmatched:
            lines.append(
                "unmatched: "
                + ", ".join(f"{u} ({self.records[u].module_type})" if u in self.records else u for u in self.unmatched)
                + " -- left as they were (strict=True raises)"
            )
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- initialize


def _canonical(aliases: list[tuple[str, nn.Module]]) -> int:
    keyed = [
        (0 if isinstance(m, (nn.Embedding, nn.EmbeddingBag)) else 1, path, k) for k, (path, m) in enumerate(aliases)
    ]
    return min(keyed)[2]


def initialize(
    module: nn.Module,
    rules=None,
    *,
    seed=None,
    generator: torch.Generator | None = None,
    residual_projections=None,
    n_layers: int | None = None,
    reset_buffers: bool = True,
    strict: bool = False,
    layouts=None,
) -> InitReport:
    """Initialize every parameter of ``module`` in place by rules, and report what was done.

    Each parameter's values come from ``Stream(seed).child(path)`` (``path``
    its qualified name), so they depend on the seed, the path, the matching
    rule and the shape only: not on declaration or traversal order, nor on
    other parameters.  Tied parameters are initialized once.

    Args:
      module: the model (parameters on any device; on the meta device nothing
        is written: build on meta, ``to_empty(device=...)``, then initialize).
      rules: a preset name, a dict ``{pattern: initializer}``, or a list of
        presets and ``(pattern, initializer)`` pairs; the first match wins and
        presets expand in place (default ``"torch"``).  Patterns: a glob on the
        path (``"*.bias"``), a regex (``"re:..."`` or a compiled pattern), a
        role (``"role:bias"``, ``"role:residual"``, ``"role:embedding"``,
        ``"role:recurrent"``, ``"role:norm_weight"``...), a module type or
        tuple of types, ``(type, "param_glob")``, or a predicate on
        :class:`ParamInfo`.  Initializers: a weightinit initializer, name or
        config (fans are those of the layer type, see
        :func:`weightinit.initializers.storage.torch_layout`), a distribution, a number, a
        :class:`PerParameter`, a torch-style ``fn(tensor)`` (given ``seed=``
        or ``generator=`` from the parameter's stream when it accepts one), or
        None / ``"skip"``.
        Presets: ``"torch"`` (PyTorch's own ``reset_parameters``, in
        distribution), ``"keras"`` (glorot_uniform kernels, orthogonal
        recurrent kernels, zero biases, LSTM forget-gate bias 1, U(+-0.05)
        embeddings), ``"flax"`` (lecun_normal, orthogonal recurrent, zero
        biases, N(0, 1/dim) embeddings), ``"he"``/``"glorot"``/``"lecun"``
        (and ``_normal``/``_uniform`` variants), ``"gpt2"`` (N(0, 0.02);
        residual output projections N(0, 0.02/sqrt(2 n_layers)), found by
        tracing), ``"vit"`` and ``"jax"`` (timm's ``init_weights_vit_timm`` and
        ``init_weights_vit_jax``; ``"jax_nlhb"`` sets head biases to
        ``-log(num_classes)``, and ``PRESETS["jax"](head_bias=b)`` gives the
        rules for any other head bias).  ``MultiheadAttention``'s
        ``bias_k``/``bias_v`` (role ``"bias_kv"``) get PyTorch's own
        ``xavier_normal_`` in every preset but ``"gpt2"`` (N(0, 0.02)).
      seed: int, Stream or SeedGenerator; default: 64 bits drawn from
        ``generator`` or torch's global RNG (so ``torch.manual_seed`` reproduces).
      residual_projections: module paths or globs of residual output
        projections, when tracing cannot find them (modules may also set
        ``weightinit_residual = True``).
      n_layers: the GPT-2 depth; residual projections then use
        ``1/sqrt(2 n_layers)`` instead of ``1/sqrt(residual additions found)``.
      reset_buffers: reset normalization running statistics (needed after ``to_empty``).
      strict: raise, before writing anything, if a parameter matches no rule
        (the message lists each one with its module type, shape and role).
        Otherwise unmatched parameters are left as they were and listed in
        ``report.unmatched`` (and at the end of ``str(report)``).
      layouts: how custom modules store their weights, for fans:
        ``{module type, tuple of types or module-path glob: kind}``, the kind
        one of :data:`weightinit.initializers.storage.KINDS` (e.g. ``"linear_in_out"`` for
        a dense weight stored ``(in, out)`` and applied as ``x @ W``), or
        ``{param_glob: kind}`` per parameter.  It applies to parameters of 2
        or more dimensions; convolution kinds take the module's ``groups``.  A
        module may declare the same with a ``weightinit_layout`` attribute
        (``layouts=`` wins).  Hugging Face's ``Conv1D`` (a class named
        ``Conv1D`` with ``nf`` and a weight of shape ``(nx, nf)``) is
        recognized as ``"linear_in_out"`` without importing transformers.

    >>> import torch, weightinit.torch as wt
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.LayerNorm(8))
    >>> report = wt.initialize(net, "keras", seed=0)
    >>> report["0.bias"].rule, float(net[1].weight.detach().sum())
    ('keras: bias zeros', 8.0)
    """
    if not isinstance(module, nn.Module):
        raise InitializerTypeError(f"`module` must be a torch.nn.Module; received {type(module).__name__}.")
    root_seed = draw_seed(generator) if seed is None else seed
    root = resolve_stream(root_seed)
    rule_list = _expand(rules)
    modules = dict(module.named_modules(remove_duplicate=False))
    parents: dict[int, nn.Module] = {}
    for m in modules.values():
        for _, child in m.named_children():
            parents.setdefault(id(child), m)

    # Group aliases of tied parameters.
    groups: dict[int, list[tuple[str, nn.Module, str]]] = {}
    order: list[int] = []
    for path, m in modules.items():
        for pname, p in m.named_parameters(recurse=False):
            full = f"{path}.{pname}" if path else pname
            if id(p) not in groups:
                groups[id(p)] = []
                order.append(id(p))
            if all(full != a[0] for a in groups[id(p)]):
                groups[id(p)].append((full, m, pname))

    if residual_projections is not None or any(r.needs_roles for r in rule_list):
        residual = _residual_info(module, rule_list, residual_projections)
    else:
        from weightinit.torch.roles import ResidualInfo

        residual = ResidualInfo()
    n_res = 2 * int(n_layers) if n_layers is not None else residual.n_residual
    res_modules = set(residual.projections)

    report = InitReport(
        seed=int(root_seed) if isinstance(root_seed, numbers.Integral) else None,
        residual_projections=sorted(res_modules),
        n_residual=n_res,
    )

    params = dict(module.named_parameters(remove_duplicate=False))
    layout_rules = _layout_rules(layouts)
    planned: list[tuple[ParamInfo, torch.Tensor, str, Any, ParamRecord]] = []
    for pid in order:
        aliases = groups[pid]
        k = _canonical([(a[0], a[1]) for a in aliases])
        path, m, pname = aliases[k]
        alias_paths = (path,) + tuple(sorted(a[0] for a in aliases if a[0] != path))
        p = params[path]
        module_path = path.rsplit(".", 1)[0] if "." in path else ""
        declared = _layout_override(m, module_path, pname, tuple(p.shape), layout_rules)
        if declared is not None:
            kind, role, sibling = declared, _ROLE_OF_KIND.get(declared, "weight"), None
            n_groups = getattr(m, "groups", 1)
            kw = (
                {"groups": n_groups}
                if declared in ("conv", "depthwise", "conv_transpose") and isinstance(n_groups, int)
                else {}
            )
        else:
            kind, role, kw, sibling = _classify(m, pname, tuple(p.shape))
        weight_shape = None
        if sibling is not None and isinstance(getattr(m, sibling, None), torch.Tensor):
            weight_shape = tuple(getattr(m, sibling).shape)
        try:
            layout = torch_layout(tuple(p.shape), kind, **kw)
        except InitializerValueError:
            if declared is not None:
                raise
            kind, layout = "generic", torch_layout(tuple(p.shape), "generic")
        info = ParamInfo(
            path=path,
            name=pname,
            module=m,
            module_path=module_path,
            parent=parents.get(id(m)),
            kind=kind,
            role=role,
            layout=layout,
            weight_shape=weight_shape,
            residual=module_path in res_modules,
            n_residual=n_res,
            aliases=alias_paths,
        )
        rule = next((r for r in rule_list if r.match(info)), None)
        rec = ParamRecord(
            path,
            tuple(p.shape),
            str(p.dtype).replace("torch.", ""),
            kind,
            role,
            layout.fan_in,
            layout.fan_out,
            None,
            None,
            alias_paths,
            info.residual,
            type(m).__name__,
        )
        report.records[path] = rec
        if len(alias_paths) > 1:
            report.tied[path] = list(alias_paths[1:])
        if rule is None:
            report.unmatched.append(path)
            continue
        op, payload, label = _resolve_value(rule.init, info)  # errors surface before anything is written
        rec.rule, rec.initializer = rule.label, label
        planned.append((info, p, op, payload, rec))

    if strict and report.unmatched:
        details = "\n".join(
            f"  {r.path}: {r.module_type}, shape {tuple(r.shape)}, role {r.role!r}, kind {r.kind!r}"
            for r in (report.records[u] for u in report.unmatched)
        )
        raise InitializerValueError(
            f"No rule matched {len(report.unmatched)} parameter(s): {report.unmatched}. Nothing was "
            f'initialized.\n{details}\nAdd rules for them (e.g. ("{report.unmatched[0]}", initializer), '
            "'role:<role>' or a module type), 'skip' them explicitly, or pass strict=False."
        )

    for info, p, op, payload, rec in planned:
        m, path = info.module, info.path
        _apply(op, payload, p, info, root.child(path))
        if info.role == "embedding" and getattr(m, "padding_idx", None) is not None and not p.is_meta and op != "skip":
            with torch.no_grad():
                p[m.padding_idx].fill_(0)
            rec.initializer += f"; row {m.padding_idx} (padding_idx) zeroed"

    if reset_buffers:
        for path, m in module.named_modules():
            if isinstance(m, nn.modules.batchnorm._NormBase) and m.track_running_stats:
                if m.running_mean is not None and not m.running_mean.is_meta:
                    m.reset_running_stats()
                    report.buffers_reset.append(path)
    return report


def _residual_info(module: nn.Module, rules: list[_Rule], explicit):
    from weightinit.torch.roles import ResidualInfo

    if explicit is not None:
        if isinstance(explicit, str):
            explicit = [explicit]
        names = [n for n, _ in module.named_modules()]
        found = [n for n in names if any(fnmatch.fnmatchcase(n, pat) for pat in explicit)]
        return ResidualInfo(projections=found, n_residual=len(found))
    marked = [n for n, m in module.named_modules() if getattr(m, "weightinit_residual", False)]
    if marked:
        return ResidualInfo(projections=marked, n_residual=len(marked))
    info = find_residual_projections(module)
    if info.n_residual == 0 and info.failed:
        warnings.warn(
            f"weightinit could not trace {info.failed[0] or type(module).__name__} with torch.fx and found no "
            "residual output projections, so residual scaling is not applied. Pass "
            "`residual_projections=[...]` (module paths or globs) or set `weightinit_residual = True` on those "
            "modules.",
            UserWarning,
            stacklevel=3,
        )
    return info
