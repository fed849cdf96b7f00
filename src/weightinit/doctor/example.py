"""The built-in example: a 30-layer ReLU MLP with PyTorch's default init on scikit-learn's digits.

PyTorch's default ``nn.Linear`` init is ``kaiming_uniform_(a=sqrt(5))``, i.e.
``U(-1/sqrt(n), 1/sqrt(n))``, ``Var(W) = 1/(3n)``; with ReLU each layer
multiplies the second moment by ``1/6`` (He et al. 2015 derive the
variance-preserving ``2/n``), so 30 layers shrink the input-dependent signal by
about ``6**-15``: the net collapses to a constant function of its input.
The example measures that, applies :func:`weightinit.fix`, measures again and
trains both copies briefly.  The digits data ship with scikit-learn.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

    import torch
    from torch import nn
    from weightinit.doctor.api import FixMode
    from weightinit.doctor.report import FixReport, Report

    Digits = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]

__all__ = ["digits", "make_mlp", "train", "run_example"]


def digits(seed: int = 0) -> Digits:
    """Standardized digits ``(x_train, y_train, x_test, y_test)`` as torch tensors (1797 8x8 images, 10 classes)."""
    import numpy as np

    import torch

    x, y = _load_digits()
    x = (x - x.mean(0)) / (x.std(0) + 1e-6)
    perm = np.random.default_rng(seed).permutation(len(x))
    x, y = x[perm], y[perm]
    n = int(0.8 * len(x))
    t = torch.from_numpy
    return t(x[:n]), t(y[:n]), t(x[n:]), t(y[n:])


def _load_digits() -> tuple[np.ndarray, np.ndarray]:
    """The digits CSV shipped inside scikit-learn, read without importing sklearn (saves seconds)."""
    import gzip
    import importlib.util
    import os

    import numpy as np

    spec = importlib.util.find_spec("sklearn")
    if spec is not None and spec.submodule_search_locations:
        path = os.path.join(next(iter(spec.submodule_search_locations)), "datasets", "data", "digits.csv.gz")
        if os.path.exists(path):
            with gzip.open(path, "rt") as fh:
                data = np.loadtxt(fh, delimiter=",", dtype=np.float32)
            return data[:, :-1], data[:, -1].astype(np.int64)
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    return x.astype(np.float32), y.astype(np.int64)


def make_mlp(depth: int = 30, width: int = 64, activation: str = "relu", seed: int = 0, n_in: int = 64,
             n_out: int = 10) -> nn.Sequential:  # fmt: skip
    """``depth`` hidden Linear+activation layers with PyTorch's default init (seeded with ``torch.manual_seed``)."""
    import torch
    from torch import nn

    acts = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "gelu": nn.GELU, "silu": nn.SiLU}
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    for i in range(depth):
        layers += [nn.Linear(n_in if i == 0 else width, width), acts[activation]()]
    layers.append(nn.Linear(width if depth else n_in, n_out))
    return nn.Sequential(*layers)


def train(model: nn.Module, data: Digits, epochs: int = 3, lr: float = 0.01, batch: int = 64, seed: int = 0,
          on_epoch: Callable[[], object] | None = None) -> list[tuple[float, float]]:  # fmt: skip
    """Plain SGD with momentum 0.9; returns per-epoch ``[(train_loss, test_accuracy), ...]``."""
    import torch

    xtr, ytr, xte, yte = data
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    hist: list[tuple[float, float]] = []
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(len(xtr), generator=g)
        tot, cnt = 0.0, 0
        for i in range(0, len(xtr), batch):
            idx = perm[i : i + batch]
            loss = torch.nn.functional.cross_entropy(model(xtr[idx]), ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            tot += float(loss.detach()) * len(idx)
            cnt += len(idx)
        model.eval()
        with torch.no_grad():
            acc = float((model(xte).argmax(1) == yte).float().mean())
        hist.append((tot / max(cnt, 1), acc))
        if on_epoch is not None:
            on_epoch()
    return hist


EXAMPLE_LR = 0.003
"""SGD learning rate of the example's training (30 plain ReLU layers need a small step)."""


def run_example(depth: int = 30, width: int = 64, mode: FixMode = "analytic", epochs: int = 5, seed: int = 0,
                batch: int = 256, progress: Callable[[str], object] | None = None,
                ) -> tuple[Report, FixReport, dict[str, list[tuple[float, float]]]]:  # fmt: skip
    """Diagnose, fix and (briefly) train the example; returns ``(before, fix_report, histories)``.

    ``progress(step_description)``, if given, is called after each of the ``3 + 2 * epochs`` steps.
    """
    step = progress if progress is not None else (lambda what: None)
    import torch
    from weightinit.doctor.api import doctor, fix

    torch.set_num_threads(1)  # tiny matmuls: one thread is fastest, and fair to a shared machine
    data = digits(seed)
    xb, yb = data[0][:batch], data[1][:batch]
    model = make_mlp(depth, width, seed=seed)
    before = doctor(model, xb, targets=yb, seed=seed, title=f"{depth}-layer ReLU MLP, PyTorch default init")
    step("diagnosed the default init")
    fixed = copy.deepcopy(model)
    rep = fix(fixed, mode, xb if mode == "lsuv" else None, targets=yb, seed=seed, measure=False)
    step(f"fixed ({mode})")
    after = doctor(fixed, xb, targets=yb, seed=seed, title=f"after weightinit.fix(mode={mode!r})")
    step("diagnosed the fixed model")
    rep.before, rep.after = before, after
    hist: dict[str, list[tuple[float, float]]] = {}
    if epochs:
        for label, m in (("default init", model), (f"fixed ({mode})", fixed)):
            count = iter(range(1, epochs + 1))
            hist[label] = train(m, data, epochs, lr=EXAMPLE_LR, seed=seed,
                                on_epoch=lambda label=label, count=count: step(f"trained {label}, epoch {next(count)}"))  # fmt: skip
    return before, rep, hist
