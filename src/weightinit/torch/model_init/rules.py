"""Rules: a pattern on :class:`~weightinit.torch.model_init.facts.ParamInfo` and the initializer it selects.

A rule's pattern is a glob or regex on the parameter path, ``"role:<role>"``,
a module type, ``(type, "param_glob")`` or a predicate; the first matching
rule of a recipe wins (see :func:`weightinit.torch.initialize`).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn
from weightinit.common.errors import InitializerTypeError
from weightinit.torch.model_init.facts import ParamInfo, _glob_or_regex, _pattern_label

__all__ = ["PerParameter", "MODULE_ROLES"]

# Roles of a module in the forward pass (weightinit.torch.tracing); "role:<one of these>" needs role finding.
MODULE_ROLES = frozenset(
    {"attn_q", "attn_k", "attn_v", "attn_qkv", "attn_kv", "attn_o", "mlp_in", "mlp_gate", "mlp_up", "mlp_out", "head"}
)


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


def _truth_of(predicate: Callable[..., object]) -> Callable[[ParamInfo], bool]:
    """A predicate pattern (any callable: a function, or a class other than a Module) as a rule's match."""
    return lambda i: bool(predicate(i))


def _make_rule(pattern: object, init: Any, label: str | None = None) -> _Rule:
    text = label or _pattern_label(pattern)
    if isinstance(pattern, str) and pattern.startswith("role:"):
        role = pattern[5:]
        if role == "residual":
            return _Rule(lambda i: i.residual, init, text, needs_roles=True)
        if role in MODULE_ROLES:
            return _Rule(lambda i, r=role: i.module_role == r, init, text, needs_roles=True)
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
        return _Rule(_truth_of(pattern), init, text)
    raise InitializerTypeError(
        f"A rule's pattern must be a glob or regex on the parameter path ('*.bias', 're:.*proj.*', a compiled "
        f"re.Pattern), 'role:<role>', a module type or tuple of types, (type, 'param_glob'), or a predicate on "
        f"ParamInfo; received {pattern!r} of type {type(pattern).__name__}."
    )
