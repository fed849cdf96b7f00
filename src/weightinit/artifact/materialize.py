"""Write an initialized checkpoint without holding the model: plan on meta, generate and write tensor by tensor.

:func:`materialize` plans the model (built on the meta device) with
:func:`weightinit.torch.plan`, then generates each parameter's values a block
of :data:`BLOCK` elements at a time and writes them where they belong.  The
persistent buffers (BatchNorm statistics, ...) are written too, with the values
the model's own code gives them (:class:`weightinit.artifact._torch.BufferEntry`),
so the checkpoint loads with ``load_state_dict(strict=True)``:

* ``"safetensors"``: Hugging Face's layout (``model.safetensors``, or
  ``model-0000i-of-0000K.safetensors`` files and
  ``model.safetensors.index.json``), plus ``config.json`` for built-in model
  specs and ``weightinit.json`` (recipe, seed, digests).  Every file's header
  is known before any value exists, so files are allocated at their final
  size and each process writes the tensors it owns at their offsets: N
  processes write the same bytes as one.
* ``"dcp"``: a PyTorch Distributed Checkpoint (``torch.distributed.checkpoint``),
  one file per tensor, each tensor generated only when DCP asks for it; it
  loads into FSDP2 (DTensor) models at any world size.

Everything is written under ``OUT.partial`` and renamed to ``OUT`` once
complete, so a killed run leaves nothing that looks like a checkpoint; an
existing ``OUT`` is replaced only with ``force=True``.  Run it on every rank
of an initialized ``torch.distributed`` process group to share the work.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from weightinit.artifact.errors import CheckpointError
from weightinit.artifact.fingerprint import CHUNK, _finish, _leaf, model_digest
from weightinit.common.errors import InitializerValueError

__all__ = ["materialize", "MaterializeResult", "BLOCK"]

BLOCK = 64 * CHUNK
"""Elements generated and written per step (the bounded-memory term; a multiple of the digest chunk)."""


@dataclass
class MaterializeResult:
    """What :func:`materialize` wrote: the directory, its files, bytes, parameter values (``n_params``, buffers not
    counted; ``n_tensors`` counts both), seconds and the model digest."""

    out: str
    format: str
    files: list = field(default_factory=list)
    n_params: int = 0
    n_tensors: int = 0
    bytes_written: int = 0
    seconds: float = 0.0
    digest: str | None = None


class Progress:
    """A one-line progress bar on stderr: tensors done, parameters/s and bytes written."""

    def __init__(self, total_params: int, total_bytes: int, enabled: bool) -> None:
        self.total_params, self.total_bytes, self.enabled = total_params, total_bytes, enabled
        self.params = self.bytes = 0
        self.t0 = time.perf_counter()
        self._last = 0.0

    def add(self, params: int, nbytes: int, final: bool = False) -> None:
        self.params += params
        self.bytes += nbytes
        now = time.perf_counter()
        if not self.enabled or (now - self._last < 0.2 and not final):
            return
        self._last = now
        dt = max(now - self.t0, 1e-9)
        frac = self.bytes / self.total_bytes if self.total_bytes else 1.0
        bar = "#" * int(30 * frac)
        sys.stderr.write(
            f"\r[{bar:<30}] {100 * frac:5.1f}%  {_si(self.params)} params  {_si(self.params / dt)} params/s  "
            f"{_si(self.bytes)}B written  {_si(self.bytes / dt)}B/s"
        )
        if final:
            sys.stderr.write("\n")
        sys.stderr.flush()


def _si(x: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if x >= scale:
            return f"{x / scale:.2f} {unit}"
    return f"{x:.0f} "


def _dist():
    try:
        import torch.distributed as dist
    except Exception:  # pragma: no cover
        return None
    return dist if dist.is_available() and dist.is_initialized() else None


def _barrier(dist) -> None:
    if dist is not None:
        dist.barrier()


def _parse_size(size) -> int:
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool) and size > 0:
        return int(size)
    if isinstance(size, str):
        text = size.strip().upper()
        for unit, mult in (
            ("GIB", 1 << 30),
            ("MIB", 1 << 20),
            ("KIB", 1 << 10),
            ("GB", 10**9),
            ("MB", 10**6),
            ("KB", 10**3),
            ("B", 1),
        ):
            if text.endswith(unit):
                try:
                    v = float(text[: -len(unit)])
                except ValueError:
                    break
                if v > 0:
                    return int(v * mult)
                break
    raise CheckpointError(
        f"`max_shard_size` must be a positive number of bytes or a size such as '5GB' or '500MB'; received "
        f"max_shard_size={size!r}."
    )


def _entries(model, recipe, seed, plan_kwargs) -> list:
    """Every tensor of the checkpoint: the planned parameters and the persistent buffers (refusals first)."""
    from weightinit.artifact._torch import artifact_entries, plan_model

    plan = plan_model(model, recipe, seed, **plan_kwargs)
    skipped = [e.path for e in plan.entries() if e.op == "skip"]
    if skipped:
        raise CheckpointError(
            f"the recipe leaves {len(skipped)} parameter(s) as they are ({', '.join(skipped[:5])}); a materialized "
            "checkpoint needs a value for every parameter. Give them a rule."
        )
    try:
        return artifact_entries(plan, model)
    except CheckpointError:
        raise
    except InitializerValueError as e:  # a persistent buffer no code computes
        raise CheckpointError(str(e)) from None


def _owner(sizes: list[int], world: int) -> list[int]:
    """Tensor i -> rank, largest first to the least loaded rank (deterministic)."""
    load = [0] * world
    owner = [0] * len(sizes)
    for i in sorted(range(len(sizes)), key=lambda i: (-sizes[i], i)):
        r = min(range(world), key=lambda r: (load[r], r))
        owner[i] = r
        load[r] += sizes[i]
    return owner


def _prepare_out(out: str, force: bool, rank: int, dist) -> str:
    out = os.path.abspath(os.fspath(out))
    partial = out + ".partial"
    if rank == 0:
        if os.path.exists(out) and not force:
            err = CheckpointError(f"{out} exists; pass --force (force=True) to replace it. Nothing was written.")
        else:
            err = None
            if os.path.exists(partial):
                shutil.rmtree(partial)
            os.makedirs(partial)
    else:
        err = None
    if dist is not None:
        flag = [err is not None]
        dist.broadcast_object_list(flag, src=0)
        if flag[0]:
            raise err or CheckpointError(f"{out} exists; pass --force (force=True) to replace it. Nothing was written.")
    elif err is not None:
        raise err
    return partial


def _finish_out(partial: str, out: str, rank: int, dist) -> None:
    _barrier(dist)
    if rank == 0:
        if os.path.exists(out):
            shutil.rmtree(out) if os.path.isdir(out) else os.remove(out)
        os.replace(partial, out)
    _barrier(dist)


def materialize(
    model,
    recipe,
    seed,
    out,
    *,
    format: str = "safetensors",
    max_shard_size="5GB",
    force: bool = False,
    progress: bool = False,
    digest: bool = True,
    **plan_kwargs,
) -> MaterializeResult:
    """Write the checkpoint ``weightinit.torch.initialize(model, recipe, seed=seed)`` would give, tensor by tensor.

    Args:
      model: an ``nn.Module`` (on the meta device: nothing is allocated) or a
        MODEL_SPEC string (:mod:`weightinit.artifact.models`).
      recipe, seed: as for :func:`weightinit.torch.initialize` (``seed`` is required).
      out: the output directory (created; replaced only with ``force``).
      format: ``"safetensors"`` (Hugging Face layout) or ``"dcp"`` (torch Distributed Checkpoint).
      max_shard_size: bytes per safetensors file (``"5GB"``, as Hugging Face's default).
      progress: print a progress bar (parameters/s, bytes written) on stderr.
      digest: compute each tensor's digest while writing and store them in
        ``weightinit.json`` (safetensors), so ``verify`` and ``fingerprint`` can be compared.

    Peak memory is one block of :data:`BLOCK` values per process, plus one
    whole tensor for initializers that are not elementwise (orthogonal).

    >>> import tempfile, os, weightinit as wi
    >>> d = tempfile.mkdtemp()
    >>> r = wi.materialize("tiny-llama", "torch", 0, os.path.join(d, "ckpt"))
    >>> r.files, r.digest == wi.fingerprint("tiny-llama", "torch", 0).hex
    (['config.json', 'model.safetensors', 'weightinit.json'], True)
    """
    from weightinit.artifact.models import build_meta, describe, hf_config

    if format not in ("safetensors", "dcp"):
        raise CheckpointError(f"`format` must be 'safetensors' or 'dcp'; received format={format!r}.")
    max_bytes = _parse_size(max_shard_size)
    dist = _dist()
    rank, world = (dist.get_rank(), dist.get_world_size()) if dist is not None else (0, 1)
    module = build_meta(model)
    entries = _entries(module, recipe, seed, plan_kwargs)
    out_abs = os.path.abspath(os.fspath(out))
    t0 = time.perf_counter()
    meta = {
        "weightinit_digest_version": 1,
        "model": describe(model),
        "recipe": recipe if isinstance(recipe, str) else repr(recipe),
        "seed": int(seed) if isinstance(seed, (int, np.integer)) else repr(seed),
    }
    layouts = _safetensors_layouts(entries, max_bytes, meta) if format == "safetensors" else None
    partial = _prepare_out(out_abs, force, rank, dist)  # every check above runs before anything is written
    if format == "safetensors":
        result = _write_safetensors(entries, layouts, meta, partial, rank, world, dist, progress, digest)
    else:
        result = _write_dcp(entries, partial, rank, world, dist, progress)
    if rank == 0:
        cfg = hf_config(model) if isinstance(model, str) else None
        if cfg is not None and format == "safetensors":
            _write_json(os.path.join(partial, "config.json"), cfg)
        info = dict(meta)
        info["tied"] = {e.path: list(e.aliases[1:]) for e in entries if len(e.aliases) > 1}
        info["buffers"] = {e.path: e.label for e in entries if e.op == "buffer"}
        if result.digest is not None:
            info["digest"] = result.digest
            info["params"] = result.param_digests
        _write_json(os.path.join(partial, "weightinit.json"), info)
    _finish_out(partial, out_abs, rank, dist)
    files = sorted(os.listdir(out_abs)) if rank == 0 or os.path.isdir(out_abs) else []
    return MaterializeResult(
        out=out_abs,
        format=format,
        files=files,
        n_params=sum(int(np.prod(e.shape, dtype=np.int64)) for e in entries if e.op != "buffer"),
        n_tensors=len(entries),
        bytes_written=result.bytes_written,
        seconds=time.perf_counter() - t0,
        digest=result.digest,
    )


def _write_json(path: str, obj) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")


@dataclass
class _Written:
    bytes_written: int = 0
    digest: str | None = None
    param_digests: dict = field(default_factory=dict)


def _safetensors_layouts(entries, max_bytes, meta):
    from weightinit.artifact._torch import numpy_dtype_of
    from weightinit.artifact.formats.safetensors import plan_files

    specs = [(e.path, tuple(e.shape), numpy_dtype_of(e.dtype).name) for e in entries]
    st_meta = {"format": "pt", **{f"weightinit.{k}": v for k, v in meta.items()}}
    return plan_files(specs, max_bytes, st_meta)


def _write_safetensors(entries, layouts, meta, partial, rank, world, dist, progress, want_digest) -> _Written:
    from weightinit.artifact._torch import numpy_dtype_of, plan_source
    from weightinit.artifact.formats.safetensors import INDEX_NAME, write_header

    where = {t: (lay, info) for lay in layouts for t, info in lay.tensors.items()}
    if rank == 0:
        for lay in layouts:
            write_header(os.path.join(partial, lay.name), lay)
    _barrier(dist)
    sizes = [where[e.path][1][1] for e in entries]
    owner = _owner(sizes, world)
    mine = [e for e, r in zip(entries, owner) if r == rank]
    bar = Progress(
        sum(int(np.prod(e.shape, dtype=np.int64)) for e in mine),
        sum(s for s, r in zip(sizes, owner) if r == rank),
        progress,
    )
    fds = {lay.name: os.open(os.path.join(partial, lay.name), os.O_WRONLY) for lay in layouts}
    leaves: dict = {}
    written = 0
    try:
        for e in mine:
            lay, (offset, _nbytes, _shape, _dtype) = where[e.path]
            src = plan_source(e)
            item = src.dtype.itemsize
            mine_leaves = []
            for a in range(0, src.numel, BLOCK):
                b = min(a + BLOCK, src.numel)
                block = src.values(a, b)
                os.pwrite(fds[lay.name], block.view(np.uint8).data, offset + a * item)
                if want_digest:
                    mine_leaves.extend(_leaf(block[s : s + CHUNK]) for s in range(0, b - a, CHUNK))
                written += (b - a) * item
                bar.add(b - a, (b - a) * item)
            leaves[e.path] = mine_leaves
        for fd in fds.values():
            os.fsync(fd)
    finally:
        for fd in fds.values():
            os.close(fd)
    bar.add(0, 0, final=True)
    result = _Written(bytes_written=written)
    if dist is not None:
        parts: list = [None] * world
        dist.all_gather_object(parts, leaves)
        for p in parts:
            leaves.update(p)
        totals = [None] * world
        dist.all_gather_object(totals, written)
        result.bytes_written = sum(totals)
    if want_digest:
        digests = {
            e.path: _finish(tuple(e.shape), numpy_dtype_of(e.dtype), dict(enumerate(leaves[e.path]))) for e in entries
        }
        md = model_digest(digests)
        result.digest = md.hex
        result.param_digests = {k: v.hex for k, v in md.params.items()}
    if rank == 0 and len(layouts) > 1:
        index = {
            "metadata": {"total_size": sum(lay.size - len(lay.header) for lay in layouts), "weightinit": meta},
            "weight_map": {t: lay.name for lay in layouts for t in lay.tensors},
        }
        _write_json(os.path.join(partial, INDEX_NAME), index)
    return result


def _write_dcp(entries, partial, rank, world, dist, progress) -> _Written:
    from torch.distributed.checkpoint.default_planner import DefaultSavePlanner
    from torch.distributed.checkpoint.filesystem import FileSystemWriter
    from torch.distributed.checkpoint.state_dict_saver import save as dcp_save

    import torch
    from weightinit.artifact._torch import plan_source

    by_path = {e.path: e for e in entries}
    state = {e.path: torch.empty(tuple(e.shape), dtype=e.dtype, device="meta") for e in entries}
    total = sum(int(np.prod(e.shape, dtype=np.int64)) * e.tensor.element_size() for e in entries)
    bar = Progress(sum(int(np.prod(e.shape, dtype=np.int64)) for e in entries), total // world, progress)
    written = [0]

    class _Generate(DefaultSavePlanner):
        """DCP's default planner, except that a tensor's values are generated when DCP writes them."""

        def resolve_data(self, write_item):
            e = by_path[write_item.index.fqn]
            src = plan_source(e)
            t = torch.empty(tuple(e.shape), dtype=e.dtype)
            flat = t.reshape(-1)
            from weightinit.artifact._torch import to_numpy

            view = to_numpy(flat)
            for a in range(0, src.numel, BLOCK):
                b = min(a + BLOCK, src.numel)
                view[a:b] = src.values(a, b)
            nbytes = t.numel() * t.element_size()
            written[0] += nbytes
            bar.add(t.numel(), nbytes)
            return t

    writer = FileSystemWriter(partial, single_file_per_rank=False, thread_count=1, sync_files=True)
    with warnings.catch_warnings():  # "assuming the intent is to save in a single process": it is
        warnings.filterwarnings("ignore", message=".*single process.*", category=UserWarning)
        dcp_save(state, storage_writer=writer, planner=_Generate(), no_dist=dist is None)
    bar.add(0, 0, final=True)
    total = written[0]
    if dist is not None:
        totals = [None] * world
        dist.all_gather_object(totals, total)
        total = sum(totals)
    return _Written(bytes_written=total)
