"""Recipes: named, whole-model rule sets (``"torch"``, ``"keras"``, ``"gpt2"``, ``"timm_vit"``, ...).

A recipe is a function returning a list of rules; :data:`RECIPES` maps each
name to it.  :func:`expand` turns what ``initialize`` receives (a recipe name,
a dict of rules, a list of both) into one flat list of rules.
"""

from __future__ import annotations

import math
import numbers
import re
import warnings
from collections.abc import Callable

import numpy as np

from torch import nn
from weightinit.common.errors import InitializerTypeError, InitializerValueError
from weightinit.initializers.framework_defaults import TorchEmbedding, TorchLinearBias, TorchLinearWeight
from weightinit.initializers.storage import torch_default_fans, torch_layout
from weightinit.initializers.variance_scaling import GlorotUniform, VarianceScaling
from weightinit.random.distributions import Normal, TruncatedNormal, Uniform
from weightinit.registry.api import get as _get
from weightinit.torch.model_init.facts import ParamInfo, _Conv, _is_hf_conv1d
from weightinit.torch.model_init.rules import PerParameter, _make_rule, _Rule

__all__ = ["RECIPES", "expand", "recipe"]


_TORCH_WEIGHT = TorchLinearWeight()
_XAVIER_UNIFORM = GlorotUniform()
_XAVIER_NORMAL = VarianceScaling(1.0, "fan_avg", "untruncated_normal")


def _torch_fan_shape(shape: tuple) -> tuple:
    """A torch ``(out, in, *k)`` weight shape as the channels-last ``(*k, in, out)`` the initializers take."""
    return torch_layout(tuple(shape), "generic").fan_shape


def _torch_bias(weight_shape) -> object:
    """PyTorch's default bias of a layer whose weight has ``weight_shape``: :class:`TorchLinearBias`."""
    fan_in = torch_default_fans(weight_shape)[0] if weight_shape and len(weight_shape) >= 2 else 0
    return _zero_if_none(TorchLinearBias(fan_in=fan_in).distribution_for(()))


def _zero_if_none(dist):
    return 0.0 if dist is None else dist


def _torch_defaults(i: ParamInfo):
    """PyTorch's ``reset_parameters`` of the module owning the parameter, in distribution.

    The formulas are those of :mod:`weightinit.initializers.framework_defaults`
    (``TorchLinearWeight``, ``TorchLinearBias``, ``TorchEmbedding``) and of
    ``xavier_uniform_``/``xavier_normal_`` (``GlorotUniform``, untruncated
    ``VarianceScaling(1, "fan_avg")``), with torch's own fans.
    """
    m = i.module
    if isinstance(m, (nn.RNNBase, nn.RNNCellBase)):
        # U(+-1/sqrt(hidden_size)) for every weight and bias: TorchLinearBias with fan_in = hidden_size.
        return _zero_if_none(TorchLinearBias(fan_in=max(0, m.hidden_size)).distribution_for(()))
    if isinstance(m, nn.MultiheadAttention):
        if i.name.endswith("proj_weight"):
            return _XAVIER_UNIFORM.distribution_for(_torch_fan_shape(i.shape))
        if i.name == "in_proj_bias":
            return 0.0
        return _torch_bias_kv(i)
    if isinstance(m, nn.Linear) and i.role == "bias" and isinstance(i.parent, nn.MultiheadAttention):
        return 0.0 if i.parent.in_proj_bias is not None else _torch_bias(i.weight_shape)
    if isinstance(m, nn.Bilinear):
        # Bilinear.reset_parameters: U(+-1/sqrt(in1_features)) for weight and bias.
        return _zero_if_none(TorchLinearBias(fan_in=m.weight.size(1)).distribution_for(()))
    if isinstance(m, (nn.Linear, _Conv)):
        if i.role == "bias":
            return _torch_bias(i.weight_shape)
        if 0 in i.shape:
            return None
        return _TORCH_WEIGHT.distribution_for(_torch_fan_shape(i.shape))
    if isinstance(m, (nn.Embedding, nn.EmbeddingBag)):
        return TorchEmbedding().distribution_for(i.shape)  # initialize zeroes the padding row in every recipe
    if _is_hf_conv1d(m) and i.name in ("weight", "bias"):
        return Normal(0.0, 0.02) if i.name == "weight" else 0.0  # its constructor's init (no reset_parameters)
    if isinstance(m, nn.PReLU):
        return float(m.init)
    if i.role == "norm_weight":
        return 1.0
    if i.role == "norm_bias":
        return 0.0
    return _UNMATCHED


_UNMATCHED = object()


def _norm_rules() -> list[_Rule]:
    return [
        _make_rule("role:norm_weight", 1.0, "norm weight: ones"),
        _make_rule("role:norm_bias", 0.0, "norm bias: zeros"),
    ]


def _torch_bias_kv(i: ParamInfo):
    """``MultiheadAttention``'s own init of ``bias_k``/``bias_v`` (1, 1, E): ``xavier_normal_``, N(0, 2/(1+E))."""
    return _XAVIER_NORMAL.distribution_for(_torch_fan_shape(i.shape) if len(i.shape) >= 2 else (i.fan_in, i.fan_out))


def _bias_kv_rule(name: str) -> _Rule:
    # Keras, Flax and the variance-scaling families have no counterpart of these learned key/value rows,
    # so every such recipe uses PyTorch's own xavier_normal_ for them.
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


def _recipe_torch() -> list[_Rule]:
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


def _recipe_timm_vit() -> list[_Rule]:
    return [
        *_timm_tokens(),
        _Rule(
            lambda i: _is_linear(i) and i.role == "weight",
            TruncatedNormal(0.0, 0.02, -2.0, 2.0),
            "timm vit: Linear trunc_normal .02",
        ),
        _Rule(lambda i: _is_linear(i) and i.role == "bias", 0.0, "timm vit: Linear bias zeros"),
        *_recipe_torch(),
    ]


def _recipe_timm_vit_jax(head_bias: float | str = 0.0) -> list[_Rule]:
    """timm's ``init_weights_vit_jax`` (``weight_init='jax'``); ``head_bias`` its head bias.

    ``head_bias="nlhb"`` is timm's ``'jax_nlhb'`` mode: ``-log(num_classes)``, ``num_classes`` being
    each head's output size.  Heads are the Linear layers whose module path starts with ``head``
    (timm's ``name.startswith('head')``).  ``RECIPES["timm_vit_jax"](head_bias=b)`` returns the rules, which
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
        *_recipe_torch(),
    ]


RECIPES: dict[str, Callable[..., list[_Rule]]] = {
    "torch": _recipe_torch,
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
    "timm_vit": _recipe_timm_vit,
    "timm_vit_jax": _recipe_timm_vit_jax,
    "timm_vit_jax_nlhb": lambda: _recipe_timm_vit_jax(head_bias="nlhb"),
}
for _fam in ("he", "glorot", "lecun"):
    for _dist in ("normal", "uniform"):
        RECIPES[f"{_fam}_{_dist}"] = lambda f=_fam, d=_dist: [_prelu_rule(), *_family_rules(f"{f}_{d}", f"{f}_{d}")]


# Names of weightinit 0.1 that still work for one minor version, with a DeprecationWarning.
DEPRECATED_NAMES: dict[str, str] = {"vit": "timm_vit", "jax": "timm_vit_jax", "jax_nlhb": "timm_vit_jax_nlhb"}


def _warn_renamed(old: str, new: str, what: str = "recipe", stacklevel: int = 3) -> None:
    warnings.warn(
        f"The {what} {old!r} was renamed in weightinit 0.2 and will be removed in 0.3; use {new!r}.",
        DeprecationWarning,
        stacklevel=stacklevel,
    )


def recipe(name: str) -> Callable[..., list[_Rule]]:
    """The recipe function registered under ``name`` (case-insensitive; deprecated names warn)."""
    if not isinstance(name, str):
        raise InitializerTypeError(f"A recipe name must be a str; received {name!r} of type {type(name).__name__}.")
    key = name.lower()
    if key in DEPRECATED_NAMES:
        _warn_renamed(name, DEPRECATED_NAMES[key], stacklevel=4)
        key = DEPRECATED_NAMES[key]
    if key not in RECIPES:
        raise InitializerValueError(
            f"Unknown recipe {name!r} (weightinit 0.1 called recipes presets); known recipes: {sorted(RECIPES)}."
        )
    return RECIPES[key]


class _DeprecatedPresets(dict):
    """``PRESETS``: :data:`RECIPES` under its old name and with its old keys (each access warns)."""

    def __getitem__(self, key):
        if isinstance(key, str) and key.lower() in DEPRECATED_NAMES:
            _warn_renamed(key, DEPRECATED_NAMES[key.lower()])
            key = DEPRECATED_NAMES[key.lower()]
        return dict.__getitem__(self, key)


def _presets() -> dict:
    out = _DeprecatedPresets(RECIPES)
    for old, new in DEPRECATED_NAMES.items():
        dict.__setitem__(out, old, RECIPES[new])
    return out


def __getattr__(name: str):
    if name == "PRESETS":
        _warn_renamed("PRESETS", "RECIPES", what="name")
        return _presets()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _forget_gate_ones(i: ParamInfo):
    """Keras' ``unit_forget_bias``: the forget-gate block (gate 1 of i, f, g, o) of the input bias is 1."""
    h = i.shape[0] // 4
    value = np.zeros(i.shape, dtype=np.float32)
    value[h : 2 * h] = 1.0
    return _get({"class_name": "Constant", "config": {"value": value}})


def expand(rules) -> list[_Rule]:
    """One flat list of rules from a recipe name, a dict of rules, or a list of both (recipes expand in place)."""
    if rules is None:
        rules = "torch"
    if isinstance(rules, (str, dict)):
        rules = [rules]
    out: list[_Rule] = []
    for item in rules:
        if isinstance(item, str):
            out.extend(recipe(item)())
        elif isinstance(item, dict):
            out.extend(_make_rule(k, v) for k, v in item.items())
        elif isinstance(item, _Rule):
            out.append(item)
        elif isinstance(item, list):  # e.g. RECIPES["timm_vit_jax"](head_bias=...) in a list
            out.extend(expand(item))
        elif isinstance(item, tuple) and len(item) == 2:
            out.append(_make_rule(*item))
        else:
            raise InitializerTypeError(
                f"`recipe` must be a recipe name, a dict {{pattern: initializer}}, or a list of recipes and "
                f"(pattern, initializer) pairs; received an item {item!r} of type {type(item).__name__}."
            )
    return out
