/* The per-value steps of docs/random.md for each distribution (uniform, normal, truncated
 * normal), per SIMD target: words -> compute-precision values.  Included by kernels.h.
 *
 * The NumPy reference evaluates both branches of ndtri and selects; here the central branch
 * runs on every lane and the tail branch (special.h) only on the lanes that take it, gathered
 * through a compaction buffer, which gives each value the same operations.
 */

/* The per-call constants of a float32-path normal or truncated normal (common.h), read once per
 * tile: the compiler cannot keep them in registers across the output stores, which might alias *P. */
static KATTR inline nconst32 KFN(nconst)(const core_params *P, int normal) {
    nconst32 c;
    c.d = P->c32[0], c.pa = P->c32[1], c.pmin = P->c32[2], c.pmax = P->c32[3];
    c.sd = normal ? P->c32[0] : P->c32[4];
    c.mu = normal ? P->c32[1] : P->c32[5];
    c.lo = P->lo32, c.hi = P->hi32;
    return c;
}

/* The probability p of a float32-path normal (kind NORMAL) or truncated-normal value from its word x. */
static KATTR inline v8f KFN(prob32)(const nconst32 *C, v8u x, int normal) {
    if (normal) {
        v8i k = (v8i)((x >> 1) & 0x3FFFFFFFu);
        return __builtin_convertvector(k * 2 + 1, v8f) * 0x1p-32f;
    }
    v8i k = (v8i)(x >> 9);
    v8f u = __builtin_convertvector(k * 2 + 1, v8f) * 0x1p-24f;
    v8f p = u * C->d;
    p = p + C->pa;
    /* numpy maximum / minimum (p is never NaN here) */
    p = KFN(max8)(p, splat8(C->pmin));
    p = KFN(min8)(p, splat8(C->pmax));
    return p;
}

/* y = sigma * x + mu from z = ndtri(p): x = -z where the sign bit of the word is set (normal), or
 * x = z with the signed std sstd (truncated normal), each step one IEEE operation as in the spec. */
static KATTR inline v8f KFN(scale32)(const nconst32 *C, v8f z, v8u x, int normal) {
    if (normal) z = (v8f)((v8u)z ^ ((x >> 31) << 31)); /* x = -z if s else z */
    v8f y = z * C->sd;
    return y + C->mu;
}


/* Pass one of normal32_body on nvec (1 or 2) registers of words at w: the central branch of
 * ndtri on every lane, the finished values y stored at out, and the words and positions of the
 * lanes that take the tail branch appended at xbuf / tidx.  Returns the new count of those.
 * Two registers per step interleave two dependency chains, which the core overlaps. */
static KATTR inline __attribute__((always_inline)) size_t KFN(central32)(const nconst32 *C, const uint32_t *w,
                                                                        float *out, uint32_t *xbuf, uint32_t *tidx,
                                                                        size_t nt, uint32_t i0, int normal,
                                                                        int clip, int nvec) {
    const float half = 0.5f, one = 1.0f;
    v8u x[2];
    v8f q[2], r[2], num[2], den[2];
    UNROLL for (int h = 0; h < nvec; h++) {
        v8u t;
        memcpy(&t, w + 8 * h, sizeof t);
        x[h] = t;
        q[h] = KFN(prob32)(C, t, normal) - half;
    }
    UNROLL for (int h = 0; h < nvec; h++) r[h] = P7_CONST1 - q[h] * q[h];
    UNROLL for (int h = 0; h < nvec; h++) num[h] = splat8(P7_A3), den[h] = splat8(P7_B2);
    UNROLL for (int h = 0; h < nvec; h++) num[h] = num[h] * r[h], den[h] = den[h] * r[h];
    UNROLL for (int h = 0; h < nvec; h++) num[h] = num[h] + P7_A2, den[h] = den[h] + P7_B1;
    UNROLL for (int h = 0; h < nvec; h++) num[h] = num[h] * r[h], den[h] = den[h] * r[h];
    UNROLL for (int h = 0; h < nvec; h++) num[h] = num[h] + P7_A1, den[h] = den[h] + P7_B0;
    UNROLL for (int h = 0; h < nvec; h++) num[h] = num[h] * r[h], den[h] = den[h] * r[h];
    UNROLL for (int h = 0; h < nvec; h++) num[h] = num[h] + P7_A0, den[h] = den[h] + one;
    UNROLL for (int h = 0; h < nvec; h++) {
        v8f y = KFN(scale32)(C, (q[h] * num[h]) / den[h], x[h], normal);
        if (clip) y = KFN(clip8)(y, C->lo, C->hi);
        memcpy(out + 8 * h, &y, sizeof y);
    }
    UNROLL for (int h = 0; h < nvec; h++) {
        v8f aq = (v8f)((v8u)q[h] & 0x7FFFFFFFu);
        unsigned bits = (unsigned)MASK8(aq > P7_SPLIT1);
        /* branch-free compaction of the tail lanes' words and positions */
        COMPRESS8((v8f)x[h], bits, (float *)(xbuf + nt), tidx + nt, i0 + 8u * (uint32_t)h);
        nt += (size_t)__builtin_popcount(bits);
    }
    return nt;
}

/* Normal and truncated-normal values in two passes over the tile.  Pass one (central32) computes
 * every lane through the central branch of ndtri and stores the finished value y; it also gathers
 * the words and positions of the lanes that take the tail branch (|p - 0.5| > 0.425, about one
 * value in seven).  Pass two runs the tail branch on those words only, 8 * TAIL_NH at a time, and
 * overwrites their values.  Each value gets exactly the reference's operations. */
static KATTR inline __attribute__((always_inline)) void KFN(normal32_body)(const core_params *P, const uint32_t *w,
                                                                          size_t n, float *out, uint32_t *xbuf,
                                                                          uint32_t *tidx, int normal, int clip) {
    const nconst32 C = KFN(nconst)(P, normal);
    size_t nt = 0, i = 0;
    for (; i + 16 <= n; i += 16) nt = KFN(central32)(&C, w + i, out + i, xbuf, tidx, nt, (uint32_t)i, normal, clip, 2);
    if (i < n) nt = KFN(central32)(&C, w + i, out + i, xbuf, tidx, nt, (uint32_t)i, normal, clip, 1);
    const size_t step = 8 * TAIL_NH;
    for (size_t l = nt; l < (nt + step - 1) / step * step; l++) xbuf[l] = 0; /* padding lanes: any word is valid */
    for (size_t j = 0; j < nt; j += step) {
        v8u x[TAIL_NH];
        v8f p[TAIL_NH], z[TAIL_NH];
        float ys[8 * TAIL_NH];
        EACH(v8u t; memcpy(&t, xbuf + j + 8 * h, sizeof t); x[h] = t; p[h] = KFN(prob32)(&C, t, normal));
        KFN(ndtri_tailn8)(p, z);
        EACH(v8f y = KFN(scale32)(&C, z[h], x[h], normal); if (clip) y = KFN(clip8)(y, C.lo, C.hi);
             memcpy(ys + 8 * h, &y, sizeof y));
        size_t m = nt - j < step ? nt - j : step;
        for (size_t l = 0; l < m; l++) out[tidx[j + l]] = ys[l];
    }
}

/* Compute-precision values y of n (a multiple of 8) float32-path values from words w
 * (xbuf, tidx: scratch of n + 8 * TAIL_NH words).  clip (float32 outputs with a clip only): the
 * values clipped to [lo32, hi32] as finish32 would, i.e. the finished float32 output. */
static KATTR void KFN(values32)(const core_params *P, const uint32_t *w, size_t n, float *out, uint32_t *xbuf,
                                uint32_t *tidx, int clip) {
    if (P->kind == KIND_UNIFORM) {
        if (clip) {
            const float s24 = 0x1p-24f, scale = P->c32[0], offset = P->c32[1], lo = P->lo32, hi = P->hi32;
            for (size_t i = 0; i < n; i += 8) {
                v8u x;
                memcpy(&x, w + i, sizeof x);
                v8f u = __builtin_convertvector((v8i)(x >> 8), v8f) * s24;
                v8f y = u * scale;
                y = KFN(clip8)(y + offset, lo, hi);
                memcpy(out + i, &y, sizeof y);
            }
            return;
        }
        const float s24 = 0x1p-24f, scale = P->c32[0], offset = P->c32[1];
        for (size_t i = 0; i < n; i += 8) {
            v8u x;
            memcpy(&x, w + i, sizeof x);
            v8f u = __builtin_convertvector((v8i)(x >> 8), v8f) * s24;
            v8f y = u * scale;
            y = y + offset;
            memcpy(out + i, &y, sizeof y);
        }
    } else if (P->kind == KIND_NORMAL) {
        if (clip) KFN(normal32_body)(P, w, n, out, xbuf, tidx, 1, 1);
        else KFN(normal32_body)(P, w, n, out, xbuf, tidx, 1, 0);
    } else if (clip) {
        KFN(normal32_body)(P, w, n, out, xbuf, tidx, 0, 1);
    } else {
        KFN(normal32_body)(P, w, n, out, xbuf, tidx, 0, 0);
    }
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
            p = KFN(max4)(p, splat4(P->c64[2]));
            p = KFN(min4)(p, splat4(P->c64[3]));
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

