"""Role detection: which layers project a residual branch back into the residual stream.

A *residual addition* is an ``add(u, v)`` in the traced forward graph where
``u`` is an ancestor of ``v`` (``v = f(u)``: the branch reads the stream it is
added back to).  The branch's *output projection* is the ``Linear`` (or
convolution, or ``MultiheadAttention``'s ``out_proj``) reached from ``v`` by
walking back through shape-only and scaling operations (dropout, view,
reshape, transpose, contiguous, multiplication by a constant or a layer-scale
parameter).  This finds GPT-2's ``c_proj`` layers by what they do, not by
their names (name regexes fail silently: huggingface/transformers#47458).

The model is traced with ``torch.fx``; when the whole model cannot be traced
(data-dependent control flow, asserts on shapes), its children are traced one
by one, so the blocks of a transformer are still found.
``nn.TransformerEncoderLayer``/``DecoderLayer`` are known structurally.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field

import torch
from torch import nn

__all__ = ["ResidualInfo", "find_residual_projections"]

_TRANSPARENT_METHODS = {
    "view",
    "reshape",
    "transpose",
    "permute",
    "contiguous",
    "flatten",
    "unflatten",
    "to",
    "type",
    "float",
    "half",
    "bfloat16",
    "view_as",
    "reshape_as",
    "squeeze",
    "unsqueeze",
    "clone",
}
_TRANSPARENT_FUNCS = {
    torch.reshape,
    torch.transpose,
    torch.permute,
    torch.flatten,
    torch.squeeze,
    torch.unsqueeze,
    torch.nn.functional.dropout,
}
_SCALE_FUNCS = {operator.mul, operator.truediv, torch.mul}
_ADD_FUNCS = {operator.add, operator.iadd, torch.add}
_PROJECTIONS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
_TRANSPARENT_MODULES = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.Identity)


@dataclass
class ResidualInfo:
    """What :func:`find_residual_projections` found.

    Attributes:
      projections: module paths of the residual output projections.
      n_residual: the number of residual additions fed by a projection
        (2 per GPT-2 layer: attention and MLP).
      traced: module paths that were traced successfully.
      failed: module paths whose tracing failed (their children were tried).
    """

    projections: list[str] = field(default_factory=list)
    n_residual: int = 0
    traced: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _ancestors(node) -> set:
    seen, stack = set(), [node]
    while stack:
        n = stack.pop()
        for a in n.all_input_nodes:
            if a not in seen:
                seen.add(a)
                stack.append(a)
    return seen


def _is_const(a) -> bool:
    return isinstance(a, (int, float)) or (hasattr(a, "op") and a.op == "get_attr")


def _branch_sources(gm, node) -> list[str]:
    """Projection modules whose output reaches ``node`` through transparent operations."""
    for _ in range(64):
        if node.op == "call_module":
            mod = gm.get_submodule(node.target)
            if isinstance(mod, _PROJECTIONS):
                return [node.target]
            if isinstance(mod, nn.MultiheadAttention):
                return [_join(node.target, "out_proj")]
            if isinstance(mod, _TRANSPARENT_MODULES) and node.args:
                node = node.args[0]
                continue
            return []
        if node.op == "call_method" and node.target in _TRANSPARENT_METHODS and node.args:
            node = node.args[0]
            continue
        if node.op == "call_function":
            if node.target in _TRANSPARENT_FUNCS and node.args:
                node = node.args[0]
                continue
            if node.target is operator.getitem and node.args and node.args[1] == 0:
                node = node.args[0]
                continue
            if node.target in _SCALE_FUNCS and len(node.args) == 2:
                a, b = node.args
                if _is_const(b) and hasattr(a, "op"):
                    node = a
                    continue
                if _is_const(a) and hasattr(b, "op") and node.target is not operator.truediv:
                    node = b
                    continue
            return []
        if (
            node.op == "call_method"
            and node.target in ("mul", "div")
            and len(node.args) == 2
            and _is_const(node.args[1])
        ):
            node = node.args[0]
            continue
        return []
    return []


def _analyze(gm, prefix: str, info: ResidualInfo) -> None:
    for node in gm.graph.nodes:
        is_add = (node.op == "call_function" and node.target in _ADD_FUNCS) or (
            node.op == "call_method" and node.target in ("add", "add_")
        )
        if not is_add or len(node.args) < 2:
            continue
        u, v = node.args[0], node.args[1]
        if not (hasattr(u, "op") and hasattr(v, "op")):
            continue
        found = []
        if u in _ancestors(v):
            found = _branch_sources(gm, v)
        elif v in _ancestors(u):
            found = _branch_sources(gm, u)
        if found:
            info.n_residual += 1
            info.projections.extend(_join(prefix, f) for f in found)


def _visit(module: nn.Module, prefix: str, info: ResidualInfo) -> None:
    if isinstance(module, nn.TransformerEncoderLayer):
        info.projections += [_join(prefix, "self_attn.out_proj"), _join(prefix, "linear2")]
        info.n_residual += 2
        return
    if isinstance(module, nn.TransformerDecoderLayer):
        info.projections += [
            _join(prefix, "self_attn.out_proj"),
            _join(prefix, "multihead_attn.out_proj"),
            _join(prefix, "linear2"),
        ]
        info.n_residual += 3
        return
    if not any(True for _ in module.children()):
        return
    try:
        gm = torch.fx.symbolic_trace(module)
    except Exception:
        info.failed.append(prefix)
        for name, child in module.named_children():
            _visit(child, _join(prefix, name), info)
        return
    info.traced.append(prefix)
    _analyze(gm, prefix, info)
    # Leaves the tracer did not enter may still hold known transformer layers.
    for name, sub in module.named_modules():
        if name and isinstance(sub, (nn.TransformerEncoderLayer, nn.TransformerDecoderLayer)):
            _visit(sub, _join(prefix, name), info)


def find_residual_projections(model: nn.Module) -> ResidualInfo:
    """Find the residual output projections of ``model`` by tracing its forward graph (see the module doc).

    >>> import torch
    >>> class Block(torch.nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.fc = torch.nn.Linear(4, 8)
    ...         self.proj = torch.nn.Linear(8, 4)
    ...     def forward(self, x):
    ...         return x + self.proj(torch.relu(self.fc(x)))
    >>> find_residual_projections(Block()).projections
    ['proj']
    """
    info = ResidualInfo()
    _visit(model, "", info)
    seen: dict[str, None] = {}
    for p in info.projections:
        seen.setdefault(p, None)
    info.projections = list(seen)
    return info
