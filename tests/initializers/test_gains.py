"""Gains: PyTorch's table and the numerically computed variance-preserving gains (issue 7)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, special

import weightinit as wi
from weightinit.initializers.gains import second_moment


def _quad_gain(f) -> float:
    """Independent reference: g = 1/sqrt(E[f(z)^2]) by adaptive quadrature, split at the kink 0."""

    def integrand(z):
        return f(z) ** 2 * math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)

    lo = integrate.quad(integrand, -np.inf, 0.0, epsabs=1e-14, epsrel=1e-13, limit=200)[0]
    hi = integrate.quad(integrand, 0.0, np.inf, epsabs=1e-14, epsrel=1e-13, limit=200)[0]
    return 1.0 / math.sqrt(lo + hi)


def test_calculate_gain_table_matches_pytorch():
    assert wi.calculate_gain("sigmoid") == 1
    assert wi.calculate_gain("tanh") == 1.6666666666666667
    assert wi.calculate_gain("relu") == 1.4142135623730951
    assert wi.calculate_gain("leaky_relu") == 1.4141428569978354
    assert wi.calculate_gain("leaky_relu", 0) == math.sqrt(2.0)
    assert wi.calculate_gain("leaky_relu", 10) == pytest.approx(0.14071950894605836, abs=0, rel=1e-15)
    assert wi.calculate_gain("leaky_relu", math.sqrt(5)) == pytest.approx(1 / math.sqrt(3), rel=1e-15)
    assert wi.calculate_gain("selu") == 0.75
    for name in ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d"):
        assert wi.calculate_gain(name) == 1


@pytest.mark.parametrize("bad", [True, [1], {"a": "b"}])
def test_calculate_gain_leaky_slope_must_be_a_number(bad):
    with pytest.raises(ValueError):
        wi.calculate_gain("leaky_relu", bad)


@pytest.mark.parametrize("bad", ["Tanh", "gelu", "nope"])
def test_calculate_gain_unknown_names(bad):
    with pytest.raises(ValueError):
        wi.calculate_gain(bad)


def test_gain_for_closed_forms():
    assert wi.gain_for("relu") == pytest.approx(math.sqrt(2), rel=1e-12)
    assert wi.gain_for("linear") == pytest.approx(1.0, rel=1e-12)
    assert wi.gain_for("selu") == pytest.approx(1.0, abs=1e-6)
    for slope in (0.01, 0.2, 1.0, 3.0):
        assert wi.gain_for("leaky_relu", slope) == pytest.approx(math.sqrt(2 / (1 + slope**2)), rel=1e-12)
    # E[sin(z)^2] = (1 - exp(-2)) / 2
    assert wi.gain_for("sin") == pytest.approx(1 / math.sqrt((1 - math.exp(-2)) / 2), rel=1e-12)
    # hardtanh: E[min(z^2, 1)] = E[z^2; |z| < 1] + P(|z| > 1) = erf(1/sqrt2) - 2 phi(1) + erfc(1/sqrt2)
    m2 = (special.erf(1 / math.sqrt(2)) - math.sqrt(2 / math.pi) * math.exp(-0.5)) + special.erfc(1 / math.sqrt(2))
    assert wi.gain_for("hardtanh") == pytest.approx(1 / math.sqrt(m2), rel=1e-12)


@pytest.mark.parametrize(
    "name, fn",
    [
        ("tanh", math.tanh),
        ("sigmoid", lambda z: special.expit(z)),
        ("gelu", lambda z: 0.5 * z * (1 + math.erf(z / math.sqrt(2)))),
        ("silu", lambda z: z * special.expit(z)),
        ("mish", lambda z: z * math.tanh(np.logaddexp(0.0, z))),
        ("elu", lambda z: z if z > 0 else math.expm1(z)),
        ("softplus", lambda z: float(np.logaddexp(0.0, z))),
        ("softsign", lambda z: z / (1 + abs(z))),
        ("relu6", lambda z: min(max(z, 0.0), 6.0)),
    ],
)
def test_gain_for_matches_independent_quadrature(name, fn):
    assert wi.gain_for(name) == pytest.approx(_quad_gain(fn), rel=1e-9)


def test_gain_for_user_callable_and_elu_alpha():
    def cube(x):
        return x**3

    # E[z^6] = 15
    assert wi.gain_for(cube) == pytest.approx(1 / math.sqrt(15), rel=1e-12)
    ref = _quad_gain(lambda z: z if z > 0 else 0.5 * math.expm1(z))
    assert wi.gain_for("elu", 0.5) == pytest.approx(ref, rel=1e-9)


def test_gain_makes_the_second_moment_one():
    for name in ("gelu", "silu", "tanh"):
        g = wi.gain_for(name)
        assert g**2 * second_moment(wi.initializers.gains.activation(name)) == pytest.approx(1.0, rel=1e-12)


def test_gain_for_errors():
    with pytest.raises(wi.InitializerValueError, match="Unknown activation"):
        wi.gain_for("no_such_activation")
    with pytest.raises(wi.InitializerTypeError):
        wi.gain_for(3)
    with pytest.raises(wi.InitializerValueError, match="`param`"):
        wi.gain_for("tanh", 0.1)
    with pytest.raises(wi.InitializerValueError):
        wi.gain_for(lambda x: 0 * x)
