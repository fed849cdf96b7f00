"""The doctor for Keras 3 models (any backend): forward and backward statistics, analytic moments, LSUV and
analytic fix.

Three ways to see a model, chosen by :func:`adapter`:

* a **functional** model (``keras.Model(inputs, outputs)``) is analysed on Keras' own graph: the nodes of
  ``model._nodes_by_depth`` (layers and the ops of ``keras.ops``/tensor arithmetic: ``Add``, ``Concatenate``,
  ``Multiply``, ``MultiHeadAttention``, normalization, pooling, ...), each node's inputs from its input tensors'
  history, several inputs and outputs included.  The nodes are run one by one (layers with ``training=True``, as
  the first training step sees them; inside a ``keras.StatelessScope``, so BatchNorm's moving statistics are not
  touched);
* a **subclassed** model is run once with every leaf layer's ``call`` wrapped (a ``MultiHeadAttention`` is a
  leaf): the calls give the order and the tensors, and :func:`weightinit.doctor.graph.link_calls` finds the edges
  between them (the arithmetic between layers is matched by value: residual adds, concatenations, activations);
* a ``keras.Sequential`` is a functional model: the graph Keras built for it (``model._functional``: an ``Input``
  first), or, not built yet, the graph of its layers called on a ``keras.Input`` of the batch's shape
  (``inputs``' or ``input_shape``).

The logic is :mod:`weightinit.doctor.graph`'s; this module is its Keras access.  Gradients use the active backend's
autodiff: jax (``jax.grad`` of the pass inside a ``StatelessScope``), torch (autograd) and tensorflow
(``tf.GradientTape``); the numpy backend cannot differentiate, so there ``grad_std``/``grad_norms`` stay empty and
the report says why in its notes.  The cross moments at residual adds come from the backend's forward mode
(``jax.jvp``, ``torch.func.jvp``, ``tf.autodiff.ForwardAccumulator``).  Parameter names are the variables' names
(``kernel``, ``bias``).  Weight layers are those with a ``kernel`` (Dense, Conv*, EinsumDense); the kernel is
already in Keras layout ``(..., fan_in, fan_out)``, so LSUV's orthogonal pre-init is a plain
:class:`weightinit.Orthogonal` draw.  A Dense/Conv layer with a fused activation is analysed as the linear map
followed by the activation.
"""

from __future__ import annotations

from typing import cast

import numpy as np

from weightinit.doctor import analytic as an
from weightinit.doctor.backends._common import backend_functions
from weightinit.doctor.graph import (
    SATURATION,
    GNode,
    Graph,
    GraphModel,
    batch_of,
    kernel_stats,
    link_calls,
    place_parts,
)

__all__ = ["adapter", "doctor_keras", "fix_keras"]

_SAT = SATURATION


def _np(t) -> np.ndarray:
    from keras import ops

    return np.asarray(ops.convert_to_numpy(t), dtype=np.float64)


def _act_name(layer):
    a = getattr(layer, "activation", None)
    return getattr(a, "__name__", None) if a is not None else None


def _numpy_act(layer):
    from weightinit.initializers.gains import ACTIVATIONS

    name = _act_name(layer)
    if name in ACTIVATIONS:
        return ACTIVATIONS[name]
    fn = layer.activation
    from keras import ops

    return lambda z: np.asarray(ops.convert_to_numpy(fn(ops.convert_to_tensor(np.asarray(z, np.float32)))), np.float64)


def _param_names(layer) -> list:
    names = [v.name for v in layer.trainable_variables]
    return names if len(set(names)) == len(names) else [v.path for v in layer.trainable_variables]


def _no_grads(backend: str) -> str:
    if backend == "numpy":
        return "Keras's numpy backend cannot differentiate; use KERAS_BACKEND=jax, torch or tensorflow"
    return f"Keras's {backend} backend is not supported by the doctor's backward pass (jax, torch and tensorflow are)"


# ------------------------------------------------------------------------------------------
# graphs: functional models (Keras' graph) and subclassed models (layer call hooks)
# ------------------------------------------------------------------------------------------

_NORMS = ("LayerNormalization", "BatchNormalization", "GroupNormalization", "RMSNormalization",
          "UnitNormalization", "SyncBatchNormalization")  # fmt: skip
_IDENTITY = ("InputLayer", "Flatten", "Reshape", "Dropout", "SpatialDropout1D", "SpatialDropout2D",
             "SpatialDropout3D", "Permute", "Identity", "GaussianNoise", "GaussianDropout", "AlphaDropout",
             "ActivityRegularization", "Cast", "Masking")  # fmt: skip


def _mean_sq(v) -> tuple[float, float]:
    """``(E[v], E[v**2])`` of a variable, ``(0, 0)`` for None."""
    if v is None:
        return 0.0, 0.0
    a = _np(v)
    return float(a.mean()), float(np.mean(a * a))


def _op_phi(op):
    """The numpy function of a one-input elementwise Keras layer/op, by calling it."""
    from keras import ops

    return lambda z: np.asarray(ops.convert_to_numpy(op(ops.convert_to_tensor(np.asarray(z, np.float32)))), np.float64)


def _elementwise(op, x: np.ndarray, y: np.ndarray) -> bool:
    """Whether ``op`` (``x -> y``, same shape) acts elementwise: permuting its input permutes its output."""
    from keras import ops

    try:
        perm = np.random.default_rng(1).permutation(x.size)
        xp = x.ravel()[perm].reshape(x.shape).astype(np.float32)
        yp = np.asarray(ops.convert_to_numpy(op(ops.convert_to_tensor(xp))), np.float64)
        return bool(np.allclose(yp.ravel(), y.ravel()[perm], rtol=1e-4, atol=1e-6))
    except Exception:
        return False


def _conv_windows(op, x: np.ndarray, pool: bool = False):
    """:func:`weightinit.doctor.analytic.conv_windows` of a Keras Conv or MaxPooling layer on the input ``x``
    (``"same"``/``"causal"`` padding; ``"valid"``: None, unless ``pool``)."""
    pad = getattr(op, "padding", "valid")
    if not isinstance(pad, str) or (pad.lower() == "valid" and not pool) or x.ndim < 3:
        return None
    sp = x.shape[2:] if getattr(op, "data_format", "channels_last") == "channels_first" else x.shape[1:-1]
    k = getattr(op, "kernel_size", None) or getattr(op, "pool_size", None)
    if k is None:
        return None
    return an.conv_windows(tuple(sp), tuple(k), tuple(op.strides), pad,
                           tuple(getattr(op, "dilation_rate", None) or (1,) * len(sp)))  # fmt: skip


def _rule(op, ins: list, out: np.ndarray) -> dict:
    """The :class:`GNode` fields of a Keras layer/op node from the layer and its measured inputs/output."""
    from weightinit.doctor.graph import running_norm_fields

    cls = type(op).__name__
    k = getattr(op, "kernel", None)
    if k is not None and hasattr(k, "shape") and len(k.shape) >= 2:
        b = getattr(op, "bias", None)
        act = _act_name(op)
        fused = act not in (None, "linear")
        rows = cls == "Dense" or (cls.startswith("Conv") and "Transpose" not in cls)
        fields = kernel_stats(_np(k), _np(b) if b is not None else None, rows)
        windows = _conv_windows(op, ins[0]) if rows and cls != "Dense" and ins else None
        if windows is not None:  # zero padding: the taps in bounds at each output position
            fields["pad"], fields["rows"] = an.padded_kernel_moments(_np(k), windows, _np(b) if b is not None else None)
        return {"op": "weight", **fields,
                "phi": _numpy_act(op) if fused else None, "act": act if fused else None, "sat": _SAT.get(act or "")}  # fmt: skip
    if cls in ("Add", "Subtract") and len(ins) >= 2:
        return {"op": "add", "signs": [1, -1] if cls == "Subtract" else None}
    if cls == "Multiply" and len(ins) == 2:
        return {"op": "mul"}
    if cls == "Concatenate" and len(ins) >= 2:
        return {"op": "concat"}
    if cls in ("BatchNormalization", "SyncBatchNormalization") and len(ins) == 1 and isinstance(op.axis, int):
        # inference (training=False in the call, or trainable=False): the affine map of its moving statistics
        g, b = getattr(op, "gamma", None), getattr(op, "beta", None)
        run = running_norm_fields(ins[0], out, _np(op.moving_mean), _np(op.moving_variance),
                                  None if g is None else _np(g), None if b is None else _np(b), float(op.epsilon),
                                  op.axis)  # fmt: skip
        if run is not None:
            return run
    if cls in _NORMS:
        g = getattr(op, "gamma", None)
        if g is None:
            g = getattr(op, "scale", None) if not isinstance(getattr(op, "scale", None), bool) else None
        mb, qb = _mean_sq(getattr(op, "beta", None))
        eps = getattr(op, "epsilon", None)
        return {"op": "norm", "qg": _mean_sq(g)[1] if g is not None else 1.0, "qb": qb, "mb": mb,
                "eps": float(eps) if isinstance(eps, (int, float)) else 0.0}  # fmt: skip
    if cls.startswith(("AveragePooling", "GlobalAveragePooling")):
        return {"op": "avgpool"}
    if cls.startswith("MaxPooling") and ins:
        return {"op": "maxpool", "window": an.pool_window_sizes(_conv_windows(op, ins[0], pool=True))}
    if cls.startswith("GlobalMaxPooling"):
        return {"op": "maxpool"}  # (one window: every position)
    if cls == "Embedding":
        return {"op": "embedding", "emb": an.embedding_moments(_np(op.embeddings))}
    if cls in _IDENTITY:
        return {"op": "identity"}
    if cls == "Activation":
        act = _act_name(op)
        if act in (None, "linear"):
            return {"op": "identity"}
        return {"op": "act", "phi": _numpy_act(op), "act": act, "kind": act, "sat": _SAT.get(act)}
    x = ins[0] if len(ins) == 1 else None
    has_weights = bool(getattr(op, "weights", None))
    if x is not None and x.shape == out.shape and not has_weights and _elementwise(op, x, out):
        label = cls.lower()
        return {"op": "act", "phi": _op_phi(op), "act": label, "sat": _SAT.get(label)}
    if x is not None and x.size == out.size and np.array_equal(np.sort(x, axis=None), np.sort(out, axis=None)):
        return {"op": "identity"}
    return {"op": "opaque", "note": f"{cls}: no moment rule; treated as the identity"}


def _is_attention(layer) -> bool:
    from keras import layers

    return isinstance(layer, layers.MultiHeadAttention)


class _AttentionLog:
    """During a capture, what each ``MultiHeadAttention`` call hands its attention kernel (``_compute_attention``,
    wrapped on the instance): the projected query, key and value, the final boolean mask (Keras' own merge of
    ``attention_mask``, the inputs' Keras masks, ``use_causal_mask`` and a sliding window; None where only the
    causal mask is left to the kernel), the training flag, and the kernel's output (the heads before the output
    projection).  ``pop(layer)``: the layer's next call's entry."""

    def __init__(self, model):
        self.entries: dict = {}
        self.layers = [lay for lay in model._flatten_layers(include_self=False, recursive=True) if _is_attention(lay)]

    def __enter__(self):
        for lay in self.layers:
            lay._compute_attention = self._wrap(lay, lay._compute_attention)
        return self

    def __exit__(self, *exc):
        for lay in self.layers:
            lay.__dict__.pop("_compute_attention", None)

    def _wrap(self, lay, orig):
        def _compute_attention(query, key, value, attention_mask=None, training=None, *args, **kwargs):
            y = orig(query, key, value, attention_mask, training, *args, **kwargs)
            self.entries.setdefault(id(lay), []).append({"q": query, "k": key, "v": value, "mask": attention_mask,
                                                          "causal": bool(kwargs.get("use_causal_mask", False)),
                                                          "training": bool(training), "out": y[0]})  # fmt: skip
            return y

        return _compute_attention

    def pop(self, layer):
        got = self.entries.get(id(layer))
        return got.pop(0) if got else None


def _attention_roles(layer, args, kwargs, tensors) -> dict:
    """``{"query": j, "value": j, "key": j}``: which of the call's array arguments ``tensors`` each input is (by
    identity; None where it is none of them)."""
    import inspect

    try:
        b = inspect.signature(type(layer).call).bind(layer, *args, **kwargs).arguments
    except TypeError:
        return {}
    q, v = b.get("query"), b.get("value")
    k = b.get("key")
    k = v if k is None else k

    def pos(t):
        return next((j for j, u in enumerate(tensors) if u is t), None)

    return {"query": pos(q), "key": pos(k), "value": pos(v)}


def _attention_positional(layer, args, kwargs):
    """``MultiHeadAttention.call``'s ``query``, ``value`` and ``key`` (if given) moved to positional arguments."""
    import inspect

    try:
        b = inspect.signature(type(layer).call).bind(layer, *args, **kwargs).arguments
    except TypeError:
        return args, kwargs
    rest = {k: v for k, v in b.items() if k not in ("self", "query", "value", "key")}
    rest.update(rest.pop("kwargs", {}))
    pos = (b.get("query"), b.get("value")) + ((b["key"],) if b.get("key") is not None else ())
    return pos, rest


def _attention_rule(op, name: str, roles: dict, entry) -> dict:
    """The :class:`GNode` fields of a ``MultiHeadAttention`` call as the recorded torch graph has
    ``nn.MultiheadAttention``: weight nodes ``name.q``/``.k``/``.v`` (the query/key/value ``EinsumDense``, their
    kernels ``(E, heads, head dim)`` read as ``(E, heads * head dim)``), a ``mix`` node ``name.attention``
    (scale, allowed keys, dropout on the weights in training), and the call itself as the output projection's
    weight node (``(heads, head dim, E)`` read as ``(heads * head dim, E)``), all with their measured outputs."""
    from weightinit.doctor.graph import attention_mix

    if entry is None or None in (roles.get("query"), roles.get("key"), roles.get("value")) or \
            getattr(op, "_use_gate", False):  # fmt: skip
        why = "a gated attention" if getattr(op, "_use_gate", False) else "its inputs were not found"
        return {"op": "opaque", "note": f"MultiHeadAttention: {why}, no moment rule; treated as the identity"}
    q, k, v, mix = (_np(entry[r]) for r in ("q", "k", "v", "out"))

    def proj(dense, fan):
        kern = _np(dense.kernel)
        b = getattr(dense, "bias", None)
        st = kernel_stats(kern.reshape(fan, -1), None if b is None else _np(b).reshape(-1))
        return {**st, "fan_in": fan, "layer": dense}

    parts = [GNode(f"{name}.{r}", type(d).__name__, "weight", [("arg", roles[role])], out=o,
                   **proj(d, int(d.kernel.shape[0])))
             for r, role, d, o in (("q", "query", op._query_dense, q), ("k", "key", op._key_dense, k),
                                   ("v", "value", op._value_dense, v))]  # fmt: skip
    axes = tuple(getattr(op, "_attention_axes", None) or (1,))
    s2 = float(op._inverse_sqrt_key_dim) ** 2 * float(op._key_dim)
    p = float(op._dropout) if entry["training"] else 0.0
    note = ""
    if axes == (1,) and q.ndim == 4:
        t_q, t_k = q.shape[1], k.shape[1]
        if entry["mask"] is not None:
            m = _np(entry["mask"]) > 0.5  # (batch, T_q, T_k), or broadcast to it
            allowed = np.broadcast_to(m, (*m.shape[:-2], t_q, t_k)) if m.ndim >= 2 else np.ones((1, t_q, t_k), bool)
        else:
            allowed = np.ones((1, t_q, t_k), bool)
            if entry["causal"]:
                allowed = np.tril(allowed)
        attn = attention_mix(s2, allowed, p)
    else:  # attention over several axes: the keys counted, no mask or token Gram
        t_q = int(np.prod([q.shape[a] for a in axes]))
        t_k = int(np.prod([k.shape[a] for a in axes]))
        attn = attention_mix(s2, np.ones((1, t_q, t_k), bool), p)[:3]
        if entry["mask"] is not None or entry["causal"]:
            note = f"attention over the axes {axes}: its mask is not modelled (every key counted)"
    parts.append(GNode(f"{name}.attention", "attention", "mix", [("part", 0), ("part", 1), ("part", 2)], attn=attn,
                       out=mix, note=note))  # fmt: skip
    out = op._output_dense
    return {"op": "weight", "parts": parts, **proj(out, int(np.prod(out.kernel.shape[:2])))}


def _tensors(tree_, args) -> list:
    """The array leaves of a call's (nested) positional arguments."""
    return [a for a in tree_.flatten(args) if hasattr(a, "shape") and hasattr(a, "dtype") and len(a.shape) > 0]


def _leaves(model) -> list:
    """The layers whose ``call`` the hook capture wraps: leaves of the layer tree (MultiHeadAttention is one)."""
    out, seen = [], set()

    def walk(layer):
        for sub in layer._flatten_layers(include_self=False, recursive=False):
            if id(sub) in seen:
                continue
            seen.add(id(sub))
            children = list(sub._flatten_layers(include_self=False, recursive=False))
            if type(sub).__name__ == "MultiHeadAttention" or not children:
                out.append(sub)
            else:
                walk(sub)

    walk(model)
    return out


def _takes_training(op) -> bool:
    import inspect

    try:
        return "training" in inspect.signature(op.call).parameters
    except (TypeError, ValueError, AttributeError):
        return False


class _KerasGraph(GraphModel):
    """A functional model (``functional=True``: Keras' graph) or a subclassed one (layer call hooks)."""

    label = "Keras"

    def __init__(self, model, functional: bool):
        super().__init__(model)
        self.functional = functional
        self.label = "Keras functional" if functional else "Keras subclassed"

    def framework(self) -> str:
        import keras

        return f"keras {keras.__version__} ({keras.backend.backend()})"

    def batch(self, inputs, batch, input_shape, seed):
        if inputs is None:
            if input_shape is not None:
                shapes = ([tuple(s) for s in input_shape] if input_shape and isinstance(input_shape[0], (tuple, list))
                          else [tuple(input_shape)])  # fmt: skip
            else:
                try:
                    shapes = [tuple(t.shape[1:]) for t in self.model.inputs]
                except Exception:
                    shapes = None
            if not shapes or any(d is None for s in shapes for d in s):
                from weightinit.common.errors import InitializerValueError

                raise InitializerValueError("Cannot infer the input shape of this Keras model; pass inputs= or "
                                            "input_shape=.")  # fmt: skip
            return batch_of(None, shapes, batch, seed)
        return batch_of(inputs, None, batch, seed)

    # -- running ----------------------------------------------------------------------------
    def _order(self) -> list:
        nodes = []
        by_depth = self.model._nodes_by_depth
        for depth in sorted(by_depth, reverse=True):
            nodes += [n for n in by_depth[depth] if n.operation is not None and not n.is_input]
        return nodes

    def _run(self, xs, eo=None, ei=None, record=None, hook=None):
        """The model's outputs on ``xs``; ``eo``/``ei``: per call, added to its output / its tensor inputs;
        ``hook(fn, arrays[, pos])`` runs each call (:meth:`weightinit.doctor.graph.Tangents.call`)."""
        return (self._run_functional if self.functional else self._run_hooks)(xs, eo, ei, record, hook)

    def _run_functional(self, xs, eo, ei, record, hook=None):
        from keras import tree

        td = {id(t): v for t, v in zip(self.model.inputs, xs)}
        for k, node in enumerate(self._order()):
            op = node.operation
            if hook is None:
                args, kwargs = node.arguments.fill_in(td)
                if _takes_training(op) and "training" not in kwargs:
                    kwargs["training"] = True
                y = op(*args, **kwargs)
            else:  # the call as a function of its distinct input tensors (attn(a, a) is one function of a)
                uniq = list({id(t): t for t in node.input_tensors}.values())
                pos = [[id(t) for t in node.input_tensors].index(id(t)) for t in uniq]

                def fn(*vals, node=node, op=op, uniq=uniq):
                    args, kwargs = node.arguments.fill_in({**td, **{id(t): v for t, v in zip(uniq, vals)}})
                    if _takes_training(op) and "training" not in kwargs:
                        kwargs["training"] = True
                    return op(*args, **kwargs)

                y = hook(fn, [td[id(t)] for t in uniq], pos)
            flat = tree.flatten(y)
            if eo is not None:
                flat = [flat[0] + eo[k], *flat[1:]]
            if record is not None:
                record.append((node, [td[id(t)] for t in node.input_tensors], flat[0],
                               (node.arguments.args, node.arguments.kwargs, node.input_tensors)))  # fmt: skip
            for t, v in zip(node.outputs, flat):
                td[id(t)] = v
        return [td[id(t)] for t in self.model.outputs]

    def _run_hooks(self, xs, eo, ei, record, hook=None):
        from keras import tree

        count = [0]

        def wrap(layer, orig):
            def call(*args, **kwargs):
                i = count[0]
                count[0] += 1
                if _is_attention(layer):  # query, value and key as positional arguments (the call's arrays)
                    args, kwargs = _attention_positional(layer, args, kwargs)
                if ei is not None:
                    leaves, j = tree.flatten(args), 0
                    for n, a in enumerate(leaves):
                        if hasattr(a, "shape") and hasattr(a, "dtype") and len(a.shape) > 0:
                            leaves[n] = a + ei[i][j]
                            j += 1
                    args = tree.pack_sequence_as(args, leaves)
                if hook is None:
                    y = orig(*args, **kwargs)
                else:
                    leaves = tree.flatten(args)
                    at = [n for n, a in enumerate(leaves) if hasattr(a, "shape") and hasattr(a, "dtype")
                          and len(a.shape) > 0]  # fmt: skip

                    def fn(*arrs, leaves=leaves, at=at):
                        new = list(leaves)
                        for n, a in zip(at, arrs):
                            new[n] = a
                        return orig(*tree.pack_sequence_as(args, new), **kwargs)

                    y = hook(fn, [leaves[n] for n in at])
                flat = tree.flatten(y)
                if eo is not None:
                    flat = [flat[0] + eo[i], *flat[1:]]
                    y = flat[0] if len(flat) == 1 and not isinstance(y, (list, tuple, dict)) else \
                        tree.pack_sequence_as(y, flat)  # fmt: skip
                if record is not None:
                    ts = _tensors(tree, args)
                    record.append((layer, ts, flat[0], (args, kwargs, ts)))
                return y

            return call

        leaves = _leaves(self.model)
        for lay in leaves:
            lay.call = wrap(lay, lay.call)
        try:
            x = xs[0] if len(xs) == 1 else list(xs)
            out = self.model(x, training=True) if _takes_training(self.model) else self.model(x)
        finally:
            for lay in leaves:
                lay.__dict__.pop("call", None)
        return [o for o in tree.flatten(out)]

    # -- capture ----------------------------------------------------------------------------
    def capture(self, x) -> Graph:
        import keras

        xs = x if isinstance(x, tuple) else (x,)
        xt = [keras.ops.convert_to_tensor(v) for v in xs]
        recs: list = []
        with keras.StatelessScope(), _AttentionLog(self.model) as log:
            outs = self._run(xt, record=recs)
        counts: dict = {}

        def fresh(base):
            k = counts.get(base, 0)
            counts[base] = k + 1
            return base if k == 0 else f"{base}#{k + 1}"

        def make(op, ins, y, call):
            yv, name = _np(y), fresh(op.name)
            if _is_attention(op):
                fields = _attention_rule(op, name, _attention_roles(op, *call), log.pop(op))
            else:
                fields = _rule(op, [_np(a) for a in ins], yv)
            fields.setdefault("kind", type(op).__name__)
            fields.setdefault("layer", op)
            return GNode(name=name, out=yv, **fields)

        if self.functional:
            nodes, producer = [], {}
            for t, v in zip(self.model.inputs, xs):
                producer[id(t)] = len(nodes)
                nodes.append(GNode(t._keras_history.operation.name, "Input", "input", out=np.asarray(v, np.float64)))
            calls = []
            for node, ins, y, call in recs:
                gn = make(node.operation, ins, y, call)
                gn.inputs = [producer[id(t)] for t in node.input_tensors]
                place_parts(nodes, gn)
                for t in node.outputs:
                    producer[id(t)] = len(nodes)
                calls.append(len(nodes))
                nodes.append(gn)
            g = Graph(nodes, [producer[id(t)] for t in self.model.outputs], how="functional graph")
        else:
            names = [f"input_{i}" if len(xs) > 1 else "input" for i in range(len(xs))]
            records = [(make(lay, ins, y, call), ins, y) for lay, ins, y, call in recs]
            g = link_calls(list(zip(names, xt)), records, outs, to_numpy=_np)
            calls = [g.nodes.index(r[0]) for r in records]
        g.calls = calls
        g.notes += [f"{n.name}: {n.note}" for n in g.nodes if n.note]
        return g

    # -- gradients --------------------------------------------------------------------------
    def gradients(self, x, g, cots):
        import keras

        backend = keras.backend.backend()
        if backend == "jax":
            return self._grads_jax(x, g, cots)
        if backend == "torch":
            return self._grads_torch(x, g, cots)
        if backend == "tensorflow":
            return self._grads_tf(x, g, cots)
        raise NotImplementedError(_no_grads(backend))

    def _zeros(self, g, xp):
        eo = [xp.zeros(np.shape(g.nodes[i].out), dtype=xp.float32) for i in g.calls]
        ei = None
        if not self.functional:
            ei = [[xp.zeros(np.shape(g.nodes[j].out), dtype=xp.float32) for j in g.nodes[i].args()] for i in g.calls]
        return eo, ei

    def _fill(self, g, tv, gt, geo, gei) -> None:
        for k, i in enumerate(g.calls):
            g.nodes[i].grad_y = np.asarray(geo[k], np.float64)
            if gei is not None:
                g.nodes[i].arg_grads = [np.asarray(a, np.float64) for a in gei[k]]
        by_var = {id(v): gv for v, gv in zip(tv, gt)}
        seen = set()
        for n in g.nodes:
            if n.layer is None or id(n.layer) in seen or not getattr(n.layer, "trainable_variables", None):
                continue
            seen.add(id(n.layer))
            n.grad_params = {name: np.asarray(by_var[id(v)], np.float64)
                             for name, v in zip(_param_names(n.layer), n.layer.trainable_variables)
                             if by_var.get(id(v)) is not None}  # fmt: skip

    def _grads_jax(self, x, g, cots):
        import jax.numpy as jnp

        import jax
        import keras

        xs = [jnp.asarray(v) for v in (x if isinstance(x, tuple) else (x,))]
        tv = list(self.model.trainable_variables)
        eo, ei = self._zeros(g, jnp)

        def loss(tvals, eo, ei):
            with keras.StatelessScope(state_mapping=list(zip(tv, tvals))):
                outs = self._run(xs, eo, ei)
            return sum(jnp.sum(o * jnp.asarray(c, o.dtype)) for o, c in zip(outs, cots))

        gt, geo, gei = jax.grad(loss, argnums=(0, 1, 2))([v.value for v in tv], eo, ei)
        self._fill(g, tv, gt, geo, gei)

    def _grads_torch(self, x, g, cots):
        import keras
        import torch

        tv = list(self.model.trainable_variables)
        params = [v.value for v in tv]
        device = next((p.device for p in params), None)
        xs = [torch.as_tensor(v, device=device) for v in (x if isinstance(x, tuple) else (x,))]
        eo, ei = self._zeros(g, torch)
        eo = [e.to(device).requires_grad_(True) for e in eo]
        flat_ei = []
        if ei is not None:
            ei = [[e.to(device).requires_grad_(True) for e in row] for row in ei]
            flat_ei = [e for row in ei for e in row]
        with torch.enable_grad(), keras.StatelessScope():
            outs = self._run(xs, eo, ei)
            loss = cast(torch.Tensor, sum((o * torch.as_tensor(c, dtype=o.dtype, device=o.device)).sum()
                                          for o, c in zip(outs, cots)))  # a sum of tensors  # fmt: skip
            want = [p for p in params if p.requires_grad]
            got = torch.autograd.grad(loss, want + eo + flat_ei, allow_unused=True)
        byp = {id(p): gp for p, gp in zip(want, got[: len(want)])}
        gt = [byp.get(id(p)) for p in params]
        gt = [gp.detach().cpu().double().numpy() if gp is not None else None for gp in gt]

        def z(t, ref):
            return t.detach().cpu().double().numpy() if t is not None else np.zeros(np.shape(ref))

        geo = [z(t, e) for t, e in zip(got[len(want) : len(want) + len(eo)], eo)]
        gei = None
        if ei is not None:
            rest, gei = list(got[len(want) + len(eo) :]), []
            for row in ei:
                gei.append([z(rest.pop(0), e) for e in row])
        self._fill(g, tv, gt, geo, gei)

    def _grads_tf(self, x, g, cots):
        import tensorflow as tf

        import keras

        tv = list(self.model.trainable_variables)
        xs = [tf.convert_to_tensor(v) for v in (x if isinstance(x, tuple) else (x,))]
        eo, ei = self._zeros(g, tf)
        flat_ei = [e for row in ei for e in row] if ei is not None else []
        with tf.GradientTape() as tape, keras.StatelessScope():
            tape.watch(eo + flat_ei)
            outs = self._run(xs, eo, ei)
            loss = tf.add_n([tf.reduce_sum(o * tf.cast(c, o.dtype)) for o, c in zip(outs, cots)])
        got = tape.gradient(loss, [v.value for v in tv] + eo + flat_ei)

        def z(t, ref):
            return np.asarray(t, np.float64) if t is not None else np.zeros(np.shape(ref))

        gt = [np.asarray(t, np.float64) if t is not None else None for t in got[: len(tv)]]
        geo = [z(t, e) for t, e in zip(got[len(tv) : len(tv) + len(eo)], eo)]
        gei = None
        if ei is not None:
            rest, gei = list(got[len(tv) + len(eo) :]), []
            for row in ei:
                gei.append([z(rest.pop(0), e) for e in row])
        self._fill(g, tv, gt, geo, gei)

    # -- forward mode (the measured cross moments at adds) -------------------------------------
    def replay(self, x, run):
        import keras

        xs = [keras.ops.convert_to_tensor(v) for v in (x if isinstance(x, tuple) else (x,))]
        with keras.StatelessScope():
            self._run(xs, hook=run.call)

    def jvp(self, fn, arrays, tangents):
        return _jvp(fn, arrays, tangents)

    def first(self, y) -> np.ndarray:
        from keras import tree

        return _np(tree.flatten(y)[0])

    def param_count(self) -> int:
        return int(sum(np.prod(v.shape) for v in self.model.weights))

    # -- fix ----------------------------------------------------------------------------------
    def kernel(self, node):
        k = getattr(node.layer, "kernel", None) if node.op == "weight" else None
        if k is None:
            return None
        k = _np(k)  # an attention projection's (E, heads, head dim) or (heads, head dim, E) as a matrix
        return k.reshape(node.fan_in, -1) if node.fan_in and k.ndim > 2 else k

    def set_kernel(self, node, k) -> None:
        node.layer.kernel.assign(np.asarray(k, np.float32).reshape(node.layer.kernel.shape))

    def preactivation(self, x, node) -> np.ndarray:
        import keras

        lay = node.layer
        act = getattr(lay, "activation", None)
        if act is not None:
            lay.activation = keras.activations.linear
        try:
            g = self.capture(x)
        finally:
            if act is not None:
                lay.activation = act
        return next(n.out for n in g.nodes if n.name == node.name)


def _jvp(fn, arrays, tangents):
    """``(fn(*arrays), tangent of its first output array as numpy)`` by the active backend's forward mode:
    ``jax.jvp``, ``torch.func.jvp`` (attention on its math kernel: the fused CPU kernel has no forward mode) or
    ``tf.autodiff.ForwardAccumulator``; a tangent None is zeros."""
    import keras
    from keras import ops, tree

    backend = keras.backend.backend()
    tans = [ops.zeros_like(a) if t is None else ops.convert_to_tensor(np.asarray(t), dtype=a.dtype)
            for a, t in zip(arrays, tangents)]  # fmt: skip
    if backend == "jax":
        import jax

        y, ty = jax.jvp(fn, tuple(arrays), tuple(tans))
    elif backend == "torch":
        import torch.func
        from torch.nn.attention import SDPBackend, sdpa_kernel

        with sdpa_kernel([SDPBackend.MATH]):
            y, ty = torch.func.jvp(fn, tuple(arrays), tuple(tans))[:2]  # (output, tangent): no aux
    elif backend == "tensorflow":
        import tensorflow as tf

        prim = [tf.identity(a) for a in arrays]  # distinct primals, also where one tensor is passed twice
        with tf.autodiff.ForwardAccumulator(prim, tans) as acc:
            y = fn(*prim)
        ty = acc.jvp(y, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    else:
        raise NotImplementedError(f"Keras's {backend} backend has no forward-mode differentiation")
    return y, _np(tree.flatten(ty)[0])


class _KerasSequential(_KerasGraph):
    """A ``keras.Sequential``, analysed on the functional graph of its layers like any functional model.

    A built Sequential (an ``Input`` first, or built by Keras) has that graph already (``model._functional``); one
    that is not built gets it from the input shape of the batch (``inputs``' or ``input_shape``): the layers called
    once on a ``keras.Input`` of that shape, as in a functional model that shares them (the layers are built, the
    Sequential itself is left unbuilt).  Kernels, gradients and the fix act on the Sequential's own layers.
    """

    label = "Keras Sequential"

    def __init__(self, model):
        super().__init__(model, functional=True)
        self.label = "Keras Sequential"
        self.sequential = model
        self._built: dict = {}
        fn = getattr(model, "_functional", None)
        if fn is not None:
            self.model = fn

    def batch(self, inputs, batch, input_shape, seed):
        if getattr(self.sequential, "_functional", None) is not None:
            self.model = self.sequential._functional
            return super().batch(inputs, batch, input_shape, seed)
        x = (batch_of(inputs, None, batch, seed) if inputs is not None
             else batch_of(None, [_sequential_shape(input_shape)], batch, seed))  # fmt: skip
        if isinstance(x, tuple):
            from weightinit.common.errors import InitializerValueError

            raise InitializerValueError(f"A keras.Sequential takes one input; got inputs= with {len(x)} arrays.")
        self.model = self._graph_for(tuple(x.shape[1:]))
        return x

    def _graph_for(self, shape: tuple):
        """The functional graph of the Sequential's layers on a ``keras.Input(shape)`` (made once per shape)."""
        if shape not in self._built:
            from keras.src.models.functional import Functional

            import keras

            inp = keras.Input(shape)
            h = inp
            for lay in self.sequential.layers:
                h = lay(h)
            self._built[shape] = Functional(inp, h)
        return self._built[shape]


def _sequential_shape(input_shape) -> tuple:
    if input_shape is None:
        from weightinit.common.errors import InitializerValueError

        raise InitializerValueError("Cannot infer the input shape of this Keras model; pass inputs= or input_shape=.")
    return tuple(input_shape)


def adapter(model):
    """The view of ``model`` the doctor uses: Keras' graph for a functional model and for a ``keras.Sequential``
    (the functional graph of its layers), layer call hooks for a subclassed one."""
    import keras

    if isinstance(model, keras.Sequential):
        return _KerasSequential(model)
    from keras.src.models.functional import Functional

    if isinstance(model, Functional) and type(model).call is Functional.call:
        return _KerasGraph(model, functional=True)
    return _KerasGraph(model, functional=False)


doctor_keras, fix_keras, doctor, fix = backend_functions("keras", __name__, adapter)

# the backend protocol (weightinit.doctor.backends.DoctorBackend)
NAME = "keras"
