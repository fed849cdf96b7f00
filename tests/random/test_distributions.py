"""Distributions: the per-value steps of docs/random.md sections 4 and 6, and their statistics."""

from __future__ import annotations

import math

import ml_dtypes
import numpy as np
import pytest

import weightinit as wi
from weightinit.executors import reference as _reference
from weightinit.random.distributions import make_plan, next_down, next_up
from weightinit.random.special import ndtri32, ndtri64

stats = pytest.importorskip("scipy.stats")

DTYPES = ["float16", "bfloat16", "float32", "float64"]
N_KS = 100_000


def _np_dtype(name):
    return np.dtype(ml_dtypes.bfloat16) if name == "bfloat16" else np.dtype(name)


def _block_words(philox_py, key, n_blocks):
    return [w for j in range(n_blocks) for w in philox_py((j & 0xFFFFFFFF, j >> 32, 0, 0), key)]


# ---------------------------------------------------------------------------------------------
# Bit-level: values follow the spec's formulas from the words of the counter layout.
# ---------------------------------------------------------------------------------------------


def test_uniform_float32_follows_spec(philox_py):
    s = wi.Stream(11)
    words = _block_words(philox_py, s.key, 4)  # 16 values, one word each
    got = wi.sample(wi.Uniform(-3.0, 5.0), s, (16,), "float32")
    unit = np.array([(w >> 8) * 2.0**-24 for w in words], np.float32)
    expected = unit * np.float32(8.0) + np.float32(-3.0)
    np.testing.assert_array_equal(got, expected)


def test_uniform_float64_uses_53_bits(philox_py):
    s = wi.Stream(12)
    words = _block_words(philox_py, s.key, 8)  # 16 values, two words each
    got = wi.sample(wi.Uniform(0.0, 1.0), s, (16,), "float64")
    expected = [((words[2 * i] << 21) | (words[2 * i + 1] >> 11)) * 2.0**-53 for i in range(16)]
    assert got.tolist() == expected
    # Every value is k * 2**-53 with k using all 53 bits: the lowest bit is set half the time.
    many = wi.sample(wi.Uniform(0.0, 1.0), s, (N_KS,), "float64")
    k = (many * 2.0**53).astype(np.uint64)
    np.testing.assert_array_equal(k.astype(np.float64) * 2.0**-53, many)
    low = (k & np.uint64(1)).mean()
    assert abs(low - 0.5) < 4 * 0.5 / math.sqrt(N_KS)
    assert k.max() >= 2**52  # the top bit is used too


def test_normal_float32_follows_spec(philox_py):
    s = wi.Stream(13)
    words = np.array(_block_words(philox_py, s.key, 4), np.uint64)
    sign = (words >> np.uint64(31)).astype(bool)
    k = (words >> np.uint64(1)) & np.uint64(0x3FFFFFFF)
    p = ((2 * k + 1).astype(np.float64) * 2.0**-32).astype(np.float32)
    z = ndtri32(p)
    x = np.where(sign, -z, z)
    expected = np.float32(0.5) * x + np.float32(2.0)
    np.testing.assert_array_equal(wi.sample(wi.Normal(2.0, 0.5), s, (16,), "float32"), expected)


def test_normal_float64_follows_spec(philox_py):
    s = wi.Stream(14)
    words = _block_words(philox_py, s.key, 8)
    hi = np.array(words[0::2], np.uint64)
    lo = np.array(words[1::2], np.uint64)
    sign = (hi >> np.uint64(31)).astype(bool)
    k = ((hi & np.uint64(0x7FFFFFFF)) << np.uint64(21)) | (lo >> np.uint64(11))
    p = (2 * k + 1).astype(np.float64) * 2.0**-54
    z = ndtri64(p)
    expected = 1.0 * np.where(sign, -z, z) + 0.0
    np.testing.assert_array_equal(wi.sample(wi.Normal(0.0, 1.0), s, (16,), "float64"), expected)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_normal_is_exactly_symmetric(dtype):
    plan = make_plan(wi.Normal(0.0, 1.0), dtype)
    rng = np.random.default_rng(0)
    w = rng.integers(0, 2**32, size=(plan.words, 10_000), dtype=np.uint32)
    flipped = w.copy()
    flipped[0] ^= np.uint32(0x80000000)
    np.testing.assert_array_equal(_reference.values_from_words(plan, w), -_reference.values_from_words(plan, flipped))


def test_truncated_normal_float32_follows_spec(philox_py):
    s = wi.Stream(15)
    dist = wi.TruncatedNormalDistribution(0.0, 1.0, 0.5, 3.0)  # alpha + beta > 0: mirrored
    words = np.array(_block_words(philox_py, s.key, 4), np.uint64)
    u = ((2 * (words >> np.uint64(9)) + 1).astype(np.float64) * 2.0**-24).astype(np.float32)
    pa = stats.norm.cdf(-3.0)
    d = stats.norm.cdf(-0.5) - pa
    p = u * np.float32(d) + np.float32(pa)
    p = np.minimum(np.maximum(p, np.finfo(np.float32).tiny), np.float32(1 - 2.0**-24))
    y = np.float32(-1.0) * ndtri32(p) + np.float32(0.0)
    y = np.clip(y, np.float32(0.5), np.float32(3.0))
    np.testing.assert_array_equal(wi.sample(dist, s, (16,), "float32"), y)


# ---------------------------------------------------------------------------------------------
# Low precision: float16/bfloat16 are the float32 values rounded (then clipped to the bounds).
# ---------------------------------------------------------------------------------------------

LOWP_DISTS = [
    wi.Uniform(-0.05, 0.05),
    wi.Uniform(1.0, 1.0 + 2.0**-9),
    wi.Normal(0.0, 1.0),
    wi.Normal(-3.0, 0.01),
    wi.TruncatedNormalDistribution(0.0, 0.1, -0.2, 0.2),
    wi.TruncatedNormalDistribution(0.0, 1.0, 4.0, 6.0),
]


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("dist", LOWP_DISTS, ids=repr)
def test_low_precision_is_float32_rounded(dist, dtype):
    dt = _np_dtype(dtype)
    s = wi.Stream(21)
    f32 = wi.sample(dist, s, (20_000,), "float32")
    low = wi.sample(dist, s, (20_000,), dtype)
    assert low.dtype == dt
    rounded = f32.astype(dt)
    plan = make_plan(dist, dt)
    if plan.clip is None:
        np.testing.assert_array_equal(low.view(np.uint16), rounded.view(np.uint16))
    else:
        lo, hi = plan.clip
        r64 = rounded.astype(np.float64)
        inside = (r64 >= float(lo)) & (r64 <= float(hi))
        np.testing.assert_array_equal(low[inside].view(np.uint16), rounded[inside].view(np.uint16))
        # Outside the bounds, rounding moved a value by at most one step; it is clipped to the bound.
        np.testing.assert_array_equal(low[~inside].astype(np.float64), np.where(r64[~inside] > float(hi), hi, lo))
        out = r64[~inside]
        assert np.all((out == float(next_up(hi))) | (out == float(next_down(lo))))


def test_uniform_upper_bound_stays_strict_after_rounding():
    # In float32, unit * 2**-20 + 1 rounds up to 1 + 2**-20 for the largest units.
    dist = wi.Uniform(1.0, 1.0 + 2.0**-20)
    for dtype in ["float32", "float64"]:
        x = wi.sample(dist, wi.Stream(3), (N_KS,), dtype).astype(np.float64)
        assert x.max() < 1.0 + 2.0**-20
        assert x.min() >= 1.0
    x = wi.sample(dist, wi.Stream(3), (N_KS,), "float32")
    raw = (x == np.float32(1.0 + 2.0**-20 - 2.0**-23)).sum()  # the clip target is hit, by rounding
    assert raw > 0


def test_uniform_empty_in_dtype_is_refused():
    with pytest.raises(wi.InitializerValueError, match=r"No float16 value lies in \[minval, maxval\)"):
        wi.sample(wi.Uniform(1.0 + 1e-6, 1.0 + 2e-6), wi.Stream(0), (3,), "float16")


def test_next_up_down():
    for dt in [np.float16, ml_dtypes.bfloat16, np.float32, np.float64]:
        one = np.array([1.0], dt)[0]
        assert float(next_up(one)) > 1.0 and float(next_down(one)) < 1.0
        assert float(next_down(next_up(one))) == 1.0
        zero = np.array([0.0], dt)[0]
        assert float(next_up(zero)) > 0 > float(next_down(zero))
        neg = np.array([-2.0], dt)[0]
        assert float(next_up(neg)) > -2.0 > float(next_down(neg))


# ---------------------------------------------------------------------------------------------
# Statistics: KS on 1e5 samples for every distribution and dtype; moments within 4 SE.
# ---------------------------------------------------------------------------------------------


def _reference_of(dist):
    if isinstance(dist, wi.Uniform):
        return stats.uniform(dist.low, dist.high - dist.low)
    if isinstance(dist, wi.Normal):
        return stats.norm(dist.mean, dist.std)
    return stats.truncnorm(dist.alpha, dist.beta, loc=dist.mean, scale=dist.std)


KS_DISTS = [
    wi.Uniform(-0.05, 0.05),
    wi.Uniform(2.0, 5.0),
    wi.Normal(0.0, 1.0),
    wi.Normal(3.0, 0.5),
    wi.TruncatedNormalDistribution(0.0, 1.0, -2.0, 2.0),
    wi.TruncatedNormalDistribution(0.0, 1.0, 4.0, 6.0),  # far tail, mirrored
    wi.TruncatedNormalDistribution(0.0, 1.0, -6.0, -4.0),  # far tail, not mirrored
    wi.TruncatedNormalDistribution(1.0, 2.0, 7.0, math.inf),  # one-sided, 3 sigma
    wi.TruncatedNormalDistribution(0.0, 1.0, -math.inf, -1.0),  # one-sided below
    wi.TruncatedNormalDistribution(0.0, 1.0, -0.5, 3.0),  # asymmetric
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("dist", KS_DISTS, ids=repr)
def test_ks_and_moments(dist, dtype, ks_pvalue):
    dt = _np_dtype(dtype)
    x = wi.sample(dist, wi.Stream(2024), (N_KS,), dtype)
    assert x.shape == (N_KS,) and x.dtype == dt
    v = x.astype(np.float64)
    assert np.isfinite(v).all()
    plan = make_plan(dist, dt)
    ref = _reference_of(dist)
    if isinstance(dist, wi.Uniform):
        assert v.min() >= dist.low and v.max() < dist.high
    elif isinstance(dist, wi.TruncatedNormalDistribution):
        assert v.min() >= dist.lower and v.max() <= dist.upper
    upper_clip = plan.clip[1] if isinstance(dist, wi.Uniform) else None
    p = ks_pvalue(x, ref.cdf, upper_clip)
    assert p > 1e-3, p
    mean, var = (float(m) for m in ref.stats(moments="mv"))
    sd = math.sqrt(var)
    kurt = float(ref.stats(moments="k")) + 3.0
    n = v.size
    assert abs(v.mean() - mean) < 4 * sd / math.sqrt(n)
    # Standard error of the sample standard deviation: sd * sqrt((kurtosis - 1) / (4 n)).
    assert abs(v.std() - sd) < 4 * sd * math.sqrt((kurt - 1) / (4 * n))


def test_ks_helper_rejects_a_wrong_distribution(ks_pvalue):
    # The statistical tests can fail: a 2% scale error is detected at n = 1e5.
    x = wi.sample(wi.Normal(0.0, 1.0), wi.Stream(2024), (N_KS,), "float32")
    assert ks_pvalue(x, stats.norm(0, 1.02).cdf) < 1e-3
    xb = wi.sample(wi.Normal(0.0, 1.0), wi.Stream(2024), (N_KS,), "bfloat16")
    assert ks_pvalue(xb, stats.norm(0, 1.0).cdf) > 1e-3
    assert ks_pvalue(xb, stats.norm(0, 1.02).cdf) < 1e-3


@pytest.mark.parametrize("dtype", DTYPES)
def test_truncated_far_tail_never_nan_or_out_of_bounds(dtype):
    for lo, hi in [(4.0, 6.0), (-6.0, -4.0), (8.0, 9.0), (-math.inf, -10.0), (5.0, math.inf)]:
        dist = wi.TruncatedNormalDistribution(0.0, 1.0, lo, hi)
        v = wi.sample(dist, wi.Stream(5), (50_000,), dtype).astype(np.float64)
        assert not np.isnan(v).any()
        assert v.min() >= lo and v.max() <= hi


def test_truncated_zero_std_returns_mean():
    x = wi.sample(wi.TruncatedNormalDistribution(1.5, 0.0, 1.0, 2.0), wi.Stream(0), (7,), "float32")
    np.testing.assert_array_equal(x, np.full(7, 1.5, np.float32))


def test_normal_zero_std_returns_mean():
    x = wi.sample(wi.Normal(-2.0, 0.0), wi.Stream(0), (7,), "float64")
    np.testing.assert_array_equal(x, np.full(7, -2.0))
