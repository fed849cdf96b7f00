"""``doctor(model, inputs=None)`` and ``fix(model, mode=...)``: dispatch on the framework of ``model``.

PyTorch (``torch.nn.Module``): measurement by hooks, analytic mode by torch.fx
(falling back to hooks), LSUV and analytic fix.  Keras 3 models and Flax NNX
modules: see :mod:`weightinit.doctor.backends.keras` and :mod:`weightinit.doctor.backends.flax`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal, cast

from weightinit.common.errors import InitializerTypeError, value_error
from weightinit.doctor.report import FixReport, Report

if TYPE_CHECKING:
    from weightinit.doctor.backends import DoctorBackend

__all__ = ["doctor", "fix", "framework_of", "backend_for", "FixMode"]

FixMode = Literal["analytic", "lsuv"]
"""The modes of :func:`fix`: the moment map (``"analytic"``) or Mishkin & Matas' LSUV (``"lsuv"``)."""


def backend_for(model: object) -> DoctorBackend:
    """The backend module of ``model``'s framework (:mod:`weightinit.doctor.backends`), imported on first use."""
    import importlib

    from weightinit.doctor.backends import MODULES

    return cast("DoctorBackend", importlib.import_module(MODULES[framework_of(model)]))


def framework_of(model: object) -> str:
    """``"torch"``, ``"keras"`` or ``"flax"`` (checked without importing frameworks that are not loaded)."""
    mods = [c.__module__ for c in type(model).__mro__]
    if "torch" in sys.modules:
        import torch

        if isinstance(model, torch.nn.Module) and not any(m.startswith("keras") for m in mods):
            return "torch"
    if any(m.startswith("keras") for m in mods):
        return "keras"
    if any(m.startswith("flax") for m in mods):
        return "flax"
    raise InitializerTypeError(
        f"`model` must be a torch.nn.Module, a Keras 3 model or a Flax NNX module; received {type(model).__name__}."
    )


def doctor(model: object, inputs: Any = None, *, targets: Any = None, loss_fn: Callable[..., Any] | None = None,
           analytic: bool = True, seed: int = 0, batch: int = 64, input_shape: Sequence[int] | None = None,
           title: str = "weightinit doctor") -> Report:  # fmt: skip
    """Measure (and predict) how signal flows through ``model`` at init.

    Runs one batch forward and backward (``inputs``, or synthetic N(0, 1) data of the first layer's shape)
    and records per layer the output mean/std, input-dependent std, dead and saturated fractions,
    ``dL/dy`` std and parameter gradient norms; with ``analytic=True`` also the predicted second
    moment, gain and chi of each layer (PyTorch: through the traced graph; Keras and Flax: through their graphs).  Problems are in ``report.flags``.
    Bad inputs (wrong shape, empty batch, NaN) are reported as flags, never raised.
    """
    return backend_for(model).doctor(model, inputs, targets=targets, loss_fn=loss_fn, analytic=analytic, seed=seed,
                                     batch=batch, input_shape=input_shape, title=title)  # fmt: skip


def fix(model: object, mode: FixMode = "analytic", inputs: Any = None, *, targets: Any = None, target: float = 1.0,
        tol: float = 0.1, max_iter: int = 10, orthogonal: bool = True, seed: int = 0, batch: int = 64,
        input_shape: Sequence[int] | None = None, measure: bool = True, progress: Callable[[], object] | None = None,
        probe: bool = True) -> FixReport:  # fmt: skip
    """Rescale ``model``'s weights in place so the signal keeps unit variance with depth; return a :class:`FixReport`.

    ``mode="analytic"`` rescales each weight layer from the moment map so its predicted output second moment
    is ``target`` (needs only shapes).  ``mode="lsuv"`` is Mishkin & Matas (2016): orthogonal pre-init, then
    per layer rescale until ``|Var(output) - target| < tol * target`` on ``inputs`` (a batch), at most
    ``max_iter`` passes.  Biases, normalization layers and tied weights are left alone.  With
    ``measure=True`` the report holds ``before`` and ``after`` measurements (on ``inputs`` or synthetic data).

    ``probe=True`` (analytic mode): after the moment map has set every scale, one forward pass of a probe batch
    (``inputs``, or synthetic N(0, 1) data) corrects each layer's scale to the second moment the map predicted
    for it.  A fixed-scale net amplifies a relative deviation by the activation's variance slope
    ``d log E[phi^2] / d log q`` per layer (:func:`weightinit.doctor.analytic.variance_slope`): 1 for relu, but
    1.14 for GELU at unit variance, so without the probe a 30-layer GELU MLP of width 128 ends several times
    off its target through finite-width noise alone.  ``probe=False`` uses shapes and weights only.
    """
    if mode not in ("analytic", "lsuv"):
        raise value_error("mode", mode, "must be 'analytic' or 'lsuv'")
    return backend_for(model).fix(model, mode, inputs, targets=targets, target=target, tol=tol, max_iter=max_iter,
                                  orthogonal=orthogonal, seed=seed, batch=batch, input_shape=input_shape,
                                  measure=measure, progress=progress, probe=probe)  # fmt: skip
