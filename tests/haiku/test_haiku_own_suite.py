"""dm-haiku's own initializer tests (haiku/_src/initializers_test.py of the installed package) pass against weightinit.haiku.

The test module is imported from the installed wheel (not copied); its ``initializers`` global, the
module it tests, is replaced by a namespace holding weightinit.haiku's classes and its
``compute_fans`` (as ``_compute_fans``, the name the tests call), and its TestCase classes are run.
"""

from __future__ import annotations

import importlib
import types
import unittest

import pytest

pytest.importorskip("haiku")

import weightinit.haiku as whk

# test id -> reason, for tests that fail on purpose (each documented in docs/compatibility.md).
# The value is a text the failure must contain, so an expected failure cannot hide another one.
EXPECTED: dict[str, str] = {
    # Haiku's list includes RandomUniform(3.0), i.e. minval=3 > maxval=1 (JAX then draws from (1, 3]);
    # weightinit refuses an empty/reversed interval. The rest of that list: test_haiku.py.
    "test_initializers": "`minval` must be smaller than `maxval`; received minval=3.0, maxval=1.0",
}


def test_haiku_initializer_suite(monkeypatch):
    mod = importlib.import_module("haiku._src.initializers_test")
    namespace = types.SimpleNamespace(**{name: getattr(whk, name) for name in whk.__all__})
    namespace._compute_fans = whk.compute_fans
    monkeypatch.setattr(mod, "initializers", namespace)
    suite = unittest.TestSuite()
    for obj in vars(mod).values():
        if isinstance(obj, type) and issubclass(obj, unittest.TestCase) and obj.__module__ == mod.__name__:
            suite.addTests(unittest.TestLoader().loadTestsFromTestCase(obj))
    result = unittest.TestResult()
    suite.run(result)
    assert result.testsRun >= 30, result.testsRun
    failures = {t.id().rsplit(".", 1)[-1]: tb for t, tb in result.failures + result.errors}
    unexpected = {k: v for k, v in failures.items() if k not in EXPECTED}
    assert not unexpected, "\n\n".join(f"{k}\n{v}" for k, v in unexpected.items())
    for name, text in EXPECTED.items():
        assert text in failures.get(name, ""), f"{name} no longer fails as documented: {failures.get(name)}"
    assert not result.skipped, result.skipped
