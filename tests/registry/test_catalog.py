"""Every issue-7 initializer: string name, config round trip, regions, `weightinit list`, docs/catalog.md."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest

import weightinit as wi
from weightinit.registry.api import aliases_of, builtin_classes, builtin_names
from weightinit.registry.catalog import SOURCES, render

ROOT = pathlib.Path(__file__).resolve().parents[2]

# name -> (constructor kwargs with a seed where random, a shape it accepts)
CASES = {
    "trunc_normal": (dict(stddev=0.5, lower=-1.0, upper=3.0, seed=1), (8, 6)),
    "torch_trunc_normal": (dict(std=0.5, a=-0.2, b=0.4, seed=1), (8, 6)),
    "trunc_normal_tf": (dict(std=0.5, seed=1), (8, 6)),
    "jax_truncated_normal": (dict(stddev=0.1, seed=1), (8, 6)),
    "haiku_truncated_normal": (dict(stddev=0.1, seed=1), (8, 6)),
    "dirac": (dict(groups=2), (3, 3, 2, 4)),
    "delta_orthogonal": (dict(scale=1.5, seed=1), (3, 3, 2, 4)),
    "batched_identity": (dict(gain=2.0), (2, 3, 3)),
    "uniform_scaling": (dict(scale=0.5, seed=1), (8, 6)),
    "sparse": (dict(sparsity=0.5, stddev=0.1, seed=1), (8, 6)),
    "martens_sparse": (dict(n_nonzero=3, seed=1), (8, 6)),
    "zero_init": ({}, (4, 6)),
    "irnn": (dict(gain=0.5), (4, 8)),
    "scaled_residual": (dict(std=0.02, n_layers=4, seed=1), (8, 6)),
    "fixup": (dict(n_branches=8, branch_depth=3, role="inner", seed=1), (8, 6)),
    "t_fixup": (dict(n_layers=4, role="decoder", seed=1), (8, 6)),
    "mup": (dict(role="hidden", width=64, base_width=16, seed=1), (8, 6)),
    "torch_linear": (dict(seed=1), (8, 6)),
    "torch_bias": (dict(fan_in=8, seed=1), (6,)),
    "torch_embedding": (dict(padding_idx=2, seed=1), (8, 6)),
    "flax_embed": (dict(seed=1), (8, 6)),
    "haiku_linear": (dict(seed=1), (8, 6)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_name_config_round_trip_and_region(name):
    kwargs, shape = CASES[name]
    cls = type(wi.get(name))
    init = cls(**kwargs)
    full = init(shape)
    assert full.shape == shape and full.dtype == np.float32
    again = wi.deserialize(wi.serialize(init))
    assert type(again) is cls and again.get_config() == init.get_config()
    assert np.array_equal(again(shape), full)
    region = (slice(1, 3),)
    assert np.array_equal(init(shape, region=region), full[1:3])
    assert init(shape, "float64").dtype == np.float64


@pytest.mark.parametrize("name", sorted(CASES))
def test_stream_argument_overrides_seed(name):
    kwargs, shape = CASES[name]
    init = type(wi.get(name))(**kwargs)
    a = init(shape, stream=wi.Stream(11))
    b = init(shape, stream=wi.Stream(11))
    assert np.array_equal(a, b)


def test_every_class_has_catalog_source_and_formula():
    for cls in builtin_classes():
        assert cls.__name__ in SOURCES, cls.__name__
        assert getattr(cls, "formula", ""), cls.__name__
        assert getattr(cls, "group", "other") != "other", cls.__name__


def test_every_registered_name_is_in_docs_catalog():
    text = (ROOT / "docs" / "catalog.md").read_text()
    missing = [n for n in builtin_names() if f"`{n}`" not in text]
    assert not missing, f"regenerate docs/catalog.md (python -m weightinit.registry.catalog): missing {missing}"
    assert text == render(), "docs/catalog.md is stale: python -m weightinit.registry.catalog > docs/catalog.md"


def test_cli_list_shows_new_groups(capsys):
    from weightinit.cli.main import main

    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for group in ("truncated normal", "identity", "sparse", "schemes", "framework defaults"):
        assert f"== {group} ==" in out
    assert "DeltaOrthogonal" in out and "(k-1)//2" in out


def test_public_exports():
    for name in ("TruncNormal", "Dirac", "DeltaOrthogonal", "ZerO", "MuP", "TorchLinearWeight"):
        assert name in wi.__all__ and hasattr(wi, name)
    # snake_case aliases stay importable and resolve through get(), but __all__ lists each object once.
    assert wi.delta_orthogonal is wi.DeltaOrthogonal and "delta_orthogonal" not in wi.__all__
    assert type(wi.get("delta_orthogonal")) is wi.DeltaOrthogonal
    assert "delta_orthogonal" in aliases_of(wi.DeltaOrthogonal)
    assert "dirac" in aliases_of(wi.Dirac)
