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


def _prelu_init(info: ParamInfo) -> float:
    """The ``init`` a PReLU was built with (the rule below matches PReLU weights only)."""
    module = info.module
    assert isinstance(module, nn.PReLU), type(module)
    return float(module.init)


def _prelu_rule() -> _Rule:
    return _make_rule((nn.PReLU, "weight"), PerParameter(_prelu_init, "PReLU init"), "PReLU init")


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


# ---------------------------------------------------------------------------------------------- LLM trainers
#
# Each recipe below reproduces one project's init in distribution; the formulas, with the file and commit
# they were read from, are listed in docs/recipes.md.  Roles (attn_q/k/v/o, mlp_gate/up/out, head) come
# from a recorded forward pass (weightinit.torch.tracing), so they apply to any model that computes the
# same thing, whatever its parameters are called.

_QKV = ("attn_q", "attn_k", "attn_v", "attn_qkv", "attn_kv")


def _tn(std: float, cutoff: float | None):
    """N(0, std^2) truncated at +-cutoff*std (absolute bounds), or untruncated when cutoff is None."""
    if std == 0:
        return 0.0
    return Normal(0.0, std) if cutoff is None else TruncatedNormal(0.0, std, -cutoff * std, cutoff * std)


def _torch_trunc(std: float):
    """``torch.nn.init.trunc_normal_(std=std)`` with its default absolute bounds a=-2, b=2."""
    return TruncatedNormal(0.0, std, -2.0, 2.0)


def _d_model(i: ParamInfo) -> int:
    """The model width a role's formula uses: the input width of q/k/v/gate/up/head, the output of o/out."""
    if i.role == "embedding":
        return int(i.shape[-1])
    if i.module_role in ("attn_o", "mlp_out") or i.residual:
        return int(i.fan_out)
    return int(i.fan_in)


def _layer(i: ParamInfo) -> int:
    if i.layer is None:
        raise InitializerValueError(
            f"This recipe scales {i.path} by its block index, and none was found in its path (an integer "
            "component, as in 'layers.3.attention.wo'). Use the recipe's depth-independent variant or add a rule."
        )
    return i.layer


def _n_layers(i: ParamInfo) -> int:
    if i.n_layers <= 0:
        raise InitializerValueError(
            f"This recipe scales {i.path} by the number of blocks, and role finding found none; pass n_layers=."
        )
    return i.n_layers


def _role_recipe(name: str, by_role: dict, other, embedding, bias=0.0) -> list[_Rule]:
    """Rules: norms ones/zeros, biases ``bias``, then one distribution function per module role."""
    rules = [*_norm_rules(), _bias_kv_rule(name), _make_rule("role:bias", bias, f"{name}: bias zeros")]
    rules.append(_make_rule("role:embedding", PerParameter(embedding, f"{name}: embedding"), f"{name}: embedding"))
    for roles, fn in by_role.items():
        roles = (roles,) if isinstance(roles, str) else roles
        rules.append(
            _Rule(
                lambda i, r=roles: i.module_role in r and len(i.shape) >= 2,
                PerParameter(fn, f"{name}: {'/'.join(roles)}"),
                f"{name}: {'/'.join(roles)}",
                needs_roles=True,
            )
        )
    out_fn = next(
        (fn for roles, fn in by_role.items() if "attn_o" in ((roles,) if isinstance(roles, str) else roles)), None
    )
    if out_fn is not None:  # residual projections found without module roles (torch.fx, residual_projections=)
        rules.append(
            _Rule(
                lambda i: i.residual and i.module_role is None and len(i.shape) >= 2,
                PerParameter(out_fn, f"{name}: residual projection"),
                f"{name}: residual projection",
                needs_roles=True,
            )
        )
    rules.append(
        _Rule(lambda i: len(i.shape) >= 2, PerParameter(other, f"{name}: weight"), f"{name}: weight", needs_roles=True)
    )
    return rules


def _recipe_torchtitan_llama3(depth_init: bool = True, std: float = 0.02) -> list[_Rule]:
    """torchtitan's Llama 3 ``init_weights`` (``depth_init=True`` is torchtitan's default)."""

    def out_std(i):
        return std / math.sqrt(2 * (_layer(i) + 1)) if depth_init else std / math.sqrt(2 * _n_layers(i))

    name = "torchtitan_llama3"
    return _role_recipe(
        name,
        {
            _QKV: lambda i: _torch_trunc(std),
            ("mlp_gate", "mlp_in"): lambda i: _torch_trunc(std),
            ("attn_o", "mlp_up", "mlp_out"): lambda i: _torch_trunc(out_std(i)),
            "head": lambda i: _tn(i.fan_in**-0.5, 3.0),
        },
        other=lambda i: _torch_trunc(std),
        embedding=lambda i: Normal(0.0, 1.0),
    )


def _olmo(init_fn: str, init_std: float = 0.02, init_cutoff_factor: float | None = None, emb_init_std=None):
    """OLMo's ``init_fn`` ``"normal"``, ``"mitchell"`` or ``"full_megatron"`` (``OLMoBlock.reset_parameters``)."""
    c = init_cutoff_factor if init_fn == "normal" else (init_cutoff_factor or 3.0)

    def inp(i):
        return _tn(1.0 / math.sqrt(i.fan_in) if init_fn == "mitchell" else init_std, c)

    def out(i):
        if init_fn == "normal":
            return _tn(init_std, c)
        if init_fn == "mitchell":  # attn_out: 1/sqrt(2 d (l+1)); ff_out: 1/sqrt(2 ff_out.in_features (l+1))
            d = i.fan_out if i.module_role == "attn_o" else i.fan_in
            return _tn(1.0 / math.sqrt(2 * d * (_layer(i) + 1)), c)
        return _tn(init_std / math.sqrt(2.0 * _n_layers(i)), c)

    def emb(i):
        if emb_init_std is not None:
            return _tn(emb_init_std, c)
        return _tn(1.0 / math.sqrt(i.shape[-1]) if init_fn == "mitchell" else init_std, c)

    def head(i):
        if init_fn == "normal":
            return _tn(init_std, c)
        return _tn(i.fan_in**-0.5, c)

    return _role_recipe(
        f"olmo_{init_fn}",
        {(*_QKV, "mlp_in", "mlp_gate", "mlp_up"): inp, ("attn_o", "mlp_out"): out, "head": head},
        other=inp,
        embedding=emb,
    )


def _olmo_core(method: str, std: float = 0.02) -> list[_Rule]:
    """OLMo-core's ``InitMethod`` ``normal``/``llama``/``llama_depth``/``normalized`` (truncated at 3 std)."""

    def base(i):
        return _d_model(i) ** -0.5 if method == "normalized" else std

    def scaled(i, s):
        if method == "llama":
            return s / math.sqrt(2 * _n_layers(i))
        if method == "llama_depth":
            return s / math.sqrt(2 * (_layer(i) + 1))
        return s

    def attn_o(i):
        s = base(i)
        if method == "normalized":
            s = s / math.sqrt(2 * _n_layers(i))
        return _tn(scaled(i, s), 3.0)

    def mlp_up(i):  # w3
        return _tn(scaled(i, base(i)), 3.0)

    def mlp_out(i):  # w2
        s = scaled(i, base(i))
        if method == "normalized":
            s = s / math.sqrt(2 * _n_layers(i))
        return _tn(s, 3.0)

    def emb(i):
        if method in ("llama", "llama_depth"):
            return Normal(0.0, 1.0)
        if method == "normalized":
            return Normal(0.0, i.shape[-1] ** -0.5)
        return _tn(std, 3.0)

    def head(i):
        return _tn(i.fan_in**-0.5 if method != "normal" else std, 3.0)

    return _role_recipe(
        f"olmo_core_{method}",
        {
            (*_QKV, "mlp_gate", "mlp_in"): lambda i: _tn(base(i), 3.0),
            "attn_o": attn_o,
            "mlp_up": mlp_up,
            "mlp_out": mlp_out,
            "head": head,
        },
        other=lambda i: _tn(base(i), 3.0),
        embedding=emb,
    )


def _recipe_neox(init_method: str = "small_init", output_layer_init_method: str = "wang_init", std: float = 0.02):
    """GPT-NeoX ``init_method``/``output_layer_init_method``: ``small_init`` sqrt(2/(5d)), ``wang_init`` 2/(L sqrt d)."""

    def method(kind: str, i: ParamInfo):
        d = _d_model(i)
        if kind == "small_init":
            return Normal(0.0, math.sqrt(2.0 / (5.0 * d)))
        if kind == "wang_init":
            return Normal(0.0, 2.0 / _n_layers(i) / math.sqrt(d))
        if kind == "normal":
            return Normal(0.0, std)
        if kind == "scaled_normal":
            return Normal(0.0, std / math.sqrt(2.0 * _n_layers(i)))
        raise InitializerValueError(
            f"GPT-NeoX init method must be 'small_init', 'wang_init', 'normal' or 'scaled_normal'; received {kind!r}."
        )

    for k, arg in ((init_method, "init_method"), (output_layer_init_method, "output_layer_init_method")):
        if k not in ("small_init", "wang_init", "normal", "scaled_normal"):
            raise InitializerValueError(
                f"`{arg}` must be 'small_init', 'wang_init', 'normal' or 'scaled_normal'; received {arg}={k!r}."
            )
    return _role_recipe(
        "neox",
        {("attn_o", "mlp_out"): lambda i: method(output_layer_init_method, i)},
        other=lambda i: method(init_method, i),
        embedding=lambda i: method(init_method, i),
    )


def _recipe_megatron(init_method_std: float = 0.02) -> list[_Rule]:
    """Megatron-LM: N(0, init_method_std) everywhere, output layers N(0, init_method_std / sqrt(2 L))."""
    return _role_recipe(
        "megatron",
        {("attn_o", "mlp_out"): lambda i: Normal(0.0, init_method_std / math.sqrt(2.0 * _n_layers(i)))},
        other=lambda i: Normal(0.0, init_method_std),
        embedding=lambda i: Normal(0.0, init_method_std),
    )


def _recipe_modded_nanogpt() -> list[_Rule]:
    """modded-nanogpt: U(+-sqrt(3) * 0.5 / sqrt(fan_in)) weights, zero output projections and head."""

    def casted(i):
        b = math.sqrt(3.0) * 0.5 * i.fan_in**-0.5
        return Uniform(-b, b)

    return _role_recipe(
        "modded_nanogpt",
        {("attn_o", "mlp_out", "head"): lambda i: 0.0},
        other=casted,
        embedding=lambda i: TorchEmbedding().distribution_for(i.shape),
    )


# ---------------------------------------------------------------------------------------------- Hugging Face


def _hf_config(i: ParamInfo):
    return getattr(i.model, "config", None)


def _hf_std(i: ParamInfo) -> float:
    """``PreTrainedModel._init_weights``' std: initializer_range, else init_std, else initializer_factor, else 0.02."""
    c = _hf_config(i)
    if c is None:
        return 0.02
    for name in ("initializer_range", "init_std", "initializer_factor"):
        if hasattr(c, name):
            return float(getattr(c, name) or 0.02) if name == "initializer_range" else float(getattr(c, name))
    text = c.get_text_config() if hasattr(c, "get_text_config") else c
    return float(getattr(text, "initializer_range", 0.02))


def _is_hf_norm(m: nn.Module) -> bool:
    n = type(m).__name__
    return (
        isinstance(m, (nn.GroupNorm, nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d))
        or "LayerNorm" in n
        or ("RMSNorm" in n)
    )


def _hf_base(name: str) -> list[_Rule]:
    """``transformers.PreTrainedModel._init_weights`` (transformers 5), per parameter."""
    hf_linear = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d)
    return [
        _Rule(lambda i: _is_hf_norm(i.module) and i.name == "weight", 1.0, f"{name}: norm weight ones"),
        _Rule(lambda i: _is_hf_norm(i.module) and i.name == "bias", 0.0, f"{name}: norm bias zeros"),
        _Rule(
            lambda i: isinstance(i.module, nn.MultiheadAttention),
            PerParameter(_torch_defaults, "torch default"),
            f"{name}: MultiheadAttention torch default",
        ),
        _Rule(
            lambda i: isinstance(i.module, nn.LSTM) and "weight" in i.name,
            PerParameter(lambda i: _XAVIER_UNIFORM.distribution_for(_torch_fan_shape(i.shape)), "xavier_uniform_"),
            f"{name}: LSTM xavier_uniform_",
        ),
        _Rule(lambda i: isinstance(i.module, nn.LSTM), 0.0, f"{name}: LSTM bias zeros"),
        _Rule(
            lambda i: (isinstance(i.module, hf_linear) or _is_hf_conv1d(i.module)) and i.name == "bias",
            0.0,
            f"{name}: bias zeros",
        ),
        _Rule(
            lambda i: isinstance(i.module, (*hf_linear, nn.Embedding)) or _is_hf_conv1d(i.module),
            PerParameter(lambda i: Normal(0.0, _hf_std(i)), "N(0, initializer_range)"),
            f"{name}: N(0, initializer_range)",
        ),
    ]


def _recipe_hf() -> list[_Rule]:
    return _hf_base("hf")


def _recipe_hf_gpt2() -> list[_Rule]:
    """``GPT2PreTrainedModel._init_weights``: the base init, c_proj of attention and MLP N(0, std/sqrt(2 n_layer))."""

    def residual(i):
        c = _hf_config(i)
        n = getattr(c, "n_layer", None) if c is not None else None
        n2 = 2 * int(n) if n else (i.n_residual or 1)
        return Normal(0.0, _hf_std(i) / math.sqrt(n2))

    return [
        _Rule(
            lambda i: i.residual and i.role == "weight",
            PerParameter(residual, "N(0, initializer_range/sqrt(2 n_layer))"),
            "hf_gpt2: residual projection",
            needs_roles=True,
        ),
        *_hf_base("hf_gpt2"),
    ]


def _recipe_hf_bert() -> list[_Rule]:
    """``BertPreTrainedModel._init_weights``: the base init; the LM head's own bias zero."""
    return [*_hf_base("hf_bert"), _make_rule("role:bias", 0.0, "hf_bert: bias zeros")]


def _recipe_hf_t5() -> list[_Rule]:
    """``T5PreTrainedModel._init_weights``: every std a multiple of ``initializer_factor``."""

    def cfg(i):
        c = _hf_config(i)
        if c is None or not hasattr(c, "d_model"):
            raise InitializerValueError(f"The 'hf_t5' recipe needs a T5 config on the model; {i.path} has none.")
        return c, float(getattr(c, "initializer_factor", 1.0))

    def std_for(i):
        c, f = cfg(i)
        leaf = i.module_path.rsplit(".", 1)[-1]
        d, d_kv, h, d_ff = c.d_model, c.d_kv, c.num_heads, c.d_ff
        table = {
            "q": f * (d * d_kv) ** -0.5,
            "k": f * d**-0.5,
            "v": f * d**-0.5,
            "o": f * (h * d_kv) ** -0.5,
            "wi": f * d**-0.5,
            "wi_0": f * d**-0.5,
            "wi_1": f * d**-0.5,
            "wo": f * d_ff**-0.5,
            "relative_attention_bias": f * d**-0.5,
            "shared": f * 1.0,
            "lm_head": f * 1.0,
            "embed_tokens": f * 1.0,
            "qa_outputs": f * d**-0.5,
            "dense": f * d**-0.5,
            "out_proj": f * d**-0.5,
            "classifier": f * 1.0,
        }
        if leaf not in table:
            return Normal(0.0, _hf_std(i))
        return Normal(0.0, table[leaf])

    return [
        _Rule(
            lambda i: type(i.module).__name__ == "T5LayerNorm",
            PerParameter(lambda i: cfg(i)[1], "initializer_factor"),
            "hf_t5: T5LayerNorm initializer_factor",
        ),
        _Rule(
            lambda i: (
                len(i.shape) >= 2
                and isinstance(i.module, (nn.Linear, nn.Embedding))
                and hasattr(_hf_config(i), "d_kv")
                and not isinstance(i.parent, nn.MultiheadAttention)
            ),
            PerParameter(std_for, "T5 N(0, factor * d^-0.5 ...)"),
            "hf_t5: weight",
        ),
        *_hf_base("hf_t5"),
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
    "hf": _recipe_hf,
    "hf_gpt2": _recipe_hf_gpt2,
    "hf_bert": _recipe_hf_bert,
    "hf_t5": _recipe_hf_t5,
    "hf_llama": _recipe_hf,
    "hf_qwen2": _recipe_hf,
    "torchtitan_llama3": _recipe_torchtitan_llama3,
    "torchtitan_llama3_no_depth_init": lambda: _recipe_torchtitan_llama3(depth_init=False),
    "olmo_normal": lambda **kw: _olmo("normal", **kw),
    "olmo_mitchell": lambda **kw: _olmo("mitchell", **kw),
    "olmo_full_megatron": lambda **kw: _olmo("full_megatron", **kw),
    "olmo_core_normal": lambda **kw: _olmo_core("normal", **kw),
    "olmo_core_llama": lambda **kw: _olmo_core("llama", **kw),
    "olmo_core_llama_depth": lambda **kw: _olmo_core("llama_depth", **kw),
    "olmo_core_normalized": lambda **kw: _olmo_core("normalized", **kw),
    "neox": _recipe_neox,
    "megatron": _recipe_megatron,
    "modded_nanogpt": _recipe_modded_nanogpt,
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
