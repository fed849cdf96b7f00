"""The command line never tracebacks on a user mistake: one line on stderr, a non-zero exit, checked early.

Each test runs ``main()`` in-process (a subprocess only where the process state matters: a closed pipe,
Keras' backend choice).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from weightinit.cli.common import Steps, parse_shape
from weightinit.cli.main import main

pytest.importorskip("torch")


def one_line_error(capsys, argv, code=2, contains=()):
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == code, (rc, err)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err and "error" in lines[0]
    for c in contains:
        assert c in lines[0], (c, lines[0])
    return lines[0]


def test_version(capsys):
    assert main(["--version"]) == 0
    import weightinit

    assert capsys.readouterr().out.strip() == f"weightinit {weightinit.__version__}"


@pytest.mark.parametrize("shape", ["3,,4", ",,,", "3,x", "-1,3", "3;4"])
def test_sample_bad_shapes(capsys, shape):
    one_line_error(capsys, ["sample", "he_normal", f"--shape={shape}"], contains=("--shape", repr(shape)))


def test_shape_parser_accepts_tuples_and_scalars():
    assert parse_shape("(3,)") == (3,)
    assert parse_shape("[2, 5]") == (2, 5)
    assert parse_shape("()") == ()
    assert parse_shape("0,4") == (0, 4)


def test_sample_bins_zero(capsys):
    one_line_error(capsys, ["sample", "he_normal", "--bins", "0"], contains=("--bins", "got 0"))


def test_sample_unallocatable_shape(capsys):
    one_line_error(capsys, ["sample", "he_normal", "--shape", "100000,100000,100000"], contains=("GiB",))


def test_sample_unknown_name_and_dtype(capsys):
    one_line_error(capsys, ["sample", "not_real"], contains=("not_real",))
    one_line_error(capsys, ["sample", "he_normal", "--dtype", "float99"], contains=("float99",))


def test_unknown_command(capsys):
    one_line_error(capsys, ["nosuch"], contains=("nosuch",))


def test_doctor_bad_input_shape(capsys):
    one_line_error(capsys, ["doctor", "--input-shape", "3,x"], contains=("--input-shape", "'3,x'"))


def test_doctor_html_into_missing_folder_fails_before_the_run(capsys, tmp_path):
    missing = tmp_path / "no" / "r.html"
    one_line_error(capsys, ["doctor", "--html", str(missing)], contains=("--html", "does not exist"))
    assert not capsys.readouterr().out  # nothing ran


def test_doctor_factory_errors(capsys, tmp_path):
    f = tmp_path / "m.py"
    f.write_text("def number():\n    return 42\n\ndef broken():\n    raise RuntimeError('boom')\n")
    one_line_error(capsys, ["doctor", f"{f}:number", "--no-html"], contains=("returned int, not a model",))
    one_line_error(capsys, ["doctor", f"{f}:broken", "--no-html"], contains=("RuntimeError: boom",))
    one_line_error(capsys, ["doctor", f"{f}:absent", "--no-html"], contains=("no attribute 'absent'",))
    one_line_error(capsys, ["doctor", f"{tmp_path}/nope.py:build", "--no-html"], contains=("no such file",))
    bad = tmp_path / "bad.py"
    bad.write_text("def (:\n")
    one_line_error(capsys, ["doctor", f"{bad}:m", "--no-html"], contains=("SyntaxError",))


def test_compare_bad_inputs(capsys, tmp_path):
    one_line_error(capsys, ["compare", "--inits", "he_normal,not_real"], contains=("not_real",))
    one_line_error(capsys, ["compare", "--epochs", "0"], contains=("--epochs", "got 0"))
    one_line_error(capsys, ["compare", "--out", str(tmp_path / "no" / "c.png")], contains=("--out", "does not exist"))


def test_bench_bad_sizes(capsys, tmp_path):
    one_line_error(capsys, ["bench", "--sizes", "1e4,x"], contains=("--sizes",))
    one_line_error(capsys, ["bench", "--ortho", "0"], contains=("--ortho",))
    # 0 threads used to mean "the default" silently; it is refused like any other count below 1
    one_line_error(capsys, ["bench", "--threads", "0"], contains=("--threads", "got 0"))
    one_line_error(capsys, ["bench", "--threads", "-2"], contains=("--threads", "got -2"))
    one_line_error(capsys, ["bench", "--json", str(tmp_path / "no" / "b.json")], contains=("--json",))


@pytest.mark.parametrize(
    ("argv", "missing", "extra"),
    [
        (["doctor"], "matplotlib", "doctor"),
        (["doctor", "--no-html"], "torch", "torch"),
        (["compare"], "torch", "torch"),
        (["bench"], "torch", "torch"),
    ],
)
def test_missing_extras_name_the_extra(capsys, monkeypatch, argv, missing, extra):
    monkeypatch.setitem(sys.modules, missing, None)  # import of it now raises ImportError
    line = one_line_error(capsys, argv, contains=(f"needs {missing}", "pip install 'weightinit["))
    assert extra in line.split("weightinit[")[1]


def test_closed_pipe_is_quiet():
    # `weightinit list | head`: the reader closes the pipe; the process ends with 141 and no traceback
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    p = subprocess.Popen([sys.executable, "-m", "weightinit", "list"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=env)  # fmt: skip
    p.stdout.close()  # nobody reads
    err = p.stderr.read().decode()
    assert p.wait(timeout=120) == 141
    assert "Traceback" not in err and "BrokenPipe" not in err


def test_steps_print_lines_without_a_terminal():
    import io

    buf = io.StringIO()
    with Steps(None, "bench", stream=buf) as s:
        s.advance("normal n=1e+04")
    assert buf.getvalue() == "bench [1] normal n=1e+04\n"
