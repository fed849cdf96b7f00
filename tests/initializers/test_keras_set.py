"""Every Keras initializer over the shapes x dtypes grid: shape/dtype, KS and moments, orthogonality.

Expected distributions are written here from the formulas (Keras' definitions), with SciPy's
truncnorm for the truncation factor, not from weightinit's constants.
"""

from __future__ import annotations

import json
import math

import ml_dtypes
import numpy as np
import pytest

import weightinit as wi
from weightinit.initializers.base import RandomInitializer
from weightinit.registry.api import builtin_classes

stats = pytest.importorskip("scipy.stats")

DTYPES = ["float16", "bfloat16", "float32", "float64"]
SHAPES = [(), (5,), (0, 3), (25, 20), (3, 3, 16, 32)]
# Keras fans for channels-last kernels, written out by hand.
FANS = {(): (1, 1), (5,): (5, 5), (0, 3): (0, 3), (25, 20): (25, 20), (3, 3, 16, 32): (144, 288)}
KS_SHAPES = {(400, 250): (400, 250), (5, 5, 64, 64): (1600, 1600)}
FANS.update(KS_SHAPES)


def _np_dtype(name):
    return np.dtype(ml_dtypes.bfloat16) if name == "bfloat16" else np.dtype(name)


def _vs(scale, mode, dist):
    def expected(shape):
        fi, fo = FANS[shape]
        n = {"fan_in": fi, "fan_out": fo, "fan_avg": (fi + fo) / 2, "fan_geo_avg": math.sqrt(fi * fo)}[mode]
        var = scale / max(1.0, n)
        if dist in ("truncated_normal", "normal"):
            s = math.sqrt(var) / stats.truncnorm(-2, 2).std()
            return stats.truncnorm(-2, 2, loc=0, scale=s)
        if dist == "untruncated_normal":
            return stats.norm(0, math.sqrt(var))
        lim = math.sqrt(3 * var)
        return stats.uniform(-lim, 2 * lim)

    return expected


# (id, factory(seed) -> initializer, expected(shape) -> scipy frozen distribution)
CASES = [
    ("RandomNormal", lambda s: wi.RandomNormal(0.3, 0.7, seed=s), lambda sh: stats.norm(0.3, 0.7)),
    ("RandomUniform", lambda s: wi.RandomUniform(-0.2, 0.6, seed=s), lambda sh: stats.uniform(-0.2, 0.8)),
    ("TruncatedNormal", lambda s: wi.TruncatedNormal(0.1, 0.5, seed=s), lambda sh: stats.truncnorm(-2, 2, 0.1, 0.5)),
    ("VS-in-trunc", lambda s: wi.VarianceScaling(2.0, "fan_in", seed=s), _vs(2.0, "fan_in", "truncated_normal")),
    ("VS-out-unif", lambda s: wi.VarianceScaling(0.5, "FAN_OUT", "Uniform", seed=s), _vs(0.5, "fan_out", "uniform")),
    (
        "VS-avg-untrunc",
        lambda s: wi.VarianceScaling(1.5, "fan_avg", "untruncated_normal", seed=s),
        _vs(1.5, "fan_avg", "untruncated_normal"),
    ),
    (
        "VS-geo-normal",
        lambda s: wi.VarianceScaling(3.0, "fan_geo_avg", "normal", seed=s),
        _vs(3.0, "fan_geo_avg", "normal"),
    ),
    ("GlorotUniform", lambda s: wi.GlorotUniform(seed=s), _vs(1.0, "fan_avg", "uniform")),
    ("GlorotNormal", lambda s: wi.GlorotNormal(seed=s), _vs(1.0, "fan_avg", "truncated_normal")),
    ("LecunUniform", lambda s: wi.LecunUniform(seed=s), _vs(1.0, "fan_in", "uniform")),
    ("LecunNormal", lambda s: wi.LecunNormal(seed=s), _vs(1.0, "fan_in", "truncated_normal")),
    ("HeUniform", lambda s: wi.HeUniform(seed=s), _vs(2.0, "fan_in", "uniform")),
    ("HeNormal", lambda s: wi.HeNormal(seed=s), _vs(2.0, "fan_in", "truncated_normal")),
]
IDS = [c[0] for c in CASES]


def test_cases_cover_every_elementwise_random_initializer():
    covered = {type(make(0)).__name__ for _, make, _ in CASES}
    core = {
        c.__name__
        for c in builtin_classes()
        if issubclass(c, RandomInitializer)
        and c.elementwise
        and c.__module__.startswith("weightinit._")
        and c.__module__ in ("weightinit.initializers.random_values", "weightinit.initializers.variance_scaling")
    }
    assert core <= covered


def _support(dist):
    lo, hi = dist.support()
    return float(lo), float(hi)


def _largest_below(bound, dt):
    from weightinit.random.distributions import next_down

    v = np.array([bound], dtype=dt)[0]
    while float(v) >= bound:
        v = next_down(v)
    return v


def _check_moments(v, ref):
    mean, var = (float(m) for m in ref.stats(moments="mv"))
    sd = math.sqrt(var)
    kurt = float(ref.stats(moments="k")) + 3.0
    n = v.size
    assert abs(v.mean() - mean) < 4 * sd / math.sqrt(n)
    assert abs(v.std() - sd) < 4 * sd * math.sqrt((kurt - 1) / (4 * n))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("name", "make", "expected"), CASES, ids=IDS)
def test_grid_shape_dtype_support_moments(name, make, expected, dtype):
    dt = _np_dtype(dtype)
    init = make(7)
    for shape in SHAPES:
        x = init(shape, dtype)
        assert isinstance(x, np.ndarray)
        assert x.shape == shape and x.dtype == dt
        v = x.astype(np.float64)
        ref = expected(shape)
        lo, hi = _support(ref)
        assert np.isfinite(v).all()
        assert np.all(v >= lo) and np.all(v <= hi)
        if ref.dist.name == "uniform":
            assert np.all(v < hi)
        # A scalar or a row is the start of the same stream as a bigger tensor.
        big = init((100,), dtype)
        if name in ("RandomNormal", "RandomUniform", "TruncatedNormal") and 0 < x.size <= 100:
            np.testing.assert_array_equal(x.ravel().view(np.uint8), big[: x.size].view(np.uint8))
        if x.size >= 500:
            _check_moments(v.ravel(), ref)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("name", "make", "expected"), CASES, ids=IDS)
def test_ks_on_1e5_samples(name, make, expected, dtype, ks_pvalue):
    shapes = list(KS_SHAPES) if dtype == "float32" else [(400, 250)]
    for shape in shapes:
        x = make(11)(shape, dtype)
        ref = expected(shape)
        upper = _largest_below(_support(ref)[1], x.dtype) if ref.dist.name == "uniform" else None
        p = ks_pvalue(x, ref.cdf, upper)
        assert p > 1e-3, (shape, p)
        _check_moments(x.astype(np.float64).ravel(), ref)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize(("name", "make", "expected"), CASES, ids=IDS)
def test_low_precision_equals_float32_rounded(name, make, expected, dtype):
    dt = _np_dtype(dtype)
    init = make(3)
    for shape in [(25, 20), (3, 3, 16, 32)]:
        low = init(shape, dtype)
        f32 = init(shape, "float32").astype(dt)
        ref = expected(shape)
        lo, hi = _support(ref)
        r64 = f32.astype(np.float64)
        ok = (r64 >= lo) & ((r64 < hi) if ref.dist.name == "uniform" else (r64 <= hi))
        np.testing.assert_array_equal(low[ok].view(np.uint16), f32[ok].view(np.uint16))
        assert np.all(low[~ok].astype(np.float64) >= lo)  # clipped into the support


# ---------------------------------------------------------------------------------------------
# Orthogonal
# ---------------------------------------------------------------------------------------------

ORTHO_SHAPES = [(25, 20), (20, 25), (5, 5), (1, 7), (7, 1), (3, 3, 16, 32), (2, 3, 5)]


def _flat(shape):
    return math.prod(shape[:-1]), shape[-1]


@pytest.mark.parametrize("shape", ORTHO_SHAPES)
@pytest.mark.parametrize(("dtype", "tol"), [("float32", 1e-5), ("float64", 1e-12)])
def test_orthogonality(shape, dtype, tol):
    gain = 1.7
    w = wi.Orthogonal(gain=gain, seed=5)(shape, dtype)
    assert w.shape == shape and w.dtype == np.dtype(dtype)
    q = w.reshape(_flat(shape)).astype(np.float64) / gain
    rows, cols = q.shape
    gram = q.T @ q if rows >= cols else q @ q.T
    np.testing.assert_allclose(gram, np.eye(min(rows, cols)), rtol=0, atol=tol)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_orthogonal_low_precision_is_float32_rounded(dtype):
    dt = _np_dtype(dtype)
    init = wi.Orthogonal(gain=2.0, seed=9)
    low = init((3, 3, 16, 32), dtype)
    assert low.dtype == dt
    np.testing.assert_array_equal(low.view(np.uint16), init((3, 3, 16, 32), "float32").astype(dt).view(np.uint16))


@pytest.mark.parametrize("shape", [(0, 3), (3, 0), (2, 0, 4)])
def test_orthogonal_zero_size(shape):
    w = wi.Orthogonal(seed=0)(shape, "float32")
    assert w.shape == shape and w.dtype == np.float32


@pytest.mark.parametrize(("shape", "dtype"), [((25, 20), "float32"), ((20, 25), "float64"), ((9, 9), "float32")])
def test_orthogonal_sign_correction(shape, dtype):
    # Q = A R^-1 with diag(R) > 0: Q^T A (or A^T ... for wide shapes) is upper triangular with a positive diagonal.
    seed = 123
    rows, cols = _flat(shape)
    big, small = max(rows, cols), min(rows, cols)
    a = wi.sample(wi.Normal(0.0, 1.0), wi.Stream(seed), (big, small), dtype).astype(np.float64)
    q = wi.Orthogonal(seed=seed)(shape, dtype).astype(np.float64)
    q = q if rows >= cols else q.T
    r = q.T @ a
    assert np.all(np.diag(r) > 0)
    np.testing.assert_allclose(np.tril(r, -1), 0, atol=1e-4)


def test_orthogonal_diagonal_is_unbiased():
    # Haar measure: E[Q_ii] = 0 and Var(Q_ii) = 1/n.  Without the sign correction the diagonal is biased.
    n, draws = 3, 400
    diag = np.array([np.diag(wi.Orthogonal(seed=s)((n, n), "float64")) for s in range(draws)])
    se = math.sqrt(1 / n) / math.sqrt(draws)
    for i in range(n):
        assert abs(diag[:, i].mean()) < 4 * se


# ---------------------------------------------------------------------------------------------
# Deterministic initializers
# ---------------------------------------------------------------------------------------------

NUMERIC = ["float16", "bfloat16", "float32", "float64", "int8", "int32", "uint16", "int64", "bool", "complex64"]


@pytest.mark.parametrize("dtype", NUMERIC)
def test_zeros_ones_constant_any_numeric_dtype(dtype):
    dt = _np_dtype(dtype)
    for shape in SHAPES:
        z, o, c = wi.Zeros()(shape, dtype), wi.Ones()(shape, dtype), wi.Constant(1)(shape, dtype)
        for x in (z, o, c):
            assert x.shape == shape and x.dtype == dt
        assert np.all(z == 0) and np.all(o == 1) and np.all(c == 1)


def test_constant_values():
    np.testing.assert_array_equal(wi.Constant(6.0)((3, 3)), np.full((3, 3), 6.0, np.float32))
    arr = np.random.default_rng(0).random((3, 3))
    np.testing.assert_array_equal(wi.Constant(arr)((3, 3), "float64"), arr)
    np.testing.assert_array_equal(wi.Constant([1.0, 2.0])((2, 2)), np.array([[1, 2], [1, 2]], np.float32))
    assert wi.Constant(-3)((2,), "int8").tolist() == [-3, -3]
    assert wi.Constant(np.inf)((1,)).tolist() == [np.inf]


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64", "int32", "bool"])
@pytest.mark.parametrize("shape", [(3, 3), (2, 5), (5, 2), (0, 3)])
def test_identity(shape, dtype):
    dt = _np_dtype(dtype)
    gain = 1 if dtype in ("int32", "bool") else 2.5
    w = wi.Identity(gain=gain)(shape, dtype)
    assert w.shape == shape and w.dtype == dt
    np.testing.assert_array_equal(w.astype(np.float64), gain * np.eye(*shape))


def test_stft_formula_and_broadcast():
    frame, ch, bins = 16, 3, 9
    n = 2 * (bins - 1)
    t = np.arange(frame)[:, None]
    f = np.arange(bins)[None, :]
    real = wi.STFT(window=None)((frame, ch, bins), "float64")
    imag = wi.STFT(side="imag", window=None)((frame, ch, bins), "float64")
    for c in range(ch):
        np.testing.assert_allclose(real[:, c, :], np.cos(-2 * np.pi * t * f / n), atol=1e-12)
        np.testing.assert_allclose(imag[:, c, :], np.sin(-2 * np.pi * t * f / n), atol=1e-12)
    signal = pytest.importorskip("scipy.signal")
    for window, periodic, scaling in [
        ("hann", False, "density"),
        ("hamming", True, "spectrum"),
        ("tukey", False, None),
    ]:
        w = signal.get_window(window, frame, fftbins=periodic)
        div = {"density": np.sqrt(np.sum(w**2)), "spectrum": np.sum(np.abs(w)), None: 1.0}[scaling]
        got = wi.STFT(window=window, periodic=periodic, scaling=scaling)((frame, 1, bins), "float64")
        np.testing.assert_allclose(got[:, 0, :], np.cos(-2 * np.pi * t * f / n) * w[:, None] / div, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# Config round trips for every class
# ---------------------------------------------------------------------------------------------


def _non_default_instances():
    return [
        wi.Zeros(),
        wi.Ones(),
        wi.Constant(2.5),
        wi.Constant(np.arange(6.0).reshape(2, 3)),
        wi.Identity(gain=3.0),
        wi.STFT(side="imag", window="hamming", scaling="spectrum", periodic=True),
        wi.STFT(window=[0.5, 1.0, 0.5], scaling=None),
        wi.RandomNormal(1.0, 2.0, seed=3),
        wi.RandomUniform(-1.0, 3.0, seed=4),
        wi.TruncatedNormal(0.5, 0.2, seed=5),
        wi.VarianceScaling(2.0, "fan_out", "uniform", seed=6, input_axes=[0], output_axes=[1, 2]),
        wi.GlorotUniform(seed=7),
        wi.GlorotNormal(seed=8, input_axes=[0, 1], output_axes=[2]),
        wi.LecunUniform(seed=9),
        wi.LecunNormal(seed=10),
        wi.HeUniform(seed=11),
        wi.HeNormal(seed=12),
        wi.Orthogonal(gain=0.5, seed=13),
        wi.RandomNormal(seed=wi.SeedGenerator(14)),
        wi.HeNormal(seed=wi.Stream(15).child("k")),
    ]


def test_round_trip_covers_every_builtin_class():
    covered = {type(i) for i in _non_default_instances()}
    core = {
        c
        for c in builtin_classes()
        if c.__module__.startswith(
            (
                "weightinit.initializers.constant",
                "weightinit.initializers.random_values",
                "weightinit.initializers.variance_scaling",
                "weightinit.initializers.orthogonal",
                "weightinit.initializers.stft",
            )
        )
    }
    assert core <= covered


@pytest.mark.parametrize("init", _non_default_instances(), ids=lambda i: type(i).__name__)
def test_config_round_trip(init, bits):
    cfg = init.get_config()
    rebuilt = type(init).from_config(json.loads(json.dumps(cfg)))
    assert type(rebuilt) is type(init)
    assert rebuilt.get_config() == cfg
    via_registry = wi.deserialize(json.loads(json.dumps(wi.serialize(init))))
    assert type(via_registry) is type(init)
    assert via_registry.get_config() == cfg
    shape = (4, 3, 2)
    if isinstance(init, wi.STFT):
        shape = (3, 1, 4)
    elif isinstance(init, wi.Identity) or (isinstance(init, wi.Constant) and np.ndim(init.value) == 2):
        shape = (2, 3)
    np.testing.assert_array_equal(bits(rebuilt(shape)), bits(via_registry(shape)))
    if not isinstance(getattr(init, "seed", None), wi.SeedGenerator):
        np.testing.assert_array_equal(bits(rebuilt(shape)), bits(init(shape)))
    assert repr(init).startswith(type(init).__name__ + "(")


def test_identity_keeps_gain_in_config():
    assert wi.Identity(gain=2.0).get_config() == {"gain": 2.0}
    np.testing.assert_array_equal(wi.Identity.from_config({"gain": 2.0})((2, 2)), 2 * np.eye(2, dtype=np.float32))


def test_variance_scaling_normalizes_mode_and_distribution():
    cfg = wi.VarianceScaling(mode="Fan_Avg", distribution="NORMAL", seed=1).get_config()
    assert cfg["mode"] == "fan_avg" and cfg["distribution"] == "truncated_normal"
    assert wi.GlorotNormal(seed=0).get_config() == {"seed": 0, "input_axes": None, "output_axes": None}


def test_variance_scaling_axes():
    init = wi.VarianceScaling(2.0, "fan_in", "untruncated_normal", seed=3, input_axes=[0], output_axes=[1, 2])
    assert init.variance((32, 4, 16)) == 2.0 / 32
    x = init((32, 4, 16 * 64), "float64")
    _check_moments(x.ravel(), stats.norm(0, math.sqrt(2.0 / 32)))
    assert wi.VarianceScaling(2.0, seed=3).variance((32, 4, 16)) == 2.0 / 128
    assert wi.compute_fans((512, 8, 64), [0], [1, 2]) == (512, 512)
    assert wi.compute_fans((512, 8, 64), [0, 1], [2]) == (4096, 64)
