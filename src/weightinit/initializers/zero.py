"""Deterministic identity-based schemes: ZerO (Zhao et al., 2022) and the IRNN recurrence (Le et al., 2015)."""

from __future__ import annotations

import math

import numpy as np

from weightinit.common.dtypes import require_float, require_numeric
from weightinit.common.errors import InitializerValueError, value_error
from weightinit.common.validate import real_number
from weightinit.initializers.base import BuiltinInitializer
from weightinit.initializers.names import builtin

__all__ = ["ZerO", "IRNN", "hadamard", "zero_matrix"]


def hadamard(p: int) -> np.ndarray:
    """The Sylvester Hadamard matrix of order ``p`` (a power of 2): ``H[i, j] = (-1)^popcount(i & j)``.

    >>> hadamard(2).tolist()
    [[1, 1], [1, -1]]
    """
    if p < 1 or p & (p - 1):
        raise value_error("p", p, "must be a power of 2")
    i = np.arange(p)
    bits = i[:, None] & i[None, :]
    parity = np.zeros_like(bits)
    while bits.any():
        parity ^= bits & 1
        bits >>= 1
    return (1 - 2 * parity).astype(np.int64)


def zero_matrix(n_in: int, n_out: int) -> np.ndarray:
    """ZerO's matrix for a layer ``n_in -> n_out``, in channels-last ``(n_in, n_out)`` layout (float64).

    ``n_out <= n_in``: the partial identity ``w[i, o] = (i == o)``.
    ``n_out > n_in``: with ``p = 2^ceil(log2(n_out))``,
    ``w[i, o] = H_p[i, o] / sqrt(p)``, i.e. ``I* H_p I*`` with the normalized
    Sylvester Hadamard matrix (the official implementation's scale).
    """
    if n_out <= n_in:
        return np.eye(n_in, n_out)
    p = 1 << max(0, math.ceil(math.log2(n_out)))
    return hadamard(p)[:n_in, :n_out] / math.sqrt(p)


@builtin("zero_init", "ZerOInit")
class ZerO(BuiltinInitializer):
    """ZerO initialization: deterministic identity and Hadamard matrices, no randomness (Zhao et al., 2022).

    Formula, for a channels-last kernel ``(in, out)`` (``(*k, in, out)`` for
    convolutions: the matrix sits at the centre tap ``k // 2``, zeros elsewhere):

    * ``out <= in``: ``w = I*`` (ones on the main diagonal: the first ``out`` inputs pass through);
    * ``out > in``: ``w = I* H_m I* / 2^(m/2)``, ``m = ceil(log2(out))``,
      ``H_m`` the Sylvester Hadamard matrix of order ``2^m``: the first ``in``
      rows and ``out`` columns of the orthonormal Hadamard matrix.

    Sizes need not be powers of two.  The scale ``2^(-m/2)`` (orthonormal
    Hadamard) is the authors' implementation; Algorithm 1 of the paper
    prints ``2^(-(m-1)/2)``.  Reference: Zhao, Fakhry, Bhattacharyya, Sherry,
    Alverson & Zou, *ZerO Initialization: Initializing Neural Networks with
    only Zeros and Ones*, TMLR 2022.

    >>> import weightinit as wi
    >>> wi.ZerO()((2, 3)).tolist()
    [[0.5, 0.5, 0.5], [0.5, -0.5, 0.5]]
    """

    group = "identity"
    formula = "out <= in: I*; out > in: I* H_m I* / 2^(m/2), m = ceil(log2 out); conv: centre tap k//2"
    elementwise = False

    def _check_dtype(self, dtype):
        return require_float(dtype, "ZerO")

    def _check_shape(self, shape):
        if len(shape) < 2:
            raise InitializerValueError(f"ZerO needs a kernel of rank >= 2 (*kernel, in, out); received shape={shape}.")

    def _generate(self, shape, dtype, region, stream):
        w = np.zeros(shape, dtype=dtype)
        if 0 in shape:
            return w
        w[tuple(k // 2 for k in shape[:-2])] = zero_matrix(shape[-2], shape[-1]).astype(dtype)
        return w


@builtin()
class IRNN(BuiltinInitializer):
    """IRNN recurrent kernel: ``gain`` times the identity (Le, Jaitly & Hinton, 2015).

    Formula: for a recurrent kernel ``(units, k * units)`` (``k`` fused gates
    or a plain ``k = 1`` RNN), each ``(units, units)`` block is ``gain * I``.
    Default ``gain=1``; the paper also tries 0.01-scaled identities for some
    tasks.  Reference: Le, Jaitly & Hinton, *A Simple Way to Initialize
    Recurrent Networks of Rectified Linear Units*, arXiv:1504.00941 (2015).

    Args:
      gain: the diagonal value.

    >>> import weightinit as wi
    >>> wi.IRNN(gain=0.5)((2, 4)).tolist()
    [[0.5, 0.0, 0.5, 0.0], [0.0, 0.5, 0.0, 0.5]]
    """

    group = "identity"
    formula = "w = gain * [I, I, ..., I] (one identity per (units, units) block)"
    exact_params = ("gain",)
    elementwise = False

    def __init__(self, gain=1.0) -> None:
        real_number("gain", gain)
        self.gain = gain

    def _check_dtype(self, dtype):
        return require_numeric(dtype, "IRNN")

    def _check_shape(self, shape):
        if len(shape) != 2 or (shape[0] and shape[1] % shape[0]):
            raise InitializerValueError(
                "IRNN needs a 2-D recurrent kernel (units, k * units); received "
                f"shape={shape}. Use Identity for other rectangular matrices."
            )

    def _generate(self, shape, dtype, region, stream):
        units = shape[0]
        if units == 0:
            return np.zeros(shape, dtype=dtype)
        return np.tile(np.eye(units, dtype=dtype) * np.asarray(self.gain).astype(dtype), (1, shape[1] // units))

    def get_config(self) -> dict:
        return {"gain": self.gain}
