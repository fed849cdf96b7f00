"""``weightinit.random.normal`` / ``uniform`` / ``truncated_normal`` draw the distribution they name.

Each function's 100,000 float64 values are checked against the exact distribution with a KS test
(p > 1e-6) and with mean and variance within 5 standard errors (derived from the sample size and
the distribution's kurtosis).  At this size a 2x (or 0.5x) variance error moves the variance by
more than 100 standard errors; ``test_checks_catch_a_2x_variance_error`` and
``test_checks_catch_a_sampler_with_a_wrong_stddev`` show that both checks fail on such samples,
so these tests can fail.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

import weightinit as wi
import weightinit.random.functional as functional

stats = pytest.importorskip("scipy.stats")

N = 100_000
MEAN, STD = 0.75, 1.6
P_MIN = 1e-6


def _law(name: str):
    """The frozen scipy distribution each function promises (truncated normal: Keras' +-2 stddev)."""
    if name == "normal":
        return stats.norm(MEAN, STD)
    if name == "truncated_normal":
        return stats.truncnorm(-2.0, 2.0, loc=MEAN, scale=STD)
    return stats.uniform(MEAN, STD)  # uniform(minval=MEAN, maxval=MEAN + STD)


def _draw(name: str) -> np.ndarray:
    if name == "uniform":
        return wi.random.uniform((N,), minval=MEAN, maxval=MEAN + STD, dtype="float64", seed=11)
    return getattr(wi.random, name)((N,), mean=MEAN, stddev=STD, dtype="float64", seed=11)


def _failures(name: str, x: np.ndarray, moment_failures) -> list[str]:
    law = _law(name)
    mean, var, _, excess = (float(v) for v in law.stats(moments="mvsk"))
    out = moment_failures(x, mean, var, excess + 3.0)
    p = stats.kstest(x, law.cdf).pvalue
    if p <= P_MIN:
        out.append(f"KS p-value {p:.3g}")
    return out


NAMES = ["normal", "truncated_normal", "uniform"]


@pytest.fixture(scope="module")
def samples():
    return {name: _draw(name) for name in NAMES}


@pytest.mark.parametrize("name", NAMES)
def test_values_follow_the_named_distribution(name, samples, moment_failures):
    x = samples[name]
    assert x.shape == (N,) and x.dtype == np.float64
    assert _failures(name, x, moment_failures) == []


def test_truncated_normal_stays_within_two_stddevs(samples):
    x = samples["truncated_normal"]
    assert x.min() >= MEAN - 2 * STD and x.max() <= MEAN + 2 * STD


@pytest.mark.parametrize("factor", [2.0, 0.5])
@pytest.mark.parametrize("name", NAMES)
def test_checks_catch_a_2x_variance_error(name, factor, samples, moment_failures):
    """The same checks on the samples with their variance scaled by ``factor``: both must fail."""
    x = samples[name]
    centre = float(_law(name).mean())
    wrong = centre + math.sqrt(factor) * (x - centre)
    failed = _failures(name, wrong, moment_failures)
    assert any(f.startswith("variance") for f in failed), failed
    assert any(f.startswith("KS") for f in failed), failed


@pytest.mark.parametrize("name", ["normal", "truncated_normal"])
def test_checks_catch_a_sampler_with_a_wrong_stddev(name, monkeypatch, moment_failures):
    """A sampler bug that draws with stddev * sqrt(2) (a 2x variance error) fails the test above."""
    real_sample = functional.sample

    def wrong_sample(dist, *args, **kwargs):
        return real_sample(dataclasses.replace(dist, std=dist.std * math.sqrt(2.0)), *args, **kwargs)

    monkeypatch.setattr(functional, "sample", wrong_sample)
    failed = _failures(name, _draw(name), moment_failures)
    assert any(f.startswith("variance") for f in failed), failed
