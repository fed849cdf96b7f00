"""Parameters no rule matches, given their module's own init: covered by fingerprint, verify and materialize.

By default the artifact functions plan with ``strict=True`` (the digest is then the recipe's and the seed's
alone); with ``strict=False`` such parameters take their modules' own init, whose values (torch's seeded
RNG) are computed on the CPU apart from the model, one module's worth at a time.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402

import weightinit as wi  # noqa: E402
import weightinit.torch as wt  # noqa: E402
from torch import nn  # noqa: E402


class Net(nn.Module):
    """A model with a parameter only its own ``init_weights`` sets (as timm's ``cls_token``)."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(8, 16)
        self.out = nn.Linear(16, 8)
        self.tok = nn.Parameter(torch.empty(1, 4, 8))
        self.init_weights()

    def init_weights(self) -> None:
        nn.init.trunc_normal_(self.tok, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.5)
                nn.init.zeros_(m.bias)


class RandomWrites(TorchDispatchMode):
    """Counts the real (not meta) elements torch's random fills write."""

    def __init__(self) -> None:
        super().__init__()
        self.numel = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.__name__.split(".")[0] in ("uniform_", "normal_") and not args[0].is_meta:
            self.numel += args[0].numel()
        return func(*args, **(kwargs or {}))


def _meta() -> Net:
    with torch.device("meta"):
        return Net()


def _initialized() -> Net:
    net = Net()
    report = wt.initialize(net, "torch", seed=4)
    assert report.own_init == {"tok": "Net.init_weights"}
    return net


def test_strict_by_default_names_the_parameter_and_the_option():
    with pytest.raises(ValueError, match=r"(?s)\['tok'\].*strict=False gives them their modules' own init"):
        wi.fingerprint(_meta(), "torch", 4)
    with pytest.raises(ValueError, match=r"unmatched='keep' leaves them"):
        wi.fingerprint(_meta(), "torch", 4, strict=False, unmatched="keep")


def test_fingerprint_and_verify_cover_own_init_values():
    meta = _meta()
    counter = RandomWrites()
    with counter:
        digest = wi.fingerprint(meta, "torch", 4, strict=False)
    assert counter.numel == 4 * 8  # only tok's values were drawn (the rest of init_weights ran on stand-ins)
    assert all(p.is_meta for p in meta.parameters())  # the model was not touched
    net = _initialized()
    # the digest is of what the recipe gives (planned on a CPU build: the same values as on meta)
    assert "tok" in digest.params and wi.fingerprint(net, "torch", 4, strict=False).hex == digest.hex
    assert wi.verify(net, "torch", 4, strict=False).checks["tok"].status == "equal"
    with torch.no_grad():
        net.tok[0, 1, 2] += 1e-3
    result = wi.verify(net, "torch", 4, strict=False, raise_on_mismatch=False)
    assert [c.path for c in result.failures] == ["tok"] and result.checks["tok"].first_index == (0, 1, 2)


def test_materialize_writes_own_init_values(tmp_path):
    from safetensors.torch import load_file

    r = wi.materialize(_meta(), "torch", 4, tmp_path / "ckpt", strict=False)
    state = load_file(str(tmp_path / "ckpt" / "model.safetensors"))
    net = _initialized()
    assert set(state) == {n for n, _ in net.named_parameters()}
    for n, p in net.named_parameters():
        assert torch.equal(state[n], p.detach()), n
    assert r.digest == wi.fingerprint(_meta(), "torch", 4, strict=False).hex
    assert wi.verify(tmp_path / "ckpt", "torch", 4, model=_meta(), strict=False).ok
