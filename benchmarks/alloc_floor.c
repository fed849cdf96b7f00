/* The floor of an allocating call (docs/performance.md, issue 15): what a fresh buffer costs over a
 * resident one, for a plain memset and for the compiled core's generators, on 2 threads.
 *
 *   gcc -O3 -ffp-contract=off -fno-fast-math -fno-math-errno -pthread -Wno-psabi \
 *       -I src/weightinit/executors/_core benchmarks/alloc_floor.c -o /tmp/alloc_floor -lm
 *   /tmp/alloc_floor [reps=20] [values=3e7]
 *
 * Each buffer kind is timed in turn, call by call (interleaved), and the minimum of `reps` calls is
 * printed as wall time and as process CPU time (which moves much less than wall time when other jobs
 * share the machine).  A fresh buffer is mmap + madvise + fill + munmap, as NumPy's allocation of a
 * large array is; "populate" adds MADV_POPULATE_WRITE (Linux >= 5.14) on each chunk just before the
 * worker fills it.  x86-64 Linux with AVX2 or AVX-512, whichever is wider (it measures, it is not part of
 * the package).
 */
#define _GNU_SOURCE
#pragma GCC diagnostic ignored "-Wunused-function" /* the core's headers: only run_job is used */
#pragma GCC diagnostic ignored "-Wunused-variable"
#include "common.h"
#include "constants.h"
#include "philox.h"
#include "convert.h"
#include "targets.h"
#include "fused.h"
#include "dispatch.h"
#include <stdio.h>
#include <time.h>
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

static double wall(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}
static double cpu(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

typedef struct {
    job J;        /* the core's job (P == NULL: memset) */
    size_t chunk; /* bytes per MADV_POPULATE_WRITE, 0: plain first touch */
} part;

static void fill_range(job *J, size_t pos0, size_t pos1) {
    if (!J->P) {
        memset(J->out + 4 * pos0, 1, 4 * (pos1 - pos0));
        return;
    }
    static __thread tile_scratch *scratch; /* one per worker thread, kept across calls */
    if (!scratch && !(scratch = aligned_alloc(64, sizeof *scratch))) abort();
    job s = *J;
    s.S = scratch;
    s.pos0 = pos0, s.pos1 = pos1;
    run_job(&s);
}

static void *worker(void *arg) {
    part *w = (part *)arg;
    job *J = &w->J;
    size_t step = w->chunk ? w->chunk / 4 : J->pos1 - J->pos0;
    for (size_t p = J->pos0; p < J->pos1; p += step) {
        size_t e = p + step < J->pos1 ? p + step : J->pos1;
        if (w->chunk) {
            uintptr_t a = ((uintptr_t)(J->out + 4 * p) + 4095) & ~(uintptr_t)4095;
            uintptr_t b = (uintptr_t)(J->out + 4 * e) & ~(uintptr_t)4095;
            if (b > a) (void)madvise((void *)a, b - a, MADV_POPULATE_WRITE); /* a failure: plain first touch */
        }
        fill_range(J, p, e);
    }
    return NULL;
}

static void run2(job base, size_t n, size_t chunk) {
    size_t per = ((n + 1) / 2 + TILE - 1) / TILE * TILE;
    if (per > n) per = n; /* a small n: one worker fills it all (b gets an empty range) */
    part a = {base, chunk}, b = {base, chunk};
    a.J.pos0 = 0, a.J.pos1 = per, b.J.pos0 = per, b.J.pos1 = n;
    pthread_t t;
    int started = pthread_create(&t, NULL, worker, &b) == 0;
    worker(&a);
    if (started) pthread_join(t, NULL);
    else worker(&b);
}

int main(int argc, char **argv) {
    int reps = argc > 1 ? atoi(argv[1]) : 20;
    size_t n = argc > 2 ? (size_t)atof(argv[2]) : 30000000;
    if (!__builtin_cpu_supports("avx2")) {
        fprintf(stderr, "needs AVX2\n");
        return 1;
    }
    init_tables();
    const simd_impl *impl = cpu_has_avx512() ? &IMPL_AVX512 : &IMPL_AVX2; /* the core's default on this CPU */
    const size_t huge = (size_t)1 << 21, bytes = 4 * n, mapped = bytes + huge;
    enum { NBUF = 5 };
    const char *bufname[NBUF] = {"resident", "fresh, huge pages", "fresh, huge pages, populate 2 MiB",
                                 "fresh, 4 KiB pages", "fresh, 4 KiB pages, populate 256 KiB"};
    const int thp[NBUF] = {1, 1, 1, 0, 0};
    const size_t chunk[NBUF] = {0, 0, 2u << 20, 0, 256u << 10};
    const char *kindname[4] = {"memset", "uniform", "normal", "truncated normal"};
    core_params P[4];
    memset(P, 0, sizeof P);
    for (int k = 1; k < 4; k++) P[k].words = 1, P[k].otype = OUT_F32, P[k].k0 = 123, P[k].k1 = 456;
    P[1].kind = KIND_UNIFORM, P[1].c32[0] = 1.0f, P[1].has_clip = 1, P[1].hi32 = 0x1.fffffep-1f;
    P[2].kind = KIND_NORMAL, P[2].c32[0] = 1.0f;
    /* TruncatedNormal(0, 1, -2, 2): d = ndtr(2) - ndtr(-2), pa = ndtr(-2) (rounded to float32) */
    P[3].kind = KIND_TRUNCNORM, P[3].c32[0] = 0.95449974f, P[3].c32[1] = 0.022750132f;
    P[3].c32[2] = 0x1p-126f, P[3].c32[3] = 0x1.fffffep-1f, P[3].c32[4] = 1.0f;
    P[3].has_clip = 1, P[3].lo32 = -2.0f, P[3].hi32 = 2.0f;
    char *resident = mmap(NULL, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (resident == MAP_FAILED) return 1;
    char *res = (char *)(((uintptr_t)resident + huge - 1) & ~(uintptr_t)(huge - 1));
    (void)madvise(res, bytes, MADV_HUGEPAGE);
    memset(res, 0, bytes);
    printf("%zu float32 values (%zu bytes), 2 threads, %s path, min of %d interleaved calls\n", n, bytes, impl->name,
           reps);
    for (int k = 0; k < 4; k++) {
        double bw[NBUF], bc[NBUF], load[3] = {0, 0, 0};
        for (int b = 0; b < NBUF; b++) bw[b] = bc[b] = 1e30;
        job base;
        memset(&base, 0, sizeof base);
        base.P = k ? &P[k] : NULL, base.impl = impl, base.itemsize = 4;
        for (int r = 0; r < reps; r++)
            for (int b = 0; b < NBUF; b++) {
                double t0 = wall(), c0 = cpu();
                char *map = NULL;
                if (b == 0) base.out = res;
                else {
                    map = mmap(NULL, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
                    if (map == MAP_FAILED) return 1;
                    base.out = (char *)(((uintptr_t)map + huge - 1) & ~(uintptr_t)(huge - 1));
                    (void)madvise(base.out, bytes, thp[b] ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
                }
                run2(base, n, chunk[b]);
                if (map) munmap(map, mapped);
                double w = wall() - t0, c = cpu() - c0;
                if (w < bw[b]) bw[b] = w;
                if (c < bc[b]) bc[b] = c;
            }
        (void)getloadavg(load, 3);
        printf("\n%s (load average %.2f):\n", kindname[k], load[0]);
        for (int b = 0; b < NBUF; b++)
            printf("  %-38s wall %8.2f ms (%.2fx of resident)   CPU %8.2f ms (%+.2f ms)\n", bufname[b], 1e3 * bw[b],
                   bw[0] / bw[b], 1e3 * bc[b], 1e3 * (bc[b] - bc[0]));
    }
    return 0;
}
