/* Fused writers: values straight from the Philox registers into the output, no tile buffer.
 * Same operations as distributions.h + writers.h, so the same bits.
 */
#ifndef WI_FUSED_H
#define WI_FUSED_H

#ifdef WI_X86
/* Uniform float32 values straight into out, no intermediate buffer: sixteen words x to
 * values, exactly the steps of values32 and finish32. */
A512_INLINE __m512 uniform16_avx512(__m512i x, __m512 scale, __m512 offset, int clip, __m512 lo, __m512 hi) {
    __m512 u = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_srli_epi32(x, 8)), _mm512_set1_ps(0x1p-24f));
    __m512 y = _mm512_mul_ps(u, scale);
    y = _mm512_add_ps(y, offset);
    if (clip) {
        /* (y > lo || y != y) ? y : lo, then (y < hi || y != y) ? y : hi, as in finish32 */
        y = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(y, lo, _CMP_NLE_UQ), lo, y);
        y = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(y, hi, _CMP_NGE_UQ), hi, y);
    }
    return y;
}

/* Eight blocks' values from philox32q_avx512's words (x0..x3 of one set, in the low halves of
 * 64-bit lanes) stored in block-major order: words 0 / 1 and 2 / 3 paired into full registers
 * (the values are elementwise, so they are computed on the pairs), then interleaved by block. */
A512_INLINE void uniform_q8(__m512i x0, __m512i x1, __m512i x2, __m512i x3, __m512 scale, __m512 offset, int clip,
                            __m512 lo, __m512 hi, float *out) {
    const __m512i t01 = _mm512_mask_blend_epi32(0xAAAA, x0, _mm512_slli_epi64(x1, 32));
    const __m512i t23 = _mm512_mask_blend_epi32(0xAAAA, x2, _mm512_slli_epi64(x3, 32));
    const __m512i y01 = _mm512_castps_si512(uniform16_avx512(t01, scale, offset, clip, lo, hi));
    const __m512i y23 = _mm512_castps_si512(uniform16_avx512(t23, scale, offset, clip, lo, hi));
    _mm512_storeu_si512((void *)out, _mm512_permutex2var_epi64(y01, _mm512_setr_epi64(0, 8, 1, 9, 2, 10, 3, 11), y23));
    _mm512_storeu_si512((void *)(out + 16),
                        _mm512_permutex2var_epi64(y01, _mm512_setr_epi64(4, 12, 5, 13, 6, 14, 7, 15), y23));
}

A512_INLINE void uniform32_body(const core_params *P, uint64_t b0, size_t nblocks, float *out, int clip) {
    const __m512 scale = _mm512_set1_ps(P->c32[0]);
    const __m512 offset = _mm512_set1_ps(P->c32[1]);
    const __m512 lo = _mm512_set1_ps(P->lo32), hi = _mm512_set1_ps(P->hi32);
    size_t b = 0;
    for (; b + 32 <= nblocks; b += 32) {
        __m512i x[4][4];
        philox32q_avx512(b0 + b, P->k0, P->k1, x);
        for (int s = 0; s < 4; s++)
            uniform_q8(x[0][s], x[1][s], x[2][s], x[3][s], scale, offset, clip, lo, hi, out + 4 * (b + 8 * (size_t)s));
    }
    if (b < nblocks) { /* the last 16 blocks: compute 32, keep 16 */
        __m512i x[4][4];
        philox32q_avx512(b0 + b, P->k0, P->k1, x);
        for (int s = 0; s < 2; s++)
            uniform_q8(x[0][s], x[1][s], x[2][s], x[3][s], scale, offset, clip, lo, hi, out + 4 * (b + 8 * (size_t)s));
    }
}

/* Blocks b0 .. b0 + nblocks - 1 (nblocks a multiple of 16): the values at flat indices 4*b0 ... */
A512 static void uniform32_avx512(const core_params *P, uint64_t b0, size_t nblocks, float *out) {
    if (P->has_clip) uniform32_body(P, b0, nblocks, out, 1);
    else uniform32_body(P, b0, nblocks, out, 0);
}
/* The same for AVX2: sixteen blocks (64 values) per step from philox16_avx2, each of the eight
 * word registers turned into values (elementwise, so before the transpose), then stored in
 * block-major order by store_t8. */
__attribute__((target("avx2"), always_inline)) static inline __m256i uniform8_avx2(__m256i x, __m256 scale,
                                                                                   __m256 offset, int clip,
                                                                                   __m256 lo, __m256 hi) {
    __m256 u = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(x, 8)), _mm256_set1_ps(0x1p-24f));
    __m256 y = _mm256_mul_ps(u, scale);
    y = _mm256_add_ps(y, offset);
    if (clip) { /* (y > lo || y != y) ? y : lo, then (y < hi || y != y) ? y : hi, as in finish32 */
        y = _mm256_blendv_ps(lo, y, _mm256_cmp_ps(y, lo, _CMP_NLE_UQ));
        y = _mm256_blendv_ps(hi, y, _mm256_cmp_ps(y, hi, _CMP_NGE_UQ));
    }
    return _mm256_castps_si256(y);
}

__attribute__((target("avx2"), always_inline)) static inline void uniform32_body_avx2(const core_params *P, uint64_t b0,
                                                                                      size_t nblocks, float *out,
                                                                                      int clip) {
    const __m256 scale = _mm256_set1_ps(P->c32[0]), offset = _mm256_set1_ps(P->c32[1]);
    const __m256 lo = _mm256_set1_ps(P->lo32), hi = _mm256_set1_ps(P->hi32);
    for (size_t b = 0; b < nblocks; b += 16) {
        __m256i x[4][2];
        philox16_avx2(b0 + b, P->k0, P->k1, x);
        for (int s = 0; s < 2; s++)
            store_t8(uniform8_avx2(x[0][s], scale, offset, clip, lo, hi),
                     uniform8_avx2(x[1][s], scale, offset, clip, lo, hi),
                     uniform8_avx2(x[2][s], scale, offset, clip, lo, hi),
                     uniform8_avx2(x[3][s], scale, offset, clip, lo, hi), (uint32_t *)out + 4 * (b + 8 * (size_t)s));
    }
}

/* Blocks b0 .. b0 + nblocks - 1 (nblocks a multiple of 16): the values at flat indices 4*b0 ... */
__attribute__((target("avx2"))) static void uniform32_avx2(const core_params *P, uint64_t b0, size_t nblocks,
                                                            float *out) {
    if (P->has_clip) uniform32_body_avx2(P, b0, nblocks, out, 1);
    else uniform32_body_avx2(P, b0, nblocks, out, 0);
}
#endif /* WI_X86 */

#endif /* WI_FUSED_H */
