"""Complex values on the real stream: componentwise sampling and JAX's polar distributions.

A complex tensor of shape ``S`` is the real tensor of shape ``S + (2,)``
(real part at even flat indices, imaginary at odd; docs/random.md section 3),
generated in the matching real dtype (float32 for complex64, float64 for
complex128).  Two kinds of complex distributions exist:

* **componentwise**: a real :class:`Uniform`, :class:`Normal` or
  :class:`TruncatedNormal` applied to both parts (``sample`` does this for any
  real distribution when the dtype is complex).  JAX's complex normal,
  ``(re + 1j*im)/sqrt(2)`` with ``re, im ~ N(0, 1)``, is ``Normal(0, std/sqrt(2))``
  componentwise.
* **polar** (:class:`ComplexDisk`, :class:`ComplexTruncatedNormal`): JAX's
  ``variance_scaling`` samplers for complex dtypes, computed from the two
  uniforms ``u0`` (real slot) and ``u1`` (imaginary slot) of each value by
  inverse-CDF transforms, with no rejection:

  - disk: ``r = scale * sqrt(2 u0)``, ``theta = 2 pi u1``: uniform on the disk
    of radius ``scale*sqrt(2)``, ``E|z|^2 = scale^2``;
  - modulus-truncated normal: ``t = (1 - exp(-upper^2)) u0``,
    ``r = scale * sqrt(-log(1 - t))``, ``theta = 2 pi u1``: a standard complex
    normal (``E|z|^2 = 1``) conditioned on ``|z| < upper``, times ``scale``.

The log is weightinit's reproducible one (docs/random.md section 5); cos and
sin are NumPy's, so polar values are reproducible on the host (adapters
generate them on the host).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from weightinit.common.dtypes import real_dtype_of
from weightinit.common.errors import value_error
from weightinit.common.validate import real_number
from weightinit.random.distributions import Uniform
from weightinit.random.sampling import sample, widen_region
from weightinit.random.special import log32, log64

__all__ = ["ComplexDisk", "ComplexTruncatedNormal", "real_dtype_of", "COMPLEX_TRUNCATED_STD_FACTOR"]

COMPLEX_TRUNCATED_STD_FACTOR = 0.95311164380491208
"""sqrt(E|z|^2) of a standard complex normal truncated to |z| < 2 (JAX's correction)."""

_UNIT = Uniform(0.0, 1.0)


def _positive(name, v) -> float:
    f = real_number(name, v)
    if not (f > 0 and math.isfinite(f)):
        raise value_error(name, v, "must be a positive finite number")
    return f


class _Polar:
    complex_polar = True

    def radius(self, u0: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def draw(self, stream, shape, dtype, region, out=None) -> np.ndarray:
        """``x[region]`` of a complex tensor ``x`` of ``shape`` (``dtype`` complex64/complex128)."""
        dt = np.dtype(dtype)
        if dt.kind != "c":
            raise value_error("dtype", dt.name, f"must be complex64 or complex128 for {type(self).__name__}")
        rdt = real_dtype_of(dt)
        u = sample(_UNIT, stream, tuple(shape) + (2,), rdt, widen_region(region, shape))
        r = self.radius(u[..., 0])
        theta = (rdt.type(2.0 * math.pi) * u[..., 1]).astype(rdt)
        res = np.empty(u.shape[:-1], dtype=dt) if out is None else out
        res.real = r * np.cos(theta)
        res.imag = r * np.sin(theta)
        return res


@dataclass(frozen=True)
class ComplexDisk(_Polar):
    """Uniform on the disk of radius ``scale*sqrt(2)`` (``E|z|^2 = scale**2``), JAX's complex uniform."""

    scale: float = 1.0

    def __post_init__(self):
        object.__setattr__(self, "scale", _positive("scale", self.scale))

    def radius(self, u0):
        c = u0.dtype.type
        return (c(self.scale) * np.sqrt(c(2.0) * u0)).astype(u0.dtype)


@dataclass(frozen=True)
class ComplexTruncatedNormal(_Polar):
    """``scale`` times a standard complex normal conditioned on ``|z| < upper`` (JAX's definition)."""

    scale: float = 1.0
    upper: float = 2.0

    def __post_init__(self):
        object.__setattr__(self, "scale", _positive("scale", self.scale))
        object.__setattr__(self, "upper", _positive("upper", self.upper))

    def radius(self, u0):
        dt = u0.dtype
        c = dt.type
        t = c(-math.expm1(-(self.upper**2))) * u0
        one_minus = (c(1.0) - t).astype(dt)
        log = log32 if dt == np.float32 else log64
        return (c(self.scale) * np.sqrt(np.maximum(-log(one_minus), c(0.0)))).astype(dt)
