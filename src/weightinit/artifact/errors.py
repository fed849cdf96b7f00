"""Errors of :mod:`weightinit.artifact`: bad checkpoints are weightinit errors; a mismatch is an assertion."""

from __future__ import annotations

from weightinit.common.errors import InitializerValueError

__all__ = ["CheckpointError", "VerificationError"]


class CheckpointError(InitializerValueError):
    """A checkpoint or output directory that cannot be read or written as asked (names the file or parameter)."""


class VerificationError(AssertionError):
    """A model or checkpoint does not hold what the recipe gives; ``.result`` is the :class:`VerifyResult`.

    A subclass of ``AssertionError``, so ``wi.verify(...)`` is a pytest assertion.
    """

    def __init__(self, message: str, result) -> None:
        super().__init__(message)
        self.result = result
