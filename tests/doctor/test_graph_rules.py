"""Moment rules of the Keras/Flax graphs (BatchNorm in eval mode, embeddings), checked by Monte Carlo and against
the torch paths on the same weights.

BatchNorm that applies its running statistics (Flax ``use_running_average=True``, NNX ``model.eval()``, Keras
``training=False``) is the affine map ``y_c = gamma_c (x_c - m_c) / sqrt(v_c + eps) + beta_c``, not a
standardization: the graphs give it :func:`weightinit.doctor.analytic.running_norm_affine`'s numbers (the torch
paths' rule), found by value (:func:`weightinit.doctor.graph.running_norm_fields`).  The statistics are the
trained-like ones of tests/doctor/test_fx_rules.py (mean ~ N(0, 0.3^2), variance ~ 2^U(-2, 2), gamma ~ U(0.5, 1.5),
beta ~ N(0, 0.2^2)), and the tolerance is its derivation: 5 standard errors of the Monte Carlo mean over the ``B``
independent examples plus ``1/sqrt(C)`` relative for one draw of the weights and statistics at ``C`` channels
(8.8% at ``C = 128``).  The old rule (``E[gamma^2] + E[beta^2]``) is 1.5x and 3.3x off here.

An embedding's input-dependent variance is the rows' spread per feature (``mean_j Var_i W_ij``,
:func:`weightinit.doctor.analytic.embedding_moments`), not ``q - mu^2``: a per-feature offset is shared by every
id.  The table below has offsets ``c_j ~ N(0, 1)`` and spread ``0.1``: the old rule is 84x the signal.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")
nnx = pytest.importorskip("flax.nnx")

import flax.linen as linen  # noqa: E402
import jax.numpy as jnp  # noqa: E402

import weightinit as wi  # noqa: E402
from torch import nn  # noqa: E402
from weightinit.doctor import analytic as an  # noqa: E402

C, B = 128, 256
TOL_WIDTH = 1 / math.sqrt(C)


class NNXConvBN(nnx.Module):
    def __init__(self, rngs):
        self.conv1 = nnx.Conv(3, C, (3, 3), padding="VALID", rngs=rngs)
        self.bn1 = nnx.BatchNorm(C, rngs=rngs)
        self.conv2 = nnx.Conv(C, C, (1, 1), rngs=rngs)
        self.bn2 = nnx.BatchNorm(C, rngs=rngs)

    def parts(self, x):
        """Every node's output, in the doctor's names (the relus and the add are found by value)."""
        out = {"conv1": self.conv1(x)}
        out["bn1"] = self.bn1(out["conv1"])
        out["bn1_relu"] = jax.nn.relu(out["bn1"])
        out["conv2"] = self.conv2(out["bn1_relu"])
        out["bn2"] = self.bn2(out["conv2"])
        out["add"] = out["bn1_relu"] + out["bn2"]
        out["add_relu"] = jax.nn.relu(out["add"])
        return out

    def __call__(self, x):
        return self.parts(x)["add_relu"]


class LinenConvBN(linen.Module):
    train: bool = False

    @linen.compact
    def __call__(self, x):
        bn = dict(use_running_average=not self.train, epsilon=1e-5)
        h = jax.nn.relu(linen.BatchNorm(name="bn1", **bn)(linen.Conv(C, (3, 3), padding="VALID", name="conv1")(x)))
        return jax.nn.relu(h + linen.BatchNorm(name="bn2", **bn)(linen.Conv(C, (1, 1), name="conv2")(h)))


def _np(t) -> np.ndarray:
    return t.detach().numpy().copy()


@pytest.fixture(scope="module")
def nets(trained_statistics, conv_bn_net):
    """The same weights and trained-like statistics in torch (eval), NNX (eval) and Linen (running averages), and
    the batch (NCHW for torch, NHWC for Flax)."""
    torch.manual_seed(0)
    tm = trained_statistics(conv_bn_net(C)).eval()
    x = torch.randn(B, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    convs = {
        c: (_np(getattr(tm, c).weight).transpose(2, 3, 1, 0), _np(getattr(tm, c).bias)) for c in ("conv1", "conv2")
    }
    bns = {b: {k: _np(getattr(getattr(tm, b), k)) for k in ("weight", "bias", "running_mean", "running_var")}
           for b in ("bn1", "bn2")}  # fmt: skip
    params = {c: {"kernel": jnp.asarray(k), "bias": jnp.asarray(b)} for c, (k, b) in convs.items()}
    params.update({b: {"scale": jnp.asarray(v["weight"]), "bias": jnp.asarray(v["bias"])} for b, v in bns.items()})
    stats = {b: {"mean": jnp.asarray(v["running_mean"]), "var": jnp.asarray(v["running_var"])} for b, v in bns.items()}
    variables = {"params": params, "batch_stats": stats}
    return tm, x, np.ascontiguousarray(_np(x).transpose(0, 2, 3, 1)), variables


def nnx_net(variables):
    m = NNXConvBN(nnx.Rngs(0))
    for name, ps in variables["params"].items():
        for k, v in ps.items():
            getattr(getattr(m, name), k).set_value(v)
    for name, st in variables["batch_stats"].items():
        for k, v in st.items():
            getattr(getattr(m, name), k).set_value(v)
    m.eval()  # (returns None)
    return m


def _preds(rep) -> dict:
    return {s.name: s.q_pred for s in rep.layers}


def _per_example_q(y) -> np.ndarray:
    y = np.asarray(y, np.float64)
    return (y * y).reshape(len(y), -1).mean(1)


def _within(pred: float, per: np.ndarray) -> tuple[bool, float, float]:
    q, se = float(per.mean()), float(per.std() / math.sqrt(per.size))
    tol = 5 * se + TOL_WIDTH * q
    return abs(pred - q) <= tol, q, tol


NAMES = ["conv1", "bn1", "bn1_relu", "conv2", "bn2", "add", "add_relu"]


def test_nnx_eval_batchnorm_applies_its_running_statistics(nets):
    m = nnx_net(nets[3])
    xn = nets[2]
    preds = _preds(wi.doctor(m, xn))
    parts = m.parts(jnp.asarray(xn))
    bad = []
    for name in NAMES:
        ok, q, tol = _within(preds[name], _per_example_q(parts[name]))
        if not ok:
            bad.append(f"{name}: predicted {preds[name]:.4g}, measured {q:.4g} +- {tol:.2g}")
    assert not bad, bad
    for bn in ("bn1", "bn2"):  # what the tolerance rejects: the standardizing rule of training mode
        v = nets[3]["params"][bn]
        old = float(np.mean(np.square(v["scale"])) + np.mean(np.square(v["bias"])))
        ok, q, tol = _within(old, _per_example_q(parts[bn]))
        assert not ok, (bn, old, q, tol)


def test_nnx_eval_batchnorm_reads_its_statistics_without_deprecated_access(nets):
    """The running statistics are read without ``.value`` on an NNX variable, which NNX deprecates (a warning on
    every eval BatchNorm of every report)."""
    m = nnx_net(nets[3])
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        wi.doctor(m, nets[2])
    assert not [str(w.message) for w in seen if "deprecated" in str(w.message).lower()]


def test_linen_running_average_batchnorm_gives_the_same_numbers(nets):
    m = nnx_net(nets[3])
    want = _preds(wi.doctor(m, nets[2]))
    got = _preds(wi.doctor(LinenConvBN().bind(nets[3]), nets[2]))
    for name in NAMES:
        assert got[name] == pytest.approx(want[name], rel=1e-6), name


def test_the_same_numbers_as_the_torch_eval_model(nets):
    """Before the add, the rules on the same weights, to rounding; after it, the measured cross moment's probes
    differ with the layout (NCHW against NHWC): within its Monte Carlo error (1/sqrt(4096) of the Jacobian scale)."""
    tm, x, xn, variables = nets
    t = _preds(wi.doctor(tm, x))
    f = _preds(wi.doctor(nnx_net(variables), xn))
    for name in ("conv1", "bn1", "conv2", "bn2"):
        assert f[name] == pytest.approx(t[name], rel=1e-5), name
    assert f["bn1_relu"] == pytest.approx(t["relu1"], rel=1e-5)
    assert f["add_relu"] == pytest.approx(t["relu2"], rel=0.02)


def test_training_mode_keeps_the_standardizing_rule(nets):
    variables = nets[3]
    m = nnx_net(variables)
    m.train()
    preds = _preds(wi.doctor(m, nets[2]))
    lin = _preds(wi.doctor(LinenConvBN(train=True).bind(variables), nets[2]))
    for bn in ("bn1", "bn2"):
        v = variables["params"][bn]
        old = float(np.mean(np.square(v["scale"])) + np.mean(np.square(v["bias"])))
        assert preds[bn] == pytest.approx(old, rel=1e-3)  # (the eps factor v / (v + eps))
        assert lin[bn] == pytest.approx(preds[bn], rel=1e-6)


def test_analytic_fix_rescales_the_convolutions_before_an_eval_batchnorm(nets):
    """An eval BatchNorm is not scale-invariant: the analytic fix rescales the convolutions before it (each to its
    target second moment 1) and leaves the BatchNorm's numbers alone; in training mode it leaves the convolutions
    alone (they feed only a normalization)."""
    m = nnx_net(nets[3])
    xn = nets[2]
    fr = wi.fix(m, "analytic", xn, measure=False, probe=False)
    assert set(fr.scales) == {"conv1.kernel", "conv2.kernel"}, fr.scales
    parts = m.parts(jnp.asarray(xn))
    for name in ("conv1", "conv2"):
        per = _per_example_q(parts[name])
        assert abs(float(per.mean()) - 1.0) <= 5 * float(per.std() / math.sqrt(per.size)) + TOL_WIDTH, name
    t = nnx_net(nets[3])
    t.train()
    assert not wi.fix(t, "analytic", xn, measure=False, probe=False).scales


# ------------------------------------------------------------------------------------------
# embeddings
# ------------------------------------------------------------------------------------------

V, F, T = 512, 64, 4


@pytest.fixture(scope="module")
def table():
    rng = np.random.default_rng(0)
    return (rng.standard_normal(F) + 0.1 * rng.standard_normal((V, F))).astype(np.float32)


class NNXEmbed(nnx.Module):
    def __init__(self, w):
        self.emb = nnx.Embed(V, F, rngs=nnx.Rngs(0))
        self.emb.embedding.set_value(jnp.asarray(w))
        self.fc = nnx.Linear(F, 8, rngs=nnx.Rngs(1))

    def __call__(self, ids):
        return self.fc(self.emb(ids))


def test_embedding_signal_is_the_rows_spread(table):
    """The predicted signal of an embedding against the measured one (``sqrt(mean Var_batch)``, ids uniform over
    the vocabulary): within 5 standard errors of the per-example squared deviation; the old rule ``q - mu^2`` is
    rejected, and the torch paths (fx and recorded graph) give the same number."""
    ids = np.random.default_rng(1).integers(0, V, (B, T))
    rep = wi.doctor(NNXEmbed(table), ids)
    s = next(s for s in rep.layers if s.name == "emb")
    rows = table.astype(np.float64)[ids]  # (B, T, F)
    dev = ((rows - rows.mean(0)) ** 2).mean(-1).reshape(-1)  # per example and position, over the features
    d, se = s.signal**2, float(dev.std() / math.sqrt(dev.size)) * B / (B - 1)
    assert abs(s.signal_pred**2 - d) <= 5 * se, (s.signal_pred**2, d, se)
    mu, q, _ = an.embedding_moments(table)
    assert abs((q - mu * mu) - d) > 5 * se, (q - mu * mu, d)
    assert rep.layers[-1].signal_pred == pytest.approx(float(np.sqrt(rep.layers[-1].signal ** 2)), rel=0.05)

    emb = nn.Embedding(V, F)
    with torch.no_grad():
        emb.weight.copy_(torch.from_numpy(table))
    tm = nn.Sequential(emb, nn.Linear(F, 8))
    fx = next(r for r in wi.doctor(tm, torch.from_numpy(ids)).layers if r.name == "0")
    assert fx.signal_pred == pytest.approx(s.signal_pred, rel=1e-6)
    from weightinit.doctor.backends.torchgraph import recorded_graph
    from weightinit.doctor.graph import propagate

    rg = recorded_graph(tm, torch.from_numpy(ids))
    i = next(k for k, n in enumerate(rg.graph.nodes) if n.op == "embedding")
    assert math.sqrt(propagate(rg.graph, rg.x_moments)[i][5]) == pytest.approx(s.signal_pred, rel=1e-6)


_KERAS = r"""
import json, sys
import numpy as np
import keras
from keras import layers
import weightinit as wi

w = np.load(sys.argv[1])
inp = keras.Input((8, 8, 3))
bn1 = layers.BatchNormalization(name="bn1", epsilon=1e-5)  # called with training=False
bn2 = layers.BatchNormalization(name="bn2", epsilon=1e-5)
bn2.trainable = False  # frozen: Keras 3 applies the moving statistics even in training
h = layers.ReLU(name="relu1")(bn1(layers.Conv2D({C}, 3, name="conv1")(inp), training=False))
y = layers.ReLU(name="relu2")(layers.Add(name="add")([h, bn2(layers.Conv2D({C}, 1, name="conv2")(h))]))
m = keras.Model(inp, y)
for c in ("conv1", "conv2"):
    m.get_layer(c).set_weights([w[c + ".kernel"], w[c + ".bias"]])
for b in ("bn1", "bn2"):
    m.get_layer(b).set_weights([w[b + "." + k] for k in ("weight", "bias", "running_mean", "running_var")])
print(json.dumps({s.name: s.q_pred for s in wi.doctor(m, w["x"]).layers}))
""".replace("{C}", str(C))


def test_keras_inference_batchnorm_gives_the_torch_eval_numbers(nets, tmp_path):
    """A Keras BatchNormalization the doctor runs in inference (``bn1`` called with ``training=False``, ``bn2``
    frozen with ``trainable=False``: Keras 3 then uses the moving statistics even in training) gets the affine
    rule: the torch eval model's numbers on the same weights (the doctor runs Keras layers with ``training=True``
    otherwise, and the standardizing rule is 1.5x and 3.3x off at these two)."""
    import json
    import os
    import subprocess
    import sys

    pytest.importorskip("keras")
    tm, x, xn, variables = nets
    x, xn = x[:64], xn[:64]  # (the same batch in both: the rules' numbers, no Monte Carlo here)
    arrays = {"x": xn}
    for c in ("conv1", "conv2"):
        arrays[c + ".kernel"] = np.asarray(variables["params"][c]["kernel"])
        arrays[c + ".bias"] = np.asarray(variables["params"][c]["bias"])
    for b in ("bn1", "bn2"):
        for k in ("weight", "bias", "running_mean", "running_var"):
            arrays[f"{b}.{k}"] = _np(getattr(getattr(tm, b), k))
    np.savez(tmp_path / "w.npz", **arrays)
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", _KERAS, str(tmp_path / "w.npz")], capture_output=True, text=True,
                          env=env, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    t = _preds(wi.doctor(tm, x))
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    for name in ("conv1", "bn1", "relu1", "conv2", "bn2"):
        assert got[name] == pytest.approx(t[name], rel=1e-5), name
    assert got["relu2"] == pytest.approx(t["relu2"], rel=0.02)


class NNXPaddedConv(nnx.Module):
    def __init__(self, padding):
        self.conv = nnx.Conv(3, C, (3, 3), padding=padding, rngs=nnx.Rngs(0))

    def __call__(self, x):
        return self.conv(x)


@pytest.mark.parametrize("padding", ["REFLECT", "CIRCULAR"])
def test_flax_reflect_and_circular_padding_read_only_real_inputs(padding):
    """Flax's ``padding="REFLECT"`` / ``"CIRCULAR"`` pad with input values, not zeros: every tap counts (factor 1).
    The doctor predicts the conv's measured second moment (per-example, 5 standard errors plus ``1/sqrt(C)``); it
    once refused "REFLECT" (a forward_failed error on a valid model)."""
    x = (0.5 + np.random.default_rng(2).standard_normal((B, 6, 6, 3))).astype(np.float32)
    m = NNXPaddedConv(padding)
    rep = wi.doctor(m, x)
    assert not [f for f in rep.flags if f.severity == "error"], rep.flags
    s = next(s for s in rep.layers if s.name == "conv")
    per = _per_example_q(m(jnp.asarray(x)))
    q, se = float(per.mean()), float(per.std() / math.sqrt(per.size))
    assert abs(s.q_pred - q) <= 5 * se + TOL_WIDTH * q, (s.q_pred, q, se)


@pytest.mark.parametrize("bad", ["abc", object()], ids=["str", "object"])
def test_graph_inputs_that_are_not_numbers_are_named(bad):
    """``inputs`` that are no array of numbers: the report's error names ``inputs`` and what was received (it once
    carried NumPy's "could not convert string to float")."""
    rep = wi.doctor(NNXPaddedConv("SAME"), bad)
    msgs = [f.message for f in rep.flags if f.severity == "error"]
    assert msgs and "`inputs` must be an array of numbers" in msgs[0] and type(bad).__name__ in msgs[0], msgs


class NNXAvgPool(nnx.Module):
    """A 1x1 conv with per-channel biases (a shared part), Flax's ``avg_pool`` (padding counted as zeros),
    then a 1x1 conv (the pooling is found by value between recorded calls)."""

    def __init__(self, window, strides, padding):
        self.conv = nnx.Conv(3, C, (1, 1), rngs=nnx.Rngs(0))
        self.head = nnx.Conv(C, 4, (1, 1), rngs=nnx.Rngs(1))
        self.conv.bias.set_value(jnp.asarray(np.random.default_rng(4).normal(0.0, 0.5, C), jnp.float32))
        self.window, self.strides, self.padding = window, strides, padding

    def __call__(self, x):
        return self.head(self.pooled(x))

    def pooled(self, x):
        return linen.avg_pool(self.conv(x), self.window, strides=self.strides, padding=self.padding)


#: stride 1 (overlapping windows; "VALID": a pooling that keeps the size is not looked for), stride 2 with zero
#: padding counted in the divisor
@pytest.mark.parametrize("strides,padding,old_off", [((1, 1), "VALID", True), ((2, 2), ((1, 1), (1, 1)), True),
                                                     ((2, 2), "SAME", True)])  # fmt: skip
def test_flax_avg_pool_divides_by_the_window(strides, padding, old_off):
    """Flax's ``avg_pool`` (found by value between recorded calls) divides the input-dependent variance by its
    window (``analytic.avgpool_windows``, the padding counted as zeros), not by the input/output size ratio (the
    rule before: 1 at stride 1, the identity), which is rejected where it is off."""
    x = (0.5 + np.random.default_rng(3).standard_normal((B, 8, 8, 3))).astype(np.float32)
    m = NNXAvgPool((3, 3), strides, padding)
    per = _per_example_q(m.pooled(jnp.asarray(x)))

    def pred():
        rep = wi.doctor(m, x)
        pools = [s.q_pred for s in rep.layers if s.name.startswith("avg_pool")]
        assert len(pools) == 1, [s.name for s in rep.layers]
        return pools[0]

    ok, q, tol = _within(pred(), per)
    assert ok, (pred(), q, tol)
    saved = an.avgpool_windows
    an.avgpool_windows = lambda *a, **k: None
    try:
        old = pred()
    finally:
        an.avgpool_windows = saved
    ok_old, _, _ = _within(old, per)
    assert not old_off or (not ok_old and max(old / q, q / old) > 1.2), (old, q)
