"""The one exception family of weightinit.

Every error weightinit raises for bad input is a :class:`WeightinitError`.
Errors about values subclass :class:`ValueError`, errors about types subclass
:class:`TypeError`, so ``except ValueError`` keeps working for code written
against Keras, PyTorch or JAX.

Messages name the argument in backticks, show the value received, and say how
to fix it, for example::

    `stddev` must be a finite number >= 0; received stddev=-1.0.
"""

from __future__ import annotations

from typing import Any, TypeVar

__all__ = [
    "WeightinitError",
    "InitializerValueError",
    "InitializerTypeError",
    "UnseededReuseWarning",
    "FallbackWarning",
    "value_error",
    "type_error",
    "peer_error",
]


class WeightinitError(Exception):
    """Base class of every error raised by weightinit for bad input."""


class InitializerValueError(WeightinitError, ValueError):
    """An argument has the right type but a value weightinit cannot accept."""


class InitializerTypeError(WeightinitError, TypeError):
    """An argument has a type weightinit cannot accept."""


class UnseededReuseWarning(UserWarning):
    """An unseeded initializer instance was reused for a second, different weight."""


class FallbackWarning(RuntimeWarning):
    """A faster implementation was unavailable and a slower one is used instead."""


def value_error(arg: str, value: Any, requirement: str, fix: str | None = None) -> InitializerValueError:
    """Build an :class:`InitializerValueError` with the house message format."""
    msg = f"`{arg}` {requirement}; received {arg}={value!r}."
    if fix:
        msg += f" {fix}"
    return InitializerValueError(msg)


_E = TypeVar("_E", bound="WeightinitError")


def peer_error(
    cls: type[_E], peer: str, arg: str, value: Any, fix: str | None = None, *, shown: str | None = None
) -> _E:
    """A peer's own error text first (their tests match on it), then the value received, in the house form.

    ``peer_error(InitializerValueError, "Only tensors with 2 dimensions are supported", "tensor.shape", (3,))``
    reads ``Only tensors with 2 dimensions are supported (received tensor.shape=(3,)).``  ``shown``
    replaces ``repr(value)`` (for values whose repr is unhelpfully long).
    """
    got = repr(value) if shown is None else shown
    if issubclass(cls, TypeError):
        got += f" of type {type(value).__name__}"
    msg = f"{peer.rstrip('.')} (received {arg}={got})."
    if fix:
        msg += f" {fix}"
    return cls(msg)


def type_error(arg: str, value: Any, requirement: str, fix: str | None = None) -> InitializerTypeError:
    """Build an :class:`InitializerTypeError` with the house message format."""
    msg = f"`{arg}` {requirement}; received {arg}={value!r} of type {type(value).__name__}."
    if fix:
        msg += f" {fix}"
    return InitializerTypeError(msg)
