"""The classics of initialization as a suite: fixed seeds, cheap sizes, and the figures each test measured.

Figures (torch 2.13 CPU, the seeds below; each assertion leaves a wide margin around them):

* Glorot & Bengio (2010): 5 tanh layers of width 256 with U(-1/sqrt(n), 1/sqrt(n)) shrink the activation std
  0.461 -> 0.046 (x0.10); Glorot's normalized init keeps 0.629 -> 0.320 (x0.51).
* He et al. (2015): 30 ReLU layers of width 256, no biases: output RMS 2.0e-5 with Glorot (q halves per layer),
  0.64 with He; the doctor flags the first and not the second.
* LSUV (Mishkin & Matas 2016): after weightinit.fix(mode="lsuv") every weight layer's output variance is
  within tol (10%) of 1 on the batch.
* Pennington et al. (2017): 16 layers of width 64, the normalized variance of the squared singular values of
  the input-output Jacobian, var(s^2)/mean(s^2)^2: ReLU 25.5 (orthogonal) and 24.5 (Gaussian): no dynamical
  isometry; tanh 1.17 with orthogonal weights against 19.3 with Gaussian ones.
* Fixup (Zhang et al. 2019): 32 residual blocks x + W2 relu(W1 x), width 128, no normalization: with He init
  the output variance is 9e14 times the input's; with Fixup (W2 = 0, W1 scaled by L^(-1/2)) exactly 1.
"""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")
import weightinit as wi  # noqa: E402
from torch import nn  # noqa: E402
from weightinit.doctor.compare import apply_initializer  # noqa: E402


def mlp(depth, width, act, bias=False):
    torch.manual_seed(0)
    layers: list = []
    for _ in range(depth):
        layers += [nn.Linear(width, width, bias=bias), act()]
    return nn.Sequential(*layers)


@pytest.fixture(scope="module")
def x():
    torch.set_num_threads(1)
    return torch.randn(512, 256, generator=torch.Generator().manual_seed(1))


def tanh_stds(m, x):
    h, out = x, []
    with torch.no_grad():
        for layer in m:
            h = layer(h)
            if isinstance(layer, nn.Tanh):
                out.append(float(h.std()))
    return out


def test_glorot_bengio_2010(x):
    m = mlp(5, 256, nn.Tanh)
    for layer in m:
        if isinstance(layer, nn.Linear):
            nn.init.uniform_(layer.weight, -(256**-0.5), 256**-0.5)
    standard = tanh_stds(m, x)
    m = mlp(5, 256, nn.Tanh)
    apply_initializer(m, "glorot_uniform", 0)
    normalized = tanh_stds(m, x)
    assert standard[-1] / standard[0] < 0.2  # measured 0.10
    assert normalized[-1] / normalized[0] > 0.4  # measured 0.51


def test_he_2015_30_layer_relu(x):
    reports = {}
    for init in ("glorot_normal", "he_normal"):
        m = mlp(30, 256, nn.ReLU)
        apply_initializer(m, init, 0)
        with torch.no_grad():
            rms = float(m(x).pow(2).mean().sqrt())
        reports[init] = (rms, wi.doctor(m, x[:128]))
    assert reports["glorot_normal"][0] < 1e-3  # measured 2.0e-5: (1/2)**15 of the input's
    assert 0.3 < reports["he_normal"][0] < 3  # measured 0.64
    assert reports["glorot_normal"][1].flagged("vanishing_activations")
    assert not reports["he_normal"][1].flagged("vanishing_activations")


def test_lsuv_unit_variance_per_layer(x):
    m = mlp(8, 256, nn.ReLU, bias=True)
    wi.fix(m, "lsuv", x[:256], measure=False)
    outs = []
    hooks = [layer.register_forward_hook(lambda mod, a, o: outs.append(float(o.var()))) for layer in m
             if isinstance(layer, nn.Linear)]  # fmt: skip
    with torch.no_grad():
        m(x[:256])
    for h in hooks:
        h.remove()
    assert len(outs) == 8 and all(abs(v - 1) < 0.1 for v in outs), outs


def jacobian_spread(act, init, gain, depth=16, width=64):
    torch.manual_seed(0)
    m = mlp(depth, width, act)
    for layer in m:
        if isinstance(layer, nn.Linear):
            if init == "orthogonal":
                nn.init.orthogonal_(layer.weight, gain=gain)
            else:
                nn.init.normal_(layer.weight, std=gain / math.sqrt(width))
    x0 = torch.randn(width, generator=torch.Generator().manual_seed(3))
    s2 = torch.linalg.svdvals(torch.autograd.functional.jacobian(m, x0).double()) ** 2
    return float(s2.var() / s2.mean() ** 2)


def test_pennington_2017_dynamical_isometry():
    relu = [jacobian_spread(nn.ReLU, init, math.sqrt(2)) for init in ("orthogonal", "gaussian")]
    tanh_orth, tanh_gauss = (jacobian_spread(nn.Tanh, init, 1.0) for init in ("orthogonal", "gaussian"))
    assert min(relu) > 10  # measured 25.5, 24.5: orthogonal weights do not help ReLU
    assert tanh_orth < 2 and tanh_gauss > 5 * tanh_orth  # measured 1.17 vs 19.3


class _Res(nn.Module):
    def __init__(self, w):
        super().__init__()
        self.a, self.b = nn.Linear(w, w, bias=False), nn.Linear(w, w, bias=False)

    def forward(self, x):
        return x + self.b(torch.relu(self.a(x)))


@pytest.mark.parametrize("fixup", [False, True])
def test_fixup_2019_bounded_residual_variance(fixup):
    torch.manual_seed(0)
    blocks, depth = [_Res(128) for _ in range(32)], 32
    for b in blocks:
        nn.init.kaiming_normal_(b.a.weight, nonlinearity="relu")
        nn.init.kaiming_normal_(b.b.weight, nonlinearity="relu")
        if fixup:  # m = 2 layers per branch: W1 * L^(-1/(2m-2)), last layer of the branch zero
            b.a.weight.data.mul_(depth ** (-1 / (2 * 2 - 2)))
            b.b.weight.data.zero_()
    x = torch.randn(256, 128, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ratio = float(nn.Sequential(*blocks)(x).var() / x.var())
    if fixup:
        assert ratio == pytest.approx(1.0, abs=1e-6)
    else:
        assert ratio > 1e10  # measured 9e14: each block roughly doubles the variance
