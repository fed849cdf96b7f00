"""Seed rules: int, None, SeedGenerator, Stream, set_seed, and the unseeded-reuse warning."""

from __future__ import annotations

import json

import numpy as np
import pytest

import weightinit as wi

RANDOM_CLASSES = [
    wi.RandomNormal,
    wi.RandomUniform,
    wi.TruncatedNormal,
    wi.VarianceScaling,
    wi.GlorotUniform,
    wi.GlorotNormal,
    wi.LecunUniform,
    wi.LecunNormal,
    wi.HeUniform,
    wi.HeNormal,
    wi.Orthogonal,
]
SHAPE = (6, 4)


@pytest.fixture(autouse=True)
def _reset_global_seed():
    wi.set_seed(None)
    yield
    wi.set_seed(None)


@pytest.mark.parametrize("cls", RANDOM_CLASSES)
def test_int_seed_same_values_every_call_and_instance(cls):
    a = cls(seed=1337)
    first = a(SHAPE)
    np.testing.assert_array_equal(a(SHAPE), first)
    np.testing.assert_array_equal(cls(seed=1337)(SHAPE), first)
    np.testing.assert_array_equal(a.clone()(SHAPE), first)
    np.testing.assert_array_equal(cls(seed=np.uint32(1337))(SHAPE), first)
    assert not np.array_equal(cls(seed=1338)(SHAPE), first)


@pytest.mark.parametrize("cls", RANDOM_CLASSES)
def test_none_seed_fixed_at_construction(cls):
    a = cls()
    first = a(SHAPE)
    np.testing.assert_array_equal(a(SHAPE), first)  # one instance repeats (no warning for the same weight)
    assert not np.array_equal(cls()(SHAPE), first)  # two instances differ
    assert not np.array_equal(a.clone()(SHAPE), first)  # clone draws a new seed
    assert not np.array_equal(cls.from_config(a.get_config())(SHAPE), first)
    assert a.get_config()["seed"] is None


@pytest.mark.parametrize("cls", RANDOM_CLASSES)
def test_set_seed_makes_unseeded_reproducible(cls):
    wi.set_seed(42)
    a, b = cls()(SHAPE), cls()(SHAPE)
    wi.set_seed(42)
    np.testing.assert_array_equal(cls()(SHAPE), a)
    np.testing.assert_array_equal(cls()(SHAPE), b)
    assert not np.array_equal(a, b)
    wi.set_seed(43)
    assert not np.array_equal(cls()(SHAPE), a)


@pytest.mark.parametrize("cls", RANDOM_CLASSES)
def test_seed_generator_new_values_every_call(cls):
    init = cls(seed=wi.SeedGenerator(1337))
    calls = [init(SHAPE) for _ in range(3)]
    assert not np.array_equal(calls[0], calls[1])
    assert not np.array_equal(calls[1], calls[2])
    # Serialized with its initial seed: a rebuilt initializer restarts the sequence.
    cfg = json.loads(json.dumps(init.get_config()))
    assert cfg["seed"]["config"]["seed"] == 1337
    rebuilt = cls.from_config(cfg)
    np.testing.assert_array_equal(rebuilt(SHAPE), calls[0])
    np.testing.assert_array_equal(rebuilt(SHAPE), calls[1])
    # Call k uses Stream(s).fold_in(k), never int seed s + k.
    np.testing.assert_array_equal(calls[2], cls(seed=wi.Stream(1337).fold_in(2))(SHAPE))
    for k in range(3):
        assert not np.array_equal(calls[k], cls(seed=1337 + k)(SHAPE))


def test_seed_generator_shared_between_instances_advances():
    g = wi.SeedGenerator(3)
    a = wi.HeNormal(seed=g)(SHAPE)
    b = wi.HeNormal(seed=g)(SHAPE)
    assert not np.array_equal(a, b)
    np.testing.assert_array_equal(a, wi.HeNormal(seed=wi.Stream(3).fold_in(0))(SHAPE))
    np.testing.assert_array_equal(b, wi.HeNormal(seed=wi.Stream(3).fold_in(1))(SHAPE))


def test_unseeded_seed_generator_draws_its_seed():
    wi.set_seed(5)
    g1 = wi.SeedGenerator()
    wi.set_seed(5)
    g2 = wi.SeedGenerator()
    assert g1.seed == g2.seed
    assert wi.SeedGenerator.from_config(g1.get_config()).seed == g1.seed


def test_keras_serialized_seed_generator_is_accepted():
    cfg = {
        "seed": {
            "module": "keras.random",
            "class_name": "SeedGenerator",
            "config": {"seed": 3, "name": "seed_generator"},
            "registered_name": None,
        },
        "mean": 0.0,
        "stddev": 0.05,
    }
    init = wi.RandomNormal.from_config(cfg)
    assert isinstance(init.seed, wi.SeedGenerator) and init.seed.seed == 3 and init.seed.name == "seed_generator"


def test_stream_seed_and_stream_argument():
    s = wi.Stream(9).child("layer/kernel")
    a = wi.RandomNormal(seed=s)(SHAPE)
    np.testing.assert_array_equal(a, wi.sample(wi.Normal(0.0, 0.05), s, SHAPE, "float32"))
    # The call's stream= overrides the instance seed, for every kind of seed.
    for seed in (1, None, wi.SeedGenerator(2)):
        np.testing.assert_array_equal(wi.RandomNormal(seed=seed)(SHAPE, stream=s), a)
    with pytest.raises(wi.InitializerTypeError, match=r"`stream` must be a weightinit.Stream"):
        wi.RandomNormal(seed=1)(SHAPE, stream=3)


def test_int_seed_is_the_stream_of_that_seed():
    np.testing.assert_array_equal(
        wi.RandomUniform(-1.0, 1.0, seed=77)((50,)), wi.sample(wi.Uniform(-1.0, 1.0), wi.Stream(77), (50,), "float32")
    )


@pytest.mark.parametrize("cls", RANDOM_CLASSES)
def test_unseeded_reuse_warns_once(cls):
    init = cls()
    init((4, 4))
    init((4, 4))  # the same weight again: no warning (the filterwarnings=error setting would raise)
    with pytest.warns(wi.UnseededReuseWarning, match=r"is unseeded and was called for a second, different weight"):
        init((8, 4))
    init((2, 2))  # only once
    init((4, 4), "float64")


def test_seeded_and_generator_instances_never_warn():
    for seed in (0, wi.SeedGenerator(0), wi.Stream(0)):
        init = wi.HeNormal(seed=seed)
        init((4, 4))
        init((8, 8))


def test_unseeded_dtype_change_is_a_different_weight():
    init = wi.RandomNormal()
    init((4, 4), "float32")
    with pytest.warns(wi.UnseededReuseWarning):
        init((4, 4), "float64")


def test_random_functions_seed_rules():
    a = wi.random.normal((5,), seed=1)
    np.testing.assert_array_equal(wi.random.normal((5,), seed=1), a)
    g = wi.SeedGenerator(1)
    x, y = wi.random.uniform((5,), seed=g), wi.random.uniform((5,), seed=g)
    assert not np.array_equal(x, y)
    assert not np.array_equal(wi.random.normal((5,)), wi.random.normal((5,)))
    t = wi.random.truncated_normal((10_000,), mean=1.0, stddev=0.5, seed=3, dtype="float64")
    assert t.min() >= 0.0 and t.max() <= 2.0
    np.testing.assert_array_equal(
        wi.random.normal((6,), seed=1, region=(slice(2, 5),)), wi.random.normal((6,), seed=1)[2:5]
    )


def test_example_random_normal_from_the_seed_documents():
    # The Keras docs' custom initializer, with weightinit.random.normal in place of keras.random.normal.
    class ExampleRandomNormal(wi.Initializer):
        def __init__(self, mean, stddev):
            self.mean = mean
            self.stddev = stddev

        def __call__(self, shape, dtype=None):
            return wi.random.normal(shape, mean=self.mean, stddev=self.stddev, dtype=dtype, seed=7)

        def get_config(self):  # To support serialization
            return {"mean": self.mean, "stddev": self.stddev}

    init = ExampleRandomNormal(1.0, 0.5)
    w = init((200, 100), "float64")
    assert w.shape == (200, 100) and w.dtype == np.float64
    assert abs(w.mean() - 1.0) < 4 * 0.5 / np.sqrt(w.size)
    clone = init.clone()
    assert type(clone) is ExampleRandomNormal and clone.get_config() == {"mean": 1.0, "stddev": 0.5}
    np.testing.assert_array_equal(clone((3, 3)), init((3, 3)))
    rebuilt = wi.deserialize(wi.serialize(init), custom_objects={"ExampleRandomNormal": ExampleRandomNormal})
    assert type(rebuilt) is ExampleRandomNormal and rebuilt.mean == 1.0
    assert wi.generate(init, (4, 4), "float32", region=(slice(1, 3),)).shape == (2, 4)
