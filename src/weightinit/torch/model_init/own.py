"""Modules' own inits: the values of parameters no rule matches, and of buffers.

A parameter no rule matches takes the value its module's own init gives it
(``unmatched="own_init"``): the module's ``reset_parameters``, else a Hugging
Face model's ``_init_weights(module)``, else the nearest ancestor's
``init_weights()`` (timm, torchtitan).  Such an init usually writes more than
the parameters that need it (timm's ``VisionTransformer.init_weights`` sets
every weight of the model), so it runs with every *other* parameter replaced
by a meta-device stand-in: on those, its operations compute shapes only and
draw nothing from torch's RNG.  Its cost is then that of the parameters it is
run for, and their values depend on the seed, the init, the module tree and
which parameters it is run for, never on the values the other parameters hold.  The same run, with fresh
CPU tensors in place of the parameters, gives :mod:`weightinit.artifact` the
values without touching the model (:func:`own_init_values`).

Buffers are not parameters: after ``meta`` -> ``to_empty`` they hold
uninitialized memory, and a checkpoint does not restore the non-persistent
ones (Hugging Face's rotary ``inv_freq``, ``position_ids``, timm's
``relative_position_index``).  :func:`plan_buffers` finds, for each module
holding buffers, the code that computes them, in this order: normalization
layers' ``reset_running_stats``, timm's ``init_non_persistent_buffers``, a
Hugging Face model's ``_init_weights(module)`` (transformers 5 computes rotary
frequencies and position ids there), and the module's ``reset_parameters``.
These run with every parameter replaced by a meta stand-in, so they write
buffers only; the buffers they write are observed (a ``TorchDispatchMode``
watching in-place operations), and any buffer nothing wrote is reported.
The same code, run on fresh CPU tensors apart from the model
(:func:`buffer_values`), gives :mod:`weightinit.artifact` the persistent
buffers' values from a meta-device build.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from torch.utils._python_dispatch import TorchDispatchMode

import torch
from torch import nn
from weightinit.random.streams import Stream

__all__ = [
    "OwnInit",
    "BufferInit",
    "own_init_values",
    "run_own_init",
    "plan_buffers",
    "restore_buffers",
    "buffer_values",
]

_HF_FLAG = "_is_hf_initialized"  # transformers' init functions skip tensors (and modules) flagged as loaded


class OwnInit(NamedTuple):
    """One module's own init, run for the parameters no rule matched.

    Attributes:
      fn: the init (no arguments).
      module_path: the module it belongs to (``""``: the root).
      stream: seeds torch's RNG for the run (``Stream(seed).child("own_init:" + module_path)``).
      paths: the canonical paths of the parameters it is run for.
      label: what ran (``"VisionTransformer.init_weights"``).
    """

    fn: Callable[[], None]
    module_path: str
    stream: Stream
    paths: tuple
    label: str


def chain(m: nn.Module, root: nn.Module, parents: dict) -> list[nn.Module]:
    """``m`` and its ancestors up to ``root``."""
    out = [m]
    while out[-1] is not root and id(out[-1]) in parents:
        out.append(parents[id(out[-1])])
    return out


def _hf_model(m: nn.Module, root: nn.Module, parents: dict) -> nn.Module | None:
    """The nearest Hugging Face model (``_init_weights`` and ``config``) above or at ``m``."""
    for a in chain(m, root, parents):
        if callable(getattr(a, "_init_weights", None)) and hasattr(a, "config"):
            return a
    return None


def find_own_init(root: nn.Module, m: nn.Module, parents: dict):
    """(module whose init runs, label, fn) for a parameter of ``m`` no rule matched, or None."""
    if callable(getattr(m, "reset_parameters", None)):
        return m, f"{type(m).__name__}.reset_parameters", m.reset_parameters
    hf = _hf_model(m, root, parents)
    if hf is not None:
        return m, f"{type(hf).__name__}._init_weights({type(m).__name__})", hf_init(hf, m)
    for a in chain(m, root, parents):
        if callable(getattr(a, "init_weights", None)) and not hasattr(a, "config"):
            return a, f"{type(a).__name__}.init_weights", a.init_weights
    return None


def hf_init(model: nn.Module, m: nn.Module) -> Callable[[], None]:
    """``model._init_weights(m)`` with the "already loaded" flags of ``m`` and its tensors cleared meanwhile."""

    def run() -> None:
        tensors = [t for t in (*m.parameters(recurse=False), *m.buffers(recurse=False)) if getattr(t, _HF_FLAG, False)]
        for t in tensors:
            setattr(t, _HF_FLAG, False)
        was = getattr(m, _HF_FLAG, None)
        if was:
            object.__setattr__(m, _HF_FLAG, False)
        try:
            getattr(model, "_init_weights")(m)  # noqa: B009  (not a declared attribute of nn.Module)
        finally:
            for t in tensors:
                setattr(t, _HF_FLAG, True)
            if was:
                object.__setattr__(m, _HF_FLAG, was)

    return run


def _is_plain(t: torch.Tensor) -> bool:
    return type(t) is torch.Tensor or type(t) is nn.Parameter


def _standable(t: torch.Tensor) -> bool:
    """A tensor :func:`stand_ins` can replace: a plain tensor or a DTensor (stood in by its global shape)."""
    from weightinit.torch.dtensor import is_dtensor

    return _is_plain(t) or is_dtensor(t)


@contextlib.contextmanager
def stand_ins(model: nn.Module, real: dict[int, torch.Tensor], buffers: bool = False) -> Iterator[None]:
    """Within the block, every parameter of ``model`` is a meta stand-in, except ``real[id(parameter)]``.

    Tied parameters stay tied (one stand-in per parameter object).  With
    ``buffers``, buffers are meta stand-ins too.  Everything is put back
    afterwards (the model's own objects, untouched).
    """
    saved: list[tuple[dict, str, Any]] = []
    made: dict[int, torch.Tensor] = {}

    def swap(slots: dict, name: str, t, as_param: bool) -> None:
        new = real.get(id(t))
        if new is None:
            new = made.get(id(t))
            if new is None:
                meta = torch.empty(tuple(t.shape), dtype=t.dtype, device="meta")  # global shape for a DTensor
                new = nn.Parameter(meta, requires_grad=t.requires_grad) if as_param else meta
                made[id(t)] = new
        if new is not t:
            saved.append((slots, name, t))
            slots[name] = new

    try:
        for m in model.modules():
            for name, p in list(m._parameters.items()):
                if p is not None:
                    swap(m._parameters, name, p, True)
            if buffers:
                for name, b in list(m._buffers.items()):
                    if b is not None:
                        swap(m._buffers, name, b, False)
        yield
    finally:
        for slots, name, t in reversed(saved):
            slots[name] = t


def _seeded(fn: Callable[[], None], stream: Stream, devices: list[int]) -> None:
    with torch.random.fork_rng(devices=devices), torch.no_grad():
        torch.manual_seed(stream.to_int() & ((1 << 63) - 1))
        fn()


def _cuda_indices(tensors) -> list[int]:
    return sorted({t.device.index or 0 for t in tensors if t.device.type == "cuda"})


def run_own_init(own: OwnInit, model: nn.Module) -> None:
    """Run ``own`` in place on ``model``, writing only the parameters of ``own.paths``.

    Every other parameter (and every buffer) is a meta stand-in meanwhile, so
    the init computes shapes only for them and draws nothing from torch's
    RNG for them.  Sharded (DTensor) parameters get the single-process values:
    the init runs on fresh full-size tensors for the parameters of ``own.paths``
    (:func:`own_init_values`, on their device), and each rank keeps its shards,
    so the gathered tensors equal the unsharded run's bit for bit (the memory is
    one module's parameters at full size, as for the unsharded run).  An init
    that fails on stand-ins (one that reads another tensor's values), or a
    model holding other tensor subclasses, runs on the model as it is (writing
    what the init writes; the rules then overwrite theirs).
    """
    from weightinit.common.errors import InitializerValueError
    from weightinit.torch.place import tensor_to_numpy, write_array

    params = dict(model.named_parameters(remove_duplicate=False))
    mine = [params[p] for p in own.paths]
    if all(p.is_meta for p in mine):
        return
    devices = _cuda_indices(mine)
    if all(_is_plain(p) for p in params.values()):
        try:
            with stand_ins(model, {id(p): p for p in mine}, buffers=True):
                _seeded(own.fn, own.stream, devices)
            return
        except Exception:
            pass  # e.g. the init copies one tensor's values into another: run it on the model itself
    elif all(_standable(p) for p in params.values()):
        device = next(p.device for p in mine if not p.is_meta)
        try:
            values = own_init_values(own, model, device=device)
        except InitializerValueError:
            values = None  # it reads another tensor's values: run it on the model itself
        if values is not None:
            with torch.no_grad():
                for path, p in zip(own.paths, mine):
                    if not p.is_meta:
                        write_array(p, tensor_to_numpy(values[path]))
            return
    _seeded(own.fn, own.stream, devices)


def own_init_values(own: OwnInit, model: nn.Module, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """The values :func:`run_own_init` gives the parameters of ``own.paths``, in fresh tensors on ``device``.

    ``model`` may live on the meta device and is not modified: the init runs
    with fresh tensors in place of those parameters and meta stand-ins for
    everything else, so only those parameters' worth of memory is used.
    Raises :class:`~weightinit.common.errors.InitializerValueError` when the
    init cannot run that way (it reads another tensor's values).
    """
    from weightinit.common.errors import InitializerValueError

    params = dict(model.named_parameters(remove_duplicate=False))
    out: dict[str, torch.Tensor] = {}
    real: dict[int, torch.Tensor] = {}
    for path in own.paths:
        p = params[path]
        t = nn.Parameter(torch.empty(p.shape, dtype=p.dtype, device=device), requires_grad=p.requires_grad)
        real[id(p)] = t
        out[path] = t
    try:
        with stand_ins(model, real, buffers=True):
            _seeded(own.fn, own.stream, _cuda_indices(out.values()))
    except Exception as e:
        raise InitializerValueError(
            f"{own.label} (the own init of {list(own.paths)}, which no rule matches) cannot be run apart from the "
            f"rest of the model ({type(e).__name__}: {e}). Give those parameters rules (or pass unmatched='error' "
            "to list them)."
        ) from None
    return {k: v.detach() for k, v in out.items()}


# ---------------------------------------------------------------------------------------------- buffers


class _Writes(TorchDispatchMode):
    """Records the storages that in-place (and ``out=``) operations write."""

    def __init__(self) -> None:
        super().__init__()
        self.storages: set[int] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        for i, a in enumerate(func._schema.arguments):
            if a.alias_info is None or not a.alias_info.is_write:
                continue
            v = kwargs.get(a.name, args[i] if i < len(args) else None)
            for t in v if isinstance(v, (list, tuple)) else (v,):
                if isinstance(t, torch.Tensor) and not t.is_meta:
                    self.storages.add(t.untyped_storage().data_ptr())
        return func(*args, **kwargs)


@dataclass
class BufferInit:
    """The code that computes the buffers of one module, tried in order (see the module doc).

    Attributes:
      module_path: the module holding the buffers.
      buffers: their names in the module.
      candidates: ``(label, fn)`` pairs, tried until every buffer is written.
      stream: seeds torch's RNG while they run (``Stream(seed).child("buffers:" + module_path)``), so a
        buffer drawn at random is reproducible too; None: torch's RNG as it is.
    """

    module_path: str
    buffers: list
    candidates: list = field(default_factory=list)
    stream: Stream | None = None

    def paths(self) -> list[str]:
        return [f"{self.module_path}.{b}" if self.module_path else b for b in self.buffers]


def plan_buffers(model: nn.Module, parents: dict, root: Stream | None = None) -> list[BufferInit]:
    """One :class:`BufferInit` per module holding buffers (its candidates may be empty)."""
    out = []
    for path, m in model.named_modules():
        names = [n for n, b in m._buffers.items() if b is not None]
        if not names:
            continue
        cands: list[tuple[str, Callable[[], Any]]] = []
        if isinstance(m, nn.modules.batchnorm._NormBase) and m.track_running_stats:
            cands.append((f"{type(m).__name__}.reset_running_stats", m.reset_running_stats))
        fn = getattr(m, "init_non_persistent_buffers", None)
        if callable(fn):
            cands.append((f"{type(m).__name__}.init_non_persistent_buffers", fn))
        hf = _hf_model(m, model, parents)
        if hf is not None:
            cands.append((f"{type(hf).__name__}._init_weights({type(m).__name__})", hf_init(hf, m)))
        fn = getattr(m, "reset_parameters", None)
        if callable(fn):
            cands.append((f"{type(m).__name__}.reset_parameters", fn))
        stream = root.child("buffers:" + path) if root is not None else None
        out.append(BufferInit(path, names, cands, stream))
    return out


def _run_buffer_code(m: nn.Module, bi: BufferInit, todo: dict[str, torch.Tensor]) -> dict[str, str]:
    """Run ``bi``'s candidates on ``m`` until every tensor of ``todo`` (path -> buffer) is written.

    The one owner of the order and the rules (:func:`restore_buffers` runs it on the model, and
    :func:`buffer_values` on fresh tensors apart from it, so both give the same bits).  Candidates
    other than ``reset_running_stats`` and ``init_non_persistent_buffers`` run with ``m``'s parameters
    stood in by meta tensors, so they write buffers only.  Returns ``{path: label}`` of the buffers
    written (removed from ``todo``).
    """
    done: dict[str, str] = {}
    devices = _cuda_indices(todo.values())
    for label, fn in bi.candidates:
        if not todo:
            break
        ptrs = {path: b.untyped_storage().data_ptr() for path, b in todo.items()}
        rec = _Writes()
        buffers_only = label.endswith((".reset_running_stats", ".init_non_persistent_buffers"))
        if not buffers_only and not all(_standable(p) for p in m.parameters()):
            continue
        try:
            with (
                contextlib.nullcontext() if buffers_only else stand_ins(m, {}),
                torch.random.fork_rng(devices=devices, enabled=bi.stream is not None),
                torch.no_grad(),
                rec,
            ):
                if bi.stream is not None:
                    torch.manual_seed(bi.stream.to_int() & ((1 << 63) - 1))
                fn()
        except Exception:
            continue  # this candidate cannot compute them apart from the parameters: try the next
        for path in [p for p, ptr in ptrs.items() if ptr in rec.storages]:
            done[path] = label
            del todo[path]
    return done


def restore_buffers(model: nn.Module, inits: list[BufferInit]) -> tuple[dict[str, str], list[str]]:
    """Run each module's buffer code (parameters stood in by meta tensors, so only buffers are written).

    Returns ``({buffer path: what computed it}, [buffer paths nothing computed])``; buffers on the
    meta device are left out of both.
    """
    done: dict[str, str] = {}
    unknown: list[str] = []
    for bi in inits:
        m = model.get_submodule(bi.module_path)
        todo = {}
        for name, path in zip(bi.buffers, bi.paths()):
            b = m._buffers.get(name)
            if b is None or b.is_meta:
                continue
            if b.numel() == 0:
                done[path] = "empty"
                continue
            todo[path] = b
        done.update(_run_buffer_code(m, bi, todo))
        unknown.extend(todo)
    return done, unknown


def buffer_values(
    bi: BufferInit, model: nn.Module, device: str | torch.device = "cpu"
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The values :func:`restore_buffers` gives the buffers of ``bi``'s module, in fresh tensors on ``device``.

    ``model`` may live on the meta device and is not modified: the buffer code (the module's own
    methods, or a Hugging Face ``_init_weights`` of this module) runs with fresh tensors in place of
    this module's buffers and meta stand-ins for every other tensor of the module and its children,
    so one module's buffers are held (standing in the module only keeps this linear in the model's
    size: ResNet-152's 155 BatchNorms would otherwise swap the whole model 155 times).  Returns ``({buffer path: values}, {buffer path: what computed it})``;
    a buffer nothing computes has no entry in either (the second holds ``"empty"`` for empty ones).
    """
    m = model.get_submodule(bi.module_path)
    fresh: dict[int, torch.Tensor] = {}
    values: dict[str, torch.Tensor] = {}
    for name, path in zip(bi.buffers, bi.paths()):
        b = m._buffers.get(name)
        if b is None:
            continue
        t = fresh.get(id(b))
        if t is None:
            t = fresh[id(b)] = torch.empty(tuple(b.shape), dtype=b.dtype, device=device)
        values[path] = t
    todo = {p: t for p, t in values.items() if t.numel() > 0}
    with stand_ins(m, fresh, buffers=True):
        done = _run_buffer_code(m, bi, todo)
    done.update({p: "empty" for p, t in values.items() if t.numel() == 0})
    return {p: values[p] for p in done}, done
