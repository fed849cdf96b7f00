"""weightinit.haiku mirrors haiku.initializers: names, signatures, shapes/dtypes, statistics, errors (Haiku as oracle)."""

from __future__ import annotations

import inspect
import math

import numpy as np
import pytest

hk = pytest.importorskip("haiku")
import jax.numpy as jnp  # noqa: E402

import jax  # noqa: E402
import weightinit.haiku as whk  # noqa: E402

NAMES = [
    "Constant",
    "RandomNormal",
    "TruncatedNormal",
    "RandomUniform",
    "VarianceScaling",
    "UniformScaling",
    "Orthogonal",
    "Identity",
]


def _run(fn, seed=0):
    return hk.transform(fn).apply({}, jax.random.key(seed))


def test_same_names_signatures_and_base_class():
    for name in NAMES:
        ours, theirs = getattr(whk, name), getattr(hk.initializers, name)
        assert ours.__bases__ == theirs.__bases__  # hk.initializers.Initializer (a Callable protocol)
        p_ours = [(p.name, p.default, p.kind) for p in inspect.signature(ours).parameters.values()]
        p_theirs = [(p.name, p.default, p.kind) for p in inspect.signature(theirs).parameters.values()]
        assert p_ours == p_theirs, name
        call_ours = list(inspect.signature(ours.__call__).parameters)
        assert call_ours == list(inspect.signature(theirs.__call__).parameters), name


CASES = [
    ("Constant", (42.0,), [jnp.float32, jnp.int32, jnp.complex64]),
    ("Constant", (np.array([1.0, 2.0, 3.0]),), [jnp.float32]),
    ("RandomNormal", (), [jnp.float32, jnp.bfloat16, jnp.complex64]),
    ("RandomNormal", (2.0 - 3j, 1.0 + 1j), [jnp.complex64]),
    ("TruncatedNormal", (), [jnp.float32, jnp.float16, jnp.complex64]),
    ("TruncatedNormal", (2.0, 1.0 - 1j), [jnp.complex64]),
    ("RandomUniform", (), [jnp.float32, jnp.bfloat16]),
    ("RandomUniform", (-3.0, 3.0), [jnp.float32]),
    ("VarianceScaling", (np.array(2.0, np.float64), "fan_in", "truncated_normal", [0]), [jnp.float32]),
    ("VarianceScaling", (2.0, "fan_out", "normal"), [jnp.float32, jnp.complex64]),
    ("VarianceScaling", (2.0, "fan_avg", "uniform"), [jnp.float32, jnp.bfloat16]),
    ("VarianceScaling", (1.0, "fan_in", "TRUNCATED_NORMAL"), [jnp.float32, jnp.complex64]),
    ("UniformScaling", (2.0,), [jnp.float32]),
    ("Orthogonal", (), [jnp.float32, jnp.bfloat16]),
    ("Orthogonal", (2.0, 0), [jnp.float32]),
    ("Identity", (np.array(2.0, np.float64),), [jnp.float32, jnp.int32]),
]


@pytest.mark.parametrize(("name", "args", "dtypes"), CASES)
def test_shapes_and_dtypes_inside_transform_match_haiku(name, args, dtypes):
    shape = (3, 4, 3) if name != "Constant" or np.ndim(args[0]) == 0 else (2, 3)
    for dtype in dtypes:
        ours = _run(lambda dtype=dtype: getattr(whk, name)(*args)(shape, dtype))
        try:
            theirs = _run(lambda dtype=dtype: getattr(hk.initializers, name)(*args)(shape, dtype))
        except NotImplementedError:  # Haiku's QR on CPU has no bfloat16 kernel; weightinit's runs in float32
            assert name == "Orthogonal" and dtype == jnp.bfloat16
            theirs = jnp.zeros(shape, dtype)
        assert ours.shape == theirs.shape == shape and ours.dtype == theirs.dtype, (name, dtype)
        assert bool(jnp.all(jnp.isfinite(ours)))


def _moments(x):
    x = np.asarray(x)
    if np.iscomplexobj(x):
        return float(np.mean(np.abs(x) ** 2)), float(np.max(np.abs(x.real)))
    return float(np.mean(x.astype(np.float64) ** 2)), float(np.max(np.abs(x)))


@pytest.mark.parametrize(
    ("name", "args", "dtype"),
    [
        ("VarianceScaling", (2.0, "fan_in", "normal"), jnp.float32),
        ("VarianceScaling", (2.0, "fan_in", "truncated_normal"), jnp.float32),
        ("VarianceScaling", (2.0, "fan_avg", "uniform"), jnp.float32),
        ("VarianceScaling", (1.0, "fan_in", "normal", [0, 1]), jnp.float32),
        ("TruncatedNormal", (2.0,), jnp.complex64),
        ("RandomNormal", (2.0,), jnp.complex64),
        ("UniformScaling", (3.0,), jnp.float32),
    ],
)
def test_distribution_matches_haiku(name, args, dtype):
    """Second moment within 5 standard errors of Haiku's, and the same range (truncated or not)."""
    shape = (64, 32, 24)
    ours = _run(lambda: getattr(whk, name)(*args)(shape, dtype), 1)
    theirs = _run(lambda: getattr(hk.initializers, name)(*args)(shape, dtype), 2)
    m_ours, max_ours = _moments(ours)
    m_theirs, max_theirs = _moments(theirs)
    n = math.prod(shape)
    # E[x^2] of these distributions has relative standard error at most sqrt(2/n) (normal) per sample set.
    assert abs(m_ours / m_theirs - 1) < 5 * math.sqrt(2 * 2 / n), (m_ours, m_theirs)
    assert abs(max_ours / max_theirs - 1) < 0.1, (max_ours, max_theirs)  # same support: truncated vs not


def test_variance_scaling_normal_is_untruncated_as_in_haiku():
    """Haiku's "normal" is untruncated: values beyond 2 std occur (about 4.6% of them)."""
    x = np.asarray(_run(lambda: whk.VarianceScaling(1.0, "fan_in", "normal")((100, 1000), jnp.float32)))
    frac = float(np.mean(np.abs(x) > 2 * math.sqrt(1 / 100)))
    p = 0.0455
    assert abs(frac - p) < 5 * math.sqrt(p * (1 - p) / x.size)
    t = np.asarray(_run(lambda: whk.VarianceScaling(1.0, "fan_in", "truncated_normal")((100, 1000), jnp.float32)))
    assert np.abs(t).max() <= 2 * math.sqrt(1 / 100) / 0.87962566 * (1 + 1e-6)


def test_fans_match_haiku():
    from haiku._src.initializers import _compute_fans

    for shape, axes in [
        ((), None),
        ((2,), None),
        ((3, 4), None),
        ((1, 2, 3, 4), None),
        ((3, 5, 9), [0]),
        ((3, 5, 7, 4), [0, 1]),
        ((4, 6), [0]),
    ]:
        assert whk.compute_fans(shape, axes) == tuple(int(v) for v in _compute_fans(shape, axes)), shape


def test_error_texts_start_with_haikus():
    bad = [
        ({"scale": -1.0}, "VarianceScaling"),
        ({"mode": "foo"}, "VarianceScaling"),
        ({"distribution": "bar"}, "VarianceScaling"),
    ]
    for kwargs, name in bad:
        with pytest.raises(ValueError) as theirs:
            getattr(hk.initializers, name)(**kwargs)
        with pytest.raises(ValueError) as ours:
            getattr(whk, name)(**kwargs)
        assert str(ours.value).startswith(str(theirs.value.args[0])), (str(ours.value), theirs.value.args)
        assert repr(next(iter(kwargs.values()))) in str(ours.value)
    for name in ("Orthogonal", "Identity"):
        with pytest.raises(ValueError) as theirs:
            _run(lambda n=name: getattr(hk.initializers, n)()((20,), jnp.float32))
        with pytest.raises(ValueError) as ours:
            _run(lambda n=name: getattr(whk, n)()((20,), jnp.float32))
        assert str(ours.value).startswith(str(theirs.value)), str(ours.value)
    assert whk.VarianceScaling(0.0) is not None  # Haiku allows scale 0 (all zeros)
    assert (
        float(jnp.abs(_run(lambda: whk.VarianceScaling(0.0, distribution="uniform")((3, 3), jnp.float32))).max()) == 0
    )


def test_reversed_uniform_interval_is_refused():
    """Haiku (through jax.random.uniform) draws from (maxval, minval] when minval > maxval; weightinit refuses."""
    with pytest.raises(ValueError, match="`minval` must be smaller than `maxval`"):
        _run(lambda: whk.RandomUniform(3.0)((2, 2), jnp.float32))


def test_orthogonal_rows_along_axis_and_same_key_same_values():
    q = np.asarray(_run(lambda: whk.Orthogonal(2.0, axis=0)((4, 3, 5), jnp.float32)))
    rows = q.reshape(4, -1)
    np.testing.assert_allclose(rows @ rows.T, 4.0 * np.eye(4), atol=1e-5)
    a = _run(lambda: whk.RandomNormal()((5, 5), jnp.float32), 3)
    b = _run(lambda: whk.RandomNormal()((5, 5), jnp.float32), 3)
    c = _run(lambda: whk.RandomNormal()((5, 5), jnp.float32), 4)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_in_haiku_modules_under_jit():
    def net(x):
        return hk.Linear(6, w_init=whk.VarianceScaling(2.0), b_init=whk.Constant(0.5))(x)

    f = hk.transform(net)
    params = jax.jit(f.init)(jax.random.key(0), jnp.ones((2, 5)))
    again = f.init(jax.random.key(0), jnp.ones((2, 5)))
    assert np.array_equal(params["linear"]["w"], again["linear"]["w"])
    assert np.all(np.asarray(params["linear"]["b"]) == 0.5)
