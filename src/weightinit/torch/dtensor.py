"""Sharded initialization of PyTorch DTensors, equal bit for bit to single-device initialization.

weightinit's stream gives the value at flat index ``i`` of a tensor from
``(stream key, i)`` alone (docs/random.md, section 3).  A rank that holds a
shard of a DTensor therefore computes *which global indices* its local tensor
holds (from the DTensor's device mesh and placements) and generates exactly
those values with ``region=``.  Gathering the shards gives the tensor a single
process initializes with the same seed, for every mesh shape, placement and
number of ranks, and no rank generates or stores more than its shard plus one
block of :data:`BLOCK` values.

Supported placements: ``Shard(d)`` on any mesh dimension (torch's ``chunk``
semantics, so uneven shards and empty shards work), ``Replicate()``, 2-D and
n-D meshes, several mesh dimensions sharding the same tensor dimension, and
``_StridedShard`` (what FSDP2 + tensor parallel produce).  ``Partial``
placements hold unreduced partial sums, not values, and are refused.

Initializers that are not elementwise (``Orthogonal``, ``STFT``, or a user
callable without ``region=``) need the whole tensor.  Two strategies:

* ``"replicate"`` (default): every rank generates the whole tensor from the
  same stream and keeps its slice.  No communication; O(full) memory and
  compute per rank, transiently.  The values equal single-device values as
  long as every rank runs the same LAPACK build (QR is deterministic for a
  given build and input).
* ``"scatter"``: the first rank of the mesh generates the whole tensor and
  ``distribute_tensor`` scatters the shards.  Compute is paid once, the
  result is consistent across ranks even on heterogeneous nodes, and the
  other ranks still allocate a full-size receive buffer.

Seeds: the ranks must agree on the stream, as with every SPMD program.  Pass
an int seed, a :class:`weightinit.Stream`, a :class:`weightinit.SeedGenerator`
built from an int, or call :func:`weightinit.set_seed` with the same value on
every rank before building unseeded initializers.  ``verify=True`` checks this
with one small all-gather per tensor.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal

import numpy as np

import torch
from weightinit.common.dtypes import standardize_dtype
from weightinit.common.errors import InitializerValueError, type_error, value_error
from weightinit.initializers.base import BuiltinInitializer, RandomInitializer, _accepted_kwargs, generate
from weightinit.random.streams import Stream

__all__ = [
    "BLOCK",
    "is_dtensor",
    "local_indices",
    "local_region",
    "fill_dtensor_",
    "place_sharded",
    "write_global_array_",
    "fill_via_full_",
    "dtensor_via_full",
]

BLOCK = 1 << 22
"""Values generated per block when filling a shard (the O(chunk) term of per-rank memory)."""

Strategy = Literal["replicate", "scatter"]

try:  # torch.distributed may be unavailable (some builds) or lack DTensor (old torch).
    from torch.distributed.tensor import DTensor as _DTensor
    from torch.distributed.tensor.placement_types import Partial as _Partial
    from torch.distributed.tensor.placement_types import Replicate as _Replicate
    from torch.distributed.tensor.placement_types import Shard as _Shard
except Exception:  # pragma: no cover - torch without distributed
    _DTensor = None
    _Partial = _Replicate = _Shard = None

try:
    from torch.distributed.tensor.placement_types import _StridedShard, _StridedShardOffsetMode
except Exception:  # pragma: no cover - older/newer torch
    _StridedShard = None
    _StridedShardOffsetMode = None


def is_dtensor(t: Any) -> bool:
    """True when ``t`` is a ``torch.distributed.tensor.DTensor`` (including DTensor parameters)."""
    return _DTensor is not None and isinstance(t, _DTensor)


def _require_dtensor(t: Any, arg: str = "tensor") -> None:
    if not is_dtensor(t):
        raise type_error(arg, type(t).__name__, "must be a torch.distributed.tensor.DTensor")


def local_indices(dtensor: Any) -> tuple[tuple[int, ...], list[np.ndarray] | None]:
    """The global indices the calling rank's local tensor holds, per tensor dimension.

    Returns ``(global_shape, indices)``: ``indices[d][j]`` is the global index
    along dimension ``d`` of the local tensor's position ``j``.  ``indices`` is
    ``None`` when the rank is not part of the DTensor's mesh (it holds nothing).

    The placements are applied in mesh-dimension order, as torch does
    (``torch.distributed.tensor._utils.compute_local_shape_and_global_offset``):
    ``Shard(d)`` splits the current indices of dimension ``d`` like
    ``torch.chunk`` (chunks of ``ceil(n / k)``, the last ones shorter or
    empty), ``_StridedShard`` takes torch's own interleaved offsets, and
    ``Replicate`` keeps everything.
    """
    _require_dtensor(dtensor, "dtensor")
    mesh = dtensor.device_mesh
    placements = tuple(dtensor.placements)
    global_shape = tuple(int(s) for s in dtensor.shape)
    coord = mesh.get_coordinate()
    if coord is None:
        return global_shape, None
    mesh_shape = tuple(int(s) for s in mesh.shape)
    idx = [np.arange(n, dtype=np.int64) for n in global_shape]
    for mesh_dim, p in enumerate(placements):
        k, r = mesh_shape[mesh_dim], int(coord[mesh_dim])
        if _StridedShard is not None and _StridedShardOffsetMode is not None and isinstance(p, _StridedShard):
            d = p.dim
            _, offsets = p.local_shard_size_and_offset(len(idx[d]), k, r, _StridedShardOffsetMode.ALL)
            idx[d] = idx[d][np.asarray(offsets if offsets else [], dtype=np.int64)]
        elif _Shard is not None and isinstance(p, _Shard):
            d = p.dim
            n = len(idx[d])
            size = -(-n // k) if n % k else n // k
            start = min(r * size, n)
            idx[d] = idx[d][start : min(start + size, n)]
        elif _Replicate is not None and isinstance(p, _Replicate):
            continue
        elif _Partial is not None and isinstance(p, _Partial):
            raise InitializerValueError(
                f"`tensor` has a Partial placement ({p}) on mesh dimension {mesh_dim}; its local tensors are "
                "unreduced partial sums, so there are no values to initialize. Initialize a Replicate or Shard "
                "DTensor and redistribute it, e.g. dtensor.redistribute(placements=[Replicate()])."
            )
        else:
            raise InitializerValueError(
                f"`tensor` has placement {p!r} on mesh dimension {mesh_dim}, which weightinit does not support. "
                "Supported: Shard, _StridedShard, Replicate."
            )
    local_shape = tuple(int(s) for s in dtensor.to_local().shape)
    if tuple(len(i) for i in idx) != local_shape:  # pragma: no cover - guards against torch changing semantics
        raise InitializerValueError(
            f"`tensor`'s local shape {local_shape} does not match the shard weightinit computed "
            f"({tuple(len(i) for i in idx)}) for global shape {global_shape}, mesh {mesh_shape} and placements "
            f"{placements}. Please report this with your torch version ({torch.__version__})."
        )
    return global_shape, idx


def _as_slices(ix: np.ndarray) -> list[tuple[slice, slice]]:
    """Split one dimension's global indices into arithmetic runs: ``(local slice, global slice)`` pairs."""
    n = len(ix)
    if n == 0:
        return []
    if n > 1:  # the common case, one arithmetic run (Shard placements), without a Python loop
        d = np.diff(np.asarray(ix, dtype=np.int64))
        step = int(d[0])
        if step > 0 and bool((d == step).all()):
            return [(slice(0, n), slice(int(ix[0]), int(ix[-1]) + 1, step if step != 1 else None))]
    out = []
    j = 0
    while j < n:
        if j + 1 == n:
            out.append((slice(j, j + 1), slice(int(ix[j]), int(ix[j]) + 1)))
            break
        step = int(ix[j + 1] - ix[j])
        e = j + 1
        while e + 1 < n and int(ix[e + 1] - ix[e]) == step:
            e += 1
        if step <= 0:  # not produced by torch's placements; keep it correct anyway
            for t in range(j, e + 1):
                out.append((slice(t, t + 1), slice(int(ix[t]), int(ix[t]) + 1)))
        else:
            stop = int(ix[e]) + 1
            out.append((slice(j, e + 1), slice(int(ix[j]), stop, step if step != 1 else None)))
        j = e + 1
    return out


def local_region(dtensor: Any) -> tuple[tuple[int, ...], tuple[slice, ...]]:
    """``(global_shape, region)`` of the calling rank's shard: ``full[region]`` is its local tensor.

    ``region`` is a tuple of slices, one per dimension, so
    ``init(global_shape, dtype, region=region)`` generates exactly the local
    shard.  Raises for layouts whose shard is not one rectangular strided
    block (some ``_StridedShard`` layouts with uneven sizes); use
    :func:`local_indices` or :func:`fill_dtensor_` for those.
    """
    global_shape, idx = local_indices(dtensor)
    if idx is None:
        return global_shape, tuple(slice(0, 0) for _ in global_shape)
    region = []
    for d, ix in enumerate(idx):
        runs = _as_slices(ix)
        if not runs:
            region.append(slice(0, 0))
        elif len(runs) == 1:
            region.append(runs[0][1])
        else:
            raise InitializerValueError(
                f"`dtensor`'s shard along dimension {d} is not one strided range (global indices "
                f"{ix[:8].tolist()}...); its placements {tuple(dtensor.placements)} interleave uneven pieces. "
                "Use weightinit.torch.dtensor.local_indices or fill_dtensor_, which handle this layout."
            )
    return global_shape, tuple(region)


def _blocks(shape: tuple[int, ...], block: int) -> Iterator[tuple[slice, ...]]:
    """Row-major sub-regions (relative slices) of a box of ``shape`` with at most ``block`` values each."""
    nd = len(shape)
    if nd == 0 or math.prod(shape) == 0:
        yield tuple(slice(0, n) for n in shape)
        return
    # first dimension d whose trailing product fits in a block
    d = 0
    while d < nd - 1 and math.prod(shape[d + 1 :]) > block:
        d += 1
    inner = math.prod(shape[d + 1 :])
    per = max(1, block // inner)
    for lead in np.ndindex(*shape[:d]) if d else [()]:
        head = tuple(slice(int(i), int(i) + 1) for i in lead)
        for s in range(0, shape[d], per):
            yield head + (slice(s, min(s + per, shape[d])),) + tuple(slice(0, n) for n in shape[d + 1 :])


def _compose(outer: slice, rel: slice) -> slice:
    """The global slice for positions ``rel`` (relative, step 1) inside the global slice ``outer``."""
    step = outer.step or 1
    start = outer.start + rel.start * step
    stop = outer.start + (rel.stop - 1) * step + 1 if rel.stop > rel.start else start
    return slice(start, stop, None if step == 1 else step)


def _shift(outer: slice, rel: slice) -> slice:
    return slice(outer.start + rel.start, outer.start + rel.stop)


def _to_torch(values: np.ndarray) -> torch.Tensor:
    """A CPU torch tensor sharing ``values``' memory (bfloat16 through an int16 view)."""
    values = np.ascontiguousarray(values)
    if values.dtype.name == "bfloat16":
        return torch.from_numpy(values.view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(values)


def _is_elementwise(init: Any) -> bool:
    if isinstance(init, BuiltinInitializer):
        return bool(init.elementwise)
    return "region" in _accepted_kwargs(init) and bool(getattr(init, "elementwise", True))


def _fast_fill():
    """The torch executor's ``fill_``, or None when it cannot be imported."""
    try:
        from weightinit.executors.torch import fill_
    except Exception:
        return None
    return fill_


def _resolve_stream(init: Any, global_shape: tuple[int, ...], dtype: np.dtype, stream: Stream | None):
    if stream is not None and not isinstance(stream, Stream):
        raise type_error("stream", stream, "must be a weightinit.Stream or None", "Build one with wi.Stream(seed).")
    if isinstance(init, RandomInitializer) or callable(getattr(init, "stream_for_call", None)):
        # Resolve once: a SeedGenerator must advance once per tensor, not once per block.
        return init.stream_for_call(global_shape, dtype, stream)
    return stream


def _verify_stream(dtensor: Any, stream: Stream | None) -> None:
    """Raise when the ranks of ``dtensor``'s mesh resolved different streams (unseeded initializers)."""
    import torch.distributed as dist

    key = stream.to_int() if stream is not None else -1
    mesh = dtensor.device_mesh
    t = torch.tensor([key & 0x7FFFFFFFFFFFFFFF, key >> 63], dtype=torch.int64, device=mesh.device_type)
    groups = [mesh.get_group(i) for i in range(mesh.ndim)]
    for g in groups:
        out = [torch.empty_like(t) for _ in range(dist.get_world_size(g))]
        dist.all_gather(out, t, group=g)
        if any(not torch.equal(o, t) for o in out):
            raise InitializerValueError(
                "`init` resolved different streams on different ranks of the mesh, so the shards would not form "
                "one tensor. Seed the initializer (seed=int, a Stream, or a SeedGenerator built from an int), or "
                "call weightinit.set_seed(s) with the same s on every rank before building it."
            )


def fill_dtensor_(
    tensor: Any,
    init: Any,
    stream: Stream | None = None,
    dtype: Any = None,
    *,
    strategy: Strategy = "replicate",
    verify: bool = False,
    block: int = BLOCK,
) -> Any:
    """Fill a DTensor in place so that its gathered value equals ``init(tensor.shape, dtype)`` bit for bit.

    Each rank writes only its local shard, generated from the global indices
    of that shard (see :func:`local_indices`).

    Args:
      tensor: a DTensor (or DTensor ``nn.Parameter``), on any device; a
        meta DTensor is left as it is (there is no storage to fill).
      init: any weightinit initializer, or a callable ``init(shape, dtype)``.
      stream: optional :class:`weightinit.Stream` replacing ``init``'s seed.
      dtype: generation dtype (default: the tensor's dtype); values are cast
        into the tensor's dtype.
      strategy: for initializers that are not elementwise: ``"replicate"``
        (every rank generates the whole tensor and keeps its shard) or
        ``"scatter"`` (the mesh's first rank generates it, the shards are
        scattered).
      verify: all-gather each rank's stream key and raise if ranks disagree.
      block: values generated per step for elementwise initializers.

    Returns:
      ``tensor``.
    """
    _require_dtensor(tensor, "tensor")
    if strategy not in ("replicate", "scatter"):
        raise value_error("strategy", strategy, "must be 'replicate' or 'scatter'")
    if isinstance(block, bool) or not isinstance(block, int) or block < 1:
        raise value_error("block", block, "must be a positive int")
    local = tensor.to_local()
    if local.is_meta:
        return tensor
    dt = standardize_dtype(dtype if dtype is not None else local.dtype)
    global_shape, idx = local_indices(tensor)
    if idx is None:
        return tensor
    stream = _resolve_stream(init, global_shape, dt, stream)
    if verify:
        _verify_stream(tensor, stream)
    if any(len(i) == 0 for i in idx) and local.numel() == 0:
        if not _is_elementwise(init) and strategy == "scatter":
            _scatter_whole(tensor, local, init, stream, dt, global_shape)
        return tensor
    with torch.no_grad():
        if _is_elementwise(init):
            _fill_elementwise(local, init, stream, dt, global_shape, idx, block)
        elif strategy == "scatter":
            _scatter_whole(tensor, local, init, stream, dt, global_shape)
        else:
            full = generate(init, global_shape, dt, stream=stream)
            _copy_indexed(local, np.asarray(full), idx)
    return tensor


def _fill_elementwise(
    local: torch.Tensor,
    init: Any,
    stream: Stream | None,
    dt: np.dtype,
    global_shape: tuple[int, ...],
    idx: list[np.ndarray],
    block: int,
) -> None:
    per_dim = [_as_slices(ix) for ix in idx]
    fill_ = _fast_fill()
    dist_for = getattr(init, "distribution_for", None)
    use_fast = (
        fill_ is not None
        and stream is not None
        and getattr(init, "elementwise", False)
        and callable(dist_for)
        and local.dtype == _torch_dtype(dt)
        and not local.is_complex()  # complex values come from the generic path
    )
    dist = dist_for(global_shape) if use_fast and dist_for is not None else None
    use_fast = use_fast and dist is not None  # None: an all-zero role (e.g. Fixup's last layer)
    for combo in _product(per_dim):
        loc = tuple(c[0] for c in combo)
        glob = tuple(c[1] for c in combo)
        box = tuple(s.stop - s.start for s in loc)
        if use_fast and fill_ is not None and all(g.step in (None, 1) for g in glob):
            fill_(local[loc], dist, stream, shape=global_shape, region=glob)
            continue
        for rel in _blocks(box, block):
            g = tuple(_compose(o, r) for o, r in zip(glob, rel))
            values = generate(init, global_shape, dt, region=g, stream=stream)
            local[tuple(_shift(o, r) for o, r in zip(loc, rel))].copy_(_to_torch(np.asarray(values)))


def _product(per_dim: Sequence[list]) -> Iterator[tuple]:
    if not per_dim:
        yield ()
        return
    for head in per_dim[0]:
        for tail in _product(per_dim[1:]):
            yield (head,) + tail


def _torch_dtype(dt: np.dtype) -> torch.dtype:
    name = dt.name
    return getattr(torch, name) if hasattr(torch, name) else torch.float32


def _copy_indexed(local: torch.Tensor, full: np.ndarray, idx: list[np.ndarray]) -> None:
    """Copy ``full[ix_(*idx)]`` into ``local`` with slices where possible (no advanced-index temporaries)."""
    per_dim = [_as_slices(ix) for ix in idx]
    for combo in _product(per_dim):
        loc = tuple(c[0] for c in combo)
        glob = tuple(c[1] for c in combo)
        local[loc].copy_(_to_torch(np.asarray(full[glob])))


def _scatter_whole(
    tensor: Any, local: torch.Tensor, init: Any, stream: Stream | None, dt: np.dtype, global_shape: tuple[int, ...]
) -> None:
    """Strategy "scatter": the mesh's first rank generates the tensor; ``distribute_tensor`` sends the shards."""
    from torch.distributed.tensor import distribute_tensor

    mesh = tensor.device_mesh
    coord = mesh.get_coordinate()
    src = all(int(c) == 0 for c in coord)
    if src:
        full = _to_torch(np.asarray(generate(init, global_shape, dt, stream=stream))).to(local.dtype)
    else:
        full = torch.empty(global_shape, dtype=local.dtype)
    full = full.to(local.device)
    placements = tuple(tensor.placements)
    if _StridedShard is not None and any(isinstance(p, _StridedShard) for p in placements):
        raise InitializerValueError(
            "`strategy`='scatter' does not support _StridedShard placements; use strategy='replicate'."
        )
    out = distribute_tensor(full, mesh, placements)
    del full
    with torch.no_grad():
        local.copy_(out.to_local())


def place_sharded(tensor: Any, init: Any, stream: Stream | None, dtype: Any) -> bool:
    """The hook weightinit.torch's placement calls: fill ``tensor`` if it is a DTensor.

    Returns False (doing nothing) when ``tensor`` is not a DTensor, so the
    caller's ordinary path runs; True after filling the DTensor in place with
    :func:`fill_dtensor_`.
    """
    if not is_dtensor(tensor):
        return False
    fill_dtensor_(tensor, init, stream, dtype)
    return True


def write_global_array_(tensor: Any, arr: Any) -> Any:
    """Copy this rank's shard of ``arr`` (the whole tensor's values, global shape) into the DTensor ``tensor``.

    For values that were computed whole on every rank (a QR factor, a sparse
    pattern); what a placement function calls when it holds the full array.
    """
    _require_dtensor(tensor, "tensor")
    local = tensor.to_local()
    if local.is_meta:
        return tensor
    arr = np.asarray(arr)
    global_shape, idx = local_indices(tensor)
    if tuple(arr.shape) != global_shape:
        raise value_error(
            "arr", f"<array of shape {arr.shape}>", f"must have the DTensor's global shape {global_shape}"
        )
    if idx is not None and local.numel():
        with torch.no_grad():
            _copy_indexed(local, arr, idx)
    return tensor


def fill_via_full_(tensor: Any, fill_fn: Callable[[torch.Tensor], Any]) -> Any:
    """Strategy "replicate" for any in-place fill function: run it on a plain full-size tensor, keep the shard.

    ``fill_fn(t)`` fills a plain tensor ``t`` of the DTensor's global shape and
    dtype on the local device (for instance ``lambda t: orthogonal_(t, seed=0)``).
    Every rank runs it, so it must be deterministic given the same seed or
    torch RNG state on every rank.  Costs O(full tensor) memory and compute per
    rank, transiently.
    """
    _require_dtensor(tensor, "tensor")
    local = tensor.to_local()
    if local.is_meta:
        return tensor
    global_shape, idx = local_indices(tensor)
    full = torch.empty(global_shape, dtype=local.dtype, device=local.device)
    fill_fn(full)
    if idx is not None and local.numel():
        with torch.no_grad():
            per_dim = [_as_slices(ix) for ix in idx]
            for combo in _product(per_dim):
                local[tuple(c[0] for c in combo)].copy_(full[tuple(c[1] for c in combo)])
    return tensor


def dtensor_via_full(fn: Callable) -> Callable:
    """Decorate an in-place ``fn(tensor, *args, **kwargs)`` so that a DTensor ``tensor`` goes through :func:`fill_via_full_`.

    For weightinit.torch functions that are not elementwise (``orthogonal_``,
    ``sparse_``, ``eye_``, ``dirac_``): the gathered DTensor then equals what
    ``fn`` gives on one process.
    """

    @functools.wraps(fn)
    def wrapper(tensor, *args, **kwargs):
        if is_dtensor(tensor):
            return fill_via_full_(tensor, lambda t: fn(t, *args, **kwargs))
        return fn(tensor, *args, **kwargs)

    return wrapper
