"""Role finding by a recorded forward pass: what each layer does, seen on a small real batch.

``torch.fx`` cannot trace most model zoos (Hugging Face transformers 5 wraps
its forwards in ``(*args, **kwargs)`` decorators and unpacks proxies; timm and
torchvision models branch on shapes).  :func:`record_roles` instead runs the
model once on a tiny batch under a ``TorchFunctionMode`` that records every
torch operation (its inputs and outputs, by tensor identity), while forward
hooks label each tensor with the modules that returned it.  On that dataflow
graph:

* a *projection* is an operation that consumes a parameter of 2 or more
  dimensions (``linear``, ``addmm`` for Hugging Face's ``Conv1D``, ``conv*``,
  ``matmul``); its module is the parameter's owner;
* a *residual addition* is an ``add(u, v)`` where ``u`` is an ancestor of
  ``v``; the branch's output projection is reached from ``v`` back through
  shape-only operations, dropout and scaling (by a constant or a layer-scale
  parameter);
* *attention* is ``scaled_dot_product_attention`` (or ``softmax`` between two
  matmuls); the nearest projections feeding its query, key and value are
  ``attn_q``/``attn_k``/``attn_v`` (``attn_qkv`` when one fused projection
  feeds all three), the first projection reading its output is ``attn_o``;
* ``nn.MultiheadAttention`` is one recorded operation: the module itself is
  ``attn_qkv`` (initialize gives the three row blocks of its fused
  ``in_proj_weight`` the roles ``attn_q``/``attn_k``/``attn_v``) and its
  ``out_proj`` is ``attn_o``;
* a residual output projection that is not ``attn_o`` is ``mlp_out``; the
  nearest projections feeding it are ``mlp_in`` (``mlp_gate``/``mlp_up`` when
  there are two and one passes through an activation);
* a projection whose output reaches the model output through shape-only
  operations is ``head``; a parameter read by ``embedding`` is ``embedding``.

The forward runs on the meta device first (``torch.func.functional_call``
with meta stand-ins for the parameters and buffers): only shapes are
computed, so it costs next to nothing for a model of any size, and the
parameters are not read.  A forward that needs real values (data-dependent
control flow) is then run on the model's own device.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from torch.overrides import TorchFunctionMode

import torch
from torch import nn

__all__ = ["RoleInfo", "record_roles", "example_inputs_for", "record_forward"]

_TRANSPARENT = {
    "view",
    "reshape",
    "transpose",
    "permute",
    "contiguous",
    "flatten",
    "unflatten",
    "to",
    "type",
    "type_as",
    "float",
    "half",
    "bfloat16",
    "clone",
    "view_as",
    "reshape_as",
    "squeeze",
    "unsqueeze",
    "dropout",
    "feature_dropout",
    "alpha_dropout",
    "dropout1d",
    "dropout2d",
    "dropout3d",
    "detach",
    "expand",
    "repeat_interleave",
    "__get__",  # x.T, x.mT, x.data
}
_SCALE = {"mul", "__mul__", "__rmul__", "mul_", "__imul__", "div", "__truediv__", "div_", "__itruediv__"}
_ADD = {"add", "__add__", "__radd__", "add_", "__iadd__"}
_PROJECT = {"linear", "addmm", "matmul", "__matmul__", "mm", "bmm", "einsum", "conv1d", "conv2d", "conv3d", "baddbmm"}
# nn.MultiheadAttention's whole forward, recorded as one operation: its input projection (in_proj_weight,
# fused q/k/v rows, or q/k/v_proj_weight) and its output projection (out_proj) in one call.
_MHA = {"multi_head_attention_forward", "_native_multi_head_attention"}
_ACTIVATIONS = {"silu", "gelu", "relu", "relu_", "sigmoid", "tanh", "mish", "hardswish", "leaky_relu", "elu", "selu"}


@dataclass
class RoleInfo:
    """What :func:`record_roles` found.

    Attributes:
      projections: module paths of residual output projections (forward order).
      n_residual: residual additions fed by a projection (2 per pre-norm transformer layer).
      roles: module path -> role (``attn_q``, ``attn_k``, ``attn_v``, ``attn_qkv``, ``attn_o``,
        ``mlp_in``, ``mlp_gate``, ``mlp_up``, ``mlp_out``, ``head``, ``embedding``).
      seen: parameter paths the forward read.
      method: ``"forward"`` when recorded, else ``""``.
      error: why the recorded forward could not run (empty when it ran).
    """

    projections: list[str] = field(default_factory=list)
    n_residual: int = 0
    roles: dict[str, str] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)
    method: str = ""
    error: str = ""


class _Node:
    """One recorded tensor: the operation ``op`` that made it (``"param"``/``"input"`` for a tensor seen first as an
    argument), its ``inputs`` (nodes, in argument order), the paths of the 2-D+ parameters it read, the module
    paths that returned it (innermost first), and, for the doctor's graph (:func:`record_forward`), the call
    (``func, args, kwargs``) and the tensor itself (``value``)."""

    __slots__ = ("call", "index", "inputs", "modules", "op", "params", "scalars", "value")

    def __init__(self, op: str, inputs: list, params: list[str], scalars: bool, index: int) -> None:
        self.op, self.inputs, self.params, self.scalars, self.index = op, inputs, params, scalars, index
        self.modules: list[str] = []
        self.call: tuple | None = None
        self.value: torch.Tensor | None = None


def _tensors(obj, out: list) -> list:
    if isinstance(obj, torch.Tensor):
        out.append(obj)
    elif isinstance(obj, (list, tuple)):
        for o in obj:
            _tensors(o, out)
    elif isinstance(obj, dict):
        for o in obj.values():
            _tensors(o, out)
    elif hasattr(obj, "to_tuple") and callable(obj.to_tuple):  # transformers' ModelOutput
        _tensors(obj.to_tuple(), out)
    return out


class _Recorder(TorchFunctionMode):
    def __init__(self, param_paths: dict[int, str]) -> None:
        super().__init__()
        self.param_paths = param_paths
        self.node_of: dict[int, _Node] = {}
        self.nodes: list[_Node] = []
        self.keep: list[torch.Tensor] = []  # keeps ids unique while recording
        #: module calls, in call order: (path, module, first node index inside, input nodes, nodes after it)
        self.calls: list[tuple] = []

    def node(self, t: torch.Tensor) -> _Node:
        n = self.node_of.get(id(t))
        if n is None:
            path = self.param_paths.get(id(t))
            n = _Node("param" if path else "input", [], [path] if path else [], False, len(self.nodes))
            n.value = t
            self.nodes.append(n)
            self.node_of[id(t)] = n
            self.keep.append(t)
        return n

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        name = getattr(func, "__name__", "") or str(func)
        if name in ("__set__", "size", "dim", "numel", "__len__", "__bool__", "item", "tolist", "shape"):
            return out
        if name == "__get__" and not isinstance(out, torch.Tensor):  # x.shape, x.device: not a tensor
            return out
        ins = _tensors(args, [])
        _tensors(kwargs, ins)
        in_nodes = [self.node(t) for t in ins]
        params = [p for t in ins if (p := self.param_paths.get(id(t))) is not None and t.dim() >= 2]
        scalars = any(isinstance(a, (int, float)) and not isinstance(a, bool) for a in args)
        for t in _tensors(out, []):
            n = _Node(name, in_nodes, params, scalars, len(self.nodes))
            n.call, n.value = (func, args, kwargs), t
            self.nodes.append(n)
            self.node_of[id(t)] = n
            self.keep.append(t)
        return out


def _owner(param_path: str) -> str:
    return param_path.rsplit(".", 1)[0] if "." in param_path else ""


def _is_projection(n: _Node) -> bool:
    return bool(n.params) and (n.op in _PROJECT or n.op in _MHA)


def _proj_owner(n: _Node) -> str:
    """The module of a projection: the parameter's owner (``out_proj`` for a whole MultiheadAttention)."""
    if n.op in _MHA:
        out = [p for p in n.params if p.endswith("out_proj.weight")]
        if out:
            return _owner(out[0])
    return _owner(n.params[0])


def _is_ancestor(a: _Node, n: _Node) -> bool:
    """True if ``a`` is an ancestor of ``n`` (nodes are numbered in execution order, so the search
    stops below ``a``'s number)."""
    if a.index >= n.index:
        return False
    seen: set[int] = set()
    stack = [n]
    while stack:
        for x in stack.pop().inputs:
            if x is a:
                return True
            if x.index > a.index and x.index not in seen:
                seen.add(x.index)
                stack.append(x)
    return False


def _ancestors(n: _Node) -> set[int]:
    seen: set[int] = set()
    stack = [n]
    while stack:
        for a in stack.pop().inputs:
            if a.index not in seen:
                seen.add(a.index)
                stack.append(a)
    return seen


def _data_inputs(n: _Node) -> list[_Node]:
    return [a for a in n.inputs if a.op != "param"]


def _walk_to_projection(n: _Node) -> _Node | None:
    """Back from ``n`` through shape-only ops, dropout and scaling to a projection."""
    for _ in range(64):
        if _is_projection(n):
            return n
        data = _data_inputs(n)
        if n.op in _TRANSPARENT and data:
            n = data[0]
            continue
        if n.op in _SCALE:
            # x * c, x * gamma (layer scale, a parameter), x / c: continue along the non-constant operand
            if len(data) == 1 and (n.scalars or len(n.inputs) == 2):
                n = data[0]
                continue
            if (
                len(data) == 2
            ):  # x * small tensor (a buffer or a broadcast scale): follow the one with the longer history
                n = max(data, key=lambda a: len(_ancestors(a)))
                continue
        return None
    return None


def _nearest_projections_back(n: _Node, include_self: bool = True) -> list[_Node]:
    """Nearest projections upstream of ``n`` (each path stops at the first projection)."""
    out, seen, queue = [], set(), deque([n] if include_self and _is_projection(n) else _data_inputs(n))
    while queue:
        a = queue.popleft()
        if a.index in seen:
            continue
        seen.add(a.index)
        if _is_projection(a):
            out.append(a)
            continue
        queue.extend(_data_inputs(a))
    return out


def _path_has_activation(src: _Node, dst: _Node) -> bool:
    """True if some path from ``src`` down to ``dst`` passes through an activation."""
    stack, seen = [(dst, False)], set()
    while stack:
        n, act = stack.pop()
        if n is src:
            if act:
                return True
            continue
        key = (n.index, act)
        if key in seen or (n is not dst and _is_projection(n)):
            continue
        seen.add(key)
        a2 = act or n.op in _ACTIVATIONS
        for a in _data_inputs(n):
            stack.append((a, a2))
    return False


def _analyze(rec: _Recorder, outputs: list[_Node], info: RoleInfo) -> None:
    nodes = rec.nodes
    consumers: dict[int, list[_Node]] = {}
    for n in nodes:
        for a in n.inputs:
            consumers.setdefault(a.index, []).append(n)

    def role(module: str, r: str) -> None:
        info.roles.setdefault(module, r)

    for n in nodes:
        for p in n.params:
            info.seen.add(p)
        if n.op == "embedding":
            for a in n.inputs:
                if a.op == "param":
                    info.seen.update(a.params)
                    role(_owner(a.params[0]), "embedding")
        elif n.op in ("layer_norm", "group_norm", "batch_norm", "rms_norm", "instance_norm"):
            for a in n.inputs:
                if a.op == "param":
                    info.seen.update(a.params)
        elif n.op != "param":
            for a in n.inputs:
                if a.op == "param":
                    info.seen.update(a.params)

    # attention
    attn_outputs: list[_Node] = []
    for n in nodes:
        qkv = None
        if n.op in _MHA and n.params:
            # q/k/v: the MultiheadAttention module itself (its in_proj_weight's three row blocks, or its
            # q/k/v_proj_weight); initialize gives each block its role.  attn_o: its out_proj.
            inner = [p for p in n.params if not p.endswith("out_proj.weight")]
            if inner:
                role(_owner(inner[0]), "attn_qkv")
            if _proj_owner(n) != (_owner(inner[0]) if inner else None):
                role(_proj_owner(n), "attn_o")
            continue
        if n.op == "scaled_dot_product_attention":
            data = _data_inputs(n)
            if len(data) >= 3:
                qkv = data[:3]
                attn_outputs.append(n)
        elif n.op == "softmax":
            # eager attention: softmax(q @ k^T * s + mask) (-> dropout) @ v
            src = n
            for _ in range(16):
                d = _data_inputs(src)
                if src.op in ("matmul", "__matmul__", "bmm", "einsum", "baddbmm") and len(d) >= 2:
                    break
                src = max(d, key=lambda a: len(_ancestors(a))) if d else src
                if not d:
                    break
            dst = n
            for _ in range(8):
                nxt = consumers.get(dst.index, [])
                mm = [c for c in nxt if c.op in ("matmul", "__matmul__", "bmm", "einsum")]
                if mm:
                    dst = mm[0]
                    break
                tr = [c for c in nxt if c.op in _TRANSPARENT]
                if not tr:
                    break
                dst = tr[0]
            if src.op in ("matmul", "__matmul__", "bmm", "einsum", "baddbmm") and dst.op in (
                "matmul",
                "__matmul__",
                "bmm",
                "einsum",
            ):
                qk = _data_inputs(src)
                v = [a for a in _data_inputs(dst) if a.index not in _ancestors(n) | {n.index}]
                if len(qk) >= 2 and v:
                    qkv = [qk[0], qk[1], v[0]]
                    attn_outputs.append(dst)
        if qkv is None:
            continue
        found = [{_proj_owner(p) for p in _nearest_projections_back(x) if p.params} for x in qkv]
        q, k, v = found
        if q and q == k == v:
            for m in q:
                role(m, "attn_qkv")
        else:
            for m in q:
                role(m, "attn_q" if m not in k and m not in v else "attn_qkv")
            for m in k:
                role(m, "attn_k" if m not in v else "attn_kv")
            for m in v:
                role(m, "attn_v")
    for a in attn_outputs:
        queue, seen = deque([a]), set()
        while queue:
            c = queue.popleft()
            for nx in consumers.get(c.index, []):
                if nx.index in seen:
                    continue
                seen.add(nx.index)
                if _is_projection(nx):
                    role(_proj_owner(nx), "attn_o")
                else:
                    queue.append(nx)

    # residual additions
    for n in nodes:
        if n.op not in _ADD:
            continue
        data = _data_inputs(n)
        if len(data) != 2:
            continue
        u, v = data
        branch = None
        if _is_ancestor(u, v):
            branch = v
        elif _is_ancestor(v, u):
            branch = u
        if branch is None:
            continue
        proj = _walk_to_projection(branch)
        if proj is None:
            continue
        module = _proj_owner(proj)
        info.n_residual += 1
        if module not in info.projections:
            info.projections.append(module)
        if info.roles.get(module) != "attn_o":
            role(module, "mlp_out")
            ins = _nearest_projections_back(proj, include_self=False)
            ins_mods = [(_proj_owner(i), i) for i in ins if i.params]
            if len(ins_mods) >= 2:
                for m, i in ins_mods:
                    role(m, "mlp_gate" if _path_has_activation(i, proj) else "mlp_up")
            for m, _ in ins_mods:
                role(m, "mlp_in")

    # heads: projections whose output reaches a model output through shape-only ops
    for o in outputs:
        n = o
        for _ in range(16):
            if _is_projection(n):
                role(_proj_owner(n), "head")
                break
            d = _data_inputs(n)
            if n.op in _TRANSPARENT | _SCALE and d:
                n = d[0]
                continue
            break


def example_inputs_for(model: nn.Module):
    """A tiny batch for the model zoos weightinit knows (Hugging Face, timm, torchvision), else None.

    Returns ``(args, kwargs)``; tensors are created on the device of the model's first parameter
    (the meta device included, where the forward computes shapes only).
    """
    p = next(model.parameters(), None)
    device = p.device if p is not None else torch.device("cpu")
    fdtype = p.dtype if p is not None and p.is_floating_point() else torch.float32
    config = getattr(model, "config", None)
    main = getattr(model, "main_input_name", None)
    if config is not None and isinstance(main, str):
        text = config.get_text_config() if hasattr(config, "get_text_config") else config
        if main == "input_ids":
            vocab = int(getattr(text, "vocab_size", 0) or 2)
            n = min(8, int(getattr(text, "max_position_embeddings", 0) or getattr(text, "n_positions", 0) or 8))
            ids = (torch.arange(n, device="cpu") % vocab).unsqueeze(0).to(device)
            kwargs: dict[str, Any] = {"input_ids": ids}
            if getattr(config, "is_encoder_decoder", False):
                kwargs["decoder_input_ids"] = ids
            return (), kwargs
        if main == "pixel_values":
            vision = getattr(config, "vision_config", config)
            size = getattr(vision, "image_size", 32)
            size = size if isinstance(size, int) else int(size[0])
            ch = int(getattr(vision, "num_channels", 3))
            return (), {"pixel_values": torch.zeros(1, ch, size, size, device=device, dtype=fdtype)}
        return None
    cfg = getattr(model, "pretrained_cfg", None) or getattr(model, "default_cfg", None)
    mod = type(model).__module__
    if isinstance(cfg, dict) and mod.startswith("timm."):
        size = cfg.get("input_size", (3, 224, 224))
        pe = getattr(model, "patch_embed", None)
        img = getattr(pe, "img_size", None)
        if img is not None:
            size = (size[0], *img)
        return (torch.zeros(1, *size, device=device, dtype=fdtype),), {}
    if mod.startswith("torchvision.models"):
        size = getattr(model, "image_size", 64)
        return (torch.zeros(1, 3, size, size, device=device, dtype=fdtype),), {}
    return None


def _to_meta(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.to("meta")
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_meta(o) for o in obj)
    if isinstance(obj, dict):
        return {k: _to_meta(v) for k, v in obj.items()}
    return obj


def _record(model: nn.Module, args: tuple, kwargs: dict, meta: bool, keep_modes: bool = False, recorder=None):
    params = dict(model.named_parameters())
    stand_ins: dict[str, torch.Tensor] = {}
    buffers: dict[str, torch.Tensor] = {}
    if meta and any(type(p.data) is not torch.Tensor for p in params.values()):
        raise TypeError("parameters are tensor subclasses (DTensor): recorded on their device")
    if meta:
        stand_ins = {n: torch.empty_like(p, device="meta") for n, p in params.items()}
        buffers = {n: torch.empty_like(b, device="meta") for n, b in model.named_buffers()}
        param_paths = {id(t): n for n, t in stand_ins.items()}
        args, kwargs = _to_meta(args), _to_meta(kwargs)
    else:
        param_paths = {id(p): n for n, p in params.items()}
    rec = (recorder or _Recorder)(param_paths)
    handles = []

    def hook(path):
        def fn(mod, inp, out):
            for t in _tensors(out, []):
                n = rec.node_of.get(id(t))
                if n is not None:
                    n.modules.append(path)

        return fn

    def pre_hook(path):
        def fn(mod, inp):
            rec.calls.append((path, mod, len(rec.nodes), [rec.node(t) for t in _tensors(inp, [])], None))

        return fn

    def post_hook(mod, inp, out):
        for k in range(len(rec.calls) - 1, -1, -1):  # the innermost open call of this module
            if rec.calls[k][1] is mod and rec.calls[k][4] is None:
                rec.calls[k] = (*rec.calls[k][:4], len(rec.nodes))
                break

    for path, m in model.named_modules():
        handles.append(m.register_forward_pre_hook(pre_hook(path)))
        handles.append(m.register_forward_hook(hook(path)))
        handles.append(m.register_forward_hook(post_hook))
    modes = {m: m.training for m in model.modules()}
    if not keep_modes:
        model.eval()
    try:
        with torch.no_grad(), rec:
            if meta:
                out = torch.func.functional_call(model, {**stand_ins, **buffers}, args, kwargs)
            else:
                out = model(*args, **kwargs)
    finally:
        for h in handles:
            h.remove()
        for m, t in modes.items():
            m.training = t
    return rec, out


def record_forward(model: nn.Module, args: tuple, kwargs: dict | None = None, recorder=None):
    """One forward pass of ``model(*args, **kwargs)`` on its own device, in its own train/eval mode, without
    gradients, recorded: returns ``(recorder, output)``.  ``recorder.nodes`` are the recorded tensors in execution
    order (each with its operation, input nodes, module labels, call and value), ``recorder.calls`` the module
    calls with the span of nodes each made, ``recorder.node_of`` maps ``id(tensor)`` to its node.  The same
    recording :func:`record_roles` analyses; the doctor builds its moment graph from it
    (:mod:`weightinit.doctor.backends.torchgraph`).  ``recorder``: a subclass of the recorder (called with the
    parameter paths by ``id``), for a replay that numbers the tensors as the recording did (the doctor's
    forward-mode probes).
    """
    return _record(model, tuple(args), dict(kwargs or {}), meta=False, keep_modes=True, recorder=recorder)


def record_roles(model: nn.Module, example_inputs=None) -> RoleInfo:
    """Find roles by running ``model`` once on ``example_inputs`` (see the module doc).

    ``example_inputs``: a tensor, a tuple of positional arguments, a dict of keyword arguments, or
    ``(args, kwargs)``; None guesses a batch for Hugging Face, timm and torchvision models
    (:func:`example_inputs_for`).  When there is none or the forward fails, ``error`` says why.
    """
    info = RoleInfo()
    if example_inputs is None:
        guessed = example_inputs_for(model)
        if guessed is None:
            info.error = f"no example batch for {type(model).__name__} (pass example_inputs=)"
            return info
        args, kwargs = guessed
    elif isinstance(example_inputs, torch.Tensor):
        args, kwargs = (example_inputs,), {}
    elif isinstance(example_inputs, dict):
        args, kwargs = (), dict(example_inputs)
    elif (
        isinstance(example_inputs, tuple)
        and len(example_inputs) == 2
        and isinstance(example_inputs[0], tuple)
        and isinstance(example_inputs[1], dict)
    ):
        args, kwargs = example_inputs
    elif isinstance(example_inputs, (tuple, list)):
        args, kwargs = tuple(example_inputs), {}
    else:
        args, kwargs = (example_inputs,), {}
    # First on the meta device (shapes only, nothing computed: cheap for any model size), through
    # functional_call with meta stand-ins for the parameters and buffers; if the forward needs real
    # values (data-dependent control flow), on the model's own device.
    out = rec = None
    errors = []
    for meta in (True, False):
        try:
            rec, out = _record(model, args, kwargs, meta)
            break
        except Exception as e:  # a forward that fails here leaves roles to torch.fx
            errors.append(f"{type(e).__name__}: {e}"[:300])
    if rec is None:
        info.error = errors[-1]
        return info
    outputs = [rec.node_of[id(t)] for t in _tensors(out, []) if id(t) in rec.node_of]
    _analyze(rec, outputs, info)
    info.method = "forward"
    return info
