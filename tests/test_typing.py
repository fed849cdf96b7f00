"""The public API type-checks: pyright (basic mode, configured in pyproject.toml [tool.pyright]) is clean.

The checked files (``include`` there) are the framework-free core, the package root, the framework
adapters (torch/, jax/, haiku/, keras/, against each framework's own stubs), the torch and JAX executors,
artifacts, the CLI, the doctor (its core and its torch, Keras and Flax backends) and
tests/typecheck/public_api.py:
uses of the API pyright must accept, and mistakes (a mode outside the ``Literal``, a non-callable
initializer) it must reject -- an unneeded ``# pyright: ignore`` is an error there, so the check
fails if an annotation stops catching a mistake.  pyright reads the frameworks' stubs, which takes
minutes of CPU; it runs once, in a subprocess.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import get_args

import pytest

import weightinit as wi
from weightinit.common.errors import InitializerValueError
from weightinit.common.types import Distribution, FanMode, Nonlinearity
from weightinit.initializers.variance_scaling import DISTRIBUTIONS, MODES

ROOT = Path(__file__).resolve().parents[1]


def test_pyright_is_clean_on_the_public_api():
    proc = subprocess.run(
        [sys.executable, "-m", "pyright", "--outputjson", "--pythonpath", sys.executable],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    report = json.loads(proc.stdout)
    problems = [
        f"{d['file']}:{d['range']['start']['line'] + 1}: {d['message']}"
        for d in report["generalDiagnostics"]
        if d["severity"] == "error"
    ]
    assert problems == [], "\n".join(problems)
    assert report["summary"]["filesAnalyzed"] > 55, report["summary"]
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_the_type_check_covers_the_core_the_adapters_artifacts_the_cli_and_the_doctor():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    include = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pyright"]["include"]
    packages = ("common", "random", "initializers", "registry", "torch", "jax", "haiku", "keras", "artifact", "cli",
                "doctor")  # fmt: skip
    for package in packages:
        assert f"src/weightinit/{package}" in include, include
        assert (ROOT / "src/weightinit" / package / "__init__.py").is_file(), package


def test_literal_modes_are_the_accepted_values():
    assert MODES == get_args(FanMode)
    assert set(get_args(Distribution)) == {*DISTRIBUTIONS, "normal"}
    for mode in get_args(FanMode):
        for dist in get_args(Distribution):
            assert wi.VarianceScaling(1.0, mode, dist, seed=0)((4, 3)).shape == (4, 3)
    for name in get_args(Nonlinearity):
        assert wi.calculate_gain(name) > 0
    with pytest.raises(InitializerValueError):
        wi.calculate_gain("swish")  # type: ignore[arg-type]
