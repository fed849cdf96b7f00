"""Executors: implementations of the random-stream specification (docs/random.md), side by side.

* :mod:`~weightinit.executors.reference` -- the NumPy reference, the definition the others are tested against;
* :mod:`~weightinit.executors.compiled` -- the compiled C core (``_core/``), multi-threaded, SIMD;
* :mod:`~weightinit.executors.torch` -- PyTorch tensors (CPU through the compiled core, CUDA through Triton or torch ops);
* :mod:`~weightinit.executors.triton` -- the Triton kernel used by the torch executor on CUDA;
* :mod:`~weightinit.executors.jax` -- jit-traceable JAX implementation.

The torch, Triton and JAX executors import their framework and are loaded only on request.

The package is also callable: ``weightinit.executors()`` lists the registered CPU executors' names
(the same as :func:`weightinit.random.sampling.executors`).

>>> import weightinit as wi
>>> "numpy-reference" in wi.executors()
True
"""

from __future__ import annotations

import sys
import types

from weightinit.executors import compiled as _compiled
from weightinit.executors import reference as _reference
from weightinit.random.sampling import executors as _executor_names
from weightinit.random.sampling import register_executor as _register_executor

_register_executor(
    types.SimpleNamespace(name=_reference.NAME, fill_range=_reference.fill_range, fill_indices=_reference.fill_indices)
)
_compiled.register()


class _ExecutorsPackage(types.ModuleType):
    """This package's module type: calling it lists the registered CPU executors."""

    def __call__(self) -> list[str]:
        return _executor_names()


sys.modules[__name__].__class__ = _ExecutorsPackage
