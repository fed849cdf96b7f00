"""Property-based fuzz of ``weightinit.keras``: adapter constructors, calls, ``get``/``serialize``/``deserialize``.

In process, on the Keras backend this test process has (as tests/keras/test_keras_adapter.py does; each
backend of Keras' own suite runs in its own process there).  The adapters compute with the NumPy core,
so what is checked here (argument validation) does not depend on the backend.

Every input ends in a valid result (finite values of the requested shape) or an error of weightinit's
family naming the argument.  The Keras errors weightinit keeps on purpose are listed in ``KERAS_OWN``:
``get``/``deserialize`` of configs that are not weightinit's or Keras' built-ins are Keras' to resolve
(weightinit hands them to ``keras.saving.deserialize_keras_object``, as ``keras.initializers.get``
would), so Keras' own ``ValueError``/``TypeError`` for an unknown registered object is its contract.
"""

from __future__ import annotations

import importlib.util
import inspect
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

keras = pytest.importorskip("keras")

import weightinit as wi  # noqa: E402
import weightinit.keras as wik  # noqa: E402


def _load_messages():
    """tests/validation/_messages.py (the house-form checker shared by the fuzz suites; tests are not a package)."""
    spec = importlib.util.spec_from_file_location("_validation_messages", Path(__file__).with_name("_messages.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


house_form = _load_messages().house_form

SETTINGS = settings(
    derandomize=True, max_examples=100, deadline=None, suppress_health_check=list(HealthCheck), database=None
)

#: Keras' own error texts for identifiers weightinit leaves to Keras (configs of other packages)
KERAS_OWN = ("Could not locate", "Could not interpret", "Unknown", "could not be interpreted")

values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.sampled_from(
        [
            "0.5",
            "",
            "fan_in",
            "uniform",
            "\ud800",
            b"1",
            True,
            None,
            1 + 2j,
            np.float32(0.5),
            np.array(2.0),
            np.array([1.0, 2.0]),
            [1.0],
            {"a": 1},
            (0, 1),
            -1,
            0,
            2**64,
            object(),
        ]
    ),
)
shapes = st.one_of(
    st.tuples(st.integers(0, 5), st.integers(0, 5)),
    st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(1, 3), st.integers(1, 3)),
    st.sampled_from(
        [(4,), (), (3.7, 2), ("3", 2), (-1, 3), {6, 4}, "34", None, (True, 2), (2**40, 2**40), (1,) * 65, [2, 2]]
    ),
)
dtypes = st.sampled_from(
    ["float32", "float16", "bfloat16", "float64", "int32", "int8", "bool", "uint8", "nope", 5, None]
)
CLASSES = sorted(wik.classes())


def _names_argument(e: Exception) -> bool:
    return house_form(e)


def _expect_typed(e: BaseException, what) -> None:
    assert isinstance(e, wi.WeightinitError), f"{what}: {type(e).__name__}: {e}"
    assert _names_argument(e), f"{what}: {e}"


@SETTINGS
@given(name=st.sampled_from(CLASSES), data=st.data(), shape=shapes, dtype=dtypes)
def test_adapter_constructors_and_calls(name, data, shape, dtype):
    cls = wik.classes()[name]
    params = [p for p in inspect.signature(cls).parameters.values() if p.kind is p.POSITIONAL_OR_KEYWORD]
    chosen = data.draw(st.lists(st.sampled_from(params), unique=True, max_size=3)) if params else []
    kwargs = {p.name: data.draw(values, label=p.name) for p in chosen}
    if "seed" in {p.name for p in params} and "seed" not in kwargs:
        kwargs["seed"] = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            init = cls(**kwargs)
        except Exception as e:
            _expect_typed(e, f"{name}({kwargs!r})")
            event("refused at construction")
            return
        try:
            w = init(shape, dtype=dtype)
        except Exception as e:
            _expect_typed(e, f"{name}({kwargs!r})({shape!r}, {dtype!r})")
            event("refused at the call")
            return
        event("values")
        arr = keras.ops.convert_to_numpy(w)
        assert arr.shape == tuple(shape), (name, kwargs, shape, arr.shape)
        if arr.dtype.kind == "f" or arr.dtype.name == "bfloat16":
            assert np.isfinite(arr.astype(np.float64)).all(), (name, kwargs, shape, dtype)
        again = wik.deserialize(wik.serialize(init))  # the config round-trips through Keras' format
        assert type(again) is type(init) and again.get_config() == init.get_config()


identifiers = st.one_of(
    st.sampled_from(
        [
            "he_normal",
            "HeNormal",
            "weightinit>HeNormal",
            "weightinit>Nope",
            "nope",
            "",
            "\ud800",
            "weightinit>",
            ">",
            "my_pkg>MyInit",
            "Initializer",
            wi.HeNormal(seed=0),
            wi.HeNormal,
            wik.HeNormal,
            keras.initializers.HeNormal(seed=0),
            object(),
            1,
            2.5,
            True,
            [1, 2],
            b"he_normal",
        ]
    ),
    st.fixed_dictionaries(
        {
            "class_name": st.one_of(st.sampled_from(["RandomNormal", "HeNormal", "Constant", "Nope", ""]), values),
            "config": st.one_of(
                st.dictionaries(
                    st.sampled_from(["mean", "stddev", "seed", "value", "scale", "bogus"]), values, max_size=3
                ),
                values,
            ),
        },
        optional={
            "registered_name": st.one_of(st.sampled_from(["weightinit>HeNormal", "weightinit>Nope", "x>y"]), values),
            "module": st.one_of(st.sampled_from(["keras.initializers", "weightinit", "os", "builtins"]), values),
        },
    ),
    values,
)


@SETTINGS
@given(identifier=identifiers)
def test_get_deserialize_serialize(identifier):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for fn in (wik.get, wik.deserialize, wik.serialize):
            try:
                out = fn(identifier)
            except Exception as e:
                if not isinstance(e, wi.WeightinitError) and any(k in str(e) for k in KERAS_OWN):
                    assert isinstance(e, (ValueError, TypeError)), repr(e)  # Keras' own contract, see KERAS_OWN
                    continue
                _expect_typed(e, f"{fn.__name__}({identifier!r})")
                continue
            if fn is not wik.serialize and isinstance(out, wik.WeightinitInitializer):
                arr = keras.ops.convert_to_numpy(out((2, 3)))
                assert arr.shape == (2, 3)
