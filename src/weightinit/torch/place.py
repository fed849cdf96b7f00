"""Placing weightinit values into torch tensors: the one switch between the device executor and NumPy.

Everything that writes random values into a tensor goes through
:func:`write_distribution` (elementwise distributions) or
:func:`write_array` (values generated on the host), so choosing the fast
path is done here and nowhere else.
"""

from __future__ import annotations

import numpy as np

import torch
from weightinit.common.dtypes import bfloat16, float8_e4m3fn, float8_e5m2
from weightinit.common.errors import InitializerValueError
from weightinit.random.distributions import Normal, TruncatedNormal, Uniform
from weightinit.random.sampling import sample
from weightinit.random.seeds import SeedGenerator
from weightinit.random.streams import Stream, check_seed

__all__ = [
    "numpy_dtype",
    "write_distribution",
    "write_array",
    "resolve_stream",
    "draw_seed",
    "executor_fill",
    "tensor_to_numpy",
]

_NP = {
    torch.float16: np.dtype(np.float16),
    torch.bfloat16: bfloat16,
    torch.float32: np.dtype(np.float32),
    torch.float64: np.dtype(np.float64),
    torch.float8_e4m3fn: float8_e4m3fn,
    torch.float8_e5m2: float8_e5m2,
}
_FP8_TORCH = {float8_e4m3fn: torch.float8_e4m3fn, float8_e5m2: torch.float8_e5m2}
_COMPLEX_PART = {torch.complex64: torch.float32, torch.complex128: torch.float64}


def numpy_dtype(dtype: torch.dtype, who: str) -> np.dtype:
    """The NumPy dtype weightinit generates for a floating-point torch dtype."""
    try:
        return _NP[dtype]
    except KeyError:
        raise InitializerValueError(
            f"{who} is not implemented for {dtype}: weightinit draws random values only in float16, bfloat16, "
            "float32, float64, float8_e4m3fn and float8_e5m2 (and complex64/complex128 where torch supports it); "
            f"received tensor.dtype={dtype}. Initialize a float tensor and convert it."
        ) from None


def executor_fill():
    """The device executor's ``fill_`` (``weightinit.executors.torch``), or None when it is not installed."""
    try:
        from weightinit.executors.torch import fill_
    except Exception:
        return None
    return fill_


def executor_orthogonal():
    """The device executor's ``orthogonal_``, or None."""
    try:
        from weightinit.executors.torch import orthogonal_
    except Exception:
        return None
    return orthogonal_


def resolve_stream(seed=None, generator: torch.Generator | None = None) -> Stream:
    """The stream of one call: ``seed`` if given, else 64 bits drawn from ``generator`` or torch's global RNG.

    Drawing from torch's RNG makes ``torch.manual_seed`` reproduce weightinit's
    values, and consecutive calls differ (the RNG advances).
    """
    if seed is not None:
        if isinstance(seed, Stream):
            return seed
        if isinstance(seed, SeedGenerator):
            return seed.next_stream()
        return Stream(check_seed(seed))
    return Stream(draw_seed(generator))


def draw_seed(generator: torch.Generator | None = None) -> int:
    """A 64-bit seed drawn from ``generator`` (or torch's global CPU RNG, which ``torch.manual_seed`` seeds)."""
    if generator is not None:
        w = torch.randint(0, 2**32, (2,), dtype=torch.int64, generator=generator, device=generator.device)
    else:
        w = torch.randint(0, 2**32, (2,), dtype=torch.int64)
    lo, hi = (int(v) for v in w.tolist())
    return lo | (hi << 32)


def _complex_part(dist):
    """torch's complex convention: ``normal_`` gives each part std/sqrt(2); ``uniform_`` fills both parts."""
    if isinstance(dist, Normal):
        return Normal(dist.mean, dist.std / np.sqrt(2.0))
    if isinstance(dist, TruncatedNormal):
        raise InitializerValueError(
            "trunc_normal_ is not implemented for complex tensors (as in torch); received a complex tensor."
        )
    return dist


def _to_torch(arr: np.ndarray) -> torch.Tensor:
    if arr.dtype == bfloat16:
        return torch.from_numpy(np.ascontiguousarray(arr).view(np.uint16)).view(torch.bfloat16)
    if arr.dtype in _FP8_TORCH:
        return torch.from_numpy(np.ascontiguousarray(arr).view(np.uint8)).view(_FP8_TORCH[arr.dtype])
    return torch.from_numpy(np.ascontiguousarray(arr))


def tensor_to_numpy(t: torch.Tensor) -> np.ndarray:
    """A torch tensor's values as a NumPy array of weightinit's dtype (bfloat16 and float8 through their bits)."""
    t = t.detach().cpu().contiguous()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().view(bfloat16)
    if t.dtype in (torch.float8_e4m3fn, torch.float8_e5m2):
        return t.view(torch.uint8).numpy().view(_NP[t.dtype])
    return t.numpy()


def write_array(tensor: torch.Tensor, arr: np.ndarray) -> torch.Tensor:
    """Copy host values into ``tensor`` (any device, any strides); ``arr`` has ``tensor``'s shape."""
    if _is_dtensor(tensor):  # arr holds the global values; each rank keeps its shard
        from weightinit.torch.dtensor import write_global_array_

        return write_global_array_(tensor, np.asarray(arr).reshape(tuple(tensor.shape)))
    with torch.no_grad():
        src = _to_torch(arr).reshape(tensor.shape)
        tensor.copy_(src)
    return tensor


#: The attribute on a tensor written from a truncated normal: ``(version after the write, data pointer,
#: distribution)``. The doctor reads it to see a truncation whose bounds cut nothing (weightinit.doctor.llm):
#: values alone cannot tell such a draw from an intended plain normal. It is valid while the tensor's version
#: counter and data pointer are unchanged (no later in-place write; not a copy, whose counter restarts); it is
#: set on the tensor object given (a parameter, not a view of it).
TRUNCATED_WRITE_ATTR = "_weightinit_truncated_write"


def _remember(tensor: torch.Tensor, dist) -> None:
    if not isinstance(dist, TruncatedNormal):
        return
    try:
        setattr(tensor, TRUNCATED_WRITE_ATTR, (tensor._version, tensor.data_ptr(), dist))
    except Exception:  # pragma: no cover - tensors that take no attributes
        pass


def write_distribution(tensor: torch.Tensor, dist, stream: Stream, *, shape=None, region=None) -> torch.Tensor:
    """Fill ``tensor`` with ``x[region]``, ``x`` of global ``shape`` (default: the tensor's) drawn from ``dist``.

    The value at each position depends only on the stream and its flat index in
    ``x`` (docs/random.md), so any block is generated alone.  Uses the compiled
    device executor when it is installed, else the NumPy path; DTensors are
    filled shard by shard.
    """
    if tensor.is_meta:
        return tensor
    shape = tuple(tensor.shape) if shape is None else tuple(shape)
    if isinstance(dist, Uniform | Normal | TruncatedNormal) and region is None and _is_dtensor(tensor):
        from weightinit.torch.dtensor import place_sharded

        if place_sharded(tensor, _FixedDistribution(dist, stream), None, tensor.dtype):
            return tensor
    if tensor.is_complex():
        if region is not None:
            raise InitializerValueError("`region` is not supported for complex tensors")
        write_distribution(torch.view_as_real(tensor), _complex_part(dist), stream, shape=shape + (2,))
        return tensor
    np_dt = numpy_dtype(tensor.dtype, f"sampling {type(dist).__name__}")
    if tensor.numel() == 0:
        return tensor
    fill = executor_fill()
    with torch.no_grad():
        if fill is not None:
            fill(tensor, dist, stream, shape=shape, region=region)
        else:
            write_array(tensor, sample(dist, stream, shape, np_dt, region))
    _remember(tensor, dist)
    return tensor


def _is_dtensor(t) -> bool:
    return type(t).__name__ == "DTensor"


class _FixedDistribution:
    """An elementwise initializer of one distribution and one stream (what the DTensor path places)."""

    elementwise = True

    def __init__(self, dist, stream):
        self.dist, self.stream = dist, stream

    def distribution_for(self, shape):
        """The one distribution every value is drawn from."""
        return self.dist

    def stream_for_call(self, shape, dtype, stream=None):
        """The stream of this call: ``stream`` if given, else the fixed one."""
        return stream if stream is not None else self.stream

    def __call__(self, shape, dtype=None, *, region=None, stream=None):
        from weightinit.common.dtypes import standardize_dtype

        return sample(self.dist, stream or self.stream, tuple(shape), standardize_dtype(dtype), region)
