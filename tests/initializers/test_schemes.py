"""Role-aware schemes (GPT-2/Megatron, Fixup, T-Fixup, muP) and framework-default presets."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

import weightinit as wi

P_MIN = 1e-4


def _normal(w, sd):
    return stats.kstest(np.asarray(w, np.float64).ravel(), "norm", args=(0, sd)).pvalue > P_MIN


def _uniform(w, lim):
    return stats.kstest(np.asarray(w, np.float64).ravel(), "uniform", args=(-lim, 2 * lim)).pvalue > P_MIN


def test_scaled_residual():
    w = wi.ScaledResidual(std=0.02, n_layers=24, seed=0)((256, 512))
    assert _normal(w, 0.02 / math.sqrt(48))
    assert wi.get("gpt2_residual").__class__ is wi.ScaledResidual
    with pytest.raises(wi.InitializerValueError, match="`n_layers`"):
        wi.ScaledResidual(n_layers=0)


def test_fixup_roles():
    shape = (3, 3, 32, 64)
    fan_in, fan_out = 288, 576
    inner = wi.Fixup(n_branches=16, branch_depth=3, role="inner", seed=1)
    assert inner.multiplier == pytest.approx(16 ** (-1 / 4))
    assert _normal(inner(shape), math.sqrt(2 / fan_in) * 16 ** (-1 / 4))
    assert _normal(wi.Fixup(16, 2, "inner", "fan_out", seed=1)(shape), math.sqrt(2 / fan_out) / 4)
    assert _normal(wi.Fixup(16, role="other", seed=1)(shape), math.sqrt(2 / fan_in))
    for role in ("last", "classifier"):
        w = wi.Fixup(16, role=role, seed=1)(shape)
        assert w.shape == shape and not w.any()
    with pytest.raises(wi.InitializerValueError, match="`branch_depth`"):
        wi.Fixup(4, branch_depth=1)
    with pytest.raises(wi.InitializerValueError, match="`role`"):
        wi.Fixup(4, role="first")


def test_t_fixup_roles():
    n = 6
    xavier = math.sqrt(6 / (256 + 1024))
    assert _uniform(wi.TFixup(n, "encoder", seed=2)((256, 1024)), xavier * 0.67 * n**-0.25)
    assert _uniform(wi.TFixup(n, "decoder", seed=2)((256, 1024)), xavier * (9 * n) ** -0.25)
    assert _uniform(wi.TFixup(n, "other", seed=2)((256, 1024)), xavier)
    assert _normal(wi.TFixup(n, "embedding", seed=2)((1000, 256)), 256**-0.5 * (9 * n) ** -0.25)


def test_mup_roles():
    base = dict(width=1024, base_width=128, std=0.02, seed=3)
    assert _normal(wi.MuP("hidden", **base)((1024, 1024)), 0.02 / math.sqrt(8))
    assert _normal(wi.MuP("input", **base)((50, 1024)), 0.02)
    readout = wi.MuP("readout", output_mult=2.0, **base)
    assert readout.output_multiplier == pytest.approx(2.0 / 8)
    assert _normal(readout((1024, 10)), 0.02)
    assert _normal(wi.MuP("readout", fold_readout=True, **base)((1024, 100)), 0.02 / 8)
    assert not wi.MuP("readout", zero_readout=True, **base)((1024, 10)).any()
    # at the base width muP is the base init
    a = wi.MuP("hidden", width=128, base_width=128, std=0.02, seed=4)((128, 128))
    b = wi.RandomNormal(stddev=0.02, seed=4)((128, 128))
    assert np.array_equal(a, b)
    with pytest.raises(wi.InitializerValueError, match="`width`"):
        wi.MuP("hidden", width=0)


def test_torch_linear_presets():
    w = wi.TorchLinearWeight(seed=5)((3, 3, 16, 32), "float64")  # channels-last conv: fan_in = 144
    assert _uniform(w, 1 / math.sqrt(144))
    assert wi.get("torch_linear").__class__ is wi.TorchLinearWeight
    assert wi.TorchLinearWeight(seed=5).get_config() == {"seed": 5, "input_axes": None, "output_axes": None}
    b = wi.TorchLinearBias(fan_in=144, seed=6)((32000,), "float64")
    assert _uniform(b, 1 / 12)
    assert not wi.TorchLinearBias(fan_in=0, seed=6)((4,)).any()
    with pytest.raises(wi.InitializerValueError, match="fan_in"):
        wi.TorchLinearBias(seed=6)((4,))
    with pytest.raises(wi.InitializerValueError, match="`fan_in`"):
        wi.TorchLinearBias(fan_in=-1)


def test_embedding_presets():
    e = wi.TorchEmbedding(padding_idx=-1, seed=7)((500, 64))
    assert not e[-1].any() and _normal(e[:-1], 1.0)
    f = wi.FlaxEmbed(seed=8)((1000, 64), "float64")
    assert _normal(f, 1 / 8)
    assert wi.FlaxEmbed(seed=8).get_config() == {"seed": 8}


def test_haiku_linear_is_uncorrected():
    w = wi.HaikuLinear(seed=9)((3, 3, 8, 50000 // 72), "float64")
    s = 1 / math.sqrt(72)
    assert abs(w).max() <= 2 * s
    assert stats.kstest(w.ravel(), "truncnorm", args=(-2, 2, 0, s)).pvalue > P_MIN


@pytest.mark.parametrize(
    "name, cls",
    [
        ("keras_dense", wi.GlorotUniform),
        ("keras_conv", wi.GlorotUniform),
        ("keras_embedding", wi.RandomUniform),
        ("flax_dense", wi.LecunNormal),
        ("haiku_linear", wi.HaikuLinear),
        ("flax_embed", wi.FlaxEmbed),
        ("torch_embedding", wi.TorchEmbedding),
    ],
)
def test_framework_names(name, cls):
    assert wi.get(name).__class__ is cls
