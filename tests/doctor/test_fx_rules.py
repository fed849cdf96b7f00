"""Moment rules of the doctor's fx path (models torch.fx traces), checked by Monte Carlo.

BatchNorm in eval mode applies its running statistics, ``y_c = gamma_c (x_c - m_c) / sqrt(v_c + eps) + beta_c``:
an affine map, not a standardization (weightinit.doctor.analytic.running_norm_affine, the rule the recorded-graph
path uses too).  The old fx rule predicted ``E[gamma^2] + E[beta^2]`` whatever the input: torchvision's resnet18
in eval mode came out between 0.29x and 11x the measurement.

Tolerance (as in test_recorded_graph.py): 5 standard errors of the Monte Carlo mean over the ``B`` independent
examples, plus ``1/sqrt(C)`` relative for the mean-field error at ``C`` channels (one draw of the weights and of
the per-channel statistics: ``E_c[s_c^2 q_c]`` is ``E[s^2] E[q]`` up to order ``1/sqrt(C)``).  At ``C = 128``
that is about 10%; the old rule is 1.5x (bn1) and 3.3x (bn2) off on the small net below, and 10x in the gain of
resnet18's first BatchNorm.
"""

from __future__ import annotations

import copy
import math

import pytest

torch = pytest.importorskip("torch")

import weightinit as wi  # noqa: E402
from torch import nn  # noqa: E402

C, B = 128, 256
TOL_WIDTH = 1 / math.sqrt(C)


@pytest.fixture(scope="module")
def conv_bn(trained_statistics, conv_bn_net):
    torch.manual_seed(0)
    m = trained_statistics(conv_bn_net(C))
    x = torch.randn(B, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    return m, x


def _failures(rep, got):
    preds = {s.name: s.q_pred for s in rep.layers}
    bad = []
    for name, per in got.items():
        q, se = float(per.mean()), float(per.std() / math.sqrt(per.numel()))
        tol = 5 * se + TOL_WIDTH * q
        if not abs(preds[name] - q) <= tol:
            bad.append(f"{name}: predicted {preds[name]:.4g}, measured {q:.4g} +- {tol:.2g}")
    return bad


NAMES = ["conv1", "bn1", "relu1", "conv2", "bn2", "relu2"]


def test_eval_batchnorm_applies_its_running_statistics(conv_bn, per_example_q):
    m, x = conv_bn
    m.eval()
    rep = wi.doctor(m, x)
    assert not any("recorded forward pass" in n for n in rep.notes)  # the fx path
    assert not _failures(rep, per_example_q(m, x, NAMES)), _failures(rep, per_example_q(m, x, NAMES))


def test_training_batchnorm_keeps_the_standardizing_rule(conv_bn, per_example_q):
    """In training mode the batch's statistics standardize: ``E[gamma^2] + E[beta^2]`` (the old rule, kept)."""
    m = copy.deepcopy(conv_bn[0]).train()
    x = conv_bn[1]
    rep = wi.doctor(m, x)
    preds = {s.name: s.q_pred for s in rep.layers}
    for bn in ("bn1", "bn2"):
        mod = getattr(m, bn)
        w, b = mod.weight.detach().double(), mod.bias.detach().double()
        assert preds[bn] == pytest.approx(float((w**2).mean() + (b**2).mean()))
    assert not _failures(rep, per_example_q(copy.deepcopy(m), x, NAMES))


def test_the_standardizing_rule_fails_in_eval_mode(conv_bn, per_example_q):
    """What the tolerance rejects: eval-mode BatchNorm predicted as if it standardized (the old fx rule)."""
    m, x = conv_bn
    m.eval()
    got = per_example_q(m, x, ["bn1", "bn2"])
    for bn, per in got.items():
        mod = getattr(m, bn)
        old = float((mod.weight.detach().double() ** 2).mean() + (mod.bias.detach().double() ** 2).mean())
        q = float(per.mean())
        assert abs(old - q) > 5 * float(per.std() / math.sqrt(per.numel())) + TOL_WIDTH * q, (bn, old, q)


def test_torchvision_resnet18_eval_batchnorm_gains(model_zoo, trained_statistics):
    """Every BatchNorm of torchvision's resnet18 in eval mode, with trained-like statistics (zero running mean and
    beta, so each BatchNorm is a per-channel scaling ``s_c = gamma_c / sqrt(v_c + eps)``): its predicted gain
    ``q_out / q_in`` is the measured one.  (Each prediction as a whole is off for reasons outside BatchNorm: max
    pooling is taken as the identity, and zero padding, which matters at the 1x1 to 4x4 maps of a 32x32 input, is
    not modelled.)  The old rule's gain is ``1 / q_in``: about 10x at ``bn1``.

    Tolerance: the measured gain ``R = sum_c s_c^2 q_c / sum_c q_c`` differs from the prediction ``E[s^2]`` by
    ``cov_c(s^2, q) / mean(q)`` for this one draw of the channels (mean-field, scalar moments per tensor); for
    ``s_c`` independent of the input channel moments ``q_c`` its standard deviation is ``sd(s^2) cv(q) /
    sqrt(C)`` (``cv(q)`` above 1 after a relu: each channel's mean is the input mean times its weights' row sum).
    Together with the Monte Carlo error of ``R`` (the delta method's ``sd(a_i - R b_i) / (sqrt(B) mean(b))`` over
    the examples' ``a_i = q_out``, ``b_i = q_in``), 5 standard deviations; about 20-40% of the gain, well below
    the old rule's error."""
    torch.manual_seed(0)
    m = trained_statistics(model_zoo.torchvision.models.resnet18(num_classes=10), spread=0.5)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.running_mean.zero_()
                mod.bias.zero_()
    m.eval()
    x = torch.randn(64, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    rep = wi.doctor(m, x)
    assert not any("recorded forward pass" in n for n in rep.notes)  # the fx path
    preds = {s.name: s.q_pred for s in rep.layers}
    mods = dict(m.named_modules())
    bns = [n for n, mod in mods.items() if isinstance(mod, nn.BatchNorm2d)]
    assert len(bns) == 20
    inputs: dict = {}

    def keep(name):
        def fn(mod, args, y):
            inputs.setdefault(name, (args[0].detach().double(), y.detach().double()))

        return fn

    hooks = [mods[n].register_forward_hook(keep(n)) for n in bns]
    with torch.no_grad():
        m(x)
    for h in hooks:
        h.remove()
    bad, old_bad = [], []
    for bn in bns:
        xin, y = inputs[bn]
        a, b = y.pow(2).reshape(len(y), -1).mean(1), xin.pow(2).reshape(len(xin), -1).mean(1)
        r = float(a.mean() / b.mean())
        se = float((a - r * b).std() / (math.sqrt(len(a)) * b.mean()))
        mod = mods[bn]
        s2 = mod.weight.detach().double() ** 2 / (mod.running_var.double() + mod.eps)
        qc = xin.pow(2).mean((0, 2, 3))
        sd_d = float(s2.std() * qc.std() / qc.mean()) / math.sqrt(mod.num_features)
        tol = 5 * math.hypot(se, sd_d)
        conv = bn[:-1] + "0" if bn.endswith("downsample.1") else bn.replace("bn", "conv")
        pred = preds[bn] / preds[conv]
        if not abs(pred - r) <= tol:
            bad.append(f"{bn}: predicted gain {pred:.4g}, measured {r:.4g} +- {tol:.2g}")
        if abs(1.0 / preds[conv] - r) > tol:  # the standardizing rule's gain
            old_bad.append(bn)
    assert not bad, bad
    assert "bn1" in old_bad and len(old_bad) >= 10, old_bad


class FunctionalBN(nn.Module):
    """``F.batch_norm(..., training=False)`` on the module's own buffers (torch.fx: ``get_attr`` nodes)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, C, 3)
        self.register_buffer("rm", 0.3 * torch.randn(C, generator=torch.Generator().manual_seed(2)))
        self.register_buffer("rv", 2.0 ** (4 * torch.rand(C, generator=torch.Generator().manual_seed(3)) - 2))
        self.gamma = nn.Parameter(0.5 + torch.rand(C, generator=torch.Generator().manual_seed(4)))
        self.beta = nn.Parameter(0.2 * torch.randn(C, generator=torch.Generator().manual_seed(5)))
        self.act = nn.ReLU()

    def forward(self, x):
        h = nn.functional.batch_norm(self.conv(x), self.rm, self.rv, self.gamma, self.beta, training=False)
        return self.act(h)


def test_functional_eval_batch_norm_applies_its_running_statistics(conv_bn, per_example_q):
    """The relu after ``F.batch_norm(..., training=False)``: predicted from the affine map; the old fx rule (a
    functional batch_norm standardizes to ``(0, 1)``) put it at 0.5."""
    torch.manual_seed(0)
    m, x = FunctionalBN(), conv_bn[1]
    pred = next(s.q_pred for s in wi.doctor(m, x).layers if s.name == "act")
    per = per_example_q(m, x, ["act"])["act"]
    q, se = float(per.mean()), float(per.std() / math.sqrt(per.numel()))
    tol = 5 * se + TOL_WIDTH * q
    assert abs(pred - q) <= tol, (pred, q, tol)
    assert abs(0.5 - q) > tol, (q, tol)


def test_analytic_fix_rescales_weights_before_an_eval_batchnorm(conv_bn, per_example_q):
    """Eval-mode BatchNorm is affine, not scale-invariant: the analytic fix rescales the convolutions before it
    (it leaves weights that feed a training-mode normalization alone), each to its target second moment 1."""
    m = copy.deepcopy(conv_bn[0]).eval()
    x = conv_bn[1]
    fr = wi.fix(m, "analytic", x, measure=False, probe=False)
    assert {"conv1.weight", "conv2.weight"} <= set(fr.scales), fr.scales
    for name, per in per_example_q(m, x, ["conv1", "conv2"]).items():
        q, se = float(per.mean()), float(per.std() / math.sqrt(per.numel()))
        assert abs(q - 1.0) <= 5 * se + TOL_WIDTH, (name, q)
    t = copy.deepcopy(conv_bn[0]).train()
    assert not {"conv1.weight", "conv2.weight"} & set(wi.fix(t, "analytic", x, measure=False, probe=False).scales)


# ------------------------------------------------------------------------------------------
# nn.MultiheadAttention in a model fx traces: the recorded graph's attention rule
# ------------------------------------------------------------------------------------------

N, T_IMG, PATCH = 128, 32, 8  # 16 patches and a class token: 17 tokens


@pytest.fixture(scope="module")
def vit(model_zoo):
    torch.manual_seed(0)
    m = model_zoo.torchvision.models.VisionTransformer(
        image_size=T_IMG, patch_size=PATCH, num_layers=2, num_heads=4, hidden_dim=N, mlp_dim=2 * N, num_classes=10
    ).eval()
    x = torch.randn(B, 3, T_IMG, T_IMG, generator=torch.Generator().manual_seed(1))
    return m, x


def _vit_failures(per_example_q, m, x, rep, names):
    preds = {s.name: s.q_pred for s in rep.layers}
    got = per_example_q(m, x, names)
    bad = []
    for name in names:
        per = got[name]
        q, se = float(per.mean()), float(per.std() / math.sqrt(per.numel()))
        tol = 5 * se + q / math.sqrt(N)
        if name not in preds or not abs(preds[name] - q) <= tol:
            bad.append(f"{name}: predicted {preds.get(name, float('nan')):.4g}, measured {q:.4g} +- {tol:.2g}")
    return bad


VIT_LAYERS = ["conv_proj", "encoder.layers.encoder_layer_0.ln_1", "encoder.layers.encoder_layer_0.self_attention",
              "encoder.layers.encoder_layer_0.mlp.3", "encoder.layers.encoder_layer_1.self_attention",
              "encoder.layers.encoder_layer_1.mlp.3", "encoder.ln"]  # fmt: skip


def test_torchvision_vit_attention_follows_the_recorded_graph(vit, per_example_q):
    """torchvision's VisionTransformer traces with torch.fx, but its nn.MultiheadAttention is modelled by the
    recorded graph's attention rule: the score spread from the query and key moments, and the token Gram the
    class token and the position embedding give (the second layer's attention averages correlated tokens)."""
    m, x = vit
    from weightinit.doctor.analytic import trace_torch

    assert trace_torch(m, x[:2])[0] is not None  # fx traces it
    rep = wi.doctor(m, x)
    note = next(n for n in rep.notes if "recorded forward pass" in n)
    assert "nn.MultiheadAttention" in note and "2 mix" in note, note
    bad = _vit_failures(per_example_q, m, x, rep, VIT_LAYERS)
    assert not bad, bad


def test_the_fx_walks_uniform_attention_fails_on_the_vit(vit, per_example_q):
    """What the tolerance rejects: the fx walk's own rule (uniform averaging over independent tokens)."""
    from weightinit.doctor.analytic import analyze_torch

    m, x = vit
    rep, _ = analyze_torch(m, x)  # no recorded=: the fx walk
    assert not any("recorded forward pass" in n for n in rep.notes)
    bad = _vit_failures(per_example_q, m, x, rep, ["encoder.layers.encoder_layer_0.self_attention",
                                    "encoder.layers.encoder_layer_1.self_attention"])  # fmt: skip
    assert len(bad) == 2, bad
