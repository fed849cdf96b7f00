"""Gains: PyTorch's table, and variance-preserving gains computed for any activation.

The variance-preserving gain of an activation ``f`` is the ``g`` with
``g**2 * E[f(z)**2] = 1`` for ``z ~ N(0, 1)``: a layer ``f(W x)`` with
``Var(W) = g**2 / fan_in`` keeps the second moment of its input (He et al.,
2015 for ReLU, where ``g = sqrt(2)``).  :func:`gaussian_expectation` computes
such expectations by composite Gauss-Legendre quadrature under the normal
density, with panel edges on multiples of 1/16 so the kinks of relu,
leaky_relu, hardtanh and similar sit on panel edges and are integrated
exactly; plain Gauss-Hermite converges slowly at kinks.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from weightinit.common.errors import InitializerTypeError, InitializerValueError, value_error
from weightinit.common.types import Nonlinearity

__all__ = [
    "calculate_gain",
    "gain_for",
    "gaussian_expectation",
    "second_moment",
    "derivative_second_moment",
    "activation",
    "ACTIVATIONS",
]

_LIMIT = 16.0  # |z| beyond which the normal density is below 1e-55
_PANEL = 1.0 / 16.0
_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(8)


def _grid() -> tuple[np.ndarray, np.ndarray]:
    edges = np.arange(-_LIMIT, _LIMIT + _PANEL / 2, _PANEL)
    a, b = edges[:-1, None], edges[1:, None]
    z = (a + b) / 2 + (b - a) / 2 * _NODES[None, :]
    w = (b - a) / 2 * _WEIGHTS[None, :] * np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    return z.ravel(), w.ravel()


_Z, _W = _grid()


def gaussian_expectation(f: Callable[[np.ndarray], np.ndarray], q: float = 1.0) -> float:
    """``E[f(sqrt(q) z)]`` for ``z ~ N(0, 1)``, by quadrature (``f`` takes and returns NumPy arrays).

    >>> round(gaussian_expectation(lambda x: x**2, 4.0), 12)
    4.0
    """
    if not (q >= 0 and math.isfinite(q)):
        raise value_error("q", q, "must be a finite variance >= 0")
    vals = np.asarray(f(math.sqrt(q) * _Z), dtype=np.float64)
    if vals.shape != _Z.shape:
        vals = np.broadcast_to(vals, _Z.shape)
    if not np.isfinite(vals).all():
        raise InitializerValueError(
            "The activation returned non-finite values on Gaussian inputs; cannot integrate it."
        )
    return float(np.dot(vals, _W))


def second_moment(f: Callable[[np.ndarray], np.ndarray], q: float = 1.0) -> float:
    """``E[f(sqrt(q) z)**2]``, the moment map of the activation at input variance ``q``."""
    return gaussian_expectation(lambda x: np.square(np.asarray(f(x), dtype=np.float64)), q)


def derivative_second_moment(f: Callable[[np.ndarray], np.ndarray], q: float = 1.0, h: float = 1e-5) -> float:
    """``E[f'(sqrt(q) z)**2]``, by central differences of ``f`` on the quadrature nodes.

    With ``sigma_w**2`` this is the order parameter ``chi = sigma_w**2 E[f'(h)**2]``
    of Schoenholz et al. (2017), the factor by which a layer multiplies the
    squared norm of back-propagated gradients.  The nodes are interior to
    panels whose edges sit on multiples of 1/16, so kinks at such points are
    never differenced across (for ``h`` below the node spacing).

    >>> round(derivative_second_moment(lambda x: np.maximum(x, 0.0)), 10)
    0.5
    """

    def d2(x):
        step = h * np.maximum(1.0, np.abs(x))
        d = (np.asarray(f(x + step), dtype=np.float64) - np.asarray(f(x - step), dtype=np.float64)) / (2 * step)
        return d * d

    return gaussian_expectation(d2, q)


def _erf(x):
    try:
        from scipy.special import erf

        return erf(x)
    except ImportError:  # pragma: no cover - scipy is optional
        return np.vectorize(math.erf, otypes=[np.float64])(x)


def _softplus(x):
    return np.logaddexp(0.0, x)


ACTIVATIONS: dict[str, Callable[..., np.ndarray]] = {
    "linear": lambda x: x,
    "identity": lambda x: x,
    "relu": lambda x: np.maximum(x, 0.0),
    "leaky_relu": lambda x, slope=0.01: np.where(x >= 0, x, slope * x),
    "tanh": np.tanh,
    "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
    "gelu": lambda x: 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0))),
    "gelu_tanh": lambda x: 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3))),
    "silu": lambda x: x / (1.0 + np.exp(-x)),
    "swish": lambda x: x / (1.0 + np.exp(-x)),
    "mish": lambda x: x * np.tanh(_softplus(x)),
    "elu": lambda x, alpha=1.0: np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0.0))),
    "selu": lambda x: 1.0507009873554805 * np.where(x > 0, x, 1.6732632423543772 * np.expm1(np.minimum(x, 0.0))),
    "softplus": _softplus,
    "softsign": lambda x: x / (1.0 + np.abs(x)),
    "hardtanh": lambda x: np.clip(x, -1.0, 1.0),
    "relu6": lambda x: np.clip(x, 0.0, 6.0),
    "sin": np.sin,
}


def activation(name_or_fn: str | Callable[[np.ndarray], np.ndarray], param=None) -> Callable[[np.ndarray], np.ndarray]:
    """The NumPy function of an activation given by name (with an optional parameter) or as a callable."""
    if callable(name_or_fn):
        return name_or_fn
    if not isinstance(name_or_fn, str):
        raise InitializerTypeError(
            f"`activation` must be a name such as 'gelu' or an elementwise callable; received "
            f"activation={name_or_fn!r} of type {type(name_or_fn).__name__}."
        )
    key = name_or_fn.lower()
    if key not in ACTIVATIONS:
        raise InitializerValueError(
            f"Unknown activation {name_or_fn!r}; known: {sorted(ACTIVATIONS)}. Pass a callable for others."
        )
    fn = ACTIVATIONS[key]
    if param is not None:
        if key not in ("leaky_relu", "elu"):
            raise value_error("param", param, f"is only used by leaky_relu and elu, not {name_or_fn!r}")
        return lambda x: fn(x, float(param))
    return fn


def gain_for(activation_: str | Callable, param=None) -> float:
    """Variance-preserving gain ``g = 1 / sqrt(E[f(z)**2])``, ``z ~ N(0, 1)``, computed numerically.

    Works for any elementwise activation: a name from :data:`ACTIVATIONS` or a
    callable on NumPy arrays.  Matches the closed forms: ``sqrt(2)`` for relu,
    ``sqrt(2 / (1 + slope**2))`` for leaky_relu, 1 for linear and selu.

    >>> round(gain_for("relu"), 10)
    1.4142135624
    >>> round(gain_for("selu"), 4)
    1.0
    """
    m2 = second_moment(activation(activation_, param))
    if m2 <= 0:
        raise InitializerValueError("The activation is zero on Gaussian inputs; no gain can preserve the variance.")
    return 1.0 / math.sqrt(m2)


_LINEAR = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d")


def calculate_gain(nonlinearity: Nonlinearity, param: float | None = None) -> float:
    """PyTorch's gain table (``torch.nn.init.calculate_gain``).

    linear/conv*/sigmoid: 1; tanh: 5/3; relu: sqrt(2); leaky_relu:
    ``sqrt(2 / (1 + slope**2))`` (slope defaults to 0.01); selu: 3/4
    (PyTorch's empirical value; :func:`gain_for` gives the
    variance-preserving 1).  Names are case-sensitive, as in PyTorch.

    >>> calculate_gain("tanh")
    1.6666666666666667
    >>> round(calculate_gain("leaky_relu", 0.2), 6)
    1.38675
    """
    if nonlinearity in _LINEAR or nonlinearity == "sigmoid":
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif not isinstance(param, bool) and isinstance(param, (int, float)):
            slope = param
        else:
            raise InitializerValueError(f"negative_slope {param} not a valid number")
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise InitializerValueError(f"Unsupported nonlinearity {nonlinearity}")
