"""Measure a PyTorch model at init: one batch forward and backward, statistics per layer via hooks.

For every leaf module call (in forward order) the forward hook records the
output's mean, std, second moment ``q = E[y**2]``, dead-unit fraction and
saturated fraction, and a tensor hook on the output records the std of
``dL/dy``.  After ``backward`` each module's own parameters give
``||dL/dp||``.  The loss is cross-entropy (integer targets) or MSE when
``targets`` are given, else ``sum(y * g) / sqrt(batch)`` with a fixed
Gaussian cotangent ``g``, which back-propagates a unit-variance signal
exactly as a random loss gradient would.

Bad input never raises here: an empty batch, a batch of the wrong shape
(the error names the layer where the forward pass failed), NaN outputs
become flags on the returned report.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from weightinit.common.errors import InitializerTypeError
from weightinit.doctor.diagnose import diagnose
from weightinit.doctor.report import Flag, LayerStats, Report

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["measure_torch"]


def _stats_into(s: LayerStats, y: torch.Tensor, layout: str, module: nn.Module, rng: np.random.Generator,
                sample_size: int) -> None:  # fmt: skip
    import torch
    from weightinit.doctor.backends.torchutil import dead_fraction, saturation_mask

    y = y.detach()
    s.shape = tuple(y.shape)
    if not y.is_floating_point():
        s.note = "integer output"
        return
    yf = y.double()
    finite = torch.isfinite(yf)
    s.nonfinite = not bool(finite.all())
    if yf.numel() == 0:
        return
    s.mean = float(yf.mean())
    s.std = float(yf.std(unbiased=False))
    s.q = float((yf * yf).mean())
    if yf.shape[0] > 1:
        s.signal = float(yf.reshape(yf.shape[0], -1).var(dim=0, unbiased=False).mean().sqrt())
    s.dead = dead_fraction(y, layout) if y.ndim >= 2 else float("nan")
    m = saturation_mask(module, y)
    if m is not None:
        s.saturated = float(m.float().mean())
    flat = yf.reshape(-1).numpy()
    if flat.size > sample_size:
        flat = flat[rng.choice(flat.size, sample_size, replace=False)]
    s.sample = flat.astype(np.float32)


def measure_torch(
    model: nn.Module,
    inputs: Any = None,
    targets: Any = None,
    loss_fn: Callable[..., torch.Tensor] | None = None,
    *,
    seed: int = 0,
    batch: int = 64,
    input_shape: Sequence[int] | None = None,
    sample_size: int = 2000,
    title: str = "weightinit doctor",
) -> Report:
    """Run one batch forward and backward through ``model`` and return a :class:`Report` (never raises on bad data)."""
    import torch
    from torch import nn
    from weightinit.doctor.backends import torchutil as tu

    report = Report(title=title, framework=f"torch {torch.__version__.split('+')[0]}", mode="measure")
    try:
        x = tu.synthetic_inputs(model, batch, input_shape, seed) if inputs is None else tu.as_tensor(inputs)
    except Exception as e:
        report.flags.append(Flag("bad_input", "input", str(e), "Pass a batch as `inputs=`.", "error"))
        return report
    if inputs is None and isinstance(x, torch.Tensor):  # synthetic inputs are one tensor
        report.notes.append(f"synthetic N(0, 1) inputs of shape {tuple(x.shape)} (pass inputs= for real data)")
    n = tu.batch_size(x)
    report.batch = n
    if n == 0:
        report.flags.append(
            Flag(
                "empty_batch", "input",
                f"The batch is empty (shape {tuple(x.shape) if not isinstance(x, tuple) else '...'}): "
                "there is nothing to measure.",
                "Pass at least a few dozen examples; statistics from fewer than ~32 are noisy.", "error",
            )
        )  # fmt: skip
        return report
    rng = np.random.default_rng(seed)
    records: list[LayerStats] = []
    state = {"layout": "channels_first" if (not isinstance(x, tuple) and x.ndim >= 3) else "channels_last",
             "current": None, "calls": {}}  # fmt: skip
    handles = []
    names = {m: n_ for n_, m in model.named_modules()}
    seen_params: set[int] = set()
    param_owner: dict[str, list] = {}

    def pre_hook(mod, args):
        state["current"] = names.get(mod, type(mod).__name__)

    def hook(mod, args, out):
        y = tu.first_tensor(out)
        if y is None:
            return
        if isinstance(mod, tu.CHANNELS_FIRST):
            state["layout"] = "channels_first"
        elif isinstance(mod, tu.CHANNELS_LAST):
            state["layout"] = "channels_last"
        base = names.get(mod, type(mod).__name__) or type(mod).__name__
        k = state["calls"].get(base, 0)
        state["calls"][base] = k + 1
        s = LayerStats(name=base if k == 0 else f"{base}#{k + 1}", kind=type(mod).__name__, depth=len(records))
        _stats_into(s, y, state["layout"], mod, rng, sample_size)
        records.append(s)
        if k == 0:
            own = []
            for pn, p in mod.named_parameters(recurse=False):
                if id(p) not in seen_params and p.requires_grad:
                    seen_params.add(id(p))
                    own.append((pn, p))
            param_owner[s.name] = own
        if y.requires_grad:

            def grad_hook(g, s=s):
                g = g.detach().double()
                if g.numel():
                    s.grad_std = float(g.std(unbiased=False))

            y.register_hook(grad_hook)

    for _, m in model.named_modules():
        if not list(m.children()) or isinstance(m, nn.MultiheadAttention):
            handles.append(m.register_forward_pre_hook(pre_hook))
            handles.append(m.register_forward_hook(hook))
    params = [p for p in model.parameters()]
    for p in params:
        p.grad = None
    try:
        with torch.enable_grad():
            try:
                out = tu.call(model, x)
            except Exception as e:
                where = state["current"] or "the model"
                expected = tu.input_spec(model)
                hint = (
                    f" The first layer expects inputs of shape (batch, {', '.join(map(str, expected[0]))})."
                    if expected
                    else ""
                )
                report.flags.append(
                    Flag(
                        "forward_failed", where,
                        f"The forward pass failed at layer {where!r} with {type(e).__name__}: {e}.{hint}",
                        "Pass a batch of the shape the model expects as `inputs=`, or `input_shape=`.", "error",
                    )
                )  # fmt: skip
                report.layers = records
                return report
            y = tu.first_tensor(out)
            if y is None or not y.is_floating_point():
                report.notes.append("the model output is not a float tensor; no backward pass")
            else:
                if targets is not None:
                    t = tu.as_tensor(targets)
                    if loss_fn is None:
                        if isinstance(t, tuple):  # the built-in losses take one target tensor
                            raise InitializerTypeError(
                                f"`targets` must be one torch.Tensor or NumPy array (or pass `loss_fn=`); received a "
                                f"{type(targets).__name__} of them."
                            )
                        if not t.is_floating_point() and y.ndim == 2:
                            loss_fn = nn.functional.cross_entropy
                        else:
                            loss_fn = nn.functional.mse_loss
                    loss = loss_fn(y, t)
                elif loss_fn is not None:
                    loss = loss_fn(y)
                else:
                    g = torch.randn(y.shape, generator=torch.Generator().manual_seed(seed + 1), dtype=y.dtype)
                    loss = (y * g).sum() / math.sqrt(max(n, 1))
                    report.loss_is_probe = True
                report.loss = float(loss.detach())  # a non-finite loss is flagged by diagnose()
                if loss.requires_grad:
                    loss.backward()
    finally:
        for h in handles:
            h.remove()
    for s in records:
        for pn, p in param_owner.get(s.name, []):
            if pn == "weight":
                s.weight_norm = float(p.detach().double().norm())
            if p.grad is not None:
                s.grad_norms[pn] = float(p.grad.detach().double().norm())
    for p in params:
        p.grad = None
    report.layers = records
    diagnose(report)
    return report
