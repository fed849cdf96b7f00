/* Dispatch: the SIMD implementation table chosen at run time, L1-sized tiles, and the split of
 * one request over threads by counter range.
 */
#ifndef WI_DISPATCH_H
#define WI_DISPATCH_H

typedef struct {
    const char *name;
    void (*philox8)(const uint32_t *, const uint32_t *, uint32_t, uint32_t, uint32_t *);
    void (*philox_seq)(uint64_t, size_t, uint32_t, uint32_t, uint32_t *);
    void (*values32)(const core_params *, const uint32_t *, size_t, float *, uint32_t *, float *, int);
    void (*values64)(const core_params *, const uint32_t *, size_t, double *, double *, uint32_t *);
    void (*finish32)(const core_params *, const float *, size_t, void *);
    void (*finish64)(const core_params *, const double *, size_t, void *);
    /* optional fused uniform float32 -> float32 writer: nblocks (multiple of 16) from block b0.
     * (A fused normal writer was measured slower than the tiles on AVX2: the register pressure
     * of eight word vectors plus the ndtri polynomials costs more than the L1 round trips.) */
    void (*uniform32)(const core_params *, uint64_t, size_t, float *);
    /* copy bytes to memory with non-temporal (streaming) stores, or NULL: plain stores only */
    void (*stream_copy)(void *, const void *, size_t);
} simd_impl;

#ifdef WI_X86
/* Streaming stores for outputs much larger than the caches: written once and not read soon, so
 * they go to memory without first reading each line into the cache (which halves the traffic
 * of a plain store).  The 32-byte-aligned middle is streamed, the ends are plain copies. */
__attribute__((target("avx2"))) static void stream_copy_avx2(void *dst, const void *src, size_t bytes) {
    char *d = (char *)dst;
    const char *s = (const char *)src;
    size_t head = (size_t)(-(uintptr_t)d & 31u);
    if (head > bytes) head = bytes;
    memcpy(d, s, head);
    d += head, s += head, bytes -= head;
    for (; bytes >= 32; bytes -= 32, d += 32, s += 32)
        _mm256_stream_si256((__m256i *)d, _mm256_loadu_si256((const __m256i *)s));
    memcpy(d, s, bytes);
}
#endif

static const simd_impl IMPL_BASE = {"generic",     philox8_base,  philox_seq_base, values32_base,
                                    values64_base, finish32_base, finish64_base,   NULL, NULL};
#ifdef WI_X86
static const simd_impl IMPL_AVX2 = {"avx2",        philox8_avx2,  philox_seq_avx2, values32_avx2,
                                    values64_avx2, finish32_avx2, finish64_avx2,   uniform32_avx2, stream_copy_avx2};
static const simd_impl IMPL_AVX512 = {"avx512",        philox8_avx2,    philox_seq_avx512, values32_avx512,
                                      values64_avx512, finish32_avx512, finish64_avx512,   uniform32_avx512,
                                      stream_copy_avx2};
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
#define TILE 2048 /* values per tile: its words, values and output fit L1 (float32) */
_Static_assert(TILE <= N32_MAX, "normal32_body takes at most N32_MAX values");

/* A worker's tile scratch, about 100 KB: never on the calling thread's stack, whose size the caller
 * chooses (threading.stack_size); see caller_scratch and work_thread. */
typedef struct {
    uint32_t words[2 * (TILE + 16) + 64];
    float v32[TILE + 16];
    double v64[TILE + 16];
    uint32_t x32[TILE + N32_PAD]; /* float32 normals (normal32.h): the tail lanes' words ... */
    float t32[TILE + N32_PAD];    /* ... and values */
    double p64[TILE + 16];
    uint32_t tidx[TILE + 16];
    char stage[TILE * 8]; /* finished tile before a streaming copy */
} __attribute__((aligned(64))) tile_scratch;

typedef struct {
    const core_params *P;
    const simd_impl *impl;
    tile_scratch *S;    /* this worker's scratch */
    char *out;          /* output base */
    size_t itemsize;
    uint64_t start;     /* flat index of out[0] (range mode) */
    const uint64_t *idx; /* flat indices (index mode) or NULL */
    size_t pos0, pos1;  /* this worker's part of out */
    int stream;         /* write through stream_copy (large outputs, see STREAM_MIN) */
} job;

/* Outputs of at least this many bytes are written with streaming stores (when the SIMD path has
 * them).  Off by default: on the 2-core AVX2 (Zen 3) machine this was measured on, 3.4e7 float32
 * values with 2 threads ran slower streamed than with plain stores (uniform 730-940 vs 730-1110
 * M/s, normal 360-375 vs 390-490 M/s): the writes are not the bottleneck there, and the staging
 * copy is extra work.  The path stays tested (tests/executors/test_compiled.py sets the threshold
 * through _set_stream_min) for measuring it on other machines. */
static size_t STREAM_MIN = SIZE_MAX;

/* Whether the page holding p is in memory.  A fresh allocation's pages are not: each is zeroed by
 * the kernel when first touched, which leaves it in the cache, so plain stores that follow hit the
 * cache and a streaming store would only evict it (measured slower).  Unknown: resident. */
static int page_resident(const void *p) {
#if defined(__linux__)
    long ps = sysconf(_SC_PAGESIZE);
    if (ps <= 0) return 1;
    unsigned char v = 1;
    void *page = (void *)((uintptr_t)p & ~((uintptr_t)ps - 1));
    if (mincore(page, (size_t)ps, &v) != 0) return 1;
    return v & 1;
#else
    (void)p;
    return 1;
#endif
}

/* Streaming stores for this output: large, already in memory, and a SIMD path that has them. */
static int use_streaming(const simd_impl *impl, const void *buf, size_t bytes) {
    return impl->stream_copy && bytes >= STREAM_MIN && bytes > 0 && page_resident((const char *)buf + bytes / 2);
}

/* Values pos0 .. pos1 - 1 of the job through L1-sized tiles (words, values, store). */
static void run_tiles(const job *J, size_t pos0, size_t pos1) {
    const core_params *P = J->P;
    const simd_impl *I = J->impl;
    const int w = P->words, per_block = 4 / w;
    tile_scratch *S = J->S;
    uint32_t *words = S->words, *x32 = S->x32, *tidx = S->tidx;
    float *v32 = S->v32, *t32 = S->t32;
    double *v64 = S->v64, *p64 = S->p64;
    char *stage = S->stage;
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
        const size_t bytes = n * J->itemsize;
        if (w == 1) {
            /* float32 output: the values, clipped by values32 where the plan has a clip, are the output
             * (measured at 3e7 values, 2 threads: the truncated normal's CPU time per call 65 ms against
             * 71 ms with the clip as a second pass over the tile, normal unchanged at 62 ms) */
            const int final = P->otype == OUT_F32, clip = final && P->has_clip;
            if (final && !J->stream && n == nv) { /* straight into the output */
                I->values32(P, wp, nv, (float *)dst, x32, t32, clip);
                continue;
            }
            I->values32(P, wp, nv, v32, x32, t32, clip);
            if (final && J->stream) I->stream_copy(dst, v32, bytes);
            else if (J->stream) {
                I->finish32(P, v32, n, stage);
                I->stream_copy(dst, stage, bytes);
            } else I->finish32(P, v32, n, dst);
        } else {
            const int plain = !P->has_clip; /* float64 output: the values are the output */
            if (plain && !J->stream && n == nv) {
                I->values64(P, wp, nv, (double *)dst, p64, tidx);
                continue;
            }
            I->values64(P, wp, nv, v64, p64, tidx);
            if (plain && J->stream) I->stream_copy(dst, v64, bytes);
            else if (J->stream) {
                I->finish64(P, v64, n, stage);
                I->stream_copy(dst, stage, bytes);
            } else I->finish64(P, v64, n, dst);
        }
    }
}

/* Fused uniform float32 values for flat indices 4*b0 ... (nblocks a multiple of 16) into out,
 * through an L1-sized staging buffer when the job streams. */
static void run_fused(const job *J, uint64_t b0, size_t nblocks, float *out) {
    void (*fused)(const core_params *, uint64_t, size_t, float *) = J->impl->uniform32;
    if (!J->stream) {
        fused(J->P, b0, nblocks, out);
        return;
    }
    float *stage = J->S->v32;
    for (size_t b = 0; b < nblocks; b += TILE / 4) {
        size_t nb = nblocks - b < TILE / 4 ? nblocks - b : TILE / 4;
        fused(J->P, b0 + b, nb, stage);
        J->impl->stream_copy(out + 4 * b, stage, nb * 4 * sizeof(float));
    }
}

static void run_job(const job *J) {
    const core_params *P = J->P;
    size_t head = 0, mid = 0;
    if (J->impl->uniform32 && !J->idx && P->kind == KIND_UNIFORM && P->otype == OUT_F32) {
        /* fused path for whole blocks: a head up to the next block, 64-value groups, a tail */
        uint64_t i0 = J->start + J->pos0;
        size_t n = J->pos1 - J->pos0;
        head = (size_t)((4u - (unsigned)(i0 & 3u)) & 3u);
        if (head > n) head = n;
        mid = (n - head) / 64 * 64;
        if (mid) {
            if (head) run_tiles(J, J->pos0, J->pos0 + head);
            run_fused(J, (i0 + head) >> 2, mid / 4, (float *)J->out + J->pos0 + head);
            if (J->pos0 + head + mid < J->pos1) run_tiles(J, J->pos0 + head + mid, J->pos1);
        }
    }
    if (!mid) run_tiles(J, J->pos0, J->pos1);
#if defined(WI_X86) && defined(__SSE__)
    if (J->stream) _mm_sfence(); /* streaming stores are weakly ordered: make them visible before the join */
#endif
}

/* Large outputs: ask for transparent huge pages on the 2 MiB-aligned interior, so a fresh
 * buffer is faulted in 2 MiB at a time (by the workers, each touching its own part first);
 * harmless on memory already present.  Linux only; a failure is ignored. */
static void advise_huge_pages(void *buf, size_t bytes) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    const uintptr_t huge = (uintptr_t)1 << 21;
    if (bytes < 4 * huge) return;
    uintptr_t a = ((uintptr_t)buf + huge - 1) & ~(huge - 1), e = ((uintptr_t)buf + bytes) & ~(huge - 1);
    if (e > a) (void)madvise((void *)a, (size_t)(e - a), MADV_HUGEPAGE);
#else
    (void)buf;
    (void)bytes;
#endif
}

#define MIN_PER_THREAD 32768
#define MAX_THREADS 256

#define MAX_CHUNK 65536 /* values per chunk at most: about 20-60 us of work */
_Static_assert(MAX_CHUNK % TILE == 0, "chunks are whole tiles");

/* The calling thread's tile scratch: allocated on its first call and kept (thread-specific data,
 * freed when the thread exits), so repeated small calls allocate nothing.  NULL if it cannot be
 * allocated. */
static pthread_key_t scratch_key;
static int scratch_key_ok;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static void scratch_key_init(void) {
    scratch_key_ok = pthread_key_create(&scratch_key, free) == 0;
}
static tile_scratch *caller_scratch(void) {
    (void)pthread_once(&scratch_once, scratch_key_init);
    if (!scratch_key_ok) return NULL;
    tile_scratch *S = (tile_scratch *)pthread_getspecific(scratch_key);
    if (S) return S;
    S = (tile_scratch *)aligned_alloc(64, sizeof(tile_scratch));
    if (S && pthread_setspecific(scratch_key, S) != 0) {
        free(S);
        S = NULL;
    }
    return S;
}

/* One request shared by the workers: each takes the next chunk of [0, n) until none is left. */
typedef struct {
    job base;
    size_t n, chunk;
    size_t next; /* the first value no worker has taken (atomic) */
} work;

static void run_chunks(work *W, tile_scratch *S) {
    for (;;) {
        const size_t p0 = __atomic_fetch_add(&W->next, W->chunk, __ATOMIC_RELAXED);
        if (p0 >= W->n) return;
        job J = W->base;
        J.S = S;
        J.pos0 = p0;
        J.pos1 = W->n - p0 < W->chunk ? W->n : p0 + W->chunk;
        run_job(&J);
    }
}

/* A worker thread's scratch lives on its own stack, which run_parallel sizes. */
static void *work_thread(void *arg) {
    tile_scratch S;
    run_chunks((work *)arg, &S);
    return NULL;
}

/* Run [0, n) on up to nthreads threads (the caller's among them); returns 0, or ENOMEM when the
 * calling thread's scratch cannot be allocated (nothing is written then).  The workers take chunks
 * of at most MAX_CHUNK values (a multiple of TILE, at least four per thread) from a shared counter,
 * so a thread slowed by other work on its core (a shared machine, an efficiency core) takes fewer
 * of them instead of holding up the whole call; each worker first-touches the chunks it writes.
 * The values never depend on the split. */
static int run_parallel(job base, size_t n, int nthreads) {
    if (nthreads < 1) nthreads = 1;
    if (nthreads > MAX_THREADS) nthreads = MAX_THREADS;
    size_t max_useful = n / MIN_PER_THREAD;
    if ((size_t)nthreads > max_useful) nthreads = max_useful < 1 ? 1 : (int)max_useful;
    tile_scratch *S = caller_scratch();
    if (!S) return ENOMEM;
    if (nthreads == 1) {
        base.S = S;
        base.pos0 = 0;
        base.pos1 = n;
        run_job(&base);
        return 0;
    }
    work W;
    W.base = base;
    W.n = n;
    W.chunk = (n + 4 * (size_t)nthreads - 1) / (4 * (size_t)nthreads);
    W.chunk = (W.chunk + TILE - 1) / TILE * TILE;
    if (W.chunk > MAX_CHUNK) W.chunk = MAX_CHUNK;
    W.next = 0;
    pthread_attr_t attr, *pattr = NULL;
    if (pthread_attr_init(&attr) == 0) { /* room for the scratch plus 1 MiB, never less than the default */
        size_t have = 0, want = sizeof(tile_scratch) + ((size_t)1 << 20);
        if (pthread_attr_getstacksize(&attr, &have) == 0 && have < want) (void)pthread_attr_setstacksize(&attr, want);
        pattr = &attr;
    }
    pthread_t tids[MAX_THREADS];
    int started[MAX_THREADS];
    for (int t = 1; t < nthreads; t++) started[t] = pthread_create(&tids[t], pattr, work_thread, &W) == 0;
    if (pattr) (void)pthread_attr_destroy(pattr);
    run_chunks(&W, S); /* threads that could not start leave their chunks to the others */
    for (int t = 1; t < nthreads; t++)
        if (started[t]) pthread_join(tids[t], NULL);
    return 0;
}

#endif /* WI_DISPATCH_H */
