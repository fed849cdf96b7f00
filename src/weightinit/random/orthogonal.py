"""Haar-distributed (semi-)orthogonal matrices: the one QR sign-fix rule, and the NumPy routine.

A (semi-)orthogonal ``(rows, cols)`` matrix is the Q factor of a standard normal
matrix ``A`` of shape :func:`gaussian_shape` ``= (max(rows, cols), min(rows, cols))``
drawn from the stream, with each column of ``Q`` multiplied by the sign of
``R``'s diagonal (:func:`qr_signs`; Mezzadri, *How to generate random matrices
from the classical compact groups*, Notices of the AMS, 2007), so ``Q`` is
Haar-distributed rather than biased by the QR routine's sign convention; for
``rows < cols`` the result is ``Q.T``.

One routine per array library follows this recipe and calls these two
functions: :func:`orthogonal_matrix` (NumPy, LAPACK),
:func:`weightinit.executors.torch.orthogonal_` (``torch.linalg.qr`` on the
tensor's device) and :func:`weightinit.executors.jax.orthogonal_matrix`
(``jnp.linalg.qr``, in-graph).  They draw the same ``A`` bit for bit; the Q
factors agree to the QR routines' rounding.

>>> import numpy as np
>>> from weightinit.random.streams import Stream
>>> q = orthogonal_matrix(3, 5, Stream(0), np.float64)
>>> bool(np.allclose(q @ q.T, np.eye(3)))
True
"""

from __future__ import annotations

import numpy as np

from weightinit.random.distributions import Normal
from weightinit.random.sampling import sample

__all__ = ["gaussian_shape", "qr_signs", "orthogonal_matrix", "STANDARD_NORMAL"]

STANDARD_NORMAL = Normal(0.0, 1.0)
"""The distribution of the entries of ``A``."""


def gaussian_shape(rows: int, cols: int) -> tuple[int, int]:
    """Shape ``(max, min)`` of the Gaussian matrix whose reduced QR gives a ``(rows, cols)`` result.

    >>> gaussian_shape(3, 5)
    (5, 3)
    """
    return max(rows, cols), min(rows, cols)


def qr_signs(r, xp):
    """The sign fix of ``A = QR``: ``sign(diag(R))`` with sign(0) = +1, in ``R``'s dtype.

    Multiply the columns of ``Q`` by it (``q * qr_signs(r, xp)`` broadcasts over
    rows).  ``xp`` is the array library of ``r``: ``numpy``, ``torch`` or
    ``jax.numpy`` (only ``diagonal``, ``ones_like`` and ``where`` are used).

    >>> qr_signs(np.array([[-2.0, 1.0], [0.0, 0.0]]), np).tolist()
    [-1.0, 1.0]
    """
    d = xp.diagonal(r)
    one = xp.ones_like(d)
    return xp.where(d < 0, -one, one)


def orthogonal_matrix(rows: int, cols: int, stream, dtype) -> np.ndarray:
    """A (rows, cols) NumPy matrix with orthonormal columns (rows >= cols) or rows (rows < cols).

    Draws ``A`` of :func:`gaussian_shape` from the stream's standard normals in
    ``dtype`` (float32 or float64), takes the reduced QR ``A = QR`` through
    LAPACK and multiplies each column of ``Q`` by :func:`qr_signs`.

    Memory: ``A`` and ``Q`` (LAPACK needs both); ``A`` is released as soon as
    the QR returns and the sign correction is applied to ``Q`` in place.  For
    ``rows < cols`` the result is the transposed view ``Q.T`` (no copy).
    """
    a = sample(STANDARD_NORMAL, stream, gaussian_shape(rows, cols), dtype)
    q, r = np.linalg.qr(a, mode="reduced")
    del a
    q *= qr_signs(r, np)  # broadcasts over rows, in place
    return q.T if rows < cols else q
