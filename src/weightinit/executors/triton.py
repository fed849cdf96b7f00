"""A Triton kernel for the torch executor on CUDA (optional; used when Triton is importable).

One kernel computes docs/random.md for a run of consecutive flat indices with float32
compute, one Philox block (four values) per lane (float16, bfloat16 and float32 outputs): Philox4x32-10 on uint32 (``umulhi``),
the uniform / normal / truncated-normal steps, log and ndtri with IEEE-exact operations
only (``div_rn``, ``sqrt_rn``), compiled with ``enable_fp_fusion=False`` so no
multiply-add is contracted, then the round-to-nearest-even cast and the clip.
float64 outputs and gathered regions use the torch-ops path.
"""

from __future__ import annotations

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
        e = (b >> 23).to(tl.int32) - 127
        m = ((b & 0x7FFFFF) | 0x3F800000).to(tl.float32, bitcast=True)
        big = m > 1.41421356237309504880
        m = tl.where(big, m * 0.5, m)
        e = e + big.to(tl.int32)
        fe = e.to(tl.float32)
        f = m - 1.0
        z = f * f
        y = f * 0.0 + 7.0376836292e-2
        y = y * f
        y = y + -1.1514610310e-1
        y = y * f
        y = y + 1.1676998740e-1
        y = y * f
        y = y + -1.2420140846e-1
        y = y * f
        y = y + 1.4249322787e-1
        y = y * f
        y = y + -1.6668057665e-1
        y = y * f
        y = y + 2.0000714765e-1
        y = y * f
        y = y + -2.4999993993e-1
        y = y * f
        y = y + 3.3333331174e-1
        y = y * f
        y = y * z
        y = y + fe * -2.12194440e-4
        y = y + z * -0.5
        r = f + y
        r = r + fe * 0.693359375
        return r

    @triton.jit
    def _ndtri32(p):
        # Branches are selected before the one correctly rounded division: a/b of the selected
        # operands equals the selected quotient, and -(a/b) == (-a)/b, so the bits are the spec's.
        q = p - 0.5
        r = 0.180625 - q * q
        num = _horner4(r, 3.3871327179e00, 5.0434271938e01, 1.5929113202e02, 5.9109374720e01)
        den = _horner4(r, 1.0, 1.7895169469e01, 7.8757757664e01, 6.7187563600e01)
        neg = q < 0.0
        inner = tl.abs(q) <= 0.425
        t = tl.where(neg, p, 1.0 - p)
        t = tl.where(inner, 0.5, t)
        rr = tl.sqrt_rn(-_log32(t))
        nr = rr - 1.6
        cn = _horner4(nr, 1.4234372777e00, 2.7568153900e00, 1.3067284816e00, 1.7023821103e-01)
        dn = nr * 0.0 + 1.2021132975e-01
        dn = dn * nr
        dn = dn + 7.3700164250e-01
        dn = dn * nr
        dn = dn + 1.0
        fr = rr - 5.0
        en = _horner4(fr, 6.6579051150e00, 3.0812263860e00, 4.2868294337e-01, 1.7337203997e-02)
        fn = fr * 0.0 + 1.2258202635e-02
        fn = fn * fr
        fn = fn + 2.4197894225e-01
        fn = fn * fr
        fn = fn + 1.0
        near = rr <= 5.0
        tn = tl.where(near, cn, en)
        td = tl.where(near, dn, fn)
        tn = tl.where(neg, -tn, tn)
        return tl.div_rn(tl.where(inner, q * num, tn), tl.where(inner, den, td))

    @triton.jit
    def _value(x, c0, c1, c2, c3, c4, c5, KIND: tl.constexpr):
        if KIND == 0:
            u = (x >> 8).to(tl.int32).to(tl.float32) * 5.9604644775390625e-08
            y = u * c0
            y = y + c1
        elif KIND == 1:
            k = ((x >> 1) & 0x3FFFFFFF).to(tl.int32)
            p = (k * 2 + 1).to(tl.float32) * 2.3283064365386963e-10
            z = _ndtri32(p)
            xs = tl.where((x >> 31) != 0, -z, z)
            y = xs * c0
            y = y + c1
        else:
            k = (x >> 9).to(tl.int32)
            u = (k * 2 + 1).to(tl.float32) * 5.9604644775390625e-08
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
        m0 = tl.full((BLOCK,), 0xD2511F53, tl.uint32)
        m1 = tl.full((BLOCK,), 0xCD9E8D57, tl.uint32)
        w0 = tl.full((BLOCK,), 0x9E3779B9, tl.uint32)
        w1 = tl.full((BLOCK,), 0xBB67AE85, tl.uint32)
        key0 = tl.full((BLOCK,), 0, tl.uint32) + k0.to(tl.uint32)
        key1 = tl.full((BLOCK,), 0, tl.uint32) + k1.to(tl.uint32)
        for _ in tl.static_range(10):
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


def launch(flat, plan, key, start: int) -> None:
    """Fill the contiguous 1-D CUDA tensor ``flat`` with flat indices ``start ..`` (float32 compute plans)."""
    c = [float(plan.consts[k]) for k in _CONSTS[plan.kind]] + [0.0] * (6 - len(_CONSTS[plan.kind]))
    clip = plan.clip is not None
    lo, hi = (float(plan.clip[0]), float(plan.clip[1])) if clip else (0.0, 0.0)
    step = 1 << 30
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
