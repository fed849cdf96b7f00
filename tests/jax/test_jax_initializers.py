"""weightinit.jax: the jax.nn.initializers API on the weightinit stream, in flax.linen and flax.nnx."""

from __future__ import annotations

import math

import numpy as np
import pytest

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402

import weightinit as wi  # noqa: E402
import weightinit.jax as wij  # noqa: E402
from weightinit.executors import jax as ex  # noqa: E402


def _eq(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a.view(np.uint8), b.view(np.uint8))


def test_stream_key_maps_seed_and_raw_keys():
    for s in (0, 5, 2**32 - 1):  # seeds above 2**32 need x64 in jax.random.key
        assert [int(w) for w in wij.stream_key(jax.random.key(s))] == list(wi.Stream(s).key)
        assert [int(w) for w in wij.stream_key(jax.random.PRNGKey(s))] == list(wi.Stream(s).key)
    k1, k2 = jax.random.split(jax.random.key(0))
    assert not np.array_equal(wij.stream_key(k1), wij.stream_key(k2))
    traced = jax.jit(wij.stream_key)(jax.random.key(9))
    assert [int(w) for w in traced] == list(wi.Stream(9).key)
    with pytest.raises(TypeError, match="`key`"):
        wij.stream_key(jnp.zeros((2, 2), jnp.uint32))


@pytest.mark.parametrize(
    "builder, core",
    [
        (wij.he_normal, wi.HeNormal),
        (wij.he_uniform, wi.HeUniform),
        (wij.glorot_normal, wi.GlorotNormal),
        (wij.glorot_uniform, wi.GlorotUniform),
        (wij.lecun_normal, wi.LecunNormal),
        (wij.lecun_uniform, wi.LecunUniform),
    ],
)
def test_presets_equal_core_for_2d_and_conv(builder, core):
    key = jax.random.key(11)
    for shape in [(17, 5), (3, 3, 4, 8)]:
        ref = core(seed=11)(shape)
        assert _eq(builder()(key, shape), ref)
        assert _eq(jax.jit(builder(), static_argnums=(1,))(key, shape), ref)


def test_semantics_follow_jax():
    key = jax.random.key(1)
    assert _eq(wij.normal(0.5)(key, (100,)), wi.sample(wi.Normal(0.0, 0.5), wi.Stream(1), (100,), "float32"))
    tn = wij.truncated_normal(0.5, lower=-1.0, upper=3.0)(key, (100,))
    assert _eq(tn, wi.sample(wi.TruncatedNormalDistribution(0.0, 0.5, -0.5, 1.5), wi.Stream(1), (100,), "float32"))
    u = wij.uniform(2.0)(key, (1000,))
    assert float(u.min()) >= 0 and float(u.max()) < 2.0
    # variance_scaling "normal" is untruncated in JAX.
    vs = wij.variance_scaling(2.0, "fan_in", "normal")(key, (50, 7))
    assert _eq(vs, wi.VarianceScaling(2.0, "fan_in", "untruncated_normal", seed=1)((50, 7)))
    # fan_geo_avg, batch_axis and explicit axes use JAX's receptive-field fans.
    assert wij.jax_fans((3, 3, 16, 32)) == (144, 288)
    assert wij.jax_fans((5,), in_axis=0, out_axis=()) == (5, 1)
    assert wij.jax_fans((4, 6, 8), batch_axis=0) == (6, 8)
    w = wij.variance_scaling(1.0, "fan_geo_avg", "uniform", in_axis=0, out_axis=(1, 2))(key, (6, 2, 4))
    limit = math.sqrt(3.0 / math.sqrt(6 * 8))
    assert _eq(w, wi.sample(wi.Uniform(-limit, limit), wi.Stream(1), (6, 2, 4), "float32"))
    with pytest.raises(ValueError, match="default in_axis"):
        wij.he_normal()(key, (5,))
    with pytest.raises(ValueError, match="`distribution`"):
        wij.variance_scaling(1.0, "fan_in", "cauchy")
    with pytest.raises(ValueError, match="`dtype`"):
        wij.uniform()(key, (2,), jnp.complex64)


UNIFORM_N, UNIFORM_SCALE = 100_000, 2.5


def _uniform_failures(x, scale, moment_failures, ks_pvalue) -> list[str]:
    """KS (p > 1e-6) and mean/variance within 5 standard errors of U[0, scale), from the sample size."""
    from scipy import stats

    x = np.asarray(x)
    out = moment_failures(x, scale / 2, scale**2 / 12, 1.8)
    p = ks_pvalue(x, stats.uniform(0.0, scale).cdf)
    if p <= 1e-6:
        out.append(f"KS p-value {p:.3g}")
    return out


def test_uniform_follows_its_distribution_and_jax(moment_failures, ks_pvalue):
    """uniform(scale) is U[0, scale): 1e5 values pass KS and moment checks that see a 2x variance error."""
    from scipy import stats

    key = jax.random.key(3)
    u = np.asarray(wij.uniform(UNIFORM_SCALE)(key, (UNIFORM_N,)))
    assert u.dtype == np.float32 and u.min() >= 0 and u.max() < UNIFORM_SCALE
    assert _uniform_failures(u, UNIFORM_SCALE, moment_failures, ks_pvalue) == []
    # The peer as oracle: jax.nn.initializers.uniform's values have the same distribution.
    peer = np.asarray(jax.nn.initializers.uniform(UNIFORM_SCALE)(key, (UNIFORM_N,)))
    assert stats.ks_2samp(u, peer).pvalue > 1e-6
    # The checks can fail: the same values with 2x and 0.5x their variance are rejected.
    centre = UNIFORM_SCALE / 2
    for factor in (2.0, 0.5):
        failed = _uniform_failures(centre + math.sqrt(factor) * (u - centre), UNIFORM_SCALE, moment_failures, ks_pvalue)
        assert any(f.startswith("variance") for f in failed) and any(f.startswith("KS") for f in failed), failed


def test_uniform_checks_catch_a_builder_with_a_wrong_width(monkeypatch, moment_failures, ks_pvalue):
    """A builder bug drawing U[0, sqrt(2) scale) (2x the variance) fails the checks above."""
    import weightinit.jax.initializers as wji

    real = wji.Uniform
    monkeypatch.setattr(wji, "Uniform", lambda lo, hi: real(lo, lo + math.sqrt(2.0) * (hi - lo)))
    u = wji.uniform(UNIFORM_SCALE)(jax.random.key(3), (UNIFORM_N,))
    failed = _uniform_failures(u, UNIFORM_SCALE, moment_failures, ks_pvalue)
    assert any(f.startswith("variance") for f in failed), failed


def test_dtypes_and_complex():
    key = jax.random.key(2)
    for dt in (jnp.float16, jnp.bfloat16, jnp.float32):
        w = wij.he_normal()(key, (8, 4), dt)
        assert w.dtype == dt
        assert _eq(w, wi.HeNormal(seed=2)((8, 4), np.dtype(dt)))
    z = wij.normal(1.0)(key, (20000,), jnp.complex64)
    assert z.dtype == jnp.complex64
    assert abs(float(jnp.mean(jnp.abs(z) ** 2)) - 1.0) < 0.05
    for dist in ("uniform", "normal", "truncated_normal"):
        z = wij.variance_scaling(2.0, "fan_in", dist)(key, (400, 100), jnp.complex64)
        assert abs(float(jnp.mean(jnp.abs(z) ** 2)) * 400 - 2.0) < 0.1, dist
    assert wij.zeros(key, (2, 3)).dtype == jnp.float32
    assert wij.constant(3, jnp.int32)(key, (2,)).tolist() == [3, 3]


def test_same_key_same_values_split_keys_differ():
    init = wij.glorot_uniform()
    k = jax.random.key(0)
    a, b = init(k, (6, 6)), init(k, (6, 6))
    assert _eq(a, b)
    k1, k2 = jax.random.split(k)
    assert not np.array_equal(init(k1, (6, 6)), init(k2, (6, 6)))


def test_orthogonal_and_delta_orthogonal():
    key = jax.random.key(4)
    q = wij.orthogonal()(key, (6, 4))
    np.testing.assert_allclose(np.asarray(q).T @ np.asarray(q), np.eye(4), atol=1e-5)
    np.testing.assert_allclose(np.asarray(q), wi.Orthogonal(seed=4)((6, 4)), atol=1e-5)
    q = wij.orthogonal(scale=2.0, column_axis=0)(key, (3, 2, 5))
    m = np.moveaxis(np.asarray(q), 0, -1).reshape(10, 3)
    np.testing.assert_allclose(m.T @ m, 4 * np.eye(3), atol=1e-4)
    assert wij.orthogonal()(key, (0, 3)).shape == (0, 3)
    q = jax.jit(wij.orthogonal(), static_argnums=(1,))(key, (4, 6))
    np.testing.assert_allclose(np.asarray(q) @ np.asarray(q).T, np.eye(4), atol=1e-5)
    with pytest.raises(ValueError, match="2D"):
        wij.orthogonal()(key, (3,))
    w = wij.delta_orthogonal()(key, (4, 4, 3, 5))
    centre = np.asarray(w[1, 1])
    np.testing.assert_allclose(centre @ centre.T, np.eye(3), atol=1e-5)
    assert float(jnp.abs(w).sum()) == pytest.approx(float(jnp.abs(w[1, 1]).sum()))
    with pytest.raises(ValueError, match="fan_in"):
        wij.delta_orthogonal()(key, (3, 3, 5, 4))


def test_wrap_any_initializer():
    key = jax.random.key(3)
    assert _eq(wij.wrap("he_normal")(key, (5, 7)), wi.HeNormal(seed=3)((5, 7)))
    assert _eq(wij.wrap(wi.RandomUniform(-1, 1, seed=99))(key, (9,)), wi.RandomUniform(-1, 1, seed=3)((9,)))
    assert _eq(
        jax.jit(wij.wrap(wi.TruncatedNormal(stddev=0.2)), static_argnums=(1,))(key, (4, 4)),
        wi.TruncatedNormal(stddev=0.2, seed=3)((4, 4)),
    )
    assert _eq(wij.wrap(wi.Identity(2.0))(key, (3, 3)), wi.Identity(2.0)((3, 3)))
    q = wij.wrap(wi.Orthogonal(gain=2.0))(key, (5, 3))
    np.testing.assert_allclose(np.asarray(q), wi.Orthogonal(gain=2.0, seed=3)((5, 3)), atol=1e-5)

    class Halves(wi.Initializer):
        def __call__(self, shape, dtype=None):
            return np.full(shape, 0.5, np.dtype(dtype))

    out = jax.jit(wij.wrap(Halves()), static_argnums=(1,))(key, (2,))
    assert out.tolist() == [0.5, 0.5]
    with pytest.raises(TypeError, match="`initializer`"):
        wij.wrap(3)


def test_executor_is_used_in_graph():
    # The key can be a jit argument: values do not depend on tracing.
    f = jax.jit(lambda k: wij.he_uniform()(k, (8, 8)))
    assert _eq(f(jax.random.key(5)), wi.HeUniform(seed=5)((8, 8)))
    assert _eq(
        f(jax.random.key(5)), ex.sample(wi.HeUniform(seed=0).distribution_for((8, 8)), wi.Stream(5), (8, 8), "float32")
    )


def test_flax_linen_models():
    nn = pytest.importorskip("flax.linen")

    class Model(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = nn.Conv(8, (3, 3), kernel_init=wij.he_normal(), name="conv")(x)
            x = x.reshape((x.shape[0], -1))
            return nn.Dense(4, kernel_init=wij.glorot_uniform(), bias_init=wij.zeros, name="dense")(x)

    model = Model()
    key = jax.random.key(0)
    params = jax.jit(model.init)(key, jnp.ones((1, 5, 5, 2)))["params"]
    again = model.init(key, jnp.ones((1, 5, 5, 2)))["params"]
    assert _eq(params["conv"]["kernel"], again["conv"]["kernel"])
    # linen derives each parameter's key privately: capture it, then compare with the core on its stream.
    conv = nn.Conv(8, (3, 3), kernel_init=wij.he_normal())
    k = jax.random.key(7)
    p = conv.init(k, jnp.ones((1, 5, 5, 2)))["params"]["kernel"]
    captured = {}

    def spy(key, shape, dtype=jnp.float32):
        captured["key"] = key
        return wij.he_normal()(key, shape, dtype)

    nn.Conv(8, (3, 3), kernel_init=spy).init(k, jnp.ones((1, 5, 5, 2)))
    stream = wi.Stream.from_key(tuple(int(w) for w in wij.stream_key(captured["key"])))
    assert _eq(p, wi.HeNormal(seed=stream)((3, 3, 2, 8)))
    assert params["dense"]["kernel"].shape == (200, 4)


def test_flax_nnx_linear():
    nnx = pytest.importorskip("flax.nnx")
    captured = {}

    def spy(key, shape, dtype=jnp.float32):
        captured["key"] = key
        return wij.lecun_normal()(key, shape, dtype)

    a = nnx.Linear(6, 3, kernel_init=wij.lecun_normal(), rngs=nnx.Rngs(params=0))
    nnx.Linear(6, 3, kernel_init=spy, rngs=nnx.Rngs(params=0))
    stream = wi.Stream.from_key(tuple(int(w) for w in wij.stream_key(captured["key"])))
    assert _eq(a.kernel.get_value(), wi.LecunNormal(seed=stream)((6, 3)))
