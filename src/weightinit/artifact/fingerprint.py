"""Digests of initialized tensors and models (docs/artifact.md, "The digest, version 1").

A tensor digest is computed from the tensor's values alone, in bounded memory,
and from any partition of the tensor into shards:

* the row-major flat values, each in its little-endian IEEE encoding
  (``float16``, ``bfloat16``, ``float32``, ``float64``; complex: real then
  imaginary part; integer and bool buffers: little-endian two's complement,
  one byte per bool), are cut into chunks of :data:`CHUNK` elements (the last
  one shorter);
* chunk ``k``'s leaf is ``SHA-256(bytes of chunk k)``;
* the digest is ``SHA-256(header || leaf_0 || ... || leaf_{K-1})``, the header
  being ``b"weightinit.tensor.v1\\0"``, the dtype name, ``b"\\0"``, the rank
  and each dimension as little-endian uint64, and :data:`CHUNK` as uint64.

A process holding a shard owns the chunks whose *first* element lies in its
shard, computes their leaves (generating the few values past its shard's
edge from the stream, which gives any value alone) and :func:`combine`
joins the leaves of all shards by chunk index: the result is the
single-device digest whatever the sharding.

A model digest is ``SHA-256(b"weightinit.model.v1\\0" || entries)`` over the
parameters and persistent buffers sorted by path, each entry the path's UTF-8 length (uint32 LE),
the path, and the tensor digest (32 bytes).
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, overload

import numpy as np

from weightinit.common.dtypes import standardize_dtype
from weightinit.common.errors import InitializerTypeError, InitializerValueError
from weightinit.common.shapes import normalize_shape

if TYPE_CHECKING:
    from weightinit.common.types import DTypeLike, InitializerLike
    from weightinit.random.streams import Stream

__all__ = [
    "fingerprint",
    "DIGEST_VERSION",
    "CHUNK",
    "BLOCK_CHUNKS",
    "TensorDigest",
    "ModelDigest",
    "ShardDigest",
    "ValueSource",
    "array_source",
    "initializer_source",
    "tensor_digest",
    "shard_digest",
    "combine",
    "model_digest",
    "owned_chunks",
]

DIGEST_VERSION = 1
"""Version of the digest definition; a change of any byte hashed is a new version."""

CHUNK = 1 << 16
"""Elements per hashed chunk (fixed by version 1)."""

BLOCK_CHUNKS = 64
"""Chunks generated per call when hashing (the bounded-memory term: ``CHUNK * BLOCK_CHUNKS`` values)."""

_TENSOR_TAG = b"weightinit.tensor.v1\0"
_MODEL_TAG = b"weightinit.model.v1\0"
_HASHED = (
    "float16",
    "bfloat16",
    "float32",
    "float64",
    "complex64",
    "complex128",
    # integers and bool: buffers (BatchNorm's num_batches_tracked is int64)
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "bool",
)


def _dtype(dtype) -> np.dtype:
    dt = standardize_dtype(str(dtype).replace("torch.", "") if not isinstance(dtype, np.dtype) else dtype)
    if dt.name not in _HASHED:
        raise InitializerValueError(
            f"`dtype` must be one of {', '.join(_HASHED)} for a digest; received dtype={dt.name!r}."
        )
    return dt


def header(shape: tuple[int, ...], dtype) -> bytes:
    """The bytes that open a tensor digest: tag, dtype name, rank, dimensions, chunk size."""
    dt = _dtype(dtype)
    return (
        _TENSOR_TAG
        + dt.name.encode("ascii")
        + b"\0"
        + struct.pack("<Q", len(shape))
        + b"".join(struct.pack("<Q", int(d)) for d in shape)
        + struct.pack("<Q", CHUNK)
    )


def n_chunks(numel: int) -> int:
    return -(-int(numel) // CHUNK)


@dataclass(frozen=True)
class TensorDigest:
    """The digest of one tensor: ``hex`` (64 hex digits), with the shape and dtype it was computed for."""

    hex: str
    shape: tuple
    dtype: str

    def __str__(self) -> str:
        return self.hex


@dataclass(frozen=True)
class ModelDigest:
    """The digest of a whole model (``hex``) and the digest of each parameter (``params``, path -> digest)."""

    hex: str
    params: dict = field(default_factory=dict)

    def __str__(self) -> str:
        return self.hex

    def __getitem__(self, path: str) -> TensorDigest:
        return self.params[path]


@dataclass
class ShardDigest:
    """Leaves (chunk index -> SHA-256 of the chunk) of the chunks one shard owns."""

    shape: tuple
    dtype: str
    leaves: dict = field(default_factory=dict)


class ValueSource:
    """The values of one tensor, any flat range generated alone: ``values(start, stop)`` (flat, row-major)."""

    def __init__(self, shape, dtype, values: Callable[[int, int], np.ndarray]) -> None:
        self.shape = normalize_shape(shape)
        self.dtype = _dtype(dtype)
        self.numel = int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1
        self._values = values

    def values(self, start: int, stop: int) -> np.ndarray:
        out = np.ascontiguousarray(self._values(start, stop)).reshape(-1)
        if out.size != stop - start:
            raise InitializerValueError(f"a value source gave {out.size} values for the range [{start}, {stop}).")
        return out


def rows_source(shape, dtype, rows: Callable[[int, int], np.ndarray]) -> ValueSource:
    """A source from ``rows(r0, r1)`` = ``x[r0:r1]`` (a region along the first axis, generated alone)."""
    shape = normalize_shape(shape)
    if len(shape) == 0:
        return ValueSource(shape, dtype, lambda a, b: np.asarray(rows(0, 1)).reshape(-1)[a:b])
    row = int(np.prod(shape[1:], dtype=np.int64)) if len(shape) > 1 else 1

    def values(a: int, b: int) -> np.ndarray:
        if b <= a:
            return np.empty(0, dtype=standardize_dtype(dtype))
        r0, r1 = a // row, -(-b // row)
        block = np.asarray(rows(r0, r1)).reshape(-1)
        return block[a - r0 * row : b - r0 * row]

    return ValueSource(shape, dtype, values)


def array_source(arr) -> ValueSource:
    """A source reading an in-memory array (NumPy, or anything ``np.asarray`` takes)."""
    a = np.asarray(arr)
    flat = a.reshape(-1)
    return ValueSource(a.shape, a.dtype, lambda s, e: flat[s:e])


def initializer_source(initializer, shape, dtype, stream) -> ValueSource:
    """The values ``initializer(shape, dtype, stream=stream)`` gives, by regions of rows when it is elementwise."""
    from weightinit.initializers.base import BuiltinInitializer, Initializer, generate
    from weightinit.random.streams import Stream

    if isinstance(initializer, (str, dict)):
        from weightinit.registry.api import get

        initializer = get(initializer)
    if not isinstance(initializer, Initializer) and not callable(initializer):
        raise InitializerTypeError(
            f"`initializer` must be a weightinit initializer, a name or a config; received {initializer!r}."
        )
    if not isinstance(stream, Stream):
        raise InitializerTypeError(
            f"`stream` must be a weightinit.Stream (e.g. wi.Stream(0)); received stream={stream!r}."
        )
    shape = normalize_shape(shape)
    dt = _dtype(dtype)
    if dt.kind not in "fVc" and dt.name != "bfloat16":
        raise InitializerValueError(
            f"`dtype` must be a floating-point or complex dtype for an initializer's digest (integer and bool "
            f"digests are for a model's buffers); received dtype={dt.name!r}."
        )
    if isinstance(initializer, BuiltinInitializer) and initializer.elementwise and len(shape) > 0:
        return rows_source(
            shape, dt, lambda r0, r1: generate(initializer, shape, dt, region=(slice(r0, r1),), stream=stream)
        )
    full = {}

    def whole(r0: int, r1: int) -> np.ndarray:
        if "x" not in full:  # not elementwise: generated once, whole (the only O(tensor) case)
            full["x"] = np.asarray(generate(initializer, shape, dt, stream=stream))
        x = full["x"]
        return x[r0:r1] if x.ndim else x.reshape(1)

    return rows_source(shape, dt, whole)


def _leaf(values: np.ndarray) -> bytes:
    v = values if values.dtype.byteorder in "=|<" else values.astype(values.dtype.newbyteorder("<"))
    return hashlib.sha256(np.ascontiguousarray(v).view(np.uint8).data).digest()


def owned_chunks(shape: tuple[int, ...], indices: Sequence[np.ndarray] | None) -> np.ndarray:
    """Indices of the chunks whose first element lies in a shard.

    ``indices[d]`` are the global indices along dimension ``d`` the shard
    holds (an array, as :func:`weightinit.torch.dtensor.local_indices` gives,
    or a slice, as a JAX sharding's ``devices_indices_map`` gives); ``None``
    means the whole tensor.
    """
    numel = int(np.prod(shape, dtype=np.int64)) if shape else 1
    k = np.arange(n_chunks(numel), dtype=np.int64)
    if indices is None or not len(k):
        return k
    if len(shape) == 0:
        return k
    coords = np.unravel_index(k * CHUNK, shape)
    keep = np.ones(len(k), dtype=bool)
    for d, ix in enumerate(tuple(indices) + (slice(None),) * (len(shape) - len(indices))):
        if isinstance(ix, slice):
            ix = np.arange(*ix.indices(shape[d]), dtype=np.int64)
        keep &= np.isin(coords[d], np.asarray(ix, dtype=np.int64))
    return k[keep]


def _leaves(source: ValueSource, chunks: Iterable[int]) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    chunks = list(int(c) for c in chunks)
    i = 0
    while i < len(chunks):  # group runs of consecutive chunks into blocks generated in one call
        j = i + 1
        while j < len(chunks) and j - i < BLOCK_CHUNKS and chunks[j] == chunks[j - 1] + 1:
            j += 1
        a, b = chunks[i] * CHUNK, min(chunks[j - 1] * CHUNK + CHUNK, source.numel)
        block = source.values(a, b)
        for c in range(chunks[i], chunks[j - 1] + 1):
            s = c * CHUNK - a
            out[c] = _leaf(block[s : s + CHUNK])
        i = j
    return out


def _finish(shape, dtype, leaves: Mapping[int, bytes]) -> TensorDigest:
    dt = _dtype(dtype)
    numel = int(np.prod(shape, dtype=np.int64)) if shape else 1
    h = hashlib.sha256(header(tuple(shape), dt))
    for k in range(n_chunks(numel)):
        h.update(leaves[k])
    return TensorDigest(h.hexdigest(), tuple(int(s) for s in shape), dt.name)


def tensor_digest(source: ValueSource) -> TensorDigest:
    """The digest of the tensor a :class:`ValueSource` gives (streamed, ``CHUNK * BLOCK_CHUNKS`` values at a time)."""
    return _finish(source.shape, source.dtype, _leaves(source, range(n_chunks(source.numel))))


def shard_digest(source: ValueSource, indices: Sequence[np.ndarray] | None) -> ShardDigest:
    """The leaves of the chunks a shard owns (see :func:`owned_chunks`); :func:`combine` joins shards."""
    chunks = owned_chunks(source.shape, indices)
    return ShardDigest(source.shape, source.dtype.name, _leaves(source, chunks))


def combine(shards: Iterable[ShardDigest]) -> TensorDigest:
    """The tensor digest from the :class:`ShardDigest` of every shard (replicated shards may repeat chunks)."""
    shards = list(shards)
    if not shards:
        raise InitializerValueError("`shards` must hold at least one ShardDigest; received none.")
    shape, dtype = tuple(shards[0].shape), shards[0].dtype
    leaves: dict[int, bytes] = {}
    for s in shards:
        if tuple(s.shape) != shape or s.dtype != dtype:
            raise InitializerValueError(
                f"shards of one tensor must agree on shape and dtype; received {shape} {dtype} and "
                f"{tuple(s.shape)} {s.dtype}."
            )
        for k, leaf in s.leaves.items():
            if leaves.setdefault(int(k), leaf) != leaf:
                raise InitializerValueError(
                    f"two shards hold different values for chunk {k} (elements from {k * CHUNK})."
                )
    numel = int(np.prod(shape, dtype=np.int64)) if shape else 1
    missing = [k for k in range(n_chunks(numel)) if k not in leaves]
    if missing:
        raise InitializerValueError(
            f"the shards do not cover the tensor: {len(missing)} chunk(s) missing, the first at element "
            f"{missing[0] * CHUNK} (chunk {missing[0]})."
        )
    return _finish(shape, dtype, leaves)


def model_digest(params: Mapping[str, TensorDigest]) -> ModelDigest:
    """The model digest of per-parameter digests (sorted by path; see the module docstring)."""
    h = hashlib.sha256(_MODEL_TAG)
    for path in sorted(params):
        p = path.encode("utf-8")
        h.update(struct.pack("<I", len(p)) + p + bytes.fromhex(params[path].hex))
    return ModelDigest(h.hexdigest(), {k: params[k] for k in sorted(params)})


def _is_shape(x) -> bool:
    if isinstance(x, (int, np.integer)) and not isinstance(x, bool):
        return True
    return isinstance(x, (tuple, list)) and all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) for d in x)


@overload
def fingerprint(
    obj: InitializerLike, shape: int | Sequence[int], dtype: DTypeLike, stream: Stream, /, *, shard: None = None
) -> TensorDigest: ...
@overload
def fingerprint(
    obj: InitializerLike, shape: int | Sequence[int], dtype: DTypeLike, stream: Stream, /, *, shard: Sequence[Any]
) -> ShardDigest: ...
@overload
def fingerprint(obj: Any, recipe: Any = None, seed: int | None = None, /, **kwargs: Any) -> ModelDigest: ...
def fingerprint(obj: Any, *args: Any, shard: Any = None, **kwargs: Any) -> TensorDigest | ShardDigest | ModelDigest:
    """Digest of the values an initializer, or a whole-model recipe, would produce (nothing is kept in memory).

    Two forms:

    * ``fingerprint(initializer, shape, dtype, stream)`` -> :class:`TensorDigest`
      of ``initializer(shape, dtype, stream=stream)``.  With ``shard=`` (the
      indices a shard holds per dimension, arrays or slices) it returns that
      shard's :class:`ShardDigest`; :func:`combine` of all shards equals the
      whole tensor's digest.
    * ``fingerprint(model, recipe, seed)`` -> :class:`ModelDigest` of what
      ``weightinit.torch.initialize(model, recipe, seed=seed)`` writes: one
      digest per parameter (tied ones once, under their canonical path) and
      per persistent buffer (BatchNorm statistics, as the model's code
      computes them; docs/artifact.md, section 1), and one for the model.  ``model`` is an ``nn.Module`` (best on the meta
      device) or a MODEL_SPEC string (:mod:`weightinit.artifact.models`).
      Parameters that are DTensors are hashed shard by shard on every rank
      and combined with one ``all_gather_object`` (call it on every rank).
      Further keyword arguments go to :func:`weightinit.torch.plan`.

    The digest is defined in docs/artifact.md (SHA-256 over chunks of
    :data:`CHUNK` elements of the little-endian row-major values, version 1).

    >>> import weightinit as wi
    >>> d = wi.fingerprint("glorot_uniform", (256, 128), "float32", wi.Stream(0))
    >>> d.hex == wi.fingerprint(wi.GlorotUniform(), (256, 128), "float32", wi.Stream(0)).hex
    True
    >>> d.hex == wi.fingerprint("glorot_uniform", (256, 128), "float32", wi.Stream(1)).hex
    False
    """
    if args and _is_shape(args[0]):
        if len(args) != 3:
            raise InitializerTypeError(
                "fingerprint(initializer, shape, dtype, stream) takes exactly these four arguments; received "
                f"{1 + len(args)}."
            )
        shape, dtype, stream = args
        source = initializer_source(
            obj, (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape), dtype, stream
        )
        return tensor_digest(source) if shard is None else shard_digest(source, shard)
    if shard is not None:
        raise InitializerTypeError("`shard` applies to fingerprint(initializer, shape, dtype, stream) only.")
    if len(args) > 2:
        raise InitializerTypeError(f"fingerprint(model, recipe, seed) takes three arguments; received {1 + len(args)}.")
    recipe = args[0] if args else kwargs.pop("recipe", None)
    seed = args[1] if len(args) > 1 else kwargs.pop("seed", None)
    from weightinit.artifact._torch import model_fingerprint

    return model_fingerprint(obj, recipe, seed, **kwargs)
