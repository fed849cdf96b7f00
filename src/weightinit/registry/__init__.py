"""Names and configs: the registry of initializer names, ``get``, ``serialize``, ``deserialize`` and ``register``."""

from weightinit.registry.api import deserialize, get, register, serialize

__all__ = ["deserialize", "get", "register", "serialize"]
