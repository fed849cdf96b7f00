"""Findings that mean what they say: each has a model that triggers it and one that must not."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")
import weightinit as wi  # noqa: E402
from torch import nn  # noqa: E402
from weightinit.doctor.compare import apply_initializer  # noqa: E402
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


# --- every finding kind: a model that triggers it, one that must not, and the suggested fix applied ----------

N_IN = 32


def relu_mlp(depth=8, width=64, std_mult=1.0, bias=None):
    """A ReLU MLP with He-normal weights times ``std_mult`` and biases ``bias`` (None: zero)."""
    g = torch.Generator().manual_seed(0)
    layers: list = []
    for i in range(depth):
        lin = nn.Linear(N_IN if i == 0 else width, width)
        with torch.no_grad():
            lin.weight.copy_(torch.randn(lin.weight.shape, generator=g) * std_mult * math.sqrt(2 / lin.in_features))
            lin.bias.fill_(0.0 if bias is None else bias)
        layers += [lin, nn.ReLU()]
    return nn.Sequential(*layers)


def tanh_mlp(std, depth=4, width=128):
    g = torch.Generator().manual_seed(0)
    layers: list = []
    for i in range(depth):
        lin = nn.Linear(N_IN if i == 0 else width, width, bias=False)
        with torch.no_grad():
            lin.weight.copy_(torch.randn(lin.weight.shape, generator=g) * std / math.sqrt(lin.in_features))
        layers += [lin, nn.Tanh()]
    return nn.Sequential(*layers)


class Cube(nn.Module):
    """``x**3``: homogeneous of degree 3, no scalar init is depth-stable."""

    def forward(self, x):
        return x**3


def cube_mlp(norm: bool, act=Cube):
    torch.manual_seed(0)
    layers: list = []
    for _ in range(4):
        layers += [nn.Linear(N_IN, N_IN)] + ([nn.LayerNorm(N_IN)] if norm else []) + [act()]
    return nn.Sequential(*layers)


class DataDependent(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(N_IN, N_IN), nn.Linear(N_IN, N_IN)

    def forward(self, x):
        return self.a(x) if float(x.sum()) > 0 else self.b(x)  # data-dependent control flow: fx cannot trace it


class DataDependentCumsum(DataDependent):
    def forward(self, x):
        return torch.cumsum(super().forward(x), -1)  # an operation without a moment rule


@pytest.fixture(scope="module")
def xv():
    torch.set_num_threads(1)
    return torch.randn(64, N_IN, generator=torch.Generator().manual_seed(3))


def kinds_of(rep):
    return {f.kind for f in rep.flags}


def test_dead_units_from_negative_biases_and_the_fix_that_revives_them(xv):
    m = relu_mlp(depth=4, bias=-5.0)
    (f,) = wi.doctor(m, xv, analytic=False).flagged("dead")
    assert f.layer == "1" and "biases of 0" in f.fix and "zeros_" in f.fix
    for layer in m:  # the fix, as suggested
        if isinstance(layer, nn.Linear):
            nn.init.zeros_(layer.bias)
    assert "dead" not in kinds_of(wi.doctor(m, xv, analytic=False))
    # must not fire: He init with zero biases (about half of each layer's outputs are zero, no unit always)
    assert "dead" not in kinds_of(wi.doctor(relu_mlp(depth=4), xv, analytic=False))


def test_dead_units_under_a_vanished_signal_get_the_init_fix(xv):
    m = relu_mlp(depth=12, std_mult=0.3, bias=-0.01)  # the signal vanishes (x0.3 per layer); the bias decides
    rep = wi.doctor(m, xv, analytic=False)
    (f,) = rep.flagged("dead")
    assert "variance-preserving" in f.fix
    apply_initializer(m, "he_normal", 0)  # the fix, as suggested (biases untouched)
    assert "dead" not in kinds_of(wi.doctor(m, xv, analytic=False))


def test_saturated_tanh_and_its_fix(xv):
    rep = wi.doctor(tanh_mlp(std=5.0), xv, analytic=False)
    assert rep.flagged("saturated")
    assert "saturated" not in kinds_of(wi.doctor(tanh_mlp(std=1.0), xv, analytic=False))  # must not fire
    m = tanh_mlp(std=5.0)
    apply_initializer(m, "glorot_uniform", 0)  # the fix, as suggested
    assert "saturated" not in kinds_of(wi.doctor(m, xv, analytic=False))


def test_collapse_fires_when_biases_dominate_a_vanished_signal_and_not_after_the_fix():
    torch.manual_seed(0)
    x = torch.randn(128, 64)
    m = make_mlp(30, 64)  # PyTorch's default init: q x1/6 per layer, the biases stay
    (f,) = wi.doctor(m, x, analytic=False).flagged("collapse")
    assert "biases dominate" in f.message
    wi.fix(m, "analytic", measure=False)  # the fix, as suggested
    assert "collapse" not in kinds_of(wi.doctor(m, x, analytic=False))
    # must not fire: a He-initialized net of the same depth keeps its input-dependent signal
    assert "collapse" not in kinds_of(wi.doctor(relu_mlp(depth=30), x[:, :N_IN], analytic=False))


def biased_tanh_mlp(sb2, depth=20, width=64, sw2=1.0):
    """tanh layers with ``W ~ N(0, sw2 / fan_in)`` and ``b ~ N(0, sb2)``."""
    g = torch.Generator().manual_seed(0)
    layers: list = []
    for i in range(depth):
        lin = nn.Linear(N_IN if i == 0 else width, width)
        with torch.no_grad():
            lin.weight.copy_(torch.randn(lin.weight.shape, generator=g) * math.sqrt(sw2 / lin.in_features))
            lin.bias.copy_(torch.randn(width, generator=g) * math.sqrt(sb2))
        layers += [lin, nn.Tanh()]
    return nn.Sequential(*layers)


def test_analytic_mode_predicts_collapse_where_measurement_shows_it(xv):
    from weightinit.doctor.analytic import analyze_torch
    from weightinit.doctor.example import digits

    xb = digits(0)[0][:256]
    collapsing = [(make_mlp(30, 64), xb), (biased_tanh_mlp(sb2=1.0), xv)]  # the built-in example; big biases
    for m, x in collapsing:
        (measured,) = wi.doctor(m, x, analytic=False).flagged("collapse")
        for inputs in (x, None):  # from the batch's moments, and from shapes alone (N(0, 1) inputs)
            (pred,) = analyze_torch(m, inputs)[0].flagged("collapse")
            assert pred.layer == measured.layer, (pred.layer, measured.layer)  # measured '16' and '20'
            assert "predicted variation" in pred.message and "biases dominate" in pred.message
    fixed = make_mlp(30, 64)
    wi.fix(fixed, "analytic", measure=False)  # the fix, as suggested
    healthy = [(fixed, xb), (biased_tanh_mlp(sb2=0.05), xv), (biased_tanh_mlp(sb2=0.0), xv),
               (biased_tanh_mlp(sb2=0.05, sw2=1.76), xv), (relu_mlp(depth=30, bias=0.1), xv)]  # fmt: skip
    for m, x in healthy:  # must not fire, predicted or measured
        assert "collapse" not in kinds_of(analyze_torch(m, x)[0]) | kinds_of(wi.doctor(m, x, analytic=False))


def test_not_depth_stable_fires_for_a_degree_3_activation_and_not_under_normalization(xv):
    (f,) = wi.doctor(cube_mlp(norm=False), xv).flagged("not_depth_stable")
    assert "degree 3" in f.message and "normalization" in f.fix.lower()
    # the fix, as suggested: a normalization before each x**3 resets q every layer
    assert "not_depth_stable" not in kinds_of(wi.doctor(cube_mlp(norm=True), xv))
    # must not fire: degree-1 homogeneous or bounded activations
    for act in (nn.ReLU, nn.Tanh, nn.GELU):
        assert "not_depth_stable" not in kinds_of(wi.doctor(cube_mlp(norm=False, act=act), xv))


def test_exploding_activations_fire_above_he_and_not_at_he(xv):
    (f,) = wi.doctor(relu_mlp(depth=10, std_mult=2.0), xv, analytic=False).flagged("exploding_activations")
    assert "he_normal" in f.fix
    m = relu_mlp(depth=10, std_mult=2.0)
    apply_initializer(m, "he_normal", 0)  # the fix, as suggested
    assert "exploding_activations" not in kinds_of(wi.doctor(m, xv, analytic=False))
    assert "vanishing_activations" not in kinds_of(wi.doctor(relu_mlp(depth=10), xv, analytic=False))


def test_vanishing_activations_fire_below_he(xv):
    (f,) = wi.doctor(relu_mlp(depth=10, std_mult=0.5), xv, analytic=False).flagged("vanishing_activations")
    assert "lsuv" in f.fix
    m = relu_mlp(depth=10, std_mult=0.5)
    wi.fix(m, "lsuv", xv, measure=False)  # one of the fixes suggested
    assert "vanishing_activations" not in kinds_of(wi.doctor(m, xv, analytic=False))


@pytest.mark.parametrize(
    ("kind", "bad", "good"),
    [
        ("nonfinite", lambda x: x.clone().fill_(float("nan")), lambda x: x),
        ("bad_input", lambda x: "not a batch", lambda x: x),
        ("empty_batch", lambda x: x[:0], lambda x: x),
        ("forward_failed", lambda x: torch.randn(8, N_IN + 1), lambda x: x),
    ],
)
def test_bad_input_findings_fire_and_do_not(xv, kind, bad, good):
    m = relu_mlp(depth=3)
    assert kind in kinds_of(wi.doctor(m, bad(xv), analytic=False))
    assert not kinds_of(wi.doctor(m, good(xv), analytic=False)) & {"nonfinite", "bad_input", "empty_batch",
                                                                   "forward_failed"}  # fmt: skip


def test_untraceable_fires_for_an_operation_without_a_moment_rule_only(xv):
    torch.manual_seed(0)
    (f,) = wi.doctor(DataDependentCumsum(), xv).flagged("untraceable")
    assert f.severity == "info" and "'cumsum'" in f.message
    # data-dependent control flow alone: the recorded forward pass models it (the branch this batch took)
    assert "untraceable" not in kinds_of(wi.doctor(DataDependent(), xv))
    assert "untraceable" not in kinds_of(wi.doctor(relu_mlp(depth=3), xv))


def test_predicted_chi_product_flags_fire_and_the_fix_clears_them():
    from weightinit.doctor.analytic import analyze_torch

    m = relu_mlp(depth=12, std_mult=0.5)  # chi = 0.25 per layer
    rep, _ = analyze_torch(m)
    assert [f.layer for f in rep.flagged("vanishing_gradients")] == ["model"]
    m2 = relu_mlp(depth=12, std_mult=2.0)
    assert [f.layer for f in analyze_torch(m2)[0].flagged("exploding_gradients")] == ["model"]
    wi.fix(m, "analytic", measure=False)  # the fix, as suggested
    assert not analyze_torch(m)[0].flagged("vanishing_gradients")
    assert not analyze_torch(relu_mlp(depth=12))[0].flags  # He: chi = 1, nothing to say


# every kind the doctor can emit has its trigger / must-not test here or in test_llm_checks.py
TESTED_HERE = {
    "dead", "saturated", "collapse", "not_depth_stable", "exploding_activations", "vanishing_activations",
    "vanishing_gradients", "exploding_gradients", "nonfinite", "bad_input", "empty_batch", "forward_failed",
    "untraceable",
}  # fmt: skip
TESTED_IN_LLM = {"uninitialized", "fused_fans", "residual_scaling", "low_precision_init", "tied_head",
                 "head_scale", "inactive_truncation"}  # fmt: skip


def test_every_finding_kind_is_covered():
    import pathlib
    import re

    import weightinit.doctor as doctor_pkg

    root = pathlib.Path(doctor_pkg.__file__).parent
    text = "\n".join(p.read_text() for p in root.rglob("*.py"))
    emitted = set(re.findall(r'Flag\(\s*"([a-z_]+)"', text))
    assert emitted, "no Flag(...) found: the pattern is stale"
    assert emitted <= TESTED_HERE | TESTED_IN_LLM, emitted - TESTED_HERE - TESTED_IN_LLM
    llm_tests = (pathlib.Path(__file__).parent / "test_llm_checks.py").read_text()
    assert all(f'"{k}"' in llm_tests for k in TESTED_IN_LLM & emitted)
