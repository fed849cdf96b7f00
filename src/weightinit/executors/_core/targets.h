/* The per-value kernels (kernels.h) instantiated for each SIMD target: portable C with
 * vector extensions (_base), AVX2 (_avx2) and AVX-512 (_avx512: the float32 normals of
 * normal32.h on 512-bit vectors, the rest on 256-bit vectors with EVEX encodings).  Each
 * instantiation gets its own lane helpers; all give the same bits.
 */
#ifndef WI_TARGETS_H
#define WI_TARGETS_H
/* ------------------------------------------------------------ compaction tables */
/* CTAB8[bits]: the set lanes of an 8-bit mask, in order, then zeros.  CTAB4[bits]: the
 * same for 4 lanes of 64 bits, as 32-bit lane pairs (for a 32-bit permute). */
static uint8_t CTAB8[256][8];
static uint32_t CTAB4[16][8];
/* ETAB8[bits]: for each lane set in bits, its rank among the set lanes (the inverse of CTAB8) */
static uint8_t ETAB8[256][8];

static void init_tables(void) {
    for (int b = 0; b < 256; b++) {
        int k = 0;
        memset(CTAB8[b], 0, 8);
        memset(ETAB8[b], 0, 8);
        for (int l = 0; l < 8; l++)
            if (b >> l & 1) ETAB8[b][l] = (uint8_t)k, CTAB8[b][k++] = (uint8_t)l;
    }
    for (int b = 0; b < 16; b++) {
        int k = 0;
        memset(CTAB4[b], 0, sizeof CTAB4[b]);
        for (int l = 0; l < 4; l++)
            if (b >> l & 1) {
                CTAB4[b][2 * k] = (uint32_t)(2 * l);
                CTAB4[b][2 * k + 1] = (uint32_t)(2 * l + 1);
                k++;
            }
    }
}

#define KFN(name) name##_base
#define KATTR __attribute__((unused))
static inline v8f vsqrt8_base(v8f x) {
    for (int i = 0; i < 8; i++) x[i] = sqrtf(x[i]);
    return x;
}
static inline v4d vsqrt4_base(v4d x) {
    for (int i = 0; i < 4; i++) x[i] = sqrt(x[i]);
    return x;
}
static inline int mask8_base(v8i m) {
    int b = 0;
    for (int l = 0; l < 8; l++) b |= (m[l] < 0) << l;
    return b;
}
static inline int mask4_base(v4l m) {
    int b = 0;
    for (int l = 0; l < 4; l++) b |= (m[l] < 0) << l;
    return b;
}
/* y with the lanes set in bits replaced, in order, by src[0], src[1], ... */
static inline v8f expand8_base(v8f y, unsigned bits, const float *src) {
    for (int l = 0, k = 0; l < 8; l++)
        if (bits >> l & 1) y[l] = src[k++];
    return y;
}
#define VSQRT8(x) vsqrt8_base(x)
#define VSQRT4(x) vsqrt4_base(x)
/* Lane selects and comparisons (special.h: sel8, max8, min8, clip8 and their 4-lane forms). */
#define VBLEND8(m, a, b) ((v8f)(((v8i)(a) & (m)) | ((v8i)(b) & ~(m))))
#define VBLEND4(m, a, b) ((v4d)(((v4l)(a) & (m)) | ((v4l)(b) & ~(m))))
#define VMAX8(a, b) VBLEND8((a) > (b), a, b)
#define VMIN8(a, b) VBLEND8((a) < (b), a, b)
#define VMAX4(a, b) VBLEND4((a) > (b), a, b)
#define VMIN4(a, b) VBLEND4((a) < (b), a, b)
#define VNLE8(y, l) (((y) > (l)) | ((y) != (y)))
#define VNGE8(y, h) (((y) < (h)) | ((y) != (y)))
#define VNLE4(y, l) (((y) > (l)) | ((y) != (y)))
#define VNGE4(y, h) (((y) < (h)) | ((y) != (y)))
#define MASK8(m) mask8_base(m)
#define MASK4(m) mask4_base(m)
#define COMPRESS4(v, bits, dst, idx, base)                                                          \
    do {                                                                                            \
        for (int l_ = 0; l_ < 4; l_++) {                                                            \
            (dst)[l_] = (v)[CTAB4[bits][2 * l_] >> 1];                                              \
            (idx)[l_] = (base) + (CTAB4[bits][2 * l_] >> 1);                                        \
        }                                                                                           \
    } while (0)
/* normal32.h's lane vocabulary on 8 lanes (lanes.h), for this and the AVX2 instantiation */
#define COMPRESSX8(v, bits, dst)                                                                    \
    do {                                                                                            \
        for (int l_ = 0; l_ < 8; l_++) (dst)[l_] = (v)[CTAB8[bits][l_]];                            \
    } while (0)
#define EXPAND8(y, bits, src) expand8_base(y, bits, src)
#define WI_LANES 8
#include "lanes.h"
#include "kernels.h"
#undef COMPRESSX8
#undef EXPAND8
#undef KFN
#undef KATTR
#undef VSQRT8
#undef VSQRT4
#undef MASK8
#undef MASK4
#undef COMPRESS4
#undef VBLEND8
#undef VBLEND4
#undef VMAX8
#undef VMIN8
#undef VMAX4
#undef VMIN4
#undef VNLE8
#undef VNGE8
#undef VNLE4
#undef VNGE4

#ifdef WI_X86
/* Helpers shared by the AVX2 and AVX-512 instantiations of kernel.h (both use 256-bit vectors). */
#define VSQRT8(x) ((v8f)_mm256_sqrt_ps((__m256)(x)))
#define VSQRT4(x) ((v4d)_mm256_sqrt_pd((__m256d)(x)))
/* vblendvps / vblendvpd take the sign bit of each mask lane: the same select for comparison masks.
 * vmaxps (a, b) is "a > b ? a : b" and vminps "a < b ? a : b", NaN and signed zeros included. */
#define VBLEND8(m, a, b) ((v8f)_mm256_blendv_ps((__m256)(b), (__m256)(a), (__m256)(m)))
#define VBLEND4(m, a, b) ((v4d)_mm256_blendv_pd((__m256d)(b), (__m256d)(a), (__m256d)(m)))
#define VMAX8(a, b) ((v8f)_mm256_max_ps((__m256)(a), (__m256)(b)))
#define VMIN8(a, b) ((v8f)_mm256_min_ps((__m256)(a), (__m256)(b)))
#define VMAX4(a, b) ((v4d)_mm256_max_pd((__m256d)(a), (__m256d)(b)))
#define VMIN4(a, b) ((v4d)_mm256_min_pd((__m256d)(a), (__m256d)(b)))
/* "y > l or unordered" and "y < h or unordered" in one comparison each */
#define VNLE8(y, l) ((v8i)_mm256_cmp_ps((__m256)(y), (__m256)(l), _CMP_NLE_UQ))
#define VNGE8(y, h) ((v8i)_mm256_cmp_ps((__m256)(y), (__m256)(h), _CMP_NGE_UQ))
#define VNLE4(y, l) ((v4l)_mm256_cmp_pd((__m256d)(y), (__m256d)(l), _CMP_NLE_UQ))
#define VNGE4(y, h) ((v4l)_mm256_cmp_pd((__m256d)(y), (__m256d)(h), _CMP_NGE_UQ))
#define MASK8(m) _mm256_movemask_ps((__m256)(m))
#define MASK4(m) _mm256_movemask_pd((__m256d)(m))
/* y with the lanes set in bits replaced, in order, by src[0], src[1], ...: a vpermd of src by the
 * lanes' ranks, blended into y by the lanes of bits */
__attribute__((target("avx2"), always_inline)) static inline v8f expand8_avx2(v8f y, unsigned bits, const float *src) {
    const __m256i rank = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)ETAB8[bits]));
    const __m256i lane = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    const __m256i sel = _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32((int)bits), lane), lane);
    const __m256 t = _mm256_permutevar8x32_ps(_mm256_loadu_ps(src), rank);
    return (v8f)_mm256_blendv_ps((__m256)y, t, _mm256_castsi256_ps(sel));
}
#define COMPRESS4(v, bits, dst, idx, base)                                                          \
    do {                                                                                            \
        __m256i perm_ = _mm256_loadu_si256((const __m256i *)CTAB4[bits]);                          \
        _mm256_storeu_ps((float *)(dst), _mm256_permutevar8x32_ps((__m256)(v), perm_));             \
        __m128i li_ = _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(                           \
            _mm256_srli_epi32(perm_, 1), _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6)));               \
        _mm_storeu_si128((__m128i *)(idx), _mm_add_epi32(li_, _mm_set1_epi32((int)(base))));       \
    } while (0)
#define KFN(name) name##_avx2
#define KATTR __attribute__((target("avx2"), unused))
#define COMPRESSX8(v, bits, dst)                                                                    \
    _mm256_storeu_si256((__m256i *)(dst), _mm256_permutevar8x32_epi32(                              \
        (__m256i)(v), _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)CTAB8[bits]))))
#define EXPAND8(y, bits, src) expand8_avx2(y, bits, src)
#include "kernels.h"
#undef COMPRESSX8
#undef EXPAND8
#undef WI_LANES
#define WI_LANES 0 /* the 8-lane vocabulary undefined */
#include "lanes.h"
#undef WI_LANES
#undef KFN
#undef KATTR

/* The per-value kernels once more for the AVX-512 target: normal32.h on 512-bit vectors (16
 * lanes, k-register masks, vpcompressd for the tail lanes), the others on 256-bit vectors with
 * EVEX encodings (vpternlogd, mask registers); bit-identical operations. */
#define KFN(name) name##_avx512
#define KATTR __attribute__((target(WI_AVX512), unused))
#define WI_LANES 16 /* normal32.h on 16-lane (zmm) vectors (lanes.h) */
#include "lanes.h"
#include "kernels.h"
#undef WI_LANES
#define WI_LANES 0
#include "lanes.h"
#undef WI_LANES
#undef KFN
#undef KATTR
#undef VSQRT8
#undef VSQRT4
#undef MASK8
#undef MASK4
#undef COMPRESS4
#undef VBLEND8
#undef VBLEND4
#undef VMAX8
#undef VMIN8
#undef VMAX4
#undef VMIN4
#undef VNLE8
#undef VNGE8
#undef VNLE4
#undef VNGE4

#endif

#endif /* WI_TARGETS_H */
