"""The test environment has every test dependency, so no peer test skips silently.

Many test modules ``pytest.importorskip`` a peer (torch, jax, keras, scipy, ...) so that a partial
installation can still run the rest.  In the README's environment (``pip install -e ".[test]"``)
nothing may be missing: this test fails, naming the package, if a distribution of the ``test``
extra (expanded through the extras it names, from pyproject.toml) is absent or at a version the
pin excludes.  On a deliberately partial installation, deselect it (``--deselect``).
"""

from __future__ import annotations

import importlib.metadata as md
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11 (tomli is not a test dependency)
from packaging.requirements import Requirement  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _test_requirements() -> list[Requirement]:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    out, todo, seen = [], ["test"], set()
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for spec in extras[extra]:
            req = Requirement(spec)
            if req.name == "weightinit":
                todo.extend(req.extras)
            else:
                out.append(req)
    return out


def _problems(reqs: list[Requirement]) -> list[str]:
    problems = []
    for req in reqs:
        if req.marker is not None and not req.marker.evaluate():
            continue  # not for this platform (triton outside x86-64 Linux)
        try:
            version = md.version(req.name)
        except md.PackageNotFoundError:
            problems.append(f"{req} is not installed")
            continue
        if not req.specifier.contains(version, prereleases=True):
            problems.append(f"{req.name} {version} does not satisfy {req}")
    return problems


def test_every_test_dependency_is_installed_at_a_pinned_version():
    reqs = _test_requirements()
    assert {"torch", "jax", "keras", "scipy", "pyright", "import-linter"} <= {r.name for r in reqs}
    problems = _problems(reqs)
    assert problems == [], "install the test extra: pip install -e '.[test]'; " + "; ".join(problems)


def test_the_check_reports_missing_and_mismatched_distributions():
    assert _problems([Requirement("weightinit-no-such-distribution>=1")]) == [
        "weightinit-no-such-distribution>=1 is not installed"
    ]
    assert len(_problems([Requirement("numpy<1")])) == 1
    assert _problems([Requirement("weightinit-no-such-distribution; python_version < '3'")]) == []
    assert len(_problems([Requirement("weightinit-no-such-distribution; python_version >= '3'")])) == 1
