/* weightinit._core_ext: the compiled CPU executor of the weightinit stream.
 *
 * Implements docs/random.md exactly: Philox4x32-10 words, the uniform / normal /
 * truncated-normal per-value steps (constants come from Python's make_plan), the
 * cast to float16 / bfloat16 / float32 / float64 (round to nearest even) and the
 * clip.  Values are written straight into a caller-provided buffer with the GIL
 * released; large requests are split over threads by counter range.
 *
 * Build: -O3 -ffp-contract=off -fno-fast-math, no -march.  AVX-512 (F/DQ/BW/VL) and
 * AVX2 paths (target attributes) are chosen at run time when the CPU has them; the
 * baseline path is portable C with vector extensions.  All give the same bits.
 * The AVX-512 path writes uniform float32 outputs straight from the Philox
 * registers (uniform32_avx512); everything else goes through L1-sized tiles.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#define WI_X86 1
#include <immintrin.h>
#endif

#if defined(__FAST_MATH__)
#error "weightinit._core_ext must not be compiled with -ffast-math"
#endif

typedef float v8f __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));
typedef uint32_t v8u __attribute__((vector_size(32)));
typedef double v4d __attribute__((vector_size(32)));
typedef int64_t v4l __attribute__((vector_size(32)));
typedef uint64_t v4ul __attribute__((vector_size(32)));
typedef uint16_t v8us __attribute__((vector_size(16)));

#define splat8(c) ((v8f){(c), (c), (c), (c), (c), (c), (c), (c)})
#define splat4(c) ((v4d){(c), (c), (c), (c)})

enum { KIND_UNIFORM = 0, KIND_NORMAL = 1, KIND_TRUNCNORM = 2 };
enum { OUT_F16 = 0, OUT_BF16 = 1, OUT_F32 = 2, OUT_F64 = 3 };

typedef struct {
    int kind;
    int words;  /* 1: float32 compute, 2: float64 compute */
    int otype;
    int has_clip;
    float c32[6];
    double c64[6];
    float lo32, hi32;  /* clip bounds as float32 (exact for f16 / bf16 / f32) */
    double lo64, hi64;
    uint16_t lo16, hi16; /* clip bounds as half / bfloat16 bits */
    uint32_t k0, k1;
} core_params;

/* ------------------------------------------------------------ constants */
/* Rounded from the float64 constants exactly as NumPy's np.float32(c) does. */
#define F(c) ((float)(c))
#define LOG32_P0 F(7.0376836292e-2)
#define LOG32_P1 F(-1.1514610310e-1)
#define LOG32_P2 F(1.1676998740e-1)
#define LOG32_P3 F(-1.2420140846e-1)
#define LOG32_P4 F(1.4249322787e-1)
#define LOG32_P5 F(-1.6668057665e-1)
#define LOG32_P6 F(2.0000714765e-1)
#define LOG32_P7 F(-2.4999993993e-1)
#define LOG32_P8 F(3.3333331174e-1)
#define LOG32_LN2LO F(-2.12194440e-4)
#define LOG32_LN2HI F(0.693359375)

#define P7_SPLIT1 F(0.425)
#define P7_SPLIT2 F(5.0)
#define P7_CONST1 F(0.180625)
#define P7_CONST2 F(1.6)
#define P7_A0 F(3.3871327179e00)
#define P7_A1 F(5.0434271938e01)
#define P7_A2 F(1.5929113202e02)
#define P7_A3 F(5.9109374720e01)
#define P7_B0 F(1.7895169469e01)
#define P7_B1 F(7.8757757664e01)
#define P7_B2 F(6.7187563600e01)
#define P7_C0 F(1.4234372777e00)
#define P7_C1 F(2.7568153900e00)
#define P7_C2 F(1.3067284816e00)
#define P7_C3 F(1.7023821103e-01)
#define P7_D0 F(7.3700164250e-01)
#define P7_D1 F(1.2021132975e-01)
#define P7_E0 F(6.6579051150e00)
#define P7_E1 F(3.0812263860e00)
#define P7_E2 F(4.2868294337e-01)
#define P7_E3 F(1.7337203997e-02)
#define P7_F0 F(2.4197894225e-01)
#define P7_F1 F(1.2258202635e-02)

#define LG1 6.666666666666735130e-01
#define LG2 3.999999999940941908e-01
#define LG3 2.857142874366239149e-01
#define LG4 2.222219843214978396e-01
#define LG5 1.818357216161805012e-01
#define LG6 1.531383769920937332e-01
#define LG7 1.479819860511658591e-01
#define LN2_HI 6.93147180369123816490e-01
#define LN2_LO 1.90821492927058770002e-10

#define P16_SPLIT1 0.425
#define P16_SPLIT2 5.0
#define P16_CONST1 0.180625
#define P16_CONST2 1.6
static const double P16_A[8] = {3.3871328727963666080e0, 1.3314166789178437745e2, 1.9715909503065514427e3,
                                 1.3731693765509461125e4, 4.5921953931549871457e4, 6.7265770927008700853e4,
                                 3.3430575583588128105e4, 2.5090809287301226727e3};
static const double P16_B[7] = {4.2313330701600911252e1, 6.8718700749205790830e2, 5.3941960214247511077e3,
                                 2.1213794301586595867e4, 3.9307895800092710610e4, 2.8729085735721942674e4,
                                 5.2264952788528545610e3};
static const double P16_C[8] = {1.42343711074968357734e0, 4.63033784615654529590e0, 5.76949722146069140550e0,
                                 3.64784832476320460504e0, 1.27045825245236838258e0, 2.41780725177450611770e-1,
                                 2.27238449892691845833e-2, 7.74545014278341407640e-4};
static const double P16_D[7] = {2.05319162663775882187e0, 1.67638483018380384940e0, 6.89767334985100004550e-1,
                                 1.48103976427480074590e-1, 1.51986665636164571966e-2, 5.47593808499534494600e-4,
                                 1.05075007164441684324e-9};
static const double P16_E[8] = {6.65790464350110377720e0, 5.46378491116411436990e0, 1.78482653991729133580e0,
                                 2.96560571828504891230e-1, 2.65321895265761230930e-2, 1.24266094738807843860e-3,
                                 2.71155556874348757815e-5, 2.01033439929228813265e-7};
static const double P16_F[7] = {5.99832206555887937690e-1, 1.36929880922735805310e-1, 1.48753612908506148525e-2,
                                 7.86869131145613259100e-4, 1.84631831751005468180e-5, 1.42151175831644588870e-7,
                                 2.04426310338993978564e-15};

/* ------------------------------------------------------------ philox */
#define PH_M0 0xD2511F53u
#define PH_M1 0xCD9E8D57u
#define PH_W0 0x9E3779B9u
#define PH_W1 0xBB67AE85u

/* Eight blocks with counters (c0[b], c1[b], 0, 0): out[4*b + word]. */
static void philox8_base(const uint32_t *c0in, const uint32_t *c1in, uint32_t k0in, uint32_t k1in, uint32_t *out) {
    for (int b = 0; b < 8; b++) {
        uint32_t c0 = c0in[b], c1 = c1in[b], c2 = 0, c3 = 0, k0 = k0in, k1 = k1in;
        for (int r = 0; r < 10; r++) {
            uint64_t p0 = (uint64_t)PH_M0 * c0, p1 = (uint64_t)PH_M1 * c2;
            uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0, n1 = (uint32_t)p1;
            uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1, n3 = (uint32_t)p0;
            c0 = n0; c1 = n1; c2 = n2; c3 = n3;
            k0 += PH_W0; k1 += PH_W1;
        }
        out[4 * b] = c0; out[4 * b + 1] = c1; out[4 * b + 2] = c2; out[4 * b + 3] = c3;
    }
}

/* Blocks b0 .. b0 + nblocks - 1 (nblocks a multiple of 8) in block-major word order. */
static void philox_seq_base(uint64_t b0, size_t nblocks, uint32_t k0, uint32_t k1, uint32_t *out) {
    uint32_t c0[8], c1[8];
    for (size_t b = 0; b < nblocks; b += 8) {
        for (int l = 0; l < 8; l++) {
            uint64_t j = b0 + b + (uint64_t)l;
            c0[l] = (uint32_t)j;
            c1[l] = (uint32_t)(j >> 32);
        }
        philox8_base(c0, c1, k0, k1, out + 4 * b);
    }
}

/* ------------------------------------------------------------ casts */
/* float32 -> float16 bits, round to nearest even (NumPy's npy_floatbits_to_halfbits). */
static inline uint16_t f32_to_f16(float fv) {
    uint32_t f;
    memcpy(&f, &fv, 4);
    uint32_t f_exp = f & 0x7f800000u, f_sig;
    uint16_t h_sgn = (uint16_t)((f & 0x80000000u) >> 16), h_exp, h_sig;
    if (f_exp >= 0x47800000u) {
        if (f_exp == 0x7f800000u) {
            f_sig = f & 0x007fffffu;
            if (f_sig != 0) {
                uint16_t ret = (uint16_t)(0x7c00u + (f_sig >> 13));
                if (ret == 0x7c00u) ret++;
                return h_sgn + ret;
            }
            return (uint16_t)(h_sgn + 0x7c00u);
        }
        return (uint16_t)(h_sgn + 0x7c00u);
    }
    if (f_exp <= 0x38000000u) {
        if (f_exp < 0x33000000u) return h_sgn;
        f_exp >>= 23;
        f_sig = 0x00800000u + (f & 0x007fffffu);
        f_sig >>= (113 - f_exp);
        if ((f_sig & 0x00003fffu) != 0x00001000u || (f & 0x000007ffu)) f_sig += 0x00001000u;
        h_sig = (uint16_t)(f_sig >> 13);
        return (uint16_t)(h_sgn + h_sig);
    }
    h_exp = (uint16_t)((f_exp - 0x38000000u) >> 13);
    f_sig = f & 0x007fffffu;
    if ((f_sig & 0x00003fffu) != 0x00001000u) f_sig += 0x00001000u;
    h_sig = (uint16_t)(f_sig >> 13);
    h_sig = (uint16_t)(h_sig + h_exp);
    return (uint16_t)(h_sgn + h_sig);
}

static inline float f16_to_f32(uint16_t h) {
    uint32_t sgn = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ffu, f;
    if (e == 0) {
        if (m == 0) f = sgn;
        else { /* subnormal: exact */
            float v = (float)m * 0x1p-24f;
            memcpy(&f, &v, 4);
            f |= sgn;
        }
    } else if (e == 31) f = sgn | 0x7f800000u | (m << 13);
    else f = sgn | ((e + 112) << 23) | (m << 13);
    float out;
    memcpy(&out, &f, 4);
    return out;
}

/* float32 -> bfloat16 bits, round to nearest even (ml_dtypes); NaN -> quiet NaN of the same sign. */
static inline uint16_t f32_to_bf16(float fv) {
    uint32_t f;
    memcpy(&f, &fv, 4);
    if (fv != fv) return (uint16_t)((f >> 16) & 0x8000u) | 0x7FC0u;
    return (uint16_t)((f + 0x7FFFu + ((f >> 16) & 1u)) >> 16);
}

static inline float bf16_to_f32(uint16_t h) {
    uint32_t f = (uint32_t)h << 16;
    float out;
    memcpy(&out, &f, 4);
    return out;
}

/* ------------------------------------------------------------ compaction tables */
/* CTAB8[bits]: the set lanes of an 8-bit mask, in order, then zeros.  CTAB4[bits]: the
 * same for 4 lanes of 64 bits, as 32-bit lane pairs (for a 32-bit permute). */
static uint8_t CTAB8[256][8];
static uint32_t CTAB4[16][8];

static void init_tables(void) {
    for (int b = 0; b < 256; b++) {
        int k = 0;
        memset(CTAB8[b], 0, 8);
        for (int l = 0; l < 8; l++)
            if (b >> l & 1) CTAB8[b][k++] = (uint8_t)l;
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

/* ------------------------------------------------------------ kernels */
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
#define VSQRT8(x) vsqrt8_base(x)
#define VSQRT4(x) vsqrt4_base(x)
#define MASK8(m) mask8_base(m)
#define MASK4(m) mask4_base(m)
#define COMPRESS8(v, bits, dst, idx, base)                                                          \
    do {                                                                                            \
        for (int l_ = 0; l_ < 8; l_++) {                                                            \
            (dst)[l_] = (v)[CTAB8[bits][l_]];                                                       \
            (idx)[l_] = (base) + CTAB8[bits][l_];                                                   \
        }                                                                                           \
    } while (0)
#define COMPRESS4(v, bits, dst, idx, base)                                                          \
    do {                                                                                            \
        for (int l_ = 0; l_ < 4; l_++) {                                                            \
            (dst)[l_] = (v)[CTAB4[bits][2 * l_] >> 1];                                              \
            (idx)[l_] = (base) + (CTAB4[bits][2 * l_] >> 1);                                        \
        }                                                                                           \
    } while (0)
#include "kernel.h"
#undef KFN
#undef KATTR
#undef VSQRT8
#undef VSQRT4
#undef MASK8
#undef MASK4
#undef COMPRESS8
#undef COMPRESS4

#ifdef WI_X86
/* AVX2 Philox: eight blocks at once, 32x32->64 products with vpmuludq. */
__attribute__((target("avx2"))) static inline void mulhilo8(__m256i a, __m256i m, __m256i *hi, __m256i *lo) {
    __m256i pe = _mm256_mul_epu32(a, m);
    __m256i po = _mm256_mul_epu32(_mm256_srli_epi64(a, 32), m);
    *lo = _mm256_blend_epi32(pe, _mm256_slli_epi64(po, 32), 0xAA);
    *hi = _mm256_blend_epi32(_mm256_srli_epi64(pe, 32), po, 0xAA);
}

__attribute__((target("avx2"))) static void philox8_avx2(const uint32_t *c0in, const uint32_t *c1in, uint32_t k0in,
                                                          uint32_t k1in, uint32_t *out) {
    __m256i c0 = _mm256_loadu_si256((const __m256i *)c0in), c1 = _mm256_loadu_si256((const __m256i *)c1in);
    __m256i c2 = _mm256_setzero_si256(), c3 = _mm256_setzero_si256();
    const __m256i m0 = _mm256_set1_epi32((int)PH_M0), m1 = _mm256_set1_epi32((int)PH_M1);
    uint32_t k0 = k0in, k1 = k1in;
    for (int r = 0; r < 10; r++) {
        __m256i hi0, lo0, hi1, lo1;
        mulhilo8(c0, m0, &hi0, &lo0);
        mulhilo8(c2, m1, &hi1, &lo1);
        __m256i kk0 = _mm256_set1_epi32((int)k0), kk1 = _mm256_set1_epi32((int)k1);
        c0 = _mm256_xor_si256(_mm256_xor_si256(hi1, c1), kk0);
        c1 = lo1;
        c2 = _mm256_xor_si256(_mm256_xor_si256(hi0, c3), kk1);
        c3 = lo0;
        k0 += PH_W0; k1 += PH_W1;
    }
    /* 4x8 transpose to block-major word order */
    __m256 r0 = _mm256_castsi256_ps(c0), r1 = _mm256_castsi256_ps(c1);
    __m256 r2 = _mm256_castsi256_ps(c2), r3 = _mm256_castsi256_ps(c3);
    __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
    __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
    __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    _mm256_storeu_ps((float *)out, _mm256_permute2f128_ps(u0, u1, 0x20));
    _mm256_storeu_ps((float *)out + 8, _mm256_permute2f128_ps(u2, u3, 0x20));
    _mm256_storeu_ps((float *)out + 16, _mm256_permute2f128_ps(u0, u1, 0x31));
    _mm256_storeu_ps((float *)out + 24, _mm256_permute2f128_ps(u2, u3, 0x31));
}

/* Sequential blocks, sixteen at a time in two interleaved sets of eight. */
__attribute__((target("avx2"))) static inline void ctr8(uint64_t j, __m256i *c0, __m256i *c1) {
    uint32_t lo = (uint32_t)j;
    if (lo <= 0xFFFFFFF8u) {
        *c0 = _mm256_add_epi32(_mm256_set1_epi32((int)lo), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        *c1 = _mm256_set1_epi32((int)(uint32_t)(j >> 32));
    } else {
        uint32_t a0[8], a1[8];
        for (int l = 0; l < 8; l++) {
            a0[l] = (uint32_t)(j + (uint64_t)l);
            a1[l] = (uint32_t)((j + (uint64_t)l) >> 32);
        }
        *c0 = _mm256_loadu_si256((const __m256i *)a0);
        *c1 = _mm256_loadu_si256((const __m256i *)a1);
    }
}

__attribute__((target("avx2"))) static inline void store_t8(__m256i c0, __m256i c1, __m256i c2, __m256i c3,
                                                             uint32_t *out) {
    __m256 r0 = _mm256_castsi256_ps(c0), r1 = _mm256_castsi256_ps(c1);
    __m256 r2 = _mm256_castsi256_ps(c2), r3 = _mm256_castsi256_ps(c3);
    __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
    __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
    __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    _mm256_storeu_ps((float *)out, _mm256_permute2f128_ps(u0, u1, 0x20));
    _mm256_storeu_ps((float *)out + 8, _mm256_permute2f128_ps(u2, u3, 0x20));
    _mm256_storeu_ps((float *)out + 16, _mm256_permute2f128_ps(u0, u1, 0x31));
    _mm256_storeu_ps((float *)out + 24, _mm256_permute2f128_ps(u2, u3, 0x31));
}

__attribute__((target("avx2"))) static void philox_seq_avx2(uint64_t b0, size_t nblocks, uint32_t k0in,
                                                             uint32_t k1in, uint32_t *out) {
    const __m256i m0 = _mm256_set1_epi32((int)PH_M0), m1 = _mm256_set1_epi32((int)PH_M1);
    size_t b = 0;
    for (; b + 16 <= nblocks; b += 16) {
        __m256i a0, a1, a2 = _mm256_setzero_si256(), a3 = _mm256_setzero_si256();
        __m256i d0, d1, d2 = _mm256_setzero_si256(), d3 = _mm256_setzero_si256();
        ctr8(b0 + b, &a0, &a1);
        ctr8(b0 + b + 8, &d0, &d1);
        uint32_t k0 = k0in, k1 = k1in;
        for (int r = 0; r < 10; r++) {
            __m256i ahi0, alo0, ahi1, alo1, dhi0, dlo0, dhi1, dlo1;
            mulhilo8(a0, m0, &ahi0, &alo0);
            mulhilo8(d0, m0, &dhi0, &dlo0);
            mulhilo8(a2, m1, &ahi1, &alo1);
            mulhilo8(d2, m1, &dhi1, &dlo1);
            __m256i kk0 = _mm256_set1_epi32((int)k0), kk1 = _mm256_set1_epi32((int)k1);
            a0 = _mm256_xor_si256(_mm256_xor_si256(ahi1, a1), kk0);
            d0 = _mm256_xor_si256(_mm256_xor_si256(dhi1, d1), kk0);
            a1 = alo1;
            d1 = dlo1;
            a2 = _mm256_xor_si256(_mm256_xor_si256(ahi0, a3), kk1);
            d2 = _mm256_xor_si256(_mm256_xor_si256(dhi0, d3), kk1);
            a3 = alo0;
            d3 = dlo0;
            k0 += PH_W0;
            k1 += PH_W1;
        }
        store_t8(a0, a1, a2, a3, out + 4 * b);
        store_t8(d0, d1, d2, d3, out + 4 * b + 32);
    }
    for (; b < nblocks; b += 8) {
        __m256i c0, c1;
        ctr8(b0 + b, &c0, &c1);
        uint32_t a0[8], a1[8];
        _mm256_storeu_si256((__m256i *)a0, c0);
        _mm256_storeu_si256((__m256i *)a1, c1);
        philox8_avx2(a0, a1, k0in, k1in, out + 4 * b);
    }
}

/* Helpers shared by the AVX2 and AVX-512 instantiations of kernel.h (both use 256-bit vectors). */
#define VSQRT8(x) ((v8f)_mm256_sqrt_ps((__m256)(x)))
#define VSQRT4(x) ((v4d)_mm256_sqrt_pd((__m256d)(x)))
#define MASK8(m) _mm256_movemask_ps((__m256)(m))
#define MASK4(m) _mm256_movemask_pd((__m256d)(m))
#define COMPRESS8(v, bits, dst, idx, base)                                                          \
    do {                                                                                            \
        __m256i perm_ = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)CTAB8[bits]));        \
        _mm256_storeu_ps((float *)(dst), _mm256_permutevar8x32_ps((__m256)(v), perm_));             \
        _mm256_storeu_si256((__m256i *)(idx), _mm256_add_epi32(perm_, _mm256_set1_epi32((int)(base)))); \
    } while (0)
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
#include "kernel.h"
#undef KFN
#undef KATTR


/* ------------------------------------------------------------ AVX-512 */
/* Sixteen blocks per zmm register.  The 32x32->64 products are vpmuludq on the even
 * and the odd 32-bit lanes; one masked vpshufd each regroups the high and the low
 * halves, and vpternlogd does the three-way xor.  Same words as the other paths. */
#define WI_AVX512 "avx512f,avx512dq,avx512bw,avx512vl"
#define A512 __attribute__((target(WI_AVX512)))
#define A512_INLINE __attribute__((target(WI_AVX512), always_inline)) static inline

A512_INLINE void mulhilo16(__m512i a, __m512i m, __m512i *hi, __m512i *lo) {
    __m512i pe = _mm512_mul_epu32(a, m);                          /* products of the even lanes */
    __m512i po = _mm512_mul_epu32(_mm512_srli_epi64(a, 32), m);   /* products of the odd lanes */
    *hi = _mm512_mask_shuffle_epi32(po, 0x5555, pe, _MM_PERM_CDAB);
    *lo = _mm512_mask_shuffle_epi32(pe, 0xAAAA, po, _MM_PERM_CDAB);
}

/* Counters (j + l mod 2**32, (j + l) >> 32) of the sixteen blocks j .. j + 15. */
A512_INLINE void ctr16(uint64_t j, __m512i *c0, __m512i *c1) {
    uint32_t lo = (uint32_t)j;
    if (lo <= 0xFFFFFFF0u) {
        *c0 = _mm512_add_epi32(_mm512_set1_epi32((int)lo),
                               _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
        *c1 = _mm512_set1_epi32((int)(uint32_t)(j >> 32));
    } else {
        uint32_t a0[16], a1[16];
        for (int l = 0; l < 16; l++) {
            a0[l] = (uint32_t)(j + (uint64_t)l);
            a1[l] = (uint32_t)((j + (uint64_t)l) >> 32);
        }
        *c0 = _mm512_loadu_si512(a0);
        *c1 = _mm512_loadu_si512(a1);
    }
}

/* Philox4x32-10 of the 32 sequential blocks j .. j + 31 (two interleaved sets of 16):
 * words w of block j + l in x[w][0] lane l (l < 16) or x[w][1] lane l - 16. */
A512_INLINE void philox32_avx512(uint64_t j, uint32_t k0, uint32_t k1, __m512i x[4][2]) {
    const __m512i m0 = _mm512_set1_epi32((int)PH_M0), m1 = _mm512_set1_epi32((int)PH_M1);
    __m512i a0, a1, a2 = _mm512_setzero_si512(), a3 = _mm512_setzero_si512();
    __m512i d0, d1, d2 = _mm512_setzero_si512(), d3 = _mm512_setzero_si512();
    ctr16(j, &a0, &a1);
    ctr16(j + 16, &d0, &d1);
    for (int r = 0; r < 10; r++) {
        __m512i ahi0, alo0, ahi1, alo1, dhi0, dlo0, dhi1, dlo1;
        mulhilo16(a0, m0, &ahi0, &alo0);
        mulhilo16(d0, m0, &dhi0, &dlo0);
        mulhilo16(a2, m1, &ahi1, &alo1);
        mulhilo16(d2, m1, &dhi1, &dlo1);
        const __m512i kk0 = _mm512_set1_epi32((int)k0), kk1 = _mm512_set1_epi32((int)k1);
        a0 = _mm512_ternarylogic_epi32(ahi1, a1, kk0, 0x96);
        d0 = _mm512_ternarylogic_epi32(dhi1, d1, kk0, 0x96);
        a1 = alo1;
        d1 = dlo1;
        a2 = _mm512_ternarylogic_epi32(ahi0, a3, kk1, 0x96);
        d2 = _mm512_ternarylogic_epi32(dhi0, d3, kk1, 0x96);
        a3 = alo0;
        d3 = dlo0;
        k0 += PH_W0;
        k1 += PH_W1;
    }
    x[0][0] = a0; x[1][0] = a1; x[2][0] = a2; x[3][0] = a3;
    x[0][1] = d0; x[1][1] = d1; x[2][1] = d2; x[3][1] = d3;
}

/* Store r0..r3 (word w of block l in rw lane l) as 64 values in block-major order. */
A512_INLINE void store_t16(__m512 r0, __m512 r1, __m512 r2, __m512 r3, float *out) {
    __m512 t0 = _mm512_unpacklo_ps(r0, r1), t1 = _mm512_unpackhi_ps(r0, r1);
    __m512 t2 = _mm512_unpacklo_ps(r2, r3), t3 = _mm512_unpackhi_ps(r2, r3);
    /* 128-bit lane L of u_k: block 4L + k */
    __m512 u0 = _mm512_shuffle_ps(t0, t2, 0x44), u1 = _mm512_shuffle_ps(t0, t2, 0xEE);
    __m512 u2 = _mm512_shuffle_ps(t1, t3, 0x44), u3 = _mm512_shuffle_ps(t1, t3, 0xEE);
    __m512 a = _mm512_shuffle_f32x4(u0, u1, 0x44), b = _mm512_shuffle_f32x4(u2, u3, 0x44);
    __m512 c = _mm512_shuffle_f32x4(u0, u1, 0xEE), d = _mm512_shuffle_f32x4(u2, u3, 0xEE);
    _mm512_storeu_ps(out, _mm512_shuffle_f32x4(a, b, 0x88));
    _mm512_storeu_ps(out + 16, _mm512_shuffle_f32x4(a, b, 0xDD));
    _mm512_storeu_ps(out + 32, _mm512_shuffle_f32x4(c, d, 0x88));
    _mm512_storeu_ps(out + 48, _mm512_shuffle_f32x4(c, d, 0xDD));
}

A512 static void philox_seq_avx512(uint64_t b0, size_t nblocks, uint32_t k0, uint32_t k1, uint32_t *out) {
    size_t b = 0;
    for (; b + 32 <= nblocks; b += 32) {
        __m512i x[4][2];
        philox32_avx512(b0 + b, k0, k1, x);
        for (int s = 0; s < 2; s++)
            store_t16(_mm512_castsi512_ps(x[0][s]), _mm512_castsi512_ps(x[1][s]), _mm512_castsi512_ps(x[2][s]),
                      _mm512_castsi512_ps(x[3][s]), (float *)out + 4 * (b + 16 * (size_t)s));
    }
    if (b < nblocks) philox_seq_avx2(b0 + b, nblocks - b, k0, k1, out + 4 * b);
}

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

A512_INLINE void uniform32_body(const core_params *P, uint64_t b0, size_t nblocks, float *out, int clip) {
    const __m512 scale = _mm512_set1_ps(P->c32[0]);
    const __m512 offset = _mm512_set1_ps(P->c32[1]);
    const __m512 lo = _mm512_set1_ps(P->lo32), hi = _mm512_set1_ps(P->hi32);
    size_t b = 0;
    for (; b + 32 <= nblocks; b += 32) {
        __m512i x[4][2];
        philox32_avx512(b0 + b, P->k0, P->k1, x);
        for (int s = 0; s < 2; s++) {
            __m512 y0 = uniform16_avx512(x[0][s], scale, offset, clip, lo, hi);
            __m512 y1 = uniform16_avx512(x[1][s], scale, offset, clip, lo, hi);
            __m512 y2 = uniform16_avx512(x[2][s], scale, offset, clip, lo, hi);
            __m512 y3 = uniform16_avx512(x[3][s], scale, offset, clip, lo, hi);
            store_t16(y0, y1, y2, y3, out + 4 * (b + 16 * (size_t)s));
        }
    }
    if (b < nblocks) { /* the last 16 blocks: compute 32, keep 16 */
        __m512i x[4][2];
        philox32_avx512(b0 + b, P->k0, P->k1, x);
        __m512 y0 = uniform16_avx512(x[0][0], scale, offset, clip, lo, hi);
        __m512 y1 = uniform16_avx512(x[1][0], scale, offset, clip, lo, hi);
        __m512 y2 = uniform16_avx512(x[2][0], scale, offset, clip, lo, hi);
        __m512 y3 = uniform16_avx512(x[3][0], scale, offset, clip, lo, hi);
        store_t16(y0, y1, y2, y3, out + 4 * b);
    }
}

/* Blocks b0 .. b0 + nblocks - 1 (nblocks a multiple of 16): the values at flat indices 4*b0 ... */
A512 static void uniform32_avx512(const core_params *P, uint64_t b0, size_t nblocks, float *out) {
    if (P->has_clip) uniform32_body(P, b0, nblocks, out, 1);
    else uniform32_body(P, b0, nblocks, out, 0);
}

/* The per-value kernels once more for the AVX-512 target (256-bit vectors with EVEX
 * encodings: vpternlogd, mask registers); bit-identical operations. */
#define KFN(name) name##_avx512
#define KATTR __attribute__((target(WI_AVX512), unused))
#include "kernel.h"
#undef KFN
#undef KATTR
#undef VSQRT8
#undef VSQRT4
#undef MASK8
#undef MASK4
#undef COMPRESS8
#undef COMPRESS4

#endif

/* ------------------------------------------------------------ dispatch */
typedef struct {
    const char *name;
    void (*philox8)(const uint32_t *, const uint32_t *, uint32_t, uint32_t, uint32_t *);
    void (*philox_seq)(uint64_t, size_t, uint32_t, uint32_t, uint32_t *);
    void (*values32)(const core_params *, const uint32_t *, size_t, float *, float *, uint32_t *);
    void (*values64)(const core_params *, const uint32_t *, size_t, double *, double *, uint32_t *);
    void (*finish32)(const core_params *, const float *, size_t, void *);
    void (*finish64)(const core_params *, const double *, size_t, void *);
    /* optional fused uniform float32 -> float32 writer: nblocks (multiple of 16) from block b0 */
    void (*uniform32)(const core_params *, uint64_t, size_t, float *);
} simd_impl;

static const simd_impl IMPL_BASE = {"generic",     philox8_base,  philox_seq_base, values32_base,
                                    values64_base, finish32_base, finish64_base,   NULL};
#ifdef WI_X86
static const simd_impl IMPL_AVX2 = {"avx2",        philox8_avx2,  philox_seq_avx2, values32_avx2,
                                    values64_avx2, finish32_avx2, finish64_avx2,   NULL};
static const simd_impl IMPL_AVX512 = {"avx512",        philox8_avx2,    philox_seq_avx512, values32_avx512,
                                      values64_avx512, finish32_avx512, finish64_avx512,   uniform32_avx512};
#endif
static const simd_impl *IMPL = &IMPL_BASE;

static int cpu_has_avx2(void) {
#ifdef WI_X86
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2");
#else
    return 0;
#endif
}

static int cpu_has_avx512(void) {
#ifdef WI_X86
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("avx512f") &&
           __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl");
#else
    return 0;
#endif
}

/* ------------------------------------------------------------ tiles */
#define TILE 1024 /* values per tile: fits L1 with its words */

typedef struct {
    const core_params *P;
    const simd_impl *impl;
    char *out;          /* output base */
    size_t itemsize;
    uint64_t start;     /* flat index of out[0] (range mode) */
    const uint64_t *idx; /* flat indices (index mode) or NULL */
    size_t pos0, pos1;  /* this worker's part of out */
} job;

/* Values pos0 .. pos1 - 1 of the job through L1-sized tiles (words, values, store). */
static void run_tiles(const job *J, size_t pos0, size_t pos1) {
    const core_params *P = J->P;
    const simd_impl *I = J->impl;
    const int w = P->words, per_block = 4 / w;
    uint32_t words[2 * (TILE + 16) + 64] __attribute__((aligned(32)));
    float v32[TILE + 16] __attribute__((aligned(32)));
    double v64[TILE + 16] __attribute__((aligned(32)));
    float p32[TILE + 16] __attribute__((aligned(32)));
    double p64[TILE + 16] __attribute__((aligned(32)));
    uint32_t tidx[TILE + 16];
    uint32_t c0[8], c1[8], blk[32];
    for (size_t pos = pos0; pos < pos1; pos += TILE) {
        size_t n = pos1 - pos < TILE ? pos1 - pos : TILE;
        size_t nv = (n + 7) & ~(size_t)7; /* values computed (vector multiple) */
        const uint32_t *wp;
        if (!J->idx) {
            uint64_t i0 = J->start + pos;
            uint64_t b0 = i0 / (uint64_t)per_block;
            size_t off = (size_t)(i0 - b0 * (uint64_t)per_block);
            size_t nwords = (off + nv) * (size_t)w;
            size_t nblocks = ((nwords + 3) / 4 + 7) & ~(size_t)7;
            I->philox_seq(b0, nblocks, P->k0, P->k1, words);
            wp = words + off * (size_t)w;
        } else {
            const uint64_t *ix = J->idx + pos;
            for (size_t v = 0; v < nv; v += 8) {
                int m = (int)((n - v) < 8 ? (n - v) : 8);
                for (int l = 0; l < 8; l++) {
                    uint64_t j = l < m ? ix[v + l] / (uint64_t)per_block : 0;
                    c0[l] = (uint32_t)j;
                    c1[l] = (uint32_t)(j >> 32);
                }
                I->philox8(c0, c1, P->k0, P->k1, blk);
                for (int l = 0; l < 8; l++) {
                    uint64_t lane = l < m ? ix[v + l] % (uint64_t)per_block : 0;
                    for (int t = 0; t < w; t++) words[(v + l) * w + t] = blk[4 * l + lane * w + t];
                }
            }
            wp = words;
        }
        char *dst = J->out + pos * J->itemsize;
        if (w == 1) {
            I->values32(P, wp, nv, v32, p32, tidx);
            I->finish32(P, v32, n, dst);
        } else {
            I->values64(P, wp, nv, v64, p64, tidx);
            I->finish64(P, v64, n, dst);
        }
    }
}

static void run_job(const job *J) {
    const core_params *P = J->P;
    if (J->impl->uniform32 && !J->idx && P->kind == KIND_UNIFORM && P->otype == OUT_F32) {
        /* fused path for whole blocks: a head up to the next block, 64-value groups, a tail */
        uint64_t i0 = J->start + J->pos0;
        size_t n = J->pos1 - J->pos0;
        size_t head = (size_t)((4u - (unsigned)(i0 & 3u)) & 3u);
        if (head > n) head = n;
        size_t mid = (n - head) / 64 * 64;
        if (mid) {
            if (head) run_tiles(J, J->pos0, J->pos0 + head);
            J->impl->uniform32(P, (i0 + head) >> 2, mid / 4, (float *)J->out + J->pos0 + head);
            if (J->pos0 + head + mid < J->pos1) run_tiles(J, J->pos0 + head + mid, J->pos1);
            return;
        }
    }
    run_tiles(J, J->pos0, J->pos1);
}

static void *job_thread(void *arg) {
    run_job((const job *)arg);
    return NULL;
}

#define MIN_PER_THREAD 32768
#define MAX_THREADS 256

/* Split [0, n) into contiguous parts (multiples of TILE) and run them; returns 0 or an errno. */
static int run_parallel(job base, size_t n, int nthreads) {
    if (nthreads < 1) nthreads = 1;
    if (nthreads > MAX_THREADS) nthreads = MAX_THREADS;
    size_t max_useful = n / MIN_PER_THREAD;
    if ((size_t)nthreads > max_useful) nthreads = max_useful < 1 ? 1 : (int)max_useful;
    if (nthreads == 1) {
        base.pos0 = 0;
        base.pos1 = n;
        run_job(&base);
        return 0;
    }
    job jobs[MAX_THREADS];
    pthread_t tids[MAX_THREADS];
    int started[MAX_THREADS];
    size_t per = (n + (size_t)nthreads - 1) / (size_t)nthreads;
    per = (per + TILE - 1) / TILE * TILE;
    int err = 0;
    for (int t = 0; t < nthreads; t++) {
        jobs[t] = base;
        jobs[t].pos0 = (size_t)t * per < n ? (size_t)t * per : n;
        jobs[t].pos1 = (size_t)(t + 1) * per < n ? (size_t)(t + 1) * per : n;
        started[t] = 0;
    }
    for (int t = 1; t < nthreads; t++) {
        if (jobs[t].pos0 >= jobs[t].pos1) continue;
        if (pthread_create(&tids[t], NULL, job_thread, &jobs[t]) == 0) started[t] = 1;
    }
    run_job(&jobs[0]);
    for (int t = 1; t < nthreads; t++) {
        if (started[t]) pthread_join(tids[t], NULL);
        else if (jobs[t].pos0 < jobs[t].pos1) run_job(&jobs[t]); /* thread could not start: do it here */
    }
    return err;
}

/* ------------------------------------------------------------ Python */
static PyObject *py_fill(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer out, idx;
    int kind, words, otype, has_clip, nthreads;
    double c[6], lo, hi;
    unsigned long long start;
    unsigned int k0, k1;
    PyObject *idx_obj;
    if (!PyArg_ParseTuple(args, "w*iii(dddddd)iddIIKOi", &out, &kind, &words, &otype, &c[0], &c[1], &c[2], &c[3],
                          &c[4], &c[5], &has_clip, &lo, &hi, &k0, &k1, &start, &idx_obj, &nthreads))
        return NULL;
    static const size_t isz[4] = {2, 2, 4, 8};
    if (kind < 0 || kind > 2 || otype < 0 || otype > 3 || (words != 1 && words != 2) ||
        ((otype == OUT_F64) != (words == 2))) {
        PyBuffer_Release(&out);
        PyErr_SetString(PyExc_ValueError, "weightinit._core_ext.fill: inconsistent kind / words / output type");
        return NULL;
    }
    if (out.len % (Py_ssize_t)isz[otype] != 0) {
        PyBuffer_Release(&out);
        PyErr_SetString(PyExc_ValueError, "weightinit._core_ext.fill: buffer size is not a multiple of the item size");
        return NULL;
    }
    size_t n = (size_t)out.len / isz[otype];
    int have_idx = idx_obj != Py_None;
    if (have_idx) {
        if (PyObject_GetBuffer(idx_obj, &idx, PyBUF_C_CONTIGUOUS) < 0) {
            PyBuffer_Release(&out);
            return NULL;
        }
        if ((size_t)idx.len != n * sizeof(uint64_t)) {
            PyBuffer_Release(&idx);
            PyBuffer_Release(&out);
            PyErr_SetString(PyExc_ValueError, "weightinit._core_ext.fill: need one uint64 index per output value");
            return NULL;
        }
    }
    core_params P;
    memset(&P, 0, sizeof P);
    P.kind = kind;
    P.words = words;
    P.otype = otype;
    P.has_clip = has_clip;
    for (int i = 0; i < 6; i++) {
        P.c32[i] = (float)c[i];
        P.c64[i] = c[i];
    }
    P.lo64 = lo;
    P.hi64 = hi;
    P.lo32 = (float)lo;
    P.hi32 = (float)hi;
    P.lo16 = otype == OUT_BF16 ? f32_to_bf16(P.lo32) : f32_to_f16(P.lo32);
    P.hi16 = otype == OUT_BF16 ? f32_to_bf16(P.hi32) : f32_to_f16(P.hi32);
    P.k0 = k0;
    P.k1 = k1;
    job J;
    memset(&J, 0, sizeof J);
    J.P = &P;
    J.impl = IMPL;
    J.out = (char *)out.buf;
    J.itemsize = isz[otype];
    J.start = (uint64_t)start;
    J.idx = have_idx ? (const uint64_t *)idx.buf : NULL;
    if (n) {
        Py_BEGIN_ALLOW_THREADS
        run_parallel(J, n, nthreads);
        Py_END_ALLOW_THREADS
    }
    if (have_idx) PyBuffer_Release(&idx);
    PyBuffer_Release(&out);
    Py_RETURN_NONE;
}

static PyObject *py_simd(PyObject *self, PyObject *args) {
    (void)self;
    const char *name = NULL;
    if (!PyArg_ParseTuple(args, "|z", &name)) return NULL;
    if (name) {
        if (strcmp(name, "generic") == 0) IMPL = &IMPL_BASE;
#ifdef WI_X86
        else if (strcmp(name, "avx2") == 0 && cpu_has_avx2()) IMPL = &IMPL_AVX2;
        else if (strcmp(name, "avx512") == 0 && cpu_has_avx512()) IMPL = &IMPL_AVX512;
#endif
        else {
            PyErr_Format(PyExc_ValueError, "SIMD path %s is not available on this CPU", name);
            return NULL;
        }
    }
    return PyUnicode_FromString(IMPL->name);
}

static PyObject *py_simd_paths(PyObject *self, PyObject *noargs) {
    (void)self;
    (void)noargs;
#ifdef WI_X86
    if (cpu_has_avx512()) return Py_BuildValue("(sss)", "generic", "avx2", "avx512");
    if (cpu_has_avx2()) return Py_BuildValue("(ss)", "generic", "avx2");
#endif
    return Py_BuildValue("(s)", "generic");
}

static PyMethodDef methods[] = {
    {"fill", py_fill, METH_VARARGS,
     "fill(out, kind, words, otype, consts6, has_clip, lo, hi, k0, k1, start, indices, nthreads)\n\n"
     "Write stream values into the writable buffer `out` (GIL released)."},
    {"simd", py_simd, METH_VARARGS, "simd([name]) -> the active SIMD path ('generic', 'avx2' or 'avx512'); sets it if given."},
    {"simd_paths", py_simd_paths, METH_NOARGS, "SIMD paths this CPU can run."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef moddef = {PyModuleDef_HEAD_INIT, "weightinit._core_ext",
                                    "Compiled CPU executor of the weightinit stream (docs/random.md).", -1, methods,
                                    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__core_ext(void) {
    init_tables();
#ifdef WI_X86
    if (cpu_has_avx512()) IMPL = &IMPL_AVX512;
    else if (cpu_has_avx2()) IMPL = &IMPL_AVX2;
#endif
    return PyModule_Create(&moddef);
}
