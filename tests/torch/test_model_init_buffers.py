"""initialize on hand-built models: buffers after meta -> to_empty, and own inits that write only what they must."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

import weightinit.torch as wt  # noqa: E402
from torch import nn  # noqa: E402


class Masked(nn.Module):
    """A causal mask in a non-persistent buffer, computed by reset_parameters (with the weights)."""

    def __init__(self, n: int = 6) -> None:
        super().__init__()
        self.n = n
        self.lin = nn.Linear(n, n)
        self.register_buffer("mask", torch.empty(n, n, dtype=torch.bool), persistent=False)
        self.scale = nn.Parameter(torch.empty(n))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        with torch.no_grad():
            self.mask.copy_(torch.ones(self.n, self.n, dtype=torch.bool).tril())
            self.scale.fill_(0.5)


class Orphan(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.register_buffer("table", torch.arange(4.0))


def _meta(build):
    with torch.device("meta"):
        m = build()
    m.to_empty(device="cpu")
    for b in m.buffers():
        b.fill_(False if b.dtype == torch.bool else 3)
    return m


def test_buffers_computed_by_reset_parameters_and_batchnorm_are_restored_without_touching_parameters():
    net = _meta(lambda: nn.Sequential(Masked(), nn.BatchNorm1d(6)))
    with torch.no_grad():
        net[0].scale.fill_(9.0)
    report = wt.initialize(net, [("0.scale", "keep"), "torch"], seed=0)
    assert report.buffer_init["0.mask"] == "Masked.reset_parameters"
    assert report.buffer_init["1.running_var"] == "BatchNorm1d.reset_running_stats"
    assert torch.equal(net[0].mask, torch.ones(6, 6, dtype=torch.bool).tril())
    assert float(net[1].running_var.sum()) == 6 and int(net[1].num_batches_tracked) == 0
    assert float(net[0].scale.detach().sum()) == 9 * 6  # a kept parameter is not rewritten by the buffer code


def test_a_buffer_no_code_computes_warns_by_name_and_strict_refuses_before_writing():
    m = _meta(Orphan)
    with torch.no_grad():
        m.lin.weight.fill_(7.0)
    with pytest.raises(ValueError, match=r"No code computes 1 buffer\(s\) of the model: \['table'\]"):
        wt.initialize(m, "torch", seed=0, strict=True)
    assert float(m.lin.weight.detach().min()) == 7.0  # nothing written
    with pytest.warns(UserWarning, match=r"\['table'\].*reset_buffers=False"):
        report = wt.initialize(m, "torch", seed=0)
    assert report.buffers_unknown == ["table"] and "table" in str(report)
    report = wt.initialize(m, "torch", seed=0, reset_buffers=False)  # no warning: buffers left alone on purpose
    assert report.buffers_unknown == [] and float(m.table.sum()) == 12


def test_own_init_by_reset_parameters_writes_only_the_unmatched_parameter():
    lin = nn.Linear(16, 32)
    with torch.no_grad():
        lin.weight.fill_(2.0)
    report = wt.initialize(lin, [("weight", "keep")], seed=1)
    assert report.own_init == {"bias": "Linear.reset_parameters"}
    assert (
        float(lin.weight.detach().min()) == float(lin.weight.detach().max()) == 2.0
    )  # reset_parameters did not redraw it
    bound = 1 / 16**0.5
    assert float(lin.bias.detach().abs().max()) <= bound and float(lin.bias.detach().std()) > 0
    again = nn.Linear(16, 32)
    wt.initialize(again, [("weight", "keep")], seed=1)
    assert torch.equal(again.bias, lin.bias)  # same seed, same bits (the weight's values play no part)
