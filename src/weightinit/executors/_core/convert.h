/* Scalar dtype conversions (round to nearest even, as NumPy and ml_dtypes do). */
#ifndef WI_CONVERT_H
#define WI_CONVERT_H
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

/* float32 -> 8-bit float (weightinit.random.float8.round_bits, docs/random.md "fp8 outputs"):
 * round to nearest even with mant mantissa bits and exponent bias, subnormals kept, a
 * positive overflow gives the code ovf (e4m3fn: 0x7E = 448, saturating; e5m2: 0x7C = inf),
 * NaN gives nan_code; integer operations only. */
typedef struct {
    int mant, bias;
    uint32_t ovf, nan_code;
} fp8_format;

static const fp8_format FP8_E4M3FN = {3, 7, 0x7Eu, 0x7Fu};
static const fp8_format FP8_E5M2 = {2, 15, 0x7Cu, 0x7Eu};

static inline uint8_t f32_to_fp8(float fv, const fp8_format *F) {
    uint32_t bits;
    memcpy(&bits, &fv, 4);
    const int shift = 23 - F->mant;
    uint32_t s = (bits >> 31) << 7, a = bits & 0x7FFFFFFFu, r;
    if (a > 0x7F800000u) return (uint8_t)(s | F->nan_code);
    if (a >= (uint32_t)(128 - F->bias) << 23) {
        uint32_t v = a - ((uint32_t)(127 - F->bias) << 23);
        r = (v + ((1u << (shift - 1)) - 1u) + ((v >> shift) & 1u)) >> shift;
    } else {
        int sh = (151 - F->bias - F->mant) - (int)(a >> 23);
        uint32_t m = (a & 0x7FFFFFu) | 0x800000u;
        r = sh >= 25 ? 0u : (m + ((1u << (sh - 1)) - 1u) + ((m >> sh) & 1u)) >> sh;
    }
    if (r > F->ovf) r = F->ovf;
    return (uint8_t)(s | r);
}

#endif /* WI_CONVERT_H */
