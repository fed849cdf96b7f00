"""``weightinit doctor`` / ``compare`` output: severity words, the HTML report by default, progress, columns."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap

import pytest

from weightinit.cli.main import main

pytest.importorskip("torch")


@pytest.mark.parametrize("plain", [True, False])
def test_example_writes_html_by_default_and_shows_severity_words(capsys, monkeypatch, tmp_path, plain):
    monkeypatch.chdir(tmp_path)
    epochs = 1 if plain else 0
    argv = ["doctor", "--depth", "10", "--width", "16", "--epochs", str(epochs)] + (["--plain"] if plain else [])
    assert main(argv) == 0
    cap = capsys.readouterr()
    assert (tmp_path / "weightinit-doctor.html").read_text().startswith("<!doctype html>")
    assert "HTML report written to weightinit-doctor.html" in cap.out
    # PyTorch's default init over 11 layers shrinks the signal ~6**-5: flagged, with its severity as a word
    assert re.search(r"\[(warning|error)\] vanishing_activations at ", cap.out)
    assert "pred rms" in cap.out and "pred std" not in cap.out
    # progress: one line per step on stderr (not a terminal): 3 doctor steps, 2 x epochs, the HTML report
    n = 3 + 2 * epochs + 1
    steps = [ln for ln in cap.err.splitlines() if ln.startswith("doctor [")]
    assert len(steps) == n and steps[-1].startswith(f"doctor [{n}/{n}]"), cap.err


def test_no_html_and_chosen_path(capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    f = tmp_path / "m.py"
    f.write_text("import torch\ndef build():\n    return torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Tanh())\n")
    assert main(["doctor", f"{f}:build", "--no-html", "--plain"]) == 0
    out = capsys.readouterr().out
    assert not (tmp_path / "weightinit-doctor.html").exists() and "HTML report" not in out
    # no targets: the probe loss sum(y * g) / sqrt(batch) has no meaning as a loss and is not printed
    assert "loss" not in out.split("\n")[-3:][0] or "loss " not in out
    html = tmp_path / "r.html"
    assert main(["doctor", f"{f}:build", "--html", str(html), "--plain"]) == 0
    assert html.exists() and f"HTML report written to {html}" in capsys.readouterr().out


def test_probe_loss_is_not_reported_but_a_real_loss_is():
    import torch
    import weightinit as wi

    m = torch.nn.Sequential(torch.nn.Linear(8, 4))
    x = torch.randn(32, 8)
    probe = wi.doctor(m, x)
    assert probe.loss_is_probe and "loss" not in probe.summary()
    real = wi.doctor(m, x, targets=torch.randint(0, 4, (32,)))
    assert not real.loss_is_probe and f"loss {real.loss:.4g}" in real.summary()


def test_compare_progress_lines(capsys, tmp_path):
    png = tmp_path / "c.png"
    assert main(["compare", "--depth", "3", "--width", "8", "--epochs", "2", "--inits", "he_normal,default",
                 "--out", str(png)]) == 0  # fmt: skip
    err = capsys.readouterr().err
    assert [ln.split("]")[0] for ln in err.splitlines() if ln.startswith("compare [")] == [
        "compare [1/4",
        "compare [2/4",
        "compare [3/4",
        "compare [4/4",
    ]


def test_keras_backend_chosen_when_tensorflow_is_absent(tmp_path):
    pytest.importorskip("keras")
    pytest.importorskip("jax")
    f = tmp_path / "k.py"
    f.write_text(
        textwrap.dedent("""
        import keras
        def build():
            return keras.Sequential([keras.Input((6,)), keras.layers.Dense(6, activation="tanh"), keras.layers.Dense(2)])
    """)
    )
    code = ("import sys; sys.modules['tensorflow'] = None\n"  # tensorflow not installed
            "from weightinit.cli.main import main\n"
            f"sys.exit(main(['doctor', {str(f) + ':build'!r}, '--no-html', '--plain']))")  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    env["PYTHONPATH"] = os.pathsep.join(sys.path)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "Keras runs on jax" in r.stdout and "keras" in r.stdout and "(jax)" in r.stdout


_TRAINING_LINES = """
import sys
from weightinit.doctor.example import run_example
_, _, hist = run_example(epochs=5)
for name, h in hist.items():
    print(f"  {name:<18} " + "  ".join(f"{lo:.3f}/{100 * a:.0f}%" for lo, a in h))
"""


def _training_lines(capability):
    """The example's training lines, printed with torch's CPU kernels for `capability` (ATEN_CPU_CAPABILITY)."""
    env = dict(os.environ, ATEN_CPU_CAPABILITY=capability, PYTHONPATH=os.pathsep.join(sys.path))
    r = subprocess.run([sys.executable, "-c", _TRAINING_LINES], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    return [line for line in r.stdout.splitlines() if line.startswith("  ")]


def test_readme_example_figures():
    # the figures README.md quotes for `weightinit doctor`: the diagnosis and the fix here (the same on every CPU and
    # with 1 or 2 torch threads), the 5 training epochs in subprocesses with torch's AVX2 kernels (the README's
    # block) and, where the CPU has them, its AVX-512 kernels, which round differently (the README's note)
    import pathlib

    import torch
    from weightinit.doctor.example import run_example

    before, rep, _ = run_example(epochs=0)
    assert before.summary() == (
        "signal std 0.584 -> 2.14e-09; weight-grad norm first 3.59e-12, last 0.0515; loss 2.306; 4 problem(s)"
    )
    assert rep.after.summary() == (
        "signal std 1.02 -> 0.511; weight-grad norm first 0.695, last 0.992; loss 2.658; no problems found"
    )
    assert len(rep.scales) == 31
    readme = (pathlib.Path(__file__).parents[2] / "README.md").read_text()
    assert before.summary() in readme and "after:  " + rep.after.summary() in readme
    caps = {"DEFAULT": 0, "AVX2": 1, "AVX512": 2}.get(torch.backends.cpu.get_cpu_capability(), 0)
    if caps < 1:
        pytest.skip("the README's training figures were printed with torch's x86 AVX2 kernels; this CPU has none")
    avx2 = _training_lines("avx2")
    assert len(avx2) == 2 and all(line in readme for line in avx2), avx2
    if caps >= 2:
        fixed = [line for line in _training_lines("avx512") if "fixed" in line]
        note = readme[readme.index("torch's AVX-512 kernels") :][:400]
        assert fixed and fixed[0].split(maxsplit=2)[2] in note, (fixed, note)
