"""Init checks for language models, read from a PyTorch model's parameters (no forward pass), each with a
one-line fix.

* ``uninitialized``: NaN, inf or garbage (``|w| > 1e4``) in a parameter, the mark of memory never written
  after ``to_empty()`` (a module without ``reset_parameters``, or an init that skipped it).
* ``fused_fans``: a fused q/k/v (``qkv``, ``c_attn``, ``in_proj``, ``query_key_value``) or gate/up
  (``gate_up``, ``w13``) weight initialized with the fused matrix's fans (PyTorch issue 166378): Xavier's std
  ``sqrt(2 / (fan_in + fan_out))`` with ``fan_out = k d`` is smaller than each block's
  ``sqrt(2 / (fan_in + d))``; an orthogonal fused matrix has orthonormal columns, but no block does.
* ``residual_scaling``: the output projections of the residual branches (``c_proj``, ``o_proj``,
  ``out_proj``, ``down_proj``, ``w2``, ``fc2``, ``dense_4h_to_h``) have the same std as the block's input
  projections in a stack of ``L >= 4`` blocks: the residual stream's variance then grows like ``2 L``
  (GPT-2, Radford et al. 2019, scale them by ``1/sqrt(2 L)``).
* ``low_precision_init``: a float32 weight whose values are all exactly bfloat16 (or float16) numbers:
  sampled in low precision, then cast, so it carries 8 (11) bits of mantissa and a coarse distribution.
* ``tied_head``: an output head tied to the input embedding whose values follow ``nn.Linear``'s default
  ``U(-1/sqrt(d), 1/sqrt(d))`` (the head's init ran after the embedding's and overwrote it), or ``N(0, 1)``
  (``nn.Embedding``'s default, the head's logits then have std ``~sqrt(d)``: scaled for the wrong width).
* ``head_scale``: an untied output head (a Linear whose ``out_features`` is an embedding's vocabulary) with
  ``std * sqrt(d_in) >= 8``: at a unit-RMS final hidden state its logits have std 8 or more, so the initial
  softmax is nearly one-hot and the initial loss far above ``log V`` (an ``N(0, 1)`` or embedding-style init
  given to the head: scaled for the wrong width).
* ``inactive_truncation``: a truncated normal whose bounds are so far out (``torch.nn.init.trunc_normal_(w,
  std=0.02)`` keeps its default absolute ``a=-2, b=2``: 100 std) that fewer than half a value of the tensor is
  expected outside them: the truncation does nothing, almost surely bounds meant in standard deviations
  (timm/torchtitan-style code). The values cannot show it (such a draw is a plain normal, indistinguishable
  from an intended one); the call can: weightinit records the distribution of every truncated-normal write
  (``weightinit.torch.trunc_normal_``, ``weightinit.torch.initialize``, any weightinit initializer placed by
  it: ``weightinit.torch.place.TRUNCATED_WRITE_ATTR`` on the parameter) while the tensor is not written again.
* Hugging Face's ``Conv1D`` (GPT-2's ``c_attn``/``c_proj``/``c_fc``, weight ``(in, out)``) is read as a linear
  layer by ``fused_fans`` and ``residual_scaling``.
* ``fused_fans`` also reads ``nn.MultiheadAttention.in_proj_weight``, which PyTorch itself initializes with
  ``xavier_uniform_`` on the fused ``(3E, E)`` matrix (issue 166378).

Each check has a test that triggers it and one that must not (tests/doctor/test_llm_checks.py).
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any

import numpy as np

from weightinit.doctor.report import Flag

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["llm_checks"]

_FUSED = ((re.compile(r"(qkv|c_attn|in_proj|query_key_value|wqkv)(_weight)?$"), 3),
          (re.compile(r"(gate_up(_proj)?|w13|w1w3)(_weight)?$"), 2))  # fmt: skip
_OUT_PROJ = re.compile(r"(c_proj|o_proj|out_proj|down_proj|w2|fc2|dense_4h_to_h|wo)$")
_IN_PROJ = re.compile(r"(c_attn|q_proj|k_proj|v_proj|qkv|query|key|value|in_proj|c_fc|up_proj|gate_proj|w1|w3|fc1|wq)$")
_BLOCK = re.compile(r"^(.*?)(\d+)\.")


def _f64(t: torch.Tensor) -> np.ndarray:
    return t.detach().double().cpu().numpy()


def _uninitialized(model: nn.Module) -> list[Flag]:
    bad = []
    for name, p in model.named_parameters():
        if p.is_meta or not p.is_floating_point() or p.numel() == 0:
            continue
        v = p.detach()
        nonfinite = int((~v.isfinite()).sum())
        huge = int((v.abs() > 1e4).sum()) if not nonfinite else 0
        if nonfinite or huge:
            bad.append((name, nonfinite, huge, p.numel()))
    if not bad:
        return []
    name, nf, hg, n = bad[0]
    what = f"{nf} NaN/inf" if nf else f"{hg} values above 1e4 in magnitude"
    return [Flag(
        "uninitialized", name,
        f"{len(bad)} parameter(s) hold memory that was never initialized (first: {name}, {what} of {n}); "
        "this is what to_empty() leaves when no init writes a parameter.",
        "Initialize every parameter after to_empty(): weightinit.torch.initialize(model) (or call each module's "
        "reset_parameters()).", "error",
    )]  # fmt: skip


def _fused(named_linear: list[tuple[str, Any]]) -> list[Flag]:  # nn.Linear, HF Conv1D, nn.MultiheadAttention
    import torch

    flags = []
    for name, m in named_linear:
        leaf = name.rsplit(".", 1)[-1]
        for pat, k in _FUSED:
            weight = getattr(m, "in_proj_weight", None) if leaf.endswith("in_proj_weight") else m.weight
            if not pat.search(leaf) or weight is None or weight.ndim != 2:
                continue
            conv1d = _is_hf_conv1d(m)  # Hugging Face's Conv1D stores (in, out): the fused axis is dim 1
            w = weight.detach().T if conv1d else weight.detach()
            chunk = f"chunk({k}, dim=1)" if conv1d else f"chunk({k})"
            out, fan_in = w.shape
            if out % k or out // k < 2:
                continue
            d = out // k
            std = float(w.double().std())
            fused, per_block = math.sqrt(2 / (fan_in + out)), math.sqrt(2 / (fan_in + d))
            blocks = w.double().chunk(k)
            wd = w.double()
            eye = torch.eye(fan_in, dtype=torch.float64)
            ortho_fused = out >= fan_in and bool(torch.allclose(wd.T @ wd, eye, atol=1e-3))
            ortho_blocks = all(
                bool(torch.allclose(b @ b.T, torch.eye(b.shape[0], dtype=torch.float64), atol=1e-3))
                or bool(torch.allclose(b.T @ b, eye, atol=1e-3))
                for b in blocks
            )
            if abs(std / fused - 1) < 0.03 and abs(std / per_block - 1) > 0.1:
                msg = (f"The fused {k}-way weight {name} {tuple(w.shape)} has std {std:.4g}, Xavier's for the "
                       f"fused fans (fan_out {out}: {fused:.4g}); each of its {k} blocks is a ({d}, {fan_in}) "
                       f"matrix whose Xavier std is {per_block:.4g} (PyTorch issue 166378).")  # fmt: skip
                fix = f"for w in {_param_expr(name)}.data.{chunk}: torch.nn.init.xavier_uniform_(w)"
            elif ortho_fused and not ortho_blocks:
                msg = (f"The fused {k}-way weight {name} {tuple(w.shape)} is orthogonal as one matrix, so none of its "
                       f"{k} ({d}, {fan_in}) blocks is orthogonal.")  # fmt: skip
                fix = f"for w in {_param_expr(name)}.data.{chunk}: torch.nn.init.orthogonal_(w)"
            else:
                continue
            flags.append(Flag("fused_fans", name, msg, fix, "warning"))
    return flags[:1] + ([Flag("fused_fans", "model", f"{len(flags) - 1} more fused weight(s) alike.",
                               flags[0].fix.split(" for ")[0], "info")] if len(flags) > 1 else [])  # fmt: skip


def _is_hf_conv1d(m) -> bool:
    """Hugging Face's ``Conv1D`` (GPT-2's c_attn, c_proj, c_fc): a linear layer whose weight is ``(in, out)``."""
    w = getattr(m, "weight", None)
    return type(m).__name__ == "Conv1D" and w is not None and w.ndim == 2 and getattr(m, "nf", w.shape[1]) == w.shape[1]


def _param_expr(name: str) -> str:
    """The expression of a fused weight in the printed fix: a Linear's ``.weight``, or an attention module's
    ``in_proj_weight`` (``name`` then ends with it)."""
    if name.endswith("in_proj_weight"):
        mod = name[: -len("in_proj_weight")].rstrip(".")
        return f"model.get_submodule({mod!r}).in_proj_weight" if mod else "model.in_proj_weight"
    return f"model.get_submodule({name!r}).weight"


def _residual(named_linear: list[tuple[str, Any]]) -> list[Flag]:  # nn.Linear or HF Conv1D
    blocks: dict = {}
    for name, m in named_linear:
        mb = _BLOCK.match(name)
        if mb is None:
            continue
        key = (mb.group(1), int(mb.group(2)))
        leaf = name.rsplit(".", 1)[-1]
        kind = "out" if _OUT_PROJ.search(leaf) else "in" if _IN_PROJ.search(leaf) else None
        if kind is not None:
            blocks.setdefault(key, {"in": [], "out": []})[kind].append(float(m.weight.detach().double().std()))
    groups: dict = {}
    for (prefix, _i), b in blocks.items():
        if b["in"] and b["out"]:
            groups.setdefault(prefix, []).append(b)
    flags = []
    for prefix, bs in groups.items():
        n_layers = len(bs)
        if n_layers < 4:
            continue
        ratio = float(np.median([np.mean(b["out"]) / np.mean(b["in"]) for b in bs]))
        if ratio > 0.8:
            flags.append(Flag(
                "residual_scaling", f"{prefix}*",
                f"In the {n_layers} blocks under {prefix!r} the residual output projections have {ratio:.2f} times "
                f"the std of the input projections: without depth scaling every block adds its full variance to "
                f"the residual stream, which grows like 2L = {2 * n_layers} (GPT-2 scales them by 1/sqrt(2L) = "
                f"{(2 * n_layers) ** -0.5:.3g}; Radford et al. 2019).",
                f"[p.data.mul_({(2 * n_layers) ** -0.5:.4g}) for n, p in model.named_parameters() "
                "if re.search(r'(c_proj|o_proj|out_proj|down_proj|w2|fc2)\\.weight$', n)]", "warning",
            ))  # fmt: skip
    return flags


def _low_precision(model: nn.Module) -> list[Flag]:
    import torch

    hits = []
    for name, p in model.named_parameters():
        if p.dtype != torch.float32 or p.ndim < 2 or p.numel() < 256 or p.is_meta:
            continue
        v = p.detach().reshape(-1)[:4096]
        if int(torch.unique(v).numel()) < 64:  # constants (ones, zeros) are exact in every precision
            continue
        if bool((v.view(torch.int32) & 0xFFFF == 0).all()):
            hits.append((name, "bfloat16", 8))
        elif bool((v.half().float() == v).all()):
            hits.append((name, "float16", 11))
    if not hits:
        return []
    name, dt, bits = hits[0]
    return [Flag(
        "low_precision_init", name,
        f"{len(hits)} float32 weight(s) hold only {dt} values (first: {name}): they were sampled in {dt} and cast, "
        f"so they carry {bits} bits of mantissa and a coarse, slightly biased distribution.",
        "Sample in float32 and cast once after init (initialize before model.to(dtype)); weightinit draws the same "
        "values in any dtype from one float32/float64 stream.", "warning",
    )]  # fmt: skip


def _tied(model: nn.Module) -> list[Flag]:
    from torch import nn

    emb = {id(m.weight): n for n, m in model.named_modules() if isinstance(m, nn.Embedding)}
    flags = []
    for name, m in model.named_modules():
        if not isinstance(m, nn.Linear) or id(m.weight) not in emb:
            continue
        w = m.weight.detach().double()
        d = w.shape[1]
        bound = 1 / math.sqrt(d)
        std = float(w.std())
        uniform_default = float(w.abs().max()) <= bound * (1 + 1e-6) and abs(std / (bound / math.sqrt(3)) - 1) < 0.05
        if uniform_default:
            msg = (f"{name} is tied to the embedding {emb[id(m.weight)]}, and its values follow nn.Linear's default "
                   f"U(-1/sqrt({d}), 1/sqrt({d})): the head's init ran after the embedding's and overwrote it "
                   f"(the embedding now has std {std:.3g}).")  # fmt: skip
        elif abs(std - 1) < 0.05 and d >= 64:
            msg = (f"{name} is tied to the embedding {emb[id(m.weight)]} with nn.Embedding's default N(0, 1): as a head "
                   f"its logits have std ~sqrt({d}) = {math.sqrt(d):.3g} times the final hidden state's RMS "
                   "(scaled for the wrong width).")  # fmt: skip
        else:
            continue
        flags.append(Flag("tied_head", name, msg,
                          f"Initialize the tied weight once, after every module's own init: "
                          f"torch.nn.init.normal_(model.get_submodule({name!r}).weight, std={d}**-0.5)", "warning"))  # fmt: skip
    return flags


def _head_scale(model: nn.Module) -> list[Flag]:
    from torch import nn

    vocab = {m.num_embeddings for m in model.modules() if isinstance(m, nn.Embedding)}
    emb_weights = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    flags = []
    for name, m in model.named_modules():
        if not isinstance(m, nn.Linear) or m.out_features not in vocab or id(m.weight) in emb_weights:
            continue
        d = m.in_features
        std = float(m.weight.detach().double().std())
        if std * math.sqrt(d) < 8 or d < 16:
            continue
        flags.append(Flag(
            "head_scale", name,
            f"The output head {name} ({d} -> {m.out_features}, the vocabulary of an embedding) has std {std:.3g}: "
            f"at a unit-RMS final hidden state its logits have std {std * math.sqrt(d):.3g}, so the initial "
            f"softmax is nearly one-hot and the initial loss far above log V = {math.log(m.out_features):.3g} "
            f"(scaled for the wrong width: 1/sqrt({d}) = {d**-0.5:.3g} is the fan-in scale).",
            f"torch.nn.init.normal_(model.get_submodule({name!r}).weight, std={d}**-0.5)  "
            "# or zeros_ (muP's zero readout)", "warning",
        ))  # fmt: skip
    return flags


def _inactive_truncation(model: nn.Module) -> list[Flag]:
    from weightinit.torch.place import TRUNCATED_WRITE_ATTR

    hits = []
    for name, p in model.named_parameters():
        if p.is_meta or not p.is_floating_point() or p.numel() == 0:
            continue
        rec = getattr(p, TRUNCATED_WRITE_ATTR, None)
        try:
            if rec is None or rec[0] != p._version or rec[1] != p.data_ptr():
                continue  # not this tensor's last write (written since, or a copy)
        except Exception:  # pragma: no cover - tensors without a data pointer
            continue
        dist = rec[2]
        if not dist.std > 0:
            continue
        lo, hi = (dist.lower - dist.mean) / dist.std, (dist.upper - dist.mean) / dist.std
        outside = p.numel() * 0.5 * (math.erfc(-lo / math.sqrt(2)) + math.erfc(hi / math.sqrt(2)))
        if outside < 0.5:
            hits.append((name, dist, min(-lo, hi), outside, p.numel()))
    if not hits:
        return []
    name, dist, k, outside, numel = hits[0]
    m, sd = dist.mean, dist.std
    return [Flag(
        "inactive_truncation", name,
        f"{len(hits)} parameter(s) were drawn from a truncated normal whose bounds cut nothing (first: {name}, "
        f"std {sd:.3g}, bounds [{dist.lower:g}, {dist.upper:g}], {k:.3g} std from the mean: "
        f"{outside:.2g} of its {numel} values expected outside). "
        "torch.nn.init.trunc_normal_'s a and b are absolute values, not multiples of std; bounds meant as "
        "+-2 std (timm/torchtitan-style trunc_normal_(w, std=0.02)) give a plain normal.",
        f"torch.nn.init.trunc_normal_(model.get_parameter({name!r}), mean={m:g}, std={sd:g}, a={m - 2 * sd:g}, "
        f"b={m + 2 * sd:g})  # or normal_ if no truncation was meant", "info",
    )]  # fmt: skip


def llm_checks(model: nn.Module) -> list[Flag]:
    """The flags of the checks above for a torch model (an empty list when none applies)."""
    from torch import nn

    named_linear = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear) or _is_hf_conv1d(m)]
    named_linear += [(f"{n}.in_proj_weight" if n else "in_proj_weight", m) for n, m in model.named_modules()
                     if isinstance(m, nn.MultiheadAttention) and m.in_proj_weight is not None]  # fmt: skip
    out = _uninitialized(model)
    if out:  # garbage makes every other statistic meaningless
        return out
    linear_only = [(n, m) for n, m in named_linear if isinstance(m, nn.Linear) or _is_hf_conv1d(m)]
    return (_fused(named_linear) + _residual(linear_only) + _low_precision(model) + _tied(model)
            + _head_scale(model) + _inactive_truncation(model))  # fmt: skip
