"""`weightinit bench`'s table: ratios to each peer and the percentage of the memory-write rate (no timing here)."""

from __future__ import annotations

import pytest

from weightinit.cli.bench import _Table


def test_ratios_to_each_peer_and_memory_write_percentage():
    lines = []
    tab = _Table(lines.append)
    n = 1000
    tab.add("normal", n, "torch.nn.init.normal_", 4.0)
    tab.add("normal", n, "numpy Generator.standard_normal", 8.0)
    tab.add("normal", n, "jax.random.normal (jit)", 2.0)
    tab.add("normal", n, "wi.torch.normal_", 1.0, "torch.nn.init.normal_")
    tab.add("memory write", n, "tensor.fill_(1.0)", 0.25)
    tab.add("memory write", n, "ndarray.fill(1.0) (1 thread)", 0.5)
    tab.ratios()
    wi_row = next(r for r in tab.rows if r["name"] == "wi.torch.normal_")
    assert wi_row["speedup"] == pytest.approx(4.0)
    assert wi_row["vs"] == pytest.approx({"torch": 4.0, "numpy": 8.0, "jax": 2.0})
    assert wi_row["pct_memory_write"] == pytest.approx(25.0)  # the fastest fill: 0.25 s
    peer = next(r for r in tab.rows if r["name"].startswith("numpy"))
    assert peer["vs"] == {} and peer["pct_memory_write"] == pytest.approx(100 * 0.25 / 8.0)
    assert len(lines) == 6 and "wi.torch.normal_" in lines[3]  # one progress line per case
    text = tab.render()
    assert "| 25% | 4.00x | 8.00x | 2.00x | 4.00x vs torch.nn.init.normal_ |" in text
