"""Parameter facts: what :func:`~weightinit.torch.initialize` knows about each parameter before any rule runs.

For every parameter it records the module that owns it, its *kind* (the
storage layout of :func:`weightinit.initializers.storage.torch_layout`, which
gives its fans), its *role* (weight, bias, embedding, recurrent, norm weight or
bias, ...), and the aliases of a tied parameter.  Rules (:mod:`.rules`) match
on these facts; nothing here writes a value.
"""

from __future__ import annotations

import fnmatch
import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from weightinit.common.errors import InitializerTypeError, InitializerValueError
from weightinit.initializers.storage import GATES, KINDS, Layout

__all__ = ["ParamInfo"]

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
      module_role: what its module does in the forward pass, found by
        :func:`weightinit.torch.tracing.record_roles` when a rule needs it:
        ``"attn_q"``, ``"attn_k"``, ``"attn_v"``, ``"attn_qkv"``, ``"attn_o"``,
        ``"mlp_in"``, ``"mlp_gate"``, ``"mlp_up"``, ``"mlp_out"``, ``"head"``,
        ``"embedding"`` (None when unknown).
      layer: the block index, the first integer component of the module path
        (``"model.layers.3.mlp.down_proj"`` -> 3), or None.
      n_layers: the number of blocks (``n_layers=`` of ``initialize``, else
        half the residual additions found, else the distinct ``layer`` values).
      model: the root module given to ``initialize`` (recipes read its ``config``).
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
    module_role: str | None = None
    layer: int | None = None
    n_layers: int = 0
    model: nn.Module | None = None

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
        weight = getattr(m, "weight", None)
        if is_bias and isinstance(weight, torch.Tensor) and weight.dim() >= 2:
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


def _glob_or_regex(pattern) -> Callable[[str], bool]:
    if isinstance(pattern, re.Pattern):
        return lambda s: pattern.fullmatch(s) is not None
    if pattern.startswith("re:"):
        rx = re.compile(pattern[3:])
        return lambda s: rx.fullmatch(s) is not None
    return lambda s: fnmatch.fnmatchcase(s, pattern)


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


def canonical_alias(aliases: list[tuple[str, nn.Module]]) -> int:
    keyed = [
        (0 if isinstance(m, (nn.Embedding, nn.EmbeddingBag)) else 1, path, k) for k, (path, m) in enumerate(aliases)
    ]
    return min(keyed)[2]


def layer_index(module_path: str) -> int | None:
    """The first integer component of a module path (its block index), or None."""
    for part in module_path.split("."):
        if part.isdigit():
            return int(part)
    return None
