"""The doctor: measure how signal flows through a model at init, and fix it (analytic or LSUV).

The package is callable: ``weightinit.doctor(model, inputs)`` is :func:`weightinit.doctor.api.doctor`
(imported on first call, so importing weightinit imports no framework).  The framework-neutral
core (``measure``, ``analytic``, ``diagnose``, ``lsuv``, ``report``, ``stats``, ``graph``) talks to one module
per framework in :mod:`weightinit.doctor.backends`.
"""

from __future__ import annotations

import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from weightinit.doctor.report import Report


class _DoctorPackage(types.ModuleType):
    """This package's module type: calling it runs :func:`weightinit.doctor.api.doctor`."""

    def __call__(self, model: object, inputs: Any = None, **kwargs: Any) -> Report:
        from weightinit.doctor.api import doctor

        return doctor(model, inputs, **kwargs)


sys.modules[__name__].__class__ = _DoctorPackage
