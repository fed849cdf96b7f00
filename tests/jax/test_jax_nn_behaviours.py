"""weightinit.jax shows the behaviours JAX's own initializer tests check (written here, not copied).

JAX's ``NNInitializersTest`` (tests/nn_test.py in the JAX repository; not shipped in the wheel) runs
every initializer under its test base's ``jax_numpy_rank_promotion="raise"``, with legacy raw keys,
over shapes of rank 1-4 and the floating (and, for most, complex) dtypes, both as
``init(key, shape, dtype)`` and ``builder(dtype=dtype)(key, shape)``; checks multi-axis and
batch-axis variance scaling, the 1-D fan error, and that a float32 scalar parameter does not
upcast a bfloat16 initializer.  ``jax.nn.initializers`` itself is the oracle for shapes, dtypes,
fans and error texts here.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402

import weightinit as wi  # noqa: E402
import weightinit.jax as wj  # noqa: E402

SHAPES = [(2,), (2, 2), (2, 3), (3, 2), (2, 3, 4), (4, 3, 2), (2, 3, 4, 5)]
FLOATING = [jnp.bfloat16, jnp.float16, jnp.float32]
INEXACT = FLOATING + [jnp.complex64]
# name -> (weightinit builder, JAX builder, dtypes, min rank, max rank)
RECORDS = {
    "uniform": (wj.uniform, jax.nn.initializers.uniform, FLOATING, 1, 4),
    "normal": (wj.normal, jax.nn.initializers.normal, INEXACT, 1, 4),
    "he_normal": (wj.he_normal, jax.nn.initializers.he_normal, INEXACT, 2, 4),
    "he_uniform": (wj.he_uniform, jax.nn.initializers.he_uniform, INEXACT, 2, 4),
    "glorot_normal": (wj.glorot_normal, jax.nn.initializers.glorot_normal, INEXACT, 2, 4),
    "glorot_uniform": (wj.glorot_uniform, jax.nn.initializers.glorot_uniform, INEXACT, 2, 4),
    "lecun_normal": (wj.lecun_normal, jax.nn.initializers.lecun_normal, INEXACT, 2, 4),
    "lecun_uniform": (wj.lecun_uniform, jax.nn.initializers.lecun_uniform, INEXACT, 2, 4),
    "orthogonal": (wj.orthogonal, jax.nn.initializers.orthogonal, FLOATING, 2, 2),
    "truncated_normal": (wj.truncated_normal, jax.nn.initializers.truncated_normal, FLOATING, 1, 4),
    "delta_orthogonal": (wj.delta_orthogonal, jax.nn.initializers.delta_orthogonal, FLOATING, 4, 4),
    "variance_scaling_fan_geo_avg": (
        lambda dtype=None: wj.variance_scaling(1, "fan_geo_avg", "normal", dtype=dtype),
        lambda dtype=None: jax.nn.initializers.variance_scaling(1, "fan_geo_avg", "normal", dtype=dtype),
        FLOATING,
        2,
        4,
    ),
}


@pytest.fixture
def strict_rank():
    with jax.numpy_rank_promotion("raise"):
        yield


@pytest.mark.parametrize("name", list(RECORDS))
def test_every_shape_and_dtype_under_rank_promotion_raise(strict_rank, name):
    ours, theirs, dtypes, lo, hi = RECORDS[name]
    key = jax.random.PRNGKey(0)  # legacy raw uint32 key, as JAX's tests use
    shapes = [s for s in SHAPES if lo <= len(s) <= hi]
    # JAX's grid, thinned to keep the run short: every dtype, and each shape with one dtype.
    cases = [(shapes[0], d) for d in dtypes] + [(s, jnp.float32) for s in shapes[1:]]
    for shape, dtype in cases:
        want = jax.dtypes.canonicalize_dtype(dtype)
        for val in (ours()(key, shape, dtype), ours(dtype=dtype)(key, shape)):
            assert val.shape == shape and val.dtype == want, (name, shape, dtype, val.shape, val.dtype)
            assert bool(jnp.all(jnp.isfinite(val)))
    # JAX itself agrees on the one case per dtype (it is the oracle for what is accepted).
    for dtype in dtypes:
        try:
            assert theirs()(key, shapes[0], dtype).dtype == jax.dtypes.canonicalize_dtype(dtype)
        except NotImplementedError:  # JAX's CPU QR has no float16/bfloat16 kernel; weightinit's runs in float32
            assert name in ("orthogonal", "delta_orthogonal") and dtype in (jnp.float16, jnp.bfloat16)


def test_orthogonal_values_under_rank_promotion_raise(strict_rank):
    """The QR sign correction (a per-column broadcast) is explicit: same values with promotion raising."""
    key = jax.random.key(4)
    for shape, axis in [((6, 4), -1), ((4, 6), -1), ((3, 5, 4), 1), ((2, 3, 4), 0)]:
        q = np.asarray(wj.orthogonal(scale=2.0, column_axis=axis)(key, shape))
        core = wi.Orthogonal(gain=2.0, seed=4, column_axis=axis)(shape)
        np.testing.assert_allclose(q, core, atol=1e-5)
        cols = np.moveaxis(q, axis, -1).reshape(-1, shape[axis])
        gram = cols.T @ cols if cols.shape[0] >= cols.shape[1] else cols @ cols.T
        np.testing.assert_allclose(gram, 4.0 * np.eye(gram.shape[0]), atol=1e-5)
    w = np.asarray(wj.delta_orthogonal()(key, (3, 3, 4, 6)))
    centre = w[1, 1]
    np.testing.assert_allclose(centre @ centre.T, np.eye(4), atol=1e-5)
    assert np.count_nonzero(w) == np.count_nonzero(centre)


@pytest.mark.parametrize(
    ("shape", "axes"),
    [
        ((2, 3, 4, 5), {"in_axis": (0, 1), "out_axis": (-2, -1)}),
        ((2, 3, 4, 5), {"in_axis": 0, "out_axis": (2, 3), "batch_axis": 1}),
    ],
)
def test_variance_scaling_multi_and_batch_axes(shape, axes):
    from jax._src.nn.initializers import _compute_fans  # JAX's own fan rule, the oracle

    fan_in, fan_out = _compute_fans(shape, **axes)
    assert wj.jax_fans(shape, **axes) == (fan_in, fan_out)
    init = wj.variance_scaling(1.0, "fan_avg", "truncated_normal", **axes)
    assert init(jax.random.PRNGKey(0), shape).shape == shape
    # The variance follows those fans: a large draw with the same axes, within 5 standard errors.
    big = (64, 3, 32, 40) if "batch_axis" in axes else (64, 48, 32, 40)
    fi, fo = _compute_fans(big, **axes)
    w = np.asarray(wj.variance_scaling(1.0, "fan_avg", "normal", **axes)(jax.random.key(1), big), np.float64)
    target = 2.0 / (fi + fo)
    assert abs(w.var() / target - 1) < 5 * math.sqrt(2 / w.size)


def test_one_dimensional_fan_error_is_jaxs():
    key = jax.random.PRNGKey(0)
    with pytest.raises(ValueError) as theirs:
        jax.nn.initializers.variance_scaling(1.0, "fan_avg", "truncated_normal")(key, (5,))
    with pytest.raises(ValueError) as ours:
        wj.variance_scaling(1.0, "fan_avg", "truncated_normal")(key, (5,))
    # JAX's text, then the value received (weightinit's errors always name it).
    assert str(ours.value) == f"{theirs.value} (received shape=(5,))"


def test_no_accidental_upcasting():
    key = jax.random.PRNGKey(0)
    scalar = jnp.array(1.0, dtype=jnp.float32)
    for build in (wj.uniform, wj.normal, wj.truncated_normal):
        key, sub = jax.random.split(key)
        assert build(scalar, jnp.bfloat16)(sub, (4, 4)).dtype == jnp.bfloat16


def test_wrap_honours_every_argument():
    """wrap(x) gives x's own values (its config), with the key as seed: column_axis, axes, modes."""
    key = jax.random.key(7)
    cases = [
        (wi.Orthogonal(gain=1.5, column_axis=0), (5, 3)),
        (wi.Orthogonal(column_axis=1), (3, 6, 2)),
        (wi.VarianceScaling(2.0, "fan_out", "uniform", in_axis=0, out_axis=(1, 2)), (4, 3, 5)),
        (wi.VarianceScaling(1.0, "fan_in", "truncated_normal", input_axes=[0], output_axes=[1, 2]), (8, 2, 4)),
        (wi.RandomNormal(mean=1.0, stddev=3.0), (4, 5)),
        (wi.TruncNormal(mean=0.5, stddev=2.0, lower=-1.0, upper=3.0), (6, 4)),
        (wi.DeltaOrthogonal(scale=2.0), (3, 3, 4, 4)),
        (wi.Constant(0.25), (2, 3)),
        (wi.Identity(gain=3.0), (3, 3)),
    ]
    for inst, shape in cases:
        got = np.asarray(wj.wrap(inst)(key, shape, jnp.float32))
        cfg = {**inst.get_config()}
        if "seed" in cfg:
            cfg["seed"] = 7
        ref = type(inst).from_config(cfg)(shape, "float32")
        if isinstance(inst, (wi.Orthogonal, wi.DeltaOrthogonal)):
            np.testing.assert_allclose(got, ref, atol=1e-5)  # the QR's last bits depend on the solver
        else:
            assert np.array_equal(got, ref), type(inst).__name__
