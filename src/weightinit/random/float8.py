"""Exact float32 -> 8-bit float rounding, the last step of the stream for fp8 outputs.

Values are computed in float32 as for float16 (docs/random.md) and rounded once, to
nearest with ties to even, to one of the OCP 8-bit formats (OCP "8-bit Floating Point
Specification (OFP8)", 2023; Micikevicius et al., "FP8 formats for deep learning", 2022):

* ``float8_e4m3fn``: 4 exponent bits (bias 7), 3 mantissa bits, no infinities, largest
  finite 448, one NaN pattern per sign.  **Saturating**: a value that rounds beyond 448 in
  magnitude (and +-inf) becomes +-448, as PyTorch's cast and NVIDIA's ``satfinite``
  conversion do (ml_dtypes would give NaN; a NaN weight is never what an initializer means).
* ``float8_e5m2``: 5 exponent bits (bias 15), 2 mantissa bits, IEEE-like: a value that
  rounds beyond 57344 becomes +-inf, as float16 does.

Subnormals are kept (round to nearest even at the subnormal spacing, 2**-9 for e4m3fn and
2**-16 for e5m2); NaN stays NaN.  The rounding is written with integer operations only
(shifts, masks, adds, compares, a select), so every executor that performs them gets the
same bits: :func:`round_bits` takes the array-namespace's ``where`` and works on NumPy,
torch and JAX integer arrays alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import ml_dtypes
import numpy as np

__all__ = ["Float8Format", "FORMATS", "E4M3FN", "E5M2", "round_bits", "to_float8", "is_float8"]


@dataclass(frozen=True)
class Float8Format:
    """An 8-bit float format: ``mant`` mantissa bits, exponent ``bias``, the code a positive overflow gives."""

    name: str
    mant: int
    bias: int
    overflow: int  # code of +overflow: the largest finite value (saturating) or +inf
    nan: int  # code of +NaN
    max: float

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(getattr(ml_dtypes, self.name))


E4M3FN = Float8Format("float8_e4m3fn", mant=3, bias=7, overflow=0x7E, nan=0x7F, max=448.0)
E5M2 = Float8Format("float8_e5m2", mant=2, bias=15, overflow=0x7C, nan=0x7E, max=57344.0)
FORMATS = {f.dtype: f for f in (E4M3FN, E5M2)}


def is_float8(dt) -> bool:
    """Whether ``dt`` is one of the 8-bit float dtypes weightinit generates."""
    return np.dtype(dt) in FORMATS


def round_bits(bits, fmt: Float8Format, where):
    """The 8-bit codes of float32 values given by their bit patterns (non-negative integers < 2**32).

    ``bits`` is an integer array (uint32, or a wider signed type holding uint32 values);
    the result has its dtype.  Steps (normative, docs/random.md "fp8 outputs")::

        s = bits >> 31 << 7;  a = bits & 0x7FFFFFFF;  shift = 23 - mant
        normal (a >= (128 - bias) << 23):  v = a - ((127 - bias) << 23)
                                           r = (v + 2**(shift-1) - 1 + (v >> shift & 1)) >> shift
        below:  sh = 151 - bias - mant - (a >> 23)   (>= 21 here; clamped to [1, 31] elsewhere)  m = a & 0x7FFFFF | 0x800000
                r = (m + 2**(sh-1) - 1 + (m >> sh & 1)) >> sh, or 0 when sh >= 25
        r = min(r, overflow);  NaN (a > 0x7F800000) -> nan;  result s | r
    """
    shift = 23 - fmt.mant
    s = (bits >> 31) << 7
    a = bits & 0x7FFFFFFF
    v = a - ((127 - fmt.bias) << 23)
    normal = (v + ((1 << (shift - 1)) - 1) + ((v >> shift) & 1)) >> shift
    sh = (151 - fmt.bias - fmt.mant) - (a >> 23)
    sh = where(sh > 31, 31, sh)  # lanes of the normal branch: any shift in range will do
    sh = where(sh < 1, 1, sh)
    m = (a & 0x7FFFFF) | 0x800000
    sub = (m + ((1 << (sh - 1)) - 1) + ((m >> sh) & 1)) >> sh
    sub = where(sh >= 25, 0, sub)
    r = where(a >= ((128 - fmt.bias) << 23), normal, sub)
    r = where(r > fmt.overflow, fmt.overflow, r)
    r = where(a > 0x7F800000, fmt.nan, r)
    return s | r


def to_float8(y: np.ndarray, dtype) -> np.ndarray:
    """Round float32 values ``y`` to the 8-bit float ``dtype`` (see the module docstring).

    >>> to_float8(np.array([0.3, 500.0, -1e-9], np.float32), "float8_e4m3fn").astype(np.float32).tolist()
    [0.3125, 448.0, -0.0]
    """
    fmt = FORMATS[np.dtype(dtype)]
    bits = np.ascontiguousarray(y, dtype=np.float32).view(np.uint32)
    return round_bits(bits, fmt, np.where).astype(np.uint8).view(fmt.dtype)
