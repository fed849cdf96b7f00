"""Type aliases shared by the public API."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Union

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from weightinit.random.seeds import SeedGenerator
    from weightinit.random.streams import Stream

Shape = Sequence[int]
"""A tensor shape: a sequence of non-negative Python or NumPy integers."""

DTypeLike = Union[str, np.dtype, type, None]
"""Anything :func:`weightinit.standardize_dtype` accepts (``None`` means float32)."""

Region = tuple[slice, ...]
"""A block of a tensor: one ``slice`` per leading dimension, as ``jax.make_array_from_callback`` passes."""

SeedLike = Union[int, np.integer, "SeedGenerator", "Stream", None]
"""An initializer seed: a non-negative int below 2**64, a SeedGenerator, a Stream, or None."""

InitializerLike = Union[str, dict, "Callable[..., Any]", Any, None]
"""Anything :func:`weightinit.get` accepts."""

Array = np.ndarray
