"""Role-aware schemes driven by explicit arguments: GPT-2/Megatron scaled residuals, Fixup, T-Fixup, muP.

These schemes give different layers different initializations.  Name-matching
implementations ("scale every parameter called c_proj") break silently when a
model renames its layers, so here the role, depth and widths are explicit
constructor arguments: one instance per role, e.g.
``ScaledResidual(std=0.02, n_layers=12)`` for the output projections of the
residual branches and ``RandomNormal(stddev=0.02)`` for the rest.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from weightinit.common.dtypes import require_float
from weightinit.common.errors import value_error
from weightinit.common.shapes import RegionPlan
from weightinit.common.validate import real_number
from weightinit.initializers.base import RandomInitializer
from weightinit.initializers.fans import compute_fans
from weightinit.initializers.names import builtin
from weightinit.random.distributions import Normal, Uniform
from weightinit.random.sampling import sample

__all__ = ["ScaledResidual", "Fixup", "TFixup", "MuP"]


def _pos_int(name, v, minimum=1) -> int:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Integral) or v < minimum:
        raise value_error(name, v, f"must be an int >= {minimum}")
    return int(v)


def _pos_float(name, v, allow_zero=False) -> float:
    f = real_number(name, v)
    if not math.isfinite(f) or f < 0 or (f == 0 and not allow_zero):
        raise value_error(name, v, "must be a finite number " + (">= 0" if allow_zero else "> 0"))
    return f


def _role(v, roles) -> str:
    if v not in roles:
        raise value_error("role", v, f"must be one of {list(roles)}")
    return v


class _Scheme(RandomInitializer):
    group = "schemes"

    def _check_dtype(self, dtype):
        return require_float(dtype, type(self).__name__)

    def distribution_for(self, shape):
        """The distribution of each value for ``shape``, or None when the role's weights are all zero."""
        raise NotImplementedError  # pragma: no cover

    def _sample(self, shape, dtype, region, stream):
        dist = self.distribution_for(shape)
        if dist is None:
            return np.zeros(RegionPlan(shape, region).out_shape, dtype=dtype)
        return sample(dist, stream, shape, dtype, region)


@builtin("gpt2_residual", "megatron_scaled_init")
class ScaledResidual(_Scheme):
    """GPT-2 / Megatron scaled init of the residual-branch output projections.

    Formula: ``w ~ N(0, (std / sqrt(residuals_per_layer * n_layers))^2)``;
    with the defaults ``std=0.02``, ``residuals_per_layer=2`` (attention and
    MLP) this is Megatron's ``scaled_init_method_normal(sigma, num_layers)``
    and GPT-2's ``0.02 / sqrt(2 * n_layer)``.  Use it for the output
    projection of each attention and MLP block, and ``RandomNormal(0, std)``
    elsewhere.  References: Radford et al., *Language Models are Unsupervised
    Multitask Learners* (GPT-2), 2019; Shoeybi et al., *Megatron-LM*, 2019.

    Args:
      std: base standard deviation (default 0.02).
      n_layers: number of transformer layers (default 12).
      residuals_per_layer: residual additions per layer (default 2).
      seed: int, None, SeedGenerator or Stream.

    >>> import weightinit as wi
    >>> w = wi.ScaledResidual(std=0.02, n_layers=8, seed=0)((512, 512))
    >>> round(float(w.std()) * 4 / 0.02, 1)
    1.0
    """

    formula = "w ~ N(0, (std / sqrt(residuals_per_layer * n_layers))^2)"

    def __init__(self, std=0.02, n_layers=12, residuals_per_layer=2, seed=None) -> None:
        self._std = _pos_float("std", std, allow_zero=True)
        self.std = std
        self.n_layers = _pos_int("n_layers", n_layers)
        self.residuals_per_layer = _pos_int("residuals_per_layer", residuals_per_layer)
        super().__init__(seed)

    def distribution_for(self, shape):
        return Normal(0.0, self._std / math.sqrt(self.residuals_per_layer * self.n_layers))

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "std": self.std,
            "n_layers": self.n_layers,
            "residuals_per_layer": self.residuals_per_layer,
        }


@builtin()
class Fixup(_Scheme):
    """Fixup (Zhang, Dauphin & Ma, 2019): residual networks trained without normalization.

    Formula, for a network with ``L = n_branches`` residual branches of
    ``m = branch_depth`` weight layers each, by ``role``:

    * ``"inner"``: the first ``m - 1`` layers of each branch:
      ``w ~ N(0, 2 / fan) * L^(-2/(2m-2))``, i.e. He normal scaled by ``L^(-1/(2m-2))``;
    * ``"last"``: the last layer of each branch: ``w = 0``;
    * ``"classifier"``: the final classification layer: ``w = 0``;
    * ``"other"``: layers outside the branches (e.g. the stem): He normal, unscaled.

    ``fan`` is ``fan_in`` (default; the paper's "standard method (e.g. He et
    al.)") or ``fan_out`` (the authors' ResNet code).  Fixup's scalar
    multipliers (1) and biases (0) are plain constants.  Reference: Zhang,
    Dauphin & Ma, *Fixup Initialization: Residual Learning Without
    Normalization*, ICLR 2019.

    Args:
      n_branches: number of residual branches ``L``.
      branch_depth: weight layers per branch ``m`` (>= 2; default 2).
      role: ``"inner"``, ``"last"``, ``"classifier"`` or ``"other"``.
      mode: ``"fan_in"`` or ``"fan_out"``.
      seed: int, None, SeedGenerator or Stream.

    >>> import weightinit as wi
    >>> w = wi.Fixup(n_branches=16, role="inner", seed=0)((3, 3, 64, 64))
    >>> round(float(w.std()) / ((2 / 576) ** 0.5 / 4), 1)
    1.0
    >>> float(abs(wi.Fixup(16, role="last", seed=0)((3, 3, 64, 64))).max())
    0.0
    """

    formula = "inner: N(0, 2/fan) * L^(-1/(2m-2)); last, classifier: 0; other: N(0, 2/fan)"
    ROLES = ("inner", "last", "classifier", "other")

    def __init__(self, n_branches=1, branch_depth=2, role="inner", mode="fan_in", seed=None) -> None:
        self.n_branches = _pos_int("n_branches", n_branches)
        self.branch_depth = _pos_int("branch_depth", branch_depth, minimum=2)
        self.role = _role(role, self.ROLES)
        if mode not in ("fan_in", "fan_out"):
            raise value_error("mode", mode, "must be 'fan_in' or 'fan_out'")
        self.mode = mode
        super().__init__(seed)

    @property
    def multiplier(self) -> float:
        """``L^(-1/(2m-2))``, the scale of the inner branch layers."""
        return self.n_branches ** (-1.0 / (2 * self.branch_depth - 2))

    def distribution_for(self, shape):
        if self.role in ("last", "classifier"):
            return None
        fan_in, fan_out = compute_fans(shape)
        std = math.sqrt(2.0 / max(1, fan_in if self.mode == "fan_in" else fan_out))
        return Normal(0.0, std * (self.multiplier if self.role == "inner" else 1.0))

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "n_branches": self.n_branches,
            "branch_depth": self.branch_depth,
            "role": self.role,
            "mode": self.mode,
        }


@builtin("t_fixup")
class TFixup(_Scheme):
    """T-Fixup (Huang, Perez, Ba & Volkovs, 2020): Transformers trained without warmup or layer norm.

    Formula, for an encoder-decoder with ``N = n_layers`` layers, by ``role``:

    * ``"encoder"``: value/output projections and MLP weights of encoder
      layers: Xavier uniform times ``0.67 * N^(-1/4)``;
    * ``"decoder"``: value/output projections and MLP weights of decoder
      layers: Xavier uniform times ``(9N)^(-1/4)``;
    * ``"embedding"``: input embeddings ``(vocab, d)``: ``N(0, d^(-1/2))``
      (standard deviation ``d^(-1/2)``) times ``(9N)^(-1/4)``;
    * ``"other"`` (queries, keys, ...): Xavier uniform, unscaled.

    Reference: Huang, Perez, Ba & Volkovs, *Improving Transformer Optimization
    Through Better Initialization*, ICML 2020.

    Args:
      n_layers: number of layers ``N``.
      role: ``"encoder"``, ``"decoder"``, ``"embedding"`` or ``"other"``.
      seed: int, None, SeedGenerator or Stream.

    >>> import weightinit as wi
    >>> w = wi.TFixup(n_layers=6, role="decoder", seed=0)((256, 256))
    >>> round(float(abs(w).max()) / ((6 / 512) ** 0.5 * 54 ** -0.25), 2)
    1.0
    """

    formula = "encoder: xavier * 0.67 N^(-1/4); decoder: xavier * (9N)^(-1/4); embedding: N(0, d^-1/2) * (9N)^(-1/4)"
    ROLES = ("encoder", "decoder", "embedding", "other")

    def __init__(self, n_layers=6, role="other", seed=None) -> None:
        self.n_layers = _pos_int("n_layers", n_layers)
        self.role = _role(role, self.ROLES)
        super().__init__(seed)

    @property
    def multiplier(self) -> float:
        """The role's scale factor."""
        n = self.n_layers
        return {"encoder": 0.67 * n**-0.25, "decoder": (9 * n) ** -0.25, "embedding": (9 * n) ** -0.25}.get(
            self.role, 1.0
        )

    def distribution_for(self, shape):
        if self.role == "embedding":
            d = shape[-1] if shape else 1
            return Normal(0.0, max(1, d) ** -0.5 * self.multiplier)
        fan_in, fan_out = compute_fans(shape)
        limit = math.sqrt(6.0 / max(1, fan_in + fan_out)) * self.multiplier
        return Uniform(-limit, limit)

    def get_config(self) -> dict:
        return {**super().get_config(), "n_layers": self.n_layers, "role": self.role}


@builtin("mup")
class MuP(_Scheme):
    """muP, the maximal-update parametrization (Yang et al., 2022), as the ``mup`` package initializes.

    With ``width_mult = width / base_width`` and base standard deviation
    ``std`` (what the model uses at its base width), by ``role``:

    * ``"input"`` (input weights, embeddings, biases: at most one dimension
      grows with width): ``w ~ N(0, std^2)``, unchanged;
    * ``"hidden"`` (both dimensions grow with width): ``w ~ N(0, std^2 / width_mult)``
      (``mup``'s ``scale = width_mult^(-1/2)``);
    * ``"readout"`` (the output layer, ``mup.MuReadout``): ``N(0, std^2)``, or
      zeros with ``zero_readout=True`` (``readout_zero_init``).  The readout's
      forward must multiply by :attr:`output_multiplier` ``= output_mult / width_mult``
      (MuReadout divides by ``width_mult``); with ``fold_readout=True`` that
      factor is folded into the initial weights instead (same function at
      init, different training dynamics under Adam).

    Reference: Yang, Hu, Babuschkin, Sidor, Liu, Farhi, Ryder, Pachocki, Chen
    & Gao, *Tensor Programs V: Tuning Large Neural Networks via Zero-Shot
    Hyperparameter Transfer*, 2022; microsoft/mup 1.0.

    Args:
      role: ``"input"``, ``"hidden"`` or ``"readout"``.
      width, base_width: the model's width and the base (tuned) width.
      std: base standard deviation (default 0.02).
      zero_readout: zero the readout weights.
      output_mult: the readout's ``output_mult`` (default 1.0).
      fold_readout: fold ``output_multiplier`` into the readout weights.
      seed: int, None, SeedGenerator or Stream.

    >>> import weightinit as wi
    >>> m = wi.MuP("hidden", width=1024, base_width=256, std=0.02, seed=0)
    >>> round(float(m((1024, 1024)).std()) / 0.01, 2), wi.MuP("readout", 1024, 256).output_multiplier
    (1.0, 0.25)
    """

    formula = "hidden: N(0, std^2 / width_mult); input: N(0, std^2); readout: N(0, std^2) or 0, output x output_mult/width_mult"
    ROLES = ("input", "hidden", "readout")

    def __init__(
        self,
        role="hidden",
        width=1,
        base_width=1,
        std=0.02,
        zero_readout=False,
        output_mult=1.0,
        fold_readout=False,
        seed=None,
    ) -> None:
        self.role = _role(role, self.ROLES)
        self.width = _pos_int("width", width)
        self.base_width = _pos_int("base_width", base_width)
        self._std = _pos_float("std", std, allow_zero=True)
        self.std = std
        for name, v in (("zero_readout", zero_readout), ("fold_readout", fold_readout)):
            if not isinstance(v, bool):
                raise value_error(name, v, "must be True or False")
        _pos_float("output_mult", output_mult)
        self.zero_readout, self.output_mult, self.fold_readout = zero_readout, output_mult, fold_readout
        super().__init__(seed)

    @property
    def width_mult(self) -> float:
        """``width / base_width``."""
        return self.width / self.base_width

    @property
    def output_multiplier(self) -> float:
        """The readout's forward multiplier ``output_mult / width_mult`` (``mup.MuReadout``)."""
        return float(self.output_mult) / self.width_mult

    def distribution_for(self, shape):
        if self.role == "hidden":
            return Normal(0.0, self._std / math.sqrt(self.width_mult))
        if self.role == "readout":
            if self.zero_readout:
                return None
            return Normal(0.0, self._std * (self.output_multiplier if self.fold_readout else 1.0))
        return Normal(0.0, self._std)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "role": self.role,
            "width": self.width,
            "base_width": self.base_width,
            "std": self.std,
            "zero_readout": self.zero_readout,
            "output_mult": self.output_mult,
            "fold_readout": self.fold_readout,
        }
