"""Seed rules: int seeds, ``None`` seeds, ``SeedGenerator`` and ``set_seed``.

* An int seed names one stream: the same values on every call and for every
  instance.
* ``None`` draws a 64-bit seed once, when the initializer is built: from
  :func:`set_seed`'s sequence if it was called, else from OS entropy.  One
  instance repeats; two instances differ; ``clone``/``from_config`` draw anew.
* A :class:`SeedGenerator` gives a new stream on every call: call ``k`` of
  ``SeedGenerator(s)`` uses ``Stream(s).fold_in(k)``, so its streams never
  overlap those of int seeds (unlike Keras' torch backend, where call ``k``
  of ``SeedGenerator(s)`` equals seed ``s + k``).
"""

from __future__ import annotations

import secrets
import threading
from typing import Union

import numpy as np

from weightinit.common.errors import type_error
from weightinit.random.philox import philox4x32_scalar
from weightinit.random.streams import TAG_DEFAULT, Stream, check_seed

__all__ = [
    "SeedGenerator",
    "set_seed",
    "draw_default_seed",
    "resolve_seed_argument",
    "serialize_seed",
    "deserialize_seed",
    "SeedLike",
]

_lock = threading.Lock()
_global = {"stream": None, "count": 0}


def set_seed(seed: int | None) -> None:
    """Make unseeded initializers reproducible.

    After ``set_seed(s)``, the n-th initializer built with ``seed=None`` gets
    the same 64-bit seed in every run.  ``set_seed(None)`` returns to OS
    entropy.

    >>> import weightinit as wi
    >>> wi.set_seed(0); a = wi.HeNormal()((2, 2))
    >>> wi.set_seed(0); b = wi.HeNormal()((2, 2))
    >>> bool((a == b).all())
    True
    >>> wi.set_seed(None)
    """
    with _lock:
        if seed is None:
            _global["stream"] = None
        else:
            _global["stream"] = Stream(check_seed(seed))
        _global["count"] = 0


def draw_default_seed() -> int:
    """A fresh 64-bit seed for an unseeded initializer (see :func:`set_seed`)."""
    with _lock:
        stream = _global["stream"]
        if stream is None:
            return secrets.randbits(64)
        n = _global["count"]
        _global["count"] = n + 1
    w = philox4x32_scalar((n & 0xFFFFFFFF, n >> 32, 0, TAG_DEFAULT), stream.key)
    return w[0] | (w[1] << 32)


class SeedGenerator:
    """A seed that gives a new stream on every call of the initializer using it.

    Args:
      seed: the initial seed, a non-negative int below 2**64; ``None`` draws
        one (from :func:`set_seed`'s sequence if set, else OS entropy).
      name: an optional name, kept in the config for Keras compatibility.

    The config stores the *initial* seed, so a deserialized generator restarts
    its sequence.

    >>> g = SeedGenerator(5)
    >>> g.next_stream() == Stream(5).fold_in(0), g.next_stream() == Stream(5).fold_in(1)
    (True, True)
    """

    def __init__(self, seed: int | None = None, name: str | None = None, **kwargs) -> None:
        # ``dtype`` and ``backend`` keys appear in Keras configs; they carry no meaning here.
        unknown = set(kwargs) - {"dtype", "backend"}
        if unknown:
            raise type_error(
                "kwargs", sorted(unknown), "contains unknown arguments; SeedGenerator takes `seed` and `name`"
            )
        self._init_seed = seed
        self.seed = check_seed(seed) if seed is not None else draw_default_seed()
        self.name = name
        self._count = 0
        self._lock = threading.Lock()

    def next_stream(self) -> Stream:
        """The next stream of the sequence; advances the generator."""
        with self._lock:
            n = self._count
            self._count += 1
        return Stream(self.seed).fold_in(n)

    def get_config(self) -> dict:
        return {"seed": self.seed, "name": self.name}

    @classmethod
    def from_config(cls, config: dict) -> SeedGenerator:
        return cls(**config)

    def __repr__(self) -> str:
        return f"SeedGenerator(seed={self.seed}, calls={self._count})"


SeedLike = Union[int, np.integer, SeedGenerator, Stream, None]
"""An initializer seed: a non-negative int below 2**64, a SeedGenerator, a Stream, or None."""


def resolve_seed_argument(seed):
    """Validate an initializer's ``seed`` argument at construction.

    Returns ``(seed, fixed_stream)``: the validated seed object and, for int
    and ``None`` seeds, the one stream the instance will always use (``None``
    for a SeedGenerator, which yields a new stream per call).
    """
    if seed is None:
        return None, Stream(draw_default_seed())
    if isinstance(seed, SeedGenerator):
        return seed, None
    if isinstance(seed, Stream):
        return seed, seed
    if isinstance(seed, dict):
        return resolve_seed_argument(deserialize_seed(seed))
    s = check_seed(seed)
    return s, Stream(s)


def serialize_seed(seed):
    """The config form of a seed argument: an int, None, or a dict for SeedGenerator/Stream."""
    if isinstance(seed, SeedGenerator):
        return {
            "module": "weightinit",
            "class_name": "SeedGenerator",
            "config": seed.get_config(),
            "registered_name": None,
        }
    if isinstance(seed, Stream):
        return {"module": "weightinit", "class_name": "Stream", "config": seed.get_config(), "registered_name": None}
    return seed


def deserialize_seed(config):
    """Inverse of :func:`serialize_seed`; also reads Keras' serialized ``keras.random.SeedGenerator``."""
    if not isinstance(config, dict):
        return config
    name = config.get("class_name")
    inner = config.get("config", {})
    if name == "SeedGenerator":
        return SeedGenerator(seed=inner.get("seed"), name=inner.get("name"))
    if name == "Stream":
        return Stream.from_config(inner)
    raise type_error("seed", config, "is a dict that is neither a serialized SeedGenerator nor a Stream")
