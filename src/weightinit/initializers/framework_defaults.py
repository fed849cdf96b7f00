"""Framework-default presets: what each framework's layers use when you do not choose.

Ports reproduce a source framework's *distribution* by naming its preset
(``weightinit.get("torch_linear")``); kernels are channels-last
``(*k, in, out)`` as everywhere in weightinit (the torch adapter maps torch's
``(out, in, *k)``).

| name(s) | class | definition |
|---|---|---|
| ``torch_linear``, ``torch_conv`` | :class:`TorchLinearWeight` | ``kaiming_uniform_(a=sqrt(5))`` = U(+-1/sqrt(fan_in)) |
| ``torch_bias`` | :class:`TorchLinearBias` | U(+-1/sqrt(fan_in)) of the layer's weight |
| ``torch_embedding`` | :class:`TorchEmbedding` | N(0, 1), padding row zero |
| ``keras_dense``, ``keras_conv`` | :class:`GlorotUniform` | Keras' default kernel |
| ``keras_embedding`` | :class:`RandomUniform` | U(-0.05, 0.05) |
| ``flax_dense``, ``flax_conv`` | :class:`LecunNormal` | Flax's default kernel |
| ``flax_embed`` | :class:`FlaxEmbed` | ``variance_scaling(1, "fan_in", "normal", out_axis=0)`` = N(0, 1/features) |
| ``haiku_linear``, ``haiku_conv`` | :class:`HaikuLinear` | ``hk.initializers.TruncatedNormal(1/sqrt(fan_in))``, uncorrected |

Biases of Keras, Flax and Haiku layers are zeros (:class:`Zeros`).
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from weightinit.common.dtypes import require_float
from weightinit.common.errors import InitializerValueError, value_error
from weightinit.common.shapes import RegionPlan
from weightinit.initializers.base import RandomInitializer
from weightinit.initializers.constant import Zeros
from weightinit.initializers.fans import input_size
from weightinit.initializers.names import builtin
from weightinit.initializers.random_values import RandomUniform
from weightinit.initializers.variance_scaling import GlorotUniform, LecunNormal, _Preset
from weightinit.random.distributions import Normal, TruncatedNormalDistribution, Uniform
from weightinit.random.sampling import sample

__all__ = ["TorchLinearWeight", "TorchLinearBias", "TorchEmbedding", "FlaxEmbed", "HaikuLinear"]

# Framework names for classes that already exist.
builtin("keras_dense", "keras_conv")(GlorotUniform)
builtin("keras_embedding")(RandomUniform)
builtin("flax_dense", "flax_conv")(LecunNormal)
builtin("keras_bias", "flax_bias", "haiku_bias")(Zeros)


@builtin("torch_linear", "torch_conv")
class TorchLinearWeight(_Preset):
    """PyTorch's default ``nn.Linear``/``nn.Conv*`` weight: ``kaiming_uniform_(a=sqrt(5))``.

    Formula: ``U[-l, l)``, ``l = 1/sqrt(fan_in)``, i.e.
    ``VarianceScaling(1/3, "fan_in", "uniform")`` (``Var = 1/(3 fan_in)``);
    ``gain = sqrt(2/(1+5))`` makes ``sqrt(3) * gain / sqrt(fan_in) = 1/sqrt(fan_in)``.
    ``fan_in = in * prod(kernel)`` in the channels-last layout, which is torch's
    ``in/groups * prod(kernel)``.  Reference: PyTorch
    ``nn.Linear.reset_parameters`` (issue pytorch/pytorch#57109).

    >>> import weightinit as wi
    >>> w = wi.TorchLinearWeight(seed=0)((400, 100))
    >>> bool(abs(w).max() < 0.05)
    True
    """

    group = "framework defaults"
    formula = "U[-1/sqrt(fan_in), 1/sqrt(fan_in)) = kaiming_uniform_(a=sqrt(5))"
    _preset = (1.0 / 3.0, "fan_in", "uniform")


@builtin("torch_bias", "torch_linear_bias", "torch_conv_bias")
class TorchLinearBias(RandomInitializer):
    """PyTorch's default ``nn.Linear``/``nn.Conv*`` bias: ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``.

    Formula: ``b ~ U[-l, l)``, ``l = 1/sqrt(fan_in)`` where ``fan_in`` is the
    fan-in of the layer's *weight* (a bias's own shape does not tell it);
    zeros when ``fan_in == 0``, as torch.  Reference: PyTorch
    ``nn.Linear.reset_parameters``.

    Args:
      fan_in: the weight's fan-in (``in * prod(kernel)``); required before the first call.
      seed: int, None, SeedGenerator or Stream.

    >>> import weightinit as wi
    >>> b = wi.TorchLinearBias(fan_in=400, seed=0)((100,))
    >>> bool(abs(b).max() < 0.05)
    True
    """

    group = "framework defaults"
    formula = "U[-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in of the layer's weight"

    def __init__(self, fan_in=None, seed=None) -> None:
        if fan_in is not None and (isinstance(fan_in, bool) or not isinstance(fan_in, numbers.Integral) or fan_in < 0):
            raise value_error("fan_in", fan_in, "must be a non-negative int (the fan-in of the layer's weight)")
        self.fan_in = None if fan_in is None else int(fan_in)
        super().__init__(seed)

    def _check_dtype(self, dtype):
        return require_float(dtype, "TorchLinearBias")

    def distribution_for(self, shape):
        """U(-1/sqrt(fan_in), 1/sqrt(fan_in)), or None when ``fan_in == 0`` (zeros)."""
        if self.fan_in is None:
            raise InitializerValueError(
                "TorchLinearBias needs the fan-in of the layer's weight; received fan_in=None. "
                "Pass TorchLinearBias(fan_in=in_features * prod(kernel_size))."
            )
        if self.fan_in == 0:
            return None
        bound = 1.0 / math.sqrt(self.fan_in)
        return Uniform(-bound, bound)

    def _sample(self, shape, dtype, region, stream):
        dist = self.distribution_for(shape)
        if dist is None:
            return np.zeros(RegionPlan(shape, region).out_shape, dtype=dtype)
        return sample(dist, stream, shape, dtype, region)

    def get_config(self) -> dict:
        return {**super().get_config(), "fan_in": self.fan_in}


@builtin()
class TorchEmbedding(RandomInitializer):
    """PyTorch's default ``nn.Embedding`` weight: ``N(0, 1)``, the ``padding_idx`` row zero.

    Formula: ``w ~ N(0, 1)`` on ``(num_embeddings, embedding_dim)`` (the same
    layout in torch and channels-last); ``w[padding_idx] = 0`` when given.
    Reference: PyTorch ``nn.Embedding.reset_parameters``.

    Args:
      padding_idx: optional row to zero (negative counts from the end, as torch).
      seed: int, None, SeedGenerator or Stream.

    >>> import weightinit as wi
    >>> w = wi.TorchEmbedding(padding_idx=0, seed=0)((10, 4))
    >>> w[0].tolist()
    [0.0, 0.0, 0.0, 0.0]
    """

    group = "framework defaults"
    formula = "w ~ N(0, 1); w[padding_idx] = 0"
    elementwise = False

    def __init__(self, padding_idx=None, seed=None) -> None:
        if padding_idx is not None and (isinstance(padding_idx, bool) or not isinstance(padding_idx, numbers.Integral)):
            raise value_error("padding_idx", padding_idx, "must be an int or None")
        self.padding_idx = None if padding_idx is None else int(padding_idx)
        super().__init__(seed)

    def _check_dtype(self, dtype):
        return require_float(dtype, "TorchEmbedding")

    def _check_shape(self, shape):
        if len(shape) != 2:
            raise InitializerValueError(
                f"TorchEmbedding needs a 2-D shape (num_embeddings, dim); received shape={shape}."
            )
        if self.padding_idx is not None and not -shape[0] <= self.padding_idx < shape[0]:
            raise value_error("padding_idx", self.padding_idx, f"must be within num_embeddings={shape[0]}")

    def distribution_for(self, shape):
        """N(0, 1): the distribution of every row but the padding row."""
        return Normal(0.0, 1.0)

    def _sample(self, shape, dtype, region, stream):
        w = sample(self.distribution_for(shape), stream, shape, dtype)
        if self.padding_idx is not None:
            w[self.padding_idx] = 0
        return w

    def get_config(self) -> dict:
        return {**super().get_config(), "padding_idx": self.padding_idx}


@builtin()
class FlaxEmbed(_Preset):
    """Flax's default ``nn.Embed`` embedding: ``variance_scaling(1.0, "fan_in", "normal", out_axis=0)``.

    Formula: ``w ~ N(0, 1/features)`` for ``(num_embeddings, features)``: JAX's
    fans with ``in_axis=-2, out_axis=0`` give ``fan_in = features``; JAX's
    ``"normal"`` is untruncated.  Reference: ``flax.linen.Embed`` (``default_embed_init``).

    >>> import weightinit as wi
    >>> w = wi.FlaxEmbed(seed=0)((1000, 64))
    >>> round(float(w.std()) * 8, 1)
    1.0
    """

    group = "framework defaults"
    formula = "w ~ N(0, 1 / features) (untruncated)"
    _preset = (1.0, "fan_in", "untruncated_normal")

    def __init__(self, seed=None) -> None:
        super().__init__(seed, in_axis=-2, out_axis=0)

    def get_config(self) -> dict:
        return {"seed": super().get_config()["seed"]}


@builtin("haiku_linear", "haiku_conv")
class HaikuLinear(RandomInitializer):
    """Haiku's default ``hk.Linear``/``hk.ConvND`` weight: ``hk.initializers.TruncatedNormal(1/sqrt(fan_in))``, uncorrected.

    Formula: ``w ~ N(0, s^2)`` truncated to ``[-2s, 2s]`` with
    ``s = 1/sqrt(prod(shape[:-1]))``; no 0.8796 correction, so the standard
    deviation is ``0.88 / sqrt(fan_in)``.  Reference: dm-haiku ``hk.Linear``.

    >>> import weightinit as wi
    >>> w = wi.HaikuLinear(seed=0)((100, 1000))
    >>> round(float(w.std()) * 10, 2)
    0.88
    """

    group = "framework defaults"
    formula = "w ~ N(0, 1/fan_in) truncated at +-2 std, fan_in = prod(shape[:-1]) (no correction)"

    def _check_dtype(self, dtype):
        return require_float(dtype, "HaikuLinear")

    def distribution_for(self, shape):
        """The distribution each value of a weight of ``shape`` is drawn from."""
        s = 1.0 / math.sqrt(max(1, input_size(shape)))
        return TruncatedNormalDistribution(0.0, s, -2.0 * s, 2.0 * s)

    def _sample(self, shape, dtype, region, stream):
        return sample(self.distribution_for(shape), stream, shape, dtype, region)
