"""Every bad input of issue 2: the weightinit exception family, argument in backticks, value received."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

import weightinit as wi

RANDOM = [
    lambda: wi.RandomNormal(seed=0),
    lambda: wi.RandomUniform(seed=0),
    lambda: wi.TruncatedNormal(seed=0),
    lambda: wi.VarianceScaling(seed=0),
    lambda: wi.GlorotUniform(seed=0),
    lambda: wi.HeNormal(seed=0),
    lambda: wi.Orthogonal(seed=0),
]


def test_exception_family():
    assert issubclass(wi.InitializerValueError, ValueError) and issubclass(wi.InitializerValueError, wi.WeightinitError)
    assert issubclass(wi.InitializerTypeError, TypeError) and issubclass(wi.InitializerTypeError, wi.WeightinitError)


@pytest.mark.parametrize("make", RANDOM)
@pytest.mark.parametrize("dtype", ["int32", "int8", "uint8", "bool", "int64"])
def test_random_initializers_refuse_non_float_dtypes(make, dtype):
    with pytest.raises(
        wi.InitializerValueError, match=rf"`dtype` must be a floating-point dtype.*received dtype='{dtype}'"
    ):
        make()((3, 3), dtype)


@pytest.mark.parametrize("dtype", ["notadtype", object()])
def test_unknown_dtype(dtype):
    # (VarianceScaling accepts complex dtypes, as jax.nn.initializers does; the Keras plain ones do not.)
    with pytest.raises(wi.InitializerTypeError, match=r"`dtype` is not a dtype weightinit knows"):
        wi.RandomNormal(seed=0)((2,), dtype)


@pytest.mark.parametrize("make", [wi.RandomNormal, wi.RandomUniform, wi.TruncatedNormal, wi.Orthogonal])
def test_plain_random_initializers_refuse_complex(make):
    with pytest.raises(
        wi.InitializerValueError, match=r"`dtype` must be a floating-point dtype.*received dtype='complex64'"
    ):
        make(seed=0)((3, 3), "complex64")


@pytest.mark.parametrize("init", [wi.Zeros(), wi.Ones(), wi.Constant(1)])
def test_constant_initializers_refuse_non_numeric_dtypes(init):
    with pytest.raises(
        wi.InitializerValueError, match=r"`dtype` must be a numeric or bool dtype.*received dtype='str96'"
    ):
        init((2,), np.dtype("U3"))


@pytest.mark.parametrize("cls", [wi.RandomNormal, wi.TruncatedNormal])
@pytest.mark.parametrize("stddev", [-1.0, -1e-300, math.inf, -math.inf, math.nan])
def test_bad_stddev(cls, stddev):
    with pytest.raises(wi.InitializerValueError, match=r"`stddev` must"):
        cls(stddev=stddev, seed=0)
    with pytest.raises(wi.InitializerValueError, match=r"`stddev` must"):
        wi.random.normal((2,), stddev=stddev, seed=0)


def test_stddev_message_names_value():
    with pytest.raises(wi.InitializerValueError, match=r"`stddev` must be a finite number >= 0; received stddev=-1.0"):
        wi.RandomNormal(stddev=-1.0)


@pytest.mark.parametrize("mean", [math.inf, math.nan])
def test_bad_mean(mean):
    with pytest.raises(wi.InitializerValueError, match=r"`mean` must"):
        wi.RandomNormal(mean=mean, seed=0)


@pytest.mark.parametrize(("lo", "hi"), [(1.0, 1.0), (2.0, 1.0), (-math.inf, 0.0), (0.0, math.inf), (math.nan, 1.0)])
def test_bad_uniform_bounds(lo, hi):
    with pytest.raises(wi.InitializerValueError, match=r"`minval`|`maxval`"):
        wi.RandomUniform(lo, hi, seed=0)


def test_uniform_order_message():
    with pytest.raises(
        wi.InitializerValueError, match=r"`minval` must be smaller than `maxval`; received minval=2.0, maxval=1.0"
    ):
        wi.RandomUniform(2.0, 1.0)


@pytest.mark.parametrize("scale", [0, -1.0, math.inf, math.nan])
def test_bad_scale(scale):
    with pytest.raises(
        wi.InitializerValueError,
        match=rf"^Argument `scale` must be positive float \(received scale={re.escape(repr(scale))}\)\.$",
    ):
        wi.VarianceScaling(scale=scale)


@pytest.mark.parametrize("scale", ["a", None, [1.0]])
def test_scale_of_wrong_type(scale):
    with pytest.raises(
        wi.InitializerTypeError,
        match=rf"Argument `scale` must be positive float \(received scale={re.escape(repr(scale))} of type ",
    ):
        wi.VarianceScaling(scale=scale)


@pytest.mark.parametrize("mode", ["fan", "fanin", "", None, 3])
def test_bad_mode(mode):
    with pytest.raises(
        wi.InitializerValueError, match=rf"Invalid `mode` argument: .*\(received mode={re.escape(repr(mode))}\)"
    ):
        wi.VarianceScaling(mode=mode)


@pytest.mark.parametrize("dist", ["bad", "gaussian", ""])
def test_bad_distribution(dist):
    with pytest.raises(
        wi.InitializerValueError, match=rf"Invalid `distribution` argument: .*\(received distribution={dist!r}\)"
    ):
        wi.VarianceScaling(distribution=dist)
    with pytest.raises(
        wi.InitializerTypeError,
        match=r"Invalid `distribution` argument: .*\(received distribution=None of type NoneType\)",
    ):
        wi.VarianceScaling(distribution=None)


@pytest.mark.parametrize("mode", ["FAN_IN", "Fan_Out", "fan_AVG", "FAN_GEO_AVG"])
@pytest.mark.parametrize("dist", ["UNIFORM", "Normal", "Truncated_Normal", "UNTRUNCATED_NORMAL"])
def test_mode_and_distribution_any_case(mode, dist):
    init = wi.VarianceScaling(mode=mode, distribution=dist, seed=0)
    assert init.mode == mode.lower()
    assert init.get_config()["distribution"] == ("truncated_normal" if dist == "Normal" else dist.lower())


def test_axes_must_come_together():
    with pytest.raises(wi.InitializerValueError, match=r"`input_axes` was given without `output_axes`"):
        wi.VarianceScaling(input_axes=[0])
    with pytest.raises(wi.InitializerValueError, match=r"`output_axes` was given without `input_axes`"):
        wi.HeNormal(output_axes=[1])
    with pytest.raises(wi.InitializerValueError, match=r"`output_axes` contains axis 5, out of range"):
        wi.HeNormal(seed=0, input_axes=[0], output_axes=[5])((2, 3))
    with pytest.raises(wi.InitializerValueError, match=r"share axes"):
        wi.HeNormal(seed=0, input_axes=[0], output_axes=[0])((2, 3))
    with pytest.raises(wi.InitializerTypeError, match=r"`input_axes` must be a non-empty list of ints"):
        wi.HeNormal(input_axes=[], output_axes=[1])


@pytest.mark.parametrize("shape", [(), (5,)])
def test_orthogonal_rank(shape):
    with pytest.raises(
        wi.InitializerValueError,
        match=re.escape(f"at least two-dimensional (received shape={shape!r} of rank {len(shape)})."),
    ):
        wi.Orthogonal(seed=0)(shape)


@pytest.mark.parametrize("shape", [(), (3,), (2, 2, 2)])
def test_identity_rank(shape):
    with pytest.raises(
        wi.InitializerValueError,
        match=re.escape(f"only be used for 2D matrices (received shape={shape!r} of rank {len(shape)})."),
    ):
        wi.Identity()(shape)


@pytest.mark.parametrize("make", [*RANDOM, wi.Zeros, wi.Identity, lambda: wi.Constant(2.0), wi.STFT])
@pytest.mark.parametrize("shape", [(-1, 3), (3, -2)])
def test_negative_dimensions(make, shape):
    with pytest.raises(
        wi.InitializerValueError, match=r"`shape` must contain only non-negative dimensions; received shape="
    ):
        make()(shape)


@pytest.mark.parametrize("make", [*RANDOM, wi.Ones])
@pytest.mark.parametrize("shape", [(3.0, 2), ("3", 2), (None,), (True, 2), (np.float32(2), 2)])
def test_non_integer_shapes(make, shape):
    with pytest.raises(wi.InitializerTypeError, match=r"`shape` must contain only integers; received shape="):
        make()(shape)


@pytest.mark.parametrize("shape", [3.5, None, object()])
def test_non_sequence_shapes(shape):
    with pytest.raises(wi.InitializerTypeError, match=r"`shape` must be a sequence of non-negative integers"):
        wi.HeNormal(seed=0)(shape)


def test_integer_like_shapes_are_accepted():
    assert wi.HeNormal(seed=0)(5).shape == (5,)
    assert wi.HeNormal(seed=0)((np.int64(2), np.uint8(3))).shape == (2, 3)
    assert wi.HeNormal(seed=0)(np.array([2, 3])).shape == (2, 3)
    assert wi.HeNormal(seed=0)([]).shape == ()


@pytest.mark.parametrize("seed", [-1, 2**64, 2**70])
def test_out_of_range_seeds(seed):
    for cls in (wi.RandomNormal, wi.HeNormal, wi.Orthogonal, wi.SeedGenerator, wi.Stream):
        with pytest.raises(wi.InitializerValueError, match=rf"`seed` must be in \[0, 2\*\*64\); received seed={seed}"):
            cls(seed=seed)
    with pytest.raises(wi.InitializerValueError, match=r"`seed`"):
        wi.set_seed(seed)
    with pytest.raises(wi.InitializerValueError, match=r"`seed`"):
        wi.random.normal((2,), seed=seed)


@pytest.mark.parametrize("seed", [1.5, "1", True, np.bool_(False), [1], 1.0])
def test_seeds_of_wrong_type(seed):
    for cls in (wi.RandomNormal, wi.GlorotUniform, wi.Orthogonal, wi.SeedGenerator, wi.Stream):
        with pytest.raises(
            wi.InitializerTypeError, match=r"`seed` must be a non-negative int below 2\*\*64.*received seed="
        ):
            cls(seed=seed)


def test_bad_seed_dicts():
    with pytest.raises(wi.InitializerTypeError, match=r"`seed` is a dict that is neither"):
        wi.RandomNormal(seed={"class_name": "Generator", "config": {}})
    with pytest.raises(wi.InitializerTypeError, match=r"`kwargs` contains unknown arguments"):
        wi.SeedGenerator(1, foo=2)


@pytest.mark.parametrize("value", [math.nan, [1.0, math.nan], "abc", None, {"a": 1}])
def test_constant_refuses_nan_and_non_numbers(value):
    with pytest.raises(wi.InitializerValueError, match=r"`value` must"):
        wi.Constant(value)


@pytest.mark.parametrize(("value", "dtype"), [(0.5, "int32"), (300, "int8"), (-1, "uint8"), (2, "bool"), (0.5, "bool")])
def test_constant_must_be_exact_in_integer_dtypes(value, dtype):
    with pytest.raises(
        wi.InitializerValueError, match=rf"`value` is not exactly representable in {dtype}; received value={value!r}"
    ):
        wi.Constant(value)((2,), dtype)
    assert wi.Constant(1)((2,), dtype).tolist() == [1, 1]


def test_constant_array_and_complex_values_checked():
    with pytest.raises(wi.InitializerValueError, match=r"received value='array of shape \(2,\) with element 0.5'"):
        wi.Constant([1.0, 0.5])((2, 2), "int16")
    with pytest.raises(wi.InitializerValueError, match=r"`value` has a non-zero imaginary part"):
        wi.Constant(1 + 2j)((2,), "float32")
    assert wi.Constant(1 + 2j)((2,), "complex64").tolist() == [1 + 2j, 1 + 2j]
    assert wi.Constant(3 + 0j)((2,), "int32").tolist() == [3, 3]


def test_constant_broadcast_error():
    with pytest.raises(
        wi.InitializerValueError, match=r"`value` of shape \(3,\) does not broadcast to the requested shape \(2, 2\)"
    ):
        wi.Constant([1.0, 2.0, 3.0])((2, 2))


def test_identity_gain_errors():
    with pytest.raises(wi.InitializerValueError, match=r"`gain` must be finite; received gain=inf"):
        wi.Identity(gain=math.inf)
    with pytest.raises(wi.InitializerValueError, match=r"`gain` is not exactly representable in int32"):
        wi.Identity(gain=2.5)((2, 2), "int32")
    with pytest.raises(wi.InitializerTypeError, match=r"`gain` must be a real number, not text; received gain='big'"):
        wi.Orthogonal(gain="big")
    with pytest.raises(wi.InitializerTypeError, match=r"`gain` must be a real number; received gain=\[1\]"):
        wi.Identity(gain=[1])


def test_stft_errors():
    with pytest.raises(
        wi.InitializerValueError, match=r"`side` should be 'real' or 'imag' \(received side='imaginary'\)"
    ):
        wi.STFT(side="imaginary")
    with pytest.raises(wi.InitializerValueError, match=r"Scaling is invalid.*\(received scaling='l2'\)"):
        wi.STFT(scaling="l2")
    with pytest.raises(wi.InitializerValueError, match=r"`window` is not a window SciPy knows"):
        wi.STFT(window="unknown")
    with pytest.raises(
        wi.InitializerValueError,
        match=r"The shape of `window` must be equal to \[frame_length\] = \[4\] \(received window.shape=\(3,\)\)",
    ):
        wi.STFT(window=[1.0, 2.0, 3.0])((4, 1, 3))
    with pytest.raises(wi.InitializerValueError, match=r"STFT kernels have shape"):
        wi.STFT()((4, 3))


def test_truncated_normal_distribution_errors():
    with pytest.raises(wi.InitializerValueError, match=r"`lower` must be smaller than `upper`"):
        wi.TruncatedNormalDistribution(0.0, 1.0, 2.0, 2.0)
    with pytest.raises(wi.InitializerValueError, match=r"normal probability .* < 1e-30"):
        wi.TruncatedNormalDistribution(0.0, 1.0, 12.0, 13.0)
    with pytest.raises(wi.InitializerValueError, match=r"With std=0 every value is the mean"):
        wi.TruncatedNormalDistribution(5.0, 0.0, 0.0, 1.0)


def test_nothing_is_silently_clamped():
    # A valid but extreme interval is sampled exactly, not moved.
    x = wi.sample(wi.TruncatedNormalDistribution(0.0, 1.0, 10.0, 10.5), wi.Stream(0), (1000,), "float64")
    assert x.min() >= 10.0 and x.max() <= 10.5
    assert x.mean() < 10.2  # mass concentrates at the lower bound (mean ~ 10.098)


def test_text_is_not_a_number():
    with pytest.raises(
        wi.InitializerTypeError, match=r"`stddev` must be a real number, not text; received stddev='0.5'"
    ):
        wi.RandomNormal(stddev="0.5")
    with pytest.raises(wi.InitializerTypeError, match=r"`minval` must be a real number, not text; received minval='0'"):
        wi.RandomUniform("0", 1.0)
    with pytest.raises(
        wi.InitializerTypeError, match=r"Argument `scale` must be positive float \(received scale='2.0' of type str\)"
    ):
        wi.VarianceScaling(scale="2.0")
    for cls in (wi.Identity, wi.Orthogonal):
        with pytest.raises(wi.InitializerTypeError, match=r"`gain` must be a real number, not text; received gain='2'"):
            cls(gain="2")
