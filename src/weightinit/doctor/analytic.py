r"""Analytic mode: propagate the second moment through a model's graph from shapes and weights alone.

Mean-field theory (Poole et al. 2016; Schoenholz et al. 2017).  For a layer
``h = W x + b`` with i.i.d. zero-mean weights, ``Var(W) = sigma_w**2 / n``
(``n`` the fan-in) and bias second moment ``sigma_b**2``:

.. math::  q_h = \sigma_w^2\, q_x + \sigma_b^2, \qquad
           q_{\phi(h)} = E[\phi(\mu + \sqrt{v} z)^2],\ z \sim N(0, 1)

where ``q`` is the second moment ``E[y**2]`` per element and ``mu, v`` the
pre-activation's mean and variance.  The Gaussian expectation is computed
numerically (:func:`weightinit.initializers.gains.gaussian_expectation`), so any
elementwise activation (GELU, SiLU, Mish, a user's own ``x**3``) gets an exact
moment map.  Backwards, a layer multiplies the squared gradient norm by the
order parameter

.. math::  \chi = \sigma_w^2\, E[\phi'(h)^2]

(Schoenholz et al. 2017): ``chi < 1`` vanishing, ``chi > 1`` exploding
gradients, ``chi = 1`` at the fixed point the edge of chaos.  A degree-``k``
homogeneous activation (``phi(a x) = a**k phi(x)``) has
``q_{l+1} = c q_l**k``; for ``k != 1`` the fixed point ``q* = c**(1/(1-k))``
has slope ``k`` and is unstable, so no scalar initialization is depth-stable.
The degree is detected numerically from the scaling of the moment map in
``q``.

Other nodes: a residual ``a + b`` has ``q = q_a + q_b + 2 E[a b]``.  The cross moment is not
``mu_a mu_b`` when the two inputs share an ancestor ``s`` (``x + f(x)``): by Stein's lemma, for Gaussian ``s``
with variance ``v``, ``E[s_i f_i(s)] = mu_s E[f_i] + v E[d f_i / d s_i]``, so

.. math::  E[a b] = \mu_a \mu_b + v_s\, \overline{\operatorname{diag} E[J_a J_b^T]}

(exact when ``a = s``; the linear response otherwise).  In expectation over zero-mean weights the Jacobian
term vanishes for any branch that ends in a weight layer (``E[tr W_2 D W_1] = 0``) and the independence rule
is right; with the measured weights it is ``tr(W_2 D W_1) / n``, of order ``1/n`` for i.i.d. random weights
but of order 1 for a weightless branch (``x + gelu(x)``) or structured weights (identity, tied ``W_2 =
W_1^T``).  The doctor uses the measured weights: it estimates the Jacobian term by forward-mode
differentiation of the traced graph from ``s`` with Rademacher probes ``z``
(``E[(J_a z)_i (J_b z)_i] = (J_a J_b^T)_{ii}``; :func:`residual_cross`, :func:`add_moments`; the Keras and
Flax graphs the same way, with the same probes: :func:`rademacher`, :func:`probe_examples`,
:func:`weightinit.doctor.graph.measured_cross`).
A concatenation keeps the moments of each part (channel group, :func:`concat_moments`): elementwise maps
act per group (``E[phi^2]`` of a mixture is the mixture of the groups' maps, not the map of the averaged
moments), and a weight layer after it sees the size-weighted average (exact for ``W x``); BatchNorm in
training mode / LayerNorm / GroupNorm give ``E[gamma**2] + E[beta**2]``, BatchNorm in eval mode the affine map of
its running statistics (:func:`running_norm_affine`); average pooling over
``k`` positions divides the input-dependent variance ``d`` by ``k`` and keeps what every input shares
(:func:`avgpool_moments`; max pooling the max of the window's values, :func:`maxpool_moments`; a zero-padded
convolution counts the taps in bounds, :func:`padding_fraction`); inverted dropout in training
mode multiplies ``q`` by ``1/(1-p)``; an embedding outputs ``E[W**2]``, its input-dependent variance the rows' spread
per feature (:func:`embedding_moments`);
attention ``softmax(q k^T * s + mask) v`` is one rule on every path (the recorded torch graph, the Keras and Flax
graphs; nn.MultiheadAttention on the fx path goes to the recorded graph): q/k/v and output projections are weight
layers, and the mixing averages the values with ``E[sum_j P_ij**2]`` over the keys each query may attend to, from
the scores' spread (:func:`softmax_mixing`, :func:`mixing_moments`), acting on the tokens' Gram where it is
carried (:func:`attention_gram`).  Where no score information exists (the fx walk's fallback when the forward
cannot be recorded) it is :func:`softmax_mixing` of zero spread, uniform averaging over independent tokens.

Two inputs: the signal.  Next to ``(mu, q)`` every tensor carries ``d = q - q12``, its input-dependent variance,
where ``q12 = E[y(x1) y(x2)]`` is the cross moment of two independent inputs (mean-field over units: a unit's
bias is part of what two inputs share).  ``sqrt(d)`` predicts the measured ``signal``
(``sqrt(mean_units Var_batch(y))``), and ``d << q - mu**2`` is the "collapse" the doctor flags: every input maps
to nearly the same output.  A weight layer maps ``d -> sigma_w**2 d`` (the bias and the input mean shift both
inputs alike); an elementwise ``phi`` of the pre-activations ``u_k = mu + a z0 + b z_k`` (``b**2 = d`` their own
part, ``a**2 = v - d`` the shared part) gives ``E_z0[Var_z phi(mu + a z0 + b z)]`` (:func:`signal_map`, the
correlation map of Poole et al. 2016 written for the difference ``q - q12``, so a vanishing signal is never the
difference of two nearly equal quadratures); normalizations, adds, products and dropout have their own rules
(:func:`norm_signal`, :func:`add_signal`, :func:`mul_signal`, :func:`dropout_signal`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from weightinit.common.errors import InitializerValueError
from weightinit.initializers.fans import torch_layer_fans
from weightinit.initializers.gains import derivative_second_moment, gaussian_expectation

__all__ = [
    "moment_map", "chi", "fixed_point", "homogeneity_degree", "depth_stability", "rescale_factor",
    "variance_slope", "add_moments", "residual_cross", "concat_moments", "groups_moment_map",
    "bivariate_expectation", "correlation_map", "correlation_depth_scale", "norm_moments", "running_norm_affine",
    "avgpool_moments", "avgpool_window_moments", "embedding_moments",
    "conv_pads", "conv_windows", "padding_fraction", "padded_kernel_moments", "pool_window_sizes", "non_decreasing",
    "maxpool_moments", "adaptive_pool_sizes", "maxpool_rule",
    "linear_moments", "row_sum_moments", "signal_map", "groups_signal_map", "norm_signal", "add_signal", "mul_signal",
    "dropout_signal", "rademacher", "probe_examples", "input_signal",
    "softmax_mixing", "mixing_moments", "token_gram_map", "attention_gram",
]  # fmt: skip


def _shifted(phi, mu):
    return phi if mu == 0 else (lambda x: phi(mu + x))


def moment_map(phi, q: float, mu: float = 0.0) -> tuple[float, float]:
    """``(E[phi(h)], E[phi(h)**2])`` for ``h`` Gaussian with mean ``mu`` and second moment ``q``.

    >>> m, q2 = moment_map(lambda x: np.maximum(x, 0.0), 2.0)
    >>> round(q2, 10)
    1.0
    """
    v = max(q - mu * mu, 0.0)
    f = _shifted(phi, mu)
    m1 = gaussian_expectation(lambda x: np.asarray(f(x), dtype=np.float64), v)
    m2 = gaussian_expectation(lambda x: np.square(np.asarray(f(x), dtype=np.float64)), v)
    return m1, m2


def chi(phi, sigma_w2: float, q: float, mu: float = 0.0) -> float:
    """Schoenholz et al. (2017)'s ``chi_1 = sigma_w**2 E[phi'(h)**2]`` at pre-activation second moment ``q``.

    >>> round(chi(lambda x: np.maximum(x, 0.0), 2.0, 1.0), 8)   # He init for ReLU: critical
    1.0
    """
    v = max(q - mu * mu, 0.0)
    return sigma_w2 * derivative_second_moment(_shifted(phi, mu), v)


def rescale_factor(sigma_w2: float, q_in: float, qb: float, target: float) -> float:
    """The factor ``s`` on a weight that makes its layer's predicted output second moment ``target`` (analytic fix).

    The layer maps ``q_in -> s**2 sigma_w2 q_in + qb``; the weight part is floored at ``1e-3 * target`` (a
    bias that alone exceeds the target is left to dominate, rather than the weight being zeroed).

    >>> rescale_factor(0.5, 1.0, 0.0, 1.0) ** 2
    2.0000000000000004
    """
    return math.sqrt(max(target - qb, 1e-3 * target) / max(sigma_w2 * q_in, 1e-300))


def fixed_point(phi, sigma_w2: float, sigma_b2: float = 0.0, q0: float = 1.0, iters: int = 200) -> float:
    """The fixed point ``q*`` of ``q -> sigma_w**2 E[phi(sqrt(q) z)**2] + sigma_b**2`` by iteration (inf if it diverges).

    >>> round(fixed_point(np.tanh, 1.0, 0.05), 4) > 0
    True
    """
    q = q0
    for _ in range(iters):
        new = sigma_w2 * gaussian_expectation(lambda x: np.square(np.asarray(phi(x), dtype=np.float64)), q) + sigma_b2
        if not math.isfinite(new) or new > 1e12:
            return math.inf
        if abs(new - q) <= 1e-10 * max(q, 1e-30):
            return new
        q = new
    return q


def homogeneity_degree(phi, qs=(0.01, 0.1, 1.0, 10.0, 100.0), tol: float = 0.02):
    """The ``k`` with ``E[phi(sqrt(q) z)**2] ~ q**k`` over ``qs`` if the log-log slope is constant, else None.

    ``phi(a x) = a**d phi(x)`` gives ``k = d``: relu and linear 1, ``x**3`` 3.

    >>> homogeneity_degree(lambda x: x**3)
    3.0
    >>> homogeneity_degree(np.tanh) is None
    True
    """
    try:
        m = [gaussian_expectation(lambda x: np.square(np.asarray(phi(x), dtype=np.float64)), q) for q in qs]
    except Exception:
        return None
    if min(m) <= 0:
        return None
    slopes = np.diff(np.log(m)) / np.diff(np.log(qs))
    if np.ptp(slopes) > tol:
        return None
    return float(np.round(slopes.mean(), 3))


def variance_slope(phi, q: float, mu: float = 0.0, rel: float = 0.02) -> float:
    """``d log E[phi(h)**2] / d log q`` at ``h ~ N(mu, q - mu**2)``: by how much a relative error in a layer's
    input second moment is multiplied at its output when every scale is fixed.

    A fixed-scale chain is neutral where this is 1 (linear, relu: homogeneous of degree 1), unstable above
    (GELU at ``q = 1``: 1.14, so 30 layers amplify a finite-width deviation about ``1.14**30 ~ 50`` times),
    contracting below (tanh).

    >>> round(variance_slope(lambda x: np.maximum(x, 0.0), 1.0), 6)
    1.0
    """
    if q <= 0:
        return float("nan")
    up = moment_map(phi, q * (1 + rel), mu * math.sqrt(1 + rel))[1]
    dn = moment_map(phi, q / (1 + rel), mu / math.sqrt(1 + rel))[1]
    if up <= 0 or dn <= 0:
        return float("nan")
    return math.log(up / dn) / (2 * math.log(1 + rel))


def depth_stability(phi, name: str = "the activation"):
    """None if a scalar init can keep the second moment stable with depth, else a plain explanation."""
    k = homogeneity_degree(phi)
    if k is None or abs(k - 1.0) < 0.05:
        return None
    return (
        f"{name} is homogeneous of degree {k:g} in the variance (E[phi(sqrt(q) z)^2] = c q^{k:g}), so "
        f"q_(l+1) = sigma_w^2 c q_l^{k:g}: the fixed point q* = (sigma_w^2 c)^(1/(1-{k:g})) is unstable "
        f"(slope {k:g}), and any deviation grows or decays doubly exponentially with depth. "
        "No scalar initialization can be depth-stable."
    )


# ------------------------------------------------------------------------------------------
# Two inputs: the correlation map and its depth scale (Poole et al. 2016; Schoenholz et al. 2017)
# ------------------------------------------------------------------------------------------

_GH_Z, _GH_W = np.polynomial.hermite_e.hermegauss(64)
_GH_W = _GH_W / math.sqrt(2 * math.pi)


def bivariate_expectation(f, q: float, c: float) -> float:
    """``E[f(u1, u2)]`` for ``(u1, u2)`` centred Gaussian with variances ``q`` and correlation ``c``, by a 64 x 64
    Gauss-Hermite product rule (``u1 = sqrt(q) z1``, ``u2 = sqrt(q) (c z1 + sqrt(1 - c**2) z2)``): accurate for
    smooth ``f`` (tanh, erf, GELU); for kinks use :func:`weightinit.initializers.gains.gaussian_expectation`'s
    panels in one dimension.

    >>> round(bivariate_expectation(lambda a, b: a * b, 2.0, 0.3), 12)
    0.6
    """
    c = min(max(c, -1.0), 1.0)
    z1, z2 = np.meshgrid(_GH_Z, _GH_Z, indexing="ij")
    u1 = math.sqrt(q) * z1
    u2 = math.sqrt(q) * (c * z1 + math.sqrt(max(1 - c * c, 0.0)) * z2)
    vals = np.asarray(f(u1, u2), dtype=np.float64)
    return float(_GH_W @ vals @ _GH_W)


def correlation_map(phi, sigma_w2: float, sigma_b2: float, c: float, q: float | None = None) -> float:
    """One layer of the correlation map ``c_(l+1) = (sigma_w^2 E[phi(u1) phi(u2)] + sigma_b^2) / q*`` of two inputs
    whose pre-activations have second moment ``q*`` (the fixed point of :func:`fixed_point`, or ``q``) and
    correlation ``c`` (Poole et al. 2016).  ``c = 1`` is always a fixed point.

    >>> round(correlation_map(np.tanh, 1.5, 0.05, 1.0), 6)
    1.0
    """
    q = fixed_point(phi, sigma_w2, sigma_b2) if q is None else q
    return (sigma_w2 * bivariate_expectation(lambda a, b: phi(a) * phi(b), q, c) + sigma_b2) / q


def _dphi(phi, h: float = 1e-5):
    return lambda x: (np.asarray(phi(x + h), dtype=np.float64) - np.asarray(phi(x - h), dtype=np.float64)) / (2 * h)


def correlation_depth_scale(phi, sigma_w2: float, sigma_b2: float) -> dict:
    """Schoenholz et al. (2017)'s depth scale of the correlation between two inputs for a random net
    ``h_(l+1) = W phi(h_l) + b``, ``Var(W) = sigma_w^2 / n``, ``Var(b) = sigma_b^2``.

    Returns ``q_star`` (the fixed point of the length map), ``chi_1 = sigma_w^2 E[phi'(u)^2]`` at ``q*``, the
    stable fixed point ``c_star`` of :func:`correlation_map` (1 in the ordered phase ``chi_1 < 1``, below 1 in
    the chaotic phase), ``chi_c = sigma_w^2 E[phi'(u1) phi'(u2)]`` at ``(q*, c*)`` (the map's slope there) and
    ``xi_c = -1 / log(chi_c)``: ``|c_l - c*| ~ exp(-l / xi_c)``.  ``xi_c`` diverges at the order-to-chaos
    boundary ``chi_1 = 1``, where signals propagate deepest.

    >>> d = correlation_depth_scale(np.tanh, 1.2, 0.05)
    >>> d["chi_1"] < 1 and d["c_star"] == 1.0 and round(d["xi_c"], 2) > 0
    True
    """
    q = fixed_point(phi, sigma_w2, sigma_b2)
    dphi = _dphi(phi)
    chi_1 = sigma_w2 * bivariate_expectation(lambda a, b: dphi(a) * dphi(b), q, 1.0)
    if chi_1 <= 1:
        c_star = 1.0
    else:  # c_map(c) - c is >= 0 at c = 0 (E[phi(u1)] E[phi(u2)] >= 0 and sigma_b^2 >= 0) and < 0 just below 1
        lo, hi = 0.0, 1.0 - 1e-9  # (odd phi without biases: c* = 0, where the bisection converges)
        for _ in range(60):
            mid = (lo + hi) / 2
            if correlation_map(phi, sigma_w2, sigma_b2, mid, q) > mid:
                lo = mid
            else:
                hi = mid
        c_star = (lo + hi) / 2
    chi_c = sigma_w2 * bivariate_expectation(lambda a, b: dphi(a) * dphi(b), q, c_star)
    xi_c = -1 / math.log(chi_c) if 0 < chi_c < 1 else math.inf
    return {"q_star": q, "chi_1": chi_1, "c_star": c_star, "chi_c": chi_c, "xi_c": xi_c}


# ------------------------------------------------------------------------------------------
# Residual additions and concatenations (framework-neutral)
# ------------------------------------------------------------------------------------------


def residual_cross(skip: tuple[float, float], branch: tuple[float, float], jac_diag: float = 0.0) -> float:
    """The cross moment ``E[a b]`` per element of a skip ``a = s`` and a branch ``b = f(s)``, by Stein's lemma.

    ``skip`` and ``branch`` are ``(mu, q)``; ``jac_diag`` is the mean diagonal ``tr E[J_f] / n`` of the branch's
    Jacobian with respect to the skip (for two branches of a common ``s``, the mean diagonal of
    ``E[J_a J_b^T]``).  ``E[a b] = mu_a mu_b + v_s jac_diag`` with ``v_s = q_s - mu_s**2``: exact for Gaussian
    ``s``.  ``jac_diag = 0`` (the default) is the independence rule, right in expectation over zero-mean weights
    whenever the branch ends in a weight layer.

    >>> residual_cross((0.0, 1.0), (0.0, 1.0), 1.0)   # b = a: E[a^2]
    1.0
    >>> residual_cross((0.5, 1.0), (0.2, 0.5))        # independent: mu_a mu_b
    0.1
    """
    (ma, qa), (mb, _qb) = skip, branch
    return ma * mb + max(qa - ma * ma, 0.0) * jac_diag


#: at most this many probe rounds (forward passes) per addition for the Jacobian cross moment
PROBE_ROUNDS = 16


def rademacher(rng: np.random.Generator, shape) -> np.ndarray:
    """Rademacher probes ``z`` (each entry +-1 with probability 1/2, float32) for the Jacobian term of
    :func:`residual_cross`: ``E[(J_a z)_i (J_b z)_i] = (J_a J_b^T)_{ii}``.  Drawn from one numpy stream, so the
    doctor of every framework (PyTorch's fx graph, the Keras and Flax graphs) uses the same probes for the same
    seed and shapes, and the same architecture gets the same measured cross moment in each.

    >>> rademacher(np.random.default_rng(0), (2, 3)).tolist()
    [[-1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]
    """
    return (rng.integers(0, 2, size=shape, dtype=np.int8) * 2 - 1).astype(np.float32)


def probe_examples(n_examples: int, per_example: int, probes: int) -> int:
    """How many leading examples of a batch the Jacobian probes run on: enough for ``probes`` elements at the
    addition (``per_example`` per example), at least 2 (for batch statistics), at most the batch.

    >>> probe_examples(64, 128, 4096), probe_examples(64, 32, 4096), probe_examples(64, 10**6, 4096)
    (32, 64, 2)
    """
    return min(n_examples, max(2, -(-probes // max(per_example, 1))))


def input_signal(x: np.ndarray) -> float:
    """The input-dependent variance ``d`` of a batch ``x`` (examples on axis 0): the variance over the batch of each
    element (unbiased: the population's), averaged over the elements; for a single example, where nothing varies
    across inputs to measure, its variance over the elements (all of it taken as input-dependent).  The one rule of
    the torch path, the Keras/Flax graphs and the chains.

    >>> input_signal(np.array([[0.0, 1.0], [2.0, 5.0]])), input_signal(np.array([[1.0, 3.0]]))
    (5.0, 1.0)
    """
    x = np.asarray(x, np.float64)
    if x.ndim and len(x) > 1:
        return float(x.reshape(len(x), -1).var(0, ddof=1).mean())
    return float(x.var()) if x.size else 0.0


def add_moments(a: tuple[float, float], b: tuple[float, float], cross: float | None = None, sign: int = 1):
    """``(mu, q)`` of ``a + b`` (``sign=-1``: ``a - b``) per element, given ``E[a b] = cross``.

    ``cross=None`` is the independence rule ``E[a b] = mu_a mu_b`` (see :func:`residual_cross` for a skip and a
    branch of it).  ``q = q_a + q_b + 2 sign E[a b]``, floored at ``(mu_a + sign mu_b)**2``.

    >>> add_moments((0.0, 1.0), (0.0, 1.0))               # independent unit branches
    (0.0, 2.0)
    >>> add_moments((0.0, 1.0), (0.0, 1.0), cross=1.0)   # x + x
    (0.0, 4.0)
    """
    (ma, qa), (mb, qb) = a, b
    c = ma * mb if cross is None else cross
    mu = ma + sign * mb
    return mu, max(qa + qb + 2 * sign * c, mu * mu)


def concat_moments(parts):
    """The per-group moments of a concatenation: ``parts`` are ``(size, mu, q)`` (or ``(size, groups)`` with
    ``groups`` a list of ``(fraction, mu, q)``); returns ``(mu, q, groups)`` with the size-weighted means and the
    groups as ``(fraction, mu, q)`` (fractions summing to 1).

    >>> concat_moments([(2, 0.0, 1.0), (6, 1.0, 5.0)])
    (0.75, 4.0, [(0.25, 0.0, 1.0), (0.75, 1.0, 5.0)])
    """
    flat = []
    for p in parts:
        size = float(p[0])
        gs = p[1] if len(p) == 2 else [(1.0, p[1], p[2])]
        flat += [(size * f, m, q) for f, m, q in gs]
    tot = sum(f for f, _, _ in flat)
    if tot <= 0:
        raise ValueError("concat_moments: the parts have no elements")
    groups = [(f / tot, m, q) for f, m, q in flat]
    merged: list = []
    for f, m, q in groups:  # equal moments: one group
        for i, (f2, m2, q2) in enumerate(merged):
            if m2 == m and q2 == q:
                merged[i] = (f2 + f, m, q)
                break
        else:
            merged.append((f, m, q))
    return sum(f * m for f, m, _ in merged), sum(f * q for f, _, q in merged), merged


def groups_moment_map(phi, groups):
    """``(E[phi], E[phi**2], groups out)`` of an elementwise ``phi`` over a mixture of groups ``(fraction, mu, q)``.

    The mixture's moments are the groups' moments averaged: not :func:`moment_map` at the averaged moments
    (``E[tanh(h)^2]`` of half unit and half variance-9 inputs is not ``E[tanh(h)^2]`` at variance 5).

    >>> m1, m2, g = groups_moment_map(np.tanh, [(0.5, 0.0, 1.0), (0.5, 0.0, 9.0)])
    >>> round(m2, 3), round(moment_map(np.tanh, 5.0)[1], 3)
    (0.57, 0.668)
    """
    out = [(f, *moment_map(phi, q, m)) for f, m, q in groups]
    return sum(f * a for f, a, _ in out), sum(f * b for f, _, b in out), out


# ------------------------------------------------------------------------------------------
# node rules on numbers alone (framework-neutral; the Keras/Flax graph doctor calls them)
# ------------------------------------------------------------------------------------------


def linear_moments(mu: float, q: float, sigma_w2: float, qb: float = 0.0, mb: float = 0.0, rows=None):
    """``(mean, second moment, weight part)`` of a weight layer's output ``y_i = W_i . x + b_i`` for inputs of
    mean ``mu`` and second moment ``q``, with the measured weights: ``sigma_w2 = E[W**2] * fan_in`` and ``rows =
    (E[r_i], E[r_i**2], E[r_i b_i])`` of the row sums ``r_i = sum_j W_ij`` (None: zero-mean rows).

    The weight part is ``E[(W x)_i**2] = v sigma_w2 + mu**2 E[r_i**2]`` (``v = q - mu**2``); the output has mean
    ``mu E[r] + E[b]`` and second moment ``part + 2 mu E[r b] + E[b**2]``.  For i.i.d. zero-mean weights
    ``E[r_i**2] = |W_i|**2`` and this is ``sigma_w2 q + E[b**2]``; an identity or other non-zero-mean weight
    keeps a non-zero input mean.  (The torch path's weight rule, as numbers.)

    >>> linear_moments(0.0, 2.0, 1.5, qb=0.25)
    (0.0, 3.25, 3.0)
    >>> linear_moments(1.0, 2.0, 1.0, rows=(1.0, 1.0, 0.0))   # W = I: mean and second moment kept
    (1.0, 2.0, 2.0)
    """
    if rows is None:
        part = sigma_w2 * q
        return mb, max(part + qb, 0.0), part
    r1, r2, rb = rows
    part = max(q - mu * mu, 0.0) * sigma_w2 + mu * mu * r2
    return mu * r1 + mb, max(part + 2 * mu * rb + qb, 0.0), part


def norm_moments(q_gamma: float = 1.0, q_beta: float = 0.0, mu_beta: float = 0.0) -> tuple[float, float]:
    """A normalization (Batch/Layer/Group/RMS norm) outputs ``gamma * z + beta`` with ``z`` standardized:
    ``(E[beta], E[gamma**2] + E[beta**2])``.

    >>> norm_moments()
    (0.0, 1.0)
    """
    return mu_beta, q_gamma + q_beta


def running_norm_affine(running_mean, running_var, weight=None, bias=None, eps: float = 1e-5):
    """BatchNorm in eval mode is no normalization: it applies its running statistics, the per-channel affine map
    ``y_c = s_c x_c + t_c`` with ``s_c = gamma_c / sqrt(running_var_c + eps)`` and ``t_c = beta_c - running_mean_c
    s_c`` (Ioffe & Szegedy 2015, the inference transform).  Returns it as the weight rule's numbers ``(sigma_w2,
    qb, mb, rows)`` for :func:`linear_moments` (``sigma_w2 = E[s**2]``, ``qb = E[t**2]``, ``mb = E[t]``, ``rows =
    (E[s], E[s**2], E[s t])``): for inputs of mean ``mu`` and second moment ``q`` the output has mean ``mu E[s] +
    E[t]`` and second moment ``E[s**2] q + 2 mu E[s t] + E[t**2]``; the input-dependent variance ``d`` becomes
    ``E[s**2] d``.  Array-likes (NumPy; ``weight``/``bias`` None: 1 and 0).  At the initial statistics (mean 0,
    variance 1) it is the identity up to ``1/sqrt(1 + eps)``; training-mode BatchNorm standardizes instead
    (:func:`norm_moments`).

    >>> sw, qb, mb, rows = running_norm_affine([1.0, -1.0], [4.0, 4.0], eps=0.0)
    >>> sw, qb, mb, rows
    (0.25, 0.25, 0.0, (0.5, 0.25, 0.0))
    >>> linear_moments(0.0, 4.0, sw, qb, mb, rows)[:2]   # ((x - m) / 2)**2 for x of variance 4 and m = +-1
    (0.0, 1.25)
    """
    rv = np.asarray(running_var, np.float64)
    s = np.broadcast_to(1.0 if weight is None else np.asarray(weight, np.float64), rv.shape) / np.sqrt(rv + eps)
    t = (0.0 if bias is None else np.asarray(bias, np.float64)) - np.asarray(running_mean, np.float64) * s
    t = np.broadcast_to(t, s.shape)
    s2 = float((s * s).mean())
    return s2, float((t * t).mean()), float(t.mean()), (float(s.mean()), s2, float((s * t).mean()))


def embedding_moments(table) -> tuple[float, float, float]:
    """``(mean, second moment, input-dependent variance)`` of an embedding's output for ids drawn uniformly from its
    vocabulary: ``E[W]``, ``E[W**2]`` over the table ``(vocabulary, features)`` (any leading layout with the
    features last), and ``d = mean_j Var_i W_ij``, per feature the variance over the rows, averaged.  What two ids
    share is each feature's mean over the rows (a per-feature offset is the same for every input, not signal), so
    ``d`` is ``q - mu**2`` only when every feature has the same mean.  The one rule of the torch paths and the
    Keras/Flax graphs.

    >>> embedding_moments([[1.0, 0.0], [3.0, 0.0]])  # feature 0 varies by +-1 over the rows, feature 1 not at all
    (1.0, 2.5, 0.5)
    >>> embedding_moments([[5.0, -5.0], [5.0, -5.0]])[2]  # an offset shared by every row is no signal
    0.0
    """
    w = np.asarray(table, np.float64)
    if w.size == 0:
        return 0.0, 0.0, 0.0
    w = w.reshape(-1, w.shape[-1]) if w.ndim >= 2 else w.reshape(-1, 1)
    return float(w.mean()), float(np.mean(w * w)), float(w.var(0).mean())


def avgpool_moments(mu: float, q: float, k: float, d: float | None = None) -> tuple[float, float]:
    """Average pooling over a window of ``k`` positions keeps the mean and divides the input-dependent variance
    ``d`` by ``k`` (independent positions); the rest of the variance, what every input shares (a channel's
    bias: the same at every position of the window), is kept.  ``d=None``: all of the variance is averaged.

    >>> avgpool_moments(0.0, 4.0, 4), avgpool_moments(0.0, 4.0, 4, d=2.0)
    ((0.0, 1.0), (0.0, 2.5))
    """
    k = max(float(k), 1.0)
    v = max(q - mu * mu, 0.0)
    d = v if d is None else min(max(d, 0.0), v)
    return mu, mu * mu + (v - d) + d / k


def avgpool_window_moments(mu: float, q: float, sizes, divisors, weights, d: float | None = None
                           ) -> tuple[float, float, float]:  # fmt: skip
    """``(mean, second moment, input-dependent variance)`` of an average pooling whose windows hold ``sizes`` real
    values (not padding) and are divided by ``divisors`` (the window's own count, or its full size where the
    padding counts as zeros: PyTorch's ``count_include_pad``), ``weights`` the fraction of windows with each.  With
    the values ``u_j = mu + a z_0 + b z_j`` of :func:`maxpool_moments` (``b**2 = d`` independent across positions,
    ``a**2 = v - d`` shared), a window of ``m`` values over ``c`` has mean ``mu m / c``, second moment ``(m / c)**2
    (mu**2 + v - d) + m d / c**2`` and input-dependent variance ``m d / c**2``: the window's size ``k`` (not the
    ratio of the input's and output's sizes, which is smaller for overlapping windows) divides ``d``.
    :func:`avgpool_moments` is the case of one full window.

    >>> avgpool_window_moments(0.0, 4.0, [9], [9], [1.0])   # 3 x 3 windows, any stride: d / 9
    (0.0, 0.4444444444444444, 0.4444444444444444)
    >>> avgpool_window_moments(1.0, 2.0, [4, 9], [9, 9], [0.5, 0.5], d=0.0)[:2]   # ((4/9 + 1) / 2, (2 (4/9)**2 + 2) / 2)
    (0.7222222222222222, 1.1975308641975309)
    """
    m, c, w = (np.asarray(a, np.float64).ravel() for a in (sizes, divisors, weights))
    v = max(q - mu * mu, 0.0)
    d = v if d is None else min(max(d, 0.0), v)
    r = m / np.maximum(c, 1.0)
    dw = m * d / np.maximum(c, 1.0) ** 2
    return float(mu * (w @ r)), float(w @ (r * r * (mu * mu + v - d) + dw)), float(w @ dw)


def softmax_mixing(counts, score_var: float = 0.0, dropout: float = 0.0) -> float:
    r"""The mean over query rows of ``E[sum_j P_ij**2]`` for attention weights ``P_i = softmax(s_i)`` over the
    ``counts[i]`` keys row ``i`` may attend to, with scores i.i.d. ``N(m, score_var)`` across keys.

    ``1/n`` for ``score_var = 0`` (uniform weights); the score spread makes the weights uneven, so averaging
    shrinks the variance less than ``1/n``.  The expectation is a Monte Carlo mean over 8192 fixed draws
    (seed 0; relative error below 1%) for ``n <= 256``, and the ratio of expectations

    .. math::  E\Big[\sum_j P_{ij}^2\Big] \approx \frac{e^{v}}{e^{v} + n - 1}

    (``E[e^{2s}] = e^{2m + 2v}``, ``E[e^s]^2 = e^{2m + v}``; right as ``n`` grows) above.  Inverted dropout on
    the weights divides by ``1 - dropout``.  A causal mask over ``T`` tokens has ``counts = 1..T``.

    >>> softmax_mixing([4, 4])
    0.25
    >>> round(softmax_mixing(range(1, 9)), 4)   # causal, 8 tokens: H_8 / 8
    0.3397
    >>> round(softmax_mixing([8], 1.0), 2), round(math.e / (math.e + 7), 2)   # score std 1 over 8 keys
    (0.23, 0.28)
    """
    n = np.maximum(np.asarray(list(counts) if not isinstance(counts, np.ndarray) else counts, np.float64), 1.0)
    if n.size == 0:
        return 1.0
    v = min(max(float(score_var), 0.0), 50.0)
    vals, inv = np.unique(n, return_inverse=True)
    per = []
    for k in vals:
        if v == 0.0:
            per.append(1.0 / k)
        elif k <= 256:
            z = np.random.default_rng(0).standard_normal((8192, int(k))) * math.sqrt(v)
            p = np.exp(z - z.max(1, keepdims=True))
            p /= p.sum(1, keepdims=True)
            per.append(float((p * p).sum(1).mean()))
        else:
            per.append(math.exp(v) / (math.exp(v) + k - 1))
    return float(np.mean(np.asarray(per)[inv])) / max(1.0 - float(dropout), 1e-12)


def token_gram_map(phi, mu: float, gram: np.ndarray) -> np.ndarray:
    """``E[phi(h_t) phi(h_s)]`` for every pair of tokens ``t, s`` of a Gaussian pre-activation with mean ``mu`` and
    token second moments ``gram[t, s] = E[h_t h_s]`` (per element): the diagonal by :func:`moment_map`, the rest by
    the 64 x 64 Gauss-Hermite rule of :func:`bivariate_expectation` with the two tokens' own variances.

    >>> g = token_gram_map(lambda x: x, 0.0, np.array([[1.0, 0.3], [0.3, 2.0]]))
    >>> np.round(g, 12).tolist()
    [[1.0, 0.3], [0.3, 2.0]]
    """
    gram = np.asarray(gram, np.float64)
    v = np.maximum(np.diag(gram) - mu * mu, 1e-300)
    sd = np.sqrt(v)
    rho = np.clip((gram - mu * mu) / np.outer(sd, sd), -1.0, 1.0)
    z1, z2 = np.meshgrid(_GH_Z, _GH_Z, indexing="ij")
    u1 = sd[:, None, None, None] * z1
    u2 = sd[None, :, None, None] * (rho[:, :, None, None] * z1 + np.sqrt(1 - rho[:, :, None, None] ** 2) * z2)
    a = np.asarray(phi(mu + np.broadcast_to(u1, u2.shape)), np.float64)
    out = np.einsum("i,tsij,j->ts", _GH_W, a * np.asarray(phi(mu + u2), np.float64), _GH_W)
    for t in range(len(v)):
        out[t, t] = moment_map(phi, float(gram[t, t]), mu)[1]
    return out


def attention_gram(gram: np.ndarray, allowed: np.ndarray, score_var: float = 0.0, dropout: float = 0.0):
    """The token second moments ``E[y_i y_k]`` of attention's output ``y_i = sum_j P_ij v_j`` from the values'
    ``gram[j, l] = E[v_j v_l]``, for weights independent of the values: ``P`` uniform over the keys each query may
    attend to (``allowed``, ``(T_q, T_k)`` or a stack of such masks, averaged) gives ``P gram P^T``; the scores'
    spread adds ``(E[sum_j P_ij**2] - 1/n_i)`` (:func:`softmax_mixing`) times the allowed keys' mean variance less
    their mean cross moment on the diagonal.  Returns the ``(T_q, T_q)`` matrix; its mean diagonal is the output's
    second moment.

    >>> attention_gram(np.eye(2), np.tril(np.ones((2, 2), bool))).tolist()   # causal, independent tokens
    [[1.0, 0.5], [0.5, 0.5]]
    """
    gram = np.asarray(gram, np.float64)
    masks = np.asarray(allowed, bool).reshape(-1, *np.shape(allowed)[-2:])
    out = np.zeros((masks.shape[1], masks.shape[1]))
    for m in masks:
        n = np.maximum(m.sum(-1), 1)
        p = m / n[:, None]
        g = p @ gram @ p.T
        if score_var > 0 or dropout > 0:
            d = np.diag(gram)
            mean_diag = (m * d).sum(-1) / n
            off = np.where(n > 1, (np.einsum("ij,jl,il->i", m * 1.0, gram, m * 1.0) - (m * d).sum(-1))
                           / np.maximum(n * (n - 1), 1), 0.0)  # fmt: skip
            extra = np.array([softmax_mixing([k], score_var, dropout) for k in n]) - 1 / n
            g[np.diag_indices_from(g)] += extra * (mean_diag - off)
        out += g
    return out / len(masks)


def mixing_moments(mu: float, q: float, f: float, cross: float | None = None) -> tuple[float, float]:
    """``(mu, q)`` of ``y_i = sum_j P_ij v_j`` (attention's weighted average of values) for tokens ``v_j`` of mean
    ``mu``, second moment ``q`` and cross moment ``E[v_j v_l] = cross`` between two different tokens (None:
    independent tokens, ``mu**2``), weights independent of the values summing to 1 with ``E[sum_j P_ij**2] = f``
    (:func:`softmax_mixing`): ``E[y_i**2] = cross + f (q - cross)``.  With ``f`` the mean over two different
    queries of ``sum_j P_ij P_kj`` instead, the second value is the output's token cross moment.

    >>> mixing_moments(0.5, 1.25, 0.25)
    (0.5, 0.5)
    >>> mixing_moments(0.0, 1.0, 0.25, cross=0.2)   # correlated tokens average out less
    (0.0, 0.4)
    """
    c = mu * mu if cross is None else cross
    return mu, c + (q - c) * f


# ------------------------------------------------------------------------------------------
# the signal: input-dependent variance d = q - q12 (see the module docstring)
# ------------------------------------------------------------------------------------------


def _panels(limit: float, width: float, nodes: int = 4):
    """Nodes and weights of ``E[f(z)]``, ``z ~ N(0, 1)``: composite Gauss-Legendre on ``[-limit, limit]``."""
    edges = np.arange(-limit, limit + width / 2, width)
    lo, hi = edges[:-1, None], edges[1:, None]
    x, w = np.polynomial.legendre.leggauss(nodes)
    z = (lo + hi) / 2 + (hi - lo) / 2 * x[None, :]
    return z.ravel(), ((hi - lo) / 2 * w[None, :] * np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)).ravel()


# outer (shared part) and inner (own part) rules of signal_map: 256 x 128 nodes; against ReLU's arc-cosine kernel
# the relative error of d_out is below 1e-3 at every correlation from 0 to 1 - 1e-6 (panels, not Gauss-Hermite:
# a kink inside a panel costs little, where 24-node Gauss-Hermite is 1.6% off at correlation 0)
_OUT_Z, _OUT_W = _panels(8.0, 0.25)
_IN_Z, _IN_W = _panels(8.0, 0.5)
#: below this share ``d / v`` of the variance, :func:`signal_map` uses the linear response ``d E[phi'^2]``
LINEAR_RESPONSE = 1e-6


def signal_map(phi, q: float, mu: float = 0.0, d: float | None = None) -> float:
    """The input-dependent variance ``d_out = q_out - q12_out`` of ``phi(u)`` for pre-activations of mean ``mu``,
    second moment ``q`` and input-dependent variance ``d`` (default: all of the variance ``v = q - mu**2``).

    Two independent inputs have pre-activations ``u_k = mu + a z0 + b z_k`` (``z0, z1, z2`` i.i.d. N(0, 1),
    ``a**2 = v - d`` the part they share, ``b**2 = d`` their own), so ``E[phi(u_1)^2] - E[phi(u_1) phi(u_2)] =
    E_z0[Var_z phi(mu + a z0 + b z)]``, both expectations by composite Gauss-Legendre panels on ``|z| <= 8``
    (256 outer, 128 inner nodes; the inner variance about its own mean, so no two large quadratures are
    subtracted); below ``d = 1e-6 v``, the linear response ``d E[phi'(mu + a z0)^2]``.

    >>> round(signal_map(np.tanh, 1.0, 0.0, 0.0), 12), round(signal_map(lambda x: 2 * x, 1.0, 0.0, 0.3), 12)
    (0.0, 1.2)
    >>> relu = lambda x: np.maximum(x, 0.0)
    >>> round(signal_map(relu, 1.0), 4), round(moment_map(relu, 1.0)[1] - moment_map(relu, 1.0)[0] ** 2, 4)
    (0.3408, 0.3408)
    >>> signal_map(np.tanh, float("inf"), 0.0, 1.0)
    nan
    """
    v = max(q - mu * mu, 0.0)
    if (d is not None and not math.isfinite(d)) or not math.isfinite(v):
        return float("nan")  # (an upstream overflow: nothing to integrate; the collapse rule ignores NaN)
    d = v if d is None else min(max(d, 0.0), v)
    if d <= 0.0:
        return 0.0
    shared = v - d
    f = _shifted(phi, mu)
    if d <= LINEAR_RESPONSE * v:
        return d * derivative_second_moment(f, shared)
    u = math.sqrt(shared) * _OUT_Z[:, None] + math.sqrt(d) * _IN_Z[None, :]
    vals = np.asarray(f(u.ravel()), dtype=np.float64).reshape(u.shape)
    if not np.isfinite(vals).all():
        name = getattr(phi, "__name__", type(phi).__name__)
        raise InitializerValueError(
            f"The activation {name} returned non-finite values on Gaussian pre-activations of mean {mu:.4g}, "
            f"variance {v:.4g} (input-dependent part {d:.4g}); cannot integrate it (received phi={phi!r}). "
            "Give the doctor an activation defined on the whole real line."
        )
    return float((np.square(vals - (vals @ _IN_W)[:, None]) @ _IN_W) @ _OUT_W)


def groups_signal_map(phi, groups, mu: float, q: float, d: float) -> float:
    """:func:`signal_map` over a concatenation's groups ``(fraction, mu, q)``: each group keeps the whole tensor's
    input-dependent share ``d / (q - mu**2)`` of its own variance (an approximation: ``d`` is carried per tensor,
    not per group).

    >>> round(groups_signal_map(lambda x: x, [(0.5, 0.0, 1.0), (0.5, 0.0, 3.0)], 0.0, 2.0, 1.0), 12)
    1.0
    """
    v = q - mu * mu
    share = min(max(d / v, 0.0), 1.0) if v > 0 else 0.0
    return sum(f * signal_map(phi, qq, m, share * (qq - m * m)) for f, m, qq in groups)


def norm_signal(d: float, mu: float, q: float, q_gamma: float = 1.0, over: str = "features") -> float:
    """The input-dependent variance after a normalization ``gamma * (x - m) / s + beta``.

    ``over="batch"`` (BatchNorm in training mode: per unit over the batch, so what every input shares is
    removed): ``E[gamma**2]`` whenever the input has any signal; ``"features"`` (Layer/Group/InstanceNorm: per
    input over its units, which keeps a per-unit offset): the input's share ``d / v`` of its variance, times
    ``E[gamma**2]``; ``"rms"`` (RMSNorm): ``E[gamma**2] d / q``; ``"affine"`` (BatchNorm in eval mode at its
    initial running statistics): ``E[gamma**2] d``.

    >>> norm_signal(1e-6, 0.0, 1.0, over="batch"), norm_signal(0.5, 0.0, 2.0), norm_signal(0.5, 1.0, 2.0, over="rms")
    (1.0, 0.25, 0.25)
    """
    if d <= 0.0:
        return 0.0
    if over == "batch":
        return q_gamma
    if over == "affine":
        return q_gamma * d
    if over == "rms":
        return q_gamma * d / q if q > 0 else 0.0
    v = q - mu * mu
    return q_gamma * min(d / v, 1.0) if v > 0 else 0.0


def add_signal(d_a: float, d_b: float, cross: float = 0.0, sign: int = 1) -> float:
    """``d`` of ``a + b`` (``sign=-1``: ``a - b``) given the input-dependent cross covariance ``cross`` (0 for
    independent branches; ``d_s`` times the Jacobian term of :func:`residual_cross` for branches of a common ``s``).

    >>> add_signal(1.0, 1.0), add_signal(1.0, 1.0, 1.0), add_signal(1.0, 1.0, 1.0, -1)   # independent, x + x, x - x
    (2.0, 4.0, 0.0)
    """
    return max(d_a + d_b + 2 * sign * cross, 0.0)


def mul_signal(q_a: float, d_a: float, q_b: float, d_b: float) -> float:
    """``d`` of the product of independent ``a`` and ``b``: ``q_a q_b - q12_a q12_b`` (``q12 = q - d``).

    >>> mul_signal(2.0, 1.0, 3.0, 0.0)   # b shared by every input: the product's signal is a's, scaled by q_b
    3.0
    """
    return max(q_a * q_b - (q_a - d_a) * (q_b - d_b), 0.0)


def dropout_signal(q: float, d: float, p: float) -> float:
    """``d`` after inverted dropout (training mode): independent masks add ``q p / (1 - p)`` of input-dependent
    noise (``E[(m x / (1-p))^2] = q / (1-p)``, the cross moment ``q12`` unchanged).

    >>> dropout_signal(1.0, 0.0, 0.5)
    1.0
    """
    return d + q * p / (1 - p) if 0 < p < 1 else d


# ------------------------------------------------------------------------------------------
# convolutions with zero padding, max pooling (framework-neutral; every walk calls these)
# ------------------------------------------------------------------------------------------


#: a window's size, stride or dilation: one int for every spatial dimension, or one per dimension
PerDim = int | Sequence[int]
#: zero padding as :func:`conv_pads` reads it: an int, one per dimension, ``(low, high)`` pairs, or a mode name
Padding = int | str | Sequence[int] | Sequence[tuple[int, int]]


def _per_dim(v: PerDim, n: int, name: str) -> tuple[int, ...]:
    if isinstance(v, (int, np.integer)):
        return (int(v),) * n
    v = tuple(int(a) for a in v)
    if len(v) == 1:
        return v * n
    if len(v) != n:
        raise InitializerValueError(f"`{name}` must have one entry per spatial dimension ({n}); received {name}={v!r}")
    return v


def conv_pads(padding: Padding, in_size: Sequence[int], kernel: PerDim, stride: PerDim = 1,
              dilation: PerDim = 1) -> list[tuple[int, int]]:  # fmt: skip
    """The zero padding ``(low, high)`` of each spatial dimension of a convolution or pooling window.

    ``padding``: an int (the same on both sides of every dimension), one per dimension, ``(low, high)`` pairs, or
    ``"valid"`` (none), ``"same"`` (output size ``ceil(n / stride)``: the total ``max((out - 1) stride + (k - 1)
    dilation + 1 - n, 0)``, its lower half ``total // 2`` before: PyTorch's (stride 1), Keras/TensorFlow's and
    ``jax.lax``'s rule alike), ``"causal"`` (``(k - 1) dilation`` before), ``"circular"`` and ``"reflect"`` (Flax; none:
    the wrapped or mirrored values are real inputs).  Case-insensitive.

    >>> conv_pads("same", (5, 4), 3, stride=2), conv_pads(((1, 0), (2, 2)), (5, 4), 3), conv_pads(1, (4,), 3)
    ([(1, 1), (0, 1)], [(1, 0), (2, 2)], [(1, 1)])
    """
    n = len(in_size)
    k, s, dl = _per_dim(kernel, n, "kernel_size"), _per_dim(stride, n, "stride"), _per_dim(dilation, n, "dilation")
    if isinstance(padding, str):
        p = padding.lower()
        if p in ("valid", "circular", "reflect"):
            return [(0, 0)] * n
        if p == "causal":
            return [((kk - 1) * dd, 0) for kk, dd in zip(k, dl)]
        if p != "same":
            raise InitializerValueError(
                "`padding` must be 'same', 'valid', 'causal', 'circular', 'reflect', an int or (low, high) pairs; "
                f"received padding={padding!r}"
            )
        out = []
        for nn_, kk, ss, dd in zip(in_size, k, s, dl):
            total = max((-(-nn_ // ss) - 1) * ss + (kk - 1) * dd + 1 - nn_, 0)
            out.append((total // 2, total - total // 2))
        return out
    if isinstance(padding, (int, np.integer)):
        return [(int(padding), int(padding))] * n
    items = list(padding)
    if len(items) == 1 and n > 1:
        items = items * n
    if len(items) != n:
        raise InitializerValueError(
            f"`padding` must have one entry per spatial dimension ({n}); received padding={padding!r}"
        )
    return [(int(a), int(a)) if isinstance(a, (int, np.integer)) else (int(a[0]), int(a[1])) for a in items]


def conv_windows(in_size: Sequence[int], kernel: PerDim, stride: PerDim = 1, padding: Padding = 0, dilation: PerDim = 1,
                 ceil_mode: bool = False) -> list[tuple[np.ndarray, np.ndarray]]:  # fmt: skip
    """Which taps of a window read inside the input, per spatial dimension: ``[(masks, weights)]``, ``masks`` the
    distinct in-bounds patterns ``(P, k)`` (bool) over the dimension's output positions and ``weights`` the fraction
    of positions with each.  The patterns of a position are the product of its dimensions' (zero padding and
    pooling windows are separable), so every mean over output positions factorizes.  Output position ``o`` reads
    input ``o * stride - low + t * dilation`` at tap ``t``; ``ceil_mode`` (pooling) keeps a last partial window
    that starts inside the input or its low padding (PyTorch's rule).

    >>> [(m.astype(int).tolist(), w.tolist()) for m, w in conv_windows((4,), 3, padding=1)]
    [([[0, 1, 1], [1, 1, 0], [1, 1, 1]], [0.25, 0.25, 0.5])]
    """
    pads = conv_pads(padding, in_size, kernel, stride, dilation)
    n = len(in_size)
    k, s, dl = _per_dim(kernel, n, "kernel_size"), _per_dim(stride, n, "stride"), _per_dim(dilation, n, "dilation")
    out = []
    for size, kk, ss, dd, (lo, hi) in zip(in_size, k, s, dl, pads):
        idx = _window_taps(size, kk, ss, dd, lo, hi, ceil_mode, kernel, padding)
        masks, counts = np.unique((idx >= 0) & (idx < size), axis=0, return_counts=True)
        out.append((masks, counts / len(idx)))
    return out


def _window_taps(size: int, kk: int, ss: int, dd: int, lo: int, hi: int, ceil_mode: bool, kernel, padding):
    """The input index ``(m, kk)`` each tap of each output position of one dimension reads (negative or ``>= size``:
    padding): position ``o`` reads ``o * ss - lo + t * dd``; ``ceil_mode`` keeps a last partial window that starts
    inside the input or its low padding (PyTorch's rule).  The one owner of the output count."""
    span = size + lo + hi - (kk - 1) * dd - 1
    if span < 0 or ss < 1:
        raise InitializerValueError(
            f"a window of {kk} taps (dilation {dd}) does not fit an input of size {size} with padding "
            f"({lo}, {hi}); received kernel_size={kernel!r}, padding={padding!r}"
        )
    m = (span + (ss - 1 if ceil_mode else 0)) // ss + 1
    if ceil_mode and (m - 1) * ss >= size + lo:
        m -= 1
    return (np.arange(m) * ss - lo)[:, None] + np.arange(kk)[None, :] * dd


def avgpool_windows(in_size, kernel, stride=None, padding: Padding = 0, ceil_mode: bool = False,
                    count_include_pad: bool = True,
                    divisor_override=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """``(sizes, divisors, weights)`` of :func:`avgpool_window_moments` for an average pooling of any framework: per
    output position the number of real values in its window, what their sum is divided by, and ``1 / positions``.
    The divisor is the window's extent inside the padded input with ``count_include_pad`` (PyTorch's default;
    Flax's ``avg_pool``), else the real values only (Keras/TensorFlow "same"); ``divisor_override`` replaces it.
    ``stride`` None: the kernel; ``padding`` and ``ceil_mode`` as :func:`conv_windows` (the same output count).

    >>> [a.tolist() for a in avgpool_windows((4,), 3, 1, 1)]                           # stride 1: overlapping
    [[2, 3, 3, 2], [3, 3, 3, 3], [0.25, 0.25, 0.25, 0.25]]
    >>> [a.tolist() for a in avgpool_windows((4,), 3, 1, "same", count_include_pad=False)][:2]   # Keras "same"
    [[2, 3, 3, 2], [2, 3, 3, 2]]
    """
    n = len(in_size)
    stride = kernel if stride is None else stride
    pads = conv_pads(padding, in_size, kernel, stride)
    k, s = _per_dim(kernel, n, "kernel_size"), _per_dim(stride, n, "stride")
    real, div, wts = np.ones(1, np.int64), np.ones(1, np.int64), np.ones(1)
    for size, kk, ss, (lo, hi) in zip(in_size, k, s, pads):
        idx = _window_taps(int(size), kk, ss, 1, lo, hi, ceil_mode, kernel, padding)
        inb = ((idx >= 0) & (idx < size)).sum(1)
        padded = ((idx >= -lo) & (idx < size + hi)).sum(1)
        real = np.multiply.outer(real, inb).ravel()
        div = np.multiply.outer(div, padded if count_include_pad else inb).ravel()
        wts = np.multiply.outer(wts, np.full(len(idx), 1.0 / len(idx))).ravel()
    if divisor_override:
        div = np.full_like(div, int(divisor_override))
    return real, div, wts


def avgpool_rule(mu: float, q: float, d: float, window, groups=None):
    """One average-pooling node for the walks: ``(mean, second moment, d, groups)`` by :func:`avgpool_window_moments`
    over ``window = (sizes, divisors, weights)`` (:func:`avgpool_windows`), per group of a concatenation with the
    tensor's input-dependent share of its variance.

    >>> [round(v, 4) for v in avgpool_rule(0.0, 1.0, 1.0, avgpool_windows((8,), 3, 1, 1))[:3]]   # (2 * 2/9 + 6 * 3/9) / 8
    [0.0, 0.3056, 0.3056]
    """
    sizes, divisors, weights = window
    share = min(max(d / (q - mu * mu), 0.0), 1.0) if q > mu * mu else 0.0
    g_out = ([(f, *avgpool_window_moments(m, qq, sizes, divisors, weights, share * (qq - m * m))[:2])
              for f, m, qq in groups] if groups else None)  # fmt: skip
    mu_p, q_p, d_p = avgpool_window_moments(mu, q, sizes, divisors, weights, d)
    return mu_p, q_p, d_p, g_out


def padding_fraction(in_size: Sequence[int], kernel: PerDim, stride: PerDim = 1, padding: Padding = 0,
                     dilation: PerDim = 1) -> float:  # fmt: skip
    r"""The mean over a convolution's output positions of the share of its kernel's taps that read inside the
    input (the rest read zero padding): the factor on ``sigma_w**2`` of a zero-padded convolution.

    For zero-mean i.i.d. weights (``Var(W) = sigma_w**2 / (C K)``, ``K`` taps) and inputs of second moment ``q``
    at every position, ``E[y(p)**2] = sigma_w**2 / K \sum_{t \in B(p)} E[x(p + t)**2] = sigma_w**2 q |B(p)| / K``
    (``B(p)`` the in-bounds taps of position ``p``), so the output's second moment, averaged over positions, is
    ``sigma_w**2 q`` times

    .. math::  f = \frac{1}{|P|} \sum_{p} \frac{|B(p)|}{K} = \prod_{\text{dims}} \frac{1}{|P_i|}
               \sum_{p_i} \frac{|B_i(p_i)|}{k_i}

    (it factorizes: ``B(p)`` is the product of the dimensions' in-bounds taps).  ``padding`` as
    :func:`conv_pads`.  One scalar per layer, not a per-position profile: exact when the input has the same
    moments at every position (a network's first padded layer; the 1 x 1 and 2 x 2 maps of resnet18's layer4 at
    32 x 32, where every position sees the same taps).  After a padded layer the border positions carry smaller
    second moments, and a second padded conv on a map with borders (4 x 4, 8 x 8) reads them with its own short
    border windows: the scalar factor then predicts 5-10% low per layer, which compounds where no normalization
    rescales (a per-position profile would be needed there).  With BatchNorm in training mode, torchvision's
    resnet18 at 32 x 32 is within 13% at every layer, where counting every tap is off by up to 9.4x
    (tests/doctor/test_cnn_rules.py).  With the measured weights each tap is weighted by its share of the kernel's
    energy (:func:`padded_kernel_moments`: exact for a delta-orthogonal kernel, whose one tap is always in bounds
    under "same" padding).

    >>> padding_fraction((1, 1), 3, padding=1), padding_fraction((2, 2), 3, padding=1)   # resnet18's layer4
    (0.1111111111111111, 0.4444444444444444)
    >>> round(padding_fraction((4, 4), 3, padding=1), 6), padding_fraction((8,), 3, padding="valid")  # 25/36
    (0.694444, 1.0)
    """
    f = 1.0
    for masks, w in conv_windows(in_size, kernel, stride, padding, dilation):
        f *= float(w @ masks.mean(1))
    return f


def padded_kernel_moments(kernel, windows, bias=None) -> tuple[float, tuple[float, float, float]]:
    """``(factor, rows)`` of a zero-padded convolution with the measured ``kernel`` (``(*taps, fan_in, fan_out)``,
    Keras/Flax layout; a grouped conv's ``fan_in`` per group) over the in-bounds patterns ``windows`` of
    :func:`conv_windows`: ``factor`` multiplies ``sigma_w**2 = E[W**2] fan_in`` (each tap's share of the kernel's
    energy times the fraction of positions where it reads inside the input: :func:`padding_fraction` for i.i.d.
    weights), and ``rows = (E[r], E[r**2], E[r b])`` are the row-sum moments of :func:`linear_moments` over output
    units and positions, ``r_i(p)`` the sum of the weights of unit ``i`` at the taps in bounds at ``p`` (what an
    input mean reaches the output through).  Averaged over positions: the input's moments are taken as the same
    at every position.

    >>> k = np.zeros((3, 1, 1)); k[1] = 1.0        # a 1-D delta kernel: its centre tap is always in bounds
    >>> padded_kernel_moments(k, conv_windows((4,), 3, padding=1))
    (1.0, (1.0, 1.0, 0.0))
    >>> f, rows = padded_kernel_moments(np.ones((3, 1, 1)), conv_windows((4,), 3, padding=1))
    >>> round(f, 6), rows                        # 5/6 of the taps in bounds; row sums 2, 2, 3, 3
    (0.833333, (2.5, 6.5, 0.0))
    """
    k = np.asarray(kernel, np.float64)
    nd = len(windows)
    if k.ndim != nd + 2:
        raise InitializerValueError(
            f"the kernel must have {nd} tap dimensions, then fan_in and fan_out; received a kernel of shape {k.shape}"
        )
    energy = np.square(k).sum(axis=(-2, -1))  # per tap
    cover = np.ones(())
    for masks, w in windows:
        cover = np.multiply.outer(cover, w @ masks)
    tot = float(energy.sum())
    factor = float((energy * cover).sum() / tot) if tot > 0 else float(cover.mean())
    r = k.sum(-2)  # (*taps, fan_out): each tap's row sums
    w_all = np.ones(())
    for masks, w in windows:  # contract the first tap axis with the patterns: (*taps_rest, fan_out, P_1, ..., P_j)
        r = np.tensordot(r, masks.astype(np.float64), axes=([0], [1]))
        w_all = np.multiply.outer(w_all, w)
    r = np.moveaxis(r, 0, -1)  # (P_1, ..., P_nd, fan_out)
    wp = w_all[..., None] / r.shape[-1]
    r1, r2 = float((wp * r).sum()), float((wp * r * r).sum())
    b = None if bias is None else np.asarray(bias, np.float64)
    if b is not None and b.shape == (r.shape[-1],):
        rb = float((wp * r * b).sum())
    else:
        rb = r1 * (float(b.mean()) if b is not None and b.size else 0.0)
    return factor, (r1, r2, rb)


def pool_window_sizes(windows) -> tuple[np.ndarray, np.ndarray]:
    """``(sizes, weights)``: the distinct numbers of real values (not padding) in a pooling window over the output
    positions, and the fraction of positions with each, from :func:`conv_windows`.

    >>> pool_window_sizes(conv_windows((4, 4), 3, stride=2, padding=1))   # resnet's stem maxpool on a 4 x 4 map
    (array([4., 6., 9.]), array([0.25, 0.5 , 0.25]))
    """
    sizes, weights = np.ones(1), np.ones(1)
    for masks, w in windows:
        sizes = np.multiply.outer(sizes, masks.sum(1)).ravel()
        weights = np.multiply.outer(weights, w).ravel()
    out, inv = np.unique(sizes, return_inverse=True)
    return out.astype(np.float64), np.bincount(inv, weights=weights)


def non_decreasing(phi) -> bool:
    """Whether an elementwise ``phi`` is non-decreasing on ``[-12, 12]`` (ReLU, tanh, ELU, softplus: yes; GELU and
    SiLU dip below zero: no), so that ``max_i phi(x_i) = phi(max_i x_i)``.

    >>> non_decreasing(lambda x: np.maximum(x, 0.0)), non_decreasing(lambda x: x / (1 + np.exp(-x)))
    (True, False)
    """
    z = np.linspace(-12.0, 12.0, 4801)
    try:
        y = np.asarray(phi(z), np.float64)
    except Exception:
        return False
    if y.shape != z.shape or not np.isfinite(y).all():
        return False
    return bool(np.all(np.diff(y) >= -1e-9 * max(float(np.abs(y).max()), 1.0)))


#: nodes of the max-of-k density's rule (finer than signal_map's inner rule: the density narrows as k grows)
_MAX_Z, _MAX_W = _panels(9.0, 0.125)
_MAX_CDF = np.array([0.5 * math.erfc(-z / math.sqrt(2)) for z in _MAX_Z])


def _max_weights(k: float) -> np.ndarray:
    """Quadrature weights of ``E[f(Z_(k))]``, ``Z_(k)`` the largest of ``k`` i.i.d. N(0, 1): density ``k phi(z)
    Phi(z)**(k-1)`` on the panels of :data:`_MAX_Z` (renormalized)."""
    w = _MAX_W * k * np.power(_MAX_CDF, k - 1.0)
    return w / w.sum()


def maxpool_moments(mu: float, q: float, sizes, weights=None, d: float | None = None, phi=None):
    r"""``(mean, second moment, input-dependent variance)`` of the max over a pooling window (``sizes``: the
    number of values per window, one or several with ``weights``, the fraction of windows with each:
    :func:`pool_window_sizes`).

    The window's values are modelled as ``u_j = mu + a z_0 + b z_j``: ``b**2 = d`` the input-dependent part,
    i.i.d. across the window's positions (Gaussian: ``z_j`` i.i.d. N(0, 1)), ``a**2 = v - d`` the part every input
    shares (a channel's bias, its mean offset), the same at every position of the window.  Then ``max_j u_j =
    mu + a z_0 + b Z_(k)``, with ``Z_(k)`` the largest of ``k`` i.i.d. standard normals (density ``k phi(z)
    Phi(z)**(k-1)``, by composite Gauss-Legendre panels), and with ``phi`` given (the pooled tensor is ``phi(u)``
    of a tracked pre-activation ``u`` of these moments, ``phi`` non-decreasing: :func:`non_decreasing`)
    ``max_j phi(u_j) = phi(max_j u_j)``:

    .. math::  E[y^m] = E_{z_0, Z_{(k)}}[\phi(\mu + a z_0 + b Z_{(k)})^m], \qquad
               d_{out} = E_{z_0}[\operatorname{Var}_{Z_{(k)}} \phi(\mu + a z_0 + b Z_{(k)})]

    (``d`` None: all of the variance is input-dependent, ``k`` i.i.d. Gaussians).  The independence across
    positions is an assumption: spatially correlated inputs (smooth natural images, the overlapping receptive
    fields of the layers before) have a smaller maximum than ``k`` independent values; a GELU or SiLU output
    (not monotone) is modelled as Gaussian with its own moments.  One value per window (``k = 1``) is the identity.

    >>> mu, q, d = maxpool_moments(0.0, 1.0, 2)
    >>> round(mu, 6), round(1 / math.sqrt(math.pi), 6), round(q, 6)   # E[max(z1, z2)] = 1/sqrt(pi), E[max^2] = 1
    (0.56419, 0.56419, 1.0)
    >>> relu = lambda x: np.maximum(x, 0.0)
    >>> [round(v, 6) for v in maxpool_moments(0.0, 1.0, 1, phi=relu)]   # k = 1: relu's moments
    [0.398942, 0.5, 0.340845]
    """
    sizes = np.atleast_1d(np.asarray(sizes, np.float64))
    weights = np.ones(len(sizes)) / len(sizes) if weights is None else np.asarray(weights, np.float64)
    v = max(q - mu * mu, 0.0)
    d = v if d is None else min(max(d, 0.0), v)
    f = (lambda x: x) if phi is None else phi
    a, b = math.sqrt(v - d), math.sqrt(d)
    outer_z, outer_w = (_OUT_Z, _OUT_W) if a > 0 else (np.zeros(1), np.ones(1))
    m1 = m2 = dd = 0.0
    for k, wk in zip(sizes.tolist(), weights.tolist()):
        wi = _max_weights(max(k, 1.0))
        u = mu + a * outer_z[:, None] + b * _MAX_Z[None, :]
        vals = np.asarray(f(u.ravel()), np.float64).reshape(u.shape)
        inner = vals @ wi
        m1 += wk * float(inner @ outer_w)
        m2 += wk * float((np.square(vals) @ wi) @ outer_w)
        dd += wk * float((np.square(vals - inner[:, None]) @ wi) @ outer_w)
    return m1, m2, dd


def adaptive_pool_sizes(in_size, out_size) -> tuple[np.ndarray, np.ndarray]:
    """:func:`pool_window_sizes` of an adaptive pooling (PyTorch's ``AdaptiveMaxPool``/``AdaptiveAvgPool``): output
    position ``i`` of a dimension pools inputs ``floor(i n / m)`` to ``ceil((i + 1) n / m)``.

    >>> adaptive_pool_sizes((5,), (2,)), adaptive_pool_sizes((7, 7), (1, 1))
    ((array([3.]), array([1.])), (array([49.]), array([1.])))
    """
    sizes, weights = np.ones(1), np.ones(1)
    for n, m in zip(in_size, out_size):
        i = np.arange(int(m))
        s = -(-((i + 1) * int(n)) // int(m)) - (i * int(n)) // int(m)
        vals, counts = np.unique(s, return_counts=True)
        sizes = np.multiply.outer(sizes, vals).ravel()
        weights = np.multiply.outer(weights, counts / len(i)).ravel()
    out, inv = np.unique(sizes, return_inverse=True)
    return out.astype(np.float64), np.bincount(inv, weights=weights)


def maxpool_rule(mu: float, q: float, d: float, sizes, weights=None, groups=None, pre=None):
    """One max-pooling node for the walks (torch.fx, recorded graph, Keras/Flax graphs): ``(mean, second moment,
    d, groups)`` by :func:`maxpool_moments`, per group of a concatenation (each with the tensor's input-dependent
    share of its variance, as :func:`groups_signal_map`).  ``pre = (phi, mu, q, d, groups)``: the pooled tensor is
    ``phi`` of a tracked pre-activation with these moments, ``phi`` non-decreasing (:func:`non_decreasing`), so the
    max is taken before ``phi``; None: the tensor's own moments, as Gaussian.

    >>> [round(v, 4) for v in maxpool_rule(0.0, 1.0, 1.0, [9])[:3]]   # 3 x 3 windows of independent N(0, 1)
    [1.485, 2.5626, 0.3574]

    (the mean of the largest of 9 standard normals is 1.4850, as in the order-statistics tables of Harter 1961)
    """
    phi = None
    if pre is not None:
        phi, mu, q, d, groups = pre
    if not groups:
        return (*maxpool_moments(mu, q, sizes, weights, d, phi), None)
    v = q - mu * mu
    share = min(max(d / v, 0.0), 1.0) if v > 0 else 0.0
    out = [(f, *maxpool_moments(m, qq, sizes, weights, share * max(qq - m * m, 0.0), phi)) for f, m, qq in groups]
    return (sum(f * a for f, a, _, _ in out), sum(f * b for f, _, b, _ in out), sum(f * c for f, _, _, c in out),
            [(f, a, b) for f, a, b, _ in out])  # fmt: skip


# ------------------------------------------------------------------------------------------
# PyTorch graphs
# ------------------------------------------------------------------------------------------


def _np_fn_of(fn, dtype=None):
    """A NumPy function from a torch elementwise callable."""
    import torch

    def phi(x):
        t = torch.from_numpy(np.asarray(x, dtype=np.float64))
        if dtype is not None:
            t = t.to(dtype)
        with torch.no_grad():
            return fn(t).double().numpy()

    return phi


def _elementwise(fn, dtype=None) -> bool:
    """True if ``fn`` (tensor -> tensor) acts elementwise: it commutes with permutations and slicing."""
    import torch

    try:
        g = torch.Generator().manual_seed(1)
        x = torch.randn(97, generator=g, dtype=torch.float64)
        if dtype is not None:
            x = x.to(dtype)
        with torch.no_grad():
            y = fn(x)
            if not isinstance(y, torch.Tensor) or y.shape != x.shape:
                return False
            perm = torch.randperm(97, generator=g)
            y2 = fn(x[perm])
            y3 = fn(x[:13])
        return bool(torch.allclose(y2, y[perm], equal_nan=True) and torch.allclose(y3, y[:13], equal_nan=True))
    except Exception:
        return False


def module_activation(mod):
    """``(name, numpy phi)`` for an activation module, or None (table lookup, else numeric elementwise test)."""
    from weightinit.doctor.backends.torchutil import ACT_MODULES
    from weightinit.initializers.gains import activation

    cls = type(mod).__name__
    if cls in ACT_MODULES:
        key, attr = ACT_MODULES[cls]
        return key, activation(key, getattr(mod, attr) if attr else None)
    if cls == "GELU":
        return ("gelu_tanh" if getattr(mod, "approximate", "none") == "tanh" else "gelu"), activation(
            "gelu_tanh" if getattr(mod, "approximate", "none") == "tanh" else "gelu"
        )
    params = list(mod.parameters())
    dtype = params[0].dtype if params else None
    if sum(p.numel() for p in params) <= 1 and _elementwise(mod, dtype):
        return cls, _np_fn_of(mod, dtype)
    return None


class _Tracer:
    """torch.fx tracer that records which module it was in when tracing failed."""

    def __new__(cls):
        import torch.fx

        from torch import nn

        class T(torch.fx.Tracer):
            failed: str | None = None

            def is_leaf_module(self, m, qualname):
                return super().is_leaf_module(m, qualname) or isinstance(m, nn.MultiheadAttention)

            def call_module(self, m, forward, args, kwargs):
                try:
                    return super().call_module(m, forward, args, kwargs)
                except Exception:
                    if self.failed is None:
                        self.failed = self.path_of_module(m) or type(m).__name__
                    raise

        return T()


def _none_defaults(model, example):
    """``{name: None}`` for the forward's parameters after the example's inputs whose default is None (an optional
    mask, cache, ...): traced as a placeholder, ``if mask is not None`` would take the branch the call does not."""
    import inspect

    try:
        params = list(inspect.signature(model.forward).parameters.values())
    except (TypeError, ValueError):
        return None
    given = len(example) if isinstance(example, tuple) else 1
    rest = [p for p in params[given:] if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    out = {p.name: None for p in rest if p.default is None}
    return out or None


def trace_torch(model, example):
    """``(GraphModule, None)`` with shapes in ``node.meta['tensor_meta']``, or ``(None, (layer, message))``."""
    import torch.fx
    from torch.fx.passes.shape_prop import ShapeProp

    tracer = _Tracer()
    try:
        graph = tracer.trace(model, concrete_args=_none_defaults(model, example))
        gm = torch.fx.GraphModule(model, graph)
    except Exception as e:
        where = tracer.failed or type(model).__name__
        return None, (where, f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
    try:
        with torch.no_grad():
            ShapeProp(gm).propagate(*(example if isinstance(example, tuple) else (example,)))
    except Exception as e:
        return None, (type(model).__name__, f"shape propagation failed: {type(e).__name__}: {e}")
    return gm, None


def _numel(shape) -> int:
    return int(np.prod(shape)) if shape is not None else 0


_BN_ARGS = ("running_mean", "running_var", "weight", "bias")


def _np64(t):
    return None if t is None else t.detach().double().cpu().numpy()


def _module_padding(mod, in_shape):
    """:func:`conv_windows` of an ``nn.Conv*d`` with zero padding on an input of ``in_shape`` (batch, channels,
    spatial), else None (no padding, another padding mode, a transposed conv, unknown shape)."""
    from torch import nn

    if not isinstance(mod, nn.modules.conv._ConvNd) or isinstance(mod, nn.modules.conv._ConvTransposeNd):
        return None
    if in_shape is None or len(in_shape) < 2 + len(mod.kernel_size) or mod.padding_mode != "zeros":
        return None
    if mod.padding == "valid" or (not isinstance(mod.padding, str) and not any(mod.padding)):
        return None
    return conv_windows(tuple(in_shape[-len(mod.kernel_size):]), mod.kernel_size, mod.stride, mod.padding,
                        mod.dilation)  # fmt: skip


#: the spatial dimensions of torch's pooling modules, by class name
_POOL_DIMS = {f"{kind}Pool{n}d": n for n in (1, 2, 3)
              for kind in ("Max", "AdaptiveMax", "Avg", "AdaptiveAvg", "LP")}  # fmt: skip


def _pool_dims(mod) -> int | None:
    """The spatial dimensions of a torch pooling module (its class or the torch class it derives from), or None."""
    return next((_POOL_DIMS[c.__name__] for c in type(mod).__mro__ if c.__name__ in _POOL_DIMS), None)


def _module_pool_sizes(mod, in_shape, out_shape):
    """:func:`pool_window_sizes` of an ``nn.MaxPool*d`` / ``nn.AdaptiveMaxPool*d`` (its values per window, padding
    excluded), or None without shapes."""
    from torch import nn

    if in_shape is None or out_shape is None:
        return None
    nd = _pool_dims(mod)  # from the class: an unbatched (C, H, W) input to a MaxPool2d has 2 too
    if nd is None or len(in_shape) < nd or len(out_shape) < nd:
        return None
    if isinstance(mod, nn.modules.pooling._AdaptiveMaxPoolNd):
        return adaptive_pool_sizes(in_shape[-nd:], out_shape[-nd:])
    k = mod.kernel_size
    return pool_window_sizes(conv_windows(tuple(in_shape[-nd:]), k, mod.stride or k, mod.padding, mod.dilation,
                                          mod.ceil_mode))  # fmt: skip


def row_sum_moments(rows, bias=None) -> tuple[float, float, float]:
    """``(E[r_i], E[r_i**2], E[r_i b_i])`` over the output units ``i`` of a weight layer's row sums ``r_i = sum_j
    W_ij`` (the sum of the weights unit ``i`` gives to its inputs; a convolution's sum over channels and taps) and
    its bias ``b``: what an input mean ``mu`` contributes through the layer, ``E[(mu r_i + b_i)**2] = mu**2 E[r**2]
    + 2 mu E[r b] + E[b**2]`` (:func:`linear_moments`'s ``rows``).  A bias of another shape (or a scalar) enters
    through its mean; no bias: ``E[r b] = 0``.

    >>> row_sum_moments(np.array([1.0, -1.0, 2.0]), np.array([0.5, 0.5, -1.0]))
    (0.6666666666666666, 2.0, -0.6666666666666666)
    """
    r = np.asarray(rows, np.float64).reshape(-1)
    r1 = float(r.mean())
    if bias is None:
        return r1, float(np.mean(r * r)), 0.0
    b = np.asarray(bias, np.float64)
    rb = float(np.mean(r * b)) if b.shape == r.shape else r1 * float(b.mean())
    return r1, float(np.mean(r * r)), rb


def _row_moments(wd, b=None) -> tuple:
    """:func:`row_sum_moments` of a torch weight ``(out, ...)`` (float64) and its bias."""
    rows = wd.reshape(wd.shape[0], -1).sum(1).numpy()
    return row_sum_moments(rows, None if b is None else b.detach().double().numpy())


def _weight_numbers(w, b=None) -> tuple:
    """``(sigma_w2, E[b**2], E[b], row-sum moments)`` of a torch ``(out, in)`` weight and its bias, for
    :func:`linear_moments`."""
    wd = w.detach().double()
    bd = None if b is None else b.detach().double()
    qb, mb = (float((bd * bd).mean()), float(bd.mean())) if bd is not None else (0.0, 0.0)
    return float((wd * wd).mean()) * wd.shape[1], qb, mb, _row_moments(wd, b)


def _module_avgpool_windows(mod, in_shape, out_shape):
    """``(sizes, divisors, weights)`` of :func:`avgpool_window_moments` for an ``nn.AvgPool*d`` /
    ``nn.AdaptiveAvgPool*d`` (:func:`torch_avgpool_windows`); None without shapes."""
    from torch import nn

    nd = _pool_dims(mod)
    if nd is None:
        return None
    if isinstance(mod, nn.modules.pooling._AdaptiveAvgPoolNd):
        return torch_avgpool_windows(True, nd, in_shape, out_shape)
    return torch_avgpool_windows(False, nd, in_shape, out_shape, mod.kernel_size, mod.stride, mod.padding,
                                 mod.ceil_mode, mod.count_include_pad, getattr(mod, "divisor_override", None))  # fmt: skip


def torch_avgpool_windows(adaptive: bool, nd: int, in_shape, out_shape, kernel_size=None, stride=None, padding=0,
                          ceil_mode=False, count_include_pad=True, divisor_override=None):  # fmt: skip
    """PyTorch's average pooling (module, ``F.avg_pool*d`` or a recorded call) over the last ``nd`` axes: an
    adaptive one's windows (:func:`adaptive_pool_sizes`, each divided by its own size), else
    :func:`avgpool_windows` with PyTorch's arguments; None without shapes or where the window does not fit."""
    if in_shape is None or out_shape is None or len(in_shape) < nd or len(out_shape) < nd:
        return None
    if adaptive:
        sizes, weights = adaptive_pool_sizes(in_shape[-nd:], out_shape[-nd:])
        return sizes, sizes, weights
    try:
        return avgpool_windows(tuple(in_shape[-nd:]), kernel_size, stride or kernel_size, padding, bool(ceil_mode),
                               bool(count_include_pad), divisor_override)  # fmt: skip
    except InitializerValueError:
        return None


def _running_stats(mod) -> bool:
    """True if ``mod`` is a BatchNorm that applies its running statistics (eval mode, statistics tracked): torch's
    own test (``training or running_mean is None and running_var is None``: the batch's statistics)."""
    from torch import nn

    return (isinstance(mod, nn.modules.batchnorm._BatchNorm) and not mod.training
            and mod.running_mean is not None and mod.running_var is not None)  # fmt: skip


class Propagator:
    """Propagates ``(mu, q)`` per tensor; optionally rescales weight layers to a target ``q`` (analytic fix)."""

    def __init__(self, model, training: bool, targets=None, fix: bool = False):
        self.model = model
        self.training = training
        self.targets = targets or {}
        self.fix = fix
        self.scales: dict[str, float] = {}
        self.notes: list[str] = []
        self.unstable: dict[str, tuple[str, str]] = {}  # key -> (layer name, message)
        #: set by the graph walk: the current node's input comes straight from a normalization, which resets
        #: the second moment every layer, so an activation there cannot make the depth recursion unstable
        self.input_normed = False
        self.done: set[int] = set()
        self.skip_fix: set[str] = set()
        self.base = 1.0
        #: weight layer -> the second moment of its weight part ``E[(W x)**2]`` the fix aimed at
        self.weight_q: dict[str, float] = {}
        #: product over activations of :func:`variance_slope`: how a fixed-scale net amplifies a deviation
        self.amplification = 1.0
        #: set by the graph walk: ``(phi, mu, q, d, groups)`` when the current node's input is a non-decreasing
        #: activation of a tracked pre-activation (max pooling takes the max before ``phi``), else None
        self.pre_act: tuple | None = None

    # one module, given its input moments and shapes; returns (mu, q, gain_info); gain_info["d"] is the output's
    # input-dependent variance (the signal squared) from the input's ``d`` (None: not tracked)
    def module(self, name, mod, mu, q, in_shape, out_shape, incoming_sw2, groups=None, d=None):
        import torch
        from torch import nn
        from weightinit.doctor.backends import torchutil as tu

        extra: dict = {}
        if isinstance(mod, nn.MultiheadAttention):  # (the recorded graph could not be used: see analyze_torch)
            e = mod.embed_dim
            wv = mod.in_proj_weight[2 * e :] if mod.in_proj_weight is not None else mod.v_proj_weight
            bv = mod.in_proj_bias[2 * e :] if mod.in_proj_bias is not None else None
            wo, bo = mod.out_proj.weight, mod.out_proj.bias
            t = in_shape[0] if not mod.batch_first else in_shape[1]
            self.notes.append(f"{name}: attention averaged uniformly over {t} independent tokens (no score spread, "
                              "mask or token correlations: those are the recorded graph's)")  # fmt: skip
            v_mu, v_q, _ = linear_moments(mu, q, *_weight_numbers(wv, bv))
            mu_a, q_a = mixing_moments(v_mu, v_q, softmax_mixing([t] * t))
            sw_o, qb_o, mb_o, rows_o = _weight_numbers(wo, bo)
            mu_o, q_o, _ = linear_moments(mu_a, q_a, sw_o, qb_o, mb_o, rows_o)
            if d is not None:  # the biases are shared by every input
                extra["d"] = sw_o * softmax_mixing([t] * t) * _weight_numbers(wv, None)[0] * d
            extra["sigma_w2"] = sw_o
            return mu_o, q_o, extra
        if isinstance(mod, tu.WEIGHT_TYPES):
            w = mod.weight
            if isinstance(mod, nn.modules.conv._ConvTransposeNd):
                # Each output position of a strided transposed conv sees 1/prod(stride) of the kernel taps.
                fan = torch_layer_fans(w.shape, "conv_transpose", mod.groups)[0] / max(_numel(mod.stride), 1)
            elif isinstance(mod, nn.Bilinear):
                fan = torch_layer_fans(w.shape, "bilinear")[0]
            else:
                fan = torch_layer_fans(w.shape, "conv")[0]
            wd = w.detach().double()
            sw = float((wd**2).mean())
            b = getattr(mod, "bias", None)
            qb = float((b.detach().double() ** 2).mean()) if b is not None else 0.0
            mb = float(b.detach().double().mean()) if b is not None else 0.0
            qin = q * q if isinstance(mod, nn.Bilinear) else q
            # The weight part's second moment E[(W x)_i^2] = v |W_i|^2 + mu^2 (W_i . 1)^2 with the measured rows
            # (their sums r_i carry a non-zero input mean: an identity or other non-zero-mean weight keeps it).
            # For i.i.d. zero-mean weights E[r_i^2] = |W_i|^2 and this is sigma_w^2 q_in.
            row_stats = None
            if isinstance(mod, (nn.Linear, nn.modules.conv._ConvNd)) and not isinstance(
                mod, nn.modules.conv._ConvTransposeNd
            ):
                row_stats = _row_moments(wd, b)
            pad = _module_padding(mod, in_shape)  # a zero-padded conv: the taps in bounds, over positions
            if pad is not None:
                factor, row_stats = padded_kernel_moments(wd.permute(*range(2, wd.dim()), 1, 0).cpu().numpy(), pad,
                                                          None if b is None else _np64(b))  # fmt: skip
                fan *= factor
            mu_out, q_out, part = linear_moments(mu, qin, sw * fan, qb, mb, row_stats)
            if self.fix and id(w) not in self.done and name not in self.skip_fix:
                target = self.targets.get(name, 1.0) * self.base
                s = rescale_factor(part, 1.0, qb, target)
                with torch.no_grad():
                    w.mul_(s)
                self.scales[f"{name}.weight" if name else "weight"] = s
                sw = sw * s * s
                if row_stats is not None:
                    row_stats = (row_stats[0] * s, row_stats[1] * s * s, row_stats[2] * s)
                mu_out, q_out, part = linear_moments(mu, qin, sw * fan, qb, mb, row_stats)
                self.weight_q[name] = part
            self.done.add(id(w))
            extra["sigma_w2"] = sw * fan
            if d is not None:  # the bias and the input mean shift every input alike
                extra["d"] = sw * fan * (qin - (q - d) ** 2 if isinstance(mod, nn.Bilinear) else d)
            return mu_out, q_out, extra
        if isinstance(mod, tu.NORM_TYPES) and _running_stats(mod):  # eval BatchNorm: an affine map, no norm
            sw, qb, mb, rows = running_norm_affine(*(_np64(getattr(mod, k)) for k in _BN_ARGS), eps=mod.eps)
            if groups:
                extra["groups"] = [(f, *linear_moments(m, qq, sw, qb, mb, rows)[:2]) for f, m, qq in groups]
            if d is not None:
                extra["d"] = sw * d  # the shift t is the same for every input
            if incoming_sw2 is not None:
                extra["sigma_w2"] = incoming_sw2 * sw
            return *linear_moments(mu, q, sw, qb, mb, rows)[:2], extra
        if isinstance(mod, tu.NORM_TYPES):
            g = getattr(mod, "weight", None)
            bb = getattr(mod, "bias", None)
            qg = float((g.detach().double() ** 2).mean()) if g is not None else 1.0
            qb = float((bb.detach().double() ** 2).mean()) if bb is not None else 0.0
            mu_n, q_n = norm_moments(qg, qb, float(bb.detach().double().mean()) if bb is not None else 0.0)
            if d is not None:
                # (a BatchNorm here uses the batch's statistics; one with running statistics took the branch above)
                over = "batch" if isinstance(mod, nn.modules.batchnorm._BatchNorm) else "features"
                extra["d"] = norm_signal(d, mu, q, qg, over)
            return mu_n, q_n, extra
        if isinstance(mod, nn.Embedding):
            mu_e, q_e, extra["d"] = embedding_moments(_np64(mod.weight))
            return mu_e, q_e, extra
        if isinstance(mod, nn.modules.dropout._DropoutNd):
            c = 1 / (1 - mod.p) if self.training and mod.p < 1 else 1.0
            if groups:
                extra["groups"] = [(f, m, qq * c) for f, m, qq in groups]
            if d is not None:
                extra["d"] = dropout_signal(q, d, mod.p) if self.training else d
            return mu, q * c, extra
        if isinstance(mod, (nn.modules.pooling._AvgPoolNd, nn.modules.pooling._AdaptiveAvgPoolNd)) and (
            win := _module_avgpool_windows(mod, in_shape, out_shape)) is not None:  # fmt: skip
            share = min(max(d / (q - mu * mu), 0.0), 1.0) if d is not None and q > mu * mu else None
            if groups:
                extra["groups"] = [(f, *avgpool_window_moments(m, qq, *win, None if share is None
                                                                else share * (qq - m * m))[:2])
                                   for f, m, qq in groups]  # fmt: skip
            mu_p, q_p, d_p = avgpool_window_moments(mu, q, *win, d)
            if d is not None:
                extra["d"] = d_p
            return mu_p, q_p, extra
        if isinstance(mod, (nn.modules.pooling._AvgPoolNd, nn.modules.pooling._AdaptiveAvgPoolNd)):
            k = max(_numel(in_shape) / max(_numel(out_shape), 1), 1.0)
            if groups:
                share = min(max(d / (q - mu * mu), 0.0), 1.0) if d is not None and q > mu * mu else None
                extra["groups"] = [(f, *avgpool_moments(m, qq, k, None if share is None else share * (qq - m * m)))
                                   for f, m, qq in groups]  # fmt: skip
            mu_p, q_p = avgpool_moments(mu, q, k, d)
            if d is not None:
                extra["d"] = d / k
            return mu_p, q_p, extra
        if isinstance(mod, (nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AdaptiveMaxPoolNd)):
            sizes = _module_pool_sizes(mod, in_shape, out_shape)
            if sizes is None:
                return mu, q, {"note": "max pooling: window unknown, identity"}
            mu_p, q_p, d_p, g_p = maxpool_rule(mu, q, q - mu * mu if d is None else d, *sizes, groups, self.pre_act)
            if g_p:
                extra["groups"] = g_p
            if d is not None:
                extra["d"] = d_p
            return mu_p, q_p, extra
        if isinstance(mod, (nn.Flatten, nn.Unflatten, nn.Identity)):
            if groups:
                extra["groups"] = groups
            return mu, q, extra
        if type(mod).__name__ in ("RMSNorm", "LlamaRMSNorm"):  # gamma x / rms(x): the graphs' rule (norm, "rms")
            g = getattr(mod, "weight", None)
            qg = float((g.detach().double() ** 2).mean()) if isinstance(g, torch.Tensor) else 1.0
            mu_n, q_n = norm_moments(qg, 0.0, 0.0)
            if d is not None:
                extra["d"] = norm_signal(d, mu, q, qg, "rms")
            return mu_n, q_n, extra
        act = module_activation(mod)
        if act is not None:
            return self.activation(name, act[0], act[1], mu, q, incoming_sw2, groups, d)
        if any(True for _ in mod.parameters()):
            self.notes.append(f"{name} ({type(mod).__name__}): no moment rule; treated as the identity")
        return mu, q, {"note": "no rule: identity"}

    def activation(self, name, key, phi, mu, q, incoming_sw2, groups=None, d=None):
        if groups:  # a concatenation's parts: the mixture of the groups' maps
            m1, m2, out = groups_moment_map(phi, groups)
            c = (sum(f * chi(phi, incoming_sw2, qq, m) for f, m, qq in groups) if incoming_sw2 is not None
                 else float("nan"))  # fmt: skip
            extra = {"chi": c, "act": key, "groups": out}
        else:
            m1, m2 = moment_map(phi, q, mu)
            extra = {"chi": chi(phi, incoming_sw2, q, mu) if incoming_sw2 is not None else float("nan"), "act": key}
        if d is not None:
            extra["d"] = groups_signal_map(phi, groups, mu, q, d) if groups else signal_map(phi, q, mu, d)
        extra["phi"] = phi
        if incoming_sw2 is not None:
            k = variance_slope(phi, q, mu)
            if math.isfinite(k):
                self.amplification *= k
        if key not in self.unstable and not self.input_normed:
            msg = depth_stability(phi, key)
            if msg:
                self.unstable[key] = (name, msg)
        return m1, m2, extra


_ADD = {"add", "iadd", "__add__", "__iadd__", "__radd__"}
_SUB = {"sub", "isub", "__sub__", "rsub"}
_MUL = {"mul", "imul", "__mul__", "__rmul__"}
_DIV = {"truediv", "div", "__truediv__"}
_CAT = {"cat", "concat", "concatenate"}
_SHAPE = {"view", "reshape", "flatten", "permute", "transpose", "contiguous", "squeeze", "unsqueeze", "expand",
          "clone", "float", "to", "type_as", "detach", "unflatten", "movedim", "swapaxes"}  # fmt: skip
_MAXPOOLF = {"max_pool1d", "max_pool2d", "max_pool3d", "adaptive_max_pool1d", "adaptive_max_pool2d",
             "adaptive_max_pool3d"}  # fmt: skip
_AVGPOOLF = {"avg_pool1d", "avg_pool2d", "avg_pool3d", "adaptive_avg_pool1d", "adaptive_avg_pool2d",
             "adaptive_avg_pool3d"}  # fmt: skip
_NORMF = {"layer_norm", "batch_norm", "group_norm", "instance_norm", "rms_norm", "normalize"}


def _target_name(t) -> str:
    return getattr(t, "__name__", str(t)).split(".")[-1]


def analyze_graph(gm, model, x_mu: float, x_q: float, *, fix: bool = False, targets=None, skip=(), target=1.0,
                  example=None, probes: int = 4096, seed: int = 0, x_d: float | None = None):  # fmt: skip
    """Walk ``gm``'s nodes; return ``(records, propagator)``; records are :class:`LayerStats` with ``q_pred``,
    ``std_pred`` and ``signal_pred`` (from the inputs' input-dependent variance ``x_d``, default ``x_q - x_mu**2``).

    With ``example`` (the inputs ``gm`` was shape-propagated with), the cross moment at an addition of two
    tensors with a common ancestor is estimated from the Jacobians (:func:`graph_cross_covariance`, at least
    ``probes`` probe elements); without it, additions use the independence rule.
    """
    import torch.fx

    import torch
    from weightinit.doctor.report import LayerStats

    prop = Propagator(model, model.training, targets, fix)
    prop.skip_fix = set(skip)
    prop.base = target
    mods = dict(gm.named_modules())
    env: dict = {}
    sig: dict = {}  # node -> its input-dependent variance d (the signal squared)
    x_d = max(x_q - x_mu * x_mu, 0.0) if x_d is None else x_d
    sw2: dict = {}  # last weight layer's sigma_w^2 * fan on the path to each node
    records = []
    calls: dict = {}
    groups: dict = {}  # node -> [(fraction, mu, q)] after a concatenation of parts with different moments
    normed: set = set()  # nodes that are a normalization's output (or a shape op of one)
    acts: dict = {}  # node -> (phi, its input) for a non-decreasing elementwise activation (for max pooling)
    monotone: dict = {}
    order = {n: i for i, n in enumerate(gm.graph.nodes)}

    def shape_of(n):
        tm = n.meta.get("tensor_meta")
        if tm is None:
            return None
        return tuple(tm.shape) if hasattr(tm, "shape") else (tuple(tm[0].shape) if hasattr(tm[0], "shape") else None)

    def tensor_args(n):  # (torch.cat's tensors come as a list)
        flat = [b for a in n.args for b in (a if isinstance(a, (list, tuple)) else (a,))]
        return [a for a in flat if isinstance(a, torch.fx.Node) and a in env]

    for n in gm.graph.nodes:
        if n.op == "placeholder":
            env[n] = (x_mu, x_q)
            sig[n] = x_d
            continue
        if n.op == "output" or n.op == "get_attr":
            if n.op == "get_attr":
                try:
                    t = gm.get_parameter(n.target).detach().double()
                    env[n] = (float(t.mean()), float((t * t).mean()))
                    sig[n] = 0.0  # a parameter: the same for every input
                except Exception:
                    pass
            continue
        targs = tensor_args(n)
        if not targs:
            continue
        mu, q = env[targs[0]]
        d = sig.get(targs[0], 0.0)
        d2 = d  # shape ops, getitem, constants added, max pooling, unknown nodes: unchanged
        g_in = groups.get(targs[0])
        inc = sw2.get(targs[0])
        rec_kind = None
        extra: dict = {}
        g_out = None
        out_shape = shape_of(n)
        in_shape = shape_of(targs[0])
        prop.input_normed = targs[0] in normed
        prop.pre_act = None
        if targs[0] in acts:  # a non-decreasing activation of a tracked tensor: max pooling takes the max before it
            phi_a, pre = acts[targs[0]]
            prop.pre_act = (phi_a, *env[pre], sig.get(pre, 0.0), groups.get(pre))
        if n.op == "call_module":
            mod = mods[n.target]
            new = prop.module(n.target, mod, mu, q, in_shape, out_shape, inc, g_in, d)
            mu2, q2, extra = new
            d2 = extra.get("d", d)
            g_out = extra.get("groups")
            rec_kind = type(mod).__name__
        else:
            name = _target_name(n.target)
            consts = [a for a in n.args if not isinstance(a, torch.fx.Node)]
            if name == "getitem":
                idx = n.args[1] if len(n.args) > 1 else 0
                if idx not in (0,) and shape_of(n) != in_shape:
                    continue
                mu2, q2 = mu, q
                g_out = g_in if shape_of(n) == in_shape else None
            elif name in _ADD | _SUB and len(targs) == 2:
                a, b = targs
                sgn = 1 if name in _ADD else -1
                cov, src = None, None
                if example is not None:
                    src = _common_source(a, b, order)
                    if src is not None and src in env:
                        cov = graph_cross_covariance(gm, example, src, a, b, probes=probes, seed=seed)
                        if cov is None:
                            prop.notes.append(f"{n.name}: the branches' Jacobians could not be differentiated; "
                                              "the cross moment uses the independence rule")  # fmt: skip
                v_src = max(env[src][1] - env[src][0] ** 2, 0.0) if cov is not None else 0.0
                jd = 0.0 if cov is None else cov  # mean diag of E[J_a J_b^T]
                mu2, q2 = add_moments(env[a], env[b], residual_cross(env[a], env[b], 0.0) + v_src * jd, sgn)
                d_src = sig.get(src, 0.0) if cov is not None else 0.0
                d2 = add_signal(sig.get(a, 0.0), sig.get(b, 0.0), d_src * jd, sgn)
                ga, gb = groups.get(a), groups.get(b)
                if ga or gb:  # per group, the cross covariance shared evenly
                    ga = ga or [(f, *env[a]) for f, _, _ in gb or ()]
                    gb = gb or [(f, *env[b]) for f, _, _ in ga]
                    if [f for f, _, _ in ga] == [f for f, _, _ in gb]:
                        g_out = [(f, *add_moments((m, qq), (m2, qq2), m * m2 + v_src * jd, sgn))
                                 for (f, m, qq), (_f, m2, qq2) in zip(ga, gb)]  # fmt: skip
                rec_kind = "add" if sgn > 0 else "sub"
                inc = None
            elif name in _ADD | _SUB and consts and isinstance(consts[0], (int, float)):
                c = float(consts[0]) * (1 if name in _ADD else -1)
                mu2, q2 = mu + c, q + 2 * c * mu + c * c
                if g_in:
                    g_out = [(f, m + c, qq + 2 * c * m + c * c) for f, m, qq in g_in]
            elif name in _MUL and len(targs) == 2:
                (ma, qa), (mb, qb) = env[targs[0]], env[targs[1]]
                mu2, q2 = ma * mb, qa * qb
                d2 = mul_signal(qa, sig.get(targs[0], 0.0), qb, sig.get(targs[1], 0.0))
                rec_kind = "mul"
            elif name in _MUL | _DIV and consts and isinstance(consts[0], (int, float)):
                c = float(consts[0])
                c = 1 / c if name in _DIV else c
                mu2, q2, d2 = mu * c, q * c * c, d * c * c
                if g_in:
                    g_out = [(f, m * c, qq * c * c) for f, m, qq in g_in]
            elif name in _CAT:
                parts = [p for p in (n.args[0] if isinstance(n.args[0], (list, tuple)) else targs) if p in env]
                sizes = [max(_numel(shape_of(p)), 1) for p in parts]
                mu2, q2, g_out = concat_moments(
                    [(sz, groups[p]) if p in groups else (sz, *env[p]) for p, sz in zip(parts, sizes)]
                )
                d2 = sum(sz * sig.get(p, 0.0) for p, sz in zip(parts, sizes)) / max(sum(sizes), 1)
                if len(g_out) < 2:
                    g_out = None
                rec_kind = "cat"
                inc = None
            elif name in _SHAPE or name in ("size", "dim"):
                if out_shape is None:
                    continue
                mu2, q2 = mu, q
                g_out = g_in if _numel(out_shape) == _numel(in_shape) else None
            elif name in ("conv1d", "conv2d", "conv3d") and (cw := _functional_conv(gm, n, in_shape)) is not None:
                sw_fan, qb, mb, rows = cw  # F.conv*d on the module's parameters: the weight rule, padding counted
                mu2, q2, _ = linear_moments(mu, q, sw_fan, qb, mb, rows)
                d2 = sw_fan * d
                extra = {"sigma_w2": sw_fan}
                rec_kind = name
            elif name in _MAXPOOLF and out_shape is not None and in_shape is not None and len(targs) == 1:
                got = dict(zip(("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode"), n.args))
                got.update(n.kwargs)
                nd = int(name[-2])
                if name.startswith("adaptive"):
                    sizes = adaptive_pool_sizes(in_shape[-nd:], out_shape[-nd:])
                else:
                    k = got["kernel_size"]
                    sizes = pool_window_sizes(conv_windows(tuple(in_shape[-nd:]), k, got.get("stride") or k,
                                                           got.get("padding", 0), got.get("dilation", 1),
                                                           bool(got.get("ceil_mode", False))))  # fmt: skip
                mu2, q2, d2, g_out = maxpool_rule(mu, q, d, *sizes, g_in, prop.pre_act)
                rec_kind = name
            elif name in _AVGPOOLF and len(targs) == 1 and (win := torch_avgpool_windows(
                    name.startswith("adaptive"), int(name[-2]), in_shape, out_shape, **{
                        k: v for k, v in zip(("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad",
                                              "divisor_override"), n.args[1:])} | {
                        k: v for k, v in n.kwargs.items() if k != "output_size"})) is not None:  # fmt: skip
                mu2, q2, d2, g_out = avgpool_rule(mu, q, q - mu * mu if d is None else d, win, g_in)
                rec_kind = name
            elif name == "batch_norm" and (bn := _functional_running_stats(gm, n)) is not None:
                sw, qb, mb, rows = running_norm_affine(*bn)  # F.batch_norm(..., training=False): affine
                mu2, q2, _ = linear_moments(mu, q, sw, qb, mb, rows)
                d2 = sw * d
                rec_kind = name
            elif name in _NORMF:
                mu2, q2 = 0.0, 1.0
                over = "batch" if name == "batch_norm" else "rms" if name in ("rms_norm", "normalize") else "features"
                d2 = norm_signal(d, mu, q, 1.0, over)
                rec_kind = name
            elif name == "dropout":
                p = n.kwargs.get("p", consts[0] if consts else 0.5)
                train = n.kwargs.get("training", True)
                c = 1 / (1 - p) if train and p < 1 else 1.0
                mu2, q2 = mu, q * c
                d2 = dropout_signal(q, d, p) if train else d
                if g_in:
                    g_out = [(f, m, qq * c) for f, m, qq in g_in]
            else:
                fn = n.target if n.op == "call_function" else None

                def call(t, n=n, fn=fn, src=targs[0]):
                    args = [t if (isinstance(a, torch.fx.Node) and a is src) else a for a in n.args]
                    if n.op == "call_method":
                        return getattr(args[0], n.target)(*args[1:], **n.kwargs)
                    if fn is None:
                        raise TypeError(f"{n.op} node {n.name} is not a function call")
                    return fn(*args, **n.kwargs)

                if len(targs) == 1 and out_shape == in_shape and _elementwise(call):
                    mu2, q2, extra = prop.activation(n.name, name, _np_fn_of(call), mu, q, inc, g_in, d)
                    g_out = extra.get("groups")
                    d2 = extra["d"]
                    rec_kind = name
                else:
                    prop.notes.append(f"{n.name} ({name}): no moment rule; treated as the identity")
                    mu2, q2 = mu, q
                    rec_kind = name
        env[n] = (mu2, q2)
        sig[n] = d2
        if extra.get("phi") is not None and len(targs) == 1:
            key = extra.get("act")
            if key not in monotone:
                monotone[key] = non_decreasing(extra["phi"])
            if monotone[key]:
                acts[n] = (extra["phi"], targs[0])
        if _is_norm_node(n, mods) or (prop.input_normed and _target_name(n.target) in _SHAPE):
            normed.add(n)
        if g_out:
            groups[n] = g_out
        sw2[n] = extra.get("sigma_w2", inc)
        if rec_kind is not None:
            base = n.target if n.op == "call_module" else n.name
            k = calls.get(base, 0)
            calls[base] = k + 1
            s = LayerStats(name=base if k == 0 else f"{base}#{k + 1}", kind=rec_kind, depth=len(records),
                           shape=out_shape or ())  # fmt: skip
            s.q_pred = q2
            s.gain = math.sqrt(q2 / q) if q > 0 and q2 >= 0 else float("nan")
            s.chi = extra.get("chi", float("nan"))
            s.note = extra.get("note", "")
            s.std_pred, s.signal_pred = math.sqrt(max(q2 - mu2 * mu2, 0.0)), math.sqrt(max(d2, 0.0))
            records.append(s)
    return records, prop


def _functional_conv(gm, n, in_shape):
    """``(sigma_w2, E[b**2], E[b], rows)`` of an fx ``F.conv*d(input, weight, bias, stride, padding, dilation,
    groups)`` whose weight (and bias) are the module's parameters, with zero padding counted
    (:func:`padded_kernel_moments`), else None."""
    import torch.fx

    got = dict(zip(("input", "weight", "bias", "stride", "padding", "dilation", "groups"), n.args))
    got.update(n.kwargs)
    ts = []
    for k in ("weight", "bias"):
        a = got.get(k)
        if isinstance(a, torch.fx.Node):
            if a.op != "get_attr":
                return None
            try:
                a = gm.get_parameter(a.target)
            except AttributeError:
                return None
        ts.append(None if a is None else _np64(a))
    w, b = ts
    if w is None or w.ndim < 3:
        return None
    kk = np.moveaxis(w, (0, 1), (-1, -2))  # (*taps, fan_in per group, out): Keras layout
    sw = float(np.mean(w * w)) * float(np.prod(w.shape[1:]))
    r = kk.reshape(-1, kk.shape[-1]).sum(0)
    mb = float(b.mean()) if b is not None else 0.0
    rows = (float(r.mean()), float((r * r).mean()), float((r * b).mean()) if b is not None else float(r.mean()) * mb)
    padding = got.get("padding", 0)
    nd = w.ndim - 2
    if in_shape is not None and padding != "valid" and (isinstance(padding, str) or any(_per_dim(padding, nd, "p"))):
        windows = conv_windows(tuple(in_shape[-nd:]), w.shape[2:], got.get("stride", 1), padding,
                               got.get("dilation", 1))  # fmt: skip
        factor, rows = padded_kernel_moments(kk, windows, b)
        sw *= factor
    return sw, float((b * b).mean()) if b is not None else 0.0, mb, rows


def _functional_running_stats(gm, n):
    """``(running_mean, running_var, weight, bias, eps)`` as NumPy of an fx ``F.batch_norm`` call that applies its
    running statistics (``training=False``; the tensors are the module's buffers and parameters), else None."""
    import torch.fx

    names = ("input", "running_mean", "running_var", "weight", "bias", "training", "momentum", "eps")
    got = dict(zip(names, n.args))
    got.update(n.kwargs)
    if got.get("training", False) is not False:
        return None
    out = []
    for k in names[1:5]:
        a = got.get(k)
        if isinstance(a, torch.fx.Node):
            if a.op != "get_attr":
                return None
            try:
                a = gm.get_buffer(a.target) if k.startswith("running") else gm.get_parameter(a.target)
            except AttributeError:
                return None
        if a is None and k.startswith("running"):
            return None
        out.append(None if a is None else _np64(a))
    running_mean, running_var, weight, bias = out
    return running_mean, running_var, weight, bias, float(got.get("eps", 1e-5))


def _is_norm_node(n, mods) -> bool:
    from weightinit.doctor.backends import torchutil as tu

    if n.op == "call_module":
        m = mods.get(n.target)
        return (isinstance(m, tu.NORM_TYPES) and not _running_stats(m)) or type(m).__name__ in (
            "RMSNorm",
            "LlamaRMSNorm",
        )
    return _target_name(n.target) in _NORMF and not (
        _target_name(n.target) == "batch_norm" and _functional_running_stats(n.graph.owning_module, n) is not None
    )


def _ancestors(n) -> set:
    seen, stack = set(), [n]
    while stack:
        for a in stack.pop().all_input_nodes:
            if a not in seen:
                seen.add(a)
                stack.append(a)
    return seen


def _common_source(a, b, order):
    """The node two addends both depend on: one of them if it is the other's ancestor, else their latest common
    ancestor (in graph order); None if they share none."""
    anc_a, anc_b = _ancestors(a), _ancestors(b)
    if a in anc_b:
        return a
    if b in anc_a:
        return b
    common = [n for n in anc_a & anc_b if n.op != "get_attr"]
    return max(common, key=order.__getitem__) if common else None


def graph_cross_covariance(gm, example, src, a, b, *, probes: int = 4096, seed: int = 0):
    """The mean diagonal of ``J_a J_b^T`` (``J`` the Jacobians of nodes ``a``, ``b`` with respect to node ``src``)
    of a traced graph, by forward-mode differentiation at ``example`` with Rademacher probes ``z`` on ``src``:
    ``E[(J_a z)_i (J_b z)_i] = (J_a J_b^T)_ii``.  With ``a = src`` this is ``tr(J_b) / n``, the Stein factor of
    :func:`residual_cross`.  The mean runs over at least ``probes`` elements (each a Rademacher probe of its
    own diagonal entry; the estimate's relative error is about ``1/sqrt(probes)`` of the Jacobians' Frobenius
    scale), at most 16 forward passes.  Returns None if an operation cannot be differentiated forward.
    """
    import torch.autograd.forward_ad as fwad
    import torch.fx
    from torch.nn.attention import SDPBackend, sdpa_kernel

    import torch

    class _Stop(Exception):
        pass

    rng = np.random.default_rng(seed)
    out: dict = {}
    want = {a, b}

    class Interp(torch.fx.Interpreter):
        def run_node(self, n):
            v = super().run_node(n)
            if n is src:
                if not (isinstance(v, torch.Tensor) and v.is_floating_point()):
                    raise _Stop
                z = torch.from_numpy(rademacher(rng, tuple(v.shape))).to(v.dtype).to(v.device)
                v = fwad.make_dual(v, z)
            if n in want:
                t = fwad.unpack_dual(v).tangent if isinstance(v, torch.Tensor) else None
                out[n] = t
                if want <= out.keys():
                    raise _Stop
            return v

    full = example if isinstance(example, tuple) else (example,)
    args = full
    # a large batch: the first examples that hold ``probes`` elements at the addition suffice (at least 2, for
    # batch statistics); a graph specialized to the full batch size falls back to it
    tm = a.meta.get("tensor_meta")
    n0 = full[0].shape[0] if full and isinstance(full[0], torch.Tensor) and full[0].ndim else 0
    if tm is not None and hasattr(tm, "shape") and len(tm.shape) and tm.shape[0] == n0 and n0 > 2:
        per = max(_numel(tuple(tm.shape)) // n0, 1)
        keep = probe_examples(n0, per, probes)
        if keep < n0:
            args = tuple(t[:keep] if isinstance(t, torch.Tensor) and t.ndim and t.shape[0] == n0 else t for t in full)
    total, count = 0.0, 0
    rounds = 0
    with torch.no_grad():
        while count < probes and rounds < PROBE_ROUNDS:
            out.clear()
            try:
                with fwad.dual_level(), sdpa_kernel([SDPBackend.MATH]):  # (the fused CPU kernel has no forward AD)
                    Interp(gm).run(*args)
            except _Stop:
                pass
            except Exception:
                if args is full:
                    return None
                args, total, count, rounds = full, 0.0, 0, 0
                continue
            rounds += 1
            ta, tb = out.get(a), out.get(b)
            if ta is None or tb is None:
                if a in out and b in out:  # one addend does not depend on src: zero covariance
                    return 0.0
                return None
            if ta.shape != tb.shape:
                return None
            total += float((ta.double() * tb.double()).mean())
            count += ta.numel()
    return total / max(rounds, 1)


def add_targets(gm) -> dict:
    """LSUV/analytic targets generalized to branches: a weight layer whose output reaches an ``add`` of ``m``
    tensors through shape-only ops gets target second moment ``1/m``, so the sum has unit variance."""
    import torch.fx

    mods = dict(gm.named_modules())
    from weightinit.doctor.backends import torchutil as tu

    targets = {}
    for n in gm.graph.nodes:
        if n.op == "call_module" and isinstance(mods.get(n.target), tu.WEIGHT_TYPES):
            cur = n
            while len(cur.users) == 1:
                (u,) = cur.users
                name = _target_name(u.target) if u.op != "call_module" else None
                m = mods.get(u.target) if u.op == "call_module" else None
                if name in _ADD:
                    k = sum(isinstance(a, torch.fx.Node) for a in u.args)
                    if k >= 2:
                        targets[n.target] = 1.0 / k
                    break
                if (name in _SHAPE) or (m is not None and type(m).__name__ in ("Dropout", "Identity", "Flatten")):
                    cur = u
                    continue
                break
    return targets


def norm_fed(gm) -> set:
    """Weight layers whose output goes straight into a normalization (scale-invariant: not rescaled)."""
    from weightinit.doctor.backends import torchutil as tu

    mods = dict(gm.named_modules())
    out = set()
    for n in gm.graph.nodes:
        if n.op == "call_module" and isinstance(mods.get(n.target), tu.WEIGHT_TYPES) and n.users:
            if all(
                (
                    u.op == "call_module"
                    and isinstance(mods.get(u.target), tu.NORM_TYPES)
                    and not _running_stats(mods[u.target])
                )  # (eval BatchNorm is affine: not scale-invariant)
                or (u.op != "call_module" and _target_name(u.target) in _NORMF)
                for u in n.users
            ):
                out.add(n.target)
    return out


def _hook_chain(model, x, prop, x_mu, x_q, x_d=None):
    """Fallback for untraceable models: leaf modules in execution order, treated as a chain (skips are missed)."""
    import torch
    from weightinit.doctor.backends import torchutil as tu
    from weightinit.doctor.report import LayerStats

    calls = []
    names = {m: n for n, m in model.named_modules()}

    def hook(mod, args, out):
        a = tu.first_tensor(args)
        y = tu.first_tensor(out)
        if y is not None:
            calls.append(
                (names.get(mod, type(mod).__name__), mod, tuple(a.shape) if a is not None else None, tuple(y.shape))
            )

    leaves = [m for m in model.modules() if not list(m.children()) or isinstance(m, torch.nn.MultiheadAttention)]
    tu.forward_with_hooks(model, x, leaves, hook)
    mu, q, inc = x_mu, x_q, None
    d = max(x_q - x_mu * x_mu, 0.0) if x_d is None else x_d
    records, seen, prev_norm = [], {}, False
    for name, mod, ish, osh in calls:
        prop.input_normed = prev_norm
        mu2, q2, extra = prop.module(name, mod, mu, q, ish, osh, inc, d=d)
        d = extra.get("d", d)
        prev_norm = isinstance(mod, tu.NORM_TYPES) or type(mod).__name__ == "RMSNorm"
        k = seen.get(name, 0)
        seen[name] = k + 1
        s = LayerStats(
            name=name if k == 0 else f"{name}#{k + 1}", kind=type(mod).__name__, depth=len(records), shape=osh
        )
        s.q_pred, s.chi, s.note = q2, extra.get("chi", float("nan")), extra.get("note", "")
        s.gain = math.sqrt(q2 / q) if q > 0 and q2 >= 0 else float("nan")
        s.std_pred, s.signal_pred = math.sqrt(max(q2 - mu2 * mu2, 0.0)), math.sqrt(max(d, 0.0))
        records.append(s)
        inc = extra.get("sigma_w2", inc)
        mu, q = mu2, q2
    return records


def _recorded(recorded, model, x, x_mu, x_q, fix, target, x_d=None, cross="measured", seed=0):
    """``((records, propagator, RecordedGraph), "")`` from ``recorded`` (the torch backend's
    :func:`weightinit.doctor.backends.torchgraph.analyze_recorded`), or ``(None, why)``."""
    if recorded is None:
        return None, ""
    prop = Propagator(model, model.training, {}, fix)
    prop.base = target
    try:
        records, rg = recorded(model, x, x_mu, x_q, prop, fix=fix, target=target, x_d=x_d, cross=cross, seed=seed)
    except Exception as e:  # the forward cannot be recorded: the hook chain
        return None, f"{type(e).__name__}: {e}"[:300]
    if not rg.graph.outputs:
        return None, "no output of the recorded forward pass depends on the inputs"
    return (records, prop, rg), ""


def _tally(counts: dict) -> str:
    return ", ".join(f"{v} {k}" for k, v in counts.items()) or "no operations"


#: additions x parameters above which analyze_torch uses the independence rule at additions (each measured
#: cross moment costs a partial forward pass)
CROSS_BUDGET = 2e9


def analyze_torch(model, inputs=None, *, input_shape=None, batch: int = 64, seed: int = 0, fix: bool = False,
                  target: float = 1.0, title: str = "weightinit doctor (analytic)",
                  cross: str = "measured", recorded=None):  # fmt: skip
    """Predict every layer's second moment, gain and chi for a torch model (``fix=True`` also rescales weights).

    Returns ``(Report, Propagator)``.  Only shapes are needed: with ``inputs=None`` a synthetic batch of the
    right shape is used for shape propagation and the input second moment is taken as 1.

    ``cross`` decides the cross moment at an addition of correlated tensors (``x + f(x)``): ``"measured"``
    (the default) for this model's weights, from the branches' Jacobians (:func:`graph_cross_covariance`);
    ``"expected"`` in expectation over zero-mean weights, the independence rule ``E[ab] = mu_a mu_b`` (what a
    fresh draw from the same distributions gives on average; a weightless branch is then missed).

    ``recorded``: where torch.fx cannot trace the model, the function that analyses its recorded forward pass
    instead, ``recorded(model, x, x_mu, x_q, propagator, fix=, target=, x_d=, cross=, seed=) -> (records,
    RecordedGraph)`` (the torch
    backend passes :func:`weightinit.doctor.backends.torchgraph.analyze_recorded`: ``weightinit.doctor`` and
    ``weightinit.fix`` use it); None, or when it fails: leaf modules in execution order as a chain.  A model fx
    traces that has ``nn.MultiheadAttention`` goes to ``recorded`` too (attention is the recorded graph's rule;
    the fx walk, used if recording fails, averages attention uniformly over independent tokens).
    """
    if cross not in ("measured", "expected"):
        from weightinit.common.errors import value_error

        raise value_error("cross", cross, "must be 'measured' or 'expected'")
    import torch
    from weightinit.doctor.backends import torchutil as tu
    from weightinit.doctor.diagnose import diagnose
    from weightinit.doctor.report import Flag, Report

    report = Report(title=title, framework=f"torch {torch.__version__.split('+')[0]}", mode="analytic")
    x = tu.synthetic_inputs(model, min(batch, 8), input_shape, seed) if inputs is None else tu.as_tensor(inputs)
    x0 = x[0] if isinstance(x, tuple) else x
    if x0.is_floating_point() and inputs is not None and x0.numel():
        xd = x0.double()
        x_mu, x_q = float(xd.mean()), float((xd * xd).mean())
        # the input-dependent variance: per element over the batch (unbiased: the population's), averaged
        x_d = input_signal(xd.detach().cpu().numpy())
    else:
        x_mu, x_q, x_d = 0.0, 1.0, 1.0
    gm, err = trace_torch(model, x)
    if gm is not None and cross == "measured":
        import torch.fx

        adds = sum(
            1 for n in gm.graph.nodes
            if n.op in ("call_function", "call_method") and _target_name(n.target) in _ADD | _SUB
            and sum(isinstance(a, torch.fx.Node) for a in n.args) == 2
        )  # fmt: skip
        size = sum(p.numel() for p in model.parameters())
        if adds * size > CROSS_BUDGET:
            cross = "expected"
            report.notes.append(
                f"{adds} additions x {size:.3g} parameters is above the budget for the measured cross moments "
                f"({CROSS_BUDGET:.0e}: one partial forward per addition); additions use the independence rule, "
                "right in expectation over zero-mean weights (raise weightinit.doctor.analytic.CROSS_BUDGET to "
                "measure them)"
            )
    got, rec_err = None, ""
    if gm is not None and recorded is not None and any(isinstance(m, torch.nn.MultiheadAttention)
                                                       for m in model.modules()):  # fmt: skip
        # attention is the recorded graph's rule (q/k/v weight nodes, the score spread, masks, the token Gram); the
        # fx walk only has its fallback, uniform averaging over independent tokens (a 2-layer torchvision ViT's
        # attention outputs at 0.78x and 0.45x of the measurement)
        got, rec_err = _recorded(recorded, model, x, x_mu, x_q, fix, target, x_d, cross, seed)
    if gm is not None and got is None:
        records, prop = analyze_graph(
            gm,
            model,
            x_mu,
            x_q,
            fix=fix,
            targets=add_targets(gm),
            skip=norm_fed(gm),
            target=target,
            example=x if cross == "measured" else None,
            seed=seed,
            x_d=x_d,
        )
    if gm is None:
        got, rec_err = _recorded(recorded, model, x, x_mu, x_q, fix, target, x_d, cross, seed)
    if got is not None:
        records, prop, rg = got
        if err is None:
            why = "the model has nn.MultiheadAttention, whose attention rule (score spread, masks, token Gram) is "
            why += "the recorded graph's"
        else:
            where, msg = err
            why = f"torch.fx could not trace the model at layer {where!r} ({msg})"
        report.notes.append(
            f"{why}; moments follow the recorded forward pass instead ({len(rg.graph.nodes)} nodes: "
            f"{_tally(rg.counts)}; adds use the "
            f"{'measured cross moment' if cross == 'measured' else 'independence rule'})"
        )
        if rg.opaque:
            ops = list(dict.fromkeys(f"{op!r} at {w!r}" for op, w in rg.opaque))
            report.flags.append(
                Flag(
                    "untraceable", rg.opaque[0][1],
                    f"the recorded forward pass has operations without a moment rule, treated as the identity: "
                    f"{', '.join(ops[:8])}{' ...' if len(ops) > 8 else ''}; the predictions after them are "
                    "approximate.",
                    "Write them as modules or operations the doctor models (see docs/doctor.md), or read the "
                    "measured statistics there.", "info",
                )
            )  # fmt: skip
    elif gm is None:
        assert err is not None  # trace_torch gives (layer, message) when it gives no graph
        where, msg = err
        if rec_err:
            msg = f"{msg}; the recorded forward pass failed too: {rec_err}"
        report.flags.append(
            Flag(
                "untraceable", where,
                f"torch.fx could not trace the model at layer {where!r} ({msg}); falling back to forward hooks, "
                "which see leaf modules in execution order as a chain (residual additions and concatenations "
                "outside modules are not modelled).",
                "Make the offending forward traceable (no data-dependent Python control flow), or accept the "
                "chain approximation.", "info",
            )
        )  # fmt: skip
        prop = Propagator(model, model.training, {}, fix)
        prop.base = target
        records = _hook_chain(model, x, prop, x_mu, x_q, x_d)
    report.layers = records
    report.notes += list(dict.fromkeys(prop.notes))
    amp = prop.amplification
    if math.isfinite(amp) and (amp > 2 or amp < 0.5):
        report.notes.append(
            f"with every scale fixed, this net multiplies a relative error in a layer's second moment by "
            f"{amp:.3g} on its way to the output (the product of the activations' variance slopes "
            "d log E[phi^2] / d log q; 1 for relu): finite-width noise is amplified as much, so weightinit.fix "
            "(analytic) corrects its scales on a probe batch (probe=True, the default)"
        )
    diagnose(report, predicted=True)
    for _key, (name, msg) in prop.unstable.items():
        report.flags.append(
            Flag("not_depth_stable", name, msg,
                 "Use normalization (LayerNorm/BatchNorm) after each layer, or an activation that is "
                 "degree-1 homogeneous (relu, leaky_relu) or bounded (tanh), or keep the net shallow.", "warning")
        )  # fmt: skip
    chis = [s.chi for s in records if math.isfinite(s.chi) and s.chi > 0]
    if len(chis) >= 3:
        prod = float(np.exp(np.sum(np.log(chis))))
        if prod < 1e-2 or prod > 1e2:
            kind = "vanishing_gradients" if prod < 1 else "exploding_gradients"
            report.flags.append(
                Flag(kind, "model",
                     f"The product of chi over the {len(chis)} activation layers is {prod:.3g} "
                     f"(geometric mean {prod ** (1 / len(chis)):.3g}): the squared gradient norm is predicted "
                     f"to change by that factor from the last layer to the first (Schoenholz et al. 2017).",
                     "Choose sigma_w^2 so that chi = 1 (He for relu: chi = 2 * 1/2), or run weightinit.fix(model).")
            )  # fmt: skip
    return report, prop
