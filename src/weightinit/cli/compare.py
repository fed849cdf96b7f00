"""``weightinit compare``: train one MLP on digits with several initializers, print a table, plot the curves.

Checked before any training (one line and exit status 2 otherwise): every name in ``--inits``, ``--epochs``
and ``--depth`` at least 1, the folder of ``--out``.  Progress per epoch goes to stderr.
"""

from __future__ import annotations

import time

from weightinit.cli.common import Steps, check_output_path, positive_float, positive_int

__all__ = ["add_arguments", "run"]


def add_arguments(p) -> None:
    from weightinit.doctor.compare import DEFAULT_INITS

    p.add_argument("--inits", default=",".join(DEFAULT_INITS), help="comma-separated initializer names (and lsuv)")
    p.add_argument("--depth", type=positive_int, default=20)
    p.add_argument("--width", type=positive_int, default=64)
    p.add_argument("--activation", default="relu", choices=["relu", "tanh", "sigmoid", "gelu", "silu"])
    p.add_argument("--epochs", type=positive_int, default=5)
    p.add_argument("--lr", type=positive_float, default=0.01)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="weightinit-compare.png", help="where to write the PNG of the curves")


def run(args) -> int:
    from weightinit.doctor.compare import check_inits, compare, plot

    t0 = time.perf_counter()
    inits = check_inits(s.strip() for s in args.inits.split(",") if s.strip())
    check_output_path(args.out, "--out")
    with Steps(len(inits) * args.epochs, "compare") as steps:
        hist = compare(inits, args.depth, args.width, args.activation, args.epochs, args.lr, args.seed,
                       progress=steps.advance)  # fmt: skip
    title = f"{args.depth}-layer {args.activation} MLP on digits, SGD lr {args.lr}, seed {args.seed}"
    plot(hist, args.out, title)
    try:
        from rich.console import Console
        from rich.table import Table

        t = Table(title=title)
        for c in ("initializer", "first loss", "final loss", "final test acc"):
            t.add_column(c, justify="left" if c == "initializer" else "right")
        for k, h in hist.items():
            t.add_row(k, f"{h[0][0]:.3f}", f"{h[-1][0]:.3f}", f"{100 * h[-1][1]:.1f}%")
        Console(width=100).print(t)
    except ImportError:  # pragma: no cover
        for k, h in hist.items():
            print(f"{k:<16} loss {h[0][0]:.3f} -> {h[-1][0]:.3f}  acc {100 * h[-1][1]:.1f}%")
    print(f"curves written to {args.out}; done in {time.perf_counter() - t0:.1f} s")
    return 0
