"""Every fan rule of weightinit: the one owner of ``fan_in``/``fan_out`` for every framework's convention.

A weight's fans are the number of inputs each output sums over (``fan_in``)
and the number of outputs each input feeds (``fan_out``).  Frameworks store
weights differently, so each has its own rule; all of them live here, and
every initializer, adapter and the doctor call these functions:

=====================  =================================  ===============================
framework              storage                            rule
=====================  =================================  ===============================
Keras (and the core)   channels-last ``(*k, in, out)``    :func:`compute_fans`
PyTorch                ``(out, in, *k)``                  :func:`torch_fans` (torch's own),
                                                          :func:`torch_layer_fans` (per layer)
JAX / Flax             any, by ``in_axis``/``out_axis``   :func:`jax_fans` (floats)
                       /``batch_axis``
dm-haiku               channels-last, ``fan_in_axes``     :func:`haiku_fans`, :func:`input_size`
=====================  =================================  ===============================

Each is tested against the framework's own function where it is installed
(tests/initializers/test_fans.py).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Any, cast

from weightinit.common.errors import InitializerTypeError, InitializerValueError, value_error
from weightinit.common.validate import shape as _validate_shape

__all__ = [
    "compute_fans",
    "check_axes",
    "check_axis_list",
    "haiku_fans",
    "input_size",
    "check_jax_axis",
    "jax_fans",
    "torch_fans",
    "torch_layer_fans",
    "TORCH_LAYER_KINDS",
]


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
    return check_axis_list("input_axes", input_axes), check_axis_list("output_axes", output_axes)


def check_axis_list(name: str, axes: Any) -> list[int]:
    """Validate a non-empty list of int axes (an int alone is a list of one); returns it as a list."""
    seq = [axes] if isinstance(axes, numbers.Integral) and not isinstance(axes, bool) else axes
    try:
        axes = list(cast(Iterable[Any], seq))
    except TypeError:
        raise InitializerTypeError(f"`{name}` must be a list of ints; received {name}={axes!r}.") from None
    if not axes or any(isinstance(a, bool) or not isinstance(a, numbers.Integral) for a in axes):
        raise InitializerTypeError(f"`{name}` must be a non-empty list of ints; received {name}={axes!r}.")
    return [int(a) for a in axes]


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
    """Fan-in and fan-out of a weight of ``shape`` (channels-last layout, Keras' ``compute_fans``).

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


# ---------------------------------------------------------------------------
# Haiku: hk.initializers.VarianceScaling's fans and hk.Linear's input size.
# ---------------------------------------------------------------------------


def haiku_fans(shape, fan_in_axes=None) -> tuple[int, int]:
    """Fans as dm-haiku's ``hk.initializers.VarianceScaling`` computes them.

    Rank <= 2 and ``fan_in_axes=None`` follow :func:`compute_fans` (Keras'
    rule).  For rank >= 3 with ``fan_in_axes``, ``fan_in`` is the product of
    those dimensions and ``fan_out`` the product of all the others (Haiku's
    rule; Keras' ``input_axes``/``output_axes`` name both sides instead).

    >>> haiku_fans((3, 3, 4, 8))
    (36, 72)
    >>> haiku_fans((2, 3, 4), fan_in_axes=[0])
    (2, 12)
    """
    shape = tuple(int(d) for d in shape)
    if fan_in_axes is None or len(shape) <= 2:
        return compute_fans(shape)
    ia = check_axis_list("fan_in_axes", fan_in_axes)
    ia = _resolve(ia, len(shape), "fan_in_axes", shape)
    return math.prod(shape[a] for a in ia), math.prod(d for a, d in enumerate(shape) if a not in ia)


def input_size(shape) -> int:
    """``prod(shape[:-1])``: the inputs each output unit of a channels-last kernel sums over.

    Haiku's ``hk.Linear``/``hk.ConvND`` default ``stddev = 1/sqrt(input_size)``
    and ``hk.initializers.UniformScaling`` use it; it equals
    :func:`compute_fans`' ``fan_in`` for rank >= 2 (a vector gives 1, the
    empty product, where ``compute_fans`` gives ``n``).

    >>> input_size((3, 3, 4, 8)), input_size((7,))
    (36, 1)
    """
    return math.prod(int(d) for d in tuple(shape)[:-1])


# ---------------------------------------------------------------------------
# JAX: jax.nn.initializers' in_axis / out_axis / batch_axis.
# ---------------------------------------------------------------------------


def check_jax_axis(name: str, axis):
    """Validate a JAX-style axis argument (an int or a sequence of ints); returns an int or a list."""
    if axis is None:
        return None
    if isinstance(axis, numbers.Integral) and not isinstance(axis, bool):
        return int(axis)
    try:
        axes = list(axis)
    except TypeError:
        raise InitializerTypeError(
            f"`{name}` must be an int or a sequence of ints; received {name}={axis!r}."
        ) from None
    if any(isinstance(a, bool) or not isinstance(a, numbers.Integral) for a in axes):
        raise InitializerTypeError(f"`{name}` must be an int or a sequence of ints; received {name}={axis!r}.")
    return [int(a) for a in axes]


def jax_fans(shape, in_axis=-2, out_axis=-1, batch_axis=()) -> tuple[float, float]:
    """Fans as ``jax.nn.initializers`` computes them (floats; axes may overlap or be empty).

    ``in_size``, ``out_size`` and ``batch_size`` are the products of the
    dimensions on those axes; the receptive field is
    ``prod(shape) / in_size / out_size / batch_size``; ``fan_in = in_size *
    receptive`` and ``fan_out = out_size * receptive``.  A zero-size weight
    has fans ``(0.0, 0.0)`` (JAX divides by zero).

    >>> jax_fans((3, 3, 16, 32))
    (144.0, 288.0)
    >>> jax_fans((100, 64), in_axis=-2, out_axis=0)  # Flax Embed: fan_in = features
    (64.0, 64.0)
    """
    shape = tuple(int(d) for d in shape)
    rank = len(shape)
    if isinstance(in_axis, numbers.Integral) and not isinstance(in_axis, bool) and in_axis == -2 and rank <= 1:
        raise InitializerValueError(
            f"Can't compute input and output sizes of a {rank}-dimensional weights tensor with default "
            f"in_axis. Must be at least 2D or specify in_axis explicitly. (received shape={shape})"
        )

    def size(name: str, axis: Any) -> int:
        checked = check_jax_axis(name, axis)
        axes: list[int] = [] if checked is None else [checked] if isinstance(checked, int) else checked
        for a in axes:
            if not -rank <= a < rank:
                raise InitializerValueError(
                    f"`{name}` contains axis {a}, out of range for shape {shape} of rank {rank}; "
                    f"received {name}={axis!r}."
                )
        return math.prod(shape[a] for a in axes)

    in_size, out_size, batch_size = size("in_axis", in_axis), size("out_axis", out_axis), size("batch_axis", batch_axis)
    denom = in_size * out_size * batch_size
    receptive = math.prod(shape) / denom if denom else 0.0
    return in_size * receptive, out_size * receptive


# ---------------------------------------------------------------------------
# PyTorch: (out, in, *k) storage.
# ---------------------------------------------------------------------------


def torch_fans(shape) -> tuple[int, int]:
    """``torch.nn.init._calculate_fan_in_and_fan_out``: ``(in * k, out * k)`` for ``(out, in, *k)``.

    This is PyTorch's own rule, used as-is by every layer (it ignores groups,
    and reads a ConvTranspose weight ``(in, out/g, *k)`` as if it were
    ``(out, in, *k)``).  The ``torch.nn.init`` drop-ins and the ``"torch"``
    recipe of ``weightinit.torch.initialize`` use it; :func:`torch_layer_fans`
    gives the per-layer-type fans.

    >>> torch_fans((8, 16, 3, 3))
    (144, 72)
    """
    shape = tuple(int(d) for d in shape)
    if len(shape) < 2:
        raise InitializerValueError(
            f"Fan in and fan out can not be computed for tensor with fewer than 2 dimensions; received shape={shape}."
        )
    k = math.prod(shape[2:])
    return shape[1] * k, shape[0] * k


TORCH_LAYER_KINDS = (
    "linear",
    "bilinear",
    "conv",
    "depthwise",
    "conv_transpose",
    "linear_in_out",
    "embedding",
    "mha_in_proj",
    "rnn_ih",
    "rnn_hh",
    "vector",
    "generic",
)
"""Layer kinds :func:`torch_layer_fans` knows (``weightinit.initializers.storage.KINDS``)."""


def torch_layer_fans(block_shape, kind: str = "generic", groups: int = 1) -> tuple[int, int]:
    """Fans of one block of a weight stored in PyTorch's layout, by layer ``kind``.

    ``k`` is the product of the kernel dimensions, ``g`` the groups:

    ==================  ==========================  =================  ==================
    kind                block shape                 fan_in             fan_out
    ==================  ==========================  =================  ==================
    linear, generic,    ``(out, in, *k)``           ``in * k``         ``out * k``
    mha_in_proj,
    rnn_ih, rnn_hh
    bilinear            ``(out, in1, in2)``         ``in1 * in2``      ``out``
    conv, depthwise     ``(out, in/g, *k)``         ``in/g * k``       ``out/g * k``
    conv_transpose      ``(in, out/g, *k)``         ``in/g * k``       ``out/g * k``
    linear_in_out       ``(in, out, *k)``           ``in * k``         ``out * k``
    embedding           ``(num, dim)``              ``dim``            ``num``
    vector              ``(n,)`` or ``()``          ``n``              ``n``
    ==================  ==========================  =================  ==================

    Fused blocks (the q/k/v of ``MultiheadAttention``, RNN gates) are split by
    :func:`weightinit.initializers.storage.torch_layout` before this rule.

    >>> torch_layer_fans((64, 8, 3, 3), "conv", groups=4)
    (72, 144)
    >>> torch_layer_fans((16, 4, 3), "conv_transpose", groups=2)
    (24, 12)
    """
    block = tuple(int(d) for d in block_shape)
    if kind not in TORCH_LAYER_KINDS:
        raise value_error("kind", kind, f"must be one of {list(TORCH_LAYER_KINDS)}")
    if len(block) < 2 or kind == "vector":
        n = block[0] if len(block) == 1 else max(1, math.prod(block))
        return n, n
    g = int(groups)
    if g < 1:
        raise value_error("groups", groups, "must be a positive int")
    k = math.prod(block[2:])
    if kind in ("conv", "depthwise"):
        return block[1] * k, (block[0] // g) * k
    if kind == "conv_transpose":
        return (block[0] // g) * k, block[1] * k
    if kind in ("bilinear", "embedding"):
        return block[1] * k, block[0]
    if kind == "linear_in_out":
        return block[0] * k, block[1] * k
    return block[1] * k, block[0] * k
