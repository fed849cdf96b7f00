"""The region property: init(shape, dtype, region=r) == init(shape, dtype)[r], bitwise."""

from __future__ import annotations

import numpy as np
import pytest

import weightinit as wi
from weightinit.initializers.base import RandomInitializer
from weightinit.random import sampling as _sampling
from weightinit.registry.api import builtin_classes

DTYPES = ["float16", "bfloat16", "float32", "float64"]


# Constructor arguments that some elementwise initializers require (beyond a seed).
REQUIRED_ARGS = {wi.TorchLinearBias: {"fan_in": 8}}


def _elementwise_instances():
    out = []
    for cls in builtin_classes():
        if not getattr(cls, "elementwise", False):
            continue
        if issubclass(cls, RandomInitializer):
            out.append(cls(seed=31, **REQUIRED_ARGS.get(cls, {})))
        elif cls is wi.Constant:
            out.append(cls(np.arange(20, dtype=np.float64) / 8))  # broadcast along the last axis
        else:
            out.append(cls())
    return out


ELEMENTWISE = _elementwise_instances()

REGIONS_2D = [
    (slice(3, 4), slice(None)),
    (slice(1, 24, 3), slice(7, 19)),
    (slice(None, None, -1),),
    (slice(20, 2, -7), slice(19, None, -2)),
    (slice(5, 6), slice(13, 14)),
    (slice(0, 0),),
    (slice(-4, None), slice(-17, -3, 5)),
    slice(11, 13),
]
REGIONS_4D = [
    (slice(1, 2), slice(0, 3, 2), slice(5, 11), slice(None)),
    (slice(None), slice(None), slice(None), slice(3, 30, 9)),
    (slice(2, None, -1), slice(1, 3), slice(15, 0, -4)),
    (slice(0, 1), slice(0, 1), slice(0, 1), slice(31, 32)),
]


def test_elementwise_set_is_complete():
    names = {type(i).__name__ for i in ELEMENTWISE}
    assert {"RandomNormal", "RandomUniform", "TruncatedNormal", "VarianceScaling", "HeNormal", "GlorotUniform"} <= names
    assert {"Zeros", "Ones", "Constant", "Identity"} <= names
    assert "Orthogonal" not in names and "STFT" not in names


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("init", ELEMENTWISE, ids=lambda i: type(i).__name__)
def test_region_property(init, dtype, bits):
    shapes = [((25, 20), REGIONS_2D)]
    if not isinstance(init, wi.Identity):
        shapes.append(((3, 3, 16, 32), REGIONS_4D))
    if isinstance(init, wi.Constant):
        shapes = [((25, 20), REGIONS_2D)]
    for shape, regions in shapes:
        full = init(shape, dtype)
        for r in regions:
            part = init(shape, dtype, region=r)
            expected = full[r]
            assert part.shape == expected.shape and part.dtype == expected.dtype
            assert part.flags.c_contiguous
            np.testing.assert_array_equal(bits(part), bits(expected), err_msg=f"{shape} {r}")


@pytest.mark.parametrize("init", [wi.Orthogonal(seed=1), wi.STFT()], ids=lambda i: type(i).__name__)
def test_region_on_non_elementwise_is_a_slice_of_the_whole(init, bits):
    shape = (16, 2, 9)
    r = (slice(3, 12, 2), slice(1, 2), slice(8, 0, -3))
    np.testing.assert_array_equal(bits(init(shape, "float32", region=r)), bits(init(shape, "float32")[r]))


def _spec_values(philox_py, key, flat, kind):
    """float32 uniform [0, 1) or float64 uniform [0, 1) at the flat indices, from the counter layout."""
    out = []
    for i in flat:
        if kind == "float32":
            j, lane = i >> 2, i & 3
            w = philox_py((j & 0xFFFFFFFF, j >> 32, 0, 0), key)[lane]
            out.append((w >> 8) * 2.0**-24)
        else:
            j, lane = i >> 1, i & 1
            b = philox_py((j & 0xFFFFFFFF, j >> 32, 0, 0), key)
            hi, lo = b[2 * lane], b[2 * lane + 1]
            out.append(((hi << 21) | (lo >> 11)) * 2.0**-53)
    return np.array(out)


def _flat_indices(shape, region):
    """Row-major flat indices of x[region] computed with Python integers (no overflow)."""
    ranges = [range(*s.indices(d)) for s, d in zip(region, shape)]
    ranges += [range(d) for d in shape[len(region) :]]
    strides = [1] * len(shape)
    for i in range(len(shape) - 2, -1, -1):
        strides[i] = strides[i + 1] * shape[i + 1]
    idx = [0]
    for r, st in zip(ranges, strides):
        idx = [a + b * st for a in idx for b in r]
    return idx, tuple(len(r) for r in ranges)


HUGE = [
    # 1-D runs crossing the block counter's 2**32 boundary (float32: value 2**34; float64: 2**33).
    ((2**40,), (slice(2**34 - 6, 2**34 + 5),)),
    ((2**40,), (slice(2**33 - 5, 2**33 + 6),)),
    ((2**40,), (slice(2**40 - 1, 2**40 - 12, -3),)),
    # Gathered short runs far beyond 2**32 elements, odd offsets, strides and a negative step.
    ((2**21, 2**21, 3), (slice(2**20 + 1, 2**20 + 4), slice(2**21 - 2, 2**21 - 9, -3))),
    ((2**24, 2**10, 4), (slice(2**23 + 3, 2**23 + 5), slice(1021, 1024), slice(1, 4, 2))),
    # A long contiguous run (>= 256 values) starting past 2**36.
    ((2**30, 300), (slice(2**28 + 7, 2**28 + 8),)),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(("shape", "region"), HUGE)
def test_huge_virtual_shapes_follow_counter_layout(philox_py, shape, region, dtype):
    stream = wi.Stream(2**40 + 9)
    got = wi.sample(wi.Uniform(0.0, 1.0), stream, shape, dtype, region)
    flat, out_shape = _flat_indices(shape, region)
    assert max(flat) >= 2**32
    assert got.shape == out_shape
    expected = _spec_values(philox_py, stream.key, flat, dtype).reshape(out_shape)
    np.testing.assert_array_equal(got.astype(np.float64), expected)


def test_huge_shape_normal_region_matches_indices(philox_py):
    # Values depend only on (key, flat index): a block of a huge tensor equals the same indices of a 1-D tensor.
    stream = wi.Stream(4)
    shape = (2**22, 2**12)
    region = (slice(2**21 + 1, 2**21 + 3), slice(4093, 4096))
    got = wi.sample(wi.Normal(0.0, 1.0), stream, shape, "float64", region)
    flat, _ = _flat_indices(shape, region)
    for v, i in zip(got.ravel(), flat):
        assert v == wi.sample(wi.Normal(0.0, 1.0), stream, (i + 1,), "float64", (slice(i, i + 1),))[0]


def test_chunking_does_not_change_values(monkeypatch, bits):
    dist = wi.TruncatedNormalDistribution(0.0, 1.0, -2.0, 2.0)
    shape = (37, 41)
    regions = [None, (slice(3, 30, 2), slice(1, 40)), (slice(36, None, -5), slice(0, 41, 7))]
    before = [wi.sample(dist, wi.Stream(8), shape, "float32", r) for r in regions]
    monkeypatch.setattr(_sampling, "CHUNK", 7)
    monkeypatch.setattr(_sampling, "_SHORT_RUN", 3)
    after = [wi.sample(dist, wi.Stream(8), shape, "float32", r) for r in regions]
    for a, b in zip(before, after):
        np.testing.assert_array_equal(bits(a), bits(b))


def test_out_argument_writes_in_place(bits):
    out = np.empty((4, 5), np.float32)
    res = wi.sample(wi.Normal(0.0, 1.0), wi.Stream(1), (10, 5), "float32", (slice(2, 6),), out=out)
    assert res is out
    np.testing.assert_array_equal(
        bits(out), bits(wi.sample(wi.Normal(0.0, 1.0), wi.Stream(1), (10, 5), "float32")[2:6])
    )
    with pytest.raises(wi.InitializerValueError, match=r"`out` must be a C-contiguous float32 array of shape"):
        wi.sample(wi.Normal(0.0, 1.0), wi.Stream(1), (10, 5), "float32", out=np.empty((10, 5), np.float64))


def test_values_do_not_depend_on_shape(bits):
    # The value at flat index i depends only on (key, i): reshaping the request keeps the values.
    a = wi.RandomNormal(seed=5)((6, 10))
    b = wi.RandomNormal(seed=5)((60,))
    c = wi.RandomNormal(seed=5)((2, 3, 2, 5))
    np.testing.assert_array_equal(bits(a.ravel()), bits(b))
    np.testing.assert_array_equal(bits(c.ravel()), bits(b))


@pytest.mark.parametrize(
    "region",
    [(slice(0, 2),) * 3, (0, slice(None)), (slice(0, 2, 0),), (slice(0.5, 2),), "rows"],
    ids=["too-many", "int-index", "zero-step", "float-bound", "string"],
)
def test_bad_regions(region):
    with pytest.raises((wi.InitializerValueError, wi.InitializerTypeError), match=r"`region`"):
        wi.RandomNormal(seed=0)((4, 4), region=region)


def test_sample_takes_an_executor_by_name_and_refuses_anything_else():
    from weightinit.random.sampling import executors

    dist = wi.Normal(0.0, 1.0)
    want = wi.sample(dist, wi.Stream(0), (5, 3), "float32")
    for name in executors():
        assert wi.sample(dist, wi.Stream(0), (5, 3), "float32", executor=name).tobytes() == want.tobytes()
    with pytest.raises(wi.InitializerValueError, match=r"`executor` must be one of .*received executor='cuda'"):
        wi.sample(dist, wi.Stream(0), (5, 3), "float32", executor="cuda")
    with pytest.raises(
        wi.InitializerTypeError, match=r"`executor` must be an executor .*received executor=3 of type int"
    ):
        wi.sample(dist, wi.Stream(0), (0,), "complex64", executor=3)  # checked before any work, even for no values
