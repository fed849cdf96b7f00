"""The doctor's PyTorch backend (:class:`weightinit.doctor.backends.DoctorBackend`): measurement by hooks
(:mod:`weightinit.doctor.measure`), moments through the torch.fx graph (:mod:`weightinit.doctor.analytic`) or, where
fx fails, the recorded forward pass (:mod:`weightinit.doctor.backends.torchgraph`), LSUV
(:mod:`weightinit.doctor.lsuv`) and the LLM checks (:mod:`weightinit.doctor.llm`).  The helpers those modules share
are in :mod:`weightinit.doctor.backends.torchutil` (re-exported here).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from weightinit.common.errors import value_error
from weightinit.doctor.analytic import analyze_torch
from weightinit.doctor.backends.torchgraph import analyze_recorded
from weightinit.doctor.backends.torchutil import *  # noqa: F403 - the helpers, under their old import path
from weightinit.doctor.backends.torchutil import batch_size, correct_on_probe, synthetic_inputs
from weightinit.doctor.llm import llm_checks
from weightinit.doctor.lsuv import lsuv_torch
from weightinit.doctor.measure import measure_torch
from weightinit.doctor.report import FixReport, Report

if TYPE_CHECKING:
    import torch
    from torch import nn

# ------------------------------------------------------------------------------------------
# the backend protocol (weightinit.doctor.backends.DoctorBackend)
# ------------------------------------------------------------------------------------------

NAME = "torch"


def doctor(model: nn.Module, inputs: Any = None, *, targets: Any = None,
           loss_fn: Callable[..., torch.Tensor] | None = None, analytic: bool = True, seed: int = 0, batch: int = 64,
           input_shape: Sequence[int] | None = None, title: str = "weightinit doctor") -> Report:  # fmt: skip
    """:func:`weightinit.doctor.api.doctor` for a torch model: hooks, then torch.fx moments, then the LLM checks."""

    rep = measure_torch(model, inputs, targets, loss_fn, seed=seed, batch=batch, input_shape=input_shape,
                        title=title)  # fmt: skip
    if analytic and rep.layers and not any(f.kind in ("forward_failed", "empty_batch") for f in rep.flags):
        try:
            pred, _ = analyze_torch(model, inputs, input_shape=input_shape, seed=seed, recorded=analyze_recorded)
        except Exception as e:
            rep.notes.append(f"analytic mode failed: {type(e).__name__}: {e}")
        else:
            _merge(rep, pred)
    rep.flags += llm_checks(model)
    return rep


def _merge(rep: Report, pred: Report) -> None:
    by_name = {s.name: s for s in pred.layers}
    for s in rep.layers:
        p = by_name.get(s.name)
        if p is not None:
            s.q_pred, s.gain, s.chi, s.std_pred, s.signal_pred = p.q_pred, p.gain, p.chi, p.std_pred, p.signal_pred
    rep.mode = "measure+analytic"
    measured_kinds = {f.kind for f in rep.flags}
    for f in pred.flags:
        if f.kind in ("not_depth_stable", "untraceable") and f.kind not in measured_kinds:
            rep.flags.append(f)
    rep.notes += [n for n in pred.notes if n not in rep.notes]


PROBE_BATCH = 1024
"""Synthetic probe examples for the analytic fix's correction pass (vector inputs; a batch of 64 spans only a
64-dimensional subspace of a wider layer, and the scales fitted on it drift by ~10% per 10 layers)."""


def _example_numel(x: torch.Tensor | tuple[torch.Tensor, ...]) -> int:
    x = x[0] if isinstance(x, tuple) else x
    return int(x[0].numel()) if x.ndim else 1


def fix(model: nn.Module, mode: str, inputs: Any = None, *, targets: Any = None, target: float = 1.0, tol: float = 0.1,
        max_iter: int = 10, orthogonal: bool = True, seed: int = 0, batch: int = 64,
        input_shape: Sequence[int] | None = None, measure: bool = True, progress: Callable[[], object] | None = None,
        probe: bool = True) -> FixReport:  # fmt: skip
    """:func:`weightinit.doctor.api.fix` for a torch model."""

    rep = FixReport(mode=mode)
    if mode == "lsuv" and inputs is None:
        raise value_error("inputs", None, "is required for mode='lsuv' (a batch of training data)",
                          "Pass inputs=batch, or use mode='analytic', which needs only shapes.")  # fmt: skip
    data = inputs if inputs is not None else synthetic_inputs(model, batch, input_shape, seed)
    if measure:
        rep.before = measure_torch(model, data, targets, seed=seed, title="before fix")
    if mode == "lsuv":
        rep.scales, rep.iterations, rep.notes = lsuv_torch(
            model, data, target=target, tol=tol, max_iter=max_iter, orthogonal=orthogonal, seed=seed, progress=progress
        )
    else:
        pred, prop = analyze_torch(model, inputs, input_shape=input_shape, seed=seed, fix=True, target=target,
                                   recorded=analyze_recorded)  # fmt: skip
        rep.scales = prop.scales
        if probe and prop.weight_q:
            pb = data
            if inputs is None and batch_size(data) < PROBE_BATCH and _example_numel(data) <= 4096:
                pb = synthetic_inputs(model, PROBE_BATCH, input_shape, seed)
            for k, v in correct_on_probe(model, pb, prop.weight_q).items():
                key = f"{k}.weight" if k else "weight"
                rep.scales[key] = rep.scales.get(key, 1.0) * v
        rep.notes = [f"{f.kind} at {f.layer}: {f.message}" for f in pred.flags if f.kind in ("untraceable",
                     "not_depth_stable")] + pred.notes  # fmt: skip
    if measure:
        rep.after = measure_torch(model, data, targets, seed=seed, title=f"after fix ({mode})")
    return rep
