"""Distributions and their per-call plans.

A distribution (:class:`Uniform`, :class:`Normal`, :class:`TruncatedNormalDistribution`)
is validated when it is built.  :func:`make_plan` turns it and an output dtype
into a :class:`Plan`: every constant an executor needs, computed once on the
host in float64 and rounded to the compute precision (float32 for
float16/bfloat16/float32/float8 outputs, float64 for float64).  Executors perform
only the per-value steps of docs/random.md ("Distributions") with these
constants, so all the maths lives here, once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from weightinit.common.checks import real_number
from weightinit.common.dtypes import compute_dtype, require_float
from weightinit.common.errors import InitializerValueError, value_error
from weightinit.common.validate import dtype_range
from weightinit.random.float8 import is_float8, to_float8
from weightinit.random.special import ndtr_host

__all__ = [
    "Uniform",
    "Normal",
    "TruncatedNormalDistribution",
    "Plan",
    "make_plan",
    "next_up",
    "next_down",
    "MIN_TRUNCATED_MASS",
]

MIN_TRUNCATED_MASS = 1e-30
"""Smallest normal probability of a truncation interval that float32 sampling resolves."""


def _check_uniform(low, high, names=("low", "high")) -> tuple[float, float]:
    n_lo, n_hi = names
    lo = real_number(n_lo, low)
    hi = real_number(n_hi, high)
    if not lo < hi:
        raise InitializerValueError(
            f"`{n_lo}` must be smaller than `{n_hi}`; received {n_lo}={low!r}, {n_hi}={high!r}. "
            "Swap them, or use Constant for a fixed value."
        )
    if not math.isfinite(hi - lo):
        raise InitializerValueError(
            f"`{n_hi}` - `{n_lo}` must be a finite float64 (the interval's width overflows); received "
            f"{n_lo}={low!r}, {n_hi}={high!r}."
        )
    return lo, hi


def _check_normal(mean, std, names=("mean", "std")) -> tuple[float, float]:
    n_m, n_s = names
    m = real_number(n_m, mean)
    s = real_number(n_s, std)
    if not s >= 0:
        raise value_error(n_s, std, "must be a finite number >= 0")
    return m, s


def _check_truncated(mean, std, lower, upper, names=("mean", "std", "lower", "upper")):
    n_m, n_s, n_lo, n_hi = names
    m, s = _check_normal(mean, std, (n_m, n_s))
    lo = real_number(n_lo, lower, finite=False)
    hi = real_number(n_hi, upper, finite=False)
    if not lo < hi:
        raise InitializerValueError(
            f"`{n_lo}` must be smaller than `{n_hi}`; received {n_lo}={lower!r}, {n_hi}={upper!r}."
        )
    if s == 0:
        if not lo <= m <= hi:
            raise InitializerValueError(
                f"With {n_s}=0 every value is the mean, which lies outside [{n_lo}, {n_hi}]; "
                f"received {n_m}={mean!r}, {n_lo}={lower!r}, {n_hi}={upper!r}."
            )
        return m, s, lo, hi, 0.0, 0.0
    a, b = (lo - m) / s, (hi - m) / s
    if math.isnan(a) or math.isnan(b) or not a < b:
        raise InitializerValueError(
            f"[`{n_lo}`, `{n_hi}`] is narrower than float64 resolves at {n_s}={std!r}; received "
            f"{n_m}={mean!r}, {n_s}={std!r}, {n_lo}={lower!r}, {n_hi}={upper!r}."
        )
    mass = _mass(a, b)
    if not mass >= MIN_TRUNCATED_MASS:
        raise InitializerValueError(
            f"The truncation interval [{n_lo}, {n_hi}] = [{lo!r}, {hi!r}] has normal probability {mass:.3g} < "
            f"{MIN_TRUNCATED_MASS:g} for {n_m}={m!r}, {n_s}={s!r} (it lies {min(abs(a), abs(b)):.1f} "
            f"standard deviations from the mean); it cannot be sampled accurately. "
            f"Move the bounds closer to the mean or increase `{n_s}`; received {n_m}={mean!r}, {n_s}={std!r}, "
            f"{n_lo}={lower!r}, {n_hi}={upper!r}."
        )
    return m, s, lo, hi, a, b


@dataclass(frozen=True)
class Uniform:
    """U[low, high): every value is >= low and < high in the output dtype."""

    low: float
    high: float

    def __post_init__(self):
        lo, hi = _check_uniform(self.low, self.high)
        object.__setattr__(self, "low", lo)
        object.__setattr__(self, "high", hi)

    @classmethod
    def checked(cls, low, high, names: tuple[str, str]) -> Uniform:
        """Build it, with errors naming the arguments as ``names`` (the caller's spelling, e.g. ``("a", "b")``)."""
        return cls(*_check_uniform(low, high, names))


@dataclass(frozen=True)
class Normal:
    """N(mean, std**2), untruncated."""

    mean: float
    std: float

    def __post_init__(self):
        m, s = _check_normal(self.mean, self.std)
        object.__setattr__(self, "mean", m)
        object.__setattr__(self, "std", s)

    @classmethod
    def checked(cls, mean, std, names: tuple[str, str]) -> Normal:
        """Build it, with errors naming the arguments as ``names`` (e.g. ``("mean", "stddev")``)."""
        return cls(*_check_normal(mean, std, names))


@dataclass(frozen=True)
class TruncatedNormalDistribution:
    """N(mean, std**2) conditioned on lower <= x <= upper (absolute bounds; may be infinite).

    The distribution, not an initializer: :class:`weightinit.TruncatedNormal` is Keras'
    initializer (+-2 stddev around the mean), which draws from one of these.
    """

    mean: float
    std: float
    lower: float
    upper: float
    alpha: float = field(init=False, repr=False)
    beta: float = field(init=False, repr=False)

    def __post_init__(self):
        m, s, lo, hi, a, b = _check_truncated(self.mean, self.std, self.lower, self.upper)
        object.__setattr__(self, "mean", m)
        object.__setattr__(self, "std", s)
        object.__setattr__(self, "lower", lo)
        object.__setattr__(self, "upper", hi)
        object.__setattr__(self, "alpha", a)
        object.__setattr__(self, "beta", b)

    @classmethod
    def checked(cls, mean, std, lower, upper, names: tuple[str, str, str, str]) -> TruncatedNormal:
        """Build it, with errors naming the arguments as ``names`` (e.g. ``("mean", "std", "a", "b")``)."""
        m, s, lo, hi, _a, _b = _check_truncated(mean, std, lower, upper, names)
        return cls(m, s, lo, hi)


TruncatedNormal = TruncatedNormalDistribution
"""Short name used inside weightinit; the public name is :class:`TruncatedNormalDistribution`."""


def _mirror(a: float, b: float) -> bool:
    """Sample on the negated interval when its mass lies mostly above the mean (docs/random.md)."""
    total = a + b
    return not math.isnan(total) and total > 0


def _mass(a: float, b: float) -> float:
    if _mirror(a, b):
        a, b = -b, -a
    return ndtr_host(b) - ndtr_host(a)


def next_up(x: np.generic) -> np.generic:
    """The smallest value of x's float dtype greater than x (works for bfloat16)."""
    return _step(x, +1)


def next_down(x: np.generic) -> np.generic:
    """The largest value of x's float dtype smaller than x (works for bfloat16)."""
    return _step(x, -1)


def _step(x, direction: int):
    dt = np.asarray(x).dtype
    ut = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}[dt.itemsize]
    arr = np.array([x], dtype=dt)
    if float(arr[0]) == 0.0:
        bits = np.array([1], dtype=ut)
        v = bits.view(dt)[0]
        return v if direction > 0 else -v
    bits = arr.view(ut)
    if (float(arr[0]) > 0) == (direction > 0):
        bits = bits + ut(1)
    else:
        bits = bits - ut(1)
    return bits.view(dt)[0]


def _nearest(v: float, dt: np.dtype):
    """``v`` rounded to dtype ``dt`` (for 8-bit floats: the stream's rounding, saturating for e4m3fn)."""
    if is_float8(dt):
        return to_float8(np.array([v], dtype=np.float32), dt)[0]
    return np.array([v], dtype=dt)[0]


def _lowest_at_least(v: float, dt: np.dtype):
    """Smallest value of dtype ``dt`` that is >= v (NaN when there is none: float8_e4m3fn above 448)."""
    if math.isinf(v):
        return _nearest(v, dt)
    c = _nearest(v, dt)
    while float(c) < v:
        c = next_up(c)
    return c


def _highest_at_most(v: float, dt: np.dtype, strict: bool = False):
    """Largest value of dtype ``dt`` that is <= v (or < v when strict)."""
    if math.isinf(v):
        return _nearest(v, dt)
    c = _nearest(v, dt)
    while float(c) > v or (strict and float(c) >= v):
        c = next_down(c)
    return c


@dataclass(frozen=True)
class Plan:
    """Everything an executor needs for one call.

    Attributes:
      kind: ``"uniform"``, ``"normal"`` or ``"truncated_normal"``.
      dtype: the output dtype.
      compute: float32 or float64, the precision of the per-value arithmetic.
      words: 32-bit words per value (1 for float32 compute, 2 for float64).
      consts: named constants in the compute dtype (see docs/random.md).
      clip: ``(lo, hi)`` in the output dtype, applied after conversion, or None.
    """

    kind: str
    dtype: np.dtype
    compute: np.dtype
    words: int
    consts: dict
    clip: tuple | None


Z_MAX = {4: 6.24, 8: 8.30}
"""Largest |z| the normal transform reaches, by compute itemsize: ``ndtri(p)`` at the smallest p,
2**-32 in float32 (probability 2**-31 per value for either tail) and 2**-54 in float64."""


def _check_range(dist, dt: np.dtype, ct: np.dtype) -> None:
    """Refuse a distribution whose values (or constants) the output or compute dtype cannot hold.

    A uniform's bounds must lie in the output's range and its width in the compute
    precision's; a normal's values reach ``mean +- Z_MAX * std`` (the largest |z| the
    stream produces), which must lie in the output's range; a truncated normal's
    values lie in the intersection of that with its bounds.  fp8 outputs are checked against
    their finite range like float16 (e4m3fn +-448, e5m2 +-57344): their rounding would otherwise
    saturate (e4m3fn) or give inf (e5m2) silently (docs/random.md section 6.1).
    """
    lo_out, hi_out = dtype_range(dt)
    lo_c, hi_c = dtype_range(ct)
    if isinstance(dist, Uniform):
        lo, hi = dist.low, dist.high
        what = f"U[{lo!r}, {hi!r})"
        width_ok = dist.high - dist.low <= hi_c
    elif isinstance(dist, (Normal, TruncatedNormal)):
        reach = Z_MAX[ct.itemsize] * dist.std
        lo, hi = dist.mean - reach, dist.mean + reach
        what = f"N(mean={dist.mean!r}, std={dist.std!r}) (values reach mean +- {Z_MAX[ct.itemsize]} std)"
        if isinstance(dist, TruncatedNormal):
            lo, hi = max(lo, dist.lower), min(hi, dist.upper)
            what = f"N(mean={dist.mean!r}, std={dist.std!r}) truncated to [{dist.lower!r}, {dist.upper!r}]"
        width_ok = reach <= hi_c
    else:
        return
    if not (lo_out <= lo and hi <= hi_out and width_ok):
        raise InitializerValueError(
            f"`dtype` {dt.name} cannot hold the values of {what}: they span [{lo:.6g}, {hi:.6g}] but {dt.name}'s "
            f"range is [{lo_out:g}, {hi_out:g}] (computed in {ct.name}, range [{lo_c:g}, {hi_c:g}]); "
            f"received dtype={dt.name}. Use a wider dtype or smaller parameters."
        )


NARROW_FACTOR = 2.0**10
"""A float32 truncated normal is computed in float64 when its width (in std units) is below this many
times the float32 path's error in z (docs/random.md section 6)."""


def _narrow_for_float32(a: float, b: float) -> bool:
    """Whether the float32 path's error is too large for the (mirrored) interval [a, b] in std units.

    The float32 path's error in z is about ``eps32 * (Phi(b) / phi(b) + 4 * max(1, |a|, |b|))``: the
    rounding of ``p`` divided by the density (``Phi/phi`` grows with z, so its largest value in the
    interval is at the upper end ``b`` after mirroring), plus the float32 ``ndtri``'s relative error.  The interval is *narrow* when it is narrower
    than ``NARROW_FACTOR`` times that error; then a visible share of its values would be clipped.
    """
    if not (math.isfinite(a) and math.isfinite(b)) or b - a >= 1.0:
        # An interval at least one std wide keeps the float32 path (its bits are those of 0.1): the
        # estimate below is about intervals that are narrow, and it overflows for far-out upper bounds.
        return False
    phi_b = math.exp(-0.5 * b * b) / math.sqrt(2.0 * math.pi)
    err = 2.0**-23 * (ndtr_host(b) / phi_b + 4.0 * max(1.0, abs(a), abs(b)))
    return (b - a) < NARROW_FACTOR * err


def make_plan(dist, dtype) -> Plan:
    """The per-call plan of ``dist`` for output ``dtype`` (a float dtype)."""
    dt = require_float(dtype, f"{type(dist).__name__} sampling")
    ct = compute_dtype(dt)
    c = ct.type
    words = 2 if ct == np.float64 else 1
    _check_range(dist, dt, ct)
    if isinstance(dist, Uniform):
        consts = {"scale": c(dist.high - dist.low), "offset": c(dist.low)}
        lo = _lowest_at_least(dist.low, dt)
        hi = _highest_at_most(dist.high, dt, strict=True)
        if not float(lo) <= float(hi):
            raise InitializerValueError(
                f"No {dt.name} value lies in [minval, maxval) = [{dist.low!r}, {dist.high!r}): `dtype` cannot "
                f"sample it; received dtype={dt.name}. Widen the interval or use a wider dtype."
            )
        return Plan("uniform", dt, ct, words, consts, (lo, hi))
    if isinstance(dist, Normal):
        return Plan("normal", dt, ct, words, {"mean": c(dist.mean), "std": c(dist.std)}, None)
    if isinstance(dist, TruncatedNormalDistribution):
        lo = _lowest_at_least(dist.lower, dt)
        hi = _highest_at_most(dist.upper, dt)
        if not float(lo) <= float(hi):
            raise InitializerValueError(
                f"No {dt.name} value lies in [lower, upper] = [{dist.lower!r}, {dist.upper!r}]: `dtype` cannot "
                f"sample it; received dtype={dt.name}. Widen the interval or use a wider dtype."
            )
        a, b = dist.alpha, dist.beta
        sign = 1.0
        if _mirror(a, b):
            a, b, sign = -b, -a, -1.0
        if ct == np.float32 and _narrow_for_float32(a, b):
            # The float32 inverse CDF cannot resolve this interval within the output's rounding: the same
            # word per value, the arithmetic in float64, rounded once (docs/random.md section 6).
            ct = np.dtype(np.float64)
            c = ct.type
        pa = ndtr_host(a)
        d = ndtr_host(b) - pa
        consts = {
            "pa": c(pa),
            "d": c(d),
            "sstd": c(sign * dist.std),
            "mean": c(dist.mean),
            "pmin": c(np.finfo(ct).tiny),
            "pmax": c(1.0 - np.finfo(ct).epsneg),
        }
        return Plan("truncated_normal", dt, ct, words, consts, (lo, hi))
    raise TypeError(f"unknown distribution {dist!r}")
