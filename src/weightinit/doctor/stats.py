"""What every doctor view of a Keras or Flax model shares with the rest of the doctor: the view's base class
(:class:`ModelView`), the loss of the doctor's backward pass (:func:`backward_loss`), the measured statistics of one
layer's output (:func:`layer_stats`) and a kernel's ``sigma_w**2`` (:func:`sigma_w2`).

The analysis itself (capture, moments, findings, fix) is :mod:`weightinit.doctor.graph`'s, for every Keras and
Flax model: functional, subclassed, ``keras.Sequential``, NNX (``nnx.Sequential`` included) and Linen.
"""

from __future__ import annotations

import abc
import math

import numpy as np

from weightinit.doctor.report import LayerStats
from weightinit.initializers.fans import input_size

__all__ = ["ModelView", "backward_loss", "layer_stats", "sigma_w2"]


class ModelView(abc.ABC):
    """What every doctor view of one framework's model has (:class:`weightinit.doctor.graph.GraphModel`)."""

    #: names the framework in the report's notes ("Keras functional: 12 nodes from the functional graph ...")
    label = "?"
    #: LSUV's orthogonal stream is ``child("<name>.kernel")`` if true, ``child("<name>")`` if false
    seed_by_key = False

    def __init__(self, model):
        self.model = model

    @abc.abstractmethod
    def framework(self) -> str:
        """The report's ``framework`` field (may import the framework)."""


def backward_loss(y: np.ndarray, targets, seed: int) -> tuple[float, np.ndarray]:
    """The loss of the doctor's backward pass on the output ``y`` (float64) and its gradient ``dL/dy``.

    As in the torch path (:func:`weightinit.doctor.measure.measure_torch`): cross-entropy for integer
    ``targets`` of a ``(batch, classes)`` output, mean squared error for other targets, and without targets
    ``sum(y * g) / sqrt(batch)`` with a fixed Gaussian ``g`` (``default_rng(seed + 1)``), a unit-variance
    cotangent.  The backward pass of ``L`` is then the one of the linear loss ``sum(y * dL/dy)``.
    """
    n = max(int(y.shape[0]), 1)
    if targets is None:
        g = np.random.default_rng(seed + 1).standard_normal(y.shape) / math.sqrt(n)
        return float(np.sum(y * g)), g
    t = np.asarray(targets)
    if y.ndim == 2 and np.issubdtype(t.dtype, np.integer):
        t = t.reshape(-1)
        if t.shape[0] != y.shape[0]:
            raise ValueError(f"{t.shape[0]} integer targets for a batch of {y.shape[0]}")
        z = y - y.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        rows = np.arange(y.shape[0])
        g = np.exp(logp)
        g[rows, t] -= 1.0
        return float(-logp[rows, t].mean()), g / y.shape[0]
    t = np.broadcast_to(t.astype(np.float64), y.shape)
    return float(np.mean((y - t) ** 2)), 2.0 * (y - t) / y.size


def sigma_w2(k: np.ndarray) -> float:
    """``E[W**2] * fan_in`` of a ``(..., fan_in, fan_out)`` kernel: the factor a weight layer multiplies the second
    moment of zero-mean inputs by (He et al. 2015; 2 keeps a ReLU net's signal, 1 a linear one's).

    >>> sigma_w2(np.full((4, 3), 0.5))  # 0.25 * fan_in 4
    1.0
    """
    return float(np.mean(k * k)) * input_size(k.shape)


def layer_stats(name: str, kind: str, depth: int, y: np.ndarray, sat, rng: np.random.Generator) -> LayerStats:
    """The measured statistics of one layer's output ``y`` (float64, batch first): mean, std, second moment,
    input-dependent std (``signal``), dead units (last axis), the saturated fraction (``sat``: ``y -> mask`` or
    None) and a sample of 2000 values for the histograms."""
    y = np.asarray(y, np.float64)
    s = LayerStats(name=name, kind=kind, depth=depth, shape=tuple(y.shape))
    if y.size == 0:
        return s
    s.nonfinite = not bool(np.isfinite(y).all())
    s.mean, s.std, s.q = float(y.mean()), float(y.std()), float(np.mean(y * y))
    s.signal = (
        float(np.sqrt(y.reshape(y.shape[0], -1).var(axis=0).mean())) if y.ndim and y.shape[0] > 1 else float("nan")
    )
    if y.ndim >= 1:
        s.dead = float(1 - (y.reshape(-1, y.shape[-1]) != 0).any(axis=0).mean())
    if sat is not None:
        s.saturated = float(sat(y).mean())
    flat = y.ravel()
    s.sample = flat[rng.choice(flat.size, min(flat.size, 2000), replace=False)].astype(np.float32)
    return s
