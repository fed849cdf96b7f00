"""Truncated normal in both conventions, with and without correction, and the framework presets."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

import weightinit as wi
from weightinit.initializers.truncated import truncated_std

N = 100_000
P_MIN = 1e-4  # KS threshold (as PyTorch's own tests); seeds are fixed


def _ks(w, mean, sigma, lo, hi):
    a, b = (lo - mean) / sigma, (hi - mean) / sigma
    return stats.kstest(np.asarray(w, np.float64).ravel(), "truncnorm", args=(a, b, mean, sigma)).pvalue


@pytest.mark.parametrize("a, b", [(-2.0, 2.0), (-0.5, 1.5), (0.5, 3.0), (-np.inf, 1.0), (-1.0, np.inf)])
def test_truncated_std_matches_scipy(a, b):
    assert truncated_std(a, b) == pytest.approx(stats.truncnorm.std(a, b), rel=1e-12)


def test_std_units_convention_matches_distribution():
    w = wi.TruncNormal(mean=0.3, stddev=0.05, lower=-1.0, upper=2.0, bounds="std", seed=1)((N,), "float64")
    assert w.min() >= 0.3 - 0.05 and w.max() <= 0.3 + 0.1
    assert _ks(w, 0.3, 0.05, 0.25, 0.4) > P_MIN


def test_absolute_convention_matches_distribution():
    w = wi.TruncNormal(mean=0.0, stddev=0.02, lower=-0.01, upper=0.03, bounds="absolute", seed=2)((N,), "float64")
    assert w.min() >= -0.01 and w.max() <= 0.03
    assert _ks(w, 0.0, 0.02, -0.01, 0.03) > P_MIN


def test_variance_correction_std_units():
    init = wi.TruncNormal(stddev=0.02, correct_variance=True, seed=3)
    w = init((N,), "float64")
    sigma = 0.02 / 0.87962566103423978
    assert init.distribution_for((N,)).std == pytest.approx(sigma, rel=1e-12)
    assert _ks(w, 0.0, sigma, -2 * sigma, 2 * sigma) > P_MIN
    # sample std within 5 standard errors (SE of the std ~ std * sqrt((kurtosis - 1) / 4n))
    k = stats.truncnorm.stats(-2, 2, moments="k") + 3
    se = 0.02 * math.sqrt((k - 1) / (4 * N))
    assert abs(w.std() - 0.02) < 5 * se


def test_variance_correction_absolute_bounds():
    init = wi.TruncNormal(
        mean=0.1, stddev=0.15, lower=-0.2, upper=0.5, bounds="absolute", correct_variance=True, seed=4
    )
    sigma = init.distribution_for((1,)).std
    d = stats.truncnorm((-0.2 - 0.1) / sigma, (0.5 - 0.1) / sigma, 0.1, sigma)
    assert d.std() == pytest.approx(0.15, rel=1e-9)
    w = init((N,), "float64")
    assert _ks(w, 0.1, sigma, -0.2, 0.5) > P_MIN


def test_absolute_correction_unreachable_std_is_refused():
    with pytest.raises(wi.InitializerValueError, match="`stddev`"):
        wi.TruncNormal(stddev=1.0, lower=-0.1, upper=0.1, bounds="absolute", correct_variance=True)


def test_torch_preset_bounds_are_absolute():
    w = wi.TorchTruncNormal(std=0.02, seed=5)((N,), "float64")  # default a, b = -2, 2: effectively untruncated
    assert stats.kstest(w, "norm", args=(0, 0.02)).pvalue > P_MIN
    w = wi.TorchTruncNormal(std=0.02, a=-0.04, b=0.04, seed=5)((N,), "float64")
    assert w.std() == pytest.approx(0.02 * 0.87962566, rel=0.01)
    assert wi.get("timm_trunc_normal").__class__ is wi.TorchTruncNormal


@pytest.mark.parametrize("cls", [wi.TimmTruncNormalTF, wi.HaikuTruncatedNormal])
def test_std_unit_presets(cls):
    init = cls(0.0, 0.02, seed=6) if cls is wi.TimmTruncNormalTF else cls(0.02, 0.0, seed=6)
    w = init((N,), "float64")
    assert abs(w).max() <= 0.04
    assert _ks(w, 0.0, 0.02, -0.04, 0.04) > P_MIN


def test_jax_preset_defaults():
    init = wi.JaxTruncatedNormal(seed=7)
    d = init.distribution_for((3,))
    assert (d.mean, d.std, d.lower, d.upper) == (0.0, 0.01, -0.02, 0.02)
    assert init.get_config() == {"seed": 7, "stddev": 0.01, "lower": -2.0, "upper": 2.0}


def test_presets_same_values_as_general_class():
    a = wi.TimmTruncNormalTF(mean=0.1, std=0.5, lower=-1.0, upper=2.0, seed=8)((64, 32))
    b = wi.TruncNormal(0.1, 0.5, -1.0, 2.0, bounds="std", seed=8)((64, 32))
    assert np.array_equal(a, b)


def test_regions_and_stddev_zero():
    init = wi.TruncNormal(stddev=1.0, seed=9)
    full = init((10, 12))
    assert np.array_equal(init((10, 12), region=(slice(2, 5), slice(1, 9, 3))), full[2:5, 1:9:3])
    assert np.all(wi.TruncNormal(mean=0.5, stddev=0.0, seed=1)((4,)) == 0.5)


def test_errors_name_the_argument():
    with pytest.raises(wi.InitializerValueError, match="`bounds`"):
        wi.TruncNormal(bounds="sigma")
    with pytest.raises(wi.InitializerValueError, match="`upper`"):
        wi.TruncNormal(lower=1.0, upper=0.0)
    with pytest.raises(wi.InitializerValueError, match="`stddev`"):
        wi.TruncNormal(stddev=-1.0)
    with pytest.raises(wi.InitializerValueError, match="`correct_variance`"):
        wi.TruncNormal(correct_variance="yes")


def test_timm_tf_bounds_are_named_lower_upper_and_old_names_warn():
    """Std-unit bounds are `lower`/`upper`; weightinit 0.1's `a`/`b` (TorchTruncNormal's absolute names) still work."""
    new = wi.TimmTruncNormalTF(0.1, 0.5, -1.0, 2.0, seed=8)  # positional order unchanged
    assert new.get_config() == {"seed": 8, "mean": 0.1, "std": 0.5, "lower": -1.0, "upper": 2.0}
    with pytest.warns(DeprecationWarning, match=r"`a` was renamed `lower`.*use `lower=`"):
        old = wi.TimmTruncNormalTF(mean=0.1, std=0.5, a=-1.0, b=2.0, seed=8)
    assert old.get_config() == new.get_config()
    assert np.array_equal(old((6, 5)), new((6, 5)))
    # A config saved by weightinit 0.1 still loads, through from_config and get().
    old_cfg = {"seed": 8, "mean": 0.1, "std": 0.5, "a": -1.0, "b": 2.0}
    with pytest.warns(DeprecationWarning, match="`b` was renamed `upper`"):
        again = wi.TimmTruncNormalTF.from_config(old_cfg)
    assert np.array_equal(again((6, 5)), new((6, 5)))
    with pytest.warns(DeprecationWarning):
        got = wi.get({"class_name": "TimmTruncNormalTF", "config": old_cfg})
    assert got.get_config() == new.get_config()
    assert wi.TimmTruncNormalTF.from_config(new.get_config()).get_config() == new.get_config()
    with pytest.raises(wi.InitializerTypeError, match=r"both `lower` and its old name `a`"):
        with pytest.warns(DeprecationWarning):
            wi.TimmTruncNormalTF(lower=-1.0, a=-3.0)
    with pytest.raises(wi.InitializerTypeError, match=r"unexpected keyword argument 'c'"):
        wi.TimmTruncNormalTF(c=1.0)
    # TorchTruncNormal keeps torch's absolute a/b, so the two signatures no longer look alike.
    import inspect

    assert list(inspect.signature(wi.TorchTruncNormal).parameters)[:4] == ["mean", "std", "a", "b"]
    assert list(inspect.signature(wi.TimmTruncNormalTF).parameters)[:4] == ["mean", "std", "lower", "upper"]
