"""Fixtures shared by the doctor's Monte Carlo tests (pytest runs with ``--import-mode=importlib``, so test
modules share helpers through fixtures)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def per_example_q():
    """``collect(model, x, names) -> {name: per-example E[y^2]}``: for each module in ``names``, its first call's
    output (the first element of a tuple; non-float outputs are skipped) as a float64 tensor of one mean square
    per example (examples are independent, so its mean and standard error give a Monte Carlo estimate)."""
    torch = pytest.importorskip("torch")

    def collect(model, x, names):
        mods = dict(model.named_modules())
        out, hooks = {}, []

        def hook(name):
            def fn(mod, args, y):
                y = y[0] if isinstance(y, tuple) else y
                if name not in out and isinstance(y, torch.Tensor) and y.is_floating_point():
                    out[name] = y.detach().double().pow(2).reshape(x.shape[0], -1).mean(1)

            return fn

        for n in names:
            hooks.append(mods[n].register_forward_hook(hook(n)))
        try:
            with torch.no_grad():
                model(x)
        finally:
            for h in hooks:
                h.remove()
        return out

    return collect


@pytest.fixture(scope="session")
def graph_per_example_q():
    """``collect(g) -> {node name: per-example E[y^2]}`` for a captured Keras/Flax graph ``g``
    (:meth:`weightinit.doctor.graph.GraphModel.capture`, every node's measured output): one mean square per
    example, as ``per_example_q`` gives for torch modules."""
    import numpy as np

    def collect(g):
        n = np.shape(g.nodes[0].out)[0]
        return {node.name: np.square(np.asarray(node.out, np.float64)).reshape(n, -1).mean(1) for node in g.nodes
                if np.ndim(node.out) and np.shape(node.out)[0] == n}  # fmt: skip

    return collect


@pytest.fixture(scope="session")
def trained_statistics():
    """``apply(model, seed=0, spread=1.0) -> model``: gives every BatchNorm of a torch ``model`` trained-like
    statistics in place (running mean ``0.3 N(0, 1)``, running variance ``2**U(-2 spread, 2 spread)``, gamma ``1 +
    spread U(-1/2, 1/2)``, beta ``0.2 N(0, 1)``), from a generator seeded with ``seed``."""
    torch = pytest.importorskip("torch")

    def apply(model, seed: int = 0, spread: float = 1.0):
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                    c = m.num_features
                    m.running_mean.copy_(0.3 * torch.randn(c, generator=g))
                    m.running_var.copy_(2.0 ** (spread * (4 * torch.rand(c, generator=g) - 2)))
                    m.weight.copy_(1 + spread * (torch.rand(c, generator=g) - 0.5))
                    m.bias.copy_(0.2 * torch.randn(c, generator=g))
        return model

    return apply


@pytest.fixture(scope="session")
def conv_bn_net():
    """``make(channels) -> nn.Module``: conv 3x3 -> BN -> relu -> (1x1 conv -> BN) + skip -> relu on 3 input
    channels, no padding or pooling (the eval-BatchNorm tests' net, built the same way in every framework)."""
    torch = pytest.importorskip("torch")
    nn = torch.nn

    class ConvBN(nn.Module):
        def __init__(self, c: int):
            super().__init__()
            self.conv1 = nn.Conv2d(3, c, 3)
            self.bn1 = nn.BatchNorm2d(c)
            self.relu1 = nn.ReLU()
            self.conv2 = nn.Conv2d(c, c, 1)
            self.bn2 = nn.BatchNorm2d(c)
            self.relu2 = nn.ReLU()

        def forward(self, x):
            h = self.relu1(self.bn1(self.conv1(x)))
            return self.relu2(h + self.bn2(self.conv2(h)))

    return ConvBN
