"""Fan rules per layer type for weights stored in PyTorch's layout (framework-free, no torch import).

The core's initializers read fans from channels-last shapes (``compute_fans``:
``(*kernel, in, out)``).  PyTorch stores weights as ``(out, in, *kernel)``
(``ConvTranspose``: ``(in, out/groups, *kernel)``) and fuses blocks (the q, k,
v projections of ``MultiheadAttention``; the gates of LSTM/GRU/RNN).
:func:`torch_layout` describes one such weight: its per-block fans, the
*fan shape* (a 2-D channels-last shape whose ``compute_fans`` are exactly
those fans, so any core initializer sees the right fans) and the permutation
from the torch layout to the equivalent channels-last kernel.

Stream layout (docs/random.md, section 3): for elementwise initializers the
stream's flat index is the row-major index over the parameter's **own torch
shape**, so any block (``region=``) of a torch parameter can be generated
alone and a sharded parameter gets the same values as an unsharded one.
Non-elementwise initializers (orthogonal, identity, user callables) are given
the channels-last shape of each block and their result is permuted back.

>>> lay = torch_layout((64, 8, 3, 3), "conv", groups=4)
>>> lay.fan_in, lay.fan_out
(72, 144)
>>> torch_layout((3 * 16, 16), "mha_in_proj").fans
(16, 16)
"""

from __future__ import annotations

from dataclasses import dataclass

from weightinit.common.errors import value_error
from weightinit.initializers.fans import TORCH_LAYER_KINDS, torch_fans, torch_layer_fans

__all__ = ["Layout", "KINDS", "torch_layout", "torch_default_fans", "GATES"]

KINDS = TORCH_LAYER_KINDS
"""Layer kinds :func:`torch_layout` knows."""

GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}
"""Gate blocks fused in the weights of torch's recurrent layers (RNN, GRU, LSTM and their cells)."""


@dataclass(frozen=True)
class Layout:
    """How a weight stored in PyTorch's layout maps to the core's channels-last semantics.

    Attributes:
      kind: the layer kind (one of :data:`KINDS`).
      shape: the whole parameter's torch shape.
      blocks: the number of equal blocks fused along dim 0 (3 for a fused
        q/k/v projection, the gate count for recurrent weights, else 1).
      block_shape: the torch shape of one block.
      fan_in, fan_out: the fans of one block.
      fan_shape: a channels-last shape whose ``compute_fans`` is ``(fan_in, fan_out)``.
      perm: axes that turn a channels-last block (as ``numpy.transpose``'s
        argument) into the torch block; ``cl_shape`` is that channels-last shape.
    """

    kind: str
    shape: tuple[int, ...]
    blocks: int
    block_shape: tuple[int, ...]
    fan_in: int
    fan_out: int
    cl_shape: tuple[int, ...]
    perm: tuple[int, ...]

    @property
    def fans(self) -> tuple[int, int]:
        return self.fan_in, self.fan_out

    @property
    def fan_shape(self) -> tuple[int, ...]:
        if len(self.shape) < 2:
            return self.shape
        return (self.fan_in, self.fan_out)


torch_default_fans = torch_fans
"""PyTorch's own fan rule; the owner is :func:`weightinit.initializers.fans.torch_fans` (this name stays)."""


def _to_channels_last(block: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(out, in, *k) -> (*k, in, out) and the axes mapping it back."""
    nd = len(block)
    if nd < 2:
        return block, tuple(range(nd))
    cl = tuple(block[2:]) + (block[1], block[0])
    # cl axis j holds torch axis: k_i at j=i-2 ... ; torch axis 0 is cl axis nd-1, torch axis 1 is cl axis nd-2.
    perm = (nd - 1, nd - 2) + tuple(range(nd - 2))
    return cl, perm


def torch_layout(shape, kind: str = "generic", *, groups: int = 1, gates: int = 1) -> Layout:
    """Describe a torch-layout weight of ``shape`` for layer ``kind``.

    Fan rules: :func:`weightinit.initializers.fans.torch_layer_fans` of one
    block (``mha_in_proj``: 3 blocks ``(E, E_in)``; ``rnn_ih``/``rnn_hh``:
    ``G`` gate blocks ``(H, in)``/``(H, H)``).

    Embeddings take ``fan_in = dim`` (Flax's ``Embed``: ``in_axis=-1``) so an
    embedding and the output projection tied to it agree.  For the
    transposed convolution, the output of each position sums over ``in/g``
    channels and ``k`` taps, so that is its fan-in (PyTorch's own rule
    instead reports ``out/g * k``; see :func:`torch_default_fans`).
    ``linear_in_out`` is a dense weight stored input-major, as Hugging Face's
    ``Conv1D`` stores it (``(nx, nf)``, applied as ``x @ W``): that is already
    the channels-last layout, so fans are ``(shape[0], shape[1])``.

    Args:
      shape: the parameter's torch shape.
      kind: one of :data:`KINDS`.
      groups: convolution groups (``conv``, ``depthwise``, ``conv_transpose``).
      gates: gate blocks of ``rnn_ih``/``rnn_hh`` (see :data:`GATES`).
    """
    shape = tuple(int(d) for d in shape)
    if kind not in KINDS:
        raise value_error("kind", kind, f"must be one of {list(KINDS)}")
    if len(shape) < 2 or kind == "vector":
        n, _ = torch_layer_fans(shape, "vector")
        return Layout("vector", shape, 1, shape, n, n, shape, tuple(range(len(shape))))
    blocks = 1
    if kind == "mha_in_proj":
        blocks = 3
    elif kind in ("rnn_ih", "rnn_hh"):
        blocks = int(gates)
    if blocks < 1 or shape[0] % blocks:
        raise value_error(
            "shape", shape, f"must have a first dimension divisible by the {blocks} fused blocks of a {kind} weight"
        )
    block = (shape[0] // blocks,) + shape[1:]
    fan_in, fan_out = torch_layer_fans(block, kind, groups)
    if kind in ("conv_transpose", "linear_in_out"):
        # (in, out/g, *k): channels-last kernel (*k, in, out/g) has fan_in axis = in.  Permute so that
        # the channels-last "in" axis is torch axis 0.
        nd = len(block)
        cl = tuple(block[2:]) + (block[0], block[1])
        perm = (nd - 2, nd - 1) + tuple(range(nd - 2))
    elif kind == "embedding":
        # An embedding table is its own channels-last layout (Keras and Flax store (num, dim) too).
        cl, perm = block, (0, 1)
    else:
        cl, perm = _to_channels_last(block)
    return Layout(kind, shape, blocks, block, fan_in, fan_out, cl, perm)
