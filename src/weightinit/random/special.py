"""Reproducible special functions: log and the inverse normal CDF.

Library ``log`` differs between libm, NumPy's SIMD loops, CUDA and XLA in the
last bits, so a stream that must give the same bits on every executor cannot
call it.  The functions here use only IEEE-754 operations that are correctly
rounded everywhere (``+ - * /``, ``sqrt``, integer and bit operations, and
comparisons), evaluated in a fixed order without fused multiply-add.  Any
executor that performs the same steps in the same precision gets the same
bits.  docs/random.md ("Special functions") is the normative description;
this module is its NumPy reference.

* ``log32`` / ``log64``: argument reduction ``x = m * 2**e`` with
  ``m in [sqrt(1/2), sqrt(2)]``, then Cephes' ``logf`` polynomial (float32) and
  the fdlibm ``__ieee754_log`` polynomial (float64).
* ``ndtri32`` / ``ndtri64``: Wichura's algorithm AS 241 (Applied Statistics,
  1988), PPND7 (about 1e-7 relative error) in float32 and PPND16 (about
  1e-16) in float64.

Host-side constants (``ndtr`` of truncation bounds) are computed once per call
in float64 by :func:`ndtr_host` and rounded; they are inputs to executors, not
part of the per-value arithmetic.
"""

from __future__ import annotations

import math

import numpy as np

from weightinit.random.constants import (
    F32_EXP_BIAS,
    F32_MANTISSA_BITS,
    F32_ONE_BITS,
    F64_EXP_BIAS,
    F64_MANTISSA_BITS,
    F64_ONE_BITS,
    LOG32,
    LOG64,
    PPND7,
    PPND16,
)

__all__ = ["log32", "log64", "ndtri32", "ndtri64", "ndtr_host", "LOG32", "LOG64", "PPND7", "PPND16"]

# The constants (facts from Cephes, fdlibm and AS 241) live in weightinit.random.constants.


def _horner(coeffs_low_first, x, dt, leading_one=False):
    """Evaluate ``sum c_i x**i`` by Horner's rule, highest degree first.

    With ``leading_one`` the polynomial is ``1 + c_0 x + c_1 x**2 + ...``.
    Order of operations (normative): ``acc = c_n; acc = acc * x + c_{n-1}; ...``.
    """
    cs = [dt(c) for c in coeffs_low_first]
    if leading_one:
        cs = [dt(1.0)] + cs
    acc = np.full_like(x, cs[-1])
    for c in reversed(cs[:-1]):
        acc = acc * x
        acc = acc + c
    return acc


def _reduce(x: np.ndarray, bits_dtype, mant_bits: int, bias: int, one_bits: int, sqrt2):
    """Split positive normal floats into ``m * 2**e`` with m in [sqrt(1/2), sqrt(2)]."""
    b = x.view(bits_dtype)
    e = (b >> mant_bits).astype(np.int64) - bias
    mask = (1 << mant_bits) - 1
    m = ((b & bits_dtype(mask)) | bits_dtype(one_bits)).view(x.dtype)
    big = m > sqrt2
    half = x.dtype.type(0.5)
    m = np.where(big, m * half, m)
    e = e + big.astype(np.int64)
    return m, e


def log32(x: np.ndarray) -> np.ndarray:
    """Natural log of positive normal float32 values, bit-reproducible.

    >>> float(log32(np.array([2.0], np.float32))[0])
    0.6931471824645996
    """
    x = np.asarray(x, dtype=np.float32)
    f32 = np.float32
    m, e = _reduce(x, np.uint32, F32_MANTISSA_BITS, F32_EXP_BIAS, F32_ONE_BITS, f32(LOG32["sqrt2"]))
    fe = e.astype(np.float32)
    f = m - f32(1.0)
    z = f * f
    y = _horner(tuple(reversed(LOG32["p"])), f, f32)
    y = y * f
    y = y * z
    y = y + f32(LOG32["ln2_lo"]) * fe
    y = y + f32(-0.5) * z
    r = f + y
    r = r + f32(LOG32["ln2_hi"]) * fe
    return r


def log64(x: np.ndarray) -> np.ndarray:
    """Natural log of positive normal float64 values, bit-reproducible.

    >>> float(log64(np.array([10.0]))[0])
    2.302585092994046
    """
    x = np.asarray(x, dtype=np.float64)
    f64 = np.float64
    m, e = _reduce(x, np.uint64, F64_MANTISSA_BITS, F64_EXP_BIAS, F64_ONE_BITS, f64(LOG64["sqrt2"]))
    dk = e.astype(np.float64)
    lg = [f64(c) for c in LOG64["Lg"]]
    f = m - f64(1.0)
    s = f / (f64(2.0) + f)
    z = s * s
    w = z * z
    t1 = w * (lg[1] + w * (lg[3] + w * lg[5]))
    t2 = z * (lg[0] + w * (lg[2] + w * (lg[4] + w * lg[6])))
    r = t2 + t1
    hfsq = (f64(0.5) * f) * f
    return dk * f64(LOG64["ln2_hi"]) - ((hfsq - (s * (hfsq + r) + dk * f64(LOG64["ln2_lo"]))) - f)


def _ndtri(p: np.ndarray, coef: dict, dt, log_fn) -> np.ndarray:
    p = np.asarray(p, dtype=dt)
    one = dt(1.0)
    half = dt(0.5)
    q = p - half
    with np.errstate(all="ignore"):
        # Central region |q| <= 0.425.
        r = dt(coef["const1"]) - q * q
        num = _horner(coef["a"], r, dt)
        den = _horner(coef["b"], r, dt, leading_one=True)
        central = (q * num) / den
        # Tails: r = sqrt(-log(min(p, 1 - p))).
        t = np.where(q < 0, p, one - p)
        t = np.where(np.abs(q) <= dt(coef["split1"]), half, t)  # keep log's argument valid
        rr = np.sqrt(-log_fn(t))
        near = rr - dt(coef["const2"])
        tail_near = _horner(coef["c"], near, dt) / _horner(coef["d"], near, dt, leading_one=True)
        far = rr - dt(coef["split2"])
        tail_far = _horner(coef["e"], far, dt) / _horner(coef["f"], far, dt, leading_one=True)
        tail = np.where(rr <= dt(coef["split2"]), tail_near, tail_far)
        tail = np.where(q < 0, -tail, tail)
    return np.where(np.abs(q) <= dt(coef["split1"]), central, tail)


def ndtri32(p: np.ndarray) -> np.ndarray:
    """Inverse standard normal CDF in float32 (AS 241 PPND7), for p in (0, 1).

    >>> round(float(ndtri32(np.array([0.975], np.float32))[0]), 5)
    1.95996
    """
    return _ndtri(p, PPND7, np.float32, log32)


def ndtri64(p: np.ndarray) -> np.ndarray:
    """Inverse standard normal CDF in float64 (AS 241 PPND16), for p in (0, 1).

    >>> round(float(ndtri64(np.array([0.975]))[0]), 12)
    1.95996398454
    """
    return _ndtri(p, PPND16, np.float64, log64)


def ndtr_host(x: float) -> float:
    """Standard normal CDF of one float64 value on the host (``erfc``-based, accurate in both tails)."""
    if math.isinf(x):
        return 0.0 if x < 0 else 1.0
    return 0.5 * math.erfc(-x / math.sqrt(2.0))
