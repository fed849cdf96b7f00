"""8-bit float outputs (float8_e4m3fn, float8_e5m2): one exact rounding, the same bits on every executor.

The rounding (weightinit.random.float8) is checked against ml_dtypes' and torch's own casts on
every code, every midpoint between codes and its float32 neighbours, and a million random
float32 bit patterns; then the compiled core (every SIMD path this CPU runs), the torch
executor (its device path, run on CPU) and the JAX executor against the NumPy reference.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats

import weightinit as wi
from weightinit.common.shapes import RegionPlan
from weightinit.executors import compiled as _compiled
from weightinit.executors import reference as _reference
from weightinit.random.distributions import Normal, TruncatedNormal, Uniform, make_plan
from weightinit.random.float8 import E4M3FN, E5M2, round_bits, to_float8

FORMATS = [E4M3FN, E5M2]
KEY = (0x12345678, 0x9ABCDEF0)
DISTS = {
    "uniform": Uniform(-0.3, 0.7),
    "uniform_wide": Uniform(-448.0, 448.0),  # e4m3fn's whole range (wider parameters are refused by the plan)
    "normal": Normal(0.1, 2.0),
    "normal_subnormal": Normal(0.0, 1e-3),  # e4m3fn subnormals (|x| < 2**-6)
    "normal_tiny": Normal(0.0, 2e-5),  # e5m2 subnormals (|x| < 2**-14)
    "normal_wide": Normal(0.0, 70.0),  # reaches +-437 (6.24 std): e4m3fn's top codes, no overflow
    "tn_sym": TruncatedNormal(0.0, 1.0, -2.0, 2.0),
    "tn_mirror": TruncatedNormal(1.0, 0.5, 1.2, 9.0),
    "tn_half": TruncatedNormal(0.0, 3.0, 0.0, np.inf),
}


def _edge_inputs(fmt) -> np.ndarray:
    codes = np.arange(256, dtype=np.uint8).view(fmt.dtype).astype(np.float32)
    c = np.unique(codes[np.isfinite(codes)])
    mids = ((c[1:].astype(np.float64) + c[:-1]) / 2).astype(np.float32)  # exact in float32
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 2**32, 10**6, dtype=np.uint64).astype(np.uint32).view(np.float32)
    specials = np.array([np.inf, -np.inf, 0.0, -0.0, 1e-45, 3e38, 2 * fmt.max, -2 * fmt.max], np.float32)
    return np.concatenate(
        [c, mids, np.nextafter(mids, np.float32(np.inf)), np.nextafter(mids, np.float32(-np.inf)), noise, specials]
    )


def _expected(x: np.ndarray, fmt) -> np.ndarray:
    """ml_dtypes' round-to-nearest-even cast, with e4m3fn's saturation (ml_dtypes gives NaN there)."""
    if fmt is E4M3FN:
        with np.errstate(invalid="ignore"):
            x = np.where(np.abs(x) > fmt.max, np.copysign(np.float32(fmt.max), x), x).astype(np.float32)
    return x.astype(fmt.dtype)


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f.name)
def test_rounding_is_round_to_nearest_even_with_the_stated_overflow(fmt):
    x = _edge_inputs(fmt)
    got = to_float8(x, fmt.dtype)
    nan = np.isnan(x)
    assert np.array_equal(got.view(np.uint8)[~nan], _expected(x, fmt).view(np.uint8)[~nan])
    assert np.isnan(got.astype(np.float32)[nan]).all()
    # the stated overflow rules
    big = to_float8(np.array([1e30, -1e30, np.inf], np.float32), fmt.dtype).astype(np.float32)
    want = [fmt.max, -fmt.max, fmt.max] if fmt is E4M3FN else [np.inf, -np.inf, np.inf]
    assert big.tolist() == want


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f.name)
def test_torch_native_cast_agrees(fmt):
    torch = pytest.importorskip("torch")
    x = _edge_inputs(fmt)
    x = x[~np.isnan(x)]
    native = torch.from_numpy(x).to(getattr(torch, fmt.name)).view(torch.uint8).numpy()
    assert np.array_equal(native, to_float8(x, fmt.dtype).view(np.uint8))


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f.name)
def test_round_bits_in_torch_and_jax(fmt):
    """The one integer rounding gives the same codes on NumPy, torch (int64) and JAX (uint32) arrays."""
    torch = pytest.importorskip("torch")
    jnp = pytest.importorskip("jax.numpy")
    x = _edge_inputs(fmt)
    want = to_float8(x, fmt.dtype).view(np.uint8)
    t = torch.from_numpy(x.view(np.int32).astype(np.int64) & 0xFFFFFFFF)
    assert np.array_equal(round_bits(t, fmt, torch.where).numpy().astype(np.uint8), want)
    j = jnp.asarray(x.view(np.uint32))
    assert np.array_equal(np.asarray(round_bits(j, fmt, jnp.where)).astype(np.uint8), want)


def _reference_range(plan, start, n):
    out = np.empty(n, plan.dtype)
    _reference.fill_range(plan, KEY, start, out)
    return out


@pytest.mark.skipif(not _compiled.available(), reason="compiled core not built")
@pytest.mark.parametrize("path", ["generic", "avx2", "avx512"])
@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f.name)
def test_compiled_core_equals_reference(fmt, path):
    if path not in _compiled._core_ext.simd_paths():
        pytest.skip(f"this CPU cannot run the {path} path")
    old = _compiled.simd()
    _compiled.simd(path)
    try:
        for name, dist in DISTS.items():
            plan = make_plan(dist, fmt.dtype)
            for start, n in ((0, 1), (5, 777), (2**32 - 3, 100), (0, 70001)):
                got = np.empty(n, plan.dtype)
                _compiled.fill_array(plan, KEY, start, got, threads=2)
                assert np.array_equal(got.view(np.uint8), _reference_range(plan, start, n).view(np.uint8)), (
                    name,
                    start,
                )
            idx = np.array([7, 0, 2**33 + 1, 12345, 3], np.uint64)
            got = np.empty(idx.size, plan.dtype)
            _compiled.fill_array(plan, KEY, 0, got, indices=idx)
            want = np.empty(idx.size, plan.dtype)
            _reference.fill_indices(plan, KEY, idx, want)
            assert np.array_equal(got.view(np.uint8), want.view(np.uint8)), name
    finally:
        _compiled.simd(old)


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f.name)
def test_torch_executor_equals_reference(fmt):
    torch = pytest.importorskip("torch")
    from weightinit.executors.torch import fill_, fill_device_

    tdt = getattr(torch, fmt.name)
    shape = (37, 29)
    for name, dist in DISTS.items():
        want = wi.sample(dist, wi.Stream(5), shape, fmt.dtype, executor=_reference)
        t = torch.empty(shape, dtype=tdt)  # torch-ops path (the one GPUs run), small chunks
        fill_device_(t, make_plan(dist, fmt.dtype), wi.Stream(5).key, RegionPlan(shape, None), chunk=100)
        assert np.array_equal(t.view(torch.uint8).numpy(), want.view(np.uint8)), name
        t = fill_(torch.empty(shape, dtype=tdt), dist, wi.Stream(5))  # CPU: the compiled core
        assert np.array_equal(t.view(torch.uint8).numpy(), want.view(np.uint8)), name


def test_torch_functions_accept_float8():
    torch = pytest.importorskip("torch")
    import weightinit.torch as wt

    for tdt, dt in ((torch.float8_e4m3fn, E4M3FN.dtype), (torch.float8_e5m2, E5M2.dtype)):
        t = wt.normal_(torch.empty(64, 32, dtype=tdt), std=0.02, seed=3)
        want = wt.normal_(torch.empty(64, 32), std=0.02, seed=3).numpy()
        assert np.array_equal(t.view(torch.uint8).numpy(), to_float8(want, dt).view(np.uint8))
        t = wt.trunc_normal_(torch.empty(64, 32, dtype=tdt), std=0.02, seed=3)
        assert t.dtype == tdt and float(t.float().abs().max()) <= 2.0


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f.name)
def test_jax_executor_equals_reference(fmt):
    jax = pytest.importorskip("jax")
    from weightinit.executors import jax as jex

    shape = (37, 29)
    for name, dist in DISTS.items():
        want = wi.sample(dist, wi.Stream(5), shape, fmt.dtype, executor=_reference)
        got = np.asarray(jax.jit(lambda k, d=dist: jex.sample(d, k, shape, fmt.dtype))(jex.key_words(wi.Stream(5))))
        assert got.dtype == fmt.dtype
        assert np.array_equal(got.view(np.uint8), want.view(np.uint8)), name
        region = (slice(3, 20), slice(1, 28, 3))
        got = np.asarray(jex.sample(dist, wi.Stream(5), shape, fmt.dtype, region))
        assert np.array_equal(got.view(np.uint8), np.ascontiguousarray(want[region]).view(np.uint8)), name


_NO_TEMP_CASES = [
    *[((1 << 16,), d, t) for d in ("uniform", "normal", "tn_sym") for t in ("float8_e4m3fn", "float8_e5m2")],
    ((256, 256), "normal", "float8_e4m3fn"),
    (((1 << 16) + 3,), "normal", "float8_e5m2"),  # not whole blocks: the elementwise path
    ((1 << 16,), "normal", "float16"),
]


@pytest.mark.parametrize("shape,dist,dtype", _NO_TEMP_CASES, ids=str)
def test_jax_fp8_has_no_per_value_temporary(shape, dist, dtype):
    """Under jit the output is the only per-value buffer: XLA fuses generation and rounding.

    The blocked path computes each block position's values and interleaves the results, so the
    Philox words are never materialized; shapes that are not whole blocks use the elementwise path.
    """
    jax = pytest.importorskip("jax")
    from weightinit.executors import jax as jex

    n = int(np.prod(shape))
    f = jax.jit(lambda k: jex.sample(DISTS[dist], k, shape, dtype))
    mem = f.lower(jex.key_words(wi.Stream(0))).compile().memory_analysis()
    if mem is None:
        pytest.skip("this XLA backend reports no memory analysis")
    assert mem.output_size_in_bytes == n * (2 if dtype == "float16" else 1)
    assert mem.temp_size_in_bytes < n // 64, mem.temp_size_in_bytes


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f.name)
def test_ks_at_the_formats_resolution(fmt, ks_pvalue):
    """Normal and truncated normal in fp8 follow the rounded continuous CDF; a 2x variance error fails."""
    n = 1 << 16  # D_crit(1e-3) ~ 0.0076: far below the KS distance of a 2x variance error (~0.08)
    x = wi.sample(Normal(0.0, 1.0), wi.Stream(11), (n,), fmt.dtype)
    assert ks_pvalue(x, stats.norm(0.0, 1.0).cdf) > 1e-3
    assert ks_pvalue(x, stats.norm(0.0, np.sqrt(2.0)).cdf) < 1e-6
    x = wi.sample(TruncatedNormal(0.0, 1.0, -2.0, 2.0), wi.Stream(12), (n,), fmt.dtype)
    assert ks_pvalue(x, stats.truncnorm(-2.0, 2.0).cdf, upper_clip=2.0) > 1e-3


def test_every_initializer_that_takes_float16_takes_float8():
    from weightinit.initializers.base import RandomInitializer
    from weightinit.registry.api import builtin_classes

    checked = 0
    for cls in builtin_classes():
        if not issubclass(cls, RandomInitializer):
            continue
        try:
            init = cls(seed=1)
            half = init((8, 6), "float16")
        except (TypeError, ValueError):
            continue
        for fmt in FORMATS:
            got = init((8, 6), fmt.dtype)
            assert got.dtype == fmt.dtype and got.shape == half.shape, cls.__name__
            assert not np.isnan(got.astype(np.float32)).any(), cls.__name__
            if cls.elementwise:  # the float32 values, rounded once (clips may pick a neighbour)
                f32 = init((8, 6), "float32")
                sub = 2.0 ** (1 - fmt.bias - fmt.mant)  # the format's subnormal spacing
                assert np.allclose(got.astype(np.float32), f32, rtol=2.0**-fmt.mant, atol=sub), cls.__name__
        checked += 1
    assert checked >= 20


_KERAS_CODE = """
import numpy as np, keras, weightinit.keras as wk
from weightinit.random.float8 import to_float8
for dt in ("float8_e4m3fn", "float8_e5m2"):
    t = wk.TruncatedNormal(stddev=0.02, seed=3)((16, 8), dtype=dt)
    assert keras.backend.standardize_dtype(t.dtype) == dt, t.dtype
    # torch tensors of fp8 have no .numpy(): compare through float32 (exact for fp8 values)
    x = keras.ops.convert_to_numpy(keras.ops.cast(t, "float32"))
    want = to_float8(keras.ops.convert_to_numpy(wk.TruncatedNormal(stddev=0.02, seed=3)((16, 8), dtype="float32")), dt)
    assert np.array_equal(x.view(np.uint32), want.astype(np.float32).view(np.uint32)), dt
print("ok")
"""


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_keras_float8(backend):
    """Keras backends with fp8 dtypes (jax, torch) get the stream's fp8 values (one subprocess each)."""
    pytest.importorskip("keras")
    env = {**os.environ, "KERAS_BACKEND": backend}
    out = subprocess.run([sys.executable, "-c", _KERAS_CODE], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-2000:]
