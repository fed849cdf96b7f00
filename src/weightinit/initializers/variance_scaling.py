"""VarianceScaling, the one engine behind Glorot, He and LeCun initialization."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import get_args

from weightinit.common.dtypes import require_float, standardize_dtype
from weightinit.common.errors import InitializerTypeError, InitializerValueError, peer_error
from weightinit.common.types import Distribution, FanMode
from weightinit.common.validate import real_number
from weightinit.initializers.base import RandomInitializer
from weightinit.initializers.complex import COMPLEX_TRUNCATED_STD_FACTOR, ComplexDisk, ComplexTruncatedNormal
from weightinit.initializers.fans import check_axes, check_jax_axis, compute_fans, jax_fans
from weightinit.initializers.names import builtin
from weightinit.random.distributions import Normal, TruncatedNormalDistribution, Uniform
from weightinit.random.sampling import sample
from weightinit.random.seeds import SeedLike

__all__ = [
    "VarianceScaling",
    "GlorotUniform",
    "GlorotNormal",
    "LecunUniform",
    "LecunNormal",
    "HeUniform",
    "HeNormal",
    "TRUNCATED_STD_FACTOR",
    "jax_fans",
    "MODES",
    "DISTRIBUTIONS",
]

TRUNCATED_STD_FACTOR = 0.87962566103423978
"""Standard deviation of N(0, 1) truncated to [-2, 2] (``scipy.stats.truncnorm.std(-2, 2)``)."""

MODES: tuple[str, ...] = get_args(FanMode)
DISTRIBUTIONS = tuple(d for d in get_args(Distribution) if d != "normal")  # "normal": an alias
_KERAS_SCALE = "Argument `scale` must be positive float"  # Keras' words (its own tests match on them)
_JAX_AXES = {"in_axis": -2, "out_axis": -1, "batch_axis": ()}


@builtin()
class VarianceScaling(RandomInitializer):
    """Values whose variance is ``scale / n``, with ``n`` a fan of the weight.

    Formula: with ``n = max(1, fan)`` where ``fan`` is ``fan_in``,
    ``fan_out``, ``(fan_in + fan_out) / 2`` (``fan_avg``) or
    ``sqrt(fan_in * fan_out)`` (``fan_geo_avg``, as JAX):

    * ``truncated_normal``: N(0, s**2) truncated to +-2s, with
      ``s = sqrt(scale / n) / 0.87962566103423978`` so the variance is exactly ``scale / n``;
    * ``untruncated_normal``: N(0, scale / n);
    * ``uniform``: U[-l, l) with ``l = sqrt(3 scale / n)``.

    ``distribution="normal"`` means ``truncated_normal`` (Keras).  ``mode`` and
    ``distribution`` accept any letter case.  Fans follow :func:`compute_fans`
    (channels-last kernels) unless both ``input_axes`` and ``output_axes`` are
    given, or JAX's ``in_axis``/``out_axis``/``batch_axis`` (:func:`jax_fans`).
    References: Glorot & Bengio (2010); He et al. (2015); LeCun et al. (1998).

    Complex dtypes (complex64, complex128) follow ``jax.nn.initializers``:
    ``uniform`` is the uniform disk with ``E|z|^2 = scale/n``;
    ``untruncated_normal`` is ``(re + 1j*im)/sqrt(2)`` times ``sqrt(scale/n)``;
    ``truncated_normal`` is the complex normal with modulus truncated at 2,
    times ``sqrt(scale/n) / 0.95311164380491208`` (JAX's constant, so
    ``E|z|^2 = 1.0186 * scale/n``, as in JAX).

    Args:
      scale: positive scaling factor (default 1.0).
      mode: ``fan_in`` (default), ``fan_out``, ``fan_avg`` or ``fan_geo_avg``.
      distribution: ``truncated_normal`` (default), ``untruncated_normal`` or ``uniform``.
      seed: int, None, SeedGenerator or Stream.
      input_axes, output_axes: explicit fan axes; give both or neither.
      in_axis, out_axis, batch_axis: JAX-style fan axes (keyword-only; an int
        or a list each; defaults -2, -1, () when any is given).  They appear
        in ``get_config()`` only when set, so the config stays Keras' otherwise.

    >>> import weightinit as wi
    >>> w = wi.VarianceScaling(2.0, "fan_in", "untruncated_normal", seed=0)((400, 300))
    >>> round(float(w.var() * 400), 1)
    2.0
    """

    group = "variance scaling"
    formula = "Var(w) = scale / max(1, fan); fan in {fan_in, fan_out, fan_avg, fan_geo_avg}"

    def __init__(
        self,
        scale: float = 1.0,
        mode: FanMode = "fan_in",
        distribution: Distribution = "truncated_normal",
        seed: SeedLike = None,
        input_axes: int | Sequence[int] | None = None,
        output_axes: int | Sequence[int] | None = None,
        *,
        in_axis: int | Sequence[int] | None = None,
        out_axis: int | Sequence[int] | None = None,
        batch_axis: int | Sequence[int] | None = None,
    ) -> None:
        try:
            ok = real_number("scale", scale) > 0
        except InitializerTypeError:
            raise peer_error(InitializerTypeError, _KERAS_SCALE, "scale", scale) from None
        except InitializerValueError:
            ok = False
        if not ok:
            raise peer_error(InitializerValueError, _KERAS_SCALE, "scale", scale)
        if not isinstance(mode, str) or mode.lower() not in MODES:
            raise peer_error(
                InitializerValueError,
                f"Invalid `mode` argument: use one of {list(MODES)} (any letter case)",
                "mode",
                mode,
            )
        if not isinstance(distribution, str):
            raise peer_error(
                InitializerTypeError,
                f"Invalid `distribution` argument: use one of {list(DISTRIBUTIONS)} or 'normal'",
                "distribution",
                distribution,
            )
        dist = distribution.lower()
        if dist == "normal":
            dist = "truncated_normal"
        if dist not in DISTRIBUTIONS:
            raise peer_error(
                InitializerValueError,
                f"Invalid `distribution` argument: use one of {list(DISTRIBUTIONS)} or 'normal' (any letter case)",
                "distribution",
                distribution,
            )
        self.scale = scale
        self.mode = mode.lower()
        self.distribution = dist
        self.input_axes, self.output_axes = check_axes(input_axes, output_axes)
        self.in_axis = check_jax_axis("in_axis", in_axis)
        self.out_axis = check_jax_axis("out_axis", out_axis)
        self.batch_axis = check_jax_axis("batch_axis", batch_axis)
        if self.input_axes is not None and self._jax_axes() is not None:
            raise InitializerValueError(
                f"Give either Keras' `input_axes`/`output_axes` or JAX's `in_axis`/`out_axis`/`batch_axis`, not "
                f"both; received input_axes={input_axes!r}, in_axis={in_axis!r}, out_axis={out_axis!r}, "
                f"batch_axis={batch_axis!r}."
            )
        super().__init__(seed)

    def _jax_axes(self):
        given = {k: getattr(self, k) for k in _JAX_AXES if getattr(self, k) is not None}
        return {**_JAX_AXES, **given} if given else None

    def _jax_config(self) -> dict:
        return {k: getattr(self, k) for k in _JAX_AXES if getattr(self, k) is not None}

    def _check_dtype(self, dtype):
        return require_float(dtype, type(self).__name__, allow_complex=True)

    def fans(self, shape) -> tuple[float, float]:
        """``(fan_in, fan_out)`` of a weight of ``shape`` under this instance's fan rule.

        JAX's rule (:func:`~weightinit.initializers.fans.jax_fans`) when a JAX
        axis is set, else Keras' (:func:`~weightinit.initializers.fans.compute_fans`,
        with ``input_axes``/``output_axes`` when given).
        """
        axes = self._jax_axes()
        if axes is not None:
            return jax_fans(shape, **axes)
        return compute_fans(shape, self.input_axes, self.output_axes)

    def variance(self, shape) -> float:
        """The target variance ``scale / max(1, fan)`` for a weight of ``shape``."""
        return self.variance_for_fans(*self.fans(shape))

    def variance_for_fans(self, fan_in: float, fan_out: float) -> float:
        """The target variance ``scale / max(1, n)``, ``n`` the fan ``mode`` picks from ``fan_in``, ``fan_out``."""
        if self.mode == "fan_in":
            n = fan_in
        elif self.mode == "fan_out":
            n = fan_out
        elif self.mode == "fan_avg":
            n = (fan_in + fan_out) / 2.0
        else:
            n = math.sqrt(fan_in * fan_out)
        return float(self.scale) / max(1.0, n)

    def distribution_for(self, shape, dtype=None):
        """The distribution drawn for a weight of ``shape`` (and ``dtype``: complex dtypes differ)."""
        return self.distribution_for_fans(*self.fans(shape), dtype=dtype)

    def distribution_for_fans(self, fan_in: float, fan_out: float, dtype=None):
        """The distribution drawn for a weight with these fans (the JAX adapter passes JAX's float fans)."""
        var = self.variance_for_fans(fan_in, fan_out)
        if dtype is not None and standardize_dtype(dtype).kind == "c":
            if self.distribution == "truncated_normal":
                return ComplexTruncatedNormal(math.sqrt(var) / COMPLEX_TRUNCATED_STD_FACTOR, 2.0)
            if self.distribution == "untruncated_normal":
                return Normal(0.0, math.sqrt(var / 2.0))
            return ComplexDisk(math.sqrt(var))
        if self.distribution == "truncated_normal":
            s = math.sqrt(var) / TRUNCATED_STD_FACTOR
            return TruncatedNormalDistribution(0.0, s, -2.0 * s, 2.0 * s)
        if self.distribution == "untruncated_normal":
            return Normal(0.0, math.sqrt(var))
        limit = math.sqrt(3.0 * var)
        return Uniform(-limit, limit)

    def _sample(self, shape, dtype, region, stream):
        return sample(self.distribution_for(shape, dtype), stream, shape, dtype, region)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "scale": self.scale,
            "mode": self.mode,
            "distribution": self.distribution,
            "input_axes": self.input_axes,
            "output_axes": self.output_axes,
            **self._jax_config(),
        }


class _Preset(VarianceScaling):
    _preset: tuple = ()

    def __init__(self, seed=None, input_axes=None, output_axes=None, *, in_axis=None, out_axis=None, batch_axis=None):
        scale, mode, distribution = self._preset
        super().__init__(
            scale,
            mode,
            distribution,
            seed=seed,
            input_axes=input_axes,
            output_axes=output_axes,
            in_axis=in_axis,
            out_axis=out_axis,
            batch_axis=batch_axis,
        )

    def get_config(self) -> dict:
        cfg = super().get_config()
        return {
            "seed": cfg["seed"],
            "input_axes": cfg["input_axes"],
            "output_axes": cfg["output_axes"],
            **self._jax_config(),
        }


def _preset(name: str, scale: float, mode: str, dist: str, formula: str, ref: str) -> type:
    example_shape = "((300, 200))"
    doc = f"""{name}: ``VarianceScaling(scale={scale}, mode="{mode}", distribution="{dist}")``.

    Formula: {formula}.  Normal variants are truncated at two standard
    deviations and rescaled by 1/0.87962566 (Keras/JAX convention).
    Reference: {ref}.

    Args:
      seed: int, None, SeedGenerator or Stream.
      input_axes, output_axes: explicit fan axes; give both or neither.

    >>> import weightinit as wi
    >>> wi.{name}(seed=0){example_shape}.shape
    (300, 200)
    """
    cls = type(
        name, (_Preset,), {"__doc__": doc, "_preset": (scale, mode, dist), "formula": formula, "__module__": __name__}
    )
    return builtin()(cls)


GlorotUniform = _preset(
    "GlorotUniform",
    1.0,
    "fan_avg",
    "uniform",
    "U[-l, l), l = sqrt(6 / (fan_in + fan_out))",
    "Glorot & Bengio, AISTATS 2010",
)
GlorotNormal = _preset(
    "GlorotNormal",
    1.0,
    "fan_avg",
    "truncated_normal",
    "std = sqrt(2 / (fan_in + fan_out)), truncated at 2 std",
    "Glorot & Bengio, AISTATS 2010",
)
LecunUniform = _preset(
    "LecunUniform", 1.0, "fan_in", "uniform", "U[-l, l), l = sqrt(3 / fan_in)", "LeCun et al., Efficient BackProp, 1998"
)
LecunNormal = _preset(
    "LecunNormal",
    1.0,
    "fan_in",
    "truncated_normal",
    "std = sqrt(1 / fan_in), truncated at 2 std",
    "LeCun et al., Efficient BackProp, 1998; Klambauer et al., SELU, 2017",
)
HeUniform = _preset(
    "HeUniform",
    2.0,
    "fan_in",
    "uniform",
    "U[-l, l), l = sqrt(6 / fan_in)",
    "He et al., Delving Deep into Rectifiers, ICCV 2015",
)
HeNormal = _preset(
    "HeNormal",
    2.0,
    "fan_in",
    "truncated_normal",
    "std = sqrt(2 / fan_in), truncated at 2 std",
    "He et al., Delving Deep into Rectifiers, ICCV 2015",
)
