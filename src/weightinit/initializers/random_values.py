"""Keras' plain random initializers: RandomNormal, RandomUniform, TruncatedNormal."""

from __future__ import annotations

from weightinit.common.dtypes import require_float
from weightinit.initializers.base import RandomInitializer
from weightinit.initializers.names import builtin
from weightinit.random.distributions import Normal, TruncatedNormalDistribution, Uniform
from weightinit.random.sampling import sample

__all__ = ["RandomNormal", "RandomUniform", "TruncatedNormal"]


class _DistributionInitializer(RandomInitializer):
    """A random initializer whose values are i.i.d. draws of one distribution."""

    group = "random"
    _dist: Uniform | Normal | TruncatedNormalDistribution

    def _check_dtype(self, dtype):
        return require_float(dtype, type(self).__name__)

    def distribution_for(self, shape):
        """The distribution each value of a weight of ``shape`` is drawn from."""
        return self._dist

    def _sample(self, shape, dtype, region, stream):
        return sample(self.distribution_for(shape), stream, shape, dtype, region)


@builtin("normal")
class RandomNormal(_DistributionInitializer):
    """Normal distribution N(mean, stddev**2).

    Formula: ``w ~ N(mean, stddev**2)``.  Defaults ``mean=0.0``,
    ``stddev=0.05`` (Keras).  ``get("normal")`` is this class with its defaults.

    Args:
      mean: mean of the distribution.
      stddev: standard deviation (finite, >= 0).
      seed: int, None, SeedGenerator or Stream (see the seed rules).

    >>> import weightinit as wi
    >>> w = wi.RandomNormal(stddev=1.0, seed=0)((10000,))
    >>> round(float(w.std()), 1)
    1.0
    """

    formula = "w ~ N(mean, stddev^2)"

    def __init__(self, mean=0.0, stddev=0.05, seed=None) -> None:
        self._dist = Normal.checked(mean, stddev, ("mean", "stddev"))
        self.mean = mean
        self.stddev = stddev
        super().__init__(seed)

    def get_config(self) -> dict:
        return {**super().get_config(), "mean": self.mean, "stddev": self.stddev}


@builtin("uniform")
class RandomUniform(_DistributionInitializer):
    """Uniform distribution on [minval, maxval).

    Formula: ``w ~ U[minval, maxval)``; every value is ``>= minval`` and
    ``< maxval`` in the output dtype.  Defaults ``minval=-0.05``,
    ``maxval=0.05`` (Keras).  ``get("uniform")`` is this class with its defaults.

    Args:
      minval: lower bound (inclusive).
      maxval: upper bound (exclusive); must exceed ``minval``.
      seed: int, None, SeedGenerator or Stream.

    >>> import weightinit as wi
    >>> w = wi.RandomUniform(-1.0, 1.0, seed=0)((1000,))
    >>> bool(w.min() >= -1.0 and w.max() < 1.0)
    True
    """

    formula = "w ~ U[minval, maxval)"

    def __init__(self, minval=-0.05, maxval=0.05, seed=None) -> None:
        self._dist = Uniform.checked(minval, maxval, ("minval", "maxval"))
        self.minval = minval
        self.maxval = maxval
        super().__init__(seed)

    def get_config(self) -> dict:
        return {**super().get_config(), "minval": self.minval, "maxval": self.maxval}


@builtin()
class TruncatedNormal(_DistributionInitializer):
    """Normal distribution truncated to two standard deviations around the mean.

    Formula: ``w ~ N(mean, stddev**2)`` conditioned on
    ``|w - mean| <= 2 stddev``.  This is the exact truncated distribution
    (as Keras' "discard and redraw"), sampled by inverse CDF with a fixed
    number of random bits per value, so its standard deviation is
    ``0.87962566 * stddev``.  Defaults ``mean=0.0``, ``stddev=0.05``.

    Args:
      mean: mean of the untruncated distribution.
      stddev: standard deviation *before* truncation (finite, >= 0).
      seed: int, None, SeedGenerator or Stream.

    >>> import weightinit as wi
    >>> w = wi.TruncatedNormal(stddev=1.0, seed=0)((10000,))
    >>> bool(abs(w).max() <= 2.0)
    True
    """

    formula = "w ~ N(mean, stddev^2) truncated to [mean - 2 stddev, mean + 2 stddev]"

    def __init__(self, mean=0.0, stddev=0.05, seed=None) -> None:
        m, s = Normal.checked(mean, stddev, ("mean", "stddev")).mean, float(stddev)
        self._dist = (
            TruncatedNormalDistribution.checked(m, s, m - 2.0 * s, m + 2.0 * s, ("mean", "stddev", "mean", "stddev"))
            if s > 0
            else Normal(m, 0.0)
        )
        self.mean = mean
        self.stddev = stddev
        super().__init__(seed)

    def get_config(self) -> dict:
        return {**super().get_config(), "mean": self.mean, "stddev": self.stddev}
