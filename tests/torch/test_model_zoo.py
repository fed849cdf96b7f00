"""initialize on real model families: Hugging Face transformers 5 (GPT-2, Llama, BERT, T5), timm ViT,
torchvision ViT/ConvNeXt/ResNet, built from small configs (no weights are downloaded).

Recipes that reproduce a package's own init are compared in distribution with that package's output
(per parameter: two-sample KS, and the standard deviation within k standard errors derived from the two
sample sizes); recipes of trainers that are not installed are checked against their formulas, quoted in
docs/recipes.md with the file and commit they were read from. Each statistical check has a negative
control showing it rejects a 2x variance error on the same sample.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
stats = pytest.importorskip("scipy.stats")

import weightinit as wi  # noqa: E402
import weightinit.torch as wt  # noqa: E402
from torch import nn  # noqa: E402

P_MIN = 1e-4
K = 6.0  # standard errors


def _np(t) -> np.ndarray:
    return t.detach().double().flatten().numpy()


def _std_close(x: np.ndarray, y: np.ndarray) -> bool:
    """Sample stds of x and y agree within K standard errors (SE of a sample std ~ s / sqrt(2 n))."""
    sx, sy = x.std(), y.std()
    se = math.sqrt(1 / (2 * x.size) + 1 / (2 * y.size))
    return abs(sx / sy - 1) < K * se


def _same_distribution(x: np.ndarray, y: np.ndarray) -> bool:
    if y.min() == y.max():  # a constant (zeros, ones, a fixed bias)
        return bool(np.array_equal(x, y))
    ok = _std_close(x, y) and abs(x.mean() - y.mean()) < K * (y.std() / math.sqrt(x.size) + y.std() / math.sqrt(y.size))
    if x.size >= 500 and y.size >= 500:
        ok = ok and stats.ks_2samp(x, y).pvalue > P_MIN
    return ok


def _compare_with_reference(ours: nn.Module, ref: nn.Module, min_numel: int = 64) -> list[str]:
    """Parameter paths whose values are not distributed as the reference model's (its own init)."""
    ref_params = dict(ref.named_parameters())
    bad = []
    for name, p in ours.named_parameters():
        q = ref_params[name]
        if p.numel() < min_numel and q.min() != q.max():
            continue
        if not _same_distribution(_np(p), _np(q)):
            bad.append(name)
    return bad


def _rejects_double_variance(x: np.ndarray, y: np.ndarray) -> bool:
    """Negative control: the same checks reject x scaled to twice the variance."""
    return not _same_distribution(x * math.sqrt(2), y)


def _matches(t, dist) -> bool:
    """One-sample check of tensor values against a weightinit distribution (KS + std within K SE)."""
    x = _np(t)
    if isinstance(dist, wi.Normal):
        cdf, sd = stats.norm(dist.mean, dist.std).cdf, dist.std
    elif isinstance(dist, wi.TruncatedNormalDistribution):
        a, b = (dist.lower - dist.mean) / dist.std, (dist.upper - dist.mean) / dist.std
        d = stats.truncnorm(a, b, loc=dist.mean, scale=dist.std)
        cdf, sd = d.cdf, d.std()
        if x.min() < dist.lower or x.max() > dist.upper:
            return False
    elif isinstance(dist, wi.Uniform):
        cdf, sd = stats.uniform(dist.low, dist.high - dist.low).cdf, (dist.high - dist.low) / math.sqrt(12)
    else:
        return bool(np.all(x == float(dist)))
    return stats.kstest(x, cdf).pvalue > P_MIN and abs(x.std() / sd - 1) < K / math.sqrt(2 * x.size)


# ------------------------------------------------------------------------------------------------ models


@pytest.fixture(scope="module")
def hf(model_zoo):
    t = model_zoo.transformers
    t.logging.set_verbosity_error()
    return t


def _gpt2(hf, n_layer=3):
    cfg = hf.GPT2Config(
        n_layer=n_layer, n_embd=64, n_head=4, vocab_size=256, n_positions=32, bos_token_id=0, eos_token_id=0
    )
    return hf.GPT2LMHeadModel(cfg)


def _llama(hf):
    cfg = hf.LlamaConfig(
        num_hidden_layers=2,
        hidden_size=64,
        intermediate_size=128,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=256,
        max_position_embeddings=32,
        bos_token_id=0,
        eos_token_id=0,
        pad_token_id=None,
    )
    return hf.LlamaForCausalLM(cfg)


def _bert(hf):
    cfg = hf.BertConfig(
        num_hidden_layers=2,
        hidden_size=64,
        intermediate_size=128,
        num_attention_heads=4,
        vocab_size=256,
        max_position_embeddings=32,
        pad_token_id=0,
    )
    return hf.BertForMaskedLM(cfg)


def _t5(hf):
    cfg = hf.T5Config(
        d_model=64,
        d_kv=16,
        d_ff=128,
        num_layers=2,
        num_decoder_layers=2,
        num_heads=4,
        vocab_size=256,
        decoder_start_token_id=0,
        pad_token_id=0,
        eos_token_id=1,
    )
    return hf.T5ForConditionalGeneration(cfg)


# ------------------------------------------------------------------------------------------------ roles


def test_roles_found_on_hf_gpt2_by_a_recorded_forward(hf):
    torch.manual_seed(0)
    model = _gpt2(hf)
    with pytest.raises(ValueError):  # transformers 5 forwards do not trace with torch.fx
        torch.fx.symbolic_trace(model)
    report = wt.initialize(model, "gpt2", seed=0)
    assert report.roles_method == "forward"
    assert report.residual_projections == sorted(
        f"transformer.h.{i}.{m}.c_proj" for i in range(3) for m in ("attn", "mlp")
    )
    assert report.n_residual == 6
    roles = report.module_roles
    assert roles["transformer.h.0.attn.c_attn"] == "attn_qkv" and roles["transformer.h.2.mlp.c_fc"] == "mlp_in"
    assert roles["transformer.h.1.attn.c_proj"] == "attn_o" and roles["transformer.h.1.mlp.c_proj"] == "mlp_out"
    assert roles["transformer.wte"] == "embedding"
    # residual projections N(0, 0.02/sqrt(2 n_layer)), the rest N(0, 0.02)
    w = model.transformer.h[1].mlp.c_proj.weight
    assert _matches(w, wi.Normal(0.0, 0.02 / math.sqrt(6))) and not _matches(w, wi.Normal(0.0, 0.02))
    assert _matches(model.transformer.h[1].mlp.c_fc.weight, wi.Normal(0.0, 0.02))


def test_roles_found_on_hf_llama_and_bert(hf):
    report = wt.initialize(_llama(hf), "megatron", seed=0)
    roles = report.module_roles
    layer = {k.split("layers.0.", 1)[1]: v for k, v in roles.items() if "layers.0." in k}
    assert layer == {
        "self_attn.q_proj": "attn_q",
        "self_attn.k_proj": "attn_k",
        "self_attn.v_proj": "attn_v",
        "self_attn.o_proj": "attn_o",
        "mlp.gate_proj": "mlp_gate",
        "mlp.up_proj": "mlp_up",
        "mlp.down_proj": "mlp_out",
    }
    assert roles["lm_head"] == "head" and roles["model.embed_tokens"] == "embedding"
    assert report.n_residual == 4 and report.roles_unknown == []
    report = wt.initialize(_bert(hf), "megatron", seed=0)
    roles = report.module_roles
    assert roles["bert.encoder.layer.1.attention.self.query"] == "attn_q"
    assert roles["bert.encoder.layer.1.attention.output.dense"] == "attn_o"
    assert roles["bert.encoder.layer.1.intermediate.dense"] == "mlp_in"
    assert roles["bert.encoder.layer.1.output.dense"] == "mlp_out"


def test_roles_on_timm_and_torchvision(model_zoo):
    timm, tv = model_zoo.timm, model_zoo.torchvision
    vit = timm.create_model(
        "vit_tiny_patch16_224", img_size=32, patch_size=8, depth=2, embed_dim=64, num_heads=4, num_classes=10
    )
    report = wt.initialize(vit, "megatron", seed=0)
    assert report.residual_projections == [
        "blocks.0.attn.proj",
        "blocks.0.mlp.fc2",
        "blocks.1.attn.proj",
        "blocks.1.mlp.fc2",
    ]
    assert report.module_roles["blocks.1.attn.qkv"] == "attn_qkv" and report.module_roles["head"] == "head"
    tvit = tv.models.VisionTransformer(
        image_size=32, patch_size=8, num_layers=2, num_heads=4, hidden_dim=64, mlp_dim=128
    )
    report = wt.initialize(tvit, "megatron", seed=0)
    assert report.residual_projections == [  # MultiheadAttention's out_proj too (one recorded operation)
        "encoder.layers.encoder_layer_0.mlp.3",
        "encoder.layers.encoder_layer_0.self_attention.out_proj",
        "encoder.layers.encoder_layer_1.mlp.3",
        "encoder.layers.encoder_layer_1.self_attention.out_proj",
    ]
    convnext = tv.models.convnext.ConvNeXt(
        [tv.models.convnext.CNBlockConfig(16, 32, 1), tv.models.convnext.CNBlockConfig(32, None, 1)]
    )
    report = wt.initialize(convnext, [("*layer_scale", 1e-6), "megatron"], seed=0)
    assert report.residual_projections == ["features.1.0.block.5", "features.3.0.block.5"]  # through layer_scale *
    resnet = tv.models.resnet.ResNet(tv.models.resnet.BasicBlock, [1, 1, 1, 1], num_classes=10)
    report = wt.initialize(resnet, "megatron", seed=0)
    assert report.roles_method == "forward" and report.residual_projections == []  # branches end in BatchNorm
    assert report.module_roles == {"fc": "head"}


_PER_BLOCK = [
    ("role:attn_q", "glorot_uniform"),
    ("role:attn_k", wi.Normal(0.0, 0.5)),
    ("role:attn_v", 0.0),
    ("role:attn_o", 1.0),
]


def _check_qkv_blocks(mha: nn.MultiheadAttention, record) -> None:
    d = mha.embed_dim
    w = mha.in_proj_weight.detach()
    bound = math.sqrt(6 / (d + d))  # glorot over one (d, d) block, not over the fused (3d, d) matrix
    assert _matches(w[:d], wi.Uniform(-bound, bound)) and float(w[:d].abs().max()) > math.sqrt(6 / (4 * d))
    assert _matches(w[d : 2 * d], wi.Normal(0.0, 0.5))
    assert float(w[2 * d :].abs().sum()) == 0 and float(mha.out_proj.weight.detach().min()) == 1.0
    assert (record.fan_in, record.fan_out) == (d, d) and "per q/k/v block" in record.initializer


def test_multihead_attention_in_proj_blocks_get_q_k_v_roles(model_zoo):
    tv = model_zoo.torchvision
    vit = tv.models.VisionTransformer(
        image_size=32, patch_size=8, num_layers=2, num_heads=4, hidden_dim=64, mlp_dim=128
    )
    rules = [*_PER_BLOCK, ("class_token", 0.0), ("encoder.pos_embedding", wi.Normal(0.0, 0.02)), "megatron"]
    report = wt.initialize(vit, rules, seed=2, strict=True)
    attn = "encoder.layers.encoder_layer_1.self_attention"
    assert report.module_roles[attn] == "attn_qkv" and report.module_roles[attn + ".out_proj"] == "attn_o"
    _check_qkv_blocks(vit.encoder.layers[1].self_attention, report[attn + ".in_proj_weight"])
    layer = nn.TransformerEncoderLayer(64, 4, 128, batch_first=True)
    report = wt.initialize(layer, [*_PER_BLOCK, "megatron"], seed=2, example_inputs=torch.zeros(1, 5, 64))
    assert report.roles_method == "forward" and sorted(report.residual_projections) == ["linear2", "self_attn.out_proj"]
    assert report.module_roles == {
        "self_attn": "attn_qkv",
        "self_attn.out_proj": "attn_o",
        "linear1": "mlp_in",
        "linear2": "mlp_out",
    }
    _check_qkv_blocks(layer.self_attn, report["self_attn.in_proj_weight"])
    again = nn.TransformerEncoderLayer(64, 4, 128, batch_first=True)
    wt.initialize(again, [*_PER_BLOCK, "megatron"], seed=2, example_inputs=torch.zeros(1, 5, 64))
    assert torch.equal(again.self_attn.in_proj_weight, layer.self_attn.in_proj_weight)
    # one rule for the three blocks: the fused weight is drawn as one tensor with the block fans
    report = wt.initialize(
        layer,
        [
            ("role:attn_qkv", "glorot_uniform"),
            ("role:attn_q", "glorot_uniform"),
            ("role:attn_k", "glorot_uniform"),
            ("role:attn_v", "glorot_uniform"),
            "megatron",
        ],
        seed=2,
        example_inputs=torch.zeros(1, 5, 64),
    )
    b = math.sqrt(6 / 128)
    assert _matches(layer.self_attn.in_proj_weight, wi.Uniform(-b, b))


def test_unfound_roles_are_reported_and_strict_refuses(hf):
    model = _gpt2(hf, n_layer=2)
    model.unused = nn.Linear(8, 8)  # never called in forward: its role cannot be found
    report = wt.initialize(model, "gpt2", seed=0)
    assert report.roles_unknown == ["unused.weight"] and "role not found: unused.weight" in str(report)
    before = model.transformer.h[0].mlp.c_fc.weight.detach().clone()
    with pytest.raises(ValueError, match=r"not seen by role finding.*\['unused.weight'\]"):
        wt.initialize(model, "gpt2", seed=1, strict=True)
    assert torch.equal(model.transformer.h[0].mlp.c_fc.weight, before)  # nothing written
    # a batch the model rejects: the recorded forward fails, fx cannot trace, everything is unknown
    with pytest.warns(UserWarning, match="nor run it on an example batch"):
        report = wt.initialize(model, "gpt2", seed=0, example_inputs=torch.zeros(1, 3, 4))
    assert "transformer.h.0.attn.c_proj.weight" in report.roles_unknown and report.roles_method == "fx"


# ------------------------------------------------------------------------------------------------ HF recipes vs HF's own init


@pytest.mark.parametrize(
    ("build", "recipe"), [(_gpt2, "hf_gpt2"), (_llama, "hf_llama"), (_bert, "hf_bert"), (_t5, "hf_t5")]
)
def test_hf_recipes_match_the_models_own_init_in_distribution(hf, build, recipe):
    torch.manual_seed(0)
    ref = build(hf)  # post_init: the model's own _init_weights
    ours = build(hf)
    report = wt.initialize(ours, recipe, seed=11, strict=True)
    assert report.unmatched == [] and report.roles_unknown == []
    assert _compare_with_reference(ours, ref) == []
    big = max(ref.named_parameters(), key=lambda kv: kv[1].numel() if kv[1].std() > 0 else 0)[0]
    x, y = _np(dict(ours.named_parameters())[big]), _np(dict(ref.named_parameters())[big])
    assert _rejects_double_variance(x, y), big


def test_hf_gpt2_c_proj_std_is_scaled_as_hf(hf):
    torch.manual_seed(1)
    ref = _gpt2(hf, n_layer=4)
    ours = _gpt2(hf, n_layer=4)
    wt.initialize(ours, "hf_gpt2", seed=2)
    ref_std = 0.02 / math.sqrt(2 * 4)
    for i in range(4):
        for m in ("attn", "mlp"):
            a = getattr(ours.transformer.h[i], m).c_proj.weight
            b = getattr(ref.transformer.h[i], m).c_proj.weight
            assert _same_distribution(_np(a), _np(b)) and _matches(a, wi.Normal(0.0, ref_std)), (i, m)


# ------------------------------------------------------------------------------------------------ meta -> to_empty


def test_meta_to_empty_restores_ties_and_gives_the_same_bits(hf):
    ref = _gpt2(hf, n_layer=2)
    wt.initialize(ref, "hf_gpt2", seed=5)
    with torch.device("meta"):
        model = _gpt2(hf, n_layer=2)
    model.to_empty(device="cpu")
    assert model.lm_head.weight is not model.transformer.wte.weight  # to_empty unties
    torch.set_num_threads(1)
    try:
        report = wt.initialize(model, "hf_gpt2", seed=5)
    finally:
        torch.set_num_threads(max(1, torch.get_num_threads()))
    assert report.ties_restored == ["lm_head.weight -> transformer.wte.weight"]
    assert model.lm_head.weight is model.transformer.wte.weight
    assert "tie restored: lm_head.weight -> transformer.wte.weight" in str(report)
    for (n, p), q in zip(model.named_parameters(), ref.parameters()):
        assert torch.equal(p, q), n


def test_timm_vit_meta_unmatched_get_their_own_init(model_zoo):
    timm = model_zoo.timm

    def build():
        return timm.create_model(
            "vit_tiny_patch16_224", img_size=32, patch_size=8, depth=2, embed_dim=64, num_heads=4, num_classes=10
        )

    with torch.device("meta"):
        a = build()
    a.to_empty(device="cpu")
    for p in a.parameters():
        p.data.fill_(float("nan"))  # what uninitialized memory may hold
    report = wt.initialize(a, "torch", seed=3)
    assert set(report.own_init) == {"cls_token", "pos_embed"}
    assert report.own_init["cls_token"] == "VisionTransformer.init_weights"
    assert all(bool(torch.isfinite(p).all()) for p in a.parameters())
    assert _matches(a.pos_embed, wi.TruncatedNormalDistribution(0.0, 0.02, -2.0, 2.0))
    assert float(a.cls_token.abs().max()) < 1e-5
    b = build()
    wt.initialize(b, "torch", seed=3)
    for (n, p), q in zip(a.named_parameters(), b.parameters()):
        assert torch.equal(p, q), n  # own inits run with torch's RNG seeded from the stream: same bits


def test_timm_vit_recipe_matches_timm_in_distribution(model_zoo):
    timm = model_zoo.timm
    torch.manual_seed(0)
    kw = dict(img_size=32, patch_size=8, depth=2, embed_dim=64, num_heads=4, num_classes=10)
    ref = timm.create_model("vit_tiny_patch16_224", **kw)
    ours = timm.create_model("vit_tiny_patch16_224", **kw)
    report = wt.initialize(ours, "timm_vit", seed=4, strict=True)
    assert report.unmatched == []
    assert _compare_with_reference(ours, ref, min_numel=1000) == []


def test_torchvision_parameters_without_an_init_are_refused_by_name(model_zoo):
    tv = model_zoo.torchvision
    with torch.device("meta"):
        vit = tv.models.VisionTransformer(
            image_size=32, patch_size=8, num_layers=2, num_heads=4, hidden_dim=64, mlp_dim=128
        )
    vit.to_empty(device="cpu")
    with pytest.raises(ValueError, match=r"define no init of their own.*'class_token', 'encoder.pos_embedding'"):
        wt.initialize(vit, "torch", seed=0)
    report = wt.initialize(
        vit, [("class_token", 0.0), ("encoder.pos_embedding", wi.Normal(0.0, 0.02)), "torch"], seed=0
    )
    assert report.unmatched == [] and bool(torch.isfinite(vit.encoder.pos_embedding).all())
    cfg = [tv.models.convnext.CNBlockConfig(16, 32, 1), tv.models.convnext.CNBlockConfig(32, None, 1)]
    with pytest.raises(ValueError, match=r"'features.1.0.layer_scale', 'features.3.0.layer_scale'"):
        wt.initialize(tv.models.convnext.ConvNeXt(cfg), "torch", seed=0)


def _qwen2(hf):
    cfg = hf.Qwen2Config(
        num_hidden_layers=2,
        hidden_size=64,
        intermediate_size=128,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=256,
        max_position_embeddings=32,
        bos_token_id=0,
        eos_token_id=0,
    )
    return hf.Qwen2ForCausalLM(cfg)


@pytest.mark.parametrize(
    "build,recipe", [(_llama, "hf_llama"), (_qwen2, "hf_qwen2"), (_gpt2, "hf_gpt2"), (_bert, "hf_bert")]
)
def test_meta_to_empty_buffers_are_recomputed_and_the_forward_matches_a_cpu_build(hf, build, recipe):
    """After meta -> to_empty, buffers hold garbage (NaN here); initialize recomputes them with the model's code."""
    ref = build(hf)
    ref.eval()
    wt.initialize(ref, recipe, seed=11)
    with torch.device("meta"):
        model = build(hf)
    model.to_empty(device="cpu")
    model.eval()
    for b in model.buffers():
        b.fill_(float("nan") if b.is_floating_point() else -7)
    report = wt.initialize(model, recipe, seed=11)
    expected = sorted(n for n, _ in ref.named_buffers())
    assert sorted(report.buffers_reset) == expected and report.buffers_unknown == []
    for (n, b), c in zip(model.named_buffers(), ref.buffers()):
        assert torch.equal(b, c), n  # inv_freq, original_inv_freq, position_ids, token_type_ids: bit for bit
    if build in (_llama, _qwen2):
        assert report.buffer_init["model.rotary_emb.inv_freq"].endswith(
            "._init_weights(" + type(model.model.rotary_emb).__name__ + ")"
        )
    ids = torch.arange(8)[None] % 200 + 3
    with torch.no_grad():
        out, want = model(input_ids=ids).logits, ref(input_ids=ids).logits
    assert bool(torch.isfinite(out).all()) and torch.equal(out, want)


def test_timm_buffers_by_init_non_persistent_buffers(model_zoo):
    timm = model_zoo.timm

    def build():
        return timm.create_model(
            "swin_tiny_patch4_window7_224",
            img_size=56,
            depths=(1, 1),
            embed_dim=32,
            num_heads=(2, 4),
            window_size=7,
            num_classes=10,
        )

    ref = build()
    with torch.device("meta"):
        model = build()
    model.to_empty(device="cpu")
    for b in model.buffers():
        b.fill_(-1)
    report = wt.initialize(model, "timm_vit", seed=0, unmatched="own_init")
    idx = "layers.0.blocks.0.attn.relative_position_index"
    assert report.buffer_init[idx] == "WindowAttention.init_non_persistent_buffers"
    for (n, b), c in zip(model.named_buffers(), ref.buffers()):
        assert torch.equal(b, c), n


def test_own_init_fallback_writes_only_the_unmatched_parameters(model_zoo):
    """timm's VisionTransformer.init_weights sets every weight; run for cls_token/pos_embed, it writes only those."""
    from torch.utils._python_dispatch import TorchDispatchMode

    timm = model_zoo.timm

    class RandomWrites(TorchDispatchMode):
        """Counts the real (not meta) elements torch's random fills write."""

        def __init__(self):
            super().__init__()
            self.numel = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            name = func.__name__.split(".")[0]
            if name in ("uniform_", "normal_", "bernoulli_", "random_", "exponential_") and not args[0].is_meta:
                self.numel += args[0].numel()
            return func(*args, **(kwargs or {}))

    def build():
        return timm.create_model(
            "vit_tiny_patch16_224", img_size=32, patch_size=8, depth=2, embed_dim=64, num_heads=4, num_classes=10
        )

    model = build()
    full = RandomWrites()
    with full:
        model.init_weights()  # the model's own init: every weight
    ours = RandomWrites()
    with ours:
        report = wt.initialize(model, "torch", seed=3)
    assert set(report.own_init) == {"cls_token", "pos_embed"}
    assert ours.numel == model.cls_token.numel() + model.pos_embed.numel()
    assert full.numel > 10 * ours.numel  # (the check would catch the whole-model run)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    wt.initialize(model, [("cls_token", "keep"), "torch"], seed=3)  # pos_embed alone: the same values
    assert torch.equal(model.pos_embed, before["pos_embed"]) and torch.equal(model.cls_token, before["cls_token"])


# ------------------------------------------------------------------------------------------------ trainer recipes (formulas)


def _llama_params(hf):
    model = _llama(hf)
    return model, dict(model.named_parameters())


def test_torchtitan_llama3_formulas(hf):
    model, p = _llama_params(hf)
    report = wt.initialize(model, "torchtitan_llama3", seed=0, strict=True)
    assert report.unmatched == []
    tt = wi.TruncatedNormalDistribution
    assert _matches(p["model.embed_tokens.weight"], wi.Normal(0.0, 1.0))
    for layer in (0, 1):
        s = 0.02 / math.sqrt(2 * (layer + 1))  # depth_init
        pre = f"model.layers.{layer}."
        for n in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "mlp.gate_proj"):
            assert _matches(p[pre + n + ".weight"], tt(0.0, 0.02, -2.0, 2.0)), n
        for n in ("self_attn.o_proj", "mlp.up_proj", "mlp.down_proj"):
            assert _matches(p[pre + n + ".weight"], tt(0.0, s, -2.0, 2.0)), (layer, n)
            assert not _matches(p[pre + n + ".weight"], tt(0.0, s * math.sqrt(2), -2.0, 2.0))
    h = 64**-0.5
    assert _matches(p["lm_head.weight"], tt(0.0, h, -3 * h, 3 * h))
    assert torch.equal(p["model.norm.weight"], torch.ones(64))
    wt.initialize(model, "torchtitan_llama3_no_depth_init", seed=0)
    assert _matches(p["model.layers.0.mlp.down_proj.weight"], tt(0.0, 0.02 / math.sqrt(2 * 2), -2.0, 2.0))


@pytest.mark.parametrize("fn", ["normal", "mitchell", "full_megatron"])
def test_olmo_formulas(hf, fn):
    model, p = _llama_params(hf)
    wt.initialize(model, f"olmo_{fn}", seed=1, strict=True)
    d, ff, L = 64, 128, 2

    def tn(s, c=3.0):
        return wi.Normal(0.0, s) if c is None else wi.TruncatedNormalDistribution(0.0, s, -c * s, c * s)

    c = None if fn == "normal" else 3.0
    in_std = 1 / math.sqrt(d) if fn == "mitchell" else 0.02
    for n in ("self_attn.q_proj", "self_attn.k_proj", "mlp.gate_proj", "mlp.up_proj"):
        assert _matches(p[f"model.layers.1.{n}.weight"], tn(in_std, c)), n
    for layer in (0, 1):
        if fn == "normal":
            ao = fo = 0.02
        elif fn == "mitchell":
            ao, fo = 1 / math.sqrt(2 * d * (layer + 1)), 1 / math.sqrt(2 * ff * (layer + 1))
        else:
            ao = fo = 0.02 / math.sqrt(2 * L)
        assert _matches(p[f"model.layers.{layer}.self_attn.o_proj.weight"], tn(ao, c))
        assert _matches(p[f"model.layers.{layer}.mlp.down_proj.weight"], tn(fo, c))
    emb = 1 / math.sqrt(d) if fn == "mitchell" else 0.02
    assert _matches(p["model.embed_tokens.weight"], tn(emb, c))
    assert _matches(p["lm_head.weight"], tn(0.02 if fn == "normal" else d**-0.5, c))


@pytest.mark.parametrize("method", ["normal", "llama", "llama_depth", "normalized"])
def test_olmo_core_formulas(hf, method):
    model, p = _llama_params(hf)
    wt.initialize(model, f"olmo_core_{method}", seed=2, strict=True)
    d, L = 64, 2

    def tn(s):
        return wi.TruncatedNormalDistribution(0.0, s, -3 * s, 3 * s)

    for layer in (0, 1):
        base = d**-0.5 if method == "normalized" else 0.02
        scaled = {"llama": base / math.sqrt(2 * L), "llama_depth": base / math.sqrt(2 * (layer + 1))}.get(method, base)
        pre = f"model.layers.{layer}."
        assert _matches(p[pre + "self_attn.q_proj.weight"], tn(base))
        assert _matches(p[pre + "mlp.gate_proj.weight"], tn(base))  # w1
        o = base / math.sqrt(2 * L) if method == "normalized" else scaled
        assert _matches(p[pre + "self_attn.o_proj.weight"], tn(o))
        assert _matches(p[pre + "mlp.up_proj.weight"], tn(scaled))  # w3
        w2 = base / math.sqrt(2 * L) if method == "normalized" else scaled
        assert _matches(p[pre + "mlp.down_proj.weight"], tn(w2))  # w2
    emb = {"llama": wi.Normal(0.0, 1.0), "llama_depth": wi.Normal(0.0, 1.0), "normalized": wi.Normal(0.0, d**-0.5)}
    assert _matches(p["model.embed_tokens.weight"], emb.get(method, tn(0.02)))
    assert _matches(p["lm_head.weight"], tn(0.02 if method == "normal" else d**-0.5))


def test_neox_megatron_modded_nanogpt_formulas(hf):
    model, p = _llama_params(hf)
    d, L = 64, 2
    wt.initialize(model, "neox", seed=3, strict=True)
    small = wi.Normal(0.0, math.sqrt(2 / (5 * d)))
    assert _matches(p["model.layers.0.self_attn.q_proj.weight"], small) and _matches(
        p["model.embed_tokens.weight"], small
    )
    assert _matches(p["model.layers.1.mlp.down_proj.weight"], wi.Normal(0.0, 2 / L / math.sqrt(d)))
    assert _matches(p["model.layers.1.self_attn.o_proj.weight"], wi.Normal(0.0, 2 / L / math.sqrt(d)))
    wt.initialize(model, "megatron", seed=3, strict=True)
    assert _matches(p["model.layers.0.mlp.up_proj.weight"], wi.Normal(0.0, 0.02))
    assert _matches(p["model.layers.0.mlp.down_proj.weight"], wi.Normal(0.0, 0.02 / math.sqrt(2 * L)))
    wt.initialize(model, "modded_nanogpt", seed=3, strict=True)
    assert (
        float(p["lm_head.weight"].abs().sum()) == 0
        and float(p["model.layers.1.self_attn.o_proj.weight"].abs().sum()) == 0
    )
    b = math.sqrt(3) * 0.5 / math.sqrt(d)
    assert _matches(p["model.layers.1.self_attn.q_proj.weight"], wi.Uniform(-b, b))


def test_recipes_same_bits_whatever_the_construction_device_or_threads(hf):
    a = _llama(hf)
    wt.initialize(a, "torchtitan_llama3", seed=9)
    with torch.device("meta"):
        b = _llama(hf)
    report = wt.initialize(b, "torchtitan_llama3", seed=9)  # roles found on meta (shapes only); nothing written
    assert report.module_roles == wt.initialize(a, "torchtitan_llama3", seed=9).module_roles
    b.to_empty(device="cpu")
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        wt.initialize(b, "torchtitan_llama3", seed=9)
    finally:
        torch.set_num_threads(n)
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        assert torch.equal(p, q), name


def test_hf_declared_ties_kept_and_restored(hf):
    report = wt.initialize(_bert(hf), "torch", seed=0)
    assert report.tied["bert.embeddings.word_embeddings.weight"] == ["cls.predictions.decoder.weight"]
    assert report.own_init == {"cls.predictions.bias": "BertForMaskedLM._init_weights(BertLMPredictionHead)"}
    with torch.device("meta"):
        t5 = _t5(hf)
    t5.to_empty(device="cpu")
    report = wt.initialize(t5, "hf_t5", seed=0)
    assert sorted(report.ties_restored) == [
        "decoder.embed_tokens.weight -> shared.weight",
        "encoder.embed_tokens.weight -> shared.weight",
        "lm_head.weight -> shared.weight",
    ]
    assert t5.lm_head.weight is t5.shared.weight and _matches(t5.shared.weight, wi.Normal(0.0, 1.0))


def test_trainer_recipes_scale_residual_projections_found_by_fx():
    """Without module roles (a hand-built model traced by torch.fx), residual projections get the output std."""

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(64, 256)
            self.proj = nn.Linear(256, 64)

        def forward(self, x):
            return x + self.proj(torch.relu(self.fc(x)))

    model = nn.Sequential(Block(), Block())
    report = wt.initialize(model, "megatron", seed=0, strict=True)
    assert report.roles_method == "fx" and report.residual_projections == ["0.proj", "1.proj"]
    assert report["1.proj.weight"].rule == "megatron: residual projection"
    assert _matches(model[1].proj.weight, wi.Normal(0.0, 0.02 / math.sqrt(2 * 1)))
    assert _matches(model[1].fc.weight, wi.Normal(0.0, 0.02))
