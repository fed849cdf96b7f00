"""Whole-model initialization: weightinit.torch.initialize on a ResNet-style CNN, a GPT-style transformer, an LSTM."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")
stats = pytest.importorskip("scipy.stats")

import weightinit as wi  # noqa: E402
import weightinit.torch as wt  # noqa: E402
from torch import nn  # noqa: E402
from weightinit.initializers.storage import torch_default_fans, torch_layout  # noqa: E402
from weightinit.initializers.variance_scaling import TRUNCATED_STD_FACTOR  # noqa: E402

P_MIN = 1e-4


def _ks_uniform(t, bound):
    return stats.kstest(t.detach().flatten().double().numpy(), "uniform", args=(-bound, 2 * bound))[1] > P_MIN


def _ks_normal(t, std):
    return stats.kstest(t.detach().flatten().double().numpy(), "norm", args=(0.0, std))[1] > P_MIN


def _ks_truncnorm(t, s, lim=2.0):
    z = t.detach().flatten().double().numpy() / s
    return stats.kstest(z, "truncnorm", args=(-lim, lim))[1] > P_MIN


# ------------------------------------------------------------------------------------------------ models


class BasicBlock(nn.Module):
    def __init__(self, c, groups=1):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, groups=groups, bias=False)
        self.bn2 = nn.BatchNorm2d(c)

    def forward(self, x):
        return torch.relu(x + self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x))))))


class ResNetish(nn.Module):
    def __init__(self, c=32, classes=10):
        super().__init__()
        self.stem = nn.Conv2d(3, c, 7, stride=2, padding=3, bias=False)
        self.bn = nn.BatchNorm2d(c)
        self.layer1 = nn.Sequential(BasicBlock(c), BasicBlock(c, groups=c))
        self.up = nn.ConvTranspose2d(c, c // 2, 4, stride=2, groups=2)
        self.fc = nn.Linear(c // 2, classes)

    def forward(self, x):
        x = self.layer1(self.bn(self.stem(x)))
        return self.fc(self.up(x).mean((2, 3)))


class Attn(nn.Module):
    def __init__(self, d, h):
        super().__init__()
        self.h = h
        self.c_attn = nn.Linear(d, 3 * d)
        self.c_proj = nn.Linear(d, d)
        self.drop = nn.Dropout(0.0)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.c_attn(x).split(d, dim=2)
        q = q.view(b, t, self.h, d // self.h).transpose(1, 2)
        k = k.view(b, t, self.h, d // self.h).transpose(1, 2)
        v = v.view(b, t, self.h, d // self.h).transpose(1, 2)
        y = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        y = y.transpose(1, 2).contiguous().view(b, t, d)
        return self.drop(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.c_fc = nn.Linear(d, 4 * d)
        self.c_proj = nn.Linear(4 * d, d)

    def forward(self, x):
        return self.c_proj(torch.nn.functional.gelu(self.c_fc(x)))


class Block(nn.Module):
    def __init__(self, d, h):
        super().__init__()
        self.ln_1 = nn.LayerNorm(d)
        self.attn = Attn(d, h)
        self.ln_2 = nn.LayerNorm(d)
        self.mlp = MLP(d)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, vocab=97, d=64, h=4, n_layer=3, block=16, reverse=False):
        super().__init__()
        if reverse:  # the same modules, declared in a different order
            self.lm_head = nn.Linear(d, vocab, bias=False)
            self.ln_f = nn.LayerNorm(d)
            self.h = nn.ModuleList([Block(d, h) for _ in range(n_layer)])
            self.wpe = nn.Embedding(block, d)
            self.wte = nn.Embedding(vocab, d)
        else:
            self.wte = nn.Embedding(vocab, d)
            self.wpe = nn.Embedding(block, d)
            self.h = nn.ModuleList([Block(d, h) for _ in range(n_layer)])
            self.ln_f = nn.LayerNorm(d)
            self.lm_head = nn.Linear(d, vocab, bias=False)
        self.wte.weight = self.lm_head.weight  # tied
        self.block = block

    def forward(self, idx):
        _, t = idx.size()
        assert t <= self.block  # untraceable as a whole: the blocks are traced one by one
        x = self.wte(idx) + self.wpe(torch.arange(t, device=idx.device))
        for blk in self.h:
            x = blk(x)
        return self.lm_head(self.ln_f(x))


class Seq(nn.Module):
    def __init__(self, reverse=False):
        super().__init__()
        if reverse:
            self.head = nn.Linear(48, 5)
            self.lstm = nn.LSTM(20, 48, num_layers=2)
        else:
            self.lstm = nn.LSTM(20, 48, num_layers=2)
            self.head = nn.Linear(48, 5)

    def forward(self, x):
        return self.head(self.lstm(x)[0])


def _values(model):
    return {k: v.detach().clone() for k, v in model.named_parameters(remove_duplicate=False)}


# ------------------------------------------------------------------------------------------------ layouts


def test_layout_fans():
    assert torch_layout((8, 4), "linear").fans == (4, 8)
    assert torch_layout((64, 8, 3, 3), "conv", groups=4).fans == (72, 144)
    assert torch_layout((32, 1, 3, 3), "depthwise", groups=32).fans == (9, 9)
    assert torch_layout((32, 8, 4, 4), "conv_transpose", groups=2).fans == (256, 128)
    assert torch_layout((100, 16), "embedding").fans == (16, 100)
    lay = torch_layout((3 * 16, 10), "mha_in_proj")
    assert (lay.blocks, lay.fans) == (3, (10, 16))
    assert torch_layout((4 * 48, 20), "rnn_ih", gates=4).fans == (20, 48)
    assert torch_layout((3 * 48, 48), "rnn_hh", gates=3).block_shape == (48, 48)
    assert torch_layout((7,), "linear").fans == (7, 7)
    assert torch_default_fans((8, 16, 3, 3)) == (144, 72)
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        torch_default_fans((3,))
    with pytest.raises(ValueError, match="divisible"):
        torch_layout((10, 4), "mha_in_proj")


# ------------------------------------------------------------------------------------------------ ResNet-style CNN


def test_resnet_torch_preset_reproduces_pytorch_defaults():
    model = ResNetish()
    report = wt.initialize(model, "torch", seed=0)
    assert report.unmatched == []
    assert _ks_uniform(model.stem.weight, 1 / math.sqrt(3 * 49))
    assert _ks_uniform(model.layer1[1].conv2.weight, 1 / math.sqrt(1 * 9))  # depthwise: torch's own fan (in/g)
    # ConvTranspose: torch reads (in, out/g, k, k) as (out, in, ...): fan_in = out/g * k
    assert _ks_uniform(model.up.weight, 1 / math.sqrt(8 * 16))
    assert float(model.up.bias.detach().abs().max()) < 1 / math.sqrt(8 * 16)
    assert _ks_uniform(model.fc.weight, 1 / math.sqrt(16))
    assert torch.equal(model.bn.weight.detach(), torch.ones(32)) and torch.equal(
        model.bn.bias.detach(), torch.zeros(32)
    )


def test_resnet_he_preset_uses_per_layer_fans():
    model = ResNetish(c=64)
    report = wt.initialize(model, "he", seed=1)
    dw = model.layer1[1].conv2.weight  # depthwise (64, 1, 3, 3): fan_in 9
    assert report["layer1.1.conv2.weight"].kind == "depthwise"
    assert (report["layer1.1.conv2.weight"].fan_in, report["up.weight"].fan_in) == (9, 32 * 16)
    s = math.sqrt(2 / 9) / TRUNCATED_STD_FACTOR
    assert _ks_truncnorm(dw, s)
    s = math.sqrt(2 / (64 * 9)) / TRUNCATED_STD_FACTOR
    assert _ks_truncnorm(model.layer1[0].conv1.weight, s)
    s = math.sqrt(2 / (32 * 16)) / TRUNCATED_STD_FACTOR  # transposed conv: in/g * k
    assert _ks_truncnorm(model.up.weight, s)
    assert float(model.up.bias.detach().abs().sum()) == 0.0


def test_resnet_meta_device_then_to_empty():
    ref = ResNetish()
    wt.initialize(ref, "he", seed=3)
    with torch.device("meta"):
        model = ResNetish()
    report = wt.initialize(model, "he", seed=3)  # no-op on meta
    assert model.fc.weight.is_meta and len(report) == len(ref.state_dict()) - 3 * 5  # params only
    model.to_empty(device="cpu")
    wt.initialize(model, "he", seed=3)
    for k, v in _values(ref).items():
        assert torch.equal(v, dict(model.named_parameters())[k].detach()), k
    assert torch.equal(model.bn.running_var, torch.ones(64 // 2))
    assert torch.equal(model.bn.running_mean, torch.zeros(64 // 2))


# ------------------------------------------------------------------------------------------------ GPT-style transformer


def test_gpt2_residual_projections_found_by_role():
    model = GPT(n_layer=3)
    report = wt.initialize(model, "gpt2", seed=0)
    assert report.residual_projections == sorted(
        [f"h.{i}.attn.c_proj" for i in range(3)] + [f"h.{i}.mlp.c_proj" for i in range(3)]
    )
    assert report.n_residual == 6
    proj = torch.cat(
        [model.h[i].attn.c_proj.weight.flatten() for i in range(3)]
        + [model.h[i].mlp.c_proj.weight.flatten() for i in range(3)]
    )
    assert _ks_normal(proj, 0.02 / math.sqrt(2 * 3))
    others = torch.cat([model.h[i].attn.c_attn.weight.flatten() for i in range(3)] + [model.wpe.weight.flatten()])
    assert _ks_normal(others, 0.02)
    assert float(model.h[0].attn.c_attn.bias.detach().abs().sum()) == 0
    assert torch.equal(model.ln_f.weight.detach(), torch.ones(64))
    assert report.unmatched == []


def test_gpt2_tied_embeddings_initialized_once_and_order_independent():
    a, b = GPT(), GPT(reverse=True)
    ra = wt.initialize(a, "gpt2", seed=11)
    rb = wt.initialize(b, "gpt2", seed=11)
    assert a.lm_head.weight is a.wte.weight
    assert ra.tied == {"wte.weight": ["lm_head.weight"]} == rb.tied
    assert "lm_head.weight" not in ra.records
    va, vb = _values(a), _values(b)
    assert va.keys() == vb.keys()
    for k in va:
        assert torch.equal(va[k], vb[k]), k
    assert _ks_normal(a.wte.weight, 0.02)


def test_values_depend_only_on_seed_and_path():
    a = GPT(n_layer=2)
    wt.initialize(a, "gpt2", seed=5)
    b = GPT(n_layer=2)
    wt.initialize(b, [("h.1.*", "skip"), "gpt2"], seed=5)  # other parameters do not matter
    assert torch.equal(a.h[0].mlp.c_fc.weight, b.h[0].mlp.c_fc.weight)
    assert torch.equal(a.wpe.weight, b.wpe.weight)
    expected = wi.sample(wi.Normal(0.0, 0.02), wi.Stream(5).child("h.0.mlp.c_fc.weight"), (256, 64), "float32")
    assert torch.equal(a.h[0].mlp.c_fc.weight.detach(), torch.from_numpy(expected))


def test_torch_seed_reproducibility_and_n_layers_override():
    torch.manual_seed(0)
    a = GPT(n_layer=2)
    ra = wt.initialize(a, "gpt2")
    torch.manual_seed(0)
    b = GPT(n_layer=2)
    rb = wt.initialize(b, "gpt2")
    assert ra.seed == rb.seed and torch.equal(a.h[1].attn.c_proj.weight, b.h[1].attn.c_proj.weight)
    c = GPT(n_layer=2)
    wt.initialize(c, "gpt2", seed=ra.seed, n_layers=8)
    assert torch.allclose(c.h[1].attn.c_proj.weight, a.h[1].attn.c_proj.weight / 2, rtol=1e-5)


def test_untraceable_model_warns_and_accepts_explicit_projections():
    class Weird(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(8, 8)
            self.proj = nn.Linear(8, 8)

        def forward(self, x):
            if x.sum() > 0:
                return x + self.proj(self.fc(x))
            return x

    with pytest.warns(UserWarning, match="could not trace"):
        report = wt.initialize(Weird(), "gpt2", seed=0)
    assert report.residual_projections == []
    m = Weird()
    report = wt.initialize(m, "gpt2", seed=0, residual_projections=["proj"])
    assert report["proj.weight"].residual and not report["fc.weight"].residual


def test_torch_transformer_layers_and_mha_fans():
    layer = nn.TransformerEncoderLayer(32, 4, dim_feedforward=64, batch_first=True)
    report = wt.initialize(layer, "keras", seed=0)
    rec = report["self_attn.in_proj_weight"]
    assert (rec.kind, rec.fan_in, rec.fan_out) == ("mha_in_proj", 32, 32)  # one q/k/v block, not (32, 96)
    assert _ks_uniform(layer.self_attn.in_proj_weight, math.sqrt(6 / 64))
    enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(32, 4, 64, batch_first=True), 2, enable_nested_tensor=False)
    report = wt.initialize(enc, "gpt2", seed=0)
    assert report.n_residual == 4
    assert "layers.1.self_attn.out_proj" in report.residual_projections


# ------------------------------------------------------------------------------------------------ LSTM


def test_lstm_torch_preset():
    model = Seq()
    wt.initialize(model, "torch", seed=0)
    for name, p in model.lstm.named_parameters():
        assert _ks_uniform(p, 1 / math.sqrt(48)), name


def test_lstm_flax_preset_per_gate_fans_and_orthogonal_recurrent():
    model = Seq()
    report = wt.initialize(model, "flax", seed=0)
    assert report["lstm.weight_ih_l0"].fan_in == 20 and report["lstm.weight_ih_l1"].fan_in == 48
    assert report["lstm.weight_hh_l0"].kind == "rnn_hh"
    for layer in range(2):
        hh = getattr(model.lstm, f"weight_hh_l{layer}").detach()
        for g in range(4):
            q = hh[g * 48 : (g + 1) * 48]
            assert torch.allclose(q @ q.T, torch.eye(48), atol=1e-5)
        assert not torch.allclose(hh[:48], hh[48:96])
    s = math.sqrt(1 / 20) / TRUNCATED_STD_FACTOR
    assert _ks_truncnorm(model.lstm.weight_ih_l0, s)
    assert float(model.lstm.bias_ih_l0.detach().abs().sum()) == 0


def test_lstm_declaration_order_and_keras_forget_bias():
    a, b = Seq(), Seq(reverse=True)
    wt.initialize(a, "keras", seed=4)
    wt.initialize(b, "keras", seed=4)
    va, vb = _values(a), _values(b)
    for k in va:
        assert torch.equal(va[k], vb[k]), k
    bias = a.lstm.bias_ih_l0.detach()
    assert torch.equal(bias[48:96], torch.ones(48)) and float(bias[:48].abs().sum()) == 0


# ------------------------------------------------------------------------------------------------ rules and report


def test_rules_patterns_first_match_and_unmatched():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.enc = nn.Linear(10, 20)
            self.dec = nn.Linear(20, 10)
            self.emb = nn.Embedding(5, 4, padding_idx=0)
            self.scale = nn.Parameter(torch.empty(3))

    m = M()
    report = wt.initialize(
        m,
        [
            ("re:enc\\.w.*", wi.Orthogonal()),
            ((nn.Linear, "bias"), 0.5),
            (nn.Linear, wt.PerParameter(lambda i: wi.Normal(0.0, 1 / i.fan_in), "N(0, 1/fan_in)")),
            ("emb.*", "ones"),
        ],
        seed=0,
        unmatched="keep",
    )
    w = m.enc.weight.detach()
    assert torch.allclose(w.T @ w, torch.eye(10), atol=1e-5)  # (out=20, in=10): orthonormal columns
    assert report["enc.weight"].rule.startswith("re:") and report["enc.bias"].rule == "(Linear, bias)"
    assert torch.equal(m.dec.bias.detach(), torch.full((10,), 0.5))
    assert report["dec.weight"].initializer == "Normal(mean=0.0, std=0.05)"
    assert torch.equal(m.emb.weight[0].detach(), torch.zeros(4)) and float(m.emb.weight[1:].detach().sum()) == 16
    assert report.unmatched == ["scale"]
    text = str(report)
    assert "unmatched: scale" in text and "enc.weight" in text
    with pytest.raises(ValueError, match="No rule matched"):
        wt.initialize(m, [("enc.*", "zeros")], seed=0, strict=True)
    with pytest.raises(ValueError, match="Unknown recipe"):
        wt.initialize(m, "nope")


def test_torch_style_functions_as_rules_are_seeded_by_path():
    a, b = nn.Linear(6, 6), nn.Linear(6, 6)
    for m in (a, b):
        wt.initialize(m, {"weight": wt.orthogonal_, "bias": torch.nn.init.zeros_}, seed=2)
    assert torch.equal(a.weight, b.weight)
    assert torch.allclose(a.weight @ a.weight.T, torch.eye(6), atol=1e-5)


# ------------------------------------------------------------------------------------------------ timm-style ViT
#
# timm's schemes (timm/models/vision_transformer.py, huggingface/pytorch-image-models):
#   VisionTransformer.init_weights: trunc_normal_(pos_embed, std=.02); normal_(cls_token, std=1e-6);
#     normal_(reg_token, std=1e-6)  (timm >= 0.6; timm <= 0.5 used trunc_normal .02 for cls_token);
#     DeiT's VisionTransformerDistilled: trunc_normal_(dist_token, std=.02).
#   init_weights_vit_timm: Linear weight trunc_normal_(std=.02) (absolute bounds +-2), bias zeros; the
#     rest (patch-embed Conv2d, LayerNorm) keeps PyTorch's defaults.
#   init_weights_vit_jax: head Linear (name.startswith('head')) weight zeros, bias head_bias
#     (-log(num_classes) in 'jax_nlhb'); other Linear xavier_uniform_, bias N(0, 1e-6) if 'mlp' in the
#     name else zeros; Conv2d lecun_normal_ (trunc_normal_tf_, std sqrt(1/fan_in)/.8796, +-2 std), bias zeros.


class ViTAttention(nn.Module):
    def __init__(self, d, h):
        super().__init__()
        self.h = h
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)

    def forward(self, x):
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.h, d // self.h).permute(2, 0, 3, 1, 4)
        y = torch.nn.functional.scaled_dot_product_attention(q, k, v)
        return self.proj(y.transpose(1, 2).reshape(b, n, d))


class ViTMlp(nn.Module):
    def __init__(self, d, hidden):
        super().__init__()
        self.fc1 = nn.Linear(d, hidden)
        self.fc2 = nn.Linear(hidden, d)

    def forward(self, x):
        return self.fc2(torch.nn.functional.gelu(self.fc1(x)))


class ViTBlock(nn.Module):
    def __init__(self, d, h):
        super().__init__()
        self.norm1 = nn.LayerNorm(d)
        self.attn = ViTAttention(d, h)
        self.norm2 = nn.LayerNorm(d)
        self.mlp = ViTMlp(d, 4 * d)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self, d, patch=4, in_chans=3):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, d, patch, stride=patch)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class TinyViT(nn.Module):
    """timm's VisionTransformer layout (names included), with register tokens and a DeiT distillation token."""

    def __init__(self, img=16, patch=4, d=64, depth=3, h=4, classes=10, n_reg=4):
        super().__init__()
        self.num_classes = classes
        self.patch_embed = PatchEmbed(d, patch)
        n = (img // patch) ** 2
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.reg_token = nn.Parameter(torch.zeros(1, n_reg, d))
        self.dist_token = nn.Parameter(torch.zeros(1, 1, d))
        self.pos_embed = nn.Parameter(torch.zeros(1, n + 2, d))
        self.blocks = nn.Sequential(*[ViTBlock(d, h) for _ in range(depth)])
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, classes)
        self.head_dist = nn.Linear(d, classes)

    def forward(self, x):
        x = self.patch_embed(x)
        b = x.shape[0]
        tok = torch.cat([self.cls_token.expand(b, -1, -1), self.dist_token.expand(b, -1, -1)], dim=1)
        x = torch.cat([tok, x], dim=1) + self.pos_embed
        x = torch.cat([self.reg_token.expand(b, -1, -1), x], dim=1)
        x = self.norm(self.blocks(x))
        return (self.head(x[:, -self.pos_embed.shape[1]]) + self.head_dist(x[:, 1 - self.pos_embed.shape[1]])) / 2


def _flat(*ts):
    return torch.cat([t.detach().flatten().double() for t in ts])


def _std_ok(t, std, k=5.0):
    """Sample std within k standard errors of ``std`` (SE of a normal sample's std: std / sqrt(2 n))."""
    x = _flat(t)
    return abs(float(x.std()) - std) < k * std / math.sqrt(2 * x.numel())


def _linears(model, attr):
    return [getattr(b.attn if attr in ("qkv", "proj") else b.mlp, attr).weight for b in model.blocks]


def _tokens_as_timm(model):
    assert _ks_normal(model.pos_embed, 0.02) and _std_ok(model.pos_embed, 0.02)  # trunc at +-100 std: normal
    assert _ks_normal(model.dist_token, 0.02)
    assert _ks_normal(_flat(model.cls_token, model.reg_token), 1e-6) and _std_ok(model.reg_token, 1e-6, k=6)
    assert float(model.cls_token.detach().abs().max()) < 6e-6


def test_vit_preset_matches_timm_init_weights_vit_timm():
    model = TinyViT()
    report = wt.initialize(model, "timm_vit", seed=0)
    assert report.unmatched == []
    _tokens_as_timm(model)
    linear_w = _flat(*[p for n, p in model.named_parameters() if n.endswith("weight") and p.dim() == 2])
    assert linear_w.numel() == 3 * (64 * 192 + 64 * 64 + 2 * 64 * 256) + 2 * 10 * 64
    assert _ks_normal(linear_w, 0.02) and _std_ok(linear_w, 0.02)
    assert float(linear_w.abs().max()) <= 2.0
    for name in ("qkv", "proj", "fc1", "fc2"):  # per layer type, too
        assert _ks_normal(_flat(*_linears(model, name)), 0.02), name
    linears = [n for n, mod in model.named_modules() if isinstance(mod, nn.Linear)]
    assert len(linears) == 3 * 4 + 2
    for n in linears:
        assert float(model.get_submodule(n).bias.detach().abs().sum()) == 0, n
    # not touched by init_weights_vit_timm: the patch-embed Conv2d keeps PyTorch's default, LayerNorm ones/zeros
    conv = model.patch_embed.proj
    assert report["patch_embed.proj.weight"].rule == "torch default"
    assert _ks_uniform(conv.weight, 1 / math.sqrt(3 * 16))
    assert float(conv.bias.detach().abs().max()) <= 1 / math.sqrt(3 * 16)
    assert torch.equal(model.blocks[1].norm2.weight.detach(), torch.ones(64))
    assert torch.equal(model.norm.bias.detach(), torch.zeros(64))
    assert report["cls_token"].rule == "timm: cls/reg token N(0, 1e-6)"
    assert report["dist_token"].rule == report["pos_embed"].rule == "timm: pos_embed/dist_token trunc_normal .02"
    assert report["blocks.0.attn.qkv.weight"].rule == "timm vit: Linear trunc_normal .02"


def test_jax_preset_matches_timm_init_weights_vit_jax():
    model = TinyViT()
    report = wt.initialize(model, "timm_vit_jax", seed=1)
    assert report.unmatched == []
    _tokens_as_timm(model)
    # xavier_uniform_ on the whole Linear (timm's jax mode does not split qkv)
    for name, (fi, fo) in {"qkv": (64, 192), "proj": (64, 64), "fc1": (64, 256), "fc2": (256, 64)}.items():
        w = _flat(*_linears(model, name))
        bound = math.sqrt(6 / (fi + fo))
        assert _ks_uniform(w, bound), name
        assert float(w.abs().max()) <= bound and _std_ok(w, bound / math.sqrt(3), k=6), name
    mlp_b = _flat(*[p for n, p in model.named_parameters() if ".mlp." in n and n.endswith("bias")])
    assert mlp_b.numel() == 3 * (256 + 64) and _ks_normal(mlp_b, 1e-6) and _std_ok(mlp_b, 1e-6)
    attn_b = _flat(*[p for n, p in model.named_parameters() if ".attn." in n and n.endswith("bias")])
    assert float(attn_b.abs().sum()) == 0
    # heads (head, head_dist): zeros, bias head_bias = 0
    for head in (model.head, model.head_dist):
        assert float(head.weight.detach().abs().sum()) == 0 and float(head.bias.detach().abs().sum()) == 0
    # patch embed: lecun_normal_ = trunc_normal_tf_(std=sqrt(1/fan_in)/.8796, +-2 std), fan_in = 3*4*4
    s = math.sqrt(1 / 48) / TRUNCATED_STD_FACTOR
    assert report["patch_embed.proj.weight"].fan_in == 48
    assert (
        _ks_truncnorm(model.patch_embed.proj.weight, s)
        and float(model.patch_embed.proj.weight.detach().abs().max()) <= 2 * s
    )
    assert float(model.patch_embed.proj.bias.detach().abs().sum()) == 0
    assert torch.equal(model.blocks[0].norm1.weight.detach(), torch.ones(64))
    assert report["head.bias"].rule == "timm jax: head bias 0"


def test_jax_head_bias_nlhb_and_custom():
    model = TinyViT(classes=10)
    report = wt.initialize(model, "timm_vit_jax_nlhb", seed=2)
    for head in ("head", "head_dist"):
        assert torch.allclose(getattr(model, head).bias.detach(), torch.full((10,), -math.log(10)))
        assert float(getattr(model, head).weight.detach().abs().sum()) == 0
    assert report["head.bias"].rule == "timm jax: head bias -log(num_classes)"
    ref = TinyViT()
    wt.initialize(ref, "timm_vit_jax", seed=2)
    for (n, a), b in zip(model.named_parameters(), ref.parameters()):  # only the head biases differ
        assert n.endswith("head.bias") or n == "head_dist.bias" or torch.equal(a, b), n
    m2 = TinyViT()
    wt.initialize(m2, wt.RECIPES["timm_vit_jax"](head_bias=-1.5), seed=2)
    assert torch.equal(m2.head.bias.detach(), torch.full((10,), -1.5))
    m3 = TinyViT()
    wt.initialize(m3, [("head.weight", "ones"), wt.RECIPES["timm_vit_jax"](head_bias=0.25)], seed=2)  # nested in a list
    assert torch.equal(m3.head.weight.detach(), torch.ones(10, 64)) and float(m3.head.bias.detach()[0]) == 0.25
    with pytest.raises(ValueError, match="head_bias"):
        wt.RECIPES["timm_vit_jax"](head_bias="nope")


def test_vit_presets_are_reproducible_and_order_free():
    a, b = TinyViT(), TinyViT()
    wt.initialize(a, "timm_vit", seed=7)
    wt.initialize(b, [("blocks.1.*", "skip"), "timm_vit"], seed=7)
    assert torch.equal(a.blocks[0].attn.qkv.weight, b.blocks[0].attn.qkv.weight)
    assert torch.equal(a.cls_token, b.cls_token) and torch.equal(a.pos_embed, b.pos_embed)
    expected = wi.sample(
        wi.TruncatedNormalDistribution(0.0, 0.02, -2.0, 2.0),
        wi.Stream(7).child("blocks.0.mlp.fc1.weight"),
        (256, 64),
        "float32",
    )
    assert torch.equal(a.blocks[0].mlp.fc1.weight.detach(), torch.from_numpy(expected))


# ------------------------------------------------------------------------------------------------ MHA bias_k / bias_v


@pytest.mark.parametrize("preset", sorted(wt.RECIPES))
def test_mha_bias_kv_matched_in_every_preset(preset):
    e = 256
    m = nn.MultiheadAttention(e, 4, add_bias_kv=True)
    report = wt.initialize(m, preset, seed=3, residual_projections=[], strict=True)
    assert report.unmatched == []
    assert report["bias_k"].role == report["bias_v"].role == "bias_kv"
    kv = _flat(m.bias_k, m.bias_v)
    assert not torch.equal(m.bias_k, m.bias_v)
    # PyTorch's own MultiheadAttention._reset_parameters: xavier_normal_ on (1, 1, E): fans (E, E), std 1/sqrt(E)
    std = 0.02 if preset == "gpt2" else math.sqrt(2 / (e + e))
    assert _ks_normal(kv, std) and _std_ok(kv, std), preset


def test_bias_kv_role_rule():
    m = nn.MultiheadAttention(16, 2, add_bias_kv=True)
    report = wt.initialize(m, [("role:bias_kv", 0.5), "keras"], seed=0)
    assert torch.equal(m.bias_k.detach(), torch.full((1, 1, 16), 0.5)) and report["bias_v"].rule == "role:bias_kv"


# ------------------------------------------------------------------------------------------------ (in, out) layouts


class Conv1D(nn.Module):
    """Stand-in for transformers.pytorch_utils.Conv1D: weight (nx, nf), y = x @ W + b."""

    def __init__(self, nf, nx):
        super().__init__()
        self.nf, self.nx = nf, nx
        self.weight = nn.Parameter(torch.empty(nx, nf))
        self.bias = nn.Parameter(torch.zeros(nf))
        nn.init.normal_(self.weight, std=0.02)

    def forward(self, x):
        return torch.addmm(self.bias, x.reshape(-1, x.size(-1)), self.weight).view(*x.shape[:-1], self.nf)


class InOut(nn.Module):  # a custom (in, out) dense layer with no HF signature
    def __init__(self, n_in, n_out):
        super().__init__()
        self.w = nn.Parameter(torch.empty(n_in, n_out))
        self.b = nn.Parameter(torch.zeros(n_out))  # 1-D, not named "bias": no rule of the recipes matches it

    def reset_parameters(self):  # its own init, which initialize falls back to for `b`
        nn.init.zeros_(self.b)

    def forward(self, x):
        return x @ self.w + self.b


def test_hf_conv1d_is_detected_as_in_out():
    m = nn.Module()
    m.c_attn = Conv1D(nf=3 * 32, nx=32)  # weight (32, 96): fan_in 32, fan_out 96
    report = wt.initialize(m, "lecun", seed=0)
    rec = report["c_attn.weight"]
    assert (rec.kind, rec.role, rec.fan_in, rec.fan_out) == ("linear_in_out", "weight", 32, 96)
    assert _ks_truncnorm(m.c_attn.weight, math.sqrt(1 / 32) / TRUNCATED_STD_FACTOR)
    assert not _ks_truncnorm(m.c_attn.weight, math.sqrt(1 / 96) / TRUNCATED_STD_FACTOR)  # the swapped fan
    assert report["c_attn.bias"].role == "bias" and float(m.c_attn.bias.detach().abs().sum()) == 0
    wt.initialize(m, "he_uniform", seed=0)
    assert _ks_uniform(m.c_attn.weight, math.sqrt(6 / 32))
    # "torch": the layer's own constructor init (it has no reset_parameters): N(0, 0.02), zero bias
    m.c_attn.bias.data.fill_(1.0)
    report = wt.initialize(m, "torch", seed=0, strict=True)
    assert _ks_normal(m.c_attn.weight, 0.02) and float(m.c_attn.bias.detach().abs().sum()) == 0


def test_in_out_weight_is_the_transposed_linear_weight():
    lin, hf = nn.Module(), nn.Module()
    lin.proj, hf.proj = nn.Linear(24, 40), Conv1D(nf=40, nx=24)
    for rules in ({"*.weight": "orthogonal", "*.bias": 0.0}, {"*.weight": wi.Identity(), "*.bias": 0.0}):
        wt.initialize(lin, rules, seed=4)
        wt.initialize(hf, rules, seed=4)
        assert torch.equal(hf.proj.weight.detach(), lin.proj.weight.detach().T)
        x = torch.randn(5, 24)
        assert torch.allclose(hf.proj(x), lin.proj(x), atol=1e-6)
    wt.initialize(hf, {"*.weight": "orthogonal", "*.bias": 0.0}, seed=4)
    w = hf.proj.weight.detach()  # orthogonal (in, out) = (24, 40): orthonormal rows, as W.T of the Linear
    assert torch.allclose(w @ w.T, torch.eye(24), atol=1e-5)


def test_conv1d_lookalike_without_hf_signature_is_not_in_out():
    class Conv1D(nn.Module):  # the same class name, but weight (nf, nx)
        def __init__(self):
            super().__init__()
            self.nf = 8
            self.weight = nn.Parameter(torch.empty(8, 20))

    report = wt.initialize(Conv1D(), "he", seed=0)
    assert report["weight"].kind == "generic" and report["weight"].fan_in == 20


def test_layouts_argument_and_module_attribute():
    def model():
        m = nn.Module()
        m.enc = InOut(30, 90)
        m.dec = InOut(90, 30)
        return m

    a = model()
    report = wt.initialize(a, "glorot_normal", seed=5)
    assert report["enc.w"].fan_in == 90  # read as (out, in) by default
    a = model()
    report = wt.initialize(a, "lecun", seed=5, layouts={InOut: "linear_in_out"})
    assert (report["enc.w"].kind, report["enc.w"].fan_in, report["dec.w"].fan_in) == ("linear_in_out", 30, 90)
    assert _ks_truncnorm(a.enc.w, math.sqrt(1 / 30) / TRUNCATED_STD_FACTOR)
    assert _ks_truncnorm(a.dec.w, math.sqrt(1 / 90) / TRUNCATED_STD_FACTOR)
    # a module-path glob, a per-parameter dict, and the module attribute give the same values
    b = model()
    wt.initialize(b, "lecun", seed=5, layouts={"enc": {"w": "linear_in_out"}, "d*": "linear_in_out"})
    c = model()
    c.enc.weightinit_layout = c.dec.weightinit_layout = "linear_in_out"
    c.enc.b.data.fill_(3.0)
    report = wt.initialize(c, "lecun", seed=5)
    assert report["dec.w"].kind == "linear_in_out"
    assert report.unmatched == ["enc.b", "dec.b"]
    assert report.own_init == {"enc.b": "InOut.reset_parameters", "dec.b": "InOut.reset_parameters"}
    assert float(c.enc.b.detach().abs().sum()) == 0 and "own init: enc.b (InOut.reset_parameters)" in str(report)
    for x, y, z in ((a.enc.w, b.enc.w, c.enc.w), (a.dec.w, b.dec.w, c.dec.w)):
        assert torch.equal(x, y) and torch.equal(x, z)
    # layouts= wins over the attribute
    report = wt.initialize(c, "lecun", seed=5, layouts={InOut: "linear"})
    assert report["enc.w"].fan_in == 90
    with pytest.raises(ValueError, match="Unknown layout kind 'in_out'"):
        wt.initialize(model(), "lecun", seed=5, layouts={InOut: "in_out"})
    with pytest.raises(TypeError, match="layouts"):
        wt.initialize(model(), "lecun", seed=5, layouts=[InOut])
    with pytest.raises(ValueError, match="divisible"):
        wt.initialize(InOut(10, 4), "lecun", seed=5, layouts={InOut: "mha_in_proj"})  # a declared kind must fit


# ------------------------------------------------------------------------------------------------ unmatched / strict


def test_unmatched_are_reported_and_strict_raises_before_writing():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(8, 8)
            self.gamma = nn.Parameter(torch.full((8,), 7.0))
            self.mix = nn.Parameter(torch.full((2, 3, 4), 7.0))

    m = M()
    before = _values(m)
    with pytest.raises(ValueError, match="No rule matched 2 parameter") as exc:
        wt.initialize(m, "torch", seed=0, strict=True)
    msg = str(exc.value)
    assert "'gamma'" in msg and "'mix'" in msg and "Nothing was initialized" in msg
    assert "gamma: M, shape (8,), role 'vector'" in msg and "mix: M, shape (2, 3, 4)" in msg
    for k, v in _values(m).items():  # strict failed before anything was written
        assert torch.equal(v, before[k]), k
    # no rule and no init of their own: refused by default, naming them, before anything is written
    with pytest.raises(ValueError, match=r"define no init of their own.*\['gamma', 'mix'\]") as exc:
        wt.initialize(m, "torch", seed=0)
    assert "gamma: M, shape (8,)" in str(exc.value) and "unmatched='keep'" in str(exc.value)
    for k, v in _values(m).items():
        assert torch.equal(v, before[k]), k
    with pytest.raises(ValueError, match="unmatched"):
        wt.initialize(m, "torch", seed=0, unmatched="left")
    report = wt.initialize(m, "torch", seed=0, unmatched="keep")
    assert report.unmatched == ["gamma", "mix"]
    assert report["gamma"].rule is None and report["gamma"].module_type == "M"
    assert torch.equal(m.gamma.detach(), torch.full((8,), 7.0)) and not torch.equal(m.fc.weight, before["fc.weight"])
    assert "unmatched: gamma (M), mix (M) -- left as they were" in str(report)
    report = wt.initialize(m, [("gamma", "ones"), ("mix", "skip"), "torch"], seed=0, strict=True)
    assert report.unmatched == [] and report["mix"].initializer == "left as is"


# ------------------------------------------------------------------------------------------------ renamed names


@pytest.mark.parametrize(
    ("old", "new"), [("vit", "timm_vit"), ("jax", "timm_vit_jax"), ("jax_nlhb", "timm_vit_jax_nlhb")]
)
def test_old_recipe_names_warn_and_give_the_same_bits(old, new):
    a, b = TinyViT(), TinyViT()
    with pytest.warns(DeprecationWarning, match=f"'{old}'.*use '{new}'"):
        wt.initialize(a, old, seed=4)
    wt.initialize(b, new, seed=4)
    for (n, p), q in zip(a.named_parameters(), b.parameters()):
        assert torch.equal(p, q), n


def test_presets_and_rules_keyword_are_deprecated_aliases():
    with pytest.warns(DeprecationWarning, match="'PRESETS'.*use 'RECIPES'"):
        presets = wt.PRESETS
    assert "PRESETS" not in wt.__all__ and "RECIPES" in wt.__all__
    with pytest.warns(DeprecationWarning, match="'jax'.*use 'timm_vit_jax'"):
        fn = presets["jax"]
    assert fn is wt.RECIPES["timm_vit_jax"] and presets["torch"] is wt.RECIPES["torch"]
    a, b = nn.Linear(8, 4), nn.Linear(8, 4)
    with pytest.warns(DeprecationWarning, match=r"use recipe="):
        wt.initialize(a, rules="he", seed=1)
    wt.initialize(b, recipe="he", seed=1)
    assert torch.equal(a.weight, b.weight)
    with pytest.raises(TypeError, match="recipe="):
        wt.initialize(a, "he", rules="he", seed=1)


def test_predicate_patterns_and_the_prelu_rule():
    """A callable pattern matches what it returns true for; recipe "he" keeps each PReLU's own ``init``."""
    m = nn.Sequential(nn.Linear(4, 3), nn.PReLU(3, init=0.1), nn.Linear(3, 2), nn.PReLU(init=0.3))
    with torch.no_grad():
        for p in m.parameters():
            p.fill_(9.0)  # so only the rules can put the expected values there
    report = wt.initialize(m, [(lambda i: i.path == "2.bias", 0.5), "he"], seed=0)
    assert torch.equal(m[2].bias.detach(), torch.full((2,), 0.5))
    assert torch.equal(m[1].weight.detach(), torch.full((3,), 0.1))
    assert torch.equal(m[3].weight.detach(), torch.full((1,), 0.3))
    assert report["1.weight"].rule == "PReLU init" and report["2.bias"].rule != report["0.bias"].rule
