/* The per-value steps of docs/random.md for each distribution (uniform, normal, truncated
 * normal), per SIMD target: words -> compute-precision values.  Included by kernels.h.
 *
 * The float32 normals are in normal32.h.  The NumPy reference evaluates both branches of ndtri
 * and selects; here (float64) the central branch runs on every lane and the tail branch
 * (special.h) only on the lanes that take it, gathered through a compaction buffer, which gives
 * each value the same operations.
 */

/* Compute-precision values y of n (a multiple of 8) float32-path values from words w (n <= N32_MAX;
 * xbuf, ybuf: scratch of n + N32_PAD entries).  clip (float32 outputs with a clip only): the values
 * clipped to [lo32, hi32] as finish32 would, i.e. the finished float32 output. */
static KATTR void KFN(values32)(const core_params *P, const uint32_t *w, size_t n, float *out, uint32_t *xbuf,
                                float *ybuf, int clip) {
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
    } else {
        /* the clip as max / min where no bound is a zero (normal32.h, clipw) */
        const int mode = !clip ? 0 : P->lo32 != 0.0f && P->hi32 != 0.0f ? 2 : 1;
        const int normal = P->kind == KIND_NORMAL;
        if (normal && mode == 0) KFN(normal32_body)(P, w, n, out, xbuf, ybuf, 1, 0);
        else if (normal && mode == 1) KFN(normal32_body)(P, w, n, out, xbuf, ybuf, 1, 1);
        else if (normal) KFN(normal32_body)(P, w, n, out, xbuf, ybuf, 1, 2);
        else if (mode == 0) KFN(normal32_body)(P, w, n, out, xbuf, ybuf, 0, 0);
        else if (mode == 1) KFN(normal32_body)(P, w, n, out, xbuf, ybuf, 0, 1);
        else KFN(normal32_body)(P, w, n, out, xbuf, ybuf, 0, 2);
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

