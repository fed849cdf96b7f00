"""The ``weightinit`` command line: ``list``, ``sample``, and the subcommands other modules provide.

Subcommands implemented elsewhere are imported only when used:
``bench`` (``weightinit.cli.bench``), ``doctor`` and ``compare``
(``weightinit.cli.doctor``, ``weightinit.cli.compare``).  Each such module exposes
``add_arguments(parser)`` and ``run(args) -> int``.

A user mistake never ends in a traceback: argparse reports bad options (exit 2), a
:class:`weightinit.cli.common.CLIError` or a :class:`weightinit.common.errors.WeightinitError` is one line
``weightinit <command>: <message>`` on stderr (exit 2), a missing optional dependency names the extra to
install, and a closed pipe (``weightinit list | head``) ends quietly with status 141 (128 + SIGPIPE, as a
shell tool killed by the signal would).  An unexpected exception is one line too (exit 1), with the
traceback when ``WEIGHTINIT_TRACEBACK=1`` is set.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

import numpy as np

from weightinit.cli.common import CLIError, Parser, nbytes, positive_int, say, shape_arg

__all__ = ["main", "histogram"]

_EXTERNAL = {
    "bench": ("weightinit.cli.bench", "measure generation speed against torch, numpy, jax and keras"),
    "doctor": ("weightinit.cli.doctor", "measure signal flow through a model at init and fix it"),
    "compare": ("weightinit.cli.compare", "train one model with several initializers and compare"),
    "fingerprint": ("weightinit.cli.artifact", "digest of the values a recipe and seed give (docs/artifact.md)"),
    "verify": ("weightinit.cli.artifact", "check a checkpoint or model against a recipe and seed"),
    "materialize": ("weightinit.cli.artifact", "write an initialized checkpoint tensor by tensor"),
}

#: the optional dependencies each external subcommand imports, and the extra that installs them
_NEEDS = {
    "bench": ("torch", ("torch",)),
    "doctor": ("doctor,torch", ("rich", "matplotlib")),
    "compare": ("doctor,torch", ("torch", "matplotlib")),
}


def histogram(values: np.ndarray, bins: int = 20, width: int = 50) -> str:
    """A text histogram of ``values``: one line per bin with its range, a bar and the count."""
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0:
        return "(no values)"
    lo, hi = float(v.min()), float(v.max())
    if lo == hi:
        return f"[{lo:+.4g}] {'#' * width} {v.size}"
    counts, edges = np.histogram(v, bins=bins, range=(lo, hi))
    top = counts.max()
    lines = []
    for c, a, b in zip(counts, edges[:-1], edges[1:]):
        bar = "#" * round(width * c / top) if top else ""
        lines.append(f"[{a:+.4e}, {b:+.4e}) {bar:<{width}} {c}")
    return "\n".join(lines)


def _cmd_list(args) -> int:
    from weightinit.registry.api import aliases_of, builtin_classes

    groups: dict[str, list[type]] = {}
    for cls in builtin_classes():
        groups.setdefault(getattr(cls, "group", "other"), []).append(cls)
    for group in sorted(groups):
        print(f"== {group} ==")
        for cls in groups[group]:
            names = ", ".join(n for n in aliases_of(cls) if n != cls.__name__)
            print(f"  {cls.__name__}" + (f"  (also: {names})" if names else ""))
            formula = getattr(cls, "formula", "")
            if formula:
                print(f"      {formula}")
    return 0


def _cmd_sample(args) -> int:
    import weightinit as wi

    init = wi.get(args.name)
    if args.seed is not None:
        cfg = init.get_config()
        if "seed" not in cfg:
            print(f"note: {type(init).__name__} is deterministic; --seed has no effect", file=sys.stderr)
        else:
            cfg["seed"] = args.seed
            init = type(init).from_config(cfg)
    from weightinit.common.dtypes import standardize_dtype

    itemsize = standardize_dtype(args.dtype).itemsize
    need = nbytes(args.shape, itemsize + 16)  # the array, its float64 copy and the histogram's work
    avail = _available_memory()
    if avail is not None and need > avail:
        raise CLIError(
            f"--shape {','.join(map(str, args.shape))} needs about {need / 2**30:.3g} GiB "
            f"and {avail / 2**30:.3g} GiB of memory is available; sample a smaller shape"
        )
    try:
        w = np.asarray(init(args.shape, args.dtype))
    except MemoryError:
        raise CLIError(f"--shape {','.join(map(str, args.shape))} cannot be allocated (out of memory)") from None
    print(
        f"{type(init).__name__} shape={w.shape} dtype={w.dtype.name}"
        + (f" seed={args.seed}" if args.seed is not None else "")
    )
    with np.printoptions(precision=5, threshold=args.show, edgeitems=3, linewidth=110):
        print(w)
    v = w.astype(np.float64)
    if v.size:
        print(f"mean={v.mean():+.6g} std={v.std():.6g} min={v.min():+.6g} max={v.max():+.6g} n={v.size}")
        print(histogram(v, bins=args.bins))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from weightinit import __version__

    p = Parser(prog="weightinit", description="Reproducible neural-network weight initialization.")
    p.add_argument("--version", action="version", version=f"weightinit {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    sp = sub.add_parser("list", help="every initializer with its formula and aliases")
    sp.set_defaults(func=_cmd_list)
    sp = sub.add_parser("sample", help="draw one tensor and show its values, statistics and histogram")
    sp.add_argument("name", help="initializer name, e.g. he_normal")
    sp.add_argument("--shape", type=shape_arg("--shape"), default=(3, 3), help="comma-separated, e.g. 512,256")
    sp.add_argument("--seed", type=int, default=None)
    sp.add_argument("--dtype", default="float32")
    sp.add_argument("--bins", type=positive_int, default=20, help="histogram bins (>= 1)")
    sp.add_argument("--show", type=positive_int, default=100, help="print all values up to this many")
    sp.set_defaults(func=_cmd_sample)
    for name, (module, help_text) in _EXTERNAL.items():
        sp = sub.add_parser(name, help=help_text, add_help=False)
        sp.set_defaults(func=None, module=module)
    return p


def _available_memory() -> float | None:
    """Bytes of memory available now (Linux), else None."""
    try:
        return float(os.sysconf("SC_AVPHYS_PAGES")) * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not Linux
        return None


def _run(argv: list[str]) -> int:
    from weightinit.cli.common import require

    if argv and argv[0] in _EXTERNAL:
        command = argv[0]
        module = importlib.import_module(_EXTERNAL[command][0])
        sp = Parser(prog=f"weightinit {command}", description=_EXTERNAL[command][1])
        module.add_arguments(sp)
        args = sp.parse_args(argv[1:])
        extra, modules = _NEEDS.get(command, ("", ()))
        needs = getattr(module, "needs", None)
        require(command, extra, *(needs(args) if needs is not None else modules))
        return int(module.run(args) or 0)
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


def main(argv=None) -> int:
    """Run the command line on ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    from weightinit.common.errors import WeightinitError

    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[0] if argv and not argv[0].startswith("-") else None
    prefix = f"weightinit {command}" if command else "weightinit"
    try:
        return _run(argv)
    except SystemExit as e:  # argparse: --help, --version, a bad option (its one line is printed)
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    except (CLIError, WeightinitError) as e:
        say(f"{prefix}: error: {e}")
        return 2
    except BrokenPipeError:
        # the reader went away (`weightinit list | head`): stop quietly; point stdout at /dev/null so the
        # interpreter's final flush does not fail again
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):  # pragma: no cover - stdout without a file descriptor
            pass
        return 141
    except KeyboardInterrupt:
        say(f"{prefix}: interrupted")
        return 130
    except Exception as e:  # a bug, not a user mistake: still one line unless asked for the traceback
        if os.environ.get("WEIGHTINIT_TRACEBACK"):
            raise
        first = (str(e).strip().splitlines() or [""])[0]  # one line: some libraries append a C++ trace
        say(f"{prefix}: internal error: {type(e).__name__}: {first} (set WEIGHTINIT_TRACEBACK=1 for the traceback)")
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
