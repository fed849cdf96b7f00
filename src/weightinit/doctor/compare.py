"""Train one architecture with several initializers on digits and plot the curves.

Reproduces the classic comparisons on a CPU in seconds: a deep ReLU MLP stalls
with PyTorch's default ``U(-1/sqrt(n), 1/sqrt(n))`` and with Glorot/Xavier
(Glorot & Bengio 2010), trains with He (He et al. 2015), orthogonal (Saxe et
al. 2014) and LSUV (Mishkin & Matas 2016).  Weights come from weightinit
initializers (Keras layout ``(fan_in, fan_out)``, transposed into torch's
``(out, in)``); biases are zeroed for every initializer except ``default``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["compare", "apply_initializer", "plot", "check_inits", "DEFAULT_INITS"]

DEFAULT_INITS = ("default", "glorot_uniform", "he_normal", "orthogonal", "lsuv")


def apply_initializer(model: nn.Module, name: str, seed: int = 0, data: torch.Tensor | None = None) -> None:
    """Re-initialize every Linear/Conv weight of ``model`` with ``weightinit.get(name)`` (or LSUV/default)."""
    import numpy as np

    import torch
    from weightinit.common.errors import value_error
    from weightinit.doctor.backends import torchutil as tu
    from weightinit.initializers.base import Initializer
    from weightinit.random.streams import Stream
    from weightinit.registry.api import get

    if name == "default":
        return
    if name == "lsuv":
        from weightinit.doctor.lsuv import lsuv_torch

        with torch.no_grad():
            for _, m in tu.weight_layers(model):
                if m.bias is not None:
                    m.bias.zero_()
        lsuv_torch(model, data, seed=seed)
        return
    base = get(name)
    if not isinstance(base, Initializer):  # a registered class outside weightinit's base: no config to reseed
        raise value_error("name", name, "must name a weightinit Initializer, 'default' or 'lsuv'")
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
            if m.bias is not None:
                m.bias.zero_()


def check_inits(inits: Iterable[str]) -> tuple[str, ...]:
    """``inits`` as a tuple, each a weightinit initializer name, ``"default"`` or ``"lsuv"``; raises
    :class:`weightinit.common.errors.InitializerValueError` naming the first unknown one (before any training)."""
    from weightinit.common.errors import value_error
    from weightinit.registry.api import get

    inits = tuple(inits)
    if not inits:
        raise value_error("inits", inits, "must name at least one initializer")
    for name in inits:
        if name in ("default", "lsuv"):
            continue
        try:
            get(name)
        except ValueError as e:
            hint = str(e).split("`weightinit list`")[0].strip()
            raise value_error("inits", name, "must list initializer names (see `weightinit list`), 'default' or 'lsuv'",
                              hint) from None  # fmt: skip
    return inits


def compare(inits: Iterable[str] = DEFAULT_INITS, depth: int = 20, width: int = 64, activation: str = "relu",
            epochs: int = 5, lr: float = 0.01, seed: int = 0,
            progress: Callable[[str], object] | None = None) -> dict[str, list[tuple[float, float]]]:  # fmt: skip
    """Train a copy of the same MLP per initializer; returns ``{init: [(train_loss, test_acc), ...]}``.

    ``progress(description)``, if given, is called after each of the ``len(inits) * epochs`` epochs.
    """
    import torch
    from weightinit.common.errors import value_error
    from weightinit.doctor.example import digits, make_mlp, train

    inits = check_inits(inits)
    if epochs < 1:
        raise value_error("epochs", epochs, "must be >= 1")
    torch.set_num_threads(1)
    data = digits(seed)
    base = make_mlp(depth, width, activation, seed=seed)
    out: dict[str, list[tuple[float, float]]] = {}
    for name in inits:
        model = copy.deepcopy(base)
        apply_initializer(model, name, seed, data[0][:256])
        count = iter(range(1, epochs + 1))
        on_epoch = (lambda name=name, count=count: progress(f"{name}, epoch {next(count)}")) if progress else None
        out[name] = train(model, data, epochs, lr=lr, seed=seed, on_epoch=on_epoch)
    return out


def plot(hist: dict[str, list[tuple[float, float]]], path: str, title: str) -> None:
    """Training loss and test accuracy by epoch of :func:`compare`'s histories, side by side, saved to ``path``."""
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
