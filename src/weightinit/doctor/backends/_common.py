"""The backend functions Keras and Flax share: one factory, :func:`backend_functions`, builds a backend's
``doctor_<fw>``/``fix_<fw>`` and the two operations of :class:`weightinit.doctor.backends.DoctorBackend` from the
function that picks its adapter (a :class:`weightinit.doctor.graph.GraphModel`: every Keras and Flax model,
``keras.Sequential`` and ``nnx.Sequential`` included, is analysed on its graph).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from weightinit.doctor.graph import GraphModel, doctor_graph, fix_graph
from weightinit.doctor.report import FixReport, Report

__all__ = ["backend_functions"]


DoctorFunction = Callable[..., Report]
FixFunction = Callable[..., FixReport]


def backend_functions(
    framework: str, module: str, adapt: Callable[[Any], GraphModel]
) -> tuple[DoctorFunction, FixFunction, DoctorFunction, FixFunction]:
    """``(doctor_<framework>, fix_<framework>, doctor, fix)`` for models seen through ``adapt(model)``."""

    def doctor_fw(model, inputs=None, *, targets=None, seed=0, batch=64, input_shape=None,
                  title="weightinit doctor") -> Report:  # fmt: skip
        return doctor_graph(
            adapt(model), inputs, targets=targets, seed=seed, batch=batch, input_shape=input_shape, title=title
        )

    def fix_fw(model, mode, inputs, *, target=1.0, tol=0.1, max_iter=10, seed=0, batch=64, input_shape=None,
               measure=True, probe=True) -> FixReport:  # fmt: skip
        return fix_graph(adapt(model), mode, inputs, target=target, tol=tol, max_iter=max_iter, seed=seed,
                         batch=batch, input_shape=input_shape, measure=measure, probe=probe)  # fmt: skip

    def doctor(model, inputs=None, *, targets=None, loss_fn=None, analytic=True, seed=0, batch=64, input_shape=None,
               title="weightinit doctor") -> Report:  # fmt: skip
        return doctor_fw(model, inputs, targets=targets, seed=seed, batch=batch, input_shape=input_shape, title=title)

    def fix(model, mode, inputs=None, *, targets=None, target=1.0, tol=0.1, max_iter=10, orthogonal=True, seed=0,
            batch=64, input_shape=None, measure=True, progress=None, probe=True) -> FixReport:  # fmt: skip
        return fix_fw(model, mode, inputs, target=target, tol=tol, max_iter=max_iter, seed=seed, batch=batch,
                      input_shape=input_shape, measure=measure, probe=probe)  # fmt: skip

    label = framework.capitalize() if framework != "keras" else "Keras"
    docs = {
        "doctor": f":func:`weightinit.doctor.api.doctor` for a {label} model (``loss_fn`` and ``analytic=False`` are "
        "PyTorch-only; moments are always predicted).",
        "fix": f":func:`weightinit.doctor.api.fix` for a {label} model (LSUV always pre-initializes orthogonally; "
        "``targets`` and ``progress`` are PyTorch-only).",
        f"doctor_{framework}": f"The doctor on a {label} model, on its graph.",
        f"fix_{framework}": f"Rescale a {label} model's kernels in place (``mode`` ``'lsuv'`` or ``'analytic'``).",
    }
    out: list[Callable[..., Any]] = []
    for name, fn in ((f"doctor_{framework}", doctor_fw), (f"fix_{framework}", fix_fw), ("doctor", doctor),
                     ("fix", fix)):  # fmt: skip
        fn.__name__ = fn.__qualname__ = name
        fn.__module__ = module
        fn.__doc__ = docs[name]
        out.append(fn)
    return out[0], out[1], out[2], out[3]
