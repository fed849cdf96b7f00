"""weightinit for Haiku: a mirror of ``haiku.initializers`` on the weightinit stream.

Every class has the name, argument order, defaults, attributes and call
signature (``init(shape, dtype)``) of its ``haiku.initializers`` counterpart
and subclasses ``hk.initializers.Initializer``, so it drops into any Haiku
module (``hk.Linear(8, w_init=weightinit.haiku.VarianceScaling(2.0))``).
Random values come from the weightinit stream of ``hk.next_rng_key()``
(:func:`weightinit.jax.stream_key`), computed in-graph by the JAX executor, so
they are jit-traceable and the same on every device.

Haiku's semantics are kept, including where they differ from Keras':

* ``VarianceScaling(distribution="normal")`` is *untruncated* (as Haiku 0.0.17
  and later); ``"truncated_normal"`` is truncated at 2 standard deviations and
  corrected by 0.87962566 so the result has standard deviation ``sqrt(scale/n)``.
  ``scale=0`` is allowed (zeros), ``mode`` is case-sensitive.
* Fans: rank 0 -> (1, 1), rank 1 -> (n, n), rank 2 -> ``(in, out)``, rank >= 3
  -> receptive field times the last two dimensions, or with ``fan_in_axes``
  the product of those axes and of the remaining ones (only for rank >= 3).
* ``TruncatedNormal(stddev, mean, lower, upper)``: bounds in standard
  deviations around ``mean``; for complex dtypes the real and imaginary parts
  are each a standard truncated normal (so E|z|**2 is about 1.55 stddev**2, as
  in Haiku).  ``RandomNormal`` with a complex dtype draws a standard complex
  normal (each part variance 1/2).  ``mean`` and ``stddev`` may be complex.
* ``Orthogonal(scale, axis)``: ``shape[axis]`` rows that are orthonormal (or
  columns, when that side is larger).  ``Identity(gain)`` broadcasts an
  identity over leading dimensions and accepts integer dtypes.

Example (inside ``hk.transform``):

>>> import haiku as hk, jax, jax.numpy as jnp
>>> import weightinit.haiku as whk
>>> f = hk.transform(lambda x: hk.Linear(4, w_init=whk.VarianceScaling(2.0, "fan_in", "uniform"))(x))
>>> params = f.init(jax.random.key(0), jnp.ones((1, 3)))
>>> params["linear"]["w"].shape
(3, 4)

Importing this module imports haiku and jax; the core package never does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import jax.numpy as jnp
import numpy as np

import haiku as hk
import jax
from weightinit.common.errors import InitializerValueError
from weightinit.executors.jax import orthogonal_matrix as _orthogonal_matrix
from weightinit.initializers.fans import haiku_fans as _haiku_fans
from weightinit.jax.initializers import _draw, stream_key
from weightinit.random.distributions import Normal, Uniform
from weightinit.random.distributions import TruncatedNormal as _TruncatedNormalDist

if TYPE_CHECKING:
    _Initializer = object
else:
    # Haiku's ``Initializer`` is an alias of ``Callable[[Sequence[int], Any], jax.Array]``; Haiku's own
    # classes subclass it, and so do these (a type checker sees a plain class with ``__call__``).
    _Initializer = hk.initializers.Initializer

__all__ = [
    "Constant",
    "RandomNormal",
    "TruncatedNormal",
    "RandomUniform",
    "VarianceScaling",
    "UniformScaling",
    "Orthogonal",
    "Identity",
    "compute_fans",
]

_TRUNCATED_STD = 0.87962566103423978  # std of N(0, 1) truncated to [-2, 2] (scipy.stats.truncnorm.std(-2, 2))
_STD_NORMAL = Normal(0.0, 1.0)
_STD_COMPLEX_PART = Normal(0.0, 1.0 / math.sqrt(2.0))


def compute_fans(shape: Sequence[int], fan_in_axes: Sequence[int] | None = None) -> tuple[int, int]:
    """Haiku's fans (:func:`weightinit.initializers.fans.haiku_fans`, the one owner of the rule).

    >>> compute_fans((3, 5, 7, 4), fan_in_axes=[0, 1])
    (15, 28)
    >>> compute_fans((1, 2, 3, 4))
    (6, 8)
    """
    return _haiku_fans(shape, fan_in_axes)


def _key():
    return stream_key(hk.next_rng_key())


def _standard_normal(shape, dtype) -> jax.Array:
    dt = np.dtype(jnp.dtype(dtype))
    dists = {False: _STD_NORMAL, True: _STD_COMPLEX_PART}
    return _draw(lambda cplx: dists[cplx], hk.next_rng_key(), tuple(shape), dt, True, "RandomNormal")


class Constant(_Initializer):
    """Every value is ``constant`` (a scalar or an array broadcast to the shape), cast to the dtype.

    >>> Constant([1, 2])((2, 2), jnp.int32).tolist()
    [[1, 2], [1, 2]]
    """

    def __init__(self, constant: float | int | complex | np.ndarray | jax.Array) -> None:
        self.constant = constant

    def __call__(self, shape: Sequence[int], dtype: Any) -> jax.Array:
        return jnp.broadcast_to(jnp.asarray(self.constant), tuple(shape)).astype(dtype)


class RandomNormal(_Initializer):
    """``mean + stddev * z``, ``z`` standard normal (standard complex normal for complex dtypes).

    >>> f = hk.transform(lambda: RandomNormal(2.0)((1000,), jnp.float32))
    >>> round(float(f.apply({}, jax.random.key(0)).std()), 0)
    2.0
    """

    def __init__(self, stddev=1.0, mean=0.0) -> None:
        self.stddev = stddev
        self.mean = mean

    def __call__(self, shape: Sequence[int], dtype) -> jax.Array:
        m = jax.lax.convert_element_type(self.mean, dtype)
        s = jax.lax.convert_element_type(self.stddev, dtype)
        return m + s * _standard_normal(shape, dtype)


class TruncatedNormal(_Initializer):
    """``mean + stddev * t``, ``t`` standard normal truncated to ``[lower, upper]`` (standard deviations).

    No variance correction: the result's standard deviation is below
    ``stddev`` (0.88 ``stddev`` for the default bounds).  Complex dtypes: real
    and imaginary parts are independent truncated normals.  ``lower`` and
    ``upper`` are numbers (Haiku also takes arrays of bounds; weightinit needs
    one interval to keep its fixed-bits inverse-CDF sampling).

    >>> f = hk.transform(lambda: TruncatedNormal(1.0)((1000,), jnp.float32))
    >>> bool(abs(f.apply({}, jax.random.key(0))).max() <= 2.0)
    True
    """

    def __init__(self, stddev=1.0, mean=0.0, lower=-2.0, upper=2.0) -> None:
        for name, v in (("lower", lower), ("upper", upper)):
            if np.ndim(v) != 0:
                raise InitializerValueError(
                    f"`{name}` must be a number; received {name} of shape {np.shape(v)}. weightinit samples one "
                    "truncation interval per initializer."
                )
        self._dist = _TruncatedNormalDist.checked(0.0, 1.0, lower, upper, ("mean", "stddev", "lower", "upper"))
        self.stddev = stddev
        self.mean = mean
        self.lower = lower
        self.upper = upper

    def __call__(self, shape: Sequence[int], dtype: Any) -> jax.Array:
        dt = jnp.dtype(dtype)
        real = jnp.finfo(dt).dtype
        m = jax.lax.convert_element_type(self.mean, dt)
        s = jax.lax.convert_element_type(self.stddev, real)
        cplx = jnp.issubdtype(dt, jnp.complexfloating)
        draw_shape = (2, *shape) if cplx else tuple(shape)
        unscaled = _draw(lambda c: self._dist, hk.next_rng_key(), draw_shape, np.dtype(real), False, "TruncatedNormal")
        if cplx:
            unscaled = jax.lax.complex(unscaled[0], unscaled[1])
        return s * unscaled + m


class RandomUniform(_Initializer):
    """U[minval, maxval) (real dtypes).

    >>> f = hk.transform(lambda: RandomUniform(-1.0, 1.0)((1000,), jnp.float32))
    >>> w = f.apply({}, jax.random.key(0))
    >>> bool(w.min() >= -1 and w.max() < 1)
    True
    """

    def __init__(self, minval=0.0, maxval=1.0) -> None:
        self.minval = minval
        self.maxval = maxval

    def __call__(self, shape: Sequence[int], dtype: Any) -> jax.Array:
        dist = Uniform.checked(self.minval, self.maxval, ("minval", "maxval"))
        return _draw(
            lambda c: dist, hk.next_rng_key(), tuple(shape), np.dtype(jnp.dtype(dtype)), False, "RandomUniform"
        )


class VarianceScaling(_Initializer):
    """Variance ``scale / n`` with ``n`` the fan-in, fan-out or their average (Haiku's rule).

    ``distribution``: ``"truncated_normal"`` (truncated at 2 std and divided by
    0.87962566, so the standard deviation is ``sqrt(scale / n)``), ``"normal"``
    (untruncated) or ``"uniform"`` (U[-sqrt(3 scale / n), sqrt(3 scale / n))).
    Fans from :func:`compute_fans` (``fan_in_axes`` for rank >= 3).
    References: Glorot & Bengio (2010), He et al. (2015).

    >>> f = hk.transform(lambda: VarianceScaling(2.0, "fan_in", "normal")((400, 300), jnp.float32))
    >>> round(float(f.apply({}, jax.random.key(0)).var() * 400), 1)
    2.0
    """

    def __init__(self, scale=1.0, mode="fan_in", distribution="truncated_normal", fan_in_axes=None) -> None:
        if scale < 0.0:
            raise InitializerValueError(f"`scale` must be a positive float. Received scale={scale!r}.")
        if mode not in {"fan_in", "fan_out", "fan_avg"}:
            raise InitializerValueError(
                f"Invalid `mode` argument: {mode!r}. Expected one of 'fan_in', 'fan_out', 'fan_avg'."
            )
        if not isinstance(distribution, str) or distribution.lower() not in {"normal", "truncated_normal", "uniform"}:
            raise InitializerValueError(
                f"Invalid `distribution` argument: {distribution!r}. Expected one of 'normal', 'truncated_normal', "
                "'uniform'."
            )
        self.scale = scale
        self.mode = mode
        self.distribution = distribution.lower()
        self.fan_in_axes = fan_in_axes

    def __call__(self, shape: Sequence[int], dtype: Any) -> jax.Array:
        fan_in, fan_out = compute_fans(shape, self.fan_in_axes)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2.0}[self.mode]
        variance = np.asarray(self.scale, dtype=np.float64) / max(1.0, n)
        if self.distribution == "truncated_normal":
            return TruncatedNormal(stddev=float(np.sqrt(variance)) / _TRUNCATED_STD)(shape, dtype)
        if self.distribution == "normal":
            return RandomNormal(stddev=float(np.sqrt(variance)))(shape, dtype)
        limit = float(np.sqrt(3.0 * variance))
        if limit == 0.0:
            return jnp.zeros(tuple(shape), dtype)
        return RandomUniform(minval=-limit, maxval=limit)(shape, dtype)


class UniformScaling(_Initializer):
    """U[-m, m) with ``m = scale * sqrt(3 / input_size)``, ``input_size`` the product of all but the last dimension.

    >>> f = hk.transform(lambda: UniformScaling(1.0)((300, 10), jnp.float32))
    >>> bool(abs(f.apply({}, jax.random.key(0))).max() < 0.1)
    True
    """

    def __init__(self, scale=1.0) -> None:
        self.scale = scale

    def __call__(self, shape: Sequence[int], dtype: Any) -> jax.Array:
        input_size = math.prod(tuple(shape)[:-1])
        max_val = math.sqrt(3.0 / input_size) * float(self.scale)
        return RandomUniform(-max_val, max_val)(shape, dtype)


class Orthogonal(_Initializer):
    """``scale`` times a Haar-random matrix whose ``shape[axis]`` rows are orthonormal (columns if fewer).

    The other dimensions are flattened; the Q factor of a Gaussian matrix is
    sign-corrected (Mezzadri 2007; sign(0) taken as +1) and computed in float32
    (float64 for float64).  Reference: Saxe et al. (2014).

    >>> f = hk.transform(lambda: Orthogonal()((4, 4), jnp.float32))
    >>> q = f.apply({}, jax.random.key(0))
    >>> bool(jnp.allclose(q @ q.T, jnp.eye(4), atol=1e-5))
    True
    """

    def __init__(self, scale=1.0, axis=-1) -> None:
        self.scale = scale
        self.axis = axis

    def __call__(self, shape: Sequence[int], dtype: Any) -> jax.Array:
        shape = tuple(int(d) for d in shape)
        if len(shape) < 2:
            raise InitializerValueError(f"Orthogonal initializer requires at least a 2D shape. Received shape={shape}.")
        dt = jnp.dtype(dtype)
        axis = self.axis % len(shape)
        n_rows = shape[axis]
        n_cols = math.prod(shape) // n_rows if n_rows else 0
        others = shape[:axis] + shape[axis + 1 :]
        if n_rows * n_cols == 0:
            return jnp.zeros(shape, dt)
        ct = np.float64 if dt == jnp.float64 else np.float32
        q = _orthogonal_matrix(_key(), n_rows, n_cols, np.dtype(ct))
        q = jnp.moveaxis(q.reshape((n_rows, *others)), 0, axis)
        return jax.lax.convert_element_type(self.scale, dt) * q.astype(dt)


class Identity(_Initializer):
    """``gain`` times the identity matrix of the last two dimensions, broadcast over the leading ones.

    Any dtype, integers included.

    >>> Identity(2)((2, 3), jnp.int32).tolist()
    [[2, 0, 0], [0, 2, 0]]
    """

    def __init__(self, gain: float | np.ndarray | jax.Array = 1.0) -> None:
        self.gain = gain

    def __call__(self, shape: Sequence[int], dtype: Any) -> jax.Array:
        shape = tuple(shape)
        if len(shape) < 2:
            raise InitializerValueError(f"Identity initializer requires at least a 2D shape. Received shape={shape}.")
        eye = jnp.broadcast_to(jnp.eye(shape[-2], shape[-1], dtype=dtype), shape)
        return jax.lax.convert_element_type(self.gain, dtype) * eye
