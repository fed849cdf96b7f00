"""A MultiheadAttention in_proj_weight whose q/k/v row blocks get different rules, through the artifact functions."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

import weightinit as wi  # noqa: E402
import weightinit.torch as wt  # noqa: E402
from torch import nn  # noqa: E402

RULES = [("role:attn_q", "orthogonal"), ("role:attn_k", wi.Normal(0.0, 0.5)), ("role:attn_v", 0.0), "megatron"]
BATCH = torch.zeros(1, 3, 32)


def _layer() -> nn.TransformerEncoderLayer:
    return nn.TransformerEncoderLayer(32, 4, 64, batch_first=True)


def test_per_block_weight_is_verified_and_materialized(tmp_path):
    layer = _layer()
    report = wt.initialize(layer, RULES, seed=6, example_inputs=BATCH)
    assert "per q/k/v block" in report["self_attn.in_proj_weight"].initializer
    q = layer.self_attn.in_proj_weight.detach()[:32]
    assert torch.allclose(q @ q.T, torch.eye(32), atol=1e-5)  # the q block alone is orthogonal
    result = wi.verify(layer, RULES, 6, example_inputs=BATCH)
    check = result.checks["self_attn.in_proj_weight"]
    assert check.status in ("equal", "close") and not check.exact  # an orthogonal block: QR tolerance
    with torch.device("meta"):
        meta = _layer()
    r = wi.materialize(meta, RULES, 6, tmp_path / "ckpt", example_inputs=BATCH)
    from safetensors.torch import load_file

    state = load_file(str(tmp_path / "ckpt" / "model.safetensors"))
    torch.testing.assert_close(state["self_attn.in_proj_weight"], layer.self_attn.in_proj_weight.detach())
    assert r.digest == wi.fingerprint(meta, RULES, 6, example_inputs=BATCH).hex
