"""Persistent buffers in artifacts: materialize writes them, fingerprint and verify cover them.

A checkpoint materialized from a meta-device build holds every tensor of the model's state dict: the
planned parameters, and the persistent buffers (BatchNorm's running statistics and
``num_batches_tracked``, ...) with the values the model's own code gives them, computed one module at a
time apart from the model, exactly as ``weightinit.torch.initialize`` restores them.  A persistent buffer
no code computes is refused by name.
"""

from __future__ import annotations

import hashlib
import os
import struct

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")

from safetensors.torch import load_file, save_file  # noqa: E402

import weightinit as wi  # noqa: E402
import weightinit.torch as wt  # noqa: E402
from torch import nn  # noqa: E402
from weightinit.artifact import CheckpointError  # noqa: E402


def _resnet(tv):
    from torchvision.models.resnet import BasicBlock, ResNet

    return ResNet(BasicBlock, [1, 1, 1, 1], num_classes=10)  # resnet18's blocks, one per stage (4.9M parameters)


def _on_meta(make):
    with torch.device("meta"):
        return make()


@pytest.fixture(scope="module")
def resnet_ckpt(model_zoo, tmp_path_factory):
    tv = model_zoo.torchvision
    out = tmp_path_factory.mktemp("resnet") / "ckpt"
    meta = _on_meta(lambda: _resnet(tv))
    result = wi.materialize(meta, "torch", 3, out)
    assert all(t.is_meta for t in (*meta.parameters(), *meta.buffers()))  # the model was not touched
    return tv, meta, out, result, load_file(str(out / "model.safetensors"))


def test_resnet_checkpoint_loads_strictly_and_equals_initialize_in_memory(resnet_ckpt):
    tv, _, out, _, state = resnet_ckpt
    ref = _resnet(tv)
    with torch.no_grad():  # statistics as after training steps: initialize must reset them
        for m in ref.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_()
                m.running_var.uniform_(2, 3)
                m.num_batches_tracked.fill_(7)
    wt.initialize(ref, "torch", seed=3)
    expected = ref.state_dict()
    assert set(state) == set(expected)
    assert len([k for k in state if k.endswith("num_batches_tracked")]) == 1 + 4 * 2 + 3  # stem, blocks, downsamples
    for k, v in expected.items():
        assert state[k].dtype == v.dtype and torch.equal(state[k], v), k
    # the documented meta-device recipe: build on meta, to_empty, load the checkpoint (strict)
    loaded = _on_meta(lambda: _resnet(tv)).to_empty(device="cpu")
    loaded.load_state_dict(state, strict=True)
    for k, v in loaded.state_dict().items():
        assert torch.equal(v, expected[k]), k
    # ... and initialize on meta -> to_empty gives the same bits (buffers hold garbage before)
    empty = _on_meta(lambda: _resnet(tv)).to_empty(device="cpu")
    with torch.no_grad():
        for b in empty.buffers():
            b.fill_(-5)
    wt.initialize(empty, "torch", seed=3)
    for k, v in empty.state_dict().items():
        assert torch.equal(v, expected[k]), k
    info = (out / "weightinit.json").read_text()
    assert '"bn1.running_var": "BatchNorm2d.reset_running_stats"' in info


def test_fingerprint_covers_buffers_and_equals_the_materialized_digest(resnet_ckpt):
    tv, meta, _, result, state = resnet_ckpt
    d = wi.fingerprint(meta, "torch", 3)
    assert result.digest == d.hex
    assert set(d.params) == set(state)  # every tensor of the checkpoint has a digest
    # the digest of an int64 buffer follows docs/artifact.md section 2 (little-endian two's complement)
    v = state["bn1.num_batches_tracked"]
    head = b"weightinit.tensor.v1\0int64\0" + struct.pack("<Q", 0) + struct.pack("<Q", 1 << 16)
    leaf = hashlib.sha256(np.asarray(v.numpy(), dtype="<i8").tobytes()).digest()
    assert d["bn1.num_batches_tracked"].hex == hashlib.sha256(head + leaf).hexdigest()
    # a model in memory gives the same digest
    ref = _resnet(tv)
    wt.initialize(ref, "torch", seed=3)
    assert wi.fingerprint(ref, "torch", 3).hex == d.hex


def test_verify_checks_the_buffers_of_a_checkpoint(resnet_ckpt, tmp_path):
    tv, meta, out, _, state = resnet_ckpt
    result = wi.verify(out, "torch", 3, model=meta)
    assert result["layer2.0.bn1.running_var"].status == "equal"
    assert result["layer2.0.downsample.1.num_batches_tracked"].status == "equal"
    bad = dict(state)
    bad["layer2.0.bn1.running_var"] = bad["layer2.0.bn1.running_var"].clone()
    bad["layer2.0.bn1.running_var"][5] = 1.25
    bad["bn1.num_batches_tracked"] = torch.tensor(1)
    del bad["layer1.0.bn2.running_mean"]
    save_file(bad, str(tmp_path / "bad.safetensors"))
    r = wi.verify(tmp_path / "bad.safetensors", "torch", 3, model=meta, raise_on_mismatch=False)
    assert sorted(c.path for c in r.failures) == [
        "bn1.num_batches_tracked",
        "layer1.0.bn2.running_mean",
        "layer2.0.bn1.running_var",
    ]
    assert r["layer2.0.bn1.running_var"].first_index == (5,) and r["layer2.0.bn1.running_var"].n_different == 1
    assert r["layer1.0.bn2.running_mean"].status == "missing"
    # a model in memory: a buffer changed by training is reported
    net = _resnet(tv)
    wt.initialize(net, "torch", seed=3)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    net.train()(x)  # one forward in train mode updates every BatchNorm's statistics
    trained = {k: v.clone() for k, v in net.state_dict().items()}
    r = wi.verify(net, "torch", 3, raise_on_mismatch=False)
    assert {c.path for c in r.failures} == {k for k in state if "running" in k or "num_batches" in k}
    assert all(torch.equal(v, trained[k]) for k, v in net.state_dict().items())  # verify changed nothing


def test_timm_model_with_batchnorm(model_zoo, tmp_path):
    timm = model_zoo.timm

    def make():
        return timm.create_model("mobilenetv3_small_050", pretrained=False, num_classes=10)

    r = wi.materialize(_on_meta(make), "torch", 5, tmp_path / "ckpt", format="dcp")
    ref = make()
    wt.initialize(ref, "torch", seed=5)
    loaded = _on_meta(make).to_empty(device="cpu")
    from torch.distributed.checkpoint import load as dcp_load

    state = loaded.state_dict()
    dcp_load(state, checkpoint_id=str(tmp_path / "ckpt"), no_dist=True)
    loaded.load_state_dict(state, strict=True)
    expected = ref.state_dict()
    assert any(k.endswith("running_var") for k in expected)
    for k, v in loaded.state_dict().items():
        assert torch.equal(v, expected[k]), k
    assert r.n_tensors == len(expected)


class RandomProjection(nn.Module):
    """A persistent buffer drawn at random by the module's own reset_parameters (as random-feature attention)."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(6, 4)
        self.register_buffer("proj", torch.empty(4, 3))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.lin.reset_parameters()
        nn.init.normal_(self.proj)


def test_a_random_buffer_is_seeded_by_the_plan(tmp_path):
    r = wi.materialize(_on_meta(RandomProjection), "torch", 9, tmp_path / "ckpt")
    state = load_file(str(tmp_path / "ckpt" / "model.safetensors"))
    a, b = RandomProjection(), RandomProjection()
    torch.manual_seed(0)
    wt.initialize(a, "torch", seed=9)
    torch.manual_seed(1)  # torch's global RNG state does not matter
    wt.initialize(b, "torch", seed=9)
    assert torch.equal(a.proj, b.proj) and torch.equal(state["proj"], a.proj)
    c = RandomProjection()
    wt.initialize(c, "torch", seed=10)
    assert not torch.equal(c.proj, a.proj)
    assert r.digest == wi.fingerprint(a, "torch", 9).hex


class Orphan(nn.Module):
    """A persistent buffer no code of the model computes."""

    def __init__(self, own_reset: bool) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 4)
        self.register_buffer("scale", torch.ones(4))
        self.register_buffer("cache", torch.zeros(2), persistent=False)  # not in the checkpoint: not asked for
        if own_reset:
            self.reset_parameters = self.lin.reset_parameters  # runs, but does not write the buffer


@pytest.mark.parametrize("own_reset", [False, True], ids=["no-code", "code-that-does-not-write-it"])
def test_a_buffer_no_code_computes_is_refused_by_name(tmp_path, own_reset):
    meta = _on_meta(lambda: Orphan(own_reset))
    with pytest.raises(CheckpointError, match=r"persistent buffer\(s\) no code of the model computes: \['scale'\]"):
        wi.materialize(meta, "torch", 0, tmp_path / "ckpt")
    assert list(tmp_path.iterdir()) == []  # refused before anything is written
    with pytest.raises(wi.InitializerValueError, match=r"\['scale'\].*persistent=False"):
        wi.fingerprint(meta, "torch", 0)
    net = Orphan(own_reset)
    with pytest.warns(UserWarning, match="scale"):
        wt.initialize(net, "torch", seed=0)
    with pytest.raises(wi.InitializerValueError, match=r"\['scale'\]"):
        wi.verify(net, "torch", 0)


def test_non_persistent_buffers_stay_out_of_the_checkpoint(tmp_path):
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bn = nn.BatchNorm1d(4)
            self.register_buffer("mask", torch.ones(3), persistent=False)  # no code computes it; not persisted

    with pytest.warns(UserWarning, match="mask"):  # initialize warns (it would hold garbage after to_empty)
        wt.initialize(Net(), "torch", seed=0)
    wi.materialize(_on_meta(Net), "torch", 0, tmp_path / "ckpt")
    assert sorted(load_file(str(tmp_path / "ckpt" / "model.safetensors"))) == [
        "bn.bias",
        "bn.num_batches_tracked",
        "bn.running_mean",
        "bn.running_var",
        "bn.weight",
    ]
    assert os.path.exists(tmp_path / "ckpt" / "weightinit.json")
