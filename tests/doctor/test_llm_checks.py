"""LLM init checks on small hand-built transformer blocks: each finding fires on the bug and not on the fix."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")
import weightinit as wi  # noqa: E402
from torch import nn  # noqa: E402
from weightinit.doctor.llm import llm_checks  # noqa: E402

D, V = 32, 64


class Block(nn.Module):
    def __init__(self, d=D):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.c_attn = nn.Linear(d, 3 * d)
        self.c_proj = nn.Linear(d, d)
        self.c_fc = nn.Linear(d, 4 * d)
        self.mlp_proj = nn.Linear(4 * d, d)

    def forward(self, x):
        q, k, v = self.c_attn(self.ln1(x)).chunk(3, dim=-1)
        a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), dim=-1) @ v
        x = x + self.c_proj(a)
        return x + self.mlp_proj(torch.nn.functional.gelu(self.c_fc(self.ln2(x))))


class TinyLM(nn.Module):
    def __init__(self, layers=4, tie=True):
        super().__init__()
        self.wte = nn.Embedding(V, D)
        self.h = nn.ModuleList(Block() for _ in range(layers))
        self.ln_f = nn.LayerNorm(D)
        self.lm_head = nn.Linear(D, V, bias=False)
        if tie:
            self.lm_head.weight = self.wte.weight

    def forward(self, idx):
        x = self.wte(idx)
        for b in self.h:
            x = b(x)
        return self.lm_head(self.ln_f(x))


def gpt2_init(model, layers):
    """GPT-2's init: N(0, 0.02) everywhere, residual projections N(0, 0.02 / sqrt(2 L)), zero biases."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if p.ndim == 2:
                std = 0.02 / math.sqrt(2 * layers) if n.endswith(("c_proj.weight", "mlp_proj.weight")) else 0.02
                p.copy_(torch.randn(p.shape, generator=g) * std)
            elif n.endswith("bias"):
                p.zero_()


def kinds(model):
    return [f.kind for f in llm_checks(model)]


@pytest.fixture()
def lm():
    torch.manual_seed(0)
    m = TinyLM()
    gpt2_init(m, 4)
    return m


def test_a_gpt2_initialized_model_is_clean(lm):
    assert kinds(lm) == []
    rep = wi.doctor(lm, torch.randint(0, V, (8, 16)))
    assert not {f.kind for f in rep.flags} & {"uninitialized", "fused_fans", "residual_scaling", "tied_head",
                                              "low_precision_init", "head_scale", "inactive_truncation"}  # fmt: skip


def test_uninitialized_after_to_empty(lm):
    with torch.no_grad():
        lm.h[2].c_fc.weight[0, :3] = float("nan")
    (f,) = llm_checks(lm)
    assert f.kind == "uninitialized" and f.layer == "h.2.c_fc.weight" and f.severity == "error"
    e = TinyLM().to_empty(device="cpu")
    with torch.no_grad():  # to_empty's memory is arbitrary; make it look like garbage deterministically
        e.h[0].c_attn.weight.fill_(3e38)
    assert "uninitialized" in kinds(e)
    assert "uninitialized" in {f.kind for f in wi.doctor(e, torch.randint(0, V, (4, 8))).flags}


def test_fused_qkv_with_the_fused_fans(lm):
    for b in lm.h:
        nn.init.xavier_uniform_(b.c_attn.weight)  # fans (32, 96): std sqrt(2/128), each block wants sqrt(2/64)
    flags = [f for f in llm_checks(lm) if f.kind == "fused_fans"]
    assert flags[0].layer == "h.0.c_attn" and "chunk(3)" in flags[0].fix
    exec(flags[0].fix.replace("model.", "lm."), {"torch": torch, "lm": lm})  # the one-line fix, as printed
    for b in lm.h[1:]:
        for w in b.c_attn.weight.data.chunk(3):
            nn.init.xavier_uniform_(w)
    assert "fused_fans" not in kinds(lm)


def test_fused_orthogonal(lm):
    nn.init.orthogonal_(lm.h[0].c_attn.weight)
    assert [f.layer for f in llm_checks(lm) if f.kind == "fused_fans"] == ["h.0.c_attn"]
    for w in lm.h[0].c_attn.weight.data.chunk(3):
        nn.init.orthogonal_(w)
    assert "fused_fans" not in kinds(lm)


def test_residual_projections_without_depth_scaling():
    torch.manual_seed(0)
    m = TinyLM(layers=6)
    for p in m.parameters():
        if p.ndim == 2:
            nn.init.normal_(p, std=0.02)  # the residual projections too: no 1/sqrt(2L)
    (f,) = [f for f in llm_checks(m) if f.kind == "residual_scaling"]
    assert "2L = 12" in f.message and "0.2887" in f.fix
    import re

    exec(f.fix, {"model": m, "re": re})  # the one-line fix, as printed
    assert "residual_scaling" not in kinds(m)
    assert "residual_scaling" not in kinds(TinyLM(layers=2))  # too shallow to matter


@pytest.mark.parametrize(("dtype", "word"), [(torch.bfloat16, "bfloat16"), (torch.float16, "float16")])
def test_low_precision_sampling(lm, dtype, word):
    with torch.no_grad():
        w = lm.h[1].c_fc.weight
        w.copy_(torch.randn(w.shape, dtype=dtype) * 0.02)  # sampled in low precision, stored in float32
    (f,) = [f for f in llm_checks(lm) if f.kind == "low_precision_init"]
    assert f.layer == "h.1.c_fc.weight" and word in f.message
    with torch.no_grad():
        w.copy_(torch.randn(w.shape) * 0.02)
    assert "low_precision_init" not in kinds(lm)


def test_tied_head_initialized_twice_or_at_the_wrong_width(lm):
    nn.init.kaiming_uniform_(lm.lm_head.weight, a=math.sqrt(5))  # nn.Linear's default, run after the embedding's
    (f,) = [f for f in llm_checks(lm) if f.kind == "tied_head"]
    assert "overwrote" in f.message
    torch.manual_seed(1)
    m = TinyLM()  # nn.Embedding's default N(0, 1) is the tied head's init
    gpt2_init(m, 4)
    nn.init.normal_(m.wte.weight)
    # width 32 < 64: N(0, 1) logits are only ~5.7x the hidden RMS there, not flagged; at width 64 they are
    assert "tied_head" not in kinds(m)
    big = nn.Sequential()
    big.emb, big.head = nn.Embedding(V, 64), nn.Linear(64, V, bias=False)
    big.head.weight = big.emb.weight
    (f,) = [f for f in llm_checks(big) if f.kind == "tied_head"]
    assert "wrong width" in f.message
    exec(f.fix.split(": ", 1)[1].replace("model.", "big."), {"torch": torch, "big": big})  # the code part
    assert "tied_head" not in kinds(big)


def test_multihead_attention_in_proj_weight_with_the_fused_fans():
    # nn.MultiheadAttention's own init: xavier_uniform_ on the fused (3E, E) in_proj_weight (PyTorch issue 166378)
    torch.manual_seed(0)
    m = nn.Module()
    m.attn = nn.MultiheadAttention(D, 4, batch_first=True)
    (f,) = [f for f in llm_checks(m) if f.kind == "fused_fans"]
    assert f.layer == "attn.in_proj_weight" and "in_proj_weight.data.chunk(3)" in f.fix
    exec(f.fix, {"torch": torch, "model": m})  # the one-line fix, as printed
    assert "fused_fans" not in kinds(m)
    # a Transformer layer built from it is flagged the same way through wi.doctor
    layer = nn.TransformerEncoderLayer(D, 4, 4 * D, batch_first=True)
    assert "fused_fans" in {f.kind for f in wi.doctor(layer, torch.randn(2, 5, D), analytic=False).flags}


def test_untied_head_scaled_for_the_wrong_width():
    torch.manual_seed(0)
    m = TinyLM(tie=False)
    gpt2_init(m, 4)
    assert "head_scale" not in kinds(m)  # std 0.02 at d = 32: logits std 0.11 of the hidden RMS
    big = nn.Sequential()
    big.emb, big.head = nn.Embedding(V, 64), nn.Linear(64, V, bias=False)
    nn.init.normal_(big.emb.weight, std=0.02)
    nn.init.normal_(big.head.weight)  # N(0, 1): logits std 8 at a unit-RMS hidden state
    (f,) = [f for f in llm_checks(big) if f.kind == "head_scale"]
    assert f.layer == "head" and "std 8" in f.message
    exec(f.fix.split("  #")[0].replace("model.", "big."), {"torch": torch, "big": big})  # the one-line fix
    assert "head_scale" not in kinds(big)
    nn.init.kaiming_uniform_(big.head.weight, a=math.sqrt(5))  # nn.Linear's default: std 1/sqrt(3 d), fine
    assert "head_scale" not in kinds(big)


def test_truncation_bounds_that_do_not_truncate():
    import weightinit.torch as wt

    torch.manual_seed(0)
    m = TinyLM()
    gpt2_init(m, 4)
    w = m.h[0].c_fc.weight
    wt.trunc_normal_(w, std=0.02, seed=0)  # torch's default absolute bounds a=-2, b=2: 100 std
    (f,) = [f for f in llm_checks(m) if f.kind == "inactive_truncation"]
    assert f.layer == "h.0.c_fc.weight" and "100 std" in f.message and f.severity == "info"
    import pickle

    from weightinit.torch.place import TRUNCATED_WRITE_ATTR

    # a pickled copy (torch.save of the module) keeps the attribute, its version counter restarts: later writes
    # that bring it to the recorded version must not revive the record
    c = pickle.loads(pickle.dumps(m))
    wc, recorded = c.h[0].c_fc.weight, getattr(w, TRUNCATED_WRITE_ATTR)[0]
    assert getattr(wc, TRUNCATED_WRITE_ATTR)[0] == recorded
    with torch.no_grad():
        nn.init.normal_(wc, std=0.02)
        while wc._version < recorded:
            wc.mul_(1.0)
    assert wc._version == recorded and "inactive_truncation" not in kinds(c)
    before = float(w.detach().std())
    exec(f.fix.split("  #")[0], {"torch": torch, "model": m})  # the one-line fix, as printed (torch's own)
    assert "inactive_truncation" not in kinds(m)  # a later write invalidates the record
    assert float(w.detach().std()) < 0.92 * before  # the fix changes the weights: +-2 std cuts the std by 12%
    # must not fire: bounds that truncate (timm's trunc_normal_tf_ style, +-2 std), and a plain normal
    wt.trunc_normal_(w, std=0.02, a=-0.04, b=0.04, seed=0)
    assert "inactive_truncation" not in kinds(m)
    wt.normal_(w, std=0.02, seed=0)
    assert "inactive_truncation" not in kinds(m)
    # weightinit.torch.initialize with torch's trunc_normal_ semantics (the torchtitan recipe reproduces it)
    import weightinit as wi_

    wt.initialize(m, [("*c_fc.weight", wi_.TorchTruncNormal(std=0.02)), ("*", "keep")], seed=0, strict=False)
    assert next(f.layer for f in llm_checks(m) if f.kind == "inactive_truncation") == "h.0.c_fc.weight"


def test_the_torchtitan_recipe_reproduces_the_inactive_truncation():
    import weightinit.torch as wt

    m = TinyLM()
    wt.initialize(m, "torchtitan_llama3", seed=0, example_inputs=torch.randint(0, V, (2, 8)))
    (f,) = [f for f in llm_checks(m) if f.kind == "inactive_truncation"]
    # torchtitan's trunc_normal_(std=0.02) keeps torch's absolute bounds +-2: all 16 block weights
    assert f.message.startswith("16 parameter(s)") and f.layer == "h.0.c_attn.weight"


def test_hugging_face_gpt2_conv1d_layers_are_read(transformers):
    # GPT-2's c_attn/c_proj/c_fc are transformers' Conv1D (weight (in, out)), not nn.Linear
    cfg = transformers.GPT2Config(n_layer=4, n_embd=32, n_head=4, vocab_size=V, n_positions=16)
    torch.manual_seed(0)
    m = transformers.GPT2LMHeadModel(cfg)  # its own init: N(0, 0.02), c_proj scaled by 1/sqrt(2 L)
    assert not {"fused_fans", "residual_scaling"} & set(kinds(m))
    for b in m.transformer.h:  # the scaling skipped: every residual projection at the input projections' std
        for p in (b.attn.c_proj.weight, b.mlp.c_proj.weight):
            nn.init.normal_(p, std=0.02)
    assert "residual_scaling" in kinds(m)
    nn.init.xavier_uniform_(m.transformer.h[0].attn.c_attn.weight)  # fused fans (32, 96) of the (in, out) weight
    (f,) = [f for f in llm_checks(m) if f.kind == "fused_fans"]
    assert f.layer == "transformer.h.0.attn.c_attn" and "chunk(3, dim=1)" in f.fix
    exec(f.fix, {"torch": torch, "model": m})  # the one-line fix, as printed
    assert "fused_fans" not in kinds(m)
