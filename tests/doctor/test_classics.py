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
* Schoenholz et al. (2017): tanh, sigma_b^2 = 0.05. By quadrature (weightinit.doctor.analytic.
  correlation_depth_scale): the order-to-chaos boundary chi_1 = 1 is at sigma_w^2 = 1.761; on the grid 0.8..3.0
  (step 0.1) the correlation depth scale xi_c rises from 2.30 (0.8) to 125.8 (1.8) and falls to 9.05 (3.0); it is
  2343 at 0.002 below the boundary. Monte Carlo, width 512, 32 input pairs, 40 layers: the mean cosine follows
  the iterated correlation map within 0.013 (sigma_w^2 = 1.0), 0.025 (1.3), 0.040 (2.5, chaotic); the fitted
  decay of 1 - c_l gives xi = 3.78 and 7.91 against the predicted 3.63 and 7.83; in the chaotic phase two
  inputs starting at 0.95 correlation head to c* = 0.447.
* Schoenholz et al. (2017), trainability: tanh MLPs of width 32 (sigma_b^2 = 0.05, 16 inputs, 4 classes of a
  random linear teacher, 512 examples), 300 steps of SGD (lr 0.05, batch 64); final / initial training loss:

  ==========  =======  ====  ====  ====  ====  ====
  sigma_w^2   xi_c     L=4   8     12    16    24
  ==========  =======  ====  ====  ====  ====  ====
  0.5         1.19     0.12  0.58  0.97  0.95  0.99
  0.75        2.05     0.09  0.08  0.10  0.60  0.97
  1.0         3.63     0.08  0.03  0.03  0.02  0.20
  1.76        ~5000    0.06  0.03  0.01  0.01  0.02
  ==========  =======  ====  ====  ====  ====  ====

  Every net at most 4 xi_c deep trains (ratio <= 0.20), every net at least 10 xi_c deep stays at chance (>= 0.95);
  the loss is half-trained (0.58, 0.60) at 6.7 and 7.8 xi_c: the boundary sits near the paper's 6 xi_c.
* Xiao et al. (2018): 200 layers of tanh(conv1d) (16 channels, length 16, kernel 3, circular padding, no
  biases) at sigma_w^2 = 1: the input-output Jacobian's var(s^2)/mean(s^2)^2 is 1.66 with weightinit's
  DeltaOrthogonal kernels against 90.3 with Gaussian ones, log10 condition number 4.1 against 19.0.
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


# --- Schoenholz et al. 2017: the correlation depth scale diverges at the order-to-chaos boundary ------------


def correlation_trajectory(sw2, sb2, c0, depth=40, width=512, pairs=32, seed=0):
    """Monte Carlo: the mean cosine of two inputs' pre-activations, layer by layer, through one deep random tanh
    net (``Var(W) = sw2 / n``, ``Var(b) = sb2``), the inputs starting at the length fixed point ``q*`` with
    correlation ``c0``; and the mean-field prediction, :func:`correlation_map` iterated."""
    from weightinit.doctor.analytic import correlation_depth_scale, correlation_map

    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(seed)
    d = correlation_depth_scale(np_tanh, sw2, sb2)
    q = d["q_star"]
    z1, z2 = (torch.randn(pairs, width, generator=g, dtype=torch.float64) for _ in range(2))
    h1, h2 = math.sqrt(q) * z1, math.sqrt(q) * (c0 * z1 + math.sqrt(1 - c0 * c0) * z2)
    measured, predicted, c = [], [], c0
    for _ in range(depth):
        w = torch.randn(width, width, generator=g, dtype=torch.float64) * math.sqrt(sw2 / width)
        b = torch.randn(width, generator=g, dtype=torch.float64) * math.sqrt(sb2)
        h1, h2 = torch.tanh(h1) @ w.T + b, torch.tanh(h2) @ w.T + b
        measured.append(float(nn.functional.cosine_similarity(h1, h2, dim=1).mean()))
        c = correlation_map(np_tanh, sw2, sb2, c, q)
        predicted.append(c)
    return d, measured, predicted


def np_tanh(x):
    import numpy as np

    return np.tanh(x)


def fitted_depth_scale(cs, c_star, lo=0.005, hi=0.2):
    """``xi`` from a least-squares line through ``log |c_l - c*|`` where the deviation is in ``(lo, hi)``."""
    import numpy as np

    dev = np.abs(np.asarray(cs) - c_star)
    idx = np.where((dev > lo) & (dev < hi))[0]
    assert len(idx) >= 8, dev
    return -1 / np.polyfit(idx, np.log(dev[idx]), 1)[0]


def test_schoenholz_2017_depth_scale_diverges_at_the_order_to_chaos_boundary():
    import numpy as np

    from weightinit.doctor.analytic import correlation_depth_scale

    sb2 = 0.05
    grid = np.round(np.arange(0.8, 3.01, 0.1), 2)
    res = {s: correlation_depth_scale(np_tanh, s, sb2) for s in grid}
    chi = np.array([res[s]["chi_1"] for s in grid])
    xi = np.array([res[s]["xi_c"] for s in grid])
    # the boundary chi_1 = 1 lies between 1.7 and 1.8 (measured 1.76), and xi_c peaks at the grid point next to it
    assert (chi[grid <= 1.7] < 1).all() and (chi[grid >= 1.8] > 1).all()
    assert grid[np.argmax(xi)] == 1.8
    assert (np.diff(xi[grid <= 1.8]) > 0).all() and (np.diff(xi[grid >= 1.8]) < 0).all()
    # the boundary by bisection on chi_1, and the divergence of xi_c at it
    lo, hi = 1.7, 1.8
    for _ in range(30):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if correlation_depth_scale(np_tanh, mid, sb2)["chi_1"] < 1 else (lo, mid)
    crit = (lo + hi) / 2
    assert 1.74 < crit < 1.78  # measured 1.761
    assert correlation_depth_scale(np_tanh, crit - 0.002, sb2)["xi_c"] > 300  # measured 2343 (and 2351 above)
    assert correlation_depth_scale(np_tanh, crit + 0.002, sb2)["xi_c"] > 300
    assert xi.max() > 10 * xi[0]  # measured 125.8 at 1.8 vs 2.30 at 0.8
    # without biases, tanh's chaotic phase decorrelates completely: c* = 0 (odd activation)
    no_bias = correlation_depth_scale(np_tanh, 2.0, 0.0)
    assert no_bias["chi_1"] > 1 and abs(no_bias["c_star"]) < 1e-6


@pytest.mark.parametrize(("sw2", "xi_expected"), [(1.0, 3.63), (1.3, 7.83)])
def test_schoenholz_2017_monte_carlo_depth_scale_in_the_ordered_phase(sw2, xi_expected):
    d, measured, predicted = correlation_trajectory(sw2, 0.05, c0=0.2)
    assert d["xi_c"] == pytest.approx(xi_expected, abs=0.01)
    # width 512, 32 pairs: the measured trajectory follows the map within 0.03 (measured 0.013, 0.025) ...
    assert max(abs(a - b) for a, b in zip(measured, predicted)) < 0.04
    # ... and 1 - c_l decays at the predicted depth scale (measured 3.78 and 7.91)
    assert fitted_depth_scale(measured, 1.0) == pytest.approx(d["xi_c"], rel=0.15)


def test_schoenholz_2017_monte_carlo_chaotic_phase_forgets_correlations():
    d, measured, predicted = correlation_trajectory(2.5, 0.05, c0=0.95)
    assert 0.4 < d["c_star"] < 0.5  # measured 0.447: two inputs end at correlation c* < 1 whatever they were
    assert max(abs(a - b) for a, b in zip(measured, predicted)) < 0.06  # measured 0.040
    # from 0.95 towards c*: the last 10 of 40 layers average 0.555 (map) and 0.541 (measured); the last 0.523, 0.506
    assert abs(sum(measured[-10:]) - sum(predicted[-10:])) / 10 < 0.05
    assert predicted[-1] - d["c_star"] < 0.1 and measured[-1] < 0.6


# --- Schoenholz et al. 2017, second claim: the trainable depth tracks xi_c ------------------------------------

TRAIN_SW2 = (0.5, 0.75, 1.0, 1.76)  # ordered phase (xi_c = 1.19, 2.05, 3.63) and the boundary (xi_c ~ 5000)
TRAIN_DEPTHS = (4, 8, 12, 16, 24)
TRAINABLE, UNTRAINABLE = 4, 10  # L <= 4 xi_c must train, L >= 10 xi_c must not (the paper's boundary: ~6 xi_c)


def train_tanh_nets(sw2s, depth, *, sb2=0.05, width=32, d_in=16, classes=4, n=512, steps=300, lr=0.05, batch=64,
                    seed=0):  # fmt: skip
    """Train one ``depth``-layer tanh MLP per ``sigma_w^2`` in ``sw2s`` (``W ~ N(0, sigma_w^2 / fan_in)``,
    ``b ~ N(0, sb2)``, the readout too) by plain SGD on the same minibatches of a synthetic task: ``n`` N(0, I)
    inputs labelled by the argmax of a fixed random linear teacher (``classes`` classes).  The nets are trained
    side by side as one batched matmul chain (the summed loss gives each net its own gradient).  Returns the
    full-training-set cross-entropy of each net before and after."""
    g = torch.Generator().manual_seed(seed)
    teacher = torch.randn(d_in, classes, generator=g)
    x = torch.randn(n, d_in, generator=g)
    y = (x @ teacher).argmax(1)
    k = len(sw2s)
    scale = torch.tensor(sw2s).sqrt().view(k, 1, 1)
    params = []
    for fan_in, fan_out in zip([d_in] + [width] * depth, [width] * depth + [classes]):
        params.append((torch.randn(k, fan_in, fan_out, generator=g) * scale / math.sqrt(fan_in)).requires_grad_())
        params.append((torch.randn(k, 1, fan_out, generator=g) * math.sqrt(sb2)).requires_grad_())

    def losses(xb, yb):
        h = xb.expand(k, *xb.shape)
        for i in range(0, len(params), 2):
            h = torch.baddbmm(params[i + 1], h, params[i])
            h = torch.tanh(h) if i + 2 < len(params) else h
        ce = nn.functional.cross_entropy(h.reshape(-1, classes), yb.repeat(k), reduction="none")
        return ce.view(k, -1).mean(1)

    with torch.no_grad():
        before = losses(x, y)
    for _ in range(steps):
        idx = torch.randint(0, n, (batch,), generator=g)
        grads = torch.autograd.grad(losses(x[idx], y[idx]).sum(), params)
        with torch.no_grad():
            for p, gr in zip(params, grads):
                p -= lr * gr
    with torch.no_grad():
        after = losses(x, y)
    return before.tolist(), after.tolist()


@pytest.fixture(scope="module")
def trainability():
    """``{(sigma_w^2, depth): final / initial training loss}`` over the sweep, and ``{sigma_w^2: xi_c}``."""
    from weightinit.doctor.analytic import correlation_depth_scale

    torch.set_num_threads(1)
    xi = {s: correlation_depth_scale(np_tanh, s, 0.05)["xi_c"] for s in TRAIN_SW2}
    ratio = {}
    for depth in TRAIN_DEPTHS:
        before, after = train_tanh_nets(TRAIN_SW2, depth)
        ratio.update({(s, depth): a / b for s, b, a in zip(TRAIN_SW2, before, after)})
    return ratio, xi


def test_schoenholz_2017_trainable_depth_tracks_the_depth_scale(trainability):
    ratio, xi = trainability
    trained = {key: r < 0.5 for key, r in ratio.items()}  # loss at least halved (trainable: 0.01-0.4; not: > 0.9)
    # every net at most 4 xi_c deep trains, every net at least 10 xi_c deep does not, and both sides are populated
    short = [key for key in ratio if key[1] <= TRAINABLE * xi[key[0]]]
    deep = [key for key in ratio if key[1] >= UNTRAINABLE * xi[key[0]]]
    assert len(short) >= 10 and len(deep) >= 4, (short, deep)
    assert all(trained[key] for key in short), {key: ratio[key] for key in short}
    assert all(ratio[key] > 0.8 for key in deep), {key: ratio[key] for key in deep}
    # at the same depth (24 = 20 xi_c of sigma_w^2 = 0.5) the net at the boundary trains, the ordered one does not
    assert trained[(1.76, 24)] and not trained[(0.5, 24)]
    # the deepest trained depth of each sigma_w^2 grows with xi_c: 4, 12, 24 and 24 (the sweep's end) for xi_c =
    # 1.19, 2.05, 3.63 and ~5000; inside the sweep, the first depth that fails is 5-10 xi_c (measured 8 = 6.7 xi_c
    # and 16 = 7.8 xi_c, ratios 0.58 and 0.60: half-trained at the boundary)
    l_max = [max((d for d in TRAIN_DEPTHS if trained[(s, d)]), default=0) for s in TRAIN_SW2]
    assert l_max == sorted(l_max) and l_max[0] < l_max[-1] == TRAIN_DEPTHS[-1], l_max
    for s, lm in zip(TRAIN_SW2, l_max):
        if lm < TRAIN_DEPTHS[-1]:
            first_failed = TRAIN_DEPTHS[TRAIN_DEPTHS.index(lm) + 1]
            assert 5 <= first_failed / xi[s] <= UNTRAINABLE, (s, first_failed, xi[s])


# --- Xiao et al. 2018: delta-orthogonal keeps a 200-layer plain tanh CNN's Jacobian well conditioned --------


def cnn_jacobian_singular_values(init, depth=200, channels=16, length=16, k=3):
    """Singular values of the input-output Jacobian of ``depth`` layers of ``tanh(conv1d(h, w))`` (circular
    padding, no biases) at one N(0, 1) input, from the exact tangent of every input direction at once."""
    import numpy as np

    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, channels, length, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    tangents = torch.eye(channels * length, dtype=torch.float64).reshape(-1, channels, length)
    h = x

    def pad(t):
        return nn.functional.pad(t, (k // 2, k // 2), mode="circular")

    for layer in range(depth):
        if init == "delta_orthogonal":  # weightinit's (k, in, out) kernel, as a torch (out, in, k) weight
            w = np.transpose(wi.DeltaOrthogonal(seed=layer)((k, channels, channels)), (2, 1, 0))
            w = torch.from_numpy(np.ascontiguousarray(w)).double()
        else:  # Gaussian at the same (critical) sigma_w^2 = 1: Var(w) = 1 / fan_in
            w = torch.randn(channels, channels, k, generator=g, dtype=torch.float64) / math.sqrt(channels * k)
        u = nn.functional.conv1d(pad(h), w)
        tangents = nn.functional.conv1d(pad(tangents), w) * (1 - torch.tanh(u) ** 2)
        h = torch.tanh(u)
    return torch.linalg.svdvals(tangents.reshape(channels * length, -1))


def test_xiao_2018_delta_orthogonal_deep_cnn_is_well_conditioned():
    torch.set_num_threads(1)  # small convolutions: threads only add overhead on a shared machine
    stats = {}
    for init in ("delta_orthogonal", "gaussian"):
        s = cnn_jacobian_singular_values(init)
        s2 = s**2
        stats[init] = (float(s2.var() / s2.mean() ** 2), float(torch.log10(s.max() / s.min())))
    (spread_d, cond_d), (spread_g, cond_g) = stats["delta_orthogonal"], stats["gaussian"]
    assert spread_d < 3  # measured 1.66: only the tanh derivatives spread the spectrum
    assert spread_g > 20 * spread_d  # measured 90.3
    assert cond_d < 6 and cond_g > cond_d + 8  # log10 condition number: measured 4.1 vs 19.0
