"""Findings that mean what they say: each has a model that triggers it and one that must not."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
import weightinit as wi  # noqa: E402
from torch import nn  # noqa: E402
from weightinit.doctor.example import make_mlp  # noqa: E402


def bn_cnn(seed=0):
    torch.manual_seed(seed)
    layers: list = []
    c = 3
    for width in (16, 32, 32, 64):
        layers += [nn.Conv2d(c, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU()]
        c = width
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, 10)]
    return nn.Sequential(*layers)


@pytest.fixture(scope="module")
def images():
    g = torch.Generator().manual_seed(0)
    return torch.randn(32, 3, 16, 16, generator=g), torch.randint(0, 10, (32,), generator=g)


def test_batchnorm_cnn_is_not_a_vanishing_gradient_false_alarm(images):
    x, y = images
    rep = wi.doctor(bn_cnn(), x, targets=y)
    assert not rep.flagged("vanishing_gradients") and not rep.flagged("exploding_gradients"), rep.flags
    weights = [s for s in rep.layers if s.kind in ("Conv2d", "Linear")]
    # the per-element dL/dy does drop across the 16x16 average pooling (what the old rule read) ...
    assert weights[0].grad_std / weights[-1].grad_std < 1e-2
    # ... while every parameter learns at a comparable relative rate
    rel = [s.rel_grad for s in weights]
    assert max(rel) / min(rel) < 1e2, rel


def test_vanishing_gradients_fire_on_default_init_30_layer_relu_mlp():
    torch.manual_seed(0)
    x, y = torch.randn(128, 64), torch.randint(0, 10, (128,))
    rep = wi.doctor(make_mlp(30, 64), x, targets=y)
    (f,) = rep.flagged("vanishing_gradients")
    assert f.layer == "0" and f.severity == "error" and "||dL/dW||/||W||" in f.message
    assert "he_normal" in f.fix  # the init is the cause, and changing it changes the ratio:
    fixed = make_mlp(30, 64)
    wi.fix(fixed, "analytic", measure=False)
    assert not wi.doctor(fixed, x, targets=y).flagged("vanishing_gradients")


def test_exploding_gradients_fire_on_a_first_layer_initialized_near_zero():
    torch.manual_seed(0)
    m = make_mlp(4, 32, n_in=16)
    with torch.no_grad():
        m[0].weight.mul_(1e-4)
    x, y = torch.randn(128, 16), torch.randint(0, 10, (128,))
    (f,) = wi.doctor(m, x, targets=y).flagged("exploding_gradients")
    assert f.layer == "0"
    assert not wi.doctor(make_mlp(4, 32, n_in=16), x, targets=y).flagged("exploding_gradients")


def test_normalized_layers_get_the_effective_learning_rate_fix(images):
    # every conv feeds a BatchNorm and the first conv's weights are tiny: the forward is unchanged (BatchNorm
    # undoes the scale) but its relative gradient, its effective learning rate lr/||W||^2, is huge
    x, y = images
    m = bn_cnn()
    with torch.no_grad():
        m[0].weight.mul_(1e-4)
    (f,) = wi.doctor(m, x, targets=y).flagged("exploding_gradients")
    assert "effective learning rate is lr/||W||^2" in f.fix and "(0)" in f.fix
    assert not wi.doctor(bn_cnn(), x, targets=y).flagged("exploding_gradients")
