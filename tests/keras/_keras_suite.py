"""Run Keras' own initializer tests (shipped in the installed keras) against weightinit.keras.

Used by ``tests/keras/test_keras_own_suite.py`` in one subprocess per backend
(``KERAS_BACKEND`` is read once by Keras).  Nothing of Keras is copied: the test
modules are imported from the installed package, and the names they look up
in ``keras.src.initializers`` (the classes, ``get``, ``serialize``,
``deserialize``) plus their imported ``compute_fans`` are replaced by
weightinit's.  Keras layers built inside those tests (``MultiHeadAttention``)
resolve their string initializers through the same patched ``get``, so they get
weightinit's initializers too.

The same process (one Keras import per backend) then builds, saves and reloads a small model
with weightinit initializers and writes its weights to ``<out_dir>/w.npz`` for the cross-backend
bitwise comparison, and on the tensorflow backend checks ``tf.function`` behaviour.

Prints one JSON line: ``{"backend": ..., "results": {test_id: "pass" | "skip" | "fail: ..."}, ...}``.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import traceback
import types
import unittest

MODULES = [
    "keras.src.initializers.constant_initializers_test",
    "keras.src.initializers.random_initializers_test",
    "keras.src.initializers.initializer_test",
]


def _install_conftest_stub(backend_name: str) -> None:
    # Keras' test modules import ``skip_if_backend`` from the conftest.py at the root of the
    # Keras repository, which the wheel does not ship; this is its documented behaviour.
    mod = types.ModuleType("conftest")

    def skip_if_backend(given_backend, reason):
        return unittest.skipIf(backend_name == given_backend, reason)

    mod.skip_if_backend = skip_if_backend
    sys.modules["conftest"] = mod


def _patch_keras() -> dict[str, str]:
    """Point ``keras.src.initializers``' names at weightinit's; returns {keras name: weightinit class}."""
    from keras.src import initializers as kinit

    import weightinit.keras as wik
    from weightinit.initializers.fans import compute_fans

    replaced = {}
    adapters = wik.classes()
    for name, obj in list(kinit.ALL_OBJECTS_DICT.items()):
        if obj is kinit.Initializer:
            continue
        target = adapters.get(obj.__name__)
        if target is None:
            raise SystemExit(f"weightinit.keras has no adapter for keras.initializers.{obj.__name__}")
        if hasattr(kinit, name):
            setattr(kinit, name, target)
        replaced[name] = target.__name__
    kinit.get = wik.get
    kinit.serialize = wik.serialize
    kinit.deserialize = wik.deserialize
    kinit.compute_fans = compute_fans
    return replaced, compute_fans


def _skipped_by_marks(cls) -> str | None:
    for mark in getattr(cls, "pytestmark", []):
        if mark.name == "skipif" and mark.args and mark.args[0]:
            return mark.kwargs.get("reason", "skipif")
    return None


def _model_weights(out_dir: str) -> dict:
    """Build, save, reload a model with weightinit initializers; save its weights; return facts to check."""
    import numpy as np

    import keras
    import weightinit.keras as wik

    model = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            keras.layers.Conv2D(4, 3, kernel_initializer=wik.HeNormal(seed=1), bias_initializer=wik.Constant(0.25)),
            keras.layers.Flatten(),
            keras.layers.Dense(
                5, kernel_initializer=wik.GlorotUniform(seed=5), bias_initializer=wik.RandomUniform(-1.0, 1.0, seed=2)
            ),
            keras.layers.Dense(3, kernel_initializer=wik.get({"class_name": "Orthogonal", "config": {"seed": 6}})),
        ]
    )
    emb = keras.Sequential(
        [
            keras.Input((4,), dtype="int32"),
            keras.layers.Embedding(10, 6, embeddings_initializer=wik.TruncatedNormal(stddev=0.3, seed=3)),
        ]
    )
    mha = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4, kernel_initializer=wik.LecunNormal(seed=7))
    mha.build((None, 3, 8), (None, 3, 8))
    path = os.path.join(out_dir, "m.keras")
    model.save(path)
    again = keras.models.load_model(path)
    cfg = [layer.get_config() for layer in model.layers]
    cfg2 = [layer.get_config() for layer in again.layers]
    same_config = json.dumps(cfg, sort_keys=True, default=str) == json.dumps(cfg2, sort_keys=True, default=str)
    same_weights = all(
        np.array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))
        for a, b in zip(model.weights, again.weights)
    )
    ws = {f"w{i}": keras.ops.convert_to_numpy(w) for i, w in enumerate(model.weights + emb.weights + mha.weights)}
    ws["bf16"] = keras.ops.convert_to_numpy(keras.ops.cast(wik.HeUniform(seed=4)((5, 6), "bfloat16"), "float32"))
    ws["f16"] = keras.ops.convert_to_numpy(wik.LecunNormal(seed=5)((7, 3), "float16"))
    np.savez(os.path.join(out_dir, "w.npz"), **ws)
    return {
        "same_config": same_config,
        "same_weights": same_weights,
        "reloaded_classes": [
            type(layer.kernel_initializer).__module__ for layer in again.layers if hasattr(layer, "kernel_initializer")
        ],
        "conv_kernel_initializer": cfg[0]["kernel_initializer"],
    }


def _tf_function_checks() -> dict:
    """Inside ``tf.function``: AutoGraph warnings, fixed seeds constant, SeedGenerators new per call."""
    import io
    import logging

    import numpy as np
    import tensorflow as tf

    import weightinit as wi
    import weightinit.keras as wik

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    tf.get_logger().addHandler(handler)
    tf.autograph.set_verbosity(0, alsologtostdout=False)
    fixed = wik.HeNormal(seed=3)
    gen = wik.RandomNormal(seed=wi.SeedGenerator(11))
    ref_gen = wik.RandomNormal(seed=wi.SeedGenerator(11))

    @tf.function
    def f():
        return fixed((4, 5)), gen((4, 5), "bfloat16")

    import contextlib

    err = io.StringIO()
    with contextlib.redirect_stdout(err), contextlib.redirect_stderr(err):
        a1, g1 = f()
        a2, g2 = f()
    tf.get_logger().removeHandler(handler)
    eager = [np.asarray(tf.cast(ref_gen((4, 5), "bfloat16"), tf.float32)) for _ in range(2)]
    return {
        "log": stream.getvalue() + err.getvalue(),
        "fixed_equal_core": bool(np.array_equal(a1.numpy(), wi.HeNormal(seed=3)((4, 5)))),
        "fixed_repeat": bool(np.array_equal(a1.numpy(), a2.numpy())),
        "generator_new_per_call": not np.array_equal(
            np.asarray(tf.cast(g1, tf.float32)), np.asarray(tf.cast(g2, tf.float32))
        ),
        "generator_equals_eager": bool(
            np.array_equal(np.asarray(tf.cast(g1, tf.float32)), eager[0])
            and np.array_equal(np.asarray(tf.cast(g2, tf.float32)), eager[1])
        ),
        "dtype": g1.dtype.name,
    }


def _jax_layout_checks() -> str:
    """With the jax backend on 4 CPU devices: ``layout=`` gives sharded arrays equal to the unsharded values."""
    try:
        import numpy as np
        from jax.sharding import Mesh, NamedSharding
        from jax.sharding import PartitionSpec as P

        import jax
        import keras
        import weightinit as wi
        import weightinit.keras as wik

        mesh = Mesh(np.array(jax.devices()).reshape(2, 2), ("a", "b"))
        sh = NamedSharding(mesh, P("a", "b"))
        pairs = [(wik.HeNormal(seed=3), wi.HeNormal(seed=3)), (wik.Orthogonal(seed=3), wi.Orthogonal(seed=3))]
        for init, core in pairs + [(wik.Ones(), wi.Ones())]:
            x = init((6, 10), "float32", layout=sh)
            assert x.sharding == sh
            assert np.array_equal(np.asarray(x), core((6, 10), "float32"))
        layout_map = keras.distribution.LayoutMap(keras.distribution.DeviceMesh((2, 2), ["a", "b"]))
        layout_map[".*dense.*kernel"] = ("a", "b")
        dist = keras.distribution.ModelParallel(layout_map=layout_map)
        with dist.scope():
            layer = keras.layers.Dense(6, kernel_initializer=wik.GlorotUniform(seed=8))
            layer.build((None, 4))
        assert layer.kernel.value.sharding.spec == P("a", "b")
        assert np.array_equal(np.asarray(layer.kernel.value), wi.GlorotUniform(seed=8)((4, 6)))
        # A core initializer becomes the adapter in the layer, so it is sharded the same way.
        with dist.scope():
            layer = keras.layers.Dense(6, kernel_initializer=wi.GlorotUniform(seed=8))
            layer.build((None, 4))
        assert np.array_equal(np.asarray(layer.kernel.value), wi.GlorotUniform(seed=8)((4, 6)))
        assert layer.kernel.value.sharding.spec == P("a", "b")
        return "ok"
    except Exception:
        return traceback.format_exc()


def main() -> None:
    backend_name = os.environ["KERAS_BACKEND"]
    _install_conftest_stub(backend_name)
    import keras  # noqa: F401

    # Unpatched Keras first: a model with weightinit initializers, then tf.function behaviour.
    out = {"backend": backend_name, "model": _model_weights(sys.argv[1])}
    if backend_name == "tensorflow":
        out["tf_function"] = _tf_function_checks()
    if backend_name == "jax":
        out["jax_layout"] = _jax_layout_checks()

    replaced, compute_fans = _patch_keras()
    from keras.src import initializers as kinit

    import weightinit.keras as wik

    # What a Keras layer resolves "lecun_normal" to now (MultiHeadAttention's test relies on it).
    resolved = type(kinit.get("lecun_normal")).__module__
    results: dict[str, str] = {}
    suite = unittest.TestSuite()
    for modname in MODULES:
        mod = importlib.import_module(modname)
        if hasattr(mod, "compute_fans"):
            mod.compute_fans = compute_fans
        for obj in vars(mod).values():
            if isinstance(obj, type) and issubclass(obj, unittest.TestCase) and obj.__module__ == modname:
                reason = _skipped_by_marks(obj)
                for name in unittest.TestLoader().getTestCaseNames(obj):
                    test_id = f"{modname.rsplit('.', 1)[1]}::{obj.__name__}::{name}"
                    if reason:
                        results[test_id] = "skip"
                        continue
                    suite.addTest(obj(name))

    class Collect(unittest.TestResult):
        def _id(self, test):
            cls = type(test)
            return f"{cls.__module__.rsplit('.', 1)[1]}::{cls.__name__}::{test._testMethodName}"

        def addSuccess(self, test):
            results[self._id(test)] = "pass"

        def addFailure(self, test, err):
            results[self._id(test)] = "fail: " + "".join(traceback.format_exception(*err))[-1500:]

        addError = addFailure

        def addSkip(self, test, reason):
            results[self._id(test)] = "skip"

    suite.run(Collect())
    out.update(replaced=replaced, resolved=resolved, results=results)
    assert wik  # imported for its registration
    print(json.dumps(out, default=str))


if __name__ == "__main__":
    main()
