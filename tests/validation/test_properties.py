"""Property-based fuzz of the public surfaces: every input gives a valid result or a typed weightinit error.

Derandomized (the same examples on every run) and bounded: a few hundred examples in all.
"""

from __future__ import annotations

import importlib.util
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import weightinit as wi


def _load_messages():
    """tests/validation/_messages.py (the house-form checker shared by the fuzz suites; tests are not a package)."""
    spec = importlib.util.spec_from_file_location("_validation_messages", Path(__file__).with_name("_messages.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


house_form = _load_messages().house_form

SETTINGS = settings(
    derandomize=True, max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None
)

numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.sampled_from(["0.5", b"1", True, None, 1 + 2j, np.float32(0.5), np.array(2.0), [1.0]]),
)
dims = st.one_of(st.integers(-2, 6), st.sampled_from([2**33, 2**62, 3.5, "3", True, np.int64(2)]))
shapes = st.one_of(
    st.tuples(dims, dims),
    st.lists(st.integers(0, 4), max_size=3),
    st.sampled_from([{6, 4}, {1: 2}, "34", None, (1,) * 65, (2**40,), (2**31, 2**31)]),
)
dtypes = st.sampled_from(
    [
        "float16",
        "bfloat16",
        "float32",
        "float64",
        "int8",
        "int32",
        "bool",
        "complex64",
        "complex256",
        "U3",
        "nope",
        None,
        5,
    ]
)

CONSTRUCTORS = {
    "RandomNormal": lambda a, b: wi.RandomNormal(a, b, seed=0),
    "RandomUniform": lambda a, b: wi.RandomUniform(a, b, seed=0),
    "TruncatedNormal": lambda a, b: wi.TruncatedNormal(a, b, seed=0),
    "TruncNormal": lambda a, b: wi.TruncNormal(0.0, 1.0, a, b, correct_variance=True, seed=0),
    "TorchTruncNormal": lambda a, b: wi.TorchTruncNormal(0.0, 1.0, a, b, seed=0),
    "VarianceScaling": lambda a, b: wi.VarianceScaling(a, seed=0),
    "Constant": lambda a, b: wi.Constant(a),
    "Identity": lambda a, b: wi.Identity(a),
    "IRNN": lambda a, b: wi.IRNN(a),
    "Orthogonal": lambda a, b: wi.Orthogonal(a, seed=0),
    "Sparse": lambda a, b: wi.Sparse(a, b, seed=0),
}


def _names_argument(e: Exception) -> bool:
    """The house format: names the argument and the value received (``received name=value``)."""
    return house_form(e)


def _check_result(w, dtype_ok=True):
    arr = np.asarray(w)
    if arr.dtype.kind == "f" or arr.dtype.name == "bfloat16":
        assert np.isfinite(arr.astype(np.float64)).all()


@pytest.mark.parametrize("name", sorted(CONSTRUCTORS))
@SETTINGS
@given(a=numbers, b=numbers, shape=shapes, dtype=dtypes)
def test_core_constructors_and_calls(name, a, b, shape, dtype):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            init = CONSTRUCTORS[name](a, b)
        except wi.WeightinitError as e:
            assert _names_argument(e), str(e)
            return
        try:
            w = init(shape, dtype)
        except wi.WeightinitError as e:
            assert _names_argument(e), str(e)
            return
        _check_result(w)
        # the config round-trips
        again = wi.deserialize(wi.serialize(init))
        assert type(again) is type(init)


configs = st.one_of(
    st.dictionaries(st.one_of(st.text(max_size=3), st.integers()), numbers, max_size=3),
    numbers,
    st.sampled_from([{"seed": {"a": 1}}, {"seed": -1}, {"seed": 2**64}, {"mean": "0"}]),
)


@SETTINGS
@given(
    class_name=st.one_of(
        st.sampled_from(["RandomNormal", "HeNormal", "Constant", "Orthogonal", "nope", "\ud800"]),
        st.integers(),
        st.none(),
    ),
    config=configs,
)
def test_deserialize_and_get(class_name, config):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for fn in (wi.deserialize, wi.get):
            try:
                init = fn({"class_name": class_name, "config": config})
            except wi.WeightinitError as e:
                assert _names_argument(e), str(e)
                continue
            try:
                _check_result(init((2, 2)))
            except wi.WeightinitError:
                pass


@settings(SETTINGS, max_examples=30)
@given(
    a=numbers,
    b=numbers,
    which=st.sampled_from(
        ["uniform_", "normal_", "trunc_normal_", "constant_", "orthogonal_", "sparse_", "xavier_normal_", "dirac_"]
    ),
    dtype=st.sampled_from(["float16", "float32", "int8"]),
)
def test_torch_dropins(a, b, which, dtype):
    torch = pytest.importorskip("torch")
    import weightinit.torch as wt

    t = torch.empty((4, 4, 3) if which == "dirac_" else (4, 4), dtype=getattr(torch, dtype))
    args = {
        "uniform_": lambda: wt.uniform_(t, a, b, seed=0),
        "normal_": lambda: wt.normal_(t, a, b, seed=0),
        "trunc_normal_": lambda: wt.trunc_normal_(t, 0.0, 1.0, a, b, seed=0),
        "constant_": lambda: wt.constant_(t, a),
        "orthogonal_": lambda: wt.orthogonal_(t, a, seed=0),
        "sparse_": lambda: wt.sparse_(t, a, b, seed=0),
        "xavier_normal_": lambda: wt.xavier_normal_(t, a, seed=0),
        "dirac_": lambda: wt.dirac_(t, a),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            out = args[which]()
        except wi.WeightinitError as e:
            assert _names_argument(e), str(e)
            return
    if out.is_floating_point():
        assert torch.isfinite(out).all()


jax_shapes = st.sampled_from([(2, 2), {6, 4}, (3.5, 2), ("3", 2), (-1, 3), (2**40, 2**40), (2**31, 2**31), (1,) * 65])
jax_dtypes = st.sampled_from(["float32", "float16", "int8", "complex256", "nope", None])


@settings(SETTINGS, max_examples=25)
@given(shape=jax_shapes, dtype=jax_dtypes, value=numbers)
def test_jax_builders(shape, dtype, value):
    jax = pytest.importorskip("jax")
    import weightinit.jax as wj

    key = jax.random.key(0)
    for make in (
        lambda: wj.normal(value, dtype),
        lambda: wj.uniform(value, dtype),
        lambda: wj.glorot_uniform(),
        lambda: wj.constant(value, dtype),
    ):
        try:
            init = make()
            w = init(key, shape)
        except wi.WeightinitError as e:
            assert _names_argument(e), str(e)
            continue
        except (TypeError, ValueError) as e:  # jnp.full's own dtype errors for a constant are JAX's contract
            assert "constant" in repr(make) or "dtype" in str(e).lower(), repr(e)
            continue
        arr = np.asarray(w)
        if arr.dtype.kind == "f":
            assert np.isfinite(arr).all() or not math.isfinite(float(np.asarray(value, dtype=float)))
