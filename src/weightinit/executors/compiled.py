"""The compiled CPU executor: ``weightinit.executors._core_ext`` behind the executor interface.

The C core (``src/weightinit/executors/_core``, one header per concern) performs the per-value steps of
docs/random.md with the constants of :func:`weightinit.random.distributions.make_plan`
and writes straight into the output buffer, with the GIL released, split over
threads by counter range.  Its values equal the NumPy reference bit for bit.

Threads: :func:`set_num_threads` or the environment variable
``WEIGHTINIT_NUM_THREADS`` (read at import) set how many threads one call may
use; the default is the number of cores this process may run on.  Requests
below 32768 values per thread use fewer threads.

If the extension is missing (no compiler at install time, or
``WEIGHTINIT_NO_EXTENSION=1``), importing weightinit issues one
:class:`~weightinit.common.errors.FallbackWarning` and the NumPy reference is used.
The SIMD path is chosen at import: AVX-512 (F/DQ/BW/VL) when the CPU has it, else AVX2,
else portable C; ``WEIGHTINIT_SIMD=avx512|avx2|generic`` selects one (every path gives
the same bits).
"""

from __future__ import annotations

import numbers
import os
import warnings

import numpy as np

from weightinit.common.dtypes import bfloat16, float8_e4m3fn, float8_e5m2
from weightinit.common.errors import FallbackWarning, type_error, value_error
from weightinit.executors import reference as _reference
from weightinit.random.sampling import register_executor

try:  # pragma: no branch
    from weightinit.executors import _core_ext as _core_ext
except ImportError as _exc:  # pragma: no cover - exercised on machines without a compiler
    _core_ext = None
    _IMPORT_ERROR: ImportError | None = _exc
else:
    _IMPORT_ERROR = None

__all__ = [
    "NAME",
    "available",
    "set_num_threads",
    "get_num_threads",
    "simd",
    "CompiledExecutor",
    "EXECUTOR",
    "fill_array",
    "register",
]

NAME = "compiled"

_KIND = {"uniform": 0, "normal": 1, "truncated_normal": 2}
_OTYPE = {
    np.dtype(np.float16): 0,
    bfloat16: 1,
    np.dtype(np.float32): 2,
    np.dtype(np.float64): 3,
    float8_e4m3fn: 4,
    float8_e5m2: 5,
}
_CONSTS = {
    "uniform": ("scale", "offset"),
    "normal": ("std", "mean"),
    "truncated_normal": ("d", "pa", "pmin", "pmax", "sstd", "mean"),
}


def _default_threads() -> int:
    env = os.environ.get("WEIGHTINIT_NUM_THREADS", "").strip()
    if env:
        try:
            n = int(env)
        except ValueError:
            n = 0
        if n >= 1:
            return n
        warnings.warn(
            f"WEIGHTINIT_NUM_THREADS={env!r} is not a positive integer; using the available cores.",
            RuntimeWarning,
            stacklevel=2,
        )
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


_THREADS = {"n": _default_threads()}


def set_num_threads(n: int | None) -> None:
    """Set how many threads one call of the compiled core may use.

    Args:
      n: a positive integer, or ``None`` for the default (``WEIGHTINIT_NUM_THREADS``
        if set, else the cores this process may run on).

    The result never depends on it: every thread count gives the same bits.

    >>> import weightinit as wi
    >>> wi.set_num_threads(2); wi.get_num_threads()
    2
    >>> wi.set_num_threads(None)
    """
    if n is None:
        _THREADS["n"] = _default_threads()
        return
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise type_error("n", n, "must be a positive integer or None")
    if not 1 <= int(n) <= MAX_THREADS:
        raise value_error("n", n, f"must be a positive integer <= {MAX_THREADS} or None")
    _THREADS["n"] = int(n)


MAX_THREADS = 1024
"""Most threads one call may use (the core starts one POSIX thread per share of the work)."""


def get_num_threads() -> int:
    """How many threads one call of the compiled core may use (see :func:`set_num_threads`)."""
    return _THREADS["n"]


def available() -> bool:
    """Whether the compiled core was built and imported."""
    return _core_ext is not None


def simd(name: str | None = None) -> str:
    """The compiled core's active SIMD path (``"avx512"``, ``"avx2"`` or ``"generic"``); sets it when ``name`` is given."""
    if _core_ext is None:
        return "unavailable"
    return _core_ext.simd(name)


def _args(plan) -> tuple:
    names = _CONSTS[plan.kind]
    c = [float(plan.consts[k]) for k in names] + [0.0] * (6 - len(names))
    if plan.clip is None:
        clip = (0, 0.0, 0.0)
    else:
        clip = (1, float(plan.clip[0]), float(plan.clip[1]))
    return (_KIND[plan.kind], plan.words, _OTYPE[np.dtype(plan.dtype)], tuple(c), *clip)


def _raw(out: np.ndarray) -> np.ndarray:
    """A writable byte view of a C-contiguous array (works for bfloat16 and the 8-bit floats)."""
    return out.reshape(-1).view(np.uint8)


def fill_array(plan, key, start: int, out: np.ndarray, indices: np.ndarray | None = None, threads: int | None = None):
    """Fill the C-contiguous array ``out`` (any shape) with flat indices ``start ..`` or ``indices``.

    One call of the core: no chunking, no temporaries.  ``out.dtype`` must be ``plan.dtype``.
    """
    if plan.words == 1 and plan.compute == np.float64:
        # A narrow float32 truncated normal computed in float64 (docs/random.md section 6): the core has
        # no such path, so the reference, which defines the bits, fills it.
        flat = out.reshape(-1)
        if indices is None:
            _reference.fill_range(plan, key, start, flat)
        else:
            _reference.fill_indices(plan, key, np.asarray(indices, dtype=np.uint64).reshape(-1), flat)
        return
    if _core_ext is None:
        raise RuntimeError(f"weightinit's compiled core is not available ({_IMPORT_ERROR})")
    n_threads = _THREADS["n"] if threads is None else threads
    idx = None if indices is None else np.ascontiguousarray(indices, dtype=np.uint64).reshape(-1)
    _core_ext.fill(_raw(out), *_args(plan), int(key[0]), int(key[1]), int(start), idx, n_threads)


class CompiledExecutor:
    """The compiled CPU executor (name ``"compiled"``): same bits as the reference, much faster."""

    name = NAME
    max_range = 1 << 62
    """The driver may pass a whole run at once: the core needs no temporary of the request's size."""

    def fill_range(self, plan, key, start: int, out: np.ndarray) -> None:
        """Write the values at flat indices ``start .. start + out.size - 1`` into the 1-D buffer ``out``."""
        if out.size == 0:
            return
        if out.flags.c_contiguous:
            fill_array(plan, key, start, out)
        else:
            tmp = np.empty(out.shape, dtype=out.dtype)
            fill_array(plan, key, start, tmp)
            out[...] = tmp

    def fill_indices(self, plan, key, flat: np.ndarray, out: np.ndarray) -> None:
        """Write the values at the given flat indices into the 1-D buffer ``out``."""
        if out.size == 0:
            return
        if out.flags.c_contiguous:
            fill_array(plan, key, 0, out, indices=flat)
        else:
            tmp = np.empty(out.shape, dtype=out.dtype)
            fill_array(plan, key, 0, tmp, indices=flat)
            out[...] = tmp


EXECUTOR = CompiledExecutor()
_WARNED = {"done": False}


def register() -> None:
    """Register the compiled executor as the default, or warn once that the NumPy reference is used."""
    if _core_ext is not None:
        forced = os.environ.get("WEIGHTINIT_SIMD", "").strip()
        if forced:
            try:
                _core_ext.simd(forced)
            except ValueError as exc:
                warnings.warn(f"WEIGHTINIT_SIMD={forced!r} ignored: {exc}", RuntimeWarning, stacklevel=2)
        register_executor(EXECUTOR, make_default=True)
        return
    if not _WARNED["done"]:
        _WARNED["done"] = True
        warnings.warn(
            "weightinit's compiled core (the extension weightinit.executors._core_ext) was not built or cannot be loaded "
            f"({_IMPORT_ERROR}); using the NumPy reference executor, "
            "which gives the same values but is 10-100x slower. Reinstall weightinit with a C compiler "
            "available (e.g. `pip install --force-reinstall --no-binary weightinit weightinit`) to build it.",
            FallbackWarning,
            stacklevel=3,
        )
