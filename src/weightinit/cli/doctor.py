"""``weightinit doctor [path/to/file.py:factory]``: diagnose a model (or the built-in example) in the terminal.

``factory`` is a callable in the file returning a model, or ``(model, inputs)``,
or ``(model, inputs, targets)``.  Without an argument the built-in example runs
(:mod:`weightinit.doctor.example`).
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time

__all__ = ["add_arguments", "run", "load_factory"]


def add_arguments(p) -> None:
    p.add_argument("target", nargs="?", help="path/to/file.py:factory (default: the built-in digits example)")
    p.add_argument(
        "--fix",
        choices=["none", "analytic", "lsuv"],
        default=None,
        help="apply a fix and show before/after (default: analytic for the example, none otherwise)",
    )
    p.add_argument("--html", default=None, help="also write an HTML report with plots to this path")
    p.add_argument("--batch", type=int, default=64, help="synthetic batch size when the factory gives no inputs")
    p.add_argument("--input-shape", default=None, help="input shape without batch, e.g. 3,32,32")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--depth", type=int, default=30, help="example: hidden layers")
    p.add_argument("--width", type=int, default=64, help="example: width")
    p.add_argument("--epochs", type=int, default=5, help="example: training epochs before/after (0 to skip)")
    p.add_argument("--plain", action="store_true", help="plain text instead of rich tables")  # fmt: skip


def load_factory(spec: str):
    """Import ``path/to/file.py:factory`` and call it."""
    path, _, name = spec.rpartition(":")
    if not path:
        path, name = spec, "model"
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such file: {path!r} (expected path/to/file.py:factory)")
    mod_spec = importlib.util.spec_from_file_location(f"_weightinit_user_{abs(hash(path))}", path)
    module = importlib.util.module_from_spec(mod_spec)
    sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
    try:
        mod_spec.loader.exec_module(module)
    finally:
        sys.path.pop(0)
    if not hasattr(module, name):
        raise AttributeError(f"{path} has no attribute {name!r}")
    out = getattr(module, name)
    out = out() if callable(out) and not hasattr(out, "parameters") and not hasattr(out, "layers") else out
    if isinstance(out, tuple):
        return (*out, None, None)[:3]
    return out, None, None


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

    out = _printer(args.plain)
    t0 = time.perf_counter()
    if args.target is None:
        from weightinit.doctor.example import EXAMPLE_LR, run_example

        mode = args.fix or "analytic"
        before, rep, hist = run_example(args.depth, args.width, "analytic" if mode == "none" else mode,
                                        args.epochs, args.seed)  # fmt: skip
        out(before)
        out(rep)
        if hist:
            lines = [f"training {args.epochs} epoch(s), SGD lr {EXAMPLE_LR} momentum 0.9 (train loss / test accuracy):"]
            for k, h in hist.items():
                lines.append(f"  {k:<18} " + "  ".join(f"{lo:.3f}/{100 * a:.0f}%" for lo, a in h))
            out("\n".join(lines))
        if args.html:
            rep.to_html(args.html)
            out(f"HTML report written to {args.html}")
        out(f"done in {time.perf_counter() - t0:.1f} s")
        return 0
    try:
        model, inputs, targets = load_factory(args.target)
    except Exception as e:
        print(f"weightinit doctor: cannot load {args.target!r}: {type(e).__name__}: {e}", file=sys.stderr)
        return 2
    shape = tuple(int(s) for s in args.input_shape.split(",")) if args.input_shape else None
    report = doctor(model, inputs, targets=targets, seed=args.seed, batch=args.batch, input_shape=shape)
    out(report)
    final = report
    if args.fix and args.fix != "none":
        if args.fix == "lsuv" and inputs is None:
            from weightinit.doctor.backends import torch as tu

            inputs = tu.synthetic_inputs(model, args.batch, shape, args.seed)
            out("note: LSUV on synthetic N(0, 1) inputs (the factory returned no batch)")
        final = fix(model, args.fix, inputs, targets=targets, seed=args.seed, input_shape=shape)
        out(final)
    if args.html:
        final.to_html(args.html)
        out(f"HTML report written to {args.html}")
    return 0
