"""Haiku's initializers beyond Keras' set: batched Identity and UniformScaling."""

from __future__ import annotations

import math

import numpy as np

from weightinit.common.checks import real_number
from weightinit.common.dtypes import require_float, require_numeric
from weightinit.common.errors import InitializerValueError, value_error
from weightinit.common.shapes import RegionPlan
from weightinit.initializers.base import BuiltinInitializer, RandomInitializer
from weightinit.initializers.fans import input_size
from weightinit.initializers.names import builtin
from weightinit.random.distributions import Uniform
from weightinit.random.sampling import sample

__all__ = ["BatchedIdentity", "UniformScaling"]


@builtin("haiku_identity")
class BatchedIdentity(BuiltinInitializer):
    """Identity matrices over leading batch dimensions (Haiku ``hk.initializers.Identity``).

    Formula: ``w[..., i, j] = gain * (i == j)`` for any rank >= 2 (rectangular
    trailing matrices get ones on the main diagonal).  Default ``gain=1``.
    Reference: dm-haiku ``haiku/_src/initializers.py``.

    >>> import weightinit as wi
    >>> wi.BatchedIdentity(2.0)((2, 2, 2)).tolist()
    [[[2.0, 0.0], [0.0, 2.0]], [[2.0, 0.0], [0.0, 2.0]]]
    """

    group = "identity"
    formula = "w[..., i, j] = gain * (i == j)"
    exact_params = ("gain",)

    def __init__(self, gain=1.0) -> None:
        real_number("gain", gain)
        self.gain = gain

    def _check_dtype(self, dtype):
        return require_numeric(dtype, "BatchedIdentity")

    def _check_shape(self, shape):
        if len(shape) < 2:
            raise InitializerValueError(f"BatchedIdentity needs a shape of rank >= 2; received shape={shape}.")

    def _generate(self, shape, dtype, region, stream):
        rp = RegionPlan(shape, region)
        (r0, _, rs), (c0, _, cs) = rp.ranges[-2:]
        rows = r0 + rs * np.arange(rp.out_shape[-2])
        cols = c0 + cs * np.arange(rp.out_shape[-1])
        eye = np.where(rows[:, None] == cols[None, :], np.asarray(self.gain).astype(dtype), np.zeros((), dtype))
        return np.ascontiguousarray(np.broadcast_to(eye.astype(dtype), rp.out_shape))

    def get_config(self) -> dict:
        return {"gain": self.gain}


@builtin("haiku_uniform_scaling")
class UniformScaling(RandomInitializer):
    """Uniform scaling (Haiku ``hk.initializers.UniformScaling``), variance-preserving for linear layers.

    Formula: ``w ~ U[-l, l)``, ``l = scale * sqrt(3 / max(1, prod(shape[:-1])))``
    (all but the last dimension are inputs).  Default ``scale=1``.
    Reference: dm-haiku ``haiku/_src/initializers.py``.

    >>> import weightinit as wi
    >>> w = wi.UniformScaling(seed=0)((300, 10))
    >>> bool(abs(w).max() < 0.1)
    True
    """

    group = "variance scaling"
    formula = "U[-l, l), l = scale * sqrt(3 / prod(shape[:-1]))"

    def __init__(self, scale=1.0, seed=None) -> None:
        s = real_number("scale", scale)
        if s <= 0:
            raise value_error("scale", scale, "must be positive")
        self.scale = scale
        super().__init__(seed)

    def _check_dtype(self, dtype):
        return require_float(dtype, "UniformScaling")

    def distribution_for(self, shape):
        """The distribution each value of a weight of ``shape`` is drawn from."""
        limit = float(self.scale) * math.sqrt(3.0 / max(1, input_size(shape)))
        return Uniform(-limit, limit)

    def _sample(self, shape, dtype, region, stream):
        return sample(self.distribution_for(shape), stream, shape, dtype, region)

    def get_config(self) -> dict:
        return {**super().get_config(), "scale": self.scale}
