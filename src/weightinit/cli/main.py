"""The ``weightinit`` command line: ``list``, ``sample``, and the subcommands other modules provide.

Subcommands implemented elsewhere are imported only when used:
``bench`` (``weightinit.cli.bench``), ``doctor`` and ``compare``
(``weightinit.cli.doctor``, ``weightinit.doctor.compare``).  Each such module exposes
``add_arguments(parser)`` and ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

import numpy as np

__all__ = ["main", "histogram"]

_EXTERNAL = {
    "bench": ("weightinit.cli.bench", "measure generation speed against torch, numpy, jax and keras"),
    "doctor": ("weightinit.cli.doctor", "measure signal flow through a model at init and fix it"),
    "compare": ("weightinit.doctor.compare", "train one model with several initializers and compare"),
}


def _parse_shape(text: str) -> tuple[int, ...]:
    text = text.strip().strip("()[]")
    if not text:
        return ()
    try:
        return tuple(int(p) for p in text.split(",") if p.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--shape must be comma-separated integers such as 512,256; got {text!r}"
        ) from None


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
    w = np.asarray(init(args.shape, args.dtype))
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
    p = argparse.ArgumentParser(prog="weightinit", description="Reproducible neural-network weight initialization.")
    sub = p.add_subparsers(dest="command", required=True)
    sp = sub.add_parser("list", help="every initializer with its formula and aliases")
    sp.set_defaults(func=_cmd_list)
    sp = sub.add_parser("sample", help="draw one tensor and show its values, statistics and histogram")
    sp.add_argument("name", help="initializer name, e.g. he_normal")
    sp.add_argument("--shape", type=_parse_shape, default=(3, 3), help="comma-separated, e.g. 512,256")
    sp.add_argument("--seed", type=int, default=None)
    sp.add_argument("--dtype", default="float32")
    sp.add_argument("--bins", type=int, default=20)
    sp.add_argument("--show", type=int, default=100, help="print all values up to this many")
    sp.set_defaults(func=_cmd_sample)
    for name, (module, help_text) in _EXTERNAL.items():
        sp = sub.add_parser(name, help=help_text, add_help=False)
        sp.set_defaults(func=None, module=module)
    return p


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in _EXTERNAL:
        module_name = _EXTERNAL[argv[0]][0]
        try:
            module = importlib.import_module(module_name)
        except ImportError as e:
            print(f"weightinit {argv[0]}: unavailable ({e}).", file=sys.stderr)
            return 2
        sp = argparse.ArgumentParser(prog=f"weightinit {argv[0]}", description=_EXTERNAL[argv[0]][1])
        module.add_arguments(sp)
        return int(module.run(sp.parse_args(argv[1:])) or 0)
    parser = build_parser()
    args = parser.parse_args(argv)
    from weightinit.common.errors import WeightinitError

    try:
        return int(args.func(args) or 0)
    except WeightinitError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
