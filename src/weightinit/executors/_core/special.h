/* Special functions of docs/random.md ("Special functions"), per SIMD target: log and the
 * tail branch of ndtri (AS 241) in float32 and float64, plus lane helpers.
 *
 * Included once per target by kernels.h (see there for the macros KFN, KATTR, VSQRT8, ...).
 * Every operation is one IEEE-754 operation in the compute precision, in the order of the
 * NumPy reference (weightinit.random.special); -ffp-contract=off keeps multiply-adds unfused.
 */

/* ---------------------------------------------------------------- float32 */

static KATTR inline v8f KFN(sel8)(v8i m, v8f a, v8f b) {
    return (v8f)(((v8i)a & m) | ((v8i)b & ~m));
}

static KATTR inline v8f KFN(log8)(v8f x) {
    const float sqrt2 = LOG32_SQRT2, half = 0.5f, one = 1.0f;
    v8u b = (v8u)x;
    v8i e = (v8i)(b >> 23) - 127;
    v8f m = (v8f)((b & 0x7FFFFFu) | 0x3F800000u);
    v8i big = m > sqrt2;
    m = KFN(sel8)(big, m * half, m);
    e = e - big; /* big is -1 where true */
    v8f fe = __builtin_convertvector(e, v8f);
    v8f f = m - one;
    v8f z = f * f;
    v8f y = splat8(LOG32_P0);
    y = y * f;
    y = y + LOG32_P1;
    y = y * f;
    y = y + LOG32_P2;
    y = y * f;
    y = y + LOG32_P3;
    y = y * f;
    y = y + LOG32_P4;
    y = y * f;
    y = y + LOG32_P5;
    y = y * f;
    y = y + LOG32_P6;
    y = y * f;
    y = y + LOG32_P7;
    y = y * f;
    y = y + LOG32_P8;
    y = y * f;
    y = y * z;
    y = y + fe * LOG32_LN2LO;
    y = y + z * -0.5f;
    v8f r = f + y;
    r = r + fe * LOG32_LN2HI;
    return r;
}

/* Tail branch of ndtri for p with |p - 0.5| > 0.425. */
static KATTR inline v8f KFN(ndtri_tail8)(v8f p) {
    const float one = 1.0f;
    v8f q = p - 0.5f;
    v8i neg = q < 0.0f;
    v8f t = KFN(sel8)(neg, p, one - p);
    v8f rr = VSQRT8(-KFN(log8)(t));
    v8f nr = rr - P7_CONST2;
    v8f cn = splat8(P7_C3);
    cn = cn * nr; cn = cn + P7_C2;
    cn = cn * nr; cn = cn + P7_C1;
    cn = cn * nr; cn = cn + P7_C0;
    v8f dn = splat8(P7_D1);
    dn = dn * nr; dn = dn + P7_D0;
    dn = dn * nr; dn = dn + one;
    v8f tail = cn / dn;
    v8i far_m = rr > P7_SPLIT2;
    if (MASK8(far_m)) {
        v8f fr = rr - P7_SPLIT2;
        v8f en = splat8(P7_E3);
        en = en * fr; en = en + P7_E2;
        en = en * fr; en = en + P7_E1;
        en = en * fr; en = en + P7_E0;
        v8f fn = splat8(P7_F1);
        fn = fn * fr; fn = fn + P7_F0;
        fn = fn * fr; fn = fn + one;
        tail = KFN(sel8)(far_m, en / fn, tail);
    }
    return KFN(sel8)(neg, -tail, tail);
}

/* ---------------------------------------------------------------- float64 */

static KATTR inline v4d KFN(sel4)(v4l m, v4d a, v4d b) {
    return (v4d)(((v4l)a & m) | ((v4l)b & ~m));
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

