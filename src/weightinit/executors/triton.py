"""A Triton kernel for the torch executor on CUDA (optional; used when Triton is importable).

One kernel computes docs/random.md for a run of consecutive flat indices with float32
compute, one Philox block (four values) per lane (float16, bfloat16 and float32 outputs): Philox4x32-10 on uint32 (``umulhi``),
the uniform / normal / truncated-normal steps, log and ndtri with IEEE-exact operations
only (``div_rn``, ``sqrt_rn``), compiled with ``enable_fp_fusion=False`` so no
multiply-add is contracted, then the round-to-nearest-even cast and the clip.
float64 outputs and gathered regions use the torch-ops path.

Every stream constant comes from its one owner, :mod:`weightinit.random.constants`: a Triton
kernel reads a Python value only as a ``tl.constexpr`` global, so the block below wraps each
owned value once (a constexpr float is a literal to the compiler: rounded to float32 exactly
as the typed literal was).
"""

from __future__ import annotations

from weightinit.random.constants import (
    F32_EXP_BIAS,
    F32_MANTISSA_BITS,
    F32_MANTISSA_MASK,
    F32_ONE_BITS,
    HALF_NORMAL32_MASK,
    HALF_NORMAL32_SCALE,
    LOG32,
    OPEN32_SHIFT,
    PHILOX_M0,
    PHILOX_M1,
    PHILOX_ROUNDS,
    PHILOX_W0,
    PHILOX_W1,
    PPND7,
    U32_SCALE,
    U32_SHIFT,
)

try:
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - Triton is optional; the executor then uses torch ops
    triton = None

__all__ = ["launch", "available"]

BLOCK = 256
_KIND = {"uniform": 0, "normal": 1, "truncated_normal": 2}


def available() -> bool:
    """Whether Triton is importable (the kernel is compiled at its first launch)."""
    return triton is not None


if triton is not None:
    _c = tl.constexpr
    _PH_M0, _PH_M1, _PH_W0, _PH_W1 = _c(PHILOX_M0), _c(PHILOX_M1), _c(PHILOX_W0), _c(PHILOX_W1)
    _PH_ROUNDS = _c(PHILOX_ROUNDS)
    _F32_MANT, _F32_BIAS, _F32_MASK, _F32_ONE = (
        _c(F32_MANTISSA_BITS),
        _c(F32_EXP_BIAS),
        _c(F32_MANTISSA_MASK),
        _c(F32_ONE_BITS),
    )
    _U32_SHIFT, _U32_SCALE, _OPEN32_SHIFT = _c(U32_SHIFT), _c(U32_SCALE), _c(OPEN32_SHIFT)
    _HN32_MASK, _HN32_SCALE = _c(HALF_NORMAL32_MASK), _c(HALF_NORMAL32_SCALE)
    _L32_SQRT2, _L32_LN2LO, _L32_LN2HI = _c(LOG32["sqrt2"]), _c(LOG32["ln2_lo"]), _c(LOG32["ln2_hi"])
    _L32_P0, _L32_P1, _L32_P2, _L32_P3, _L32_P4, _L32_P5, _L32_P6, _L32_P7, _L32_P8 = (_c(v) for v in LOG32["p"])
    _P7_SPLIT1, _P7_SPLIT2 = _c(PPND7["split1"]), _c(PPND7["split2"])
    _P7_CONST1, _P7_CONST2 = _c(PPND7["const1"]), _c(PPND7["const2"])
    _P7_A0, _P7_A1, _P7_A2, _P7_A3 = (_c(v) for v in PPND7["a"])
    _P7_B0, _P7_B1, _P7_B2 = (_c(v) for v in PPND7["b"])
    _P7_C0, _P7_C1, _P7_C2, _P7_C3 = (_c(v) for v in PPND7["c"])
    _P7_D0, _P7_D1 = (_c(v) for v in PPND7["d"])
    _P7_E0, _P7_E1, _P7_E2, _P7_E3 = (_c(v) for v in PPND7["e"])
    _P7_F0, _P7_F1 = (_c(v) for v in PPND7["f"])

    @triton.jit
    def _horner4(x, a0, a1, a2, a3):
        acc = x * 0.0 + a3
        acc = acc * x
        acc = acc + a2
        acc = acc * x
        acc = acc + a1
        acc = acc * x
        acc = acc + a0
        return acc

    @triton.jit
    def _log32(x):
        b = x.to(tl.uint32, bitcast=True)
        e = (b >> _F32_MANT).to(tl.int32) - _F32_BIAS
        m = ((b & _F32_MASK) | _F32_ONE).to(tl.float32, bitcast=True)
        big = m > _L32_SQRT2
        m = tl.where(big, m * 0.5, m)
        e = e + big.to(tl.int32)
        fe = e.to(tl.float32)
        f = m - 1.0
        z = f * f
        y = f * 0.0 + _L32_P0
        y = y * f
        y = y + _L32_P1
        y = y * f
        y = y + _L32_P2
        y = y * f
        y = y + _L32_P3
        y = y * f
        y = y + _L32_P4
        y = y * f
        y = y + _L32_P5
        y = y * f
        y = y + _L32_P6
        y = y * f
        y = y + _L32_P7
        y = y * f
        y = y + _L32_P8
        y = y * f
        y = y * z
        y = y + fe * _L32_LN2LO
        y = y + z * -0.5
        r = f + y
        r = r + fe * _L32_LN2HI
        return r

    @triton.jit
    def _ndtri32(p):
        # Branches are selected before the one correctly rounded division: a/b of the selected
        # operands equals the selected quotient, and -(a/b) == (-a)/b, so the bits are the spec's.
        q = p - 0.5
        r = _P7_CONST1 - q * q
        num = _horner4(r, _P7_A0, _P7_A1, _P7_A2, _P7_A3)
        den = _horner4(r, 1.0, _P7_B0, _P7_B1, _P7_B2)
        neg = q < 0.0
        inner = tl.abs(q) <= _P7_SPLIT1
        t = tl.where(neg, p, 1.0 - p)
        t = tl.where(inner, 0.5, t)
        rr = tl.sqrt_rn(-_log32(t))
        nr = rr - _P7_CONST2
        cn = _horner4(nr, _P7_C0, _P7_C1, _P7_C2, _P7_C3)
        dn = nr * 0.0 + _P7_D1
        dn = dn * nr
        dn = dn + _P7_D0
        dn = dn * nr
        dn = dn + 1.0
        fr = rr - _P7_SPLIT2
        en = _horner4(fr, _P7_E0, _P7_E1, _P7_E2, _P7_E3)
        fn = fr * 0.0 + _P7_F1
        fn = fn * fr
        fn = fn + _P7_F0
        fn = fn * fr
        fn = fn + 1.0
        near = rr <= _P7_SPLIT2
        tn = tl.where(near, cn, en)
        td = tl.where(near, dn, fn)
        tn = tl.where(neg, -tn, tn)
        return tl.div_rn(tl.where(inner, q * num, tn), tl.where(inner, den, td))

    @triton.jit
    def _value(x, c0, c1, c2, c3, c4, c5, KIND: tl.constexpr):
        if KIND == 0:
            u = (x >> _U32_SHIFT).to(tl.int32).to(tl.float32) * _U32_SCALE
            y = u * c0
            y = y + c1
        elif KIND == 1:
            k = ((x >> 1) & _HN32_MASK).to(tl.int32)
            p = (k * 2 + 1).to(tl.float32) * _HN32_SCALE
            z = _ndtri32(p)
            xs = tl.where((x >> 31) != 0, -z, z)
            y = xs * c0
            y = y + c1
        else:
            k = (x >> _OPEN32_SHIFT).to(tl.int32)
            u = (k * 2 + 1).to(tl.float32) * _U32_SCALE
            p = u * c0
            p = p + c1
            p = tl.where(p > c2, p, c2)
            p = tl.where(p < c3, p, c3)
            z = _ndtri32(p)
            y = z * c4
            y = y + c5
        return y

    @triton.jit
    def _cast(y, lo, hi, OUT: tl.constexpr, CLIP: tl.constexpr):
        r = y.to(OUT)
        if CLIP:
            f = r.to(tl.float32)
            nan = f != f
            f = tl.where((f > lo) | nan, f, lo)
            f = tl.where((f < hi) | nan, f, hi)
            r = f.to(OUT)
        return r

    @triton.jit
    def _kernel(out_ptr, n, start, k0, k1, c0, c1, c2, c3, c4, c5, lo, hi,
                KIND: tl.constexpr, CLIP: tl.constexpr, BLOCK: tl.constexpr):  # fmt: skip
        # One Philox block per lane: its four words are values 4j .. 4j + 3.
        pid = tl.program_id(0)
        j = (start >> 2) + (pid * BLOCK + tl.arange(0, BLOCK)).to(tl.int64)
        x0 = (j & 0xFFFFFFFF).to(tl.uint32)
        x1 = (j >> 32).to(tl.uint32)
        x2 = tl.zeros((BLOCK,), tl.uint32)
        x3 = tl.zeros((BLOCK,), tl.uint32)
        m0 = tl.full((BLOCK,), _PH_M0, tl.uint32)
        m1 = tl.full((BLOCK,), _PH_M1, tl.uint32)
        w0 = tl.full((BLOCK,), _PH_W0, tl.uint32)
        w1 = tl.full((BLOCK,), _PH_W1, tl.uint32)
        key0 = tl.full((BLOCK,), 0, tl.uint32) + k0.to(tl.uint32)
        key1 = tl.full((BLOCK,), 0, tl.uint32) + k1.to(tl.uint32)
        for _ in tl.static_range(_PH_ROUNDS):
            hi0 = tl.umulhi(x0, m0)
            lo0 = x0 * m0
            hi1 = tl.umulhi(x2, m1)
            lo1 = x2 * m1
            n0 = hi1 ^ x1 ^ key0
            n2 = hi0 ^ x3 ^ key1
            x0 = n0
            x1 = lo1
            x2 = n2
            x3 = lo0
            key0 = key0 + w0
            key1 = key1 + w1
        out_t = out_ptr.dtype.element_ty
        r0 = _cast(_value(x0, c0, c1, c2, c3, c4, c5, KIND), lo, hi, out_t, CLIP)
        r1 = _cast(_value(x1, c0, c1, c2, c3, c4, c5, KIND), lo, hi, out_t, CLIP)
        r2 = _cast(_value(x2, c0, c1, c2, c3, c4, c5, KIND), lo, hi, out_t, CLIP)
        r3 = _cast(_value(x3, c0, c1, c2, c3, c4, c5, KIND), lo, hi, out_t, CLIP)
        # word order 0, 1, 2, 3 of each block, blocks consecutive: one contiguous store
        r = tl.interleave(tl.interleave(r0, r2), tl.interleave(r1, r3))
        pos = ((start >> 2) + pid.to(tl.int64) * BLOCK) * 4 - start + tl.arange(0, 4 * BLOCK).to(tl.int64)
        tl.store(out_ptr + pos, r, mask=(pos >= 0) & (pos < n))


_CONSTS = {
    "uniform": ("scale", "offset"),
    "normal": ("std", "mean"),
    "truncated_normal": ("d", "pa", "pmin", "pmax", "sstd", "mean"),
}


# Values per launch: the grid's program ids stay far below 2**31 (one program fills 4 * BLOCK values).
LAUNCH_VALUES = 1 << 30


def launch(flat, plan, key, start: int) -> None:
    """Fill the contiguous 1-D CUDA tensor ``flat`` with flat indices ``start ..`` (float32 compute plans)."""
    c = [float(plan.consts[k]) for k in _CONSTS[plan.kind]] + [0.0] * (6 - len(_CONSTS[plan.kind]))
    clip = plan.clip is not None
    lo, hi = (float(plan.clip[0]), float(plan.clip[1])) if clip else (0.0, 0.0)
    step = LAUNCH_VALUES
    for pos in range(0, flat.numel(), step):
        part = flat[pos : pos + step]
        n = part.numel()
        first = start + pos
        nblocks = (first + n - 1) // 4 - first // 4 + 1
        grid = (triton.cdiv(nblocks, BLOCK),)
        _kernel[grid](
            part, n, start + pos, int(key[0]), int(key[1]), *c, lo, hi,
            KIND=_KIND[plan.kind], CLIP=clip, BLOCK=BLOCK, enable_fp_fusion=False,
        )  # fmt: skip
