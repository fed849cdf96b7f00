"""The doctor's moment graph of a torch model that torch.fx cannot trace, built from a recorded forward pass.

``nn.TransformerEncoder`` (its fast-path checks are Python control flow on the input), Hugging Face
transformers 5 (``(*args, **kwargs)`` decorators that unpack proxies), timm and torchvision models (shape
branches) do not trace with torch.fx.  Whole-model init already records their forward pass once at torch-function
level (:func:`weightinit.torch.tracing.record_forward`, the recorder of :func:`~weightinit.torch.tracing.record_roles`:
every operation with its inputs by tensor identity, the modules that returned each tensor, the span of operations
each module call made).  :func:`recorded_graph` turns that recording into the framework-neutral
:class:`weightinit.doctor.graph.Graph`, and :func:`weightinit.doctor.graph.propagate` carries ``(mean, second
moment)`` along its edges with the rules of :mod:`weightinit.doctor.analytic`:

* data and constants: a tensor that depends on the model's inputs is *data*; one that does not (position ids,
  rotary ``cos``/``sin``, masks, position embeddings, buffers) is a constant, whose moments are its values';
* ``linear``, ``addmm`` (Hugging Face ``Conv1D``), ``conv*``, ``matmul`` with a parameter: the weight rule with
  the measured weights (``E[W**2] * fan_in``, row sums, bias moments; a zero-padded conv counts the taps in
  bounds, :func:`weightinit.doctor.analytic.padded_kernel_moments`); ``embedding`` of data ids: ``E[W]``,
  ``E[W**2]``;
* ``max_pool*d``/``adaptive_max_pool*d``: the max of the window's values
  (:func:`weightinit.doctor.analytic.maxpool_rule`), ``avg_pool*d``/``adaptive_avg_pool*d``: the average;
* ``layer_norm``/``group_norm``/``rms_norm``/``instance_norm``, ``batch_norm`` in training mode, and leaf modules
  whose class name says norm (``LlamaRMSNorm``, ``T5LayerNorm``: their elementwise operations as one node):
  ``E[gamma**2] + E[beta**2]``; ``batch_norm`` in eval mode: the affine map of its running statistics;
* ``add``/``sub`` (residual adds, with the cross moment of the addends measured for this weight draw by
  forward-mode probes on a replay of the recording, :func:`recorded_jacobian_cross`), ``mul``
  of two tensors (independence), ``cat`` (per-part moments), shape-only operations, slicing, ``split``,
  dropout (``1/(1-p)`` in training);
* attention: ``scaled_dot_product_attention``, eager ``softmax(q k^T * s + mask) v``, and
  ``nn.MultiheadAttention`` (one recorded operation: its q/k/v blocks and ``out_proj`` become weight nodes) give
  a ``mix`` node: the value's variance times ``E[sum_j P_ij**2]`` over the keys each query may attend to (the
  causal or given mask), with the score spread from the query and key moments
  (:func:`weightinit.doctor.analytic.softmax_mixing`);
* any other operation on one tensor that acts elementwise (``gelu``, ``x * 0.5``, ``tanh``, ``pow``; tested
  numerically, like the fx path) gets the Gaussian moment map by quadrature; an activation module (GPT-2's
  ``NewGELUActivation``) is one such node.

An operation on the path to the output with none of these rules is kept as the identity and named
(:attr:`RecordedGraph.opaque`): the doctor reports it rather than skipping it silently.  The recording follows
this batch's path through data-dependent branches.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import torch
from torch import nn
from weightinit.doctor import analytic as an
from weightinit.doctor.backends import torchutil as tu
from weightinit.doctor.graph import GRAM_MAX_TOKENS, GNode, Graph, attention_mix, kernel_stats, probe_cross, propagate
from weightinit.torch.tracing import _TRANSPARENT, _tensors, record_forward

__all__ = ["RecordedGraph", "recorded_graph", "analyze_recorded"]

_DROPOUT = {"dropout", "feature_dropout", "alpha_dropout", "dropout1d", "dropout2d", "dropout3d"}
_SHAPE = (_TRANSPARENT - _DROPOUT) | {"__getitem__", "split", "chunk", "unbind", "narrow", "select", "movedim",
          "swapaxes", "t", "expand_as", "repeat", "split_with_sizes", "tensor_split", "flip", "roll", "float",
          "double", "contiguous", "as_strided", "unsqueeze_", "squeeze_", "transpose_", "t_"}  # fmt: skip
_ADD = {"add", "__add__", "__radd__", "add_", "__iadd__"}
_SUB = {"sub", "__sub__", "sub_", "__isub__", "subtract"}
_MUL = {"mul", "__mul__", "__rmul__", "mul_", "__imul__", "multiply"}
_DIV = {"div", "__truediv__", "div_", "__itruediv__", "true_divide", "divide"}
_CAT = {"cat", "concat", "concatenate"}
_MATMUL = {"matmul", "__matmul__", "mm", "bmm", "einsum"}
_NORMS = {"layer_norm", "group_norm", "rms_norm", "instance_norm", "batch_norm"}
_MASKED = -1e4  # an additive mask value at or below this removes the key
_MAXPOOL = {"max_pool1d", "max_pool2d", "max_pool3d", "adaptive_max_pool1d", "adaptive_max_pool2d",
            "adaptive_max_pool3d"}  # fmt: skip
_AVGPOOL = {"avg_pool1d", "avg_pool2d", "avg_pool3d", "adaptive_avg_pool1d", "adaptive_avg_pool2d",
            "adaptive_avg_pool3d"}  # fmt: skip


def _conv_call_windows(call, x, w):
    """:func:`weightinit.doctor.analytic.conv_windows` of a recorded ``conv*d(input, weight, bias, stride, padding,
    dilation, groups)`` with zero padding, else None."""
    nd = w.dim() - 2
    padding = _arg(call, "padding", 4, 0)
    if padding == "valid" or (not isinstance(padding, str) and not any(an._per_dim(padding, nd, "padding"))):
        return None
    return an.conv_windows(tuple(x.shape[-nd:]), tuple(w.shape[2:]), _arg(call, "stride", 3, 1), padding,
                           _arg(call, "dilation", 5, 1))  # fmt: skip


def _avgpool_call_windows(op, call, x, y):
    """``(sizes, divisors, weights)`` of a recorded average pooling (:func:`analytic.torch_avgpool_windows`)."""
    if op.startswith("adaptive"):
        return an.torch_avgpool_windows(True, int(op[-2]), tuple(x.shape), tuple(y.shape))
    return an.torch_avgpool_windows(False, int(op[-2]), tuple(x.shape), tuple(y.shape), _arg(call, "kernel_size", 1),
                                    _arg(call, "stride", 2), _arg(call, "padding", 3, 0),
                                    _arg(call, "ceil_mode", 4, False), _arg(call, "count_include_pad", 5, True),
                                    _arg(call, "divisor_override", 6))  # fmt: skip


def _pool_call_windows(op, call, x, y):
    """``(sizes, weights)`` of a recorded max pooling's windows (values per window, padding excluded)."""
    nd = int(op[-2])
    if op.startswith("adaptive"):
        return an.adaptive_pool_sizes(tuple(x.shape[-nd:]), tuple(y.shape[-nd:]))
    k = _arg(call, "kernel_size", 1)
    return an.pool_window_sizes(an.conv_windows(tuple(x.shape[-nd:]), k, _arg(call, "stride", 2) or k,
                                                _arg(call, "padding", 3, 0), _arg(call, "dilation", 4, 1),
                                                bool(_arg(call, "ceil_mode", 5, False))))  # fmt: skip


@dataclass
class RecordedGraph:
    """What :func:`recorded_graph` built: the doctor's ``graph``, the input moments ``x_moments`` for
    :func:`weightinit.doctor.graph.propagate`, ``opaque`` (``(operation, where)`` of operations without a moment
    rule, kept as the identity), ``params`` (weight node -> parameter path), ``reads`` (parameter path -> how
    many operations read it) and ``counts`` (the operations modelled, by rule)."""

    graph: Graph
    x_moments: list
    opaque: list = field(default_factory=list)
    params: dict = field(default_factory=dict)
    reads: dict = field(default_factory=dict)
    counts: dict = field(default_factory=dict)
    aliases: list = field(default_factory=list)  # (name, kind, node): another leaf module returned that tensor
    # for the measured cross moments (recorded_jacobian_cross): graph node -> the recorded tensor that made it
    # (its index in the recording; a model input: ("input", position among the input tensors)), an add node ->
    # the indices of its two addends, and the recording's operation names
    tensor_of: dict = field(default_factory=dict)
    addends: dict = field(default_factory=dict)
    ops: list = field(default_factory=list)


def _moments(t) -> tuple[float, float]:
    v = t.detach().double()
    if v.numel() == 0:
        return 0.0, 0.0
    return float(v.mean()), float((v * v).mean())


def _const_moments(t) -> tuple:
    """``(mean, second moment, input-dependent variance 0, token Gram)`` of a constant; its tokens lie along axis -2 (a position embedding
    ``(1, T, D)``, rotary ``cos`` ``(1, 1, T, d)``); one broadcast over the tokens has None (shared by all: the
    Gram is filled by the consumer's size)."""
    v = t.detach().double().cpu()
    mu, q = _moments(v)
    if v.dim() < 2 or v.shape[-2] < 2 or v.shape[-2] > GRAM_MAX_TOKENS:
        return mu, q, 0.0, None
    x = v.reshape(-1, v.shape[-2], v.shape[-1])
    return mu, q, 0.0, (torch.einsum("btd,bsd->ts", x, x) / (x.shape[0] * x.shape[-1])).numpy()


def _value(n) -> torch.Tensor:
    """The tensor of a recorded node (record_forward keeps every node's)."""
    if n.value is None:
        raise ValueError(f"the recorded {n.op!r} node {n.index} has no tensor")
    return n.value


def _call(n) -> tuple:
    """The recorded call ``(func, args, kwargs)`` of an operation's node (inputs and parameters have none)."""
    if n.call is None:
        raise ValueError(f"the recorded {n.op!r} node {n.index} has no call")
    return n.call


def _arg(call, name: str, pos: int, default: Any = None) -> Any:
    _, args, kwargs = call
    if name in kwargs:
        return kwargs[name]
    return args[pos] if len(args) > pos else default


def _is_norm_module(mod) -> bool:
    return "norm" in type(mod).__name__.lower() and not isinstance(mod, tu.NORM_TYPES)


def _allowed_from_mask(mask, shape, bool_allows: bool) -> torch.Tensor:
    """``mask`` (bool: ``bool_allows`` says what True means; float: additive) as an allowed-keys mask of
    ``shape``."""
    ones = torch.ones(shape, dtype=torch.bool)
    if mask is None:
        return ones
    m = mask.detach().cpu()
    if m.dtype == torch.bool:
        allowed = m if bool_allows else ~m
    else:
        allowed = m.double() > _MASKED
    try:
        return ones & allowed
    except RuntimeError:
        return ones


def recorded_graph(model: nn.Module, x, x_moments: tuple = (0.0, 1.0)) -> RecordedGraph:
    """Record one forward pass of ``x`` (a tensor or a tuple of positional inputs) and build the doctor's graph.

    ``x_moments``: ``(mean, second moment)`` of the float inputs, or ``(mean, second moment, input-dependent
    variance)``.  Nodes are named as the doctor's measurement
    names leaf modules (their path, ``#k`` for a repeated call); other operations by their name and a counter.
    """
    args = x if isinstance(x, tuple) else (x,)
    rec, out = record_forward(model, args)
    nodes = rec.nodes
    modules = dict(model.named_modules())
    leaves = {p for p, m in modules.items() if not list(m.children()) or isinstance(m, nn.MultiheadAttention)}
    inputs = {id(t) for t in _tensors(args, [])}
    data = [False] * len(nodes)
    for n in nodes:
        data[n.index] = (n.op == "input" and id(n.value) in inputs) or any(data[a.index] for a in n.inputs)
    outputs = [rec.node_of[id(t)] for t in _tensors(out, []) if id(t) in rec.node_of]
    outputs = [o for o in outputs if data[o.index]]

    # leaf modules taken whole: norms written as elementwise operations (RMSNorm), activation modules (NewGELU)
    inside: set = set()
    whole: dict = {}  # output node index -> (path, module, input node, ("norm" | ("act", name, phi)))
    for path, mod, start, ins, end in rec.calls:
        if end is None or end - start <= 1 or path not in leaves or isinstance(mod, nn.MultiheadAttention):
            continue
        din = [a for a in ins if data[a.index]]
        outs = [n for n in nodes[start:end] if path in n.modules and data[n.index]]
        if len(din) != 1 or len(outs) != 1:
            continue
        if _is_norm_module(mod):
            kind = ("norm",)
        else:
            act = an.module_activation(mod)
            if act is None:
                continue
            kind = ("act", act[0], act[1])
        inside.update(i for i in range(start, end) if i != outs[0].index)
        whole[outs[0].index] = (path, mod, din[0], kind)

    live = [False] * len(nodes)
    for o in outputs:
        live[o.index] = True
    consumers: dict = {}
    for n in reversed(nodes):
        if n.index in whole:
            srcs = [whole[n.index][2]]
        else:
            srcs = n.inputs
        for a in srcs:
            consumers.setdefault(a.index, []).append(n)
            if live[n.index]:
                live[a.index] = True

    gnodes: list = []
    xm: list = []
    gid: dict = {}
    names: dict = {}
    result = RecordedGraph(Graph(gnodes, [], how="recorded forward pass"), xm)
    const_gid: dict = {}

    def fresh(base: str) -> str:
        k = names.get(base, 0)
        names[base] = k + 1
        return base if k == 0 else f"{base}#{k + 1}"

    def label(n) -> str | None:
        for p in n.modules:
            if p in leaves:
                return p
        return None

    def add(node: GNode, shape) -> int:
        node.out = np.broadcast_to(np.float64(0.0), tuple(shape))
        gnodes.append(node)
        if node.op not in ("input", "identity", "opaque"):
            result.counts[node.op] = result.counts.get(node.op, 0) + 1
        return len(gnodes) - 1

    def const(t, name: str) -> int:
        key = id(t)
        if key not in const_gid:
            xm.append(_const_moments(t))
            const_gid[key] = add(GNode(fresh(name), "constant", "input"), t.shape)
        return const_gid[key]

    def src(a) -> int:
        if data[a.index]:
            return gid[a.index]
        return const(a.value, "const")

    def weight_node(name, kind, srcs, w_keras, bias, shape, path=None, layer=None, windows=None) -> int:
        k = w_keras.detach().double().cpu().numpy()
        bn = None if bias is None else bias.detach().double().cpu().numpy()
        st = kernel_stats(k, bn)
        pad, rows = 1.0, st.get("rows")
        if windows is not None:  # a zero-padded conv: the taps in bounds at each output position
            pad, rows = an.padded_kernel_moments(k, windows, bn)
        g = add(GNode(name, kind, "weight", srcs, layer=layer, fan_in=0, sigma_w2=st["sigma_w2"], qb=st["qb"],
                      mb=st["mb"], rows=rows, weight_norm=st["weight_norm"], pad=pad), shape)  # fmt: skip
        if path is not None:
            result.params[g] = path
        return g

    def mix_node(name, q_id, k_id, v_id, s2, allowed, p, shape) -> int:
        attn = attention_mix(s2, allowed.cpu().numpy(), p)
        return add(GNode(name, "attention", "mix", [q_id, k_id, v_id], attn=attn), shape)

    # eager attention: softmax(q k^T * s + mask) (-> dropout) @ v
    eager: dict = {}  # index of the matmul with v -> (q node, k node, scale**2 * d, counts, dropout)
    internal: set = set()
    for n in nodes:
        if n.op != "softmax" or not (live[n.index] and data[n.index]):
            continue
        chain, s2, allowed, cur = [n.index], 1.0, None, None
        d = [a for a in n.inputs if data[a.index]]
        cur = d[0] if len(d) == 1 else None
        shape = tuple(_value(n).shape)
        while cur is not None and cur.op not in _MATMUL:
            chain.append(cur.index)
            dd = [a for a in cur.inputs if data[a.index]]
            cc = [a for a in cur.inputs if not data[a.index] and a.op != "param"]
            if len(dd) != 1:
                cur = None
                break
            if cur.op in _SHAPE:
                pass
            elif cur.op in _ADD and cc:
                allowed = (
                    allowed if allowed is not None else torch.ones(shape, dtype=torch.bool)
                ) & _allowed_from_mask(cc[0].value, shape, False)
            elif cur.op in ("masked_fill", "masked_fill_") and cc:
                allowed = (
                    allowed if allowed is not None else torch.ones(shape, dtype=torch.bool)
                ) & _allowed_from_mask(cc[0].value.bool(), shape, False)
            elif cur.op == "where" and cc:
                allowed = (
                    allowed if allowed is not None else torch.ones(shape, dtype=torch.bool)
                ) & _allowed_from_mask(cc[0].value.bool(), shape, True)
            elif cur.op in _MUL | _DIV and not cc:
                c = [a for a in cur.call[1] if isinstance(a, (int, float)) and not isinstance(a, bool)]
                if len(c) != 1 or c[0] == 0:
                    cur = None
                    break
                s2 *= (1 / c[0] ** 2) if cur.op in _DIV else c[0] ** 2
            else:
                cur = None
                break
            cur = dd[0]
        if cur is None:
            continue
        qk = [a for a in cur.inputs if data[a.index]]
        if len(qk) != 2 or cur.op == "einsum":
            continue
        chain.append(cur.index)
        # forward to the matmul with the values, through dropout and shape-only operations
        p, nxt, ok = 0.0, n, None
        for _ in range(8):
            cs = [c for c in consumers.get(nxt.index, []) if live[c.index]]
            mm = [c for c in cs if c.op in _MATMUL and c.op != "einsum"]
            if len(mm) == 1 and mm[0].inputs and mm[0].inputs[0] is nxt:
                ok = mm[0]
                break
            tr = [c for c in cs if c.op in _SHAPE | _DROPOUT]
            if len(tr) != 1:
                break
            nxt = tr[0]
            if nxt.op in _DROPOUT and _arg(nxt.call, "training", 2, True):
                p = float(_arg(nxt.call, "p", 1, 0.5))
            chain.append(nxt.index)
        if ok is None:
            continue
        allowed = allowed if allowed is not None else torch.ones(shape[-2:], dtype=torch.bool)
        internal.update(chain)
        eager[ok.index] = (qk[0], qk[1], s2 * qk[0].value.shape[-1], allowed, p)

    for n in nodes:
        i = n.index
        if not (live[i] and data[i]) or i in internal:
            continue
        if i in inside:  # inside a module taken whole; x.to(dtype) there can return x itself, used outside
            a = [a for a in n.inputs if data[a.index]]
            if n.op in _SHAPE and len(a) == 1 and a[0].index in gid:
                gid[i] = gid[a[0].index]
            continue
        lab = label(n)
        shape = tuple(n.value.shape) if isinstance(n.value, torch.Tensor) else ()
        name = fresh(lab) if lab else None
        op = n.op
        din = [a for a in n.inputs if data[a.index]]
        cin = [a for a in n.inputs if not data[a.index]]  # constants and parameters (a position embedding)
        kind = type(modules[lab]).__name__ if lab else op
        g = None

        if op == "input":
            xm.append(x_moments if _value(n).is_floating_point() else (0.0, 1.0))
            g = add(GNode(name or fresh("input"), "Input", "input"), shape)
            result.tensor_of[g] = ("input", next(k for k, t in enumerate(_tensors(args, [])) if t is n.value))
        elif i in whole:
            path, mod, a, how = whole[i]
            if how[0] == "norm":
                w, b = getattr(mod, "weight", None), getattr(mod, "bias", None)
                qg = _moments(w)[1] if isinstance(w, torch.Tensor) else 1.0
                mb, qb = _moments(b) if isinstance(b, torch.Tensor) else (0.0, 0.0)
                eps = next((getattr(mod, k) for k in ("variance_epsilon", "eps", "epsilon")
                            if isinstance(getattr(mod, k, None), float)), 0.0)  # fmt: skip
                g = add(GNode(name or fresh(kind), kind, "norm", [gid[a.index]], qg=qg, qb=qb, mb=mb, eps=eps), shape)
            else:
                g = add(GNode(name or fresh(kind), kind, "act", [gid[a.index]], phi=how[2], act=how[1]), shape)
        elif i in eager:
            qn, kn, s2, counts, p = eager[i]
            v = [a for a in n.inputs if data[a.index]][-1]
            g = mix_node(name or fresh("attention"), gid[qn.index], gid[kn.index], gid[v.index], s2, counts, p, shape)
        elif op in _SHAPE and len(din) >= 1:
            if name is None:
                gid[i] = gid[din[0].index]
                continue
            g = add(GNode(name, kind, "identity", [gid[din[0].index]]), shape)
        elif op in _DROPOUT and len(din) == 1:
            p = float(_arg(n.call, "p", 1, 0.5))
            if _arg(n.call, "training", 2, True) and 0 < p < 1:
                c = add(GNode(fresh("dropout_scale"), "constant", "input"), ())
                xm.append((1.0, 1.0 / (1.0 - p)))  # masks independent across tokens
                g = add(GNode(name or fresh(op), kind, "mul", [gid[din[0].index], c]), shape)
            elif name is None:
                gid[i] = gid[din[0].index]
                continue
            else:
                g = add(GNode(name, kind, "identity", [gid[din[0].index]]), shape)
        elif op in {"linear", "addmm", "conv1d", "conv2d", "conv3d"} | _MATMUL and n.params and len(din) == 1:
            path = n.params[0]
            w = next(a.value for a in n.inputs if a.op == "param" and a.params == [path])
            if op == "linear":
                b = _arg(n.call, "bias", 2)
                wk = w.t()
            elif op == "addmm":
                cargs = _call(n)[1]
                b, wk = cargs[0] if cargs else None, w
            elif op.startswith("conv"):
                b = _arg(n.call, "bias", 2)
                groups = int(_arg(n.call, "groups", 6, 1))
                wk = w.permute(*range(2, w.dim()), 1, 0) if groups == 1 else None
                windows = _conv_call_windows(n.call, din[0].value, w)
            else:  # x @ W
                b = None
                cargs = _call(n)[1]
                wk = w if cargs and cargs[-1] is w and w.dim() == 2 else None
            if wk is None:
                g = None
            else:
                owner = path.rsplit(".", 1)[0] if "." in path else ""
                g = weight_node(name or fresh(op), kind if lab else type(modules[owner]).__name__,
                                [gid[din[0].index]], wk, b if isinstance(b, torch.Tensor) else None, shape, path, w,
                                windows if op.startswith("conv") else None)  # fmt: skip
        elif op in _MAXPOOL and len(din) == 1 and isinstance(n.value, torch.Tensor):
            g = add(GNode(name or fresh(op), kind, "maxpool", [gid[din[0].index]],
                          window=_pool_call_windows(op, n.call, din[0].value, n.value)), shape)  # fmt: skip
        elif op in _AVGPOOL and len(din) == 1 and isinstance(n.value, torch.Tensor):
            g = add(GNode(name or fresh(op), kind, "avgpool", [gid[din[0].index]],
                          window=_avgpool_call_windows(op, n.call, din[0].value, n.value)), shape)  # fmt: skip
        elif op == "embedding" and len(din) == 1:
            w = _arg(n.call, "weight", 1)
            g = add(
                GNode(name or fresh(op), kind, "embedding", [gid[din[0].index]], emb=an.embedding_moments(an._np64(w))),
                shape,
            )
        elif op in _NORMS and len(din) == 1:
            if op == "batch_norm" and not _arg(n.call, "training", 5, False):
                rm, rv = _arg(n.call, "running_mean", 1), _arg(n.call, "running_var", 2)
                w, b, eps = _arg(n.call, "weight", 3), _arg(n.call, "bias", 4), float(_arg(n.call, "eps", 7, 1e-5))
                if isinstance(rm, torch.Tensor) and isinstance(rv, torch.Tensor):
                    sw, qb, mb, rows = an.running_norm_affine(*(an._np64(a) if isinstance(a, torch.Tensor) else None
                                                                for a in (rm, rv, w, b)), eps=eps)  # fmt: skip
                    g = add(GNode(name or fresh(op), kind, "weight", [gid[din[0].index]], sigma_w2=sw, rows=rows,
                                  qb=qb, mb=mb), shape)  # fmt: skip
            else:
                pos = {"layer_norm": (2, 3, 4), "group_norm": (2, 3, 4), "rms_norm": (2, None, 3),
                       "instance_norm": (3, 4, 7), "batch_norm": (3, 4, 7)}[op]  # fmt: skip
                w = _arg(n.call, "weight", pos[0])
                b = _arg(n.call, "bias", pos[1]) if pos[1] is not None else None
                eps = _arg(n.call, "eps", pos[2])
                eps = float(eps) if isinstance(eps, (int, float)) else (1e-5 if op != "rms_norm" else 0.0)
                qg = _moments(w)[1] if isinstance(w, torch.Tensor) else 1.0
                mb, qb = _moments(b) if isinstance(b, torch.Tensor) else (0.0, 0.0)
                g = add(GNode(name or fresh(op), kind, "norm", [gid[din[0].index]], qg=qg, qb=qb, mb=mb, eps=eps),
                        shape)  # fmt: skip
        elif op == "scaled_dot_product_attention" and len(din) == 3:
            qv, kv = din[0].value, din[1].value
            t_q, t_k = qv.shape[-2], kv.shape[-2]
            scale = _arg(n.call, "scale", 6)
            scale = 1 / math.sqrt(qv.shape[-1]) if scale is None else float(scale)
            mask = _arg(n.call, "attn_mask", 3)
            if _arg(n.call, "is_causal", 5, False):
                allowed = torch.ones(t_q, t_k, dtype=torch.bool).tril()
            elif isinstance(mask, torch.Tensor):
                allowed = _allowed_from_mask(mask, torch.broadcast_shapes(mask.shape, (t_q, t_k)), True)
            else:
                allowed = torch.ones(t_q, t_k, dtype=torch.bool)
            g = mix_node(name or fresh("attention"), gid[din[0].index], gid[din[1].index], gid[din[2].index],
                         scale * scale * qv.shape[-1], allowed, float(_arg(n.call, "dropout_p", 4, 0.0)),
                         shape)  # fmt: skip
        elif op == "multi_head_attention_forward" and din:
            g = _mha(n, din, data, gid, name, shape, add, weight_node, mix_node, fresh)
        elif op in _ADD | _SUB and len(n.inputs) == 2 and (len(din) == 2 or cin) and not n.scalars:
            a, b = n.inputs
            sign = 1 if op in _ADD else -1
            alpha = _call(n)[2].get("alpha", 1)
            if alpha == 1:
                g = add(GNode(name or fresh("add" if sign > 0 else "sub"), kind, "add", [src(a), src(b)],
                              signs=[1, sign]), shape)  # fmt: skip
                result.addends[g] = (a.index, b.index)
        elif op in _MUL and len(n.inputs) == 2 and (len(din) == 2 or cin) and n.inputs[0] is not n.inputs[1]:
            g = add(GNode(name or fresh("mul"), kind, "mul", [src(n.inputs[0]), src(n.inputs[1])]), shape)
        elif op in _DIV and len(n.inputs) == 2 and cin and n.inputs[0] is din[0]:
            inv = 1.0 / cin[0].value.detach().double()
            if bool(torch.isfinite(inv).all()):
                c = add(GNode(fresh("const"), "constant", "input"), inv.shape)
                xm.append(_const_moments(inv))
                g = add(GNode(name or fresh("div"), kind, "mul", [gid[din[0].index], c]), shape)
        elif op in _CAT:
            parts = [a for a in n.inputs if a.value is not None and a.value.numel() > 0]
            if len(parts) == 1 and data[parts[0].index]:
                if name is None:
                    gid[i] = gid[parts[0].index]
                    continue
                g = add(GNode(name, kind, "identity", [gid[parts[0].index]]), shape)
            elif parts:
                g = add(GNode(name or fresh("cat"), kind, "concat", [src(a) for a in parts]), shape)
        if g is None and len(din) == 1 and n.call is not None and isinstance(n.value, torch.Tensor) and \
                n.value.is_floating_point() and tuple(n.value.shape) == tuple(din[0].value.shape):  # fmt: skip
            fn = _elementwise_fn(n, din[0])
            if fn is not None:
                g = add(GNode(name or fresh(op), kind, "act", [gid[din[0].index]], phi=an._np_fn_of(fn), act=op),
                        shape)  # fmt: skip
        if g is None:
            where = lab or next(iter(n.modules), "") or _enclosing(rec.calls, i) or "model"
            result.opaque.append((op, where))
            prev = [gid[a.index] for a in din[:1]]
            g = add(GNode(name or fresh(op), kind, "opaque", prev, note=f"{op}: no moment rule (identity)"), shape)
        gid[i] = g
        result.tensor_of.setdefault(g, i)
        for other in [p for p in n.modules if p in leaves and p != lab]:  # nn.Identity returns its input tensor
            result.aliases.append((fresh(other), type(modules[other]).__name__, g))
    result.graph.outputs = [gid[o.index] for o in outputs if o.index in gid]
    result.ops = [n.op for n in nodes]
    for n in nodes:
        for p in n.params if n.op != "param" else ():
            result.reads[p] = result.reads.get(p, 0) + 1
        if n.op == "embedding":
            for a in n.inputs:
                for p in a.params:
                    result.reads[p] = result.reads.get(p, 0) + 1
    return result


def _enclosing(calls, i: int) -> str:
    """The innermost module call whose span holds node ``i``."""
    best = ""
    for path, _m, start, _ins, end in calls:
        if end is not None and start <= i < end and len(path) >= len(best):
            best = path
    return best


def _elementwise_fn(n, a):
    """``t -> op(t)`` with the recorded call's other arguments, if it acts elementwise on ``a``'s tensor."""
    func, args, kwargs = n.call
    t0 = a.value
    if sum(isinstance(x, torch.Tensor) and x is t0 for x in args) != 1:
        return None
    if any(isinstance(x, torch.Tensor) and x is not t0 and x.numel() > 1 for x in (*args, *kwargs.values())):
        return None

    def fn(t):
        return func(*[t if (isinstance(x, torch.Tensor) and x is t0) else x for x in args], **kwargs)

    return fn if an._elementwise(fn) else None


def _mha(n, din, data, gid, name, shape, add, weight_node, mix_node, fresh):
    """``nn.MultiheadAttention``'s one recorded operation as q/k/v weight nodes, a ``mix`` and ``out_proj``."""
    import inspect

    func, args, kwargs = n.call
    try:
        b = inspect.signature(func).bind(*args, **kwargs).arguments
    except (TypeError, ValueError):
        return None
    query, key, value = b["query"], b["key"], b["value"]
    if not isinstance(n.value, torch.Tensor) or tuple(n.value.shape) != tuple(query.shape):
        return None  # the attention weights (need_weights=True), not the output
    e, h = int(b["embed_dim_to_check"]), int(b["num_heads"])
    rec_of = {id(a.value): a for a in n.inputs}
    q_n, k_n, v_n = rec_of.get(id(query)), rec_of.get(id(key)), rec_of.get(id(value))
    if q_n is None or k_n is None or v_n is None or not all(data[x.index] for x in (q_n, k_n, v_n)):
        return None
    if b.get("use_separate_proj_weight"):
        ws = [b["q_proj_weight"], b["k_proj_weight"], b["v_proj_weight"]]
    else:
        ws = list(b["in_proj_weight"].chunk(3))
    bias = b.get("in_proj_bias")
    bs = list(bias.chunk(3)) if isinstance(bias, torch.Tensor) else [None] * 3
    if b.get("bias_k") is not None or b.get("add_zero_attn"):
        return None
    base = name or fresh("multi_head_attention")
    ids = [weight_node(f"{base}.{c}", "in_proj", [gid[x.index]], w.t(), bb, (*x.value.shape[:-1], w.shape[0]))
           for c, w, bb, x in zip("qkv", ws, bs, (q_n, k_n, v_n))]  # fmt: skip
    t_q, t_k = query.shape[0], key.shape[0]
    batch = query.shape[1] if query.dim() == 3 else 1
    allowed = torch.ones(t_q, t_k, dtype=torch.bool)
    mask = b.get("attn_mask")
    if isinstance(mask, torch.Tensor):
        m = _allowed_from_mask(mask, mask.shape, False)
        allowed = allowed & (m.reshape(batch, h, t_q, t_k) if m.dim() == 3 else m)
    elif b.get("is_causal"):
        allowed = allowed.tril()
    kpm = b.get("key_padding_mask")
    if isinstance(kpm, torch.Tensor) and kpm.dim() == 2:
        allowed = allowed & _allowed_from_mask(kpm, kpm.shape, False)[:, None, None, :]
    p = float(b.get("dropout_p") or 0.0) if b.get("training", True) else 0.0
    mix = mix_node(f"{base}.attention", *ids, 1.0, allowed, p, (*query.shape[:-1], e))
    return weight_node(base, "MultiheadAttention", [mix], b["out_proj_weight"].t(), b.get("out_proj_bias"), shape)


class _Stop(Exception):
    pass


def _swap(out, t, new):
    """``out`` (an operation's result) with the tensor ``t`` in it replaced by ``new``."""
    if out is t:
        return new
    if type(out) in (tuple, list):
        return type(out)(new if o is t else o for o in out)
    raise NotImplementedError(f"a source tensor inside a {type(out).__name__} result")


def _replay_round(model, args: tuple, rg: RecordedGraph, src, want: tuple, rng) -> dict:
    """One forward-mode probe on the recorded forward: the model run again on ``args`` under a recorder that
    numbers the tensors as the recording did (:func:`weightinit.torch.tracing.record_forward` with a subclass),
    the source tensor ``src`` (a recording index, or ``("input", position)``) made dual with a Rademacher probe
    (:func:`weightinit.doctor.analytic.rademacher`), stopped after the tensors ``want``: ``{index: tangent or
    None}``.  Raises where the replay does not follow the recording or an operation has no forward mode."""
    import torch.autograd.forward_ad as fwad
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from weightinit.torch.tracing import _Recorder

    stop = max(want)
    made: list = []

    def probe(t):
        return torch.from_numpy(an.rademacher(rng, tuple(t.shape))).to(t.dtype).to(t.device)

    class Replay(_Recorder):
        def __init__(self, paths):
            super().__init__(paths)
            made.append(self)

        def __torch_function__(self, func, types, args=(), kwargs=None):
            start = len(self.nodes)
            out = super().__torch_function__(func, types, args, kwargs)
            if isinstance(src, int) and start <= src < len(self.nodes):
                n = self.nodes[src]
                if not (isinstance(n.value, torch.Tensor) and n.value.is_floating_point()):
                    raise NotImplementedError(f"the source {n.op!r} is not a float tensor")
                dual = fwad.make_dual(n.value, probe(n.value))
                out = _swap(out, n.value, dual)
                n.value = dual
                self.node_of[id(dual)] = n
                self.keep.append(dual)
            if len(self.nodes) > stop:
                raise _Stop
            return out

    args = tuple(args)
    saved = {k: b.detach().clone() for k, b in model.named_buffers()}  # (training-mode BatchNorm statistics)
    try:
        with torch.random.fork_rng(devices=[]), fwad.dual_level(), sdpa_kernel([SDPBackend.MATH]):
            if not isinstance(src, int):
                flat = _tensors(args, [])
                k = src[1]
                if not (k < len(args) and args[k] is flat[k] and flat[k].is_floating_point()):
                    raise NotImplementedError("the source is an input that is not a float positional tensor")
                args = (*args[:k], fwad.make_dual(args[k], probe(args[k])), *args[k + 1 :])
            try:
                from weightinit.torch.tracing import record_forward

                record_forward(model, args, recorder=Replay)
            except _Stop:
                pass
            rec = made[-1]
            out = {}
            for k in want:
                if k >= len(rec.nodes) or rec.nodes[k].op != rg.ops[k]:
                    raise NotImplementedError("the replayed forward pass does not follow the recording")
                v = rec.nodes[k].value
                out[k] = fwad.unpack_dual(v).tangent if isinstance(v, torch.Tensor) else None
            out = {k: (None if t is None else t.detach().double().cpu().numpy()) for k, t in out.items()}
    finally:
        with torch.no_grad():
            for k, b in model.named_buffers():
                if k in saved:
                    b.copy_(saved[k])
    return out


def recorded_jacobian_cross(model, x, rg: RecordedGraph, i: int, *, probes: int = 4096, seed: int = 0):
    """``(source node, mean diagonal of J_a J_b^T)`` for the add node ``i = a + b`` of a recorded graph: the
    estimate of :func:`weightinit.doctor.graph.jacobian_cross` (the same source, :func:`~weightinit.doctor.graph.
    common_source`; the same probes, examples and rounds) by ``torch.autograd.forward_ad`` on a replay of the
    recorded forward pass (:func:`_replay_round`).  None without a common source that depends on the inputs."""
    from weightinit.doctor.graph import common_source

    g = rg.graph
    a, b = g.nodes[i].inputs
    src = common_source(g, a, b)
    if src is None or src not in rg.tensor_of or i not in rg.addends:
        return None
    want = rg.addends[i]
    full = x if isinstance(x, tuple) else (x,)
    n0 = int(full[0].shape[0]) if full and isinstance(full[0], torch.Tensor) and full[0].dim() else 0
    shape = np.shape(g.nodes[a].out)
    args = full
    if len(shape) and shape[0] == n0 and n0 > 2:
        keep = an.probe_examples(n0, int(np.prod(shape)) // n0, probes)
        if keep < n0:
            args = tuple(t[:keep] if isinstance(t, torch.Tensor) and t.dim() and t.shape[0] == n0 else t for t in full)
    while True:

        def one_round(rng, args=args):
            got = _replay_round(model, args, rg, rg.tensor_of[src], want, rng)
            return got[want[0]], got[want[1]]

        try:
            return probe_cross(one_round, src, probes, seed)
        except NotImplementedError:
            if args is full:
                raise
            args = full  # a forward specialized to the full batch


def analyze_recorded(model: nn.Module, x, x_mu: float, x_q: float, prop, *, fix: bool = False, targets=None,
                     target: float = 1.0, x_d: float | None = None, cross: str = "measured", seed: int = 0):  # fmt: skip
    """The analytic pass on the recorded graph: ``(records, RecordedGraph)``; records are :class:`LayerStats` with
    ``q_pred``, ``gain`` and ``chi`` per node.  ``prop`` (a :class:`weightinit.doctor.analytic.Propagator`)
    collects notes, the activations that are not depth-stable and, with ``fix``, the scales of the analytic fix
    (each weight scaled so its predicted output second moment is ``target``, ``target / m`` before an add of
    ``m`` tensors; weights that feed only a normalization, and parameters read more than once, are left alone).
    ``cross``: the cross moment at a residual add, ``"measured"`` for this model's weights (forward-mode probes on
    a replay of the recorded pass, :func:`recorded_jacobian_cross`, as the fx path and the Keras/Flax graphs; with
    ``fix``, after the weights before the add are rescaled) or ``"expected"`` (the independence rule)."""
    from weightinit.doctor.graph import _add_targets, _norm_fed
    from weightinit.doctor.report import LayerStats

    rg = recorded_graph(model, x, (x_mu, x_q, x_d))
    g = rg.graph
    on_weight: Callable[..., None] | None = None
    if fix:
        want_of, skip = _add_targets(g, target), _norm_fed(g)

        def rescale(i, node, mu, q):
            path = rg.params.get(i)
            if path is None or i in skip or rg.reads.get(path, 0) != 1 or not (path == "weight" or
                                                                              path.endswith(".weight")):  # fmt: skip
                return
            want = want_of.get(i, target)
            part = an.linear_moments(mu, q, node.sigma_w2 * node.pad, node.qb, node.mb, node.rows)[2]
            s = an.rescale_factor(part, 1.0, node.qb, want)
            with torch.no_grad():
                node.layer.mul_(s)
            node.sigma_w2 *= s * s
            if node.rows is not None:
                node.rows = (node.rows[0] * s, node.rows[1] * s * s, node.rows[2] * s)
            owner = path.rsplit(".", 1)[0] if "." in path else ""
            prop.scales[path] = s
            prop.weight_q[owner] = an.linear_moments(mu, q, node.sigma_w2 * node.pad, node.qb, node.mb, node.rows)[2]

        on_weight = rescale

    cm = None
    if cross == "measured":
        from weightinit.doctor.graph import measured_cross

        class _Size:
            def param_count(self) -> int:
                return sum(p.numel() for p in model.parameters())

        def estimate(_gm, _g, xx, i, seed=0):
            return recorded_jacobian_cross(model, xx, rg, i, seed=seed)

        cm = measured_cross(_Size(), g, x, seed=seed, notes=prop.notes, estimate=estimate)
    pred = propagate(g, rg.x_moments, on_weight=on_weight, cross=cm)
    longest = max((max(n.attn[3].shape[-2:]) for n in g.nodes if n.op == "mix"), default=0)
    if longest > GRAM_MAX_TOKENS:
        prop.notes.append(f"attention over {longest} tokens: their correlations are not tracked above "
                          f"{GRAM_MAX_TOKENS} tokens; the values are averaged as independent tokens")  # fmt: skip
    records = []
    for i, n in enumerate(g.nodes):
        if n.op == "input":
            continue
        q, c = pred[i][1], pred[i][2]
        q_in = pred[n.inputs[0]][1] if n.inputs else float("nan")
        s = LayerStats(name=n.name, kind=n.kind, depth=len(records), shape=tuple(np.shape(n.out)))
        s.q_pred, s.chi, s.note = q, c, n.note
        s.std_pred, s.signal_pred = math.sqrt(max(q - pred[i][0] ** 2, 0.0)), math.sqrt(max(pred[i][5], 0.0))
        s.gain = math.sqrt(q / q_in) if q_in > 0 and q >= 0 else float("nan")
        records.append(s)
        if n.phi is not None and n.op == "act" and n.act not in prop.unstable:
            normed = bool(n.inputs) and g.nodes[n.inputs[0]].op == "norm"
            msg = None if normed else an.depth_stability(n.phi, n.act or n.kind)
            if msg:
                prop.unstable[n.act] = (n.name, msg)
    by_node = {r.name: r for r in records}
    for name, kind, gi in rg.aliases:
        r = by_node.get(g.nodes[gi].name)
        if r is not None:
            a = LayerStats(name=name, kind=kind, depth=len(records), shape=r.shape)
            a.q_pred, a.chi, a.std_pred, a.signal_pred, a.gain = r.q_pred, r.chi, r.std_pred, r.signal_pred, 1.0
            records.append(a)
    return records, rg
