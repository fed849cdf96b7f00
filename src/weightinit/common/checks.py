"""Argument checks shared by the initializers (kept for existing imports; the checks live in validate).

``real_number`` is :func:`weightinit.common.validate.real_number`.
"""

from __future__ import annotations

from weightinit.common.validate import real_number

__all__ = ["real_number"]
