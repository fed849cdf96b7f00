"""Every reproducer of issue 16 (hostile input): a typed weightinit error naming the argument, or exact bits."""

from __future__ import annotations

import math

import numpy as np
import pytest

import weightinit as wi
from weightinit.common import validate

E = (wi.InitializerValueError, wi.InitializerTypeError)


def _raises(fn, arg: str):
    with pytest.raises(E) as info:
        fn()
    assert f"`{arg}`" in str(info.value), str(info.value)
    return str(info.value)


# --- text, bools and huge integers given as numbers -------------------------------------------------------------
@pytest.mark.parametrize(
    ("make", "arg"),
    [
        (lambda: wi.Sparse("0.5"), "sparsity"),
        (lambda: wi.ScaledResidual(std="0.5"), "std"),
        (lambda: wi.IRNN("0.5"), "gain"),
        (lambda: wi.random.truncated_normal((2,), stddev="2"), "stddev"),
        (lambda: wi.RandomNormal(mean=b"1"), "mean"),
        (lambda: wi.RandomNormal(stddev=True), "stddev"),
        (lambda: wi.RandomNormal(mean=10**400), "mean"),
        (lambda: wi.RandomUniform(minval=-(10**400)), "minval"),
    ],
)
def test_text_bool_and_overflowing_numbers_are_refused(make, arg):
    _raises(make, arg)


def test_numpy_scalars_and_0d_arrays_are_numbers():
    a = wi.RandomNormal(np.float32(0.0), np.array(1.0), seed=0)((4,))
    b = wi.RandomNormal(0.0, 1.0, seed=0)((4,))
    assert np.array_equal(a, b)


# --- the real argument's name --------------------------------------------------------------------------------------
def test_names_are_the_users_spelling():
    assert "`std`" in _raises(lambda: wi.Normal(0, -1), "std")
    assert "`stddev`" in _raises(lambda: wi.RandomNormal(0, -1), "stddev")
    msg = _raises(lambda: wi.TorchTruncNormal(a=5, b=1), "b")
    assert "`a`" in msg and "upper" not in msg and "lower" not in msg
    assert "`scale`" in _raises(lambda: wi.jax.uniform(-1.0), "scale") if hasattr(wi, "jax") else True


# --- shapes ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [{6, 4}, {6: 1, 4: 2}, (3.5, 2), ("3", 2), "34", (True, 2)])
def test_invalid_shapes(shape):
    _raises(lambda: wi.Zeros()(shape), "shape")


def test_sample_refuses_negative_dims():
    _raises(lambda: wi.sample(wi.Normal(0, 1), wi.Stream(0), (-1, 3), "float32"), "shape")


def test_compute_fans_refuses_float_dims():
    _raises(lambda: wi.compute_fans((3.5, 2)), "shape")


def test_element_count_beyond_the_flat_index_is_refused_not_wrapped():
    # 2**66 elements: flat indices would wrap modulo 2**64 and return row 0's values.
    _raises(lambda: wi.HeNormal(seed=0)((2**33, 2**33), region=(slice(2**31, 2**31 + 1), slice(0, 4))), "shape")


def test_regions_of_large_tensors_below_the_limit_are_exact():
    # 2**62 elements is allowed; a region far into it equals the same values computed by flat index.
    shape = (2**31, 2**31)
    got = wi.RandomNormal(0.0, 1.0, seed=3)(shape, region=(slice(2**30, 2**30 + 1), slice(8, 12)))
    flat = 2**30 * 2**31 + 8
    from weightinit.executors import reference
    from weightinit.random.distributions import make_plan

    plan = make_plan(wi.Normal(0.0, 1.0), "float32")
    out = np.empty(4, np.float32)
    reference.fill_range(plan, wi.Stream(3).key, flat, out)
    assert np.array_equal(got.ravel(), out)


def test_rank_and_memory_limits():
    _raises(lambda: wi.Zeros()((1,) * 65), "shape")
    _raises(lambda: wi.Zeros()((2**40,)), "shape")  # 4 TiB: refused before allocating
    _raises(lambda: wi.sample(wi.Normal(0, 1), wi.Stream(0), (2**40,), "float32"), "shape")


def test_extended_precision_dtypes_are_refused():
    _raises(lambda: wi.Zeros()((2,), "complex256"), "dtype")


# --- overflow and precision ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("make", "dtype", "arg"),
    [
        (lambda: wi.Constant(7e4), "float16", "value"),
        (lambda: wi.RandomUniform(-3e38, 3e38, seed=0), "float32", "dtype"),
        (lambda: wi.VarianceScaling(1e300, distribution="uniform", seed=0), "float32", "dtype"),
        (lambda: wi.VarianceScaling(1e300, distribution="truncated_normal", seed=0), "float32", "dtype"),
        (lambda: wi.RandomNormal(0, 1e5, seed=0), "float16", "dtype"),
        (lambda: wi.RandomUniform(0, 1e5, seed=0), "float16", "dtype"),
        (lambda: wi.Orthogonal(gain=1e300, seed=0), "float32", "gain"),
        (lambda: wi.IRNN(0.5), "int32", "gain"),
        (lambda: wi.BatchedIdentity(300), "int8", "gain"),
        (lambda: wi.Dirac(gain=0.5), "int32", "gain"),
    ],
)
def test_values_the_dtype_cannot_hold_are_refused(make, dtype, arg):
    shape = (3, 3, 3) if "Dirac" in repr(make()) or "BatchedIdentity" in repr(make()) else (3, 3)
    msg = _raises(lambda: make()(shape, dtype), arg)
    assert dtype in msg


def test_normal_range_check_is_the_streams_reach():
    # mean + 6.24 std is the largest value the float32 stream gives; just inside the range is accepted.
    std = 65504 / 6.3
    w = wi.RandomNormal(0, std, seed=0)((4096,), "float16")
    assert np.isfinite(w).all()
    assert np.isfinite(w.astype(np.float32)).all()


def test_array_identifier_is_not_wrapped():
    _raises(lambda: wi.get(np.array([300.5]))((1,), "int8"), "identifier")


def test_zero_division_cases_are_typed():
    _raises(lambda: wi.TruncNormal(lower=-1e-300, upper=1e-300, correct_variance=True), "upper")


def test_set_num_threads_limit():
    from weightinit.executors.compiled import get_num_threads, set_num_threads

    before = get_num_threads()
    _raises(lambda: set_num_threads(2**31), "n")
    assert get_num_threads() == before
    assert wi.RandomNormal(seed=0)((4,)).shape == (4,)


def test_stream_child_lone_surrogate():
    _raises(lambda: wi.Stream(0).child("\ud800"), "name")


def test_stft_periodic_is_a_bool():
    _raises(lambda: wi.STFT(periodic="yes"), "periodic")


# --- hostile configs ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("config", "arg"),
    [
        ({"class_name": "RandomNormal", "config": 5}, "config"),
        ({"class_name": "RandomNormal", "config": [1]}, "config"),
        ({"class_name": "RandomNormal", "config": {"foo": 1}}, "config"),
        ({"class_name": "RandomNormal", "config": {1: 1}}, "config"),
        ({"class_name": 5, "config": {}}, "class_name"),
        ({"class_name": "RandomNormal", "config": {"seed": {"a": 1}}}, "seed"),
        ({"class_name": "RandomNormal", "config": {"stddev": "1"}}, "stddev"),
    ],
)
def test_hostile_configs(config, arg):
    _raises(lambda: wi.deserialize(config), arg)
    _raises(lambda: wi.get(config), arg)


# --- torch drop-ins ---------------------------------------------------------------------------------------------------
torch = pytest.importorskip("torch")


def test_torch_dropins_check_arguments_first():
    import weightinit.torch as wt

    t = torch.empty(3, 4)
    _raises(lambda: wt.uniform_(t, a=math.inf, b=math.inf), "a")
    _raises(lambda: wt.uniform_(t, a="0", b=1), "a")
    _raises(lambda: wt.uniform_(t, a=2.0, b=1.0), "a")
    _raises(lambda: wt.normal_(t, std=-1.0), "std")
    _raises(lambda: wt.normal_([1.0], std=1.0), "tensor")
    _raises(lambda: wt.normal_(t, generator=5), "generator")
    msg = _raises(lambda: wt.trunc_normal_(t, a=5.0, b=1.0), "b")
    assert "upper" not in msg and "lower" not in msg
    _raises(lambda: wt.dirac_(torch.empty(4, 4, 3), groups=0), "groups")
    _raises(lambda: wt.constant_(torch.empty(2, dtype=torch.float16), 7e4), "val")
    _raises(lambda: wt.constant_(torch.empty(2, dtype=torch.int8), 300), "val")
    _raises(lambda: wt.uniform_(torch.empty(2, dtype=torch.float16), 0.0, 1e5), "b")
    _raises(lambda: wt.orthogonal_(t, gain=1e300), "gain")
    _raises(lambda: wt.sparse_(t, sparsity=2.0), "sparsity")


# --- exact promises under jit -------------------------------------------------------------------------------------
def test_jax_normal_zero_std_is_positive_zero_under_jit():
    jax = pytest.importorskip("jax")
    import weightinit.jax as wj
    from weightinit.executors.jax import sample as jsample

    key = jax.random.key(0)
    for dtype in ("float16", "bfloat16", "float32"):
        y = np.asarray(jax.jit(lambda k, dtype=dtype: wj.normal(0.0, dtype=dtype)(k, (64,)))(key))
        assert not np.signbit(y.astype(np.float32)).any(), dtype  # the core gives +0.0 (it adds +0.0)
    for mean in (0.0, -0.0):
        dist = wi.Normal(mean, 0.0)
        got = np.asarray(jax.jit(lambda dist=dist: jsample(dist, wi.Stream(1), (64,), "float32"))())
        ref = wi.sample(dist, wi.Stream(1), (64,), "float32")
        assert got.tobytes() == ref.tobytes(), mean


def test_validate_helpers_directly():
    assert validate.shape(np.array([2, 3])) == (2, 3)
    assert validate.integer("n", np.int8(3)) == 3
    with pytest.raises(wi.InitializerTypeError):
        validate.integer("n", 3.0)
    with pytest.raises(wi.InitializerTypeError):
        validate.boolean("b", 0)
    with pytest.raises(wi.InitializerTypeError):
        validate.real_number("x", 1 + 2j)
    with pytest.raises(wi.InitializerValueError):
        validate.real_number("x", math.nan)
