"""Narrow float32 truncated normals: computed in float64 from one word per value, so the final clip only
corrects rounding (docs/random.md section 6), the same bits on every executor."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import weightinit as wi
from weightinit.executors import compiled, reference
from weightinit.random.distributions import TruncatedNormal, make_plan

N = 1 << 16
NARROW = [(0.0, 1.0, -3.0, -3.0 + 1e-5), (0.0, 1.0, 0.0, 1e-5), (0.5, 2.0, 0.5, 0.5 + 3e-6)]


def _ulp_moves(plan, words):
    raw = reference.values_from_words(dataclasses.replace(plan, clip=None), words).astype(np.float64)
    clipped = reference.values_from_words(plan, words)
    spacing = np.spacing(np.abs(clipped).astype(plan.dtype)).astype(np.float64)
    return np.abs(raw - clipped.astype(np.float64)) / spacing, clipped


@pytest.mark.parametrize("params", NARROW)
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_clip_only_corrects_rounding(params, dtype):
    plan = make_plan(TruncatedNormal(*params), dtype)
    assert plan.words == 1 and plan.compute == np.float64
    words = reference.words_for_range(wi.Stream(0).key, 0, N, 1)
    moves, _ = _ulp_moves(plan, words)
    assert moves.max() <= 1.0  # at most one rounding of the output (float32 arithmetic: 4 and 11,268 ulp)


def test_float32_arithmetic_fails_the_promise_on_these_intervals():
    # The check above can fail: the same words through the float32 path move values by many ulp.
    plan = make_plan(TruncatedNormal(0.0, 1.0, 0.0, 1e-5), "float32")
    c32 = {k: np.float32(v) for k, v in plan.consts.items()}
    c32["pmin"], c32["pmax"] = np.float32(np.finfo(np.float32).tiny), np.float32(1 - np.finfo(np.float32).epsneg)
    p32 = dataclasses.replace(plan, compute=np.dtype(np.float32), consts=c32)
    moves, _ = _ulp_moves(p32, reference.words_for_range(wi.Stream(0).key, 0, N, 1))
    assert moves.max() > 100


def test_ordinary_intervals_stay_on_the_float32_path():
    for params in [(0.0, 1.0, -2.0, 2.0), (0.0, 1.0, 4.0, 6.0), (0.0, 1.0, -0.5, 3.0), (0.0, 1.0, 1.0, 1.001)]:
        assert make_plan(TruncatedNormal(*params), "float32").compute == np.float32


@pytest.mark.parametrize("params", NARROW[:2])
def test_every_executor_gives_the_reference_bits(params):
    dist = TruncatedNormal(*params)
    plan = make_plan(dist, "float32")
    ref = np.empty(4099, np.float32)
    reference.fill_range(plan, wi.Stream(7).key, 5, ref)
    if compiled.available():
        out = np.empty_like(ref)
        compiled.fill_array(plan, wi.Stream(7).key, 5, out)
        assert out.tobytes() == ref.tobytes()
    torch = pytest.importorskip("torch")
    from weightinit.common.shapes import RegionPlan
    from weightinit.executors.torch import fill_, fill_device_

    t = torch.empty(4099)
    fill_device_(t, plan, wi.Stream(7).key, RegionPlan((4104,), (slice(5, 4104),)))
    assert t.numpy().tobytes() == ref.tobytes()
    whole = wi.sample(dist, wi.Stream(7), (4104,), "float32")
    assert fill_(torch.empty(4104), dist, wi.Stream(7)).numpy().tobytes() == whole.tobytes()
    jax = pytest.importorskip("jax")
    from weightinit.executors.jax import sample as jsample

    before = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    try:
        got = np.asarray(jax.jit(lambda: jsample(dist, wi.Stream(7), (4104,), "float32"))())
    finally:
        jax.config.update("jax_enable_x64", before)
    assert got.tobytes() == whole.tobytes()
    with pytest.raises(wi.InitializerValueError, match="jax_enable_x64"):
        jsample(dist, wi.Stream(7), (8,), "float32")


def test_wide_intervals_with_a_far_tail_end_stay_on_float32():
    # [1.2, 9] around mean 1, std 0.5 mirrors to [-16, -0.4]: wide, whatever the density at -16.
    assert make_plan(TruncatedNormal(1.0, 0.5, 1.2, 9.0), "float16").compute == np.float32


# Intervals a few float32 ulp wide far from zero: mean + sd * z rounds past the bounds, so the float32 path's clip
# (folded into the compiled core's two normal passes, docs/performance.md) changes values; in the central branch of
# ndtri (p ~ 0.18) and in its tail branch (p ~ 0.0013).
CLIPPED = [(-1592.25, 0.769, -1592.941, -1592.939), (1000.0, 1.0, 997.0, 997.002)]


@pytest.mark.parametrize("params", CLIPPED)
@pytest.mark.parametrize("n", [4096, 4099])  # straight into the output, and through the tile buffer
def test_the_float32_clip_gives_the_reference_bits_where_it_bites(params, n):
    plan = make_plan(TruncatedNormal(*params), "float32")
    assert plan.words == 1 and plan.compute == np.float32
    words = reference.words_for_range(wi.Stream(3).key, 5, n, 1)
    moves, ref = _ulp_moves(plan, words)
    assert (moves > 0).sum() >= 10, (moves > 0).sum()  # the clip moves values
    assert ((ref >= np.float32(params[2])) & (ref <= np.float32(params[3]))).all()
    if not compiled.available():
        pytest.skip("compiled core not built")
    out = np.empty(n, np.float32)
    compiled.fill_array(plan, wi.Stream(3).key, 5, out)
    assert out.tobytes() == ref.tobytes()
