"""One module per framework behind one small protocol, :class:`DoctorBackend` (the way einops keeps backends).

The framework-neutral core (:mod:`weightinit.doctor.api`) finds the framework of a model without importing any
framework that is not already loaded (:func:`weightinit.doctor.api.framework_of`), imports its module from
:data:`MODULES` and calls the two operations of the protocol.  Each backend module imports its framework;
Keras and Flax share the graph logic of :mod:`weightinit.doctor.graph` (the protocol
:class:`weightinit.doctor.graph.GraphModel`), PyTorch has its own hooks and torch.fx path.  Adding a framework is one
module with ``NAME``, ``doctor`` and ``fix`` plus its line in :data:`MODULES`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from weightinit.doctor.report import FixReport, Report

__all__ = ["DoctorBackend", "MODULES"]

#: framework name (as :func:`weightinit.doctor.api.framework_of` returns it) -> backend module
MODULES = {
    "torch": "weightinit.doctor.backends.torch",
    "keras": "weightinit.doctor.backends.keras",
    "flax": "weightinit.doctor.backends.flax",
}


@runtime_checkable
class DoctorBackend(Protocol):
    """What the core needs from a framework: measure a model, and rescale it (a backend *module* satisfies it)."""

    NAME: str

    def doctor(self, model: Any, inputs: Any = None, *, targets: Any = None, loss_fn: Any = None,
               analytic: bool = True, seed: int = 0, batch: int = 64, input_shape: Any = None,
               title: str = "weightinit doctor") -> Report:  # fmt: skip
        """Measure (and predict) the model at init; returns a :class:`weightinit.doctor.report.Report`."""
        ...

    def fix(self, model: Any, mode: str, inputs: Any = None, *, targets: Any = None, target: float = 1.0,
            tol: float = 0.1, max_iter: int = 10, orthogonal: bool = True, seed: int = 0, batch: int = 64,
            input_shape: Any = None, measure: bool = True, progress: Any = None,
            probe: bool = True) -> FixReport:  # fmt: skip
        """Rescale the model in place; returns a :class:`weightinit.doctor.report.FixReport`."""
        ...
