/* Float32-path normal and truncated-normal values (docs/random.md: ndtri, AS 241 in float32), per
 * SIMD target, written once for a lane vector of any width.  Included by kernels.h after
 * special.h; besides KFN / KATTR (targets.h), its lane vocabulary comes from lanes.h:
 *   VL                      lanes per vector (8: portable and AVX2, 16: AVX-512),
 *   TAIL_NH                 registers per step of the tail pass,
 *   CNV                     registers per step of the central pass (2 on 16 ymm registers, 4 on
 *                           32 zmm: that many independent chains side by side),
 *   VF, VI, VU              float / int32 / uint32 vectors of VL lanes,
 *   VM                      a lane mask (a v8i of 0 / -1, or an AVX-512 k register),
 *   VSPLAT(c)               c in every lane (a VF),
 *   VSQRTW(x)               correctly rounded sqrt,
 *   VGT(a, b), VLT(a, b)    the ordered comparisons a > b, a < b (false with NaN), as VM,
 *   VNLEW(y, l), VNGEW      "y > l or unordered", "y < h or unordered", as VM,
 *   VSELW(m, a, b)          m ? a : b per lane,
 *   VMAXW(a, b), VMINW      "a > b ? a : b" and "a < b ? a : b" exactly,
 *   VMASKW(m)               a VM as an unsigned (lane 0 in bit 0),
 *   VINCW(m, e)             e + 1 in the lanes of m, e elsewhere (a VI),
 *   VCOMPRESSW(v, bits, dst)  the lanes of v (a VU) selected by bits stored contiguously at dst
 *                           (VL slots written),
 *   VEXPANDW(y, bits, src)  y with the lanes selected by bits replaced, in order, by src[0], ...
 *
 * The NumPy reference evaluates both branches of ndtri and selects; here the central branch runs
 * on every lane and the tail branch only on the lanes that take it, gathered through a compaction
 * buffer and merged back, which gives each value the same operations.  Every step is one IEEE-754
 * float32 operation in the reference's order; -ffp-contract=off keeps products and sums separate.
 * No include guard: included once per target.
 */

/* The tail branch runs on TAIL_NH registers at once (lanes.h): each step below is written for
 * all of them in a row (`EACH`), so their long dependency chains (log, sqrt, division) overlap. */
#ifndef EACH
#define EACH(stmt)                                                                                  \
    do {                                                                                            \
        UNROLL for (int h = 0; h < TAIL_NH; h++) { stmt; }                                          \
    } while (0)
#endif

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

/* The clip of an output value to [lo, hi] keeping NaN: (y > lo or y is NaN) ? y : lo, then the
 * same against hi (as finish32).  clip 1: those two selects.  clip 2, for bounds that are not zero:
 * max(lo, y) = "lo > y ? lo : y", then min(hi, y), one vmaxps / vminps each.  The two agree except
 * where y equals a bound: then the select gives the bound and max / min give y, which has the same
 * bits unless the bound and y are zeros of opposite signs, hence the condition.  (On AVX-512 the
 * select form cost the truncated normal 10% of its time, measured on one Zen 5 core.) */
static KATTR inline VF KFN(clipw)(VF y, float lo, float hi, int clip) {
    if (clip == 2) return VMINW(VSPLAT(hi), VMAXW(VSPLAT(lo), y));
    y = VSELW(VNLEW(y, VSPLAT(lo)), y, VSPLAT(lo));
    return VSELW(VNGEW(y, VSPLAT(hi)), y, VSPLAT(hi));
}

/* The probability p of a normal (kind NORMAL) or truncated-normal value from its word x. */
static KATTR inline VF KFN(prob32)(const nconst32 *C, VU x, int normal) {
    if (normal) { /* 2k + 1 with k = (x >> 1) & 0x3FFFFFFF, i.e. (x & 0x7FFFFFFE) | 1: one vpternlogd */
        VI k21 = (VI)((x & 0x7FFFFFFEu) | 1u);
        return __builtin_convertvector(k21, VF) * 0x1p-32f;
    }
    VI k21 = (VI)((x >> 8) | 1u); /* 2k + 1 with k = x >> 9 */
    VF u = __builtin_convertvector(k21, VF) * 0x1p-24f;
    VF p = u * C->d;
    p = p + C->pa;
    /* numpy maximum / minimum (p is never NaN here) */
    p = VMAXW(p, VSPLAT(C->pmin));
    p = VMINW(p, VSPLAT(C->pmax));
    return p;
}

/* y = sigma * x + mu from z = ndtri(p): x = -z where the sign bit of the word is set (normal), or
 * x = z with the signed std sstd (truncated normal), each step one IEEE operation as in the spec. */
static KATTR inline VF KFN(scale32)(const nconst32 *C, VF z, VU x, int normal) {
    if (normal) z = (VF)((VU)z ^ ((x >> 31) << 31)); /* x = -z if s else z */
    VF y = z * C->sd;
    return y + C->mu;
}

/* log(x) in float32 (Cephes logf, docs/random.md) on TAIL_NH registers x[] -> r[]. */
static KATTR inline __attribute__((always_inline)) void KFN(logw)(const VF *x, VF *r) {
    const float sqrt2 = LOG32_SQRT2, half = 0.5f, one = 1.0f;
    VF m[TAIL_NH], fe[TAIL_NH], f[TAIL_NH], z[TAIL_NH], y[TAIL_NH];
    EACH(VU b = (VU)x[h]; VI e = (VI)(b >> 23) - 127; m[h] = (VF)((b & 0x7FFFFFu) | 0x3F800000u);
         VM big = VGT(m[h], VSPLAT(sqrt2)); m[h] = VSELW(big, m[h] * half, m[h]);
         fe[h] = __builtin_convertvector(VINCW(big, e), VF));
    EACH(f[h] = m[h] - one);
    EACH(z[h] = f[h] * f[h]);
    EACH(y[h] = VSPLAT(LOG32_P0));
    EACH(y[h] = y[h] * f[h]); EACH(y[h] = y[h] + LOG32_P1);
    EACH(y[h] = y[h] * f[h]); EACH(y[h] = y[h] + LOG32_P2);
    EACH(y[h] = y[h] * f[h]); EACH(y[h] = y[h] + LOG32_P3);
    EACH(y[h] = y[h] * f[h]); EACH(y[h] = y[h] + LOG32_P4);
    EACH(y[h] = y[h] * f[h]); EACH(y[h] = y[h] + LOG32_P5);
    EACH(y[h] = y[h] * f[h]); EACH(y[h] = y[h] + LOG32_P6);
    EACH(y[h] = y[h] * f[h]); EACH(y[h] = y[h] + LOG32_P7);
    EACH(y[h] = y[h] * f[h]); EACH(y[h] = y[h] + LOG32_P8);
    EACH(y[h] = y[h] * f[h]);
    EACH(y[h] = y[h] * z[h]);
    EACH(y[h] = y[h] + fe[h] * LOG32_LN2LO);
    EACH(y[h] = y[h] + z[h] * -0.5f);
    EACH(r[h] = f[h] + y[h]);
    EACH(r[h] = r[h] + fe[h] * LOG32_LN2HI);
}

/* Tail branch of ndtri for p with |p - 0.5| > 0.425, on TAIL_NH registers p[] -> z[]. */
static KATTR inline __attribute__((always_inline)) void KFN(ndtri_tailw)(const VF *p, VF *z) {
    const float one = 1.0f;
    VM neg[TAIL_NH], far_m[TAIL_NH];
    VF t[TAIL_NH], rr[TAIL_NH], nr[TAIL_NH], cn[TAIL_NH], dn[TAIL_NH], tail[TAIL_NH];
    EACH(VF q = p[h] - 0.5f; neg[h] = VLT(q, VSPLAT(0.0f)); t[h] = VSELW(neg[h], p[h], one - p[h]));
    KFN(logw)(t, rr);
    EACH(rr[h] = VSQRTW(-rr[h]));
    EACH(nr[h] = rr[h] - P7_CONST2);
    EACH(cn[h] = VSPLAT(P7_C3));
    EACH(cn[h] = cn[h] * nr[h]); EACH(cn[h] = cn[h] + P7_C2);
    EACH(cn[h] = cn[h] * nr[h]); EACH(cn[h] = cn[h] + P7_C1);
    EACH(cn[h] = cn[h] * nr[h]); EACH(cn[h] = cn[h] + P7_C0);
    EACH(dn[h] = VSPLAT(P7_D1));
    EACH(dn[h] = dn[h] * nr[h]); EACH(dn[h] = dn[h] + P7_D0);
    EACH(dn[h] = dn[h] * nr[h]); EACH(dn[h] = dn[h] + one);
    EACH(tail[h] = cn[h] / dn[h]);
    unsigned any = 0;
    EACH(far_m[h] = VGT(rr[h], VSPLAT(P7_SPLIT2)); any |= VMASKW(far_m[h]));
    if (any) {
        EACH(VF fr = rr[h] - P7_SPLIT2; VF en = VSPLAT(P7_E3);
             en = en * fr; en = en + P7_E2;
             en = en * fr; en = en + P7_E1;
             en = en * fr; en = en + P7_E0;
             VF fn = VSPLAT(P7_F1);
             fn = fn * fr; fn = fn + P7_F0;
             fn = fn * fr; fn = fn + one;
             tail[h] = VSELW(far_m[h], en / fn, tail[h]));
    }
    EACH(z[h] = VSELW(neg[h], -tail[h], tail[h]));
}

/* The central pass on nvec (<= CNV) registers of words at w: the central branch of ndtri on
 * every lane, the finished values y stored at out, what the tail pass needs of the lanes that take
 * the tail branch (the word for a normal, p for a truncated normal) appended at xbuf, and each
 * register's tail lanes as a bit mask at masks[h].  Returns the new count of tail lanes.  The
 * registers' dependency chains are interleaved, which the core overlaps (on AVX-512, four
 * registers per step measured 4% faster than two). */
static KATTR inline __attribute__((always_inline)) size_t KFN(central32)(const nconst32 *C, const uint32_t *w,
                                                                        float *out, uint32_t *xbuf,
                                                                        uint16_t *masks, size_t nt, int normal,
                                                                        int clip, int nvec) {
    const float half = 0.5f, one = 1.0f;
    VU x[CNV];
    VF q[CNV], r[CNV], num[CNV], den[CNV];
    UNROLL for (int h = 0; h < nvec; h++) {
        VU t;
        memcpy(&t, w + VL * h, sizeof t);
        const VF p = KFN(prob32)(C, t, normal);
        x[h] = normal ? t : (VU)p; /* what the tail pass needs: the word (its sign bit), or p */
        q[h] = p - half;
    }
    UNROLL for (int h = 0; h < nvec; h++) r[h] = P7_CONST1 - q[h] * q[h];
    UNROLL for (int h = 0; h < nvec; h++) num[h] = VSPLAT(P7_A3), den[h] = VSPLAT(P7_B2);
    UNROLL for (int h = 0; h < nvec; h++) num[h] = num[h] * r[h], den[h] = den[h] * r[h];
    UNROLL for (int h = 0; h < nvec; h++) num[h] = num[h] + P7_A2, den[h] = den[h] + P7_B1;
    UNROLL for (int h = 0; h < nvec; h++) num[h] = num[h] * r[h], den[h] = den[h] * r[h];
    UNROLL for (int h = 0; h < nvec; h++) num[h] = num[h] + P7_A1, den[h] = den[h] + P7_B0;
    UNROLL for (int h = 0; h < nvec; h++) num[h] = num[h] * r[h], den[h] = den[h] * r[h];
    UNROLL for (int h = 0; h < nvec; h++) num[h] = num[h] + P7_A0, den[h] = den[h] + one;
    UNROLL for (int h = 0; h < nvec; h++) {
        VF y = KFN(scale32)(C, (q[h] * num[h]) / den[h], x[h], normal);
        if (clip) y = KFN(clipw)(y, C->lo, C->hi, clip);
        memcpy(out + VL * h, &y, sizeof y);
    }
    UNROLL for (int h = 0; h < nvec; h++) {
        VF aq = (VF)((VU)q[h] & 0x7FFFFFFFu);
        const unsigned bits = VMASKW(VGT(aq, VSPLAT(P7_SPLIT1)));
        masks[h] = (uint16_t)bits;
        VCOMPRESSW(x[h], bits, xbuf + nt); /* branch-free compaction of the tail lanes' x */
        nt += (size_t)__builtin_popcount(bits);
    }
    return nt;
}

/* The tail pass on VL * TAIL_NH tail lanes whose words (normal) or p (truncated normal) are at xw
 * (padding in the lanes past the last tail lane): the tail branch of ndtri, the finished values
 * stored contiguously at ys. */
static KATTR inline __attribute__((always_inline)) void KFN(tail32)(const nconst32 *C, const uint32_t *xw,
                                                                   float *ys, int normal, int clip) {
    VU x[TAIL_NH];
    VF p[TAIL_NH], z[TAIL_NH];
    EACH(VU t; memcpy(&t, xw + VL * h, sizeof t); x[h] = t; p[h] = normal ? KFN(prob32)(C, t, normal) : (VF)t);
    KFN(ndtri_tailw)(p, z);
    EACH(VF y = KFN(scale32)(C, z[h], x[h], normal); if (clip) y = KFN(clipw)(y, C->lo, C->hi, clip);
         memcpy(ys + VL * h, &y, sizeof y));
}

/* Normal and truncated-normal values of a tile of n <= N32_MAX values (a multiple of 8) in three
 * passes.  The central pass (central32) computes every lane through the central branch of ndtri
 * and stores the finished value y; it also gathers the words (or p) of the lanes that take the tail
 * branch (|p - 0.5| > 0.425, about one value in seven) and marks them per register.  The tail pass
 * (tail32) runs the tail branch on those lanes only, VL * TAIL_NH at a time, into a contiguous
 * buffer.  The merge puts each register's tail values into its marked lanes (vexpandps on
 * AVX-512).  Each value gets exactly the reference's operations.  xbuf, ybuf: scratch of
 * n + N32_PAD entries.  (Running a tail step inside the central loop whenever enough
 * tail lanes were waiting measured 10% slower on AVX-512: the two loops' constants no longer fit
 * the registers together.) */
#define N32_MAX 2048 /* values per call */
#define N32_PAD 128  /* scratch entries beyond n */
/* tail lanes past n (< CNV * VL), padding to a whole tail step (< VL * TAIL_NH), one register of
 * compress / expand window (VL) */
_Static_assert(CNV * VL + VL * TAIL_NH + VL <= N32_PAD, "normal32_body's scratch holds n + N32_PAD entries");
static KATTR inline __attribute__((always_inline)) void KFN(normal32_body)(const core_params *P, const uint32_t *w,
                                                                          size_t n, float *out, uint32_t *xbuf,
                                                                          float *ybuf, int normal, int clip) {
    const nconst32 C = KFN(nconst)(P, normal);
    const size_t step = VL * TAIL_NH;
    uint16_t masks[N32_MAX / VL + CNV];
    size_t nt = 0, i = 0, nr = 0;
    for (; i + CNV * VL <= n; i += CNV * VL, nr += CNV)
        nt = KFN(central32)(&C, w + i, out + i, xbuf, masks + nr, nt, normal, clip, CNV);
    /* fewer than CNV * VL values left: through a local copy.  Its lanes past n are computed like the
     * others (and may be tail lanes); they come last, so the merge gives them the last tail values and
     * they are discarded. */
    uint32_t wt[CNV * VL] __attribute__((aligned(64)));
    float yt[CNV * VL] __attribute__((aligned(64)));
    const size_t rest = n - i;
    if (rest) {
        memcpy(wt, w + i, rest * sizeof(uint32_t));
        memset(wt + rest, 0, (CNV * VL - rest) * sizeof(uint32_t)); /* any word is valid */
        nt = KFN(central32)(&C, wt, yt, xbuf, masks + nr, nt, normal, clip, CNV);
    }
    /* padding lanes: any word (normal) or any p in (0, 1) (truncated normal) is valid */
    const uint32_t pad = normal ? 0u : 0x3E800000u; /* 0.25f */
    for (size_t l = nt; l < (nt + step - 1) / step * step; l++) xbuf[l] = pad;
    for (size_t j = 0; j < nt; j += step) KFN(tail32)(&C, xbuf + j, ybuf + j, normal, clip);
    size_t off = 0;
    for (size_t k = 0; k < nr; k++) {
        const unsigned bits = masks[k];
        if (!bits) continue;
        VF y;
        memcpy(&y, out + VL * k, sizeof y);
        y = VEXPANDW(y, bits, ybuf + off);
        memcpy(out + VL * k, &y, sizeof y);
        off += (size_t)__builtin_popcount(bits);
    }
    if (rest) {
        UNROLL for (int h = 0; h < CNV; h++) {
            const unsigned bits = masks[nr + (size_t)h];
            VF y;
            memcpy(&y, yt + VL * h, sizeof y);
            y = VEXPANDW(y, bits, ybuf + off);
            memcpy(yt + VL * h, &y, sizeof y);
            off += (size_t)__builtin_popcount(bits);
        }
        memcpy(out + i, yt, rest * sizeof(float));
    }
}
