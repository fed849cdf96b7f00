"""The doctor and fix for models analysed as a chain of layers, independent of the framework (Keras 3, Flax NNX).

A backend describes its models with a :class:`Chain` (how to list the layers,
read and write a kernel as numpy, run the batch forward, read a layer's
activation); :func:`doctor_chain` and :func:`fix_chain` hold the logic once:

* **doctor**: per-layer forward statistics; one backward pass (:meth:`Chain.gradients`, optional) for
  ``dL/dy`` at each layer's output and ``||dL/dp||`` of its parameters, with the loss of the torch path
  (:func:`chain_loss`); then the analytic second moment
  propagated down the chain: a weight layer maps ``q -> sigma_w**2 q + E[b**2]``
  (``sigma_w**2 = E[W**2] * fan_in``, kernels in ``(..., fan_in, fan_out)``
  layout), an activation ``q -> E[phi(sqrt(q) z)**2]`` (:func:`moment_map`), and the input-dependent variance
  ``d -> sigma_w**2 d`` and :func:`~weightinit.doctor.analytic.signal_map` (the predicted signal),
  with ``chi`` and the depth-stability check at each activation;
* **fix**, ``mode="lsuv"``: each kernel gets an orthogonal pre-init from
  ``Stream.from_seed(seed).child(...)``, then :func:`lsuv_rescale` until the
  layer's pre-activation variance is within ``tol`` of ``target``;
  ``mode="analytic"``: each kernel is scaled so its predicted output second
  moment is ``target`` (:func:`rescale_factor`), then ``q`` goes through the
  activations that follow.
"""

from __future__ import annotations

import abc
import math

import numpy as np

from weightinit.doctor.analytic import chi, depth_stability, input_signal, moment_map, rescale_factor, signal_map
from weightinit.doctor.diagnose import diagnose
from weightinit.doctor.lsuv import lsuv_rescale
from weightinit.doctor.report import FixReport, Flag, LayerStats, Report
from weightinit.initializers.fans import input_size
from weightinit.initializers.orthogonal import Orthogonal
from weightinit.random.streams import Stream

__all__ = ["Chain", "chain_loss", "doctor_chain", "fix_chain", "layer_stats", "sigma_w2"]


class ModelView(abc.ABC):
    """What every doctor view of one framework's model has (:class:`Chain` here, ``graph.GraphModel``)."""

    #: names the framework in the report's notes ("Keras: layers analysed as a chain")
    label = "?"
    #: LSUV's orthogonal stream is ``child("<name>.kernel")`` if true, ``child("<name>")`` if false
    seed_by_key = False

    def __init__(self, model):
        self.model = model

    @abc.abstractmethod
    def framework(self) -> str:
        """The report's ``framework`` field (may import the framework)."""


class Chain(ModelView):
    """How the chain doctor sees one framework's model (subclassed by each backend).

    Layers are the framework's own objects; arrays cross this interface as numpy
    (``float64`` out, any float in).
    """

    @abc.abstractmethod
    def layers(self) -> list:
        """The layers, in forward order."""

    @abc.abstractmethod
    def input_shape(self, input_shape) -> tuple:
        """The per-example shape of a synthetic batch (``input_shape`` as given, or inferred); raises if unknown."""

    @abc.abstractmethod
    def outputs(self, x: np.ndarray) -> tuple[list | None, tuple | None]:
        """Run ``x`` through the layers: ``([(layer, output as float64 numpy)], failure)``.

        ``failure`` is ``None`` or ``(where, exception)``.  With a failure, the list holds the outputs of the
        layers before it, or is ``None`` when nothing is to be reported (the report then stops at the flag).
        """

    @abc.abstractmethod
    def name(self, layer, i: int) -> str:
        """The layer's name in reports and in ``FixReport.scales`` (``"<name>.kernel"``)."""

    @abc.abstractmethod
    def kind(self, layer) -> str:
        """``LayerStats.kind``."""

    @abc.abstractmethod
    def kernel(self, layer) -> np.ndarray | None:
        """The layer's kernel as float64 numpy, ``(..., fan_in, fan_out)``; ``None`` for a layer without one."""

    @abc.abstractmethod
    def set_kernel(self, layer, k: np.ndarray) -> None:
        """Overwrite the layer's kernel with ``k`` (cast to the framework's dtype)."""

    @abc.abstractmethod
    def bias_q(self, layer) -> float:
        """``E[b**2]`` of the layer's bias (0 without one)."""

    @abc.abstractmethod
    def activation(self, layer) -> tuple | None:
        """``(phi, label)``: the elementwise function the layer applies (after its kernel, if any) as a numpy
        function, and its name for the depth-stability message; ``None`` if the layer applies none."""

    def gradients(self, x: np.ndarray, cot: np.ndarray) -> list:
        """One backward pass of the loss ``sum(y * cot)`` (``y`` the last layer's output on ``x``).

        ``cot`` is float64 (cast it to the output's dtype).  Returns, per layer in the order of :meth:`outputs`, ``({param name: dL/dp}, dL/dy)`` as numpy; a layer
        met more than once lists the gradient of that call only (the doctor sums them).  Raises
        ``NotImplementedError(reason)`` where the framework cannot differentiate: the report then holds forward
        statistics only, with ``reason`` in its notes.
        """
        raise NotImplementedError("not implemented for this framework")

    def saturation(self, layer):
        """``y -> bool array`` marking saturated outputs of this layer, or ``None`` (not measured)."""
        return None

    def rescale_phi(self, layer, after_kernel: bool):
        """The numpy function the analytic fix pushes ``q`` through at a layer without a kernel, or ``None``.

        ``after_kernel``: whether a kernel layer came before this one.
        """
        act = self.activation(layer)
        return act[0] if act is not None else None

    def start(self, x: np.ndarray):
        """The fix's forward state before the first layer (see :meth:`advance`)."""
        return x

    def advance(self, state, layer):
        """The forward state after ``layer`` (eager: its output; lazy: the layers to replay)."""
        return state

    @abc.abstractmethod
    def preactivation(self, state, layer) -> np.ndarray:
        """The output of ``layer``'s kernel (before any fused activation) on the batch, as float64 numpy."""


def chain_input(chain: Chain, inputs, batch: int, input_shape, seed: int) -> np.ndarray:
    """``inputs`` as float32, or a synthetic N(0, 1) batch of ``chain.input_shape(input_shape)``."""
    if inputs is not None:
        return np.asarray(inputs, dtype=np.float32)
    shape = chain.input_shape(input_shape)
    return np.random.default_rng(seed).standard_normal((batch, *shape)).astype(np.float32)


def chain_loss(y: np.ndarray, targets, seed: int) -> tuple[float, np.ndarray]:
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


def _backward(chain: Chain, outs: list, x: np.ndarray, targets, seed: int) -> tuple[float, list] | str:
    """``(loss, [({param: ||dL/dp||}, std of dL/dy)] per layer)``, or why the gradients were not measured."""
    try:
        loss, cot = chain_loss(outs[-1][1], targets, seed)
        grads = chain.gradients(x, cot)
    except NotImplementedError as e:
        return str(e)
    except Exception as e:
        return f"the backward pass failed with {type(e).__name__}: {e}"
    total: dict = {}  # a layer met more than once: its parameters' gradients summed over its calls
    for (lay, _), (pg, _) in zip(outs, grads):
        acc = total.setdefault(id(lay), {})
        for k, v in pg.items():
            v = np.asarray(v, np.float64)
            acc[k] = acc[k] + v if k in acc else v
    res, seen = [], set()
    for (lay, _), (_, gy) in zip(outs, grads):
        norms = {} if id(lay) in seen else {k: float(np.linalg.norm(v)) for k, v in total[id(lay)].items()}
        seen.add(id(lay))
        gy = np.asarray(gy, np.float64)
        res.append((norms, float(gy.std()) if gy.size else float("nan")))
    return loss, res


def sigma_w2(k: np.ndarray) -> float:
    """``E[W**2] * fan_in`` of a ``(..., fan_in, fan_out)`` kernel."""
    return float(np.mean(k * k)) * input_size(k.shape)


_sigma_w2 = sigma_w2


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


def _input_q(x: np.ndarray, inputs) -> float:
    return float(np.mean(x.astype(np.float64) ** 2)) if inputs is not None else 1.0


def _input_d(x: np.ndarray, inputs) -> float:
    """The inputs' input-dependent variance (:func:`~weightinit.doctor.analytic.input_signal`; synthetic: 1)."""
    return input_signal(x) if inputs is not None else 1.0


def doctor_chain(chain: Chain, inputs=None, *, targets=None, seed: int = 0, batch: int = 64, input_shape=None,
                 title: str = "weightinit doctor") -> Report:  # fmt: skip
    """Forward and backward statistics and analytic moments of ``chain``'s model on ``inputs`` (or a synthetic
    batch); ``targets`` choose the loss as in the torch path (:func:`chain_loss`)."""
    rep = Report(title=title, framework=chain.framework(), mode="measure+analytic")
    try:
        x = chain_input(chain, inputs, batch, input_shape, seed)
    except Exception as e:
        rep.flags.append(Flag("bad_input", "input", str(e), "Pass inputs= (a batch).", "error"))
        return rep
    rep.batch = int(x.shape[0]) if x.ndim else 0
    if rep.batch == 0:
        rep.flags.append(Flag("empty_batch", "input", "The batch is empty.", "Pass a non-empty batch.", "error"))
        return rep
    outs, failure = chain.outputs(x)
    failed = None
    if failure is not None:
        where, e = failure
        failed = Flag("forward_failed", where, f"{type(e).__name__}: {e}", "Pass inputs of the right shape.", "error")
    if outs is None:
        if failed is not None:
            rep.flags.append(failed)
        return rep
    back = _backward(chain, outs, x, targets, seed) if failed is None and outs else "the forward pass failed"
    grads = back[1] if isinstance(back, tuple) else [({}, float("nan"))] * len(outs)
    if isinstance(back, tuple):
        rep.loss, rep.loss_is_probe = back[0], targets is None
    rng = np.random.default_rng(seed)
    q, d = _input_q(x, inputs), _input_d(x, inputs)
    inc = None
    for i, (lay, y) in enumerate(outs):
        s = layer_stats(chain.name(lay, i), chain.kind(lay), i, y, chain.saturation(lay), rng)
        s.grad_norms, s.grad_std = grads[i]
        # analytic (chain)
        q_in = q
        k = chain.kernel(lay)
        if k is not None:
            s.weight_norm = float(np.linalg.norm(k))
            inc = _sigma_w2(k)
            q = inc * q + chain.bias_q(lay)
            d = inc * d  # the bias shifts every input alike
        act = chain.activation(lay)
        if act is not None:
            phi, label = act
            q2 = moment_map(phi, q)[1]
            d = signal_map(phi, q, 0.0, d)
            s.chi = chi(phi, inc, q) if inc is not None else float("nan")
            msg = depth_stability(phi, label)
            if msg and not rep.flagged("not_depth_stable"):
                rep.flags.append(Flag("not_depth_stable", s.name, msg, "Use normalization or another activation."))
            q = q2
        s.q_pred = q
        s.signal_pred = math.sqrt(max(d, 0.0))  # (the chain tracks no means: std_pred is left unset)
        s.gain = math.sqrt(q / q_in) if q_in > 0 else float("nan")
        rep.layers.append(s)
    if failed is not None:
        rep.flags.append(failed)
    if isinstance(back, str):
        rep.notes.append(f"{chain.label}: forward statistics only (gradients not measured: {back}); "
                         "layers analysed as a chain")  # fmt: skip
    else:
        rep.notes.append(f"{chain.label}: layers analysed as a chain")
    diagnose(rep)
    return rep


def _lsuv_kernel(chain: Chain, state, layer, k: np.ndarray, target: float, tol: float, max_iter: int):
    """LSUV on one kernel (already pre-initialized to ``k``); returns ``(total scale, iterations)``."""
    cur = [k]

    def measure() -> float:
        return float(np.var(chain.preactivation(state, layer)))

    def rescale(s: float) -> None:
        cur[0] = cur[0] * s
        chain.set_kernel(layer, cur[0])

    total, n, _bad = lsuv_rescale(measure, rescale, target, tol, max_iter)
    return total, n


def fix_chain(chain: Chain, mode: str, inputs, *, target: float = 1.0, tol: float = 0.1, max_iter: int = 10,
              seed: int = 0, batch: int = 64, input_shape=None, measure: bool = True,
              probe: bool = True) -> FixReport:  # fmt: skip
    """Rescale the kernels of ``chain``'s model in place (``mode`` ``"lsuv"`` or ``"analytic"``).

    ``probe`` (analytic): after each kernel's moment-map scale, one measurement of its pre-activation on the
    batch corrects the scale to the target, as the torch path does (see :func:`weightinit.doctor.api.fix`).
    """
    x = chain_input(chain, inputs, batch, input_shape, seed)
    if mode == "analytic" and probe and inputs is None and x[0].size <= 4096 and len(x) < 1024:
        x = chain_input(chain, None, 1024, input_shape, seed)  # a probe wide enough for the correction
    rep = FixReport(mode=mode)
    if measure:
        rep.before = doctor_chain(chain, x, seed=seed, title="before fix")
    layers = chain.layers()
    q = _input_q(x, inputs)
    state, after_kernel = chain.start(x), False
    for i, lay in enumerate(layers):
        k = chain.kernel(lay)
        if k is not None:
            name = chain.name(lay, i)
            key = f"{name}.kernel"
            if mode == "lsuv":
                stream = Stream.from_seed(seed).child(key if chain.seed_by_key else name)
                k = np.asarray(Orthogonal(seed=stream)(k.shape, "float64"))
                chain.set_kernel(lay, k)
                rep.scales[key], rep.iterations[key] = _lsuv_kernel(chain, state, lay, k, target, tol, max_iter)
            else:
                qb = chain.bias_q(lay)
                s = rescale_factor(_sigma_w2(k), q, qb, target)
                chain.set_kernel(lay, k * s)
                if probe:  # correct on the batch the finite-width drift the moment map cannot see
                    a = float(np.mean(np.square(chain.preactivation(state, lay)))) - qb
                    want = max(target - qb, 1e-3 * target)
                    if a > 0 and math.isfinite(a):
                        s *= math.sqrt(want / a)
                        chain.set_kernel(lay, k * s)
                rep.scales[key] = s
                q = target
                act = chain.activation(lay)
                if act is not None:
                    q = moment_map(act[0], q)[1]
            after_kernel = True
        elif mode == "analytic":
            phi = chain.rescale_phi(lay, after_kernel)
            if phi is not None:
                q = moment_map(phi, q)[1]
        state = chain.advance(state, lay)
    if measure:
        rep.after = doctor_chain(chain, x, seed=seed, title=f"after fix ({mode})")
    return rep
