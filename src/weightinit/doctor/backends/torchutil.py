"""PyTorch helpers shared by the doctor's torch modules (measure, analytic, lsuv, llm): inputs, layouts, weight
layers, activations, the probe correction.  The backend itself is :mod:`weightinit.doctor.backends.torch`.

Imported only when a torch model is diagnosed; importing it imports torch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, cast

import numpy as np

import torch
from torch import nn
from weightinit.common.errors import InitializerTypeError, InitializerValueError
from weightinit.initializers.orthogonal import Orthogonal
from weightinit.random.streams import Stream

CHANNELS_FIRST = (nn.modules.conv._ConvNd, nn.modules.batchnorm._BatchNorm, nn.modules.pooling._MaxPoolNd,
                  nn.modules.pooling._AvgPoolNd, nn.modules.pooling._AdaptiveAvgPoolNd, nn.GroupNorm,
                  nn.modules.instancenorm._InstanceNorm)  # fmt: skip
CHANNELS_LAST = (nn.Linear, nn.LayerNorm, nn.Embedding, nn.MultiheadAttention)
WEIGHT_TYPES = (nn.Linear, nn.modules.conv._ConvNd, nn.Bilinear)
WeightLayer = nn.Linear | nn.modules.conv._ConvNd | nn.Bilinear  # a module of WEIGHT_TYPES
NORM_TYPES = (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm, nn.modules.instancenorm._InstanceNorm)

# module class name -> (ACTIVATIONS name, parameter attribute or None)
ACT_MODULES = {
    "ReLU": ("relu", None), "Tanh": ("tanh", None), "Sigmoid": ("sigmoid", None), "SiLU": ("silu", None),
    "Mish": ("mish", None), "SELU": ("selu", None), "Softsign": ("softsign", None), "ReLU6": ("relu6", None),
    "Hardtanh": ("hardtanh", None), "LeakyReLU": ("leaky_relu", "negative_slope"), "ELU": ("elu", "alpha"),
    "Identity": ("linear", None),
}  # fmt: skip


def saturation_mask(module: nn.Module, y: torch.Tensor) -> torch.Tensor | None:
    """Boolean mask of outputs where the activation's derivative is (near) zero, or None if not applicable."""
    name = type(module).__name__
    if name == "Tanh":
        return y.abs() > 0.99
    if name in ("Sigmoid", "Hardsigmoid"):
        return (y < 0.01) | (y > 0.99)
    if name == "Hardtanh":
        hard = cast(nn.Hardtanh, module)  # by its class name, as the other activations here
        return (y <= hard.min_val) | (y >= hard.max_val)
    if name == "ReLU6":
        return y >= 6.0
    return None


def unit_dim(y: torch.Tensor, layout: str) -> int:
    if y.ndim <= 2:
        return y.ndim - 1
    return 1 if layout == "channels_first" else y.ndim - 1


def dead_fraction(y: torch.Tensor, layout: str) -> float:
    """Fraction of units (features or channels) that are exactly zero for every example and position."""
    if y.ndim == 0 or y.numel() == 0:
        return float("nan")
    d = unit_dim(y, layout)
    nz = (y != 0).transpose(0, d).reshape(y.shape[d], -1).any(dim=1)
    return float(1.0 - nz.float().mean())


def input_spec(model: nn.Module) -> tuple[tuple[int, ...], torch.dtype, int | None] | None:
    """Guess ``(shape_without_batch, dtype, vocabulary size or None)`` of the model's input from its first layer,
    or None."""
    for m in model.modules():
        if isinstance(m, nn.Embedding):
            return (16,), torch.long, m.num_embeddings
        if isinstance(m, nn.Linear):
            return (m.in_features,), torch.float32, None
        if isinstance(m, nn.modules.conv._ConvNd):
            nd = len(m.kernel_size)
            return (m.in_channels, *([32, 16, 8][nd - 1 :][:1] * nd)), torch.float32, None
    return None


def synthetic_inputs(model: nn.Module, batch: int = 64, input_shape: Sequence[int] | None = None,
                     seed: int = 0) -> torch.Tensor:  # fmt: skip
    """A batch of N(0, 1) inputs (or random token ids) of the shape the first layer expects."""
    g = torch.Generator().manual_seed(seed)
    if input_shape is not None:
        return torch.randn((batch, *tuple(input_shape)), generator=g)
    spec = input_spec(model)
    if spec is None:
        raise InitializerValueError(
            "Cannot guess the input shape of this model (its first layer is not Linear, Conv or Embedding); "
            "pass `inputs=` (a batch) or `input_shape=` (without the batch dimension)."
        )
    shape, dtype, vocab = spec
    if dtype == torch.long and vocab is not None:  # token ids for an Embedding (input_spec gives its vocabulary)
        return torch.randint(0, vocab, (batch, *shape), generator=g)
    return torch.randn((batch, *shape), generator=g)


def _one_tensor(x: torch.Tensor | np.ndarray) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x
    t = torch.from_numpy(x)
    return t.float() if t.is_floating_point() else t


def as_tensor(inputs: object) -> torch.Tensor | tuple[torch.Tensor, ...]:
    """``inputs`` (a tensor, a NumPy array -- float arrays become float32 -- or a tuple/list of them) as tensors."""
    if isinstance(inputs, (torch.Tensor, np.ndarray)):
        return _one_tensor(inputs)
    if isinstance(inputs, (tuple, list)) and inputs and all(isinstance(x, (torch.Tensor, np.ndarray)) for x in inputs):
        return tuple(_one_tensor(x) for x in inputs)
    raise InitializerTypeError(
        f"`inputs` must be a torch.Tensor or NumPy array (a batch); received {type(inputs).__name__}."
    )


def batch_size(x: torch.Tensor | tuple[torch.Tensor, ...]) -> int:
    if isinstance(x, tuple):
        x = x[0]
    return int(x.shape[0]) if x.ndim else 0


def first_tensor(out: object) -> torch.Tensor | None:
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, (tuple, list)):
        for o in out:
            if isinstance(o, torch.Tensor):
                return o
    if isinstance(out, dict):
        for o in out.values():
            if isinstance(o, torch.Tensor):
                return o
    return None


def call(model: nn.Module, x: torch.Tensor | tuple[torch.Tensor, ...]) -> Any:
    """``model(x)``, or ``model(*x)`` when the batch is a tuple of inputs."""
    return model(*x) if isinstance(x, tuple) else model(x)


def forward_with_hooks(model: nn.Module, x: torch.Tensor | tuple[torch.Tensor, ...], modules: Iterable[nn.Module],
                       hook: Callable[..., Any]) -> None:  # fmt: skip
    """One forward pass of ``x`` without gradients, with ``hook`` as forward hook on ``modules``."""
    handles = [m.register_forward_hook(hook) for m in modules]
    try:
        with torch.no_grad():
            call(model, x)
    finally:
        for h in handles:
            h.remove()


def orthogonal_(weight: torch.Tensor, seed: int, name: str) -> None:
    """Overwrite ``weight`` (torch layout ``(out, in, *k)``) with a weightinit Orthogonal matrix (Saxe et al. 2014).

    The Keras-layout draw has shape ``(in * prod(k), out)``; transposed, its rows are orthonormal when
    ``out <= in * prod(k)``.  The stream is ``Stream.from_seed(seed).child(name)``, so the result does
    not depend on the order layers are visited.  A DTensor ``weight`` (e.g. an FSDP2 parameter) gets its shard of
    the same full matrix, so the gathered weight equals the single-device one.
    """
    from weightinit.torch.dtensor import fill_via_full_, is_dtensor

    out = weight.shape[0]
    rest = int(np.prod(weight.shape[1:])) if weight.ndim > 1 else 1
    w = Orthogonal(seed=Stream.from_seed(seed).child(name))((rest, out), "float64").T
    with torch.no_grad():
        full = torch.from_numpy(np.ascontiguousarray(w)).reshape(weight.shape).to(weight.dtype)
        if is_dtensor(weight):
            fill_via_full_(weight, lambda t: t.copy_(full.to(t.device)))
        else:
            weight.copy_(full)


def weight_layers(model: nn.Module) -> list[tuple[str, WeightLayer]]:
    """``(qualified name, module)`` of layers with a weight to rescale, each parameter once (tied ones skipped)."""
    seen: set[int] = set()
    out: list[tuple[str, WeightLayer]] = []
    for name, m in model.named_modules():
        if isinstance(m, WEIGHT_TYPES):
            w = getattr(m, "weight", None)
            if w is None or id(w) in seen:
                continue
            seen.add(id(w))
            out.append((name, m))
    return out


def _minus_bias(m: nn.Module, y: torch.Tensor) -> torch.Tensor:
    b = getattr(m, "bias", None)
    if b is None:
        return y
    if isinstance(m, nn.modules.conv._ConvNd):
        return y - b.view(1, -1, *([1] * (y.ndim - 2)))
    return y - b


def correct_on_probe(model: nn.Module, x: torch.Tensor | tuple[torch.Tensor, ...],
                     weight_q: dict[str, float]) -> dict[str, float]:  # fmt: skip
    """One forward pass of the probe batch ``x`` that rescales each weight layer named in ``weight_q`` so the
    measured second moment of its weight part ``E[(W x)**2]`` is the value given; returns ``{name: factor}``.

    Layers are corrected in forward order inside the pass (a forward hook rescales the weight and returns the
    corrected output), so every layer is measured on inputs its predecessors already corrected.  A layer
    called twice (tied) is corrected at its first call only.
    """
    names = {m: n for n, m in model.named_modules()}
    done: dict[str, float] = {}

    def hook(mod, args, out):
        name = names.get(mod)
        if name not in weight_q or name in done or not isinstance(out, torch.Tensor):
            return None
        part = _minus_bias(mod, out.detach()).double()
        a = float((part * part).mean())
        if not (a > 0 and np.isfinite(a)) or not weight_q[name] > 0:
            done[name] = 1.0
            return None
        s = float(np.sqrt(weight_q[name] / a))
        with torch.no_grad():
            mod.weight.mul_(s)
        done[name] = s
        return out - part.to(out.dtype) * (1 - s)

    mods = [m for m in model.modules() if names.get(m) in weight_q]
    forward_with_hooks(model, x, mods, hook)
    return done
