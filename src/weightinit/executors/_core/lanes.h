/* The lane vocabulary of normal32.h (listed there) for one SIMD instantiation, included by
 * targets.h with WI_LANES set: 8 (portable and AVX2 paths: in terms of that path's 8-lane helpers
 * VBLEND8, MASK8, ..., COMPRESSX8 and EXPAND8), 16 (AVX-512: zmm vectors, k-register masks), or 0
 * to undefine it.  No include guard: included once per use.
 */
#if WI_LANES == 8
/* lane masks are v8i (-1 where true) */
#define VL 8
#define CNV 2
#define TAIL_NH 2
#define VF v8f
#define VI v8i
#define VU v8u
#define VM v8i
#define VSPLAT(c) splat8(c)
#define VSQRTW(x) VSQRT8(x)
#define VGT(a, b) ((a) > (b))
#define VLT(a, b) ((a) < (b))
#define VSELW(m, a, b) VBLEND8(m, a, b)
#define VMAXW(a, b) VMAX8(a, b)
#define VMINW(a, b) VMIN8(a, b)
#define VNLEW(y, l) VNLE8(y, l)
#define VNGEW(y, h) VNGE8(y, h)
#define VMASKW(m) ((unsigned)MASK8(m))
#define VINCW(m, e) ((e) - (m))
#define VCOMPRESSW(v, bits, dst) COMPRESSX8(v, bits, dst)
#define VEXPANDW(y, bits, src) EXPAND8(y, bits, src)
#elif WI_LANES == 16
/* lane masks are k registers (__mmask16) */
#define VL 16
#define CNV 4
#define TAIL_NH 2
#define VF v16f
#define VI v16i
#define VU v16u
#define VM __mmask16
#define VSPLAT(c) splat16(c)
#define VSQRTW(x) ((v16f)_mm512_sqrt_ps((__m512)(x)))
#define VGT(a, b) _mm512_cmp_ps_mask((__m512)(a), (__m512)(b), _CMP_GT_OQ)
#define VLT(a, b) _mm512_cmp_ps_mask((__m512)(a), (__m512)(b), _CMP_LT_OQ)
#define VSELW(m, a, b) ((v16f)_mm512_mask_blend_ps((m), (__m512)(b), (__m512)(a)))
#define VMAXW(a, b) ((v16f)_mm512_max_ps((__m512)(a), (__m512)(b)))
#define VMINW(a, b) ((v16f)_mm512_min_ps((__m512)(a), (__m512)(b)))
#define VNLEW(y, l) _mm512_cmp_ps_mask((__m512)(y), (__m512)(l), _CMP_NLE_UQ)
#define VNGEW(y, h) _mm512_cmp_ps_mask((__m512)(y), (__m512)(h), _CMP_NGE_UQ)
#define VMASKW(m) ((unsigned)(m))
#define VINCW(m, e) ((v16i)_mm512_mask_add_epi32((__m512i)(e), (m), (__m512i)(e), _mm512_set1_epi32(1)))
/* vpcompressd into a register, then a plain store (the memory form is slow on AMD cores) */
#define VCOMPRESSW(v, bits, dst) \
    _mm512_storeu_si512((void *)(dst), _mm512_maskz_compress_epi32((__mmask16)(bits), (__m512i)(v)))
#define VEXPANDW(y, bits, src) \
    ((v16f)_mm512_mask_expand_ps((__m512)(y), (__mmask16)(bits), _mm512_loadu_ps(src)))
#else
#undef VL
#undef CNV
#undef TAIL_NH
#undef VF
#undef VI
#undef VU
#undef VM
#undef VSPLAT
#undef VSQRTW
#undef VGT
#undef VLT
#undef VSELW
#undef VMAXW
#undef VMINW
#undef VNLEW
#undef VNGEW
#undef VMASKW
#undef VINCW
#undef VCOMPRESSW
#undef VEXPANDW
#endif
