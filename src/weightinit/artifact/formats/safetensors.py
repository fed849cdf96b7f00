"""The safetensors format, written in place and read by slices, without the whole tensor set in memory.

A file is an 8-byte little-endian header length ``N``, ``N`` bytes of JSON
(``{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__":
{...}}``, padded with spaces to a multiple of 8), then the tensors' bytes,
row-major, little-endian, at their offsets.  Because the header is known
before any value is generated, a file is allocated at its final size and
each tensor's bytes are written at their offset by whichever process owns
them (``os.pwrite``), so N writers produce the same bytes as one.

Hugging Face's sharded layout: ``model-00001-of-0000K.safetensors`` files and
``model.safetensors.index.json`` (``{"metadata": {"total_size": ...},
"weight_map": {name: file}}``); a single file is named ``model.safetensors``.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from weightinit.artifact.errors import CheckpointError

__all__ = ["DTYPE_CODES", "FileLayout", "plan_files", "write_header", "Reader", "INDEX_NAME", "SINGLE_NAME"]

DTYPE_CODES = {
    "float16": "F16",
    "bfloat16": "BF16",
    "float32": "F32",
    "float64": "F64",
    # buffers (BatchNorm's num_batches_tracked is int64)
    "int8": "I8",
    "int16": "I16",
    "int32": "I32",
    "int64": "I64",
    "uint8": "U8",
    "bool": "BOOL",
}
_NAMES = {v: k for k, v in DTYPE_CODES.items()}
INDEX_NAME = "model.safetensors.index.json"
SINGLE_NAME = "model.safetensors"


@dataclass
class FileLayout:
    """One safetensors file: its name, header bytes and each tensor's absolute byte offset."""

    name: str
    header: bytes
    tensors: dict = field(default_factory=dict)  # name -> (absolute offset, nbytes, shape, dtype name)

    @property
    def size(self) -> int:
        return len(self.header) + sum(t[1] for t in self.tensors.values())


def _layout(name: str, tensors: Sequence[tuple[str, tuple, str]], metadata: dict) -> FileLayout:
    entries, pos = {}, 0
    sizes = {}
    for tname, shape, dtype in tensors:
        if dtype not in DTYPE_CODES:
            raise CheckpointError(
                f"safetensors cannot hold {tname} of dtype {dtype}; supported: {sorted(DTYPE_CODES)}."
            )
        n = int(np.prod(shape, dtype=np.int64)) * np.dtype(_np_dtype(dtype)).itemsize
        entries[tname] = {"dtype": DTYPE_CODES[dtype], "shape": [int(s) for s in shape], "data_offsets": [pos, pos + n]}
        sizes[tname] = (pos, n, tuple(shape), dtype)
        pos += n
    head = {"__metadata__": {k: str(v) for k, v in metadata.items()}, **entries}
    text = json.dumps(head, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    header = struct.pack("<Q", len(text)) + text
    return FileLayout(name, header, {t: (len(header) + o, n, s, d) for t, (o, n, s, d) in sizes.items()})


def _np_dtype(name: str) -> np.dtype:
    from weightinit.common.dtypes import standardize_dtype

    return standardize_dtype(name)


def plan_files(tensors: Sequence[tuple[str, tuple, str]], max_shard_bytes: int, metadata: dict) -> list[FileLayout]:
    """Split tensors, in order, into files of at most ``max_shard_bytes`` (a larger tensor gets its own file)."""
    groups: list[list] = [[]]
    size = 0
    for t in tensors:
        n = int(np.prod(t[1], dtype=np.int64)) * _np_dtype(t[2]).itemsize
        if groups[-1] and size + n > max_shard_bytes:
            groups.append([])
            size = 0
        groups[-1].append(t)
        size += n
    k = len(groups)
    names = [SINGLE_NAME] if k == 1 else [f"model-{i + 1:05d}-of-{k:05d}.safetensors" for i in range(k)]
    return [_layout(n, g, metadata) for n, g in zip(names, groups)]


def write_header(path: str, layout: FileLayout) -> None:
    """Create ``path`` at its final size with the header written (the data is filled in later by offset)."""
    with open(path, "wb") as f:
        f.write(layout.header)
        f.truncate(layout.size)


class Reader:
    """Tensors of a safetensors checkpoint (a file, or a directory with ``model.safetensors[.index.json]``).

    Validates every file's header and size up front (a truncated file is a
    :class:`CheckpointError` naming it), then reads rows of a tensor on demand.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        if os.path.isdir(path):
            index = os.path.join(path, INDEX_NAME)
            if os.path.exists(index):
                try:
                    with open(index, encoding="utf-8") as f:
                        weight_map = json.load(f)["weight_map"]
                except (OSError, ValueError, KeyError, TypeError) as e:
                    raise CheckpointError(f"{index} is not a safetensors index ({type(e).__name__}: {e}).") from None
                files = sorted(set(weight_map.values()))
            elif os.path.exists(os.path.join(path, SINGLE_NAME)):
                files = [SINGLE_NAME]
            else:
                raise CheckpointError(f"{path} holds neither {INDEX_NAME} nor {SINGLE_NAME}.")
            paths = [os.path.join(path, f) for f in files]
        else:
            paths = [path]
        self.tensors: dict = {}  # name -> (file path, absolute offset, nbytes, shape, dtype name)
        self.metadata: dict = {}
        for p in paths:
            self._read_header(p)

    def _read_header(self, p: str) -> None:
        try:
            size = os.path.getsize(p)
            with open(p, "rb") as f:
                raw = f.read(8)
                if len(raw) < 8:
                    raise CheckpointError(f"{p} is truncated: {size} bytes, not even a safetensors header length.")
                (n,) = struct.unpack("<Q", raw)
                if 8 + n > size:
                    raise CheckpointError(f"{p} is truncated: its header needs {8 + n} bytes, the file has {size}.")
                head = json.loads(f.read(n))
        except OSError as e:
            raise CheckpointError(f"cannot read {p} ({e}).") from None
        except ValueError as e:
            raise CheckpointError(f"{p} is not a safetensors file: its header is not JSON ({e}).") from None
        self.metadata.update(head.pop("__metadata__", None) or {})
        end = 0
        for name, info in head.items():
            try:
                dtype = _NAMES[info["dtype"]]
                b, e = (int(x) for x in info["data_offsets"])
                shape = tuple(int(s) for s in info["shape"])
            except (KeyError, TypeError, ValueError):
                raise CheckpointError(
                    f"{p}: tensor {name} has dtype {info.get('dtype') if isinstance(info, dict) else info!r}, which "
                    f"weightinit does not read (supported: {sorted(_NAMES)}), or a malformed entry."
                ) from None
            if e - b != int(np.prod(shape, dtype=np.int64)) * _np_dtype(dtype).itemsize:
                raise CheckpointError(f"{p}: tensor {name}'s byte range [{b}, {e}) does not fit its shape {shape}.")
            self.tensors[name] = (p, 8 + n + b, e - b, shape, dtype)
            end = max(end, e)
        if 8 + n + end > size:
            raise CheckpointError(
                f"{p} is truncated: its tensors end at byte {8 + n + end}, the file has {size} bytes "
                f"(a run killed while writing, or an incomplete copy)."
            )

    def rows(self, name: str, r0: int, r1: int) -> np.ndarray:
        """Rows ``[r0, r1)`` of tensor ``name`` (the flat values of a 0-d tensor)."""
        p, off, _nbytes, shape, dtype = self.tensors[name]
        dt = _np_dtype(dtype)
        row = int(np.prod(shape[1:], dtype=np.int64)) if len(shape) > 1 else 1
        if not shape:
            r0, r1 = 0, 1
        count = (r1 - r0) * row
        with open(p, "rb") as f:
            f.seek(off + r0 * row * dt.itemsize)
            buf = f.read(count * dt.itemsize)
        if len(buf) != count * dt.itemsize:
            raise CheckpointError(f"{p} is truncated inside tensor {name}.")
        return np.frombuffer(buf, dtype=dt)  # little-endian hosts (x86, ARM) read the bytes as they are
