"""Functional random sampling with Keras' ``keras.random`` signatures and weightinit's seed rules.

``seed`` may be an int (the same values every call), a
:class:`weightinit.SeedGenerator` (new values every call), a
:class:`weightinit.Stream`, or ``None`` (a fresh seed each call, drawn from
:func:`weightinit.set_seed`'s sequence if set, else OS entropy).  ``region``
returns a block of the tensor without generating the rest.

>>> import weightinit as wi
>>> a = wi.random.normal((3,), seed=1)
>>> b = wi.random.normal((6,), seed=1)
>>> bool((a == b[:3]).all())
True
"""

from __future__ import annotations

from weightinit.random.functional import normal, stream_of, truncated_normal, uniform

__all__ = ["normal", "uniform", "truncated_normal", "stream_of"]
