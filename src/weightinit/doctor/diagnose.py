"""Flags: turn per-layer numbers into problems, each with a plain explanation and a suggested fix.

Rules (thresholds are deliberately loose; the doctor reports, it does not judge small drifts):

* **vanishing / exploding activations**: over the weight layers (Linear, Conv, ...)
  in forward order, ``std_last / std_first < 1e-2`` (or ``> 1e2``).  A
  net that multiplies the second moment by ``c`` per layer ends at ``c**(L/2)``
  times its input std: PyTorch's default ``U(-1/sqrt(n), 1/sqrt(n))`` with
  ReLU gives ``c = 1/6`` and 30 layers shrink the std by ``~1e-12``
  (He et al. 2015, Glorot & Bengio 2010).
* **vanishing / exploding gradients**: judged per parameter, the relative weight gradient
  ``||dL/dW|| / ||W||`` of the first weight layer over the last one's below 1e-2 (above 1e2).  Not the
  per-element ``dL/dy``: average pooling over ``k`` positions divides it by ``k`` while no parameter
  learns slower.  When every weight layer feeds a normalization, the suggested fix is an optimizer
  change (an init cannot change the ratio).
* **dead**: at least half of a layer's units are zero on every example.
* **saturated**: at least 30% of a tanh/sigmoid/hardtanh-like layer's outputs sit
  where the derivative is below ~0.02.
* **collapse**: a weight layer's input-dependent std (``signal``, ``sqrt(mean_units Var_batch(y))``) below
  1e-2 of its std: every input maps to nearly the same output.  Measured, or in analytic mode predicted from
  the cross moment of two inputs (:func:`weightinit.doctor.analytic.signal_map`).
* **nonfinite**: NaN or inf in a layer's output (or in the loss).
"""

from __future__ import annotations

import math

from weightinit.doctor.report import Flag

__all__ = ["diagnose", "WEIGHT_KINDS"]

WEIGHT_KINDS = (
    "Linear", "Bilinear", "LazyLinear", "Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d",
    "ConvTranspose3d", "Dense", "Conv", "Conv1D", "Conv2D", "Conv3D", "Conv2DTranspose", "Einsum", "EinsumDense",
)  # fmt: skip

VANISH, EXPLODE = 1e-2, 1e2
_FIX_INIT = (
    "Use a variance-preserving init for the activation: he_normal/he_uniform (ReLU), "
    "glorot/lecun for tanh, or weightinit.gain_for(act) for any activation; or run "
    "weightinit.fix(model) (analytic) / weightinit.fix(model, mode='lsuv', inputs=batch)."
)


def _is_weight(s) -> bool:
    return s.kind in WEIGHT_KINDS or s.kind.startswith(("Conv", "Linear", "Dense"))


def _trend(layers, attr, transform=lambda v: v):
    pts = [(s, transform(getattr(s, attr))) for s in layers if _is_weight(s)]
    pts = [(s, v) for s, v in pts if v is not None and math.isfinite(v)]
    return pts


_NORM_KINDS = ("BatchNorm", "LayerNorm", "GroupNorm", "InstanceNorm", "RMSNorm", "LayerNormalization",
               "BatchNormalization", "GroupNormalization", "RMSNormalization", "layer_norm", "batch_norm",
               "group_norm", "rms_norm")  # fmt: skip


def _norm_fed(layers, i: int) -> bool:
    """Whether the weight layer ``layers[i]`` feeds a normalization (the next recorded layer is one)."""
    return i + 1 < len(layers) and layers[i + 1].kind.startswith(_NORM_KINDS)


def _gradient_flags(layers) -> list:
    """Vanishing/exploding gradients judged per parameter: the relative weight gradient ``||dL/dW|| / ||W||`` of
    the first weight layer against the last one's (not the per-element ``dL/dy``, which pooling divides by the
    pooled area without any parameter learning slower)."""
    pts = [(i, s) for i, s in enumerate(layers) if _is_weight(s) and math.isfinite(s.rel_grad) and s.rel_grad > 0]
    if len(pts) < 3:
        return []
    first, last = pts[0][1], pts[-1][1]
    ratio = first.rel_grad / last.rel_grad
    if VANISH <= ratio <= EXPLODE:
        return []
    normed = all(_norm_fed(layers, i) for i, _ in pts[:-1])
    if normed:
        fix = (f"Every weight layer before the last feeds a normalization, so the forward signal does not depend "
               f"on their scale, but a layer's effective learning rate is lr/||W||^2: re-initialize the outlier "
               f"({first.name}) at the scale of the others (a fan-in init such as he_normal), or use per-layer "
               "learning rates (LARS/LAMB).")  # fmt: skip
    else:
        fix = _FIX_INIT
    what = (f"The first weight layer ({first.name}) gets a relative gradient ||dL/dW||/||W|| of {first.rel_grad:.3g} "
            f"(||dL/dW|| {first.weight_grad:.3g}, ||W|| {first.weight_norm:.3g}); the last ({last.name}) "
            f"{last.rel_grad:.3g}: {ratio:.2g} times as much")  # fmt: skip
    if ratio < VANISH:
        return [Flag("vanishing_gradients", first.name,
                     what + ". With one learning rate the early layers barely move (the backward pass shrinks "
                     "by a factor per layer, chi < 1 in Schoenholz et al. 2017).",
                     fix, "error" if ratio < 1e-4 else "warning")]  # fmt: skip
    return [Flag("exploding_gradients", first.name,
                 what + ". The early layers get huge updates and training diverges (chi > 1).",
                 fix + ("" if normed else " Or clip gradients / add normalization."),
                 "error" if ratio > 1e4 else "warning")]  # fmt: skip


COLLAPSE = 1e-2
"""``collapse``: a weight layer's input-dependent std (``signal``) below this fraction of its std."""


def _signal_and_std(s, predicted: bool) -> tuple[float, float, str]:
    """The measured ``(signal, std)`` of a layer, else (``predicted``) the analytic ones; NaN if neither."""
    if math.isfinite(s.signal) and math.isfinite(s.std):
        return s.signal, s.std, "measured"
    if predicted and math.isfinite(s.signal_pred) and math.isfinite(s.std_pred):
        return s.signal_pred, s.std_pred, "predicted"
    return float("nan"), float("nan"), ""


def diagnose(report, predicted: bool = False) -> list:
    """Compute the flags of ``report`` (a :class:`Report`) from its layers; returns the list and stores it."""
    flags = []
    layers = report.layers
    for s in layers:
        if s.nonfinite:
            flags.append(
                Flag(
                    "nonfinite", s.name,
                    "This layer's output contains NaN or inf, so every later statistic and the gradients are meaningless.",
                    "Check the inputs for NaN, lower the init scale of the layers before it, or look for log/div by zero.",
                    "error",
                )
            )  # fmt: skip
            break
    loss = getattr(report, "loss", None)
    if report.mode != "analytic" and loss is not None and not math.isfinite(loss):  # analytic: no loss computed
        flags.append(
            Flag("nonfinite", "loss", f"The loss is {loss}.",
                 "Look for NaN inputs or exploding activations (see the table).", "error")
        )  # fmt: skip
    # activations (measured std, or predicted sqrt(q))
    attr = "input-dependent std (signal)"
    pts = _trend(layers, "signal")
    if len(pts) < 2 and predicted:
        pts = _trend(layers, "q_pred", lambda q: math.sqrt(q) if q is not None and q >= 0 else float("nan"))
        attr = "predicted std"
    if len(pts) >= 3 and pts[0][1] > 0:
        first = pts[0][1]
        ratio = pts[-1][1] / first
        per = ratio ** (1.0 / (len(pts) - 1)) if ratio > 0 else 0.0
        if ratio < VANISH:
            where = next((s for s, v in pts if v < 0.1 * first), pts[-1][0])
            flags.append(
                Flag(
                    "vanishing_activations", where.name,
                    f"The {attr} of the weight layers' outputs shrinks from {first:.3g} to {pts[-1][1]:.3g} "
                    f"over {len(pts)} layers (x{per:.3g} per layer): deep layers see almost no signal and "
                    "the network output barely depends on its input.",
                    _FIX_INIT, "error" if ratio < 1e-4 else "warning",
                )
            )  # fmt: skip
        elif ratio > EXPLODE:
            where = next((s for s, v in pts if v > 10 * first), pts[-1][0])
            flags.append(
                Flag(
                    "exploding_activations", where.name,
                    f"The {attr} of the weight layers' outputs grows from {first:.3g} to {pts[-1][1]:.3g} "
                    f"over {len(pts)} layers (x{per:.3g} per layer): activations and losses overflow or saturate.",
                    _FIX_INIT + " Lower the gain of the layers.", "error" if ratio > 1e4 else "warning",
                )
            )  # fmt: skip
    flags += _gradient_flags(layers)
    dead = [s for s in layers if s.dead is not None and math.isfinite(s.dead) and s.dead >= 0.5 and not _is_weight(s)]
    if dead:
        worst = max(dead, key=lambda s: s.dead)
        first = dead[0]
        i = layers.index(first)
        prev = layers[i - 1] if i > 0 else None
        # the cause decides the fix: an input-dependent spread that vanished on the way (below 1e-2 of the first
        # weight layer's) leaves the biases alone in charge, and a variance-preserving init revives the units;
        # a healthy spread under a mean far below zero is pushed there by the biases (zeroing them revives the
        # units; rescaling the weights cannot)
        sig0 = next((s.signal for s in layers if _is_weight(s) and math.isfinite(s.signal)), float("nan"))
        vanished = prev is not None and math.isfinite(prev.signal) and prev.signal < VANISH * sig0
        if (not vanished and prev is not None and math.isfinite(prev.mean) and math.isfinite(prev.signal)
                and prev.mean < -2 * prev.signal):  # fmt: skip
            fix = (f"The biases of {prev.name} push its outputs below zero (mean {prev.mean:.3g}, input-dependent "
                   f"std {prev.signal:.3g}): initialize biases to zero (torch.nn.init.zeros_) or small, or use "
                   "leaky_relu/GELU.")  # fmt: skip
        else:
            fix = ("Use a variance-preserving init (he_normal for ReLU) so the signal does not vanish under the "
                   "biases, leaky_relu/GELU, or weightinit.fix(model, mode='lsuv', inputs=batch).")  # fmt: skip
        flags.append(
            Flag(
                "dead", first.name,
                f"{len(dead)} layer(s) have at least half their units exactly zero on every example "
                f"(worst: {worst.name}, {100 * worst.dead:.0f}%); dead units pass no gradient and do not recover.",
                fix, "error" if worst.dead >= 0.99 else "warning",
            )
        )  # fmt: skip
    sat = [s for s in layers if s.saturated is not None and math.isfinite(s.saturated) and s.saturated >= 0.3]
    if sat:
        worst = max(sat, key=lambda s: s.saturated)
        flags.append(
            Flag(
                "saturated", sat[0].name,
                f"{len(sat)} layer(s) have at least 30% of their outputs on the flat part of the activation "
                f"(worst: {worst.name}, {100 * worst.saturated:.0f}%), where the derivative is below ~0.02: "
                "gradients through them vanish (Glorot & Bengio 2010).",
                "Lower the init scale of the layer before it (glorot/lecun for tanh, gain 1 for sigmoid), "
                "or add normalization before the activation.",
            )
        )  # fmt: skip
    col = [(s, *_signal_and_std(s, predicted)) for s in layers if _is_weight(s)]
    col = [(s, sig, std, what) for s, sig, std, what in col if std > 0 and sig < COLLAPSE * std]
    if col:
        s, sig, std, what = col[0]
        flags.append(
            Flag(
                "collapse", s.name,
                f"From {s.name} on, the output hardly depends on the input: its {what} variation across the batch "
                f"is {sig / std:.2g} of its magnitude (the biases dominate a vanished signal).",
                _FIX_INIT,
            )
        )  # fmt: skip
    report.flags = flags + [f for f in report.flags if f.kind not in _COMPUTED]
    return report.flags


_COMPUTED = {
    "nonfinite", "vanishing_activations", "exploding_activations", "vanishing_gradients",
    "exploding_gradients", "dead", "saturated", "collapse",
}  # fmt: skip
