"""VarianceScaling as JAX extends it: in/out/batch axes, fan_geo_avg, complex dtypes."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

import weightinit as wi
from weightinit.initializers.variance_scaling import jax_fans

P_MIN = 1e-4


def test_jax_fans_match_jax_rules():
    assert jax_fans((3, 3, 16, 32)) == (144.0, 288.0)
    assert jax_fans((5,), in_axis=0, out_axis=()) == (5.0, 1.0)
    assert jax_fans((4, 6, 8), in_axis=0, out_axis=1, batch_axis=2) == (4.0, 6.0)
    assert jax_fans((2, 3, 4, 5), in_axis=[0, 1], out_axis=-1) == (24.0, 20.0)
    with pytest.raises(wi.InitializerValueError, match="in_axis"):
        jax_fans((5,))


def test_batch_axis_and_geo_avg():
    init = wi.VarianceScaling(2.0, "fan_geo_avg", "untruncated_normal", seed=1, in_axis=0, out_axis=1, batch_axis=2)
    assert init.variance((64, 256, 8)) == pytest.approx(2.0 / math.sqrt(64 * 256))
    w = init((64, 256, 8), "float64")
    assert stats.kstest(w.ravel(), "norm", args=(0, math.sqrt(init.variance((64, 256, 8))))).pvalue > P_MIN


def test_config_is_keras_unless_jax_axes_set():
    keras_keys = {"seed", "scale", "mode", "distribution", "input_axes", "output_axes"}
    assert set(wi.VarianceScaling(seed=0).get_config()) == keras_keys
    assert set(wi.HeNormal(seed=0).get_config()) == {"seed", "input_axes", "output_axes"}
    cfg = wi.GlorotUniform(seed=0, batch_axis=[0]).get_config()
    assert cfg["batch_axis"] == [0] and "in_axis" not in cfg
    again = wi.GlorotUniform.from_config(cfg)
    assert np.array_equal(again((3, 4, 5)), wi.GlorotUniform(seed=0, batch_axis=[0])((3, 4, 5)))
    with pytest.raises(wi.InitializerValueError, match="not both"):
        wi.VarianceScaling(input_axes=[0], output_axes=[1], in_axis=0)
    with pytest.raises(wi.InitializerTypeError, match="`out_axis`"):
        wi.VarianceScaling(out_axis="x")


TRUNC_EZ2 = 1 - 4 * math.exp(-4) / (1 - math.exp(-4))  # E|z|^2 of a standard complex normal cut at |z| < 2


@pytest.mark.parametrize("dtype", ["complex64", "complex128"])
def test_complex_uniform_disk(dtype):
    init = wi.VarianceScaling(2.0, "fan_in", "uniform", seed=2)
    w = init((500, 200), dtype)
    assert w.dtype == np.dtype(dtype)
    var = 2.0 / 500
    r2 = (np.abs(w.astype(np.complex128)) ** 2).ravel() / (2 * var)  # |z|^2 / r_max^2 ~ U[0, 1)
    assert r2.max() < 1.0
    assert stats.kstest(r2, "uniform").pvalue > P_MIN
    theta = np.angle(w.astype(np.complex128)).ravel()
    assert stats.kstest(theta, "uniform", args=(-np.pi, 2 * np.pi)).pvalue > P_MIN


def test_complex_truncated_normal_modulus():
    init = wi.VarianceScaling(1.0, "fan_avg", "truncated_normal", seed=3)
    w = init((300, 500), "complex128")
    var = 1.0 / 400
    s = math.sqrt(var) / 0.95311164380491208
    r2 = (np.abs(w) ** 2).ravel() / s**2  # Exp(1) truncated to [0, 4)
    assert r2.max() < 4.0
    assert stats.kstest(r2, "truncexpon", args=(4.0,)).pvalue > P_MIN
    # JAX's constant: E|z|^2 = var * TRUNC_EZ2 / 0.9531^2 (about 1.0186 var), within 5 standard errors
    ez2 = var * TRUNC_EZ2 / 0.95311164380491208**2
    se = np.std(np.abs(w) ** 2) / math.sqrt(w.size)
    assert abs(np.mean(np.abs(w) ** 2) - ez2) < 5 * se


def test_complex_untruncated_normal_parts():
    init = wi.VarianceScaling(1.0, "fan_in", "untruncated_normal", seed=4)
    w = init((400, 250), "complex128")
    sd = math.sqrt(1 / 400 / 2)
    for part in (w.real.ravel(), w.imag.ravel()):
        assert stats.kstest(part, "norm", args=(0, sd)).pvalue > P_MIN
    assert abs(np.corrcoef(w.real.ravel(), w.imag.ravel())[0, 1]) < 5 / math.sqrt(w.size)


@pytest.mark.parametrize("dist", ["uniform", "truncated_normal", "untruncated_normal"])
def test_complex_regions_and_determinism(dist):
    init = wi.VarianceScaling(1.0, "fan_in", dist, seed=5)
    full = init((6, 7), "complex64")
    assert np.array_equal(init((6, 7), "complex64", region=(slice(1, 4), slice(2, 7, 2))), full[1:4, 2:7:2])
    assert np.array_equal(full, init((6, 7), "complex64"))


def test_complex_componentwise_sample_layout():
    x = wi.sample(wi.Normal(0.0, 1.0), wi.Stream(0), (3, 4), "complex64")
    r = wi.sample(wi.Normal(0.0, 1.0), wi.Stream(0), (3, 4, 2), "float32")
    assert np.array_equal(x.real, r[..., 0]) and np.array_equal(x.imag, r[..., 1])
    out = np.empty((3, 4), np.complex64)
    assert wi.sample(wi.Normal(0.0, 1.0), wi.Stream(0), (3, 4), "complex64", out=out) is out
    assert np.array_equal(out, x)


def test_complex_refused_where_undefined():
    with pytest.raises(wi.InitializerValueError, match="`dtype`"):
        wi.RandomNormal(seed=0)((2,), "complex64")
