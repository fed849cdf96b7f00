"""Type aliases shared by the public API."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Union

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
