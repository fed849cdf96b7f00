"""Orthogonal initialization: the Q factor of a Gaussian matrix, sign-corrected.

The matrix itself comes from :mod:`weightinit.random.orthogonal` (``orthogonal_matrix``, re-exported
here under its old import path), the one owner of the QR sign fix.
"""

from __future__ import annotations

import math

import numpy as np

from weightinit.common.checks import real_number
from weightinit.common.dtypes import compute_dtype, require_float
from weightinit.common.errors import InitializerValueError, peer_error, value_error
from weightinit.initializers.base import RandomInitializer
from weightinit.initializers.names import builtin
from weightinit.random.orthogonal import orthogonal_matrix

__all__ = ["Orthogonal", "orthogonal_matrix"]


@builtin("OrthogonalInitializer")
class Orthogonal(RandomInitializer):
    """A (semi-)orthogonal matrix times ``gain`` (Saxe et al., 2014).

    Formula: the shape is flattened to ``(prod(shape[:-1]), shape[-1])``;
    ``w = gain * Q`` with ``Q`` from the QR decomposition of a standard normal
    matrix, sign-corrected.  Columns are orthonormal when there are at least
    as many rows as columns, rows otherwise.  With ``column_axis`` (JAX's
    argument), that axis holds the columns and the others are flattened to
    rows; it appears in ``get_config()`` only when it is not -1.  The QR runs in float32 (float64
    for float64 outputs) and the result is cast, so float16 and bfloat16 work.

    Args:
      gain: multiplicative factor (default 1.0).
      seed: int, None, SeedGenerator or Stream.
      column_axis: the axis of the columns (default -1, keyword-only).

    >>> import numpy as np, weightinit as wi
    >>> q = wi.Orthogonal(seed=0)((4, 4))
    >>> bool(np.allclose(q.T @ q, np.eye(4), atol=1e-5))
    True
    """

    group = "orthogonal"
    formula = "w = gain * Q, A = QR, A ~ N(0, 1)^(max(r,c) x min(r,c)), Q sign-corrected"
    exact_params = ("gain",)
    elementwise = False

    def __init__(self, gain=1.0, seed=None, *, column_axis=-1) -> None:
        real_number("gain", gain)
        if isinstance(column_axis, bool) or not isinstance(column_axis, (int, np.integer)):
            raise value_error("column_axis", column_axis, "must be an int")
        self.gain = gain
        self.column_axis = int(column_axis)
        super().__init__(seed)

    def _check_dtype(self, dtype):
        return require_float(dtype, "Orthogonal")

    def _check_shape(self, shape):
        if len(shape) < 2:
            raise peer_error(
                InitializerValueError,
                "The tensor to initialize must be at least two-dimensional",
                "shape",
                shape,
                shown=f"{shape!r} of rank {len(shape)}",
            )
        if not -len(shape) <= self.column_axis < len(shape):
            raise value_error("column_axis", self.column_axis, f"is out of range for shape {shape}")

    def _sample(self, shape, dtype, region, stream):
        ax = self.column_axis % len(shape)
        rows, cols = math.prod(shape) // max(1, shape[ax]), shape[ax]
        if rows * cols == 0:
            return np.zeros(shape, dtype=dtype)
        ct = compute_dtype(dtype)
        q = orthogonal_matrix(rows, cols, stream, ct)
        q *= ct.type(self.gain)
        if ax != len(shape) - 1:
            q = np.moveaxis(q.reshape(shape[:ax] + shape[ax + 1 :] + (cols,)), -1, ax)
        return np.ascontiguousarray(q.reshape(shape).astype(dtype, copy=False))  # at most one copy

    def get_config(self) -> dict:
        cfg = {**super().get_config(), "gain": self.gain}
        if self.column_axis != -1:
            cfg["column_axis"] = self.column_axis
        return cfg
