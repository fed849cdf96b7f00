"""``doctor(model, inputs=None)`` and ``fix(model, mode=...)``: dispatch on the framework of ``model``.

PyTorch (``torch.nn.Module``): measurement by hooks, analytic mode by torch.fx
(falling back to hooks), LSUV and analytic fix.  Keras 3 models and Flax NNX
modules: see :mod:`weightinit.doctor.backends.keras` and :mod:`weightinit.doctor.backends.flax`.
"""

from __future__ import annotations

import sys

from weightinit.common.errors import InitializerTypeError, value_error
from weightinit.doctor.report import FixReport, Report

__all__ = ["doctor", "fix", "framework_of"]


def framework_of(model) -> str:
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


def doctor(model, inputs=None, *, targets=None, loss_fn=None, analytic: bool = True, seed: int = 0,
           batch: int = 64, input_shape=None, title: str = "weightinit doctor") -> Report:  # fmt: skip
    """Measure (and predict) how signal flows through ``model`` at init.

    Runs one batch forward and backward (``inputs``, or synthetic N(0, 1) data of the first layer's shape)
    and records per layer the output mean/std, input-dependent std, dead and saturated fractions,
    ``dL/dy`` std and parameter gradient norms; with ``analytic=True`` also the predicted second
    moment, gain and chi of each layer (PyTorch: through the traced graph; Keras and Flax: as a chain).  Problems are in ``report.flags``.
    Bad inputs (wrong shape, empty batch, NaN) are reported as flags, never raised.
    """
    fw = framework_of(model)
    if fw == "torch":
        from weightinit.doctor.measure import measure_torch

        rep = measure_torch(model, inputs, targets, loss_fn, seed=seed, batch=batch, input_shape=input_shape,
                            title=title)  # fmt: skip
        if analytic and rep.layers and not any(f.kind in ("forward_failed", "empty_batch") for f in rep.flags):
            from weightinit.doctor.analytic import analyze_torch

            try:
                pred, _ = analyze_torch(model, inputs, input_shape=input_shape, seed=seed)
            except Exception as e:
                rep.notes.append(f"analytic mode failed: {type(e).__name__}: {e}")
            else:
                _merge(rep, pred)
        from weightinit.doctor.llm import llm_checks

        rep.flags += llm_checks(model)
        return rep
    if fw == "keras":
        from weightinit.doctor.backends.keras import doctor_keras

        return doctor_keras(model, inputs, targets=targets, seed=seed, batch=batch, input_shape=input_shape,
                            title=title)  # fmt: skip
    from weightinit.doctor.backends.flax import doctor_flax

    return doctor_flax(model, inputs, targets=targets, seed=seed, batch=batch, input_shape=input_shape, title=title)


def _merge(rep: Report, pred: Report) -> None:
    by_name = {s.name: s for s in pred.layers}
    for s in rep.layers:
        p = by_name.get(s.name)
        if p is not None:
            s.q_pred, s.gain, s.chi = p.q_pred, p.gain, p.chi
    rep.mode = "measure+analytic"
    measured_kinds = {f.kind for f in rep.flags}
    for f in pred.flags:
        if f.kind in ("not_depth_stable", "untraceable") and f.kind not in measured_kinds:
            rep.flags.append(f)
    rep.notes += [n for n in pred.notes if n not in rep.notes]


PROBE_BATCH = 1024
"""Synthetic probe examples for the analytic fix's correction pass (vector inputs; a batch of 64 spans only a
64-dimensional subspace of a wider layer, and the scales fitted on it drift by ~10% per 10 layers)."""


def _example_numel(x) -> int:
    x = x[0] if isinstance(x, tuple) else x
    return int(x[0].numel()) if x.ndim else 1


def fix(model, mode: str = "analytic", inputs=None, *, targets=None, target: float = 1.0, tol: float = 0.1,
        max_iter: int = 10, orthogonal: bool = True, seed: int = 0, batch: int = 64, input_shape=None,
        measure: bool = True, progress=None, probe: bool = True) -> FixReport:  # fmt: skip
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
    fw = framework_of(model)
    if fw == "keras":
        from weightinit.doctor.backends.keras import fix_keras

        return fix_keras(model, mode, inputs, target=target, tol=tol, max_iter=max_iter, seed=seed, batch=batch,
                         input_shape=input_shape, measure=measure)  # fmt: skip
    if fw == "flax":
        from weightinit.doctor.backends.flax import fix_flax

        return fix_flax(model, mode, inputs, target=target, tol=tol, max_iter=max_iter, seed=seed, batch=batch,
                        input_shape=input_shape, measure=measure)  # fmt: skip
    from weightinit.doctor.backends import torch as tu
    from weightinit.doctor.measure import measure_torch

    rep = FixReport(mode=mode)
    if mode == "lsuv" and inputs is None:
        raise value_error("inputs", None, "is required for mode='lsuv' (a batch of training data)",
                          "Pass inputs=batch, or use mode='analytic', which needs only shapes.")  # fmt: skip
    data = inputs if inputs is not None else tu.synthetic_inputs(model, batch, input_shape, seed)
    if measure:
        rep.before = measure_torch(model, data, targets, seed=seed, title="before fix")
    if mode == "lsuv":
        from weightinit.doctor.lsuv import lsuv_torch

        rep.scales, rep.iterations, rep.notes = lsuv_torch(
            model, data, target=target, tol=tol, max_iter=max_iter, orthogonal=orthogonal, seed=seed, progress=progress
        )
    else:
        from weightinit.doctor.analytic import analyze_torch

        pred, prop = analyze_torch(model, inputs, input_shape=input_shape, seed=seed, fix=True, target=target)
        rep.scales = prop.scales
        if probe and prop.weight_q:
            pb = data
            if inputs is None and tu.batch_size(data) < PROBE_BATCH and _example_numel(data) <= 4096:
                pb = tu.synthetic_inputs(model, PROBE_BATCH, input_shape, seed)
            for k, v in tu.correct_on_probe(model, pb, prop.weight_q).items():
                key = f"{k}.weight" if k else "weight"
                rep.scales[key] = rep.scales.get(key, 1.0) * v
        rep.notes = [f"{f.kind} at {f.layer}: {f.message}" for f in pred.flags if f.kind in ("untraceable",
                     "not_depth_stable")] + pred.notes  # fmt: skip
    if measure:
        rep.after = measure_torch(model, data, targets, seed=seed, title=f"after fix ({mode})")
    return rep
