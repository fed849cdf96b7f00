"""The size check before allocation, on every JAX backend: a device's own memory when it reports it, else host memory.

XLA's CPU allocator aborts the process on a failed allocation; GPUs and TPUs raise an untyped
RESOURCE_EXHAUSTED error.  Both are refused first, with a typed error naming `shape`.  The
accelerator case is tested here on CPU with a device object that reports memory statistics the way
JAX's GPU/TPU devices do (``memory_stats()['bytes_limit']`` and ``['bytes_in_use']``).
"""

from __future__ import annotations

import numpy as np
import pytest

import weightinit as wi
from weightinit.common import validate

GiB = 2**30


class FakeAccelerator:
    """A device reporting memory as JAX's GPU/TPU devices do."""

    device_kind = "Fake GPU"

    def __init__(self, limit: int, in_use: int = 0):
        self.stats = {"bytes_limit": limit, "bytes_in_use": in_use, "peak_bytes_in_use": in_use}

    def memory_stats(self):
        return dict(self.stats)

    def __str__(self) -> str:
        return "fake:0"


class NoStats:
    """A device without statistics (JAX's CPU devices return None)."""

    def memory_stats(self):
        return None


class Broken:
    def memory_stats(self):
        raise RuntimeError("not supported on this platform")


def test_device_memory_reads_the_allocator_limit():
    assert validate.device_memory(FakeAccelerator(16 * GiB, 3 * GiB)) == (13 * GiB, 16 * GiB)
    assert validate.device_memory(NoStats()) is None
    assert validate.device_memory(Broken()) is None
    assert validate.device_memory(object()) is None
    assert validate.device_memory(FakeAccelerator(0)) is None  # no limit reported: host memory decides


def test_allocation_refuses_what_the_device_has_not_free():
    dev = FakeAccelerator(1 * GiB, GiB // 2)
    validate.allocation(GiB // 8, np.float32, device=dev)  # 0.5 GiB: fits exactly
    with pytest.raises(wi.InitializerValueError) as info:
        validate.allocation(GiB // 8 + 1, np.float32, "shape", (GiB // 8 + 1,), device=dev)
    msg = str(info.value)
    assert "`shape`" in msg and f"received shape={(GiB // 8 + 1,)!r}" in msg
    assert "fake:0 (Fake GPU)" in msg and "0.5 GiB free" in msg


def test_without_device_statistics_host_memory_decides():
    host = validate._memory_bytes()
    assert host is not None and host > 0
    small = 1 << 20
    for dev in (None, NoStats(), Broken()):
        validate.allocation(small, np.uint8, device=dev)  # fine on any machine
        with pytest.raises(wi.InitializerValueError, match=r"more than this machine's .* GiB of memory"):
            validate.allocation(host + 1, np.uint8, device=dev)
    # a device with more memory than the host is believed for its own arrays
    validate.allocation(host + 1, np.uint8, device=FakeAccelerator(2 * host))


@pytest.fixture
def small_device(monkeypatch):
    pytest.importorskip("jax")
    from weightinit.executors import jax as jax_executor

    dev = FakeAccelerator(1 << 20)  # 1 MiB free
    monkeypatch.setattr(jax_executor, "default_device", lambda: dev)
    return dev


def test_weightinit_jax_checks_the_default_device(small_device):
    import jax
    import weightinit.jax as wj

    key = jax.random.key(0)
    with pytest.raises(wi.InitializerValueError, match=r"`shape` asks for .* free on fake:0") as info:
        wj.normal()(key, (2048, 1024))  # 2 MiB at one byte a value: more than the device has
    assert "received shape=(2048, 1024)" in str(info.value)
    for make in (wj.glorot_uniform(), wj.uniform(), wj.constant(1.0), wj.variance_scaling(1.0, "fan_in", "normal")):
        with pytest.raises(wi.InitializerValueError, match=r"free on fake:0"):
            make(key, (4096, 4096))
    small = wj.normal()(key, (16, 16))  # what fits is drawn as before
    assert small.shape == (16, 16)


def test_the_jax_executor_checks_the_default_device(small_device):
    from weightinit.executors import jax as jax_executor

    stream = wi.Stream(0)
    with pytest.raises(wi.InitializerValueError, match=r"free on fake:0"):
        jax_executor.sample(wi.Normal(0.0, 1.0), stream, (512, 512), "float32")  # 3 x 1 MiB
    got = np.asarray(jax_executor.sample(wi.Normal(0.0, 1.0), stream, (8, 8), "float32"))
    assert np.array_equal(got, wi.sample(wi.Normal(0.0, 1.0), stream, (8, 8), "float32"))


def test_the_real_default_device_is_used():
    jax = pytest.importorskip("jax")
    from weightinit.executors import jax as jax_executor

    dev = jax_executor.default_device()
    assert dev in jax.devices()
    if jax.default_backend() == "cpu":
        assert validate.device_memory(dev) is None  # CPU: host memory, as before
