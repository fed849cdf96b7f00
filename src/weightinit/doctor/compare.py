"""``weightinit compare``: train one architecture with several initializers on digits and plot the curves.

Reproduces the classic comparisons on a CPU in seconds: a deep ReLU MLP stalls
with PyTorch's default ``U(-1/sqrt(n), 1/sqrt(n))`` and with Glorot/Xavier
(Glorot & Bengio 2010), trains with He (He et al. 2015), orthogonal (Saxe et
al. 2014) and LSUV (Mishkin & Matas 2016).  Weights come from weightinit
initializers (Keras layout ``(fan_in, fan_out)``, transposed into torch's
``(out, in)``); biases are zeroed for every initializer except ``default``.
"""

from __future__ import annotations

import copy
import time

__all__ = ["add_arguments", "run", "compare", "apply_initializer"]

DEFAULT_INITS = ("default", "glorot_uniform", "he_normal", "orthogonal", "lsuv")


def apply_initializer(model, name: str, seed: int = 0, data=None) -> None:
    """Re-initialize every Linear/Conv weight of ``model`` with ``weightinit.get(name)`` (or LSUV/default)."""
    import numpy as np

    import torch
    from weightinit import Stream, get
    from weightinit.doctor.backends import torch as tu

    if name == "default":
        return
    if name == "lsuv":
        from weightinit.doctor.lsuv import lsuv_torch

        with torch.no_grad():
            for _, m in tu.weight_layers(model):
                if getattr(m, "bias", None) is not None:
                    m.bias.zero_()
        lsuv_torch(model, data, seed=seed)
        return
    base = get(name)
    cfg = base.get_config()
    for lname, m in tu.weight_layers(model):
        w = m.weight
        if "seed" in cfg:
            cfg["seed"] = Stream.from_seed(seed).child(lname)
        init = type(base).from_config(cfg)
        if w.ndim == 2:
            arr = np.asarray(init((w.shape[1], w.shape[0]), "float32")).T
        else:  # conv (out, in, *k) -> keras (*k, in, out)
            k = tuple(w.shape[2:])
            arr = np.asarray(init((*k, w.shape[1], w.shape[0]), "float32"))
            arr = np.moveaxis(arr, (-1, -2), (0, 1))
        with torch.no_grad():
            w.copy_(torch.from_numpy(np.ascontiguousarray(arr)))
            if getattr(m, "bias", None) is not None:
                m.bias.zero_()


def compare(inits=DEFAULT_INITS, depth: int = 20, width: int = 64, activation: str = "relu", epochs: int = 5,
            lr: float = 0.01, seed: int = 0, progress: bool = False):  # fmt: skip
    """Train a copy of the same MLP per initializer; returns ``{init: [(train_loss, test_acc), ...]}``."""
    import torch
    from weightinit.doctor.example import digits, make_mlp, train

    torch.set_num_threads(1)
    data = digits(seed)
    base = make_mlp(depth, width, activation, seed=seed)
    out = {}
    bar = None
    if progress:
        try:
            from rich.progress import Progress

            bar = Progress(transient=True)
            bar.start()
            task = bar.add_task("training", total=len(inits) * epochs)
        except ImportError:  # pragma: no cover
            bar = None
    try:
        for name in inits:
            model = copy.deepcopy(base)
            apply_initializer(model, name, seed, data[0][:256])
            if bar is not None:
                bar.update(task, description=f"training ({name})")
            out[name] = train(model, data, epochs, lr=lr, seed=seed,
                              on_epoch=(lambda: bar.advance(task)) if bar is not None else None)  # fmt: skip
    finally:
        if bar is not None:
            bar.stop()
    return out


def plot(hist: dict, path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
    for name, h in hist.items():
        ep = range(1, len(h) + 1)
        a.plot(ep, [x[0] for x in h], marker=".", label=name)
        b.plot(ep, [100 * x[1] for x in h], marker=".", label=name)
    a.set_xlabel("epoch")
    a.set_ylabel("train loss")
    b.set_xlabel("epoch")
    b.set_ylabel("test accuracy (%)")
    a.legend()
    fig.suptitle(title)
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)


def add_arguments(p) -> None:
    p.add_argument("--inits", default=",".join(DEFAULT_INITS), help="comma-separated initializer names (and lsuv)")
    p.add_argument("--depth", type=int, default=20)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--activation", default="relu", choices=["relu", "tanh", "sigmoid", "gelu", "silu"])
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="weightinit-compare.png", help="where to write the PNG of the curves")


def run(args) -> int:
    t0 = time.perf_counter()
    inits = tuple(s.strip() for s in args.inits.split(",") if s.strip())
    hist = compare(inits, args.depth, args.width, args.activation, args.epochs, args.lr, args.seed, progress=True)
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
