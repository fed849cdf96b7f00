"""The framework-neutral chain doctor (_doctor._chain) on a pure-numpy chain, and the shared LSUV iteration."""

from __future__ import annotations

import math

import numpy as np

from weightinit.doctor.chain import Chain, doctor_chain, fix_chain
from weightinit.doctor.lsuv import lsuv_rescale


class Dense:
    def __init__(self, w, b=None):
        self.w, self.b = w, b

    def __call__(self, h):
        z = h @ self.w
        return z + self.b if self.b is not None else z


class Act:
    def __init__(self, fn, name):
        self.fn, self.__name__ = fn, name

    def __call__(self, h):
        return self.fn(h)


class NumpyChain(Chain):
    label = "NumPy"

    def framework(self):
        return "numpy"

    def layers(self):
        return list(self.model)

    def input_shape(self, input_shape):
        return input_shape if input_shape is not None else (self.model[0].w.shape[0],)

    def outputs(self, x):
        outs, h = [], x
        for i, lay in enumerate(self.model):
            try:
                h = lay(h)
            except Exception as e:
                return outs, (self.name(lay, i), e)
            outs.append((lay, np.asarray(h, np.float64)))
        return outs, None

    def name(self, layer, i):
        return f"{i}:{type(layer).__name__ if isinstance(layer, Dense) else layer.__name__}"

    def kind(self, layer):
        return "Dense" if isinstance(layer, Dense) else layer.__name__

    def kernel(self, layer):
        return layer.w.astype(np.float64) if isinstance(layer, Dense) else None

    def set_kernel(self, layer, k):
        layer.w = k.astype(np.float32)

    def bias_q(self, layer):
        return float(np.mean(layer.b.astype(np.float64) ** 2)) if layer.b is not None else 0.0

    def activation(self, layer):
        return (layer.fn, layer.__name__) if isinstance(layer, Act) else None

    def advance(self, state, layer):
        return layer(state)

    def preactivation(self, state, layer):
        return np.asarray(layer(state), np.float64)


def tanh_mlp(depth=8, width=256, std=0.02, seed=0):
    rng = np.random.default_rng(seed)
    layers = []
    for _ in range(depth):
        w = (rng.standard_normal((width, width)) * std).astype(np.float32)
        layers += [Dense(w, np.full(width, 0.01, np.float32)), Act(np.tanh, "tanh")]
    return layers


def test_doctor_chain_predicts_measured_moments_and_flags_vanishing():
    x = np.random.default_rng(1).standard_normal((512, 256)).astype(np.float32)
    r = doctor_chain(NumpyChain(tanh_mlp(std=1 / 16)), x)
    assert r.framework == "numpy" and r.notes[0].startswith("NumPy: forward statistics only")
    assert [s.name for s in r.layers][:2] == ["0:Dense", "1:tanh"]
    for s in r.layers:  # mean-field is exact in expectation; width 256 keeps the drift small
        assert abs(s.q_pred / s.q - 1) < 0.25, (s.name, s.q_pred, s.q)
    assert all(math.isfinite(s.chi) for s in r.layers if s.kind == "tanh")
    r = doctor_chain(NumpyChain(tanh_mlp()), x)
    assert r.flagged("vanishing_activations")


def test_doctor_chain_reports_a_failing_layer_after_the_ones_before_it():
    x = np.ones((4, 256), np.float32)
    m = tanh_mlp(depth=2)
    m[2] = Dense(np.zeros((3, 3), np.float32))
    r = doctor_chain(NumpyChain(m), x)
    (f,) = r.flagged("forward_failed")
    assert f.layer == "2:Dense" and [s.name for s in r.layers] == ["0:Dense", "1:tanh"]
    assert doctor_chain(NumpyChain(m), np.zeros((0, 256), np.float32)).flagged("empty_batch")


def test_fix_chain_lsuv_and_analytic():
    x = np.random.default_rng(2).standard_normal((512, 256)).astype(np.float32)
    m = tanh_mlp()
    f = fix_chain(NumpyChain(m), "lsuv", x, tol=0.05)
    assert list(f.scales) == [f"{2 * i}:Dense.kernel" for i in range(8)] and set(f.iterations) == set(f.scales)
    h = x
    for lay in m:
        if isinstance(lay, Dense):
            assert abs(np.var(lay(h).astype(np.float64)) - 1) < 0.05
        h = lay(h)
    assert not f.after.flagged("vanishing_activations")
    m = tanh_mlp()
    f = fix_chain(NumpyChain(m), "analytic", None, measure=False, probe=False)
    assert len(f.scales) == 8 and not f.iterations and f.before is None
    r = doctor_chain(NumpyChain(m))  # synthetic batch: input q taken as 1, as in the fix
    pre = [s.q_pred for s in r.layers if s.kind == "Dense"]
    assert np.allclose(pre, 1.0, rtol=1e-5), pre  # the fix's own prediction: unit pre-activations (float32 kernels)
    # with the probe correction (the default) the measured pre-activations on the batch are the target
    m = tanh_mlp()
    fix_chain(NumpyChain(m), "analytic", x, measure=False)
    h = x
    for lay in m:
        if isinstance(lay, Dense):
            assert abs(np.mean(np.square(lay(h).astype(np.float64))) - 1) < 0.02
        h = lay(h)


def test_lsuv_rescale_stops_at_tolerance_max_iter_and_bad_variance():
    w = [4.0]

    def rescale(s):
        w[0] *= s

    assert lsuv_rescale(lambda: w[0] ** 3, rescale, 1.0, 1e-9, 3)[1:] == (3, None)  # not converged in 3 passes
    assert lsuv_rescale(lambda: 1.0, rescale, 1.0, 0.1, 10) == (1.0, 0, None)
    assert lsuv_rescale(lambda: 1.0, rescale, 1.0, 0.1, 0) == (1.0, 0, None)
    total, n, bad = lsuv_rescale(lambda: float("nan"), rescale, 1.0, 0.1, 10)
    assert (total, n, math.isnan(bad)) == (1.0, 0, True)
