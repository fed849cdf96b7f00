"""Structural initializers: Dirac, delta-orthogonal, orthogonal column_axis, sparse, ZerO, IRNN, Haiku's."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import linalg, stats

import weightinit as wi


def _conv_same(x, w, groups=1):
    """Cross-correlation with zero padding k//2 (left), channels-last x (*spatial, cin) and w (*k, cin/g, cout)."""
    k = w.shape[:-2]
    cin_g, cout = w.shape[-2:]
    out_g = cout // groups
    pads = [(kk // 2, kk - 1 - kk // 2) for kk in k]
    xp = np.pad(x, pads + [(0, 0)])
    y = np.zeros(x.shape[:-1] + (cout,))
    for pos in itertools.product(*(range(s) for s in x.shape[:-1])):
        patch = xp[tuple(slice(p, p + kk) for p, kk in zip(pos, k))]
        for g in range(groups):
            pg = patch[..., g * cin_g : (g + 1) * cin_g]
            wg = w[..., g * out_g : (g + 1) * out_g]
            y[pos + (slice(g * out_g, (g + 1) * out_g),)] = np.tensordot(pg, wg, axes=len(k) + 1)
    return y


@pytest.mark.parametrize("kernel", [(3,), (3, 3), (4, 2), (3, 1, 2)])
@pytest.mark.parametrize("groups", [1, 3])
def test_dirac_is_identity_under_convolution(kernel, groups):
    cin_g, cout = 2, 6
    w = wi.Dirac(groups=groups)(kernel + (cin_g, cout))
    x = np.random.default_rng(0).standard_normal((5,) * len(kernel) + (cin_g * groups,))
    y = _conv_same(x, w, groups)
    out_g = cout // groups
    for g in range(groups):
        for d in range(out_g):
            if d < cin_g:
                np.testing.assert_allclose(y[..., g * out_g + d], x[..., g * cin_g + d])
            else:
                assert not y[..., g * out_g + d].any()


@pytest.mark.parametrize("groups", [1, 2, 3])
def test_dirac_counts_like_torch(groups):
    w = wi.Dirac(groups=groups)((3, 3, 4, 6))
    n = min(6 // groups, 4) * groups
    assert np.count_nonzero(w) == n and w.sum() == n
    assert wi.Dirac()((4, 2, 2))[2].tolist() == [[1, 0], [0, 1]]  # centre k//2 = 2 for k=4


def test_dirac_errors():
    with pytest.raises(wi.InitializerValueError, match="rank 3, 4 or 5"):
        wi.Dirac()((3, 3))
    with pytest.raises(wi.InitializerValueError, match="`groups`"):
        wi.Dirac(groups=4)((3, 2, 6))
    with pytest.raises(wi.InitializerValueError, match="`groups`"):
        wi.Dirac(groups=0)


@pytest.mark.parametrize("shape", [(3, 4, 8), (4, 4, 3, 3), (3, 2, 3, 2, 5)])
def test_delta_orthogonal_structure(shape):
    w = wi.DeltaOrthogonal(scale=2.0, seed=0)(shape, "float64")
    centre = tuple((k - 1) // 2 for k in shape[:-2])
    q = w[centre]
    np.testing.assert_allclose(q @ q.T, 4.0 * np.eye(shape[-2]), atol=1e-12)
    rest = w.copy()
    rest[centre] = 0
    assert not rest.any()
    if any(k % 2 == 0 for k in shape[:-2]):  # differs from Dirac's centre for even kernels
        assert centre != tuple(k // 2 for k in shape[:-2])


def test_delta_orthogonal_column_axis_and_errors():
    w = wi.DeltaOrthogonal(column_axis=-2, seed=1)((3, 3, 4), "float64")[1]
    np.testing.assert_allclose(w @ w.T, np.eye(3), atol=1e-12)
    with pytest.raises(wi.InitializerValueError, match="in <= out"):
        wi.DeltaOrthogonal(seed=0)((3, 8, 4))
    with pytest.raises(wi.InitializerValueError, match="`column_axis`"):
        wi.DeltaOrthogonal(column_axis=2)


@pytest.mark.parametrize("shape, axis", [((6, 2, 3), 0), ((4, 5, 3), 1), ((3, 4), 0), ((2, 3, 4), -1)])
def test_orthogonal_column_axis(shape, axis):
    w = wi.Orthogonal(gain=1.5, seed=2, column_axis=axis)(shape, "float64")
    m = np.moveaxis(w, axis, -1).reshape(-1, shape[axis])
    gram = m.T @ m if m.shape[0] >= m.shape[1] else m @ m.T
    np.testing.assert_allclose(gram, 2.25 * np.eye(min(m.shape)), atol=1e-12)
    cfg = wi.Orthogonal(seed=2, column_axis=axis).get_config()
    assert ("column_axis" in cfg) == (axis != -1)
    assert wi.Orthogonal.from_config(cfg)(shape).tobytes() == wi.Orthogonal(seed=2, column_axis=axis)(shape).tobytes()


def test_orthogonal_default_config_unchanged():
    assert wi.Orthogonal(seed=1).get_config() == {"seed": 1, "gain": 1.0}


def test_sparse_torch_definition_counts_and_values():
    init = wi.Sparse(sparsity=0.3, stddev=0.5, seed=3)
    w = init((40, 50), "float64")
    assert ((w == 0).sum(axis=1) == math.ceil(0.3 * 50)).all()
    dense = wi.RandomNormal(stddev=0.5, seed=3)((40, 50), "float64")
    nz = w != 0
    np.testing.assert_array_equal(w[nz], dense[nz])  # values come from the stream itself
    assert stats.kstest(w[nz], "norm", args=(0, 0.5)).pvalue > 1e-4
    assert np.array_equal(w, init((40, 50), "float64"))  # deterministic per seed
    masks = [wi.Sparse(0.3, seed=s)((40, 50)) == 0 for s in (3, 4)]
    assert not np.array_equal(*masks)


def test_sparse_mask_is_uniform_over_positions():
    hits = np.zeros(20)
    for s in range(200):
        hits += (wi.Sparse(0.25, seed=s)((10, 20)) == 0).sum(axis=0)
    # each position is zeroed with probability 5/20 in each of 200 * 10 rows
    expected = 200 * 10 * 0.25
    assert stats.chisquare(hits, np.full(20, expected)).pvalue > 1e-4


def test_martens_sparse_counts():
    w = wi.MartensSparse(n_nonzero=15, seed=5)((3, 3, 8, 16), "float64")
    per_unit = (w.reshape(-1, 16) != 0).sum(axis=0)
    assert (per_unit == 15).all()
    small = wi.MartensSparse(n_nonzero=15, seed=5)((4, 3))
    assert (small != 0).all()  # fewer inputs than n_nonzero: all connected
    v = wi.MartensSparse(n_nonzero=50, seed=6)((400, 200), "float64")
    assert stats.kstest(v[v != 0], "norm").pvalue > 1e-4


def test_sparse_errors():
    with pytest.raises(wi.InitializerValueError, match="`sparsity`"):
        wi.Sparse(1.5)
    with pytest.raises(wi.InitializerValueError, match="2-D"):
        wi.Sparse(0.1, seed=0)((3, 3, 3))
    with pytest.raises(wi.InitializerValueError, match="`n_nonzero`"):
        wi.MartensSparse(0)
    with pytest.raises(wi.InitializerValueError, match="`stddev`"):
        wi.MartensSparse(stddev=-1)


@pytest.mark.parametrize("n_in, n_out", [(4, 4), (8, 3), (3, 8), (5, 7), (6, 20), (1, 3), (12, 100), (5, 16)])
def test_zero_exact_values(n_in, n_out):
    w = wi.ZerO()((n_in, n_out), "float64")
    if n_out <= n_in:
        np.testing.assert_array_equal(w, np.eye(n_in, n_out))
    else:
        p = 2 ** math.ceil(math.log2(n_out))
        np.testing.assert_array_equal(w, linalg.hadamard(p)[:n_in, :n_out] / math.sqrt(p))
        if n_out == p:  # a whole normalized Hadamard block: orthonormal rows (the layer is an isometry)
            np.testing.assert_allclose(w @ w.T, np.eye(n_in), atol=1e-12)


def test_zero_conv_and_determinism():
    w = wi.ZerO()((3, 3, 4, 6))
    assert np.array_equal(w[1, 1], wi.ZerO()((4, 6)))
    w[1, 1] = 0
    assert not w.any()
    assert wi.get("zero_init").__class__ is wi.ZerO


def test_irnn():
    w = wi.IRNN(gain=0.5)((3, 9))
    for k in range(3):
        np.testing.assert_array_equal(w[:, 3 * k : 3 * k + 3], 0.5 * np.eye(3))
    with pytest.raises(wi.InitializerValueError, match="IRNN"):
        wi.IRNN()((3, 4))
    with pytest.raises(wi.InitializerValueError, match="`gain`"):
        wi.IRNN(gain=float("inf"))


def test_batched_identity():
    w = wi.BatchedIdentity(gain=3.0)((2, 3, 4, 5))
    np.testing.assert_array_equal(w, np.broadcast_to(3.0 * np.eye(4, 5), (2, 3, 4, 5)))
    assert np.array_equal(wi.BatchedIdentity()((2, 4, 5), region=(slice(1, 2), slice(1, 3))), np.eye(4, 5)[None, 1:3])
    with pytest.raises(wi.InitializerValueError, match="rank >= 2"):
        wi.BatchedIdentity()((3,))


def test_uniform_scaling():
    init = wi.UniformScaling(scale=2.0, seed=7)
    w = init((5, 20, 100), "float64")
    lim = 2.0 * math.sqrt(3 / 100)
    assert stats.kstest(w.ravel(), "uniform", args=(-lim, 2 * lim)).pvalue > 1e-4
    assert np.array_equal(init((5, 20, 100), region=(slice(1, 3),)), init((5, 20, 100))[1:3])
    with pytest.raises(wi.InitializerValueError, match="`scale`"):
        wi.UniformScaling(scale=0)
