"""Deterministic initializers: Zeros, Ones, Constant, Identity."""

from __future__ import annotations

import numpy as np

from weightinit.common.checks import real_number
from weightinit.common.dtypes import bfloat16, require_numeric
from weightinit.common.errors import InitializerValueError, peer_error, value_error
from weightinit.common.shapes import RegionPlan
from weightinit.common.validate import cast_exact
from weightinit.initializers.base import BuiltinInitializer
from weightinit.initializers.names import builtin

__all__ = ["Zeros", "Ones", "Constant", "Identity", "cast_exact"]


class _Filled(BuiltinInitializer):
    group = "constant"

    def _check_dtype(self, dtype):
        return require_numeric(dtype, type(self).__name__)

    def _fill_value(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def _generate(self, shape, dtype, region, stream):
        out_shape = RegionPlan(shape, region).out_shape
        return np.full(out_shape, cast_exact(self._fill_value(), dtype, "value"), dtype=dtype)


@builtin("zero")
class Zeros(_Filled):
    """All zeros.

    Formula: ``w = 0``.  Accepts any numeric or bool dtype.

    >>> import weightinit as wi
    >>> wi.Zeros()((2, 2)).tolist()
    [[0.0, 0.0], [0.0, 0.0]]
    """

    formula = "w = 0"

    def _fill_value(self):
        return 0


@builtin("one")
class Ones(_Filled):
    """All ones.

    Formula: ``w = 1``.  Accepts any numeric or bool dtype.

    >>> import weightinit as wi
    >>> wi.Ones()((2,), "int32").tolist()
    [1, 1]
    """

    formula = "w = 1"

    def _fill_value(self):
        return 1


@builtin()
class Constant(BuiltinInitializer):
    """A constant value, or an array broadcast to the shape.

    Formula: ``w = value``.  Default ``value=0.0`` (so ``get("constant")``
    works, unlike Keras where it raises ``KeyError``).  Integer and bool
    dtypes must hold the value exactly; NaN values are refused.

    Args:
      value: a number or an array that broadcasts to the requested shape.

    >>> import weightinit as wi
    >>> wi.Constant(0.5)((2,)).tolist()
    [0.5, 0.5]
    """

    group = "constant"
    formula = "w = value"

    def __init__(self, value=0.0) -> None:
        if isinstance(value, dict) and value.get("class_name") == "__tensor__":
            cfg = value["config"]
            value = np.asarray(cfg["value"], dtype=cfg.get("dtype"))
        try:
            arr = np.asarray(value)
        except Exception:
            raise value_error("value", value, "must be a number or an array of numbers") from None
        if arr.dtype.kind not in "biufc" and arr.dtype != bfloat16:
            raise value_error("value", value, "must be a number or an array of numbers")
        if arr.dtype.kind in "fc" and np.isnan(arr).any():
            raise value_error("value", value, "must not contain NaN")
        self.value = value

    def _check_dtype(self, dtype):
        return require_numeric(dtype, "Constant")

    def _generate(self, shape, dtype, region, stream):
        arr = np.asarray(self.value)
        try:
            full = np.broadcast_to(arr, shape)
        except ValueError:
            raise InitializerValueError(
                f"`value` of shape {arr.shape} does not broadcast to the requested shape {shape}."
            ) from None
        # Check exactness on the value itself (so the message shows it), then broadcast the cast result.
        full = np.broadcast_to(cast_exact(self.value, dtype, "value"), shape)
        part = full if region is None else full[region]
        return np.array(part, dtype=dtype, order="C", copy=True)

    def get_config(self) -> dict:
        v = self.value
        if isinstance(v, np.ndarray) or (hasattr(v, "__array__") and not np.isscalar(v)):
            arr = np.asarray(v)
            return {"value": {"class_name": "__tensor__", "config": {"value": arr.tolist(), "dtype": arr.dtype.name}}}
        if isinstance(v, np.generic):
            v = v.item()
        return {"value": v}


@builtin("IdentityInitializer")
class Identity(BuiltinInitializer):
    """``gain`` times the identity matrix, for 2-D shapes (rectangular: ones on the main diagonal).

    Formula: ``w[i, j] = gain * (i == j)``.  Unlike Keras 3, ``gain`` is kept
    in the config.  Used for IRNN recurrent kernels (Le et al., 2015).

    Args:
      gain: multiplicative factor (default 1.0).

    >>> import weightinit as wi
    >>> wi.Identity(gain=2.0)((2, 3)).tolist()
    [[2.0, 0.0, 0.0], [0.0, 2.0, 0.0]]
    """

    group = "constant"
    formula = "w = gain * I"
    exact_params = ("gain",)

    def __init__(self, gain=1.0) -> None:
        real_number("gain", gain)
        self.gain = gain

    def _check_dtype(self, dtype):
        return require_numeric(dtype, "Identity")

    def _check_shape(self, shape):
        if len(shape) != 2:
            raise peer_error(
                InitializerValueError,
                "Identity matrix initializer can only be used for 2D matrices",
                "shape",
                shape,
                shown=f"{shape!r} of rank {len(shape)}",
            )

    def _generate(self, shape, dtype, region, stream):
        rp = RegionPlan(shape, region)
        (r0, _, rs), (c0, _, cs) = rp.ranges
        rows = r0 + rs * np.arange(rp.out_shape[0])
        cols = c0 + cs * np.arange(rp.out_shape[1])
        eye = rows[:, None] == cols[None, :]
        g = cast_exact(self.gain, dtype, "gain")
        return np.where(eye, g, np.zeros((), dtype)).astype(dtype)

    def get_config(self) -> dict:
        return {"gain": self.gain}
