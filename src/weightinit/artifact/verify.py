"""Check that a model or a checkpoint holds exactly what a recipe and seed give.

:func:`verify` compares every planned parameter, and every persistent buffer
(BatchNorm statistics: the values the model's own code gives them), with the
values :func:`weightinit.torch.initialize` would write, a block at a time:

* bitwise for every elementwise initializer and constant (the stream gives
  each value exactly, on every executor and thread count);
* for QR-based initializers (``Orthogonal``, ``DeltaOrthogonal``), whose
  values come from LAPACK and may differ in the last bits between builds,
  within ``max(eps(dtype), 2**-10) * max|expected|`` (:func:`qr_tolerance`).

Where a parameter differs, its check says how far: the largest absolute
difference, the number of differing values and the first differing index.
A missing, extra, mis-shaped or wrongly typed tensor is a failed check naming
it.  By default a failure raises :class:`VerificationError` (an
``AssertionError``, so ``wi.verify(ckpt, "torch", 0)`` is a pytest assertion)
whose ``.result`` is the :class:`VerifyResult`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import numpy as np

from weightinit.artifact.errors import CheckpointError, VerificationError
from weightinit.artifact.fingerprint import CHUNK, rows_source

__all__ = ["verify", "VerifyResult", "ParamCheck", "qr_tolerance"]

_BLOCK = 64 * CHUNK
_BITS = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64, 16: np.uint64}


def qr_tolerance(dtype, max_abs: float) -> float:
    """The absolute tolerance of QR-based values: ``max(eps(dtype), 2**-10) * max|expected|``."""
    from weightinit.common.dtypes import standardize_dtype

    dt = standardize_dtype(dtype)
    eps = float(np.finfo(dt).eps) if dt.kind == "f" else float(np.finfo(np.float32).eps)
    return max(eps, 2.0**-10) * float(max_abs)


@dataclass
class ParamCheck:
    """One parameter's check.

    ``status``: ``"equal"`` (bitwise), ``"close"`` (within the QR tolerance),
    ``"differs"``, ``"missing"``, ``"extra"``, ``"shape"`` or ``"dtype"``.
    """

    path: str
    status: str
    exact: bool = True
    shape: tuple | None = None
    dtype: str | None = None
    found: str = ""
    max_abs_diff: float | None = None
    n_different: int = 0
    first_index: tuple | None = None
    tolerance: float | None = None

    @property
    def ok(self) -> bool:
        return self.status in ("equal", "close")

    def __str__(self) -> str:
        if self.status == "equal":
            return f"{self.path}: equal (bitwise)"
        if self.status == "close":
            return f"{self.path}: close (max abs diff {self.max_abs_diff:.3g} <= QR tolerance {self.tolerance:.3g})"
        if self.status == "differs":
            tol = f" > QR tolerance {self.tolerance:.3g}" if self.tolerance is not None else ""
            total = "?" if self.shape is None else int(np.prod(self.shape, dtype=np.int64))
            return (
                f"{self.path}: differs in {self.n_different} of {total} values, "
                f"max abs diff {self.max_abs_diff:.6g}{tol}, first at index {self.first_index}"
            )
        if self.status == "missing":
            return f"{self.path}: missing from the checkpoint (expected {self.dtype} {self.shape})"
        if self.status == "extra":
            return f"{self.path}: in the checkpoint ({self.found}) but not in the model"
        return f"{self.path}: expected {self.dtype} {self.shape}, found {self.found}"


@dataclass
class VerifyResult:
    """Every :class:`ParamCheck` (``checks``: path -> check); true when all pass."""

    checks: dict = field(default_factory=dict)
    recipe: str = ""
    seed: object = None

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks.values())

    @property
    def failures(self) -> list:
        return [c for c in self.checks.values() if not c.ok]

    def __bool__(self) -> bool:
        return self.ok

    def __getitem__(self, path: str) -> ParamCheck:
        return self.checks[path]

    def __str__(self) -> str:
        bad = self.failures
        head = f"{len(self.checks)} tensors checked against recipe {self.recipe!r}, seed {self.seed}: " + (
            "all equal" if not bad else f"{len(bad)} do not match"
        )
        return "\n".join([head] + [f"  {c}" for c in (bad or [])])

    def report(self) -> str:
        """One line per tensor."""
        return "\n".join([str(self).splitlines()[0]] + [f"  {c}" for c in self.checks.values()])


# ---------------------------------------------------------------------------------------------- readers


class _StateReader:
    """A dict of tensors or arrays (a state dict)."""

    def __init__(self, state: dict) -> None:
        from weightinit.artifact._torch import to_numpy

        self._arrays = {}
        for k, v in state.items():
            a = to_numpy(v) if hasattr(v, "detach") else np.asarray(v)
            self._arrays[k] = a
        self.tensors = {k: (a.shape, a.dtype.name) for k, a in self._arrays.items()}

    def rows(self, name, r0, r1):
        a = self._arrays[name]
        return a[r0:r1] if a.ndim else a.reshape(1)


class _SafetensorsReader:
    def __init__(self, path: str) -> None:
        from weightinit.artifact.formats.safetensors import Reader

        self._r = Reader(path)
        self.tensors = {k: (v[3], v[4]) for k, v in self._r.tensors.items()}

    def rows(self, name, r0, r1):
        return self._r.rows(name, r0, r1)


class _DCPReader:
    """A torch Distributed Checkpoint, read one whole tensor at a time."""

    def __init__(self, path: str) -> None:
        from torch.distributed.checkpoint.filesystem import FileSystemReader
        from torch.distributed.checkpoint.metadata import TensorStorageMetadata

        self.path = path
        try:
            md = FileSystemReader(path).read_metadata()
        except Exception as e:
            raise CheckpointError(f"{path} is not a readable torch DCP checkpoint ({type(e).__name__}: {e}).") from None
        self.tensors = {
            k: (tuple(v.size), str(v.properties.dtype).replace("torch.", ""))
            for k, v in md.state_dict_metadata.items()
            if isinstance(v, TensorStorageMetadata)
        }
        self._cache: tuple = ("", None)

    def rows(self, name, r0, r1):
        if self._cache[0] != name:
            import warnings

            from torch.distributed.checkpoint.state_dict_loader import load as dcp_load

            import torch
            from weightinit.artifact._torch import to_numpy

            shape, dtype = self.tensors[name]
            t = torch.empty(shape, dtype=getattr(torch, dtype))
            try:
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", message=".*single process.*", category=UserWarning)
                    dcp_load({name: t}, checkpoint_id=self.path, no_dist=True)
            except Exception as e:
                raise CheckpointError(
                    f"{self.path}: cannot read tensor {name} ({type(e).__name__}: {str(e).splitlines()[0][:200]}); "
                    "the checkpoint is truncated or damaged."
                ) from None
            self._cache = (name, to_numpy(t))
        a = self._cache[1]
        return a[r0:r1] if a.ndim else a.reshape(1)


def _open_checkpoint(path: str):
    if os.path.isdir(path) and os.path.exists(os.path.join(path, ".metadata")):
        return _DCPReader(path)
    if os.path.isdir(path) or path.endswith(".safetensors"):
        return _SafetensorsReader(path)
    raise CheckpointError(
        f"`checkpoint` must be a safetensors file, a directory with model.safetensors[.index.json], or a torch DCP "
        f"directory (with .metadata); received {path!r}."
    )


def _model_of_checkpoint(path: str):
    info = os.path.join(path if os.path.isdir(path) else os.path.dirname(path), "weightinit.json")
    cfg = os.path.join(path if os.path.isdir(path) else os.path.dirname(path), "config.json")
    if os.path.exists(info):
        try:
            with open(info, encoding="utf-8") as f:
                model = json.load(f).get("model")
        except (OSError, ValueError):
            model = None
        if isinstance(model, str):
            return model
    if os.path.exists(cfg):
        return cfg
    raise CheckpointError(
        f"the model of {path} is unknown: pass model= (an nn.Module or MODEL_SPEC); the checkpoint has neither "
        "weightinit.json nor config.json."
    )


# ---------------------------------------------------------------------------------------------- comparing


def _qr_based(entry) -> bool:
    from weightinit.initializers.dirac import DeltaOrthogonal
    from weightinit.initializers.orthogonal import Orthogonal

    qr = (Orthogonal, DeltaOrthogonal)
    if entry.op == "blocks":
        return any(op == "init" and isinstance(payload, qr) for op, payload, _ in entry.payload)
    return entry.op == "init" and isinstance(entry.payload, qr)


def _compare(path, expected, actual, numel, shape, exact) -> ParamCheck:
    """Compare two flat sources block by block (bitwise, or collecting the max diff for a tolerance)."""
    n_diff, first, max_diff, max_abs = 0, None, 0.0, 0.0
    for a in range(0, numel, _BLOCK):
        b = min(a + _BLOCK, numel)
        e, x = expected.values(a, b), actual.values(a, b)
        bits = _BITS[e.dtype.itemsize]
        if e.dtype.kind == "c":
            e, x = e.view(e.real.dtype), x.view(x.real.dtype)
            bits = _BITS[e.dtype.itemsize]
        differ = e.view(bits) != x.view(bits)
        if not exact:
            max_abs = max(max_abs, float(np.max(np.abs(e.astype(np.float64)), initial=0.0)))
        if differ.any():
            pos = np.flatnonzero(differ)
            n_diff += int(pos.size)
            if first is None:
                first = a + int(pos[0])
            d = np.abs(e[pos].astype(np.float64) - x[pos].astype(np.float64))
            max_diff = max(max_diff, float(np.nanmax(d)) if not np.isnan(d).all() else float("nan"))
            if np.isnan(d).any():
                max_diff = float("nan")
    index = tuple(int(i) for i in np.unravel_index(first, shape)) if first is not None else None
    if n_diff == 0:
        return ParamCheck(path, "equal", exact, tuple(shape), None, max_abs_diff=0.0)
    if not exact:
        tol = qr_tolerance(expected.dtype, max_abs)
        status = "close" if max_diff <= tol else "differs"
        return ParamCheck(path, status, False, tuple(shape), None, "", max_diff, n_diff, index, tol)
    return ParamCheck(path, "differs", True, tuple(shape), None, "", max_diff, n_diff, index)


def verify(
    target,
    recipe,
    seed,
    *,
    model=None,
    raise_on_mismatch: bool = True,
    **plan_kwargs,
) -> VerifyResult:
    """Check that ``target`` holds what ``initialize(model, recipe, seed=seed)`` writes; raise where it does not.

    Args:
      target: an ``nn.Module`` (its parameters and persistent buffers; DTensor parameters are
        checked shard by shard on every rank), a state dict (name -> tensor or
        array; give ``model=``), or a checkpoint path: a safetensors file, a
        directory in Hugging Face's layout, or a torch DCP directory.
      recipe, seed: the recipe and seed to check against.
      model: the model whose structure the recipe applies to (``nn.Module`` or
        MODEL_SPEC); default: ``target`` itself for a module, else the
        checkpoint's ``weightinit.json`` or ``config.json``.
      raise_on_mismatch: raise :class:`VerificationError` (an
        ``AssertionError``) when a check fails; else return the result.

    >>> import torch, weightinit as wi, weightinit.torch as wt
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.LayerNorm(8))
    >>> _ = wt.initialize(net, "torch", seed=0)
    >>> bool(wi.verify(net, "torch", 0))
    True
    >>> with torch.no_grad():
    ...     net[0].weight[1, 2] += 0.5
    >>> print(wi.verify(net, "torch", 0, raise_on_mismatch=False).failures[0])
    0.weight: differs in 1 of 32 values, max abs diff 0.5, first at index (1, 2)
    """
    import torch
    from torch import nn
    from weightinit.artifact._torch import artifact_entries, plan_model, plan_source, to_numpy
    from weightinit.artifact.models import build_meta
    from weightinit.torch.dtensor import is_dtensor

    if isinstance(target, nn.Module):
        structure = target if model is None else build_meta(model)
        reader = None
    else:
        if isinstance(target, (str, os.PathLike)):
            path = os.fspath(target)
            if not os.path.exists(path):
                raise CheckpointError(f"`checkpoint` {path!r} does not exist.")
            reader = _open_checkpoint(path)
            structure = build_meta(model if model is not None else _model_of_checkpoint(path))
        elif isinstance(target, dict):
            if model is None:
                raise CheckpointError("verify(state_dict, ...) needs model= (an nn.Module or MODEL_SPEC).")
            reader = _StateReader(target)
            structure = build_meta(model)
        else:
            raise CheckpointError(
                f"`target` must be an nn.Module, a state dict or a checkpoint path; received {type(target).__name__}."
            )
    plan = plan_model(structure, recipe, seed, **plan_kwargs)
    result = VerifyResult(recipe=recipe if isinstance(recipe, str) else repr(recipe), seed=seed)
    entries = artifact_entries(plan, structure)  # the planned parameters and the persistent buffers
    known = {a for e in plan.entries() for a in e.aliases} | {a for e in entries for a in e.aliases}
    sharded = []
    for e in entries:
        exact = not _qr_based(e)
        shape = tuple(e.shape)
        dt = str(e.dtype).replace("torch.", "")
        numel = int(np.prod(shape, dtype=np.int64))
        if reader is None:
            if is_dtensor(e.tensor):
                sharded.append(e)
                continue
            t = e.tensor
            if t.is_meta:
                what = "buffer" if e.op == "buffer" else "parameter"
                raise CheckpointError(f"{what} {e.path} is on the meta device: it holds no values to verify.")
            arr = to_numpy(t)
            actual = rows_source(shape, arr.dtype, lambda r0, r1, arr=arr: arr[r0:r1] if arr.ndim else arr.reshape(1))
            result.checks[e.path] = _compare(e.path, plan_source(e), actual, numel, shape, exact)
            continue
        names = [a for a in e.aliases if a in reader.tensors]
        if not names:
            result.checks[e.path] = ParamCheck(e.path, "missing", exact, shape, dt)
            continue
        for name in names:
            fshape, fdt = reader.tensors[name]
            if tuple(fshape) != shape:
                result.checks[name] = ParamCheck(name, "shape", exact, shape, dt, f"{fdt} {tuple(fshape)}")
                continue
            if fdt != dt:
                result.checks[name] = ParamCheck(name, "dtype", exact, shape, dt, f"{fdt} {tuple(fshape)}")
                continue
            actual = rows_source(shape, fdt, lambda r0, r1, n=name: reader.rows(n, r0, r1))
            result.checks[name] = _compare(name, plan_source(e), actual, numel, shape, exact)
    if reader is not None:
        for name, (fshape, fdt) in reader.tensors.items():
            if name not in known:
                result.checks[name] = ParamCheck(name, "extra", True, None, None, f"{fdt} {tuple(fshape)}")
    if sharded:
        _verify_sharded(sharded, result, torch)
    if raise_on_mismatch and not result.ok:
        raise VerificationError(str(result), result)
    return result


def _verify_sharded(entries, result: VerifyResult, torch) -> None:
    """Each rank compares its shards with the values of their global indices; the checks are merged over ranks."""
    import torch.distributed as dist

    from weightinit.artifact._torch import expected_local, shard_indices, to_numpy

    mine = {}
    for e in entries:
        idx = shard_indices(e.tensor)
        assert idx is not None, f"{e.path} is a DTensor"  # sharded entries hold DTensors only
        local = to_numpy(e.tensor.to_local())
        exp = expected_local(e, idx)
        shape = tuple(e.shape)
        flat_e, flat_x = exp.reshape(-1), local.reshape(-1)
        c = _compare(
            e.path,
            rows_source(flat_e.shape, flat_e.dtype, lambda a, b, v=flat_e: v[a:b]),
            rows_source(flat_x.shape, flat_x.dtype, lambda a, b, v=flat_x: v[a:b]),
            flat_e.size,
            (max(flat_e.size, 1),),
            not _qr_based(e),
        )
        if c.first_index is not None:  # local flat position -> global index
            local_pos = np.unravel_index(c.first_index[0], local.shape)
            c.first_index = tuple(int(idx[d][local_pos[d]]) for d in range(len(shape)))
        c.shape = shape
        mine[e.path] = c
    parts: list = [None] * dist.get_world_size()
    dist.all_gather_object(parts, mine)
    for e in entries:
        cs = [p[e.path] for p in parts]
        bad = [c for c in cs if c.status == "differs"]
        if bad:
            first = min(c.first_index for c in bad)
            result.checks[e.path] = ParamCheck(
                e.path,
                "differs",
                bad[0].exact,
                tuple(e.shape),
                None,
                "",
                max(c.max_abs_diff for c in bad),
                sum(c.n_different for c in cs),
                first,
                bad[0].tolerance,
            )
        else:
            result.checks[e.path] = (
                cs[0] if all(c.status == "equal" for c in cs) else next(c for c in cs if c.status == "close")
            )
