"""Argument checks shared by the initializers: numbers given by users, validated once."""

from __future__ import annotations

import math

from weightinit.common.errors import type_error, value_error

__all__ = ["real_number"]


def real_number(name: str, v, *, finite: bool = True) -> float:
    """``v`` as a float, or a clear error naming the argument ``name``.

    Text is refused even when it parses (``float("0.5")`` would accept it
    silently), NaN always, and infinities when ``finite`` is true.
    """
    if isinstance(v, (str, bytes)):
        raise type_error(name, v, "must be a real number, not text")
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise type_error(name, v, "must be a real number") from None
    if math.isnan(f):
        raise value_error(name, v, "must not be NaN")
    if finite and math.isinf(f):
        raise value_error(name, v, "must be finite")
    return f
