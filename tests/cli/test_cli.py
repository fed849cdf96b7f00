"""The command line: `weightinit list` and `weightinit sample`."""

from __future__ import annotations

import re

import numpy as np

import weightinit as wi
from weightinit.cli.main import main
from weightinit.registry.api import builtin_classes


def test_list_shows_every_builtin_with_aliases(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for cls in builtin_classes():
        assert re.search(rf"^  {cls.__name__}\b", out, re.M), cls.__name__
    assert "he_normal" in out and "IdentityInitializer" in out and "normal" in out
    assert "== random ==" in out


def test_sample_prints_values_and_statistics(capsys):
    assert main(["sample", "he_normal", "--shape", "3,3", "--seed", "5"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "HeNormal shape=(3, 3) dtype=float32 seed=5"
    expected = wi.HeNormal(seed=5)((3, 3))
    assert f"{expected[0, 0]:.5f}"[:6] in out
    assert re.search(r"mean=[+-][\d.e+-]+ std=[\d.e+-]+ min=.* n=9", out)


def test_sample_is_reproducible_with_seed_and_dtype(capsys):
    main(["sample", "RandomUniform", "--shape", "2,4", "--seed", "1", "--dtype", "float64"])
    a = capsys.readouterr().out
    main(["sample", "RandomUniform", "--shape", "2,4", "--seed", "1", "--dtype", "float64"])
    b = capsys.readouterr().out
    assert a == b and "dtype=float64" in a
    main(["sample", "RandomUniform", "--shape", "2,4", "--seed", "2", "--dtype", "float64"])
    assert capsys.readouterr().out != a


def test_sample_bfloat16_and_zero_size(capsys):
    assert main(["sample", "glorot_uniform", "--shape", "4,4", "--dtype", "bfloat16", "--seed", "0"]) == 0
    assert "dtype=bfloat16" in capsys.readouterr().out
    assert main(["sample", "orthogonal", "--shape", "0,3", "--seed", "0"]) == 0
    out = capsys.readouterr().out
    assert "shape=(0, 3)" in out and "mean=" not in out


def test_sample_deterministic_initializer_notes_seed(capsys):
    assert main(["sample", "ones", "--shape", "2", "--seed", "3"]) == 0
    captured = capsys.readouterr()
    assert "deterministic" in captured.err
    assert "Ones shape=(2,)" in captured.out


def test_sample_errors_are_reported(capsys):
    assert main(["sample", "he_normla"]) == 2
    err = capsys.readouterr().err
    assert "Unknown initializer: 'he_normla'" in err and "he_normal" in err
    assert main(["sample", "he_normal", "--dtype", "int32"]) == 2
    assert "`dtype` must be a floating-point dtype" in capsys.readouterr().err
    assert main(["sample", "orthogonal", "--shape", "5", "--seed", "1"]) == 2
    assert "at least two-dimensional" in capsys.readouterr().err


def test_histogram_counts_every_value():
    from weightinit.cli.main import histogram

    v = np.arange(100.0)
    lines = histogram(v, bins=10).splitlines()
    assert len(lines) == 10
    assert sum(int(line.split()[-1]) for line in lines) == 100
    assert histogram(np.array([])) == "(no values)"
