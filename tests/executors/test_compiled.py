"""The compiled core equals the NumPy reference bit for bit (docs/random.md, section 7).

Every distribution and output dtype, both SIMD paths, 1, 2 and 3 threads, odd sizes,
ranges starting at odd offsets and beyond 2**32, gathered indices, and the driver's
regions.  No timings here: benchmarks live in benchmarks/throughput.py.
"""

from __future__ import annotations

import os
import subprocess
import sys

import ml_dtypes
import numpy as np
import pytest

import weightinit as wi
from weightinit.common.errors import InitializerTypeError, InitializerValueError
from weightinit.executors import compiled as _compiled
from weightinit.executors import reference as _reference
from weightinit.random.distributions import Normal, TruncatedNormal, Uniform, make_plan

# Only reachable with WEIGHTINIT_NO_EXTENSION=1: otherwise tests/conftest.py stops the run when the core is missing.
pytestmark = pytest.mark.skipif(
    not _compiled.available(), reason="compiled core not built (WEIGHTINIT_NO_EXTENSION=1 chose a NumPy-only run)"
)

DTYPES = [np.dtype(np.float16), np.dtype(ml_dtypes.bfloat16), np.dtype(np.float32), np.dtype(np.float64)]
DISTS = {
    "uniform": Uniform(-0.3, 0.7),
    "uniform_tiny": Uniform(0.0, 1e-6),  # float16 subnormals and clip at the edges
    "normal": Normal(0.1, 2.0),
    "tn_sym": TruncatedNormal(0.0, 1.0, -2.0, 2.0),
    "tn_mirror": TruncatedNormal(1.0, 0.5, 1.2, 9.0),
    "tn_far_tail": TruncatedNormal(0.0, 1.0, -np.inf, -6.0),
    "tn_half": TruncatedNormal(0.0, 3.0, 0.0, np.inf),
}
_AVAILABLE_PATHS = set(_compiled._core_ext.simd_paths()) if _compiled.available() else set()
PATHS = [
    pytest.param(
        p,
        marks=pytest.mark.skipif(p not in _AVAILABLE_PATHS, reason=f"this CPU cannot run the {p} path"),
    )
    for p in ("generic", "avx2", "avx512")
]
KEY = (0x12345678, 0x9ABCDEF0)


def bits(x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x)
    return x.view({1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}[x.dtype.itemsize])


def assert_same(a: np.ndarray, b: np.ndarray) -> None:
    if not np.array_equal(bits(a), bits(b)):
        bad = np.nonzero(bits(a) != bits(b))[0]
        raise AssertionError(f"{bad.size} values differ, first at {bad[:5]}: {a[bad[:3]]} vs {b[bad[:3]]}")


@pytest.fixture(params=PATHS)
def simd_path(request):
    old = _compiled.simd()
    _compiled.simd(request.param)
    yield request.param
    _compiled.simd(old)


def reference_range(plan, start: int, n: int) -> np.ndarray:
    out = np.empty(n, plan.dtype)
    _reference.fill_range(plan, KEY, start, out)
    return out


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize("dist", list(DISTS), ids=str)
@pytest.mark.parametrize(
    "start,n",
    [
        (0, 1),
        (0, 1031),
        (5, 777),
        (3, 9),
        (2**32 - 3, 1001),
        (2**40 + 1, 50),
        (2**33 - 301, 1001),  # float64 block counters cross 2**32
        (2**34 - 301, 1001),  # float32 block counters cross 2**32
    ],
)
def test_range_matches_reference(simd_path, dist, dtype, start, n):
    plan = make_plan(DISTS[dist], dtype)
    out = np.empty(n, plan.dtype)
    _compiled.fill_array(plan, KEY, start, out, threads=1)
    assert_same(out, reference_range(plan, start, n))


@pytest.mark.parametrize("dtype", [np.dtype(np.float32), np.dtype(np.float16)], ids=lambda d: d.name)
@pytest.mark.parametrize("dist", ["normal", "tn_sym", "tn_far_tail"])
def test_every_step_remainder(simd_path, dist, dtype):
    """Every count of values left after the float32 normals' last full central step.

    normal32.h steps over 2 or 4 registers of 8 or 16 lanes and finishes the rest of a 2048-value tile
    through a local copy, whose lanes past the end are computed and discarded; float32 outputs are written
    in place, float16 ones through the tile buffer.  Counts 1-71 and around 1024 and one tile, from an odd
    start.
    """
    plan = make_plan(DISTS[dist], dtype)
    for n in [*range(1, 72), *range(1024 - 8, 1024 + 72, 3), *range(2048 - 8, 2048 + 72, 3)]:
        out = np.empty(n, plan.dtype)
        _compiled.fill_array(plan, KEY, 11, out, threads=1)
        assert_same(out, reference_range(plan, 11, n))


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize("dist", ["uniform", "normal", "tn_sym"])
def test_threads_give_the_same_bits(simd_path, dist, dtype, threads):
    n, start = 3 * 32768 + 4097, 2**32 - 1001  # three threads' worth, crossing 2**32 words
    plan = make_plan(DISTS[dist], dtype)
    out = np.empty(n, plan.dtype)
    _compiled.fill_array(plan, KEY, start, out, threads=threads)
    assert_same(out, reference_range(plan, start, n))


@pytest.mark.parametrize("dist", ["uniform", "uniform_tiny"])
def test_fused_uniform_float32_edges(simd_path, dist):
    """Every head / body / tail split of the fused float32 uniform writer (AVX-512 path)."""
    plan = make_plan(DISTS[dist], np.float32)
    for start in (0, 1, 2, 3, 2**34 - 64 * 5 - 2):
        ref = reference_range(plan, start, 700)
        for n in (63, 64, 65, 67, 127, 128, 129, 131, 190, 195, 700):
            for lead in (0, 1, 2, 3):  # output pointer alignment
                buf = np.empty(n + lead, np.float32)
                out = buf[lead:]
                _compiled.fill_array(plan, KEY, start, out, threads=1)
                assert_same(out, ref[:n])


@pytest.fixture
def streaming():
    """Every output in memory uses the streaming-store writer (off by default, see dispatch.h)."""
    old = _compiled._core_ext._set_stream_min(0)
    yield
    _compiled._core_ext._set_stream_min(old)


FP8 = [np.dtype(ml_dtypes.float8_e4m3fn), np.dtype(ml_dtypes.float8_e5m2)]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", DTYPES + FP8, ids=lambda d: d.name)
@pytest.mark.parametrize("dist", ["uniform", "normal", "tn_sym", "tn_far_tail"])
def test_streaming_stores_give_the_same_bits(simd_path, streaming, dist, dtype, threads):
    """Streaming stores: tiles staged in L1, aligned middles streamed, every output alignment and length."""
    plan = make_plan(DISTS[dist], dtype)
    n0, start = 2 * 32768 + 2 * 1024 + 37, 2**34 - 1501
    ref = reference_range(plan, start, n0 + 8)
    for lead in (0, 1, 3):  # output pointer alignment
        for n in (n0, n0 - 5, 8, 1):
            buf = np.empty(n + lead + 8, plan.dtype)
            buf.view(np.uint8)[:] = 0  # pages in memory: the writer streams only into those
            out = buf[lead : lead + n]
            _compiled.fill_array(plan, KEY, start, out, threads=threads)
            assert_same(out, ref[:n])
            assert not bits(buf[:lead]).any() and not bits(buf[lead + n :]).any()  # nothing written outside


@pytest.mark.parametrize("path", ["generic", "avx2", "avx512"])
def test_simd_env_selects_the_path(path):
    if path not in _AVAILABLE_PATHS:
        pytest.skip(f"this CPU cannot run the {path} path")
    code = "import weightinit.executors.compiled as c; print(c.simd())"
    env = {**os.environ, "WEIGHTINIT_SIMD": path}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.strip() == path


def test_default_path_is_the_widest():
    code = "import weightinit.executors.compiled as c; print(c.simd())"
    env = {k: v for k, v in os.environ.items() if k != "WEIGHTINIT_SIMD"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    widest = next(p for p in ("avx512", "avx2", "generic") if p in _AVAILABLE_PATHS)
    assert out.stdout.strip() == widest


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize("dist", list(DISTS), ids=str)
def test_indices_match_reference(simd_path, dist, dtype):
    rng = np.random.default_rng(0)
    idx = np.concatenate([[0, 1, 2, 3, 7, 2**32 - 1, 2**32, 2**33 + 5], rng.integers(0, 2**45, 1000)]).astype(np.uint64)
    plan = make_plan(DISTS[dist], dtype)
    a = np.empty(idx.size, plan.dtype)
    b = np.empty(idx.size, plan.dtype)
    _reference.fill_indices(plan, KEY, idx, a)
    _compiled.EXECUTOR.fill_indices(plan, KEY, idx, b)
    assert_same(b, a)


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize(
    "shape,region",
    [
        ((37, 53), (slice(3, 30), slice(1, 50))),  # short gathered runs at odd offsets
        ((5, 300, 301), (slice(1, 4), slice(7, 290))),  # long runs
        ((1000, 7), (slice(999, 0, -3),)),  # negative steps
        ((2**31 + 11, 4), (slice(2**31 - 5, 2**31 + 9),)),  # flat indices beyond 2**32
        ((300000,), None),
    ],
)
@pytest.mark.parametrize("dtype", ["bfloat16", "float64"])
def test_sample_regions_match_reference(shape, region, dtype, threads):
    wi.set_num_threads(threads)
    try:
        for dist in (DISTS["normal"], DISTS["tn_mirror"], DISTS["uniform"]):
            stream = wi.Stream(7).child("w")
            got = wi.sample(dist, stream, shape, dtype, region)
            ref = wi.sample(dist, stream, shape, dtype, region, executor=wi.random.sampling._EXECUTORS[_reference.NAME])
            assert_same(got.ravel(), ref.ravel())
    finally:
        wi.set_num_threads(None)


def test_no_fused_multiply_add_on_any_path():
    """docs/performance.md: the built extension contains no FMA instruction (-ffp-contract=off), on any path.

    A fused multiply-add rounds once where the specification rounds twice, so one would change bits on the
    AVX2 and AVX-512 paths (both CPUs have FMA); the disassembly must still show AVX-512 code.
    """
    import shutil

    objdump = shutil.which("objdump")
    if objdump is None or sys.platform != "linux":
        pytest.skip("needs binutils' objdump on Linux")
    text = subprocess.run([objdump, "-d", _compiled._core_ext.__file__], capture_output=True, text=True, check=True)
    fma = [
        line
        for line in text.stdout.splitlines()
        if any(op in line for op in ("vfmadd", "vfmsub", "vfnmadd", "vfnmsub"))
    ]
    assert not fma, fma[:5]
    if os.uname().machine == "x86_64":  # the AVX-512 path is compiled in whatever the CPU
        assert "zmm" in text.stdout and "vdivps" in text.stdout


def test_concurrent_calls_from_python_threads():
    """Calls from several Python threads at once (the GIL released), each on 2 worker threads, give the same bits.

    Each calling thread has its own tile scratch and each call its own chunk counter (dispatch.h).
    """
    import threading

    plans = [make_plan(DISTS[d], np.dtype(np.float32)) for d in ("normal", "tn_sym", "uniform", "tn_half")]
    refs = [reference_range(p, 7, 150_000) for p in plans]
    bad = []

    def run(i):
        for _ in range(10):
            out = np.empty(150_000, np.float32)
            _compiled.fill_array(plans[i % 4], KEY, 7, out, threads=2)
            if not np.array_equal(bits(out), bits(refs[i % 4])):
                bad.append(i)

    workers = [threading.Thread(target=run, args=(i,)) for i in range(6)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    assert not bad


def test_runs_on_a_thread_with_a_small_stack():
    """The core keeps its tile scratch (about 100 KB a worker) off the calling thread's stack.

    A Python thread started after ``threading.stack_size(64 KiB)`` fills normals on 1 and 2 threads (a crash
    would end the subprocess with a signal), and the values are the reference's.
    """
    code = (
        "import threading, numpy as np\n"
        "from weightinit.executors import compiled, reference\n"
        "from weightinit.random.distributions import Normal, make_plan\n"
        "plan = make_plan(Normal(0.0, 1.0), np.float32)\n"
        "threading.stack_size(64 * 1024)\n"
        "got = {}\n"
        "def run():\n"
        "    for threads in (1, 2):\n"
        "        out = np.empty(200_000, np.float32)\n"
        "        compiled.fill_array(plan, (1, 2), 0, out, threads=threads)\n"
        "        got[threads] = out\n"
        "t = threading.Thread(target=run)\n"
        "t.start(); t.join()\n"
        "ref = np.empty(200_000, np.float32)\n"
        "reference.fill_range(plan, (1, 2), 0, ref)\n"
        "print(all(np.array_equal(got[k].view(np.uint32), ref.view(np.uint32)) for k in (1, 2)))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, (r.returncode, r.stderr[-2000:])
    assert r.stdout.strip() == "True"


def test_non_contiguous_output():
    plan = make_plan(DISTS["normal"], np.float32)
    buf = np.zeros(2 * 301, np.float32)
    _compiled.EXECUTOR.fill_range(plan, KEY, 11, buf[::2])
    assert_same(buf[::2], reference_range(plan, 11, 301))
    assert not buf[1::2].any()


def test_compiled_is_the_default_executor():
    assert wi.current_executor().name == "compiled"
    assert "compiled" in wi.executors()


def test_set_num_threads_validation():
    with pytest.raises(InitializerValueError):
        wi.set_num_threads(0)
    with pytest.raises(InitializerTypeError):
        wi.set_num_threads(1.5)
    wi.set_num_threads(3)
    assert wi.get_num_threads() == 3
    wi.set_num_threads(None)
    assert wi.get_num_threads() >= 1


def test_env_thread_setting():
    code = "import weightinit as wi; print(wi.get_num_threads())"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "WEIGHTINIT_NUM_THREADS": "5"},
    )
    assert out.stdout.strip() == "5"


def test_fallback_warns_once_and_uses_the_reference():
    code = (
        "import sys, warnings\n"
        "sys.modules['weightinit.executors._core_ext'] = None\n"
        "with warnings.catch_warnings(record=True) as w:\n"
        "    warnings.simplefilter('always')\n"
        "    import weightinit as wi\n"
        "    x = wi.sample(wi.Normal(0.0, 1.0), wi.Stream(0), (8,), 'float32')\n"
        "    wi.executors.compiled.register()\n"
        "print(sum(issubclass(x.category, wi.FallbackWarning) for x in w), wi.current_executor().name)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["1", "numpy-reference"]
