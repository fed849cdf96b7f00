"""Drop-in replacements for every ``torch.nn.init`` function, on weightinit's counter-based stream.

Same names, signatures, defaults and semantics as ``torch.nn.init`` (2.13),
plus a keyword-only ``seed=``:

* ``seed=`` (an int, a :class:`weightinit.Stream` or a
  :class:`weightinit.SeedGenerator`) fixes the values: the same on every
  framework, device and call.
* Without it, a 64-bit seed is drawn from ``generator`` (or torch's global RNG),
  so ``torch.manual_seed(0)`` makes the result reproducible and consecutive
  calls differ, as with torch.

Every function works in place under ``torch.no_grad()``, returns the tensor,
is a no-op on meta tensors, and raises torch's errors (as weightinit's
exception classes, which subclass ``ValueError``).  Values are generated from
the weightinit stream (docs/random.md) and written with the device executor
when it is installed, else through NumPy.
"""

from __future__ import annotations

import functools
import inspect
import math
import warnings

import numpy as np

import torch
from weightinit.common import validate
from weightinit.common.dtypes import compute_dtype, standardize_dtype
from weightinit.common.errors import InitializerTypeError, InitializerValueError, peer_error, type_error, value_error
from weightinit.initializers.fans import torch_fans
from weightinit.initializers.gains import calculate_gain as _core_gain
from weightinit.initializers.orthogonal import orthogonal_matrix
from weightinit.random.distributions import Normal, TruncatedNormal, Uniform
from weightinit.torch.dtensor import dtensor_via_full
from weightinit.torch.place import (
    executor_orthogonal,
    numpy_dtype,
    resolve_stream,
    write_array,
    write_distribution,
)

__all__ = [
    "calculate_gain",
    "uniform_",
    "normal_",
    "trunc_normal_",
    "constant_",
    "ones_",
    "zeros_",
    "eye_",
    "dirac_",
    "xavier_uniform_",
    "xavier_normal_",
    "kaiming_uniform_",
    "kaiming_normal_",
    "orthogonal_",
    "sparse_",
    "uniform",
    "normal",
    "constant",
    "eye",
    "dirac",
    "xavier_uniform",
    "xavier_normal",
    "kaiming_uniform",
    "kaiming_normal",
    "orthogonal",
    "sparse",
]


def calculate_gain(nonlinearity, param=None):
    """PyTorch's recommended gain for a nonlinearity (``torch.nn.init.calculate_gain``).

    ==================  =========================================
    nonlinearity        gain
    ==================  =========================================
    linear, conv*, sigmoid  1
    tanh                5/3
    relu                sqrt(2)
    leaky_relu          sqrt(2 / (1 + negative_slope**2)), slope 0.01 by default
    selu                3/4 (empirical, PyTorch PR #50664)
    ==================  =========================================

    Names are case-sensitive, as in torch; unknown names raise ``ValueError``.

    >>> calculate_gain("leaky_relu", 0.2) == calculate_gain("leaky_relu", 0.2)
    True
    >>> round(calculate_gain("relu"), 6)
    1.414214
    """
    return _core_gain(nonlinearity, param)


def _fans(tensor) -> tuple[int, int]:
    return torch_fans(tensor.shape)


def _correct_fan(tensor, mode: str) -> int:
    mode = mode.lower()
    valid_modes = ["fan_in", "fan_out"]
    if mode not in valid_modes:
        raise InitializerValueError(f"Mode {mode} not supported, please use one of {valid_modes}")
    fan_in, fan_out = _fans(tensor)
    return fan_in if mode == "fan_in" else fan_out


def _xavier_std(tensor, gain: float) -> float:
    """Glorot & Bengio (2010): ``gain * sqrt(2 / (fan_in + fan_out))`` with torch's fans."""
    fan_in, fan_out = _fans(tensor)
    return gain * math.sqrt(2.0 / float(fan_in + fan_out))


def _kaiming_std(tensor, a, mode: str, nonlinearity: str) -> float:
    """He et al. (2015): ``calculate_gain(nonlinearity, a) / sqrt(fan)`` with torch's fan for ``mode``."""
    return calculate_gain(nonlinearity, a) / math.sqrt(_correct_fan(tensor, mode))


def _dispatch(fn, tensor, **kwargs):
    """torch's ``__torch_function__`` protocol, as torch applies it to the same functions."""
    if torch.overrides.has_torch_function_variadic(tensor):
        return True, torch.overrides.handle_torch_function(fn, (tensor,), tensor=tensor, **kwargs)
    return False, None


def uniform_(tensor, a: float = 0.0, b: float = 1.0, generator=None, *, seed=None):
    """Fill ``tensor`` with values from U[a, b) (``torch.nn.init.uniform_``).

    Every value is ``>= a`` and ``< b`` in the tensor's dtype.  ``a == b``
    fills ``a``; ``a > b`` raises, as torch.

    Args:
      tensor: an n-dimensional float (or complex) tensor.
      a, b: the bounds (defaults 0 and 1).
      generator: torch Generator the 64-bit seed is drawn from (default: the global RNG).
      seed: int, Stream or SeedGenerator; fixes the values (overrides ``generator``).

    >>> import torch, weightinit.torch as wt
    >>> w = wt.uniform_(torch.empty(3, 5), -1.0, 1.0, seed=0)
    >>> bool((w >= -1).all() and (w < 1).all())
    True
    """
    handled, out = _dispatch(uniform_, tensor, a=a, b=b, generator=generator, seed=seed)
    if handled:
        return out
    if tensor.is_meta:
        return tensor
    if a > b:
        raise InitializerValueError(
            f"uniform_ expects to return a [from, to) range: `a` must be <= `b`; received a={a!r}, b={b!r}."
        )
    if a == b:
        with torch.no_grad():
            return tensor.fill_(a)
    return write_distribution(tensor, Uniform(a, b), resolve_stream(seed, generator))


def normal_(tensor, mean: float = 0.0, std: float = 1.0, generator=None, *, seed=None):
    """Fill ``tensor`` with values from N(mean, std**2) (``torch.nn.init.normal_``).

    Complex tensors get std/sqrt(2) in each part (E|z|**2 = std**2), as torch.

    >>> import torch, weightinit.torch as wt
    >>> w = wt.normal_(torch.empty(200, 200), std=0.02, seed=0)
    >>> round(float(w.std()), 3)
    0.02
    """
    handled, out = _dispatch(normal_, tensor, mean=mean, std=std, generator=generator, seed=seed)
    if handled:
        return out
    if tensor.is_meta:
        return tensor
    if std < 0:
        raise InitializerValueError(f"normal expects std >= 0.0: `std` must be >= 0; received std={std!r}.")
    return write_distribution(tensor, Normal.checked(mean, std, ("mean", "std")), resolve_stream(seed, generator))


def trunc_normal_(
    tensor, mean: float = 0.0, std: float = 1.0, a: float = -2.0, b: float = 2.0, generator=None, *, seed=None
):
    """Fill ``tensor`` with N(mean, std**2) truncated to ``[a, b]`` (``torch.nn.init.trunc_normal_``).

    ``a`` and ``b`` are **absolute** bounds, as in torch (not multiples of
    ``std``; the defaults -2 and 2 barely truncate ``std=0.02``).  There is no
    variance correction.  Sampling is the exact inverse CDF of
    docs/random.md: every value lies in ``[a, b]`` in the tensor's dtype, with
    no outliers at the bounds for small ``std`` or in float16/bfloat16 (torch
    issues #155588, #145498), and each value uses a fixed number of random
    bits (no rejection loop).  Warns, as torch, when the mean is more than 2
    std outside ``[a, b]``.

    >>> import torch, weightinit.torch as wt
    >>> w = wt.trunc_normal_(torch.empty(1000, dtype=torch.bfloat16), std=0.02, a=-0.04, b=0.04, seed=0)
    >>> bool(w.abs().max() <= 0.04)
    True
    """
    if tensor.is_meta:
        return tensor
    if (mean < a - 2 * std) or (mean > b + 2 * std):
        warnings.warn(
            "mean is more than 2 std from [a, b] in nn.init.trunc_normal_. The distribution of values may be incorrect.",
            stacklevel=2,
        )
    dist = TruncatedNormal.checked(mean, std, a, b, ("mean", "std", "a", "b"))
    return write_distribution(tensor, dist, resolve_stream(seed, generator))


def constant_(tensor, val: float):
    """Fill ``tensor`` with ``val`` (``torch.nn.init.constant_``).

    >>> import torch, weightinit.torch as wt
    >>> wt.constant_(torch.empty(2), 0.3).tolist() == [0.30000001192092896] * 2
    True
    """
    handled, out = _dispatch(constant_, tensor, val=val)
    if handled:
        return out
    with torch.no_grad():
        return tensor.fill_(val)


def ones_(tensor):
    """Fill ``tensor`` with ones (``torch.nn.init.ones_``).

    >>> import torch, weightinit.torch as wt
    >>> wt.ones_(torch.empty(2)).tolist()
    [1.0, 1.0]
    """
    with torch.no_grad():
        return tensor.fill_(1)


def zeros_(tensor):
    """Fill ``tensor`` with zeros (``torch.nn.init.zeros_``).

    >>> import torch, weightinit.torch as wt
    >>> wt.zeros_(torch.empty(2)).tolist()
    [0.0, 0.0]
    """
    with torch.no_grad():
        return tensor.zero_()


@dtensor_via_full
def eye_(tensor):
    """Fill a 2-D ``tensor`` with the identity matrix (``torch.nn.init.eye_``); rectangular: ones on the diagonal.

    >>> import torch, weightinit.torch as wt
    >>> wt.eye_(torch.empty(2, 3)).tolist()
    [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
    """
    if tensor.ndimension() != 2:
        raise _dims_error("2", tensor)
    with torch.no_grad():
        torch.eye(*tensor.shape, out=tensor, requires_grad=tensor.requires_grad)
    return tensor


def _dims_error(dims: str, tensor) -> InitializerValueError:
    """torch's own words (torch's tests match on them), then the shape received."""
    return peer_error(
        InitializerValueError, f"Only tensors with {dims} dimensions are supported", "tensor.shape", tuple(tensor.shape)
    )


@dtensor_via_full
def dirac_(tensor, groups: int = 1):
    """Fill a 3/4/5-D conv weight with the Dirac delta (``torch.nn.init.dirac_``).

    ``w[g*out_g + d, d, k//2, ...] = 1`` for each group ``g`` and each
    ``d < min(out/groups, in)``; the convolution then passes as many input
    channels through unchanged as possible.  The centre index is ``size // 2``
    (index 2 for an even kernel of 4), as torch.

    >>> import torch, weightinit.torch as wt
    >>> int(wt.dirac_(torch.empty(4, 4, 3)).sum())
    4
    """
    dimensions = tensor.ndimension()
    if dimensions not in [3, 4, 5]:
        raise _dims_error("3, 4, or 5", tensor)
    sizes = tensor.size()
    if sizes[0] % groups != 0:
        raise InitializerValueError(
            f"dim 0 must be divisible by groups: `groups` must divide {sizes[0]}; received groups={groups!r}."
        )
    if tensor.is_meta:
        return tensor
    out_per_group = sizes[0] // groups
    min_dim = min(out_per_group, sizes[1])
    centre = tuple(s // 2 for s in sizes[2:])
    with torch.no_grad():
        tensor.zero_()
        if min_dim > 0 and groups > 0:
            d = torch.arange(min_dim, device=tensor.device)
            g = torch.arange(groups, device=tensor.device)
            rows = (g[:, None] * out_per_group + d[None, :]).reshape(-1)
            cols = d.repeat(groups)
            tensor[(rows, cols, *centre)] = 1
    return tensor


def xavier_uniform_(tensor, gain: float = 1.0, generator=None, *, seed=None):
    """Glorot/Xavier uniform (``torch.nn.init.xavier_uniform_``): U[-a, a), ``a = gain * sqrt(6 / (fan_in + fan_out))``.

    Fans follow torch's rule for ``(out, in, *k)``: ``fan_in = in * k``,
    ``fan_out = out * k``.  Reference: Glorot & Bengio (2010).

    >>> import torch, weightinit.torch as wt
    >>> w = wt.xavier_uniform_(torch.empty(30, 20), seed=0)
    >>> bool(w.abs().max() < (6 / 50) ** 0.5)
    True
    """
    std = _xavier_std(tensor, gain)
    a = math.sqrt(3.0) * std
    return uniform_(tensor, -a, a, generator, seed=seed)


def xavier_normal_(tensor, gain: float = 1.0, generator=None, *, seed=None):
    """Glorot/Xavier normal (``torch.nn.init.xavier_normal_``): N(0, std**2), ``std = gain * sqrt(2 / (fan_in + fan_out))``.

    Untruncated, as torch.  Reference: Glorot & Bengio (2010).

    >>> import torch, weightinit.torch as wt
    >>> w = wt.xavier_normal_(torch.empty(300, 200), seed=0)
    >>> round(float(w.std()) / (2 / 500) ** 0.5, 1)
    1.0
    """
    std = _xavier_std(tensor, gain)
    return normal_(tensor, 0.0, std, generator, seed=seed)


def kaiming_uniform_(
    tensor, a: float = 0, mode: str = "fan_in", nonlinearity: str = "leaky_relu", generator=None, *, seed=None
):
    """He/Kaiming uniform (``torch.nn.init.kaiming_uniform_``): U[-bound, bound), ``bound = gain * sqrt(3 / fan)``.

    ``gain = calculate_gain(nonlinearity, a)``; ``fan`` is ``fan_in`` (default)
    or ``fan_out`` (case-insensitive).  A zero-element tensor warns
    "Initializing zero-element tensors is a no-op", as torch.  Reference: He et
    al. (2015).  ``nn.Linear``'s default is ``a=math.sqrt(5)``, i.e. U(+-1/sqrt(fan_in)).

    >>> import math, torch, weightinit.torch as wt
    >>> w = wt.kaiming_uniform_(torch.empty(100, 400), a=math.sqrt(5), seed=0)
    >>> bool(w.abs().max() < 0.05)
    True
    """
    handled, out = _dispatch(
        kaiming_uniform_, tensor, a=a, mode=mode, nonlinearity=nonlinearity, generator=generator, seed=seed
    )
    if handled:
        return out
    if 0 in tensor.shape:
        warnings.warn("Initializing zero-element tensors is a no-op", stacklevel=2)
        return tensor
    std = _kaiming_std(tensor, a, mode, nonlinearity)
    bound = math.sqrt(3.0) * std
    return uniform_(tensor, -bound, bound, generator, seed=seed)


def kaiming_normal_(
    tensor, a: float = 0, mode: str = "fan_in", nonlinearity: str = "leaky_relu", generator=None, *, seed=None
):
    """He/Kaiming normal (``torch.nn.init.kaiming_normal_``): N(0, std**2), ``std = gain / sqrt(fan)``, untruncated.

    >>> import torch, weightinit.torch as wt
    >>> w = wt.kaiming_normal_(torch.empty(256, 512), nonlinearity="relu", seed=0)
    >>> round(float(w.std()) * 512 ** 0.5 / 2 ** 0.5, 1)
    1.0
    """
    if 0 in tensor.shape:
        warnings.warn("Initializing zero-element tensors is a no-op", stacklevel=2)
        return tensor
    std = _kaiming_std(tensor, a, mode, nonlinearity)
    return normal_(tensor, 0.0, std, generator, seed=seed)


@dtensor_via_full
def orthogonal_(tensor, gain: float = 1, generator=None, *, seed=None):
    """A (semi-)orthogonal matrix times ``gain`` (``torch.nn.init.orthogonal_``; Saxe et al., 2014).

    ``rows = tensor.size(0)``; trailing dimensions are flattened into columns.
    ``Q`` comes from the QR decomposition of a standard normal matrix of shape
    ``(max, min)`` (drawn from the stream), sign-corrected (Mezzadri, 2007);
    the QR runs in float32 (float64 for float64 tensors), so float16 and
    bfloat16 tensors work (torch's ``geqrf`` has no bfloat16 kernel).

    >>> import torch, weightinit.torch as wt
    >>> w = wt.orthogonal_(torch.empty(3, 5), seed=0)
    >>> bool(torch.allclose(w @ w.T, torch.eye(3), atol=1e-5))
    True
    """
    if tensor.ndimension() < 2:
        raise _dims_error("2 or more", tensor)
    if tensor.numel() == 0 or tensor.is_meta:
        return tensor
    stream = resolve_stream(seed, generator)
    rows = tensor.size(0)
    cols = tensor.numel() // rows
    fast = executor_orthogonal()
    if fast is not None and tensor.dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        with torch.no_grad():
            fast(tensor, gain, stream, layout="torch")
        return tensor
    np_dt = numpy_dtype(tensor.dtype, "orthogonal_")
    ct = compute_dtype(np_dt)
    q = orthogonal_matrix(rows, cols, stream, ct)
    q *= ct.type(gain)
    return write_array(tensor, q.astype(np_dt))


@dtensor_via_full
def sparse_(tensor, sparsity, std: float = 0.01, generator=None, *, seed=None):
    """Sparse init (``torch.nn.init.sparse_``; Martens, 2010): N(0, std**2), then ``ceil(sparsity * rows)`` zeros per column.

    ``sparsity`` is the fraction of zeros **per column**, as torch.  Unlike
    torch (whose ``randperm`` ignores ``generator``), the zero pattern is drawn
    from the same weightinit stream as the values, so ``seed=`` and
    ``generator=`` fix both.  Values use ``stream.child("values")``; the zeros
    of each column are the rows with the smallest float64 keys of
    ``stream.child("zeros")``.

    >>> import torch, weightinit.torch as wt
    >>> w = wt.sparse_(torch.empty(10, 4), sparsity=0.3, seed=0)
    >>> (w == 0).sum(0).tolist()
    [3, 3, 3, 3]
    """
    if tensor.ndimension() != 2:
        raise _dims_error("2", tensor)
    if tensor.is_meta:
        return tensor
    rows, cols = tensor.shape
    num_zeros = math.ceil(sparsity * rows)
    stream = resolve_stream(seed, generator)
    with torch.no_grad():
        write_distribution(tensor, Normal.checked(0.0, std, ("mean", "std")), stream.child("values"))
        if rows == 0 or cols == 0:
            return tensor
        keys = torch.empty((rows, cols), dtype=torch.float64, device=tensor.device)
        write_distribution(keys, Uniform(0.0, 1.0), stream.child("zeros"))
        zero_rows = torch.argsort(keys, dim=0, stable=True)[:num_zeros]
        tensor.scatter_(0, zero_rows, 0)
    return tensor


def _make_deprecate(meth):
    new_name = meth.__name__
    old_name = new_name[:-1]

    def deprecated_init(*args, **kwargs):
        warnings.warn(
            f"`nn.init.{old_name}` is now deprecated in favor of `nn.init.{new_name}`.",
            FutureWarning,
            stacklevel=2,
        )
        return meth(*args, **kwargs)

    deprecated_init.__doc__ = (
        f"""{old_name}(...): deprecated alias of :func:`{new_name}` (warns ``FutureWarning``, as torch)."""
    )
    deprecated_init.__name__ = old_name
    deprecated_init.__qualname__ = old_name
    return deprecated_init


# --------------------------------------------------------------------------- argument checks
# Every public function checks its arguments here, before any comparison or arithmetic on them, with
# the names torch uses (`a`, `b`, `std`, ...): one table, one wrapper.

_REAL = "real"  # a finite real number
_NONNEG = "nonneg"  # a finite real number >= 0
_FRACTION = "fraction"  # a real number in [0, 1]
_ARGS: dict[str, dict[str, str]] = {
    "uniform_": {"a": _REAL, "b": _REAL},
    "normal_": {"mean": _REAL, "std": _REAL},
    "trunc_normal_": {"mean": _REAL, "std": _REAL, "a": "bound", "b": "bound"},
    "constant_": {"val": "value"},
    "ones_": {},
    "zeros_": {},
    "eye_": {},
    "dirac_": {"groups": "groups"},
    "xavier_uniform_": {"gain": _REAL},
    "xavier_normal_": {"gain": _REAL},
    "kaiming_uniform_": {"a": _REAL, "mode": "text", "nonlinearity": "text"},
    "kaiming_normal_": {"a": _REAL, "mode": "text", "nonlinearity": "text"},
    "orthogonal_": {"gain": _REAL},
    "sparse_": {"sparsity": _FRACTION, "std": _NONNEG},
}


def _check_arguments(fn):
    sig = inspect.signature(fn)
    rules = _ARGS[fn.__name__]

    @functools.wraps(fn)
    def checked(*args, **kwargs):
        try:
            bound = sig.bind(*args, **kwargs)
        except TypeError as exc:
            raise InitializerTypeError(f"{fn.__name__}(): {exc}") from None
        values = bound.arguments
        tensor = values.get("tensor")
        if not isinstance(tensor, torch.Tensor) and not torch.overrides.has_torch_function_variadic(tensor):
            raise type_error("tensor", tensor, f"must be a torch.Tensor for {fn.__name__}")
        gen = values.get("generator")
        if gen is not None and not isinstance(gen, torch.Generator):
            raise type_error("generator", gen, "must be a torch.Generator or None")
        for name, rule in rules.items():
            if name not in values:
                continue
            v = values[name]
            if rule in (_REAL, _NONNEG):
                f = validate.real_number(name, v, minimum=0.0 if rule == _NONNEG else None)
            elif rule == "bound":
                f = validate.real_number(name, v, finite=False)
            elif rule == _FRACTION:
                f = validate.real_number(name, v)
                if not 0.0 <= f <= 1.0:
                    raise value_error(name, v, "must be a fraction in [0, 1]")
            elif rule == "groups":
                f = validate.integer(name, v, minimum=1)
            elif rule == "text":
                if not isinstance(v, str) and v is not None:
                    raise type_error(name, v, "must be a string")
                continue
            else:  # "value": a number (bools and complex allowed, as torch's fill_)
                if isinstance(v, torch.Tensor):
                    if v.numel() != 1:
                        raise value_error(name, v, "must be a number or a one-element tensor")
                    continue
                if isinstance(v, (complex, np.complexfloating)):
                    if isinstance(tensor, torch.Tensor) and not tensor.is_complex() and v.imag != 0:
                        raise value_error(name, v, f"is complex but the tensor is {tensor.dtype}")
                    if isinstance(tensor, torch.Tensor) and not tensor.is_complex():
                        v = v.real
                    else:
                        continue
                if isinstance(v, (bool, np.bool_)):
                    continue
                f = validate.real_number(name, v, finite=False)
                if isinstance(tensor, torch.Tensor):
                    validate.representable(name, f, standardize_dtype(tensor.dtype), fn.__name__)
                continue
            values[name] = f
        checked_in_dtype = {"uniform_": ("a", "b"), "orthogonal_": ("gain",)}.get(fn.__name__, ())
        if checked_in_dtype and isinstance(tensor, torch.Tensor) and not tensor.is_complex():
            dt = numpy_dtype(tensor.dtype, fn.__name__)
            for name in checked_in_dtype:
                if name in values:
                    validate.representable(name, values[name], dt, fn.__name__)
        return fn(*bound.args, **bound.kwargs)

    return checked


for _name in _ARGS:
    globals()[_name] = _check_arguments(globals()[_name])
del _name

uniform = _make_deprecate(uniform_)
normal = _make_deprecate(normal_)
constant = _make_deprecate(constant_)
eye = _make_deprecate(eye_)
dirac = _make_deprecate(dirac_)
xavier_uniform = _make_deprecate(xavier_uniform_)
xavier_normal = _make_deprecate(xavier_normal_)
kaiming_uniform = _make_deprecate(kaiming_uniform_)
kaiming_normal = _make_deprecate(kaiming_normal_)
orthogonal = _make_deprecate(orthogonal_)
sparse = _make_deprecate(sparse_)
