"""``weightinit doctor [path/to/file.py:factory]``: diagnose a model (or the built-in example) in the terminal.

``factory`` is a callable in the file returning a model, or ``(model, inputs)``,
or ``(model, inputs, targets)``.  Without an argument the built-in example runs
(:mod:`weightinit.doctor.example`).  An HTML report with plots is written to
``weightinit-doctor.html`` (``--html PATH`` to choose, ``--no-html`` to skip) and its path printed.

Every mistake is checked before the run and ends in one line (see :mod:`weightinit.cli.common`): a
missing file or factory, a factory that returns no model, an ``--input-shape`` that is not a shape, an
``--html`` path into a missing folder, a framework that is not installed.  Without ``KERAS_BACKEND`` and
without tensorflow, Keras models run on the jax backend (or torch, whichever is installed).
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time

from weightinit.cli.common import CLIError, Steps, check_output_path, nonnegative_int, positive_int, shape_arg

__all__ = ["add_arguments", "run", "load_factory", "needs", "choose_keras_backend"]

DEFAULT_HTML = "weightinit-doctor.html"


def add_arguments(p) -> None:
    p.add_argument("target", nargs="?", help="path/to/file.py:factory (default: the built-in digits example)")
    p.add_argument(
        "--fix",
        choices=["none", "analytic", "lsuv"],
        default=None,
        help="apply a fix and show before/after (default: analytic for the example, none otherwise)",
    )
    p.add_argument("--html", default=DEFAULT_HTML, help=f"where to write the HTML report (default {DEFAULT_HTML})")
    p.add_argument("--no-html", action="store_true", help="do not write the HTML report")
    p.add_argument(
        "--batch", type=positive_int, default=64, help="synthetic batch size when the factory gives no inputs"
    )
    p.add_argument("--input-shape", type=shape_arg("--input-shape"), default=None,
                   help="input shape without batch, e.g. 3,32,32")  # fmt: skip
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--depth", type=positive_int, default=30, help="example: hidden layers")
    p.add_argument("--width", type=positive_int, default=64, help="example: width")
    p.add_argument(
        "--epochs", type=nonnegative_int, default=5, help="example: training epochs before/after (0 to skip)"
    )
    p.add_argument("--plain", action="store_true", help="plain text instead of rich tables")


def needs(args) -> tuple[str, ...]:
    """The optional modules this run imports (checked before it starts; see ``weightinit.cli.main``)."""
    mods = () if args.no_html else ("matplotlib",)
    if args.target is None:
        mods += ("torch", "sklearn")
    return mods


def _installed(name: str) -> bool:
    if name in sys.modules:
        return sys.modules[name] is not None
    return importlib.util.find_spec(name) is not None


def choose_keras_backend() -> str | None:
    """Without ``KERAS_BACKEND`` and without tensorflow, pick jax (else torch) for Keras; returns the choice.

    Keras' own default is tensorflow, so a Keras model file would otherwise fail on the missing import.
    Nothing changes once Keras is imported (its backend is fixed per process).
    """
    if os.environ.get("KERAS_BACKEND") or "keras" in sys.modules or _installed("tensorflow"):
        return None
    for backend in ("jax", "torch"):
        if _installed(backend):
            os.environ["KERAS_BACKEND"] = backend
            return backend
    return None


def load_factory(spec: str):
    """Import ``path/to/file.py:factory``, call it and return ``(model, inputs, targets)``.

    Raises :class:`CLIError` (one line) for a missing file or attribute, a factory that fails, or a
    result that is not a PyTorch, Keras 3 or Flax NNX model.
    """
    from weightinit.doctor.api import framework_of

    path, _, name = spec.rpartition(":")
    if not path or os.sep in name or name.endswith(".py"):
        path, name = spec, "model"
    if not os.path.isfile(path):
        raise CLIError(f"no such file: {path!r} (expected path/to/file.py:factory)")
    mod_spec = importlib.util.spec_from_file_location(f"_weightinit_user_{abs(hash(path))}", path)
    if mod_spec is None or mod_spec.loader is None:
        raise CLIError(f"{path!r} is not a Python file")
    module = importlib.util.module_from_spec(mod_spec)
    sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
    try:
        mod_spec.loader.exec_module(module)
    except Exception as e:
        raise CLIError(f"importing {path!r} failed: {type(e).__name__}: {e}") from None
    finally:
        sys.path.pop(0)
    if not hasattr(module, name):
        raise CLIError(f"{path} has no attribute {name!r}")
    out = getattr(module, name)
    if callable(out) and not _looks_like_model(out):
        try:
            out = out()
        except Exception as e:
            raise CLIError(f"{path}:{name}() failed: {type(e).__name__}: {e}") from None
    model, inputs, targets = (*out, None, None)[:3] if isinstance(out, tuple) else (out, None, None)
    try:
        framework_of(model)
    except TypeError:
        raise CLIError(
            f"{path}:{name} returned {type(model).__name__}, not a model; it must return a torch.nn.Module, "
            "a Keras 3 model or a Flax NNX module, or (model, inputs) or (model, inputs, targets)"
        ) from None
    return model, inputs, targets


def _looks_like_model(obj) -> bool:
    return hasattr(obj, "parameters") or hasattr(obj, "layers") or type(obj).__module__.startswith("flax")


def _printer(plain: bool):
    if not plain:
        try:
            from rich.console import Console

            c = Console()
            if not c.is_terminal:
                c = Console(width=max(c.width, 150))
            return c.print
        except ImportError:
            pass
    return print


def run(args) -> int:
    from weightinit.doctor.api import doctor, fix

    html = None if args.no_html else args.html
    check_output_path(html, "--html")
    out = _printer(args.plain)
    t0 = time.perf_counter()
    if args.target is None:
        from weightinit.doctor.example import EXAMPLE_LR, run_example

        mode = args.fix or "analytic"
        with Steps(3 + 2 * args.epochs + (html is not None), "doctor") as steps:
            before, rep, hist = run_example(args.depth, args.width, "analytic" if mode == "none" else mode,
                                            args.epochs, args.seed, progress=steps.advance)  # fmt: skip
            if html is not None:
                rep.to_html(html)
                steps.advance("HTML report")
        out(before)
        out(rep)
        if hist:
            lines = [f"training {args.epochs} epoch(s), SGD lr {EXAMPLE_LR} momentum 0.9 (train loss / test accuracy):"]
            for k, h in hist.items():
                lines.append(f"  {k:<18} " + "  ".join(f"{lo:.3f}/{100 * a:.0f}%" for lo, a in h))
            out("\n".join(lines))
        if html is not None:
            out(f"HTML report written to {html}")
        out(f"done in {time.perf_counter() - t0:.1f} s")
        return 0
    backend = choose_keras_backend()
    model, inputs, targets = load_factory(args.target)
    if backend is not None and "keras" in sys.modules:
        out(f"note: KERAS_BACKEND is not set and tensorflow is not installed: Keras runs on {backend}")
    shape = args.input_shape
    fixing = bool(args.fix and args.fix != "none")
    with Steps(1 + fixing + (html is not None), "doctor") as steps:
        steps.start("measure")
        report = doctor(model, inputs, targets=targets, seed=args.seed, batch=args.batch, input_shape=shape)
        steps.advance("measured")
        final = report
        notes = []
        if fixing:
            if args.fix == "lsuv" and inputs is None and report.framework.startswith("torch"):
                from weightinit.doctor.backends import torchutil as tu

                inputs = tu.synthetic_inputs(model, args.batch, shape, args.seed)  # type: ignore[arg-type]  # torch framework
                notes.append("note: LSUV on synthetic N(0, 1) inputs (the factory returned no batch)")
            steps.start(f"fix ({args.fix})")
            mode = "lsuv" if args.fix == "lsuv" else "analytic"  # args.fix is one of the two here
            final = fix(model, mode, inputs, targets=targets, seed=args.seed, input_shape=shape, batch=args.batch)
            steps.advance(f"fixed ({args.fix})")
        if html is not None:
            final.to_html(html)
            steps.advance("HTML report")
    out(report)
    for n in notes:
        out(n)
    if final is not report:
        out(final)
    if html is not None:
        out(f"HTML report written to {html}")
    return 0
