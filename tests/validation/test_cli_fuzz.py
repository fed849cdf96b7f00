"""Property-based fuzz of the command line: ``weightinit.cli.main.main`` with hostile argv, in process.

For every subcommand, hypothesis builds argv from each option's valid values and hostile ones (empty,
negative, NaN, 1e400, 2**64, lone surrogates as undecodable argv bytes become, missing folders, folders
where a file is meant, files that do not import, ...).  Each run must end with status 0, or with a
non-zero status and exactly one line on stderr; never a traceback, never "internal error" (the line main
prints for an exception that is not a user mistake).

The work behind the expensive subcommands is replaced by a stub *after* their arguments have been checked
(the timing loop of ``bench``, the digits example of ``doctor``, the training of ``compare``), so a valid
argv costs milliseconds; everything up to that point (parsing, validation, opening user files, building
models) runs for real.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from weightinit.cli.main import main

CLI_NAMES = re.compile(r"--\w|`\w+`|argument|Unknown initializer|unrecognized arguments|required|interrupted")

SETTINGS = settings(
    derandomize=True, max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None
)

HOSTILE = [
    "",
    " ",
    "-1",
    "0",
    "nan",
    "inf",
    "-inf",
    "1e400",
    "1.5",
    "18446744073709551616",
    "9" * 40,
    "3,,4",
    ",,,",
    "(",
    "\x00",
    "\udcff",  # an undecodable argv byte, as Python hands it over (surrogateescape)
    "\U0001f4a5",
    "x" * 300,
    "--",
    "-h-",
]

INTS = st.sampled_from(["0", "1", "2", "3", "1", "2", "-1", "-5", "2**70", "1" + "0" * 30, "abc", "", "3.0", "0x10"])
SMALL_SHAPES = st.sampled_from(["2,3", "4", "", "()", "(2,)", "0,3", "1,1,1"])
HOSTILE_SHAPES = st.sampled_from(
    ["-1,3", "3,,4", ",,,", "3.5,2", "a,b", "1" + ",1" * 70, "100000000,100000000", "4294967296,4294967296", "2**40"]
)
SHAPES = st.one_of(SMALL_SHAPES, HOSTILE_SHAPES, st.sampled_from(HOSTILE))
DTYPES = st.sampled_from(["float32", "float16", "bfloat16", "int8", "bool", "complex256", "U3", "object", "nope", ""])
NAMES = st.sampled_from(["he_normal", "GlorotUniform", "orthogonal", "zeros", "constant", "nope", "Initializer", ""])


def _opt(flag: str, values) -> st.SearchStrategy[list[str]]:
    """``[]``, or ``[flag, value]`` with a value from ``values`` (twice as likely) or a hostile one."""
    valid = st.tuples(st.just(flag), values).map(list)
    return st.one_of(st.just([]), valid, valid, st.tuples(st.just(flag), st.sampled_from(HOSTILE)).map(list))


def _req(flag: str, values) -> st.SearchStrategy[list[str]]:
    """A required option: ``[flag, value]``, the value valid-ish twice as often as hostile (absent rarely)."""
    valid = st.tuples(st.just(flag), values).map(list)
    return st.one_of(valid, valid, st.tuples(st.just(flag), st.sampled_from(HOSTILE)).map(list), st.just([]))


def _flag(flag: str) -> st.SearchStrategy[list[str]]:
    return st.sampled_from([[], [flag]])


def _argv(command: str, *parts) -> st.SearchStrategy[list[str]]:
    return st.tuples(*parts).map(lambda ps: [command] + [x for p in ps for x in p])


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """User files the doctor and artifact commands are pointed at: good ones and broken ones."""
    d = tmp_path_factory.mktemp("cli_fuzz")
    (d / "good.py").write_text(
        "import torch\n\ndef model():\n    torch.manual_seed(0)\n    return torch.nn.Sequential(torch.nn.Linear(4, 3))\n"
    )
    (d / "syntax.py").write_text("def model(:\n")
    (d / "raises.py").write_text("def model():\n    raise RuntimeError('boom')\n")
    (d / "notmodel.py").write_text("def model():\n    return 42\n")
    (d / "exits.py").write_text("import sys\n\ndef model():\n    sys.exit(3)\n")
    (d / "data.txt").write_text("not python\n")
    (d / "folder").mkdir()
    (d / "empty.safetensors").write_bytes(b"")
    (d / "junk.safetensors").write_bytes(b"\xff" * 64)
    return d


def _paths(files) -> list[str]:
    return [
        str(files / "good.py"),
        str(files / "good.py") + ":model",
        str(files / "good.py") + ":nothing",
        str(files / "syntax.py"),
        str(files / "raises.py"),
        str(files / "notmodel.py"),
        str(files / "exits.py"),
        str(files / "data.txt"),
        str(files / "folder"),
        str(files / "missing" / "x.py"),
        str(files / "empty.safetensors"),
        str(files / "junk.safetensors"),
        ":",
        "tiny-llama",
        "tiny-llama@1",
        "tiny-llama@-1",
        "tiny-llama@x",
        "nope",
    ]


def _outputs(files) -> list[str]:
    # never a real system path: a valid run writes its output
    return [
        str(files / "out" / "x.json"),
        str(files / "folder"),
        str(files / "missing" / "deeper" / "x.html"),
        str(files / "ok.out"),
    ]


@pytest.fixture
def stubs(monkeypatch):
    """Replace the expensive work behind bench, doctor's example and compare with stubs (arguments checked first)."""
    import weightinit as wi
    import weightinit.cli.bench as bench
    import weightinit.doctor.compare as dcompare
    import weightinit.doctor.example as example

    monkeypatch.setattr(bench, "measure", lambda fn, budget=1.0, sync=None: 1e-3)
    monkeypatch.setattr(bench, "_bench_keras", lambda tab, sizes, budget: None)  # one subprocess per backend
    monkeypatch.setattr(bench, "_bench_jax", lambda tab, sizes, budget: None)

    def run_example(depth, width, mode, epochs, seed, progress=None):
        raise _Reached("doctor example")

    monkeypatch.setattr(example, "run_example", run_example)

    def compare(*a, **k):
        raise _Reached("compare")

    monkeypatch.setattr(dcompare, "compare", compare)
    threads = wi.get_num_threads()
    try:
        import torch

        torch_threads = torch.get_num_threads()
    except ImportError:  # pragma: no cover
        torch_threads = None
    yield
    wi.set_num_threads(threads)
    if torch_threads is not None:
        torch.set_num_threads(torch_threads)


class _Reached(Exception):
    """Raised by a stub: the command got past its checks to the (stubbed) work."""


def _check(argv, capsys, monkeypatch, record=True):
    monkeypatch.setenv("WEIGHTINIT_TRACEBACK", "")
    capsys.readouterr()
    try:
        rc = main(argv)
    except _Reached:
        rc = 0
    except BaseException as e:
        pytest.fail(f"main({argv!r}) raised {type(e).__name__}: {e}")
    out, err = capsys.readouterr()
    if record:
        event(f"{ascii(argv[0]) if argv else '-'} status {rc}" + (" (reached the work)" if "_Reached" in err else ""))
    if "_Reached" in err:  # main caught the stub's exception: the argv was valid
        return
    assert "Traceback" not in out + err, (argv, err)
    assert "internal error" not in err, (argv, err)
    assert isinstance(rc, int), (argv, rc)
    if rc != 0:
        lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("note:")]  # notes may precede
        assert len(lines) == 1, (argv, rc, err)
        assert lines[0].startswith("weightinit"), (argv, err)
        # the line names what was wrong: an option (argparse's "argument --x: ..." and weightinit's "--x ...
        # got '...'"), a backticked argument (library errors, "received x=..."), or a missing/unknown one
        assert CLI_NAMES.search(lines[0]), (argv, lines[0])
        import os

        if os.environ.get("COLLECT"):
            with open(os.environ["COLLECT"], "a") as f:
                f.write(ascii(lines[0]) + "\n")


@SETTINGS
@given(
    argv=st.one_of(
        _argv("list", st.sampled_from([[], ["--all"], ["x"], ["--shape", "3"]])),
        _argv(
            "sample",
            st.one_of(NAMES, st.sampled_from(HOSTILE)).map(lambda n: [n]),
            _opt("--shape", SHAPES),
            _opt("--seed", INTS),
            _opt("--dtype", DTYPES),
            _opt("--bins", INTS),
            _opt("--show", INTS),
        ),
        st.sampled_from([[], ["--version"], ["-x"], ["nope"], ["\udcff"], ["sample"], ["--shape"]]),
    )
)
def test_cli_list_and_sample(argv, capsys, monkeypatch, stubs, files):
    monkeypatch.chdir(files)
    _check(argv, capsys, monkeypatch)


@SETTINGS
@given(data=st.data())
def test_cli_bench(data, capsys, monkeypatch, stubs, files):
    monkeypatch.chdir(files)  # a hostile --json value such as "-1" is a valid file name: written here
    counts = st.sampled_from(["10", "10,20", "1e2", "0", "-5", "1.5", "1e30", "4e9,10", "nan", "1e400", "a,b", ",", ""])
    argv = data.draw(
        _argv(
            "bench",
            _req("--sizes", counts),  # always given: the default (1e8) allocates 400 MB per row
            _req("--ortho", counts),
            _opt("--threads", INTS),
            _opt("--device", st.sampled_from(["cpu", "cuda", "cuda:7", "meta", "nope", "CPU"])),
            _opt("--json", st.sampled_from(_outputs(files))),
            _opt("--skip", st.sampled_from(["torch", "numpy,jax,keras", "nope", "torch,numpy,jax,keras"])),
            _opt("--budget", st.sampled_from(["0.001", "0", "-1", "nan", "inf", "1e400", "abc"])),
        )
    )
    _check(argv, capsys, monkeypatch)


@SETTINGS
@given(data=st.data())
def test_cli_doctor_and_compare(data, capsys, monkeypatch, stubs, files):
    monkeypatch.chdir(files)  # the default --html is written to the working folder
    argv = data.draw(
        st.one_of(
            _argv(
                "doctor",
                st.one_of(st.just([]), st.sampled_from(_paths(files)).map(lambda p: [p])),
                _opt("--fix", st.sampled_from(["none", "analytic", "lsuv", "nope"])),
                _opt("--html", st.sampled_from(_outputs(files))),
                _flag("--no-html"),
                _opt("--batch", INTS),
                _opt("--input-shape", SHAPES),
                _opt("--seed", INTS),
                _opt("--depth", INTS),
                _opt("--width", INTS),
                _opt("--epochs", INTS),
                _flag("--plain"),
            ),
            _argv(
                "compare",
                _opt("--inits", st.sampled_from(["he_normal,lsuv", "default", "nope", ",", "he_normal,,nope"])),
                _opt("--depth", INTS),
                _opt("--width", INTS),
                _opt("--activation", st.sampled_from(["relu", "tanh", "nope"])),
                _opt("--epochs", INTS),
                _opt("--lr", st.sampled_from(["0.01", "0", "-1", "nan", "inf", "1e400"])),
                _opt("--seed", INTS),
                _opt("--out", st.sampled_from(_outputs(files))),
            ),
        )
    )
    _check(argv, capsys, monkeypatch)


@settings(SETTINGS, max_examples=30)
@given(data=st.data())
def test_cli_artifact_commands(data, capsys, monkeypatch, stubs, files):
    monkeypatch.chdir(files)
    recipes = st.sampled_from(["torch", "nope", "keras", ""])
    model = st.one_of(st.sampled_from(_paths(files)), NAMES).map(lambda p: [p])
    argv = data.draw(
        st.one_of(
            _argv(
                "fingerprint",
                model,
                _opt("--recipe", recipes),
                _req("--seed", INTS),
                _opt("--shape", SHAPES),
                _opt("--dtype", DTYPES),
                _flag("--json"),
            ),
            _argv(
                "verify",
                st.sampled_from(_paths(files)).map(lambda p: [p]),
                _opt("--recipe", recipes),
                _req("--seed", INTS),
                _opt("--model", st.sampled_from(_paths(files))),
                _flag("--all"),
            ),
            _argv(
                "materialize",
                model,
                _opt("--recipe", recipes),
                _req("--seed", INTS),
                _req("--out", st.sampled_from([str(files / "ckpt"), str(files / "folder"), str(files / "no" / "x")])),
                _opt("--format", st.sampled_from(["safetensors", "dcp", "nope"])),
                _opt("--max-shard-size", st.sampled_from(["5GB", "1", "0", "-1GB", "1e400", "nan", "abc", "10XB"])),
                _flag("--force"),
                _flag("--quiet"),
            ),
        )
    )
    _check(argv, capsys, monkeypatch)


def test_a_user_mistake_is_one_line_and_status_2(capsys):
    """The fuzz's oracle on known cases: the line, the status, and that a good run still succeeds."""
    assert main(["sample", "he_normal", "--shape", "-1,3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("weightinit sample: error:"), err
    assert main(["sample", "he_normal", "--shape", "2,2", "--seed", "0"]) == 0
    assert "HeNormal shape=(2, 2)" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [
        ["bench", "--sizes", "1e30", "--ortho", "4", "--skip", "numpy,jax,keras"],
        ["bench", "--sizes", "10", "--ortho", "1e9", "--skip", "numpy,jax,keras"],
        ["bench", "--device", "cuda:7", "--sizes", "10"],
        ["bench", "--budget", "nan"],
        ["compare", "--lr", "inf"],
        ["sample", "--", "--show", "\udcff"],
    ],
)
def test_found_by_the_fuzz(argv, capsys, monkeypatch, stubs, files):
    monkeypatch.chdir(files)
    """What the fuzz found: sizes beyond memory, a missing CUDA device, NaN budgets and rates, undecodable argv."""
    _check(argv, capsys, monkeypatch, record=False)
    assert main(argv) == 2


def test_valid_argv_still_succeed(capsys, monkeypatch, stubs, files):
    """The oracle's other half: ordinary command lines of each subcommand exit 0 (stubs included)."""
    monkeypatch.chdir(files)
    ckpt = str(files / "good_ckpt")
    good = [
        ["list"],
        ["bench", "--sizes", "10", "--ortho", "4", "--skip", "numpy,jax,keras", "--budget", "0.001"],
        ["doctor", str(files / "good.py"), "--no-html", "--plain", "--batch", "2"],
        ["fingerprint", "he_normal", "--shape", "2,3", "--seed", "1"],
        ["materialize", "tiny-llama", "--seed", "0", "--out", ckpt, "--force", "--quiet"],
        ["verify", ckpt, "--seed", "0"],
    ]
    for argv in good:
        capsys.readouterr()
        assert main(argv) == 0, (argv, capsys.readouterr().err)
    for argv in (["compare", "--inits", "he_normal,lsuv", "--out", str(files / "ok.png")], ["doctor", "--no-html"]):
        capsys.readouterr()
        main(argv)  # valid: the checks pass and the (stubbed) work starts
        assert "_Reached" in capsys.readouterr().err, argv
