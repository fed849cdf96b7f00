/* Per-value steps of docs/random.md, written once with GCC/Clang vector extensions.
 *
 * This file is included three times by _core.c: for the baseline target, inside an
 * AVX2 target region and inside an AVX-512 one.  The includer defines:
 *   KFN(name)   the function name with a per-target suffix,
 *   KATTR       the function attributes (target, inline policy),
 *   VSQRT8(x)   correctly rounded sqrt of a v8f,
 *   VSQRT4(x)   correctly rounded sqrt of a v4d,
 *   MASK8(m), MASK4(m)  the sign bits of a lane mask as an int (lane 0 in bit 0),
 *   COMPRESS8(v, bits, dst, idx, base), COMPRESS4(...)  store the lanes of v selected
 *               by bits contiguously at dst (8 or 4 slots written) and base + lane at idx.
 *
 * Every operation below is one IEEE-754 operation in the compute precision, in
 * the order of the specification; the file is compiled with -ffp-contract=off,
 * so no multiply-add is fused.  The NumPy reference evaluates both branches of
 * ndtri and selects; here the tail branch runs only for the values that take
 * it, which gives the same value for each.
 */

/* ---------------------------------------------------------------- float32 */

static KATTR inline v8f KFN(sel8)(v8i m, v8f a, v8f b) {
    return (v8f)(((v8i)a & m) | ((v8i)b & ~m));
}

static KATTR inline v8f KFN(log8)(v8f x) {
    const float sqrt2 = (float)1.41421356237309504880, half = 0.5f, one = 1.0f;
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

/* Compute-precision values y of n (a multiple of 8) float32-path values from words w.
 * ndtri runs its central branch on every lane, then the tail branch only on the
 * lanes that need it (gathered through pbuf / tidx); each value gets exactly the
 * operations of the reference. */
static KATTR void KFN(values32)(const core_params *P, const uint32_t *w, size_t n, float *out, float *pbuf,
                                uint32_t *tidx) {
    const float s24 = 0x1p-24f, s32 = 0x1p-32f, half = 0.5f, one = 1.0f;
    if (P->kind == KIND_UNIFORM) {
        const float scale = P->c32[0], offset = P->c32[1];
        for (size_t i = 0; i < n; i += 8) {
            v8u x;
            memcpy(&x, w + i, sizeof x);
            v8f u = __builtin_convertvector((v8i)(x >> 8), v8f) * s24;
            v8f y = u * scale;
            y = y + offset;
            memcpy(out + i, &y, sizeof y);
        }
        return;
    }
    size_t nt = 0;
    for (size_t i = 0; i < n; i += 8) {
        v8u x;
        memcpy(&x, w + i, sizeof x);
        v8f p;
        if (P->kind == KIND_NORMAL) {
            v8i k = (v8i)((x >> 1) & 0x3FFFFFFFu);
            p = __builtin_convertvector(k * 2 + 1, v8f) * s32;
        } else {
            v8i k = (v8i)(x >> 9);
            v8f u = __builtin_convertvector(k * 2 + 1, v8f) * s24;
            p = u * P->c32[0];
            p = p + P->c32[1];
            /* numpy maximum / minimum (p is never NaN here) */
            p = KFN(sel8)(p > P->c32[2], p, splat8(P->c32[2]));
            p = KFN(sel8)(p < P->c32[3], p, splat8(P->c32[3]));
        }
        v8f q = p - half;
        v8f r = P7_CONST1 - q * q;
        v8f num = splat8(P7_A3);
        num = num * r; num = num + P7_A2;
        num = num * r; num = num + P7_A1;
        num = num * r; num = num + P7_A0;
        v8f den = splat8(P7_B2);
        den = den * r; den = den + P7_B1;
        den = den * r; den = den + P7_B0;
        den = den * r; den = den + one;
        v8f central = (q * num) / den;
        memcpy(out + i, &central, sizeof central);
        v8f aq = (v8f)((v8u)q & 0x7FFFFFFFu);
        unsigned bits = (unsigned)MASK8(aq > P7_SPLIT1);
        /* branch-free compaction of the tail lanes' p and positions */
        COMPRESS8(p, bits, pbuf + nt, tidx + nt, (uint32_t)i);
        nt += (size_t)__builtin_popcount(bits);
    }
    for (size_t l = nt; l < ((nt + 7) & ~(size_t)7); l++) pbuf[l] = 0.25f; /* padding lanes */
    for (size_t j = 0; j < nt; j += 8) {
        v8f p;
        memcpy(&p, pbuf + j, sizeof p);
        v8f z = KFN(ndtri_tail8)(p);
        size_t m = nt - j < 8 ? nt - j : 8;
        for (size_t l = 0; l < m; l++) out[tidx[j + l]] = z[l];
    }
    if (P->kind == KIND_NORMAL) {
        const float sd = P->c32[0], mu = P->c32[1];
        for (size_t i = 0; i < n; i += 8) {
            v8u x;
            v8f z;
            memcpy(&x, w + i, sizeof x);
            memcpy(&z, out + i, sizeof z);
            v8f xs = (v8f)((v8u)z ^ ((x >> 31) << 31)); /* x = -z if s else z */
            v8f y = xs * sd;
            y = y + mu;
            memcpy(out + i, &y, sizeof y);
        }
    } else {
        const float sd = P->c32[4], mu = P->c32[5];
        for (size_t i = 0; i < n; i += 8) {
            v8f z;
            memcpy(&z, out + i, sizeof z);
            v8f y = z * sd;
            y = y + mu;
            memcpy(out + i, &y, sizeof y);
        }
    }
}

/* Cast to the output dtype, clip, and store n values (float32 compute path). */
static KATTR void KFN(finish32)(const core_params *P, const float *v, size_t n, void *dst) {
    size_t i = 0;
    if (P->otype == OUT_F32) {
        float *o = (float *)dst;
        if (!P->has_clip) {
            memcpy(o, v, n * sizeof(float));
            return;
        }
        const float lo = P->lo32, hi = P->hi32;
        for (; i + 8 <= n; i += 8) {
            v8f y;
            memcpy(&y, v + i, sizeof y);
            v8i nan = y != y;
            y = KFN(sel8)((y > lo) | nan, y, splat8(lo));
            y = KFN(sel8)((y < hi) | nan, y, splat8(hi));
            memcpy(o + i, &y, sizeof y);
        }
        for (; i < n; i++) {
            float y = v[i];
            y = (y > lo || y != y) ? y : lo;
            y = (y < hi || y != y) ? y : hi;
            o[i] = y;
        }
        return;
    }
    uint16_t *o = (uint16_t *)dst;
    if (P->otype == OUT_BF16) {
        for (; i + 8 <= n; i += 8) {
            v8f y;
            memcpy(&y, v + i, sizeof y);
            v8u b = (v8u)y;
            v8i nan = y != y;
            v8u r = (b + 0x7FFFu + ((b >> 16) & 1u)) >> 16;
            r = (v8u)(((v8i)r & ~nan) | ((v8i)(((b >> 16) & 0x8000u) | 0x7FC0u) & nan));
            if (P->has_clip) {
                v8f c = (v8f)(r << 16);
                v8i below = ~((c > P->lo32) | nan), above = ~((c < P->hi32) | nan);
                r = (v8u)(((v8i)r & ~below) | ((v8i)(r * 0u + P->lo16) & below));
                r = (v8u)(((v8i)r & ~above) | ((v8i)(r * 0u + P->hi16) & above));
            }
            v8us h = __builtin_convertvector(r, v8us);
            memcpy(o + i, &h, sizeof h);
        }
    }
    for (; i < n; i++) {
        uint16_t h = P->otype == OUT_BF16 ? f32_to_bf16(v[i]) : f32_to_f16(v[i]);
        if (P->has_clip) {
            float c = P->otype == OUT_BF16 ? bf16_to_f32(h) : f16_to_f32(h);
            if (!(c > P->lo32 || c != c)) h = P->lo16;
            else if (!(c < P->hi32 || c != c)) h = P->hi16;
        }
        o[i] = h;
    }
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
    const double sqrt2 = 1.41421356237309504880, half = 0.5, one = 1.0, two = 2.0;
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

/* Compute-precision values y of n (a multiple of 4) float64-path values from words w (2 per value). */
static KATTR void KFN(values64)(const core_params *P, const uint32_t *w, size_t n, double *out, double *pbuf,
                                uint32_t *tidx) {
    const double s53 = 0x1p-53, s54 = 0x1p-54, half = 0.5, one = 1.0;
    size_t nt = 0;
    for (size_t i = 0; i < n; i += 4) {
        v4ul x;
        memcpy(&x, w + 2 * i, sizeof x);
        v4ul hi = x & 0xFFFFFFFFull, lo = x >> 32;
        v4d p;
        if (P->kind == KIND_UNIFORM) {
            v4d k = KFN(u2d)(hi) * 0x1p21 + KFN(u2d)(lo >> 11); /* (hi << 21) | (lo >> 11), exactly */
            v4d u = k * s53;
            v4d y = u * P->c64[0];
            y = y + P->c64[1];
            memcpy(out + i, &y, sizeof y);
            continue;
        } else if (P->kind == KIND_NORMAL) {
            /* 2k + 1 with k = ((hi & 0x7FFFFFFF) << 21) | (lo >> 11), exactly */
            v4d k2 = KFN(u2d)(hi & 0x7FFFFFFFull) * 0x1p22 + KFN(u2d)(((lo >> 11) << 1) | 1);
            p = k2 * s54;
        } else {
            /* 2k + 1 with k = (hi << 20) | (lo >> 12), exactly */
            v4d k2 = KFN(u2d)(hi) * 0x1p21 + KFN(u2d)(((lo >> 12) << 1) | 1);
            v4d u = k2 * s53;
            p = u * P->c64[0];
            p = p + P->c64[1];
            p = KFN(sel4)(p > P->c64[2], p, splat4(P->c64[2]));
            p = KFN(sel4)(p < P->c64[3], p, splat4(P->c64[3]));
        }
        v4d q = p - half;
        v4d r = P16_CONST1 - q * q;
        v4d num = splat4(P16_A[7]);
        for (int j = 6; j >= 0; j--) { num = num * r; num = num + P16_A[j]; }
        v4d den = splat4(P16_B[6]);
        for (int j = 5; j >= 0; j--) { den = den * r; den = den + P16_B[j]; }
        den = den * r; den = den + one;
        v4d central = (q * num) / den;
        memcpy(out + i, &central, sizeof central);
        v4d aq = (v4d)((v4ul)q & 0x7FFFFFFFFFFFFFFFull);
        unsigned bits = (unsigned)MASK4(aq > P16_SPLIT1);
        COMPRESS4(p, bits, pbuf + nt, tidx + nt, (uint32_t)i);
        nt += (size_t)__builtin_popcount(bits);
    }
    if (P->kind == KIND_UNIFORM) return;
    for (size_t l = nt; l < ((nt + 3) & ~(size_t)3); l++) pbuf[l] = 0.25; /* padding lanes */
    for (size_t j = 0; j < nt; j += 4) {
        v4d p;
        memcpy(&p, pbuf + j, sizeof p);
        v4d z = KFN(ndtri_tail4)(p);
        size_t m = nt - j < 4 ? nt - j : 4;
        for (size_t l = 0; l < m; l++) out[tidx[j + l]] = z[l];
    }
    if (P->kind == KIND_NORMAL) {
        const double sd = P->c64[0], mu = P->c64[1];
        for (size_t i = 0; i < n; i += 4) {
            v4ul x;
            v4d z;
            memcpy(&x, w + 2 * i, sizeof x);
            memcpy(&z, out + i, sizeof z);
            v4d xs = (v4d)((v4ul)z ^ (((x & 0xFFFFFFFFull) >> 31) << 63));
            v4d y = xs * sd;
            y = y + mu;
            memcpy(out + i, &y, sizeof y);
        }
    } else {
        const double sd = P->c64[4], mu = P->c64[5];
        for (size_t i = 0; i < n; i += 4) {
            v4d z;
            memcpy(&z, out + i, sizeof z);
            v4d y = z * sd;
            y = y + mu;
            memcpy(out + i, &y, sizeof y);
        }
    }
}

static KATTR void KFN(finish64)(const core_params *P, const double *v, size_t n, void *dst) {
    double *o = (double *)dst;
    if (!P->has_clip) {
        memcpy(o, v, n * sizeof(double));
        return;
    }
    const double lo = P->lo64, hi = P->hi64;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        v4d y;
        memcpy(&y, v + i, sizeof y);
        v4l nan = y != y;
        y = KFN(sel4)((y > lo) | nan, y, splat4(lo));
        y = KFN(sel4)((y < hi) | nan, y, splat4(hi));
        memcpy(o + i, &y, sizeof y);
    }
    for (; i < n; i++) {
        double y = v[i];
        y = (y > lo || y != y) ? y : lo;
        y = (y < hi || y != y) ? y : hi;
        o[i] = y;
    }
}
