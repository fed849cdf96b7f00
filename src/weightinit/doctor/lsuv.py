"""LSUV: layer-sequential unit-variance initialization (Mishkin & Matas 2016): the iteration, and PyTorch models.

Algorithm (the paper's Alg. 1, generalized to graphs):

1. pre-initialize every weight layer (Linear, Conv*, ConvTranspose*) with an
   orthonormal matrix (Saxe et al. 2014), drawn from weightinit's
   :class:`~weightinit.Orthogonal` on the stream ``Stream.from_seed(seed).child(layer name)``;
2. for each weight layer in forward order: run the batch forward, measure
   ``v = Var(output)``, and scale the weight by ``sqrt(target / v)``; repeat
   until ``|v - target| < tol * target`` or ``max_iter`` passes.

Branches: when the model traces with torch.fx, a layer whose output reaches an
``add`` of ``m`` tensors directly gets target ``target / m``, so the sum of
independent branches has the target variance.  Biases, normalization layers
and tied weights (rescaled once, at their first use) are left alone.

Step 2 is :func:`lsuv_rescale`, shared with the Keras and Flax graphs
(:func:`weightinit.doctor.graph.fix_graph`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

__all__ = ["lsuv_rescale", "lsuv_torch"]


def lsuv_rescale(measure: Callable[[], float], rescale: Callable[[float], object], target: float, tol: float,
                 max_iter: int) -> tuple[float, int, float | None]:  # fmt: skip
    """Step 2 for one weight: ``(total scale, rescalings done, bad variance or None)``.

    ``measure()`` returns the layer's output variance on the batch; ``rescale(s)`` multiplies the weight by
    ``s``.  Stops when ``|v - target| < tol * target``, after ``max_iter`` measurements, or at a variance that
    is not finite or not positive (returned as the third item; the weight is left as it is).

    >>> w = [3.0]
    >>> lsuv_rescale(lambda: w[0] ** 2, lambda s: w.__setitem__(0, w[0] * s), 1.0, 0.1, 10)
    (0.3333333333333333, 1, None)
    """
    total, n = 1.0, 0
    for _ in range(max_iter):
        v = measure()
        if not math.isfinite(v) or v <= 0:
            return total, n, v
        if abs(v - target) < tol * target:
            break
        s = math.sqrt(target / v)
        rescale(s)
        total *= s
        n += 1
    return total, n, None


def lsuv_torch(model: nn.Module, inputs: Any, *, target: float = 1.0, tol: float = 0.1, max_iter: int = 10,
               orthogonal: bool = True, seed: int = 0,
               progress: Callable[[], object] | None = None) -> tuple[dict[str, float], dict[str, int], list[str]]:  # fmt: skip
    """Apply LSUV in place; returns ``(scales, iterations, notes)`` keyed by ``"<layer>.weight"``."""
    import torch
    from weightinit.common.errors import InitializerValueError
    from weightinit.doctor.analytic import add_targets, trace_torch
    from weightinit.doctor.backends import torchutil as tu

    x = tu.as_tensor(inputs)
    if tu.batch_size(x) < 2:
        raise InitializerValueError(
            f"LSUV needs a batch of at least 2 examples to measure a variance; received a batch of {tu.batch_size(x)}."
        )
    notes: list[str] = []
    layers = tu.weight_layers(model)
    # forward order
    order: list = []
    tu.forward_with_hooks(model, x, [m for _, m in layers], lambda mod, a, o: order.append(mod))
    rank = {}
    for i, m in enumerate(order):
        rank.setdefault(m, i)
    unused = [n for n, m in layers if m not in rank]
    if unused:
        notes.append(f"not reached by the batch, left alone: {', '.join(unused[:5])}")
    layers = sorted([(n, m) for n, m in layers if m in rank], key=lambda nm: rank[nm[1]])
    gm, _ = trace_torch(model, x)
    targets = add_targets(gm) if gm is not None else {}
    if gm is None:
        notes.append("model not traceable with torch.fx: every layer gets the plain target (no branch split)")
    if orthogonal:
        for name, m in layers:
            if m.weight.ndim >= 2:
                tu.orthogonal_(m.weight, seed, name)
    scales: dict[str, float] = {}
    iters: dict[str, int] = {}
    for name, m in layers:
        t = target * targets.get(name, 1.0)
        captured = {}

        def hook(mod, a, o, captured=captured):
            if "y" not in captured:
                captured["y"] = tu.first_tensor(o)

        def measure(captured=captured):
            captured.clear()
            with torch.no_grad():
                tu.call(model, x)
            return float(captured["y"].double().var())

        def rescale(s, m=m):
            with torch.no_grad():
                m.weight.mul_(s)

        h = m.register_forward_hook(hook)
        try:
            total, k, bad = lsuv_rescale(measure, rescale, t, tol, max_iter)
        finally:
            h.remove()
        if bad is not None:
            notes.append(f"{name}: output variance {bad}; left unscaled")
            k += 1  # the torch report counts the pass that measured the bad variance
        scales[f"{name}.weight" if name else "weight"] = total
        iters[f"{name}.weight" if name else "weight"] = k
        if progress is not None:
            progress()
    return scales, iters, notes
