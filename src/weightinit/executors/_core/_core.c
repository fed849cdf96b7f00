/* weightinit._core_ext: the compiled CPU executor of the weightinit stream.
 *
 * Implements docs/random.md exactly: Philox4x32-10 words, the uniform / normal /
 * truncated-normal per-value steps (constants come from Python's make_plan), the
 * cast to float16 / bfloat16 / float32 / float64 / float8_e4m3fn / float8_e5m2 (round to
 * nearest even) and the
 * clip.  Values are written straight into a caller-provided buffer with the GIL
 * released; large requests are split over threads by counter range.
 *
 * Build: -O3 -ffp-contract=off -fno-fast-math, no -march.  AVX-512 (F/DQ/BW/VL) and
 * AVX2 paths (target attributes) are chosen at run time when the CPU has them; the
 * baseline path is portable C with vector extensions.  All give the same bits.
 * The AVX-512 and AVX2 paths write uniform float32 outputs straight from the Philox
 * registers (fused.h); everything else goes through L1-sized tiles.  Streaming
 * (non-temporal) stores are available but off by default (dispatch.h, STREAM_MIN).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>


#include "common.h"
#include "constants.h"  /* generated from the Python owners by gen_constants.py */
#include "philox.h"     /* Philox4x32-10: portable, AVX2, AVX-512 */
#include "convert.h"    /* scalar dtype conversions */
#include "targets.h"    /* special functions, distributions, writers per SIMD target */
#include "fused.h"      /* fused Philox -> output writers */
#include "dispatch.h"   /* SIMD table, tiles, threads */

/* ------------------------------------------------------------ Python bindings */
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
    static const size_t isz[6] = {2, 2, 4, 8, 1, 1};
    if (kind < 0 || kind > 2 || otype < 0 || otype > 5 || (words != 1 && words != 2) ||
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
    /* fp8 outputs clip in float32 (writers.h); lo16 / hi16 serve float16 and bfloat16 */
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
    J.stream = use_streaming(J.impl, J.out, n * J.itemsize);
    int err = 0;
    if (n) {
        Py_BEGIN_ALLOW_THREADS
        advise_huge_pages(J.out, n * J.itemsize);
        err = run_parallel(J, n, nthreads);
        Py_END_ALLOW_THREADS
    }
    if (have_idx) PyBuffer_Release(&idx);
    PyBuffer_Release(&out);
    if (err) return PyErr_NoMemory(); /* the calling thread's tile scratch (about 100 KB) */
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

/* Testing hook: set the smallest output (bytes) written with streaming stores; returns the old value. */
static PyObject *py_set_stream_min(PyObject *self, PyObject *args) {
    (void)self;
    unsigned long long bytes;
    if (!PyArg_ParseTuple(args, "K", &bytes)) return NULL;
    size_t old = STREAM_MIN;
    STREAM_MIN = (size_t)bytes;
    return PyLong_FromSize_t(old);
}

static PyMethodDef methods[] = {
    {"fill", py_fill, METH_VARARGS,
     "fill(out, kind, words, otype, consts6, has_clip, lo, hi, k0, k1, start, indices, nthreads)\n\n"
     "Write stream values into the writable buffer `out` (GIL released)."},
    {"simd", py_simd, METH_VARARGS, "simd([name]) -> the active SIMD path ('generic', 'avx2' or 'avx512'); sets it if given."},
    {"simd_paths", py_simd_paths, METH_NOARGS, "SIMD paths this CPU can run."},
    {"_set_stream_min", py_set_stream_min, METH_VARARGS,
     "_set_stream_min(bytes) -> old: outputs of at least `bytes` in memory use streaming stores (off by default; for tests and measurements)."},
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

