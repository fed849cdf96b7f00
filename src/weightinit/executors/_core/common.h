/* Types shared by every part of the compiled core: lane vectors, the per-call parameters. */
#ifndef WI_COMMON_H
#define WI_COMMON_H

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__linux__)
#include <sys/mman.h>
#include <unistd.h>
#endif

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
/* Two registers' worth: the tail branch of ndtri runs on these, so the compiler emits the two
 * halves' operations side by side and their long dependency chains (log, sqrt, division)
 * overlap. */
typedef float v16f __attribute__((vector_size(64)));
typedef int32_t v16i __attribute__((vector_size(64)));
typedef uint32_t v16u __attribute__((vector_size(64)));
typedef double v8d __attribute__((vector_size(64)));
typedef int64_t v8l __attribute__((vector_size(64)));
typedef uint64_t v8ul __attribute__((vector_size(64)));

/* Loops over the 1 to 4 registers of one step: unrolled, so each statement becomes one
 * instruction per register, side by side (independent dependency chains overlap). */
#if defined(__clang__)
#define UNROLL _Pragma("unroll")
#elif defined(__GNUC__)
#define UNROLL _Pragma("GCC unroll 4")
#else
#define UNROLL
#endif

#define splat8(c) ((v8f){(c), (c), (c), (c), (c), (c), (c), (c)})
#define splat4(c) ((v4d){(c), (c), (c), (c)})
#define splat16(c) ((v16f){(c), (c), (c), (c), (c), (c), (c), (c), (c), (c), (c), (c), (c), (c), (c), (c)})
#define splat8d(c) ((v8d){(c), (c), (c), (c), (c), (c), (c), (c)})

enum { KIND_UNIFORM = 0, KIND_NORMAL = 1, KIND_TRUNCNORM = 2 };
enum { OUT_F16 = 0, OUT_BF16 = 1, OUT_F32 = 2, OUT_F64 = 3, OUT_E4M3FN = 4, OUT_E5M2 = 5 };
typedef uint8_t v8ub __attribute__((vector_size(8)));

typedef struct {
    int kind;
    int words;  /* 1: float32 compute, 2: float64 compute */
    int otype;
    int has_clip;
    float c32[6];
    double c64[6];
    float lo32, hi32;  /* clip bounds as float32 (exact for f16 / bf16 / f32 / fp8) */
    double lo64, hi64;
    uint16_t lo16, hi16; /* clip bounds as half / bfloat16 bits */
    uint32_t k0, k1;
} core_params;

/* Float32 normal / truncated-normal constants held in locals (distributions.h) */
typedef struct {
    float d, pa, pmin, pmax, sd, mu, lo, hi;
} nconst32;

#endif /* WI_COMMON_H */
