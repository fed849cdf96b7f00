"""Parity with an installed Keras 3: identifiers, get_config keys/values, and loading Keras' serialized dicts."""

from __future__ import annotations

import json
import os

os.environ.setdefault("KERAS_BACKEND", "numpy")

import numpy as np
import pytest

keras = pytest.importorskip("keras")
if keras.backend.backend() != "numpy":  # pragma: no cover - another test imported keras first
    pytest.skip("these tests need KERAS_BACKEND=numpy", allow_module_level=True)

import weightinit as wi  # noqa: E402

ki = keras.initializers

# (class name, constructor kwargs valid in both libraries)
CASES = [
    ("Zeros", {}),
    ("Ones", {}),
    ("Constant", {"value": 6.0}),
    ("Constant", {"value": 3}),
    ("RandomNormal", {"mean": 0.5, "stddev": 2.0, "seed": 3}),
    ("RandomNormal", {}),
    ("RandomUniform", {"minval": -1.0, "maxval": 2.0, "seed": 0}),
    ("TruncatedNormal", {"mean": 0.0, "stddev": 0.1, "seed": 1234}),
    ("VarianceScaling", {"scale": 2, "mode": "fan_avg", "distribution": "normal", "seed": 5}),
    ("VarianceScaling", {"scale": 0.5, "mode": "fan_out", "distribution": "Uniform"}),
    ("VarianceScaling", {"distribution": "untruncated_normal", "input_axes": [0], "output_axes": [1, 2], "seed": 9}),
    ("GlorotUniform", {"seed": 1}),
    ("GlorotNormal", {}),
    ("LecunUniform", {"seed": 2, "input_axes": [0, 1], "output_axes": [2]}),
    ("LecunNormal", {"seed": 3}),
    ("HeUniform", {"seed": 4}),
    ("HeNormal", {"seed": 2**40}),
    ("Orthogonal", {"gain": 2.0, "seed": 7}),
    ("Orthogonal", {}),
    ("STFT", {}),
    ("STFT", {"side": "imag", "window": "hamming", "scaling": "spectrum", "periodic": True}),
    ("STFT", {"window": None, "scaling": None}),
]
IDS = [f"{n}-{i}" for i, (n, _) in enumerate(CASES)]


def _json(x):
    return json.loads(json.dumps(x))


@pytest.mark.parametrize(("name", "kwargs"), CASES, ids=IDS)
def test_get_config_same_keys_and_values(name, kwargs):
    k = getattr(ki, name)(**kwargs).get_config()
    w = getattr(wi, name)(**kwargs).get_config()
    assert _json(w) == _json(k)


@pytest.mark.parametrize(("name", "kwargs"), CASES, ids=IDS)
def test_keras_serialized_dict_deserializes(name, kwargs):
    kinit = getattr(ki, name)(**kwargs)
    cfg = _json(ki.serialize(kinit))
    winit = wi.deserialize(cfg)
    assert type(winit).__name__ == name
    assert _json(winit.get_config()) == _json(kinit.get_config())
    assert type(wi.get(cfg)).__name__ == name


def test_identity_keeps_gain_unlike_keras():
    assert ki.Identity(gain=2.0).get_config() == {}
    assert wi.Identity(gain=2.0).get_config() == {"gain": 2.0}
    cfg = _json(ki.serialize(ki.Identity(gain=2.0)))
    np.testing.assert_array_equal(wi.deserialize(cfg)((2, 2)), np.eye(2, dtype=np.float32))  # gain lost in Keras' dict


def test_constant_array_value_round_trips_through_keras_format():
    arr = np.arange(6, dtype=np.float32).reshape(2, 3)
    cfg = _json(ki.serialize(ki.Constant(arr)))
    w = wi.deserialize(cfg)
    np.testing.assert_array_equal(w((2, 3)), arr)
    assert _json(wi.Constant(arr).get_config()) == cfg["config"]


def test_keras_seed_generator_config_loads_as_generator():
    cfg = _json(ki.serialize(ki.RandomNormal(seed=keras.random.SeedGenerator(3))))
    w = wi.deserialize(cfg)
    assert isinstance(w.seed, wi.SeedGenerator) and w.seed.seed == 3
    a, b = w((4,)), w((4,))
    assert not np.array_equal(a, b)


def test_every_keras_identifier_resolves_to_the_same_class_name():
    from keras.src.initializers import ALL_OBJECTS_DICT

    for key, cls in ALL_OBJECTS_DICT.items():
        if key in ("Initializer", "initializer"):
            continue
        assert type(wi.get(key)).__name__ == cls.__name__, key


def test_keras_errors_are_errors_here_too():
    for kw in ({"scale": 0}, {"mode": "bad"}, {"distribution": "bad"}):
        with pytest.raises(ValueError):
            ki.VarianceScaling(**kw)
        with pytest.raises(ValueError):
            wi.VarianceScaling(**kw)
    with pytest.raises(ValueError):
        ki.Orthogonal(seed=0)((5,))
    with pytest.raises(ValueError):
        wi.Orthogonal(seed=0)((5,))


def test_same_statistics_as_keras():
    # Different random streams, same distribution: compare both samples with a two-sample KS test.
    stats = pytest.importorskip("scipy.stats")
    for name in ("HeNormal", "GlorotUniform", "TruncatedNormal", "LecunNormal"):
        k = np.asarray(getattr(ki, name)(seed=1)((300, 200))).ravel()
        w = getattr(wi, name)(seed=1)((300, 200)).ravel()
        assert stats.ks_2samp(k, w).pvalue > 1e-3, name
