"""Sparse initialization in its two definitions: torch's zero fraction, and Martens' fixed fan-in count.

* :class:`Sparse` (torch ``nn.init.sparse_``): N(0, stddev^2), then a fraction
  ``sparsity`` of the outgoing weights of every input unit is zeroed
  (``ceil(sparsity * out)`` per input row of a channels-last ``(in, out)``
  matrix; in torch's ``(out, in)`` layout that is per column).
* :class:`MartensSparse` (Martens, 2010): every output unit keeps exactly
  ``n_nonzero`` non-zero incoming weights, drawn from N(0, stddev^2).

Which positions are zero comes from the stream: each weight gets a float64
uniform key from ``stream.child("sparse_mask")`` and, within each group of
competing positions, the smallest keys are zeroed (torch) or kept (Martens).
Values come from the stream itself, so the non-zero values equal those of
``RandomNormal(0, stddev)`` with the same stream.  Unlike torch (whose
``randperm`` ignores ``generator=``), the result is a pure function of the seed.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from weightinit.common.dtypes import require_float
from weightinit.common.errors import InitializerValueError, value_error
from weightinit.common.validate import real_number
from weightinit.initializers.base import RandomInitializer
from weightinit.initializers.fans import input_size
from weightinit.initializers.names import builtin
from weightinit.random.distributions import Normal, Uniform
from weightinit.random.sampling import sample

__all__ = ["Sparse", "MartensSparse", "MASK_CHILD"]

MASK_CHILD = "sparse_mask"
_UNIT = Uniform(0.0, 1.0)


def _ranks(keys: np.ndarray, axis: int) -> np.ndarray:
    """Rank of each key along ``axis`` (0 = smallest; ties by position)."""
    order = np.argsort(keys, axis=axis, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(
        ranks, order, np.arange(keys.shape[axis]).reshape([-1 if a == axis else 1 for a in range(keys.ndim)]), axis=axis
    )
    return ranks


def _stddev(stddev) -> float:
    s = real_number("stddev", stddev)
    if not (math.isfinite(s) and s >= 0):
        raise value_error("stddev", stddev, "must be a finite number >= 0")
    return s


@builtin()
class Sparse(RandomInitializer):
    """torch ``nn.init.sparse_``: normal weights with a fraction ``sparsity`` of each input unit's weights zeroed.

    Formula: ``w ~ N(0, stddev^2)`` on a 2-D ``(in, out)`` kernel; in each row
    ``w[i, :]``, ``ceil(sparsity * out)`` entries chosen by the stream are set
    to 0.  (torch's ``(out, in)`` layout: that many zeros in each column.)
    Default ``stddev=0.01`` (torch's).  Reference: PyTorch
    ``torch.nn.init.sparse_``, after Martens (2010); see :class:`MartensSparse`
    for the fixed-count definition.

    Args:
      sparsity: fraction of zeros per input unit, in [0, 1].
      stddev: standard deviation of the non-zero values.
      seed: int, None, SeedGenerator or Stream.

    >>> import numpy as np, weightinit as wi
    >>> w = wi.Sparse(0.25, seed=0)((3, 8))
    >>> (w == 0).sum(axis=1).tolist()
    [2, 2, 2]
    """

    group = "sparse"
    formula = "w ~ N(0, stddev^2); ceil(sparsity * out) zeros in each input row w[i, :]"
    elementwise = False

    def __init__(self, sparsity=0.1, stddev=0.01, seed=None) -> None:
        sp = real_number("sparsity", sparsity)
        if not 0.0 <= sp <= 1.0:
            raise value_error("sparsity", sparsity, "must be a number in [0, 1]")
        self._std = _stddev(stddev)
        self.sparsity, self.stddev = sparsity, stddev
        super().__init__(seed)

    def _check_dtype(self, dtype):
        return require_float(dtype, "Sparse")

    def _check_shape(self, shape):
        if len(shape) != 2:
            raise InitializerValueError(
                f"Sparse supports only 2-D kernels (in, out), as torch's sparse_; received shape={shape}."
            )

    def _sample(self, shape, dtype, region, stream):
        w = sample(Normal(0.0, self._std), stream, shape, dtype)
        n_zero = math.ceil(float(self.sparsity) * shape[1])
        if n_zero and w.size:
            keys = sample(_UNIT, stream.child(MASK_CHILD), shape, "float64")
            w[_ranks(keys, axis=1) < n_zero] = 0
        return w

    def get_config(self) -> dict:
        return {**super().get_config(), "sparsity": self.sparsity, "stddev": self.stddev}


@builtin("sparse_count")
class MartensSparse(RandomInitializer):
    """Martens' sparse initialization: each unit has exactly ``n_nonzero`` non-zero incoming weights.

    Formula: the kernel ``(*k, in, out)`` is viewed as ``(fan_in, out)`` with
    ``fan_in = prod(shape[:-1])``; in each column ``j`` (output unit),
    ``min(n_nonzero, fan_in)`` entries chosen by the stream are
    ``N(0, stddev^2)`` and the others are 0.  Defaults ``n_nonzero=15``,
    ``stddev=1`` (unit Gaussian, as the paper).  Reference: Martens, *Deep
    learning via Hessian-free optimization*, ICML 2010, section 5.

    Args:
      n_nonzero: non-zero incoming weights per output unit (positive int).
      stddev: standard deviation of the non-zero values.
      seed: int, None, SeedGenerator or Stream.

    >>> import weightinit as wi
    >>> w = wi.MartensSparse(3, seed=0)((10, 4))
    >>> (w != 0).sum(axis=0).tolist()
    [3, 3, 3, 3]
    """

    group = "sparse"
    formula = "each output unit: n_nonzero incoming weights ~ N(0, stddev^2), the rest 0"
    elementwise = False

    def __init__(self, n_nonzero=15, stddev=1.0, seed=None) -> None:
        if isinstance(n_nonzero, bool) or not isinstance(n_nonzero, numbers.Integral) or n_nonzero < 1:
            raise value_error("n_nonzero", n_nonzero, "must be a positive int")
        self._std = _stddev(stddev)
        self.n_nonzero, self.stddev = int(n_nonzero), stddev
        super().__init__(seed)

    def _check_dtype(self, dtype):
        return require_float(dtype, "MartensSparse")

    def _check_shape(self, shape):
        if len(shape) < 2:
            raise InitializerValueError(
                f"MartensSparse needs a kernel of rank >= 2 (*kernel, in, out); received shape={shape}."
            )

    def _sample(self, shape, dtype, region, stream):
        w = sample(Normal(0.0, self._std), stream, shape, dtype)
        fan_in = input_size(shape)
        if w.size and self.n_nonzero < fan_in:
            keys = sample(_UNIT, stream.child(MASK_CHILD), shape, "float64").reshape(fan_in, shape[-1])
            w.reshape(fan_in, shape[-1])[_ranks(keys, axis=0) >= self.n_nonzero] = 0
        return w

    def get_config(self) -> dict:
        return {**super().get_config(), "n_nonzero": self.n_nonzero, "stddev": self.stddev}
