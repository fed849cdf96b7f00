"""Truncated normal in both conventions (bounds in standard deviations, or absolute) and framework presets.

Frameworks disagree on what the bounds of a truncated normal mean:

* **std units** (TF, JAX, Haiku, Keras, timm ``trunc_normal_tf_``): a standard
  normal is truncated to ``[lower, upper]``, then scaled by ``stddev`` and
  shifted by ``mean``; the interval is ``[mean + lower*stddev, mean + upper*stddev]``.
* **absolute** (torch ``trunc_normal_``, timm ``trunc_normal_``): ``N(mean, std^2)``
  is truncated to ``[a, b]`` as given; with the default ``(-2, 2)`` and
  ``std=0.02`` this is practically untruncated.

None of them corrects the variance (the standard deviation of N(0, 1) truncated
to +-2 is 0.87962566).  :class:`TruncNormal` offers both conventions, with or
without that correction; the presets reproduce each framework's definition.
All draw by the exact inverse CDF (docs/random.md section 6): no rejection
loop, one value per stream position.
"""

from __future__ import annotations

import math
import warnings

from weightinit.common.checks import real_number
from weightinit.common.dtypes import require_float
from weightinit.common.errors import InitializerTypeError, value_error
from weightinit.initializers.base import RandomInitializer
from weightinit.initializers.names import builtin
from weightinit.random.distributions import Normal
from weightinit.random.distributions import TruncatedNormalDistribution as _TruncDist
from weightinit.random.sampling import sample

__all__ = [
    "TruncNormal",
    "TorchTruncNormal",
    "TimmTruncNormalTF",
    "JaxTruncatedNormal",
    "HaikuTruncatedNormal",
    "truncated_std",
    "BOUNDS",
]

BOUNDS = ("std", "absolute")
_SQRT2PI = math.sqrt(2.0 * math.pi)


def _phi(x: float) -> float:
    return 0.0 if math.isinf(x) else math.exp(-0.5 * x * x) / _SQRT2PI


def _Phi(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def truncated_std(alpha: float, beta: float) -> float:
    """Standard deviation of N(0, 1) truncated to ``[alpha, beta]`` (std units; may be infinite).

    >>> round(truncated_std(-2.0, 2.0), 8)
    0.87962566
    """
    if alpha + beta > 0:  # mirror for accuracy in the upper tail
        alpha, beta = -beta, -alpha
    z = _Phi(beta) - _Phi(alpha)
    pa, pb = _phi(alpha), _phi(beta)
    a_pa = 0.0 if math.isinf(alpha) else alpha * pa
    b_pb = 0.0 if math.isinf(beta) else beta * pb
    m = (pa - pb) / z
    return math.sqrt(max(0.0, 1.0 + (a_pa - b_pb) / z - m * m))


def _sigma_for_absolute(
    target: float, mean: float, lo: float, hi: float, names=("mean", "stddev", "lower", "upper")
) -> float:
    """The sigma whose N(mean, sigma^2) truncated to [lo, hi] has standard deviation ``target`` (bisection)."""
    n_s, n_lo, n_hi = names[1], names[2], names[3]
    if math.isinf(lo) or math.isinf(hi):
        limit = math.inf
    else:
        limit = (hi - lo) / math.sqrt(12.0)  # sigma -> inf: uniform on [lo, hi]

    def tstd(s):
        try:
            return s * truncated_std((lo - mean) / s, (hi - mean) / s)
        except (ZeroDivisionError, OverflowError, ValueError):
            raise value_error(
                n_hi, hi, f"and `{n_lo}`={lo!r} give a truncated normal whose variance cannot be corrected"
            ) from None

    if not target < limit * (1 - 1e-9):
        raise value_error(
            n_s,
            target,
            f"cannot be reached by a normal truncated to [{lo!r}, {hi!r}] around mean={mean!r} "
            f"(the largest standard deviation there is {limit:.6g})",
            "Widen the bounds or use correct_variance=False.",
        )
    a, b = target, target * 2.0
    while tstd(b) < target:
        a, b = b, b * 2.0
    for _ in range(200):
        mid = 0.5 * (a + b)
        if tstd(mid) < target:
            a = mid
        else:
            b = mid
    return 0.5 * (a + b)


@builtin("trunc_normal")
class TruncNormal(RandomInitializer):
    """Truncated normal with a choice of bound convention and optional variance correction.

    Formula: ``w ~ N(mean, s^2)`` conditioned on ``lo <= w <= hi`` where

    * ``bounds="std"`` (TF/JAX/Haiku/timm ``trunc_normal_tf_``):
      ``[lo, hi] = [mean + lower*s, mean + upper*s]``;
    * ``bounds="absolute"`` (torch/timm ``trunc_normal_``): ``[lo, hi] = [lower, upper]``;

    and ``s = stddev``, or with ``correct_variance=True`` the ``s`` for which the
    *truncated* standard deviation equals ``stddev`` (``stddev / truncated_std(lower, upper)``
    in std units, e.g. ``/0.87962566`` for +-2; found by bisection for absolute bounds).
    Sampled by the exact inverse CDF, no rejection.  Defaults: ``mean=0``,
    ``stddev=1``, ``lower=-2``, ``upper=2``, ``bounds="std"``, no correction.
    Bounds may be infinite.  Reference: Burkardt, *The truncated normal
    distribution* (2014); conventions in docs/compatibility.md.

    Args:
      mean, stddev: parameters of the untruncated normal (``stddev >= 0``).
      lower, upper: bounds (``lower < upper``), interpreted per ``bounds``.
      bounds: ``"std"`` or ``"absolute"``.
      correct_variance: rescale so the result's standard deviation is ``stddev``.
      seed: int, None, SeedGenerator or Stream.

    >>> import weightinit as wi
    >>> w = wi.TruncNormal(stddev=0.02, lower=-0.04, upper=0.04, bounds="absolute", seed=0)((20000,))
    >>> round(float(w.std()) / 0.02, 2), bool(abs(w).max() <= 0.04)
    (0.88, True)
    >>> w = wi.TruncNormal(stddev=0.02, correct_variance=True, seed=0)((20000,))
    >>> round(float(w.std()) / 0.02, 2)
    1.0
    """

    group = "truncated normal"
    _names: tuple[str, str, str, str] = ("mean", "stddev", "lower", "upper")
    """The user's spelling of (mean, std, lower bound, upper bound), for error messages."""
    formula = "w ~ N(mean, s^2) on [lo, hi]; std bounds: mean + [lower, upper]*s; absolute: [lower, upper]; s corrected optionally"

    def __init__(
        self, mean=0.0, stddev=1.0, lower=-2.0, upper=2.0, bounds="std", correct_variance=False, seed=None
    ) -> None:
        n_m, n_s, n_lo, n_hi = self._names
        m, s = real_number(n_m, mean), real_number(n_s, stddev)
        lo, hi = real_number(n_lo, lower, finite=False), real_number(n_hi, upper, finite=False)
        Normal.checked(m, s, (n_m, n_s))
        if not lo < hi:
            raise value_error(n_hi, upper, f"must be greater than `{n_lo}`={lower!r}")
        if not isinstance(bounds, str) or bounds not in BOUNDS:
            raise value_error("bounds", bounds, f"must be one of {list(BOUNDS)}")
        if not isinstance(correct_variance, bool):
            raise value_error("correct_variance", correct_variance, "must be True or False")
        self.mean, self.stddev, self.lower, self.upper = mean, stddev, lower, upper
        self.bounds, self.correct_variance = bounds, correct_variance
        self._dist = self._build(m, s, lo, hi)
        super().__init__(seed)

    def _build(self, m, s, lo, hi):
        n_m, n_s, n_lo, n_hi = self._names
        if s == 0:
            alo, ahi = (lo, hi) if self.bounds == "absolute" else (m, m)
            if not alo <= m <= ahi:
                raise value_error(n_m, m, f"must lie in [{n_lo}, {n_hi}] = [{lo!r}, {hi!r}] when {n_s}=0")
            return Normal(m, 0.0)
        if self.bounds == "std":
            sigma = s
            if self.correct_variance:
                try:
                    t = truncated_std(lo, hi)
                except (ZeroDivisionError, OverflowError):  # an interval of probability 0 in float64
                    t = 0.0
                if not (t > 0 and math.isfinite(s / t)):
                    raise value_error(
                        n_hi,
                        hi,
                        f"with `{n_lo}`={lo!r} leaves a truncated standard deviation of {t:.3g}, too small to "
                        "correct the variance by (correct_variance=True)",
                        "Widen the bounds or use correct_variance=False.",
                    )
                sigma = s / t
            return _TruncDist.checked(m, sigma, m + lo * sigma, m + hi * sigma, self._names)
        sigma = _sigma_for_absolute(s, m, lo, hi, self._names) if self.correct_variance else s
        return _TruncDist.checked(m, sigma, lo, hi, self._names)

    def _check_dtype(self, dtype):
        return require_float(dtype, type(self).__name__)

    def distribution_for(self, shape):
        """The distribution each value is drawn from (absolute bounds)."""
        return self._dist

    def _sample(self, shape, dtype, region, stream):
        return sample(self._dist, stream, shape, dtype, region)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "mean": self.mean,
            "stddev": self.stddev,
            "lower": self.lower,
            "upper": self.upper,
            "bounds": self.bounds,
            "correct_variance": self.correct_variance,
        }


class _FrameworkTrunc(TruncNormal):
    group = "truncated normal"
    _bounds = "std"
    _args: tuple = ()

    def get_config(self) -> dict:
        cfg = super().get_config()
        return {"seed": cfg["seed"], **{a: getattr(self, "_arg_" + a) for a in self._args}}


@builtin("torch_trunc_normal", "timm_trunc_normal")
class TorchTruncNormal(_FrameworkTrunc):
    """torch ``nn.init.trunc_normal_`` (and timm ``trunc_normal_``): absolute bounds ``a``/``b``, no correction.

    Formula: ``w ~ N(mean, std^2)`` conditioned on ``a <= w <= b``.  Defaults
    ``mean=0``, ``std=1``, ``a=-2``, ``b=2`` (torch's).  ``a`` and ``b`` are
    values, not multiples of ``std``: with ``std=0.02`` the default bounds do
    nothing.  Drawn by inverse CDF (torch >= 2.12 uses rejection sampling:
    the distribution is the same, the values are not).

    >>> import weightinit as wi
    >>> w = wi.TorchTruncNormal(std=1.0, a=0.0, b=1.0, seed=0)((1000,))
    >>> bool(w.min() >= 0.0 and w.max() <= 1.0)
    True
    """

    formula = "w ~ N(mean, std^2) on [a, b] (absolute bounds, no correction)"
    _args = ("mean", "std", "a", "b")
    _names = ("mean", "std", "a", "b")

    def __init__(self, mean=0.0, std=1.0, a=-2.0, b=2.0, seed=None) -> None:
        self._arg_mean, self._arg_std, self._arg_a, self._arg_b = mean, std, a, b
        super().__init__(mean, std, a, b, bounds="absolute", seed=seed)


_RENAMED_BOUNDS = {"a": ("lower", -2.0), "b": ("upper", 2.0)}


def _renamed_bounds(who: str, renamed: dict, lower, upper):
    """``lower``/``upper`` from weightinit 0.1's ``a``/``b`` keywords (std units), with a DeprecationWarning."""
    unknown = sorted(set(renamed) - set(_RENAMED_BOUNDS))
    if unknown:
        raise InitializerTypeError(f"{who}() got an unexpected keyword argument {unknown[0]!r}.")
    given = {"lower": lower, "upper": upper}
    for old, (new, default) in _RENAMED_BOUNDS.items():
        if old not in renamed:
            continue
        warnings.warn(
            f"{who}: the argument `{old}` was renamed `{new}` in weightinit 0.2 (a bound in standard deviations; "
            f"`a`/`b` are absolute bounds, as in TorchTruncNormal) and will be removed in 0.3; use `{new}=`.",
            DeprecationWarning,
            stacklevel=3,
        )
        if given[new] != default and given[new] != renamed[old]:
            raise InitializerTypeError(
                f"{who}() got both `{new}` and its old name `{old}`; received {new}={given[new]!r}, "
                f"{old}={renamed[old]!r}. Pass `{new}` only."
            )
        given[new] = renamed[old]
    return given["lower"], given["upper"]


@builtin("trunc_normal_tf", "timm_trunc_normal_tf")
class TimmTruncNormalTF(_FrameworkTrunc):
    """timm ``trunc_normal_tf_``: bounds in standard deviations, no correction.

    Formula: ``w = mean + std * z`` with ``z ~ N(0, 1)`` truncated to
    ``[lower, upper]`` (so ``w`` lies in ``[mean + lower*std, mean + upper*std]``).
    Defaults ``mean=0``, ``std=1``, ``lower=-2``, ``upper=2`` (timm's).

    The bounds are called ``lower``/``upper`` (as in JAX and Haiku, also std
    units) so they are not mistaken for :class:`TorchTruncNormal`'s absolute
    ``a``/``b``; timm's own names ``a``/``b`` (weightinit 0.1) still work, in
    the same positions, with a DeprecationWarning.

    >>> import weightinit as wi
    >>> w = wi.TimmTruncNormalTF(std=0.02, seed=0)((1000,))
    >>> bool(abs(w).max() <= 0.04)
    True
    """

    formula = "w = mean + std * z, z ~ N(0, 1) on [lower, upper] (std units, no correction)"
    _args = ("mean", "std", "lower", "upper")
    _names = ("mean", "std", "lower", "upper")

    def __init__(self, mean=0.0, std=1.0, lower=-2.0, upper=2.0, seed=None, **renamed) -> None:
        lower, upper = _renamed_bounds(type(self).__name__, renamed, lower, upper)
        self._arg_mean, self._arg_std, self._arg_lower, self._arg_upper = mean, std, lower, upper
        super().__init__(mean, std, lower, upper, bounds="std", seed=seed)


@builtin("jax_truncated_normal", "flax_truncated_normal")
class JaxTruncatedNormal(_FrameworkTrunc):
    """``jax.nn.initializers.truncated_normal`` (also Flax): std units, mean 0, no correction.

    Formula: ``w = stddev * z`` with ``z ~ N(0, 1)`` truncated to ``[lower, upper]``.
    Defaults ``stddev=1e-2``, ``lower=-2``, ``upper=2`` (JAX's).

    >>> import weightinit as wi
    >>> bool(abs(wi.JaxTruncatedNormal(seed=0)((1000,))).max() <= 0.02)
    True
    """

    formula = "w = stddev * z, z ~ N(0, 1) on [lower, upper] (std units, no correction)"
    _args = ("stddev", "lower", "upper")

    def __init__(self, stddev=1e-2, lower=-2.0, upper=2.0, seed=None) -> None:
        self._arg_stddev, self._arg_lower, self._arg_upper = stddev, lower, upper
        super().__init__(0.0, stddev, lower, upper, bounds="std", seed=seed)


@builtin("haiku_truncated_normal")
class HaikuTruncatedNormal(_FrameworkTrunc):
    """Haiku ``hk.initializers.TruncatedNormal``: std units around ``mean``, no correction.

    Formula: ``w = mean + stddev * z`` with ``z ~ N(0, 1)`` truncated to
    ``[lower, upper]``.  Defaults ``stddev=1``, ``mean=0``, ``lower=-2``,
    ``upper=2`` (Haiku's argument order).

    >>> import weightinit as wi
    >>> bool(abs(wi.HaikuTruncatedNormal(0.1, seed=0)((1000,))).max() <= 0.2)
    True
    """

    formula = "w = mean + stddev * z, z ~ N(0, 1) on [lower, upper] (std units, no correction)"
    _args = ("stddev", "mean", "lower", "upper")

    def __init__(self, stddev=1.0, mean=0.0, lower=-2.0, upper=2.0, seed=None) -> None:
        self._arg_stddev, self._arg_mean, self._arg_lower, self._arg_upper = stddev, mean, lower, upper
        super().__init__(mean, stddev, lower, upper, bounds="std", seed=seed)
