"""verify: bitwise checks, a single flipped bit, bad checkpoints, the QR tolerance, pytest use, and the CLI."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import weightinit as wi  # noqa: E402
import weightinit.torch as wt  # noqa: E402
from weightinit.artifact import CheckpointError, VerificationError  # noqa: E402
from weightinit.artifact.formats.safetensors import Reader  # noqa: E402
from weightinit.artifact.models import build_meta  # noqa: E402
from weightinit.artifact.verify import qr_tolerance  # noqa: E402
from weightinit.cli.main import main  # noqa: E402

SPEC, RECIPE, SEED = "tiny-llama", "torch", 7
TARGET = "model.layers.1.mlp.up_proj.weight"


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    d = tmp_path_factory.mktemp("verify") / "ckpt"
    wi.materialize(SPEC, RECIPE, SEED, d, max_shard_size="30KB")
    return d


@pytest.fixture
def copy(ckpt, tmp_path):
    d = tmp_path / "copy"
    shutil.copytree(ckpt, d)
    return d


def _state(seed=SEED):
    model = build_meta(SPEC).to_empty(device="cpu")
    wt.initialize(model, RECIPE, seed=seed)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_equal_checkpoint_passes(ckpt):
    r = wi.verify(ckpt, RECIPE, SEED)
    assert r.ok and len(r.checks) == 21 and all(c.status == "equal" for c in r.checks.values())


@pytest.mark.parametrize("bit", [0, 13, 31])
def test_a_single_flipped_bit_is_caught(copy, bit):
    p, off, _, shape, _ = Reader(str(copy)).tensors[TARGET]
    k = 5 * shape[1] + 9
    with open(p, "r+b") as f:
        f.seek(off + 4 * k)
        word = int.from_bytes(f.read(4), "little") ^ (1 << bit)
        f.seek(off + 4 * k)
        f.write(word.to_bytes(4, "little"))
    with pytest.raises(VerificationError) as e:
        wi.verify(copy, RECIPE, SEED)
    assert isinstance(e.value, AssertionError)
    check = e.value.result[TARGET]
    assert (check.status, check.n_different, check.first_index) == ("differs", 1, (5, 9))
    assert TARGET in str(e.value) and "first at index (5, 9)" in str(e.value)
    assert [c.path for c in e.value.result.failures] == [TARGET]


def test_wrong_seed_is_reported_per_parameter(ckpt):
    r = wi.verify(ckpt, RECIPE, SEED + 1, raise_on_mismatch=False)
    bad = {c.path for c in r.failures}
    assert TARGET in bad and not any("norm" in p for p in bad)  # norms are ones whatever the seed
    assert all(c.max_abs_diff > 0 for c in r.failures)


def test_state_dict_missing_extra_shape_dtype(tmp_path):
    state = _state()
    del state["model.layers.0.self_attn.q_proj.weight"]
    state["extra.weight"] = torch.zeros(3)
    state["model.norm.weight"] = torch.ones(31)
    state["lm_head.weight"] = state["lm_head.weight"].double()
    r = wi.verify(state, RECIPE, SEED, model=SPEC, raise_on_mismatch=False)
    got = {c.path: c.status for c in r.failures}
    assert got == {
        "model.layers.0.self_attn.q_proj.weight": "missing",
        "extra.weight": "extra",
        "model.norm.weight": "shape",
        "lm_head.weight": "dtype",
    }
    text = str(r)
    assert "expected float32 (32,), found float32 (31,)" in text and "extra.weight" in text


def test_truncated_and_damaged_files(copy):
    shard = sorted(f for f in os.listdir(copy) if f.endswith(".safetensors"))[1]
    path = copy / shard
    data = path.read_bytes()
    path.write_bytes(data[:-100])
    with pytest.raises(CheckpointError, match=f"{shard} is truncated"):
        wi.verify(copy, RECIPE, SEED)
    path.write_bytes(data[:5])
    with pytest.raises(CheckpointError, match="truncated"):
        wi.verify(copy, RECIPE, SEED)
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!")
    with pytest.raises(CheckpointError, match="not JSON"):
        wi.verify(copy, RECIPE, SEED)


def test_recipe_that_does_not_match_the_model(ckpt):
    with pytest.raises(wi.InitializerValueError, match="No rule matched"):
        wi.verify(ckpt, {"*.q_proj.weight": "he_normal"}, SEED)


def test_qr_tolerance():
    with torch.device("meta"):
        net = torch.nn.Sequential(torch.nn.Linear(64, 96), torch.nn.Linear(96, 64))
    recipe = [("*.weight", "orthogonal"), "torch"]
    model = net.to_empty(device="cpu")
    wt.initialize(model, recipe, seed=1)
    assert wi.verify(model, recipe, 1)["0.weight"].status == "equal"
    w = model[0].weight
    tol = qr_tolerance("float32", float(w.detach().abs().max()))
    with torch.no_grad():
        w[3, 4] += tol / 2  # what another LAPACK build may do
    c = wi.verify(model, recipe, 1)["0.weight"]
    assert c.status == "close" and not c.exact and c.max_abs_diff <= c.tolerance
    with torch.no_grad():
        w[3, 4] += 2 * tol
    with pytest.raises(VerificationError, match="QR tolerance"):
        wi.verify(model, recipe, 1)


def test_cli(ckpt, copy, capsys):
    assert main(["verify", str(ckpt), "--recipe", RECIPE, "--seed", str(SEED)]) == 0
    assert "all equal" in capsys.readouterr().out
    assert main(["verify", str(ckpt), "--recipe", RECIPE, "--seed", str(SEED + 1)]) == 1
    out = capsys.readouterr().out
    assert TARGET in out and "differs" in out
    (copy / sorted(f for f in os.listdir(copy) if f.endswith(".safetensors"))[1]).write_bytes(b"")
    assert main(["verify", str(copy), "--seed", str(SEED)]) == 2
    err = capsys.readouterr().err
    assert "truncated" in err and "Traceback" not in err
    assert main(["fingerprint", SPEC, "--recipe", RECIPE, "--seed", str(SEED)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1].split() == ["model", wi.fingerprint(SPEC, RECIPE, SEED).hex]
    out_dir = ckpt.parent / "cli_out"
    assert main(["materialize", SPEC, "--seed", "1", "--out", str(out_dir), "--quiet"]) == 0
    assert main(["materialize", SPEC, "--seed", "1", "--out", str(out_dir), "--quiet"]) == 2
    assert "--force" in capsys.readouterr().err
    assert main(["materialize", "nope.py:make", "--seed", "1", "--out", str(out_dir) + "2"]) == 2
    assert "no file nope.py" in capsys.readouterr().err
    assert wi.verify(out_dir, "torch", 1)
    assert main(["fingerprint", "he_normal", "--shape", "64,32", "--seed", "0"]) == 0
    assert capsys.readouterr().out.strip() == wi.fingerprint("he_normal", (64, 32), "float32", wi.Stream(0)).hex
    np.testing.assert_equal(main(["fingerprint", "he_normal", "--shape", "6x4", "--seed", "0"]), 2)
