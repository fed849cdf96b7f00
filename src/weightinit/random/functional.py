"""Functional random sampling (``weightinit.random.normal`` and friends); re-exported by :mod:`weightinit.random`."""

from __future__ import annotations

import numpy as np

from weightinit.common.shapes import normalize_region, normalize_shape
from weightinit.random.distributions import Normal, TruncatedNormalDistribution, Uniform
from weightinit.random.sampling import sample
from weightinit.random.seeds import SeedGenerator, draw_default_seed
from weightinit.random.streams import Stream, check_seed

__all__ = ["normal", "uniform", "truncated_normal", "stream_of"]


def stream_of(seed) -> Stream:
    """The stream one call with ``seed`` uses (advances a SeedGenerator)."""
    if seed is None:
        return Stream(draw_default_seed())
    if isinstance(seed, Stream):
        return seed
    if isinstance(seed, SeedGenerator):
        return seed.next_stream()
    return Stream(check_seed(seed))


def _draw(dist, shape, dtype, seed, region) -> np.ndarray:
    shape = normalize_shape(shape)
    normalize_region(region, shape)
    return sample(dist, stream_of(seed), shape, dtype, region)


def normal(shape, mean=0.0, stddev=1.0, dtype=None, seed=None, *, region=None) -> np.ndarray:
    """Draws from N(mean, stddev**2).

    >>> import weightinit as wi
    >>> wi.random.normal((2,), seed=0).dtype
    dtype('float32')
    """
    return _draw(Normal.checked(mean, stddev, ("mean", "stddev")), shape, dtype, seed, region)


def uniform(shape, minval=0.0, maxval=1.0, dtype=None, seed=None, *, region=None) -> np.ndarray:
    """Draws from U[minval, maxval).

    >>> import weightinit as wi
    >>> bool((wi.random.uniform((100,), seed=0) < 1.0).all())
    True
    """
    return _draw(Uniform.checked(minval, maxval, ("minval", "maxval")), shape, dtype, seed, region)


def truncated_normal(shape, mean=0.0, stddev=1.0, dtype=None, seed=None, *, region=None) -> np.ndarray:
    """Draws from N(mean, stddev**2) truncated to [mean - 2 stddev, mean + 2 stddev] (Keras' definition).

    >>> import weightinit as wi
    >>> bool((abs(wi.random.truncated_normal((1000,), seed=0)) <= 2).all())
    True
    """
    base = Normal.checked(mean, stddev, ("mean", "stddev"))
    m, s = base.mean, base.std
    names = ("mean", "stddev", "mean", "stddev")
    dist = TruncatedNormalDistribution.checked(m, s, m - 2 * s, m + 2 * s, names) if s > 0 else Normal(m, 0.0)
    return _draw(dist, shape, dtype, seed, region)
