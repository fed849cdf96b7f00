"""get / serialize / deserialize / register: every Keras identifier, dicts, classes, callables, arrays."""

from __future__ import annotations

import json

import numpy as np
import pytest

import weightinit as wi
from weightinit.registry.api import builtin_names

# keras.initializers.ALL_OBJECTS_DICT keys (Keras 3.15.1), from /work/shared/reference/keras.md.
KERAS_IDENTIFIERS = {
    "Constant": "Constant", "GlorotNormal": "GlorotNormal", "GlorotUniform": "GlorotUniform",
    "HeNormal": "HeNormal", "HeUniform": "HeUniform", "Identity": "Identity", "IdentityInitializer": "Identity",
    "LecunNormal": "LecunNormal", "LecunUniform": "LecunUniform", "Ones": "Ones", "Orthogonal": "Orthogonal",
    "OrthogonalInitializer": "Orthogonal", "RandomNormal": "RandomNormal", "RandomUniform": "RandomUniform",
    "STFT": "STFT", "STFTInitializer": "STFT", "TruncatedNormal": "TruncatedNormal",
    "VarianceScaling": "VarianceScaling", "Zeros": "Zeros", "constant": "Constant",
    "glorot_normal": "GlorotNormal", "glorot_uniform": "GlorotUniform", "he_normal": "HeNormal",
    "he_uniform": "HeUniform", "identity": "Identity", "lecun_normal": "LecunNormal",
    "lecun_uniform": "LecunUniform", "normal": "RandomNormal", "one": "Ones", "ones": "Ones",
    "orthogonal": "Orthogonal", "random_normal": "RandomNormal", "random_uniform": "RandomUniform",
    "stft": "STFT", "truncated_normal": "TruncatedNormal", "uniform": "RandomUniform",
    "variance_scaling": "VarianceScaling", "zero": "Zeros", "zeros": "Zeros",
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(KERAS_IDENTIFIERS))
def test_get_accepts_every_keras_identifier(name):
    init = wi.get(name)
    assert type(init).__name__ == KERAS_IDENTIFIERS[name]
    assert type(wi.deserialize(name)).__name__ == KERAS_IDENTIFIERS[name]
    assert type(wi.get({"class_name": name, "config": {}})).__name__ == KERAS_IDENTIFIERS[name]
    assert name in builtin_names()
    if name[0].islower() and hasattr(wi, name):
        assert getattr(wi, name) is type(init)  # snake_case exports are the same class objects


def test_get_defaults_follow_keras():
    n, u = wi.get("normal"), wi.get("uniform")
    assert (n.mean, n.stddev) == (0.0, 0.05)
    assert (u.minval, u.maxval) == (-0.05, 0.05)
    assert wi.get("truncated_normal").stddev == 0.05
    c = wi.get("constant")  # Keras raises KeyError: 'value'
    assert c.get_config() == {"value": 0.0}
    np.testing.assert_array_equal(c((2,)), np.zeros(2, np.float32))


def test_get_passthrough_and_classes():
    assert wi.get(None) is None
    inst = wi.HeNormal(seed=1)
    assert wi.get(inst) is inst
    assert isinstance(wi.get(wi.GlorotUniform), wi.GlorotUniform)

    def fn(shape, dtype=None):
        return np.ones(shape, dtype)

    assert wi.get(fn) is fn


def test_get_array_identifier_is_shape_checked():
    arr = np.arange(6.0).reshape(2, 3)
    init = wi.get(arr)
    np.testing.assert_array_equal(init((2, 3), "float64"), arr)
    assert init((2, 3), "float32").dtype == np.float32
    np.testing.assert_array_equal(init((2, 3), "float64", region=(slice(1, 2),)), arr[1:2])
    with pytest.raises(wi.InitializerValueError, match=r"Expected `shape` to be \(2, 3\).*Received shape=\(3, 2\)"):
        init((3, 2))


@pytest.mark.parametrize(
    ("name", "suggestion"),
    [
        ("glorot_unifrom", "glorot_uniform"),
        ("GLOROT_UNIFORM", "glorot_uniform"),
        ("HeNormla", "HeNormal"),
        ("typo", None),
    ],
)
def test_unknown_name_lists_closest(name, suggestion):
    with pytest.raises(wi.InitializerValueError, match=rf"Unknown initializer: '{name}'") as e:
        wi.get(name)
    if suggestion:
        assert "Did you mean" in str(e.value) and repr(suggestion).lower() in str(e.value).lower()
    with pytest.raises(ValueError):
        wi.get({"class_name": name, "config": {}})


def test_uninterpretable_identifiers():
    with pytest.raises(wi.InitializerTypeError, match=r"Could not interpret initializer identifier: 5"):
        wi.get(5)
    with pytest.raises(wi.InitializerTypeError, match=r"`config` must be a name or a dict"):
        wi.deserialize({"config": {}})


def test_serialize_format():
    assert wi.serialize(wi.HeNormal(seed=3)) == {
        "module": "weightinit",
        "class_name": "HeNormal",
        "config": {"seed": 3, "input_axes": None, "output_axes": None},
        "registered_name": None,
    }
    assert wi.serialize(None) is None
    with pytest.raises(wi.InitializerTypeError, match=r"`initializer` must be a weightinit.Initializer"):
        wi.serialize(3)


def test_custom_class_with_custom_objects():
    class Halves(wi.Initializer):
        def __init__(self, value=0.5):
            self.value = value

        def __call__(self, shape, dtype=None):
            return np.full(shape, self.value, dtype=wi.standardize_dtype(dtype))

        def get_config(self):
            return {"value": self.value}

    cfg = json.loads(json.dumps(wi.serialize(Halves(0.25))))
    assert cfg["class_name"] == "Halves" and cfg["registered_name"] == "Halves"
    with pytest.raises(wi.InitializerValueError, match=r"Unknown initializer: 'Halves'"):
        wi.deserialize(cfg)
    rebuilt = wi.deserialize(cfg, custom_objects={"Halves": Halves})
    assert isinstance(rebuilt, Halves) and rebuilt.value == 0.25
    assert isinstance(wi.get("Halves", custom_objects={"Halves": Halves}), Halves)


def test_register_decorator_makes_classes_and_functions_loadable():
    @wi.register(package="test_core_registry")
    class Threes(wi.Initializer):
        def __call__(self, shape, dtype=None):
            return np.full(shape, 3.0, dtype=wi.standardize_dtype(dtype))

    cfg = json.loads(json.dumps(wi.serialize(Threes())))
    assert cfg["registered_name"] == "test_core_registry>Threes"
    assert isinstance(wi.deserialize(cfg), Threes)
    assert isinstance(wi.get("test_core_registry>Threes"), Threes)
    assert isinstance(wi.get("Threes"), Threes)  # unique short name

    @wi.register(package="test_core_registry", name="sevens")
    def sevens(shape, dtype=None):
        return np.full(shape, 7.0)

    fcfg = wi.serialize(sevens)
    assert fcfg == {
        "module": "builtins",
        "class_name": "function",
        "config": "test_core_registry>sevens",
        "registered_name": "function",
    }
    assert wi.deserialize(fcfg) is sevens
    with pytest.raises(wi.InitializerValueError, match=r"already registered"):
        wi.register(package="test_core_registry", name="sevens")(lambda shape, dtype=None: None)
    with pytest.raises(wi.InitializerValueError, match=r"`package` must be a str without '>'"):
        wi.register(package="a>b")


def test_plain_function_serialization_needs_custom_objects():
    def myinit(shape, dtype=None):
        return np.zeros(shape)

    cfg = wi.serialize(myinit)
    assert cfg == {"module": "builtins", "class_name": "function", "config": "myinit", "registered_name": "function"}
    assert wi.deserialize(cfg, custom_objects={"myinit": myinit}) is myinit
    with pytest.raises(wi.InitializerValueError, match=r"Unknown initializer: 'myinit'"):
        wi.deserialize(cfg)


def test_base_initializer_contract():
    with pytest.raises(NotImplementedError, match=r"must implement the `__call__\(\)` method"):
        wi.Initializer()((2,))
    assert wi.Initializer().get_config() == {}
