"""Names and configs: ``get``, ``serialize``, ``deserialize``, ``register``.

Every built-in is registered under its class name, its snake_case name and
its Keras aliases (``normal``, ``uniform``, ``one``, ``zero``,
``IdentityInitializer``, ...).  Each alias maps to the same class object.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from typing import Any, cast, overload

import numpy as np

from weightinit.common import validate
from weightinit.common.dtypes import standardize_dtype
from weightinit.common.errors import InitializerTypeError, InitializerValueError
from weightinit.common.shapes import normalize_shape
from weightinit.common.types import InitializerProtocol
from weightinit.initializers.base import Initializer
from weightinit.initializers.names import _BUILTINS, aliases_of, builtin, builtin_classes, builtin_names, to_snake_case

__all__ = [
    "builtin",
    "register",
    "get",
    "serialize",
    "deserialize",
    "builtin_names",
    "builtin_classes",
    "aliases_of",
    "to_snake_case",
]

_CUSTOM: dict[str, Any] = {}
_MODULE = "weightinit"


def register(package: str = "Custom", name: str | None = None) -> Callable[[Any], Any]:
    """Decorator that makes a custom initializer class (or function) loadable by name.

    The object is registered as ``"{package}>{name}"`` (name defaults to the
    class or function name), the same key format as
    ``keras.saving.register_keras_serializable``.

    >>> import weightinit as wi
    >>> @wi.register(package="demo")
    ... class Halves(wi.Initializer):
    ...     def __call__(self, shape, dtype=None):
    ...         return wi.Constant(0.5)(shape, dtype)
    >>> wi.deserialize(wi.serialize(Halves())).__class__ is Halves
    True
    """
    if not isinstance(package, str) or ">" in package:
        raise InitializerValueError(f"`package` must be a str without '>'; received package={package!r}.")

    def deco(obj):
        key = f"{package}>{name or obj.__name__}"
        if key in _CUSTOM and _CUSTOM[key] is not obj:
            raise InitializerValueError(f"{key!r} is already registered to {_CUSTOM[key]!r}.")
        _CUSTOM[key] = obj
        obj._weightinit_registered_name = key
        return obj

    return deco


def _registered_name(obj) -> str | None:
    target = obj if inspect.isclass(obj) or inspect.isfunction(obj) else type(obj)
    key = target.__dict__.get("_weightinit_registered_name") if hasattr(target, "__dict__") else None
    return key if key in _CUSTOM and _CUSTOM[key] is target else None


def serialize(initializer) -> dict | None:
    """Config dict of an initializer, in Keras' serialization format.

    >>> import weightinit as wi
    >>> wi.serialize(wi.HeNormal(seed=3))["config"]
    {'seed': 3, 'input_axes': None, 'output_axes': None}
    """
    if initializer is None:
        return None
    if isinstance(initializer, Initializer):
        cls = type(initializer)
        reg = _registered_name(initializer)
        is_builtin = _BUILTINS.get(cls.__name__) is cls
        return {
            "module": _MODULE if is_builtin else cls.__module__,
            "class_name": cls.__name__,
            "config": initializer.get_config(),
            "registered_name": None if is_builtin else (reg or cls.__name__),
        }
    if inspect.isfunction(initializer) or inspect.isbuiltin(initializer):
        return {
            "module": "builtins",
            "class_name": "function",
            "config": _registered_name(initializer) or initializer.__name__,
            "registered_name": "function",
        }
    raise InitializerTypeError(
        f"`initializer` must be a weightinit.Initializer or a function to be serialized; received "
        f"initializer={initializer!r} of type {type(initializer).__name__}."
    )


def _unknown_name(name: str, custom_objects) -> InitializerValueError:
    pool = list(_BUILTINS) + list(_CUSTOM) + list(custom_objects or {})
    lower = {p.lower(): p for p in pool}
    close = difflib.get_close_matches(name.lower(), list(lower), n=4, cutoff=0.5)
    hint = (" Did you mean " + ", ".join(repr(lower[c]) for c in close) + "?") if close else ""
    return InitializerValueError(
        f"Unknown initializer: {name!r}.{hint} `weightinit list` shows every name; register custom classes with "
        "@weightinit.register or pass them in `custom_objects`."
    )


def _lookup(name: str, registered: str | None, custom_objects) -> Any:
    custom_objects = custom_objects or {}
    for key in (registered, name):
        if key and key in custom_objects:
            return custom_objects[key]
    for key in (registered, name):
        if key and key in _CUSTOM:
            return _CUSTOM[key]
    if name in _BUILTINS:
        return _BUILTINS[name]
    matches = [v for k, v in _CUSTOM.items() if k.split(">", 1)[-1] == name]
    if len(matches) == 1:
        return matches[0]
    raise _unknown_name(name, custom_objects)


def deserialize(config, custom_objects: dict | None = None):
    """Build an initializer from a config dict or a name.

    Accepts what :func:`serialize` and ``keras.initializers.serialize``
    produce, legacy ``{"class_name", "config"}`` dicts, and plain names.
    """
    if isinstance(config, str):
        return _lookup(config, None, custom_objects)()
    class_name, registered, _, inner = validate.serialized(config)
    if class_name == "function":
        function_name = validate.text("config", inner)
        return _lookup(function_name, registered if registered != "function" else None, custom_objects)
    cls = _lookup(class_name, registered, custom_objects)
    if inspect.isclass(cls):
        inner = validate.config(inner or {}, "config", allowed=_constructor_keys(cls), who=class_name)
        from_config = getattr(cls, "from_config", None)
        if from_config is not None:
            return from_config(dict(inner or {}))
        return cls(**(inner or {}))
    return cls


def _constructor_keys(cls) -> set[str] | None:
    """The keyword arguments ``cls`` accepts (None when it takes ``**kwargs`` or has no signature)."""
    try:
        params = inspect.signature(cls).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def _array_initializer(value):
    arr = np.asarray(value)

    def initialize_fn(shape, dtype=None, **kwargs):
        shape = normalize_shape(shape)
        if tuple(arr.shape) != shape:
            raise InitializerValueError(
                f"Expected `shape` to be {tuple(arr.shape)} for direct tensor as initializer. Received shape={shape}."
            )
        out = validate.cast_exact(arr, standardize_dtype(dtype), "identifier")
        region = kwargs.get("region")
        return out[region] if region is not None else out

    initialize_fn.__name__ = "initialize_fn"
    return initialize_fn


@overload
def get(identifier: None, custom_objects: dict | None = None) -> None: ...
@overload
def get(
    identifier: str | dict | type | Callable[..., Any] | np.ndarray, custom_objects: dict | None = None
) -> InitializerProtocol: ...
def get(identifier: Any, custom_objects: dict | None = None) -> InitializerProtocol | None:
    """Resolve anything Keras' ``initializers.get`` accepts to an initializer.

    * ``None`` -> ``None``
    * a name (``"he_normal"``, ``"HeNormal"``, ``"normal"``, ``"constant"``)
      -> a new instance with default arguments
    * a dict (a serialized config) -> :func:`deserialize`
    * a class -> an instance with default arguments
    * an instance or a callable -> itself
    * an array (NumPy, or anything with ``__array__``) -> a function that
      returns it for the matching shape

    An unknown name raises an error listing the closest valid names.

    >>> type(get("he_normal")).__name__
    'HeNormal'
    """
    if identifier is None:
        return None
    if isinstance(identifier, (str, dict)):
        return cast(InitializerProtocol, deserialize(identifier, custom_objects))
    if inspect.isclass(identifier):
        return cast(InitializerProtocol, identifier())
    if isinstance(identifier, np.ndarray) or (hasattr(identifier, "__array__") and hasattr(identifier, "shape")):
        return _array_initializer(identifier)
    if callable(identifier):
        return identifier
    raise InitializerTypeError(
        f"Could not interpret initializer identifier: {identifier!r} of type {type(identifier).__name__}. "
        "Pass a name such as 'he_normal', a config dict, an Initializer, a callable or an array."
    )
