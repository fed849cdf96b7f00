"""``keras.Sequential`` and ``nnx.Sequential`` on the doctor's graph path (weightinit.doctor.graph), the one walk
every Keras and Flax model takes, and the shared LSUV iteration.

These cases replace the tests of the chain walk Sequential models used to take (q -> sigma_w2 q + E[b^2], no
means, no norm/pool/dropout rules).  A Sequential and the functional model / module of the same layers give the
same report numbers and fix scales; and the analytic fix keeps a deep SiLU net with biases at its target where the
chain walk, fed the wrong moments by every activation (it took each pre-activation as N(0, q) while the biases
give it mean b), ended 27-1640x off (measured on the commit before this file, seeds 0-2).  The Keras cases run
in one subprocess with ``KERAS_BACKEND=jax`` (Keras fixes its backend at its first import).
"""

from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pytest

import weightinit as wi
from weightinit.doctor.lsuv import lsuv_rescale


@pytest.fixture(scope="module")
def nnx_mods():
    jax = pytest.importorskip("jax")
    nnx = pytest.importorskip("flax.nnx")
    return jax, nnx


def _tanh_seq(jax, nnx, depth=8, width=256, std=0.02):
    layers = []
    for i in range(depth):
        layers += [nnx.Linear(width, width, rngs=nnx.Rngs(i), kernel_init=jax.nn.initializers.normal(std),
                              bias_init=nnx.initializers.constant(0.01)), jax.numpy.tanh]  # fmt: skip
    return nnx.Sequential(*layers)


def test_nnx_sequential_predicts_measured_moments_and_flags_vanishing(nnx_mods):
    jax, nnx = nnx_mods
    x = np.random.default_rng(1).standard_normal((512, 256)).astype(np.float32)
    r = wi.doctor(_tanh_seq(jax, nnx, std=1 / 16), x)
    assert r.notes[0].startswith("Flax NNX: 16 nodes from the layer calls"), r.notes
    assert [(s.name, s.kind) for s in r.layers][:2] == [("layers.0", "Linear"), ("layers.1", "tanh")]
    for s in r.layers:  # mean-field is exact in expectation; width 256 keeps the drift small
        assert abs(s.q_pred / s.q - 1) < 0.25, (s.name, s.q_pred, s.q)
        assert abs(s.std_pred / s.std - 1) < 0.15, (s.name, s.std_pred, s.std)  # (the chain set no std_pred)
    assert all(math.isfinite(s.chi) for s in r.layers if s.kind == "tanh")
    assert wi.doctor(_tanh_seq(jax, nnx), x).flagged("vanishing_activations")


def test_nnx_sequential_bad_input_is_a_flag_not_a_crash(nnx_mods):
    jax, nnx = nnx_mods
    m = nnx.Sequential(nnx.Linear(256, 256, rngs=nnx.Rngs(0)), jax.numpy.tanh, nnx.Linear(3, 3, rngs=nnx.Rngs(1)))
    (f,) = wi.doctor(m, np.ones((4, 256), np.float32)).flagged("forward_failed")
    assert "3" in f.message
    assert wi.doctor(m, np.zeros((0, 256), np.float32)).flagged("empty_batch")
    assert wi.doctor(nnx.Sequential(jax.numpy.tanh)).flagged("bad_input")  # no kernel to infer a shape from


def test_nnx_sequential_fix_lsuv_and_analytic(nnx_mods):
    jax, nnx = nnx_mods
    x = np.random.default_rng(2).standard_normal((512, 256)).astype(np.float32)

    def pre(m):  # each Linear's output on x
        out, h = [], jax.numpy.asarray(x)
        for lay in m.layers:
            h = lay(h)
            if isinstance(lay, nnx.Linear):
                out.append(np.asarray(h, np.float64))
        return out

    m = _tanh_seq(jax, nnx)
    f = wi.fix(m, "lsuv", x, tol=0.05)
    assert list(f.scales) == [f"layers.{2 * i}.kernel" for i in range(8)] and set(f.iterations) == set(f.scales)
    assert all(abs(np.var(y) - 1) < 0.05 for y in pre(m)), [np.var(y) for y in pre(m)]
    assert not f.after.flagged("vanishing_activations")
    m = _tanh_seq(jax, nnx)
    f = wi.fix(m, "analytic", None, measure=False, probe=False)
    assert len(f.scales) == 8 and not f.iterations and f.before is None
    r = wi.doctor(m)  # synthetic batch: the fix's own prediction, unit pre-activations (float32 kernels)
    got = [s.q_pred for s in r.layers if s.kind == "Linear"]
    assert np.allclose(got, 1.0, rtol=1e-4), got
    m = _tanh_seq(jax, nnx)  # with the probe correction (the default) the measured pre-activations are the target
    wi.fix(m, "analytic", x, measure=False)
    assert all(abs(np.mean(y * y) - 1) < 0.02 for y in pre(m)), [np.mean(y * y) for y in pre(m)]


def test_nnx_sequential_is_the_same_graph_as_the_module_of_its_layers(nnx_mods):
    """An nnx.Sequential of Linear/gelu items and an nnx.Module applying the same layers (jax.nn.gelu between
    them, found by value): the same report numbers node by node and the same fix scales; an object with a
    ``layers`` list is seen as the Sequential of its items."""
    jax, nnx = nnx_mods
    width, depth = 64, 6

    def linears():
        return [nnx.Linear(width, width, rngs=nnx.Rngs(i), kernel_init=jax.nn.initializers.normal(0.3),
                           bias_init=nnx.initializers.constant(0.1)) for i in range(depth)]  # fmt: skip

    class Net(nnx.Module):
        def __init__(self):
            self.fcs = nnx.List(linears())

        def __call__(self, h):
            for fc in self.fcs:
                h = jax.nn.gelu(fc(h))
            return h

    class Plain:  # not a module: a list of layers and functions
        def __init__(self):
            self.layers = [f for fc in linears() for f in (fc, jax.nn.gelu)]

    x = np.random.default_rng(0).standard_normal((256, width)).astype(np.float32)
    from weightinit.doctor.backends.flax import doctor_flax, fix_flax  # (wi.doctor takes framework objects only)

    models = [nnx.Sequential(*[f for fc in linears() for f in (fc, jax.nn.gelu)]), Net(), Plain()]
    reps = [doctor_flax(m, x) for m in models]
    assert [s.kind for s in reps[0].layers] == [k for _ in range(depth) for k in ("Linear", "gelu")]
    for r in reps[1:]:
        # (kinds: the module's gelu is found by value, jax.nn.gelu's default tanh form, "gelu_tanh")
        assert [s.kind == "Linear" for s in r.layers] == [s.kind == "Linear" for s in reps[0].layers]
        for a, b in zip(reps[0].layers, r.layers):
            for key in ("q", "q_pred", "std_pred", "signal_pred", "grad_std"):
                assert getattr(a, key) == pytest.approx(getattr(b, key), rel=1e-5), (a.name, key)
    for mode in ("analytic", "lsuv"):
        scales = [list(fix_flax(m, mode, x, measure=False).scales.values()) for m in
                  (nnx.Sequential(*[f for fc in linears() for f in (fc, jax.nn.gelu)]), Net(), Plain())]  # fmt: skip
        assert len(scales[0]) == depth and np.allclose(scales[2], scales[0], rtol=1e-5), mode
        if mode == "analytic":  # (LSUV's orthogonal draws are keyed by the layer's name: fcs.0 is not layers.0)
            assert np.allclose(scales[1], scales[0], rtol=1e-5)
    p = Plain()
    k0 = np.asarray(p.layers[0].kernel.get_value())
    fix_flax(p, "analytic", x, measure=False)  # the object's own layers are rescaled
    assert not np.allclose(np.asarray(p.layers[0].kernel.get_value()), k0)
    with pytest.raises(TypeError, match="layers"):
        doctor_flax(object(), x)


_KERAS = r"""
import numpy as np
import keras
import weightinit as wi

def layers(width, depth, act, init, bias):
    return [l for _ in range(depth) for l in (keras.layers.Dense(width, kernel_initializer=init,
            bias_initializer=bias), keras.layers.Activation(act))]

def functional_of(seq, width):
    inp = keras.Input((width,))
    h = inp
    for lay in seq.layers:
        h = type(lay).from_config(lay.get_config())(h)
    f = keras.Model(inp, h)
    f.set_weights(seq.get_weights())
    return f

# 1. a Sequential and the functional model of the same layers: the same report and the same fix scales
keras.utils.set_random_seed(0)
width = 64
x = np.random.default_rng(0).standard_normal((256, width)).astype("float32")
seq = keras.Sequential([keras.Input((width,))] + layers(width, 6, "gelu", keras.initializers.RandomNormal(stddev=0.2),
                                                      keras.initializers.Constant(0.2))
                       + [keras.layers.LayerNormalization(), keras.layers.Dropout(0.25), keras.layers.Dense(8)])
fun = functional_of(seq, width)
rs, rf = wi.doctor(seq, x), wi.doctor(fun, x)
assert rs.notes[0].startswith("Keras Sequential: 15 nodes from the functional graph"), rs.notes
assert [(s.name, s.kind) for s in rs.layers][12:] == [("layer_normalization", "LayerNormalization"),
                                                     ("dropout", "Dropout"), ("dense_6", "Dense")], rs.layers
assert [s.kind for s in rs.layers] == [s.kind for s in rf.layers]
for a, b in zip(rs.layers, rf.layers):
    for key in ("q", "q_pred", "std_pred", "signal_pred", "grad_std", "grad_norm"):
        assert np.isclose(getattr(a, key), getattr(b, key), rtol=1e-5, equal_nan=True), (a.name, key, getattr(a, key), getattr(b, key))
# the norm rule: after the LayerNormalization the prediction is the measurement (the chain passed gelu's q on)
ln = rs.layers[12]
assert abs(ln.q_pred / ln.q - 1) < 0.05 and abs(rs.layers[11].q_pred / ln.q - 1) > 0.5, rs.layers[11:13]
for mode, probe in (("analytic", False), ("analytic", True), ("lsuv", True)):
    a = keras.models.clone_model(seq); a.set_weights(seq.get_weights())
    b = functional_of(seq, width)
    sa = wi.fix(a, mode, x, measure=False, probe=probe).scales
    sb = wi.fix(b, mode, x, measure=False, probe=probe).scales
    assert len(sa) == 7 and np.allclose(list(sa.values()), list(sb.values()), rtol=1e-5), (mode, sa, sb)

# 2. a Sequential that is not built: input_shape= and inputs= give the batch's shape; without either, a flag
unbuilt = keras.Sequential(layers(16, 3, "tanh", "glorot_normal", "zeros"))
assert wi.doctor(unbuilt).flagged("bad_input")
r = wi.doctor(unbuilt, input_shape=(16,))
assert len(r.layers) == 6 and not r.flags and r.batch == 64, r.flags
assert len(wi.doctor(unbuilt, np.ones((8, 16), "float32")).layers) == 6
f = wi.fix(unbuilt, "lsuv", input_shape=(16,))
assert len(f.scales) == 3 and not unbuilt.built  # (the layers are built, the Sequential left as it was)

# 3. a 30-layer SiLU MLP with biases, analytic fix from shapes and weights only (probe=False): the last Dense's
# measured second moment is the target 1 within 2x (the graph walk: 0.90, 0.62, 0.97 on seeds 0-2, width 256; the
# finite-width noise of each layer grows ~1.14x per layer through silu); the chain walk: 1638x on seed 0
keras.utils.set_random_seed(0)
width = 256
init = keras.initializers.RandomNormal(stddev=0.05)
deep = keras.Sequential([keras.Input((width,))] + layers(width, 30, "silu", init, keras.initializers.Constant(0.5)))
x = np.random.default_rng(0).standard_normal((512, width)).astype("float32")
wi.fix(deep, "analytic", x, probe=False, measure=False)
last = np.asarray(keras.Model(deep.inputs[0], deep.layers[-2].output)(x), np.float64)
q = float(np.mean(last * last))
assert 0.5 < q < 2.0, q
print("ok")
"""


def test_keras_sequential_is_the_functional_graph_of_its_layers():
    pytest.importorskip("keras")
    pytest.importorskip("jax")
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", _KERAS], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr[-3000:]


def test_lsuv_rescale_stops_at_tolerance_max_iter_and_bad_variance():
    w = [4.0]

    def rescale(s):
        w[0] *= s

    assert lsuv_rescale(lambda: w[0] ** 3, rescale, 1.0, 1e-9, 3)[1:] == (3, None)  # not converged in 3 passes
    assert lsuv_rescale(lambda: 1.0, rescale, 1.0, 0.1, 10) == (1.0, 0, None)
    assert lsuv_rescale(lambda: 1.0, rescale, 1.0, 0.1, 0) == (1.0, 0, None)
    total, n, bad = lsuv_rescale(lambda: float("nan"), rescale, 1.0, 0.1, 10)
    assert (total, n, math.isnan(bad)) == (1.0, 0, True)
