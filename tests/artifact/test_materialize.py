"""materialize then load equals initialize; the HF layout loads in transformers; DCP; no half-written checkpoint."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import weightinit as wi  # noqa: E402
import weightinit.torch as wt  # noqa: E402
from weightinit.artifact import CheckpointError  # noqa: E402
from weightinit.artifact.models import build_meta  # noqa: E402


def _initialized(spec, recipe, seed):
    model = build_meta(spec).to_empty(device="cpu")
    if spec.endswith("-tied"):  # to_empty gives each module its own tensor: restore the tie
        model.lm_head.weight = model.model.embed_tokens.weight
    wt.initialize(model, recipe, seed=seed)
    return model


def _load_safetensors(d):
    from safetensors.torch import load_file

    out = {}
    for name in os.listdir(d):
        if name.endswith(".safetensors"):
            out.update(load_file(os.path.join(d, name)))
    return out


@pytest.mark.parametrize("spec,recipe", [("tiny-llama", "torch"), ("tiny-llama-tied", "gpt2"), ("tiny-llama", "keras")])
def test_safetensors_load_equals_initialize(tmp_path, spec, recipe):
    r = wi.materialize(spec, recipe, 3, tmp_path / "ckpt", max_shard_size="30KB")
    files = sorted(os.listdir(tmp_path / "ckpt"))
    shards = [f for f in files if f.endswith(".safetensors")]
    assert len(shards) > 1 and "model.safetensors.index.json" in files
    index = json.loads((tmp_path / "ckpt" / "model.safetensors.index.json").read_text())
    loaded = _load_safetensors(tmp_path / "ckpt")
    assert set(index["weight_map"]) == set(loaded)
    ref = _initialized(spec, recipe, 3)
    canonical = {k: v for k, v in ref.named_parameters()}  # tied: only the embedding's name (as Hugging Face saves)
    assert set(loaded) == set(canonical)
    for k, v in canonical.items():
        assert torch.equal(loaded[k].view(torch.int32), v.detach().view(torch.int32)), k
    assert index["metadata"]["total_size"] == sum(v.numel() * v.element_size() for v in canonical.values())
    assert r.digest == wi.fingerprint(spec, recipe, 3).hex
    assert json.loads((tmp_path / "ckpt" / "weightinit.json").read_text())["digest"] == r.digest


def test_hf_transformers_loads_the_checkpoint(tmp_path, transformers):
    wi.materialize("tiny-llama", "torch", 4, tmp_path / "ckpt", max_shard_size="30KB")
    model = transformers.LlamaForCausalLM.from_pretrained(str(tmp_path / "ckpt"))
    ref = dict(_initialized("tiny-llama", "torch", 4).named_parameters())
    got = dict(model.named_parameters())
    assert set(got) == set(ref)
    for k in ref:
        assert torch.equal(got[k].detach(), ref[k].detach()), k
    # and a local config.json is a MODEL_SPEC: the HF model's own parameters, planned and verified
    assert wi.verify(tmp_path / "ckpt", "torch", 4, model=str(tmp_path / "ckpt" / "config.json"))


def test_dcp_load_equals_initialize(tmp_path):
    import torch.distributed.checkpoint as dcp

    wi.materialize("tiny-llama", "gpt2", 5, tmp_path / "dcp", format="dcp")
    ref = _initialized("tiny-llama", "gpt2", 5).state_dict()
    state = {k: torch.empty_like(v) for k, v in ref.items()}
    dcp.load(state, checkpoint_id=str(tmp_path / "dcp"), no_dist=True)
    for k in ref:
        assert torch.equal(state[k], ref[k]), k


def test_bfloat16_and_an_orthogonal_rule(tmp_path):
    def factory():
        m = build_meta("tiny-llama")
        return m.to(torch.bfloat16)

    recipe = [("*.q_proj.weight", "orthogonal"), "torch"]
    with torch.device("meta"):
        model = factory()
    r = wi.materialize(model, recipe, 6, tmp_path / "ckpt")
    loaded = _load_safetensors(tmp_path / "ckpt")
    ref = factory().to_empty(device="cpu")
    wt.initialize(ref, recipe, seed=6)
    for k, v in ref.named_parameters():
        assert loaded[k].dtype == torch.bfloat16
        assert torch.equal(loaded[k].view(torch.int16), v.detach().view(torch.int16)), k
    assert r.digest == wi.fingerprint(model, recipe, 6).hex
    assert wi.verify(tmp_path / "ckpt", recipe, 6, model=model)


def test_nothing_overwritten_without_force(tmp_path):
    out = tmp_path / "ckpt"
    wi.materialize("tiny-llama", "torch", 0, out)
    before = (out / "model.safetensors").read_bytes()
    with pytest.raises(CheckpointError, match="--force"):
        wi.materialize("tiny-llama", "torch", 1, out)
    assert (out / "model.safetensors").read_bytes() == before
    wi.materialize("tiny-llama", "torch", 1, out, force=True)
    assert (out / "model.safetensors").read_bytes() != before
    assert wi.verify(out, "torch", 1)


def test_a_run_killed_half_way_leaves_nothing_complete(tmp_path, monkeypatch):
    import weightinit.artifact._torch as at

    real, calls = at.plan_source, []

    def dying(entry):
        calls.append(entry.path)
        if len(calls) == 5:
            raise KeyboardInterrupt  # as a kill between two tensors
        return real(entry)

    monkeypatch.setattr(at, "plan_source", dying)
    out = tmp_path / "ckpt"
    with pytest.raises(KeyboardInterrupt):
        wi.materialize("tiny-llama", "torch", 0, out, max_shard_size="30KB")
    assert not out.exists()
    leftovers = os.listdir(tmp_path)
    assert leftovers == ["ckpt.partial"]
    assert "model.safetensors.index.json" not in os.listdir(tmp_path / "ckpt.partial")
    monkeypatch.setattr(at, "plan_source", real)
    wi.materialize("tiny-llama", "torch", 0, out)  # the stale .partial is replaced
    assert sorted(os.listdir(tmp_path)) == ["ckpt"]


def test_bad_model_and_recipe(tmp_path):
    with pytest.raises(CheckpointError, match="max_shard_size"):
        wi.materialize("tiny-llama", "torch", 0, tmp_path / "a", max_shard_size="lots")
    with pytest.raises(wi.InitializerValueError, match="No rule matched"):
        wi.materialize("tiny-llama", {"*.q_proj.weight": "he_normal"}, 0, tmp_path / "b")
    with pytest.raises(CheckpointError, match="leaves"):
        wi.materialize("tiny-llama", [("*.q_proj.weight", "skip"), "torch"], 0, tmp_path / "c")
    with torch.device("meta"):
        orphan = torch.nn.Linear(3, 4)
        orphan.register_buffer("scale", torch.ones(4))  # a persistent buffer no code computes
    with pytest.raises(CheckpointError, match=r"persistent buffer\(s\) no code of the model computes: \['scale'\]"):
        wi.materialize(orphan, "torch", 0, tmp_path / "d")
    with torch.device("meta"):
        cplx = torch.nn.Linear(3, 4, dtype=torch.complex64)
    with pytest.raises(CheckpointError, match="weight of dtype complex64"):
        wi.materialize(cplx, {"*": 0.0}, 0, tmp_path / "e")
    assert list(tmp_path.iterdir()) == []  # every refusal comes before anything is written (no OUT.partial either)


def test_factory_spec(tmp_path):
    f = tmp_path / "net.py"
    f.write_text(
        "import torch\n\ndef make():\n    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Linear(16, 2))\n"
    )
    r = wi.materialize(f"{f}:make", "he", 2, tmp_path / "ckpt")
    ref = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Linear(16, 2))
    wt.initialize(ref, "he", seed=2)
    loaded = _load_safetensors(tmp_path / "ckpt")
    for k, v in ref.named_parameters():
        np.testing.assert_array_equal(loaded[k].numpy(), v.detach().numpy())
    assert r.n_params == sum(p.numel() for p in ref.parameters())
    assert wi.verify(tmp_path / "ckpt", "he", 2, model=f"{f}:make")


def test_progress_bar_shows_params_per_second_and_bytes(tmp_path, capsys):
    wi.materialize("tiny-llama", "torch", 0, tmp_path / "ckpt", progress=True)
    err = capsys.readouterr().err
    assert "params/s" in err and "B written" in err and "100.0%" in err
