"""The doctor and fix on a model's dataflow graph, independent of the framework (Keras functional, subclassed and
``Sequential`` models, Flax NNX, ``nnx.Sequential`` included, and Linen).

A backend captures its model as a :class:`Graph`: :class:`GNode` objects in an order where every node comes after
its inputs, each with the node's measured output (one eager forward pass) and the numbers the moment rules need
(a weight layer's ``sigma_w**2 = E[W**2] * fan_in``, a normalization's ``E[gamma**2]``, an activation's numpy
function, a concatenation's part sizes).  From it:

* :func:`doctor_graph` measures per node (mean, std, signal, dead and saturated fractions:
  :func:`weightinit.doctor.stats.layer_stats`; ``dL/dy`` and the parameter gradients from the backend's one
  backward pass, the loss of :func:`weightinit.doctor.stats.backward_loss` on each output), then propagates ``(mean, second moment)`` along the
  edges with the rules of :mod:`weightinit.doctor.analytic` (its :func:`~weightinit.doctor.analytic.add_moments`
  at residual adds, with the cross moment of the branches' Jacobians measured by the framework's forward mode,
  :func:`measured_cross`; :func:`~weightinit.doctor.analytic.concat_moments` at concatenations,
  :func:`~weightinit.doctor.analytic.moment_map` and :func:`~weightinit.doctor.analytic.chi` at activations, and
  so on);
* :func:`fix_graph` rescales each kernel in graph order: LSUV (orthogonal pre-init, then the measured
  pre-activation variance to the target) or analytic (the predicted second moment to the target, then corrected
  on the batch).  A weight layer whose output feeds an add of ``m`` tensors gets ``target / m`` so the sum has the
  target (as the torch path's :func:`weightinit.doctor.analytic.add_targets`); one that feeds only a
  normalization is left alone (its scale does not reach the output).

Where the framework gives only the calls of its layers (Keras subclassed models, Flax modules), the edges between
them are found by :func:`link_calls`: a layer's input that is not the very output of an earlier call is matched by
value against the tensors recorded so far (the same tensor, an elementwise activation of one, the sum of two, a
concatenation along the last axis, a max or average pooling of one: :data:`POOLINGS`); what matches nothing becomes an ``opaque`` node, treated as the identity and
named in the report's notes.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from weightinit.doctor import analytic as an
from weightinit.doctor.diagnose import diagnose
from weightinit.doctor.lsuv import lsuv_rescale
from weightinit.doctor.report import FixReport, Flag, Report
from weightinit.doctor.stats import ModelView, backward_loss, layer_stats, sigma_w2
from weightinit.initializers.gains import ACTIVATIONS
from weightinit.initializers.orthogonal import Orthogonal
from weightinit.random.streams import Stream

__all__ = ["GNode", "Graph", "GraphModel", "Tangents", "doctor_graph", "fix_graph", "link_calls", "propagate",
           "measured_cross", "jacobian_cross", "probe_cross", "common_source", "running_norm_fields"]  # fmt: skip

#: node operations and the rule each gets (see :func:`propagate`)
OPS = ("input", "weight", "act", "add", "concat", "mul", "norm", "avgpool", "maxpool", "embedding", "identity",
       "opaque", "mix")  # fmt: skip


@dataclass(eq=False)
class GNode:
    """One node of a captured graph: a layer call, a framework op, or an edge op found by :func:`link_calls`."""

    name: str
    kind: str  # LayerStats.kind: the framework's class name (Dense, Linear, Add, ...) or the activation's name
    op: str  # one of OPS
    inputs: list = field(default_factory=list)  # indices of the nodes feeding this one, in argument order
    layer: Any = None  # the framework's object (layer, module), None for inferred nodes
    out: Any = None  # measured output, float64 numpy
    # moment-rule parameters
    sigma_w2: float | None = None  # weight: E[W**2] * fan_in
    fan_in: int = 0  # weight: inputs per output unit (0: input_size of the kernel's shape)
    rows: tuple | None = None  # weight: (E[r], E[r**2], E[r b]) of the row sums r_i = sum_j W_ij (dense/conv)
    qb: float = 0.0  # weight: E[b**2]; norm: E[beta**2]
    mb: float = 0.0  # weight: E[b]; norm: E[beta]
    qg: float = 1.0  # norm: E[gamma**2]
    eps: float = 0.0  # norm: the epsilon added to the variance (z = x / sqrt(v + eps) has E[z**2] = v / (v + eps))
    phi: Any = None  # act (or a weight layer's fused activation): numpy function
    act: str | None = None  # its name
    pool: float = 0.0  # avgpool: inputs per output (0: from the measured shapes)
    pad: float = 1.0  # weight, a zero-padded conv: the factor on sigma_w2 (analytic.padded_kernel_moments)
    window: tuple | None = None  # maxpool: (sizes, weights) of its windows (analytic.pool_window_sizes); avgpool:
    # (sizes, divisors, weights) (analytic.avgpool_windows)
    pool_fn: Any = None  # a pooling found by value: (x, tangent or None) -> (pooled x, pooled tangent), numpy
    attn: tuple | None = None  # mix: (scale**2 * d, counts, p[, allowed masks[, score variance]]): attention_mix
    signs: list | None = None  # add: +1/-1 per input (None: all +1)
    emb: tuple | None = None  # embedding: (E[W], E[W**2], d) of analytic.embedding_moments
    sat: Any = None  # y -> bool mask of saturated outputs
    weight_norm: float = float("nan")
    # gradients (filled by GraphModel.gradients)
    grad_y: Any = None
    grad_params: dict = field(default_factory=dict)
    arg_grads: list | None = None  # dL/d(input j) of a recorded call (hook captures), for inferred nodes
    note: str = ""
    # a layer call the rules see as several nodes (attention: its q/k/v projections, the mixing, the output
    # projection); see place_parts
    parts: list | None = None  # before placing: the nodes before this one, ``inputs`` as ("arg", j) / ("part", k)
    call_inputs: list | None = None  # after placing: the nodes of the call's array arguments (``inputs`` is then
    # [the last part]); a call's tangents, perturbations and argument gradients go with these
    inner: bool = False  # a placed part: inside its call, no tensor of the model's own dataflow

    def args(self) -> list:
        """The nodes of this call's array arguments, in order (its ``inputs``, unless its parts were placed)."""
        return self.inputs if self.call_inputs is None else self.call_inputs


def place_parts(nodes: list, node: GNode) -> None:
    """Append the ``parts`` of the call ``node`` (whose ``inputs`` are its arguments' nodes) to ``nodes``, before
    ``node`` itself is appended: each part's ``("arg", j)`` input becomes ``node.inputs[j]``, ``("part", k)`` the
    ``k``-th part's index; ``node`` keeps its arguments in ``call_inputs`` and takes the last part as its input.

    >>> nodes = [GNode("x", "Input", "input")]
    >>> call = GNode("attn", "MultiHeadAttention", "weight", [0, 0],
    ...              parts=[GNode("attn.v", "EinsumDense", "weight", [("arg", 1)]),
    ...                     GNode("attn.attention", "attention", "mix", [("part", 0)] * 3)])
    >>> place_parts(nodes, call); nodes.append(call)
    >>> [(n.name, n.inputs) for n in nodes], call.args()
    ([('x', []), ('attn.v', [0]), ('attn.attention', [1, 1, 1]), ('attn', [2])], [0, 0])
    """
    if not node.parts:
        return
    base, args = len(nodes), list(node.inputs)
    for p in node.parts:
        p.inputs = [args[j] if how == "arg" else base + j for how, j in p.inputs]
        p.inner = True
        nodes.append(p)
    node.call_inputs, node.inputs, node.parts = args, [len(nodes) - 1], None


def attention_mix(s2: float, allowed, dropout: float = 0.0) -> tuple:
    """The ``attn`` of a ``mix`` node (``softmax(q k^T * scale + mask) v``; inputs query, key, value): ``s2 =
    scale**2 * head dim`` (1 for the usual ``1/sqrt(head dim)``), the keys each query row may attend to from the
    boolean ``allowed`` (``(..., T_q, T_k)``, True: attend; a stack over batch and heads is kept as its distinct
    masks, for the token Gram), the dropout rate on the weights.

    >>> s2, counts, p, masks = attention_mix(1.0, np.tril(np.ones((1, 3, 3), bool)))
    >>> counts.tolist(), masks.shape
    ([1, 2, 3], (1, 3, 3))
    """
    a = np.asarray(allowed, bool)
    m = a.reshape(-1, *a.shape[-2:])
    m = np.unique(m, axis=0) if m.shape[0] > 1 else m
    return float(s2), a.reshape(-1, a.shape[-1]).sum(-1), float(dropout), m


@dataclass
class Graph:
    """A captured model: ``nodes`` in an order where inputs come first, ``outputs`` (node indices)."""

    nodes: list
    outputs: list
    notes: list = field(default_factory=list)
    how: str = "graph"  # how the edges were found, for the report's note
    calls: list = field(default_factory=list)  # the node of each recorded framework call, in call order

    def consumers(self) -> dict:
        use: dict = {i: [] for i in range(len(self.nodes))}
        for j, n in enumerate(self.nodes):
            for a, i in enumerate(n.inputs):
                use[i].append((j, a))
        return use


class GraphModel(ModelView):
    """How the graph doctor sees one framework's model (subclassed by each backend)."""

    @abc.abstractmethod
    def batch(self, inputs, batch: int, input_shape, seed: int) -> np.ndarray | tuple[np.ndarray, ...]:
        """``inputs`` as float32 numpy (a tuple for several inputs), or a synthetic N(0, 1) batch; raises if the
        shape cannot be inferred."""

    @abc.abstractmethod
    def capture(self, x) -> Graph:
        """One eager forward pass of ``x``: the graph with every node's ``out`` and moment parameters."""

    def gradients(self, x, g: Graph, cots: list) -> None:
        """One backward pass of ``sum_k sum(y_k * cots[k])``: fill each node's ``grad_y`` (and ``arg_grads`` for a
        recorded call) and ``grad_params`` (``{param name: dL/dp}``, a layer's total, at its first node).  Raises
        ``NotImplementedError(reason)`` where the framework cannot differentiate."""
        raise NotImplementedError("not implemented for this framework")

    def replay(self, x, run: Tangents) -> None:
        """Run the forward of ``x`` again (the calls of :meth:`capture`, in the same order), each recorded call as
        ``run.call(fn, arrays)`` (``fn(*arrays)`` the call as a function of its array inputs; it returns what the
        call returns).  Raises ``NotImplementedError(reason)`` where the framework has no forward mode."""
        raise NotImplementedError("no forward-mode differentiation for this framework")

    def jvp(self, fn, arrays, tangents):
        """``(fn(*arrays), tangent of its first array as float64 numpy)`` by the framework's forward mode, the
        ``tangents`` numpy (None: zeros)."""
        raise NotImplementedError("no forward-mode differentiation for this framework")

    def first(self, y) -> np.ndarray:
        """A call's output value as :class:`GNode.out` holds it (its first array, float64 numpy)."""
        return np.asarray(y, np.float64)

    def param_count(self) -> int:
        """Number of parameter values (for :data:`weightinit.doctor.analytic.CROSS_BUDGET`)."""
        return 0

    @abc.abstractmethod
    def kernel(self, node: GNode) -> np.ndarray | None:
        """The node's kernel, float64, ``(..., fan_in, fan_out)``; None without one."""

    @abc.abstractmethod
    def set_kernel(self, node: GNode, k: np.ndarray) -> None:
        """Overwrite the node's kernel with ``k``."""

    @abc.abstractmethod
    def preactivation(self, x, node: GNode) -> np.ndarray:
        """The output of ``node``'s kernel (before a fused activation) on the batch ``x``, float64."""


def kernel_stats(k: np.ndarray, bias=None, rows: bool = True) -> dict:
    """The :class:`GNode` fields of a ``(..., fan_in, fan_out)`` kernel (and its bias): ``sigma_w2``,
    ``weight_norm``, ``qb``, ``mb`` and, with ``rows`` (dense and convolution layers), the row-sum moments."""
    from weightinit.initializers.fans import input_size

    k = np.asarray(k, np.float64)
    b = None if bias is None else np.asarray(bias, np.float64)
    out: dict[str, Any] = {"sigma_w2": float(np.mean(k * k)) * input_size(k.shape), "weight_norm": float(np.linalg.norm(k)),
           "qb": float(np.mean(b * b)) if b is not None else 0.0, "mb": float(b.mean()) if b is not None else 0.0}  # fmt: skip
    if rows and k.ndim >= 2:
        out["rows"] = an.row_sum_moments(k.reshape(-1, k.shape[-1]).sum(0), b)
    return out


def running_norm_fields(x, y, mean, var, scale=None, bias=None, eps: float = 1e-5, axis: int = -1) -> dict | None:
    """The :class:`GNode` fields of a BatchNorm call that applied its running statistics (inference: Flax's
    ``use_running_average=True`` or ``nnx`` ``model.eval()``, Keras' ``training=False`` or ``trainable=False``),
    else None (it standardized with the batch's statistics: the ``norm`` rule).  Told apart by value: ``y`` is
    the affine map ``scale (x - mean) / sqrt(var + eps) + bias`` of ``x`` per channel (``axis``).  Returned as a
    ``weight`` node with :func:`weightinit.doctor.analytic.running_norm_affine`'s numbers (no kernel: the fix
    leaves it alone, and rescales the weights before it, since an affine map is not scale-invariant).

    >>> x = np.random.default_rng(0).standard_normal((64, 3))
    >>> running_norm_fields(x, (x - 1.0) / 2.0, [1.0] * 3, [4.0] * 3, eps=0.0)["sigma_w2"]
    0.25
    >>> running_norm_fields(x, (x - x.mean(0)) / x.std(0), [1.0] * 3, [4.0] * 3) is None
    True
    """
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.shape != y.shape or x.ndim == 0:
        return None
    shape = [1] * x.ndim
    shape[axis] = -1
    rv = np.asarray(var, np.float64).reshape(-1)
    s = (np.ones_like(rv) if scale is None else np.asarray(scale, np.float64).reshape(-1)) / np.sqrt(rv + eps)
    t = (0.0 if bias is None else np.asarray(bias, np.float64).reshape(-1)) - np.asarray(mean, np.float64).reshape(
        -1
    ) * s
    try:
        want = x * s.reshape(shape) + np.broadcast_to(t, s.shape).reshape(shape)
    except ValueError:
        return None
    if not _close(want, y):
        return None
    sw, qb, mb, rows = an.running_norm_affine(mean, var, scale, bias, eps=eps)
    return {"op": "weight", "sigma_w2": sw, "qb": qb, "mb": mb, "rows": rows}


def batch_of(inputs, shapes, batch: int, seed: int, keep_int: bool = False):
    """``inputs`` as float32 numpy (each of a tuple/list; with ``keep_int``, integer arrays stay integer: token ids
    for a Flax ``Embed``, which refuses floats), or synthetic N(0, 1) data of the per-example ``shapes``."""

    def conv(v):
        try:
            a = np.asarray(v)
            return a if keep_int and a.dtype.kind in "iu" else np.asarray(a, dtype=np.float32)
        except (TypeError, ValueError):
            from weightinit.common.errors import InitializerTypeError

            raise InitializerTypeError(
                "`inputs` must be an array of numbers (a batch), or a tuple/list of them; received "
                f"{type(v).__name__} {str(v)[:60]!r}"
            ) from None

    if inputs is not None:
        if isinstance(inputs, (tuple, list)):
            return tuple(conv(v) for v in inputs)
        return conv(inputs)
    rng = np.random.default_rng(seed)
    xs = tuple(rng.standard_normal((batch, *s)).astype(np.float32) for s in shapes)
    return xs[0] if len(xs) == 1 else xs


def _first(x: np.ndarray | tuple[np.ndarray, ...]) -> np.ndarray:
    return x[0] if isinstance(x, tuple) else x


# ------------------------------------------------------------------------------------------
# edges from values (hook captures)
# ------------------------------------------------------------------------------------------

#: activation name -> ``y -> bool mask`` of outputs on the activation's flat part (derivative below ~0.02)
SATURATION = {"tanh": lambda y: np.abs(y) > 0.99, "sigmoid": lambda y: (y < 0.01) | (y > 0.99)}

#: activations looked for between recorded calls (numpy functions of weightinit.initializers.gains)
LINK_ACTS = ("relu", "gelu", "gelu_tanh", "tanh", "sigmoid", "silu", "softplus", "elu", "selu", "relu6")
_MAX_CANDIDATES = 16


def _close(a: np.ndarray, b: np.ndarray) -> bool:
    if a.shape != b.shape:
        return False
    scale = float(np.sqrt(np.mean(b * b))) if b.size else 0.0
    return bool(np.allclose(a, b, rtol=1e-4, atol=1e-5 * max(scale, 1e-6)))


def link_calls(inputs: list, records: list, outputs: list, *, acts=LINK_ACTS, to_numpy=None) -> Graph:
    """The graph of a forward pass known only by its layer calls.

    ``inputs``: ``[(name, array)]`` of the model's inputs; ``records``: ``[(GNode, [input arrays], output
    array)]`` in call order (the nodes without ``inputs``); ``outputs``: the model's output arrays.  Arrays are
    matched first by identity (``id``), then by value (see the module docstring); ``to_numpy`` converts a
    framework's array (default ``numpy.asarray``).

    >>> rng = np.random.default_rng(0)
    >>> x, w = rng.standard_normal((8, 4)), rng.standard_normal((4, 4))
    >>> f = x @ w  # the one recorded call, fc(x); then, unrecorded, relu(x + fc(x)) concatenated with x
    >>> y = np.concatenate([np.maximum(x + f, 0.0), x], -1)
    >>> g = link_calls([("x", x)], [(GNode("fc", "Linear", "weight"), [x], f)], [y])
    >>> [(n.name, [g.nodes[i].name for i in n.inputs]) for n in g.nodes]
    [('x', []), ('fc', ['x']), ('add', ['x', 'fc']), ('add_relu', ['add']), ('concat', ['add_relu', 'x'])]

    Limits: an add is found between two tensors already known (recorded, or found before), so ``x + relu(h)``
    with neither ``relu(h)`` nor the sum consumed by a recorded call is not (an ``opaque`` node, with a note).
    """

    def conv(a) -> np.ndarray:
        return np.asarray(to_numpy(a) if to_numpy is not None else a, dtype=np.float64)

    nodes: list = []
    by_id: dict = {}
    vals: list = []  # (node index, float64 value), in order
    notes: list = []
    counts: dict = {}

    def register(node: GNode, arr) -> int:
        nodes.append(node)
        i = len(nodes) - 1
        if arr is not None:
            by_id[id(arr)] = i
        v = np.asarray(node.out if node.out is not None else arr, dtype=np.float64)
        node.out = v
        vals.append((i, v))
        return i

    def fresh(base: str) -> str:
        k = counts.get(base, 0)
        counts[base] = k + 1
        return base if k == 0 else f"{base}#{k + 1}"

    def act_node(i, a, uv, base=None):
        return register(GNode(fresh(f"{base or nodes[i].name}_{a}"), a, "act", [i], phi=ACTIVATIONS[a], act=a,
                              sat=SATURATION.get(a), out=uv), None)  # fmt: skip

    def resolve(u, nested: bool = False) -> int | None:
        if id(u) in by_id:
            return by_id[id(u)]
        try:
            uv = conv(u)
        except Exception:
            return None
        cands = [(i, v) for i, v in reversed(vals) if v.shape[:-1] == uv.shape[:-1]][: 4 * _MAX_CANDIDATES]
        same = [(i, v) for i, v in cands if v.shape == uv.shape][:_MAX_CANDIDATES]
        # an explanation that uses a tensor nothing has consumed yet goes first: with a branch that is exactly
        # zero (a dead ReLU before it), h + branch equals h, and the add is the structure, not the identity
        used = {j for n in nodes for j in n.inputs}
        for fresh_only in (True, False):
            pool = [(i, v) for i, v in same if (i not in used) or not fresh_only]
            for i, v in pool:
                if _close(v, uv):
                    return i
            for i, v in pool:
                for a in acts:
                    if _close(ACTIVATIONS[a](v), uv):
                        return act_node(i, a, uv)
            for x in range(len(same)):
                for y in range(x + 1, len(same)):
                    (i, vi), (j, vj) = same[y], same[x]  # the earlier one first
                    if fresh_only and i in used and j in used:
                        continue
                    s = vi + vj
                    if _close(s, uv):
                        return register(GNode(fresh("add"), "add", "add", [i, j], out=uv), None)
                    for a in acts:
                        if _close(ACTIVATIONS[a](s), uv):
                            k = register(GNode(fresh("add"), "add", "add", [i, j], out=s), None)
                            return act_node(k, a, uv, base="add")
        if not nested:  # a max or average pooling over the spatial axes (channels last), found by value
            hit = _find_pooling(uv, vals, acts, register, act_node, fresh)
            if hit is not None:
                return hit
        if nested or uv.ndim < 2:
            return None
        # a concatenation along the last axis: each part, in order, one of the above (sizes from the candidates)
        d = uv.shape[-1]
        sizes = sorted({v.shape[-1] for _, v in cands if v.shape[-1] < d}, reverse=True)
        state = (len(nodes), dict(by_id), len(vals), dict(counts))
        parts, pos = [], 0
        while pos < d:
            hit = None
            for w in sizes:
                if pos + w <= d:
                    hit = resolve(uv[..., pos : pos + w], nested=True)
                    if hit is not None:
                        pos += w
                        break
            if hit is None:
                break
            parts.append(hit)
        if pos == d and len(parts) >= 2:
            return register(GNode(fresh("concat"), "concat", "concat", parts, out=uv), None)
        del nodes[state[0] :], vals[state[2] :]  # roll back the parts found on the way
        by_id.clear()
        by_id.update(state[1])
        counts.clear()
        counts.update(state[3])
        return None

    for name, arr in inputs:
        register(GNode(name, "Input", "input", out=conv(arr)), arr)
    for node, args, out in records:
        for u in args:
            i = resolve(u)
            if i is None:
                prev = len(nodes) - 1
                i = register(GNode(fresh("op"), "opaque", "opaque", [prev] if prev >= 0 else [], out=conv(u)),
                             None)  # fmt: skip
                notes.append(f"the input of {node.name} is not a recorded tensor, an activation of one, a sum of two "
                             f"or a concatenation: treated as the identity of {nodes[prev].name}")  # fmt: skip
            node.inputs.append(i)
        place_parts(nodes, node)  # (not matched by value: no tensor of the model's dataflow)
        register(node, out)
    outs = []
    for y in outputs:
        i = resolve(y)
        if i is None:
            prev = len(nodes) - 1
            i = register(GNode(fresh("op"), "opaque", "opaque", [prev], out=conv(y)), None)
            notes.append(f"the model's output is not a recorded tensor: treated as the identity of {nodes[prev].name}")
        outs.append(i)
    return Graph(nodes, outs, notes, how="layer calls")


#: the windows looked for between recorded calls: (window, stride, padding) per spatial axis, all axes alike
POOLINGS = tuple((k, st, p) for k in (2, 3) for st in dict.fromkeys((k, 2, 1)) for p in ("VALID", "SAME", 1))
#: activations that commute with a max (non-decreasing): max(phi(x)) = phi(max(x))
_MONOTONE_ACTS = ("relu", "tanh", "sigmoid", "softplus", "elu", "selu", "relu6")


def _pool_np(x: np.ndarray, how: str, k=None, s=None, pads: Sequence[tuple[int, int]] = (), t=None):
    """Max (padding -inf) or average (padding counted as zeros: Flax's ``count_include_pad=True``) pooling of a
    channels-last ``x`` over its spatial axes (``k`` None: global, the axes dropped), and of a tangent ``t`` (the
    max's at the argmax); returns ``(pooled x, pooled t or None)``."""
    nd = x.ndim - 2
    if k is None:
        axes = tuple(range(1, 1 + nd))
        if how == "avg":
            return x.mean(axes), None if t is None else t.mean(axes)
        flat = x.reshape(len(x), -1, x.shape[-1])
        idx = flat.argmax(1)[:, None]
        y = np.take_along_axis(flat, idx, 1)[:, 0]
        return y, None if t is None else np.take_along_axis(t.reshape(flat.shape), idx, 1)[:, 0]
    width = [(0, 0), *pads, (0, 0)]
    sl = (slice(None), *(slice(None, None, s) for _ in range(nd)))

    def windows(a, fill):
        a = np.lib.stride_tricks.sliding_window_view(np.pad(a, width, constant_values=fill), (k,) * nd,
                                                     axis=tuple(range(1, 1 + nd)))[sl]  # fmt: skip
        return a.reshape(*a.shape[: nd + 2], -1)

    w = windows(x, -np.inf if how == "max" else 0.0)
    if how == "avg":
        return w.mean(-1), None if t is None else windows(t, 0.0).mean(-1)
    idx = w.argmax(-1)[..., None]
    y = np.take_along_axis(w, idx, -1)[..., 0]
    return y, None if t is None else np.take_along_axis(windows(t, 0.0), idx, -1)[..., 0]


def _find_pooling(uv: np.ndarray, vals: list, acts, register, act_node, fresh):
    """The node of ``uv`` if it is a max or average pooling (:data:`POOLINGS`, or global) of a known tensor, or a
    max pooling of a non-decreasing activation of one (that activation's node goes first); else None."""
    if uv.ndim < 2:
        return None
    cands = [(i, v) for i, v in reversed(vals) if v.ndim >= 3 and (v.ndim == uv.ndim or uv.ndim == 2)
             and v.shape[0] == uv.shape[0] and v.shape[-1] == uv.shape[-1] and v.shape != uv.shape][:_MAX_CANDIDATES]  # fmt: skip
    for i, v in cands:
        configs: list[tuple[Any, Any, Any]] = [(None, None, None)] if uv.ndim == 2 else []  # (k, stride, pads)
        want = uv.shape[1:-1] if uv.ndim == v.ndim else (1,) * (v.ndim - 2)  # (B, C): pooled to 1 x 1, flattened
        if uv.ndim == v.ndim or uv.ndim == 2:
            for k, st, p in POOLINGS:
                try:
                    pads = an.conv_pads(p, v.shape[1:-1], k, st)
                    sizes = [(n + lo + hi - k) // st + 1 for n, (lo, hi) in zip(v.shape[1:-1], pads)]
                except Exception:
                    continue
                if tuple(sizes) == want and min(lo for lo, _ in pads) >= 0 and k > max(
                    max(lo, hi) for lo, hi in pads):  # fmt: skip
                    configs.append((k, st, pads))
        for k, st, pads in configs:
            for how in ("max", "avg"):
                y = _pool_np(v, how, k, st, pads)[0].reshape(uv.shape)
                for a in (None, *(a for a in acts if a in _MONOTONE_ACTS and how == "max")):
                    if not _close(y if a is None else ACTIVATIONS[a](y), uv):
                        continue
                    j = i if a is None else act_node(i, a, ACTIVATIONS[a](v))

                    def fn(x, t=None, how=how, k=k, st=st, pads=pads, shape=uv.shape[1:]):
                        y, ty = _pool_np(x, how, k, st, pads, t)
                        return y.reshape(len(y), *shape), None if ty is None else ty.reshape(len(y), *shape)

                    window = None
                    if how == "max" and k is not None:
                        window = an.pool_window_sizes(an.conv_windows(v.shape[1:-1], k, st, pads))
                    elif k is not None:  # _pool_np's average counts the zero padding (Flax's avg_pool default)
                        window = an.avgpool_windows(v.shape[1:-1], k, st, pads, count_include_pad=True)
                    name = f"{'max' if how == 'max' else 'avg'}_pool"
                    return register(GNode(fresh(name), name, f"{how}pool", [j], out=uv, window=window, pool_fn=fn),
                                    None)  # fmt: skip
    return None


def _dphi_at(phi, u: np.ndarray) -> np.ndarray:
    """``phi'(u)`` of an activation's numpy function, by central differences (step ``1e-4`` of ``u``'s RMS)."""
    h = 1e-4 * max(float(np.sqrt(np.mean(u * u))), 1e-6) if np.size(u) else 1e-4
    return (np.asarray(phi(u + h), np.float64) - np.asarray(phi(u - h), np.float64)) / (2 * h)


def inferred_grads(g: Graph, cots: list) -> None:
    """``grad_y`` of the nodes a hook capture did not record (found by :func:`link_calls`), in reverse graph
    order: the sum over their consumers of ``dL/d(input)``, from a recorded call's ``arg_grads``, a model output's
    cotangent, or back through an inferred add (the same gradient, times its sign), concatenation (the part's
    slice) or activation (times ``phi'`` by central differences).  Left None where a consumer gives none, and for
    the parts of a call (:func:`place_parts`): a call's arguments get theirs from its ``arg_grads``."""
    use: dict = {i: [] for i in range(len(g.nodes))}
    for j, u in enumerate(g.nodes):
        for a, i in enumerate([] if u.inner else u.args()):
            use[i].append((j, a))
    for i in reversed(range(len(g.nodes))):
        n = g.nodes[i]
        if n.grad_y is not None or n.inner or (n.op == "input" and not use[i]):
            continue
        total = None
        for k, i_out in enumerate(g.outputs):
            if i_out == i:
                c = np.asarray(cots[k], np.float64)
                total = c if total is None else total + c
        ok = True
        for j, a in use[i]:
            u = g.nodes[j]
            part = None
            if u.arg_grads is not None:
                part = u.arg_grads[a] if a < len(u.arg_grads) else None
            elif u.grad_y is not None and u.op == "add":
                part = u.grad_y * (u.signs[a] if u.signs else 1.0)
            elif u.grad_y is not None and u.op == "concat":
                off = sum(np.shape(g.nodes[p].out)[-1] for p in u.inputs[:a])
                part = u.grad_y[..., off : off + np.shape(n.out)[-1]]
            elif u.grad_y is not None and u.op == "act" and u.phi is not None:
                part = u.grad_y * _dphi_at(u.phi, n.out)
            if part is None or np.shape(part) != np.shape(n.out):
                ok = False
                break
            total = part if total is None else total + part
        if ok and total is not None:
            n.grad_y = total


# ------------------------------------------------------------------------------------------
# moments along the edges
# ------------------------------------------------------------------------------------------


def _size(n: GNode) -> int:
    """Elements per example (a concatenation's parts are weighted by their share of the elements)."""
    s = np.shape(n.out)
    return int(np.prod(s[1:])) if len(s) >= 2 else 1


#: the measured cross moments of :func:`propagate`: ``{add node: (source node, mean diagonal of E[J_a J_b^T])}``,
#: a function of the add node giving that pair (or None), or None (the independence rule)
Cross = Callable[[int], tuple[int, float] | None] | dict[int, tuple[int, float]] | None


def propagate(g: Graph, x_moments: list, *, on_weight=None, cross: Cross = None) -> list:
    """``[(mu, q, chi, sigma_w2 on the path, groups, d, token Gram)]`` per node; ``on_weight(i, node, mu_in,
    q_in)`` is called before a weight node's rule (the fix rescales there).  ``x_moments``: ``(mu, q)``, ``(mu, q,
    d)`` or ``(mu, q, d, token Gram)`` per input node, in order.  ``d`` is the input-dependent variance (the
    predicted signal squared; the rules of :func:`weightinit.doctor.analytic.signal_map` and its neighbours; an
    input without one: ``q - mu**2``; None: that).  The token Gram ``E[y_t y_s]`` (``(T, T)``; None: independent
    tokens) is what attention's averaging (``mix``) acts on (:func:`_token_cross`).
    ``cross``: ``{add node: (source node, mean diagonal of E[J_a J_b^T])}`` (or a function of the add node giving
    that pair or None, called when the walk reaches the add, after ``on_weight`` has rescaled the kernels before
    it: :func:`measured_cross`), the Jacobian term of :func:`weightinit.doctor.analytic.residual_cross` where it was
    measured (else the independence rule).
    ``groups``: after a concatenation of parts with different moments, ``[(fraction, mu, q)]``
    (:func:`weightinit.doctor.analytic.concat_moments`), carried through elementwise maps
    (:func:`weightinit.doctor.analytic.groups_moment_map`) until a weight layer or a normalization mixes them."""
    res: list = []
    pre: dict = {}  # node with a non-decreasing activation -> (phi, mu, q, d, groups) of its pre-activation
    xin = iter(x_moments)
    cross = cross or {}
    for i, n in enumerate(g.nodes):
        ins = [res[j] for j in n.inputs]
        mu, q = (ins[0][0], ins[0][1]) if ins else (0.0, 1.0)
        d = ins[0][5] if ins else 1.0
        inc = ins[0][3] if ins else None
        groups = ins[0][4] if ins else None
        c = float("nan")
        op = n.op
        mu0, tc_in = mu, None
        if op == "input":
            xm = next(xin, (0.0, 1.0))
            mu, q = xm[0], xm[1]
            d = xm[2] if len(xm) > 2 and xm[2] is not None else max(q - mu * mu, 0.0)
            tc_in = xm[3] if len(xm) > 3 else None
        elif op == "weight":
            if on_weight is not None:
                on_weight(i, n, mu, q)
            sw = n.sigma_w2 * n.pad  # (a zero-padded conv: the taps in bounds, averaged over positions)
            mu, q, _ = an.linear_moments(mu, q, sw, n.qb, n.mb, n.rows)
            inc, groups, d = sw, None, sw * d  # the bias and the input mean shift every input alike
        elif op == "add":
            signs = n.signs or [1] * len(ins)
            got = (cross(i) if callable(cross) else cross.get(i)) if len(ins) == 2 else None
            src, jd = got if got is not None else (None, 0.0)
            v_src = max(res[src][1] - res[src][0] ** 2, 0.0) if src is not None else 0.0
            d_src = res[src][5] if src is not None else 0.0
            acc = (ins[0][0], ins[0][1])
            for r, sg in zip(ins[1:], signs[1:]):
                acc = an.add_moments(acc, (r[0], r[1]), an.residual_cross(acc, (r[0], r[1])) + v_src * jd, sg)
                d = an.add_signal(d, r[5], d_src * jd, sg)
            (mu, q), inc, groups = acc, None, None
        elif op == "concat":
            parts = [
                (_size(g.nodes[j]), r[4]) if r[4] else (_size(g.nodes[j]), r[0], r[1]) for j, r in zip(n.inputs, ins)
            ]
            mu, q, groups = an.concat_moments(parts)
            inc, groups = None, groups if len(groups) >= 2 else None
            sizes = [_size(g.nodes[j]) for j in n.inputs]
            d = sum(sz * r[5] for sz, r in zip(sizes, ins)) / max(sum(sizes), 1)
        elif op == "mul" and len(ins) == 2:
            mu, q, groups = ins[0][0] * ins[1][0], ins[0][1] * ins[1][1], None
            d = an.mul_signal(ins[0][1], ins[0][5], ins[1][1], ins[1][5])
        elif op == "norm":
            over = "batch" if "Batch" in n.kind else "rms" if "RMS" in n.kind else "features"
            d = an.norm_signal(d, mu, q, n.qg, over)
            (mu, q), inc, groups = an.norm_moments(n.qg * _eps_factor(n, ins), n.qb, n.mb), None, None
        elif op == "avgpool" and n.window is not None:  # (sizes, divisors, weights): analytic.avgpool_windows
            mu, q, d, groups = an.avgpool_rule(mu, q, d, n.window, groups)
        elif op == "avgpool":
            k = n.pool or max(np.size(g.nodes[n.inputs[0]].out) / max(np.size(n.out), 1), 1.0)
            share = min(max(d / (q - mu * mu), 0.0), 1.0) if q > mu * mu else 0.0
            groups = ([(f, *an.avgpool_moments(m, qq, k, share * (qq - m * m))) for f, m, qq in groups]
                      if groups else None)  # fmt: skip
            mu, q = an.avgpool_moments(mu, q, k, d)
            d = d / max(k, 1.0)
        elif op == "maxpool":
            win = n.window or ([max(np.size(g.nodes[n.inputs[0]].out) / max(np.size(n.out), 1), 1.0)], None)
            mu, q, d, groups = an.maxpool_rule(mu, q, d, win[0], win[1], groups, _monotone_pre(g, n, pre))
        elif op == "embedding":
            (mu, q), inc, groups = n.emb[:2], None, None
            d = n.emb[2] if len(n.emb) > 2 else max(q - mu * mu, 0.0)  # the rows' spread, per feature
        elif op == "mix" and len(ins) == 3:  # softmax(q k^T * scale) v: inputs (query, key, value)
            s2, counts, p = n.attn[:3]
            score_var = s2 * ins[0][1] * max(ins[1][1] - ins[1][0] ** 2, 0.0)
            if len(n.attn) > 3:
                n.attn = (*n.attn[:4], score_var)
            vv = ins[2]
            mu, q = an.mixing_moments(vv[0], vv[1], an.softmax_mixing(counts, score_var, p))
            inc, groups = None, None
        tc = _token_cross(g, n, op, ins, mu0, tc_in, mu)
        if op == "mix" and len(ins) == 3:
            if tc is not None:
                q = float(np.mean(np.diag(tc)))
            v_in = max(ins[2][1] - ins[2][0] ** 2, 0.0)  # the signal shrinks as the variance does
            d = ins[2][5] * max(q - mu * mu, 0.0) / v_in if v_in > 0 else 0.0
        if n.phi is not None and op in ("act", "weight"):
            pre[i] = (n.phi, mu, q, d, groups)
            tc = an.token_gram_map(n.phi, mu, tc) if tc is not None and not groups else None
            if groups:  # a concatenation's parts: the mixture of the groups' maps
                if inc is not None:
                    c = sum(f * an.chi(n.phi, inc, qq, m) for f, m, qq in groups)
                d = an.groups_signal_map(n.phi, groups, mu, q, d)
                mu, q, groups = an.groups_moment_map(n.phi, groups)
            else:
                if inc is not None:
                    c = an.chi(n.phi, inc, q, mu)
                d = an.signal_map(n.phi, q, mu, d)
                mu, q = an.moment_map(n.phi, q, mu)
        res.append((mu, q, c, inc, groups, d, tc))
    return res


# ------------------------------------------------------------------------------------------
# cross moments at residual adds, measured by forward-mode differentiation
# ------------------------------------------------------------------------------------------


class StopReplay(Exception):
    """Raised by :meth:`Tangents.call` once every wanted node is known: the rest of the forward is not needed."""


class Tangents:
    """One forward-mode probe through a captured graph: the tangent of every node when the node ``src`` is moved
    along a Rademacher probe ``z`` (:func:`weightinit.doctor.analytic.rademacher`, drawn from ``rng`` when ``src``
    is reached), everything before it held fixed.

    A backend's :meth:`GraphModel.replay` hands every recorded call to :meth:`call`; the call runs with the
    framework's forward mode (``jvp(fn, arrays, tangents) -> (output, tangent of its first array as numpy)``,
    a tangent None standing for zeros) on the tangents of its input nodes, and ``first(output)`` is the value of
    its node.  Nodes between calls (an input, and what :func:`link_calls` inferred from values: an activation,
    an add, a concatenation, an opaque identity) get their value and tangent here, from their inputs':
    ``phi'(u) t`` (central differences), the signed sum, the concatenation, the input's.  So a source found by
    value (``h = relu(fc(x))`` between two calls) is seeded exactly where the graph has it.
    """

    def __init__(self, g: Graph, xs: tuple, src: int, rng, want, jvp, first):
        self.g, self.xs, self.src, self.rng, self.jvp, self.first = g, xs, src, rng, jvp, first
        self.stop = max(want)
        self.val: dict = {}
        self.tan: dict = {}
        self.next = 0  # the first node not done
        self.k = 0  # the next recorded call
        self.n_in = 0

    def _seed(self, i: int, t):
        if i != self.src:
            return t
        return an.rademacher(self.rng, np.shape(self.val[i])).astype(np.float64)

    def _upto(self, stop: int) -> None:
        """Value and tangent of the nodes before ``stop`` that are not recorded calls."""
        for i in range(self.next, stop):
            n, ins = self.g.nodes[i], self.g.nodes[i].inputs
            t = None
            if n.op == "input":
                v = np.asarray(self.xs[self.n_in], np.float64)
                self.n_in += 1
            elif n.op == "act" and n.phi is not None:
                u = self.val[ins[0]]
                v = np.asarray(n.phi(u), np.float64)
                if self.tan.get(ins[0]) is not None:
                    t = self.tan[ins[0]] * _dphi_at(n.phi, u)
            elif n.op == "add":
                signs = n.signs or [1] * len(ins)
                v = sum(sg * self.val[j] for sg, j in zip(signs, ins))
                ts = [sg * self.tan[j] for sg, j in zip(signs, ins) if self.tan.get(j) is not None]
                t = sum(ts) if ts else None
            elif n.op == "concat":
                v = np.concatenate([self.val[j] for j in ins], -1)
                if any(self.tan.get(j) is not None for j in ins):
                    t = np.concatenate([self.tan[j] if self.tan.get(j) is not None else np.zeros_like(self.val[j])
                                        for j in ins], -1)  # fmt: skip
            elif n.op in ("maxpool", "avgpool") and n.pool_fn is not None:  # a pooling found by value
                v, t = n.pool_fn(self.val[ins[0]], self.tan.get(ins[0]))
            else:  # opaque: the identity of its input (as in propagate)
                v = self.val[ins[0]] if ins else np.asarray(n.out, np.float64)
                t = self.tan.get(ins[0]) if ins else None
            self.val[i] = v
            self.tan[i] = self._seed(i, t)
        self.next = max(self.next, stop)
        if self.next > self.stop:
            raise StopReplay

    def call(self, fn, arrays, pos=None):
        """The next recorded call, ``fn(*arrays)``, with its tangent; ``pos[j]``: which of the node's inputs
        ``arrays[j]`` is (default: the ``j``-th)."""
        if self.k >= len(self.g.calls):
            raise RuntimeError("the replay made more calls than the capture")
        c = self.g.calls[self.k]
        self.k += 1
        self._upto(c)
        ins = self.g.nodes[c].args()
        tans = [self.tan.get(ins[p]) if p < len(ins) else None for p in (pos or range(len(arrays)))]
        if c != self.src and any(t is not None for t in tans):
            y, t = self.jvp(fn, arrays, tans)
        else:
            y, t = fn(*arrays), None
        self.val[c] = self.first(y)
        self.tan[c] = self._seed(c, None if t is None else np.asarray(t, np.float64))
        self.next = c + 1
        if self.next > self.stop:
            raise StopReplay
        return y

    def finish(self) -> None:
        """Nodes after the last recorded call (up to the wanted ones)."""
        try:
            self._upto(self.stop + 1)
        except StopReplay:
            pass


def _ancestors(g: Graph, i: int) -> set:
    seen, stack = set(), [i]
    while stack:
        for j in g.nodes[stack.pop()].inputs:
            if j not in seen:
                seen.add(j)
                stack.append(j)
    return seen


def common_source(g: Graph, a: int, b: int) -> int | None:
    """The node two addends both depend on: one of them if it is the other's ancestor, else their latest common
    ancestor (in graph order); None if they share none (the rule of the torch path's fx graph)."""
    anc_a, anc_b = _ancestors(g, a), _ancestors(g, b)
    if a in anc_b:
        return a
    if b in anc_a:
        return b
    common = anc_a & anc_b
    return max(common) if common else None


def jacobian_cross(gm: GraphModel, g: Graph, x, i: int, *, probes: int = 4096, seed: int = 0):
    """``(source node, mean diagonal of J_a J_b^T)`` for the add node ``i = a + b`` (``J`` the Jacobians of its
    inputs with respect to :func:`common_source`), by forward-mode probes of ``gm``'s framework
    (:meth:`GraphModel.replay`, :class:`Tangents`) on the first examples of ``x``
    (:func:`weightinit.doctor.analytic.probe_examples`), ``E[(J_a z)_i (J_b z)_i]`` averaged over at least
    ``probes`` elements, at most :data:`weightinit.doctor.analytic.PROBE_ROUNDS` forward passes: the estimate of
    :func:`weightinit.doctor.analytic.graph_cross_covariance` on the torch path, with the same probes.  None
    without a common source; raises what the replay raises where the framework cannot differentiate forward."""
    a, b = g.nodes[i].inputs
    src = common_source(g, a, b)
    if src is None:
        return None
    xs = x if isinstance(x, tuple) else (x,)
    n0 = int(np.shape(xs[0])[0]) if np.ndim(xs[0]) else 0
    shape = np.shape(g.nodes[a].out)
    keep = n0
    if len(shape) and shape[0] == n0 and n0 > 2:
        keep = an.probe_examples(n0, int(np.prod(shape)) // n0, probes)
    sub = tuple(v[:keep] if np.ndim(v) and np.shape(v)[0] == n0 else v for v in xs)
    arg = sub if isinstance(x, tuple) else sub[0]

    def one_round(rng):
        run = Tangents(g, sub, src, rng, (a, b), gm.jvp, gm.first)
        try:
            gm.replay(arg, run)
        except StopReplay:
            pass
        run.finish()
        return run.tan.get(a), run.tan.get(b)

    return probe_cross(one_round, src, probes, seed)


def probe_cross(one_round, src: int, probes: int, seed: int) -> tuple[int, float] | None:
    """``(src, mean over rounds of mean(t_a * t_b))``: the Jacobian cross term of two addends from forward-mode
    rounds, ``one_round(rng) -> (t_a, t_b)`` (the addends' tangents for one Rademacher probe of the common source
    ``src``; None: that addend does not depend on it), until ``probes`` values or :data:`weightinit.doctor.analytic.PROBE_ROUNDS` rounds;
    ``(src, 0.0)`` if an addend does not depend on the source, None if the tangents' shapes differ.  The loop of
    :func:`jacobian_cross` and of the recorded torch graph's replay."""
    rng = np.random.default_rng(seed)
    total, count, rounds = 0.0, 0, 0
    while count < probes and rounds < an.PROBE_ROUNDS:
        ta, tb = one_round(rng)
        rounds += 1
        if ta is None or tb is None:  # an addend that does not depend on the source: no cross covariance
            return src, 0.0
        if ta.shape != tb.shape:
            return None
        total += float(np.mean(ta * tb))
        count += ta.size
    return src, total / rounds


class ParamCount(Protocol):
    """What :func:`measured_cross` needs of a model view: its number of parameter values."""

    def param_count(self) -> int: ...


def measured_cross(gm: ParamCount, g: Graph, x, *, seed: int = 0, notes: list | None = None,
                   estimate: Callable[..., tuple[int, float] | None] | None = None) -> Cross:  # fmt: skip
    """The ``cross`` of :func:`propagate` from this model's weights: a function of an add node, measured when the
    walk reaches it (``estimate(gm, g, x, i, seed=)``, default :func:`jacobian_cross`, which needs a
    :class:`GraphModel`; the torch recorded graph passes its own replay,
    :func:`weightinit.doctor.backends.torchgraph.recorded_jacobian_cross`, and any ``gm`` with a
    ``param_count()``); where the
    framework cannot differentiate forward, or the model is above
    :data:`weightinit.doctor.analytic.CROSS_BUDGET`, the independence rule, with a line in ``notes``."""
    notes = [] if notes is None else notes
    adds = [i for i, n in enumerate(g.nodes) if n.op == "add" and len(n.inputs) == 2]
    size = gm.param_count()
    if adds and len(adds) * size > an.CROSS_BUDGET:
        notes.append(f"{len(adds)} additions x {size:.3g} parameters is above the budget for the measured cross "
                     f"moments ({an.CROSS_BUDGET:.0e}: one partial forward per addition); additions use the "
                     "independence rule, right in expectation over zero-mean weights (raise "
                     "weightinit.doctor.analytic.CROSS_BUDGET to measure them)")  # fmt: skip
        return None
    done: dict = {}
    run: Callable[..., tuple[int, float] | None] = estimate or jacobian_cross

    def cross(i: int) -> tuple[int, float] | None:
        if i not in done:
            try:
                done[i] = run(gm, g, x, i, seed=seed)
            except Exception as e:
                done[i] = None
                why = str(e) if isinstance(e, NotImplementedError) else f"{type(e).__name__}: {e}"
                notes.append(f"{g.nodes[i].name}: the branches' Jacobians could not be differentiated forward "
                             f"({why}); the cross moment uses the independence rule")  # fmt: skip
        return done[i]

    return cross


def _eps_factor(n: GNode, ins: list) -> float:
    """``v / (v + eps)``: what a normalization's epsilon leaves of the standardized second moment."""
    if not n.eps or not ins:
        return 1.0
    v = max(ins[0][1] - ins[0][0] ** 2, 0.0)
    return v / (v + n.eps) if v + n.eps > 0 else 1.0


#: longest token axis the token Gram is carried for (an activation maps it pair by pair: ``T**2`` bivariate
#: quadratures); attention over more tokens averages them as independent
GRAM_MAX_TOKENS = 32


def _gram(r, t: int):
    """A propagated node's token Gram ``E[y_t y_s]`` as a ``(t, t)`` matrix (independent tokens where it has
    none: ``q`` on the diagonal, ``mu**2`` off it); None if its Gram has another size."""
    g = r[6] if len(r) > 6 else None
    if g is None:
        out = np.full((t, t), r[0] * r[0])
        np.fill_diagonal(out, r[1])
        return out
    return g if g.shape == (t, t) else None


def _token_cross(g: Graph, n: GNode, op: str, ins: list, mu0: float, tc_in, mu: float) -> np.ndarray | None:
    """The token Gram ``E[y_t y_s]`` (per element, ``(T, T)``) of node ``n``'s output before its activation, or
    None (independent tokens).  Carried only once some tensor has one (a constant with positions, or attention's
    output), for attention (``mix``) to average over.  Position-wise rules on every entry: a weight layer maps it
    as it maps ``q`` (the same weights and bias at every token), an add sums it (addends independent across
    tokens), a product multiplies it, a normalization keeps the correlation coefficient; attention gives ``P G
    P^T`` (:func:`weightinit.doctor.analytic.attention_gram`); an activation maps it by
    :func:`weightinit.doctor.analytic.token_gram_map`."""
    if op == "input":
        return tc_in
    grams = [r[6] for r in ins if len(r) > 6 and r[6] is not None]
    if op == "mix" and len(ins) == 3 and n.attn is not None and len(n.attn) > 3:
        allowed = n.attn[3]
        t_k = allowed.shape[-1]
        if max(allowed.shape[-2:]) > GRAM_MAX_TOKENS:
            return None
        gv = _gram(ins[2], t_k)
        return None if gv is None else an.attention_gram(gv, allowed, n.attn[4] if len(n.attn) > 4 else 0.0, n.attn[2])
    if not grams:
        return None
    t = grams[0].shape[0]
    got = [_gram(r, t) for r in ins]
    gs = [x for x in got if x is not None]
    if len(gs) < len(got):
        return None
    if op in ("identity", "opaque", "maxpool", "avgpool", "act"):
        return gs[0]
    if op == "weight":
        sw = n.sigma_w2
        if sw is None:  # a weight node without its statistics: independent tokens
            return None
        a = gs[0] - mu0 * mu0
        if n.rows is None:
            return sw * gs[0] + n.qb
        _r1, r2, rb = n.rows
        return a * sw + mu0 * mu0 * r2 + 2 * mu0 * rb + n.qb
    if op == "add":
        signs = n.signs or [1] * len(ins)
        acc_mu, acc = ins[0][0], gs[0]
        for r, gr, sg in zip(ins[1:], gs[1:], signs[1:]):
            acc, acc_mu = acc + sg * sg * gr + 2 * sg * acc_mu * r[0], acc_mu + sg * r[0]
        return acc
    if op == "mul" and len(ins) == 2:
        return gs[0] * gs[1]
    if op == "norm":
        m = ins[0][0]
        v = np.maximum(np.diag(gs[0]) - m * m, 0.0)
        sd = np.sqrt(v + n.eps)
        return n.qg * (gs[0] - m * m) / np.maximum(np.outer(sd, sd), 1e-300) + n.qb
    if op == "concat":
        sizes = [_size(g.nodes[j]) for j in n.inputs]
        return sum((sz * gr for sz, gr in zip(sizes, gs)), np.zeros((t, t))) / max(sum(sizes), 1)
    return None


def _monotone_pre(g: Graph, n: GNode, pre: dict):
    """The pre-activation ``(phi, mu, q, d, groups)`` of a max pooling's input when that input applies a
    non-decreasing activation (the max is then taken before it), else None."""
    j = n.inputs[0] if n.inputs else None
    while j is not None and g.nodes[j].op == "identity" and g.nodes[j].inputs:  # (reshapes between)
        j = g.nodes[j].inputs[0]
    if j is None or j not in pre:
        return None
    return pre[j] if an.non_decreasing(pre[j][0]) else None


def _x_moments(x, inputs) -> list:
    xs = x if isinstance(x, tuple) else (x,)
    if inputs is None:
        return [(0.0, 1.0, 1.0)] * len(xs)
    out = []
    for v in xs:
        v = np.asarray(v, np.float64)
        mu, q = float(np.mean(v)), float(np.mean(np.square(v)))
        d = an.input_signal(v)
        out.append((mu, q, d))  # d: per element over the batch (unbiased), averaged
    return out


def _counts(g: Graph) -> str:
    tally: dict = {}
    for n in g.nodes:
        if n.op in ("add", "concat", "mul", "mix", "norm", "avgpool", "maxpool"):
            tally[n.op] = tally.get(n.op, 0) + 1
    return ", ".join(f"{v} {k}" for k, v in tally.items()) or "no branches"


# ------------------------------------------------------------------------------------------
# doctor
# ------------------------------------------------------------------------------------------


def _backward(gm: GraphModel, g: Graph, x, targets, seed: int):
    """``loss``, or why the gradients were not measured (a string)."""
    try:
        loss, cots = 0.0, []
        for k, i in enumerate(g.outputs):
            lk, ck = backward_loss(g.nodes[i].out, targets if k == 0 else None, seed + 1000 * k)
            loss += lk
            cots.append(ck)
        gm.gradients(x, g, cots)
        inferred_grads(g, cots)
    except NotImplementedError as e:
        return str(e)
    except Exception as e:
        return f"the backward pass failed with {type(e).__name__}: {e}"
    return loss


def _check_cross(cross: str) -> None:
    if cross not in ("measured", "expected"):
        from weightinit.common.errors import value_error

        raise value_error("cross", cross, "must be 'measured' or 'expected'")


def doctor_graph(gm: GraphModel, inputs=None, *, targets=None, seed: int = 0, batch: int = 64, input_shape=None,
                 title: str = "weightinit doctor", cross: str = "measured") -> Report:  # fmt: skip
    """Forward and backward statistics and analytic moments of ``gm``'s model, node by node of its graph.

    ``cross``: the cross moment at a residual add, ``"measured"`` for this model's weights
    (:func:`measured_cross`, as the torch path) or ``"expected"`` over zero-mean weights (the independence rule).
    """
    _check_cross(cross)
    rep = Report(title=title, framework=gm.framework(), mode="measure+analytic")
    try:
        x = gm.batch(inputs, batch, input_shape, seed)
    except Exception as e:
        rep.flags.append(Flag("bad_input", "input", str(e), "Pass inputs= (a batch).", "error"))
        return rep
    x0 = _first(x)
    rep.batch = int(x0.shape[0]) if x0.ndim else 0
    if rep.batch == 0:
        rep.flags.append(Flag("empty_batch", "input", "The batch is empty.", "Pass a non-empty batch.", "error"))
        return rep
    try:
        g = gm.capture(x)
    except Exception as e:
        where = getattr(e, "weightinit_where", "model")
        rep.flags.append(Flag("forward_failed", where, f"{type(e).__name__}: {e}", "Pass inputs of the right shape.",
                              "error"))  # fmt: skip
        return rep
    back = _backward(gm, g, x, targets, seed)
    if not isinstance(back, str):
        rep.loss, rep.loss_is_probe = back, targets is None
    cnotes: list = []
    cm = measured_cross(gm, g, x, seed=seed, notes=cnotes) if cross == "measured" else None
    pred = propagate(g, _x_moments(x, inputs), cross=cm)
    rng = np.random.default_rng(seed)
    unstable = set()
    for i, n in enumerate(g.nodes):
        if n.op == "input":
            continue
        s = layer_stats(n.name, n.kind, len(rep.layers), n.out, n.sat, rng)
        if n.grad_y is not None:
            gy = np.asarray(n.grad_y, np.float64)
            s.grad_std = float(gy.std()) if gy.size else float("nan")
        s.grad_norms = {k: float(np.linalg.norm(np.asarray(v, np.float64))) for k, v in n.grad_params.items()}
        s.weight_norm = n.weight_norm
        q, c = pred[i][1], pred[i][2]
        q_in = pred[n.inputs[0]][1] if n.inputs else float("nan")
        s.q_pred, s.chi = q, c
        s.std_pred, s.signal_pred = math.sqrt(max(q - pred[i][0] ** 2, 0.0)), math.sqrt(max(pred[i][5], 0.0))
        s.gain = math.sqrt(q / q_in) if q_in > 0 and q >= 0 else float("nan")
        s.note = n.note
        if n.phi is not None and n.act not in unstable:
            unstable.add(n.act)
            msg = an.depth_stability(n.phi, n.act or n.kind)
            if msg and not rep.flagged("not_depth_stable"):
                rep.flags.append(Flag("not_depth_stable", s.name, msg, "Use normalization or another activation."))
        rep.layers.append(s)
    what = f"{gm.label}: {len(rep.layers)} nodes from the {g.how} ({_counts(g)})"
    if isinstance(back, str):
        what += f"; forward statistics only (gradients not measured: {back})"
    rep.notes.append(what)
    rep.notes += list(dict.fromkeys(g.notes + cnotes))
    diagnose(rep)
    return rep


# ------------------------------------------------------------------------------------------
# fix
# ------------------------------------------------------------------------------------------

_PASS = ("identity", "maxpool")


def _add_targets(g: Graph, target: float) -> dict:
    """Weight node -> ``target / m`` when its output reaches an add of ``m`` tensors through identity nodes."""
    use = g.consumers()
    out = {}
    for i, n in enumerate(g.nodes):
        if n.op != "weight" or n.phi is not None:
            continue
        cur = i
        while len(use[cur]) == 1:
            j, _ = use[cur][0]
            u = g.nodes[j]
            if u.op == "add" and len(u.inputs) >= 2:
                out[i] = target / len(u.inputs)
                break
            if u.op not in _PASS:
                break
            cur = j
    return out


def _sw2(n: GNode, k: np.ndarray) -> float:
    return float(np.mean(k * k)) * n.fan_in if n.fan_in else sigma_w2(k)


def _norm_fed(g: Graph) -> set:
    use = g.consumers()
    return {i for i, n in enumerate(g.nodes) if n.op == "weight" and n.phi is None and use[i]
            and all(g.nodes[j].op == "norm" for j, _ in use[i])}  # fmt: skip


def fix_graph(gm: GraphModel, mode: str, inputs, *, target: float = 1.0, tol: float = 0.1, max_iter: int = 10,
              seed: int = 0, batch: int = 64, input_shape=None, measure: bool = True, probe: bool = True,
              cross: str = "measured") -> FixReport:  # fmt: skip
    """Rescale the kernels of ``gm``'s model in place, in graph order (``mode`` ``"lsuv"`` or ``"analytic"``;
    ``cross`` as :func:`doctor_graph`'s, for the analytic mode's moments after a residual add: measured with the
    kernels before the add already rescaled)."""
    _check_cross(cross)
    x = gm.batch(inputs, batch, input_shape, seed)
    if mode == "analytic" and probe and inputs is None and _first(x)[0].size <= 4096 and len(_first(x)) < 1024:
        x = gm.batch(None, 1024, input_shape, seed)  # a probe wide enough for the correction
    rep = FixReport(mode=mode)
    if measure:
        rep.before = doctor_graph(gm, x, seed=seed, title="before fix")
    g = gm.capture(x)
    targets, skip = _add_targets(g, target), _norm_fed(g)
    if skip:
        rep.notes.append("left alone (they feed only a normalization): " + ", ".join(g.nodes[i].name for i in skip))
    done: set = set()

    def key_of(n):
        return f"{n.name}.kernel"

    if mode == "lsuv":
        for i, n in enumerate(g.nodes):
            k = gm.kernel(n) if n.op == "weight" else None
            if k is None or id(n.layer) in done:
                continue
            done.add(id(n.layer))
            key = key_of(n)
            stream = Stream.from_seed(seed).child(key if gm.seed_by_key else n.name)
            cur = [np.asarray(Orthogonal(seed=stream)(k.shape, "float64"))]
            gm.set_kernel(n, cur[0])

            def rescale(s, n=n, cur=cur):
                cur[0] = cur[0] * s
                gm.set_kernel(n, cur[0])

            want = targets.get(i, target)
            total, it, _bad = lsuv_rescale(lambda n=n: float(np.var(gm.preactivation(x, n))), rescale, want, tol,
                                           max_iter)  # fmt: skip
            rep.scales[key], rep.iterations[key] = total, it
    else:

        def on_weight(i, n, mu, q):
            k = gm.kernel(n)
            if k is None or id(n.layer) in done or i in skip:
                return
            done.add(id(n.layer))
            want = targets.get(i, target)
            s = an.rescale_factor(an.linear_moments(mu, q, _sw2(n, k) * n.pad, n.qb, n.mb, n.rows)[2], 1.0, n.qb,
                                 want)  # fmt: skip
            gm.set_kernel(n, k * s)
            if probe:  # correct on the batch the finite-width drift the moment map cannot see
                a = float(np.mean(np.square(gm.preactivation(x, n)))) - n.qb
                aim = max(want - n.qb, 1e-3 * want)
                if a > 0 and math.isfinite(a):
                    s *= math.sqrt(aim / a)
                    gm.set_kernel(n, k * s)
            n.sigma_w2 = _sw2(n, k * s)
            if n.rows is not None:
                n.rows = (n.rows[0] * s, n.rows[1] * s * s, n.rows[2] * s)
            rep.scales[key_of(n)] = s

        cm = measured_cross(gm, g, x, seed=seed, notes=rep.notes) if cross == "measured" else None
        propagate(g, _x_moments(x, inputs), on_weight=on_weight, cross=cm)
    if measure:
        rep.after = doctor_graph(gm, x, seed=seed, title=f"after fix ({mode})")
    return rep
