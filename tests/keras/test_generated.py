"""The checked-in Keras adapter classes (src/weightinit/keras/_classes.py) are what the generator writes."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("keras")

ROOT = Path(__file__).resolve().parents[2]


def test_generated_adapters_are_current():
    spec = importlib.util.spec_from_file_location("generate_adapters", ROOT / "tools" / "generate_adapters.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    current = (ROOT / "src" / "weightinit" / "keras" / "_classes.py").read_text()
    assert gen.render() == current, "run `PYTHONPATH=src python tools/generate_adapters.py` and commit the result"


def test_no_class_is_built_at_import_time():
    """Every public class of weightinit.keras is defined by a class statement in a source file."""
    import weightinit.keras as wik

    package = ROOT / "src" / "weightinit" / "keras"
    src = "".join(p.read_text() for p in package.glob("*.py"))
    classes = [name for name in wik.__all__ if isinstance(getattr(wik, name), type)]
    assert len(classes) > 30
    for name in classes:
        assert f"\nclass {name}(" in src, name
