"""weightinit.keras in process: attributes, get/serialize, Keras layers' fans, no silent swap, string names."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")

import weightinit as wi  # noqa: E402
import weightinit.keras as wik  # noqa: E402
from weightinit.registry.api import builtin_classes  # noqa: E402

SRC = str(Path(__file__).resolve().parents[2] / "src")


def _np(x):
    return keras.ops.convert_to_numpy(x)


def test_one_adapter_per_builtin_with_core_signature():
    assert set(wik.classes()) == {c.__name__ for c in builtin_classes()}
    for name, cls in wik.classes().items():
        core = getattr(wi, name)
        assert cls.core_class is core
        ours = [(p.name, p.default, p.kind) for p in inspect.signature(cls).parameters.values()]
        assert ours == [(p.name, p.default, p.kind) for p in inspect.signature(core).parameters.values()], name
        assert isinstance(cls(), keras.initializers.Initializer)
        keras_cls = getattr(keras.initializers, name, None)
        if isinstance(keras_cls, type):
            assert issubclass(cls, keras_cls), name


def test_every_setting_is_an_attribute():
    """Every constructor argument, and every public attribute of Keras' class of the same name, reads back."""
    args = {
        "RandomNormal": {"mean": 0.5, "stddev": 2.0, "seed": 4},
        "TruncatedNormal": {"mean": -1.0, "stddev": 0.5, "seed": 5},
        "RandomUniform": {"minval": -2.0, "maxval": 3.0, "seed": 6},
        "VarianceScaling": {"scale": 3.0, "mode": "fan_out", "distribution": "uniform", "seed": 7},
        "Orthogonal": {"gain": 2.0, "seed": 8},
        "Constant": {"value": 3.0},
        "Identity": {"gain": 0.5},
        "STFT": {"side": "imag", "window": "hamming", "scaling": "spectrum", "periodic": True},
        "TorchTruncNormal": {"mean": 1.0, "std": 2.0, "a": -3.0, "b": 4.0, "seed": 9},
    }
    for name, kwargs in args.items():
        obj = wik.classes()[name](**kwargs)
        for k, v in kwargs.items():
            assert getattr(obj, k) == v, (name, k)
        keras_obj = getattr(keras.initializers, name, None)
        if keras_obj is not None:
            ref = keras_obj(**{k: v for k, v in kwargs.items() if k in inspect.signature(keras_obj).parameters})
            for k in vars(ref):
                if not k.startswith("_"):
                    assert getattr(obj, k) == getattr(ref, k), (name, k)
    he = wik.HeNormal(seed=1)
    ref = keras.initializers.HeNormal(seed=1)
    assert (he.scale, he.mode, he.distribution, he.input_axes, he.output_axes) == (
        ref.scale,
        ref.mode,
        ref.distribution,
        ref.input_axes,
        ref.output_axes,
    )
    with pytest.raises(AttributeError):
        he.scale = 3.0  # read-only: the settings live in the config


def test_unseeded_seed_is_the_seed_drawn():
    a = wik.GlorotUniform()
    assert isinstance(a.seed, int) and 0 <= a.seed < 2**64
    assert a.get_config()["seed"] is None  # as Keras: a clone draws anew
    v = _np(a((6, 5)))
    assert np.array_equal(v, wi.GlorotUniform(seed=a.seed)((6, 5)))
    assert np.array_equal(_np(a((6, 5))), v)  # one instance repeats
    b = a.clone()
    assert b.seed != a.seed and not np.array_equal(_np(b((6, 5))), v)
    # What EinsumDense does: from_config(config | seed=.seed) gives the same values.
    c = type(a).from_config({**a.get_config(), "seed": a.seed})
    assert np.array_equal(_np(c((6, 5))), v)


def test_get_accepts_what_keras_get_accepts():
    assert wik.get(None) is None
    assert type(wik.get("he_normal")) is wik.HeNormal
    assert isinstance(wik.get("he_normal").seed, int)  # drawn, as Keras' get("he_normal") does
    assert type(wik.get("HeNormal")) is wik.HeNormal
    assert type(wik.get("OrthogonalInitializer")) is wik.Orthogonal
    assert type(wik.get("weightinit>GlorotNormal")) is wik.GlorotNormal
    assert type(wik.get(wi.Orthogonal(gain=2.0, seed=0))) is wik.Orthogonal
    assert type(wik.get(wik.HeUniform)) is wik.HeUniform
    assert type(wik.get(wi.HeUniform)) is wik.HeUniform  # a core class becomes its adapter
    assert type(wik.get(keras.initializers.Ones)) is keras.initializers.Ones  # other classes: an instance

    def fn(shape, dtype=None):
        return np.ones(shape)

    assert wik.get(fn) is fn
    arr = np.arange(6, dtype="float32").reshape(2, 3)
    for ident in (arr, keras.ops.convert_to_tensor(arr)):
        init = wik.get(ident)
        assert np.array_equal(_np(init((2, 3))), arr)
        with pytest.raises(ValueError, match="Expected `shape` to be"):
            init((3, 2))
    cfg = {"module": None, "class_name": "HeUniform", "config": {"seed": 3}, "registered_name": "weightinit>HeUniform"}
    assert type(wik.get(cfg)) is wik.HeUniform and wik.get(cfg).seed == 3
    # Keras' own serialized form gives weightinit's class of that name, same config.
    kcfg = keras.initializers.serialize(keras.initializers.VarianceScaling(2.0, "fan_avg", "uniform", seed=5))
    got = wik.deserialize(kcfg)
    assert (
        type(got) is wik.VarianceScaling
        and got.get_config() == keras.initializers.VarianceScaling.from_config(kcfg["config"]).get_config()
    )
    # Other packages' registered objects stay theirs.
    custom = keras.saving.register_keras_serializable("wi_test_pkg")(type("MyInit", (keras.initializers.Ones,), {}))
    assert type(wik.get("wi_test_pkg>MyInit")) is custom
    assert type(wik.deserialize(keras.initializers.serialize(custom()))) is custom
    with pytest.raises(ValueError, match="Unknown initializer"):
        wik.get("he_nromal")
    with pytest.raises(TypeError, match="`identifier`"):
        wik.get(3.0)


def test_serialize_round_trip_and_core_instances():
    for obj in (wik.HeNormal(seed=3), wi.HeNormal(seed=3)):
        cfg = wik.serialize(obj)
        assert cfg["registered_name"] == "weightinit>HeNormal" and cfg["config"]["seed"] == 3
        back = keras.initializers.deserialize(json.loads(json.dumps(cfg)))
        assert type(back) is wik.HeNormal and back.get_config() == obj.get_config()
    # Keras' own serializer on a core instance names weightinit, not Keras' HeNormal.
    cfg = keras.saving.serialize_keras_object(wi.HeNormal(seed=3))
    assert cfg["registered_name"] == "weightinit>HeNormal"
    assert type(keras.saving.deserialize_keras_object(cfg)) is wik.HeNormal


def _einsum_axes(monkeypatch, *classes):
    """The (input_axes, output_axes) EinsumDense rebuilds the given classes with, per sublayer."""
    seen = []
    for klass in classes:

        def spy(cls, config, original=klass.from_config.__func__):
            if config.get("input_axes") is not None:  # MultiHeadAttention also clones without axes first
                seen.append((config["input_axes"], config["output_axes"]))
            return original(cls, config)

        monkeypatch.setattr(klass, "from_config", classmethod(spy))
    return seen


@pytest.mark.parametrize("name", ["LecunNormal", "GlorotUniform", "HeNormal", "VarianceScaling"])
def test_multi_head_attention_fans_match_keras(monkeypatch, name):
    """Inside MultiHeadAttention the adapters get the einsum axes Keras gives its own VarianceScaling."""
    keras_cls = getattr(keras.initializers, name)
    seen = _einsum_axes(monkeypatch, keras_cls, wik.classes()[name])
    ref = keras.layers.MultiHeadAttention(num_heads=8, key_dim=16, kernel_initializer=keras_cls(seed=1))
    ref.build((None, 10, 32), (None, 10, 32))
    keras_axes = list(seen)
    assert len(keras_axes) == 4  # query, key, value, output
    seen.clear()
    for init in (wik.classes()[name](seed=1), getattr(wi, name)(seed=1)):  # adapter, and core (converted)
        mha = keras.layers.MultiHeadAttention(num_heads=8, key_dim=16, kernel_initializer=init)
        mha.build((None, 10, 32), (None, 10, 32))
        subs = [mha.query_dense, mha.key_dense, mha.value_dense, mha.output_dense]
        assert seen == keras_axes  # rebuilt by EinsumDense with the same axes as Keras' class
        seen.clear()
        for sub, (ia, oa) in zip(subs, keras_axes):
            kernel = _np(sub.kernel)
            expect = getattr(wi, name)(seed=1, input_axes=ia, output_axes=oa)(kernel.shape)
            assert np.array_equal(kernel, expect), sub.name
        # The query kernel (32, 8, 16) has fan_in 32 (not 32*8): std close to Keras' (5 standard errors).
        q, kq = _np(mha.query_dense.kernel), _np(ref.query_dense.kernel)
        rel_se = 1 / np.sqrt(2 * q.size)
        assert abs(q.std() / kq.std() - 1) < 5 * 2 * rel_se


def test_core_instances_in_layers_are_converted_no_silent_swap(tmp_path):
    layer = keras.layers.Dense(3, kernel_initializer=wi.HeNormal(seed=2))
    assert type(layer.kernel_initializer) is wik.HeNormal
    model = keras.Sequential([keras.Input((4,)), layer])
    clone = keras.models.clone_model(model)
    assert type(clone.layers[0].kernel_initializer) is wik.HeNormal
    assert np.array_equal(_np(clone.layers[0].kernel), wi.HeNormal(seed=2)((4, 3)))
    path = tmp_path / "m.keras"
    model.save(path)
    again = keras.models.load_model(path)
    assert type(again.layers[0].kernel_initializer) is wik.HeNormal


def test_keras_file_load_without_importing_weightinit_keras(tmp_path):
    """A process that never imports weightinit.keras cannot resolve "weightinit>X" (Keras' registry is per process).

    Documented in docs/compatibility.md: the adapters' configs name no module (as Keras writes for
    ``__main__`` classes), so ``load_model`` refuses with Keras' "register it" TypeError, for a
    weightinit-only class and for one whose name Keras also has (which used to load silently as
    Keras' own ``HeNormal``).  With the import, the same files load weightinit's classes.
    """
    paths = []
    for name, init in (("only", wik.TruncNormal(seed=1)), ("shared", wik.HeNormal(seed=2))):
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, kernel_initializer=init)])
        assert model.get_config()["layers"][1]["config"]["kernel_initializer"]["module"] is None
        paths.append(str(tmp_path / f"{name}.keras"))
        model.save(paths[-1])
    code = (
        "import sys, keras\n"
        "for path in sys.argv[1:]:\n"
        "    try:\n"
        "        keras.models.load_model(path)\n"
        "        print('loaded')\n"
        "    except TypeError as exc:\n"
        "        print('refused' if 'register' in str(exc) else 'other-error')\n"
        "assert 'weightinit' not in sys.modules\n"
        "import weightinit.keras as wik\n"
        "print(*(type(keras.models.load_model(p).layers[0].kernel_initializer).__module__ for p in sys.argv[1:]))\n"
    )
    env = dict(os.environ, PYTHONPATH=SRC, TF_CPP_MIN_LOG_LEVEL="3")
    r = subprocess.run([sys.executable, "-c", code, *paths], capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.split() == ["refused", "refused", "weightinit.keras", "weightinit.keras"], r.stdout


def test_string_names_opt_in():
    before = keras.layers.Dense(2, kernel_initializer="he_normal")
    assert type(before.kernel_initializer) is keras.initializers.HeNormal
    with wik.use_for_keras_names():
        assert wik.use_for_keras_names.active()
        layer = keras.layers.Dense(2, kernel_initializer="he_normal", bias_initializer="zeros")
        conv = keras.layers.Conv2D(2, 3)  # Keras' default "glorot_uniform"
        kept = keras.layers.Dense(2, kernel_initializer=keras.initializers.Ones())
    assert not wik.use_for_keras_names.active()
    assert type(layer.kernel_initializer) is wik.HeNormal and type(layer.bias_initializer) is wik.Zeros
    assert type(conv.kernel_initializer) is wik.GlorotUniform
    assert type(kept.kernel_initializer) is keras.initializers.Ones  # objects are left alone
    # Configs round-trip outside the scope.
    cfg = layer.get_config()
    again = keras.layers.Dense.from_config(json.loads(json.dumps(cfg)))
    assert type(again.kernel_initializer) is wik.HeNormal and again.get_config() == cfg
    assert type(keras.layers.Dense(2, kernel_initializer="he_normal").kernel_initializer) is keras.initializers.HeNormal
    wik.use_for_keras_names.enable()
    try:
        assert type(keras.initializers.get("orthogonal")) is wik.Orthogonal
        assert type(keras.layers.Dense(2).kernel_initializer) is wik.GlorotUniform
    finally:
        wik.use_for_keras_names.disable()
    assert type(keras.initializers.get("orthogonal")) is keras.initializers.Orthogonal


def test_registered_name_in_layers():
    layer = keras.layers.Dense(3, kernel_initializer="weightinit>GlorotUniform")
    layer.build((None, 4))
    assert type(layer.kernel_initializer) is wik.GlorotUniform
