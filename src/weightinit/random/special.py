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

__all__ = ["log32", "log64", "ndtri32", "ndtri64", "ndtr_host", "LOG32", "LOG64", "PPND7", "PPND16"]

# ---------------------------------------------------------------------------
# Constants (facts from Cephes, fdlibm and AS 241).
# ---------------------------------------------------------------------------

LOG32 = {
    "sqrt2": 1.41421356237309504880,
    # Cephes logf polynomial, highest degree first.
    "p": (
        7.0376836292e-2,
        -1.1514610310e-1,
        1.1676998740e-1,
        -1.2420140846e-1,
        1.4249322787e-1,
        -1.6668057665e-1,
        2.0000714765e-1,
        -2.4999993993e-1,
        3.3333331174e-1,
    ),
    "ln2_lo": -2.12194440e-4,
    "ln2_hi": 0.693359375,
}

LOG64 = {
    "sqrt2": 1.41421356237309504880,
    "Lg": (
        6.666666666666735130e-01,
        3.999999999940941908e-01,
        2.857142874366239149e-01,
        2.222219843214978396e-01,
        1.818357216161805012e-01,
        1.531383769920937332e-01,
        1.479819860511658591e-01,
    ),
    "ln2_hi": 6.93147180369123816490e-01,
    "ln2_lo": 1.90821492927058770002e-10,
}

# AS 241 coefficients, lowest degree first.  Denominators have an implicit
# leading coefficient 1 for degree 0.
PPND7 = {
    "split1": 0.425,
    "split2": 5.0,
    "const1": 0.180625,
    "const2": 1.6,
    "a": (3.3871327179e00, 5.0434271938e01, 1.5929113202e02, 5.9109374720e01),
    "b": (1.7895169469e01, 7.8757757664e01, 6.7187563600e01),
    "c": (1.4234372777e00, 2.7568153900e00, 1.3067284816e00, 1.7023821103e-01),
    "d": (7.3700164250e-01, 1.2021132975e-01),
    "e": (6.6579051150e00, 3.0812263860e00, 4.2868294337e-01, 1.7337203997e-02),
    "f": (2.4197894225e-01, 1.2258202635e-02),
}

PPND16 = {
    "split1": 0.425,
    "split2": 5.0,
    "const1": 0.180625,
    "const2": 1.6,
    "a": (
        3.3871328727963666080e0,
        1.3314166789178437745e2,
        1.9715909503065514427e3,
        1.3731693765509461125e4,
        4.5921953931549871457e4,
        6.7265770927008700853e4,
        3.3430575583588128105e4,
        2.5090809287301226727e3,
    ),
    "b": (
        4.2313330701600911252e1,
        6.8718700749205790830e2,
        5.3941960214247511077e3,
        2.1213794301586595867e4,
        3.9307895800092710610e4,
        2.8729085735721942674e4,
        5.2264952788528545610e3,
    ),
    "c": (
        1.42343711074968357734e0,
        4.63033784615654529590e0,
        5.76949722146069140550e0,
        3.64784832476320460504e0,
        1.27045825245236838258e0,
        2.41780725177450611770e-1,
        2.27238449892691845833e-2,
        7.74545014278341407640e-4,
    ),
    "d": (
        2.05319162663775882187e0,
        1.67638483018380384940e0,
        6.89767334985100004550e-1,
        1.48103976427480074590e-1,
        1.51986665636164571966e-2,
        5.47593808499534494600e-4,
        1.05075007164441684324e-9,
    ),
    "e": (
        6.65790464350110377720e0,
        5.46378491116411436990e0,
        1.78482653991729133580e0,
        2.96560571828504891230e-1,
        2.65321895265761230930e-2,
        1.24266094738807843860e-3,
        2.71155556874348757815e-5,
        2.01033439929228813265e-7,
    ),
    "f": (
        5.99832206555887937690e-1,
        1.36929880922735805310e-1,
        1.48753612908506148525e-2,
        7.86869131145613259100e-4,
        1.84631831751005468180e-5,
        1.42151175831644588870e-7,
        2.04426310338993978564e-15,
    ),
}


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
    m, e = _reduce(x, np.uint32, 23, 127, 0x3F800000, f32(LOG32["sqrt2"]))
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
    m, e = _reduce(x, np.uint64, 52, 1023, 0x3FF0000000000000, f64(LOG64["sqrt2"]))
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
