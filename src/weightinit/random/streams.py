"""Streams: 64-bit Philox keys derived from seeds and names.

A :class:`Stream` is an immutable 64-bit key.  Every tensor is generated from
one stream; the value at row-major flat index ``i`` depends only on
``(stream.key, i)`` (docs/random.md, "Counters").  Streams are derived, never
advanced:

* ``Stream.from_seed(s)``: ``key = philox((s_lo, s_hi, 0, 0), SEED_DOMAIN)[:2]``
* ``stream.child(name)``: ``philox((h0, h1, h2, TAG_CHILD), key)[:2]`` where
  ``h0..h2`` are the first 12 bytes of SHA-256(name), little-endian
* ``stream.fold_in(n)``: ``philox((n_lo, n_hi, 0, TAG_FOLD), key)[:2]``

Data blocks use counters ``(j_lo, j_hi, 0, 0)``; derivations use a non-zero
fourth word, so no derivation ever reuses a data counter of the same key.
"""

from __future__ import annotations

import hashlib
import numbers
import struct

import numpy as np

from weightinit.common.errors import type_error, value_error
from weightinit.random.constants import SEED_DOMAIN, TAG_CHILD, TAG_DEFAULT, TAG_FOLD
from weightinit.random.philox import philox4x32_scalar

__all__ = ["Stream", "SEED_DOMAIN", "TAG_CHILD", "TAG_FOLD", "TAG_DEFAULT", "check_seed"]

_U64 = 1 << 64


def check_seed(seed, arg: str = "seed") -> int:
    """Validate an integer seed: a non-negative int (or NumPy integer) below 2**64."""
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral):
        raise type_error(
            arg,
            seed,
            "must be a non-negative int below 2**64, a weightinit.SeedGenerator, a weightinit.Stream, or None",
        )
    s = int(seed)
    if not 0 <= s < _U64:
        raise value_error(arg, s, "must be in [0, 2**64)", "Reduce it, e.g. with `seed % 2**64`.")
    return s


def _derive(counter: tuple[int, int, int, int], key: tuple[int, int]) -> tuple[int, int]:
    out = philox4x32_scalar(counter, key)
    return out[0], out[1]


class Stream:
    """An immutable 64-bit Philox key from which one tensor, or child streams, are generated.

    Args:
      seed: a non-negative int below 2**64.  ``Stream(seed)`` equals
        ``Stream.from_seed(seed)``.

    Example:
      >>> root = Stream(0)
      >>> root.child("dense_1/kernel") == Stream(0).child("dense_1/kernel")
      True
      >>> root.child("dense_1/kernel") == root.child("dense_1/bias")
      False
    """

    __slots__ = ("_key",)

    def __init__(self, seed: int = 0) -> None:
        s = check_seed(seed)
        self._key = _derive((s & 0xFFFFFFFF, s >> 32, 0, 0), SEED_DOMAIN)

    @classmethod
    def from_seed(cls, seed: int) -> Stream:
        """The stream of an integer seed (non-negative, below 2**64)."""
        return cls(seed)

    @classmethod
    def from_key(cls, key: tuple[int, int]) -> Stream:
        """A stream with an explicit raw key ``(k0, k1)`` of two 32-bit words."""
        if len(key) != 2 or not all(isinstance(k, numbers.Integral) and 0 <= int(k) < 2**32 for k in key):
            raise value_error("key", key, "must be two integers in [0, 2**32)")
        obj = cls.__new__(cls)
        obj._key = (int(key[0]), int(key[1]))
        return obj

    @property
    def key(self) -> tuple[int, int]:
        """The two 32-bit key words ``(k0, k1)``."""
        return self._key

    def child(self, name: str) -> Stream:
        """The child stream named ``name`` (e.g. a parameter path); independent of any traversal order."""
        if not isinstance(name, str):
            raise type_error("name", name, "must be a str, such as 'encoder/layer_0/kernel'")
        try:
            encoded = name.encode("utf-8")
        except UnicodeEncodeError:
            raise value_error("name", name, "must be valid Unicode text (it contains a lone surrogate)") from None
        h = hashlib.sha256(encoded).digest()
        h0, h1, h2 = struct.unpack("<3I", h[:12])
        return Stream.from_key(_derive((h0, h1, h2, TAG_CHILD), self._key))

    def fold_in(self, n: int) -> Stream:
        """The child stream numbered ``n`` (a non-negative int below 2**64)."""
        n = check_seed(n, "n")
        return Stream.from_key(_derive((n & 0xFFFFFFFF, n >> 32, 0, TAG_FOLD), self._key))

    def to_int(self) -> int:
        """The key as one 64-bit integer ``k0 | k1 << 32``."""
        return self._key[0] | (self._key[1] << 32)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Stream) and other._key == self._key

    def __hash__(self) -> int:
        return hash(("weightinit.Stream", self._key))

    def __repr__(self) -> str:
        return f"Stream(key=(0x{self._key[0]:08x}, 0x{self._key[1]:08x}))"

    def get_config(self) -> dict:
        """Serializable form: the raw key."""
        return {"key": list(self._key)}

    @classmethod
    def from_config(cls, config: dict) -> Stream:
        return cls.from_key(tuple(config["key"]))
