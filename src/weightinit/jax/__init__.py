"""weightinit for JAX and Flax: the ``jax.nn.initializers`` API on the weightinit stream.

Every builder has the name and signature of its ``jax.nn.initializers``
counterpart and returns an ``init(key, shape, dtype=None)`` function that is
jit-traceable and usable as ``kernel_init=`` in flax.linen and flax.nnx.  The
values come from the weightinit stream, computed in-graph by the JAX executor
(:mod:`weightinit.executors.jax`), bitwise equal on CPU to the NumPy core.

The JAX key is the seed: :func:`stream_key` maps ``jax.random.key_data(key)``
(words ``(d0, d1)``) to the stream ``Stream(d0 << 32 | d1)``, so
``jax.random.key(s)`` gives the same values as ``seed=s`` in the core, and split
keys give independent streams (docs/random.md section 2).

Semantics follow JAX, not Keras: ``normal(stddev)`` is untruncated;
``truncated_normal(stddev, lower=-2, upper=2)`` has bounds in standard
deviations and no variance correction; in ``variance_scaling``,
``"normal"`` is untruncated and ``"truncated_normal"`` is corrected by
0.87962566; fans use ``in_axis=-2, out_axis=-1, batch_axis=()`` with
receptive fields.  The maths (distributions, variances, constants) comes from
the core; this module only places the values.

>>> import jax, numpy as np, weightinit as wi
>>> w = he_normal()(jax.random.key(0), (64, 32))
>>> bool(np.array_equal(np.asarray(w), wi.HeNormal(seed=0)((64, 32))))
True

Importing this module imports jax; the core package never does.
"""

from weightinit.initializers.fans import jax_fans
from weightinit.jax.initializers import (
    constant,
    delta_orthogonal,
    glorot_normal,
    glorot_uniform,
    he_normal,
    he_uniform,
    kaiming_normal,
    kaiming_uniform,
    lecun_normal,
    lecun_uniform,
    normal,
    ones,
    orthogonal,
    sample,
    stream_key,
    truncated_normal,
    uniform,
    variance_scaling,
    wrap,
    xavier_normal,
    xavier_uniform,
    zeros,
)

__all__ = [
    "constant",
    "zeros",
    "ones",
    "uniform",
    "normal",
    "truncated_normal",
    "variance_scaling",
    "glorot_uniform",
    "glorot_normal",
    "xavier_uniform",
    "xavier_normal",
    "he_uniform",
    "he_normal",
    "kaiming_uniform",
    "kaiming_normal",
    "lecun_uniform",
    "lecun_normal",
    "orthogonal",
    "delta_orthogonal",
    "wrap",
    "stream_key",
    "jax_fans",
    "sample",
]
