"""``MODEL_SPEC``: how the artifact commands name a model, built on the meta device (no weights, no download).

* ``path/to/file.py:factory`` (or ``package.module:factory``): ``factory()``
  returns an ``nn.Module``;
* a local Hugging Face ``config.json`` or a directory holding one: the model
  class named in its ``architectures`` (else ``AutoModel``), built with
  ``from_config``;
* ``tiny-llama``, ``tiny-llama-tied`` and ``llama-7b`` (the Llama-2-7B
  shapes): a built-in Llama-style decoder (:class:`LlamaStyle`) whose
  parameter names and shapes are those of ``transformers``'
  ``LlamaForCausalLM``, so its checkpoints load there; it needs no
  transformers import.  ``NAME@N`` keeps the first N layers.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import sys

from weightinit.common.errors import InitializerTypeError, InitializerValueError

__all__ = ["BUILTIN", "LlamaStyle", "build_meta", "describe", "hf_config"]

_LLAMA_7B = dict(
    vocab_size=32000,
    hidden_size=4096,
    intermediate_size=11008,
    num_hidden_layers=32,
    num_attention_heads=32,
    num_key_value_heads=32,
    max_position_embeddings=4096,
    tie_word_embeddings=False,
)

BUILTIN = {
    "tiny-llama": dict(
        vocab_size=96,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        tie_word_embeddings=False,
    ),
    "tiny-llama-tied": dict(
        vocab_size=96,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        tie_word_embeddings=True,
    ),
    "llama-7b": _LLAMA_7B,
}
"""Built-in Llama configurations (``transformers.LlamaConfig`` keyword arguments)."""


def _error(spec, why: str) -> InitializerValueError:
    return InitializerValueError(
        f"`MODEL_SPEC` must be path/to/file.py:factory, module:factory, a local Hugging Face config.json (or a "
        f"directory holding one), or one of {sorted(BUILTIN)}; received MODEL_SPEC={spec!r}: {why}"
    )


def _llama(kwargs: dict, layers: int | None = None):
    kw = dict(kwargs)
    if layers is not None:
        kw["num_hidden_layers"] = layers
    return LlamaStyle(**kw)


def hf_config(spec: str) -> dict | None:
    """The ``config.json`` of a built-in spec (a ``LlamaForCausalLM`` config), else None."""
    name, _, layers = spec.partition("@") if isinstance(spec, str) else ("", "", "")
    if name not in BUILTIN:
        return None
    kw = dict(BUILTIN[name])
    if layers:
        kw["num_hidden_layers"] = int(layers)
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_act": "silu",
        "rms_norm_eps": 1e-6,
        "torch_dtype": "float32",
        **kw,
    }


def _hf_from_config(path: str):
    try:
        import transformers
    except ImportError as e:  # pragma: no cover - transformers is a test extra
        raise InitializerValueError(f"a Hugging Face config needs transformers ({e}).") from None
    cfg_path = os.path.join(path, "config.json") if os.path.isdir(path) else path
    try:
        with open(cfg_path, encoding="utf-8") as f:
            raw = json.load(f)
    except (OSError, ValueError) as e:
        raise _error(path, f"cannot read {cfg_path} as JSON ({e}).") from None
    if not isinstance(raw, dict) or "model_type" not in raw:
        raise _error(path, f"{cfg_path} has no `model_type`, so it is not a Hugging Face config.")
    try:
        config = transformers.AutoConfig.for_model(**raw)
    except Exception as e:
        raise _error(path, f"transformers cannot read it ({type(e).__name__}: {e}).") from None
    arch = (getattr(config, "architectures", None) or [None])[0]
    cls = getattr(transformers, arch, None) if arch else None
    if cls is None:
        return transformers.AutoModel.from_config(config)
    return cls(config)


def _factory(spec: str):
    target, _, name = spec.rpartition(":")
    if target.endswith(".py"):
        if not os.path.isfile(target):
            raise _error(spec, f"no file {target}.")
        mod_name = "_weightinit_model_" + os.path.splitext(os.path.basename(target))[0]
        s = importlib.util.spec_from_file_location(mod_name, target)
        if s is None or s.loader is None:
            raise _error(spec, f"cannot import {target} as a module.")
        module = importlib.util.module_from_spec(s)
        sys.modules[mod_name] = module
        try:
            s.loader.exec_module(module)
        except Exception as e:
            raise _error(spec, f"importing {target} raised {type(e).__name__}: {e}") from None
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as e:
            raise _error(spec, f"cannot import {target} ({e}).") from None
    fn = getattr(module, name, None)
    if not callable(fn):
        raise _error(spec, f"{target} has no callable {name!r}.")
    return fn


def _decoder_layer(d: int, ff: int, heads: int, kv_heads: int, eps: float):
    from torch import nn

    head = d // heads
    attn = nn.Module()
    attn.q_proj = nn.Linear(d, heads * head, bias=False)
    attn.k_proj = nn.Linear(d, kv_heads * head, bias=False)
    attn.v_proj = nn.Linear(d, kv_heads * head, bias=False)
    attn.o_proj = nn.Linear(heads * head, d, bias=False)
    mlp = nn.Module()
    mlp.gate_proj = nn.Linear(d, ff, bias=False)
    mlp.up_proj = nn.Linear(d, ff, bias=False)
    mlp.down_proj = nn.Linear(ff, d, bias=False)
    # the two projections into the residual stream (recipe "gpt2"); torch types Module.__setattr__'s value as
    # Tensor | Module, but any other value is set as a plain attribute (how weightinit_residual is documented)
    attn.o_proj.weightinit_residual = True  # pyright: ignore[reportArgumentType]
    mlp.down_proj.weightinit_residual = True  # pyright: ignore[reportArgumentType]
    layer = nn.Module()
    layer.self_attn, layer.mlp = attn, mlp
    layer.input_layernorm = nn.RMSNorm(d, eps=eps)
    layer.post_attention_layernorm = nn.RMSNorm(d, eps=eps)
    return layer


def LlamaStyle(
    vocab_size: int,
    hidden_size: int,
    intermediate_size: int,
    num_hidden_layers: int,
    num_attention_heads: int,
    num_key_value_heads: int,
    tie_word_embeddings: bool = False,
    rms_norm_eps: float = 1e-6,
    **_unused,
):
    """A Llama-style decoder's parameters, named as ``transformers.LlamaForCausalLM`` names them.

    Only the parameters matter to the artifact commands (they are never run),
    so the modules have no ``forward``.
    """
    from torch import nn

    root = nn.Module()
    root.model = nn.Module()
    root.model.embed_tokens = nn.Embedding(vocab_size, hidden_size)
    root.model.layers = nn.ModuleList(
        _decoder_layer(hidden_size, intermediate_size, num_attention_heads, num_key_value_heads, rms_norm_eps)
        for _ in range(num_hidden_layers)
    )
    root.model.norm = nn.RMSNorm(hidden_size, eps=rms_norm_eps)
    root.lm_head = nn.Linear(hidden_size, vocab_size, bias=False)
    if tie_word_embeddings:
        root.lm_head.weight = root.model.embed_tokens.weight
    return root


def build_meta(spec):
    """The model ``spec`` names, its parameters on the meta device (nothing allocated, nothing downloaded).

    ``spec`` may also be an ``nn.Module`` (returned as is).  A built-in name
    takes ``@N`` to keep the first N layers (``llama-7b@2``).
    """
    import torch
    from torch import nn

    if isinstance(spec, nn.Module):
        return spec
    if not isinstance(spec, (str, os.PathLike)):
        raise InitializerTypeError(
            f"`model` must be a torch.nn.Module or a MODEL_SPEC string; received {type(spec).__name__}."
        )
    spec = os.fspath(spec)
    name, _, layers = spec.partition("@")
    with torch.device("meta"):
        if name in BUILTIN:
            if layers and not layers.isdigit():
                raise _error(spec, "the part after @ must be a number of layers.")
            model = _llama(BUILTIN[name], int(layers) if layers else None)
        elif ":" in spec and not os.path.exists(spec):
            model = _factory(spec)()
        elif os.path.exists(spec):
            model = _hf_from_config(spec)
        else:
            raise _error(spec, "no such file, directory or built-in name.")
    if not isinstance(model, nn.Module):
        raise _error(spec, f"the factory returned {type(model).__name__}, not an nn.Module.")
    return model


def describe(spec) -> str:
    """A short label of a model spec for metadata."""
    return spec if isinstance(spec, str) else type(spec).__name__
