"""The Keras adapter classes (generated from the registry); re-exported by :mod:`weightinit.keras`."""

from __future__ import annotations

import importlib.util
import inspect
import os
import sys


def _default_backend() -> None:
    """Keras defaults to tensorflow; where it is absent (and no backend was chosen) use one that is installed."""
    if "keras" in sys.modules or "KERAS_BACKEND" in os.environ or importlib.util.find_spec("tensorflow"):
        return
    for name in ("jax", "torch"):
        if importlib.util.find_spec(name):
            os.environ["KERAS_BACKEND"] = name
            return
    os.environ["KERAS_BACKEND"] = "numpy"


_default_backend()

import numpy as np  # noqa: E402

import keras  # noqa: E402
from weightinit.common.dtypes import FLOAT8_DTYPES, bfloat16, standardize_dtype  # noqa: E402
from weightinit.common.errors import InitializerTypeError  # noqa: E402
from weightinit.common.validate import shape as validate_shape  # noqa: E402
from weightinit.initializers.base import Initializer as _CoreInitializer  # noqa: E402
from weightinit.initializers.base import RandomInitializer  # noqa: E402
from weightinit.registry import api as _registry  # noqa: E402

__all__ = ["WeightinitInitializer", "get", "wrap", "classes", "PACKAGE"]

PACKAGE = "weightinit"


class WeightinitInitializer(keras.initializers.Initializer):
    """Base of the Keras adapters: a Keras initializer that wraps a weightinit one.

    Subclasses set ``core_class``; the constructor takes that class's
    arguments, ``get_config`` returns its config.
    """

    core_class: type = None

    def __init__(self, *args, **kwargs):
        if "seed" in kwargs:
            kwargs["seed"] = _seed(kwargs["seed"])
        self.core = self.core_class(*args, **kwargs)

    def __call__(self, shape, dtype=None, layout=None):
        dt = standardize_dtype(keras.backend.standardize_dtype(dtype or keras.config.floatx()))
        shape = validate_shape(shape)  # (3.7, 2) and ("3", 2) are refused, not truncated or parsed
        if layout is not None and keras.backend.backend() == "jax":
            sharding = getattr(layout, "backend_layout", layout)
            return _sharded(self.core, shape, dt, sharding)
        return _to_tensor(self.core(shape, dt), dt)

    def get_config(self):
        return self.core.get_config()

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"weightinit.keras.{self.core!r}"


def _seed(seed):
    """Accept a ``keras.random.SeedGenerator`` as seed: its initial seed starts a weightinit SeedGenerator."""
    if isinstance(seed, keras.random.SeedGenerator):
        from weightinit.random.seeds import SeedGenerator

        cfg = seed.get_config()
        return SeedGenerator(seed=cfg.get("seed"), name=cfg.get("name"))
    return seed


def _to_tensor(arr: np.ndarray, dt: np.dtype):
    if arr.dtype == bfloat16 or arr.dtype in FLOAT8_DTYPES:
        # Not every backend converts ml_dtypes arrays; float32 -> bfloat16 / fp8 is exact here
        # (the values are already bfloat16 / fp8 values).
        return keras.ops.convert_to_tensor(arr.astype(np.float32), dtype=arr.dtype.name)
    return keras.ops.convert_to_tensor(arr, dtype=dt.name)


def _sharded(core, shape, dt, sharding):
    import jax

    stream = None
    if isinstance(core, RandomInitializer):
        stream = core.stream_for_call(shape, dt)  # once: every shard uses the same stream

    if isinstance(getattr(sharding, "mesh", None), jax.sharding.AbstractMesh):
        # Keras' JAX variables call layout-aware initializers under jax.set_mesh with an abstract mesh.
        sharding = jax.sharding.NamedSharding(jax.sharding.get_mesh(), sharding.spec)

    def shard(index):
        region = tuple(index)
        return core(shape, dt, region=region, stream=stream)

    return jax.make_array_from_callback(shape, sharding, shard)


def _make(core_cls: type) -> type:
    name = core_cls.__name__
    doc = (
        f"Keras 3 adapter of :class:`weightinit.{name}` (same arguments and config).\n\n"
        f"{inspect.getdoc(core_cls) or ''}"
    )
    cls = type(
        name, (WeightinitInitializer,), {"core_class": core_cls, "__doc__": doc, "__module__": "weightinit.keras"}
    )
    try:
        cls.__init__.__signature__ = inspect.signature(core_cls.__init__)
    except (TypeError, ValueError):  # pragma: no cover
        pass
    return keras.saving.register_keras_serializable(package=PACKAGE, name=name)(cls)


_CLASSES: dict[str, type] = {}
for _core in _registry.builtin_classes():
    _CLASSES[_core.__name__] = _make(_core)
    globals()[_core.__name__] = _CLASSES[_core.__name__]
    __all__.append(_core.__name__)
# ``__doc__`` examples of the core mention ``wi.X``; drop them from collected doctests.
for _cls in _CLASSES.values():
    _cls.__doc__ = _cls.__doc__.split(">>>")[0].rstrip() + "\n"
del _core, _cls


def classes() -> dict[str, type]:
    """The Keras adapter classes by name (one per weightinit built-in)."""
    return dict(_CLASSES)


def wrap(initializer) -> WeightinitInitializer:
    """A weightinit initializer instance as the matching Keras adapter (same config)."""
    if isinstance(initializer, WeightinitInitializer):
        return initializer
    if not isinstance(initializer, _CoreInitializer) or type(initializer).__name__ not in _CLASSES:
        raise InitializerTypeError(
            f"`initializer` must be a weightinit built-in initializer; received initializer={initializer!r} "
            f"of type {type(initializer).__name__}."
        )
    out = _CLASSES[type(initializer).__name__].__new__(_CLASSES[type(initializer).__name__])
    out.core = initializer
    return out


def get(identifier):
    """A Keras initializer from a weightinit name, alias, config or instance.

    Plain names resolve to weightinit (``get("he_normal")`` is
    ``weightinit.keras.HeNormal()``), so they can be used where Keras' own
    names would pick Keras' initializers:
    ``Dense(4, kernel_initializer=weightinit.keras.get("he_normal"))``.
    ``"weightinit>HeNormal"`` and Keras-serialized configs also work.

    >>> get("glorot_uniform").__class__.__name__
    'GlorotUniform'
    """
    if identifier is None:
        return None
    if isinstance(identifier, WeightinitInitializer):
        return identifier
    if isinstance(identifier, _CoreInitializer):
        return wrap(identifier)
    if isinstance(identifier, str):
        name = identifier.split(">", 1)[1] if identifier.startswith(PACKAGE + ">") else identifier
        return wrap(_registry.get(name))
    if isinstance(identifier, dict):
        cfg = dict(identifier)
        reg = cfg.get("registered_name") or ""
        if reg.startswith(PACKAGE + ">"):
            cfg["class_name"] = reg.split(">", 1)[1]
            cfg["registered_name"] = None
        return wrap(_registry.deserialize(cfg))
    raise InitializerTypeError(
        f"`identifier` must be a weightinit name, config dict or initializer; received identifier={identifier!r} "
        f"of type {type(identifier).__name__}."
    )
