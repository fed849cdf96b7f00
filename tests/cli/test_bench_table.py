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


def _targets_table(simd):
    tab = _Table()
    n = 1000
    tab.add("memory write", n, "tensor.fill_(1.0)", 1.0)
    tab.add("normal", n, "torch.nn.init.normal_", 20.0)
    tab.add("normal", n, "wi fill_ (executor)", 4.0, "torch.nn.init.normal_")  # 25% of the fill rate
    tab.add("normal", n, "wi.sample (NumPy out=)", 5.0)  # slower in-place row: not the one reported
    tab.add("normal", n, "wi.RandomNormal()(shape) (new array)", 4.8)  # 0.83x of in place
    tab.add("uniform", n, "wi fill_ (executor)", 2.0)  # 50%
    tab.add("uniform", n, "wi.RandomUniform()(shape) (new array)", 2.1)  # 0.95x
    tab.add("trunc_normal", n, "wi fill_ (executor)", 6.0)  # 17%
    tab.ratios()
    return {
        t["figure"].split(" ")[0].rstrip(":") + ("/new" if "new" in t["figure"] else ""): t for t in tab.targets(simd)
    }


def test_targets_of_issue_15():
    t = _targets_table("avx2")
    assert t["normal"]["value"] == pytest.approx(25.0) and t["normal"]["met"] and t["normal"]["target"] == 20.0
    assert "wi fill_ (executor)" in t["normal"]["figure"]
    assert t["trunc_normal"]["value"] == pytest.approx(100 / 6) and not t["trunc_normal"]["met"]
    assert t["uniform"]["target"] == 40.0 and t["uniform"]["met"]
    assert t["normal/new"]["value"] == pytest.approx(4.0 / 4.8) and not t["normal/new"]["met"]
    assert t["uniform/new"]["value"] == pytest.approx(2.0 / 2.1) and t["uniform/new"]["met"]
    assert _targets_table("avx512")["normal"]["target"] == 35.0 and not _targets_table("avx512")["normal"]["met"]
    text = _Table.render_targets(list(t.values()))
    assert "| 1e+03 | normal in place (wi fill_ (executor)), % of memory write | 25% | >= 20% | yes |" in text
    assert "| 0.83x | >= 0.90x | no |" in text


def test_gpu_targets_are_the_executor_against_torch():
    tab = _Table()
    n = 10**8
    tab.add("normal", n, "torch.nn.init.normal_", 1.0)
    tab.add("normal", n, "wi fill_ (executor)", 1.25, "torch.nn.init.normal_")
    tab.add("trunc_normal", n, "torch.nn.init.trunc_normal_", 10.0)
    tab.add("trunc_normal", n, "wi fill_ (executor)", 1.0, "torch.nn.init.trunc_normal_")
    tab.ratios()
    got = {t["figure"]: t for t in tab.targets(None, "cuda")}
    assert got["normal: executor vs torch.nn.init.normal_"]["value"] == pytest.approx(0.8)
    assert not got["normal: executor vs torch.nn.init.normal_"]["met"]
    assert got["trunc_normal: executor vs torch.nn.init.trunc_normal_"]["met"]


def test_readme_speed_table_is_the_recorded_run():
    """The README's CPU speed figures are those of the recorded bench runs it names."""
    import json
    import pathlib

    root = pathlib.Path(__file__).parents[2]
    readme = (root / "README.md").read_text()
    speed = readme[readme.index("## Speed") :]

    def rows_of(name):
        run = json.loads((root / "benchmarks/results" / name).read_text())
        return run, {(r["group"], r["name"]): r["mvals_per_s"] for r in run["rows"]}

    run, rows = rows_of("cpu_avx512_zen5_2core_issue15.json")
    assert "cpu_avx512_zen5_2core_issue15.md" in speed and "load average\n0.67-1.01" in speed
    assert (run["info"]["load_avg_1min_start"], run["info"]["load_avg_1min_end"]) == (0.67, 1.01)
    assert run["info"]["simd"] == "avx512"
    for key, shown in [
        (("normal", "torch.nn.init.normal_"), "377"),
        (("normal", "wi fill_ (executor)"), "2851"),
        (("normal", "wi.torch.normal_"), "2857"),
        (("normal", "wi.RandomNormal()(shape) (new array)"), "1236"),
        (("uniform", "wi fill_ (executor)"), "6072"),
        (("trunc_normal", "torch.nn.init.trunc_normal_"), "19.8"),
        (("trunc_normal", "wi fill_ (executor)"), "2124"),
        (("normal", "wi JAX executor (jit)"), "121"),
        (("memory write", "tensor.fill_(1.0)"), "6615"),
    ]:
        assert f"{rows[key]:.{1 if '.' in shown else 0}f}" == shown
        assert shown in speed
    fill = rows[("memory write", "tensor.fill_(1.0)")]
    in_place = ("wi fill_ (executor)", "wi.sample (NumPy out=)")  # the best of these, as in the targets table
    pct = {g: round(100 * max(rows[(g, n)] for n in in_place if (g, n) in rows) / fill)
           for g in ("normal", "trunc_normal", "uniform")}  # fmt: skip
    assert f"normal {pct['normal']}%, truncated normal {pct['trunc_normal']}%, uniform {pct['uniform']}%" in speed

    for name, shown in [("run3", "2845"), ("run4", "2648")]:  # the later runs with 2048-value tiles
        later, later_rows = rows_of(f"cpu_avx512_zen5_2core_issue15_{name}.json")
        assert later["info"]["simd"] == "avx512" and f"..._{name}.md" in speed
        assert f"{later_rows[('normal', 'wi fill_ (executor)')]:.0f}" == shown and shown in speed

    old, old_rows = rows_of("cpu_avx2_2core_issue15_final.json")  # the AVX2 machine's run, quoted below it
    assert old["info"]["simd"] == "avx2" and "cpu_avx2_2core_issue15_final.md" in speed
    for key, shown in [
        (("normal", "wi fill_ (executor)"), "674"),
        (("uniform", "wi fill_ (executor)"), "1137"),
        (("trunc_normal", "wi fill_ (executor)"), "680"),
        (("memory write", "tensor.fill_(1.0)"), "3187"),
    ]:
        assert f"{old_rows[key]:.0f}" == shown and shown in speed
