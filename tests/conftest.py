"""Shared test helpers for the core tests, exposed as fixtures.

* ``philox_py``: an independent pure-Python Philox4x32-10 written from docs/random.md
  (not from weightinit.random.philox), so stream tests do not merely restate the implementation.
* ``ks_pvalue``: a Kolmogorov-Smirnov p-value that is valid for values rounded to a float
  dtype (float16 and bfloat16 are coarse enough to fail a continuous KS test on 1e5 samples).
* ``bits``: the raw bit pattern of an array, for bitwise comparisons.
* ``moment_failures``: which of the mean and variance of a sample lie outside ``k`` standard errors
  of the distribution's (standard errors from the sample size and the distribution's kurtosis),
  so a 2x variance error is caught at the sample sizes the tests use.

The suite refuses to run without the compiled core (``pytest_configure`` below): an
installation whose C build failed silently would otherwise skip every compiled-executor test
and pass.  Set ``WEIGHTINIT_NO_EXTENSION=1`` (the variable that also makes ``setup.py`` skip
the build) to test a NumPy-only installation on purpose; the compiled-core tests then skip
and say why.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

NO_EXTENSION_ENV = "WEIGHTINIT_NO_EXTENSION"


def extension_opted_out() -> bool:
    """Whether the person running the tests chose a NumPy-only run (any non-empty value, as in setup.py)."""
    return bool(os.environ.get(NO_EXTENSION_ENV))


def pytest_configure(config):
    from weightinit.executors import compiled

    if compiled.available() or extension_opted_out():
        return
    raise pytest.UsageError(
        "weightinit's compiled core (weightinit.executors._core_ext) is not loaded "
        f"({compiled._IMPORT_ERROR}), so its tests cannot run. Build it with a C compiler "
        "(`pip install -e .` or `python setup.py build_ext --inplace`), or set "
        f"{NO_EXTENSION_ENV}=1 to test the NumPy reference alone (the compiled-core tests then skip)."
    )


_M32 = 0xFFFFFFFF


def _philox_py(counter, key, rounds=10):
    c0, c1, c2, c3 = (int(x) & _M32 for x in counter)
    k0, k1 = (int(x) & _M32 for x in key)
    for r in range(rounds):
        if r:
            k0 = (k0 + 0x9E3779B9) & _M32
            k1 = (k1 + 0xBB67AE85) & _M32
        p0 = 0xD2511F53 * c0
        p1 = 0xCD9E8D57 * c2
        c0, c1, c2, c3 = (p1 >> 32) ^ c1 ^ k0, p1 & _M32, (p0 >> 32) ^ c3 ^ k1, p0 & _M32
    return (c0, c1, c2, c3)


@pytest.fixture(scope="session")
def philox_py():
    return _philox_py


def _bits(x):
    x = np.ascontiguousarray(x)
    return x.view({1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}[x.dtype.itemsize])


@pytest.fixture(scope="session")
def bits():
    return _bits


def _neighbours(x: np.ndarray):
    """Next representable value below and above each element of ``x`` (same float dtype)."""
    b = _bits(x)
    ut = b.dtype.type
    pos = x > 0
    neg = x < 0
    up = np.where(pos, b + ut(1), np.where(neg, b - ut(1), b)).view(x.dtype).copy()
    down = np.where(pos, b - ut(1), np.where(neg, b + ut(1), b)).view(x.dtype).copy()
    tiny = np.array([1], dtype=b.dtype).view(x.dtype)[0]
    zero = x == 0
    up[zero] = tiny
    down[zero] = -tiny
    return down, up


def _ks_pvalue(x, cdf, upper_clip=None) -> float:
    """KS p-value of ``x`` (values of a float dtype) against the continuous CDF ``cdf`` after rounding.

    Values drawn from a continuous distribution and rounded to nearest have the step CDF
    ``G(t) = cdf(midpoint(t, next_up(t)))`` on representable ``t``.  The supremum of
    ``|ECDF - G|`` is attained at observed values or just below them (both are step functions
    jumping only at representable values), so it is computed exactly there.  ``upper_clip``:
    the largest value the sampler may return (values are clipped to it), where ``G = 1``.
    The continuous-case p-value ``kstwo.sf(D, n)`` is conservative for a discrete null.
    """
    from scipy import stats

    x = np.asarray(x).ravel()
    n = x.size
    # Sort in float64 (exact): NumPy 2.4's AVX-512 float16 sort misorders some large arrays.
    v64, counts = np.unique(x.astype(np.float64), return_counts=True)
    vals = v64.astype(x.dtype)
    below, above = _neighbours(vals)
    g_at = cdf((v64 + above.astype(np.float64)) / 2)
    g_below = cdf((v64 + below.astype(np.float64)) / 2)  # G(next_down(v))
    if upper_clip is not None:
        g_at = np.where(v64 >= float(upper_clip), 1.0, g_at)
    cum = np.cumsum(counts) / n
    cum_before = cum - counts / n
    d = max(np.max(np.abs(cum - g_at)), np.max(np.abs(cum_before - g_below)))
    return float(stats.kstwo.sf(d, n))


@pytest.fixture(scope="session")
def ks_pvalue():
    return _ks_pvalue


@pytest.fixture(scope="session")
def transformers():
    """:mod:`transformers`, importable here only with ``torchvision._meta_registrations`` replaced by an empty module.

    transformers imports torchvision, and torchvision 0.28.0's ``_meta_registrations`` registers fake kernels
    for ``torchvision::nms``, an operator this CPU build of torch 2.13.0 does not define, so the import raises.
    The meta registrations only matter for tracing torchvision ops on the meta device.
    This is the one place the test suite replaces that module (``model_zoo`` builds on it).
    """
    import sys
    import types

    pytest.importorskip("torch")
    sys.modules.setdefault("torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations"))
    return pytest.importorskip("transformers")


@pytest.fixture(scope="session")
def model_zoo(transformers):
    """transformers, timm and torchvision (imported after the ``transformers`` fixture's replacement)."""
    import types

    import timm
    import torchvision

    return types.SimpleNamespace(transformers=transformers, timm=timm, torchvision=torchvision)


def _moment_failures(x, mean: float, var: float, kurtosis: float, k: float = 5.0) -> list[str]:
    """Checks of the sample mean and variance of ``x`` against a distribution's, ``k`` standard errors wide.

    ``kurtosis`` is the distribution's (non-excess) kurtosis E[(X - mean)^4] / var^2 (3 for a normal,
    1.8 for a uniform): the standard error of the sample variance is ``var * sqrt((kurtosis - 1) / n)``,
    that of the mean ``sqrt(var / n)``.  Returns a message per failed check (empty: both hold).
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    n = x.size
    se_mean = np.sqrt(var / n)
    se_var = var * np.sqrt((kurtosis - 1.0) / n)
    m, v = float(x.mean()), float(x.var(ddof=1))
    out = []
    if abs(m - mean) > k * se_mean:
        out.append(f"mean {m:.6g} is {abs(m - mean) / se_mean:.1f} standard errors from {mean:.6g} (n={n})")
    if abs(v - var) > k * se_var:
        out.append(f"variance {v:.6g} is {abs(v - var) / se_var:.1f} standard errors from {var:.6g} (n={n})")
    return out


@pytest.fixture(scope="session")
def moment_failures():
    return _moment_failures
