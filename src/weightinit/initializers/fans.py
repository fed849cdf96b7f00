"""Fan computation for channels-last kernels, as Keras defines it."""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Any, cast

from weightinit.common.errors import InitializerTypeError, InitializerValueError
from weightinit.common.validate import shape as _validate_shape

__all__ = ["compute_fans", "check_axes"]


def check_axes(input_axes, output_axes):
    """Validate ``input_axes``/``output_axes`` at construction; returns them as lists (or None).

    Both must be given together: Keras silently ignores one given alone, which
    hides a mistake, so weightinit raises instead.
    """
    if input_axes is None and output_axes is None:
        return None, None
    if (input_axes is None) != (output_axes is None):
        given, missing = ("input_axes", "output_axes") if output_axes is None else ("output_axes", "input_axes")
        raise InitializerValueError(
            f"`{given}` was given without `{missing}`; received input_axes={input_axes!r}, "
            f"output_axes={output_axes!r}. Pass both (e.g. input_axes=[0], output_axes=[1, 2]) or neither."
        )
    out = []
    pairs: tuple[tuple[str, Any], ...] = (("input_axes", input_axes), ("output_axes", output_axes))
    for name, axes in pairs:
        seq = [axes] if isinstance(axes, numbers.Integral) and not isinstance(axes, bool) else axes
        try:
            axes = list(cast(Iterable[Any], seq))
        except TypeError:
            raise InitializerTypeError(f"`{name}` must be a list of ints; received {name}={axes!r}.") from None
        if not axes or any(isinstance(a, bool) or not isinstance(a, numbers.Integral) for a in axes):
            raise InitializerTypeError(f"`{name}` must be a non-empty list of ints; received {name}={axes!r}.")
        out.append([int(a) for a in axes])
    return out[0], out[1]


def _resolve(axes, rank: int, name: str, shape) -> list[int]:
    res = []
    for a in axes:
        if not -rank <= a < rank:
            raise InitializerValueError(
                f"`{name}` contains axis {a}, out of range for shape {tuple(shape)} of rank {rank}; "
                f"received {name}={axes!r}."
            )
        res.append(a % rank)
    if len(set(res)) != len(res):
        raise InitializerValueError(f"`{name}` repeats an axis; received {name}={axes!r} for shape {tuple(shape)}.")
    return res


def compute_fans(shape, input_axes=None, output_axes=None) -> tuple[int, int]:
    """Fan-in and fan-out of a weight of ``shape`` (channels-last layout).

    Rules (Keras): rank 0 -> (1, 1); rank 1 -> (n, n); rank 2 ``(in, out)``;
    rank >= 3 ``(*kernel, in, out)`` -> ``(in * k, out * k)`` with ``k`` the
    product of the kernel dimensions.  With explicit ``input_axes`` and
    ``output_axes``, the fans are the products of those dimensions.

    >>> compute_fans((3, 3, 4, 8))
    (36, 72)
    >>> compute_fans((512, 8, 64), input_axes=[0], output_axes=[1, 2])
    (512, 512)
    """
    shape = _validate_shape(shape)
    if input_axes is not None or output_axes is not None:
        ia, oa = check_axes(input_axes, output_axes)
        rank = len(shape)
        ia = _resolve(ia, rank, "input_axes", shape)
        oa = _resolve(oa, rank, "output_axes", shape)
        if set(ia) & set(oa):
            raise InitializerValueError(
                f"`input_axes` and `output_axes` share axes; received input_axes={input_axes!r}, "
                f"output_axes={output_axes!r}."
            )
        return math.prod(shape[a] for a in ia), math.prod(shape[a] for a in oa)
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive
