"""docs/recipes.md's "Speed" table is the recorded run of benchmarks/model_init.py, and that run meets the goal.

Speed is never timed in a unit test: the benchmark measures it side by side with the model's own init (one
process) and records its figures with ``--json``; this test checks that the docs quote that record (every
row's seconds and ratio), that it was taken on a quiet machine (1-minute load average at most 1.5 at the
start and the end), and that the recorded ratio for the same distribution as the model's own init
(``hf_llama``) is at least issue 12's 3x, with peak memory above the parameters under 64 MiB.
"""

from __future__ import annotations

import json
import pathlib

ROOT = pathlib.Path(__file__).parents[2]
RECORD = ROOT / "benchmarks/results/model_init_cpu_2core.json"


def _speed_section() -> str:
    text = (ROOT / "docs/recipes.md").read_text()
    start = text.index("## Speed")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else len(text)]


def test_recipes_speed_table_is_the_recorded_run():
    run = json.loads(RECORD.read_text())
    speed = _speed_section()
    assert RECORD.name in speed and run["commit"] in speed and run["utc"] in speed
    for row in run["rows"]:
        cells = [c.strip() for c in next(line for line in speed.splitlines() if row["run"] in line).split("|")]
        assert f"{row['seconds']:.2f}" in cells and f"{row['ratio']:.2f}" in cells, (row, cells)
        assert f"{row['peak_mib']} MiB" in cells, (row, cells)


def test_recorded_run_is_quiet_and_meets_the_goal():
    run = json.loads(RECORD.read_text())
    assert run["parameters"] > 1.0e9 and run["repeat"] >= 3
    assert run["load_avg_1min_start"] <= 1.5 and run["load_avg_1min_end"] <= 1.5, run
    rows = {r["run"]: r for r in run["rows"]}
    own = rows["model._init_weights (HF post_init)"]
    same = rows['wt.initialize(model, "hf_llama")']
    assert own["ratio"] == 1.0 and same["ratio"] >= 3.0, rows
    assert abs(same["ratio"] - own["seconds"] / same["seconds"]) < 0.01
    assert all(r["peak_mib"] < 64 for r in run["rows"]), rows
