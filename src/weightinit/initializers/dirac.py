"""Convolution kernels that start as identities: Dirac (torch ``dirac_``) and delta-orthogonal (Xiao et al., 2018).

Both take channels-last kernels ``(*k, in, out)`` of rank 3, 4 or 5 and are
zero except at one spatial tap.  They differ in that tap and in the matrix
there (docs/compatibility.md):

* :class:`Dirac`: identity matrix (per group), centre ``k // 2`` (torch).
* :class:`DeltaOrthogonal`: random orthogonal matrix, centre ``(k - 1) // 2`` (JAX),
  requires ``in <= out``.

For odd kernels the centres agree; for even kernels they differ by one.
"""

from __future__ import annotations

import numbers

import numpy as np

from weightinit.common.checks import real_number
from weightinit.common.dtypes import compute_dtype, require_float, require_numeric
from weightinit.common.errors import InitializerValueError, value_error
from weightinit.initializers.base import BuiltinInitializer, RandomInitializer
from weightinit.initializers.names import builtin
from weightinit.initializers.orthogonal import orthogonal_matrix

__all__ = ["Dirac", "DeltaOrthogonal"]


def _conv_rank(shape, who):
    if len(shape) not in (3, 4, 5):
        raise InitializerValueError(
            f"{who} needs a convolution kernel of rank 3, 4 or 5 in the channels-last layout (*kernel, in, out); "
            f"received shape={shape} of rank {len(shape)}."
        )


@builtin()
class Dirac(BuiltinInitializer):
    """Identity convolution kernel (PyTorch ``nn.init.dirac_``), in channels-last layout.

    Formula: for a kernel ``(*k, in, out)`` with ``groups`` groups and
    ``out_g = out // groups``: ``w[k1//2, ..., d, g*out_g + d] = gain`` for each
    group ``g`` and ``d < min(out_g, in)``, zero elsewhere.  A convolution
    (cross-correlation, 'same' padding) with this kernel copies input channel
    ``d`` of each group to its output channel.  The centre is ``k // 2``
    (index 2 for k=4), as torch.  Default ``groups=1``, ``gain=1``.
    Reference: PyTorch ``torch.nn.init.dirac_``.

    Args:
      groups: number of groups (must divide ``out``).
      gain: value of the non-zero taps (default 1.0).

    >>> import weightinit as wi
    >>> w = wi.Dirac()((3, 2, 2))
    >>> w[1].tolist(), float(w.sum())
    ([[1.0, 0.0], [0.0, 1.0]], 2.0)
    """

    group = "identity"
    formula = "w[k//2, ..., d, g*out/groups + d] = gain for d < min(out/groups, in)"
    exact_params = ("gain",)
    elementwise = False

    def __init__(self, groups=1, gain=1.0) -> None:
        if isinstance(groups, bool) or not isinstance(groups, numbers.Integral) or groups < 1:
            raise value_error("groups", groups, "must be a positive int")
        real_number("gain", gain)
        self.groups = int(groups)
        self.gain = gain

    def _check_dtype(self, dtype):
        return require_numeric(dtype, "Dirac")

    def _check_shape(self, shape):
        _conv_rank(shape, "Dirac")
        if shape[-1] % self.groups:
            raise InitializerValueError(
                f"The output channels ({shape[-1]}, the last dimension) must be divisible by `groups`; received "
                f"groups={self.groups} for shape={shape}."
            )

    def _generate(self, shape, dtype, region, stream):
        w = np.zeros(shape, dtype=dtype)
        out_g = shape[-1] // self.groups
        n = min(out_g, shape[-2])
        centre = tuple(k // 2 for k in shape[:-2])
        d = np.arange(n)
        for g in range(self.groups):
            w[(*centre, d, g * out_g + d)] = self.gain
        return w

    def get_config(self) -> dict:
        return {"groups": self.groups, "gain": self.gain}


@builtin()
class DeltaOrthogonal(RandomInitializer):
    """Delta-orthogonal convolution kernel (Xiao et al., 2018; ``jax.nn.initializers.delta_orthogonal``).

    Formula: for a kernel ``(*k, in, out)`` with ``in <= out``:
    ``w[(k1-1)//2, ..., (kn-1)//2, :, :] = scale * Q`` with ``Q`` an ``(in, out)``
    matrix with orthonormal rows (Haar, as :class:`Orthogonal`), zero
    elsewhere.  The centre is ``(k - 1) // 2`` (JAX), so for even kernels it
    differs from :class:`Dirac`'s ``k // 2``.  Defaults ``scale=1``, ``column_axis=-1``.
    Reference: Xiao, Bahri, Sohl-Dickstein, Schoenholz & Pennington,
    *Dynamical Isometry and a Mean Field Theory of CNNs*, ICML 2018.

    Args:
      scale: multiplicative factor.
      column_axis: axis of the ``(in, out)`` core holding the columns (-1 or -2, as JAX).
      seed: int, None, SeedGenerator or Stream.

    >>> import numpy as np, weightinit as wi
    >>> w = wi.DeltaOrthogonal(seed=0)((3, 3, 4, 8))
    >>> q = w[1, 1]
    >>> bool(np.allclose(q @ q.T, np.eye(4), atol=1e-5)), int((w != 0).sum() - (q != 0).sum())
    (True, 0)
    """

    group = "orthogonal"
    formula = "w[(k-1)//2, ..., :, :] = scale * Q, Q (in x out) orthogonal, in <= out; zero elsewhere"
    exact_params = ("scale",)
    elementwise = False

    def __init__(self, scale=1.0, column_axis=-1, seed=None) -> None:
        real_number("scale", scale)
        if column_axis not in (-1, -2, 0, 1) or isinstance(column_axis, bool):
            raise value_error("column_axis", column_axis, "must be -1 or -2 (an axis of the (in, out) core)")
        self.scale = scale
        self.column_axis = int(column_axis)
        super().__init__(seed)

    def _check_dtype(self, dtype):
        return require_float(dtype, "DeltaOrthogonal")

    def _check_shape(self, shape):
        _conv_rank(shape, "DeltaOrthogonal")
        if shape[-2] > shape[-1]:
            raise InitializerValueError(
                f"`fan_in` must be less or equal than `fan_out`: DeltaOrthogonal needs in <= out; received "
                f"shape={shape} with in={shape[-2]}, out={shape[-1]}."
            )

    def _sample(self, shape, dtype, region, stream):
        w = np.zeros(shape, dtype=dtype)
        n_in, n_out = shape[-2:]
        if n_in * n_out == 0:
            return w
        ct = compute_dtype(dtype)
        if self.column_axis % 2 == 1:
            q = orthogonal_matrix(n_in, n_out, stream, ct)
        else:  # columns on the `in` axis: an (out, in) matrix, transposed
            q = orthogonal_matrix(n_out, n_in, stream, ct).T
        q = q * ct.type(self.scale)
        w[tuple((k - 1) // 2 for k in shape[:-2])] = q.astype(dtype)
        return w

    def get_config(self) -> dict:
        return {**super().get_config(), "scale": self.scale, "column_axis": self.column_axis}
