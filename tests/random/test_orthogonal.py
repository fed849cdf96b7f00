"""One orthogonal routine per array library (NumPy, torch, JAX), one QR sign-fix rule (random/orthogonal.py)."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest

import weightinit as wi
from weightinit.random import orthogonal as ro
from weightinit.random.streams import Stream

SHAPES = [(6, 3), (3, 6), (5, 5), (1, 4)]
SRC = pathlib.Path(wi.__file__).parent


def _check_haar_fix(a, q, r, signs):
    """Q' = Q * s and R' = s[:, None] * R still factor A, and R' has a non-negative diagonal (Mezzadri 2007)."""
    a, q, r, signs = (np.asarray(x, np.float64) for x in (a, q, r, signs))
    assert set(np.unique(signs)) <= {-1.0, 1.0}
    q2, r2 = q * signs, signs[:, None] * r
    assert np.allclose(q2 @ r2, a, atol=1e-5)
    assert (np.diagonal(r2) >= 0).all()


def test_qr_signs_rule_numpy():
    a = np.random.default_rng(0).standard_normal((7, 4))
    q, r = np.linalg.qr(a)
    _check_haar_fix(a, q, r, ro.qr_signs(r, np))
    assert ro.qr_signs(np.zeros((2, 2), np.float32), np).tolist() == [1.0, 1.0]  # sign(0) = +1
    assert ro.qr_signs(np.zeros((2, 2), np.float32), np).dtype == np.float32


def test_qr_signs_rule_torch_and_jax():
    a = np.random.default_rng(1).standard_normal((7, 4)).astype(np.float32)
    torch = pytest.importorskip("torch")
    q, r = torch.linalg.qr(torch.from_numpy(a))
    s = ro.qr_signs(r, torch)
    assert s.dtype == torch.float32
    _check_haar_fix(a, q.numpy(), r.numpy(), s.numpy())
    jnp = pytest.importorskip("jax.numpy")
    q, r = jnp.linalg.qr(jnp.asarray(a))
    s = ro.qr_signs(r, jnp)
    assert s.dtype == jnp.float32
    _check_haar_fix(a, q, r, s)


@pytest.mark.parametrize("rows, cols", SHAPES)
def test_numpy_torch_jax_routines_agree(rows, cols):
    """The three routines draw the same A and apply the same rule: equal up to the QR routines' rounding."""
    ref = ro.orthogonal_matrix(rows, cols, Stream(3), np.float64)
    assert ref.shape == (rows, cols)
    m = ref.T @ ref if rows >= cols else ref @ ref.T
    assert np.allclose(m, np.eye(min(rows, cols)), atol=1e-12)
    torch = pytest.importorskip("torch")
    from weightinit.executors.torch import orthogonal_

    t = orthogonal_(torch.empty(rows, cols, dtype=torch.float64), 1.0, Stream(3))
    assert np.allclose(t.numpy(), ref, atol=1e-12)
    pytest.importorskip("jax")
    from weightinit.executors import jax as ex

    j = np.asarray(ex.orthogonal_matrix(Stream(3), rows, cols, np.float32))  # float32: JAX without x64
    assert np.allclose(j, ro.orthogonal_matrix(rows, cols, Stream(3), np.float32), atol=1e-5)


@pytest.mark.parametrize("shape, axis", [((3, 2, 5), 0), ((4, 6), 0), ((2, 3, 4), 1)])
def test_jax_wrap_of_orthogonal_honours_column_axis(shape, axis):
    """weightinit.jax.wrap(Orthogonal(column_axis=k)) used to ignore column_axis; now it is the core's matrix."""
    jax = pytest.importorskip("jax")
    import weightinit.jax as wij

    inst = wi.Orthogonal(gain=2.0, seed=4, column_axis=axis)
    got = np.asarray(wij.wrap(inst)(jax.random.key(4), shape, np.float32))
    assert np.allclose(got, inst(shape, "float32"), atol=1e-5)
    assert np.allclose(got, np.asarray(wij.orthogonal(2.0, axis)(jax.random.key(4), shape)), atol=0)


def test_one_owner_of_the_qr_sign_fix():
    """Only the three per-library routines call a QR, and only random/orthogonal.py reads R's diagonal."""
    qr_users, diag_users = set(), set()
    for p in SRC.rglob("*.py"):
        text = p.read_text()
        rel = p.relative_to(SRC).as_posix()
        if "linalg.qr(" in text:
            qr_users.add(rel)
        if "diagonal(r)" in text:
            diag_users.add(rel)
    assert qr_users == {"random/orthogonal.py", "executors/torch.py", "executors/jax.py"}
    assert diag_users == {"random/orthogonal.py"}


def test_old_import_path_is_the_owner():
    from weightinit.initializers.orthogonal import orthogonal_matrix

    assert orthogonal_matrix is ro.orthogonal_matrix
