"""Base classes: :class:`Initializer` (the public contract) and the machinery of built-ins."""

from __future__ import annotations

import inspect
import math
import warnings
from typing import Any, ClassVar

import numpy as np

from weightinit.common.dtypes import standardize_dtype
from weightinit.common.errors import UnseededReuseWarning, type_error
from weightinit.common.shapes import normalize_region, normalize_shape
from weightinit.common.types import DTypeLike, InitializerProtocol, Region, Shape
from weightinit.common.validate import allocation, representable
from weightinit.random.seeds import SeedGenerator, resolve_seed_argument, serialize_seed
from weightinit.random.streams import Stream

__all__ = ["Initializer", "BuiltinInitializer", "RandomInitializer", "generate"]


class Initializer:
    """Base class of all initializers, with Keras' contract.

    An initializer is called as ``init(shape, dtype=None)`` and returns an
    array of that shape and dtype (a NumPy array for weightinit's own
    initializers).  Subclasses implement ``__call__`` and, for serialization,
    ``get_config``; the default :meth:`from_config` is ``cls(**config)``.

    weightinit's built-ins also accept two keyword-only arguments (and refuse
    Keras' ``layout``: they return NumPy arrays, so they leave placement to
    the caller; Keras then shards the array itself, and
    ``weightinit.keras`` adapters build it sharded):

    * ``region``: a tuple of slices; the call returns exactly
      ``init(shape, dtype)[region]`` without generating the rest.
    * ``stream``: a :class:`weightinit.Stream` that replaces the instance's
      seed for this call (whole-model initialization uses one per parameter).

    Example, a custom initializer as the Keras docs describe it:

    >>> import weightinit as wi
    >>> class ExampleRandomNormal(wi.Initializer):
    ...     def __init__(self, mean, stddev):
    ...         self.mean = mean
    ...         self.stddev = stddev
    ...     def __call__(self, shape, dtype=None):
    ...         return wi.random.normal(shape, mean=self.mean, stddev=self.stddev, dtype=dtype, seed=0)
    ...     def get_config(self):
    ...         return {"mean": self.mean, "stddev": self.stddev}
    >>> ExampleRandomNormal(0.0, 1.0).clone()((2,)).shape
    (2,)
    """

    def __call__(self, shape: Shape, dtype: DTypeLike = None, **kwargs) -> Any:
        raise NotImplementedError("Initializer subclasses must implement the `__call__()` method.")

    def get_config(self) -> dict:
        """The constructor arguments that rebuild this initializer (JSON-serializable)."""
        return {}

    @classmethod
    def from_config(cls, config: dict) -> Initializer:
        """Rebuild an initializer from :meth:`get_config`'s output."""
        return cls(**config)

    def clone(self) -> Initializer:
        """A new instance with the same config (an unseeded one draws a new seed)."""
        return self.__class__.from_config(self.get_config())

    def __repr__(self) -> str:
        try:
            cfg = self.get_config()
        except Exception:  # pragma: no cover - user subclasses
            cfg = {}
        args = ", ".join(f"{k}={v!r}" for k, v in cfg.items())
        return f"{type(self).__name__}({args})"


class BuiltinInitializer(Initializer):
    """weightinit's own initializers: validated shapes and dtypes, regions, streams.

    Subclasses set ``elementwise`` (True when a region can be generated alone)
    and implement ``_generate(shape, dtype, region, stream)`` and
    ``_check_dtype(dtype)``.  Class attributes ``group`` and ``formula`` feed
    ``weightinit list`` and docs/catalog.md.
    """

    elementwise: ClassVar[bool] = True
    exact_params: ClassVar[tuple[str, ...]] = ()
    """Scalar attributes written into the output as they are (gains): each must be representable in the dtype."""
    group: ClassVar[str] = "other"
    formula: ClassVar[str] = ""

    def __call__(
        self,
        shape: Shape,
        dtype: DTypeLike = None,
        *,
        region: Region | slice | None = None,
        stream: Stream | None = None,
        **unsupported: Any,
    ) -> np.ndarray:
        if unsupported:
            _refuse(type(self).__name__, unsupported)
        shape = normalize_shape(shape)
        dt = self._check_dtype(dtype)
        normalize_region(region, shape)
        if stream is not None and not isinstance(stream, Stream):
            raise type_error("stream", stream, "must be a weightinit.Stream or None", "Build one with wi.Stream(seed).")
        self._check_shape(shape)
        for name in self.exact_params:
            representable(name, getattr(self, name), dt, type(self).__name__)
        ranges = normalize_region(region, shape)
        n_out = (
            math.prod(len(range(*r)) for r in ranges) if ranges is not None and self.elementwise else math.prod(shape)
        )
        allocation(n_out, dt, "shape", shape)
        if region is not None and not self.elementwise:
            return np.ascontiguousarray(self._generate(shape, dt, None, stream)[region])
        return self._generate(shape, dt, region, stream)

    def _check_shape(self, shape: tuple[int, ...]) -> None:
        """Raise for shapes the initializer cannot fill (rank checks)."""

    def _check_dtype(self, dtype) -> np.dtype:  # pragma: no cover - abstract
        raise NotImplementedError

    def _generate(self, shape, dtype, region, stream) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError


def _refuse(who: str, unsupported: dict) -> None:
    """Reject keyword arguments a built-in does not take; ``layout`` with the reason and the alternative."""
    if "layout" in unsupported:
        raise type_error(
            "layout",
            unsupported["layout"],
            f"is not accepted by weightinit's core {who}, which returns a NumPy array and cannot place it on devices",
            f"Under Keras use weightinit.keras.{who} (it builds the array sharded by `layout` on the JAX backend); "
            "or generate one shard with `region=`.",
        )
    name = sorted(unsupported)[0]
    raise type_error(name, unsupported[name], f"is not an argument of {who}.__call__ (shape, dtype, region, stream)")


class RandomInitializer(BuiltinInitializer):
    """Built-ins that draw from a stream; handles the seed rules of :mod:`weightinit.random.seeds`."""

    def __init__(self, seed=None) -> None:
        self.seed, self._stream = resolve_seed_argument(seed)
        self._init_seed = None if seed is None else self.seed
        self._first_call = None
        self._warned = False

    def stream_for_call(self, shape, dtype, stream=None) -> Stream:
        """The stream one call for a weight of ``shape``/``dtype`` uses.

        ``stream`` (if given) wins; a SeedGenerator advances; an unseeded
        instance warns once when reused for a different weight.  Adapters that
        generate on a device call this, then :meth:`distribution_for`.
        """
        return self._stream_for_call(stream, (tuple(shape), standardize_dtype(dtype).name))

    def _stream_for_call(self, stream, signature) -> Stream:
        if stream is not None:
            return stream
        if isinstance(self.seed, SeedGenerator):
            return self.seed.next_stream()
        if self._init_seed is None:
            if self._first_call is None:
                self._first_call = signature
            elif signature != self._first_call and not self._warned:
                self._warned = True
                warnings.warn(
                    f"{type(self).__name__} is unseeded and was called for a second, different weight "
                    f"(shape {signature[0]} {signature[1]} after {self._first_call[0]} {self._first_call[1]}). "
                    "An unseeded instance draws its seed once, so every weight it initializes comes from the same "
                    "stream and the weights are correlated. Pass a distinct `seed=` per weight, pass a "
                    "weightinit.SeedGenerator, or call `.clone()` for each weight.",
                    UnseededReuseWarning,
                    stacklevel=4,
                )
        assert self._stream is not None  # int and None seeds fix the stream at construction
        return self._stream

    def _generate(self, shape, dtype, region, stream) -> np.ndarray:
        return self._sample(shape, dtype, region, self._stream_for_call(stream, (shape, dtype.name)))

    def _sample(self, shape, dtype, region, stream: Stream) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def get_config(self) -> dict:
        return {"seed": serialize_seed(self._init_seed)}


def generate(
    init: InitializerProtocol,
    shape: Shape,
    dtype: DTypeLike = None,
    *,
    region: Region | slice | None = None,
    stream: Stream | None = None,
):
    """Call any initializer with optional ``region``/``stream``, falling back gracefully.

    weightinit's built-ins take ``region`` and ``stream`` directly.  For a
    user's callable that does not, the whole tensor is generated and sliced,
    and ``stream`` is ignored (the callable owns its randomness).
    """
    if isinstance(init, BuiltinInitializer):
        return init(shape, dtype, region=region, stream=stream)
    params = _accepted_kwargs(init)
    kwargs = {}
    if region is not None and "region" in params:
        kwargs["region"] = region
    if stream is not None and "stream" in params:
        kwargs["stream"] = stream
    out = np.asarray(init(shape, dtype, **kwargs))
    if region is not None and "region" not in kwargs:
        out = out[region]
    return out


def _accepted_kwargs(fn) -> set[str]:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return set()
    if any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
        return {"region", "stream"}
    return set(sig.parameters)
