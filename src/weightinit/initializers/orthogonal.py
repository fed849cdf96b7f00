"""Orthogonal initialization: the Q factor of a Gaussian matrix, sign-corrected."""

from __future__ import annotations

import math

import numpy as np

from weightinit.common.checks import real_number
from weightinit.common.dtypes import compute_dtype, require_float
from weightinit.common.errors import InitializerValueError, value_error
from weightinit.initializers.base import RandomInitializer
from weightinit.initializers.names import builtin
from weightinit.random.distributions import Normal
from weightinit.random.sampling import sample

__all__ = ["Orthogonal", "orthogonal_matrix"]

_STD_NORMAL = Normal(0.0, 1.0)


def orthogonal_matrix(rows: int, cols: int, stream, dtype) -> np.ndarray:
    """A (rows, cols) matrix with orthonormal columns (rows >= cols) or rows (rows < cols).

    Draws ``A`` of shape ``(max, min)`` from the stream's standard normals in
    ``dtype`` (float32 or float64), takes the reduced QR ``A = QR`` through
    LAPACK and multiplies each column of ``Q`` by the sign of ``R``'s diagonal
    (Mezzadri, 2007), with sign(0) taken as +1, so ``Q`` is Haar-distributed.

    Memory: ``A`` and ``Q`` (LAPACK needs both); ``A`` is released as soon as
    the QR returns and the sign correction is applied to ``Q`` in place.  For
    ``rows < cols`` the result is the transposed view ``Q.T`` (no copy).
    """
    big, small = max(rows, cols), min(rows, cols)
    a = sample(_STD_NORMAL, stream, (big, small), dtype)
    q, r = np.linalg.qr(a, mode="reduced")
    del a
    q *= np.where(np.diagonal(r) < 0, -1, 1).astype(q.dtype)  # broadcasts over rows, in place
    return q.T if rows < cols else q


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
            raise InitializerValueError(
                "The tensor to initialize must be at least two-dimensional. "
                f"Received: shape={shape} of rank {len(shape)}."
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
