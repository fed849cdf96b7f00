"""Keras' own initializer tests (from the installed keras) and cross-backend bits, one process per backend.

``_keras_suite.py`` imports ``keras/src/initializers/*_test.py`` from the installed wheel,
substitutes weightinit's classes, ``get``, ``serialize``, ``deserialize`` and ``compute_fans`` for
Keras' and runs their TestCase classes.  Every Keras test must pass: a deliberate difference would
be listed in ``EXPECTED`` with its entry in docs/compatibility.md (there is none today).  The same
process builds, saves and reloads a model with weightinit initializers (bitwise-compared across
the numpy, jax, torch and tensorflow backends) and, on tensorflow, checks ``tf.function``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("keras")
pytest.importorskip("tensorflow")  # a test dependency: the tensorflow backend is tested like the others

SUITE = Path(__file__).with_name("_keras_suite.py")
BACKENDS = ["numpy", "jax", "torch", "tensorflow"]
# test id -> reason, for tests that fail on purpose (each documented in docs/compatibility.md).
EXPECTED: dict[str, str] = {}
# Skipped by Keras itself: the layout tests run on the jax backend only.
JAX_ONLY = {
    "initializer_test::InitializersLayoutTest::test_initializer_with_data_parallel_layout",
    "initializer_test::InitializersLayoutTest::test_initializer_with_model_parallel_layout",
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    cache: dict[str, dict] = {}

    def run(backend: str) -> dict:
        if backend not in cache:
            out_dir = tmp_path_factory.mktemp(backend)
            src = str(Path(__file__).resolve().parents[2] / "src")
            env = dict(
                os.environ,
                KERAS_BACKEND=backend,
                JAX_PLATFORMS="cpu",
                XLA_FLAGS="--xla_force_host_platform_device_count=4",
                TF_CPP_MIN_LOG_LEVEL="3",
                PYTHONPATH=os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]),
            )
            r = subprocess.run(
                [sys.executable, str(SUITE), str(out_dir)],
                capture_output=True,
                text=True,
                env=env,
                timeout=900,
                cwd=out_dir,
            )
            assert r.returncode == 0, r.stderr[-4000:]
            out = json.loads(r.stdout.strip().splitlines()[-1])
            out["weights"] = dict(np.load(out_dir / "w.npz"))
            cache[backend] = out
        return cache[backend]

    return run


@pytest.mark.parametrize("backend", BACKENDS)
def test_keras_initializer_suite(runs, backend):
    out = runs(backend)
    assert out["backend"] == backend
    # The substitution really happened: Keras' names point at weightinit's classes.
    assert {"HeNormal", "he_normal", "OrthogonalInitializer", "VarianceScaling"} <= set(out["replaced"])
    assert out["resolved"] == "weightinit.keras"
    results = out["results"]
    assert len(results) >= 22, sorted(results)
    failed = {k: v for k, v in results.items() if v.startswith("fail") and k not in EXPECTED}
    assert not failed, "\n\n".join(f"{k}\n{v}" for k, v in failed.items())
    for k in EXPECTED:
        assert results[k].startswith("fail"), f"{k} now passes: remove it from EXPECTED and docs/compatibility.md"
    skipped = {k for k, v in results.items() if v == "skip"}
    assert skipped == (set() if backend == "jax" else JAX_ONLY), skipped


def test_backends_bitwise_identical(runs):
    import weightinit as wi

    results = {b: runs(b) for b in BACKENDS}
    ref = results["numpy"]["weights"]
    assert np.array_equal(ref["w0"], wi.HeNormal(seed=1)((3, 3, 3, 4)))
    for b, out in results.items():
        model = out["model"]
        assert model["same_config"] and model["same_weights"], b
        assert model["reloaded_classes"] == ["weightinit.keras"] * 3, (b, model["reloaded_classes"])
        assert model["conv_kernel_initializer"]["registered_name"] == "weightinit>HeNormal"
        ws = out["weights"]
        assert ws.keys() == ref.keys(), b
        for k in ref:
            assert ws[k].dtype == ref[k].dtype and np.array_equal(ws[k].view(np.uint8), ref[k].view(np.uint8)), (b, k)


def test_tf_function(runs):
    """Inside tf.function: no AutoGraph warning; int seeds constant; a SeedGenerator draws anew per call."""
    tf_out = runs("tensorflow")["tf_function"]
    assert "could not transform" not in tf_out["log"].lower(), tf_out["log"]
    assert "autograph" not in tf_out["log"].lower(), tf_out["log"]
    assert tf_out["fixed_equal_core"] and tf_out["fixed_repeat"]
    assert tf_out["generator_new_per_call"]
    assert tf_out["generator_equals_eager"]  # the same sequence as two eager calls
    assert tf_out["dtype"] == "bfloat16"


def test_jax_layout_sharded(runs):
    """``layout=`` (a JAX sharding or Keras' ModelParallel) gives each device its shard of the unsharded values."""
    assert runs("jax")["jax_layout"] == "ok", runs("jax")["jax_layout"]
