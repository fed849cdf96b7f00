"""Convolutions with zero padding and max pooling in the doctor's analytic pass, checked by Monte Carlo.

Zero padding: at an output position ``p`` only the taps ``B(p)`` that read inside the input count, so for
zero-mean i.i.d. weights ``E[y(p)^2] = sigma_w^2 / K sum_{t in B(p)} E[x(p+t)^2]`` and the position-averaged
factor on ``sigma_w^2`` is :func:`weightinit.doctor.analytic.padding_fraction` (with the measured weights, each
tap weighted by its share of the kernel's energy: ``padded_kernel_moments``).  Max pooling: the max of the ``k``
values of each window (fewer at a padded border), modelled as ``k`` independent Gaussians with the tracked moments,
and taken before a non-decreasing activation (``max relu(x_i) = relu(max x_i)``): ``maxpool_moments``.

Tolerance (as in test_fx_rules.py and test_recorded_graph.py): 5 standard errors of the Monte Carlo mean over the
``B`` independent examples, plus ``1/sqrt(C)`` relative for the mean-field error at ``C`` channels (one draw of the
weights).  What it rejects: the old rules (every tap counted; max pooling as the identity), off by 1.4x to 9x here.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402
from weightinit.doctor import analytic as an  # noqa: E402
from weightinit.doctor.analytic import analyze_torch  # noqa: E402

C, B = 128, 256
TOL_WIDTH = 1 / math.sqrt(C)


def _check(preds, got, width=TOL_WIDTH):
    """``(failures, worst ratio)`` of predictions ``{name: q}`` against per-example measurements ``{name: tensor}``."""
    bad, worst = [], 1.0
    for name, per in got.items():
        q, se = float(per.mean()), float(per.std() / math.sqrt(per.numel()))
        tol = 5 * se + width * q
        worst = max(worst, preds[name] / q, q / preds[name])
        if not abs(preds[name] - q) <= tol:
            bad.append(f"{name}: predicted {preds[name]:.4g}, measured {q:.4g} +- {tol:.2g}")
    return bad, worst


class _OldRules:
    """The rules before: every tap of a padded conv counted, max pooling the identity (what the tests reject)."""

    def __enter__(self):
        self.saved = an._module_padding, an.maxpool_rule
        an._module_padding = lambda mod, shape: None
        an.maxpool_rule = lambda mu, q, d, sizes, weights=None, groups=None, pre=None: (mu, q, d, groups)
        return self

    def __exit__(self, *exc):
        an._module_padding, an.maxpool_rule = self.saved


#: (input size, conv keyword arguments): 3x3 pad 1 on 4x4, 2x2 and 1x1 maps (resnet18's layer4 at 32x32), stride 2,
#: "same" with dilation 2, asymmetric explicit padding (a functional pad would be needed in torch: via a 4x3 kernel)
CASES = [((4, 4), {"kernel_size": 3, "padding": 1}), ((2, 2), {"kernel_size": 3, "padding": 1}),
         ((1, 1), {"kernel_size": 3, "padding": 1}), ((5, 5), {"kernel_size": 3, "stride": 2, "padding": 1}),
         ((6, 6), {"kernel_size": 3, "padding": "same", "dilation": 2}), ((4, 4), {"kernel_size": (4, 3), "padding": 1})]  # fmt: skip


class OneConv(nn.Module):
    def __init__(self, **kw):
        super().__init__()
        self.conv, self.relu = nn.Conv2d(3, C, **kw), nn.ReLU()

    def forward(self, x):
        return self.relu(self.conv(x))


def _he(m):
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, nn.Conv2d):
                mod.weight.normal_(0, math.sqrt(2 / mod.weight[0].numel()), generator=g)
                mod.bias.normal_(0, 0.1, generator=g)
    return m


def test_padding_fraction_counts_the_taps_in_bounds():
    # brute force: the mean over output positions of the in-bounds taps of a zero-padded 2-D conv
    for size, k, s, p, dl in [((4, 4), 3, 1, 1, 1), ((2, 2), 3, 1, 1, 1), ((1, 1), 3, 1, 1, 1), ((5, 7), 3, 2, 1, 1),
                              ((32, 32), 7, 2, 3, 1), ((6, 5), 3, 1, 2, 2), ((4, 4), 3, 1, ((1, 0), (2, 1)), 1)]:  # fmt: skip
        pads = an.conv_pads(p, size, k, s, dl)
        x = torch.ones(1, 1, *size, dtype=torch.float64)
        x = nn.functional.pad(x, (pads[1][0], pads[1][1], pads[0][0], pads[0][1]))
        taps = nn.functional.conv2d(x, torch.ones(1, 1, k, k, dtype=torch.float64), stride=s, dilation=dl)
        assert an.padding_fraction(size, k, s, p, dl) == pytest.approx(float(taps.mean()) / k**2, rel=1e-12)
    # "same" as torch (stride 1) and Keras/jax.lax (stride 2) pad it: the output size
    for n, k, s in [(4, 3, 1), (5, 3, 2), (8, 4, 2), (7, 5, 3)]:
        (lo, hi), = an.conv_pads("same", (n,), k, s)  # fmt: skip
        assert (n + lo + hi - k) // s + 1 == -(-n // s) and 0 <= hi - lo <= 1
    with pytest.raises(ValueError, match="padding"):
        an.conv_pads("full", (4,), 3)


@pytest.mark.parametrize("size,kw", CASES)
def test_padded_convolutions_against_monte_carlo(per_example_q, size, kw):
    """A padded conv (and the relu after it) on an input with the same moments at every position (mean 0.5)."""
    torch.manual_seed(0)
    m = _he(OneConv(**kw))
    x = 0.5 + torch.randn(B, 3, *size, generator=torch.Generator().manual_seed(1))
    rep = analyze_torch(m, x)[0]
    assert not any("recorded forward pass" in n for n in rep.notes)  # the fx path
    got = per_example_q(m, x, ["conv", "relu"])
    bad, _ = _check({s.name: s.q_pred for s in rep.layers}, got)
    assert not bad, bad
    with _OldRules():
        old = {s.name: s.q_pred for s in analyze_torch(m, x)[0].layers}
    old_bad, old_worst = _check(old, got)
    assert {"conv", "relu"} <= {b.split(":")[0] for b in old_bad} and old_worst > 1.2, (old_bad, old_worst)


class PoolNet(nn.Module):
    """Max pooling on the Gaussian input (3x3 stride 2 pad 1 on 8x8: border windows of 4 and 6 values), and after a
    relu (the max before it) of a conv with per-channel biases (a shared part): 2x2 windows, and global."""

    def __init__(self):
        super().__init__()
        self.pool0 = nn.MaxPool2d(3, 2, 1)
        self.conv, self.relu = nn.Conv2d(3, C, 1), nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.gpool = nn.AdaptiveMaxPool2d(1)

    def forward(self, x):
        h = self.relu(self.conv(x))
        return self.pool0(x), self.pool(h), self.gpool(h)


def _per_example_d(y):
    """Per example, the mean over units of ``(y - mean over the batch)^2 * B / (B - 1)``: its mean is the signal
    ``d`` (the batch variance averaged over units), its spread the Monte Carlo error."""
    y = y.double().reshape(len(y), -1)
    return (y - y.mean(0)).pow(2).mean(1) * len(y) / (len(y) - 1)


def test_max_pooling_against_monte_carlo(per_example_q):
    torch.manual_seed(0)
    m = PoolNet()
    with torch.no_grad():
        m.conv.bias.normal_(0, 0.5, generator=torch.Generator().manual_seed(2))  # a shared part per channel
    x = 1.0 + torch.randn(B, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    rep = analyze_torch(m, x)[0]
    names = ["pool0", "conv", "relu", "pool", "gpool"]
    got = per_example_q(m, x, names)
    bad, _ = _check({s.name: s.q_pred for s in rep.layers}, got)
    assert not bad, bad
    # the signal (input-dependent variance)
    outs: dict = {}
    hooks = [getattr(m, n).register_forward_hook(lambda mod, a, y, n=n: outs.update({n: y}))
             for n in ("pool0", "pool", "gpool")]  # fmt: skip
    with torch.no_grad():
        m(x)
    for h in hooks:
        h.remove()
    bad_d, _ = _check({s.name: s.signal_pred**2 for s in rep.layers}, {n: _per_example_d(y) for n, y in outs.items()})
    assert not bad_d, bad_d
    with _OldRules():
        old = {s.name: s.q_pred for s in analyze_torch(m, x)[0].layers}
    old_bad, _ = _check(old, got)
    assert {"pool0", "pool", "gpool"} <= {b.split(":")[0] for b in old_bad}, old_bad


def test_max_pooling_of_a_non_monotone_activation_uses_its_own_moments():
    from weightinit.initializers.gains import activation

    relu, gelu = activation("relu"), activation("gelu")
    assert an.non_decreasing(relu) and an.non_decreasing(np.tanh) and not an.non_decreasing(gelu)
    rng = np.random.default_rng(0)
    u = rng.standard_normal((200_000, 4))
    for phi in (relu, np.tanh):  # max phi(u_i) = phi(max u_i): the pre-activation's moments
        y = phi(u).max(1)
        m1, m2, _ = an.maxpool_moments(0.0, 1.0, 4, phi=phi)
        assert m1 == pytest.approx(y.mean(), abs=5 * y.std() / math.sqrt(len(y)))
        assert m2 == pytest.approx((y * y).mean(), abs=5 * (y * y).std() / math.sqrt(len(y)))
    mu, q = an.moment_map(gelu, 1.0)
    assert an.maxpool_rule(mu, q, q - mu * mu, [4])[:3] == an.maxpool_moments(mu, q, 4)  # GELU: Gaussian, own moments


def test_torchvision_resnet18_at_32x32(model_zoo, per_example_q):
    """Every layer of torchvision's resnet18 (training mode, 32 x 32 input: layer4 runs on 1 x 1 maps, where a 3 x 3
    pad-1 conv sees 1/9 of its taps) within 5 standard errors plus ``1/sqrt(64)`` (the narrowest width); the old
    rules put the stem's maxpool at 1/4.9 of the measurement and layer4's convs 2.3x to 9.4x too high.  (The residual
    adds use the independence rule, ``cross="expected"``: the measured Jacobian cross moments cost a partial forward
    each and are not what is tested here.)"""
    torch.manual_seed(0)
    m = model_zoo.torchvision.models.resnet18(num_classes=10).train()
    x = torch.randn(64, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    rep = analyze_torch(m, x, cross="expected")[0]
    assert not any("recorded forward pass" in n for n in rep.notes)  # the fx path
    preds = {s.name: s.q_pred for s in rep.layers}
    mods = dict(m.named_modules())
    names = [n for n in preds if n in mods and n]
    got = per_example_q(m, x, names)
    assert len(got) >= 50
    bad, worst = _check(preds, got, 1 / math.sqrt(64))
    assert not bad, bad
    assert worst < 1.2, worst
    with _OldRules():
        old = {s.name: s.q_pred for s in analyze_torch(m, x, cross="expected")[0].layers}
    old_bad, old_worst = _check(old, got, 1 / math.sqrt(64))
    assert "maxpool" in {b.split(":")[0] for b in old_bad} and old_worst > 4, (old_bad, old_worst)


class FunctionalConv(nn.Module):
    """``relu(F.conv2d(x, w, b, padding=1))`` on the module's own parameters (torch.fx: ``get_attr`` nodes)."""

    def __init__(self, conv):
        super().__init__()
        self.w, self.b = nn.Parameter(conv.weight.detach().clone()), nn.Parameter(conv.bias.detach().clone())
        self.act = nn.ReLU()

    def forward(self, x):
        return self.act(nn.functional.conv2d(x, self.w, self.b, padding=1))


def test_functional_conv_counts_the_padding_too(per_example_q):
    """``F.conv2d`` in a traced forward gets the module's rule (it was an unknown node, the identity)."""
    torch.manual_seed(0)
    mod = _he(OneConv(kernel_size=3, padding=1))
    f = FunctionalConv(mod.conv)
    x = 0.5 + torch.randn(B, 3, 4, 4, generator=torch.Generator().manual_seed(1))
    want = {s.name: s.q_pred for s in analyze_torch(mod, x)[0].layers}
    got = {s.name: s.q_pred for s in analyze_torch(f, x)[0].layers}
    assert got["conv2d"] == pytest.approx(want["conv"], rel=1e-9) and got["act"] == pytest.approx(
        want["relu"], rel=1e-9
    )
    bad, _ = _check({"act": got["act"]}, per_example_q(f, x, ["act"]))
    assert not bad, bad


class TwoConv(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.relu1 = nn.Conv2d(3, C, 3, padding=1), nn.ReLU()
        self.conv2, self.relu2 = nn.Conv2d(C, C, 3, padding=1), nn.ReLU()

    def forward(self, x):
        return self.relu2(self.conv2(self.relu1(self.conv1(x))))


def test_analytic_fix_aims_at_the_padded_output(per_example_q):
    """``weightinit.fix(mode="analytic", probe=False)`` rescales each padded conv by its predicted output: on 2x2 maps
    (4/9 of the taps in bounds) the convs' measured second moments hit the target 1 (counting every tap, the fix
    would leave them at 4/9)."""
    import weightinit as wi

    torch.manual_seed(0)
    m = TwoConv()
    x = torch.randn(B, 3, 2, 2, generator=torch.Generator().manual_seed(1))
    wi.fix(m, "analytic", x, measure=False, probe=False)
    for name, per in per_example_q(m, x, ["conv1", "conv2"]).items():
        q, se = float(per.mean()), float(per.std() / math.sqrt(per.numel()))
        assert abs(q - 1.0) <= 5 * se + TOL_WIDTH, (name, q)
        assert abs(4 / 9 - q) > 5 * se + TOL_WIDTH, (name, q)


class PaddedPoolNet(nn.Module):
    """A padded conv, relu, a 3x3 stride-2 pad-1 max pooling (border windows), a strided padded conv, relu, adaptive
    max pooling; ``untraceable`` adds data-dependent control flow (torch.fx cannot trace it: the recorded graph)."""

    def __init__(self, untraceable: bool):
        super().__init__()
        self.untraceable = untraceable
        self.conv1, self.relu1, self.pool1 = nn.Conv2d(3, C, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2, 1)
        self.conv2, self.relu2, self.pool2 = nn.Conv2d(C, C, 3, stride=2, padding=1), nn.ReLU(), nn.AdaptiveMaxPool2d(2)

    def forward(self, x):
        if self.untraceable and x.shape[0] < 1:  # (a Python branch on a traced shape: torch.fx cannot trace it)
            raise ValueError("empty batch")
        return self.pool2(self.relu2(self.conv2(self.pool1(self.relu1(self.conv1(x))))))


def test_recorded_graph_has_the_same_padding_and_pooling_rules(per_example_q):
    """The recorded forward pass (models torch.fx cannot trace) gives the fx path's numbers at every layer, and both
    match Monte Carlo."""
    from weightinit.doctor.backends.torchgraph import analyze_recorded

    torch.manual_seed(0)
    fx_m, rec_m = _he(PaddedPoolNet(False)), PaddedPoolNet(True)
    rec_m.load_state_dict(fx_m.state_dict())
    x = torch.randn(B, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    fx = {s.name: s.q_pred for s in analyze_torch(fx_m, x)[0].layers}
    rep = analyze_torch(rec_m, x, recorded=analyze_recorded)[0]
    assert any("recorded forward pass" in n for n in rep.notes) and not rep.flagged("untraceable")
    rec = {s.name: s.q_pred for s in rep.layers}
    names = ["conv1", "relu1", "pool1", "conv2", "relu2", "pool2"]
    for name in names:
        assert rec[name] == pytest.approx(fx[name], rel=1e-9), (name, rec[name], fx[name])
    bad, _ = _check(fx, per_example_q(fx_m, x, names))
    assert not bad, bad


class FunctionalPools(nn.Module):
    def forward(self, x):
        h = nn.functional.max_pool2d(torch.relu(x), 3, stride=2, padding=1)
        return nn.functional.adaptive_max_pool2d(torch.relu(h - 1.0), 1)


class ModulePools(nn.Module):
    def __init__(self):
        super().__init__()
        self.relu1, self.pool1, self.relu2, self.pool2 = (
            nn.ReLU(),
            nn.MaxPool2d(3, 2, 1),
            nn.ReLU(),
            nn.AdaptiveMaxPool2d(1),
        )

    def forward(self, x):
        return self.pool2(self.relu2(self.pool1(self.relu1(x)) - 1.0))


def test_functional_max_pooling_is_the_modules_rule():
    """``F.max_pool2d`` / ``F.adaptive_max_pool2d`` in a traced forward get the modules' rule (they were unknown
    nodes, the identity)."""
    x = torch.randn(B, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    f = [s.q_pred for s in analyze_torch(FunctionalPools(), x)[0].layers if "pool" in s.name]
    m = [s.q_pred for s in analyze_torch(ModulePools(), x)[0].layers if "pool" in s.name]
    assert len(f) == 2 and f == pytest.approx(m, rel=1e-12), (f, m)
    y = nn.functional.max_pool2d(torch.relu(x), 3, stride=2, padding=1).double()  # (i.i.d. inputs: no width term)
    q, se = float(y.pow(2).mean()), float(y.pow(2).reshape(B, -1).mean(1).std() / math.sqrt(B))
    assert abs(f[0] - q) <= 5 * se, (f[0], q, se)


class AvgPoolNet(nn.Module):
    """A 1x1 conv with per-channel biases (a shared part), relu, then an average pooling."""

    def __init__(self, pool):
        super().__init__()
        self.conv, self.relu, self.pool = nn.Conv2d(3, C, 1), nn.ReLU(), pool

    def forward(self, x):
        return self.pool(self.relu(self.conv(x)))


#: overlapping windows (stride 1 and 2 with a 3x3 window: Inception's branch pooling), zero padding counted or not,
#: ceil_mode's partial last window, an adaptive pooling with overlapping windows (8 -> 3: 3, 4 and 3 values); and
#: whether the rule before (the size ratio) is off there by more than the tolerance
AVGPOOLS = [(nn.AvgPool2d(3, 1, 1), True), (nn.AvgPool2d(3, 1, 1, count_include_pad=False), True),
            (nn.AvgPool2d(3, 2, 1), True), (nn.AvgPool2d(3, 2, 0, ceil_mode=True), False),
            (nn.AdaptiveAvgPool2d(3), False)]  # fmt: skip


@pytest.mark.parametrize("pool,old_off", AVGPOOLS, ids=lambda v: repr(v) if isinstance(v, nn.Module) else "")
def test_average_pooling_divides_by_the_window_not_the_size_ratio(per_example_q, pool, old_off):
    """Average pooling over windows of ``k`` values divides the input-dependent variance by ``k``
    (``analytic.avgpool_window_moments``), whatever the stride; the ratio of the input's and output's sizes (the
    rule before: 1 at stride 1, so the identity) is 1.5x-2.6x off at stride 1 and 2 with padding, and is rejected
    there (with stride 2 and no padding, or the adaptive pooling, the shared part of the relu's output dominates and
    both rules are within the tolerance)."""
    m = _he(AvgPoolNet(pool))
    x = 0.5 + torch.randn(B, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    rep = analyze_torch(m, x)[0]
    got = per_example_q(m, x, ["pool"])
    bad, _ = _check({s.name: s.q_pred for s in rep.layers}, got)
    assert not bad, bad
    saved = an._module_avgpool_windows
    an._module_avgpool_windows = lambda mod, i, o: None
    try:
        old = {s.name: s.q_pred for s in analyze_torch(m, x)[0].layers}
    finally:
        an._module_avgpool_windows = saved
    old_bad, old_worst = _check(old, got)
    assert not old_off or (old_bad and old_worst > 1.2), (old_bad, old_worst)


def _torch_window_sizes(pool_args, in_size):
    """``(sizes, weights)`` of the real values per window, counted by torch itself (an average pooling of ones that
    counts the padding, times the window's size)."""
    k, s, p = pool_args
    ones = torch.ones(1, 1, *in_size, dtype=torch.float64)
    n = nn.functional.avg_pool2d(ones, k, s, p, count_include_pad=True) * (k * k)
    vals, counts = torch.unique(n.round(), return_counts=True)
    return vals.numpy(), (counts / counts.sum()).numpy()


@pytest.mark.parametrize("cls", [nn.MaxPool2d, nn.AdaptiveMaxPool2d])
def test_unbatched_input_to_a_2d_max_pooling_has_two_spatial_dimensions(cls):
    """``MaxPool2d(3, 2, 1)`` (an int kernel) on an unbatched ``(C, H, W)`` input pools over H and W, as on a batch
    (the spatial dimensions were taken from the input's rank: W only, windows of 2 and 3 values, not 4, 6 and 9)."""
    mod = cls(3, 2, 1) if cls is nn.MaxPool2d else cls((2, 3))
    x = torch.randn(4, 8, 7)
    y = mod(x)
    unbatched = an._module_pool_sizes(mod, tuple(x.shape), tuple(y.shape))
    batched = an._module_pool_sizes(mod, (2, *x.shape), (2, *y.shape))
    assert unbatched is not None and all(np.array_equal(u, b) for u, b in zip(unbatched, batched))
    if cls is nn.MaxPool2d:
        want = _torch_window_sizes((3, 2, 1), (8, 7))
    else:  # 8 -> 2: 4 and 4 values; 7 -> 3: 3, 3 and 3 values
        want = (np.array([12.0]), np.array([1.0]))
    assert np.array_equal(unbatched[0], want[0]) and np.allclose(unbatched[1], want[1]), (unbatched, want)


class FunctionalAvgPoolNet(nn.Module):
    """``AvgPoolNet`` with ``F.avg_pool2d``/``F.adaptive_avg_pool2d`` (``args``); ``untraceable``: torch.fx cannot
    trace it (the recorded graph)."""

    def __init__(self, args, untraceable: bool = False):
        super().__init__()
        self.conv, self.relu, self.args, self.untraceable = nn.Conv2d(3, C, 1), nn.ReLU(), args, untraceable

    def forward(self, x):
        if self.untraceable and x.shape[0] < 1:
            raise ValueError("empty batch")
        h = self.relu(self.conv(x))
        if isinstance(self.args, int):
            return nn.functional.adaptive_avg_pool2d(h, self.args)
        return nn.functional.avg_pool2d(h, *self.args[:3], **self.args[3])


#: (F.avg_pool2d's (kernel, stride, padding, keywords) or an adaptive output size, whether the size-ratio rule is
#: off by more than the tolerance there)
FAVGPOOLS = [((3, 1, 1, {}), True), ((3, 1, 1, {"count_include_pad": False}), True), ((2, 2, 0, {}), False),
             ((3, 2, 1, {}), True), ((3, 1, 0, {"divisor_override": 4}), True), (3, False)]  # fmt: skip


@pytest.mark.parametrize("recorded", [False, True], ids=["fx", "recorded"])
@pytest.mark.parametrize("args,old_off", FAVGPOOLS, ids=[repr(a) for a, _ in FAVGPOOLS])
def test_functional_average_pooling_divides_by_the_window(recorded, args, old_off):
    """``F.avg_pool2d`` (no rule on the fx path before: the identity) and a recorded forward's ``avg_pool2d`` (the
    size ratio before) get the window rule of ``nn.AvgPool2d`` (``analytic.torch_avgpool_windows``), matching Monte
    Carlo; the rules before are rejected where they are off (stride 1: overlapping windows; padding)."""
    from weightinit.doctor.backends.torchgraph import analyze_recorded

    m = _he(FunctionalAvgPoolNet(args, recorded))
    x = 0.5 + torch.randn(B, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        y = m(x).double()
    per = {"pool": y.pow(2).reshape(B, -1).mean(1)}

    def pred():
        rep = analyze_torch(m, x, recorded=analyze_recorded if recorded else None)[0]
        assert not recorded or any("recorded forward pass" in n for n in rep.notes), rep.notes
        return {"pool": [s.q_pred for s in rep.layers][-1]}

    got = pred()
    bad, _ = _check(got, per)
    assert not bad, bad
    if isinstance(args, int):  # the same as the module's rule
        mod = _he(AvgPoolNet(nn.AdaptiveAvgPool2d(args)))
    else:
        mod = _he(AvgPoolNet(nn.AvgPool2d(*args[:3], **args[3])))
    mod.load_state_dict(m.state_dict())
    assert got["pool"] == pytest.approx([s.q_pred for s in analyze_torch(mod, x)[0].layers][-1], rel=1e-9)
    saved = an.torch_avgpool_windows
    an.torch_avgpool_windows = lambda *a, **k: None  # the rules before: no rule (fx), the size ratio (recorded)
    try:
        old = pred()
    finally:
        an.torch_avgpool_windows = saved
    old_bad, old_worst = _check(old, per)
    assert not old_off or (old_bad and old_worst > 1.2), (old, got, old_bad, old_worst)


@pytest.mark.parametrize("k,s,p,kw", [(3, 1, 1, {}), (3, 1, 1, {"count_include_pad": False}), (3, 2, 1, {}),
                                      (3, 2, 0, {"ceil_mode": True}), (2, 2, 1, {"ceil_mode": True}),
                                      (4, 3, 2, {"count_include_pad": False, "ceil_mode": True})])  # fmt: skip
def test_avgpool_windows_are_torchs(k, s, p, kw):
    """``analytic.avgpool_windows`` (the framework-neutral window rule) against torch itself: the real values per
    window (an average of ones not counting the padding, times the window's real count) and the divisor (ones
    summed over the window, over torch's average) at each output position."""
    ones = torch.ones(1, 1, 7, 9, dtype=torch.float64)
    avg = nn.functional.avg_pool2d(ones, k, s, p, **kw).ravel().numpy()
    real = (nn.functional.avg_pool2d(ones, k, s, p, ceil_mode=kw.get("ceil_mode", False), divisor_override=1)
            .ravel().numpy())  # fmt: skip
    sizes, divisors, weights = an.avgpool_windows((7, 9), k, s, p, kw.get("ceil_mode", False),
                                                  kw.get("count_include_pad", True))  # fmt: skip
    assert len(sizes) == real.size and np.allclose(weights, 1 / real.size)
    assert np.array_equal(sizes, real) and np.allclose(divisors, real / avg)
