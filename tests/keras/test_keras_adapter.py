"""weightinit.keras: registered Keras initializers, .keras round trips, identical weights on every backend."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

if "KERAS_BACKEND" not in os.environ and importlib.util.find_spec("tensorflow") is None:
    os.environ["KERAS_BACKEND"] = "jax"  # Keras' default backend is tensorflow, which may be absent
pytest.importorskip("keras")

SCRIPT = textwrap.dedent(
    """
    import json, sys, numpy as np, keras, weightinit as wi, weightinit.keras as wik
    out = sys.argv[1]
    model = keras.Sequential([
        keras.Input((8, 8, 3)),
        keras.layers.Conv2D(4, 3, kernel_initializer=wik.HeNormal(seed=1), bias_initializer=wik.Constant(0.25)),
        keras.layers.Flatten(),
        keras.layers.Dense(5, kernel_initializer=wik.GlorotUniform(seed=5),
                           bias_initializer=wik.RandomUniform(-1.0, 1.0, seed=2)),
        keras.layers.Dense(3, kernel_initializer=wik.get({"class_name": "Orthogonal", "config": {"seed": 6}}), dtype="float32"),
    ])
    emb = keras.Sequential([keras.Input((4,), dtype="int32"),
                            keras.layers.Embedding(10, 6, embeddings_initializer=wik.TruncatedNormal(stddev=0.3, seed=3))])
    path = out + "/m.keras"
    model.save(path)
    again = keras.models.load_model(path)
    cfg = [l.get_config() for l in model.layers]
    cfg2 = [l.get_config() for l in again.layers]
    assert json.dumps(cfg, sort_keys=True, default=str) == json.dumps(cfg2, sort_keys=True, default=str)
    for a, b in zip(model.weights, again.weights):
        assert np.array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))
    conv_init = keras.initializers.deserialize(keras.initializers.serialize(wik.HeNormal(seed=1)))
    assert type(conv_init) is wik.HeNormal and conv_init.get_config()["seed"] == 1
    ws = {f"w{i}": keras.ops.convert_to_numpy(w) for i, w in enumerate(model.weights + emb.weights)}
    ws["bf16"] = keras.ops.convert_to_numpy(keras.ops.cast(wik.HeUniform(seed=4)((5, 6), "bfloat16"), "float32"))
    ws["f16"] = keras.ops.convert_to_numpy(wik.LecunNormal(seed=5)((7, 3), "float16"))
    np.savez(out + "/w.npz", **ws)
    print(json.dumps(cfg[0]["kernel_initializer"], default=str))
    """
)


def _run(backend, tmp_path):
    d = tmp_path / backend
    d.mkdir()
    env = dict(os.environ, KERAS_BACKEND=backend, JAX_PLATFORMS="cpu")
    r = subprocess.run([sys.executable, "-c", SCRIPT, str(d)], capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-4000:]
    return dict(np.load(d / "w.npz")), json.loads(r.stdout.strip().splitlines()[-1])


def test_backends_bitwise_identical(tmp_path):
    backends = ["jax", "torch", "numpy"]
    try:
        import tensorflow  # noqa: F401

        backends.append("tensorflow")
    except ImportError:
        pass
    results = {b: _run(b, tmp_path) for b in backends}
    ref, cfg = results["jax"]
    assert cfg["registered_name"] == "weightinit>HeNormal"
    import weightinit as wi

    assert np.array_equal(ref["w0"], wi.HeNormal(seed=1)((3, 3, 3, 4)))
    for b, (ws, _) in results.items():
        assert ws.keys() == ref.keys(), b
        for k in ref:
            assert ws[k].dtype == ref[k].dtype and np.array_equal(ws[k].view(np.uint8), ref[k].view(np.uint8)), (b, k)


def test_layout_sharded_jax_subprocess():
    code = textwrap.dedent(
        """
        import numpy as np, jax, keras, weightinit as wi, weightinit.keras as wik
        from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
        mesh = Mesh(np.array(jax.devices()).reshape(2, 2), ("a", "b"))
        sh = NamedSharding(mesh, P("a", "b"))
        for init, core in [(wik.HeNormal(seed=3), wi.HeNormal(seed=3)), (wik.Orthogonal(seed=3), wi.Orthogonal(seed=3)),
                           (wik.Ones(), wi.Ones())]:
            x = init((6, 10), "float32", layout=sh)
            assert x.sharding == sh
            assert np.array_equal(np.asarray(x), core((6, 10), "float32"))
        layout_map = keras.distribution.LayoutMap(keras.distribution.DeviceMesh((2, 2), ["a", "b"]))
        layout_map[".*dense.*kernel"] = ("a", "b")
        dist = keras.distribution.ModelParallel(layout_map=layout_map)
        with dist.scope():
            layer = keras.layers.Dense(6, kernel_initializer=wik.GlorotUniform(seed=8))
            layer.build((None, 4))
        assert np.array_equal(np.asarray(layer.kernel.value), wi.GlorotUniform(seed=8)((4, 6)))
        # A core initializer refuses `layout` (it cannot place a NumPy array), so Keras shards its values itself.
        with dist.scope():
            layer = keras.layers.Dense(6, kernel_initializer=wi.GlorotUniform(seed=8))
            layer.build((None, 4))
        assert np.array_equal(np.asarray(layer.kernel.value), wi.GlorotUniform(seed=8)((4, 6)))
        assert layer.kernel.value.sharding.spec == jax.sharding.PartitionSpec("a", "b")
        print("ok")
        """
    )
    env = dict(
        os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=4"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr[-4000:]


def test_names_and_registry_in_process():
    import weightinit as wi
    import weightinit.keras as wik
    from weightinit.registry.api import builtin_classes

    assert set(wik.classes()) == {c.__name__ for c in builtin_classes()}
    assert type(wik.get("he_normal")) is wik.HeNormal
    assert type(wik.get("weightinit>GlorotNormal")) is wik.GlorotNormal
    assert type(wik.get(wi.Orthogonal(gain=2.0, seed=0))) is wik.Orthogonal
    cfg = {"module": None, "class_name": "HeUniform", "config": {"seed": 3}, "registered_name": "weightinit>HeUniform"}
    assert wik.get(cfg).get_config()["seed"] == 3
    import keras

    layer = keras.layers.Dense(3, kernel_initializer="weightinit>GlorotUniform")
    layer.build((None, 4))
    assert type(layer.kernel_initializer) is wik.GlorotUniform
    with pytest.raises(ValueError, match="Unknown initializer"):
        wik.get("he_nromal")
    with pytest.raises(TypeError, match="`identifier`"):
        wik.get(3.0)
