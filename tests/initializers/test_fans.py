"""The one fan module: every framework's convention against that framework's own code, on a table of shapes.

The oracles are the peers themselves where they are installed: Keras' ``compute_fans``,
``torch.nn.init._calculate_fan_in_and_fan_out`` and torch's own layer defaults, the fans
``jax.nn.initializers.variance_scaling`` actually uses (read back from its outputs), and
dm-haiku's ``_compute_fans``.  The last tests check that the copies that used to exist
(storage, variance_scaling, weightinit.jax, weightinit.torch, the doctor) now are the owner.
"""

from __future__ import annotations

import math
import os
import re

os.environ.setdefault("KERAS_BACKEND", "numpy")

import numpy as np
import pytest

import weightinit as wi
from weightinit.initializers import fans

KERAS_CASES = [
    ((), None, None),
    ((5,), None, None),
    ((4, 6), None, None),
    ((3, 4, 5), None, None),
    ((3, 3, 4, 8), None, None),
    ((2, 3, 3, 4, 8), None, None),
    ((1, 1, 1, 7), None, None),
    ((0, 5), None, None),
    ((512, 8, 64), [0], [1, 2]),
    ((512, 8, 64), [0, 1], [2]),
    ((2, 3, 4, 5), [0, 1], [3]),
    ((2, 3, 4, 5), [-1], [0]),
]

TORCH_SHAPES = [(4, 6), (6, 4), (8, 16, 3, 3), (2, 3, 4, 5, 6), (1, 7, 1), (7, 1, 5), (0, 3), (3, 0, 2)]

# (shape, in_axis, out_axis, batch_axis): JAX's conventions, including overlapping and empty axes.
JAX_CASES = [
    ((4, 6), -2, -1, ()),
    ((3, 3, 16, 32), -2, -1, ()),
    ((100, 64), -2, 0, ()),
    ((4, 6, 8), 0, 1, 2),
    ((4, 6, 8), -2, -1, 0),
    ((2, 3, 4, 5), [0, 1], -1, ()),
    ((6, 2, 4), 0, (1, 2), ()),
    ((5,), 0, (), ()),
    ((3, 4), 0, 0, ()),
    ((2, 3, 5), [0, 2], [2], ()),
]

HAIKU_CASES = [
    ((), None),
    ((5,), None),
    ((4, 6), None),
    ((4, 6), [0]),
    ((3, 3, 4, 8), None),
    ((2, 3, 4), [0]),
    ((2, 3, 4, 5), [0, 1]),
    ((8, 4, 16), [1, 2]),
]


@pytest.mark.parametrize("shape, input_axes, output_axes", KERAS_CASES)
def test_compute_fans_matches_keras(shape, input_axes, output_axes):
    pytest.importorskip("keras")
    from keras.src.initializers.random_initializers import compute_fans as keras_compute_fans

    ours = fans.compute_fans(shape, input_axes, output_axes)
    assert ours == tuple(keras_compute_fans(shape, input_axes, output_axes))
    assert all(type(f) is int for f in ours)
    assert wi.compute_fans is fans.compute_fans


@pytest.mark.parametrize("shape", TORCH_SHAPES)
def test_torch_fans_match_torch(shape):
    torch = pytest.importorskip("torch")
    ours = fans.torch_fans(shape)
    assert ours == torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))
    assert all(type(f) is int for f in ours)


@pytest.mark.parametrize("shape", [(), (5,)])
def test_torch_fans_refuse_rank_below_two_as_torch(shape):
    torch = pytest.importorskip("torch")
    with pytest.raises(ValueError) as theirs:
        torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))
    with pytest.raises(wi.InitializerValueError, match=rf"received shape={re.escape(str(shape))}") as ours:
        fans.torch_fans(shape)
    assert str(ours.value).startswith(str(theirs.value))


@pytest.mark.parametrize(
    "module",
    [
        "Linear(6, 4)",
        "Conv2d(8, 16, 3, groups=4)",
        "Conv1d(6, 6, 5, groups=6)",
        "Conv3d(2, 4, (1, 2, 3))",
        "Bilinear(3, 5, 7)",
        "ConvTranspose2d(8, 12, 3, groups=2)",
    ],
)
def test_torch_layer_fans_against_torch_layers(module):
    """fan_in: what torch's own default init of the layer reads (its kaiming bound), except where torch
    misreads a transposed conv; fan_out: outputs each input feeds, from the module's attributes."""
    torch = pytest.importorskip("torch")
    m = eval("torch.nn." + module)
    w = m.weight
    name = type(m).__name__
    if name.startswith("ConvTranspose"):
        kind = "conv_transpose"
    elif name == "Bilinear":
        kind = "bilinear"
    else:
        kind = "conv" if name.startswith("Conv") else "linear"
    fan_in, fan_out = fans.torch_layer_fans(w.shape, kind, getattr(m, "groups", 1))
    k = math.prod(getattr(m, "kernel_size", (1,)))
    g = getattr(m, "groups", 1)
    if kind == "conv_transpose":
        # torch reads (in, out/g, *k) as (out, in, *k): its "fan_in" is out/g * k, our fan_out.
        assert fan_out == fans.torch_fans(w.shape)[0] == torch.nn.init._calculate_fan_in_and_fan_out(w)[0]
        assert fan_in == m.in_channels // g * k
    elif kind == "bilinear":
        assert fan_in == m.in1_features * m.in2_features and fan_out == m.out_features
    else:
        assert fan_in == torch.nn.init._calculate_fan_in_and_fan_out(w)[0]
        out = getattr(m, "out_channels", getattr(m, "out_features", None))
        assert fan_out == out // g * k


def _jax_variance(shape, mode, in_axis, out_axis, batch_axis):
    """The variance jax.nn.initializers.variance_scaling(1, mode, "uniform") used, read back from its output.

    JAX draws ``u ~ U[-1, 1)`` and returns ``u * sqrt(3 * variance)``: with the same key, the ratio
    to ``jax.random.uniform(key, shape, minval=-1)`` is ``sqrt(3 * variance)``.
    """
    jax = pytest.importorskip("jax")
    key = jax.random.key(11)
    init = jax.nn.initializers.variance_scaling(1.0, mode, "uniform", in_axis, out_axis, batch_axis)
    w = np.asarray(init(key, shape, np.float32), np.float64)
    u = np.asarray(jax.random.uniform(key, shape, np.float32, -1), np.float64)
    keep = np.abs(u) > 1e-3
    ratio = w[keep] / u[keep]
    assert ratio.size and np.ptp(ratio) <= 1e-6 * ratio.max()
    return float(np.median(ratio)) ** 2 / 3.0


@pytest.mark.parametrize("shape, in_axis, out_axis, batch_axis", JAX_CASES)
def test_jax_fans_match_jax_compute_fans(shape, in_axis, out_axis, batch_axis):
    pytest.importorskip("jax")
    from jax._src.nn.initializers import _compute_fans

    ours = fans.jax_fans(shape, in_axis, out_axis, batch_axis)
    assert all(type(f) is float for f in ours)
    assert ours == pytest.approx(_compute_fans(shape, in_axis, out_axis, batch_axis), rel=1e-12)


# Read back from outputs (compiles per shape, so a few rows: a conv, Flax's Embed, a batch axis, overlapping axes).
JAX_OUTPUT_CASES = [JAX_CASES[1], JAX_CASES[2], JAX_CASES[4], JAX_CASES[8]]


@pytest.mark.parametrize("shape, in_axis, out_axis, batch_axis", JAX_OUTPUT_CASES)
def test_jax_fans_match_jax_variance_scaling(shape, in_axis, out_axis, batch_axis):
    fan_in, fan_out = fans.jax_fans(shape, in_axis, out_axis, batch_axis)
    for mode, n in (("fan_in", fan_in), ("fan_out", fan_out)):
        assert n >= 1  # the table avoids Keras' max(1, n) clamp, which JAX does not apply
        assert _jax_variance(shape, mode, in_axis, out_axis, batch_axis) == pytest.approx(1.0 / n, rel=1e-5)


@pytest.mark.parametrize("shape, in_axis, out_axis, batch_axis", [JAX_CASES[4], JAX_CASES[8], JAX_CASES[9]])
def test_jax_adapter_and_core_use_the_same_jax_fans(shape, in_axis, out_axis, batch_axis):
    """weightinit.jax.variance_scaling and wi.VarianceScaling(in_axis=...) draw the same bits: one fan rule.

    The overlapping-axes rows are where the old integer copy in weightinit.jax (``prod // (in*out)``) drifted
    from JAX's float receptive field.
    """
    jax = pytest.importorskip("jax")
    import weightinit.jax as wij

    assert wij.jax_fans is fans.jax_fans
    got = wij.variance_scaling(1.0, "fan_avg", "uniform", in_axis, out_axis, batch_axis)(jax.random.key(5), shape)
    core = wi.VarianceScaling(
        1.0, "fan_avg", "uniform", seed=5, in_axis=in_axis, out_axis=out_axis, batch_axis=batch_axis
    )
    assert np.array_equal(np.asarray(got), core(shape, "float32"))
    fan_in, fan_out = fans.jax_fans(shape, in_axis, out_axis, batch_axis)
    assert core.variance(shape) == pytest.approx(2.0 / (fan_in + fan_out), rel=1e-15)


@pytest.mark.parametrize("shape, fan_in_axes", HAIKU_CASES)
def test_haiku_fans_match_haiku(shape, fan_in_axes):
    pytest.importorskip("haiku")
    from haiku._src.initializers import _compute_fans

    assert fans.haiku_fans(shape, fan_in_axes) == tuple(int(f) for f in _compute_fans(shape, fan_in_axes))


def test_haiku_fans_resolve_negative_axes():
    """Haiku compares negative ``fan_in_axes`` against non-negative indices, so the fan-in axis is also
    counted in fan_out; weightinit resolves them (docs/compatibility.md)."""
    assert fans.haiku_fans((2, 3, 4), [-3]) == fans.haiku_fans((2, 3, 4), [0]) == (2, 12)
    haiku = pytest.importorskip("haiku")
    del haiku
    from haiku._src.initializers import _compute_fans

    assert int(_compute_fans((2, 3, 4), [-3])[1]) == 24  # the peer's fault this fixes


@pytest.mark.parametrize("shape", [(7, 5), (3, 3, 4, 8), (6,)])
def test_haiku_input_size_matches_haiku_linear_default(shape):
    """hk.Linear/ConvND's default stddev is 1/sqrt(input_size); HaikuLinear reads input_size from the owner."""
    assert fans.input_size(shape) == math.prod(shape[:-1])
    if len(shape) >= 2:
        assert fans.input_size(shape) == fans.compute_fans(shape)[0]
    w = wi.HaikuLinear(seed=0)
    s = 1.0 / math.sqrt(max(1, fans.input_size(shape)))
    d = w.distribution_for(shape)
    assert (d.std, d.lower, d.upper) == pytest.approx((s, -2 * s, 2 * s))


def test_old_names_are_the_owner():
    from weightinit.initializers import storage, variance_scaling

    assert storage.torch_default_fans is fans.torch_fans
    assert storage.KINDS is fans.TORCH_LAYER_KINDS
    assert variance_scaling.jax_fans is fans.jax_fans


@pytest.mark.parametrize(
    "shape, kind, groups",
    [
        ((64, 8, 3, 3), "conv", 4),
        ((16, 4, 3), "conv_transpose", 2),
        ((5, 3, 4), "bilinear", 1),
        ((10, 4), "embedding", 1),
        ((9, 6), "linear_in_out", 1),
        ((4, 6), "linear", 1),
    ],
)
def test_storage_layout_fans_are_the_layer_rule(shape, kind, groups):
    from weightinit.initializers.storage import torch_layout

    lay = torch_layout(shape, kind, groups=groups)
    assert lay.fans == fans.torch_layer_fans(shape, kind, groups)
    # The fan shape has these fans under Keras' rule, so every core initializer sees them.
    assert fans.compute_fans(lay.fan_shape) == lay.fans


def test_bad_axes_are_refused_with_the_argument_name():
    with pytest.raises(wi.InitializerValueError, match=r"`in_axis` contains axis 3, out of range"):
        fans.jax_fans((2, 3), in_axis=3)
    with pytest.raises(wi.InitializerTypeError, match=r"`batch_axis` must be an int or a sequence of ints"):
        fans.jax_fans((2, 3), batch_axis=[True])
    with pytest.raises(wi.InitializerValueError, match=r"default in_axis\. .*received shape=\(5,\)"):
        fans.jax_fans((5,))
    with pytest.raises(wi.InitializerValueError, match=r"`fan_in_axes` contains axis 4"):
        fans.haiku_fans((2, 3, 4), [4])
    with pytest.raises(wi.InitializerValueError, match=r"`kind`"):
        fans.torch_layer_fans((2, 3), "dense")
    with pytest.raises(wi.InitializerValueError, match=r"`groups`"):
        fans.torch_layer_fans((2, 3, 3), "conv", 0)
