"""The JAX executor: docs/random.md implemented in ``jax.numpy``, jit-traceable.

:func:`sample` computes ``x[region]`` of a tensor ``x`` drawn from a
distribution under a stream, from the *global* flat indices of the region
only, with the constants of :func:`weightinit.random.distributions.make_plan`
(computed on the host, once).  The per-value steps are the spec's, in its
order of operations, on uint32 and float32 (float64 when ``jax_enable_x64`` is
on) arrays:

* Philox4x32-10 on uint32 arrays; the high half of a 32 x 32-bit product is
  assembled from 16-bit halves, so no 64-bit integers are needed;
* counters from ``iota`` flat indices held as two uint32 words, so flat
  indices beyond 2**32 work without x64;
* the uniform, normal and truncated-normal steps, ``log`` and ``ndtri`` built
  from IEEE basic operations only, then the cast and the clip.

Everything is elementwise in the flat index, so XLA's SPMD partitioner can
split the work and ``jax.make_array_from_callback`` can generate one shard
per device; both give the unsharded bits.

The result equals the NumPy reference bit for bit (tests/executors/test_jax_executor.py):

* no float product feeds an addition directly (:func:`_rmul`), so no compiler can
  contract ``a*b + c`` into an FMA (XLA:CPU does, where it may; the tests check the
  optimized HLO of every distribution);
* off CPU, float32 division and square root are :func:`div32` and :func:`sqrt32`,
  IEEE results built from exact integer steps, because XLA's GPU division is
  ``div.full.f32`` (up to 2 ulp).  On CPU XLA's own are IEEE and are used.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

import jax
from jax import lax
from weightinit.common.errors import InitializerValueError, type_error
from weightinit.common.shapes import RegionPlan, normalize_shape
from weightinit.common.validate import allocation
from weightinit.random.constants import (
    F32_EXP_BIAS,
    F32_MANTISSA_BITS,
    F32_MANTISSA_MASK,
    F32_ONE_BITS,
    F64_EXP_BIAS,
    F64_MANTISSA_BITS,
    F64_MANTISSA_MASK,
    F64_ONE_BITS,
    HALF_NORMAL32_MASK,
    HALF_NORMAL32_SCALE,
    HALF_NORMAL64_HI_MASK,
    HALF_NORMAL64_SCALE,
    LOG32,
    LOG64,
    OPEN32_SHIFT,
    OPEN64_HI_SHIFT,
    OPEN64_LO_SHIFT,
    PPND7,
    PPND16,
    U32_SCALE,
    U32_SHIFT,
    U64_HI_SHIFT,
    U64_LO_SHIFT,
    U64_SCALE,
)
from weightinit.random.constants import PHILOX_M0 as M0
from weightinit.random.constants import PHILOX_M1 as M1
from weightinit.random.constants import PHILOX_ROUNDS as ROUNDS
from weightinit.random.constants import PHILOX_W0 as W0
from weightinit.random.constants import PHILOX_W1 as W1
from weightinit.random.distributions import Plan, make_plan
from weightinit.random.float8 import FORMATS as _FP8_FORMATS
from weightinit.random.float8 import round_bits as _fp8_round_bits
from weightinit.random.orthogonal import STANDARD_NORMAL, gaussian_shape, qr_signs
from weightinit.random.streams import Stream

__all__ = ["sample", "sample_plan", "philox4x32", "key_words", "flat_index_words", "orthogonal_matrix"]

_U32 = jnp.uint32


def _u32(v: int):
    return np.uint32(int(v) & 0xFFFFFFFF)


def _mulhilo(a, m: int):
    """``(hi, lo)`` of the 64-bit product of uint32 array ``a`` and constant ``m``."""
    m_lo, m_hi = _u32(m & 0xFFFF), _u32(m >> 16)
    a_lo = a & _u32(0xFFFF)
    a_hi = a >> _u32(16)
    ll = a_lo * m_lo
    lh = a_lo * m_hi
    hl = a_hi * m_lo
    hh = a_hi * m_hi
    cross = (ll >> _u32(16)) + (lh & _u32(0xFFFF)) + hl  # < 2**32, no overflow
    hi = hh + (lh >> _u32(16)) + (cross >> _u32(16))
    return hi, a * _u32(m)


def philox4x32(c0, c1, c2, c3, k0, k1):
    """Philox4x32-10 on broadcastable uint32 arrays (docs/random.md section 1); returns four words."""
    c0, c1, c2, c3 = (jnp.asarray(c, _U32) for c in (c0, c1, c2, c3))
    k0 = jnp.asarray(k0, _U32)
    k1 = jnp.asarray(k1, _U32)
    for r in range(ROUNDS):
        if r:
            k0 = k0 + _u32(W0)
            k1 = k1 + _u32(W1)
        hi0, lo0 = _mulhilo(c0, M0)
        hi1, lo1 = _mulhilo(c2, M1)
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
    return c0, c1, c2, c3


def key_words(key):
    """The stream key as two uint32 scalars: from a Stream, a pair of ints or a (2,) uint32 array."""
    if isinstance(key, Stream):
        k = key.key
        return jnp.asarray(_u32(k[0])), jnp.asarray(_u32(k[1]))
    if isinstance(key, tuple) and len(key) == 2 and all(isinstance(k, (int, np.integer)) for k in key):
        return jnp.asarray(_u32(key[0])), jnp.asarray(_u32(key[1]))
    arr = jnp.asarray(key)
    if arr.shape != (2,) or arr.dtype != jnp.uint32:
        raise type_error(
            "key",
            key,
            "must be a weightinit.Stream or a (2,) uint32 array of stream key words",
            "Map a JAX PRNG key with weightinit.jax.stream_key(key).",
        )
    return arr[0], arr[1]


# ---------------------------------------------------------------------------
# Flat indices as (hi, lo) uint32 words.
# ---------------------------------------------------------------------------


def _add64(a, b):
    hi_a, lo_a = a
    hi_b, lo_b = b
    lo = lo_a + lo_b
    carry = (lo < lo_a).astype(_U32)
    return hi_a + hi_b + carry, lo


def _axis_offsets(pos, start: int, step: int, stride: int):
    """64-bit ``(start + pos*step) * stride`` for uint32 positions ``pos`` along one axis."""
    base = start * stride
    inc = abs(step * stride)
    inc_lo, inc_hi = inc & 0xFFFFFFFF, (inc >> 32) & 0xFFFFFFFF
    hi, lo = _mulhilo(pos, inc_lo) if inc_lo else (jnp.zeros_like(pos), jnp.zeros_like(pos))
    if inc_hi:
        hi = hi + pos * _u32(inc_hi)
    b_hi, b_lo = _u32(base >> 32), _u32(base)
    if step * stride >= 0:
        return _add64((jnp.full_like(pos, b_hi), jnp.full_like(pos, b_lo)), (hi, lo))
    # base - pos*inc: two's complement subtraction on 64 bits.
    borrow = (b_lo < lo).astype(_U32)
    return b_hi - hi - borrow, b_lo - lo


def flat_index_words(shape, region=None):
    """The global row-major flat index of every element of ``x[region]`` as ``(hi, lo)`` uint32 arrays."""
    rp = RegionPlan(normalize_shape(shape), region)
    out_shape = rp.out_shape
    hi = jnp.zeros(out_shape, _U32)
    lo = jnp.zeros(out_shape, _U32)
    for d, (start, _stop, step) in enumerate(rp.ranges):
        pos = lax.broadcasted_iota(_U32, out_shape, d)
        hi, lo = _add64((hi, lo), _axis_offsets(pos, start, step, rp.strides[d]))
    return hi, lo


# ---------------------------------------------------------------------------
# Words for values.
# ---------------------------------------------------------------------------


def _select_lane(words, lane, per_block: int, nwords: int):
    out = []
    for w in range(nwords):
        v = words[w]
        for b in range(1, per_block):
            v = jnp.where(lane == b, words[b * nwords + w], v)
        out.append(v)
    return out


def _words_elementwise(k0, k1, shape, region, nwords: int):
    """Each value's words from its own block: fully elementwise (any region)."""
    hi, lo = flat_index_words(shape, region)
    sh = 2 if nwords == 1 else 1  # log2(values per block)
    j_lo = (lo >> _u32(sh)) | (hi << _u32(32 - sh))
    j_hi = hi >> _u32(sh)
    z = jnp.zeros_like(lo)
    words = philox4x32(j_lo, j_hi, z, z, k0, k1)
    lane = lo & _u32((1 << sh) - 1)
    return _select_lane(words, lane, 1 << sh, nwords)


def _words_blocked(k0, k1, shape, region, nwords: int):
    """Values in whole blocks along the last axis: one Philox call per block (needs alignment).

    Returns the words as ``per_block`` lists (one per position in the block) of arrays of the
    blocked shape, and a function that interleaves per-position arrays into the output shape.
    """
    per_block = 4 // nwords
    rp = RegionPlan(shape, region)
    out_shape = rp.out_shape
    bshape = out_shape[:-1] + (out_shape[-1] // per_block,)
    ranges = list(rp.ranges)
    s, _e, _st = ranges[-1]
    # Block b of the last axis starts at element start + b*per_block: its block index is
    # (flat of row start + start) / per_block + b.
    blk_ranges = [*ranges[:-1], (s // per_block, s // per_block + bshape[-1], 1)]
    bstrides = [st // per_block for st in rp.strides[:-1]] + [1]
    hi = jnp.zeros(bshape, _U32)
    lo = jnp.zeros(bshape, _U32)
    for d, (start, _stop, step) in enumerate(blk_ranges):
        pos = lax.broadcasted_iota(_U32, bshape, d)
        hi, lo = _add64((hi, lo), _axis_offsets(pos, start, step, bstrides[d]))
    z = jnp.zeros_like(lo)
    words = philox4x32(lo, hi, z, z, k0, k1)
    lanes = [[words[b * nwords + w] for w in range(nwords)] for b in range(per_block)]
    return lanes, lambda parts: jnp.stack(parts, axis=-1).reshape(out_shape)


def _aligned(shape, region, per_block: int) -> bool:
    if not shape or shape[-1] % per_block:
        return False
    rp = RegionPlan(shape, region)
    start, _stop, step = rp.ranges[-1]
    n = rp.out_shape[-1]
    return step == 1 and start % per_block == 0 and n % per_block == 0 and n > 0


# ---------------------------------------------------------------------------
# Special functions (docs/random.md section 5), no FMA, the spec's order.
# ---------------------------------------------------------------------------


def _rmul(a, b):
    """``a * b`` rounded to the dtype, never fused into a following add.

    XLA's CPU backend lets LLVM contract ``a*b + c`` into an FMA (one rounding
    instead of two), which changes the last bit.  The product is routed
    through ``where(|p| > big, a, p)``, the identity for the bounded values the
    stream computes: the add's operand is then a select with no constant arm,
    and the product has several uses, so no FMA is formed.  The tests check
    the bits under ``jax.jit`` on every path.
    """
    p = a * b
    big = np.finfo(p.dtype).max / 4
    return jnp.where(jnp.abs(p) > big, a, p)


# ---------------------------------------------------------------------------
# Correctly rounded float32 division and square root from exact operations.
#
# XLA's GPU backend lowers float32 division to PTX ``div.full.f32`` (LLVM
# ``-nvptx-prec-divf32=1``: up to 2 ulp, ``a / a != 1`` for 16% of ``a``), and a
# square root may be approximate on an accelerator too.  The stream needs the
# IEEE results (docs/random.md section 5), so the two are built here from
# operations every XLA backend computes exactly: integer add, multiply (mod
# 2**32), shift, compare, select and divide, float<->int conversions of exact
# values and bit casts.  The device's own division and square root are used only
# for a first guess of the 24-bit significand, which the integer step corrects
# exactly whenever the guess is within 15 ulp (any device's is within 2-3).
# Tests replace the guess with one that is off by up to 15 ulp and get the same
# bits (tests/executors/test_jax_executor.py).
# ---------------------------------------------------------------------------

_F32_HIDDEN = 1 << F32_MANTISSA_BITS  # 2**23
_GUESS_ULP = 16  # the guess may be off by fewer than this many ulp


def _approx_div(a, b):
    """The device's float32 quotient (a first guess; replaced in tests)."""
    return a / b


def _approx_sqrt(x):
    """The device's float32 square root (a first guess; replaced in tests)."""
    return jnp.sqrt(x)


def _i32(u):
    return lax.bitcast_convert_type(u, jnp.int32)


def _fields32(x):
    """Sign bit, biased exponent (int32) and 24-bit significand (uint32) of float32 ``x``."""
    b = lax.bitcast_convert_type(x, _U32)
    sign = b & _u32(0x80000000)
    e = _i32((b >> _u32(F32_MANTISSA_BITS)) & _u32(0xFF))
    m = (b & _u32(F32_MANTISSA_MASK)) | _u32(_F32_HIDDEN)
    return sign, e, m


def _normal_exp(e):
    return (e >= np.int32(1)) & (e <= np.int32(254))


def _in_one_two(g):
    """A guess of a value known to lie in [1, 2), moved into [1, 2).

    Above 2 a float32 ulp is two significand units, so a guess 15 ulp above a quotient just
    below 2 would be 30 units off; clamped, it is at most as many units off as it was ulp off.
    """
    return jnp.minimum(jnp.maximum(g, np.float32(1.0)), np.float32(2.0 - 2.0**-23))


def _floor_div_near(x, y):
    """``floor(x / y)`` for int32 ``y > 0`` and ``|x / y| < _GUESS_ULP`` (a truncating divide of a positive sum)."""
    off = np.int32(_GUESS_ULP)
    return lax.div(x + off * y, y) - off


def _assemble32(sign, er, sig):
    """float32 with biased exponent ``er`` and significand ``sig`` in [2**23, 2**24] (2**24 carries)."""
    bits = (er << np.int32(F32_MANTISSA_BITS)) + (sig - np.int32(_F32_HIDDEN))
    return lax.bitcast_convert_type(lax.bitcast_convert_type(bits, _U32) | sign, jnp.float32)


def div32(a, b):
    """``a / b`` correctly rounded (IEEE round to nearest even) for float32 arrays, on any device.

    With ``a = A * 2**ea``, ``b = B * 2**eb`` (24-bit significands), ``N = A`` or
    ``2A`` so that ``N / B`` lies in [1, 2): the result's significand is
    ``Q = floor(2**23 N / B + 1/2) = Q0 + floor((D + B) / (2B))`` for any guess
    ``Q0``, where ``D = 2**24 N - 2 Q0 B`` is exact in 32-bit integer arithmetic
    when ``Q0`` is within 15 ulp (``|D| < 2**31``).  A quotient is never a tie.
    Inputs or results outside the normal range (zeros, subnormals, infinities,
    NaNs; quotients below 2**-126 or above 2**126) return the device's quotient.

    >>> import numpy as np
    >>> a = np.float32([3163.328613, 1.0, -7.0]); b = np.float32([3163.328613, 3.0, 0.1])
    >>> bool(np.array_equal(np.asarray(div32(a, b)), a / b))
    True
    """
    a = jnp.asarray(a, jnp.float32)
    b = jnp.asarray(b, jnp.float32)
    sa, ea, ma = _fields32(a)
    sb, eb, mb = _fields32(b)
    low = ma < mb
    n = jnp.where(low, ma << _u32(1), ma)
    guess = _in_one_two(_approx_div(_i32(n).astype(jnp.float32), _i32(mb).astype(jnp.float32)))
    q0 = (guess * np.float32(_F32_HIDDEN)).astype(jnp.int32)  # an integer-valued float: exact
    d = _i32((n << _u32(24)) - ((lax.bitcast_convert_type(q0, _U32) * mb) << _u32(1)))
    bi = _i32(mb)
    q = q0 + _floor_div_near(d + bi, bi + bi)
    er = ea - eb - low.astype(jnp.int32) + np.int32(F32_EXP_BIAS)
    ok = _normal_exp(ea) & _normal_exp(eb) & (er >= np.int32(1)) & (er <= np.int32(253))
    return jnp.where(ok, _assemble32(sa ^ sb, er, q), _approx_div(a, b))


def sqrt32(x):
    """``sqrt(x)`` correctly rounded for float32 arrays, on any device.

    With ``x = M * 2**E`` (24-bit ``M``) and ``k`` in {23, 24} making ``E - k``
    even, ``N = M * 2**k`` lies in [2**46, 2**48) and the result's significand is
    ``R = round(sqrt(N))``.  A guess ``R0`` within 15 ulp gets one Newton step
    in integers, ``R1 = R0 + floor((T0 + R0) / (2 R0))`` with ``T = N - R**2``
    (exact mod 2**32), then the exact test ``-R < T <= R`` moves it by at most
    one.  A square root is never a tie.  Zeros, negatives, subnormals,
    infinities and NaNs return the device's square root.

    >>> import numpy as np
    >>> x = np.float32([2.0, 0.5, 1e-30, 3.4e38])
    >>> bool(np.array_equal(np.asarray(sqrt32(x)), np.sqrt(x)))
    True
    """
    x = jnp.asarray(x, jnp.float32)
    sx, ex, m = _fields32(x)
    e = ex - np.int32(F32_EXP_BIAS + F32_MANTISSA_BITS)  # x = m * 2**e
    odd = (e & np.int32(1)) == np.int32(1)
    k = jnp.where(odd, _u32(23), _u32(24))
    mf = _i32(m).astype(jnp.float32) * jnp.where(odd, np.float32(2.0**-23), np.float32(2.0**-22))  # in [1, 4)
    r0 = (_in_one_two(_approx_sqrt(mf)) * np.float32(_F32_HIDDEN)).astype(jnp.int32)
    n = m << k  # mod 2**32
    t0 = _i32(n - lax.bitcast_convert_type(r0, _U32) * lax.bitcast_convert_type(r0, _U32))
    r1 = r0 + _floor_div_near(t0 + r0, r0 + r0)
    r1u = lax.bitcast_convert_type(r1, _U32)
    t1 = _i32(n - r1u * r1u)
    r = r1 + (t1 > r1).astype(jnp.int32) - (t1 <= -r1).astype(jnp.int32)
    er = ((e - _i32(k)) >> np.int32(1)) + np.int32(F32_MANTISSA_BITS + F32_EXP_BIAS)  # E - k is even
    ok = (sx == _u32(0)) & _normal_exp(ex)
    return jnp.where(ok, _assemble32(sx, er, r), _approx_sqrt(x))


# Platforms whose float32 division and square root are IEEE already (XLA:CPU: the bit tests prove
# it), so the exact constructions above are skipped there; every other platform (cuda, rocm, tpu,
# plugins) gets them.  Tests set this to () to run the constructions on CPU.
_NATIVE_PLATFORMS: tuple[str, ...] = ("cpu",)


def _per_platform(native, exact, *args):
    if not _NATIVE_PLATFORMS:
        return exact(*args)
    return lax.platform_dependent(*args, default=exact, **{p: native for p in _NATIVE_PLATFORMS})


def _native_div(a, b):
    return a / b


def _div(a, b, dt):
    """``a / b`` rounded as IEEE division (float64: XLA emits IEEE division on every backend it runs on)."""
    return _per_platform(_native_div, div32, a, b) if dt == np.float32 else a / b


def _sqrt(x, dt):
    """IEEE ``sqrt(x)`` (float64: as :func:`_div`)."""
    return _per_platform(jnp.sqrt, sqrt32, x) if dt == np.float32 else jnp.sqrt(x)


def _horner(coeffs_low_first, x, dt, leading_one=False):
    cs = [dt(c) for c in coeffs_low_first]
    if leading_one:
        cs = [dt(1.0)] + cs
    acc = jnp.full_like(x, cs[-1])
    for c in reversed(cs[:-1]):
        acc = _rmul(acc, x)
        acc = acc + c
    return acc


def log32(x):
    """log of positive normal float32 values (Cephes logf, docs/random.md section 5)."""
    f32 = np.float32
    b = lax.bitcast_convert_type(x, _U32)
    e = (b >> _u32(F32_MANTISSA_BITS)).astype(jnp.int32) - np.int32(F32_EXP_BIAS)
    m = lax.bitcast_convert_type((b & _u32(F32_MANTISSA_MASK)) | _u32(F32_ONE_BITS), jnp.float32)
    big = m > f32(LOG32["sqrt2"])
    m = jnp.where(big, m * f32(0.5), m)
    e = e + big.astype(jnp.int32)
    fe = e.astype(jnp.float32)
    f = m - f32(1.0)
    z = f * f
    y = _horner(tuple(reversed(LOG32["p"])), f, f32)
    y = y * f
    y = _rmul(y, z)
    y = y + _rmul(f32(LOG32["ln2_lo"]), fe)
    y = y + _rmul(f32(-0.5), z)
    r = f + y
    r = r + _rmul(f32(LOG32["ln2_hi"]), fe)
    return r


def log64(x):
    """log of positive normal float64 values (fdlibm __ieee754_log); needs jax_enable_x64."""
    f64 = np.float64
    u64 = jnp.uint64
    b = lax.bitcast_convert_type(x, u64)
    e = (b >> np.uint64(F64_MANTISSA_BITS)).astype(jnp.int64) - np.int64(F64_EXP_BIAS)
    m = lax.bitcast_convert_type((b & np.uint64(F64_MANTISSA_MASK)) | np.uint64(F64_ONE_BITS), jnp.float64)
    big = m > f64(LOG64["sqrt2"])
    m = jnp.where(big, m * f64(0.5), m)
    e = e + big.astype(jnp.int64)
    dk = e.astype(jnp.float64)
    lg = [f64(c) for c in LOG64["Lg"]]
    f = m - f64(1.0)
    s = f / (f64(2.0) + f)
    z = s * s
    w = z * z
    m_ = _rmul
    t1 = m_(w, lg[1] + m_(w, lg[3] + m_(w, lg[5])))
    t2 = m_(z, lg[0] + m_(w, lg[2] + m_(w, lg[4] + m_(w, lg[6]))))
    r = t2 + t1
    hfsq = m_(m_(f64(0.5), f), f)
    return m_(dk, f64(LOG64["ln2_hi"])) - ((hfsq - (m_(s, hfsq + r) + m_(dk, f64(LOG64["ln2_lo"])))) - f)


def _ndtri(p, coef, dt, log_fn):
    """AS 241 with one division: the chosen branch's numerator and denominator are selected first.

    The quotient of the selected pair is the selected quotient and ``(-a) / b == -(a / b)``, so
    the bits are those of dividing in every branch (docs/random.md section 5), with a third of
    the divisions (each an exact :func:`div32` off CPU).  The last select (``+inf`` for
    ``p >= 1``, the limit; the stream's ``p`` is always below 1) makes it the division's only
    user: XLA does not duplicate a division into two users (``where(sign, -z, z)``, or a
    multiply by 1 it removed), and would then compute the values in a loop of their own, with a
    temporary per value (tests/executors/test_float8.py checks there is none).
    """
    one = dt(1.0)
    half = dt(0.5)
    q = p - half
    r = dt(coef["const1"]) - _rmul(q, q)
    central_num = q * _horner(coef["a"], r, dt)
    central_den = _horner(coef["b"], r, dt, leading_one=True)
    inner = jnp.abs(q) <= dt(coef["split1"])
    t = jnp.where(q < 0, p, one - p)
    t = jnp.where(inner, half, t)
    rr = _sqrt(-log_fn(t), dt)
    near = rr - dt(coef["const2"])
    far = rr - dt(coef["split2"])
    is_near = rr <= dt(coef["split2"])
    tail_num = jnp.where(is_near, _horner(coef["c"], near, dt), _horner(coef["e"], far, dt))
    tail_den = jnp.where(
        is_near, _horner(coef["d"], near, dt, leading_one=True), _horner(coef["f"], far, dt, leading_one=True)
    )
    tail_num = jnp.where(q < 0, -tail_num, tail_num)
    x = _div(jnp.where(inner, central_num, tail_num), jnp.where(inner, central_den, tail_den), dt)
    return jnp.where(p < one, x, dt(np.inf))


def ndtri32(p):
    """Inverse normal CDF in float32 (AS 241 PPND7)."""
    return _ndtri(p, PPND7, np.float32, log32)


def ndtri64(p):
    """Inverse normal CDF in float64 (AS 241 PPND16); needs jax_enable_x64."""
    return _ndtri(p, PPND16, np.float64, log64)


# ---------------------------------------------------------------------------
# Variates and distributions (docs/random.md sections 4 and 6).
# ---------------------------------------------------------------------------


def _k64(hi, lo, hi_shift: int, lo_shift: int):
    u64 = jnp.uint64
    return (hi.astype(u64) << np.uint64(hi_shift)) | (lo.astype(u64) >> np.uint64(lo_shift))


def _values(plan: Plan, w):
    c = plan.consts
    if plan.words == 2:
        hi, lo = w
        if plan.kind == "uniform":
            u = _k64(hi, lo, U64_HI_SHIFT, U64_LO_SHIFT).astype(jnp.int64).astype(jnp.float64) * np.float64(U64_SCALE)
            y = _rmul(u, c["scale"])
            y = _add_const(y, c["offset"])
        elif plan.kind == "normal":
            sign = (hi >> _u32(31)).astype(bool)
            k = _k64(hi & _u32(HALF_NORMAL64_HI_MASK), lo, U64_HI_SHIFT, U64_LO_SHIFT).astype(jnp.int64)
            p = (k * np.int64(2) + np.int64(1)).astype(jnp.float64) * np.float64(HALF_NORMAL64_SCALE)
            z = ndtri64(p)
            x = jnp.where(sign, -z, z)
            y = _rmul(c["std"], x)
            y = _add_const(y, c["mean"])
        else:
            k = _k64(hi, lo, OPEN64_HI_SHIFT, OPEN64_LO_SHIFT).astype(jnp.int64)
            u = (k * np.int64(2) + np.int64(1)).astype(jnp.float64) * np.float64(U64_SCALE)
            y = _truncated(u, c, ndtri64)
    else:
        (x,) = w
        if plan.kind == "uniform":
            u = (x >> _u32(U32_SHIFT)).astype(jnp.int32).astype(jnp.float32) * np.float32(U32_SCALE)
            y = _rmul(u, c["scale"])
            y = _add_const(y, c["offset"])
        elif plan.kind == "normal":
            sign = (x >> _u32(31)).astype(bool)
            k = ((x >> _u32(1)) & _u32(HALF_NORMAL32_MASK)).astype(jnp.int32)
            p = (k * np.int32(2) + np.int32(1)).astype(jnp.float32) * np.float32(HALF_NORMAL32_SCALE)
            z = ndtri32(p)
            xx = jnp.where(sign, -z, z)
            y = _rmul(c["std"], xx)
            y = _add_const(y, c["mean"])
        else:
            k = (x >> _u32(OPEN32_SHIFT)).astype(jnp.int32)
            u = (k * np.int32(2) + np.int32(1)).astype(jnp.float32) * np.float32(U32_SCALE)
            if plan.compute == np.float64:  # a narrow float32 interval: float64 arithmetic (docs/random.md 6)
                y = _truncated(u.astype(jnp.float64), c, ndtri64)
            else:
                y = _truncated(u, c, ndtri32)
    fmt = _FP8_FORMATS.get(plan.dtype)
    if fmt is not None:
        # fp8: clip in float32 (fp8 bounds, monotone rounding: the same as clipping after), then
        # the stream's integer rounding (weightinit.random.float8), fused by XLA into one loop.
        if plan.clip is not None:
            y = jnp.minimum(jnp.maximum(y, np.float32(plan.clip[0])), np.float32(plan.clip[1]))
        codes = _fp8_round_bits(lax.bitcast_convert_type(y, jnp.uint32), fmt, jnp.where)
        return lax.bitcast_convert_type(codes.astype(jnp.uint8), plan.dtype)
    y = y.astype(plan.dtype)
    if plan.clip is not None:
        y = jnp.minimum(jnp.maximum(y, plan.clip[0]), plan.clip[1])
    return y


def _add_const(y, c):
    """``y + c`` with IEEE signed zeros for a host constant ``c``.

    XLA's simplifier rewrites ``y + 0.0`` to ``y``, which keeps ``-0.0`` where
    IEEE addition (and the reference) gives ``+0.0``.  For ``c == +0.0`` the sum
    is ``y`` except that a zero becomes ``+0.0``: a select XLA does not fold.
    ``y + (-0.0)`` is ``y`` exactly, so XLA's rewrite is right there.
    """
    if float(c) == 0.0 and not np.signbit(c):
        return jnp.where(y == 0, jnp.zeros((), y.dtype), y)
    return y + c


def _truncated(u, c, ndtri):
    p = _rmul(u, c["d"])
    p = p + c["pa"]
    p = jnp.minimum(jnp.maximum(p, c["pmin"]), c["pmax"])
    z = ndtri(p)
    y = _rmul(c["sstd"], z)
    return _add_const(y, c["mean"])


def x64_enabled() -> bool:
    """Whether JAX computes in 64 bits here (``jax_enable_x64``, including its context managers)."""
    return jax.dtypes.canonicalize_dtype(np.float64) == np.float64


def _check_x64(plan: Plan) -> None:
    if plan.words == 1 and plan.compute == np.float64 and not x64_enabled():
        raise InitializerValueError(
            f"`dtype` {plan.dtype.name} with this narrow truncation interval is computed in float64 "
            f"(docs/random.md section 6), which needs 64-bit JAX; received dtype={plan.dtype.name} with "
            "jax_enable_x64 off. Enable it with jax.config.update('jax_enable_x64', True), or widen the interval."
        )
    if plan.words == 2 and not x64_enabled():
        raise InitializerValueError(
            f"`dtype` {plan.dtype.name} needs 64-bit JAX; received dtype={plan.dtype.name} with jax_enable_x64 off. "
            "Enable it with jax.config.update('jax_enable_x64', True), or use float32."
        )


def default_device():
    """The device JAX puts new arrays on (``jax_default_device`` when set, else the first device)."""
    dev = getattr(jax.config, "jax_default_device", None)
    return dev if hasattr(dev, "memory_stats") else jax.devices()[0]


def sample_plan(plan: Plan, key, shape, region=None):
    """Values of ``x[region]`` for a :class:`~weightinit.random.distributions.Plan` (see :func:`sample`)."""
    _check_x64(plan)
    shape = normalize_shape(shape)
    rp = RegionPlan(shape, region)
    if rp.size == 0:
        return jnp.zeros(rp.out_shape, plan.dtype)
    # XLA's CPU allocator aborts the process when an allocation fails; accelerators raise an untyped
    # RESOURCE_EXHAUSTED.  Refuse first: the device's free memory, or host memory on CPU.
    allocation(rp.size * 3, plan.dtype, "shape", shape, device=default_device())  # output + two words' temporaries
    k0, k1 = key_words(key)
    if _aligned(shape, region, 4 // plan.words):
        # The values of each position in the block, then interleaved: XLA then fuses the whole
        # computation into the output (interleaving the words first would keep them in a
        # 4-byte-per-value temporary when the per-value computation is large, as a normal's is).
        lanes, interleave = _words_blocked(k0, k1, shape, region, plan.words)
        return interleave([_values(plan, w) for w in lanes])
    return _values(plan, _words_elementwise(k0, k1, shape, region, plan.words))


def sample(dist, key, shape, dtype, region=None):
    """``x[region]`` where ``x`` of ``shape`` is drawn from ``dist`` under ``key``, as a JAX array.

    Args:
      dist: a :class:`weightinit.Uniform`, :class:`weightinit.Normal` or
        :class:`weightinit.TruncatedNormalDistribution` (or a ready Plan).
      key: a :class:`weightinit.Stream` or a (2,) uint32 array of stream key
        words (may be traced).
      shape: the whole tensor's shape (static).
      dtype: float16, bfloat16, float32, float8_e4m3fn, float8_e5m2, or float64 (with ``jax_enable_x64``).
      region: optional tuple of slices; the result is exactly ``x[region]``.

    The values are bitwise those of :func:`weightinit.sample` on CPU.

    >>> import numpy as np, weightinit as wi
    >>> x = sample(wi.Normal(0.0, 1.0), wi.Stream(0), (3, 5), "float32")
    >>> bool(np.array_equal(np.asarray(x), wi.sample(wi.Normal(0.0, 1.0), wi.Stream(0), (3, 5), "float32")))
    True
    """
    plan = dist if isinstance(dist, Plan) else make_plan(dist, dtype)
    return sample_plan(plan, key, shape, region)


def orthogonal_matrix(key, rows: int, cols: int, dtype):
    """A ``(rows, cols)`` jnp matrix with orthonormal columns (rows >= cols) or rows, in-graph.

    The recipe of :mod:`weightinit.random.orthogonal`: ``A`` of
    :func:`~weightinit.random.orthogonal.gaussian_shape` drawn by :func:`sample`
    (bitwise the NumPy core's ``A``), ``jnp.linalg.qr``, the columns of ``Q``
    times :func:`~weightinit.random.orthogonal.qr_signs`, ``Q.T`` for
    ``rows < cols``.  ``key`` is a stream key (:func:`key_words` accepts it);
    ``dtype`` float32 or float64 (the QR's precision).

    >>> import numpy as np
    >>> q = orthogonal_matrix(Stream(0), 3, 5, np.float32)
    >>> bool(np.allclose(q @ q.T, np.eye(3), atol=1e-5))
    True
    """
    a = sample(STANDARD_NORMAL, key, gaussian_shape(rows, cols), dtype)
    q, r = jnp.linalg.qr(a)
    q = q * qr_signs(r, jnp)[None, :]  # explicit broadcast: works under jax_numpy_rank_promotion="raise"
    return q.T if rows < cols else q
