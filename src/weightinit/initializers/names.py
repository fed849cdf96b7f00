"""The names of the built-in initializers: each class declares its own with :func:`builtin`.

The decorator lives with the classes (this layer), so an initializer family is one module that
registers itself on import; :mod:`weightinit.registry.api` looks names up in this table and adds
the user's own registrations (``register``) beside it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TypeVar

__all__ = ["builtin", "builtin_names", "builtin_classes", "aliases_of", "to_snake_case"]

_BUILTINS: dict[str, type] = {}
_C = TypeVar("_C", bound=type)


def to_snake_case(name: str) -> str:
    """Keras' snake_case rule: ``GlorotUniform`` -> ``glorot_uniform``, ``STFT`` -> ``stft``."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    name = re.sub("([a-z])([A-Z])", r"\1_\2", name)
    return name.lower()


def builtin(*aliases: str) -> Callable[[_C], _C]:
    """Class decorator registering a built-in under its names and ``aliases``."""

    def deco(cls: _C) -> _C:
        for name in (cls.__name__, to_snake_case(cls.__name__), *aliases):
            if name in _BUILTINS and _BUILTINS[name] is not cls:
                raise RuntimeError(f"initializer name {name!r} registered twice")
            _BUILTINS[name] = cls
        return cls

    return deco


def builtin_names() -> list[str]:
    """Every identifier :func:`get` accepts for a built-in."""
    return sorted(_BUILTINS)


def builtin_classes() -> list[type]:
    """Each built-in class once, in registration order."""
    seen: dict[type, None] = {}
    for cls in _BUILTINS.values():
        seen.setdefault(cls, None)
    return list(seen)


def aliases_of(cls: type) -> list[str]:
    """All names registered for ``cls``."""
    return [n for n, c in _BUILTINS.items() if c is cls]
