"""The doctor on Keras 3 and Flax NNX chains: measure, analytic, LSUV."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest

import weightinit as wi


def test_keras_lsuv_and_doctor():
    os.environ.setdefault("KERAS_BACKEND", "numpy")
    keras = pytest.importorskip("keras")
    init = keras.initializers.RandomUniform(-(32**-0.5), 32**-0.5, seed=0)
    m = keras.Sequential(
        [keras.Input((32,))] + [keras.layers.Dense(32, activation="tanh", kernel_initializer=init) for _ in range(12)]
    )
    r = wi.doctor(m)
    assert r.flagged("vanishing_activations")
    assert all(np.isfinite(s.q_pred) for s in r.layers)
    x = np.random.default_rng(0).standard_normal((256, 32)).astype("float32")
    f = wi.fix(m, "lsuv", x)
    assert len(f.scales) == 12 and not f.after.flagged("vanishing_activations")
    rel = [s.q_pred / s.q for s in f.after.layers]
    assert all(0.7 < v < 1.3 for v in rel), rel  # analytic prediction vs measured, width 32


def test_flax_nnx_doctor_lsuv_analytic():
    jax = pytest.importorskip("jax")
    nnx = pytest.importorskip("flax.nnx")
    layers = []
    for i in range(8):
        layers += [nnx.Linear(64, 64, rngs=nnx.Rngs(i), kernel_init=jax.nn.initializers.normal(0.02)), jax.nn.relu]
    m = nnx.Sequential(*layers)
    r = wi.doctor(m)
    assert r.layers and r.flagged("vanishing_activations")
    x = np.random.default_rng(0).standard_normal((256, 64)).astype("float32")
    f = wi.fix(m, "lsuv", x)
    lin = [s for s in f.after.layers if s.kind == "Linear"]
    assert all(abs(s.std**2 - 1) < 0.15 for s in lin), [s.std for s in lin]
    f = wi.fix(m, "analytic")
    assert len(f.scales) == 8


def test_keras_numpy_backend_reports_why_gradients_are_missing():
    os.environ.setdefault("KERAS_BACKEND", "numpy")
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "numpy":
        pytest.skip(f"KERAS_BACKEND is {keras.backend.backend()}")
    m = keras.Sequential([keras.Input((8,)), keras.layers.Dense(8, activation="tanh"), keras.layers.Dense(2)])
    r = wi.doctor(m)
    assert len(r.layers) == 2 and all(np.isnan(s.grad_std) and not s.grad_norms for s in r.layers)
    assert any("gradients not measured" in n and "numpy backend cannot differentiate" in n for n in r.notes), r.notes


def _relu_mlp(nnx, jax, kernel_init, depth=10, width=64, bias=0.0):
    layers = []
    for i in range(depth):
        layers += [nnx.Linear(width, width, rngs=nnx.Rngs(i), kernel_init=kernel_init,
                              bias_init=nnx.initializers.constant(bias)), jax.nn.relu]  # fmt: skip
    return nnx.Sequential(*layers)


def test_flax_nnx_gradients_flag_vanishing_with_depth():
    jax = pytest.importorskip("jax")
    nnx = pytest.importorskip("flax.nnx")
    # gradients judged per parameter: with zero biases a ReLU net's relative weight gradients are balanced
    # whatever the init scale (homogeneity); biases that dominate the vanished signal starve the first layer
    balanced = wi.doctor(_relu_mlp(nnx, jax, jax.nn.initializers.normal(0.02)))
    assert balanced.flagged("vanishing_activations") and not balanced.flagged("vanishing_gradients")
    bad = wi.doctor(_relu_mlp(nnx, jax, jax.nn.initializers.normal(0.02), bias=0.1))
    assert bad.flagged("vanishing_gradients") and np.isfinite(bad.loss)
    good = wi.doctor(_relu_mlp(nnx, jax, jax.nn.initializers.he_normal()))
    assert not good.flagged("vanishing_gradients") and not good.flagged("exploding_gradients"), good.flags
    lin = [s for s in good.layers if s.kind == "Linear"]
    assert all(set(s.grad_norms) == {"kernel", "bias"} and s.grad_norm > 0 for s in lin)
    assert not any("forward statistics only" in n for n in good.notes)


def test_flax_nnx_gradients_match_jax_grad():
    jax = pytest.importorskip("jax")
    jnp = pytest.importorskip("jax.numpy")
    nnx = pytest.importorskip("flax.nnx")
    from weightinit.doctor.backends.flax import doctor_flax

    m = nnx.Sequential(nnx.Linear(5, 4, rngs=nnx.Rngs(0)), jnp.tanh, nnx.Linear(4, 3, rngs=nnx.Rngs(1)))
    x = np.random.default_rng(3).standard_normal((16, 5)).astype("float32")
    t = np.arange(16) % 3
    g = np.random.default_rng(7 + 1).standard_normal((16, 3)) / 4.0  # the default loss: sum(y * g) / sqrt(batch)
    losses = {
        "default": (None, lambda y: jnp.sum(y * jnp.asarray(g, jnp.float32))),
        "xent": (t, lambda y: -jnp.mean(jax.nn.log_softmax(y)[jnp.arange(16), t])),
        "mse": (x[:, :3] + 1, lambda y: jnp.mean((y - (x[:, :3] + 1)) ** 2)),
    }
    xj = jnp.asarray(x)
    h0 = m.layers[0](xj)
    h1 = jnp.tanh(h0)
    for key, (targets, loss) in losses.items():
        r = doctor_flax(m, x, targets=targets, seed=7)
        want = nnx.grad(lambda m, f=loss: f(m(xj)))(m)
        assert np.isclose(r.loss, float(loss(m(xj))), rtol=1e-5), key
        for i in (0, 2):
            for p in ("kernel", "bias"):
                ref = float(np.linalg.norm(np.asarray(want["layers"][i][p].get_value(), np.float64)))
                assert np.isclose(r.layers[i].grad_norms[p], ref, rtol=1e-5), (key, i, p)
        gy = [  # dL/dy at each layer's output, by jax.grad of the rest of the model
            jax.grad(lambda h, f=loss: f(m.layers[2](jnp.tanh(h))))(h0),
            jax.grad(lambda h, f=loss: f(m.layers[2](h)))(h1),
            jax.grad(loss)(m.layers[2](h1)),
        ]
        assert np.allclose([s.grad_std for s in r.layers], [float(np.std(np.asarray(v, np.float64))) for v in gy],
                           rtol=1e-5), key  # fmt: skip
        assert r.layers[1].grad_norms == {}


_KERAS_GRADS = r"""
import numpy as np
import keras
import weightinit as wi

backend = keras.backend.backend()
init = keras.initializers.RandomUniform(-(32**-0.5), 32**-0.5, seed=0)
def mlp(init, bias="zeros"):
    return keras.Sequential([keras.Input((32,))] +
                            [keras.layers.Dense(32, activation="tanh", kernel_initializer=init,
                                                bias_initializer=bias) for _ in range(12)])
# biases that dominate the shrinking signal: the first layer's relative gradient vanishes
bad = wi.doctor(mlp(init, keras.initializers.Constant(0.5)))
assert bad.flagged("vanishing_gradients") and bad.flagged("vanishing_activations"), bad.flags
good = wi.doctor(mlp(keras.initializers.GlorotNormal(seed=1)))
assert not good.flagged("vanishing_gradients") and not good.flagged("exploding_gradients"), good.flags
assert not any("forward statistics only" in n for n in good.notes), good.notes

# a tiny model: the doctor's gradient norms against the backend's own gradient of the same loss
m = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4, activation="tanh"), keras.layers.Dense(3)])
x = np.random.default_rng(3).standard_normal((16, 5)).astype("float32")
t = np.arange(16) % 3
for targets in (None, t):
    r = wi.doctor(m, x, targets=targets, seed=7)
    g = np.random.default_rng(8).standard_normal((16, 3)) / 4.0
    onehot = np.eye(3)[t]
    if backend == "jax":
        import jax, jax.numpy as jnp
        def loss(tv):
            y = m.stateless_call(tv, [v.value for v in m.non_trainable_variables], jnp.asarray(x))[0]
            if targets is None:
                return jnp.sum(y * jnp.asarray(g, y.dtype))
            return -jnp.mean(jnp.sum(jax.nn.log_softmax(y) * onehot, axis=1))
        grads = [np.asarray(v, np.float64) for v in jax.grad(loss)([v.value for v in m.trainable_variables])]
    elif backend == "tensorflow":
        import tensorflow as tf
        with tf.GradientTape() as tape:
            y = m(tf.convert_to_tensor(x))
            if targets is None:
                lv = tf.reduce_sum(y * tf.cast(g, y.dtype))
            else:
                lv = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(tf.convert_to_tensor(t), y))
        grads = [np.asarray(v, np.float64) for v in tape.gradient(lv, [v.value for v in m.trainable_variables])]
    else:
        import torch
        y = m(torch.as_tensor(x))
        if targets is None:
            lv = (y * torch.as_tensor(g, dtype=y.dtype)).sum()
        else:
            lv = torch.nn.functional.cross_entropy(y, torch.as_tensor(t))
        grads = torch.autograd.grad(lv, [v.value for v in m.trainable_variables])
        grads = [v.double().numpy() for v in grads]
    got = [r.layers[0].grad_norms["kernel"], r.layers[0].grad_norms["bias"],
           r.layers[1].grad_norms["kernel"], r.layers[1].grad_norms["bias"]]
    assert np.allclose(got, [np.linalg.norm(v) for v in grads], rtol=1e-5), (backend, targets, got)
    if targets is None:  # dL/dy at the output is the fixed cotangent
        assert np.isclose(r.layers[1].grad_std, g.std(), rtol=1e-5)
print("ok", backend)
"""


@pytest.mark.parametrize("backend", ["jax", "torch", "tensorflow"])
def test_keras_gradients_flag_vanishing_and_match_backend_autodiff(backend):
    for mod in ("keras", backend):  # not imported here: Keras fixes its backend at its first import
        if importlib.util.find_spec(mod) is None:
            pytest.skip(f"{mod} is not installed")
    env = dict(os.environ, KERAS_BACKEND=backend, JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run([sys.executable, "-c", _KERAS_GRADS], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0 and f"ok {backend}" in proc.stdout, proc.stderr[-3000:]


def test_every_backend_module_satisfies_the_protocol():
    import importlib
    import inspect

    from weightinit.doctor.backends import MODULES, DoctorBackend

    for fw, name in MODULES.items():
        if importlib.util.find_spec({"flax": "flax", "keras": "keras", "torch": "torch"}[fw]) is None:
            continue
        mod = importlib.import_module(name)
        assert isinstance(mod, DoctorBackend) and mod.NAME == fw
        for op in ("doctor", "fix"):  # same keyword arguments as the protocol, so the core can call any backend
            want = set(inspect.signature(getattr(DoctorBackend, op)).parameters) - {"self"}
            assert set(inspect.signature(getattr(mod, op)).parameters) == want, (fw, op)


def test_keras_and_flax_protocol_functions_come_from_one_factory():
    import importlib

    from weightinit.doctor.backends._common import backend_functions

    mods = []
    for fw in ("keras", "flax"):
        if importlib.util.find_spec(fw) is None:
            pytest.skip(f"{fw} is not installed")
        mods.append(importlib.import_module(f"weightinit.doctor.backends.{fw}"))
    keras_b, flax_b = mods
    made = dict(zip(("doctor", "fix"), backend_functions("x", "m", None)[2:]))
    for op in ("doctor", "fix"):  # the same code, told apart only by the adapter each module passes
        assert getattr(keras_b, op).__code__ is getattr(flax_b, op).__code__ is made[op].__code__
    assert keras_b.doctor_keras.__code__ is flax_b.doctor_flax.__code__
    assert keras_b.fix_keras.__module__ == keras_b.__name__ and flax_b.fix_flax.__name__ == "fix_flax"
