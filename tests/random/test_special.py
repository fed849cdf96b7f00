"""log32/log64/ndtri32/ndtri64 accuracy against float64/SciPy over their whole domains."""

from __future__ import annotations

import math

import numpy as np
import pytest

scipy_special = pytest.importorskip("scipy.special")

from weightinit.random.special import log32, log64, ndtr_host, ndtri32, ndtri64  # noqa: E402

N = 400_000


def _every_normal_float(dtype, lo_bits, hi_bits, n, seed):
    """Uniformly random bit patterns in [lo_bits, hi_bits): covers every binade equally."""
    ut = np.uint32 if dtype == np.float32 else np.uint64
    rng = np.random.default_rng(seed)
    return rng.integers(lo_bits, hi_bits, size=n, dtype=ut).view(dtype)


def _ulps(result, truth, dtype):
    return np.abs(result.astype(np.float64) - truth) / np.spacing(np.abs(truth).astype(dtype)).astype(np.float64)


def test_log32_within_one_ulp_over_all_normal_floats():
    x = _every_normal_float(np.float32, 0x00800000, 0x7F800000, N, 1)
    x = np.concatenate([x, np.array([np.finfo(np.float32).tiny, np.finfo(np.float32).max, 1.0, 2.0, 0.5], np.float32)])
    r = log32(x)
    assert r.dtype == np.float32
    truth = np.log(x.astype(np.float64))
    ok = truth != 0
    assert np.max(_ulps(r[ok], truth[ok], np.float32)) <= 1.0
    assert r[~ok].tolist() == [0.0]


def test_log32_near_one_and_reduction_boundary():
    rng = np.random.default_rng(2)
    x = (1.0 + rng.uniform(-0.3, 0.45, N)).astype(np.float32)
    s2 = np.float32(math.sqrt(2))
    edge = np.array([s2, np.nextafter(s2, np.float32(0)), np.nextafter(s2, np.float32(2))], np.float32)
    x = np.concatenate([x, edge, np.nextafter(np.float32(1), np.float32([0, 2]))])
    truth = np.log(x.astype(np.float64))
    ok = truth != 0
    assert np.max(_ulps(log32(x)[ok], truth[ok], np.float32)) <= 1.0


def test_log64_within_one_ulp_over_all_normal_floats():
    x = _every_normal_float(np.float64, 0x0010000000000000, 0x7FF0000000000000, N, 3)
    rng = np.random.default_rng(4)
    x = np.concatenate([x, 1.0 + rng.uniform(-0.3, 0.45, N), [math.sqrt(2), np.finfo(np.float64).tiny, 2.0]])
    r = log64(x)
    assert r.dtype == np.float64
    truth = np.log(x)
    ok = truth != 0
    # np.log is correctly rounded or within 1 ulp; fdlibm's log is < 1 ulp.
    assert np.max(np.abs(r[ok] - truth[ok]) / np.spacing(np.abs(truth[ok]))) <= 1.0


def test_ndtri32_accuracy_over_whole_domain():
    # Every float32 in (0, 1) that is a normal number, log-uniformly, plus uniform p and the extremes.
    p = _every_normal_float(np.float32, 0x00800000, 0x3F800000, N, 5)
    rng = np.random.default_rng(6)
    p = np.concatenate(
        [
            p,
            rng.uniform(0, 1, N).astype(np.float32),
            np.array([np.finfo(np.float32).tiny, 2.0**-32, 0.5, 1 - 2.0**-24, 0.075, 0.925], np.float32),
        ]
    )
    p = p[(p > 0) & (p < 1)]
    z = ndtri32(p)
    assert z.dtype == np.float32
    truth = scipy_special.ndtri(p.astype(np.float64))
    err = np.abs(z.astype(np.float64) - truth)
    # AS 241 PPND7 is accurate to about 1e-7 relative; allow 1e-6 (a wrong coefficient gives >> 1e-4).
    assert np.max(err / np.maximum(np.abs(truth), 1.0)) < 1e-6
    assert np.max(err[np.abs(truth) > 1e-3] / np.abs(truth[np.abs(truth) > 1e-3])) < 1e-6


def test_ndtri64_accuracy_over_whole_domain():
    p = _every_normal_float(np.float64, 0x0010000000000000, 0x3FF0000000000000, N, 7)
    rng = np.random.default_rng(8)
    p = np.concatenate([p, rng.uniform(0, 1, N), [np.finfo(np.float64).tiny, 0.5, 1 - 2.0**-53, 0.075, 0.925]])
    p = p[(p > 0) & (p < 1)]
    z = ndtri64(p)
    assert z.dtype == np.float64
    truth = scipy_special.ndtri(p)
    err = np.abs(z - truth)
    big = np.abs(truth) > 1e-3
    # AS 241 PPND16 is accurate to about 1e-16 relative.
    assert np.max(err[big] / np.abs(truth[big])) < 4e-15
    assert np.max(err[~big]) < 4e-18


@pytest.mark.parametrize(("fn", "dt"), [(ndtri32, np.float32), (ndtri64, np.float64)])
def test_ndtri_is_exactly_odd(fn, dt):
    # For p in [0.5, 1), 1 - p is exact (Sterbenz), and the algorithm is symmetric by construction.
    rng = np.random.default_rng(9)
    p = rng.uniform(0.5, 1.0, 10_000).astype(dt)
    p = np.concatenate([p[p < 1], np.array([0.925, 0.75, 0.5, 1 - 2.0**-24], dt)])
    np.testing.assert_array_equal(fn(p), -fn(dt(1) - p))
    assert fn(np.array([0.5], dt))[0] == 0


@pytest.mark.parametrize(("fn", "dt", "rel"), [(ndtri32, np.float32, 1e-6), (ndtri64, np.float64, 4e-15)])
def test_ndtri_branch_boundaries(fn, dt, rel):
    # q = +-0.425 (central/tail) and r = 5 (near/far tail), with neighbours on both sides.
    r5 = math.exp(-25.0)
    centres = [0.075, 0.925, r5, 1 - r5]
    p = []
    for c in centres:
        v = dt(c)
        for _ in range(4):
            v = np.nextafter(v, dt(0))
        for _ in range(9):
            p.append(v)
            v = np.nextafter(v, dt(1))
    p = np.array(p, dt)
    p = p[(p > 0) & (p < 1)]  # 1 - exp(-25) rounds to 1 in float32
    z = fn(p).astype(np.float64)
    truth = scipy_special.ndtri(p.astype(np.float64))
    assert np.max(np.abs(z - truth) / np.abs(truth)) < rel


def test_ndtri_tails_reach_documented_range():
    # docs/random.md: normal tails reach 6.2 sigma in float32 and 8.2 in float64.
    assert -6.3 < float(ndtri32(np.array([2.0**-32], np.float32))[0]) < -6.2
    assert -8.3 < float(ndtri64(np.array([2.0**-54]))[0]) < -8.2


def test_ndtr_host_matches_scipy():
    x = np.concatenate([np.linspace(-38, 38, 2001), [-8.5, 0.0, 8.5]])
    got = np.array([ndtr_host(float(v)) for v in x])
    truth = scipy_special.ndtr(x)
    nz = truth > 0
    # ndtr's condition number grows like x**2 in the lower tail; allow a few ulps times that.
    tol = 1e-15 * (1 + x[nz] ** 2)
    assert np.all(np.abs(got[nz] - truth[nz]) / truth[nz] < tol)
    assert ndtr_host(-math.inf) == 0.0
    assert ndtr_host(math.inf) == 1.0
