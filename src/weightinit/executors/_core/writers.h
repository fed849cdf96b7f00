/* Writers: cast compute-precision values to the output dtype (round to nearest even), clip,
 * and store, per SIMD target.  Included by kernels.h; the scalar casts are in convert.h.
 */

/* 8-bit float outputs: clip in float32 (the bounds are fp8 values and the rounding is monotone,
 * so this equals the reference's clip after the cast), then round each lane as f32_to_fp8. */
static KATTR void KFN(finish_fp8)(const core_params *P, const float *v, size_t n, uint8_t *o) {
    const fp8_format *F = P->otype == OUT_E4M3FN ? &FP8_E4M3FN : &FP8_E5M2;
    const int shift = 23 - F->mant;
    const uint32_t rebias = (uint32_t)(127 - F->bias) << 23, norm_min = (uint32_t)(128 - F->bias) << 23;
    const uint32_t half_m1 = (1u << (shift - 1)) - 1u;
    const int sh0 = 151 - F->bias - F->mant;
    const float lo = P->lo32, hi = P->hi32;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        v8f y;
        memcpy(&y, v + i, sizeof y);
        if (P->has_clip) {
            y = KFN(clip8)(y, lo, hi);
        }
        v8u b = (v8u)y;
        v8u s = (b >> 31) << 7, a = b & 0x7FFFFFFFu;
        v8u vn = a - rebias;
        v8u rn = (vn + half_m1 + ((vn >> shift) & 1u)) >> shift;
        v8i sh = (v8i)(sh0 - (v8i)(a >> 23));
        v8i big = sh >= 25;
        /* keep every lane's shift in [1, 24] (normal lanes have sh < 1); those lanes are masked below */
        sh = (v8i)KFN(sel8)(big, (v8f)(sh * 0 + 24), (v8f)sh);
        sh = (v8i)KFN(sel8)(sh < 1, (v8f)(sh * 0 + 1), (v8f)sh);
        v8u m = (a & 0x7FFFFFu) | 0x800000u;
        v8u one = m * 0u + 1u;
        v8u rs = (m + ((one << (v8u)(sh - 1)) - 1u) + ((m >> (v8u)sh) & 1u)) >> (v8u)sh;
        rs = (v8u)((v8i)rs & ~big);
        v8i is_norm = (v8i)(a >= norm_min);
        v8u r = (v8u)(((v8i)rn & is_norm) | ((v8i)rs & ~is_norm));
        v8i over = (v8i)(r > F->ovf);
        r = (v8u)(((v8i)r & ~over) | ((v8i)(r * 0u + F->ovf) & over));
        v8i isnan = (v8i)(a > 0x7F800000u);
        r = (v8u)(((v8i)r & ~isnan) | ((v8i)(r * 0u + F->nan_code) & isnan));
        v8ub h = __builtin_convertvector(s | r, v8ub);
        memcpy(o + i, &h, sizeof h);
    }
    for (; i < n; i++) {
        float y = v[i];
        if (P->has_clip) {
            y = (y > lo || y != y) ? y : lo;
            y = (y < hi || y != y) ? y : hi;
        }
        o[i] = f32_to_fp8(y, F);
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
            y = KFN(clip8)(y, lo, hi);
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
    if (P->otype == OUT_E4M3FN || P->otype == OUT_E5M2) {
        KFN(finish_fp8)(P, v, n, (uint8_t *)dst);
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
        y = KFN(clip4)(y, lo, hi);
        memcpy(o + i, &y, sizeof y);
    }
    for (; i < n; i++) {
        double y = v[i];
        y = (y > lo || y != y) ? y : lo;
        y = (y < hi || y != y) ? y : hi;
        o[i] = y;
    }
}

