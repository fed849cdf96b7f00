"""The doctor for Flax models: forward and backward statistics, analytic moments, LSUV and analytic fix.

Which view, chosen by :func:`adapter`:

* an **NNX module** is run once with the ``__call__`` of every leaf module
  intercepted (a module without submodules; ``nnx.MultiHeadAttention`` is a leaf): the calls give the order and
  the tensors, and :func:`weightinit.doctor.graph.link_calls` finds the edges between them (the jax code between
  modules, matched by value: residual adds, concatenations, ``jax.nn`` activations).  The pass runs on a copy
  (``nnx.split``/``nnx.merge``), so BatchNorm statistics and RNG counters of the model are not advanced;
  gradients come from one ``jax.grad`` of the same pass over the ``nnx.Param`` state, with zero perturbations
  added at every call's inputs and output for ``dL/dy``;
* a **Linen** module is given bound to its variables (``module.bind(variables)``) and analysed the same way, its
  submodule calls intercepted with ``nn.intercept_methods``;
* an ``nnx.Sequential`` is run item by item as its ``__call__`` runs them: its modules intercepted as above, its
  plain functions (``jax.nn.relu``, a user's own) recorded as calls of their own, so every edge is known.  The input
  shape, when neither ``inputs`` nor ``input_shape`` is given, is the fan-in of a first item's 2-D kernel.  Any
  other object with a ``layers`` list of modules and functions is seen as the ``nnx.Sequential`` of them.

The logic is :mod:`weightinit.doctor.graph`'s; this module is its Flax access.  Weight layers are those with a
``kernel`` parameter (``nnx.Linear``, ``nnx.Conv``), in Flax/Keras layout ``(..., fan_in, fan_out)``;
``grad_norms`` is keyed by the parameter's path in its module (``kernel``, ``bias``).
"""

from __future__ import annotations

import abc
from typing import Any

import numpy as np

from weightinit.common.errors import InitializerTypeError, InitializerValueError
from weightinit.doctor import analytic as an
from weightinit.doctor.backends._common import backend_functions
from weightinit.doctor.graph import SATURATION, GNode, Graph, GraphModel, batch_of, kernel_stats, link_calls

__all__ = ["adapter", "doctor_flax", "fix_flax"]


def _get(var):
    return var.get_value() if hasattr(var, "get_value") else var.value


def _set(var, arr) -> None:
    if hasattr(var, "set_value"):
        var.set_value(arr)
    else:  # pragma: no cover - older flax
        var.value = arr


# ------------------------------------------------------------------------------------------
# graphs: NNX modules (intercepted __call__ of the leaf modules) and bound Linen modules
# ------------------------------------------------------------------------------------------

_NORMS = ("LayerNorm", "RMSNorm", "BatchNorm", "GroupNorm", "InstanceNorm")
_IDENTITY = ("Dropout", "Identity")


def _ms(v) -> tuple[float, float]:
    """``(E[v], E[v**2])`` of a parameter (an nnx variable, a raw array, or None: ``(0, 0)``)."""
    if v is None:
        return 0.0, 0.0
    a = _get(v) if hasattr(v, "get_value") or hasattr(v, "value") else v
    if a is None:
        return 0.0, 0.0
    a = np.asarray(a, np.float64)
    return float(a.mean()), float(np.mean(a * a))


def _arr(params: dict, name: str):
    v = params.get(name)
    return None if v is None else np.asarray(v, np.float64)


def _jax_phi(fn):
    import jax.numpy as jnp

    return lambda z: np.asarray(fn(jnp.asarray(np.asarray(z, np.float32))), np.float64)


def _is_elementwise(fn, x: np.ndarray, y: np.ndarray) -> bool:
    import jax.numpy as jnp

    try:
        perm = np.random.default_rng(1).permutation(x.size)
        yp = np.asarray(fn(jnp.asarray(x.ravel()[perm].reshape(x.shape).astype(np.float32))), np.float64)
        return bool(np.allclose(yp.ravel(), y.ravel()[perm], rtol=1e-4, atol=1e-6))
    except Exception:
        return False


def _flax_rule(cls: str, params: dict, ins: list, out: np.ndarray, call, mod=None) -> dict:
    """:class:`GNode` fields of a Flax module call from its class name, its parameters (``{name: array}``, nested
    names joined by ``.``; a BatchNorm's also its running statistics, :func:`_running`), its measured
    inputs/output, ``call`` (the module as a function of one array) and the module (a normalization's
    ``epsilon``)."""
    from weightinit.doctor.graph import running_norm_fields

    k = _arr(params, "kernel")
    if k is not None and k.ndim >= 2:
        rows = cls in ("Linear", "Dense", "Conv")
        fields = kernel_stats(k, _arr(params, "bias"), rows)
        geo = params.get("geometry")
        if geo is not None and ins and ins[0].ndim == k.ndim:  # zero padding: the taps in bounds per position
            kernel_size, strides, padding, dilation = geo
            if not (isinstance(padding, str) and padding.upper() in ("VALID", "CIRCULAR")):
                windows = an.conv_windows(ins[0].shape[1:-1], kernel_size, strides, padding, dilation)
                fields["pad"], fields["rows"] = an.padded_kernel_moments(k, windows, _arr(params, "bias"))
        return {"op": "weight", **fields}
    if cls == "BatchNorm" and "running_mean" in params and len(ins) == 1:  # eval mode: its running statistics
        run = running_norm_fields(ins[0], out, params["running_mean"], params["running_var"], _arr(params, "scale"),
                                  _arr(params, "bias"), float(params["epsilon"]), int(params["axis"]))  # fmt: skip
        if run is not None:
            return run
    if cls in _NORMS:
        mb, qb = _ms(_arr(params, "bias"))
        sc = _arr(params, "scale")
        eps = getattr(mod, "epsilon", None)
        return {"op": "norm", "qg": float(np.mean(sc * sc)) if sc is not None else 1.0, "qb": qb, "mb": mb,
                "eps": float(eps) if isinstance(eps, (int, float)) else 0.0}  # fmt: skip
    if cls in ("Embed", "Embedding"):
        return {"op": "embedding", "emb": an.embedding_moments(_arr(params, "embedding"))}
    if cls in _IDENTITY:
        return {"op": "identity"}
    x = ins[0] if len(ins) == 1 else None
    if x is not None and x.shape == out.shape and not params and _is_elementwise(call, x, out):
        return {"op": "act", "phi": _jax_phi(call), "act": cls.lower(), "sat": SATURATION.get(cls.lower())}
    if x is not None and x.size == out.size and np.array_equal(np.sort(x, axis=None), np.sort(out, axis=None)):
        return {"op": "identity"}
    return {"op": "opaque", "note": f"{cls}: no moment rule; treated as the identity"}


_ATTENTION = ("MultiHeadAttention", "MultiHeadDotProductAttention", "SelfAttention")
_DEFAULT_ATTENTION = ("dot_product_attention",)


def _attention_positional(fn, mod, args, kwargs):
    """An attention call's query, key and value inputs as positional arguments (``inputs_k``/``inputs_v``/Linen's
    ``inputs_kv`` given by keyword, Linen ``SelfAttention``'s positional ``mask`` moved to its keyword); ``fn`` the
    class's ``__call__``."""
    import inspect

    try:
        b = dict(inspect.signature(fn).bind(mod, *args, **kwargs).arguments)
    except TypeError:
        return args, kwargs
    b.pop("self", None)
    rest = b.pop("kwargs", {})
    kv = b.pop("inputs_kv", None)
    q, k, v = b.pop("inputs_q", None), b.pop("inputs_k", kv), b.pop("inputs_v", kv)
    pos = tuple(a for a in (q, k, v) if a is not None)
    if v is not None and k is None:
        return args, kwargs  # (an error Flax reports itself)
    return pos, {**b, **rest}


def _recording(fn, log: list):
    """``fn`` (an attention module's ``attention_fn``) that also appends to ``log`` what it is handed (the projected
    query, key and value, the mask, the dropout rate and whether it is deterministic, ``is_causal``) and returns
    (the heads before the output projection).  It keeps ``fn``'s signature: Linen passes only the keywords the
    function declares."""
    import functools

    @functools.wraps(fn)
    def attention_fn(query, key, value, *args, **kwargs):
        y = fn(query, key, value, *args, **kwargs)
        log.append({"q": query, "k": key, "v": value, "mask": kwargs.get("mask"), "bias": kwargs.get("bias"),
                    "p": float(kwargs.get("dropout_rate", 0.0) or 0.0),
                    "deterministic": bool(kwargs.get("deterministic", False)),
                    "causal": bool(kwargs.get("is_causal", False)), "out": y})  # fmt: skip
        return y

    return attention_fn


def _with_attention_log(mod, run):
    """``(run(), entry)``: ``run`` with ``mod.attention_fn`` wrapped (:func:`_recording`), on the instance."""
    d = vars(mod)
    if "attention_fn" not in d:
        return run(), None
    orig, log = d["attention_fn"], []
    d["attention_fn"] = _recording(orig, log)
    try:
        y = run()
    finally:
        d["attention_fn"] = orig
    entry = log[-1] if log else None
    if entry is not None:
        entry["default_fn"] = getattr(orig, "__name__", "") in _DEFAULT_ATTENTION
    return y, entry


def _attention_nodes(name: str, path: tuple, params: dict, n_args: int, entry, mod) -> dict:
    """The :class:`GNode` fields of a Flax attention call as the recorded torch graph has
    ``nn.MultiheadAttention``: weight nodes ``name.q``/``.k``/``.v`` (the ``query``/``key``/``value``
    projections, kernels ``(E, heads, head dim)`` read as ``(E, heads * head dim)``), a ``mix`` node
    ``name.attention`` (scale ``1/sqrt(head dim)``, the keys the ``mask``/``is_causal`` allows, dropout unless
    deterministic) and the call itself as the ``out`` projection's weight node (``(heads, head dim, E)`` read as
    ``(heads * head dim, E)``), all with their measured outputs; parameters as Flax names them."""
    from weightinit.doctor.graph import attention_mix

    found = {r: _arr(params, f"{r}.kernel") for r in ("query", "key", "value", "out")}
    kern = {r: v for r, v in found.items() if v is not None and v.ndim >= 3}
    if entry is None or len(kern) < len(found) or n_args < 1:
        return {"op": "opaque", "note": "attention: its projections or inputs were not found; no moment rule, "
                                        "treated as the identity"}  # fmt: skip
    notes = []
    if getattr(mod, "normalize_qk", False):
        notes.append("the query/key normalization (normalize_qk) is not modelled")
    if entry["bias"] is not None:
        notes.append("the additive attention bias is not modelled")
    if not entry["default_fn"]:
        notes.append("a custom attention_fn is modelled as softmax(q k^T / sqrt(head dim)) v")
    if getattr(mod, "decode", False):
        notes.append("the decoding cache is not modelled")
    q, k, v, mix = (np.asarray(entry[r], np.float64) for r in ("q", "k", "v", "out"))

    def proj(r, fan, out, src):
        b = _arr(params, f"{r}.bias")
        st = kernel_stats(kern[r].reshape(fan, -1), None if b is None else b.reshape(-1))
        return {**st, "fan_in": fan, "layer": (*path, r), "out": out, "inputs": src}

    roles = {"query": 0, "key": min(1, n_args - 1), "value": min(2, n_args - 1) if n_args > 2 else min(1, n_args - 1)}
    parts = [GNode(f"{name}.{c}", "LinearGeneral", "weight", **proj(r, kern[r].shape[0], o, [("arg", roles[r])]))
             for c, r, o in (("q", "query", q), ("k", "key", k), ("v", "value", v))]  # fmt: skip
    t_q, t_k = q.shape[-3], k.shape[-3]
    allowed = np.ones((1, t_q, t_k), bool)
    if entry["causal"]:
        allowed = np.tril(allowed)
    if entry["mask"] is not None:  # (batch..., heads, T_q, T_k), True: attend
        m = np.asarray(entry["mask"]).astype(bool)
        allowed = allowed & (np.broadcast_to(m, (*m.shape[:-2], t_q, t_k)) if m.ndim >= 2 else m)
    p = entry["p"] if not entry["deterministic"] else 0.0
    parts.append(GNode(f"{name}.attention", "attention", "mix", [("part", 0), ("part", 1), ("part", 2)],
                       attn=attention_mix(1.0, allowed, p), out=mix, note="; ".join(notes)))  # fmt: skip
    fields = proj("out", int(np.prod(kern["out"].shape[:2])), None, None)
    del fields["out"], fields["inputs"]
    return {"op": "weight", "parts": parts, **fields}


def _as_matrix(node, k: np.ndarray) -> np.ndarray:
    """An attention projection's kernel ``(E, heads, head dim)`` / ``(heads, head dim, E)`` as ``(fan_in, fan_out)``
    (the node's ``fan_in``); other kernels as they are."""
    return k.reshape(node.fan_in, -1) if node.fan_in and k.ndim > 2 else k


def _running(mod, stats) -> dict:
    """A BatchNorm's ``running_mean``, ``running_var`` (from ``stats``, its ``mean``/``var`` variables),
    ``epsilon`` and ``axis`` (an int axis only), for :func:`_flax_rule`; ``{}`` for other modules."""
    axis = getattr(mod, "axis", -1)
    if type(mod).__name__ != "BatchNorm" or not isinstance(axis, int) or "mean" not in stats or "var" not in stats:
        return {}
    return {"running_mean": _plain(stats["mean"]), "running_var": _plain(stats["var"]),
            "epsilon": float(getattr(mod, "epsilon", 1e-5)), "axis": axis}  # fmt: skip


def _plain(x) -> np.ndarray:
    """``x`` as a float64 array: an NNX variable's value (read with :func:`_get`; asking the instance for
    ``.value``, even through ``hasattr``, raises NNX's deprecation warning, so the class is asked) or ``x``."""
    return np.asarray(_get(x) if hasattr(x, "get_value") or hasattr(type(x), "value") else x, np.float64)


def _arrays(args) -> list:
    import jax

    return [a for a in jax.tree_util.tree_leaves(args) if hasattr(a, "shape") and hasattr(a, "dtype") and a.ndim > 0]


class _LeafCalls:
    """The leaf calls of one forward, counted in call order: the ``i``-th call's inputs get ``ei[i]`` added and
    its output ``eo[i]`` (zero arrays whose gradients are the activations' gradients); ``depth`` is non-zero while
    a leaf runs, so layers a leaf calls inside itself are not counted."""

    def __init__(self, eo, ei, hook=None):
        self.eo, self.ei, self.hook = eo, ei, hook
        self.count = 0
        self.depth = 0

    def __call__(self, call, args):
        """``(call(*args), args)`` for the next leaf call, with the probes applied (the inputs as perturbed); with
        ``hook`` (:meth:`weightinit.doctor.graph.Tangents.call`), the call is ``hook(fn, arrays)``, ``fn`` the
        call as a function of the array leaves of ``args``."""
        i = self.count
        self.count += 1
        if self.ei is not None:
            args = _perturb(args, self.ei[i])
        self.depth += 1
        try:
            if self.hook is None:
                y = call(*args)
            else:
                y = self.hook(lambda *arrs: call(*_put_arrays(args, arrs)), _arrays(args))
        finally:
            self.depth -= 1
        if self.eo is not None:
            y = _add_first(y, self.eo[i])
        return y, args


def _perturb(args, row):
    """``args`` with ``row[j]`` added to its ``j``-th array leaf (not to integer ones: token ids)."""
    import jax.numpy as jnp

    import jax

    leaves, tdef = jax.tree_util.tree_flatten(args)
    j = 0
    for n, a in enumerate(leaves):
        if hasattr(a, "shape") and hasattr(a, "dtype") and a.ndim > 0:
            if jnp.issubdtype(a.dtype, jnp.inexact):
                leaves[n] = a + row[j]
            j += 1
    return jax.tree_util.tree_unflatten(tdef, leaves)


def _put_arrays(args, arrs):
    """``args`` with its array leaves (those :func:`_arrays` lists) replaced by ``arrs``, in order."""
    import jax

    leaves, tdef = jax.tree_util.tree_flatten(args)
    it = iter(arrs)
    leaves = [next(it) if hasattr(a, "shape") and hasattr(a, "dtype") and a.ndim > 0 else a for a in leaves]
    return jax.tree_util.tree_unflatten(tdef, leaves)


def _first_array(y):
    import jax

    leaves = jax.tree_util.tree_leaves(y)
    return leaves[0] if leaves else y


def _add_first(y, e):
    import jax

    leaves, tdef = jax.tree_util.tree_flatten(y)
    leaves[0] = leaves[0] + e
    return jax.tree_util.tree_unflatten(tdef, leaves)


class _FlaxGraph(GraphModel):
    """Shared by NNX and Linen: records ``(path, cls, params, args, output)`` per leaf call, then links them."""

    seed_by_key = True

    @abc.abstractmethod
    def _run(self, params, xs, eo, ei, record, hook=None) -> Any:
        """The model's outputs on ``xs`` (NNX and Linen each run their model their way; ``record`` collects the
        calls, ``hook`` sees each one)."""

    def batch(self, inputs, batch, input_shape, seed):
        if inputs is None:
            if input_shape is None:
                raise InitializerValueError("Cannot infer the input shape of this Flax model; pass inputs= or "
                                            "input_shape=.")  # fmt: skip
            shapes = ([tuple(s) for s in input_shape] if input_shape and isinstance(input_shape[0], (tuple, list))
                      else [tuple(input_shape)])  # fmt: skip
            return batch_of(None, shapes, batch, seed)
        return batch_of(inputs, None, batch, seed, keep_int=True)  # (token ids stay integer)

    def capture(self, x) -> Graph:
        import jax.numpy as jnp

        xs = [jnp.asarray(v) for v in (x if isinstance(x, tuple) else (x,))]
        recs: list = []
        outs = self._run(None, xs, None, None, recs)
        counts: dict = {}
        records = []
        for path, cls, params, args, y, call, mod, entry in recs:
            base = ".".join(map(str, path)) or cls
            k = counts.get(base, 0)
            counts[base] = k + 1
            name = base if k == 0 else f"{base}#{k + 1}"
            yv = np.asarray(y, np.float64)
            if cls in _ATTENTION:
                fields = _attention_nodes(name, path, params, len(args), entry, mod)
            else:
                fields = _flax_rule(cls, params, [np.asarray(a, np.float64) for a in args], yv, call, mod)
            fields.setdefault("layer", path)
            node = GNode(name=name, kind=cls, out=yv, **fields)
            records.append((node, args, y))
        names = ["input"] if len(xs) == 1 else [f"input_{i}" for i in range(len(xs))]
        import jax

        g = link_calls(list(zip(names, xs)), records, jax.tree_util.tree_leaves(outs))
        g.calls = [g.nodes.index(r[0]) for r in records]
        g.notes += [f"{n.name}: {n.note}" for n in g.nodes if n.note]
        return g

    def _zeros(self, g):
        import jax.numpy as jnp

        eo = [jnp.zeros(np.shape(g.nodes[i].out), jnp.float32) for i in g.calls]
        ei = [[jnp.zeros(np.shape(g.nodes[j].out), jnp.float32) for j in g.nodes[i].args()] for i in g.calls]
        return eo, ei

    def _fill(self, g, geo, gei, flat_grads) -> None:
        for k, i in enumerate(g.calls):
            g.nodes[i].grad_y = np.asarray(geo[k], np.float64)
            g.nodes[i].arg_grads = [np.asarray(a, np.float64) for a in gei[k]]
        seen = set()
        for n in g.nodes:  # the calls' and their parts' (an attention's projections) parameters
            if not isinstance(n.layer, tuple) or n.layer in seen:
                continue
            seen.add(n.layer)
            p = tuple(n.layer)
            n.grad_params = {".".join(map(str, path[len(p) :])): np.asarray(v, np.float64) for path, v in flat_grads
                             if tuple(path[: len(p)]) == p and len(path) > len(p)}  # fmt: skip

    # -- forward mode (the measured cross moments at adds) -------------------------------------
    def replay(self, x, run):
        import jax.numpy as jnp

        self._run(None, [jnp.asarray(v) for v in (x if isinstance(x, tuple) else (x,))], None, None, None,
                  hook=run.call)  # fmt: skip

    def jvp(self, fn, arrays, tangents):
        import jax.numpy as jnp

        import jax

        tans = tuple(jnp.zeros_like(a) if t is None else jnp.asarray(t, a.dtype) for a, t in zip(arrays, tangents))
        y, ty = jax.jvp(fn, tuple(arrays), tans)
        return y, np.asarray(_first_array(ty), np.float64)

    def first(self, y) -> np.ndarray:
        return np.asarray(_first_array(y), np.float64)

    def preactivation(self, x, node) -> np.ndarray:
        g = self.capture(x)  # Flax layers have no fused activation: the kernel's output is the node's output
        return next(n.out for n in g.nodes if n.name == node.name)


def _nnx_leaves(model) -> dict:
    """``{id(module): (path, module)}`` of the leaf modules (no submodule; MultiHeadAttention is one)."""
    from flax import nnx

    mods = {}
    inside_attention = []
    for path, m in nnx.iter_modules(model):
        if not path:
            continue
        if type(m).__name__ == "MultiHeadAttention":
            inside_attention.append(tuple(path))
        kids = [c for _, c in nnx.iter_children(m) if isinstance(c, nnx.Module) and not isinstance(c, nnx.Rngs)]
        if not kids or type(m).__name__ == "MultiHeadAttention":
            mods[id(m)] = (tuple(path), m)
    return {k: v for k, v in mods.items()
            if not any(v[0][: len(a)] == a and len(v[0]) > len(a) for a in inside_attention)}  # fmt: skip


def _nnx_params(m) -> dict:
    from flax import nnx

    state = nnx.state(m, nnx.Param)
    return {".".join(map(str, k)): np.asarray(_get(v), np.float64) for k, v in nnx.to_flat_state(state)} | _geometry(m)


def _geometry(mod) -> dict:
    """``{"geometry": (kernel_size, strides, padding, kernel_dilation)}`` of a Flax ``Conv`` (NNX or Linen) without
    input dilation, for :func:`_flax_rule`'s zero padding; else empty."""
    idil = getattr(mod, "input_dilation", None)
    if type(mod).__name__ != "Conv" or (idil is not None and any(int(d) != 1 for d in np.atleast_1d(idil))):
        return {}
    k = tuple(mod.kernel_size) if not isinstance(mod.kernel_size, int) else (mod.kernel_size,)
    return {"geometry": (k, mod.strides or 1, mod.padding, mod.kernel_dilation or 1)}


class _NNXGraph(_FlaxGraph):
    label = "Flax NNX"

    def framework(self) -> str:
        import flax

        return f"flax {flax.__version__} (nnx)"

    def _run(self, params, xs, eo, ei, record, hook=None):
        """The outputs of a copy of the model (with ``params``, an ``nnx.Param`` state, if given)."""
        from flax import nnx

        graphdef, pstate, rest = nnx.split(self.model, nnx.Param, ...)
        # a copy of the variables too (created here, inside jax.grad's trace where there is one): the model's
        # BatchNorm statistics are not advanced, and the copy's may be
        m = nnx.merge(graphdef, pstate if params is None else params, rest, copy=True)
        leaves = _nnx_leaves(m)
        calls = _LeafCalls(eo, ei, hook)
        classes = {type(mod) for _, mod in leaves.values()}
        saved = {cls: cls.__dict__.get("__call__") for cls in classes}

        def wrap(orig):
            def __call__(self, *args, **kwargs):
                if id(self) not in leaves or calls.depth:
                    return orig(self, *args, **kwargs)
                entry = None
                if type(self).__name__ in _ATTENTION:
                    args, kwargs = _attention_positional(orig, self, args, kwargs)
                if hook is None and record is not None and type(self).__name__ in _ATTENTION:
                    (y, args), entry = _with_attention_log(self, lambda: calls(lambda *a: orig(self, *a, **kwargs),
                                                                                 args))  # fmt: skip
                elif hook is None:
                    y, args = calls(lambda *a: orig(self, *a, **kwargs), args)
                else:  # forward mode: on a copy made inside the trace, so a BatchNorm may update its statistics
                    y, args = calls(lambda *a: orig(nnx.merge(*nnx.split(self), copy=True), *a, **kwargs), args)
                if record is not None:
                    mod = self
                    ps = {**_nnx_params(self), **_running(self, {k: getattr(self, k, None) for k in ("mean", "var")
                                                                  if getattr(self, k, None) is not None})}  # fmt: skip
                    record.append((leaves[id(self)][0], type(self).__name__, ps, _arrays(args),
                                   _first_array(y), lambda z, mod=mod: orig(mod, z), mod, entry))  # fmt: skip
                return y

            return __call__

        for cls in classes:
            cls.__call__ = wrap(cls.__call__)
        try:
            if isinstance(m, nnx.Sequential):
                return _run_sequential(m, xs, calls, record)
            return m(*xs)
        finally:
            for cls, orig in saved.items():
                if orig is None:
                    del cls.__call__
                else:
                    cls.__call__ = orig

    def param_count(self) -> int:
        from flax import nnx

        return int(sum(np.size(_get(v)) for _, v in nnx.to_flat_state(nnx.state(self.model, nnx.Param))))

    def gradients(self, x, g, cots):
        import jax.numpy as jnp
        from flax import nnx

        import jax

        xs = [jnp.asarray(v) for v in (x if isinstance(x, tuple) else (x,))]
        _, params, _ = nnx.split(self.model, nnx.Param, ...)
        eo, ei = self._zeros(g)

        def loss(p, eo, ei):
            outs = jax.tree_util.tree_leaves(self._run(p, xs, eo, ei, None))
            return sum(jnp.sum(o * jnp.asarray(c, o.dtype)) for o, c in zip(outs, cots))

        gp, geo, gei = jax.grad(loss, argnums=(0, 1, 2))(params, eo, ei)
        self._fill(g, geo, gei, [(k, _get(v)) for k, v in nnx.to_flat_state(gp)])

    def _module(self, node) -> Any:  # the nnx.Module at the node's path (Linear, Conv, ...: its own class)
        from flax import nnx

        for path, m in nnx.iter_modules(self.model):
            if tuple(path) == tuple(node.layer):
                return m
        raise KeyError(node.layer)

    def kernel(self, node):
        if node.op != "weight":
            return None
        k = getattr(self._module(node), "kernel", None)  # (none: a BatchNorm applying its running statistics)
        return None if k is None else _as_matrix(node, np.asarray(_get(k), np.float64))

    def set_kernel(self, node, k) -> None:
        import jax.numpy as jnp

        var = self._module(node).kernel
        _set(var, jnp.asarray(k, _get(var).dtype).reshape(_get(var).shape))


_LINEN_ATTENTION = ("MultiHeadDotProductAttention", "SelfAttention", "MultiHeadAttention")


def _flat(tree, prefix=()) -> list:
    """``[(path tuple, leaf)]`` of a nested dict."""
    if isinstance(tree, dict) or hasattr(tree, "items"):
        out = []
        for k, v in tree.items():
            out += _flat(v, (*prefix, k))
        return out
    return [(prefix, tree)]


class _LinenGraph(_FlaxGraph):
    label = "Flax Linen"

    def __init__(self, model):
        super().__init__(model)
        if getattr(model, "scope", None) is None:
            raise InitializerTypeError("A Linen module must be bound to its variables: pass module.bind(variables) "
                                       f"(got an unbound {type(model).__name__}).")  # fmt: skip
        self.module, self.variables = model.unbind()
        self._leaves = None

    def framework(self) -> str:
        import flax

        return f"flax {flax.__version__} (linen)"

    def _apply(self, variables, xs, interceptor):
        import flax.linen as nn

        import jax

        mutable = [c for c in variables if c != "params"]
        with nn.intercept_methods(interceptor):
            y = self.module.apply(variables, *xs, mutable=mutable or False, rngs={"dropout": jax.random.key(0)})
        return y[0] if mutable else y

    def _find_leaves(self, xs) -> set:
        """Paths of the modules whose ``__call__`` calls no other module (attention modules count as leaves)."""
        stack, parents, seen = [], set(), set()

        def icpt(next_fun, args, kwargs, context):
            if context.method_name != "__call__":
                return next_fun(*args, **kwargs)
            path = tuple(context.module.path)
            if stack:
                parents.add(stack[-1])
            seen.add((path, type(context.module).__name__))
            stack.append(path)
            try:
                return next_fun(*args, **kwargs)
            finally:
                stack.pop()

        self._apply(self.variables, xs, icpt)
        attn = {p for p, c in seen if c in _LINEN_ATTENTION}
        return {p for p, c in seen if p and (p not in parents or p in attn)
                and not any(p[: len(a)] == a and len(p) > len(a) for a in attn)}  # fmt: skip

    def _run(self, params, xs, eo, ei, record, hook=None):
        if self._leaves is None:
            self._leaves = self._find_leaves(xs)
        leaves = self._leaves
        calls = _LeafCalls(eo, ei, hook)

        def icpt(next_fun, args, kwargs, context):
            path = tuple(context.module.path)
            if context.method_name != "__call__" or calls.depth or path not in leaves:
                return next_fun(*args, **kwargs)
            mod, entry = context.module, None
            if type(mod).__name__ in _ATTENTION:
                args, kwargs = _attention_positional(type(mod).__call__, mod, args, kwargs)
            if record is not None and type(mod).__name__ in _ATTENTION:
                (y, args), entry = _with_attention_log(mod, lambda: calls(lambda *a: next_fun(*a, **kwargs), args))
            else:
                y, args = calls(lambda *a: next_fun(*a, **kwargs), args)
            if record is not None:
                ps = {
                    ".".join(map(str, k)): np.asarray(v, np.float64) for k, v in _flat(mod.variables.get("params", {}))
                } | _geometry(mod)
                ps.update(_running(mod, dict(mod.variables.get("batch_stats", {}))))
                record.append((path, type(mod).__name__, ps, _arrays(args), _first_array(y),
                               lambda z, nf=next_fun: nf(z), mod, entry))  # fmt: skip
            return y

        variables = dict(self.variables) if params is None else {**self.variables, "params": params}
        return self._apply(variables, xs, icpt)

    def param_count(self) -> int:
        return int(sum(np.size(v) for _, v in _flat(self.variables.get("params", {}))))

    def gradients(self, x, g, cots):
        import jax.numpy as jnp

        import jax

        xs = [jnp.asarray(v) for v in (x if isinstance(x, tuple) else (x,))]
        eo, ei = self._zeros(g)

        def loss(p, eo, ei):
            outs = jax.tree_util.tree_leaves(self._run(p, xs, eo, ei, None))
            return sum(jnp.sum(o * jnp.asarray(c, o.dtype)) for o, c in zip(outs, cots))

        gp, geo, gei = jax.grad(loss, argnums=(0, 1, 2))(self.variables["params"], eo, ei)
        self._fill(g, geo, gei, _flat(gp))

    def _params_of(self, node) -> dict:
        d = self.variables["params"]
        for k in node.layer:
            d = d[k]
        return d

    def kernel(self, node):
        k = self._params_of(node).get("kernel") if node.op == "weight" else None  # (none: an eval BatchNorm)
        return None if k is None else _as_matrix(node, np.asarray(k, np.float64))

    def set_kernel(self, node, k) -> None:
        """Linen variables are immutable: the new kernel goes into the adapter's copy of the variables and into the
        bound module the doctor was given (``model.variables`` then reads the fixed values)."""
        import jax.numpy as jnp
        from flax.core import unfreeze

        variables = unfreeze(self.variables)
        d = variables["params"]
        for key in node.layer:
            d = d[key]
        d["kernel"] = jnp.asarray(k, d["kernel"].dtype).reshape(d["kernel"].shape)
        self.variables = variables
        self.model = self.module.bind(variables)


def _run_sequential(m, xs, calls, record):
    """An ``nnx.Sequential``'s forward, item by item as its ``__call__`` runs them: modules through their
    intercepted ``__call__``, plain functions (``jax.nn.relu``, a user's own) as recorded calls of their own
    (path ``("layers", i)``, kind the function's name), so every edge is known and no activation is guessed."""
    from flax import nnx

    args = tuple(xs)
    for i, item in enumerate(m.layers):
        if isinstance(item, nnx.Module):
            y = item(*args)
        else:
            y, a = calls(lambda *v, f=item: f(*v), args)
            if record is not None:
                name = getattr(item, "__name__", None) or type(item).__name__
                record.append((("layers", i), name, {}, _arrays(a), _first_array(y), item, None, None))
        args = y if isinstance(y, tuple) else (y,)
    return args[0] if len(args) == 1 else args


class _NNXSequential(_NNXGraph):
    """An ``nnx.Sequential`` (or a module or object with a ``layers`` list, seen as one): its items' calls in
    order; the input shape is inferred from a first ``Linear``-like item's 2-D kernel when not given."""

    def batch(self, inputs, batch, input_shape, seed):
        if inputs is None and input_shape is None:
            first = self.model.layers[0] if len(self.model.layers) else None
            k = getattr(first, "kernel", None)
            if k is not None and np.ndim(_get(k)) == 2:
                input_shape = (int(np.shape(_get(k))[0]),)
        return super().batch(inputs, batch, input_shape, seed)


def adapter(model):
    """The view of ``model``: the intercepted calls of its leaf modules (an ``nnx.Sequential``: of its items, plain
    functions included); a bound Linen module through ``nn.intercept_methods``; any other object with a ``layers``
    list of NNX modules and functions as the ``nnx.Sequential`` of them (the same modules: a fix changes them)."""
    import flax.linen as nn
    from flax import nnx

    if isinstance(model, nn.Module):
        return _LinenGraph(model)
    if isinstance(model, nnx.Sequential):
        return _NNXSequential(model)
    if isinstance(model, nnx.Module):
        return _NNXGraph(model)
    layers = getattr(model, "layers", None)
    if not isinstance(layers, (list, tuple)) or not layers or not all(callable(v) for v in layers):
        raise InitializerTypeError(
            "The Flax doctor takes an NNX module, a bound Linen module, or an object with a `layers` list of "
            f"modules and functions; got {type(model).__name__}."
        )
    return _NNXSequential(nnx.Sequential(*layers))


doctor_flax, fix_flax, doctor, fix = backend_functions("flax", __name__, adapter)

# the backend protocol (weightinit.doctor.backends.DoctorBackend)
NAME = "flax"
