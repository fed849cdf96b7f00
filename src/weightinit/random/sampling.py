"""Sampling driver and executor registry.

:func:`sample` generates ``x[region]`` of a tensor ``x`` of ``shape`` drawn
from a distribution under a stream, without generating the rest of ``x``.  It
asks the active CPU executor to fill runs of consecutive flat indices (long
runs) or batches of gathered indices (short runs), at most ``CHUNK`` values at
a time, so peak memory is the output plus one chunk.

Executors are objects with ``name``, ``fill_range(plan, key, start, out)`` and
``fill_indices(plan, key, flat, out)``.  The NumPy reference is always
registered; faster executors register themselves with
:func:`register_executor`, and :func:`use_executor` picks one by name.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from weightinit.common import validate as _validate
from weightinit.common.dtypes import real_dtype_of, standardize_dtype
from weightinit.common.errors import InitializerTypeError, InitializerValueError
from weightinit.common.shapes import RegionPlan
from weightinit.random.distributions import make_plan

__all__ = [
    "sample",
    "register_executor",
    "use_executor",
    "current_executor",
    "executors",
    "widen_region",
    "CHUNK",
]

CHUNK = 1 << 20
"""Values generated per executor call by the driver."""

_SHORT_RUN = 256


class Executor(Protocol):
    """What a CPU executor provides: a ``name`` and the two fills of the stream spec (docs/random.md)."""

    name: str

    def fill_range(self, plan: Any, key: Any, start: int, out: np.ndarray) -> None: ...

    def fill_indices(self, plan: Any, key: Any, flat: np.ndarray, out: np.ndarray) -> None: ...


# Filled by :mod:`weightinit.executors` (the NumPy reference first, then the compiled core when it
# loads); this layer only keeps the registry, it imports no executor.
_EXECUTORS: dict[str, Executor] = {}
_ACTIVE: dict[str, str] = {"name": ""}


def register_executor(executor: Executor, make_default: bool = False) -> None:
    """Register a CPU executor (an object with ``name``, ``fill_range`` and ``fill_indices``)."""
    _EXECUTORS[executor.name] = executor
    if make_default or not _ACTIVE["name"]:
        _ACTIVE["name"] = executor.name


def executors() -> list[str]:
    """Names of the registered CPU executors."""
    return list(_EXECUTORS)


def use_executor(name: str) -> None:
    """Make the named executor the active one (see :func:`executors`)."""
    if name not in _EXECUTORS:
        raise InitializerValueError(f"`name` must be one of {sorted(_EXECUTORS)}; received name={name!r}.")
    _ACTIVE["name"] = name


def current_executor() -> Executor:
    """The active CPU executor."""
    return _EXECUTORS[_ACTIVE["name"]]


def _executor_arg(executor) -> Executor | None:
    """``sample``'s ``executor``: None, a registered executor's name, or an object with the two fills."""
    if executor is None:
        return None
    if isinstance(executor, str):
        if executor not in _EXECUTORS:
            raise InitializerValueError(
                f"`executor` must be one of {sorted(_EXECUTORS)} or an executor object; received executor={executor!r}."
            )
        return _EXECUTORS[executor]
    if not (callable(getattr(executor, "fill_range", None)) and callable(getattr(executor, "fill_indices", None))):
        raise InitializerTypeError(
            "`executor` must be an executor (an object with fill_range and fill_indices) or its name; received "
            f"executor={executor!r} of type {type(executor).__name__}."
        )
    return executor


def sample(dist, stream, shape: tuple[int, ...], dtype, region=None, *, out=None, executor=None) -> np.ndarray:
    """Values of ``x[region]``, where ``x`` of ``shape`` is drawn from ``dist`` under ``stream``.

    Args:
      dist: a :class:`Uniform`, :class:`Normal` or :class:`TruncatedNormalDistribution`
        (with a complex ``dtype``: applied to the real and imaginary parts,
        the real tensor of shape ``shape + (2,)``), or a complex polar
        distribution of :mod:`weightinit.initializers.complex`.
      stream: the tensor's :class:`weightinit.Stream`.
      shape: the shape of the whole tensor ``x``.
      dtype: output dtype (float16, bfloat16, float32, float64, complex64, complex128).
      region: optional tuple of slices; the result is exactly ``x[region]``.
      out: optional C-contiguous array of the region's shape and the dtype,
        written in place and returned (no temporary of the output's size).
      executor: optional executor, as an object or by name (:func:`executors`; default: the active one).

    >>> import weightinit as wi
    >>> x = wi.sample(wi.Normal(0.0, 1.0), wi.Stream(0), (4, 4), "float32")
    >>> bool((wi.sample(wi.Normal(0.0, 1.0), wi.Stream(0), (4, 4), "float32", (slice(1, 3),)) == x[1:3]).all())
    True
    """
    if getattr(dist, "complex_polar", False):
        return dist.draw(stream, shape, standardize_dtype(dtype), region, out)
    executor = _executor_arg(executor)
    cdt = standardize_dtype(dtype)
    if cdt.kind == "c":
        return _sample_componentwise(dist, stream, shape, cdt, region, out, executor)
    plan = make_plan(dist, dtype)
    rp = RegionPlan(shape, region)
    if out is None:
        flat = _validate.empty((rp.size,), plan.dtype)
    else:
        if out.dtype != plan.dtype or tuple(out.shape) != tuple(rp.out_shape) or not out.flags.c_contiguous:
            raise InitializerValueError(
                f"`out` must be a C-contiguous {plan.dtype.name} array of shape {rp.out_shape}; received "
                f"out of shape {out.shape}, dtype {out.dtype.name}, contiguous={out.flags.c_contiguous}."
            )
        flat = out.reshape(-1)
    if rp.size:
        ex = executor if executor is not None else current_executor()
        fill_plan(ex, plan, stream.key, rp, flat)
    return flat.reshape(rp.out_shape) if out is None else out


def widen_region(region, shape: tuple[int, ...]):
    """The region of the real tensor ``shape + (2,)`` that holds ``x[region]`` of a complex ``x``."""
    if region is None:
        return None
    if isinstance(region, slice):
        region = (region,)
    region = tuple(region)
    return region + (slice(None),) * (len(shape) - len(region)) + (slice(None),)


def _sample_componentwise(dist, stream, shape, cdt, region, out, executor) -> np.ndarray:
    rdt = real_dtype_of(cdt)
    rout = None
    if out is not None:
        rp = RegionPlan(shape, region)
        if out.dtype != cdt or tuple(out.shape) != tuple(rp.out_shape) or not out.flags.c_contiguous:
            raise InitializerValueError(
                f"`out` must be a C-contiguous {cdt.name} array of shape {rp.out_shape}; received "
                f"out of shape {out.shape}, dtype {out.dtype.name}, contiguous={out.flags.c_contiguous}."
            )
        rout = out.view(rdt).reshape(tuple(out.shape) + (2,))
    real = sample(dist, stream, tuple(shape) + (2,), rdt, widen_region(region, shape), out=rout, executor=executor)
    return out if out is not None else real.view(cdt)[..., 0]


def fill_plan(ex, plan, key, rp: RegionPlan, out: np.ndarray) -> None:
    """Fill the flat buffer ``out`` with the region ``rp`` of the plan's tensor."""
    L = rp.run_length
    if L >= _SHORT_RUN or rp.n_runs == 1:
        # An executor without temporaries (the compiled core) takes whole runs: one threaded call,
        # whose workers first-touch their own part of a fresh output.
        chunk = getattr(ex, "max_range", CHUNK)
        per_call = max(1, CHUNK // L) if L < CHUNK else 1
        pos = 0
        for first in range(0, rp.n_runs, per_call):
            starts = rp.run_starts(first, min(per_call, rp.n_runs - first))
            for s in starts.tolist():
                for off in range(0, L, chunk):
                    n = min(chunk, L - off)
                    ex.fill_range(plan, key, s + off, out[pos : pos + n])
                    pos += n
        return
    runs_per_batch = max(1, CHUNK // L)
    ar = np.arange(L, dtype=np.uint64)
    pos = 0
    for first in range(0, rp.n_runs, runs_per_batch):
        count = min(runs_per_batch, rp.n_runs - first)
        flat = (rp.run_starts(first, count)[:, None] + ar[None, :]).ravel()
        ex.fill_indices(plan, key, flat, out[pos : pos + flat.size])
        pos += flat.size
