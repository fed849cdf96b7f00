"""The PyTorch side of :mod:`weightinit.artifact`: value sources of planned parameters, tensors, shards.

Imported only when a model or a torch tensor is involved (the core never imports torch).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

import torch
from weightinit.artifact.fingerprint import ValueSource, rows_source
from weightinit.common.dtypes import bfloat16, standardize_dtype
from weightinit.common.errors import InitializerValueError
from weightinit.random.sampling import sample
from weightinit.torch.dtensor import is_dtensor, local_indices

__all__ = [
    "model_fingerprint",
    "plan_source",
    "tensor_source",
    "to_numpy",
    "numpy_dtype_of",
    "plan_model",
    "shard_indices",
    "BufferEntry",
    "artifact_entries",
]


def numpy_dtype_of(dtype: torch.dtype) -> np.dtype:
    """The NumPy dtype holding a torch dtype's bytes (bfloat16: ml_dtypes'; integers and bool as NumPy's)."""
    return standardize_dtype(str(dtype).replace("torch.", ""))


def to_numpy(t: torch.Tensor) -> np.ndarray:
    """A CPU tensor's values as a NumPy array (no copy when contiguous); bfloat16 through its bits."""
    t = t.detach()
    if t.device.type != "cpu":
        t = t.cpu()
    t = t.contiguous()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().view(bfloat16)
    return t.numpy()


def plan_source(entry) -> ValueSource:
    """The values :func:`weightinit.torch.initialize` writes into one planned parameter, by regions of rows.

    Elementwise distributions and constants are generated a block of rows at a
    time (the rows' values alone); other initializers (orthogonal, identity,
    torch-style functions, complex parameters, per-block q/k/v rules, and a
    module's own init for a parameter no rule matched) are generated whole
    once, on the CPU, through the plan's own ``apply``.
    """
    shape, tdt = tuple(entry.shape), entry.dtype
    dt = numpy_dtype_of(tdt)
    pad = entry.padding_row
    src = entry.elementwise() if (len(shape) > 0 and not tdt.is_complex) else None
    if entry.op == "const" and len(shape) > 0:

        def rows(r0: int, r1: int) -> np.ndarray:
            return to_numpy(torch.full((r1 - r0,) + shape[1:], entry.payload, dtype=tdt))

        return rows_source(shape, dt, rows)
    if src is not None:
        dist, stream = src

        def rows(r0: int, r1: int) -> np.ndarray:
            block = sample(dist, stream, shape, dt, (slice(r0, r1),))
            if pad is not None and r0 <= pad < r1:
                block[pad - r0] = 0
            return block

        return rows_source(shape, dt, rows)
    full: dict = {}

    def whole(r0: int, r1: int) -> np.ndarray:
        if "x" not in full:
            t = torch.empty(shape, dtype=tdt)
            entry.apply(t)
            full["x"] = to_numpy(t)
        x = full["x"]
        return x[r0:r1] if x.ndim else x.reshape(1)

    return rows_source(shape, dt, whole)


def tensor_source(t: torch.Tensor) -> ValueSource:
    """A source reading a (local, CPU) torch tensor's values."""
    arr = to_numpy(t)
    flat = arr.reshape(-1)
    return ValueSource(arr.shape, arr.dtype, lambda a, b: flat[a:b])


def shard_indices(t) -> list[np.ndarray] | None:
    """The global indices per dimension the calling rank's shard of a DTensor holds (``[]`` when it holds none)."""
    if not is_dtensor(t):
        return None
    _, idx = local_indices(t)
    return [np.empty(0, dtype=np.int64)] * t.dim() if idx is None else idx


@dataclass
class BufferEntry:
    """A persistent buffer as the artifact functions see it: the value the model's own code gives it.

    It offers a planned parameter's interface (``op`` is ``"buffer"``), so fingerprint, verify and
    materialize treat it as one.  Its values are those :func:`weightinit.torch.initialize` restores
    (``reset_buffers=True``): the module's buffer code (``reset_running_stats``, ``init_non_persistent_buffers``,
    a Hugging Face ``_init_weights``, ``reset_parameters``; :mod:`weightinit.torch.model_init.own`) run
    apart from the model on fresh CPU tensors, every other tensor a meta stand-in, with torch's RNG seeded
    from ``Stream(seed).child("buffers:" + module_path)``.  One module's buffers are held at a time.

    Attributes:
      path: the canonical path (a buffer registered in several modules: the first).
      aliases: every path it has in the state dict.
      tensor: the buffer as the model holds it (on meta for a meta-device build).
      init: the :class:`~weightinit.torch.model_init.own.BufferInit` of its module.
      model: the model.
      label: the code that computes it (``"BatchNorm2d.reset_running_stats"``).
    """

    path: str
    aliases: tuple
    tensor: torch.Tensor
    init: object
    model: object
    label: str
    op: str = "buffer"
    _group: dict = field(default_factory=dict, repr=False)  # values computed, not yet taken (shared by the module)

    @property
    def shape(self) -> tuple:
        return tuple(self.tensor.shape)

    @property
    def dtype(self) -> torch.dtype:
        return self.tensor.dtype

    @property
    def payload(self) -> str:
        return self.label

    @property
    def padding_row(self) -> None:
        return None

    def elementwise(self) -> None:
        """None: buffer values come from the model's code, generated whole (one module's worth)."""
        return None

    def apply(self, tensor: torch.Tensor) -> None:
        """Write the buffer's values into ``tensor`` (one run of its module's buffer code gives the module's)."""
        from weightinit.torch.model_init.own import buffer_values

        if tensor.is_meta:
            return
        if self.path not in self._group:
            self._group.clear()
            self._group.update(buffer_values(self.init, self.model)[0])  # pyright: ignore[reportArgumentType]
        with torch.no_grad():
            tensor.copy_(self._group.pop(self.path))


def _buffer_entries(plan, model) -> list[BufferEntry]:
    """A :class:`BufferEntry` per persistent buffer (shared ones once); refuses the ones no code computes."""
    from weightinit.torch.model_init.own import buffer_values

    paths: dict[int, list[str]] = {}
    tensors: dict[int, torch.Tensor] = {}
    for mpath, m in model.named_modules(remove_duplicate=False):
        for name, b in m._buffers.items():
            if b is None or name in m._non_persistent_buffers_set:
                continue
            full = f"{mpath}.{name}" if mpath else name
            paths.setdefault(id(b), [])
            if full not in paths[id(b)]:
                paths[id(b)].append(full)
            tensors[id(b)] = b
    if not paths:
        return []
    canonical = {ps[0]: k for k, ps in paths.items()}
    out: list[BufferEntry] = []
    unknown: list[str] = []
    for bi in plan.buffers:
        wanted = [p for p in bi.paths() if p in canonical]
        if not wanted:
            continue
        done = buffer_values(bi, model)[1] if bi.candidates else {}  # run once to see what it computes
        group: dict = {}
        for p in wanted:
            if p not in done:
                unknown.append(p)
                continue
            k = canonical[p]
            out.append(BufferEntry(p, tuple(paths[k]), tensors[k], bi, model, done[p], _group=group))
    if unknown:
        raise InitializerValueError(
            f"the model has {len(unknown)} persistent buffer(s) no code of the model computes: {unknown[:8]} (no "
            "reset_running_stats, init_non_persistent_buffers, Hugging Face _init_weights or reset_parameters "
            "writes them), so an artifact would hold no defined value for them. Give their module a "
            "reset_parameters() that sets them, register them with persistent=False if the model computes them "
            "itself, or initialize the model in memory. Nothing was written."
        )
    return out


def artifact_entries(plan, model) -> list:
    """What an artifact holds: the plan's entries not skipped, then a :class:`BufferEntry` per persistent buffer.

    Ordered as the model's state dict orders them (module by module, parameters before buffers).
    """
    entries = [e for e in plan.entries() if e.op != "skip"] + _buffer_entries(plan, model)
    order: dict[str, int] = {}
    for mpath, m in model.named_modules(remove_duplicate=False):
        for name in (*m._parameters, *m._buffers):
            order.setdefault(f"{mpath}.{name}" if mpath else name, len(order))
    return sorted(entries, key=lambda e: order.get(e.path, len(order)))


def plan_model(model, recipe, seed, **kwargs):
    """The :func:`weightinit.torch.plan` of ``model``.

    By default ``strict=True``: a parameter no rule matches is an error (the digest is then defined by
    the recipe and the seed alone, in any framework).  With ``strict=False`` such parameters get their
    modules' own init (:class:`weightinit.torch.OwnInitParam`), covered like the others; with
    ``unmatched="keep"`` they would have no value, which is refused.
    """
    from weightinit.torch import plan

    if seed is None:
        raise InitializerValueError(
            "`seed` must be given (an int, e.g. seed=0): an artifact is defined by its recipe and seed; received seed=None."
        )
    kwargs.setdefault("strict", True)
    try:
        planned = plan(model, recipe, seed=seed, **kwargs)
    except InitializerValueError as e:
        if kwargs["strict"] and str(e).startswith("No rule matched"):
            raise InitializerValueError(
                f"{e}\nFor an artifact, strict=False gives them their modules' own init (reset_parameters, "
                "_init_weights, init_weights; values from torch's seeded RNG, reproducible with the same torch "
                "version), which fingerprint, verify and materialize then cover."
            ) from None
        raise
    kept = [p for p in planned.report.unmatched if p not in planned.report.own_init]
    if kept:
        raise InitializerValueError(
            f"No rule matched {kept} and unmatched='keep' leaves them as they are, so the artifact would have no "
            "value for them. Give them rules, or pass unmatched='own_init' (their modules' own init)."
        )
    return planned


def model_fingerprint(model, recipe, seed, **kwargs):
    """:func:`weightinit.artifact.fingerprint` of a model (see there)."""
    from weightinit.artifact.fingerprint import combine, model_digest, shard_digest, tensor_digest
    from weightinit.artifact.models import build_meta

    module = build_meta(model)
    plan = plan_model(module, recipe, seed, **kwargs)
    entries = artifact_entries(plan, module)
    sharded = [e for e in entries if is_dtensor(e.tensor)]
    digests = {e.path: tensor_digest(plan_source(e)) for e in entries if not is_dtensor(e.tensor)}
    if sharded:
        import torch.distributed as dist

        mine = [shard_digest(plan_source(e), shard_indices(e.tensor)) for e in sharded]
        gathered: list = [None] * dist.get_world_size()
        dist.all_gather_object(gathered, mine)
        for i, e in enumerate(sharded):
            digests[e.path] = combine(rank_parts[i] for rank_parts in gathered)
    return model_digest(digests)


def _as_range(ix: np.ndarray) -> slice | None:
    if ix.size == 0:
        return slice(0, 0)
    if ix.size == 1 or (np.all(np.diff(ix) == ix[1] - ix[0]) and ix[1] > ix[0]):
        step = int(ix[1] - ix[0]) if ix.size > 1 else 1
        return slice(int(ix[0]), int(ix[-1]) + 1, step)
    return None


def expected_local(entry, idx: Sequence[np.ndarray]) -> np.ndarray:
    """The values a shard holding global indices ``idx`` (per dimension) gets from the plan.

    Elementwise parameters generate exactly the shard (``region=``); the others
    are generated whole and indexed.
    """
    shape, tdt = tuple(entry.shape), entry.dtype
    dt = numpy_dtype_of(tdt)
    src = entry.elementwise() if (len(shape) > 0 and not tdt.is_complex) else None
    region = [_as_range(np.asarray(ix)) for ix in idx]
    local_shape = tuple(len(ix) for ix in idx)
    if entry.op == "const":
        return to_numpy(torch.full(local_shape, entry.payload, dtype=tdt))
    if src is not None and all(r is not None for r in region):
        out = sample(src[0], src[1], shape, dt, tuple(region))
        pad = entry.padding_row
        if pad is not None:
            hit = np.flatnonzero(np.asarray(idx[0]) == pad)
            out[hit] = 0
        return out
    t = torch.empty(shape, dtype=tdt)
    entry.apply(t)
    return to_numpy(t)[np.ix_(*[np.asarray(ix, dtype=np.int64) for ix in idx])]
