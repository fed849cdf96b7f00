"""The PyTorch side of :mod:`weightinit.artifact`: value sources of planned parameters, tensors, shards.

Imported only when a model or a torch tensor is involved (the core never imports torch).
"""

from __future__ import annotations

from collections.abc import Sequence

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
]


def numpy_dtype_of(dtype: torch.dtype) -> np.dtype:
    """The NumPy dtype holding a torch floating-point dtype's bytes (bfloat16: ml_dtypes')."""
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

    plan = plan_model(build_meta(model), recipe, seed, **kwargs)
    entries = [e for e in plan.entries() if e.op != "skip"]
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
