"""Names that explain themselves: the `layout` argument, the two TruncatedNormals, one name per object in __all__."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import weightinit as wi


def test_core_call_refuses_layout_with_the_alternative():
    init = wi.HeNormal(seed=0)
    with pytest.raises(wi.InitializerTypeError, match=r"`layout` is not accepted .* weightinit\.keras\.HeNormal"):
        init((4, 4), "float32", layout="a layout")
    with pytest.raises(wi.InitializerTypeError, match=r"`sharding` is not an argument of Zeros\.__call__"):
        wi.Zeros()((2,), sharding=None)
    # Keras passes `layout` only to initializers whose signature names it; the core's does not, so Keras
    # places the NumPy values itself (tests/keras/test_keras_adapter.py::test_layout_sharded_jax_subprocess).
    assert "layout" not in inspect.signature(init).parameters
    assert np.array_equal(init((4, 4), "float32", region=(slice(0, 2),)), init((4, 4), "float32")[:2])


def test_truncated_normal_distribution_and_initializer_have_distinct_names():
    dist = wi.TruncatedNormalDistribution(0.0, 1.0, -1.0, 1.0)
    assert type(dist).__name__ == "TruncatedNormalDistribution"
    assert repr(dist).startswith("TruncatedNormalDistribution(")
    assert wi.TruncatedNormal is not wi.TruncatedNormalDistribution
    assert wi.TruncatedNormal.__module__ == "weightinit.initializers.random_values"
    with pytest.raises(wi.InitializerValueError, match="TruncatedNormalDistribution"):
        wi.sample(dist, wi.Stream(0), (3,), "int32")
    from weightinit.random import distributions

    assert "TruncatedNormalDistribution" in distributions.__all__ and "TruncatedNormal" not in distributions.__all__


def test_all_lists_each_object_once():
    objs = {}
    for name in wi.__all__:
        obj = getattr(wi, name)
        if isinstance(obj, (str, int, float)):
            continue
        assert id(obj) not in objs, f"{name} and {objs[id(obj)]} are the same object in weightinit.__all__"
        objs[id(obj)] = name
    # the snake_case aliases are still there, and get() resolves them
    for alias, cls in (("he_normal", wi.HeNormal), ("trunc_normal_tf", wi.TimmTruncNormalTF), ("zero", wi.Zeros)):
        assert getattr(wi, alias) is cls and alias not in wi.__all__
        assert type(wi.get(alias)) is cls
