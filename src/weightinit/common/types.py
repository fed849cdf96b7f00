"""Type aliases shared by the public API."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal, Protocol, Union

import numpy as np

Shape = Sequence[int]
"""A tensor shape: a sequence of non-negative Python or NumPy integers."""

DTypeLike = Union[str, np.dtype, type, None]
"""Anything :func:`weightinit.standardize_dtype` accepts (``None`` means float32)."""

Region = tuple[slice, ...]
"""A block of a tensor: one ``slice`` per leading dimension, as ``jax.make_array_from_callback`` passes."""

InitializerLike = Union[str, dict, "Callable[..., Any]", Any, None]
"""Anything :func:`weightinit.get` accepts."""

Array = np.ndarray


FanMode = Literal["fan_in", "fan_out", "fan_avg", "fan_geo_avg"]
"""Which fan a variance-scaling initializer divides by (``fan_geo_avg``: sqrt(fan_in * fan_out))."""

Distribution = Literal["truncated_normal", "untruncated_normal", "uniform", "normal"]
"""A variance-scaling distribution (``"normal"`` is Keras' alias of ``"truncated_normal"``)."""

Nonlinearity = Literal[
    "linear",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "sigmoid",
    "tanh",
    "relu",
    "leaky_relu",
    "selu",
]
"""The names PyTorch's ``calculate_gain`` knows (case-sensitive, as in PyTorch)."""


class InitializerProtocol(Protocol):
    """Anything callable as ``init(shape, dtype=None)``: weightinit's and Keras' initializers, plain functions.

    >>> import weightinit as wi
    >>> def halves(shape, dtype=None):
    ...     return wi.Constant(0.5)(shape, dtype)
    >>> init: InitializerProtocol = halves
    >>> float(init((2,))[0])
    0.5
    """

    def __call__(self, shape: Shape, dtype: DTypeLike = None) -> Any: ...
