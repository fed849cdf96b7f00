/* Special functions of docs/random.md ("Special functions"), per SIMD target: the float64 log and
 * tail branch of ndtri (AS 241), plus 8-lane helpers (the float32 ones are in normal32.h).
 *
 * Included once per target by kernels.h (see there for the macros KFN, KATTR, VSQRT8, ...).
 * Every operation is one IEEE-754 operation in the compute precision, in the order of the
 * NumPy reference (weightinit.random.special); -ffp-contract=off keeps multiply-adds unfused.
 */

/* ---------------------------------------------------------------- float32 */

/* m ? a : b per lane, for lane masks m from comparisons (all bits set or clear): VBLEND8 is one
 * vblendvps on x86 (which looks at the sign bit only), the and / andnot / or select elsewhere. */
static KATTR inline v8f KFN(sel8)(v8i m, v8f a, v8f b) {
    return VBLEND8(m, a, b);
}

/* max(a, b) and min(a, b) as "a > b ? a : b" and "a < b ? a : b" exactly (with NaN or equal
 * operands: b), which is what vmaxps / vminps compute. */
static KATTR inline v8f KFN(max8)(v8f a, v8f b) {
    return VMAX8(a, b);
}
static KATTR inline v8f KFN(min8)(v8f a, v8f b) {
    return VMIN8(a, b);
}

/* The clip of an output value to [lo, hi] keeping NaN: (y > lo or y is NaN) ? y : lo, then the same
 * against hi.  The mask "y > lo or y is NaN" is the unordered not-less-or-equal comparison
 * !(y <= lo) (lo is never NaN), one vcmpps on x86. */
static KATTR inline v8f KFN(clip8)(v8f y, float lo, float hi) {
    y = KFN(sel8)(VNLE8(y, splat8(lo)), y, splat8(lo));
    return KFN(sel8)(VNGE8(y, splat8(hi)), y, splat8(hi));
}

/* ---------------------------------------------------------------- float64 */

static KATTR inline v4d KFN(sel4)(v4l m, v4d a, v4d b) {
    return VBLEND4(m, a, b);
}
static KATTR inline v4d KFN(max4)(v4d a, v4d b) {
    return VMAX4(a, b);
}
static KATTR inline v4d KFN(min4)(v4d a, v4d b) {
    return VMIN4(a, b);
}
static KATTR inline v4d KFN(clip4)(v4d y, double lo, double hi) {
    y = KFN(sel4)(VNLE4(y, splat4(lo)), y, splat4(lo));
    return KFN(sel4)(VNGE4(y, splat4(hi)), y, splat4(hi));
}

/* Exact conversion of integers below 2**52 held in uint64 lanes. */
static KATTR inline v4d KFN(u2d)(v4ul x) {
    return (v4d)(x | 0x4330000000000000ull) - 0x1p52;
}

static KATTR inline v4d KFN(log4)(v4d x) {
    const double sqrt2 = LOG64_SQRT2, half = 0.5, one = 1.0, two = 2.0;
    v4ul b = (v4ul)x;
    v4l e = (v4l)(b >> 52) - 1023;
    v4d m = (v4d)((b & 0xFFFFFFFFFFFFFull) | 0x3FF0000000000000ull);
    v4l big = m > sqrt2;
    m = KFN(sel4)(big, m * half, m);
    e = e - big;
    /* e is a small integer: exact through the magic-number path (biased to be non-negative). */
    v4d dk = KFN(u2d)((v4ul)(e + 2048)) - 2048.0;
    v4d f = m - one;
    v4d s = f / (f + two);
    v4d z = s * s;
    v4d w = z * z;
    v4d t1 = w * (LG2 + w * (LG4 + w * LG6));
    v4d t2 = z * (LG1 + w * (LG3 + w * (LG5 + w * LG7)));
    v4d R = t2 + t1;
    v4d hfsq = (f * half) * f;
    return dk * LN2_HI - ((hfsq - (s * (hfsq + R) + dk * LN2_LO)) - f);
}

static KATTR inline v4d KFN(ndtri_tail4)(v4d p) {
    const double one = 1.0;
    v4d q = p - 0.5;
    v4l neg = q < 0.0;
    v4d t = KFN(sel4)(neg, p, one - p);
    v4d rr = VSQRT4(-KFN(log4)(t));
    v4d nr = rr - P16_CONST2;
    v4d cn = splat4(P16_C[7]);
    for (int i = 6; i >= 0; i--) { cn = cn * nr; cn = cn + P16_C[i]; }
    v4d dn = splat4(P16_D[6]);
    for (int i = 5; i >= 0; i--) { dn = dn * nr; dn = dn + P16_D[i]; }
    dn = dn * nr; dn = dn + one;
    v4d tail = cn / dn;
    v4l far_m = rr > P16_SPLIT2;
    if (MASK4(far_m)) {
        v4d fr = rr - P16_SPLIT2;
        v4d en = splat4(P16_E[7]);
        for (int i = 6; i >= 0; i--) { en = en * fr; en = en + P16_E[i]; }
        v4d fn = splat4(P16_F[6]);
        for (int i = 5; i >= 0; i--) { fn = fn * fr; fn = fn + P16_F[i]; }
        fn = fn * fr; fn = fn + one;
        tail = KFN(sel4)(far_m, en / fn, tail);
    }
    return KFN(sel4)(neg, -tail, tail);
}

