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
