"""The one validation layer: every argument a user passes is checked here, once, the same way.

Each check takes the argument's name *as the user spelled it* (``std`` for
``weightinit.torch.normal_``, ``stddev`` for Keras' ``RandomNormal``) and
raises an error of weightinit's family (:mod:`weightinit.common.errors`) that
names it and shows the value received.  The checks:

* :func:`real_number` -- a real, finite number: Python or NumPy numbers and
  0-d arrays; never text, bytes or a bool; ``10**400`` is refused with a typed
  error, not an ``OverflowError``.
* :func:`integer` -- an integer (never a bool, never ``3.0``) within bounds.
* :func:`shape` -- a tuple/list-like sequence (not a set, dict or text) of
  non-negative integers, rank <= :data:`MAX_RANK`, element count below
  :data:`MAX_ELEMENTS` (the stream addresses values by 64-bit flat index).
* :func:`allocation` -- refuses, before allocating, an output larger than the
  machine's memory, and turns an allocator's ``MemoryError`` into a typed error.
* :func:`representable` -- a parameter value the requested dtype can hold
  (floats within the dtype's range, integers within range and integral).
* :func:`region` -- a tuple of integer slices, one per leading dimension.
* :func:`config` -- a config dict with string keys, checked against the keys
  a constructor accepts.
* :func:`serialized` -- the envelope of a serialized initializer
  (``class_name``, ``registered_name``, ``module``, ``config``).
* :func:`text` -- a string without lone surrogates.

>>> real_number("stddev", 0.5)
0.5
>>> shape((3, 4))
(3, 4)
>>> try:
...     shape({3, 4})
... except TypeError as e:
...     print(str(e).split(";")[0])
`shape` must be a sequence of non-negative integers (a tuple or list) such as (256, 128)
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Iterable, Mapping

import ml_dtypes
import numpy as np

from weightinit.common.errors import InitializerTypeError, InitializerValueError, type_error, value_error

__all__ = [
    "MAX_RANK",
    "MAX_ELEMENTS",
    "real_number",
    "integer",
    "boolean",
    "shape",
    "allocation",
    "device_memory",
    "empty",
    "representable",
    "dtype_range",
    "region",
    "config",
    "serialized",
    "text",
    "cast_exact",
]

MAX_RANK = 64
"""Largest tensor rank accepted (NumPy's own limit)."""

MAX_ELEMENTS = 2**63
"""Element counts must be below this: flat indices are 64-bit and every executor adds them without wrapping."""


def _is_bool(v) -> bool:
    return isinstance(v, (bool, np.bool_)) or (isinstance(v, np.ndarray) and v.dtype == np.bool_)


def real_number(
    name: str, v, *, finite: bool = True, minimum: float | None = None, strict_minimum: bool = False
) -> float:
    """``v`` as a Python float, or a typed error naming ``name``.

    Accepts Python and NumPy real numbers and 0-d real arrays.  Refuses text
    (even when it parses: ``float("0.5")`` would accept it silently), bytes,
    bools, complex numbers, NaN, and infinities when ``finite``.  Integers too
    large for a float (``10**400``) are refused as not finite.  ``minimum``
    adds ``v >= minimum`` (``v > minimum`` with ``strict_minimum``).

    >>> real_number("gain", np.float32(2.0))
    2.0
    """
    if isinstance(v, (str, bytes, bytearray)):
        raise type_error(name, v, "must be a real number, not text")
    if _is_bool(v):
        raise type_error(name, v, "must be a real number, not a bool")
    if isinstance(v, np.ndarray):
        if v.ndim != 0 or (v.dtype.kind not in "iuf" and v.dtype.name != "bfloat16"):
            raise type_error(name, v, "must be a real number (a 0-d real array at most)")
        v = v[()]
    if isinstance(v, (complex, np.complexfloating)):
        raise type_error(name, v, "must be a real number, not complex")
    if not isinstance(v, (numbers.Real, np.generic)):
        # Framework scalars (0-d torch/jax arrays) convert through __float__; anything else is refused.
        if not hasattr(v, "__float__") or getattr(v, "shape", ()) not in ((), None):
            raise type_error(name, v, "must be a real number")
    try:
        f = float(v)
    except OverflowError:
        raise value_error(name, v, "must be a finite number (it does not fit in a float64)") from None
    except (TypeError, ValueError, RuntimeError):
        raise type_error(name, v, "must be a real number") from None
    if math.isnan(f):
        raise value_error(name, v, "must not be NaN")
    if finite and math.isinf(f):
        raise value_error(name, v, "must be finite")
    if minimum is not None:
        if strict_minimum and not f > minimum:
            raise value_error(name, v, f"must be > {minimum:g}")
        if not strict_minimum and not f >= minimum:
            raise value_error(name, v, f"must be >= {minimum:g}")
    return f


def integer(name: str, v, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """``v`` as a Python int (Python or NumPy integer, not a bool, not a float), within bounds.

    >>> integer("groups", np.int64(2), minimum=1)
    2
    """
    if isinstance(v, np.ndarray) and v.ndim == 0 and v.dtype.kind in "iu":
        v = v[()]
    if _is_bool(v) or not isinstance(v, numbers.Integral):
        raise type_error(name, v, "must be an integer")
    i = int(v)
    if minimum is not None and i < minimum:
        raise value_error(name, v, f"must be an integer >= {minimum}")
    if maximum is not None and i > maximum:
        raise value_error(name, v, f"must be an integer <= {maximum}")
    return i


def boolean(name: str, v) -> bool:
    """``v`` as a bool (Python or NumPy bool only: ``"False"`` and ``0`` are refused)."""
    if not isinstance(v, (bool, np.bool_)):
        raise type_error(name, v, "must be True or False")
    return bool(v)


def text(name: str, v) -> str:
    """``v`` as a str that encodes as UTF-8 (lone surrogates such as ``"\\ud800"`` are refused)."""
    if not isinstance(v, str):
        raise type_error(name, v, "must be a string")
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:
        raise value_error(name, v, "must be valid Unicode text (it contains a lone surrogate)") from None
    return v


def shape(v, arg: str = "shape", *, max_rank: int = MAX_RANK) -> tuple[int, ...]:
    """Validate a shape: a sequence of non-negative integers (Python or NumPy; not bool).

    A single integer means a 1-D shape.  Tuples, lists, ``torch.Size``,
    TensorFlow shapes and 1-D integer arrays are accepted; sets, dicts, text
    and iterators are not (a set's order is arbitrary: ``{6, 4}`` is not a
    shape).  The rank must be at most ``max_rank`` and the element count
    below :data:`MAX_ELEMENTS`.
    """
    if isinstance(v, numbers.Integral) and not _is_bool(v):
        v = (v,)
    if isinstance(v, np.ndarray):
        if v.ndim != 1 or v.dtype.kind not in "iu":
            raise type_error(arg, v, "must be a sequence of non-negative integers (a tuple or list) such as (256, 128)")
        v = tuple(v.tolist())
    if isinstance(v, (str, bytes, bytearray, Mapping, set, frozenset)) or not isinstance(v, Iterable):
        raise type_error(arg, v, "must be a sequence of non-negative integers (a tuple or list) such as (256, 128)")
    if not hasattr(v, "__len__") or not hasattr(v, "__getitem__"):
        raise type_error(arg, v, "must be a sequence of non-negative integers (a tuple or list) such as (256, 128)")
    try:
        dims = tuple(v)
    except Exception:
        raise type_error(
            arg, v, "must be a sequence of non-negative integers (a tuple or list) such as (256, 128)"
        ) from None
    if len(dims) > max_rank:
        raise InitializerValueError(
            f"`{arg}` must have at most {max_rank} dimensions; received {arg} with {len(dims)} dimensions."
        )
    out = []
    for d in dims:
        if _is_bool(d) or not isinstance(d, numbers.Integral):
            # torch.Size / TensorShape dims are ints; 3.0, 3.5 and "3" are not accepted.
            raise InitializerTypeError(
                f"`{arg}` must contain only integers; received {arg}={v!r} with entry {d!r} of type {type(d).__name__}."
            )
        if int(d) < 0:
            raise InitializerValueError(f"`{arg}` must contain only non-negative dimensions; received {arg}={dims!r}.")
        out.append(int(d))
    n = math.prod(out)
    if n >= MAX_ELEMENTS:
        raise InitializerValueError(
            f"`{arg}` has {n} elements, more than a tensor can hold (at most 2**63 - 1: values are addressed "
            f"by 64-bit flat index); received {arg}={tuple(out)!r}."
        )
    return tuple(out)


def _memory_bytes() -> int | None:
    """Physical memory of this machine in bytes (None when unknown)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return None


def device_memory(device) -> tuple[int, int] | None:
    """``(free, limit)`` bytes of an accelerator from its ``memory_stats()`` (JAX devices), else None.

    ``limit`` is the allocator's ``bytes_limit``; ``free`` subtracts ``bytes_in_use``.  Devices
    without statistics (JAX's CPU devices return None) give None: the caller uses host memory.
    Duck-typed, so this layer imports no framework.

    >>> class Gpu:
    ...     def memory_stats(self):
    ...         return {"bytes_limit": 16 * 2**30, "bytes_in_use": 2**30}
    >>> [b // 2**30 for b in device_memory(Gpu())]
    [15, 16]
    """
    stats = getattr(device, "memory_stats", None)
    if not callable(stats):
        return None
    try:
        s = stats()
    except Exception:  # a backend that cannot report: fall back to host memory
        return None
    if not isinstance(s, Mapping) or not s.get("bytes_limit"):
        return None
    limit = int(s["bytes_limit"])
    return max(limit - int(s.get("bytes_in_use") or 0), 0), limit


def allocation(n_elements: int, dtype, arg: str = "shape", value=None, *, device=None) -> None:
    """Refuse, before allocating, an output of ``n_elements`` of ``dtype`` that cannot fit.

    With a ``device`` that reports memory statistics (:func:`device_memory`: a JAX GPU or TPU),
    the bound is the memory that device has free; otherwise it is this machine's physical memory.
    """
    itemsize = np.dtype(dtype).itemsize
    nbytes = int(n_elements) * itemsize
    shown = value if value is not None else n_elements
    dev = device_memory(device) if device is not None else None
    if dev is not None:
        free, limit = dev
        if nbytes > free:
            raise InitializerValueError(
                f"`{arg}` asks for {nbytes / 2**30:.3g} GiB ({n_elements} values of {np.dtype(dtype).name}), more "
                f"than the {free / 2**30:.3g} GiB free on {_device_name(device)} (of {limit / 2**30:.3g} GiB); "
                f"received {arg}={shown!r}. Generate it in regions (the `region=` argument) or shard it."
            )
        return
    mem = _memory_bytes()
    if mem is not None and nbytes > mem:
        raise InitializerValueError(
            f"`{arg}` asks for {nbytes / 2**30:.3g} GiB ({n_elements} values of {np.dtype(dtype).name}), more than "
            f"this machine's {mem / 2**30:.3g} GiB of memory; received {arg}={shown!r}. Generate it in regions "
            "(the `region=` argument) or shard it."
        )


def _device_name(device) -> str:
    kind = getattr(device, "device_kind", None)
    return f"{device} ({kind})" if kind else str(device)


def empty(out_shape, dtype, arg: str = "shape") -> np.ndarray:
    """``np.empty(out_shape, dtype)`` after :func:`allocation`; a ``MemoryError`` becomes a typed error."""
    allocation(math.prod(out_shape), dtype, arg, tuple(out_shape))
    try:
        return np.empty(out_shape, dtype=dtype)
    except MemoryError:
        raise InitializerValueError(
            f"`{arg}` {tuple(out_shape)!r} of {np.dtype(dtype).name} cannot be allocated (out of memory); "
            "generate it in regions or shard it."
        ) from None


def dtype_range(dt: np.dtype) -> tuple[float, float]:
    """The finite range ``(lowest, highest)`` of a numeric dtype (bool: (0, 1))."""
    dt = np.dtype(dt)
    if dt.kind == "b":
        return 0.0, 1.0
    if dt.kind in "iu":
        info = np.iinfo(dt)
        return int(info.min), int(info.max)
    real = dt
    if dt.kind == "c":
        real = np.dtype(f"f{dt.itemsize // 2}")
    if real.kind == "V":  # bfloat16 and other ml_dtypes floats
        info = ml_dtypes.finfo(real)
        return float(info.min), float(info.max)
    info = np.finfo(real)
    return float(info.min), float(info.max)


def representable(name: str, value: float, dt, who: str = "", *, integral_required: bool = True) -> None:
    """Refuse a parameter ``value`` that ``dt`` cannot hold: out of range, or not integral for an integer dtype.

    >>> representable("value", 300.0, np.dtype("int16"))
    >>> try:
    ...     representable("value", 7e4, np.dtype("float16"))
    ... except ValueError as e:
    ...     print(str(e).split(";")[0])
    `value` must lie within float16's range [-65504, 65504]
    """
    dt = np.dtype(dt)
    if dt.kind not in "biufc" and not (dt.kind == "V" and dt.type.__module__.startswith("ml_dtypes")):
        return
    lo, hi = dtype_range(dt)
    v = float(value)
    for_who = f" for {who}" if who else ""
    if dt.kind in "iub" and not (lo <= v <= hi and (v == math.floor(v) or not integral_required)):
        raise value_error(
            name,
            value,
            f"is not exactly representable in {dt.name}",
            f"{dt.name} holds the whole numbers in [{lo}, {hi}]{for_who}; the value would be truncated or wrap around.",
        )
    if not lo <= v <= hi:
        raise value_error(name, value, f"must lie within {dt.name}'s range [{lo:g}, {hi:g}]{for_who}")


def region(v, shp: tuple[int, ...]) -> tuple[tuple[int, int, int], ...] | None:
    """Validate a region against ``shp``; returns per-dimension ``(start, stop, step)`` or ``None``.

    ``None`` means "everything".  A region is a tuple of ``slice`` objects with
    integer (or ``None``) bounds, at most one per dimension.
    """
    if v is None:
        return None
    if isinstance(v, slice):
        v = (v,)
    if not isinstance(v, (tuple, list)):
        raise InitializerTypeError(f"`region` must be a tuple of slices, one per dimension; received region={v!r}.")
    v = tuple(v)
    if len(v) > len(shp):
        raise InitializerValueError(
            f"`region` has {len(v)} slices but the shape {shp} has {len(shp)} dimensions; received region={v!r}."
        )
    out = []
    for i, dim in enumerate(shp):
        s = v[i] if i < len(v) else slice(None)
        if not isinstance(s, slice):
            raise InitializerTypeError(
                f"`region` must contain only slice objects (use slice(i, i + 1) for one index); "
                f"received region={v!r} with entry {s!r}."
            )
        for part in (s.start, s.stop, s.step):
            if part is not None and (_is_bool(part) or not isinstance(part, numbers.Integral)):
                raise InitializerTypeError(f"`region` slices must have integer bounds; received region={v!r}.")
        if s.step == 0:
            raise InitializerValueError(f"`region` slice steps must be non-zero; received region={v!r}.")
        out.append(s.indices(dim))
    return tuple(out)


def config(cfg, arg: str = "config", *, allowed: Iterable[str] | None = None, who: str = "") -> dict:
    """A config: a dict with string keys, every key among ``allowed`` (when given)."""
    if not isinstance(cfg, Mapping):
        raise type_error(arg, cfg, "must be a dict")
    bad = [k for k in cfg if not isinstance(k, str)]
    if bad:
        raise type_error(arg, cfg, f"must have string keys only (found {bad[0]!r})")
    if allowed is not None:
        allowed = set(allowed)
        unknown = sorted(k for k in cfg if k not in allowed)
        if unknown:
            for_who = f" of {who}" if who else ""
            raise InitializerValueError(
                f"`{arg}` has unknown key(s) {unknown}{for_who}; the accepted keys are {sorted(allowed)}; "
                f"received {arg}={dict(cfg)!r}."
            )
    return dict(cfg)


def serialized(cfg, arg: str = "config") -> tuple[str, str | None, str | None, object]:
    """The fields of a serialized initializer (Keras' format or weightinit's), checked.

    ``cfg`` must be a dict with a string ``class_name``; ``registered_name`` and
    ``module`` are strings or absent/None.  Returns ``(class_name, registered_name,
    module, inner_config)``; the inner config (a dict, or a name for functions) is
    left to the constructor's own checks (:func:`config`).

    >>> serialized({"class_name": "HeNormal", "config": {"seed": 0}})
    ('HeNormal', None, None, {'seed': 0})
    """
    if not isinstance(cfg, Mapping) or "class_name" not in cfg:
        raise InitializerTypeError(
            f"`{arg}` must be a name or a dict with a 'class_name' key; received {arg}={_short(cfg)}."
        )
    config(cfg, arg)  # string keys only
    class_name = text("class_name", cfg["class_name"])
    registered = cfg.get("registered_name")
    module = cfg.get("module")
    if registered is not None:
        text("registered_name", registered)
    if module is not None:
        text("module", module)
    return class_name, registered, module, cfg.get("config")


def _short(v, limit: int = 200) -> str:
    r = repr(v)
    return r if len(r) <= limit else r[: limit - 3] + "..."


def _is_ml_float(dt: np.dtype) -> bool:
    return dt.kind == "V" and dt.type.__module__.startswith("ml_dtypes")


def cast_exact(value, dtype: np.dtype, arg: str) -> np.ndarray:
    """Cast ``value`` to ``dtype``, refusing integer/bool casts that would change it."""
    arr = np.asarray(value)
    if arr.dtype.kind == "c" and dtype.kind != "c" and np.any(np.imag(arr) != 0):
        raise value_error(
            arg,
            value if arr.ndim == 0 else f"array of shape {arr.shape}",
            f"has a non-zero imaginary part and cannot be cast to the real dtype {dtype.name}",
        )
    if arr.dtype.kind == "c" and dtype.kind != "c":
        arr = np.real(arr)
    if arr.dtype.kind not in "biufc" and not _is_ml_float(arr.dtype):
        raise type_error(arg, value, "must be a number or an array of numbers")
    if dtype.kind in "biu" and arr.size:
        lo, hi = dtype_range(dtype)
        as_f = arr.astype(np.float64) if arr.dtype.kind in "fc" or _is_ml_float(arr.dtype) else arr
        if np.any(as_f < lo) or np.any(as_f > hi):
            shown = value if arr.ndim == 0 else f"array of shape {arr.shape}"
            raise value_error(
                arg,
                shown,
                f"is not exactly representable in {dtype.name}",
                f"{dtype.name} holds [{lo}, {hi}]; the value would wrap around.",
            )
    if dtype.type.__module__.startswith("ml_dtypes") and dtype.kind in "fV" and arr.size:
        # ml_dtypes' casts saturate or give NaN beyond the range (6e4 -> 57344 in float8_e5m2, 500 -> NaN in
        # float8_e4m3fn): refuse by range, not by the cast's result
        lo, hi = dtype_range(dtype)
        as_f = np.asarray(arr, dtype=np.float64)
        beyond = np.isfinite(as_f) & ((as_f < lo) | (as_f > hi))
        if np.any(beyond):
            shown = value if arr.ndim == 0 else f"array of shape {arr.shape} with element {as_f[beyond].flat[0]!r}"
            raise value_error(arg, shown, f"must lie within {dtype.name}'s range [{lo:g}, {hi:g}]")
    with np.errstate(over="ignore", invalid="ignore"):
        out = arr.astype(dtype)
    if dtype.kind in "fc" or _is_ml_float(dtype):
        overflow = np.isfinite(arr) & ~np.isfinite(out)
        if np.any(overflow):
            lo, hi = dtype_range(dtype)
            shown = (
                value if arr.ndim == 0 else f"array of shape {arr.shape} with element {arr[overflow].flat[0].item()!r}"
            )
            raise value_error(arg, shown, f"must lie within {dtype.name}'s range [{lo:g}, {hi:g}] (it would be inf)")
    if dtype.kind in "biu":
        bad = out.astype(np.float64) != arr.astype(np.float64)
        if np.any(bad):
            shown = value if arr.ndim == 0 else f"array of shape {arr.shape} with element {arr[bad].flat[0].item()!r}"
            raise value_error(
                arg,
                shown,
                f"is not exactly representable in {dtype.name}",
                "Use a float dtype or a value the dtype can hold.",
            )
    return out
