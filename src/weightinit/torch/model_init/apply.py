"""Whole-model initialization: ``initialize(module, recipe, seed=...)``.

Each parameter is identified by its qualified name (``named_parameters``);
its values come from ``Stream(seed).child(path)``, so they depend only on the
seed, the path, the rule and the shape: not on the order modules are declared
or visited, nor on other parameters.  Tied parameters are initialized once,
under one canonical path (the embedding's if one of the aliases belongs to an
``nn.Embedding``, else the lexicographically smallest), so the result does not
depend on which alias is declared first.

The pieces: :mod:`.facts` (what is known of each parameter), :mod:`.rules`
(patterns and initializers), :mod:`.recipes` (named rule sets), :mod:`.report`
(what was done); this module places the values.
"""

from __future__ import annotations

import fnmatch
import inspect
import numbers
import warnings
from dataclasses import dataclass, field, replace
from typing import Any, Literal, cast

import numpy as np

import torch
from torch import nn
from weightinit.common.dtypes import standardize_dtype
from weightinit.common.errors import InitializerTypeError, InitializerValueError
from weightinit.initializers.base import BuiltinInitializer, Initializer, RandomInitializer, generate
from weightinit.initializers.storage import Layout, torch_layout
from weightinit.random.distributions import Normal, TruncatedNormal, Uniform
from weightinit.random.streams import Stream
from weightinit.registry.api import get as _get
from weightinit.torch.model_init.facts import (
    _ROLE_OF_KIND,
    ParamInfo,
    _classify,
    _layout_override,
    _layout_rules,
    canonical_alias,
    layer_index,
)
from weightinit.torch.model_init.own import (
    OwnInit,
    find_own_init,
    own_init_values,
    plan_buffers,
    restore_buffers,
    run_own_init,
)
from weightinit.torch.model_init.recipes import expand
from weightinit.torch.model_init.report import InitReport, ParamRecord
from weightinit.torch.model_init.rules import PerParameter
from weightinit.torch.place import (
    _is_dtensor,
    draw_seed,
    numpy_dtype,
    resolve_stream,
    tensor_to_numpy,
    write_array,
    write_distribution,
)
from weightinit.torch.roles import find_residual_projections
from weightinit.torch.tracing import example_inputs_for, record_roles

__all__ = ["initialize", "plan", "InitPlan", "ParamPlan", "OwnInitParam"]


def _resolve_value(value, info: ParamInfo):
    """(op, payload, label) with op in {"skip", "dist", "const", "init", "fn"}."""
    for _ in range(8):
        if isinstance(value, PerParameter):
            value = value.fn(info)
            continue
        break
    if value is None or (isinstance(value, str) and value.lower() in ("skip", "keep")):
        return "skip", None, "left as is"
    if isinstance(value, (Uniform, Normal, TruncatedNormal)):
        return "dist", value, repr(value)
    if isinstance(value, numbers.Number) and not isinstance(value, bool):
        return "const", value, f"constant {value}"
    if isinstance(value, (str, dict)):
        value = _get(value)
    if inspect.isclass(value) and issubclass(value, Initializer):
        value = value()
    if isinstance(value, Initializer):
        return "init", value, type(value).__name__
    if callable(value):
        return "fn", value, getattr(value, "__name__", repr(value))
    raise InitializerTypeError(
        f"A rule's initializer must be a weightinit initializer or name, a distribution, a number, a "
        f"PerParameter, a torch-style function fn(tensor), or None; received {value!r} for {info.path}."
    )


def _elementwise_source(init, layout: Layout, shape: tuple, dtype: torch.dtype, stream: Stream):
    """(distribution, stream) of an elementwise random initializer in a torch layout, else None."""
    dist_for = getattr(init, "distribution_for", None)
    if isinstance(init, RandomInitializer) and init.elementwise and callable(dist_for):
        s = init.stream_for_call(shape, numpy_dtype(dtype, type(init).__name__), stream)
        fan_shape = shape if getattr(init, "input_axes", None) is not None else layout.fan_shape
        return dist_for(fan_shape), s
    return None


def _place_initializer(tensor: torch.Tensor, init, layout: Layout, stream: Stream) -> None:
    """Generate with a weightinit initializer in the parameter's torch layout (see weightinit.initializers.storage)."""
    shape = tuple(tensor.shape)
    source = _elementwise_source(init, layout, shape, tensor.dtype, stream)
    if source is not None:
        write_distribution(tensor, *source)
        return
    dt = standardize_dtype(str(tensor.dtype))
    if isinstance(init, BuiltinInitializer) and init.elementwise and not isinstance(init, RandomInitializer):
        write_array(tensor, np.asarray(generate(init, shape, dt, stream=stream)))
        return
    if layout.blocks == 1:
        arr = np.asarray(generate(init, layout.cl_shape, dt, stream=stream))
        write_array(tensor, np.transpose(arr, layout.perm) if arr.ndim == len(layout.perm) else arr)
        return
    # One array for all blocks, written once: a slice of a DTensor is a new tensor, so writing
    # block by block into slices would be lost for sharded parameters.
    blocks = [
        np.transpose(np.asarray(generate(init, layout.cl_shape, dt, stream=stream.fold_in(b))), layout.perm)
        for b in range(layout.blocks)
    ]
    write_array(tensor, np.concatenate(blocks, axis=0))


def _call_fn(fn, tensor: torch.Tensor, stream: Stream) -> None:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        params = {}
    kwargs = {}
    if "seed" in params:
        kwargs["seed"] = stream
    elif "generator" in params:
        g = torch.Generator(device=tensor.device)
        g.manual_seed(stream.to_int() & ((1 << 63) - 1))
        kwargs["generator"] = g
    with torch.no_grad():
        fn(tensor, **kwargs)


def _apply(op: str, payload, tensor: torch.Tensor, info: ParamInfo, stream: Stream) -> None:
    if tensor.is_meta or op == "skip":
        return
    with torch.no_grad():
        if op == "dist":
            write_distribution(tensor, payload, stream)
        elif op == "const":
            tensor.fill_(payload)
        elif op == "init":
            _place_initializer(tensor, payload, info.layout, stream)
        elif op == "blocks":
            _apply_blocks(tensor, payload, stream)
        else:
            _call_fn(payload, tensor, stream)


class _PlannedTensor:
    """The path, shape and dtype every planned parameter shows (from its ``info`` and ``tensor``)."""

    info: ParamInfo
    tensor: torch.Tensor

    @property
    def path(self) -> str:
        return self.info.path

    @property
    def aliases(self) -> tuple:
        """Every path the tensor has (tied parameters: the canonical path first)."""
        return tuple(self.info.aliases) or (self.info.path,)

    @property
    def shape(self) -> tuple:
        return tuple(self.tensor.shape)

    @property
    def dtype(self) -> torch.dtype:
        return self.tensor.dtype


@dataclass
class ParamPlan(_PlannedTensor):
    """How :func:`initialize` sets one (canonical) parameter, decided by :func:`plan`, written by :meth:`apply`.

    Attributes:
      info: the :class:`ParamInfo` the rules saw.
      tensor: the parameter itself (possibly on the meta device).
      op: ``"skip"``, ``"dist"`` (``payload`` a distribution), ``"const"``
        (a number), ``"init"`` (a weightinit initializer), ``"fn"`` (a
        torch-style function) or ``"blocks"`` (a MultiheadAttention's fused
        q/k/v weight whose row blocks get different rules: ``payload`` lists
        ``(op, payload, ParamInfo)`` per block).
      payload: what ``op`` uses.
      record: the parameter's :class:`ParamRecord` in the plan's report.
      stream: the parameter's stream, ``Stream(seed).child(path)``.
    """

    info: ParamInfo
    tensor: torch.Tensor
    op: str
    payload: Any
    record: ParamRecord
    stream: Stream

    @property
    def padding_row(self) -> int | None:
        """The row set to zero after generation (an ``nn.Embedding``'s ``padding_idx``), else None."""
        row = getattr(self.info.module, "padding_idx", None) if self.info.role == "embedding" else None
        return None if row is None or self.op == "skip" else int(row)

    def elementwise(self):
        """``(distribution, stream)`` when each value is drawn alone from the stream, else None.

        Then the value at row-major flat index ``i`` is element ``i`` of
        ``weightinit.sample(distribution, stream, (numel,), dtype)``, so any
        region is generated alone (before the :attr:`padding_row` is zeroed).
        """
        if self.op == "dist":
            return self.payload, self.stream
        if self.op == "init":
            return _elementwise_source(self.payload, self.info.layout, self.shape, self.dtype, self.stream)
        return None

    def apply(self, tensor: torch.Tensor | None = None) -> None:
        """Write the parameter's values into ``tensor`` (default: the parameter; nothing on meta)."""
        t = self.tensor if tensor is None else tensor
        _apply(self.op, self.payload, t, self.info, self.stream)
        if self.padding_row is not None and not t.is_meta:
            with torch.no_grad():
                t[self.padding_row].fill_(0)


@dataclass
class OwnInitParam(_PlannedTensor):
    """A parameter no rule matched, whose values come from its module's own init (``unmatched="own_init"``).

    It offers :class:`ParamPlan`'s interface (``op`` is ``"own_init"``, ``payload`` the
    :class:`~weightinit.torch.model_init.own.OwnInit`), so :mod:`weightinit.artifact` fingerprints,
    verifies and writes it like a planned parameter.  Its values are torch's RNG draws seeded from
    the plan's stream: they are reproducible with the same torch version on the same device type.
    """

    info: ParamInfo
    tensor: torch.Tensor
    own: OwnInit
    record: ParamRecord
    op: str = "own_init"
    _group: dict = field(default_factory=dict, repr=False)  # values computed, not yet taken (shared by the group)

    @property
    def payload(self) -> OwnInit:
        return self.own

    @property
    def stream(self) -> Stream:
        return self.own.stream

    @property
    def padding_row(self) -> None:
        return None

    def elementwise(self) -> None:
        """None: a module's own init is not an elementwise stream (see :meth:`ParamPlan.elementwise`)."""
        return None

    def apply(self, tensor: torch.Tensor | None = None) -> None:
        """Write the values into ``tensor`` (a fresh run of the own init for this module's parameters only).

        Without ``tensor``, the own init runs in place on the model (writing every parameter it is run for).
        """
        if tensor is None:
            run_own_init(self.own, cast(nn.Module, self.info.model))
            return
        if tensor.is_meta:
            return
        # One run gives the values of every parameter of this init; each is handed out once, so at most
        # one module's worth is held.
        if self.path not in self._group:
            self._group.clear()
            self._group.update(own_init_values(self.own, cast(nn.Module, self.info.model)))
        values = self._group.pop(self.path)
        with torch.no_grad():
            if _is_dtensor(tensor):
                write_array(tensor, tensor_to_numpy(values))
            else:
                tensor.copy_(values)


@dataclass
class InitPlan:
    """What :func:`plan` decided: the report :func:`initialize` returns and one :class:`ParamPlan` per parameter.

    ``own_inits`` lists the modules' own inits (:class:`~weightinit.torch.model_init.own.OwnInit`)
    that give values to the parameters no rule matched (``unmatched="own_init"``), each writing
    only those parameters; ``buffers`` lists, per module holding buffers, the code that computes
    them (:class:`~weightinit.torch.model_init.own.BufferInit`).  :func:`initialize` restores the
    buffers, runs the own inits, then writes the planned parameters.
    """

    report: InitReport
    params: list
    own_inits: list = field(default_factory=list)
    buffers: list = field(default_factory=list)
    own_params: list = field(default_factory=list)

    def entries(self) -> list:
        """Every parameter given a value, in ``named_parameters`` order: the :attr:`params` written by rules
        and the :attr:`own_params` (:class:`OwnInitParam`) given their module's own init."""
        order = {p: k for k, p in enumerate(self.report.records)}
        return sorted([*self.params, *self.own_params], key=lambda e: order.get(e.path, len(order)))

    def __iter__(self):
        return iter(self.params)

    def __len__(self) -> int:
        return len(self.params)


def plan(
    module: nn.Module,
    recipe=None,
    *,
    seed=None,
    generator: torch.Generator | None = None,
    residual_projections=None,
    n_layers: int | None = None,
    strict: bool = False,
    layouts=None,
    example_inputs=None,
    unmatched: Literal["own_init", "keep", "error"] = "own_init",
    rules=None,
) -> InitPlan:
    """Decide, without writing anything, how :func:`initialize` sets each parameter of ``module``.

    Each parameter's values come from ``Stream(seed).child(path)`` (``path``
    its qualified name), so they depend on the seed, the path, the matching
    rule and the shape only: not on declaration or traversal order, nor on
    other parameters.  Tied parameters are planned once.  ``module`` may live
    on the meta device: a plan needs shapes and types only, which is how
    :mod:`weightinit.artifact` fingerprints models and writes checkpoints.

    Args:
      module: the model (parameters on any device; on the meta device nothing
        is written: build on meta, ``to_empty(device=...)``, then initialize).
      recipe: a recipe name, a dict ``{pattern: initializer}``, or a list of
        recipes and ``(pattern, initializer)`` pairs; the first match wins and
        recipes expand in place (default ``"torch"``).  Patterns: a glob on the
        path (``"*.bias"``), a regex (``"re:..."`` or a compiled pattern), a
        role (``"role:bias"``, ``"role:residual"``, ``"role:embedding"``,
        ``"role:recurrent"``, ``"role:norm_weight"``...), a module type or
        tuple of types, ``(type, "param_glob")``, or a predicate on
        :class:`ParamInfo`.  Initializers: a weightinit initializer, name or
        config (fans are those of the layer type, see
        :func:`weightinit.initializers.storage.torch_layout`), a distribution, a number, a
        :class:`PerParameter`, a torch-style ``fn(tensor)`` (given ``seed=``
        or ``generator=`` from the parameter's stream when it accepts one), or
        None / ``"skip"``.
        Recipes (:data:`weightinit.torch.RECIPES`, listed with their sources
        in docs/recipes.md): ``"torch"`` (PyTorch's own ``reset_parameters``,
        in distribution), ``"keras"`` (glorot_uniform kernels, orthogonal
        recurrent kernels, zero biases, LSTM forget-gate bias 1, U(+-0.05)
        embeddings), ``"flax"`` (lecun_normal, orthogonal recurrent, zero
        biases, N(0, 1/dim) embeddings), ``"he"``/``"glorot"``/``"lecun"``
        (and ``_normal``/``_uniform`` variants), ``"gpt2"`` (N(0, 0.02);
        residual output projections N(0, 0.02/sqrt(2 n_layers)), found by
        tracing), ``"timm_vit"`` and ``"timm_vit_jax"`` (timm's
        ``init_weights_vit_timm`` and ``init_weights_vit_jax``;
        ``"timm_vit_jax_nlhb"`` sets head biases to ``-log(num_classes)``, and
        ``RECIPES["timm_vit_jax"](head_bias=b)`` gives the rules for any other
        head bias).  ``MultiheadAttention``'s ``bias_k``/``bias_v`` (role
        ``"bias_kv"``) get PyTorch's own ``xavier_normal_`` in every recipe but
        ``"gpt2"`` (N(0, 0.02)).  When roles are found, the three row blocks
        of a ``MultiheadAttention``'s fused ``in_proj_weight`` match rules as
        ``role:attn_q``/``attn_k``/``attn_v``, each with the fans of one block.  The names ``"vit"``, ``"jax"`` and
        ``"jax_nlhb"`` of weightinit 0.1 still work, with a DeprecationWarning.
      seed: int, Stream or SeedGenerator; default: 64 bits drawn from
        ``generator`` or torch's global RNG (so ``torch.manual_seed`` reproduces).
      residual_projections: module paths or globs of residual output
        projections, when tracing cannot find them (modules may also set
        ``weightinit_residual = True``).
      n_layers: the GPT-2 depth; residual projections then use
        ``1/sqrt(2 n_layers)`` instead of ``1/sqrt(residual additions found)``.
      strict: raise, before writing anything, if a parameter matches no rule
        (the message lists each one with its module type, shape and role), or
        when the recipe needs roles and some were not found.  Otherwise
        unmatched parameters follow ``unmatched=`` and are listed in
        ``report.unmatched`` (and at the end of ``str(report)``).
      layouts: how custom modules store their weights, for fans:
        ``{module type, tuple of types or module-path glob: kind}``, the kind
        one of :data:`weightinit.initializers.storage.KINDS` (e.g. ``"linear_in_out"`` for
        a dense weight stored ``(in, out)`` and applied as ``x @ W``), or
        ``{param_glob: kind}`` per parameter.  It applies to parameters of 2
        or more dimensions; convolution kinds take the module's ``groups``.  A
        module may declare the same with a ``weightinit_layout`` attribute
        (``layouts=`` wins).  Hugging Face's ``Conv1D`` (a class named
        ``Conv1D`` with ``nf`` and a weight of shape ``(nx, nf)``) is
        recognized as ``"linear_in_out"`` without importing transformers.
      example_inputs: a small batch for the recorded forward that finds roles
        (a tensor, a tuple of arguments, a dict of keyword arguments, or
        ``(args, kwargs)``); None makes one for Hugging Face, timm and
        torchvision models.  Roles are looked for only when a rule needs them;
        the forward runs once, on the parameters' device (the meta device
        computes shapes only).  See :mod:`weightinit.torch.tracing`.
      unmatched: what happens to a parameter no rule matches. ``"own_init"``
        (default): its module's own init, run with torch's RNG seeded from
        the parameter's stream (the module's ``reset_parameters``, else a
        Hugging Face model's ``_init_weights(module)``, else the nearest
        ancestor's ``init_weights()``, as timm and torchtitan define), run
        with every other parameter replaced by a meta stand-in, so it writes
        (and costs) only the parameters that need it
        (:mod:`weightinit.torch.model_init.own`); a parameter with none is
        refused (an error naming it, before anything is written). ``"keep"``: left as it is. ``"error"``: like ``strict``.
        After ``meta`` -> ``to_empty`` a kept parameter holds uninitialized memory.
      rules: the name of ``recipe`` in weightinit 0.1 (deprecated; a DeprecationWarning names ``recipe=``).

    >>> import torch, weightinit.torch as wt
    >>> with torch.device("meta"):
    ...     net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.LayerNorm(8))
    >>> p = wt.plan(net, "keras", seed=0)
    >>> [(e.path, e.record.rule) for e in p.params][:2]
    [('0.weight', 'keras: glorot_uniform'), ('0.bias', 'keras: bias zeros')]
    """
    if not isinstance(module, nn.Module):
        raise InitializerTypeError(f"`module` must be a torch.nn.Module; received {type(module).__name__}.")
    if rules is not None:
        if recipe is not None:
            raise InitializerTypeError("Pass `recipe=` only; `rules=` is its deprecated name, and both were given.")
        warnings.warn(
            "initialize(rules=...) was renamed in weightinit 0.2 and will be removed in 0.3; use recipe=...",
            DeprecationWarning,
            stacklevel=2,
        )
        recipe = rules
    if unmatched not in ("own_init", "keep", "error"):
        raise InitializerValueError(
            f"`unmatched` must be 'own_init', 'keep' or 'error'; received unmatched={unmatched!r}."
        )
    root_seed = draw_seed(generator) if seed is None else seed
    root = resolve_stream(root_seed)
    rule_list = expand(recipe)
    ties_restored = _restore_ties(module)
    modules = dict(module.named_modules(remove_duplicate=False))
    parents: dict[int, nn.Module] = {}
    for m in modules.values():
        for _, child in m.named_children():
            parents.setdefault(id(child), m)

    # Group aliases of tied parameters.
    groups: dict[int, list[tuple[str, nn.Module, str]]] = {}
    order: list[int] = []
    for path, m in modules.items():
        for pname, p in m.named_parameters(recurse=False):
            full = f"{path}.{pname}" if path else pname
            if id(p) not in groups:
                groups[id(p)] = []
                order.append(id(p))
            if all(full != a[0] for a in groups[id(p)]):
                groups[id(p)].append((full, m, pname))

    needs_roles = residual_projections is not None or any(r.needs_roles for r in rule_list)
    roles = _find_roles(module, residual_projections, example_inputs) if needs_roles else _Roles()
    n_res = 2 * int(n_layers) if n_layers is not None else roles.n_residual
    res_modules = set(roles.projections)
    layers = {layer_index(p) for p in res_modules} - {None}
    n_blocks = int(n_layers) if n_layers is not None else (n_res // 2 if n_res >= 2 else len(layers))

    report = InitReport(
        seed=int(root_seed) if isinstance(root_seed, numbers.Integral) else None,
        residual_projections=sorted(res_modules),
        n_residual=n_res,
        ties_restored=ties_restored,
        roles_method=roles.method,
        module_roles=dict(roles.module_roles),
    )

    params = dict(module.named_parameters(remove_duplicate=False))
    layout_rules = _layout_rules(layouts)
    planned: list[tuple[ParamInfo, torch.Tensor, str, Any, ParamRecord]] = []
    unmatched_infos: list[ParamInfo] = []
    for pid in order:
        aliases = groups[pid]
        k = canonical_alias([(a[0], a[1]) for a in aliases])
        path, m, pname = aliases[k]
        alias_paths = (path,) + tuple(sorted(a[0] for a in aliases if a[0] != path))
        p = params[path]
        module_path = path.rsplit(".", 1)[0] if "." in path else ""
        declared = _layout_override(m, module_path, pname, tuple(p.shape), layout_rules)
        if declared is not None:
            kind, role, sibling = declared, _ROLE_OF_KIND.get(declared, "weight"), None
            n_groups = getattr(m, "groups", 1)
            kw = (
                {"groups": n_groups}
                if declared in ("conv", "depthwise", "conv_transpose") and isinstance(n_groups, int)
                else {}
            )
        else:
            kind, role, kw, sibling = _classify(m, pname, tuple(p.shape))
        weight_shape = None
        if sibling is not None and isinstance(getattr(m, sibling, None), torch.Tensor):
            weight_shape = tuple(getattr(m, sibling).shape)
        try:
            layout = torch_layout(tuple(p.shape), kind, **kw)
        except InitializerValueError:
            if declared is not None:
                raise
            kind, layout = "generic", torch_layout(tuple(p.shape), "generic")
        info = ParamInfo(
            path=path,
            name=pname,
            module=m,
            module_path=module_path,
            parent=parents.get(id(m)),
            kind=kind,
            role=role,
            layout=layout,
            weight_shape=weight_shape,
            residual=module_path in res_modules,
            n_residual=n_res,
            aliases=alias_paths,
            module_role=roles.module_roles.get(module_path),
            layer=layer_index(module_path),
            n_layers=n_blocks,
            model=module,
        )
        if isinstance(m, nn.MultiheadAttention) and info.module_role == "attn_qkv" and len(p.shape) >= 2:
            info.module_role = _MHA_SEPARATE.get(pname, info.module_role)  # q/k/v_proj_weight (kdim/vdim != E)
        blocks = _mha_blocks(info) if kind == "mha_in_proj" and info.module_role == "attn_qkv" else None
        rule = next((r for r in rule_list if r.match(info)), None) if blocks is None else None
        rec = ParamRecord(
            path,
            tuple(p.shape),
            str(p.dtype).replace("torch.", ""),
            kind,
            role,
            layout.fan_in,
            layout.fan_out,
            None,
            None,
            alias_paths,
            info.residual,
            type(m).__name__,
        )
        report.records[path] = rec
        if len(alias_paths) > 1:
            report.tied[path] = list(alias_paths[1:])
        if needs_roles and roles.unknown(path, module_path) and len(p.shape) >= 2:
            report.roles_unknown.append(path)
        if blocks is not None:
            per_block = _plan_blocks(blocks, rule_list)
            if per_block is not None:
                op, payload, rec.rule, rec.initializer = per_block
                planned.append((info, p, op, payload, rec))
                continue
        if rule is None:
            report.unmatched.append(path)
            unmatched_infos.append(info)
            continue
        op, payload, label = _resolve_value(rule.init, info)  # errors surface before anything is written
        if info.role == "embedding" and getattr(m, "padding_idx", None) is not None and op != "skip":
            label += f"; row {m.padding_idx} (padding_idx) zeroed"
        rec.rule, rec.initializer = rule.label, label
        planned.append((info, p, op, payload, rec))

    if (strict or unmatched == "error") and report.unmatched:
        details = "\n".join(
            f"  {r.path}: {r.module_type}, shape {tuple(r.shape)}, role {r.role!r}, kind {r.kind!r}"
            for r in (report.records[u] for u in report.unmatched)
        )
        raise InitializerValueError(
            f"No rule matched {len(report.unmatched)} parameter(s): {report.unmatched}. Nothing was "
            f'initialized.\n{details}\nAdd rules for them (e.g. ("{report.unmatched[0]}", initializer), '
            "'role:<role>' or a module type), 'skip' them explicitly, or pass strict=False."
        )
    if strict and report.roles_unknown:
        raise InitializerValueError(
            f"The recipe needs the roles of layers (residual projections, attention, MLP, head), and "
            f"{len(report.roles_unknown)} parameter(s) were not seen by role finding "
            f"({roles.why or 'the forward pass did not read them'}): {report.roles_unknown}. Nothing was "
            "initialized. Pass example_inputs= (a batch the model accepts), residual_projections=[...], or "
            "strict=False."
        )
    own_inits: dict[int, tuple[Any, str, str, list]] = {}
    path_of = {id(m): p for p, m in module.named_modules()}
    if unmatched == "own_init" and unmatched_infos:
        refused = []
        for info in unmatched_infos:
            found = find_own_init(module, info.module, parents)
            if found is None:
                refused.append(info)
                continue
            owner, label, fn = found
            own_inits.setdefault(id(owner), (fn, path_of[id(owner)], label, []))[3].append(info.path)
            rec = report.records[info.path]
            rec.rule, rec.initializer = "own init", label
            report.own_init[info.path] = label
        if refused:
            details = "\n".join(
                f"  {i.path}: {type(i.module).__name__}, shape {tuple(i.shape)}, role {i.role!r}" for i in refused
            )
            raise InitializerValueError(
                f"No rule matched {len(refused)} parameter(s) and their modules define no init of their own "
                f"(reset_parameters, _init_weights, init_weights): {[i.path for i in refused]}. Nothing was "
                f'initialized.\n{details}\nAdd rules for them (e.g. ("{refused[0].path}", initializer)), '
                "'skip' them explicitly, or pass unmatched='keep' to leave them as they are."
            )
    owns = [
        OwnInit(fn, owner_path, root.child("own_init:" + owner_path), tuple(paths), label)
        for fn, owner_path, label, paths in own_inits.values()
    ]
    info_of = {i.path: i for i in unmatched_infos}
    own_groups: list[tuple[OwnInit, dict]] = [(o, {}) for o in owns]
    return InitPlan(
        report,
        [ParamPlan(i, p, op, pl, rec, root.child(i.path)) for i, p, op, pl, rec in planned],
        owns,
        plan_buffers(module, parents, root),
        [OwnInitParam(info_of[q], params[q], o, report.records[q], _group=g) for o, g in own_groups for q in o.paths],
    )


_MHA_SEPARATE = {"q_proj_weight": "attn_q", "k_proj_weight": "attn_k", "v_proj_weight": "attn_v"}
_QKV_BLOCKS = ("attn_q", "attn_k", "attn_v")


def _mha_blocks(info: ParamInfo) -> list[ParamInfo]:
    """The three row blocks of a MultiheadAttention's fused ``in_proj_weight``, as (E, E_in) linear weights.

    Each block has its role (``attn_q``, ``attn_k``, ``attn_v``) and the fans of one (E, E_in) block, not of
    the fused (3E, E_in) matrix (pytorch/pytorch#166378), so role rules apply block by block.
    """
    block = (info.shape[0] // 3,) + tuple(info.shape[1:])
    return [replace(info, kind="linear", layout=torch_layout(block, "linear"), module_role=r) for r in _QKV_BLOCKS]


def _plan_blocks(blocks: list[ParamInfo], rule_list) -> tuple[str, Any, str, str] | None:
    """(op, payload, rule label, initializer label) of a fused q/k/v weight, or None if a block matches no rule.

    When the three blocks get one elementwise distribution, the fused weight is drawn as one tensor
    (row-region friendly); otherwise each block is generated alone (op ``"blocks"``, block ``b`` from the
    parameter's stream folded with ``b``).
    """
    chosen = []
    for bi in blocks:
        r = next((r for r in rule_list if r.match(bi)), None)
        if r is None:
            return None
        chosen.append((bi, r, *_resolve_value(r.init, bi)))
    rules = {r.label for _, r, *_ in chosen}
    rule_label = (
        next(iter(rules)) if len(rules) == 1 else "; ".join(f"{bi.module_role}: {r.label}" for bi, r, *_ in chosen)
    )
    first = chosen[0]
    if all(c[2] == "dist" and c[3] == first[3] for c in chosen):
        return "dist", first[3], rule_label, first[4]
    labels = {c[4] for c in chosen}
    init_label = next(iter(labels)) if len(labels) == 1 else "; ".join(f"{c[0].module_role}: {c[4]}" for c in chosen)
    return (
        "blocks",
        [(op, payload, bi) for bi, _, op, payload, _ in chosen],
        rule_label,
        init_label + " (per q/k/v block)",
    )


def _apply_blocks(tensor: torch.Tensor, blocks: list, stream: Stream) -> None:
    """Generate each row block alone (block ``b`` from ``stream.fold_in(b)``) and write the fused tensor once."""
    n = tensor.shape[0] // len(blocks)
    direct = not _is_dtensor(tensor) and tensor.is_contiguous()
    full = tensor if direct else torch.empty(tuple(tensor.shape), dtype=tensor.dtype)
    for b, (op, payload, bi) in enumerate(blocks):
        _apply(op, payload, full[b * n : (b + 1) * n], bi, stream.fold_in(b))
    if not direct:
        write_array(tensor, tensor_to_numpy(full))


def _no_buffer_init(paths: list[str]) -> str:
    return (
        f"No code computes {len(paths)} buffer(s) of the model: {paths} (no reset_running_stats, "
        "init_non_persistent_buffers, Hugging Face _init_weights or reset_parameters writes them), so after "
        "meta -> to_empty they hold uninitialized memory. Set them yourself after initialize, or pass "
        "reset_buffers=False if they already hold their values."
    )


def initialize(
    module: nn.Module,
    recipe=None,
    *,
    seed=None,
    generator: torch.Generator | None = None,
    residual_projections=None,
    n_layers: int | None = None,
    reset_buffers: bool = True,
    strict: bool = False,
    layouts=None,
    example_inputs=None,
    unmatched: Literal["own_init", "keep", "error"] = "own_init",
    rules=None,
) -> InitReport:
    """Initialize every parameter of ``module`` in place by rules, and report what was done.

    It writes what :func:`plan` decides (its arguments are :func:`plan`'s; see
    there for recipes, patterns and initializers).  First, with
    ``reset_buffers`` (the default), it recomputes the buffers, which hold
    uninitialized memory after ``meta`` -> ``to_empty``: normalization running
    statistics, and whatever the model's own code computes
    (``init_non_persistent_buffers`` as timm defines, a Hugging Face model's
    ``_init_weights``: rotary ``inv_freq``, ``position_ids``;
    :mod:`weightinit.torch.model_init.own`).  A buffer no code computes is
    left as it is with a warning (``report.buffers_unknown``; ``strict=True``
    refuses it before any parameter is written).  Each parameter's values come from
    ``Stream(seed).child(path)``, so they depend on the seed, the path, the
    matching rule and the shape only.

    >>> import torch, weightinit.torch as wt
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.LayerNorm(8))
    >>> report = wt.initialize(net, "keras", seed=0)
    >>> report["0.bias"].rule, float(net[1].weight.detach().sum())
    ('keras: bias zeros', 8.0)
    """
    if rules is not None and recipe is None:
        warnings.warn(
            "initialize(rules=...) was renamed in weightinit 0.2 and will be removed in 0.3; use recipe=...",
            DeprecationWarning,
            stacklevel=2,
        )
        recipe, rules = rules, None
    planned = plan(
        module,
        recipe,
        seed=seed,
        generator=generator,
        residual_projections=residual_projections,
        n_layers=n_layers,
        strict=strict,
        layouts=layouts,
        example_inputs=example_inputs,
        unmatched=unmatched,
        rules=rules,
    )
    report = planned.report
    if reset_buffers:  # first: a buffer nothing computes is refused (strict) before any parameter is written
        orphans = [p for b in planned.buffers if not b.candidates for p in b.paths()]
        if strict and orphans:
            raise InitializerValueError(_no_buffer_init(orphans) + " Nothing was initialized.")
        done, unknown = restore_buffers(module, planned.buffers)
        report.buffers_reset, report.buffer_init, report.buffers_unknown = list(done), done, unknown
        if unknown:
            if strict:
                raise InitializerValueError(_no_buffer_init(unknown) + " No parameter was initialized.")
            warnings.warn(_no_buffer_init(unknown), UserWarning, stacklevel=2)
    # Modules' own inits (each writes only the parameters no rule matched), then the rules.
    for own in planned.own_inits:
        run_own_init(own, module)
    for entry in planned.params:
        entry.apply()
    return report


@dataclass
class _Roles:
    projections: list = field(default_factory=list)
    n_residual: int = 0
    module_roles: dict = field(default_factory=dict)
    seen: set | None = None  # parameter paths the recorded forward read (None: not recorded)
    traced: list | None = None  # module prefixes fx traced (None: not by fx)
    method: str = ""
    why: str = ""

    def unknown(self, path: str, module_path: str) -> bool:
        if self.method in ("explicit", "marked"):
            return False
        if self.seen is not None:
            return path not in self.seen
        if self.traced is not None:
            return not any(t == "" or module_path == t or module_path.startswith(t + ".") for t in self.traced)
        return True


def _find_roles(module: nn.Module, explicit, example_inputs) -> _Roles:
    """Residual projections and module roles: explicit, marked, a recorded forward, else torch.fx."""
    if explicit is not None:
        if isinstance(explicit, str):
            explicit = [explicit]
        names = [n for n, _ in module.named_modules()]
        found = [n for n in names if any(fnmatch.fnmatchcase(n, pat) for pat in explicit)]
        return _Roles(projections=found, n_residual=len(found), method="explicit")
    marked = [n for n, m in module.named_modules() if getattr(m, "weightinit_residual", False)]
    if marked:
        return _Roles(projections=marked, n_residual=len(marked), method="marked")
    forward_error = ""
    if example_inputs is not None or example_inputs_for(module) is not None:
        rec = record_roles(module, example_inputs)
        if rec.method:
            return _Roles(rec.projections, rec.n_residual, dict(rec.roles), set(rec.seen), None, "forward")
        forward_error = rec.error
    info = find_residual_projections(module)
    if info.n_residual == 0 and info.failed:
        warnings.warn(
            f"weightinit could not trace {info.failed[0] or type(module).__name__} with torch.fx"
            + (f" nor run it on an example batch ({forward_error})" if forward_error else "")
            + " and found no residual output projections, so residual scaling is not applied. Pass "
            "`example_inputs=` (a batch the model accepts), `residual_projections=[...]` (module paths or globs) "
            "or set `weightinit_residual = True` on those modules.",
            UserWarning,
            stacklevel=3,
        )
    why = forward_error or ("torch.fx could not trace " + ", ".join(p or "the model" for p in info.failed))
    return _Roles(info.projections, info.n_residual, {}, None, list(info.traced), "fx", why)


def _restore_ties(module: nn.Module) -> list[str]:
    """Re-tie what a Hugging Face model declares tied (``to_empty`` unties ``lm_head`` from the embedding)."""
    expand_keys = getattr(module, "get_expanded_tied_weights_keys", None)
    tie = getattr(module, "tie_weights", None)
    if not callable(expand_keys) or not callable(tie):
        return []
    try:
        keys: dict[str, str] = dict(cast(Any, expand_keys(all_submodels=True)))
    except Exception:
        return []
    untied = []
    for target, source in keys.items():
        try:
            if module.get_parameter(target) is not module.get_parameter(source):
                untied.append((target, source))
        except AttributeError:
            continue
    if not untied:
        return []
    tie()
    return [f"{t} -> {s}" for t, s in untied if module.get_parameter(t) is module.get_parameter(s)]
